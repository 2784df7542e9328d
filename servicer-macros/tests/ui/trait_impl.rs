use servicer_macros::servicer;

struct Foo;

#[servicer]
impl Clone for Foo {
    fn clone(&self) -> Self {
        Foo
    }
}

fn main() {}
