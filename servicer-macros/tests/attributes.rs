//! A handler's `#[cfg]`, `#[doc]`, `#[deprecated]` and `#[allow]` reach its stub method, and its
//! `#[cfg]` its registration too, as tarpc forwards them.

use std::sync::Arc;

use servicer_runtime::{P2P, P2PConfig, RpcContext, RpcKind};

pub struct Gated;

#[servicer_macros::servicer]
#[deny(deprecated)]
impl Gated {
    /// Squares its request.
    async fn rpc_square(&self, x: i64, _ctx: RpcContext) -> Result<i64, String> {
        Ok(x * x)
    }

    // Compiled out: were the `#[cfg]` not forwarded, the stub method and the registration would
    // name a type that does not exist and the crate would not compile.
    #[cfg(any())]
    async fn rpc_never(&self, x: NoSuchType, _ctx: RpcContext) -> Result<NoSuchType, String> {
        Ok(x)
    }

    /// The old way to square.
    #[deprecated(note = "use rpc_square")]
    #[allow(clippy::unused_async)]
    async fn rpc_old(&self, x: i64, _ctx: RpcContext) -> Result<i64, String> {
        Ok(x * x)
    }
}

#[test]
fn a_handler_compiled_out_is_gone_from_both_sides() {
    assert_eq!(
        Gated::RPC_HANDLERS,
        &[
            ("rpc_square", RpcKind::UnaryUnary),
            ("rpc_old", RpcKind::UnaryUnary)
        ]
    );
}

#[tokio::test]
async fn the_other_handlers_serve_and_are_called() {
    let server = P2P::create(P2PConfig::default()).await.unwrap();
    Arc::new(Gated).add_p2p_handlers(&server, None).unwrap();
    assert_eq!(
        server.handler_names(),
        vec!["Gated.rpc_old".to_string(), "Gated.rpc_square".to_string()]
    );
    let client = P2P::create(P2PConfig::default().with_initial_peers(server.visible_maddrs()))
        .await
        .unwrap();
    let stub = Gated::get_stub(&client, server.peer_id());
    assert_eq!(stub.rpc_square(5).await.unwrap(), 25);
    #[allow(deprecated)]
    let old = stub.rpc_old(6).await.unwrap();
    assert_eq!(old, 36);
    Gated::remove_p2p_handlers(&server, None).unwrap();
    assert!(server.handler_names().is_empty());
    client.shutdown().await;
    server.shutdown().await;
}
