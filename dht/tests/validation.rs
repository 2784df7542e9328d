//! Record validators on live nodes: signing on store, checking on every store received and every
//! value found, stripping before decoding, and adding validators to a running node.

use std::any::Any;
use std::sync::Arc;

use servicer_dht::messages::{StoreItem, StoreValue};
use servicer_dht::{
    Dht, DhtConfig, DhtId, DhtNode, DhtRecord, DhtValue, RecordValidator, Validators, encode_value,
    get_dht_time,
};

/// Default settings with an RPC deadline fit for a loaded 2-core machine: only failures wait it.
fn patient() -> DhtConfig {
    DhtConfig::default().with_wait_timeout(std::time::Duration::from_secs(30))
}

/// Appends a marker when signing and requires it when validating.
struct Marker;

const MARK: &[u8] = b"[signed]";

impl RecordValidator for Marker {
    fn validate(&self, record: &DhtRecord) -> bool {
        record.value.ends_with(MARK)
    }
    fn sign_value(&self, record: &DhtRecord) -> Vec<u8> {
        [record.value.as_slice(), MARK].concat()
    }
    fn strip_value(&self, record: &DhtRecord) -> Vec<u8> {
        record
            .value
            .strip_suffix(MARK)
            .unwrap_or(&record.value)
            .to_vec()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn with_marker() -> DhtConfig {
    patient().with_record_validators(Validators(vec![Arc::new(Marker)]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_are_signed_checked_and_stripped() {
    let server = DhtNode::create(with_marker()).await.unwrap();
    let client = DhtNode::create(with_marker().with_initial_peers(server.p2p().visible_maddrs()))
        .await
        .unwrap();
    let exp = get_dht_time() + 60.0;
    assert!(client.store("k", &7u32, exp, None).await.unwrap());
    let stored = server
        .protocol()
        .stored_value(&DhtId::generate("k"))
        .unwrap();
    let servicer_dht::StoredValue::Regular(raw) = stored.value else {
        panic!("not regular")
    };
    assert!(raw.ends_with(MARK), "stored signed");
    let got = server.get::<u32>("k", false).await.unwrap().unwrap();
    assert_eq!(got.value, DhtValue::Regular(7));
    let got = client.get::<u32>("k", true).await.unwrap().unwrap();
    assert_eq!(got.value, DhtValue::Regular(7));

    // A raw store without the marker is refused by the remote validator.
    let unsigned = StoreItem {
        key: DhtId::generate("forged"),
        value: StoreValue::Regular(encode_value(&1u32).unwrap()),
        expiration_time: exp,
        in_cache: false,
    };
    let answer = client
        .protocol()
        .call_store(server.p2p().peer_id(), vec![unsigned])
        .await
        .unwrap();
    assert_eq!(answer, vec![false]);
    assert!(
        server
            .protocol()
            .stored_value(&DhtId::generate("forged"))
            .is_none()
    );
    client.shutdown().await;
    server.shutdown().await;
}

#[test]
fn validators_added_to_a_running_dht() {
    let dht = Dht::start(patient()).unwrap();
    let peer = dht.peer_id().unwrap();
    let writer = Dht::start(patient().with_initial_peers(dht.visible_maddrs().unwrap())).unwrap();
    let exp = get_dht_time() + 60.0;
    let raw_store = move |key: &'static str| {
        writer.run(move |node| async move {
            let item = StoreItem {
                key: DhtId::generate(key),
                value: StoreValue::Regular(encode_value(&1u32).unwrap()),
                expiration_time: exp,
                in_cache: false,
            };
            node.protocol().call_store(peer, vec![item]).await
        })
    };
    assert_eq!(raw_store("before").unwrap(), Some(vec![true]));
    dht.add_validators(vec![Arc::new(Marker)]).unwrap();
    assert_eq!(raw_store("after").unwrap(), Some(vec![false]));
    dht.shutdown();
}
