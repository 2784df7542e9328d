//! [`Outbound`]: how calls from this node reach one peer (the wires' [`Connector`]).

use libp2p::swarm::ConnectionId;
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::OwnedSemaphorePermit;

use super::p2p::P2P;
use crate::RpcError;
use crate::wire::{CallSettings, Connector, Pool};

/// Calls from a node to one peer: what stubs hand the wires. Cloning it clones a handle.
#[derive(Clone)]
pub(crate) struct Outbound {
    p2p: P2P,
    peer: PeerId,
}

impl Outbound {
    pub(crate) fn new(p2p: P2P, peer: PeerId) -> Self {
        Outbound { p2p, peer }
    }

    /// The node calls go through.
    pub(crate) fn p2p(&self) -> &P2P {
        &self.p2p
    }
}

impl Connector for Outbound {
    fn peer(&self) -> PeerId {
        self.peer
    }

    fn settings(&self) -> CallSettings {
        let config = self.p2p.config();
        CallSettings {
            max_message_size: config.max_message_size,
            idle: config.stream_idle_deadline,
        }
    }

    async fn slot(&self) -> Result<OwnedSemaphorePermit, RpcError> {
        self.p2p.shared().outbound.acquire(self.peer).await
    }

    async fn open(
        &self,
        protocol: StreamProtocol,
        refused: RpcError,
    ) -> Result<(libp2p::Stream, ConnectionId), RpcError> {
        self.p2p.open(self.peer, protocol, refused).await
    }

    fn pool(&self) -> &Pool {
        &self.p2p.shared().pool
    }
}
