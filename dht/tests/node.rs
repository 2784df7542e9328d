//! hivemind's `tests/test_dht_node.py`, ported: a real swarm of nodes on loopback.

use std::collections::HashSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use servicer_dht::{
    DhtConfig, DhtError, DhtId, DhtNode, DhtValue, Key, StoreRequestItem, ValueWithExpiration,
    encode_value, get_dht_time,
};
use servicer_runtime::{Multiaddr, P2P, P2PConfig, PeerId, WireMode};

/// Default settings with an RPC deadline fit for a loaded 2-core machine: only failures wait it.
fn patient() -> DhtConfig {
    DhtConfig::default().with_wait_timeout(std::time::Duration::from_secs(30))
}

fn node_config(initial: Vec<Multiaddr>) -> DhtConfig {
    patient()
        .with_bucket_size(5)
        .with_num_replicas(3)
        .with_parallel_rpc(Some(10))
        // Only failures wait this long; generous for a loaded 2-core machine.
        .with_wait_timeout(Duration::from_secs(30))
        .with_initial_peers(initial)
}

/// `n` nodes, each bootstrapping from up to five random earlier ones.
async fn swarm(n: usize, rng: &mut StdRng) -> Vec<DhtNode> {
    let mut nodes: Vec<DhtNode> = Vec::new();
    for _ in 0..n {
        let initial: Vec<Multiaddr> = nodes
            .choose_multiple(rng, 5)
            .flat_map(|node| node.p2p().visible_maddrs())
            .collect();
        nodes.push(DhtNode::create(node_config(initial)).await.unwrap());
    }
    nodes
}

fn maddrs(nodes: &[DhtNode], rng: &mut StdRng, k: usize) -> Vec<Multiaddr> {
    nodes
        .choose_multiple(rng, k)
        .flat_map(|n| n.p2p().visible_maddrs())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dht_node() {
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let nodes = swarm(20, &mut rng).await;
    let me = DhtNode::create(node_config(maddrs(&nodes, &mut rng, 5)).with_cache_nearest(1))
        .await
        .unwrap();
    // 1. Find self.
    let own = me.node_id();
    let nearest = me.find_nearest_nodes(&[own], Some(1), false).await;
    assert_eq!(nearest[&own], vec![(own, me.p2p().peer_id())]);

    // 2. Find others.
    for _ in 0..10 {
        let node = nodes.choose(&mut rng).unwrap();
        let query = node.node_id();
        let nearest = me.find_nearest_nodes(&[query], Some(1), false).await;
        assert_eq!(
            nearest[&query],
            vec![(query, node.p2p().peer_id())],
            "seed {seed}"
        );
    }

    // 3. Neighbours of random ids, against brute force over the swarm (as in hivemind, the
    // reference leaves `me` out, so finding `me` counts as a miss).
    let (mut top1, mut overlap, mut total) = (0usize, 0usize, 0usize);
    let swarm_ids: Vec<DhtId> = nodes.iter().map(|n| n.node_id()).collect();
    for _ in 0..20 {
        let query = DhtId::random();
        let k = rng.gen_range(1..=10);
        let exclude_self = rng.r#gen::<bool>();
        let found: Vec<DhtId> = me.find_nearest_nodes(&[query], Some(k), exclude_self).await
            [&query]
            .iter()
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(found.len(), k, "seed {seed}");
        assert!(!exclude_self || !found.contains(&own));
        let mut sorted = found.clone();
        sorted.sort_by_key(|id| id.xor_distance(&query));
        assert_eq!(found, sorted, "nearest first");
        let mut reference = swarm_ids.clone();
        reference.sort_by_key(|id| id.xor_distance(&query));
        reference.truncate(k);
        top1 += usize::from(found.first() == reference.first());
        let found: HashSet<_> = found.into_iter().collect();
        overlap += reference.iter().filter(|id| found.contains(id)).count();
        total += k;
    }
    let accuracy = top1 as f64 / 20.0;
    let jaccard = overlap as f64 / total as f64;
    println!("top-1 accuracy {accuracy}, overlap {jaccard} (seed {seed})");
    assert!(accuracy >= 0.8 && jaccard >= 0.9, "seed {seed}");

    // 4. Find all nodes.
    let dummy = DhtId::random();
    let everyone = me
        .find_nearest_nodes(&[dummy], Some(nodes.len() + 100), false)
        .await;
    assert_eq!(everyone[&dummy].len(), nodes.len() + 1);

    // 5. A node without peers knows only itself.
    let detached = DhtNode::create(patient()).await.unwrap();
    let alone = detached.find_nearest_nodes(&[dummy], None, false).await;
    assert_eq!(
        alone[&dummy],
        vec![(detached.node_id(), detached.p2p().peer_id())]
    );
    assert!(detached.find_nearest_nodes(&[dummy], None, true).await[&dummy].is_empty());

    // 6. Store and get a value from another node.
    let true_time = get_dht_time() + 1200.0;
    assert!(
        me.store("mykey", &("Value", 10), true_time, None)
            .await
            .unwrap()
    );
    let that_guy =
        DhtNode::create(node_config(maddrs(&nodes, &mut rng, 3)).with_cache_locally(false))
            .await
            .unwrap();
    for node in [&me, &that_guy] {
        let got = node
            .get::<(String, i32)>("mykey", false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            ValueWithExpiration::new(DhtValue::Regular(("Value".into(), 10)), true_time)
        );
    }

    // 7. Bulk store and bulk get.
    let exp = get_dht_time() + 999.0;
    let items: Vec<(&str, Vec<u8>)> = vec![
        ("foo", encode_value(&3).unwrap()),
        ("bar", encode_value(&2).unwrap()),
        ("baz", encode_value("batman").unwrap()),
        ("zzz", encode_value(&[1, 2, 3]).unwrap()),
    ];
    let requests = items
        .iter()
        .map(|(key, value)| StoreRequestItem {
            key: Key::from(*key),
            subkey: None,
            value: value.clone(),
            expiration_time: exp,
        })
        .collect();
    assert!(
        me.store_many(requests, false)
            .await
            .into_iter()
            .all(|ok| ok)
    );
    for node in [&me, &that_guy] {
        let ids: Vec<DhtId> = items.iter().map(|(k, _)| DhtId::generate(*k)).collect();
        let found = node.get_many_by_id(&ids, None).await;
        for ((_, value), id) in items.iter().zip(&ids) {
            let got = found[id].as_ref().expect("bulk value found");
            assert_eq!(got.value, servicer_dht::StoredValue::Regular(value.clone()));
        }
    }

    // 8. Dictionaries with subkeys.
    let now = get_dht_time();
    let sub = |s: &str| Key::from(s).to_msgpack();
    assert!(
        me.store("ololo", &123, now + 10.0, Some("k1".into()))
            .await
            .unwrap()
    );
    assert!(
        me.store("ololo", &456, now + 20.0, Some("k2".into()))
            .await
            .unwrap()
    );
    for node in [&that_guy, &me] {
        let got = node.get::<i32>("ololo", false).await.unwrap().unwrap();
        assert_eq!(got.expiration_time, now + 20.0);
        let DhtValue::Dictionary(dict) = got.value else {
            panic!("not a dictionary")
        };
        assert_eq!(dict[&sub("k1")], ValueWithExpiration::new(123, now + 10.0));
        assert_eq!(dict[&sub("k2")], ValueWithExpiration::new(456, now + 20.0));
        assert_eq!(dict.len(), 2);
    }
    assert!(
        !me.store("ololo", &345, now + 10.0, Some("k2".into()))
            .await
            .unwrap()
    );
    assert!(
        me.store("ololo", &567, now + 30.0, Some("k2".into()))
            .await
            .unwrap()
    );
    assert!(
        me.store("ololo", &890, now + 50.0, Some("k3".into()))
            .await
            .unwrap()
    );
    for node in [&that_guy, &me] {
        let got = node.get::<i32>("ololo", true).await.unwrap().unwrap();
        assert_eq!(got.expiration_time, now + 50.0);
        let DhtValue::Dictionary(dict) = got.value else {
            panic!("not a dictionary")
        };
        assert_eq!(dict[&sub("k1")], ValueWithExpiration::new(123, now + 10.0));
        assert_eq!(dict[&sub("k2")], ValueWithExpiration::new(567, now + 30.0));
        assert_eq!(dict[&sub("k3")], ValueWithExpiration::new(890, now + 50.0));
        assert_eq!(dict.len(), 3);
    }

    that_guy.shutdown().await;
    me.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn bootstrap_failure_names_each_peer_and_why() {
    // A closed port: a node that has shut down.
    let ghost = DhtNode::create(patient()).await.unwrap();
    let closed = ghost.p2p().visible_maddrs()[0].clone();
    let closed_id = ghost.p2p().peer_id();
    ghost.shutdown().await;
    // A live node dialled with the wrong peer id.
    let live = DhtNode::create(patient()).await.unwrap();
    let impostor = PeerId::random();
    let live_addr = live.p2p().visible_maddrs()[0].to_string();
    let (transport, _) = live_addr.rsplit_once("/p2p/").unwrap();
    let wrong_id: Multiaddr = format!("{transport}/p2p/{impostor}").parse().unwrap();
    // A DHT node on hivemind's wire, and a node that serves no DHT at all.
    let other_wire = DhtNode::create(
        patient().with_p2p(P2PConfig::default().with_wire_mode(WireMode::Hivemind)),
    )
    .await
    .unwrap();
    let no_dht = P2P::create(P2PConfig::default()).await.unwrap();
    let initial = vec![
        closed.clone(),
        wrong_id,
        other_wire.p2p().visible_maddrs()[0].clone(),
        no_dht.visible_maddrs()[0].clone(),
    ];

    let err = DhtNode::create(patient().with_initial_peers(initial.clone()))
        .await
        .unwrap_err();
    let DhtError::Bootstrap { failures } = &err else {
        panic!("not a bootstrap failure: {err}");
    };
    let reason = |peer: PeerId| {
        failures
            .iter()
            .find(|failure| failure.peer == peer)
            .map(|failure| failure.reason.clone())
            .unwrap_or_else(|| panic!("{peer} not named in {err}"))
    };
    assert_eq!(failures.len(), 4, "{err}");
    assert!(reason(closed_id).contains("refused"), "{err}");
    assert!(reason(impostor).contains("wrong peer id"), "{err}");
    assert!(
        reason(other_wire.p2p().peer_id()).contains("wrong wire"),
        "{err}"
    );
    assert!(
        reason(no_dht.peer_id()).contains("protocol not supported"),
        "{err}"
    );

    let lenient = DhtNode::create(
        patient()
            .with_initial_peers(initial)
            .with_ensure_bootstrap_success(false),
    )
    .await
    .unwrap();
    lenient.shutdown().await;

    // And from the other side: a node on hivemind's wire bootstrapping from a native one.
    let err = DhtNode::create(
        patient()
            .with_p2p(P2PConfig::default().with_wire_mode(WireMode::Hivemind))
            .with_initial_peers(live.p2p().visible_maddrs()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("wrong wire"), "{err}");
    assert!(err.to_string().contains("--wire native"), "{err}");
    live.shutdown().await;
    other_wire.shutdown().await;
    no_dht.shutdown().await;
}
