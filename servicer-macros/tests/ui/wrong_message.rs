// A message type must be able to travel on the servicer's wire: serde types on the native wire,
// prost messages on hivemind's.

use servicer_runtime::RpcContext;

#[derive(serde::Serialize, serde::Deserialize)]
struct SerdeOnly {
    x: u8,
}

struct Hm;

#[servicer_macros::servicer(wire = "hivemind")]
impl Hm {
    async fn rpc_x(&self, request: SerdeOnly, _ctx: RpcContext) -> Result<SerdeOnly, String> {
        Ok(request)
    }
}

fn main() {}
