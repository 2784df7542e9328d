use servicer_macros::servicer;

struct Foo;

#[servicer(label = "Bar")]
impl Foo {}

fn main() {}
