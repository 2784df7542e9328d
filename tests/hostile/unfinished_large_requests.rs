//! Unfinished large requests: attackers open native streams, send the call header of the victim's
//! `DHTProtocol.rpc_store`, then a request frame announcing almost 4 MiB and all of it but the
//! last byte, and keep the streams open. Every such stream makes the victim buffer 4 MiB.
//!
//! Secure: the victim's memory for large messages in flight is bounded
//! (`P2PConfig::with_max_message_memory`); streams past it are answered `Busy` and closed, and an
//! honest peer is served during and after the attack.

use std::sync::Arc;
use std::time::Duration;

use futures::AsyncWriteExt;
use p2p_servicer::dht::Limits;
use p2p_servicer::runtime::native::frame::FrameKind;
use p2p_servicer::runtime::{P2P, P2PConfig, PeerId};

use crate::common::{MemoryGuard, PATIENCE, config, honest_near, honest_round, node, rss};
use crate::wire_common::unary_call_header;

const ATTACKERS: usize = 4;
const STREAMS_PER_ATTACKER: usize = 40;
/// The announced payload: under the default 4 MiB message limit.
const ANNOUNCED: usize = (4 << 20) - 1024;
const BUDGET: usize = 32 << 20;
/// Growth of the test process's resident set allowed while the streams are held: the budget,
/// and room for the other test running beside this one.
const MAX_GROWTH: u64 = 224 << 20;
/// Past this resident set the test process aborts rather than exhaust the shared machine.
const MEMORY_GUARD: u64 = 6 << 30;

/// Opens a stream to `victim` and sends a store call with all but the last byte of its request.
async fn unfinished_request(
    attacker: P2P,
    victim: PeerId,
    payload: Arc<Vec<u8>>,
) -> Option<p2p_servicer::runtime::Stream> {
    let mut stream = attacker.open_raw_stream(victim).await.ok()?;
    let mut header = unary_call_header("DHTProtocol.rpc_store");
    header.push(FrameKind::Message as u8);
    header.extend_from_slice(&(ANNOUNCED as u32).to_be_bytes());
    let sent = async {
        stream.write_all(&header).await?;
        stream.write_all(&payload[..ANNOUNCED - 1]).await?;
        stream.flush().await
    };
    // A victim that refuses the request resets the stream; what matters is what it kept.
    let _ = tokio::time::timeout(PATIENCE, sent).await;
    Some(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_large_requests() {
    let victim = node(
        config(Limits::default()).with_p2p(
            P2PConfig::default()
                .with_max_message_memory(BUDGET)
                .with_request_timeout(Duration::from_secs(60)),
        ),
    )
    .await;
    let victim_peer = victim.p2p().peer_id();
    let honest = honest_near(&victim, config(Limits::default())).await;
    honest_round(honest.protocol(), victim_peer, "before the attack").await;

    let guard = MemoryGuard::start(MEMORY_GUARD);
    let before = rss();
    let payload = Arc::new(vec![0x42u8; ANNOUNCED]);
    let mut attackers = Vec::new();
    let mut opened = Vec::new();
    for _ in 0..ATTACKERS {
        let attacker = P2P::create(
            P2PConfig::default()
                .with_initial_peers(victim.p2p().visible_maddrs())
                .with_require_initial_peers(true),
        )
        .await
        .unwrap();
        for _ in 0..STREAMS_PER_ATTACKER {
            opened.push(tokio::spawn(unfinished_request(
                attacker.clone(),
                victim_peer,
                payload.clone(),
            )));
        }
        attackers.push(attacker);
    }
    let mut streams = Vec::new();
    for stream in opened {
        streams.extend(stream.await.unwrap());
    }
    drop(payload);
    // What the victim buffered stays buffered while the streams are open.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = rss();
    let growth = during.saturating_sub(before);
    eprintln!(
        "unfinished large requests: {} streams of {} MiB held, resident set {} -> {} MiB",
        streams.len(),
        ANNOUNCED >> 20,
        before >> 20,
        during >> 20
    );
    honest_round(honest.protocol(), victim_peer, "during the attack").await;
    drop(guard);

    drop(streams);
    for attacker in attackers {
        attacker.shutdown().await;
    }
    honest_round(honest.protocol(), victim_peer, "after the attack").await;
    honest.shutdown().await;
    victim.shutdown().await;
    assert!(
        growth < MAX_GROWTH,
        "the resident set grew by {} MiB while {ATTACKERS}x{STREAMS_PER_ATTACKER} unfinished \
         4 MiB requests were held (budget {} MiB, at most {} MiB allowed)",
        growth >> 20,
        BUDGET >> 20,
        MAX_GROWTH >> 20
    );
}
