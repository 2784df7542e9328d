use servicer_macros::servicer;

struct Foo;

#[servicer(wire = "grpc")]
impl Foo {}

fn main() {}
