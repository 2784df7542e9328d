//! e) A fake DHT peer answers a find with 40,000 peer records (random peer ids, each with one
//! `/ip4/127.0.0.1/tcp/N` address) for one key. Secure: the requester's P2P node keeps the
//! addresses of at most 1,000 of them, and the requester keeps working.

use std::sync::Arc;
use std::time::Instant;

use p2p_servicer::dht::messages::{
    AddrList, FindRequest, FindResponse, FindResult, FoundValue, NodeInfo, PeerRecord, PingRequest,
    PingResponse, StoreItem, StoreRequest, StoreResponse, StoreValue,
};
use p2p_servicer::dht::{DhtError, DhtId, DhtNode, encode_value, get_dht_time};
use p2p_servicer::runtime::native::codec;
use p2p_servicer::runtime::{
    DEFAULT_MAX_MESSAGE_SIZE, Multiaddr, P2P, P2PConfig, PeerId, RpcContext,
};
use p2p_servicer::servicer;

use crate::common::PATIENCE;
use crate::wire_common::native_dht;

const RECORDS: usize = 40_000;
const FLOODED: &str = "flooded key";
const QUIET: &str = "quiet key";

/// A DHT peer that answers a find of [`FLOODED`] with a value and `nearest` (40,000 records),
/// and of [`QUIET`] with a value alone.
struct FloodingPeer {
    node_id: DhtId,
    nearest: Arc<Vec<PeerRecord>>,
}

impl FloodingPeer {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            node_id: Some(self.node_id),
            addrs: AddrList::default(),
        }
    }

    fn result(&self, key: &DhtId) -> FindResult {
        let value = FoundValue::Regular {
            value: encode_value("from the flooding peer").unwrap(),
            expiration_time: get_dht_time() + 300.0,
        };
        if *key == DhtId::generate(FLOODED) {
            FindResult {
                value,
                nearest: self.nearest.as_ref().clone(),
            }
        } else if *key == DhtId::generate(QUIET) {
            FindResult {
                value,
                nearest: Vec::new(),
            }
        } else {
            FindResult {
                value: FoundValue::NotFound,
                nearest: Vec::new(),
            }
        }
    }
}

#[servicer(name = "DHTProtocol")]
impl FloodingPeer {
    async fn rpc_ping(
        &self,
        _request: PingRequest,
        _ctx: RpcContext,
    ) -> Result<PingResponse, DhtError> {
        Ok(PingResponse {
            peer: self.info(),
            dht_time: get_dht_time(),
            available: true,
        })
    }

    async fn rpc_store(
        &self,
        request: StoreRequest,
        _ctx: RpcContext,
    ) -> Result<StoreResponse, DhtError> {
        Ok(StoreResponse {
            peer: self.info(),
            results: vec![Ok(()); request.items.len()],
        })
    }

    async fn rpc_find(
        &self,
        request: FindRequest,
        _ctx: RpcContext,
    ) -> Result<FindResponse, DhtError> {
        Ok(FindResponse {
            peer: self.info(),
            results: request.keys.iter().map(|key| self.result(key)).collect(),
        })
    }
}

fn records() -> Vec<PeerRecord> {
    (0..RECORDS)
        .map(|i| {
            let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", 1024 + i).parse().unwrap();
            PeerRecord {
                node_id: DhtId::random(),
                peer_id: PeerId::random(),
                addrs: AddrList::from_multiaddrs(&[addr]),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_answer_with_40000_peer_records() {
    let nearest = Arc::new(records());
    let fake = P2P::create(P2PConfig::default()).await.unwrap();
    let flooding = FloodingPeer {
        node_id: DhtId::random(),
        nearest: nearest.clone(),
    };
    let answer_size = codec::encode(&FindResponse {
        peer: flooding.info(),
        results: vec![flooding.result(&DhtId::generate(FLOODED))],
    })
    .unwrap()
    .len();
    assert!(
        answer_size < DEFAULT_MAX_MESSAGE_SIZE,
        "the answer ({answer_size} bytes) must fit in a message"
    );
    Arc::new(flooding).add_p2p_handlers(&fake, None).unwrap();

    let requester = DhtNode::create(native_dht(P2PConfig::default(), fake.visible_maddrs()))
        .await
        .unwrap();
    let started = Instant::now();
    // Secure either way: the value with at most 1,000 of the records, or the answer refused.
    let flooded = tokio::time::timeout(PATIENCE, requester.get::<String>(FLOODED, false)).await;
    let flooded_time = started.elapsed();
    let peers: Vec<PeerId> = nearest.iter().map(|r| r.peer_id).collect();
    let known = requester
        .p2p()
        .addresses_of(peers)
        .await
        .unwrap()
        .iter()
        .filter(|addrs| !addrs.is_empty())
        .count();
    eprintln!(
        "find answer of {answer_size} bytes with {RECORDS} peer records: get took {:.1} s \
         ({}), the requester's P2P node knows addresses of {known} of them",
        flooded_time.as_secs_f64(),
        match &flooded {
            Ok(Ok(Some(found))) => format!("found {:?}", found.value),
            other => format!("{other:?}"),
        }
    );

    // The requester keeps working: another get completes, and it serves an honest node.
    let quiet = tokio::time::timeout(PATIENCE, requester.get::<String>(QUIET, false)).await;
    let honest = DhtNode::create(native_dht(
        P2PConfig::default(),
        requester.p2p().visible_maddrs(),
    ))
    .await
    .unwrap();
    let key = DhtId::generate("honest");
    let stored = honest
        .protocol()
        .call_store(
            requester.p2p().peer_id(),
            vec![StoreItem {
                key,
                value: StoreValue::Regular(encode_value("honest value").unwrap()),
                expiration_time: get_dht_time() + 300.0,
                in_cache: false,
            }],
        )
        .await;
    let found = honest
        .protocol()
        .call_find(requester.p2p().peer_id(), vec![key])
        .await;

    honest.shutdown().await;
    requester.shutdown().await;
    fake.shutdown().await;
    assert!(
        matches!(flooded, Ok(Ok(_))),
        "get of the flooded key within {PATIENCE:?}: {flooded:?}"
    );
    assert!(matches!(quiet, Ok(Ok(_))), "a later get: {quiet:?}");
    assert_eq!(stored, Some(vec![true]), "honest store to the requester");
    assert!(
        found.is_some_and(|found| found.values().all(|f| f.value.is_some())),
        "honest find on the requester"
    );
    assert!(
        known <= 1_000,
        "the requester's P2P node keeps addresses of {known} of the {RECORDS} peers one \
         find answer named (secure: at most 1,000)"
    );
}
