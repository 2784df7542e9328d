//! hivemind's `tests/test_dht.py`, ported: `Dht` handles, each a node on its own thread.

use std::net::TcpListener;
use std::time::Duration;

use servicer_dht::{Dht, DhtConfig, DhtError, DhtValue, Key, get_dht_time};
use servicer_runtime::P2PConfig;

/// Default settings with an RPC deadline fit for a loaded 2-core machine: only failures wait it.
fn patient() -> DhtConfig {
    DhtConfig::default().with_wait_timeout(std::time::Duration::from_secs(30))
}

fn regular<V: Clone>(found: Option<servicer_dht::ValueWithExpiration<DhtValue<V>>>) -> Option<V> {
    match found?.value {
        DhtValue::Regular(v) => Some(v),
        DhtValue::Dictionary(_) => None,
    }
}

#[test]
fn get_store() {
    let first = Dht::start(patient()).unwrap();
    let maddrs = first.visible_maddrs().unwrap();
    let others: Vec<Dht> = (0..9)
        .map(|_| Dht::spawn(patient().with_initial_peers(maddrs.clone())).unwrap())
        .collect();
    for dht in &others {
        dht.wait_until_ready(Some(Duration::from_secs(30))).unwrap();
    }
    let (node1, node2) = (&first, &others[0]);
    let now = get_dht_time();
    assert!(node1.store("key1", "value1", now + 30.0, None).unwrap());
    assert_eq!(
        regular(node1.get::<String>("key1", false).unwrap()).unwrap(),
        "value1"
    );
    assert_eq!(
        regular(node2.get::<String>("key1", false).unwrap()).unwrap(),
        "value1"
    );
    assert!(node2.get::<String>("key2", false).unwrap().is_none());

    assert!(node2.store("key1", &123, now + 31.0, None).unwrap());
    assert!(node2.store("key2", &456, now + 32.0, None).unwrap());
    assert_eq!(regular(node1.get::<i32>("key1", true).unwrap()), Some(123));
    assert_eq!(regular(node1.get::<i32>("key2", false).unwrap()), Some(456));

    // A subkey with a later expiration replaces the regular value.
    assert!(
        node1
            .store("key2", &789, now + 32.5, Some("subkey1".into()))
            .unwrap()
    );
    assert!(
        node2
            .store("key2", "pew", now + 32.5, Some("subkey2".into()))
            .unwrap()
    );
    let got = node1.get::<rmpv_like::Any>("key2", true).unwrap().unwrap();
    let DhtValue::Dictionary(dict) = got.value else {
        panic!("expected a dictionary")
    };
    assert_eq!(dict.len(), 2);
    assert_eq!(
        dict[&Key::from("subkey1").to_msgpack()].value,
        rmpv_like::Any::Int(789)
    );
    assert_eq!(
        dict[&Key::from("subkey2").to_msgpack()].value,
        rmpv_like::Any::Str("pew".into())
    );

    for dht in others {
        dht.shutdown();
    }
    first.shutdown();
}

/// A value that may be an integer or a string, as Python's values may.
mod rmpv_like {
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(untagged)]
    pub enum Any {
        Int(i64),
        Str(String),
    }
}

#[test]
fn run_closures_against_the_node() {
    let dht = Dht::start(patient()).unwrap();
    assert_eq!(dht.run(|_node| async { "pew" }).unwrap(), "pew");
    let failing: Result<(), String> = dht.run(|_node| async { Err("boom".to_string()) }).unwrap();
    assert_eq!(failing.unwrap_err(), "boom");
    // State lives in the node, visible to later calls.
    let node_id = dht.run(|node| async move { node.node_id() }).unwrap();
    assert_eq!(
        dht.run(|node| async move { node.node_id() }).unwrap(),
        node_id
    );
    dht.shutdown();
}

#[test]
fn visible_maddrs() {
    let dht = Dht::start(patient()).unwrap();
    assert!(
        dht.visible_maddrs()
            .unwrap()
            .iter()
            .any(|m| m.to_string().starts_with("/ip4/127.0.0.1"))
    );
    dht.shutdown();
    let announced: servicer_runtime::Multiaddr = "/ip4/123.45.67.89/tcp/31337".parse().unwrap();
    let dht = Dht::start(
        patient().with_p2p(P2PConfig::default().with_announce_addrs([announced.clone()])),
    )
    .unwrap();
    let peer = dht.peer_id().unwrap();
    assert_eq!(
        dht.visible_maddrs().unwrap(),
        vec![announced.with_p2p(peer).unwrap()]
    );
    dht.shutdown();
}

#[test]
fn startup_errors() {
    // A port where something listens but never speaks: the bootstrap cannot succeed.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let peer = servicer_runtime::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let addr: servicer_runtime::Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}")
        .parse()
        .unwrap();
    let config = || {
        patient()
            .with_initial_peers([addr.clone()])
            .with_wait_timeout(Duration::from_secs(1))
            .with_p2p(P2PConfig::default().with_connect_timeout(Duration::from_secs(1)))
    };
    let err = Dht::start(config()).unwrap_err();
    assert!(err.to_string().contains("bootstrap failed"), "{err}");
    let slow = Dht::spawn(config()).unwrap();
    assert!(matches!(
        slow.wait_until_ready(Some(Duration::from_millis(10))),
        Err(DhtError::Stopped(msg)) if msg.contains("not ready")
    ));
    slow.shutdown();
}
