use servicer_macros::servicer;
use servicer_runtime::RpcContext;

struct Foo;

#[servicer]
impl Foo {
    async fn rpc_x(&self, request: u32, _ctx: RpcContext) -> u32 {
        request
    }
}

fn main() {}
