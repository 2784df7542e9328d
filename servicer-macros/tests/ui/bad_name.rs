use servicer_macros::servicer;

struct Foo;

#[servicer(name = "ns::Foo")]
impl Foo {}

fn main() {}
