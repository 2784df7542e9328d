//! hivemind's `tests/test_dht_crypto.py` on live nodes: records protected by an owner marker can
//! only be written by their owner.

use std::sync::Arc;

use servicer_dht::{
    DhtConfig, DhtNode, DhtValue, Key, SignatureValidator, Validators, get_dht_time,
};
use servicer_runtime::{Keypair, P2PConfig};

/// A node whose identity key signs its records, with an RPC deadline fit for a loaded machine.
fn signing_node(keypair: Keypair) -> (DhtConfig, Arc<SignatureValidator>) {
    let validator = Arc::new(SignatureValidator::new(keypair.clone()));
    let config = DhtConfig::default()
        .with_p2p(P2PConfig::default().with_keypair(keypair))
        .with_wait_timeout(std::time::Duration::from_secs(30))
        .with_record_validators(Validators(vec![validator.clone()]));
    (config, validator)
}

async fn get_latest(node: &DhtNode, subkey: &[u8]) -> Option<Vec<u8>> {
    let found = node
        .get::<serde_bytes::ByteBuf>(&b"key"[..], true)
        .await
        .unwrap()?;
    let DhtValue::Dictionary(entries) = found.value else {
        panic!("expected a dictionary")
    };
    let subkey = Key::from(subkey).to_msgpack();
    entries.get(&subkey).map(|v| v.value.to_vec())
}

/// `test_dhtnode_signatures`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_writes_a_protected_subkey() {
    let (alice_config, _) = signing_node(Keypair::generate_ed25519());
    let alice = DhtNode::create(alice_config).await.unwrap();
    let peers = alice.p2p().visible_maddrs();
    let (bob_config, bob_validator) = signing_node(Keypair::generate_ed25519());
    let bob = DhtNode::create(bob_config.with_initial_peers(peers.clone()))
        .await
        .unwrap();
    let (mallory_config, _) = signing_node(Keypair::generate_ed25519());
    let mallory = DhtNode::create(mallory_config.with_initial_peers(peers))
        .await
        .unwrap();

    let subkey = [&b"protected_subkey"[..], bob_validator.local_public_key()].concat();
    let store = |node: &DhtNode, value: &'static [u8]| {
        let subkey = subkey.clone();
        let node = node.clone();
        async move {
            node.store(
                &b"key"[..],
                &serde_bytes::Bytes::new(value),
                get_dht_time() + 60.0,
                Some(Key::from(subkey)),
            )
            .await
            .unwrap()
        }
    };

    assert!(store(&bob, b"true_value").await);
    assert_eq!(get_latest(&alice, &subkey).await.unwrap(), b"true_value");

    assert!(!store(&mallory, b"fake_value").await);
    assert_eq!(get_latest(&alice, &subkey).await.unwrap(), b"true_value");

    assert!(store(&bob, b"updated_true_value").await);
    assert_eq!(
        get_latest(&alice, &subkey).await.unwrap(),
        b"updated_true_value"
    );

    bob.shutdown().await;
    assert!(!store(&mallory, b"fake_value").await);
    assert_eq!(
        get_latest(&alice, &subkey).await.unwrap(),
        b"updated_true_value"
    );

    mallory.shutdown().await;
    alice.shutdown().await;
}

/// `test_signing_in_different_process`, as a different node: a validator made from the same key
/// on another node signs records that this node's validator accepts.
#[test]
fn a_key_signs_the_same_everywhere() {
    let keypair = Keypair::generate_ed25519();
    let here = SignatureValidator::new(keypair.clone());
    let encoded = keypair.to_protobuf_encoding().unwrap();
    let elsewhere = SignatureValidator::new(Keypair::from_protobuf_encoding(&encoded).unwrap());
    assert_eq!(here.local_public_key(), elsewhere.local_public_key());
    let record = servicer_dht::DhtRecord {
        key: b"key".to_vec(),
        subkey: [&b"subkey"[..], here.local_public_key()].concat(),
        value: b"value".to_vec(),
        expiration_time: get_dht_time() + 10.0,
    };
    use servicer_dht::RecordValidator;
    let signed = servicer_dht::DhtRecord {
        value: elsewhere.sign_value(&record),
        ..record
    };
    assert!(signed.value.windows(11).any(|w| w == b"[signature:"));
    assert!(here.validate(&signed));
    assert!(elsewhere.validate(&signed));
}
