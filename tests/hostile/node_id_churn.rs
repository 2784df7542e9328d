//! A peer that serves no DHT pings the victim under 300 fresh node ids: the victim must not
//! replicate its stored values to it (replication goes to verified nodes only) nor ping much.

use std::time::Duration;

use futures::StreamExt;
use p2p_servicer::dht::messages::PingRequest;
use p2p_servicer::dht::{DhtId, Limits, get_dht_time, testing};

use crate::common::{
    PATIENCE, attacker, claiming, config, honest_near, honest_round, node, regular, settled, stub,
};

const STORED_KEYS: usize = 200;
const PINGS: usize = 300;
const MAX_PINGS_SENT: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_id_churn() {
    let victim = node(config(Limits::default())).await;
    let victim_peer = victim.p2p().peer_id();
    let expiration = get_dht_time() + 600.0;
    let items = (0..STORED_KEYS)
        .map(|i| regular(&format!("held {i}"), "held", expiration))
        .collect();
    let stored = testing::store_locally(victim.protocol(), items);
    assert!(stored.iter().all(Result::is_ok));
    let honest = honest_near(&victim, config(Limits::default())).await;
    let attacker = attacker(&victim).await;
    let stub = stub(&attacker, victim_peer, PATIENCE);

    let sent = || victim.protocol().rpcs_sent();
    let before = settled(Duration::from_secs(1), sent).await;
    let answered = futures::stream::iter(0..PINGS)
        .map(|_| {
            let stub = stub.clone();
            async move {
                stub.rpc_ping(PingRequest {
                    peer: claiming(DhtId::random()),
                    validate: false,
                })
                .await
                .is_ok()
            }
        })
        .buffer_unordered(8)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    assert_eq!(answered, PINGS, "pings the victim answered");
    // The replication stores and pings the victim spawns go out after it answers.
    let after = settled(Duration::from_secs(2), sent).await;
    let (stores, pings) = (after.store - before.store, after.ping - before.ping);
    println!("after {PINGS} pings under fresh ids: the victim sent {stores} stores, {pings} pings");
    assert_eq!(
        stores, 0,
        "the victim sent {stores} stores to a peer that serves no DHT ({pings} pings)"
    );
    assert!(
        pings <= MAX_PINGS_SENT,
        "the victim sent {pings} pings (at most {MAX_PINGS_SENT})"
    );

    honest_round(honest.protocol(), victim_peer, "after the churn").await;
    let held = DhtId::generate("held 0");
    let found = honest
        .protocol()
        .call_find(victim_peer, vec![held])
        .await
        .expect("the victim answered the honest find");
    assert!(found[&held].value.is_some(), "honest find of a held key");

    attacker.shutdown().await;
    honest.shutdown().await;
    victim.shutdown().await;
}
