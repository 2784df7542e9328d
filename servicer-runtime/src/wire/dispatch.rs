//! [`Dispatch`]: what the server halves of the wires ask the serving layer for every inbound
//! call: which handler, and whether the call may run.

use std::sync::Arc;

use libp2p::PeerId;

use super::ServeSettings;
use crate::memory::MessageMemory;
use crate::{Interceptor, RpcContext, RpcError, RpcKind};

/// What tells a wire's handlers apart from another wire's: its name and the type its handlers are
/// erased into.
pub trait WireId: Sized + 'static {
    /// The wire's name, as [`WireMode`](crate::WireMode) spells it.
    const NAME: &'static str;

    /// A handler of this wire with its types erased.
    type Serve: Clone + Send + Sync + 'static;
}

/// Finds handlers and admits calls (implemented by the serving layer).
pub trait Dispatch: Send + Sync + 'static {
    /// What an admitted call holds until it ends.
    type Guard: Admission;

    /// The handler registered as `name` for wire `W`, checked against the kind the caller
    /// expects when the wire carries it; the error to answer with otherwise.
    fn route<W: WireId>(
        &self,
        name: &str,
        kind: Option<RpcKind>,
        remote: PeerId,
    ) -> Result<Route<W>, RpcError>;

    /// Admits a routed call (concurrency limits, then the interceptor), or refuses it with
    /// [`RpcError::Busy`] or [`RpcError::Refused`].
    fn admit<W: WireId>(&self, route: &Route<W>) -> Result<Self::Guard, RpcError>;

    /// The limits of inbound calls.
    fn settings(&self) -> ServeSettings;

    /// The node's budget for large messages of inbound calls.
    fn memory(&self) -> &Arc<MessageMemory>;
}

/// An admitted call's hold on its slot.
pub trait Admission: Send + 'static {
    /// Ends the call (`ok`: it finished without an error), giving its slot back.
    fn finish(self, ok: bool);
}

/// A handler found for an inbound call.
pub struct Route<W: WireId> {
    /// The handler, erased.
    pub serve: W::Serve,
    /// The call's context.
    pub ctx: RpcContext,
    /// The interceptor it was registered with.
    pub interceptor: Option<Arc<dyn Interceptor>>,
}
