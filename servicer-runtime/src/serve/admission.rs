//! Admission of inbound calls, the same on every wire: a slot under the node's and the caller's
//! concurrency limits, then the servicer's interceptor. [`Admitted`] holds the slot until the call
//! ends and then tells the interceptor how it went.

use std::sync::Arc;
use std::time::Instant;

use libp2p::PeerId;

use crate::slots::{FairSlot, FairSlots};
use crate::wire::{Admission, Route, WireId};
use crate::{Interceptor, RpcContext, RpcError};

/// Concurrent inbound calls, per peer and in total, with a fair share ([`FairSlots`]).
pub(crate) struct InboundLimits(FairSlots);

impl InboundLimits {
    /// At most `total` calls at once, and `per_peer` from any one peer.
    pub(crate) fn new(total: usize, per_peer: usize) -> Self {
        InboundLimits(FairSlots::new(total, per_peer))
    }

    /// Admits a call routed to a handler: a slot, then the interceptor.
    pub(crate) fn admit<W: WireId>(&self, route: &Route<W>) -> Result<Admitted, RpcError> {
        let slot = self
            .0
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
            _slot: slot,
            watched: route
                .interceptor
                .clone()
                .map(|interceptor| (interceptor, route.ctx.clone())),
            started: Instant::now(),
        })
    }

    /// Drops the per-peer state of a peer this node is no longer connected to.
    pub(crate) fn forget(&self, peer: &PeerId) {
        self.0.forget(peer);
    }

    /// Calls in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.0.in_use()
    }
}

/// An admitted inbound call: its slots, and the interceptor to tell when it ends.
pub(crate) struct Admitted {
    _slot: FairSlot,
    watched: Option<(Arc<dyn Interceptor>, RpcContext)>,
    started: Instant,
}

impl Admission for Admitted {
    fn finish(self, ok: bool) {
        let Admitted {
            _slot,
            watched,
            started,
        } = self;
        drop(_slot);
        if let Some((interceptor, ctx)) = watched {
            interceptor.after(&ctx, ok, started.elapsed());
        }
    }
}
