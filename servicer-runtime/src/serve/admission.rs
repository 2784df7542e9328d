//! Admission of inbound calls, the same on every wire: a slot under the node's and the caller's
//! concurrency limits, then the servicer's interceptor. [`Admitted`] holds the slot until the call
//! ends and then tells the interceptor how it went.

use std::sync::Arc;
use std::time::Instant;

use libp2p::PeerId;

use crate::metrics::{Metrics, Outcome};
use crate::slots::{FairSlot, FairSlots};
use crate::wire::{Admission, Route, WireId};
use crate::{Interceptor, RpcContext, RpcError};

/// Concurrent inbound calls, per peer and in total, with a fair share ([`FairSlots`]), and what
/// the node counts of them.
pub(crate) struct InboundLimits {
    slots: FairSlots,
    metrics: Metrics,
}

impl InboundLimits {
    /// At most `total` calls at once, and `per_peer` from any one peer.
    pub(crate) fn new(total: usize, per_peer: usize, metrics: Metrics) -> Self {
        InboundLimits {
            slots: FairSlots::new(total, per_peer),
            metrics,
        }
    }

    /// Counts a call refused before admission (the node stopping).
    pub(crate) fn refused_busy(&self, ctx: &RpcContext) {
        self.metrics
            .call(ctx.shared_handle_name(), Outcome::Busy, None);
    }

    /// Admits a call routed to a handler: a slot, then the interceptor.
    pub(crate) fn admit<W: WireId>(&self, route: &Route<W>) -> Result<Admitted, RpcError> {
        let handler = route.ctx.shared_handle_name();
        let Some(slot) = self.slots.try_acquire(route.ctx.remote_peer()) else {
            self.metrics.call(handler, Outcome::Busy, None);
            return Err(RpcError::Busy {
                reason: "too many concurrent calls; retry later".into(),
            });
        };
        if let Some(interceptor) = &route.interceptor
            && let Err(message) = interceptor.before(&route.ctx)
        {
            self.metrics.call(handler, Outcome::Refused, None);
            return Err(RpcError::Refused { message });
        }
        Ok(Admitted {
            _slot: slot,
            handler: handler.clone(),
            metrics: self.metrics.clone(),
            watched: route
                .interceptor
                .clone()
                .map(|interceptor| (interceptor, route.ctx.clone())),
            started: Instant::now(),
        })
    }

    /// Drops the per-peer state of a peer this node is no longer connected to.
    pub(crate) fn forget(&self, peer: &PeerId) {
        self.slots.forget(peer);
    }

    /// Calls in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.slots.in_use()
    }
}

/// An admitted inbound call: its slots, and the interceptor to tell when it ends.
pub(crate) struct Admitted {
    _slot: FairSlot,
    handler: Arc<str>,
    metrics: Metrics,
    watched: Option<(Arc<dyn Interceptor>, RpcContext)>,
    started: Instant,
}

impl Admission for Admitted {
    fn finish(self, ok: bool) {
        let Admitted {
            _slot,
            handler,
            metrics,
            watched,
            started,
        } = self;
        drop(_slot);
        let outcome = if ok { Outcome::Ok } else { Outcome::Error };
        metrics.call(&handler, outcome, Some(started.elapsed()));
        if let Some((interceptor, ctx)) = watched {
            interceptor.after(&ctx, ok, started.elapsed());
        }
    }
}
