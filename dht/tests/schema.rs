//! hivemind's `tests/test_dht_schema.py` and `tests/test_dht_validation.py` on live nodes.

use std::sync::Arc;

use serde::Serialize;
use serde_bytes::ByteBuf;
use servicer_dht::{
    BytesWithOwner, CompositeValidator, Dht, DhtConfig, DhtId, DhtNode, DhtRecord, DhtValue, Key,
    REGULAR_SUBKEY, RecordValidator, SchemaValidator, SignatureValidator, Validators, encode_value,
    get_dht_time,
};
use servicer_runtime::{Keypair, P2PConfig};

fn patient(validators: Vec<Arc<dyn RecordValidator>>) -> DhtConfig {
    DhtConfig::default()
        .with_wait_timeout(std::time::Duration::from_secs(30))
        .with_record_validators(Validators(validators))
}

fn bytes(b: &[u8]) -> ByteBuf {
    ByteBuf::from(b.to_vec())
}

/// hivemind's `SampleSchema`.
fn sample_schema() -> Arc<dyn RecordValidator> {
    Arc::new(
        SchemaValidator::builder()
            .regular::<ByteBuf>("experiment_name")
            .dictionary::<ByteBuf, u64>("n_batches")
            .dictionary::<BytesWithOwner, ByteBuf>("signed_data")
            .build(),
    )
}

/// Alice, and bob who joined her, with the same validators.
async fn alice_and_bob(
    validators: impl Fn() -> Vec<Arc<dyn RecordValidator>>,
) -> (DhtNode, DhtNode) {
    let alice = DhtNode::create(patient(validators())).await.unwrap();
    let bob =
        DhtNode::create(patient(validators()).with_initial_peers(alice.p2p().visible_maddrs()))
            .await
            .unwrap();
    (alice, bob)
}

async fn store<T: Serialize + ?Sized>(
    node: &DhtNode,
    key: &str,
    value: &T,
    subkey: Option<Key>,
) -> bool {
    node.store(key, value, get_dht_time() + 10.0, subkey)
        .await
        .unwrap()
}

async fn shutdown(nodes: [DhtNode; 2]) {
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expecting_regular_value() {
    let (alice, bob) = alice_and_bob(|| vec![sample_schema()]).await;
    assert!(store(&alice, "experiment_name", &bytes(b"foo_bar"), None).await);
    assert!(!store(&alice, "experiment_name", &666, None).await);
    assert!(
        !store(
            &alice,
            "experiment_name",
            &bytes(b"foo_bar"),
            Some(Key::from(&b"subkey"[..]))
        )
        .await
    );
    assert!(!store(&alice, "experiment_name", &Vec::<u8>::new(), None).await);
    assert!(!store(&alice, "experiment_name", &[1, 2, 3], None).await);
    for peer in [&alice, &bob] {
        let got = peer
            .get::<ByteBuf>("experiment_name", true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.value, DhtValue::Regular(bytes(b"foo_bar")));
    }
    shutdown([alice, bob]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expecting_dictionary() {
    let (alice, bob) = alice_and_bob(|| vec![sample_schema()]).await;
    let uid = |s: &[u8]| Some(Key::from(s));
    assert!(store(&alice, "n_batches", &777, uid(b"uid1")).await);
    assert!(store(&alice, "n_batches", &778, uid(b"uid2")).await);
    assert!(!store(&alice, "n_batches", &-666, uid(b"uid3")).await);
    assert!(!store(&alice, "n_batches", &666, None).await);
    assert!(!store(&alice, "n_batches", &bytes(b"not_integer"), uid(b"uid1")).await);
    assert!(!store(&alice, "n_batches", &666, Some(Key::from(666))).await);
    let plain_dict = std::collections::HashMap::from([(bytes(b"uid3"), 779)]);
    assert!(!store(&alice, "n_batches", &plain_dict, None).await);
    assert!(!store(&alice, "n_batches", &779.5, uid(b"uid3")).await);
    assert!(!store(&alice, "n_batches", &779.0, uid(b"uid3")).await);
    assert!(!store(&alice, "n_batches", &Vec::<u8>::new(), uid(b"uid3")).await);
    assert!(!store(&alice, "n_batches", &[(bytes(b"uid3"), 779)], uid(b"uid3")).await);
    assert!(!store(&alice, "n_batches", "", uid(b"uid3")).await);
    for peer in [&alice, &bob] {
        let got = peer.get::<u64>("n_batches", true).await.unwrap().unwrap();
        let DhtValue::Dictionary(entries) = got.value else {
            panic!("expected a dictionary")
        };
        assert_eq!(entries.len(), 2);
        let get = |s: &[u8]| entries[&Key::from(s).to_msgpack()].value;
        assert_eq!((get(b"uid1"), get(b"uid2")), (777, 778));
    }
    shutdown([alice, bob]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expecting_public_keys() {
    let (alice, bob) = alice_and_bob(|| vec![sample_schema()]).await;
    // No signature validator here: the schema only checks that the marker is there.
    let marked = Key::from(&b"uid[owner:public-key]"[..]);
    assert!(store(&alice, "signed_data", &bytes(b"foo_bar"), Some(marked)).await);
    assert!(
        !store(
            &alice,
            "signed_data",
            &bytes(b"foo_bar"),
            Some(Key::from(&b"uid-without-key"[..]))
        )
        .await
    );
    for peer in [&alice, &bob] {
        let got = peer
            .get::<ByteBuf>("signed_data", true)
            .await
            .unwrap()
            .unwrap();
        let DhtValue::Dictionary(entries) = got.value else {
            panic!("expected a dictionary")
        };
        assert_eq!(entries.len(), 1);
    }
    shutdown([alice, bob]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_outside_schema() {
    for allow_extra_keys in [false, true] {
        let validators = || -> Vec<Arc<dyn RecordValidator>> {
            let schema = SchemaValidator::builder()
                .allow_extra_keys(allow_extra_keys)
                .regular::<i64>("some_field")
                .build();
            let merged = SchemaValidator::builder()
                .allow_extra_keys(false)
                .regular::<i64>("another_field")
                .build();
            assert!(schema.merge_with(&merged));
            vec![Arc::new(schema)]
        };
        let (alice, bob) = alice_and_bob(validators).await;
        assert_eq!(
            store(&alice, "unknown_key", &bytes(b"foo_bar"), None).await,
            allow_extra_keys
        );
        for peer in [&alice, &bob] {
            let got = peer.get::<ByteBuf>("unknown_key", true).await.unwrap();
            assert_eq!(got.is_some(), allow_extra_keys);
        }
        shutdown([alice, bob]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix() {
    let validators = || -> Vec<Arc<dyn RecordValidator>> {
        vec![Arc::new(
            SchemaValidator::builder()
                .allow_extra_keys(false)
                .prefix("prefix")
                .regular::<i64>("field")
                .build(),
        )]
    };
    let (alice, bob) = alice_and_bob(validators).await;
    assert!(store(&alice, "prefix_field", &777, None).await);
    assert!(!store(&alice, "prefix_field", "string_value", None).await);
    assert!(!store(&alice, "field", &777, None).await);
    for peer in [&alice, &bob] {
        let got = peer
            .get::<i64>("prefix_field", true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.value, DhtValue::Regular(777));
        assert!(peer.get::<i64>("field", true).await.unwrap().is_none());
    }
    shutdown([alice, bob]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_schema_validators() {
    let (alice, bob) = alice_and_bob(|| vec![sample_schema()]).await;
    for peer in [&alice, &bob] {
        let second = SchemaValidator::builder()
            .allow_extra_keys(false)
            .regular::<i64>("some_field")
            .regular::<String>("another_field")
            .build();
        let third = SchemaValidator::builder()
            .allow_extra_keys(false)
            .regular::<i64>("another_field")
            .build();
        peer.add_validators([
            Arc::new(second) as Arc<dyn RecordValidator>,
            Arc::new(third),
        ]);
    }
    assert!(store(&alice, "experiment_name", &bytes(b"foo_bar"), None).await);
    assert!(store(&alice, "some_field", &777, None).await);
    assert!(!store(&alice, "some_field", "string_value", None).await);
    assert!(store(&alice, "another_field", &42, None).await);
    assert!(store(&alice, "another_field", "string_value", None).await);
    // The first schema allows extra keys.
    assert!(store(&alice, "unknown_key", &999, None).await);

    let b = &bob;
    let got = b
        .get::<ByteBuf>("experiment_name", true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.value, DhtValue::Regular(bytes(b"foo_bar")));
    let got = b.get::<i64>("some_field", true).await.unwrap().unwrap();
    assert_eq!(got.value, DhtValue::Regular(777));
    let got = b
        .get::<String>("another_field", true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.value, DhtValue::Regular("string_value".to_owned()));
    let got = b.get::<i64>("unknown_key", true).await.unwrap().unwrap();
    assert_eq!(got.value, DhtValue::Regular(999));
    shutdown([alice, bob]).await;
}

/// `test_sending_validator_instance_between_processes`, with two `Dht` handles (each runs its
/// node on its own thread and runtime).
#[test]
fn validators_added_to_running_dhts() {
    let alice = Dht::start(patient(Vec::new())).unwrap();
    let bob = Dht::start(patient(Vec::new()).with_initial_peers(alice.visible_maddrs().unwrap()))
        .unwrap();
    alice.add_validators(vec![sample_schema()]).unwrap();
    bob.add_validators(vec![sample_schema()]).unwrap();
    let exp = get_dht_time() + 10.0;
    assert!(
        bob.store("experiment_name", &bytes(b"foo_bar"), exp, None)
            .unwrap()
    );
    assert!(!bob.store("experiment_name", &777, exp, None).unwrap());
    let got = alice
        .get::<ByteBuf>("experiment_name", true)
        .unwrap()
        .unwrap();
    assert_eq!(got.value, DhtValue::Regular(bytes(b"foo_bar")));
    alice.shutdown();
    bob.shutdown();
}

/// hivemind's validator sets A and B of `test_dht_validation.py`.
fn set_a(signer: &Arc<SignatureValidator>) -> Vec<Arc<dyn RecordValidator>> {
    vec![
        signer.clone(),
        Arc::new(
            SchemaValidator::builder()
                .allow_extra_keys(false)
                .regular::<ByteBuf>("field_a")
                .build(),
        ),
    ]
}

fn set_b(signer: &Arc<SignatureValidator>) -> Vec<Arc<dyn RecordValidator>> {
    vec![
        Arc::new(
            SchemaValidator::builder()
                .allow_extra_keys(false)
                .dictionary::<BytesWithOwner, i64>("field_b")
                .build(),
        ),
        signer.clone(),
    ]
}

/// `test_dht_add_validators`.
#[test]
fn add_validators_to_a_running_dht() {
    let keypair = Keypair::generate_ed25519();
    let signer = Arc::new(SignatureValidator::new(keypair.clone()));
    let config = patient(set_a(&signer)).with_p2p(P2PConfig::default().with_keypair(keypair));
    let dht = Dht::start(config).unwrap();
    dht.add_validators(set_b(&signer)).unwrap();
    let exp = get_dht_time() + 60.0;
    assert!(
        dht.store("field_a", &bytes(b"bytes_value"), exp, None)
            .unwrap()
    );
    assert!(!dht.store("field_a", &666, exp, None).unwrap());
    let got = dht.get::<ByteBuf>("field_a", true).unwrap().unwrap();
    assert_eq!(got.value, DhtValue::Regular(bytes(b"bytes_value")));

    let owner = Key::from(signer.local_public_key());
    assert!(dht.store("field_b", &777, exp, Some(owner)).unwrap());
    let got = dht.get::<i64>("field_b", true).unwrap().unwrap();
    let DhtValue::Dictionary(entries) = got.value else {
        panic!("expected a dictionary")
    };
    assert_eq!(entries.len(), 1);
    assert_eq!(entries.values().next().unwrap().value, 777);

    assert!(!dht.store("unknown_key", &666, exp, None).unwrap());
    assert!(dht.get::<i64>("unknown_key", true).unwrap().is_none());
    dht.shutdown();
}

/// `test_composite_validator`.
#[test]
fn composite_validator() {
    let signer = Arc::new(SignatureValidator::new(Keypair::generate_ed25519()));
    let composite = CompositeValidator::default();
    composite.extend(set_a(&signer));
    assert_eq!(composite.len(), 2);
    composite.extend(set_b(&signer));
    assert_eq!(composite.len(), 2, "both kinds merged");

    let record = DhtRecord {
        key: DhtId::generate("field_b").to_bytes().to_vec(),
        subkey: Key::from(signer.local_public_key()).to_msgpack(),
        value: encode_value(&777).unwrap(),
        expiration_time: get_dht_time() + 10.0,
    };
    let signed = composite.sign_value(&record);
    let signatures = signed.windows(11).filter(|w| w == b"[signature:").count();
    assert_eq!(signatures, 1);
    let signed_record = DhtRecord {
        value: signed,
        ..record.clone()
    };
    assert!(composite.validate(&signed_record));
    assert_eq!(composite.strip_value(&signed_record), record.value);

    let unknown = DhtRecord {
        key: DhtId::generate("unknown_key").to_bytes().to_vec(),
        subkey: REGULAR_SUBKEY.to_vec(),
        value: encode_value(&777).unwrap(),
        expiration_time: get_dht_time() + 10.0,
    };
    let signed = composite.sign_value(&unknown);
    assert!(!signed.windows(11).any(|w| w == b"[signature:"));
    assert!(!composite.validate(&unknown));
}
