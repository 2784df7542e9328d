//! b) 10 peers fire 1,000 concurrent unary calls each (10,000 in all) at a handler that takes
//! 20 ms. Secure: every call completes, with its answer or a typed refusal (`Busy`,
//! `DeadlineExceeded`); none hangs, none is lost, and an honest call succeeds afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use p2p_servicer::runtime::{P2P, P2PConfig, RpcContext, RpcError};
use p2p_servicer::servicer;

use crate::common::PATIENCE;

const CLIENTS: usize = 10;
const CALLS_PER_CLIENT: u64 = 1_000;
/// Past this a call counts as hung: its own deadline is 30 s.
const HUNG: Duration = Duration::from_secs(90);

struct SlowEcho;

#[servicer]
impl SlowEcho {
    async fn rpc_echo(&self, request: u64, _ctx: RpcContext) -> Result<u64, String> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(request)
    }
}

enum Outcome {
    Ok,
    Busy,
    Deadline,
    Hung,
    Other(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_calls() {
    tokio::time::timeout(Duration::from_secs(180), flood())
        .await
        .expect("10,000 calls and the honest one took over 180 s");
}

async fn flood() {
    let victim = P2P::create(P2PConfig::default()).await.unwrap();
    Arc::new(SlowEcho).add_p2p_handlers(&victim, None).unwrap();
    let victim_peer = victim.peer_id();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(
            P2P::create(
                P2PConfig::default()
                    .with_initial_peers(victim.visible_maddrs())
                    .with_require_initial_peers(true),
            )
            .await
            .unwrap(),
        );
    }

    let started = Instant::now();
    let mut calls = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let stub = SlowEcho::get_stub(client, victim_peer).with_deadline(PATIENCE);
        for i in 0..CALLS_PER_CLIENT {
            let stub = stub.clone();
            let request = c as u64 * CALLS_PER_CLIENT + i;
            calls.push(tokio::spawn(async move {
                match tokio::time::timeout(HUNG, stub.rpc_echo(request)).await {
                    Err(_) => Outcome::Hung,
                    Ok(Ok(answer)) if answer == request => Outcome::Ok,
                    Ok(Ok(answer)) => Outcome::Other(format!("answer {answer} to {request}")),
                    Ok(Err(RpcError::Busy { .. })) => Outcome::Busy,
                    Ok(Err(RpcError::DeadlineExceeded(_))) => Outcome::Deadline,
                    Ok(Err(err)) => Outcome::Other(format!("{err:?}")),
                }
            }));
        }
    }
    let (mut ok, mut busy, mut deadline, mut hung, mut other) = (0, 0, 0, 0, 0);
    let mut others: Vec<String> = Vec::new();
    for call in calls {
        match call.await {
            Ok(Outcome::Ok) => ok += 1,
            Ok(Outcome::Busy) => busy += 1,
            Ok(Outcome::Deadline) => deadline += 1,
            Ok(Outcome::Hung) => hung += 1,
            Ok(Outcome::Other(what)) => {
                other += 1;
                if others.len() < 5 {
                    others.push(what);
                }
            }
            Err(panic) => {
                other += 1;
                others.push(format!("task failed: {panic}"));
            }
        }
    }
    eprintln!(
        "10k calls: ok={ok} busy={busy} deadline={deadline} other={other} hung={hung} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if !others.is_empty() {
        eprintln!("10k calls: other errors, first few: {others:?}");
    }

    // The victim still serves an honest peer.
    let honest = P2P::create(
        P2PConfig::default()
            .with_initial_peers(victim.visible_maddrs())
            .with_require_initial_peers(true),
    )
    .await
    .unwrap();
    let honest_call = SlowEcho::get_stub(&honest, victim_peer)
        .with_deadline(PATIENCE)
        .rpc_echo(7)
        .await;
    for node in clients.iter().chain([&honest, &victim]) {
        node.shutdown().await;
    }
    assert_eq!(
        ok + busy + deadline + other + hung,
        CLIENTS as u64 * CALLS_PER_CLIENT,
        "calls lost"
    );
    assert_eq!(
        hung, 0,
        "calls that neither answered nor failed within {HUNG:?}"
    );
    assert_eq!(other, 0, "calls that failed untyped: {others:?}");
    assert_eq!(honest_call, Ok(7), "honest call after the flood");
}
