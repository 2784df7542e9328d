//! hivemind's `tests/test_p2p_servicer.py`, ported: `#[servicer]` stubs over real connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use p2p_servicer::runtime::{
    P2P, P2PConfig, RequestStream, ResponseStream, RpcContext, RpcError, RpcKind,
};
use p2p_servicer::servicer;

const SOON: Duration = Duration::from_secs(20);

#[derive(Default)]
struct ExampleServicer {
    calls_seen_by: std::sync::Mutex<Vec<p2p_servicer::runtime::PeerId>>,
}

#[servicer]
impl ExampleServicer {
    async fn rpc_square(&self, request: i32, _ctx: RpcContext) -> Result<i32, String> {
        Ok(request * request)
    }

    async fn rpc_sum(
        &self,
        mut requests: RequestStream<i32>,
        _ctx: RpcContext,
    ) -> Result<i32, String> {
        let mut sum = 0;
        while let Some(x) = requests.next().await {
            sum += x.map_err(|e| e.to_string())?;
        }
        Ok(sum)
    }

    async fn rpc_count(
        &self,
        request: i32,
        _ctx: RpcContext,
    ) -> Result<ResponseStream<i32>, String> {
        Ok(ResponseStream::iter(0..request))
    }

    async fn rpc_powers(
        &self,
        requests: RequestStream<i32>,
        _ctx: RpcContext,
    ) -> Result<ResponseStream<i32>, String> {
        Ok(ResponseStream::new(requests.flat_map(|x| {
            let items: Vec<Result<i32, RpcError>> = match x {
                Ok(x) => vec![Ok(x * x), Ok(x * x * x)],
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(items)
        })))
    }

    async fn rpc_wait(
        &self,
        request: i32,
        _ctx: RpcContext,
    ) -> Result<ResponseStream<i32>, String> {
        let (tx, rx) = ResponseStream::channel(4);
        let me = self.cancelled_flag();
        tokio::spawn(async move {
            let _ = tx.send(request + 1).await;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(30)) => { let _ = tx.send(request + 2).await; }
                _ = tx.closed() => me.store(true, Ordering::SeqCst),
            }
        });
        Ok(rx)
    }

    async fn rpc_fail(&self, request: String, _ctx: RpcContext) -> Result<(), String> {
        Err(format!("boom: {request}"))
    }

    async fn rpc_whoami(&self, _request: (), ctx: RpcContext) -> Result<String, String> {
        self.calls_seen_by.lock().unwrap().push(ctx.remote_peer());
        Ok(ctx.handle_name().to_string())
    }

    /// Not a handler: stays an ordinary method.
    fn cancelled_flag(&self) -> Arc<AtomicBool> {
        CANCELLED.clone()
    }
}

static CANCELLED: std::sync::LazyLock<Arc<AtomicBool>> =
    std::sync::LazyLock::new(|| Arc::new(AtomicBool::new(false)));

async fn server_client() -> (P2P, P2P) {
    let server = P2P::create(P2PConfig::default()).await.unwrap();
    let client = P2P::create(
        P2PConfig::default()
            .with_initial_peers(server.visible_maddrs())
            .with_require_initial_peers(true),
    )
    .await
    .unwrap();
    (server, client)
}

/// A server running `ExampleServicer`, a client connected to it, and the client's stub.
async fn served() -> (P2P, P2P, ExampleServicerStub) {
    let (server, client) = server_client().await;
    Arc::new(ExampleServicer::default())
        .add_p2p_handlers(&server, None)
        .unwrap();
    let stub = ExampleServicer::get_stub(&client, server.peer_id());
    (server, client, stub)
}

#[tokio::test]
async fn handler_list_and_names() {
    assert_eq!(ExampleServicer::SERVICER_NAME, "ExampleServicer");
    let kinds: Vec<_> = ExampleServicer::RPC_HANDLERS.to_vec();
    assert!(kinds.contains(&("rpc_square", RpcKind::UnaryUnary)));
    assert!(kinds.contains(&("rpc_sum", RpcKind::StreamUnary)));
    assert!(kinds.contains(&("rpc_count", RpcKind::UnaryStream)));
    assert!(kinds.contains(&("rpc_powers", RpcKind::StreamStream)));
    assert_eq!(kinds.len(), 7);
    let (server, client) = server_client().await;
    Arc::new(ExampleServicer::default())
        .add_p2p_handlers(&server, None)
        .unwrap();
    assert!(
        server
            .handler_names()
            .contains(&"ExampleServicer.rpc_square".to_string())
    );
    let stub = ExampleServicer::get_stub(&client, server.peer_id());
    assert_eq!(
        stub.rpc_whoami(()).await.unwrap(),
        "ExampleServicer.rpc_whoami"
    );
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn unary_unary() {
    let (server, client, stub) = served().await;
    assert_eq!(stub.rpc_square(10).await.unwrap(), 100);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn stream_unary() {
    let (server, client, stub) = served().await;
    assert_eq!(
        stub.rpc_sum(futures::stream::iter(0..10)).await.unwrap(),
        45
    );
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn unary_stream() {
    let (server, client, stub) = served().await;
    let got: Vec<i32> = stub
        .rpc_count(10)
        .await
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn stream_stream() {
    let (server, client, stub) = served().await;
    let got: Vec<i32> = stub
        .rpc_powers(futures::stream::iter(0..10))
        .await
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    let expected: Vec<i32> = (0..10).flat_map(|i| [i * i, i * i * i]).collect();
    assert_eq!(got, expected);
    client.shutdown().await;
    server.shutdown().await;
}

async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + SOON;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn unary_stream_cancel_by_closing_connection_and_by_dropping_the_stream() {
    for close_connection in [true, false] {
        CANCELLED.store(false, Ordering::SeqCst);
        let (server, client) = server_client().await;
        Arc::new(ExampleServicer::default())
            .add_p2p_handlers(&server, None)
            .unwrap();
        let stub = ExampleServicer::get_stub(&client, server.peer_id());
        let mut responses = stub.rpc_wait(10).await.unwrap();
        assert_eq!(responses.next().await.unwrap().unwrap(), 11);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!CANCELLED.load(Ordering::SeqCst));
        let at = std::time::Instant::now();
        if close_connection {
            client.shutdown().await;
        } else {
            drop(responses);
        }
        wait_for("cancellation", || CANCELLED.load(Ordering::SeqCst)).await;
        println!(
            "close_connection={close_connection}: handler cancelled after {:?}",
            at.elapsed()
        );
        assert!(
            at.elapsed() < Duration::from_millis(250),
            "{:?}",
            at.elapsed()
        );
        client.shutdown().await;
        server.shutdown().await;
    }
}

#[tokio::test]
async fn removing_unary_and_stream_handlers_across_server_replicas() {
    let server = P2P::create(P2PConfig::default()).await.unwrap();
    let client = P2P::create(P2PConfig::default().with_initial_peers(server.visible_maddrs()))
        .await
        .unwrap();
    let stub = ExampleServicer::get_stub(&client, server.peer_id());
    // hivemind replicates the daemon; here P2P handles are the replicas of one node.
    let replicas = [server.clone(), server.clone(), server.clone()];
    for replica in &replicas {
        Arc::new(ExampleServicer::default())
            .add_p2p_handlers(replica, None)
            .unwrap();
        assert_eq!(stub.rpc_square(10).await.unwrap(), 100);
        let got: Vec<i32> = stub
            .rpc_count(10)
            .await
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        ExampleServicer::remove_p2p_handlers(replica, None).unwrap();
        let err = stub.rpc_square(10).await.unwrap_err();
        assert!(matches!(err, RpcError::UnknownHandler { .. }), "{err:?}");
        let first = stub.rpc_count(10).await.unwrap().next().await;
        assert!(
            matches!(first, Some(Err(RpcError::UnknownHandler { .. }))),
            "{first:?}"
        );
    }
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn namespaces_isolate_two_instances() {
    let (server, client) = server_client().await;
    Arc::new(ExampleServicer::default())
        .add_p2p_handlers(&server, Some("a"))
        .unwrap();
    Arc::new(ExampleServicer::default())
        .add_p2p_handlers(&server, Some("b"))
        .unwrap();
    assert!(
        Arc::new(ExampleServicer::default())
            .add_p2p_handlers(&server, Some("a"))
            .is_err()
    );
    let a = ExampleServicer::get_stub_in_namespace(&client, server.peer_id(), "a");
    let b = ExampleServicer::get_stub_in_namespace(&client, server.peer_id(), "b");
    assert_eq!(
        a.rpc_whoami(()).await.unwrap(),
        "a::ExampleServicer.rpc_whoami"
    );
    assert_eq!(
        b.rpc_whoami(()).await.unwrap(),
        "b::ExampleServicer.rpc_whoami"
    );
    ExampleServicer::remove_p2p_handlers(&server, Some("a")).unwrap();
    assert!(a.rpc_square(2).await.is_err());
    assert_eq!(b.rpc_square(2).await.unwrap(), 4);
    let plain = ExampleServicer::get_stub(&client, server.peer_id());
    assert!(matches!(
        plain.rpc_square(2).await,
        Err(RpcError::UnknownHandler { .. })
    ));
    client.shutdown().await;
    server.shutdown().await;
}

struct Other;

#[servicer]
impl Other {
    async fn rpc_square(&self, request: i32, _ctx: RpcContext) -> Result<String, String> {
        Ok(format!("other {}", request * request))
    }
}

#[tokio::test]
async fn two_servicers_on_one_node_over_one_connection() {
    let (server, client) = server_client().await;
    Arc::new(ExampleServicer::default())
        .add_p2p_handlers(&server, None)
        .unwrap();
    Arc::new(Other).add_p2p_handlers(&server, None).unwrap();
    let example = ExampleServicer::get_stub(&client, server.peer_id());
    let other = Other::get_stub(&client, server.peer_id());
    for i in 0..20 {
        assert_eq!(example.rpc_square(i).await.unwrap(), i * i);
        assert_eq!(
            other.rpc_square(i).await.unwrap(),
            format!("other {}", i * i)
        );
    }
    assert_eq!(
        client.connected_peers().await.unwrap(),
        vec![server.peer_id()]
    );
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn handler_error_message_reaches_the_caller() {
    let (server, client, stub) = served().await;
    let err = stub.rpc_fail("why".into()).await.unwrap_err();
    assert_eq!(
        err,
        RpcError::Remote {
            message: "boom: why".into()
        }
    );
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn interceptor_sees_every_call_and_can_refuse() {
    let (server, client) = server_client().await;
    let other_client =
        P2P::create(P2PConfig::default().with_initial_peers(server.visible_maddrs()))
            .await
            .unwrap();
    let allowed = client.peer_id();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let interceptor = move |ctx: &RpcContext| {
        counter.fetch_add(1, Ordering::SeqCst);
        if ctx.remote_peer() == allowed {
            Ok(())
        } else {
            Err(format!("{} is not allowed", ctx.remote_peer()))
        }
    };
    Arc::new(ExampleServicer::default())
        .add_p2p_handlers_with(&server, None, Arc::new(interceptor))
        .unwrap();
    let ok = ExampleServicer::get_stub(&client, server.peer_id());
    assert_eq!(ok.rpc_square(3).await.unwrap(), 9);
    assert_eq!(ok.rpc_sum(futures::stream::iter(0..3)).await.unwrap(), 3);
    let refused = ExampleServicer::get_stub(&other_client, server.peer_id());
    match refused.rpc_square(3).await {
        Err(RpcError::Refused { message }) => assert!(message.contains("not allowed")),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    for p in [other_client, client, server] {
        p.shutdown().await;
    }
}

#[tokio::test]
async fn stub_deadline_applies_per_stub() {
    let (server, client) = server_client().await;
    Arc::new(ExampleServicer::default())
        .add_p2p_handlers(&server, None)
        .unwrap();
    let stub =
        ExampleServicer::get_stub(&client, server.peer_id()).with_deadline(Duration::from_secs(5));
    assert_eq!(stub.peer(), server.peer_id());
    assert_eq!(stub.rpc_square(4).await.unwrap(), 16);
    client.shutdown().await;
    server.shutdown().await;
}
