//! The machinery every wire implements: erasing handlers, serving inbound streams, and the
//! client half of the four kinds of call. Crate-internal: [`super::Wire`] seals it.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use futures::Stream;
use libp2p::{PeerId, StreamProtocol};

use super::{Call, Connector, Dispatch, Message, WireId};
use crate::{RequestStream, ResponseStream, RpcContext, RpcError};

/// A wire's machinery. Handlers are erased into [`WireId::Serve`] values, which the wire's own
/// server half runs; the client half runs calls for stubs.
pub trait WireImpl: WireId {
    /// Erases a unary-unary handler.
    fn serve_unary<Req, Resp, E, F, Fut>(f: F) -> Self::Serve
    where
        Req: Message<Self>,
        Resp: Message<Self>,
        E: Display + Send + 'static,
        F: Fn(Req, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static;

    /// Erases a stream-unary handler.
    fn serve_stream_unary<Req, Resp, E, F, Fut>(f: F) -> Self::Serve
    where
        Req: Message<Self>,
        Resp: Message<Self>,
        E: Display + Send + 'static,
        F: Fn(RequestStream<Req>, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static;

    /// Erases a unary-stream handler.
    fn serve_unary_stream<Req, Resp, E, F, Fut>(f: F) -> Self::Serve
    where
        Req: Message<Self>,
        Resp: Message<Self>,
        E: Display + Send + 'static,
        F: Fn(Req, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResponseStream<Resp>, E>> + Send + 'static;

    /// Erases a stream-stream handler.
    fn serve_stream_stream<Req, Resp, E, F, Fut>(f: F) -> Self::Serve
    where
        Req: Message<Self>,
        Resp: Message<Self>,
        E: Display + Send + 'static,
        F: Fn(RequestStream<Req>, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResponseStream<Resp>, E>> + Send + 'static;

    /// The protocol a handler registered as `name` adds to what the node listens on, if the wire
    /// gives each handler its own (the native wire carries every handler on one protocol).
    fn handler_protocol(name: &str) -> Result<Option<StreamProtocol>, RpcError>;

    /// Whether inbound streams of `protocol` are this wire's.
    fn accepts(protocol: &StreamProtocol) -> bool;

    /// Serves an inbound stream of one of this wire's protocols.
    fn serve_inbound<D: Dispatch>(
        stream: libp2p::Stream,
        protocol: &StreamProtocol,
        remote: PeerId,
        dispatch: Arc<D>,
    ) -> impl Future<Output = ()> + Send + 'static;

    /// Calls a unary-unary handler.
    fn unary<C, Req, Resp>(
        call: Call<'_, C>,
        request: Req,
    ) -> impl Future<Output = Result<Resp, RpcError>> + Send
    where
        C: Connector,
        Req: Message<Self>,
        Resp: Message<Self>;

    /// Calls a stream-unary handler with every item of `requests`.
    fn stream_unary<C, Req, Resp, S>(
        call: Call<'_, C>,
        requests: S,
    ) -> impl Future<Output = Result<Resp, RpcError>> + Send
    where
        C: Connector,
        Req: Message<Self>,
        Resp: Message<Self>,
        S: Stream<Item = Req> + Send + 'static;

    /// Calls a unary-stream handler.
    fn unary_stream<C, Req, Resp>(
        call: Call<'_, C>,
        request: Req,
    ) -> impl Future<Output = Result<ResponseStream<Resp>, RpcError>> + Send
    where
        C: Connector,
        Req: Message<Self>,
        Resp: Message<Self>;

    /// Calls a stream-stream handler.
    fn stream_stream<C, Req, Resp, S>(
        call: Call<'_, C>,
        requests: S,
    ) -> impl Future<Output = Result<ResponseStream<Resp>, RpcError>> + Send
    where
        C: Connector,
        Req: Message<Self>,
        Resp: Message<Self>,
        S: Stream<Item = Req> + Send + 'static;
}
