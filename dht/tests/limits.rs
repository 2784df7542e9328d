//! Each limit a node enforces on remote peers, with its typed error, between real nodes.

use std::time::Duration;

use servicer_dht::messages::{
    DictEntry, FindRequest, NodeInfo, PingRequest, PingResponse, StoreItem, StoreRequest,
    StoreValue,
};
use servicer_dht::{
    DhtConfig, DhtError, DhtId, DhtNode, DhtProtocol, Limits, ProtocolConfig, Rejection,
    get_dht_time,
};
use servicer_macros::servicer;
use servicer_runtime::{P2P, P2PConfig, RpcContext, RpcError};

/// A listening protocol with these limits, and a client protocol (default limits) connected to it.
async fn pair(limits: Limits) -> ((P2P, DhtProtocol), (P2P, DhtProtocol)) {
    let config = |limits: Limits| {
        ProtocolConfig::default()
            .with_wait_timeout(Duration::from_secs(30))
            .with_limits(limits)
    };
    let server = P2P::create(P2PConfig::default()).await.unwrap();
    let server_proto = DhtProtocol::create(&server, DhtId::random(), config(limits)).unwrap();
    let client = P2P::create(P2PConfig::default().with_initial_peers(server.visible_maddrs()))
        .await
        .unwrap();
    let client_proto =
        DhtProtocol::create(&client, DhtId::random(), config(Limits::default())).unwrap();
    ((server, server_proto), (client, client_proto))
}

fn regular(key: &str, value: Vec<u8>) -> StoreItem {
    StoreItem {
        key: DhtId::generate(key),
        value: StoreValue::Regular(value),
        expiration_time: get_dht_time() + 60.0,
        in_cache: false,
    }
}

fn subkey(key: &str, subkey: u8) -> StoreItem {
    StoreItem {
        value: StoreValue::Subkey {
            subkey: vec![subkey],
            value: vec![1],
        },
        ..regular(key, Vec::new())
    }
}

async fn stop(nodes: [P2P; 2]) {
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn value_size() {
    let limits = Limits::default().with_max_value_size(1000);
    let ((server, _), (client, proto)) = pair(limits.clone()).await;
    let results = proto
        .call_store_detailed(
            server.peer_id(),
            vec![
                regular("small", vec![1; 1000]),
                regular("big", vec![1; 1001]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(results, vec![Ok(()), Err(Rejection::ValueTooLarge)]);

    // The node's own API refuses early, with the sizes.
    let node = DhtNode::create(DhtConfig::default().with_limits(limits))
        .await
        .unwrap();
    let err = node
        .store("big", &vec![0u8; 2000], get_dht_time() + 60.0, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DhtError::ValueTooLarge { limit: 1000, .. }),
        "{err}"
    );
    node.shutdown().await;
    stop([server, client]).await;
}

#[tokio::test]
async fn keys_per_request() {
    let ((server, _), (client, proto)) = pair(Limits::default().with_max_keys_per_request(8)).await;
    let stub = DhtProtocol::get_stub(&client, server.peer_id());
    let peer = NodeInfo {
        node_id: None,
        addrs: servicer_dht::messages::AddrList::default(),
    };
    let items: Vec<StoreItem> = (0..9).map(|i| regular(&format!("k{i}"), vec![i])).collect();
    let err = stub
        .rpc_store(StoreRequest {
            peer: peer.clone(),
            items: items.clone(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RpcError::Remote { message } if message.contains("9 keys exceeds the limit of 8")),
        "{err}"
    );
    let keys: Vec<DhtId> = items.iter().map(|i| i.key).collect();
    let err = stub
        .rpc_find(FindRequest {
            peer,
            keys: keys.clone(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Remote { .. }), "{err}");

    // A client with a smaller limit than its items splits them.
    let ((server2, _), (client2, _)) = pair(Limits::default().with_max_keys_per_request(8)).await;
    let small = DhtProtocol::create(
        &client2,
        DhtId::random(),
        ProtocolConfig::default()
            .with_limits(Limits::default().with_max_keys_per_request(4))
            .with_client_mode(true)
            .with_wait_timeout(Duration::from_secs(30)),
    )
    .unwrap();
    let results = small
        .call_store_detailed(server2.peer_id(), items)
        .await
        .unwrap();
    assert_eq!(results, vec![Ok(()); 9]);
    let found = small.call_find(server2.peer_id(), keys).await.unwrap();
    assert!(found.values().all(|f| f.value.is_some()));
    drop(proto);
    stop([server, client]).await;
    stop([server2, client2]).await;
}

#[tokio::test]
async fn subkeys_per_dictionary() {
    let ((server, _), (client, proto)) =
        pair(Limits::default().with_max_subkeys_per_dictionary(4)).await;
    let peer = server.peer_id();
    let items: Vec<StoreItem> = (0..5).map(|i| subkey("dict", i)).collect();
    let results = proto.call_store_detailed(peer, items).await.unwrap();
    assert_eq!(&results[..4], &[Ok(()); 4]);
    assert_eq!(results[4], Err(Rejection::TooManySubkeys));
    // Rewriting a subkey it has is fine; a whole dictionary too large is not.
    let mut again = subkey("dict", 0);
    again.expiration_time += 1.0;
    let whole = StoreItem {
        value: StoreValue::Dictionary(
            (0..5)
                .map(|i| DictEntry {
                    subkey: vec![i],
                    value: vec![i],
                    expiration_time: get_dht_time() + 60.0,
                })
                .collect(),
        ),
        ..regular("other dict", Vec::new())
    };
    let results = proto
        .call_store_detailed(peer, vec![again, whole])
        .await
        .unwrap();
    assert_eq!(results, vec![Ok(()), Err(Rejection::TooManySubkeys)]);
    stop([server, client]).await;
}

#[tokio::test]
async fn records_per_peer_and_in_total() {
    let limits = Limits::default()
        .with_max_records_per_peer(10)
        .with_max_records(15);
    let ((server, server_proto), (client, greedy)) = pair(limits).await;
    let peer = server.peer_id();
    let items = |prefix: &str| -> Vec<StoreItem> {
        (0..12)
            .map(|i| regular(&format!("{prefix}{i}"), vec![i]))
            .collect()
    };
    let results = greedy.call_store_detailed(peer, items("a")).await.unwrap();
    assert_eq!(&results[..10], &[Ok(()); 10]);
    assert_eq!(&results[10..], &[Err(Rejection::PeerQuotaExceeded); 2]);
    assert_eq!(server_proto.records_written_by(&client.peer_id()), 10);
    // Rewriting its own records costs nothing more.
    let mut rewrite = items("a");
    rewrite.truncate(10);
    for item in &mut rewrite {
        item.expiration_time += 1.0;
    }
    let results = greedy.call_store_detailed(peer, rewrite).await.unwrap();
    assert_eq!(results, vec![Ok(()); 10]);

    // A second peer gets the 5 records left in total.
    let other = P2P::create(P2PConfig::default().with_initial_peers(server.visible_maddrs()))
        .await
        .unwrap();
    let other_proto = DhtProtocol::create(
        &other,
        DhtId::random(),
        ProtocolConfig::default().with_wait_timeout(Duration::from_secs(30)),
    )
    .unwrap();
    let results = other_proto
        .call_store_detailed(peer, items("b"))
        .await
        .unwrap();
    assert_eq!(&results[..5], &[Ok(()); 5]);
    assert_eq!(&results[5..], &[Err(Rejection::StorageFull); 7]);
    assert_eq!(server_proto.remote_records(), 15);

    // Expired records are refused and free nothing.
    let mut expired = regular("late", vec![1]);
    expired.expiration_time = get_dht_time() - 1.0;
    let results = greedy
        .call_store_detailed(peer, vec![expired])
        .await
        .unwrap();
    assert_eq!(results, vec![Err(Rejection::Expired)]);
    other.shutdown().await;
    stop([server, client]).await;
}

/// A DHT peer whose clock is `offset` seconds off.
struct SkewedPeer {
    offset: f64,
}

#[servicer(name = "DHTProtocol")]
impl SkewedPeer {
    async fn rpc_ping(
        &self,
        _request: PingRequest,
        _ctx: RpcContext,
    ) -> Result<PingResponse, DhtError> {
        Ok(PingResponse {
            peer: NodeInfo {
                node_id: Some(DhtId::random()),
                addrs: servicer_dht::messages::AddrList::default(),
            },
            dht_time: get_dht_time() + self.offset,
            available: true,
        })
    }
}

#[tokio::test]
async fn clock_skew_beyond_three_seconds() {
    for (offset, skewed) in [(10.0, true), (-10.0, true), (0.5, false)] {
        let peer = P2P::create(P2PConfig::default()).await.unwrap();
        std::sync::Arc::new(SkewedPeer { offset })
            .add_p2p_handlers(&peer, None)
            .unwrap();
        let config = DhtConfig::default()
            .with_wait_timeout(Duration::from_secs(30))
            .with_initial_peers(peer.visible_maddrs());
        let result = DhtNode::create(config.clone()).await;
        match result {
            Err(DhtError::ClockSkew {
                offset: seen, max, ..
            }) => {
                assert!(skewed, "offset {offset}: refused");
                assert_eq!(max, 3.0);
                assert!(
                    seen.signum() == offset.signum() && seen.abs() > 3.0,
                    "{seen}"
                );
            }
            Ok(node) => {
                assert!(!skewed, "offset {offset}: accepted");
                node.shutdown().await;
            }
            Err(err) => panic!("offset {offset}: {err}"),
        }
        // Without `strict`, a skewed peer only warns.
        let node = DhtNode::create(config.with_strict(false)).await.unwrap();
        node.shutdown().await;
        peer.shutdown().await;
    }
}
