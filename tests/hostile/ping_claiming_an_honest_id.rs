//! A ping that claims the DHT id of an honest node must not take over that node's entry in the
//! victim's routing table, nor, with `validate` and a failed ping back, remove it.

use p2p_servicer::dht::messages::PingRequest;
use p2p_servicer::dht::{Limits, testing};

use crate::common::{
    PATIENCE, attacker, claiming, config, honest_near, honest_round, node, stub, wait_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_claiming_an_honest_id() {
    let victim = node(config(Limits::default())).await;
    let victim_peer = victim.p2p().peer_id();
    let honest = honest_near(&victim, config(Limits::default())).await;
    let (honest_id, honest_peer) = (honest.node_id(), honest.p2p().peer_id());
    assert_eq!(
        testing::peer_of_node(victim.protocol(), &honest_id),
        Some(honest_peer)
    );
    let attacker = attacker(&victim).await;
    let attacker_peer = attacker.peer_id();
    let stub = stub(&attacker, victim_peer, PATIENCE);
    let mut problems = Vec::new();

    // 1. A plain ping under the honest node's id.
    stub.rpc_ping(PingRequest {
        peer: claiming(honest_id),
        validate: false,
    })
    .await
    .expect("the victim answered the ping");
    let held = testing::peer_of_node(victim.protocol(), &honest_id);
    if held != Some(honest_peer) {
        problems.push(format!(
            "after a ping claiming the honest id: the victim holds {held:?} for it \
             (honest {honest_peer}, attacker {attacker_peer})"
        ));
        // Put the honest node back for the second part.
        honest
            .protocol()
            .call_ping(victim_peer, false, false)
            .await
            .expect("honest ping");
        wait_for("the honest entry to come back", || {
            testing::peer_of_node(victim.protocol(), &honest_id) == Some(honest_peer)
        })
        .await;
    }

    // 2. The same with `validate`, while the attacker serves no DHT: the ping back fails.
    stub.rpc_ping(PingRequest {
        peer: claiming(honest_id),
        validate: true,
    })
    .await
    .expect("the victim answered the validating ping");
    let known = victim.protocol().knows_node(&honest_id);
    let held = testing::peer_of_node(victim.protocol(), &honest_id);
    if !known || held != Some(honest_peer) {
        problems.push(format!(
            "after a validating ping claiming the honest id whose ping back failed: \
             knows_node = {known}, the victim holds {held:?} for it (honest {honest_peer}, \
             attacker {attacker_peer})"
        ));
    }

    honest_round(honest.protocol(), victim_peer, "after the claims").await;
    assert!(problems.is_empty(), "{}", problems.join("; "));

    attacker.shutdown().await;
    honest.shutdown().await;
    victim.shutdown().await;
}
