//! [`Handler`]: an async function of one of the four kinds, ready to register on a node.

use std::fmt;
use std::future::Future;

use crate::wire::{Message, Native, Wire};
use crate::{RequestStream, ResponseStream, RpcContext, RpcKind};

/// A handler ready to register: an async function of one of the four kinds on wire `W`, with
/// its types erased.
///
/// The error type `E` of a handler only needs `Display`: its text reaches the caller as
/// [`RpcError::Remote`](crate::RpcError::Remote). The wire is a type:
/// `Handler::<Native>::unary(..)` takes serde messages, `Handler::<Hivemind>::unary(..)` protobuf
/// ones; the four constructors read the same on both.
///
/// ```
/// use servicer_runtime::{Handler, Native};
///
/// let square = Handler::<Native>::unary(|x: i64, _ctx| async move { Ok::<_, String>(x * x) });
/// assert_eq!(square.kind(), servicer_runtime::RpcKind::UnaryUnary);
/// ```
pub struct Handler<W: Wire = Native> {
    kind: RpcKind,
    serve: W::Serve,
}

impl<W: Wire> Clone for Handler<W> {
    fn clone(&self) -> Self {
        Handler {
            kind: self.kind,
            serve: self.serve.clone(),
        }
    }
}

impl<W: Wire> fmt::Debug for Handler<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("wire", &W::NAME)
            .field("kind", &self.kind)
            .finish()
    }
}

impl<W: Wire> Handler<W> {
    /// One request in, one response out.
    pub fn unary<Req, Resp, E, F, Fut>(f: F) -> Self
    where
        Req: Message<W>,
        Resp: Message<W>,
        E: fmt::Display + Send + 'static,
        F: Fn(Req, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    {
        Handler {
            kind: RpcKind::UnaryUnary,
            serve: W::serve_unary(f),
        }
    }

    /// A stream of requests in, one response out.
    pub fn stream_unary<Req, Resp, E, F, Fut>(f: F) -> Self
    where
        Req: Message<W>,
        Resp: Message<W>,
        E: fmt::Display + Send + 'static,
        F: Fn(RequestStream<Req>, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    {
        Handler {
            kind: RpcKind::StreamUnary,
            serve: W::serve_stream_unary(f),
        }
    }

    /// One request in, a stream of responses out.
    pub fn unary_stream<Req, Resp, E, F, Fut>(f: F) -> Self
    where
        Req: Message<W>,
        Resp: Message<W>,
        E: fmt::Display + Send + 'static,
        F: Fn(Req, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResponseStream<Resp>, E>> + Send + 'static,
    {
        Handler {
            kind: RpcKind::UnaryStream,
            serve: W::serve_unary_stream(f),
        }
    }

    /// A stream of requests in, a stream of responses out.
    pub fn stream_stream<Req, Resp, E, F, Fut>(f: F) -> Self
    where
        Req: Message<W>,
        Resp: Message<W>,
        E: fmt::Display + Send + 'static,
        F: Fn(RequestStream<Req>, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResponseStream<Resp>, E>> + Send + 'static,
    {
        Handler {
            kind: RpcKind::StreamStream,
            serve: W::serve_stream_stream(f),
        }
    }

    /// The kind of call this handler serves.
    pub fn kind(&self) -> RpcKind {
        self.kind
    }

    /// The kind and the erased handler, for the registry.
    pub(crate) fn into_parts(self) -> (RpcKind, W::Serve) {
        (self.kind, self.serve)
    }
}
