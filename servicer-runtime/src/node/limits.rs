//! [`OutboundLimits`]: the per-peer limit on concurrent outbound calls.

use libp2p::PeerId;
use tokio::sync::OwnedSemaphorePermit;

use crate::RpcError;
use crate::slots::PeerSlots;

/// Concurrent outbound calls per peer; more wait for a free slot.
pub(crate) struct OutboundLimits(PeerSlots);

impl OutboundLimits {
    pub(crate) fn new(per_peer: usize) -> Self {
        OutboundLimits(PeerSlots::new(per_peer))
    }

    /// Waits for a slot for one outbound call to `peer`.
    pub(crate) async fn acquire(&self, peer: PeerId) -> Result<OwnedSemaphorePermit, RpcError> {
        self.0.acquire(peer).await.ok_or(RpcError::Shutdown)
    }

    /// Drops the state of a peer this node is no longer connected to.
    pub(crate) fn forget(&self, peer: &PeerId) {
        self.0.forget(peer);
    }
}
