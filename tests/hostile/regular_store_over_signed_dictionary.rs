//! A stranger's regular value must not replace a dictionary whose subkeys their owner signed:
//! the store is refused as protected, the dictionary stays, and the owner keeps writing to it.

use p2p_servicer::dht::messages::{StoreItem, StoreValue};
use p2p_servicer::dht::{
    DhtId, DhtRecord, Key, Limits, RecordValidator, Rejection, StoredValue, encode_value,
    get_dht_time,
};
use p2p_servicer::runtime::Keypair;

use crate::common::{
    attacker, client_protocol, honest_near, honest_round, node, regular, signing_config,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regular_store_over_signed_dictionary() {
    let (victim_config, _) = signing_config(Keypair::generate_ed25519(), Limits::default());
    let victim = node(victim_config).await;
    let victim_peer = victim.p2p().peer_id();
    let (owner_config, owner_signer) =
        signing_config(Keypair::generate_ed25519(), Limits::default());
    let owner = honest_near(&victim, owner_config).await;

    let key = "a dictionary of owned subkeys";
    let key_id = DhtId::generate(key);
    let subkey = Key::from([&b"subkey"[..], owner_signer.local_public_key()].concat()).to_msgpack();
    let signed = |value: &str, expiration_time: f64| StoreItem {
        key: key_id,
        value: StoreValue::Subkey {
            subkey: subkey.clone(),
            value: owner_signer.sign_value(&DhtRecord {
                key: key_id.to_bytes().to_vec(),
                subkey: subkey.clone(),
                value: encode_value(value).unwrap(),
                expiration_time,
            }),
        },
        expiration_time,
        in_cache: false,
    };
    let now = get_dht_time();
    let answers = owner
        .protocol()
        .call_store_detailed(victim_peer, vec![signed("first", now + 60.0)])
        .await;
    assert_eq!(answers, Some(vec![Ok(())]), "the owner's signed subkey");

    // A stranger writes a regular value under the key, expiring later than the dictionary.
    let stranger = attacker(&victim).await;
    let hostile = client_protocol(&stranger);
    let answers = hostile
        .call_store_detailed(victim_peer, vec![regular(key, "mine now", now + 120.0)])
        .await
        .expect("the victim answered the stranger's store");
    assert_eq!(
        answers,
        vec![Err(Rejection::Protected)],
        "a stranger's regular value over a dictionary of signed subkeys"
    );
    match victim.protocol().stored_value(&key_id).map(|v| v.value) {
        Some(StoredValue::Dictionary(mut dict)) => assert!(
            dict.get(&subkey).is_some(),
            "the owner's subkey is gone from the dictionary"
        ),
        Some(StoredValue::Regular(_)) => {
            panic!("the victim holds the stranger's regular value instead of the dictionary")
        }
        None => panic!("the victim holds nothing under the key"),
    }

    // The owner writes again, expiring after its first write (before the stranger's value).
    let answers = owner
        .protocol()
        .call_store_detailed(victim_peer, vec![signed("second", now + 90.0)])
        .await;
    assert_eq!(
        answers,
        Some(vec![Ok(())]),
        "the owner's next signed subkey"
    );

    honest_round(owner.protocol(), victim_peer, "after the stranger").await;
    stranger.shutdown().await;
    owner.shutdown().await;
    victim.shutdown().await;
}
