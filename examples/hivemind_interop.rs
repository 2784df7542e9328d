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
//! `dht-swarm <maddr>` runs three DHT nodes in `WireMode::Hivemind` (the first bootstraps from
//! `maddr`, each next one from the one before), prints `LISTENING <i> <maddr>` for each and
//! `READY`, then obeys stdin: `STORE` (node i stores `rust_key_i` and subkey `rust_i` of
//! `mixed_dict`), `GET key...` (every node gets every key, latest, printing
//! `GOT <i> <key> <value>` with dictionaries as `subkey=value` pairs sorted), until stdin closes.
//!
//! `Interop` is a `#[servicer(wire = "hivemind")]` here and a `ServicerBase` in Python, with the
//! same four handlers on both sides (the Python ones are in
//! `scripts/interop_hivemind.py`): `rpc_ping` (unary, echoes the node id), `rpc_fail` (unary,
//! always fails), `rpc_count` (unary-stream: one response per byte of the node id) and `rpc_echo`
//! (stream-stream).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use p2p_servicer::dht::hivemind_proto::{NodeInfo, PingRequest, PingResponse};
use p2p_servicer::dht::{DhtConfig, DhtError, DhtNode, DhtValue, Key, get_dht_time};
use p2p_servicer::runtime::{
    Hivemind, Multiaddr, P2P, P2PConfig, RequestStream, ResponseStream, RpcContext, RpcError,
    StubBase, WireMode, multiaddr_peer_id,
};
use p2p_servicer::servicer;

#[derive(Debug, thiserror::Error)]
enum InteropError {
    #[error("usage: hivemind_interop serve | call <maddr> | dht-swarm <maddr>")]
    Usage,
    #[error("{0}")]
    Rpc(#[from] RpcError),
    #[error("{0}")]
    Dht(#[from] DhtError),
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

/// The Rust `Interop` servicer: `#[servicer(wire = "hivemind")]` makes its handlers and stub
/// speak hivemind's wire with these protobuf messages.
struct Interop;

#[servicer(wire = "hivemind")]
impl Interop {
    async fn rpc_ping(&self, req: PingRequest, _ctx: RpcContext) -> Result<PingResponse, String> {
        Ok(PingResponse {
            auth: None,
            peer: req.peer,
            dht_time: 1.0,
            available: req.validate,
        })
    }

    async fn rpc_fail(&self, _req: PingRequest, _ctx: RpcContext) -> Result<PingResponse, String> {
        Err("RustError('boom from rust')".into())
    }

    async fn rpc_count(
        &self,
        req: PingRequest,
        _ctx: RpcContext,
    ) -> Result<ResponseStream<PingResponse>, String> {
        let n = req.peer.map(|p| p.node_id.len()).unwrap_or(0);
        let items = (0..n).map(|i| PingResponse {
            peer: node(&[i as u8; 20]),
            ..PingResponse::default()
        });
        Ok(ResponseStream::iter(items))
    }

    async fn rpc_echo(
        &self,
        requests: RequestStream<PingRequest>,
        _ctx: RpcContext,
    ) -> Result<ResponseStream<PingResponse>, String> {
        Ok(ResponseStream::new(requests.map(|r| {
            r.map(|req| PingResponse {
                peer: req.peer,
                available: req.validate,
                ..PingResponse::default()
            })
        })))
    }
}

fn config() -> P2PConfig {
    P2PConfig::default()
        .with_wire_mode(WireMode::Hivemind)
        .with_unary_deadline(Duration::from_secs(20))
}

async fn serve() -> Result<(), InteropError> {
    let p2p = P2P::create(config()).await?;
    Arc::new(Interop).add_p2p_handlers(&p2p, None)?;
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
    let stub = Interop::get_stub(&p2p, peer);
    let request = PingRequest {
        auth: None,
        peer: node(&[7; 20]),
        validate: true,
    };

    let pong = stub.rpc_ping(request.clone()).await?;
    check(
        "unary rpc_ping",
        (pong.peer, pong.available),
        (node(&[7; 20]), true),
    )?;

    let failed = stub.rpc_fail(request.clone()).await;
    check(
        "unary rpc_fail",
        failed.err(),
        Some(RpcError::Remote {
            message: "ValueError('boom from python')".into(),
        }),
    )?;

    // No stub method for a handler nobody serves: the runtime's StubBase calls it by name.
    let missing = StubBase::<Hivemind>::new(&p2p, peer, "Interop", None)
        .unary::<_, PingResponse>("rpc_missing", request.clone())
        .await;
    check(
        "unknown handler",
        missing.err(),
        Some(RpcError::UnknownHandler {
            name: "Interop.rpc_missing".into(),
        }),
    )?;

    let counted: Vec<Result<PingResponse, RpcError>> = stub
        .rpc_count(PingRequest {
            peer: node(&[1; 3]),
            ..PingRequest::default()
        })
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
        .rpc_echo(futures::stream::iter(requests))
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

/// Three DHT nodes on hivemind's wire, driven by the Python script over stdin and stdout.
async fn dht_swarm(addr: &str) -> Result<(), InteropError> {
    let addr: Multiaddr = addr.parse().map_err(|_| InteropError::Addr(addr.into()))?;
    let mut nodes: Vec<DhtNode> = Vec::new();
    let mut initial = vec![addr];
    for i in 0..3 {
        let config = DhtConfig::default()
            .with_wait_timeout(Duration::from_secs(10))
            .with_p2p(config())
            .with_initial_peers(initial);
        let node = DhtNode::create(config).await?;
        initial = node.p2p().visible_maddrs();
        for maddr in &initial {
            println!("LISTENING {i} {maddr}");
        }
        nodes.push(node);
    }
    println!("READY");
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("STORE") => {
                let expiration = get_dht_time() + 600.0;
                for (i, node) in nodes.iter().enumerate() {
                    let value = format!("rust {i}");
                    let key = format!("rust_key_{i}");
                    let plain = node.store(key.as_str(), &value, expiration, None).await?;
                    let subkey = Some(Key::from(format!("rust_{i}").as_str()));
                    let sub = node.store("mixed_dict", &value, expiration, subkey).await?;
                    println!("STORED {i} {plain} {sub}");
                }
                println!("STORED");
            }
            Some("GET") => {
                let keys: Vec<&str> = words.collect();
                for (i, node) in nodes.iter().enumerate() {
                    for key in &keys {
                        let shown = match node.get::<String>(*key, true).await?.map(|v| v.value) {
                            None => "-".to_string(),
                            Some(DhtValue::Regular(v)) => v,
                            Some(DhtValue::Dictionary(entries)) => {
                                let mut pairs: Vec<String> = entries
                                    .into_iter()
                                    .map(|(subkey, v)| {
                                        let subkey: String =
                                            p2p_servicer::dht::decode_value(&subkey, subkey.len())
                                                .unwrap_or_else(|_| format!("{subkey:?}"));
                                        format!("{subkey}={}", v.value)
                                    })
                                    .collect();
                                pairs.sort();
                                pairs.join(",")
                            }
                        };
                        println!("GOT {i} {key} {shown}");
                    }
                }
                println!("DONE");
            }
            _ => println!("UNKNOWN {line}"),
        }
    }
    for node in nodes {
        node.shutdown().await;
    }
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
        ["dht-swarm", addr] => dht_swarm(addr).await,
        _ => Err(InteropError::Usage),
    };
    if let Err(err) = result {
        eprintln!("hivemind_interop: {err}");
        std::process::exit(1);
    }
}
