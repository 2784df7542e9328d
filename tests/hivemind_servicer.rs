//! `#[servicer(wire = "hivemind")]`: the same servicer model over hivemind's wire, with protobuf
//! messages, between two nodes in `WireMode::Hivemind` on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use p2p_servicer::dht::hivemind_proto::{
    FindRequest, FindResponse, FindResult, NodeInfo, PingRequest, PingResponse, StoreRequest,
    StoreResponse,
};
use p2p_servicer::runtime::{
    P2P, P2PConfig, RequestStream, ResponseStream, RpcContext, RpcError, WireMode,
};
use p2p_servicer::servicer;

/// Named like hivemind's DHT servicer, so its handle names are `DHTProtocol.rpc_*`.
struct FakeDht {
    node_id: Vec<u8>,
}

#[servicer(name = "DHTProtocol", wire = "hivemind")]
impl FakeDht {
    async fn rpc_ping(&self, req: PingRequest, ctx: RpcContext) -> Result<PingResponse, String> {
        assert_eq!(ctx.handle_name(), "DHTProtocol.rpc_ping");
        Ok(PingResponse {
            auth: None,
            peer: Some(NodeInfo {
                node_id: self.node_id.clone(),
            }),
            dht_time: 2.5,
            available: req.validate,
        })
    }

    async fn rpc_store(
        &self,
        req: StoreRequest,
        _ctx: RpcContext,
    ) -> Result<StoreResponse, String> {
        if req.keys.len() != req.values.len() {
            return Err("ValueError('Data is not aligned')".into());
        }
        Ok(StoreResponse {
            auth: None,
            store_ok: req.keys.iter().map(|k| k.len() == 20).collect(),
            peer: None,
        })
    }

    async fn rpc_find_many(
        &self,
        mut requests: RequestStream<FindRequest>,
        _ctx: RpcContext,
    ) -> Result<FindResponse, String> {
        let mut results = Vec::new();
        while let Some(request) = requests.next().await {
            let request = request.map_err(|e| e.to_string())?;
            results.extend(request.keys.into_iter().map(|key| FindResult {
                value: key,
                ..FindResult::default()
            }));
        }
        Ok(FindResponse {
            results,
            ..FindResponse::default()
        })
    }

    async fn rpc_watch(
        &self,
        req: PingRequest,
        _ctx: RpcContext,
    ) -> Result<ResponseStream<PingResponse>, String> {
        let n = req.peer.map(|p| p.node_id.len()).unwrap_or(0);
        Ok(ResponseStream::iter((0..n).map(|i| PingResponse {
            dht_time: i as f64,
            ..PingResponse::default()
        })))
    }

    async fn rpc_relay(
        &self,
        requests: RequestStream<PingRequest>,
        _ctx: RpcContext,
    ) -> Result<ResponseStream<PingResponse>, String> {
        Ok(ResponseStream::new(requests.map(|r| {
            r.map(|req| PingResponse {
                available: req.validate,
                ..PingResponse::default()
            })
        })))
    }
}

async fn pair() -> (P2P, P2P) {
    let config = || {
        P2PConfig::default()
            .with_wire_mode(WireMode::Hivemind)
            .with_unary_deadline(Duration::from_secs(20))
    };
    let server = P2P::create(config()).await.expect("server");
    let client = P2P::create(
        config()
            .with_initial_peers(server.visible_maddrs())
            .with_require_initial_peers(true),
    )
    .await
    .expect("client");
    (server, client)
}

#[tokio::test]
async fn generated_stub_and_handlers_on_hivemind_wire() {
    let (server, client) = pair().await;
    Arc::new(FakeDht {
        node_id: vec![9; 20],
    })
    .add_p2p_handlers(&server, None)
    .expect("register");
    let mut names = server.handler_names();
    names.sort();
    assert_eq!(
        names,
        [
            "DHTProtocol.rpc_find_many",
            "DHTProtocol.rpc_ping",
            "DHTProtocol.rpc_relay",
            "DHTProtocol.rpc_store",
            "DHTProtocol.rpc_watch"
        ]
    );
    let stub = FakeDht::get_stub(&client, server.peer_id());

    let pong = stub
        .rpc_ping(PingRequest {
            validate: true,
            ..PingRequest::default()
        })
        .await
        .expect("ping");
    assert!(pong.available);
    assert_eq!(pong.peer.map(|p| p.node_id), Some(vec![9; 20]));

    let stored = stub
        .rpc_store(StoreRequest {
            keys: vec![vec![1; 20], vec![2; 3]],
            values: vec![vec![0xc0], vec![0xc0]],
            ..StoreRequest::default()
        })
        .await
        .expect("store");
    assert_eq!(stored.store_ok, [true, false]);
    let refused = stub
        .rpc_store(StoreRequest {
            keys: vec![vec![1; 20]],
            ..StoreRequest::default()
        })
        .await;
    assert_eq!(
        refused.err(),
        Some(RpcError::Remote {
            message: "ValueError('Data is not aligned')".into()
        })
    );

    let requests = (0..3u8).map(|i| FindRequest {
        keys: vec![vec![i; 20]],
        ..FindRequest::default()
    });
    let found = stub
        .rpc_find_many(futures::stream::iter(requests))
        .await
        .expect("find");
    assert_eq!(found.results.len(), 3);
    assert_eq!(found.results[2].value, vec![2; 20]);

    let watched: Vec<f64> = stub
        .rpc_watch(PingRequest {
            peer: Some(NodeInfo {
                node_id: vec![0; 4],
            }),
            ..PingRequest::default()
        })
        .await
        .expect("watch")
        .map(|r| r.expect("item").dht_time)
        .collect()
        .await;
    assert_eq!(watched, [0.0, 1.0, 2.0, 3.0]);

    let relayed: Vec<bool> = stub
        .rpc_relay(futures::stream::iter([true, false].map(|validate| {
            PingRequest {
                validate,
                ..PingRequest::default()
            }
        })))
        .await
        .expect("relay")
        .map(|r| r.expect("item").available)
        .collect()
        .await;
    assert_eq!(relayed, [true, false]);

    FakeDht::remove_p2p_handlers(&server, None).expect("remove");
    let gone = stub.rpc_ping(PingRequest::default()).await;
    assert_eq!(
        gone.err(),
        Some(RpcError::UnknownHandler {
            name: "DHTProtocol.rpc_ping".into()
        })
    );
}
