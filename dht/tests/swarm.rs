//! More of hivemind's `tests/test_dht_node.py` on star-shaped swarms: replica counts, the
//! key/subkey/value edge cases, and the blacklist.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use servicer_dht::{DhtConfig, DhtId, DhtNode, Key, StoredValue, get_dht_time};

/// Default settings with an RPC deadline fit for a loaded 2-core machine: only failures wait it.
fn patient() -> DhtConfig {
    DhtConfig::default().with_wait_timeout(std::time::Duration::from_secs(30))
}

/// RPC deadline for swarm tests: only failures wait for it, and a loaded 2-core CI machine
/// starting many nodes at once can be slow to answer.
const PATIENT: Duration = Duration::from_secs(30);

/// Node 0, then `n - 1` nodes that all bootstrap from it (all at once).
async fn star(n: usize, config: impl Fn() -> DhtConfig) -> Vec<DhtNode> {
    let config = || config().with_wait_timeout(PATIENT);
    let first = DhtNode::create(config()).await.unwrap();
    let maddrs = first.p2p().visible_maddrs();
    let mut nodes = vec![first];
    let rest = (1..n).map(|_| DhtNode::create(config().with_initial_peers(maddrs.clone())));
    for node in futures::future::join_all(rest).await {
        nodes.push(node.unwrap());
    }
    nodes
}

async fn shutdown(nodes: Vec<DhtNode>) {
    for node in nodes {
        node.shutdown().await;
    }
}

fn stored_total(nodes: &[DhtNode]) -> usize {
    nodes.iter().map(|n| n.stats().stored_keys).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_exactly_num_replicas() {
    let seed: u64 = rand::random();
    let num_replicas = StdRng::seed_from_u64(seed).gen_range(1..=20);
    println!("seed {seed}: num_replicas {num_replicas}");
    let nodes = star(20, || {
        patient()
            .with_num_replicas(num_replicas)
            .with_cache_on_store(false)
    })
    .await;
    // Everyone knows everyone before counting: a node met later would receive replicas of the
    // keys it is near (hivemind's replication rule), which this test is not about.
    for a in &nodes {
        for b in &nodes {
            if a.node_id() != b.node_id() {
                a.protocol()
                    .call_ping(b.p2p().peer_id(), false, true)
                    .await
                    .unwrap();
            }
        }
    }
    let exp = get_dht_time() + 60.0;
    assert!(nodes[0].store("key1", "foo", exp, None).await.unwrap());
    assert_eq!(stored_total(&nodes), num_replicas, "seed {seed}");
    assert!(nodes[1].store("key2", "bar", exp, None).await.unwrap());
    assert_eq!(stored_total(&nodes), 2 * num_replicas, "seed {seed}");
    let holders = |nodes: &[DhtNode]| -> Vec<usize> {
        let key2 = DhtId::generate("key2");
        (0..nodes.len())
            .filter(|i| nodes[*i].protocol().stored_value(&key2).is_some())
            .collect()
    };
    let before = holders(&nodes);
    assert!(
        nodes[2]
            .store("key2", "baz", exp + 1.0, None)
            .await
            .unwrap()
    );
    assert_eq!(
        stored_total(&nodes),
        2 * num_replicas,
        "seed {seed}: key2 on {before:?}, then on {:?}; banned {:?}",
        holders(&nodes),
        nodes[2].banned_peers()
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_case_keys_subkeys_and_values() {
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let nodes = star(4, || patient().with_parallel_rpc(Some(4))).await;
    let subkeys: Vec<Key> = vec![
        0.into(),
        "".into(),
        false.into(),
        true.into(),
        "abyrvalg".into(),
        4555.into(),
    ];
    let mut keys = subkeys.clone();
    keys.push(Key::Tuple(vec![])); // Python's ()
    let mut values: Vec<Vec<u8>> = subkeys.iter().map(Key::to_msgpack).collect();
    values.push(vec![0x90]); // Python's []
    for key in &keys {
        for subkey in &subkeys {
            for value in &values {
                let writer = nodes.choose(&mut rng).unwrap();
                let exp = get_dht_time() + 999.0;
                assert!(
                    writer
                        .store_encoded(key.clone(), value.clone(), exp, Some(subkey.clone()))
                        .await
                        .unwrap(),
                    "seed {seed}: store {key:?}/{subkey:?}"
                );
                let reader = nodes.choose(&mut rng).unwrap();
                let id = DhtId::generate(key.clone());
                let found = reader.get_many_by_id(&[id], Some(f64::INFINITY)).await;
                let Some(Some(found)) = found.get(&id) else {
                    panic!("seed {seed}: {key:?} not found")
                };
                let StoredValue::Dictionary(mut dict) = found.value.clone() else {
                    panic!("seed {seed}: {key:?} is not a dictionary")
                };
                assert_eq!(
                    dict.get(&subkey.to_msgpack()).map(|v| v.value.clone()),
                    Some(value.clone()),
                    "seed {seed}: {key:?}/{subkey:?}"
                );
            }
        }
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blacklist_after_two_peers_shut_down() {
    let mut nodes = star(4, || {
        patient().with_blacklist_time(Duration::from_secs(999))
    })
    .await;
    for node in &nodes {
        node.find_nearest_nodes(&[node.node_id()], None, false)
            .await;
    }
    let (node1, node2) = (nodes[0].clone(), nodes[1].clone());
    let exp = get_dht_time() + 60.0;
    assert!(node2.store("abc", &123, exp, None).await.unwrap());
    assert!(node2.banned_peers().is_empty());
    let node4 = nodes.pop().unwrap();
    let node3 = nodes.pop().unwrap();
    let (peer3, peer4) = (node3.p2p().peer_id(), node4.p2p().peer_id());
    node3.shutdown().await;
    node4.shutdown().await;
    assert!(node2.store("def", &456, exp, None).await.unwrap());
    let banned = node2.banned_peers();
    assert!(
        banned.contains(&peer3) && banned.contains(&peer4),
        "{banned:?}"
    );
    assert!(node1.get::<i32>("abc", true).await.unwrap().is_some());
    assert!(node1.banned_peers().contains(&peer3));
    assert!(node1.get::<i32>("abc", true).await.unwrap().is_some());
    assert!(!node1.banned_peers().contains(&node2.p2p().peer_id()));
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_of_a_key_share_one_search() {
    use servicer_dht::messages::{FindRequest, FindResponse};
    use servicer_runtime::{Handler, Native, P2P, P2PConfig, RpcContext};
    use std::sync::{Arc, Mutex};

    // A peer that records which keys it is asked for and answers only after a while, so that
    // the gets stay in flight while the test looks at them.
    let asked: Arc<Mutex<Vec<DhtId>>> = Arc::default();
    let slow = P2P::create(P2PConfig::default()).await.unwrap();
    let log = asked.clone();
    slow.add_handlers(
        [(
            "DHTProtocol.rpc_find".into(),
            Handler::<Native>::unary(move |request: FindRequest, _ctx: RpcContext| {
                log.lock().unwrap().extend(request.keys.iter().copied());
                async move {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Err::<FindResponse, _>("no answer")
                }
            }),
        )],
        None,
    )
    .unwrap();
    let node = DhtNode::create(patient().with_wait_timeout(Duration::from_secs(10)))
        .await
        .unwrap();
    node.p2p()
        .add_addresses([(slow.peer_id(), slow.visible_maddrs())])
        .await
        .unwrap();
    servicer_dht::testing::update_routing_table(
        node.protocol(),
        Some(DhtId::random()),
        slow.peer_id(),
        true,
    );

    let (k1, k2, k3) = (
        DhtId::generate("k1"),
        DhtId::generate("k2"),
        DhtId::generate("k3"),
    );
    let wait = |what: &'static str, cond: Box<dyn Fn() -> bool + Send>| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let first = tokio::spawn({
        let node = node.clone();
        async move { node.get_many_by_id(&[k1, k2], None).await }
    });
    let n = node.clone();
    wait(
        "first get registered",
        Box::new(move || n.pending_gets(&k1) == 1 && n.pending_gets(&k2) == 1),
    )
    .await;
    let second = tokio::spawn({
        let node = node.clone();
        async move { node.get_many_by_id(&[k2, k3], None).await }
    });
    let n = node.clone();
    wait(
        "second get registered",
        Box::new(move || n.pending_gets(&k2) == 2 && n.pending_gets(&k3) == 1),
    )
    .await;
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(first[&k2], second[&k2]);
    assert!(second[&k3].is_none());
    // k2 was searched for once, by the first get; the second only asked about k3.
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.iter().filter(|k| **k == k2).count(), 1, "{asked:?}");
    assert_eq!(asked.iter().filter(|k| **k == k3).count(), 1, "{asked:?}");
    for key in [k1, k2, k3] {
        assert_eq!(node.pending_gets(&key), 0);
    }
    node.shutdown().await;
    slow.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caching_and_cache_refresh() {
    let config = || {
        patient()
            .with_cache_refresh_before_expiry(Some(Duration::from_secs(3)))
            .with_reuse_get_requests(false)
    };
    let node2 = DhtNode::create(config()).await.unwrap();
    let node1 = DhtNode::create(
        config()
            .with_initial_peers(node2.p2p().visible_maddrs())
            .with_client_mode(true),
    )
    .await
    .unwrap();
    let now = get_dht_time();
    let ids: Vec<DhtId> = ["k", "k2", "k3", "k4"]
        .into_iter()
        .map(DhtId::generate)
        .collect();
    assert!(node2.store("k", &1, now + 60.0, None).await.unwrap());
    assert!(node2.store("k2", &2, now + 60.0, None).await.unwrap());
    assert!(node2.store("k3", &3, now + 90.0, None).await.unwrap());

    // Found remotely: cached, but nothing to refresh yet.
    node1.get_many_by_id(&ids, None).await;
    assert_eq!(node1.stats().cached_keys, 3);
    assert_eq!(node1.cache_refresh_queue_len(), 0);
    // Served from the cache: those keys are queued for a refresh before they expire.
    node1.get_many_by_id(&ids, None).await;
    assert_eq!(node1.cache_refresh_queue_len(), 3);

    // A value about to expire is refreshed from the network and the newer one is cached.
    let soon = get_dht_time() + 4.0;
    assert!(node2.store("fresh", &10, soon, None).await.unwrap());
    node1.get::<i32>("fresh", false).await.unwrap();
    node1.get::<i32>("fresh", false).await.unwrap();
    let later = get_dht_time() + 600.0;
    assert!(node2.store("fresh", &11, later, None).await.unwrap());
    let fresh = DhtId::generate("fresh");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let cached = node1
            .protocol()
            .cached_value(&fresh)
            .map(|v| v.expiration_time);
        if cached == Some(later) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not refreshed: {cached:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node1.shutdown().await;
    node2.shutdown().await;
}

/// hivemind's `_update_cache_on_store`: a subkey stored into a cached dictionary goes into the
/// cache and the dictionary is refreshed, bringing in subkeys other peers added meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_on_store_refreshes_a_cached_dictionary() {
    let server = DhtNode::create(patient()).await.unwrap();
    let peers = server.p2p().visible_maddrs();
    let client = |_| {
        DhtNode::create(
            patient()
                .with_initial_peers(peers.clone())
                .with_client_mode(true),
        )
    };
    let (me, other) = (client(0).await.unwrap(), client(1).await.unwrap());
    let now = get_dht_time();
    let sub = |s: &str| Some(Key::from(s));
    assert!(server.store("d", &1, now + 60.0, sub("s1")).await.unwrap());
    // Found on the server: cached here.
    me.get::<i32>("d", true).await.unwrap().unwrap();
    let id = DhtId::generate("d");
    let cached_subkeys = |node: &DhtNode| match node.protocol().cached_value(&id) {
        Some(v) => match &v.value {
            StoredValue::Dictionary(d) => {
                let mut d = d.clone();
                let mut subkeys: Vec<Vec<u8>> = d.items().map(|(s, _)| s.clone()).collect();
                subkeys.sort();
                subkeys
            }
            StoredValue::Regular(_) => Vec::new(),
        },
        None => Vec::new(),
    };
    assert_eq!(cached_subkeys(&me).len(), 1);
    // Another peer adds s2; this node then stores s3.
    assert!(other.store("d", &2, now + 200.0, sub("s2")).await.unwrap());
    assert!(me.store("d", &3, now + 100.0, sub("s3")).await.unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let subkeys = cached_subkeys(&me);
        if subkeys.len() == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cache not refreshed: {subkeys:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for node in [me, other, server] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_table_refresh_runs_periodically() {
    // Stale buckets are looked up on every refresh, where hivemind's task dies
    // (docs/hivemind-compat.md#q6). A spy peer in the table counts the lookups it receives.
    use servicer_dht::messages::{FindRequest, FindResponse, FindResult, FoundValue, NodeInfo};
    use servicer_runtime::{Handler, Native, P2P, P2PConfig, RpcContext};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let finds = Arc::new(AtomicUsize::new(0));
    let spy = P2P::create(P2PConfig::default()).await.unwrap();
    let spy_id = DhtId::random();
    let counter = finds.clone();
    spy.add_handlers(
        [(
            "DHTProtocol.rpc_find".into(),
            Handler::<Native>::unary(move |request: FindRequest, _ctx: RpcContext| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    Ok::<_, String>(FindResponse {
                        peer: NodeInfo {
                            node_id: Some(spy_id),
                            addrs: servicer_dht::messages::AddrList::default(),
                        },
                        results: request
                            .keys
                            .iter()
                            .map(|_| FindResult {
                                value: FoundValue::NotFound,
                                nearest: vec![],
                            })
                            .collect(),
                    })
                }
            }),
        )],
        None,
    )
    .unwrap();
    let node = DhtNode::create(patient().with_refresh_timeout(Some(Duration::from_millis(200))))
        .await
        .unwrap();
    node.p2p()
        .add_addresses([(spy.peer_id(), spy.visible_maddrs())])
        .await
        .unwrap();
    servicer_dht::testing::update_routing_table(node.protocol(), Some(spy_id), spy.peer_id(), true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while finds.load(Ordering::SeqCst) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "refresh did not run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.shutdown().await;
    spy.shutdown().await;
}
