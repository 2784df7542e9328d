//! a) Header-only streams: attackers open native streams, send the call header of the victim's
//! unary `DHTProtocol.rpc_find`, then nothing, and keep the streams open.
//!
//! Secure: a stream holds no call permit before its request arrived (so such streams cannot
//! crowd honest calls out), and a request that does not arrive soon (10 s) closes the stream.

use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt};
use p2p_servicer::dht::messages::{FindRequest, FoundValue, StoreItem, StoreRequest, StoreValue};
use p2p_servicer::dht::{DhtId, DhtNode, DhtProtocol, encode_value, get_dht_time};
use p2p_servicer::runtime::native::frame::{FRAME_HEADER_LEN, FrameKind};
use p2p_servicer::runtime::{P2P, P2PConfig, PeerId, Stream};

use crate::common::PATIENCE;
use crate::wire_common::{native_dht, sender, unary_call_header};

const ATTACKERS: usize = 6;
const STREAMS_PER_ATTACKER: usize = 16;

/// One honest find of `key` and one honest store through the victim, with the typed error of
/// whichever failed.
async fn honest_find_and_store(honest: &DhtNode, victim: PeerId, key: &str) -> Result<(), String> {
    let stub = DhtProtocol::get_stub(honest.p2p(), victim).with_deadline(PATIENCE);
    let found = stub
        .rpc_find(FindRequest {
            peer: sender(honest),
            keys: vec![DhtId::generate(key)],
        })
        .await
        .map_err(|err| format!("find: {err:?}"))?;
    if !matches!(
        found.results.first().map(|r| &r.value),
        Some(FoundValue::Regular { .. })
    ) {
        return Err(format!("find: no value for {key:?}: {:?}", found.results));
    }
    let stored = stub
        .rpc_store(StoreRequest {
            peer: sender(honest),
            items: vec![StoreItem {
                key: DhtId::generate(format!("{key}, again").as_str()),
                value: StoreValue::Regular(encode_value("again").unwrap()),
                expiration_time: get_dht_time() + 300.0,
                in_cache: false,
            }],
        })
        .await
        .map_err(|err| format!("store: {err:?}"))?;
    if stored.results != vec![Ok(())] {
        return Err(format!("store: {:?}", stored.results));
    }
    Ok(())
}

/// Opens a native stream to `victim` and sends only the call header of `DHTProtocol.rpc_find`.
async fn header_only_stream(attacker: &P2P, victim: PeerId) -> Stream {
    let mut stream = attacker.open_raw_stream(victim).await.unwrap();
    stream
        .write_all(&unary_call_header("DHTProtocol.rpc_find"))
        .await
        .unwrap();
    stream.flush().await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_only_streams() {
    let limits = P2PConfig::default()
        .with_max_inbound_calls(64)
        .with_max_inbound_calls_per_peer(16);
    let victim = DhtNode::create(native_dht(limits, Vec::new()))
        .await
        .unwrap();
    let victim_peer = victim.p2p().peer_id();
    let honest = DhtNode::create(native_dht(
        P2PConfig::default(),
        victim.p2p().visible_maddrs(),
    ))
    .await
    .unwrap();
    let key = "stored before the attack";
    assert!(
        honest
            .store(key, &"value", get_dht_time() + 300.0, None)
            .await
            .unwrap()
    );
    assert!(
        victim
            .protocol()
            .stored_value(&DhtId::generate(key))
            .is_some(),
        "the victim holds the honest value"
    );
    honest_find_and_store(&honest, victim_peer, key)
        .await
        .expect("before the attack");

    let mut attackers = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..ATTACKERS {
        let attacker = P2P::create(
            P2PConfig::default()
                .with_initial_peers(victim.p2p().visible_maddrs())
                .with_require_initial_peers(true),
        )
        .await
        .unwrap();
        for _ in 0..STREAMS_PER_ATTACKER {
            streams.push(header_only_stream(&attacker, victim_peer).await);
        }
        attackers.push(attacker);
    }
    // Time for the victim to read every header.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let during = honest_find_and_store(&honest, victim_peer, key).await;
    eprintln!(
        "header-only streams: {} open, honest find+store during the attack: {during:?}",
        streams.len()
    );

    // After the attack: the honest peer is served again.
    drop(streams);
    for attacker in attackers {
        attacker.shutdown().await;
    }
    let deadline = Instant::now() + PATIENCE;
    let after = loop {
        let after = honest_find_and_store(&honest, victim_peer, key).await;
        if after.is_ok() || Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    honest.shutdown().await;
    victim.shutdown().await;
    after.expect("honest find+store after the attack");
    during.expect(
        "an honest find+store must succeed while 96 header-only streams are open \
         (64 calls in total, 16 per peer): header-only streams hold call permits",
    );
}

/// How a stream ended for its reader: EOF, a read error or an error frame; `None` if it was
/// still open at `within`.
async fn closed_within(stream: &mut Stream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => return format!("EOF after {} bytes", received.len()),
                Ok(n) => {
                    received.extend_from_slice(&chunk[..n]);
                    if received.len() >= FRAME_HEADER_LEN && received[0] == FrameKind::Error as u8 {
                        return format!("an error frame ({} bytes so far)", received.len());
                    }
                }
                Err(err) => return format!("read error: {err}"),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_only_stream_is_closed_soon() {
    let victim = DhtNode::create(native_dht(P2PConfig::default(), Vec::new()))
        .await
        .unwrap();
    let victim_peer = victim.p2p().peer_id();
    let honest = DhtNode::create(native_dht(
        P2PConfig::default(),
        victim.p2p().visible_maddrs(),
    ))
    .await
    .unwrap();
    let key = "stored before the attack";
    assert!(
        honest
            .store(key, &"value", get_dht_time() + 300.0, None)
            .await
            .unwrap()
    );
    let attacker = P2P::create(
        P2PConfig::default()
            .with_initial_peers(victim.p2p().visible_maddrs())
            .with_require_initial_peers(true),
    )
    .await
    .unwrap();

    let mut stream = header_only_stream(&attacker, victim_peer).await;
    let sent = Instant::now();
    let honest_during = honest_find_and_store(&honest, victim_peer, key).await;
    let remaining = Duration::from_secs(20).saturating_sub(sent.elapsed());
    let closed = closed_within(&mut stream, remaining).await;
    eprintln!(
        "header-only stream with the default config: {} after {:.1} s",
        closed.as_deref().unwrap_or("still open"),
        sent.elapsed().as_secs_f64()
    );
    let honest_after = honest_find_and_store(&honest, victim_peer, key).await;
    drop(stream);
    attacker.shutdown().await;
    honest.shutdown().await;
    victim.shutdown().await;
    honest_during.expect("honest find+store during the attack");
    honest_after.expect("honest find+store after the attack");
    assert!(
        closed.is_some(),
        "the victim kept a stream that sent only a call header open for 20 s \
         (secure default: the request must arrive within 10 s)"
    );
}
