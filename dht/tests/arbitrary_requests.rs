//! A bounded property-based run of the entry points the fuzz targets (`fuzz/`) hammer: decoding
//! arbitrary bytes as every DHT message, and serving arbitrary `rpc_store` / `rpc_find` /
//! `rpc_ping` requests. Nothing may panic, every answer has one result per item, and the node's
//! records stay within its limits.

use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use servicer_dht::messages::{
    DictEntry, FindRequest, FindResponse, NodeInfo, PingRequest, PingResponse, StoreItem,
    StoreRequest, StoreResponse, StoreValue,
};
use servicer_dht::{DhtId, DhtProtocol, Limits, ProtocolConfig};
use servicer_runtime::native::codec;
use servicer_runtime::{P2P, P2PConfig, PeerId, RpcContext};

const LIMITS: fn() -> Limits = || {
    Limits::default()
        .with_max_value_size(256)
        .with_max_keys_per_request(16)
        .with_max_subkeys_per_dictionary(8)
        .with_max_records_per_peer(64)
        .with_max_records(128)
};

/// One node for every case: creating a libp2p node per case would dominate the run.
fn node() -> &'static (tokio::runtime::Runtime, DhtProtocol) {
    static NODE: OnceLock<(tokio::runtime::Runtime, DhtProtocol)> = OnceLock::new();
    NODE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let protocol = runtime.block_on(async {
            let p2p =
                P2P::create(P2PConfig::default().with_listen_addrs(["/memory/0".parse().unwrap()]))
                    .await
                    .unwrap();
            let config = ProtocolConfig::default().with_limits(LIMITS());
            DhtProtocol::create(&p2p, DhtId::random(), config).unwrap()
        });
        (runtime, protocol)
    })
}

fn ctx(remote: PeerId) -> RpcContext {
    let (_, protocol) = node();
    RpcContext::new(
        Arc::from("DHTProtocol.rpc_x"),
        protocol.p2p().peer_id(),
        remote,
    )
}

fn id() -> impl Strategy<Value = DhtId> {
    prop_oneof![
        any::<u8>().prop_map(|b| DhtId::generate(b as i64)),
        any::<[u8; 20]>().prop_map(|b| DhtId::from_slice(&b).unwrap()),
    ]
}

fn time() -> impl Strategy<Value = f64> {
    let now = servicer_dht::get_dht_time();
    prop_oneof![
        (-100.0..1000.0f64).prop_map(move |d| now + d),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        any::<f64>(),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn node_info() -> impl Strategy<Value = NodeInfo> {
    (
        proptest::option::of(id()),
        proptest::collection::vec(bytes(40), 0..12),
    )
        .prop_map(|(node_id, addrs)| NodeInfo {
            node_id,
            addrs: servicer_dht::messages::AddrList::new(addrs),
        })
}

fn store_value() -> impl Strategy<Value = StoreValue> {
    prop_oneof![
        bytes(300).prop_map(StoreValue::Regular),
        (bytes(4), bytes(300)).prop_map(|(subkey, value)| StoreValue::Subkey { subkey, value }),
        proptest::collection::vec((bytes(4), bytes(64), time()), 0..12).prop_map(|entries| {
            StoreValue::Dictionary(
                entries
                    .into_iter()
                    .map(|(subkey, value, expiration_time)| DictEntry {
                        subkey,
                        value,
                        expiration_time,
                    })
                    .collect(),
            )
        }),
    ]
}

fn store_request() -> impl Strategy<Value = StoreRequest> {
    let item = (id(), store_value(), time(), any::<bool>()).prop_map(
        |(key, value, expiration_time, in_cache)| StoreItem {
            key,
            value,
            expiration_time,
            in_cache,
        },
    );
    (node_info(), proptest::collection::vec(item, 0..20))
        .prop_map(|(peer, items)| StoreRequest { peer, items })
}

/// A few writers, so that quotas get exercised.
fn writer() -> impl Strategy<Value = PeerId> {
    static WRITERS: OnceLock<Vec<PeerId>> = OnceLock::new();
    let writers = WRITERS.get_or_init(|| (0..4).map(|_| PeerId::random()).collect());
    proptest::sample::select(writers.clone())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic_as_any_message(data in bytes(512)) {
        let limit = 1 << 16;
        let _ = codec::decode::<PingRequest>(&data, limit);
        let _ = codec::decode::<PingResponse>(&data, limit);
        let _ = codec::decode::<StoreRequest>(&data, limit);
        let _ = codec::decode::<StoreResponse>(&data, limit);
        let _ = codec::decode::<FindRequest>(&data, limit);
        let _ = codec::decode::<FindResponse>(&data, limit);
    }

    #[test]
    fn arbitrary_stores_are_answered_item_by_item(request in store_request(), from in writer()) {
        let (runtime, protocol) = node();
        let items = request.items.len();
        // Through the codec, as the bytes would arrive.
        let bytes = codec::encode(&request).unwrap();
        let request: StoreRequest = codec::decode(&bytes, 1 << 20).unwrap();
        let answer = runtime.block_on(protocol.rpc_store(request, ctx(from)));
        match answer {
            Ok(response) => prop_assert_eq!(response.results.len(), items),
            Err(err) => {
                prop_assert!(items > LIMITS().max_keys_per_request, "{}", err);
            }
        }
        prop_assert!(protocol.remote_records() <= LIMITS().max_records);
        prop_assert!(protocol.records_written_by(&from) <= LIMITS().max_records_per_peer);
    }

    #[test]
    fn arbitrary_finds_are_answered_key_by_key(
        peer in node_info(),
        keys in proptest::collection::vec(id(), 0..24),
        from in writer(),
    ) {
        let (runtime, protocol) = node();
        let count = keys.len();
        let answer = runtime.block_on(protocol.rpc_find(FindRequest { peer, keys }, ctx(from)));
        match answer {
            Ok(response) => prop_assert_eq!(response.results.len(), count),
            Err(_) => prop_assert!(count > LIMITS().max_keys_per_request),
        }
    }

    #[test]
    fn arbitrary_pings_are_answered(peer in node_info(), from in writer()) {
        let (runtime, protocol) = node();
        let answer = runtime.block_on(protocol.rpc_ping(PingRequest { peer, validate: false }, ctx(from)));
        prop_assert!(answer.is_ok());
    }
}
