//! [`OutboundLimits`]: the per-peer limit on concurrent outbound calls.

use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{FastMap, RpcError};

/// Concurrent outbound calls per peer; more wait for a free slot.
pub(crate) struct OutboundLimits {
    per_peer: usize,
    peers: Mutex<FastMap<PeerId, Arc<Semaphore>>>,
}

impl OutboundLimits {
    pub(crate) fn new(per_peer: usize) -> Self {
        OutboundLimits {
            per_peer,
            peers: Mutex::default(),
        }
    }

    /// Waits for a slot for one outbound call to `peer`.
    pub(crate) async fn acquire(&self, peer: PeerId) -> Result<OwnedSemaphorePermit, RpcError> {
        let slots = self
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(peer)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_peer)))
            .clone();
        slots.acquire_owned().await.map_err(|_| RpcError::Shutdown)
    }

    /// Drops the state of a peer this node is no longer connected to.
    pub(crate) fn forget(&self, peer: &PeerId) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        // A semaphore still referenced elsewhere belongs to calls in flight: keep it.
        if peers.get(peer).is_some_and(|s| Arc::strong_count(s) == 1) {
            peers.remove(peer);
        }
    }
}
