//! A node's Prometheus metrics, registered in the caller's registry and read back as text.

use servicer_runtime::prometheus_client::encoding::text::encode;
use servicer_runtime::prometheus_client::registry::Registry;
use servicer_runtime::{Handler, Metrics, Native, P2P, P2PConfig, RpcError, StubBase};

#[tokio::test]
async fn calls_and_connections_are_counted() {
    let mut registry = Registry::default();
    let server = P2P::create(P2PConfig::default().with_metrics(Metrics::new(&mut registry)))
        .await
        .unwrap();
    server
        .add_handlers(
            vec![
                (
                    "Test.rpc_square".into(),
                    Handler::<Native>::unary(|x: i64, _ctx| async move { Ok::<_, String>(x * x) }),
                ),
                (
                    "Test.rpc_fail".into(),
                    Handler::<Native>::unary(|_: (), _ctx| async move { Err::<(), _>("boom") }),
                ),
            ],
            None,
        )
        .unwrap();
    let client = P2P::create(P2PConfig::default().with_initial_peers(server.visible_maddrs()))
        .await
        .unwrap();
    let stub = StubBase::<Native>::new(&client, server.peer_id(), "Test", None);
    for x in 0..3i64 {
        assert_eq!(stub.unary::<i64, i64>("rpc_square", x).await, Ok(x * x));
    }
    let failed = stub.unary::<(), ()>("rpc_fail", ()).await;
    assert!(matches!(failed, Err(RpcError::Remote { .. })), "{failed:?}");

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    for line in [
        r#"servicer_rpc_calls_total{handler="Test.rpc_square",outcome="ok"} 3"#,
        r#"servicer_rpc_calls_total{handler="Test.rpc_fail",outcome="error"} 1"#,
        r#"servicer_rpc_call_duration_seconds_count{handler="Test.rpc_square"} 3"#,
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    assert!(
        text.contains("libp2p_swarm_connections_established_total"),
        "no libp2p swarm metrics in:\n{text}"
    );
    client.shutdown().await;
    server.shutdown().await;
}
