//! A peer at its quota re-sends its records with an earlier expiration: refused as outdated,
//! those rewrites must not move the records' expiry in the quota's books, or the quota frees
//! while the records are still held.

use std::time::Duration;

use p2p_servicer::dht::{Limits, Rejection, get_dht_time};

use crate::common::{attacker, client_protocol, config, honest_near, honest_round, node, regular};

const QUOTA: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_rewrite_does_not_free_quota() {
    let victim = node(config(Limits::default().with_max_records_per_peer(QUOTA))).await;
    let victim_peer = victim.p2p().peer_id();
    let honest = honest_near(&victim, config(Limits::default())).await;
    let greedy_p2p = attacker(&victim).await;
    let greedy_peer = greedy_p2p.peer_id();
    let greedy = client_protocol(&greedy_p2p);

    let items = |prefix: &str, expiration_time: f64| {
        (0..QUOTA)
            .map(|i| regular(&format!("{prefix} {i}"), "held", expiration_time))
            .collect::<Vec<_>>()
    };
    let answers = greedy
        .call_store_detailed(victim_peer, items("first", get_dht_time() + 60.0))
        .await
        .expect("the victim answered");
    assert_eq!(answers, vec![Ok(()); QUOTA], "the first {QUOTA} records");
    assert_eq!(victim.protocol().records_written_by(&greedy_peer), QUOTA);

    // The same records expiring in 2 s: older than what the victim holds, so refused.
    let soon = get_dht_time() + 2.0;
    let answers = greedy
        .call_store_detailed(victim_peer, items("first", soon))
        .await
        .expect("the victim answered");
    assert_eq!(
        answers,
        vec![Err(Rejection::Outdated); QUOTA],
        "the rewrites with an earlier expiration"
    );
    // Past the refused rewrites' expiration.
    let wait = soon + 2.0 - get_dht_time();
    tokio::time::sleep(Duration::from_secs_f64(wait.max(0.0))).await;
    let counted = victim.protocol().records_written_by(&greedy_peer);

    let answers = greedy
        .call_store_detailed(victim_peer, items("second", get_dht_time() + 60.0))
        .await
        .expect("the victim answered");
    let stored = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(
        answers,
        vec![Err(Rejection::PeerQuotaExceeded); QUOTA],
        "{QUOTA} new records from a peer at its quota ({stored} stored; before them the victim \
         counted {counted} records of the peer while it held its {QUOTA} first ones)"
    );
    assert_eq!(
        victim.protocol().records_written_by(&greedy_peer),
        QUOTA,
        "records counted against the peer"
    );

    honest_round(honest.protocol(), victim_peer, "after the quota").await;
    greedy_p2p.shutdown().await;
    honest.shutdown().await;
    victim.shutdown().await;
}
