//! Two of our nodes in `WireMode::Hivemind` over real libp2p connections on 127.0.0.1: protocol
//! names without `/`, unary envelopes, stream frames, errors.

mod common;

use std::time::Duration;

use futures::StreamExt;
use servicer_runtime::{
    Handler, Hivemind, Native, P2P, P2PConfig, ResponseStream, RpcError, StubBase, WireMode,
};

use common::tcp;

// Test messages with the field numbers of hivemind's dht.proto (the runtime knows no DHT).
#[derive(Clone, PartialEq, prost::Message)]
struct NodeInfo {
    #[prost(bytes = "vec", tag = "1")]
    node_id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PingRequest {
    #[prost(message, optional, tag = "2")]
    peer: Option<NodeInfo>,
    #[prost(bool, tag = "3")]
    validate: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PingResponse {
    #[prost(message, optional, tag = "2")]
    peer: Option<NodeInfo>,
    #[prost(double, tag = "4")]
    dht_time: f64,
    #[prost(bool, tag = "5")]
    available: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoreResponse {
    #[prost(bool, repeated, tag = "2")]
    store_ok: Vec<bool>,
    #[prost(message, optional, tag = "3")]
    peer: Option<NodeInfo>,
}

async fn hivemind_pair() -> (P2P, P2P) {
    let config = || {
        P2PConfig::default()
            .with_wire_mode(WireMode::Hivemind)
            .with_listen_addrs(tcp())
            .with_unary_deadline(Duration::from_secs(20))
    };
    let server = P2P::create(config()).await.expect("server");
    let client = P2P::create(
        config()
            .with_initial_peers(server.visible_maddrs())
            .with_require_initial_peers(true),
    )
    .await
    .expect("client");
    (server, client)
}

fn ping_response(n: u8) -> PingResponse {
    PingResponse {
        peer: Some(NodeInfo {
            node_id: vec![n; 20],
        }),
        dht_time: 1.5,
        available: true,
    }
}

fn register(server: &P2P) {
    server
        .add_handlers(
            vec![
                (
                    "DHTProtocol.rpc_ping".into(),
                    Handler::<Hivemind>::unary(|req: PingRequest, ctx| async move {
                        assert_eq!(ctx.handle_name(), "DHTProtocol.rpc_ping");
                        let n = req.peer.map(|p| p.node_id.len() as u8).unwrap_or(0);
                        Ok::<_, String>(ping_response(n))
                    }),
                ),
                (
                    "Test.rpc_fail".into(),
                    Handler::<Hivemind>::unary(|_req: PingRequest, _ctx| async move {
                        Err::<PingResponse, _>("RustError('boom')")
                    }),
                ),
                (
                    "ns::Test.rpc_count".into(),
                    Handler::<Hivemind>::unary_stream(|req: PingRequest, _ctx| async move {
                        let n = req.peer.map(|p| p.node_id.len()).unwrap_or(0);
                        Ok::<_, String>(ResponseStream::iter((0..n as u8).map(ping_response)))
                    }),
                ),
                (
                    "Test.rpc_echo".into(),
                    Handler::<Hivemind>::stream_stream(
                        |requests: servicer_runtime::RequestStream<PingRequest>, _ctx| async move {
                            Ok::<_, String>(ResponseStream::new(
                                requests.map(|r| r.map(|req| ping_response(req.validate as u8))),
                            ))
                        },
                    ),
                ),
                (
                    "Test.rpc_sum".into(),
                    Handler::<Hivemind>::stream_unary(
                        |requests: servicer_runtime::RequestStream<PingRequest>, _ctx| async move {
                            let all: Vec<_> = requests.collect().await;
                            let oks = all.iter().filter(|r| r.is_ok()).count();
                            Ok::<_, String>(StoreResponse {
                                store_ok: vec![true; oks],
                                peer: None,
                            })
                        },
                    ),
                ),
                (
                    "Test.rpc_stream_fail".into(),
                    Handler::<Hivemind>::unary_stream(|_req: PingRequest, _ctx| async move {
                        let items = futures::stream::iter([
                            Ok(ping_response(1)),
                            Err(RpcError::handler("stream boom")),
                        ]);
                        Ok::<_, String>(ResponseStream::new(items))
                    }),
                ),
            ],
            None,
        )
        .expect("register");
}

fn ping(len: usize, validate: bool) -> PingRequest {
    PingRequest {
        peer: Some(NodeInfo {
            node_id: vec![7; len],
        }),
        validate,
    }
}

#[tokio::test]
async fn unary_calls_and_errors() {
    let (server, client) = hivemind_pair().await;
    register(&server);
    let dht = StubBase::<Hivemind>::new(&client, server.peer_id(), "DHTProtocol", None);
    let response: PingResponse = dht.unary("rpc_ping", ping(20, true)).await.expect("ping");
    assert_eq!(response, ping_response(20));
    // Several at once, each on its own stream.
    let calls = (1..=8).map(|n| dht.unary::<_, PingResponse>("rpc_ping", ping(n, false)));
    let results = futures::future::join_all(calls).await;
    for (n, result) in (1..=8).zip(results) {
        assert_eq!(result.expect("ping"), ping_response(n as u8));
    }

    let test = StubBase::<Hivemind>::new(&client, server.peer_id(), "Test", None);
    let err = test
        .unary::<_, PingResponse>("rpc_fail", ping(1, false))
        .await
        .expect_err("fails");
    assert_eq!(
        err,
        RpcError::Remote {
            message: "RustError('boom')".into()
        }
    );
    let err = test
        .unary::<_, PingResponse>("rpc_missing", ping(1, false))
        .await
        .expect_err("unknown");
    assert_eq!(
        err,
        RpcError::UnknownHandler {
            name: "Test.rpc_missing".into()
        }
    );
    // The node still works after the refusal.
    let again: PingResponse = dht.unary("rpc_ping", ping(3, false)).await.expect("ping");
    assert_eq!(again, ping_response(3));
}

#[tokio::test]
async fn streaming_calls_and_errors() {
    let (server, client) = hivemind_pair().await;
    register(&server);
    let ns = StubBase::<Hivemind>::new(&client, server.peer_id(), "Test", Some("ns"));
    let items: Vec<PingResponse> = ns
        .unary_stream("rpc_count", ping(4, false))
        .await
        .expect("call")
        .map(|r| r.expect("item"))
        .collect()
        .await;
    assert_eq!(items, (0..4).map(ping_response).collect::<Vec<_>>());

    let test = StubBase::<Hivemind>::new(&client, server.peer_id(), "Test", None);
    let requests = futures::stream::iter([ping(1, true), ping(1, false), ping(1, true)]);
    let echoed: Vec<PingResponse> = test
        .stream_stream("rpc_echo", requests)
        .await
        .expect("call")
        .map(|r| r.expect("item"))
        .collect()
        .await;
    assert_eq!(
        echoed,
        [ping_response(1), ping_response(0), ping_response(1)]
    );

    let sum: StoreResponse = test
        .stream_unary("rpc_sum", futures::stream::iter(vec![ping(1, false); 5]))
        .await
        .expect("sum");
    assert_eq!(sum.store_ok, vec![true; 5]);

    let mut failing = test
        .unary_stream::<_, PingResponse>("rpc_stream_fail", ping(1, false))
        .await
        .expect("call");
    assert_eq!(
        failing.next().await.map(|r| r.ok()),
        Some(Some(ping_response(1)))
    );
    assert_eq!(
        failing.next().await,
        Some(Err(RpcError::Remote {
            message: "stream boom".into()
        }))
    );
    assert!(failing.next().await.is_none());

    let mut missing = test
        .unary_stream::<_, PingResponse>("rpc_nothing", ping(1, false))
        .await
        .expect("lazy open");
    assert_eq!(
        missing.next().await,
        Some(Err(RpcError::UnknownHandler {
            name: "Test.rpc_nothing".into()
        }))
    );
}

#[tokio::test]
async fn native_handlers_still_work_and_modes_are_checked() {
    let (server, client) = hivemind_pair().await;
    server
        .add_handlers(
            [(
                "Calc.rpc_square".into(),
                Handler::<Native>::unary(|x: i64, _ctx| async move { Ok::<_, String>(x * x) }),
            )],
            None,
        )
        .expect("register");
    let calc = StubBase::<Native>::new(&client, server.peer_id(), "Calc", None);
    let y: i64 = calc.unary("rpc_square", 12i64).await.expect("square");
    assert_eq!(y, 144);

    let native = P2P::create(P2PConfig::default().with_listen_addrs(tcp()))
        .await
        .expect("native");
    let err = native
        .add_handlers(
            [(
                "DHTProtocol.rpc_ping".into(),
                Handler::<Hivemind>::unary(
                    |r: PingRequest, _ctx| async move { Ok::<_, String>(r) },
                ),
            )],
            None,
        )
        .expect_err("needs hivemind mode");
    assert!(matches!(err, RpcError::Unsupported(_)), "{err:?}");
    let stub = StubBase::<Hivemind>::new(&native, server.peer_id(), "DHTProtocol", None);
    let err = stub
        .unary::<_, PingResponse>("rpc_ping", ping(1, false))
        .await
        .expect_err("needs hivemind mode");
    assert!(matches!(err, RpcError::Unsupported(_)), "{err:?}");
}

/// Dropping a call closes its stream, which cancels the remote handler (hivemind's rule: close or
/// reset = cancel), for unary and streaming calls alike.
#[tokio::test]
async fn dropping_a_call_cancels_the_remote_handler() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let (server, client) = hivemind_pair().await;
    let started = Arc::new(AtomicUsize::new(0));
    let unary_dropped = Arc::new(AtomicBool::new(false));
    let stream_dropped = Arc::new(AtomicBool::new(false));
    let (s1, d1) = (started.clone(), unary_dropped.clone());
    let (s2, d2) = (started.clone(), stream_dropped.clone());
    server
        .add_handlers(
            vec![
                (
                    "Slow.rpc_wait".into(),
                    Handler::<Hivemind>::unary(move |_req: PingRequest, _ctx| {
                        let guard = common::SetOnDrop(d1.clone());
                        s1.fetch_add(1, Ordering::SeqCst);
                        async move {
                            let _guard = guard;
                            std::future::pending::<()>().await;
                            Ok::<PingResponse, String>(PingResponse::default())
                        }
                    }),
                ),
                (
                    "Slow.rpc_trickle".into(),
                    Handler::<Hivemind>::unary_stream(move |_req: PingRequest, _ctx| {
                        let guard = common::SetOnDrop(d2.clone());
                        s2.fetch_add(1, Ordering::SeqCst);
                        async move {
                            let items = futures::stream::unfold(guard, |guard| async move {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                Some((ping_response(1), guard))
                            });
                            Ok::<_, String>(ResponseStream::from_items(items))
                        }
                    }),
                ),
            ],
            None,
        )
        .expect("register");
    let slow = StubBase::<Hivemind>::new(&client, server.peer_id(), "Slow", None);
    let short = slow.with_deadline(Duration::from_millis(300));
    let err = short
        .unary::<_, PingResponse>("rpc_wait", ping(1, false))
        .await
        .expect_err("deadline");
    assert!(matches!(err, RpcError::DeadlineExceeded(_)), "{err:?}");
    let flag = unary_dropped.clone();
    common::wait_for("the unary handler to be cancelled", move || {
        flag.load(Ordering::SeqCst)
    })
    .await;

    let mut trickle = slow
        .unary_stream::<_, PingResponse>("rpc_trickle", ping(1, false))
        .await
        .expect("call");
    for _ in 0..3 {
        assert_eq!(trickle.next().await, Some(Ok(ping_response(1))));
    }
    assert!(!stream_dropped.load(Ordering::SeqCst));
    drop(trickle);
    let flag = stream_dropped.clone();
    common::wait_for("the stream handler to be cancelled", move || {
        flag.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(started.load(Ordering::SeqCst), 2);
}

/// The message cap (4 MiB by default, here 1 KiB) holds on both sides: an over-size request
/// fails locally, an over-size reply becomes an error for the caller rather than silence.
#[tokio::test]
async fn message_cap_applies_both_ways() {
    let config = || {
        P2PConfig::default()
            .with_wire_mode(WireMode::Hivemind)
            .with_listen_addrs(tcp())
            .with_max_message_size(1024)
    };
    let server = P2P::create(config()).await.expect("server");
    let client = P2P::create(
        config()
            .with_initial_peers(server.visible_maddrs())
            .with_require_initial_peers(true),
    )
    .await
    .expect("client");
    server
        .add_handlers(
            [(
                "Big.rpc_grow".into(),
                Handler::<Hivemind>::unary(|req: PingRequest, _ctx| async move {
                    let n = req.peer.map(|p| p.node_id.len()).unwrap_or(0);
                    Ok::<_, String>(PingResponse {
                        peer: Some(NodeInfo {
                            node_id: vec![1; n * 10],
                        }),
                        ..PingResponse::default()
                    })
                }),
            )],
            None,
        )
        .expect("register");
    let big = StubBase::<Hivemind>::new(&client, server.peer_id(), "Big", None);
    let ok: PingResponse = big.unary("rpc_grow", ping(50, false)).await.expect("fits");
    assert_eq!(ok.peer.map(|p| p.node_id.len()), Some(500));
    let err = big
        .unary::<_, PingResponse>("rpc_grow", ping(200, false))
        .await
        .expect_err("reply too large");
    assert!(
        matches!(&err, RpcError::Remote { message } if message.contains("exceeds")),
        "{err:?}"
    );
    let err = big
        .unary::<_, PingResponse>("rpc_grow", ping(2000, false))
        .await
        .expect_err("request too large");
    assert!(matches!(err, RpcError::MessageTooLarge { .. }), "{err:?}");
}
