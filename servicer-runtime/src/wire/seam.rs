//! The machinery every wire implements: erasing handlers, serving inbound streams, and the
//! client half of the four kinds of call. Crate-internal: [`super::Wire`] seals it.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::{Stream, StreamExt};
use libp2p::{PeerId, StreamProtocol};

use super::{Call, Connector, Dispatch};
use crate::{RequestStream, ResponseStream, RpcContext, RpcError};

/// Limits that apply to one call, on either side.
#[derive(Debug, Clone, Copy)]
pub struct CallSettings {
    /// The largest message sent or accepted.
    pub max_message_size: usize,
    /// How long a stream may go without a message.
    pub idle: Duration,
}

/// How a message type travels on wire `W`. Implemented once per wire for a whole family of types
/// (serde types on the native wire, prost types on hivemind's).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel on the {W} wire",
    note = "native messages implement serde's `Serialize + DeserializeOwned`; hivemind's implement `prost::Message + Default`"
)]
pub trait Encode<W>: Sized {
    /// Appends the encoding of `self` to `dst`; returns how many bytes it took.
    fn encode(&self, dst: &mut BytesMut) -> Result<usize, RpcError>;

    /// Decodes one message that fills `bytes` exactly; `bytes` is at most `limit` long.
    fn decode(bytes: &[u8], limit: usize) -> Result<Self, RpcError>;
}

/// A wire's machinery. Handlers are erased into [`WireImpl::Serve`] values, which the wire's own
/// server half runs; the client half runs calls for stubs.
pub trait WireImpl: Sized + 'static {
    /// The wire's name, as [`WireMode`](crate::WireMode) spells it.
    const NAME: &'static str;

    /// A handler of this wire with its types erased.
    type Serve: Clone + Send + Sync + 'static;

    /// Erases a unary-unary handler.
    fn serve_unary<Req, Resp, E, F, Fut>(f: F) -> Self::Serve
    where
        Req: Encode<Self> + Send + 'static,
        Resp: Encode<Self> + Send + 'static,
        E: Display + Send + 'static,
        F: Fn(Req, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static;

    /// Erases a stream-unary handler.
    fn serve_stream_unary<Req, Resp, E, F, Fut>(f: F) -> Self::Serve
    where
        Req: Encode<Self> + Send + 'static,
        Resp: Encode<Self> + Send + 'static,
        E: Display + Send + 'static,
        F: Fn(RequestStream<Req>, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static;

    /// Erases a unary-stream handler.
    fn serve_unary_stream<Req, Resp, E, F, Fut>(f: F) -> Self::Serve
    where
        Req: Encode<Self> + Send + 'static,
        Resp: Encode<Self> + Send + 'static,
        E: Display + Send + 'static,
        F: Fn(Req, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResponseStream<Resp>, E>> + Send + 'static;

    /// Erases a stream-stream handler.
    fn serve_stream_stream<Req, Resp, E, F, Fut>(f: F) -> Self::Serve
    where
        Req: Encode<Self> + Send + 'static,
        Resp: Encode<Self> + Send + 'static,
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
        Req: Encode<Self> + Send + 'static,
        Resp: Encode<Self> + Send + 'static;

    /// Calls a stream-unary handler with every item of `requests`.
    fn stream_unary<C, Req, Resp, S>(
        call: Call<'_, C>,
        requests: S,
    ) -> impl Future<Output = Result<Resp, RpcError>> + Send
    where
        C: Connector,
        Req: Encode<Self> + Send + 'static,
        Resp: Encode<Self> + Send + 'static,
        S: Stream<Item = Req> + Send + 'static;

    /// Calls a unary-stream handler.
    fn unary_stream<C, Req, Resp>(
        call: Call<'_, C>,
        request: Req,
    ) -> impl Future<Output = Result<ResponseStream<Resp>, RpcError>> + Send
    where
        C: Connector,
        Req: Encode<Self> + Send + 'static,
        Resp: Encode<Self> + Send + 'static;

    /// Calls a stream-stream handler.
    fn stream_stream<C, Req, Resp, S>(
        call: Call<'_, C>,
        requests: S,
    ) -> impl Future<Output = Result<ResponseStream<Resp>, RpcError>> + Send
    where
        C: Connector,
        Req: Encode<Self> + Send + 'static,
        Resp: Encode<Self> + Send + 'static,
        S: Stream<Item = Req> + Send + 'static;
}

/// Resolves when the caller went away or broke protocol while a call whose requests are all in
/// runs: the caller sends nothing more, so anything at all (a frame, bytes, the end of the
/// stream or an error) means the call is over.
pub async fn caller_gone<S: Stream + Unpin>(incoming: &mut S) {
    let _ = incoming.next().await;
}
