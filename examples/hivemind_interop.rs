//! The Rust half of `scripts/interop-hivemind.sh`: a node in `WireMode::Hivemind` that either
//! serves the `Interop` servicer to a Python hivemind peer, or calls the Python one.
//!
//! ```sh
//! cargo run --example hivemind_interop -- serve
//! # prints: LISTENING /ip4/127.0.0.1/tcp/…/p2p/12D3KooW…  then serves until stdin closes
//! cargo run --example hivemind_interop -- call /ip4/127.0.0.1/tcp/…/p2p/12D3KooW…
//! # calls Interop.rpc_ping/rpc_fail/rpc_count/rpc_echo on that peer; exits 1 on a mismatch
//! ```
//!
//! `Interop` has the same four handlers on both sides (the Python ones are in
//! `scripts/interop_hivemind.py`): `rpc_ping` (unary, echoes the node id), `rpc_fail` (unary,
//! always fails), `rpc_count` (unary-stream: one response per byte of the node id) and `rpc_echo`
//! (stream-stream).

use std::time::Duration;

use futures::StreamExt;
use servicer::runtime::hivemind::proto::{NodeInfo, PingRequest, PingResponse};
use servicer::runtime::{
    Handler, Multiaddr, P2P, P2PConfig, RequestStream, ResponseStream, RpcError, StubBase,
    WireMode, multiaddr_peer_id,
};

#[derive(Debug, thiserror::Error)]
enum InteropError {
    #[error("usage: hivemind_interop serve | call <maddr>")]
    Usage,
    #[error("{0}")]
    Rpc(#[from] RpcError),
    #[error("bad multiaddr: {0}")]
    Addr(String),
    #[error("{what}: expected {expected}, got {got}")]
    Mismatch {
        what: &'static str,
        expected: String,
        got: String,
    },
}

fn node(id: &[u8]) -> Option<NodeInfo> {
    Some(NodeInfo {
        node_id: id.to_vec(),
    })
}

fn handlers() -> Vec<(String, Handler)> {
    vec![
        (
            "Interop.rpc_ping".into(),
            Handler::proto_unary(|req: PingRequest, _ctx| async move {
                Ok::<_, String>(PingResponse {
                    auth: None,
                    peer: req.peer,
                    dht_time: 1.0,
                    available: req.validate,
                })
            }),
        ),
        (
            "Interop.rpc_fail".into(),
            Handler::proto_unary(|_req: PingRequest, _ctx| async move {
                Err::<PingResponse, _>("RustError('boom from rust')")
            }),
        ),
        (
            "Interop.rpc_count".into(),
            Handler::proto_unary_stream(|req: PingRequest, _ctx| async move {
                let n = req.peer.map(|p| p.node_id.len()).unwrap_or(0);
                let items = (0..n).map(|i| PingResponse {
                    peer: node(&[i as u8; 20]),
                    ..PingResponse::default()
                });
                Ok::<_, String>(ResponseStream::iter(items))
            }),
        ),
        (
            "Interop.rpc_echo".into(),
            Handler::proto_stream_stream(|requests: RequestStream<PingRequest>, _ctx| async move {
                Ok::<_, String>(ResponseStream::new(requests.map(|r| {
                    r.map(|req| PingResponse {
                        peer: req.peer,
                        available: req.validate,
                        ..PingResponse::default()
                    })
                })))
            }),
        ),
    ]
}

fn config() -> P2PConfig {
    P2PConfig::default()
        .with_wire_mode(WireMode::Hivemind)
        .with_unary_deadline(Duration::from_secs(20))
}

async fn serve() -> Result<(), InteropError> {
    let p2p = P2P::create(config()).await?;
    p2p.add_handlers(handlers(), None)?;
    for addr in p2p.visible_maddrs() {
        println!("LISTENING {addr}");
    }
    // Serve until the parent closes our stdin.
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
    })
    .await;
    p2p.shutdown().await;
    Ok(())
}

fn check<T: std::fmt::Debug + PartialEq>(
    what: &'static str,
    got: T,
    expected: T,
) -> Result<(), InteropError> {
    if got == expected {
        println!("OK {what}");
        Ok(())
    } else {
        Err(InteropError::Mismatch {
            what,
            expected: format!("{expected:?}"),
            got: format!("{got:?}"),
        })
    }
}

async fn call(addr: &str) -> Result<(), InteropError> {
    let addr: Multiaddr = addr.parse().map_err(|_| InteropError::Addr(addr.into()))?;
    let peer = multiaddr_peer_id(&addr).ok_or_else(|| InteropError::Addr(addr.to_string()))?;
    let p2p = P2P::create(
        config()
            .with_initial_peers([addr])
            .with_require_initial_peers(true),
    )
    .await?;
    let stub = StubBase::new(&p2p, peer, "Interop", None);
    let request = PingRequest {
        auth: None,
        peer: node(&[7; 20]),
        validate: true,
    };

    let pong: PingResponse = stub.proto_unary("rpc_ping", request.clone()).await?;
    check(
        "unary rpc_ping",
        (pong.peer, pong.available),
        (node(&[7; 20]), true),
    )?;

    let failed = stub
        .proto_unary::<_, PingResponse>("rpc_fail", request.clone())
        .await;
    check(
        "unary rpc_fail",
        failed.err(),
        Some(RpcError::Remote {
            message: "ValueError('boom from python')".into(),
        }),
    )?;

    let missing = stub
        .proto_unary::<_, PingResponse>("rpc_missing", request.clone())
        .await;
    check(
        "unknown handler",
        missing.err(),
        Some(RpcError::UnknownHandler {
            name: "Interop.rpc_missing".into(),
        }),
    )?;

    let counted: Vec<Result<PingResponse, RpcError>> = stub
        .proto_unary_stream(
            "rpc_count",
            PingRequest {
                peer: node(&[1; 3]),
                ..PingRequest::default()
            },
        )
        .await?
        .collect()
        .await;
    let ids: Vec<_> = counted
        .into_iter()
        .map(|r| r.map(|p| p.peer.map(|n| n.node_id)))
        .collect();
    check(
        "unary-stream rpc_count",
        ids,
        (0..3u8).map(|i| Ok(Some(vec![i; 20]))).collect(),
    )?;

    let requests = (0..4u8).map(|i| PingRequest {
        peer: node(&[i; 20]),
        validate: i % 2 == 0,
        ..PingRequest::default()
    });
    let echoed: Vec<Result<PingResponse, RpcError>> = stub
        .proto_stream_stream("rpc_echo", futures::stream::iter(requests))
        .await?
        .collect()
        .await;
    let got: Vec<_> = echoed
        .into_iter()
        .map(|r| r.map(|p| (p.peer.map(|n| n.node_id), p.available)))
        .collect();
    check(
        "stream-stream rpc_echo",
        got,
        (0..4u8)
            .map(|i| Ok((Some(vec![i; 20]), i % 2 == 0)))
            .collect(),
    )?;
    p2p.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve"] => serve().await,
        ["call", addr] => call(addr).await,
        _ => Err(InteropError::Usage),
    };
    if let Err(err) = result {
        eprintln!("hivemind_interop: {err}");
        std::process::exit(1);
    }
}
