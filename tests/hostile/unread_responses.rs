//! Unread responses: an attacker sends finds of a 900 KiB value on raw streams and never reads
//! the answers. The victim's writes stall once the stream's window is full, and each stalled call
//! keeps its slot and its encoded answer.
//!
//! Secure: a response the caller does not take within the stream idle deadline ends its call, so
//! the slots come back; an honest peer is served throughout.

use std::time::{Duration, Instant};

use futures::AsyncWriteExt;
use p2p_servicer::dht::messages::{FindRequest, StoreItem, StoreValue};
use p2p_servicer::dht::{DhtId, Limits, encode_value, get_dht_time, testing};
use p2p_servicer::runtime::native::codec;
use p2p_servicer::runtime::native::frame::FrameKind;
use p2p_servicer::runtime::{P2PConfig, RpcError};
use serde_bytes::ByteBuf;

use crate::common::{PATIENCE, anonymous, attacker, config, honest_near, honest_round, node, stub};
use crate::wire_common::{frame, unary_call_header};

const VALUE_BYTES: usize = 900 * 1024;
const PER_PEER: usize = 4;
const IDLE: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_responses() {
    let victim = node(
        config(Limits::default()).with_p2p(
            P2PConfig::default()
                .with_max_inbound_calls_per_peer(PER_PEER)
                .with_stream_idle_deadline(IDLE),
        ),
    )
    .await;
    let victim_peer = victim.p2p().peer_id();
    let honest = honest_near(&victim, config(Limits::default())).await;
    let key = DhtId::generate("a value of 900 KiB");
    let value = encode_value(&ByteBuf::from(vec![0x5a; VALUE_BYTES])).unwrap();
    let stored = testing::store_locally(
        victim.protocol(),
        vec![StoreItem {
            key,
            value: StoreValue::Regular(value),
            expiration_time: get_dht_time() + 600.0,
            in_cache: false,
        }],
    );
    assert_eq!(stored, vec![Ok(())]);

    let attacker = attacker(&victim).await;
    let mut request = unary_call_header("DHTProtocol.rpc_find");
    let find = FindRequest {
        peer: anonymous(),
        keys: vec![key],
    };
    request.extend(frame(
        FrameKind::Message as u8,
        &codec::encode(&find).unwrap(),
    ));
    let mut unread = Vec::new();
    for _ in 0..PER_PEER {
        let mut stream = attacker.open_raw_stream(victim_peer).await.unwrap();
        stream.write_all(&request).await.unwrap();
        stream.flush().await.unwrap();
        unread.push(stream);
    }
    let started = Instant::now();
    let attacker_stub = stub(&attacker, victim_peer, PATIENCE);
    let ping = || {
        attacker_stub.rpc_ping(p2p_servicer::dht::messages::PingRequest {
            peer: anonymous(),
            validate: false,
        })
    };
    // While its answers sit unread, the attacker has no slot left.
    let busy = loop {
        match ping().await {
            Err(RpcError::Busy { .. }) => break true,
            _ if started.elapsed() > IDLE => break false,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    assert!(busy, "the unread answers never held the attacker's slots");
    honest_round(honest.protocol(), victim_peer, "during the attack").await;

    // Once the idle deadline passed, the stalled calls end and their slots come back.
    let freed = loop {
        match ping().await {
            Ok(_) => break Some(started.elapsed()),
            Err(_) if started.elapsed() > PATIENCE => break None,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    eprintln!(
        "unread responses: slots back after {:?} (idle deadline {IDLE:?})",
        freed
    );
    honest_round(honest.protocol(), victim_peer, "after the attack").await;
    drop(unread);
    attacker.shutdown().await;
    honest.shutdown().await;
    victim.shutdown().await;
    assert!(
        freed.is_some(),
        "{PER_PEER} calls whose answers were never read kept their slots for {PATIENCE:?} \
         (stream idle deadline {IDLE:?})"
    );
}
