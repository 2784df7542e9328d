use servicer_macros::servicer;

struct Foo;

#[servicer(name = "Bar")]
impl Foo {}

fn main() {}
