//! Arbitrary `rpc_store` / `rpc_find` / `rpc_ping` requests, as bytes off the wire, served by one
//! live DHT node with small limits: no panic, one result per item, records within the quotas.
#![no_main]

use std::sync::{Arc, LazyLock};

use servicer_dht::messages::{FindRequest, PingRequest, StoreRequest};
use servicer_dht::{DhtId, DhtProtocol, Limits, ProtocolConfig};
use libfuzzer_sys::fuzz_target;
use servicer_runtime::native::codec;
use servicer_runtime::{P2P, P2PConfig, PeerId, RpcContext};

fn limits() -> Limits {
    Limits::default()
        .with_max_value_size(256)
        .with_max_keys_per_request(16)
        .with_max_subkeys_per_dictionary(8)
        .with_max_records_per_peer(64)
        .with_max_records(128)
}

struct Node {
    runtime: tokio::runtime::Runtime,
    protocol: DhtProtocol,
    writers: Vec<PeerId>,
}

static NODE: LazyLock<Node> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let protocol = runtime.block_on(async {
        let config = P2PConfig::default().with_listen_addrs(["/memory/0".parse().expect("addr")]);
        let p2p = P2P::create(config).await.expect("node");
        let config = ProtocolConfig::default().with_limits(limits());
        DhtProtocol::create(&p2p, DhtId::random(), config).expect("protocol")
    });
    let writers = (0..4).map(|_| PeerId::random()).collect();
    Node {
        runtime,
        protocol,
        writers,
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let node = &*NODE;
    let from = node.writers[(selector >> 2) as usize % node.writers.len()];
    let ctx = RpcContext::new(
        Arc::from("DHTProtocol.fuzz"),
        node.protocol.p2p().peer_id(),
        from,
    );
    let max = limits().max_keys_per_request;
    match selector % 3 {
        0 => {
            let Ok(request) = codec::decode::<StoreRequest>(data, 1 << 16) else {
                return;
            };
            let items = request.items.len();
            match node.runtime.block_on(node.protocol.rpc_store(request, ctx)) {
                Ok(response) => assert_eq!(response.results.len(), items),
                Err(_) => assert!(items > max),
            }
            assert!(node.protocol.remote_records() <= limits().max_records);
            assert!(node.protocol.records_written_by(&from) <= limits().max_records_per_peer);
        }
        1 => {
            let Ok(request) = codec::decode::<FindRequest>(data, 1 << 16) else {
                return;
            };
            let keys = request.keys.len();
            match node.runtime.block_on(node.protocol.rpc_find(request, ctx)) {
                Ok(response) => assert_eq!(response.results.len(), keys),
                Err(_) => assert!(keys > max),
            }
        }
        _ => {
            let Ok(mut request) = codec::decode::<PingRequest>(data, 1 << 16) else {
                return;
            };
            // A validated ping dials the caller back: not what this target measures.
            request.validate = false;
            assert!(node.runtime.block_on(node.protocol.rpc_ping(request, ctx)).is_ok());
        }
    }
});
