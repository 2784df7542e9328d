//! Admission of inbound calls, the same on every wire: a slot under the node's and the caller's
//! concurrency limits, then the servicer's interceptor. [`Admitted`] holds the slot until the call
//! ends and then tells the interceptor how it went.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use libp2p::PeerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::wire::{Admission, Route, WireId};
use crate::{FastMap, Interceptor, RpcContext, RpcError};

/// Concurrent inbound calls, per peer and in total.
pub(crate) struct InboundLimits {
    total: Arc<Semaphore>,
    per_peer: usize,
    peers: Mutex<FastMap<PeerId, Arc<Semaphore>>>,
}

impl InboundLimits {
    /// At most `total` calls at once, and `per_peer` from any one peer.
    pub(crate) fn new(total: usize, per_peer: usize) -> Self {
        InboundLimits {
            total: Arc::new(Semaphore::new(total)),
            per_peer,
            peers: Mutex::default(),
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
        let peer_slots = self
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(peer)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_peer)))
            .clone();
        let peer = peer_slots.try_acquire_owned().ok()?;
        let total = self.total.clone().try_acquire_owned().ok()?;
        Some([total, peer])
    }

    /// Drops the per-peer state of a peer this node is no longer connected to.
    pub(crate) fn forget(&self, peer: &PeerId) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        // A semaphore still referenced elsewhere belongs to calls in flight: keep it.
        if peers.get(peer).is_some_and(|s| Arc::strong_count(s) == 1) {
            peers.remove(peer);
        }
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
