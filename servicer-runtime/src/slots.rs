//! [`PeerSlots`]: a limit on what one peer may have running at once, kept per peer; and
//! [`FairSlots`]: slots shared by every peer, with a per-peer limit and a fair share.

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

/// Slots in use under which a peer may take the reserved ones.
const LIGHT_USE: usize = 4;

/// `total` slots shared by every peer, at most `per_peer` for one, with a fair share: the last
/// eighth goes only to peers with fewer than [`LIGHT_USE`] in use, so that a few peers that fill
/// their own quota cannot lock every other peer out.
pub(crate) struct FairSlots {
    capacity: usize,
    total: Arc<Semaphore>,
    peers: PeerSlots,
    reserved: usize,
}

/// One slot of a [`FairSlots`], given back when dropped.
pub(crate) struct FairSlot {
    _permits: [OwnedSemaphorePermit; 2],
}

impl FairSlots {
    pub(crate) fn new(total: usize, per_peer: usize) -> Self {
        FairSlots {
            capacity: total,
            total: Arc::new(Semaphore::new(total)),
            peers: PeerSlots::new(per_peer),
            reserved: total / 8,
        }
    }

    /// A slot for `peer`, if its share and the total allow one now.
    pub(crate) fn try_acquire(&self, peer: PeerId) -> Option<FairSlot> {
        if self.total.available_permits() <= self.reserved && self.peers.in_use(&peer) >= LIGHT_USE
        {
            return None;
        }
        let peer = self.peers.try_acquire(peer)?;
        let total = self.total.clone().try_acquire_owned().ok()?;
        Some(FairSlot {
            _permits: [total, peer],
        })
    }

    /// Drops the per-peer state of a peer this node is no longer connected to.
    pub(crate) fn forget(&self, peer: &PeerId) {
        self.peers.forget(peer);
    }

    /// Slots in use now, by every peer.
    pub(crate) fn in_use(&self) -> usize {
        self.capacity - self.total.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_eighth_is_kept_for_light_peers() {
        let slots = FairSlots::new(16, 16);
        let (heavy, light) = (PeerId::random(), PeerId::random());
        let held: Vec<_> = std::iter::from_fn(|| slots.try_acquire(heavy)).collect();
        assert_eq!(held.len(), 14, "a peer fills all but the reserved two");
        let light_held: Vec<_> = std::iter::from_fn(|| slots.try_acquire(light))
            .take(4)
            .collect();
        assert_eq!(
            light_held.len(),
            2,
            "a light peer still gets the reserved slots"
        );
        drop(held);
        assert!(slots.try_acquire(heavy).is_some());
    }

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
