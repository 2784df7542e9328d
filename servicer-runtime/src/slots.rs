//! [`PeerSlots`]: a limit on what one peer may have running at once, kept per peer.

use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::FastMap;

/// `per_peer` slots for every peer; the map holds peers with slots in use or recently used, and
/// [`forget`](PeerSlots::forget) drops a peer whose slots are all free.
pub(crate) struct PeerSlots {
    per_peer: usize,
    peers: Mutex<FastMap<PeerId, Arc<Semaphore>>>,
}

impl PeerSlots {
    pub(crate) fn new(per_peer: usize) -> Self {
        PeerSlots {
            per_peer,
            peers: Mutex::default(),
        }
    }

    fn of(&self, peer: PeerId) -> Arc<Semaphore> {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(peer)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_peer)))
            .clone()
    }

    /// A slot of `peer`'s, if one is free now.
    pub(crate) fn try_acquire(&self, peer: PeerId) -> Option<OwnedSemaphorePermit> {
        self.of(peer).try_acquire_owned().ok()
    }

    /// Waits for a slot of `peer`'s; `None` if the slots are closed.
    pub(crate) async fn acquire(&self, peer: PeerId) -> Option<OwnedSemaphorePermit> {
        self.of(peer).acquire_owned().await.ok()
    }

    /// Drops the state of `peer` unless a slot of it is in use.
    pub(crate) fn forget(&self, peer: &PeerId) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        // A semaphore still referenced elsewhere belongs to calls in flight: keep it.
        if peers.get(peer).is_some_and(|s| Arc::strong_count(s) == 1) {
            peers.remove(peer);
        }
    }
}
