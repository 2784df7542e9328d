//! Admission of inbound calls, the same on every wire: a slot under the node's and the caller's
//! concurrency limits, then the servicer's interceptor. [`Admitted`] holds the slot until the call
//! ends and then tells the interceptor how it went.

use std::sync::Arc;
use std::time::Instant;

use libp2p::PeerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::slots::PeerSlots;
use crate::wire::{Admission, Route, WireId};
use crate::{Interceptor, RpcContext, RpcError};

/// Calls in flight under which a peer may take the reserved slots.
const LIGHT_USE: usize = 4;

/// Concurrent inbound calls, per peer and in total, with a fair share: the last eighth of the
/// slots goes only to peers with fewer than [`LIGHT_USE`] calls in flight, so that a few peers
/// that fill their own quota cannot lock every other peer out.
pub(crate) struct InboundLimits {
    total: Arc<Semaphore>,
    peers: PeerSlots,
    reserved: usize,
}

impl InboundLimits {
    /// At most `total` calls at once, and `per_peer` from any one peer.
    pub(crate) fn new(total: usize, per_peer: usize) -> Self {
        InboundLimits {
            total: Arc::new(Semaphore::new(total)),
            peers: PeerSlots::new(per_peer),
            reserved: total / 8,
        }
    }

    /// Admits a call routed to a handler: a slot, then the interceptor.
    pub(crate) fn admit<W: WireId>(&self, route: &Route<W>) -> Result<Admitted, RpcError> {
        let permits = self
            .try_acquire(route.ctx.remote_peer())
            .ok_or_else(|| RpcError::Busy {
                reason: "too many concurrent calls; retry later".into(),
            })?;
        if let Some(interceptor) = &route.interceptor {
            interceptor
                .before(&route.ctx)
                .map_err(|message| RpcError::Refused { message })?;
        }
        Ok(Admitted {
            _permits: permits,
            watched: route
                .interceptor
                .clone()
                .map(|interceptor| (interceptor, route.ctx.clone())),
            started: Instant::now(),
        })
    }

    fn try_acquire(&self, peer: PeerId) -> Option<[OwnedSemaphorePermit; 2]> {
        if self.total.available_permits() <= self.reserved && self.peers.in_use(&peer) >= LIGHT_USE
        {
            return None;
        }
        let peer = self.peers.try_acquire(peer)?;
        let total = self.total.clone().try_acquire_owned().ok()?;
        Some([total, peer])
    }

    /// Drops the per-peer state of a peer this node is no longer connected to.
    pub(crate) fn forget(&self, peer: &PeerId) {
        self.peers.forget(peer);
    }
}

/// An admitted inbound call: its slots, and the interceptor to tell when it ends.
pub(crate) struct Admitted {
    _permits: [OwnedSemaphorePermit; 2],
    watched: Option<(Arc<dyn Interceptor>, RpcContext)>,
    started: Instant,
}

impl Admission for Admitted {
    fn finish(self, ok: bool) {
        let Admitted {
            _permits,
            watched,
            started,
        } = self;
        drop(_permits);
        if let Some((interceptor, ctx)) = watched {
            interceptor.after(&ctx, ok, started.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_eighth_is_kept_for_light_peers() {
        let limits = InboundLimits::new(16, 16);
        let (heavy, light) = (PeerId::random(), PeerId::random());
        let held: Vec<_> = std::iter::from_fn(|| limits.try_acquire(heavy)).collect();
        assert_eq!(held.len(), 14, "a peer fills all but the reserved two");
        let light_held: Vec<_> = std::iter::from_fn(|| limits.try_acquire(light))
            .take(4)
            .collect();
        assert_eq!(
            light_held.len(),
            2,
            "a light peer still gets the reserved slots"
        );
        drop(held);
        assert!(limits.try_acquire(heavy).is_some());
    }
}
