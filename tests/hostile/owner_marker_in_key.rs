//! An owner marker in a key protects nothing (keys are hashed before they travel): a node asked
//! to store under such a key must refuse rather than store the record unsigned.

use p2p_servicer::dht::{DhtId, Limits, get_dht_time};
use p2p_servicer::runtime::Keypair;

use crate::common::{config, honest_near, honest_round, node, signing_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_marker_in_key() {
    let (victim_config, signer) = signing_config(Keypair::generate_ed25519(), Limits::default());
    let victim = node(victim_config).await;
    let victim_peer = victim.p2p().peer_id();
    let honest = honest_near(&victim, config(Limits::default())).await;

    let marker = String::from_utf8(signer.local_public_key().to_vec()).unwrap();
    let key = format!("profile {marker}");
    let result = victim
        .store(key.as_str(), &"mine", get_dht_time() + 60.0, None)
        .await;
    assert!(
        result.is_err(),
        "a store under a key holding the node's own owner marker answered {result:?}"
    );
    let key_id = DhtId::generate(key.as_str());
    assert!(
        victim.protocol().stored_value(&key_id).is_none(),
        "the node stored the record under the marked key"
    );

    honest_round(honest.protocol(), victim_peer, "after the marked key").await;
    honest.shutdown().await;
    victim.shutdown().await;
}
