//! A fake DHT peer answers finds with values expiring at +inf, NaN or in 31 years, and pings
//! with a NaN clock: a client must neither return nor cache those values, and a validating
//! strict ping must fail.

use std::sync::{Arc, Mutex};

use p2p_servicer::dht::messages::{
    AddrList, FindRequest, FindResponse, FindResult, FoundValue, NodeInfo, PingRequest,
    PingResponse, StoreRequest, StoreResponse,
};
use p2p_servicer::dht::{
    DhtConfig, DhtError, DhtId, DhtNode, DhtValue, Limits, encode_value, get_dht_time, testing,
};
use p2p_servicer::runtime::{P2P, P2PConfig, RpcContext};
use p2p_servicer::servicer;

use crate::common::{PATIENCE, config, honest_near, honest_round};

const YEAR: f64 = 365.25 * 24.0 * 3600.0;
const EVIL: &str = "forever";

/// A DHT peer whose values never expire and whose clock reads NaN.
struct Unbounded {
    node_id: DhtId,
    expiration_time: Mutex<f64>,
}

impl Unbounded {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            node_id: Some(self.node_id),
            addrs: AddrList::default(),
        }
    }
}

#[servicer(name = "DHTProtocol")]
impl Unbounded {
    async fn rpc_ping(
        &self,
        _request: PingRequest,
        _ctx: RpcContext,
    ) -> Result<PingResponse, DhtError> {
        Ok(PingResponse {
            peer: self.info(),
            dht_time: f64::NAN,
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
        let expiration_time = *self.expiration_time.lock().unwrap();
        let value = encode_value(EVIL).unwrap();
        Ok(FindResponse {
            peer: self.info(),
            results: request
                .keys
                .iter()
                .map(|_| FindResult {
                    value: FoundValue::Regular {
                        value: value.clone(),
                        expiration_time,
                    },
                    nearest: Vec::new(),
                })
                .collect(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_with_unbounded_expiration() {
    let fake_p2p = P2P::create(P2PConfig::default()).await.unwrap();
    let fake = Arc::new(Unbounded {
        node_id: DhtId::random(),
        expiration_time: Mutex::new(f64::INFINITY),
    });
    fake.clone().add_p2p_handlers(&fake_p2p, None).unwrap();
    let (fake_id, fake_peer) = (fake.node_id, fake_p2p.peer_id());

    // The fake peer is the client's only peer. Neither bootstrap check may stop the test: the
    // rounds below put the fake peer in the routing table themselves.
    let client = DhtNode::create(
        DhtConfig::default()
            .with_wait_timeout(PATIENCE)
            .with_initial_peers(fake_p2p.visible_maddrs())
            .with_ensure_bootstrap_success(false)
            .with_strict(false),
    )
    .await
    .expect("create the client");

    let mut problems = Vec::new();
    let rounds: [(&str, f64); 3] = [
        ("+inf", f64::INFINITY),
        ("NaN", f64::NAN),
        ("now + 31 years", get_dht_time() + 31.0 * YEAR),
    ];
    for (label, expiration_time) in rounds {
        *fake.expiration_time.lock().unwrap() = expiration_time;
        testing::update_routing_table(client.protocol(), Some(fake_id), fake_peer, true);
        let key = format!("expiring at {label}");
        let got = tokio::time::timeout(PATIENCE, client.get::<String>(key.as_str(), true))
            .await
            .unwrap_or_else(|_| panic!("{label}: the get did not end"));
        match got {
            Ok(Some(v)) if v.value == DhtValue::Regular(EVIL.to_owned()) => problems.push(format!(
                "{label}: get returned the value, expiring at {}",
                v.expiration_time
            )),
            Ok(_) | Err(_) => {}
        }
        if let Some(cached) = client
            .protocol()
            .cached_value(&DhtId::generate(key.as_str()))
        {
            problems.push(format!(
                "{label}: the client cached the value, expiring at {}",
                cached.expiration_time
            ));
        }
    }

    testing::update_routing_table(client.protocol(), Some(fake_id), fake_peer, true);
    match client.protocol().call_ping(fake_peer, true, true).await {
        Err(_) => {}
        Ok(answer) => problems.push(format!(
            "a validating strict ping of a peer whose clock reads NaN answered Ok({answer:?})"
        )),
    }

    // The client still serves an honest peer.
    let honest = honest_near(&client, config(Limits::default())).await;
    honest_round(
        honest.protocol(),
        client.p2p().peer_id(),
        "after the fake peer",
    )
    .await;
    assert!(problems.is_empty(), "{}", problems.join("; "));

    honest.shutdown().await;
    client.shutdown().await;
    fake_p2p.shutdown().await;
}
