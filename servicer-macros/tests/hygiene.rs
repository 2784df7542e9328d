//! The generated code names everything by absolute path: it compiles without the prelude and
//! beside user types that shadow std names.

mod no_prelude {
    #![no_implicit_prelude]

    pub struct Quiet;

    #[::servicer_macros::servicer]
    impl Quiet {
        async fn rpc_echo(
            &self,
            request: ::std::string::String,
            _ctx: ::servicer_runtime::RpcContext,
        ) -> ::core::result::Result<::std::string::String, ::std::string::String> {
            ::core::result::Result::Ok(request)
        }

        async fn rpc_items(
            &self,
            requests: ::servicer_runtime::RequestStream<u8>,
            _ctx: ::servicer_runtime::RpcContext,
        ) -> ::core::result::Result<
            ::servicer_runtime::ResponseStream<u8>,
            ::servicer_runtime::RpcError,
        > {
            ::core::result::Result::Ok(::servicer_runtime::ResponseStream::new(requests))
        }
    }
}

mod shadowing {
    #![allow(dead_code)]
    use servicer_runtime::RpcContext;

    type Result<T> = std::result::Result<T, String>;
    struct Option;
    struct Arc;
    struct Vec;

    pub struct Loud;

    #[servicer_macros::servicer]
    impl Loud {
        async fn rpc_shout(&self, request: String, _ctx: RpcContext) -> Result<String> {
            Ok(request.to_uppercase())
        }
    }
}

#[test]
fn generated_items_exist() {
    use servicer_runtime::RpcKind;
    assert_eq!(no_prelude::Quiet::SERVICER_NAME, "Quiet");
    assert_eq!(
        no_prelude::Quiet::RPC_HANDLERS,
        &[
            ("rpc_echo", RpcKind::UnaryUnary),
            ("rpc_items", RpcKind::StreamStream)
        ]
    );
    assert_eq!(
        shadowing::Loud::RPC_HANDLERS,
        &[("rpc_shout", RpcKind::UnaryUnary)]
    );
}

#[tokio::test]
async fn generated_stub_calls_the_handler() {
    use servicer_runtime::{P2P, P2PConfig};
    use std::sync::Arc;
    let server =
        P2P::create(P2PConfig::default().with_listen_addrs(["/memory/0".parse().unwrap()]))
            .await
            .unwrap();
    Arc::new(shadowing::Loud)
        .add_p2p_handlers(&server, None)
        .unwrap();
    Arc::new(no_prelude::Quiet)
        .add_p2p_handlers(&server, None)
        .unwrap();
    let client = P2P::create(
        P2PConfig::default()
            .with_listen_addrs(["/memory/0".parse().unwrap()])
            .with_initial_peers(server.visible_maddrs()),
    )
    .await
    .unwrap();
    let stub = shadowing::Loud::get_stub(&client, server.peer_id());
    assert_eq!(stub.rpc_shout("hi".into()).await.unwrap(), "HI");
    let quiet = no_prelude::Quiet::get_stub(&client, server.peer_id());
    assert_eq!(quiet.rpc_echo("hi".into()).await.unwrap(), "hi");
    let items = quiet
        .rpc_items(futures::stream::iter([1u8, 2, 3]))
        .await
        .unwrap();
    let items: Vec<u8> = futures::StreamExt::collect::<Vec<_>>(items)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(items, [1, 2, 3]);
    client.shutdown().await;
    server.shutdown().await;
}

mod renamed {
    use servicer_runtime::RpcContext;

    /// Named as a Python peer's class would be.
    pub struct Protocol;

    #[servicer_macros::servicer(name = "DHTProtocol")]
    impl Protocol {
        async fn rpc_ping(&self, request: u8, _ctx: RpcContext) -> Result<u8, String> {
            Ok(request)
        }
    }
}

#[tokio::test]
async fn name_argument_sets_the_handle_names() {
    use servicer_runtime::{P2P, P2PConfig};
    use std::sync::Arc;
    assert_eq!(renamed::Protocol::SERVICER_NAME, "DHTProtocol");
    let server = P2P::create(P2PConfig::default()).await.unwrap();
    Arc::new(renamed::Protocol)
        .add_p2p_handlers(&server, None)
        .unwrap();
    assert_eq!(
        server.handler_names(),
        vec!["DHTProtocol.rpc_ping".to_string()]
    );
    let client = P2P::create(P2PConfig::default().with_initial_peers(server.visible_maddrs()))
        .await
        .unwrap();
    let stub = renamed::Protocol::get_stub(&client, server.peer_id());
    assert_eq!(stub.rpc_ping(7).await.unwrap(), 7);
    client.shutdown().await;
    server.shutdown().await;
}
