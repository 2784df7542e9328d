// A deprecated handler's stub method is deprecated too.
#![deny(deprecated)]

use servicer_runtime::{P2P, PeerId, RpcContext};

struct Old;

#[servicer_macros::servicer]
impl Old {
    #[deprecated(note = "use rpc_new")]
    async fn rpc_old(&self, x: u8, _ctx: RpcContext) -> Result<u8, String> {
        Ok(x)
    }
}

async fn call(p2p: &P2P, peer: PeerId) {
    let _ = Old::get_stub(p2p, peer).rpc_old(1).await;
}

fn main() {
    let _ = call;
}
