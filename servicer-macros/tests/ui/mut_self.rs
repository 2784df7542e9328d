use servicer_macros::servicer;
use servicer_runtime::RpcContext;

struct Foo;

#[servicer]
impl Foo {
    async fn rpc_x(&mut self, request: u32, _ctx: RpcContext) -> Result<u32, String> {
        Ok(request)
    }
}

fn main() {}
