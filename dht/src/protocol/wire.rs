//! [`DhtWire`]: what the protocol needs from a wire (serve its handlers, call them on a peer with
//! native messages, and whether messages carry node addresses), and [`NativeWire`], the wire of
//! the protocol's own messages. A protocol is created with one wire and uses only that one.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use servicer_runtime::{P2P, PeerId};

use super::DhtProtocol;
use crate::error::DhtError;
use crate::messages::{
    FindRequest, FindResponse, PingRequest, PingResponse, StoreRequest, StoreResponse,
};

/// A request in flight on a wire: its answer in native messages.
pub(crate) type WireCall<T> = BoxFuture<'static, Result<T, DhtError>>;

/// A peer to call, from the node `p2p`, with a deadline.
#[derive(Clone, Copy)]
pub(crate) struct Remote<'a> {
    pub(crate) p2p: &'a P2P,
    pub(crate) peer: PeerId,
    pub(crate) deadline: Duration,
}

/// The messages and protocol names the DHT's RPCs travel in. Every DHT rule runs in
/// [`DhtProtocol`], on native messages; a wire only carries them, translating at its edge.
pub(crate) trait DhtWire: Send + Sync + 'static {
    /// Serves `protocol`'s handlers on its node.
    fn serve(&self, protocol: &DhtProtocol) -> Result<(), DhtError>;

    /// Stops serving them on `p2p`.
    fn unserve(&self, p2p: &P2P) -> Result<(), DhtError>;

    /// Whether node addresses survive the trip: if not, find answers are sent without looking
    /// them up.
    fn carries_addresses(&self) -> bool;

    /// Calls `rpc_ping` on `remote`.
    fn ping(&self, remote: Remote<'_>, request: PingRequest) -> WireCall<PingResponse>;

    /// Calls `rpc_store` on `remote`.
    fn store(&self, remote: Remote<'_>, request: StoreRequest) -> WireCall<StoreResponse>;

    /// Calls `rpc_find` on `remote`.
    fn find(&self, remote: Remote<'_>, request: FindRequest) -> WireCall<FindResponse>;
}

/// The native wire: [`DhtProtocol`]'s own `#[servicer]` handlers and stub, with the messages
/// of [`crate::messages`] as they are.
pub(crate) struct NativeWire;

impl DhtWire for NativeWire {
    fn serve(&self, protocol: &DhtProtocol) -> Result<(), DhtError> {
        Arc::new(protocol.clone()).add_p2p_handlers(protocol.p2p(), None)?;
        Ok(())
    }

    fn unserve(&self, p2p: &P2P) -> Result<(), DhtError> {
        DhtProtocol::remove_p2p_handlers(p2p, None)?;
        Ok(())
    }

    fn carries_addresses(&self) -> bool {
        true
    }

    fn ping(&self, remote: Remote<'_>, request: PingRequest) -> WireCall<PingResponse> {
        let stub = DhtProtocol::get_stub(remote.p2p, remote.peer).with_deadline(remote.deadline);
        Box::pin(async move { Ok(stub.rpc_ping(request).await?) })
    }

    fn store(&self, remote: Remote<'_>, request: StoreRequest) -> WireCall<StoreResponse> {
        let stub = DhtProtocol::get_stub(remote.p2p, remote.peer).with_deadline(remote.deadline);
        Box::pin(async move { Ok(stub.rpc_store(request).await?) })
    }

    fn find(&self, remote: Remote<'_>, request: FindRequest) -> WireCall<FindResponse> {
        let stub = DhtProtocol::get_stub(remote.p2p, remote.peer).with_deadline(remote.deadline);
        Box::pin(async move { Ok(stub.rpc_find(request).await?) })
    }
}
