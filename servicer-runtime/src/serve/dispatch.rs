//! [`Server`]: the serving side of a node. It hands each inbound stream to the wire whose protocol
//! it was negotiated for, and answers that wire's questions ([`Dispatch`]): which handler, and
//! whether the call may run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use libp2p::{PeerId, StreamProtocol};

use super::Handler;
use super::admission::{Admitted, InboundLimits};
use super::registry::Registry;
use crate::config::P2PConfig;
use crate::memory::MessageMemory;
use crate::slots::FairSlots;
use crate::wire::{
    CallSettings, Dispatch, Hivemind, Native, Route, ServeSettings, Wire, WireId, WireImpl,
};
use crate::{Interceptor, RpcContext, RpcError, RpcKind};

/// What serves a node's inbound calls.
pub(crate) struct Server {
    local_peer: PeerId,
    settings: ServeSettings,
    registry: Registry,
    limits: InboundLimits,
    streams: FairSlots,
    memory: Arc<MessageMemory>,
    closed: AtomicBool,
}

impl Server {
    /// A server for the node `local_peer` with the limits of `config`.
    pub(crate) fn new(local_peer: PeerId, config: &P2PConfig) -> Self {
        Server {
            local_peer,
            settings: ServeSettings {
                call: CallSettings {
                    max_message_size: config.max_message_size,
                    idle: config.stream_idle_deadline,
                },
                wait_for_call: config.server_idle_timeout,
                request_timeout: config.request_timeout,
            },
            registry: Registry::new(vec![crate::wire::PROTOCOL]),
            limits: InboundLimits::new(
                config.max_inbound_calls,
                config.max_inbound_calls_per_peer,
                config.metrics.clone(),
            ),
            streams: FairSlots::new(
                config.max_inbound_streams,
                config.max_inbound_streams_per_peer,
            ),
            memory: MessageMemory::new(config.max_message_memory),
            closed: AtomicBool::new(false),
        }
    }

    /// Registers handlers of wire `W`, all or none.
    pub(crate) fn add<W: Wire>(
        &self,
        handlers: Vec<(String, Handler<W>)>,
        interceptor: Option<Arc<dyn Interceptor>>,
    ) -> Result<(), RpcError> {
        self.registry.add(handlers, interceptor)
    }

    /// The registry of handlers.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The protocols inbound streams may be negotiated for.
    pub(crate) fn protocols(&self) -> Arc<Vec<StreamProtocol>> {
        self.registry.protocols()
    }

    /// Serves an inbound stream negotiated for `protocol` on its own task, with the wire the
    /// protocol belongs to.
    pub(crate) fn accept(
        self: &Arc<Self>,
        stream: libp2p::Stream,
        protocol: &StreamProtocol,
        remote: PeerId,
    ) {
        // A stream past the limits is dropped, which resets it: the caller sees it fail at once.
        let Some(slot) = self.streams.try_acquire(remote) else {
            tracing::debug!(%protocol, %remote, "inbound stream over the limits; reset");
            return;
        };
        if Native::accepts(protocol) {
            let served = Native::serve_inbound(stream, protocol, remote, self.clone());
            tokio::spawn(async move {
                served.await;
                drop(slot);
            });
        } else if Hivemind::accepts(protocol) {
            let served = Hivemind::serve_inbound(stream, protocol, remote, self.clone());
            tokio::spawn(async move {
                served.await;
                drop(slot);
            });
        } else {
            tracing::debug!(%protocol, %remote, "stream of a protocol no wire serves");
        }
    }

    /// Forgets what the limits keep for a peer this node is no longer connected to.
    pub(crate) fn forget(&self, peer: &PeerId) {
        self.limits.forget(peer);
        self.streams.forget(peer);
    }

    /// Inbound calls in flight now.
    pub(crate) fn calls_in_flight(&self) -> usize {
        self.limits.in_flight()
    }

    /// Stops serving: calls that arrive later are refused as busy (so their callers know to go
    /// elsewhere), and calls in flight go on.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl Dispatch for Server {
    type Guard = Admitted;

    fn route<W: WireId>(
        &self,
        name: &str,
        kind: Option<RpcKind>,
        remote: PeerId,
    ) -> Result<Route<W>, RpcError> {
        let Some(entry) = self.registry.get(name) else {
            return Err(RpcError::UnknownHandler { name: name.into() });
        };
        if let Some(expected) = kind
            && entry.kind != expected
        {
            return Err(RpcError::KindMismatch {
                name: name.into(),
                expected: expected.to_string(),
                actual: entry.kind.to_string(),
            });
        }
        let Some(serve) = entry.serve::<W>() else {
            let kind = kind.unwrap_or(entry.kind);
            return Err(RpcError::KindMismatch {
                name: name.into(),
                expected: format!("{kind} on the {} wire", W::NAME),
                actual: format!("{} on the {} wire", entry.kind, entry.wire),
            });
        };
        Ok(Route {
            serve: serve.clone(),
            ctx: RpcContext::new(entry.name.clone(), self.local_peer, remote),
            interceptor: entry.interceptor.clone(),
        })
    }

    fn admit<W: WireId>(&self, route: &Route<W>) -> Result<Admitted, RpcError> {
        if self.is_closed() {
            self.limits.refused_busy(&route.ctx);
            return Err(RpcError::Busy {
                reason: "the node is shutting down".into(),
            });
        }
        self.limits.admit(route)
    }

    fn settings(&self) -> ServeSettings {
        self.settings
    }

    fn memory(&self) -> &Arc<MessageMemory> {
        &self.memory
    }
}
