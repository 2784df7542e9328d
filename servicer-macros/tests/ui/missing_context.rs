use servicer_macros::servicer;

struct Foo;

#[servicer]
impl Foo {
    async fn rpc_x(&self, request: u32) -> Result<u32, String> {
        Ok(request)
    }
}

fn main() {}
