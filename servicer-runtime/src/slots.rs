//! [`PeerSlots`]: a limit on what one peer may have running at once, kept per peer.

use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::FastMap;

/// Peers kept before the ones with no slot in use are dropped.
const PRUNE_AT: usize = 4096;

/// `per_peer` slots for every peer; the map holds peers with slots in use or recently used.
/// [`forget`](PeerSlots::forget) drops a peer whose slots are all free, and past [`PRUNE_AT`]
/// peers (callers that never connected, or left with calls in flight) the idle ones are dropped.
pub(crate) struct PeerSlots {
    per_peer: usize,
    peers: Mutex<Peers>,
}

#[derive(Default)]
struct Peers {
    slots: FastMap<PeerId, Arc<Semaphore>>,
    /// Size at which idle peers are dropped next.
    prune_at: usize,
}

impl PeerSlots {
    pub(crate) fn new(per_peer: usize) -> Self {
        PeerSlots {
            per_peer,
            peers: Mutex::new(Peers {
                slots: FastMap::default(),
                prune_at: PRUNE_AT,
            }),
        }
    }

    fn of(&self, peer: PeerId) -> Arc<Semaphore> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if peers.slots.len() >= peers.prune_at {
            // A semaphore referenced only here has no slot in use.
            peers.slots.retain(|_, slots| Arc::strong_count(slots) > 1);
            peers.prune_at = PRUNE_AT.max(2 * peers.slots.len());
        }
        peers
            .slots
            .entry(peer)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_peer)))
            .clone()
    }

    /// A slot of `peer`'s, if one is free now.
    pub(crate) fn try_acquire(&self, peer: PeerId) -> Option<OwnedSemaphorePermit> {
        self.of(peer).try_acquire_owned().ok()
    }

    /// How many slots `peer` has in use.
    pub(crate) fn in_use(&self, peer: &PeerId) -> usize {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.slots.get(peer).map_or(0, |slots| {
            self.per_peer.saturating_sub(slots.available_permits())
        })
    }

    /// Waits for a slot of `peer`'s; `None` if the slots are closed.
    pub(crate) async fn acquire(&self, peer: PeerId) -> Option<OwnedSemaphorePermit> {
        self.of(peer).acquire_owned().await.ok()
    }

    /// Drops the state of `peer` unless a slot of it is in use.
    pub(crate) fn forget(&self, peer: &PeerId) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        // A semaphore still referenced elsewhere belongs to calls in flight: keep it.
        if peers
            .slots
            .get(peer)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            peers.slots.remove(peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_peers_are_pruned() {
        let slots = PeerSlots::new(2);
        let busy = PeerId::random();
        let held = slots.try_acquire(busy);
        assert!(held.is_some());
        for _ in 0..3 * PRUNE_AT {
            drop(slots.try_acquire(PeerId::random()));
        }
        let peers = slots.peers.lock().unwrap();
        assert!(peers.slots.len() <= PRUNE_AT);
        assert!(
            peers.slots.contains_key(&busy),
            "a peer with a slot in use is kept"
        );
    }
}
