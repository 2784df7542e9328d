//! A record that expires in 31 years would pin the victim's memory for good: it is refused as
//! expiring too late; a record that expires in an hour is stored.

use p2p_servicer::dht::{DhtId, Limits, Rejection, get_dht_time};

use crate::common::{attacker, client_protocol, config, honest_near, honest_round, node, regular};

const YEAR: f64 = 365.25 * 24.0 * 3600.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_expiring_in_31_years() {
    let victim = node(config(Limits::default())).await;
    let victim_peer = victim.p2p().peer_id();
    let honest = honest_near(&victim, config(Limits::default())).await;
    let attacker = attacker(&victim).await;
    let hostile = client_protocol(&attacker);

    let far = "expires in 31 years";
    let answers = hostile
        .call_store_detailed(
            victim_peer,
            vec![regular(far, "forever", get_dht_time() + 31.0 * YEAR)],
        )
        .await
        .expect("the victim answered the store");
    assert_eq!(
        answers,
        vec![Err(Rejection::ExpiresTooLate)],
        "a record expiring in 31 years"
    );
    assert!(
        victim
            .protocol()
            .stored_value(&DhtId::generate(far))
            .is_none(),
        "the victim stored the record expiring in 31 years"
    );
    honest_round(honest.protocol(), victim_peer, "after 31 years").await;

    let near = "expires in an hour";
    let answers = hostile
        .call_store_detailed(
            victim_peer,
            vec![regular(near, "an hour", get_dht_time() + 3600.0)],
        )
        .await
        .expect("the victim answered the store");
    assert_eq!(answers, vec![Ok(())], "a record expiring in an hour");
    assert!(
        victim
            .protocol()
            .stored_value(&DhtId::generate(near))
            .is_some(),
        "the record expiring in an hour is not stored"
    );

    attacker.shutdown().await;
    honest.shutdown().await;
    victim.shutdown().await;
}
