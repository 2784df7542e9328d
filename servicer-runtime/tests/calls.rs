//! The four kinds of call on the raw (pre-macro) API, their errors, limits and cancellation.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use servicer_runtime::{
    Handler, Native, P2P, P2PConfig, RequestStream, ResponseStream, RpcError, StubBase,
};

fn stub(client: &P2P, server: &P2P) -> StubBase {
    StubBase::<Native>::new(client, server.peer_id(), "Test", None)
}

fn add_math(server: &P2P) {
    server
        .add_handlers(
            vec![
                (
                    "Test.rpc_square".into(),
                    Handler::<Native>::unary(|x: i64, _ctx| async move { Ok::<_, String>(x * x) }),
                ),
                (
                    "Test.rpc_sum".into(),
                    Handler::<Native>::stream_unary(
                        |mut xs: RequestStream<i64>, _ctx| async move {
                            let mut sum = 0;
                            while let Some(x) = xs.next().await {
                                sum += x.map_err(|e| e.to_string())?;
                            }
                            Ok::<_, String>(sum)
                        },
                    ),
                ),
                (
                    "Test.rpc_count".into(),
                    Handler::<Native>::unary_stream(|n: i64, _ctx| async move {
                        Ok::<_, String>(ResponseStream::iter(0..n))
                    }),
                ),
                (
                    "Test.rpc_powers".into(),
                    Handler::<Native>::stream_stream(|xs: RequestStream<i64>, _ctx| async move {
                        let out = xs.flat_map(|x| {
                            let items: Vec<Result<i64, RpcError>> = match x {
                                Ok(x) => vec![Ok(x * x), Ok(x * x * x)],
                                Err(e) => vec![Err(e)],
                            };
                            futures::stream::iter(items)
                        });
                        Ok::<_, String>(ResponseStream::new(out))
                    }),
                ),
                (
                    "Test.rpc_fail".into(),
                    Handler::<Native>::unary(|_: (), _ctx| async move { Err::<(), _>("boom") }),
                ),
                (
                    "Test.rpc_big".into(),
                    Handler::<Native>::unary(|n: usize, _ctx| async move {
                        Ok::<_, String>(vec![7u8; n])
                    }),
                ),
                (
                    "Test.rpc_echo".into(),
                    Handler::<Native>::unary(
                        |v: Vec<u8>, _ctx| async move { Ok::<_, String>(v.len()) },
                    ),
                ),
            ],
            None,
        )
        .unwrap();
}

#[tokio::test]
async fn four_kinds_round_trip() {
    let (server, client) = pair().await;
    add_math(&server);
    let stub = stub(&client, &server);
    let square: i64 = stub.unary("rpc_square", 10i64).await.unwrap();
    assert_eq!(square, 100);
    let sum: i64 = stub
        .stream_unary("rpc_sum", futures::stream::iter(0..10i64))
        .await
        .unwrap();
    assert_eq!(sum, 45);
    let counted: Vec<i64> = stub
        .unary_stream::<i64, i64>("rpc_count", 10)
        .await
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(counted, (0..10).collect::<Vec<_>>());
    let powers: Vec<i64> = stub
        .stream_stream::<i64, i64, _>("rpc_powers", futures::stream::iter(0..10i64))
        .await
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    let expected: Vec<i64> = (0..10i64).flat_map(|i| [i * i, i * i * i]).collect();
    assert_eq!(powers, expected);
    // Unary calls reuse streams: many sequential calls keep working.
    for i in 0..200i64 {
        assert_eq!(
            stub.unary::<i64, i64>("rpc_square", i).await.unwrap(),
            i * i
        );
    }
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn calls_work_over_quic_and_memory() {
    for addrs in [quic(), memory()] {
        let (server, client) = pair_on(addrs, P2PConfig::default()).await;
        add_math(&server);
        let square: i64 = stub(&client, &server)
            .unary("rpc_square", 7i64)
            .await
            .unwrap();
        assert_eq!(square, 49);
        client.shutdown().await;
        server.shutdown().await;
    }
}

#[tokio::test]
async fn remote_and_unknown_handler_errors() {
    let (server, client) = pair().await;
    add_math(&server);
    let stub = stub(&client, &server);
    let err = stub.unary::<(), ()>("rpc_fail", ()).await.unwrap_err();
    assert_eq!(
        err,
        RpcError::Remote {
            message: "boom".into()
        }
    );
    assert!(err.to_string().contains("boom"));
    let err = stub.unary::<(), ()>("rpc_nope", ()).await.unwrap_err();
    assert_eq!(
        err,
        RpcError::UnknownHandler {
            name: "Test.rpc_nope".into()
        }
    );
    let err = stub
        .unary_stream::<(), ()>("rpc_nope", ())
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, RpcError::UnknownHandler { .. }), "{err:?}");
    // Calling a unary handler as a stream is refused with both kinds named.
    let err = stub
        .unary_stream::<i64, i64>("rpc_square", 3)
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, RpcError::KindMismatch { .. }), "{err:?}");
    // The node keeps serving after all of that.
    assert_eq!(stub.unary::<i64, i64>("rpc_square", 3).await.unwrap(), 9);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_messages_both_directions() {
    let server = P2P::create(P2PConfig::default().with_max_message_size(64 * 1024))
        .await
        .unwrap();
    add_math(&server);
    let client = P2P::create(
        P2PConfig::default()
            .with_max_message_size(16 * 1024)
            .with_initial_peers(server.visible_maddrs()),
    )
    .await
    .unwrap();
    let stub = stub(&client, &server);
    // Request too large for the client's own limit: refused before sending.
    let err = stub
        .unary::<Vec<u8>, usize>("rpc_echo", vec![0; 20 * 1024])
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::MessageTooLarge { .. }), "{err:?}");
    // Response too large for the client's limit: refused on receipt.
    let err = stub
        .unary::<usize, Vec<u8>>("rpc_big", 32 * 1024)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::MessageTooLarge { limit, .. } if limit == 16 * 1024),
        "{err:?}"
    );
    // Response too large for the server's limit: the server says so.
    let err = stub
        .unary::<usize, Vec<u8>>("rpc_big", 100 * 1024)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::MessageTooLarge { limit, .. } if limit == 64 * 1024),
        "{err:?}"
    );
    // A second client whose requests exceed the server's limit.
    let big_client = P2P::create(P2PConfig::default().with_initial_peers(server.visible_maddrs()))
        .await
        .unwrap();
    let big = StubBase::<Native>::new(&big_client, server.peer_id(), "Test", None);
    let err = big
        .unary::<Vec<u8>, usize>("rpc_echo", vec![0; 100 * 1024])
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::MessageTooLarge { limit, .. } if limit == 64 * 1024),
        "{err:?}"
    );
    // Everyone is still served.
    assert_eq!(
        big.unary::<Vec<u8>, usize>("rpc_echo", vec![0; 10])
            .await
            .unwrap(),
        10
    );
    assert_eq!(stub.unary::<i64, i64>("rpc_square", 5).await.unwrap(), 25);
    for p in [big_client, client, server] {
        p.shutdown().await;
    }
}

#[tokio::test]
async fn deadline_exceeded_on_silent_handler() {
    let (server, client) = pair().await;
    server
        .add_handlers([("Test.rpc_hang".into(), hanging_handler())], None)
        .unwrap();
    let stub = stub(&client, &server).with_deadline(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = stub.unary::<(), ()>("rpc_hang", ()).await.unwrap_err();
    assert_eq!(err, RpcError::DeadlineExceeded(Duration::from_millis(300)));
    assert!(started.elapsed() < SOON);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn dial_to_dead_peer_fails_within_deadline() {
    let dead = P2P::create(P2PConfig::default()).await.unwrap();
    let dead_id = dead.peer_id();
    let dead_addrs = dead.visible_maddrs();
    dead.shutdown().await;
    let client = P2P::create(P2PConfig::default()).await.unwrap();
    client.add_addresses([(dead_id, dead_addrs)]).await.unwrap();
    let stub = StubBase::<Native>::new(&client, dead_id, "Test", None)
        .with_deadline(Duration::from_secs(5));
    let started = std::time::Instant::now();
    let err = stub.unary::<(), ()>("rpc_x", ()).await.unwrap_err();
    assert!(
        matches!(
            err,
            RpcError::PeerUnreachable { .. } | RpcError::DeadlineExceeded(_)
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() <= Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    // A peer with no known address fails at once.
    let unknown = servicer_runtime::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let err = StubBase::<Native>::new(&client, unknown, "Test", None)
        .unary::<(), ()>("rpc_x", ())
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::PeerUnreachable { .. }), "{err:?}");
    client.shutdown().await;
}

#[tokio::test]
async fn dropping_a_server_stream_cancels_the_handler() {
    let (server, client) = pair().await;
    let cancelled = Arc::new(AtomicBool::new(false));
    let flag = cancelled.clone();
    server
        .add_handlers([("Test.rpc_wait".into(), Handler::<Native>::unary_stream(move |n: i64, _ctx| {
                let flag = flag.clone();
                async move {
                    let (tx, rx) = ResponseStream::channel(4);
                    tokio::spawn(async move {
                        // Notices cancellation as hivemind's handler sees CancelledError.
                        let _guard = SetOnDrop(flag);
                        let _ = tx.send(n + 1).await;
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(30)) => { let _ = tx.send(n + 2).await; }
                            _ = tx.closed() => {}
                        }
                    });
                    Ok::<_, String>(rx)
                }
            }),)], None)
        .unwrap();
    let mut responses = stub(&client, &server)
        .unary_stream::<i64, i64>("rpc_wait", 10)
        .await
        .unwrap();
    assert_eq!(responses.next().await.unwrap().unwrap(), 11);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(!cancelled.load(Ordering::SeqCst));
    let dropped_at = std::time::Instant::now();
    drop(responses);
    wait_for("handler cancellation", || cancelled.load(Ordering::SeqCst)).await;
    let took = dropped_at.elapsed();
    println!("handler saw the cancellation after {took:?}");
    assert!(took < Duration::from_millis(250), "took {took:?}");
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn dropping_a_unary_call_cancels_the_handler() {
    let (server, client) = pair().await;
    let started = Arc::new(AtomicBool::new(false));
    let cancelled = Arc::new(AtomicBool::new(false));
    let (s, c) = (started.clone(), cancelled.clone());
    server
        .add_handlers(
            [(
                "Test.rpc_sleep".into(),
                Handler::<Native>::unary(move |_: (), _ctx| {
                    let (s, c) = (s.clone(), c.clone());
                    async move {
                        let _guard = SetOnDrop(c);
                        s.store(true, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        Ok::<(), String>(())
                    }
                }),
            )],
            None,
        )
        .unwrap();
    let stub = stub(&client, &server);
    let call = tokio::spawn(async move { stub.unary::<(), ()>("rpc_sleep", ()).await });
    wait_for("handler start", || started.load(Ordering::SeqCst)).await;
    call.abort();
    wait_for("handler cancellation", || cancelled.load(Ordering::SeqCst)).await;
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn thousand_concurrent_calls_from_four_clients() {
    let server = P2P::create(P2PConfig::default()).await.unwrap();
    add_math(&server);
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(
            P2P::create(P2PConfig::default().with_initial_peers(server.visible_maddrs()))
                .await
                .unwrap(),
        );
    }
    let mut calls = Vec::new();
    for i in 0..1000i64 {
        let stub = stub(&clients[i as usize % 4], &server);
        calls.push(tokio::spawn(async move {
            stub.unary::<i64, i64>("rpc_square", i).await
        }));
    }
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), (i * i) as i64);
    }
    for c in clients {
        c.shutdown().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn removing_and_readding_a_handler() {
    let (server, client) = pair().await;
    let stub = stub(&client, &server);
    let square = || Handler::<Native>::unary(|x: i64, _ctx| async move { Ok::<_, String>(x * x) });
    for _ in 0..3 {
        server
            .add_handlers([("Test.rpc_square".into(), square())], None)
            .unwrap();
        assert!(matches!(
            server.add_handlers([("Test.rpc_square".into(), square())], None),
            Err(RpcError::DuplicateHandler { .. })
        ));
        assert_eq!(stub.unary::<i64, i64>("rpc_square", 10).await.unwrap(), 100);
        server.remove_handlers(["Test.rpc_square"]).unwrap();
        let err = stub.unary::<i64, i64>("rpc_square", 10).await.unwrap_err();
        assert!(matches!(err, RpcError::UnknownHandler { .. }), "{err:?}");
    }
    assert!(matches!(
        server.remove_handlers(["Test.rpc_square"]),
        Err(RpcError::UnknownHandler { .. })
    ));
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn busy_peer_gets_a_clear_error() {
    let server = P2P::create(P2PConfig::default().with_max_inbound_calls_per_peer(2))
        .await
        .unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let r = running.clone();
    server
        .add_handlers(
            [(
                "Test.rpc_slow".into(),
                Handler::<Native>::unary(move |_: (), _ctx| {
                    let r = r.clone();
                    async move {
                        r.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        Ok::<(), String>(())
                    }
                }),
            )],
            None,
        )
        .unwrap();
    let client = P2P::create(P2PConfig::default().with_initial_peers(server.visible_maddrs()))
        .await
        .unwrap();
    let s = stub(&client, &server);
    let mut slow = Vec::new();
    for _ in 0..2 {
        let s = s.clone();
        slow.push(tokio::spawn(async move {
            s.unary::<(), ()>("rpc_slow", ()).await
        }));
    }
    wait_for("two running calls", || running.load(Ordering::SeqCst) == 2).await;
    let err = s.unary::<(), ()>("rpc_slow", ()).await.unwrap_err();
    assert!(matches!(err, RpcError::Busy { .. }), "{err:?}");
    for call in slow {
        call.abort();
    }
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_pending_calls_with_an_error() {
    let (server, client) = pair().await;
    server
        .add_handlers([("Test.rpc_hang".into(), hanging_handler())], None)
        .unwrap();
    let s = stub(&client, &server);
    let call = tokio::spawn(async move { s.unary::<(), ()>("rpc_hang", ()).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.shutdown().await;
    let result = tokio::time::timeout(SOON, call)
        .await
        .expect("call hung")
        .unwrap();
    assert!(result.is_err());
    let again = stub(&client, &server).unary::<(), ()>("rpc_hang", ()).await;
    assert_eq!(again.unwrap_err(), RpcError::Shutdown);
    server.shutdown().await;
}

/// Bytes that are not a call, on a stream of the native protocol, fail that stream with an error
/// frame and close it; other calls on the same connection go on.
#[tokio::test]
async fn garbage_on_a_stream_fails_that_stream_only() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    use servicer_runtime::native::codec;
    use servicer_runtime::native::frame::{CallFrameCodec, FrameKind, WireError};
    use tokio_util::codec::Decoder;

    let server = P2P::create(P2PConfig::default()).await.unwrap();
    server
        .add_handlers(
            [(
                "T.rpc_square".into(),
                Handler::<Native>::unary(|x: i64, _ctx| async move { Ok::<_, String>(x * x) }),
            )],
            None,
        )
        .unwrap();
    let client = P2P::create(P2PConfig::default().with_initial_peers(server.visible_maddrs()))
        .await
        .unwrap();
    let stub = StubBase::<Native>::new(&client, server.peer_id(), "T", None);
    assert_eq!(stub.unary::<i64, i64>("rpc_square", 3).await.unwrap(), 9);
    for garbage in [
        &b"\xff\xff\xff\xff\xff\xff"[..],         // unknown frame kind
        &b"\x00\x00\x00\x00\x03\xfe\xfe\xfe"[..], // a call header that does not decode
        &b"\x01\x00\x00\x00\x01\x00"[..],         // a message before any call header
        &b"\x00\x7f\xff\xff\xff"[..],             // a length far beyond the limit
    ] {
        let mut raw = client.open_raw_stream(server.peer_id()).await.unwrap();
        raw.write_all(garbage).await.unwrap();
        raw.flush().await.unwrap();
        // The server answers with one error frame and closes the stream.
        let mut answer = Vec::new();
        raw.read_to_end(&mut answer).await.unwrap();
        let mut buffer = bytes::BytesMut::from(&answer[..]);
        let frame = CallFrameCodec::new(1 << 20)
            .decode(&mut buffer)
            .unwrap()
            .unwrap();
        assert_eq!(frame.kind, FrameKind::Error);
        assert!(buffer.is_empty(), "nothing after the error frame");
        let err: RpcError = codec::decode::<WireError>(&frame.payload, 1 << 20)
            .unwrap()
            .into();
        assert!(
            matches!(
                err,
                RpcError::Malformed(_) | RpcError::MessageTooLarge { .. }
            ),
            "{err:?}"
        );
        // Other calls, on the same connection, go on.
        assert_eq!(stub.unary::<i64, i64>("rpc_square", 4).await.unwrap(), 16);
    }
    client.shutdown().await;
    server.shutdown().await;
}

/// `drain` lets a call in flight finish, refuses new ones as busy, and returns once none runs.
#[tokio::test]
async fn drain_finishes_calls_in_flight_and_refuses_new_ones() {
    let server = P2P::create(P2PConfig::default()).await.unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let seen = started.clone();
    server
        .add_handlers(
            vec![(
                "Test.rpc_slow".into(),
                Handler::<Native>::unary(move |x: i64, _ctx| {
                    let seen = seen.clone();
                    async move {
                        seen.store(true, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        Ok::<_, String>(x + 1)
                    }
                }),
            )],
            None,
        )
        .unwrap();
    let client = P2P::create(P2PConfig::default().with_initial_peers(server.visible_maddrs()))
        .await
        .unwrap();
    let slow = {
        let stub = stub(&client, &server);
        tokio::spawn(async move { stub.unary::<i64, i64>("rpc_slow", 1).await })
    };
    while !started.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drained = {
        let server = server.clone();
        tokio::spawn(async move { server.drain(Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late = stub(&client, &server)
        .unary::<i64, i64>("rpc_slow", 2)
        .await;
    assert!(matches!(late, Err(RpcError::Busy { .. })), "{late:?}");
    assert_eq!(slow.await.unwrap(), Ok(2), "the call in flight finished");
    assert_eq!(drained.await.unwrap(), 0, "no call left running");
    client.shutdown().await;
    server.shutdown().await;
}
