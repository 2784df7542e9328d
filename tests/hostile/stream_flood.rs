//! Stream flood: an attacker opens many native streams and sends nothing on them. Each is a task
//! with buffers on the victim until the request timeout closes it, and a peer id costs nothing,
//! so a few attackers can hold tens of thousands.
//!
//! Secure: inbound streams are bounded per peer and in total
//! (`P2PConfig::with_max_inbound_streams*`); the streams past the bound are reset at once, and an
//! honest peer keeps being served.

use std::time::{Duration, Instant};

use futures::AsyncReadExt;
use p2p_servicer::dht::Limits;
use p2p_servicer::runtime::{P2PConfig, Stream};

use crate::common::{attacker, config, honest_near, honest_round, node};

const PER_PEER: usize = 16;
const OPENED: usize = 40;
/// Well under the request timeout (10 s), which closes idle streams anyway.
const SOON: Duration = Duration::from_secs(3);

/// Whether the victim closed or reset `stream` before `deadline`.
async fn closed_before(mut stream: Stream, deadline: Instant) -> bool {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut byte)).await;
    matches!(read, Ok(Ok(0)) | Ok(Err(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_flood() {
    let victim = node(
        config(Limits::default())
            .with_p2p(P2PConfig::default().with_max_inbound_streams_per_peer(PER_PEER)),
    )
    .await;
    let victim_peer = victim.p2p().peer_id();
    let honest = honest_near(&victim, config(Limits::default())).await;
    let attacker = attacker(&victim).await;

    let mut streams = Vec::new();
    for _ in 0..OPENED {
        streams.push(attacker.open_raw_stream(victim_peer).await.unwrap());
    }
    honest_round(honest.protocol(), victim_peer, "during the flood").await;
    let deadline = Instant::now() + SOON;
    let closed = futures::future::join_all(
        streams
            .into_iter()
            .map(|stream| closed_before(stream, deadline)),
    )
    .await
    .into_iter()
    .filter(|closed| *closed)
    .count();
    eprintln!("stream flood: {closed} of {OPENED} idle streams reset within {SOON:?}");
    honest_round(honest.protocol(), victim_peer, "after the flood").await;
    attacker.shutdown().await;
    honest.shutdown().await;
    victim.shutdown().await;
    assert!(
        closed >= OPENED - PER_PEER,
        "{} of {OPENED} streams one peer opened were kept past a limit of {PER_PEER} per peer",
        OPENED - closed
    );
}
