//! [`StubBase`]: the client side of calls, wrapped by every generated stub.

use std::marker::PhantomData;
use std::time::Duration;

use futures::Stream;
use libp2p::PeerId;

use crate::node::Outbound;
use crate::wire::{Call, Message, Native, Wire};
use crate::{HandlePrefix, P2P, ResponseStream, RpcError};

/// Calls handlers of one servicer on one remote peer, over wire `W`. Cheap to clone.
///
/// Generated stubs wrap it; it can also be used directly with a method name. The four calls read
/// the same on every wire; the wire is the stub's type (`StubBase<Native>`, the default, or
/// `StubBase<Hivemind>`).
///
/// ```no_run
/// # async fn demo(p2p: servicer_runtime::P2P, peer: servicer_runtime::PeerId) -> Result<(), servicer_runtime::RpcError> {
/// use servicer_runtime::{Native, StubBase};
///
/// let stub = StubBase::<Native>::new(&p2p, peer, "Calculator", None);
/// let square: i64 = stub.unary("rpc_square", 12i64).await?;
/// # Ok(()) }
/// ```
pub struct StubBase<W: Wire = Native> {
    outbound: Outbound,
    prefix: HandlePrefix,
    deadline: Option<Duration>,
    _wire: PhantomData<W>,
}

impl<W: Wire> Clone for StubBase<W> {
    fn clone(&self) -> Self {
        StubBase {
            outbound: self.outbound.clone(),
            prefix: self.prefix.clone(),
            deadline: self.deadline,
            _wire: PhantomData,
        }
    }
}

impl<W: Wire> std::fmt::Debug for StubBase<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubBase")
            .field("wire", &W::NAME)
            .field("peer", &self.peer())
            .field("prefix", &self.prefix)
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl<W: Wire> StubBase<W> {
    /// A stub for `servicer`'s handlers (optionally in `namespace`) on `peer`.
    pub fn new(p2p: &P2P, peer: PeerId, servicer: &str, namespace: Option<&str>) -> Self {
        StubBase {
            outbound: Outbound::new(p2p.clone(), peer),
            prefix: HandlePrefix::new(namespace, servicer),
            deadline: None,
            _wire: PhantomData,
        }
    }

    /// A copy whose unary calls (and the opening of streaming calls) use this deadline instead of
    /// the node's default.
    pub fn with_deadline(&self, deadline: Duration) -> Self {
        StubBase {
            deadline: Some(deadline),
            ..self.clone()
        }
    }

    /// The peer this stub calls.
    pub fn peer(&self) -> PeerId {
        crate::wire::Connector::peer(&self.outbound)
    }

    /// The node this stub calls through.
    pub fn p2p(&self) -> &P2P {
        self.outbound.p2p()
    }

    /// Calls a unary-unary handler.
    pub async fn unary<Req: Message<W>, Resp: Message<W>>(
        &self,
        method: &str,
        request: Req,
    ) -> Result<Resp, RpcError> {
        let name = self.prefix.handle(method);
        W::unary(self.call(&name)?, request).await
    }

    /// Calls a stream-unary handler with every item of `requests`.
    pub async fn stream_unary<Req, Resp, S>(
        &self,
        method: &str,
        requests: S,
    ) -> Result<Resp, RpcError>
    where
        Req: Message<W>,
        Resp: Message<W>,
        S: Stream<Item = Req> + Send + 'static,
    {
        let name = self.prefix.handle(method);
        W::stream_unary(self.call(&name)?, requests).await
    }

    /// Calls a unary-stream handler; the returned stream yields the responses, and dropping it
    /// cancels the remote handler.
    pub async fn unary_stream<Req: Message<W>, Resp: Message<W>>(
        &self,
        method: &str,
        request: Req,
    ) -> Result<ResponseStream<Resp>, RpcError> {
        let name = self.prefix.handle(method);
        W::unary_stream(self.call(&name)?, request).await
    }

    /// Calls a stream-stream handler: `requests` are sent from a task while the returned stream
    /// yields responses; dropping the returned stream stops both and cancels the remote handler.
    pub async fn stream_stream<Req, Resp, S>(
        &self,
        method: &str,
        requests: S,
    ) -> Result<ResponseStream<Resp>, RpcError>
    where
        Req: Message<W>,
        Resp: Message<W>,
        S: Stream<Item = Req> + Send + 'static,
    {
        let name = self.prefix.handle(method);
        W::stream_stream(self.call(&name)?, requests).await
    }

    /// A call to the handler `name`, if this node can make it.
    fn call<'a>(&'a self, name: &'a str) -> Result<Call<'a, Outbound>, RpcError> {
        let p2p = self.p2p();
        if p2p.is_shut_down() {
            return Err(RpcError::Shutdown);
        }
        if !p2p.speaks::<W>() {
            return Err(RpcError::Unsupported(format!(
                "calling `{name}` on the {} wire needs a node that speaks it; create it with \
                 P2PConfig::with_wire_mode",
                W::NAME
            )));
        }
        Ok(Call {
            connector: &self.outbound,
            name,
            deadline: self.deadline.unwrap_or(p2p.config().unary_deadline),
        })
    }
}
