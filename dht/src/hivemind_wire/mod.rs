//! The DHT on hivemind's wire (`WireMode::Hivemind`): [`HivemindDhtProtocol`] serves
//! `DHTProtocol.rpc_ping/rpc_store/rpc_find` with hivemind's protobuf messages
//! ([`crate::hivemind_proto`]), and [`HivemindWire`] calls them, so one [`DhtProtocol`] talks to
//! hivemind 1.1.12 nodes and to Rust nodes in hivemind mode.
//!
//! Only the messages differ between the wires: both handlers and calls translate to the native
//! messages at this edge, and every DHT rule (limits, validation, routing table, replication)
//! runs once, in [`DhtProtocol`]. What hivemind's messages cannot carry is lost on this wire
//! (docs/hivemind-compat.md#w9): node addresses (peers are resolved by id through Kademlia in the
//! runtime) and the reason a store was refused ([`Rejection::Refused`](crate::Rejection::Refused)).

mod dictionary;
mod translate;

use std::sync::Arc;

use servicer_macros::servicer;
use servicer_runtime::{P2P, RpcContext};

use crate::error::DhtError;
use crate::hivemind_proto as proto;
use crate::messages::{
    FindRequest, FindResponse, PingRequest, PingResponse, StoreRequest, StoreResponse,
};
use crate::protocol::{DhtProtocol, DhtWire, Remote, WireCall};

/// [`DhtProtocol`]'s handlers on hivemind's wire. A [`DhtProtocol`] created on a node that runs
/// `WireMode::Hivemind` serves this instead of its native servicer; its stub calls hivemind
/// nodes with hivemind's own messages.
pub struct HivemindDhtProtocol {
    protocol: DhtProtocol,
}

impl HivemindDhtProtocol {
    /// Serves `protocol`'s handlers with hivemind's messages.
    pub fn new(protocol: DhtProtocol) -> Self {
        HivemindDhtProtocol { protocol }
    }
}

#[servicer(name = "DHTProtocol", wire = "hivemind")]
impl HivemindDhtProtocol {
    /// hivemind's `rpc_ping`: [`DhtProtocol::rpc_ping`] with hivemind's messages.
    pub async fn rpc_ping(
        &self,
        request: proto::PingRequest,
        ctx: RpcContext,
    ) -> Result<proto::PingResponse, DhtError> {
        let request = translate::ping_request(request)?;
        let response = self.protocol.rpc_ping(request, ctx).await?;
        Ok(translate::proto_ping_response(&response))
    }

    /// hivemind's `rpc_store`: [`DhtProtocol::rpc_store`] with hivemind's messages.
    pub async fn rpc_store(
        &self,
        request: proto::StoreRequest,
        ctx: RpcContext,
    ) -> Result<proto::StoreResponse, DhtError> {
        let request = translate::store_request(request)?;
        let response = self.protocol.rpc_store(request, ctx).await?;
        Ok(translate::proto_store_response(&response))
    }

    /// hivemind's `rpc_find`: [`DhtProtocol::rpc_find`] with hivemind's messages.
    pub async fn rpc_find(
        &self,
        request: proto::FindRequest,
        ctx: RpcContext,
    ) -> Result<proto::FindResponse, DhtError> {
        let request = translate::find_request(request)?;
        let response = self.protocol.rpc_find(request, ctx).await?;
        Ok(translate::proto_find_response(response))
    }
}

/// hivemind's wire: [`HivemindDhtProtocol`]'s handlers and stub, translating at the edge.
pub(crate) struct HivemindWire;

impl DhtWire for HivemindWire {
    fn serve(&self, protocol: &DhtProtocol) -> Result<(), DhtError> {
        Arc::new(HivemindDhtProtocol::new(protocol.clone()))
            .add_p2p_handlers(protocol.p2p(), None)?;
        Ok(())
    }

    fn unserve(&self, p2p: &P2P) -> Result<(), DhtError> {
        HivemindDhtProtocol::remove_p2p_handlers(p2p, None)?;
        Ok(())
    }

    /// hivemind's messages carry no addresses (peers find each other through Kademlia there:
    /// docs/hivemind-compat.md#w15).
    fn carries_addresses(&self) -> bool {
        false
    }

    fn ping(&self, remote: Remote<'_>, request: PingRequest) -> WireCall<PingResponse> {
        let stub = stub(remote);
        Box::pin(async move {
            let response = stub
                .rpc_ping(translate::proto_ping_request(&request))
                .await?;
            translate::ping_response(response)
        })
    }

    fn store(&self, remote: Remote<'_>, request: StoreRequest) -> WireCall<StoreResponse> {
        let stub = stub(remote);
        Box::pin(async move {
            let response = stub
                .rpc_store(translate::proto_store_request(request))
                .await?;
            translate::store_response(response)
        })
    }

    fn find(&self, remote: Remote<'_>, request: FindRequest) -> WireCall<FindResponse> {
        let stub = stub(remote);
        Box::pin(async move {
            let response = stub
                .rpc_find(translate::proto_find_request(&request))
                .await?;
            translate::find_response(response)
        })
    }
}

fn stub(remote: Remote<'_>) -> HivemindDhtProtocolStub {
    HivemindDhtProtocol::get_stub(remote.p2p, remote.peer).with_deadline(remote.deadline)
}
