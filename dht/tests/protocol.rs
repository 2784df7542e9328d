//! hivemind's `tests/test_dht_protocol.py`, ported: the three RPCs between real nodes.

use std::time::Duration;

use servicer_dht::messages::{DictEntry, StoreItem, StoreValue};
use servicer_dht::{
    DhtId, DhtProtocol, FindOutcome, ProtocolConfig, StoredValue, ValueWithExpiration, get_dht_time,
};
use servicer_runtime::{P2P, P2PConfig, PeerId};

fn config(client_mode: bool) -> ProtocolConfig {
    ProtocolConfig::default()
        .with_bucket_size(20)
        .with_depth_modulo(5)
        .with_num_replicas(3)
        .with_wait_timeout(Duration::from_secs(30))
        .with_client_mode(client_mode)
}

/// A listening node that has pinged its initial peers.
async fn listener(initial: &[&P2P]) -> (P2P, DhtProtocol) {
    let p2p = P2P::create(
        P2PConfig::default().with_initial_peers(initial.iter().flat_map(|p| p.visible_maddrs())),
    )
    .await
    .unwrap();
    let protocol = DhtProtocol::create(&p2p, DhtId::random(), config(false)).unwrap();
    for peer in initial {
        assert!(
            protocol
                .call_ping(peer.peer_id(), false, true)
                .await
                .unwrap()
                .is_some()
        );
    }
    (p2p, protocol)
}

fn regular(value: &[u8]) -> StoreValue {
    StoreValue::Regular(value.to_vec())
}

fn item(key: DhtId, value: StoreValue, expiration_time: f64) -> StoreItem {
    StoreItem {
        key,
        value,
        expiration_time,
        in_cache: false,
    }
}

#[tokio::test]
async fn dht_protocol() {
    let (peer1, proto1) = listener(&[]).await;
    let (peer2, proto2) = listener(&[&peer1]).await;
    for client_mode in [true, false] {
        let p2p = P2P::create(P2PConfig::default().with_initial_peers(peer1.visible_maddrs()))
            .await
            .unwrap();
        p2p.add_addresses([(peer2.peer_id(), peer2.visible_maddrs())])
            .await
            .unwrap();
        let protocol = DhtProtocol::create(&p2p, DhtId::random(), config(client_mode)).unwrap();
        assert_eq!(
            protocol
                .call_ping(peer1.peer_id(), false, true)
                .await
                .unwrap(),
            Some(proto1.node_id())
        );

        let key = DhtId::random();
        let value = b"\x92\xcd\x12\x34\x81\xa5ololo\xa8pyshpysh".to_vec();
        let expiration = get_dht_time() + 1e3;
        let stored = protocol
            .call_store(
                peer1.peer_id(),
                vec![item(key, regular(&value), expiration)],
            )
            .await
            .unwrap();
        assert_eq!(stored, vec![true]);

        let found = protocol
            .call_find(peer1.peer_id(), vec![key])
            .await
            .unwrap();
        let FindOutcome {
            value: got,
            nearest,
        } = &found[&key];
        assert_eq!(
            got.as_ref().unwrap(),
            &ValueWithExpiration::new(StoredValue::Regular(value.clone()), expiration)
        );
        assert_eq!(nearest[0], (proto2.node_id(), peer2.peer_id()));

        let found = protocol
            .call_find(peer2.peer_id(), vec![DhtId::random()])
            .await
            .unwrap();
        let outcome = found.values().next().unwrap();
        assert!(outcome.value.is_none());
        assert_eq!(outcome.nearest[0], (proto1.node_id(), peer1.peer_id()));

        // An unknown peer: no answer.
        assert!(
            protocol
                .call_find(PeerId::random(), vec![key])
                .await
                .is_none()
        );

        // Dictionary values, stored subkey by subkey.
        let dict_key = DhtId::random();
        let (value1, value2) = (b"\x01".to_vec(), b"\xa7abacaba".to_vec());
        let subkey = |s: &str| servicer_dht::Key::from(s).to_msgpack();
        let first = protocol
            .call_store(
                peer1.peer_id(),
                vec![item(
                    dict_key,
                    StoreValue::Subkey {
                        subkey: subkey("foo"),
                        value: value1.clone(),
                    },
                    expiration,
                )],
            )
            .await
            .unwrap();
        let second = protocol
            .call_store(
                peer1.peer_id(),
                vec![item(
                    dict_key,
                    StoreValue::Subkey {
                        subkey: subkey("bar"),
                        value: value2.clone(),
                    },
                    expiration + 5.0,
                )],
            )
            .await
            .unwrap();
        assert_eq!((first, second), (vec![true], vec![true]));
        let found = protocol
            .call_find(peer1.peer_id(), vec![dict_key])
            .await
            .unwrap();
        let got = found[&dict_key].value.clone().unwrap();
        assert_eq!(got.expiration_time, expiration + 5.0);
        let StoredValue::Dictionary(mut dict) = got.value else {
            panic!("expected a dictionary, got {:?}", got.value)
        };
        assert_eq!(dict.len(), 2);
        assert_eq!(
            dict.get(&subkey("foo")).unwrap(),
            &ValueWithExpiration::new(value1, expiration)
        );
        assert_eq!(
            dict.get(&subkey("bar")).unwrap(),
            &ValueWithExpiration::new(value2, expiration + 5.0)
        );

        // A client-mode node never enters the others' tables; a server-mode one does.
        let known = proto1.knows_node(&protocol.node_id());
        assert_eq!(known, !client_mode);
        protocol.shutdown().unwrap();
        p2p.shutdown().await;
    }
    for p in [peer2, peer1] {
        p.shutdown().await;
    }
}

#[tokio::test]
async fn empty_table() {
    let (peer, proto) = listener(&[]).await;
    let p2p = P2P::create(P2PConfig::default().with_initial_peers(peer.visible_maddrs()))
        .await
        .unwrap();
    let client = DhtProtocol::create(&p2p, DhtId::random(), config(true)).unwrap();
    let key = DhtId::random();
    let found = client.call_find(peer.peer_id(), vec![key]).await.unwrap();
    assert_eq!(
        found[&key],
        FindOutcome {
            value: None,
            nearest: vec![]
        }
    );
    let expiration = get_dht_time() + 1e3;
    let value = b"\xa5hello".to_vec();
    assert_eq!(
        client
            .call_store(peer.peer_id(), vec![item(key, regular(&value), expiration)])
            .await
            .unwrap(),
        vec![true]
    );
    let found = client.call_find(peer.peer_id(), vec![key]).await.unwrap();
    assert_eq!(
        found[&key],
        FindOutcome {
            value: Some(ValueWithExpiration::new(
                StoredValue::Regular(value),
                expiration
            )),
            nearest: vec![]
        }
    );
    assert_eq!(
        client.call_ping(peer.peer_id(), false, true).await.unwrap(),
        Some(proto.node_id())
    );
    assert_eq!(
        client
            .call_ping(PeerId::random(), false, true)
            .await
            .unwrap(),
        None
    );
    p2p.shutdown().await;
    peer.shutdown().await;
}

#[tokio::test]
async fn whole_dictionary_and_cache_stores() {
    let (peer, proto) = listener(&[]).await;
    let p2p = P2P::create(P2PConfig::default().with_initial_peers(peer.visible_maddrs()))
        .await
        .unwrap();
    let client = DhtProtocol::create(&p2p, DhtId::random(), config(true)).unwrap();
    let t = get_dht_time();
    let key = DhtId::random();
    let entries = vec![
        DictEntry {
            subkey: b"\xa1a".to_vec(),
            value: b"\x01".to_vec(),
            expiration_time: t + 100.0,
        },
        DictEntry {
            subkey: b"\xa1b".to_vec(),
            value: b"\x02".to_vec(),
            expiration_time: t + 200.0,
        },
    ];
    let mut cached = item(key, StoreValue::Dictionary(entries), t + 200.0);
    cached.in_cache = true;
    assert_eq!(
        client
            .call_store(peer.peer_id(), vec![cached])
            .await
            .unwrap(),
        vec![true]
    );
    assert!(proto.stored_value(&key).is_none());
    assert!(proto.cached_value(&key).is_some());
    let found = client.call_find(peer.peer_id(), vec![key]).await.unwrap();
    assert_eq!(
        found[&key].value.as_ref().unwrap().expiration_time,
        t + 200.0
    );
    p2p.shutdown().await;
    peer.shutdown().await;
}

#[tokio::test]
async fn validated_ping_checks_reachability_both_ways() {
    let (peer, proto) = listener(&[]).await;
    let (other, other_proto) = listener(&[&peer]).await;
    // Both serve the DHT and can reach each other: validation passes, both tables learn.
    assert_eq!(
        other_proto
            .call_ping(peer.peer_id(), true, true)
            .await
            .unwrap(),
        Some(proto.node_id())
    );
    assert!(proto.knows_node(&other_proto.node_id()));
    other.shutdown().await;
    peer.shutdown().await;
}

#[tokio::test]
async fn stored_values_replicate_to_newly_met_nodes() {
    let (peer, proto) = listener(&[]).await;
    let key = DhtId::random();
    let t = get_dht_time();
    assert_eq!(
        servicer_dht::testing::store_locally(&proto, vec![item(key, regular(b"\x07"), t + 100.0)]),
        vec![Ok(())]
    );
    // The newcomer pings `peer` and asks it to ping back (as a node joining the DHT does):
    // once it has answered, `peer`, with no neighbours, hands it every stored value. A node
    // that only called is not sent values (tests/hostile/node_id_churn.rs).
    let (newcomer, newcomer_proto) = listener(&[&peer]).await;
    assert!(
        newcomer_proto
            .call_ping(peer.peer_id(), true, true)
            .await
            .unwrap()
            .is_some()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if newcomer_proto.stored_value(&key).is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "value was not replicated"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    newcomer.shutdown().await;
    peer.shutdown().await;
}
