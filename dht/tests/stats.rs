//! The counters benchmarks read: requests sent per RPC ([`DhtProtocol::rpcs_sent`]) and beam
//! searches with their hops ([`DhtNode::lookup_stats`]).

use std::time::Duration;

use servicer_dht::messages::{StoreItem, StoreValue};
use servicer_dht::{
    DhtConfig, DhtId, DhtNode, DhtProtocol, Limits, LookupStats, ProtocolConfig, RpcCounts,
    get_dht_time,
};
use servicer_runtime::{Multiaddr, P2P, P2PConfig};

fn memory() -> P2PConfig {
    P2PConfig::default().with_listen_addrs(["/memory/0".parse::<Multiaddr>().unwrap()])
}

/// Default settings on the in-memory transport, with a deadline only failures would wait for.
fn config(initial: Vec<Multiaddr>) -> DhtConfig {
    DhtConfig::default()
        .with_p2p(memory())
        .with_wait_timeout(Duration::from_secs(30))
        // No background refresh of cached values: it would send finds of its own.
        .with_cache_refresh_before_expiry(None)
        .with_initial_peers(initial)
}

#[tokio::test]
async fn each_request_counts_once_per_rpc() {
    let server = P2P::create(memory()).await.unwrap();
    let limits = Limits::default().with_max_keys_per_request(2);
    let protocol_config = ProtocolConfig::default()
        .with_wait_timeout(Duration::from_secs(30))
        .with_limits(limits);
    let served = DhtProtocol::create(&server, DhtId::random(), protocol_config.clone()).unwrap();
    let client = P2P::create(memory().with_initial_peers(server.visible_maddrs()))
        .await
        .unwrap();
    let protocol = DhtProtocol::create(&client, DhtId::random(), protocol_config).unwrap();
    assert_eq!(protocol.rpcs_sent(), RpcCounts::default());

    assert!(
        protocol
            .call_ping(server.peer_id(), false, true)
            .await
            .unwrap()
            .is_some()
    );
    // Five keys with at most two per request: three requests.
    let keys: Vec<DhtId> = (0..5).map(|_| DhtId::random()).collect();
    assert!(protocol.call_find(server.peer_id(), keys).await.is_some());
    let item = StoreItem {
        key: DhtId::random(),
        value: StoreValue::Regular(vec![0xc3]),
        expiration_time: get_dht_time() + 60.0,
        in_cache: false,
    };
    assert!(
        protocol
            .call_store(server.peer_id(), vec![item])
            .await
            .is_some()
    );
    let sent = protocol.rpcs_sent();
    assert_eq!(
        sent,
        RpcCounts {
            ping: 1,
            store: 1,
            find: 3
        }
    );
    assert_eq!(sent.total(), 5);
    assert_eq!(sent - sent, RpcCounts::default());

    // A request that fails counts too: it was sent.
    server.shutdown().await;
    let before = protocol.rpcs_sent();
    assert!(
        protocol
            .call_find(served.p2p().peer_id(), vec![DhtId::random()])
            .await
            .is_none()
    );
    assert_eq!((protocol.rpcs_sent() - before).find, 1);
    client.shutdown().await;
}

#[tokio::test]
async fn a_search_through_one_peer_is_one_hop() {
    let first = DhtNode::create(config(Vec::new())).await.unwrap();
    let second = DhtNode::create(config(first.p2p().visible_maddrs()))
        .await
        .unwrap();
    // Bootstrap looked up the node's own id: one search.
    assert_eq!(second.lookup_stats().searches, 1);

    let (lookups, sent) = (second.lookup_stats(), second.protocol().rpcs_sent());
    let stored = second
        .store("key", &1u8, get_dht_time() + 60.0, None)
        .await
        .unwrap();
    assert!(stored);
    // The only other node answers the search, naming no node the searcher does not know, and
    // takes one replica; the other replica is local.
    assert_eq!(
        second.lookup_stats() - lookups,
        LookupStats {
            searches: 1,
            hops: 1
        }
    );
    let store_cost = second.protocol().rpcs_sent() - sent;
    assert_eq!((store_cost.find, store_cost.store), (1, 1));

    // A get of the latest value asks the other node although a replica is local.
    let lookups = second.lookup_stats();
    assert!(second.get::<u8>("key", true).await.unwrap().is_some());
    assert_eq!(
        second.lookup_stats() - lookups,
        LookupStats {
            searches: 1,
            hops: 1
        }
    );
    // Looking for any unexpired value is answered locally: no search.
    let lookups = second.lookup_stats();
    assert!(second.get::<u8>("key", false).await.unwrap().is_some());
    assert_eq!(second.lookup_stats() - lookups, LookupStats::default());
    second.shutdown().await;
    first.shutdown().await;
}
