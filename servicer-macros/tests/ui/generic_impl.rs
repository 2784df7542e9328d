use servicer_macros::servicer;
use servicer_runtime::RpcContext;

struct Foo<T>(T);

#[servicer]
impl<T: Send + Sync + 'static> Foo<T> {
    async fn rpc_x(&self, request: u32, _ctx: RpcContext) -> Result<u32, String> {
        Ok(request)
    }
}

fn main() {}
