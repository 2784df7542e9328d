use servicer_macros::servicer;

#[servicer]
struct Foo;

fn main() {}
