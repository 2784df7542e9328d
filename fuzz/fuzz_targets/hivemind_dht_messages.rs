//! Arbitrary bytes decoded with prost as each of hivemind's six DHT messages
//! (`servicer_dht::hivemind_proto`: ping, store and find, requests and responses): what decodes
//! must re-encode and decode to the same message (NaNs compared as NaN). The request the first byte
//! picks is then served by `HivemindDhtProtocol` on one live hivemind-mode node with small limits,
//! which translates it into the DHT's own messages (dht/src/hivemind_wire/translate.rs is private:
//! these handlers are its public way in) and the answer back: no panic, one answer per key, the
//! node's own id in every answer, a request refused only when it is over the key limit or cannot
//! be translated, records within the quotas.
#![no_main]

use std::fmt::Debug;
use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use prost::Message;
use servicer_dht::hivemind_proto as proto;
use servicer_dht::{DhtId, DhtProtocol, HivemindDhtProtocol, Limits, ProtocolConfig};
use servicer_runtime::{P2P, P2PConfig, PeerId, RpcContext, WireMode};

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
    hivemind: HivemindDhtProtocol,
    writers: Vec<PeerId>,
}

static NODE: LazyLock<Node> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let protocol = runtime.block_on(async {
        let config = P2PConfig::default()
            .with_wire_mode(WireMode::Hivemind)
            .with_listen_addrs(["/memory/0".parse().expect("addr")]);
        let p2p = P2P::create(config).await.expect("node");
        let config = ProtocolConfig::default().with_limits(limits());
        DhtProtocol::create(&p2p, DhtId::random(), config).expect("protocol")
    });
    let hivemind = HivemindDhtProtocol::new(protocol.clone());
    let writers = (0..4).map(|_| PeerId::random()).collect();
    Node {
        runtime,
        protocol,
        hivemind,
        writers,
    }
});

/// Equal, or equal but for NaNs (which `Debug` prints alike).
fn same<M: Debug + PartialEq>(a: &M, b: &M) -> bool {
    a == b || format!("{a:?}") == format!("{b:?}")
}

/// `data` as an `M`, if it decodes; it must re-encode and decode to itself.
fn check<M: Message + Default + PartialEq + Debug>(data: &[u8]) -> Option<M> {
    let message = M::decode(data).ok()?;
    let bytes = message.encode_to_vec();
    assert_eq!(bytes.len(), message.encoded_len());
    let again = M::decode(bytes.as_slice()).expect("a re-encoded message decodes");
    assert!(same(&message, &again), "{message:?} came back as {again:?}");
    assert_eq!(again.encode_to_vec(), bytes);
    Some(message)
}

/// Whether translate.rs can read this `NodeInfo`: absent, empty, or a 20-byte id.
fn node_info_ok(peer: &Option<proto::NodeInfo>) -> bool {
    peer.as_ref()
        .is_none_or(|p| p.node_id.is_empty() || p.node_id.len() == 20)
}

fn answers_as_node(peer: &Option<proto::NodeInfo>, node: &Node) -> bool {
    peer.as_ref()
        .is_some_and(|p| p.node_id == node.protocol.node_id().to_bytes())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let ping = check::<proto::PingRequest>(data);
    let store = check::<proto::StoreRequest>(data);
    let find = check::<proto::FindRequest>(data);
    check::<proto::PingResponse>(data);
    check::<proto::StoreResponse>(data);
    check::<proto::FindResponse>(data);

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
            let Some(request) = store else { return };
            let n = request.keys.len();
            let aligned = [
                request.subkeys.len(),
                request.values.len(),
                request.expiration_time.len(),
                request.in_cache.len(),
            ] == [n; 4];
            // Dictionaries (subkey tag b"") may not decode: only they may fail past these checks.
            let translatable = aligned
                && node_info_ok(&request.peer)
                && request.keys.iter().all(|k| k.len() == 20)
                && request.subkeys.iter().all(|s| !s.is_empty());
            match node.runtime.block_on(node.hivemind.rpc_store(request, ctx)) {
                Ok(response) => {
                    assert_eq!(response.store_ok.len(), n);
                    assert!(n <= max);
                    assert!(answers_as_node(&response.peer, node));
                    check::<proto::StoreResponse>(&response.encode_to_vec());
                }
                Err(_) => assert!(n > max || !translatable),
            }
            assert!(node.protocol.remote_records() <= limits().max_records);
            assert!(node.protocol.records_written_by(&from) <= limits().max_records_per_peer);
        }
        1 => {
            let Some(request) = find else { return };
            let n = request.keys.len();
            let translatable =
                node_info_ok(&request.peer) && request.keys.iter().all(|k| k.len() == 20);
            match node.runtime.block_on(node.hivemind.rpc_find(request, ctx)) {
                Ok(response) => {
                    assert_eq!(response.results.len(), n);
                    assert!(n <= max && translatable);
                    assert!(answers_as_node(&response.peer, node));
                    for result in &response.results {
                        assert!(proto::ResultType::try_from(result.r#type).is_ok());
                        assert_eq!(result.nearest_node_ids.len(), result.nearest_peer_ids.len());
                    }
                    check::<proto::FindResponse>(&response.encode_to_vec());
                }
                Err(_) => assert!(n > max || !translatable),
            }
        }
        _ => {
            let Some(mut request) = ping else { return };
            // A validated ping dials the caller back: not what this target measures.
            request.validate = false;
            let translatable = node_info_ok(&request.peer);
            match node.runtime.block_on(node.hivemind.rpc_ping(request, ctx)) {
                Ok(response) => {
                    assert!(translatable);
                    assert!(answers_as_node(&response.peer, node));
                    assert!(!response.available);
                }
                Err(_) => assert!(!translatable),
            }
        }
    }
});
