//! A node with a data dir (`DhtConfig::with_data_dir`) keeps its identity, records and routing
//! table across a restart; over real libp2p connections on loopback.

use std::path::Path;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use servicer_dht::{DhtConfig, DhtId, DhtNode, DhtValue, Key, StoredValue, get_dht_time};

/// The database's file and its table of records (see dht/src/node/persist.rs).
const DB_FILE: &str = "dht.redb";
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");

/// Default settings with an RPC deadline fit for a loaded 2-core machine: only failures wait it.
fn patient() -> DhtConfig {
    DhtConfig::default().with_wait_timeout(Duration::from_secs(30))
}

/// Waits until `done` holds, polling; fails after a deadline generous for a loaded machine.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn id(key: &str) -> DhtId {
    DhtId::generate(Key::from(key))
}

/// The key ids with a record in the database of the data dir `dir` (the node is shut down).
fn saved_keys(dir: &Path) -> Vec<DhtId> {
    let db = Database::create(dir.join(DB_FILE)).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(RECORDS).unwrap();
    table
        .iter()
        .unwrap()
        .map(|entry| DhtId::from_slice(entry.unwrap().0.value()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_identity_records_and_peers() {
    let dir = tempfile::tempdir().unwrap();
    // The old peer stores on the node but keeps nothing itself, so only the node can serve it.
    let old_peer = DhtNode::create(patient().with_cache_on_store(false))
        .await
        .unwrap();
    let node = DhtNode::create(
        patient()
            .with_data_dir(dir.path())
            .with_initial_peers(old_peer.p2p().visible_maddrs()),
    )
    .await
    .unwrap();
    let (peer_id, node_id) = (node.p2p().peer_id(), node.node_id());
    let expiration = get_dht_time() + 600.0;
    let items = vec![
        servicer_dht::StoreRequestItem {
            key: Key::from("regular"),
            subkey: None,
            value: servicer_dht::encode_value(&"a value").unwrap(),
            expiration_time: expiration,
        },
        servicer_dht::StoreRequestItem {
            key: Key::from("dictionary"),
            subkey: Some(Key::from("first")),
            value: servicer_dht::encode_value(&1u32).unwrap(),
            expiration_time: expiration,
        },
        servicer_dht::StoreRequestItem {
            key: Key::from("dictionary"),
            subkey: Some(Key::from("second")),
            value: servicer_dht::encode_value(&2u32).unwrap(),
            expiration_time: expiration - 1.0,
        },
    ];
    let stored = old_peer.store_many(items, true).await;
    assert_eq!(stored, vec![true, true, true]);
    assert!(old_peer.protocol().stored_value(&id("regular")).is_none());
    eventually("the node stores both keys", || {
        node.protocol().stored_value(&id("regular")).is_some()
            && match node.protocol().stored_value(&id("dictionary")) {
                Some(stored) => match stored.value {
                    StoredValue::Dictionary(mut dict) => dict.len() == 2,
                    StoredValue::Regular(_) => false,
                },
                None => false,
            }
    })
    .await;
    node.shutdown().await;

    // No initial peers: the node comes back from its data dir alone.
    let node = DhtNode::create(patient().with_data_dir(dir.path()))
        .await
        .unwrap();
    assert_eq!(node.p2p().peer_id(), peer_id);
    assert_eq!(node.node_id(), node_id);
    assert!(node.protocol().stored_value(&id("regular")).is_some());
    eventually("the old peer is back in the routing table", || {
        node.protocol().knows_node(&old_peer.node_id())
    })
    .await;

    let client = DhtNode::create(
        patient()
            .with_client_mode(true)
            .with_initial_peers(node.p2p().visible_maddrs()),
    )
    .await
    .unwrap();
    let got = client
        .get::<String>("regular", true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.value, DhtValue::Regular("a value".to_string()));
    assert_eq!(got.expiration_time, expiration);
    let got = client
        .get::<u32>("dictionary", true)
        .await
        .unwrap()
        .unwrap();
    let DhtValue::Dictionary(dict) = got.value else {
        panic!("not a dictionary: {got:?}")
    };
    assert_eq!(dict.len(), 2);
    assert_eq!(dict[&Key::from("first").to_msgpack()].value, 1);
    assert_eq!(
        dict[&Key::from("second").to_msgpack()].expiration_time,
        expiration - 1.0
    );

    client.shutdown().await;
    node.shutdown().await;
    old_peer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_records_are_not_loaded_and_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let node = DhtNode::create(patient().with_data_dir(dir.path()))
        .await
        .unwrap();
    let short = get_dht_time() + 2.0;
    assert!(node.store("short", &1u32, short, None).await.unwrap());
    assert!(
        node.store("long", &2u32, get_dht_time() + 600.0, None)
            .await
            .unwrap()
    );
    node.flush().await.unwrap();
    node.shutdown().await;
    let mut saved = saved_keys(dir.path());
    saved.sort();
    let mut both = vec![id("short"), id("long")];
    both.sort();
    assert_eq!(saved, both);

    while get_dht_time() <= short + 0.5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let node = DhtNode::create(patient().with_data_dir(dir.path()))
        .await
        .unwrap();
    assert!(node.protocol().stored_value(&id("short")).is_none());
    assert!(node.protocol().stored_value(&id("long")).is_some());
    node.shutdown().await;
    assert_eq!(saved_keys(dir.path()), vec![id("long")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_data_dir_nothing_is_written() {
    let cwd = std::env::current_dir().unwrap();
    let before: Vec<_> = std::fs::read_dir(&cwd).unwrap().collect();
    let node = DhtNode::create(patient()).await.unwrap();
    assert!(node.config().data_dir().is_none());
    assert!(
        node.store("key", &1u32, get_dht_time() + 600.0, None)
            .await
            .unwrap()
    );
    node.flush().await.unwrap();
    node.shutdown().await;
    let after: Vec<_> = std::fs::read_dir(&cwd).unwrap().collect();
    assert_eq!(before.len(), after.len());
    for name in [DB_FILE, "identity.key"] {
        assert!(!cwd.join(name).exists(), "{name} in {}", cwd.display());
    }

    // The same with a data dir writes there, and only there.
    let dir = tempfile::tempdir().unwrap();
    let node = DhtNode::create(patient().with_data_dir(dir.path().join("node")))
        .await
        .unwrap();
    node.shutdown().await;
    assert!(dir.path().join("node").join(DB_FILE).exists());
    assert!(dir.path().join("node").join("identity.key").exists());
    assert!(!cwd.join(DB_FILE).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let node = DhtNode::create(patient().with_data_dir(dir.path()))
        .await
        .unwrap();
    assert!(
        node.store("good", &1u32, get_dht_time() + 600.0, None)
            .await
            .unwrap()
    );
    node.shutdown().await;
    {
        let db = Database::create(dir.path().join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(RECORDS).unwrap();
            table
                .insert(id("corrupt").as_bytes().as_slice(), [0xffu8; 7].as_slice())
                .unwrap();
            table
                .insert(b"not a key".as_slice(), b"nor a record".as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let node = DhtNode::create(patient().with_data_dir(dir.path()))
        .await
        .unwrap();
    assert!(node.protocol().stored_value(&id("corrupt")).is_none());
    let got = node.get::<u32>("good", true).await.unwrap().unwrap();
    assert_eq!(got.value, DhtValue::Regular(1));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unopenable_data_dir_fails_create() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a file");
    std::fs::write(&file, b"not a folder").unwrap();
    let err = DhtNode::create(patient().with_data_dir(&file))
        .await
        .unwrap_err();
    assert!(
        matches!(err, servicer_dht::DhtError::Persistence { .. }),
        "{err}"
    );
}
