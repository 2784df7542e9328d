//! The DHT on hivemind's wire (`WireMode::Hivemind`): nodes on 127.0.0.1 TCP that serve and call
//! `DHTProtocol.rpc_*` with hivemind's protobuf messages, as a hivemind 1.1.12 peer would.
//! (`scripts/interop-hivemind.sh` runs the same against real hivemind nodes.)

use std::time::Duration;

use servicer_dht::hivemind_proto::{
    FindRequest, NodeInfo, PingRequest, ResultType, StoreRequest as ProtoStore,
};
use servicer_dht::{
    DhtConfig, DhtId, DhtNode, DhtValue, HivemindDhtProtocol, Key, encode_value, get_dht_time,
};
use servicer_runtime::{Multiaddr, P2PConfig, WireMode};

fn hivemind_node(initial: Vec<Multiaddr>) -> DhtConfig {
    DhtConfig::default()
        .with_bucket_size(5)
        .with_num_replicas(3)
        // Only failures wait this long; generous for a loaded 2-core machine.
        .with_wait_timeout(Duration::from_secs(30))
        .with_p2p(P2PConfig::default().with_wire_mode(WireMode::Hivemind))
        .with_initial_peers(initial)
}

/// `n` hivemind-wire nodes, each bootstrapping from every earlier one.
async fn swarm(n: usize) -> Vec<DhtNode> {
    let mut nodes: Vec<DhtNode> = Vec::new();
    for _ in 0..n {
        let initial = nodes
            .iter()
            .flat_map(|node| node.p2p().visible_maddrs())
            .collect();
        nodes.push(DhtNode::create(hivemind_node(initial)).await.unwrap());
    }
    nodes
}

/// hivemind's messages name peers by id only: in a chain where each node knows just the one
/// before it, nodes reach the others through Kademlia's peer routing, and every node gets every
/// key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_finds_peers_by_id() {
    let mut nodes: Vec<DhtNode> = Vec::new();
    for _ in 0..6 {
        let initial = nodes
            .last()
            .map(|node| node.p2p().visible_maddrs())
            .unwrap_or_default();
        nodes.push(DhtNode::create(hivemind_node(initial)).await.unwrap());
    }
    let now = get_dht_time();
    for (i, node) in nodes.iter().enumerate() {
        let key = format!("key {i}");
        assert!(
            node.store(key.as_str(), &i, now + 60.0, None)
                .await
                .unwrap()
        );
    }
    for (i, node) in nodes.iter().enumerate() {
        for j in 0..nodes.len() {
            let key = format!("key {j}");
            let found = node.get::<usize>(key.as_str(), true).await.unwrap();
            assert!(
                matches!(found.map(|f| f.value), Some(DhtValue::Regular(v)) if v == j),
                "node {i} did not get {key}"
            );
        }
    }
    // The first node met nodes beyond its only bootstrap peer, by id.
    let connected = nodes[0].p2p().connected_peers().await.unwrap();
    assert!(connected.len() > 1, "{connected:?}");
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_get_on_hivemind_wire() {
    let nodes = swarm(6).await;
    assert!(
        nodes[0]
            .p2p()
            .handler_names()
            .contains(&"DHTProtocol.rpc_find".to_string())
    );
    let now = get_dht_time();
    assert!(
        nodes[0]
            .store("plain", "value", now + 60.0, None)
            .await
            .unwrap()
    );
    for (i, subkey) in ["a", "b", "c"].into_iter().enumerate() {
        let writer = &nodes[1 + i];
        let stored = writer
            .store("dict", &(i as u32), now + 60.0, Some(subkey.into()))
            .await
            .unwrap();
        assert!(stored, "subkey {subkey}");
    }
    for (i, node) in nodes.iter().enumerate() {
        let found = node.get::<String>("plain", true).await.unwrap();
        match found.map(|f| f.value) {
            Some(DhtValue::Regular(v)) => assert_eq!(v, "value", "node {i}"),
            other => panic!("node {i}: {other:?}"),
        }
        let found = node.get::<u32>("dict", true).await.unwrap();
        let Some(DhtValue::Dictionary(entries)) = found.map(|f| f.value) else {
            panic!("node {i}: no dictionary");
        };
        let mut got: Vec<(Vec<u8>, u32)> = entries.into_iter().map(|(k, v)| (k, v.value)).collect();
        got.sort();
        let want: Vec<(Vec<u8>, u32)> = ["a", "b", "c"]
            .into_iter()
            .enumerate()
            .map(|(i, s)| (Key::from(s).to_msgpack(), i as u32))
            .collect();
        assert_eq!(got, want, "node {i}");
    }
    for node in nodes {
        node.shutdown().await;
    }
}

/// The hivemind wire over QUIC: the translating muxer wraps QUIC's own streams too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hivemind_wire_over_quic() {
    let quic = |initial: Vec<Multiaddr>| {
        let config = hivemind_node(initial);
        let p2p = config
            .p2p()
            .clone()
            .with_listen_addrs(["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()]);
        config.with_p2p(p2p)
    };
    let first = DhtNode::create(quic(Vec::new())).await.unwrap();
    let maddrs = first.p2p().visible_maddrs();
    assert!(
        maddrs.iter().all(|m| m.to_string().contains("/quic-v1/")),
        "{maddrs:?}"
    );
    let second = DhtNode::create(quic(maddrs)).await.unwrap();
    let now = get_dht_time();
    assert!(
        second
            .store("over quic", "yes", now + 60.0, None)
            .await
            .unwrap()
    );
    let found = first.get::<String>("over quic", true).await.unwrap();
    assert!(matches!(found.map(|f| f.value), Some(DhtValue::Regular(v)) if v == "yes"));
    for node in [first, second] {
        node.shutdown().await;
    }
}

/// A client with hivemind's own messages, as a Python `DHTProtocol` sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hivemind_messages_against_a_node() {
    let nodes = swarm(2).await;
    let (server, client) = (&nodes[0], &nodes[1]);
    let stub = HivemindDhtProtocol::get_stub(client.p2p(), server.p2p().peer_id())
        .with_deadline(Duration::from_secs(30));
    let me = NodeInfo {
        node_id: client.node_id().to_bytes().to_vec(),
    };

    // A validated ping is answered with `available`: the server could ping us back.
    let pong = stub
        .rpc_ping(PingRequest {
            auth: None,
            peer: Some(me.clone()),
            validate: true,
        })
        .await
        .unwrap();
    assert!(pong.available);
    assert_eq!(
        pong.peer.map(|p| p.node_id),
        Some(server.node_id().to_bytes().to_vec())
    );
    assert!((pong.dht_time - get_dht_time()).abs() < 3.0);

    // A regular value, a subkey, and a whole dictionary (msgpack ext 0x50 with two subkeys).
    let now = get_dht_time();
    let key = |k: &str| DhtId::generate(k).to_bytes().to_vec();
    let mut dictionary = vec![0xc7, 0, 0x50, 0x93, 0xcb];
    dictionary.extend_from_slice(&f64::INFINITY.to_be_bytes());
    dictionary.push(0xcb);
    dictionary.extend_from_slice(&(now + 60.0).to_be_bytes());
    dictionary.push(0x92);
    for (subkey, value) in [(b"\xa1x", 1u8), (b"\xa1y", 2u8)] {
        dictionary.extend_from_slice(&[0x93]);
        dictionary.extend_from_slice(subkey);
        dictionary.extend_from_slice(&[0xc4, 1, value, 0xcb]);
        dictionary.extend_from_slice(&(now + 60.0).to_be_bytes());
    }
    dictionary[1] = (dictionary.len() - 3) as u8;
    let stored = stub
        .rpc_store(ProtoStore {
            auth: None,
            keys: vec![key("k1"), key("k2"), key("k3")],
            subkeys: vec![vec![0xc0], b"\xa3sub".to_vec(), vec![]],
            values: vec![
                encode_value("one").unwrap(),
                encode_value(&2).unwrap(),
                dictionary,
            ],
            expiration_time: vec![now + 60.0; 3],
            in_cache: vec![false; 3],
            peer: Some(me.clone()),
        })
        .await
        .unwrap();
    assert_eq!(stored.store_ok, [true, true, true]);

    let found = stub
        .rpc_find(FindRequest {
            auth: None,
            keys: vec![key("k1"), key("k2"), key("k3"), key("missing")],
            peer: Some(me.clone()),
        })
        .await
        .unwrap();
    let kinds: Vec<ResultType> = found.results.iter().map(|r| r.r#type()).collect();
    assert_eq!(
        kinds,
        [
            ResultType::FoundRegular,
            ResultType::FoundDictionary,
            ResultType::FoundDictionary,
            ResultType::NotFound
        ]
    );
    assert_eq!(found.results[0].value, encode_value("one").unwrap());
    for result in &found.results {
        assert_eq!(result.nearest_node_ids.len(), result.nearest_peer_ids.len());
    }

    // Broken requests get an error answer; the node keeps serving.
    let misaligned = stub
        .rpc_store(ProtoStore {
            keys: vec![key("k4")],
            ..ProtoStore::default()
        })
        .await;
    assert!(misaligned.is_err());
    let bad_id = stub
        .rpc_find(FindRequest {
            keys: vec![vec![1, 2, 3]],
            ..FindRequest::default()
        })
        .await;
    let err = bad_id.unwrap_err().to_string();
    assert!(err.contains("not 20"), "{err}");
    let found = client.get::<String>("k1", true).await.unwrap();
    assert!(matches!(found.map(|f| f.value), Some(DhtValue::Regular(v)) if v == "one"));
    for node in nodes {
        node.shutdown().await;
    }
}
