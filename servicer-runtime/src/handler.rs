//! Handlers: the kinds of call, type-erased handler values, interceptors and the registry.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::server::{self, CallOutcome, ServerCall};
use crate::{FastMap, RequestStream, ResponseStream, RpcContext, RpcError};

/// A type that can travel as a request or response.
pub trait Message: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Message for T {}

/// A protobuf message, as handlers and calls on [`WireMode::Hivemind`](crate::WireMode::Hivemind)
/// exchange them (hivemind's messages, e.g. [`crate::hivemind::proto`]).
pub trait ProtoMessage: prost::Message + Default + Send + 'static {}

impl<T: prost::Message + Default + Send + 'static> ProtoMessage for T {}

/// The four kinds of call, named input-output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RpcKind {
    /// One request, one response.
    UnaryUnary,
    /// A stream of requests, one response.
    StreamUnary,
    /// One request, a stream of responses.
    UnaryStream,
    /// A stream of requests, a stream of responses.
    StreamStream,
}

impl RpcKind {
    /// Whether the caller sends a stream of requests.
    pub fn stream_input(self) -> bool {
        matches!(self, RpcKind::StreamUnary | RpcKind::StreamStream)
    }

    /// Whether the handler answers with a stream of responses.
    pub fn stream_output(self) -> bool {
        matches!(self, RpcKind::UnaryStream | RpcKind::StreamStream)
    }
}

impl fmt::Display for RpcKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RpcKind::UnaryUnary => "unary-unary",
            RpcKind::StreamUnary => "stream-unary",
            RpcKind::UnaryStream => "unary-stream",
            RpcKind::StreamStream => "stream-stream",
        })
    }
}

/// Sees every inbound call before its handler runs (hivemind's `wrapper=`): for authorization,
/// rate limiting or metrics.
pub trait Interceptor: Send + Sync + 'static {
    /// Called before the handler; `Err(message)` refuses the call and the caller gets
    /// [`RpcError::Refused`] with that message.
    fn before(&self, ctx: &RpcContext) -> Result<(), String>;

    /// Called after the handler finished (`ok` is false on a handler error, a cancelled call or a
    /// broken stream).
    fn after(&self, ctx: &RpcContext, ok: bool, elapsed: Duration) {
        let _ = (ctx, ok, elapsed);
    }
}

impl<F> Interceptor for F
where
    F: Fn(&RpcContext) -> Result<(), String> + Send + Sync + 'static,
{
    fn before(&self, ctx: &RpcContext) -> Result<(), String> {
        self(ctx)
    }
}

type ServeFn = dyn Fn(ServerCall) -> BoxFuture<'static, CallOutcome> + Send + Sync;

/// A hivemind-wire unary handler with its types erased: request bytes in, response bytes or the
/// error text out.
pub(crate) type ProtoUnaryFn =
    dyn Fn(Bytes, RpcContext) -> BoxFuture<'static, Result<Vec<u8>, String>> + Send + Sync;

/// A hivemind-wire streaming handler of any of the three streaming kinds, types erased: unary
/// input takes the first request, unary output is a stream of one.
pub(crate) type ProtoStreamFn = dyn Fn(
        RequestStream<Bytes>,
        RpcContext,
    ) -> BoxFuture<'static, Result<ResponseStream<Vec<u8>>, String>>
    + Send
    + Sync;

/// How a handler is served: on the native wire, or on hivemind's.
#[derive(Clone)]
pub(crate) enum Serve {
    Native(Arc<ServeFn>),
    ProtoUnary(Arc<ProtoUnaryFn>),
    ProtoStream(Arc<ProtoStreamFn>),
}

/// A handler ready to register: an async function of one of the four kinds, with its types erased.
///
/// The error type `E` of a handler only needs `Display`: its text reaches the caller as
/// [`RpcError::Remote`].
#[derive(Clone)]
pub struct Handler {
    kind: RpcKind,
    serve: Serve,
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler").field("kind", &self.kind).finish()
    }
}

impl Handler {
    /// One request in, one response out.
    pub fn unary<Req, Resp, E, F, Fut>(f: F) -> Handler
    where
        Req: Message,
        Resp: Message,
        E: fmt::Display + Send + 'static,
        F: Fn(Req, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler {
            kind: RpcKind::UnaryUnary,
            serve: Serve::Native(Arc::new(move |call| {
                Box::pin(server::serve_unary(f.clone(), call))
            })),
        }
    }

    /// A stream of requests in, one response out.
    pub fn stream_unary<Req, Resp, E, F, Fut>(f: F) -> Handler
    where
        Req: Message,
        Resp: Message,
        E: fmt::Display + Send + 'static,
        F: Fn(RequestStream<Req>, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler {
            kind: RpcKind::StreamUnary,
            serve: Serve::Native(Arc::new(move |call| {
                Box::pin(server::serve_stream_unary(f.clone(), call))
            })),
        }
    }

    /// One request in, a stream of responses out.
    pub fn unary_stream<Req, Resp, E, F, Fut>(f: F) -> Handler
    where
        Req: Message,
        Resp: Message,
        E: fmt::Display + Send + 'static,
        F: Fn(Req, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResponseStream<Resp>, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler {
            kind: RpcKind::UnaryStream,
            serve: Serve::Native(Arc::new(move |call| {
                Box::pin(server::serve_unary_stream(f.clone(), call))
            })),
        }
    }

    /// A stream of requests in, a stream of responses out.
    pub fn stream_stream<Req, Resp, E, F, Fut>(f: F) -> Handler
    where
        Req: Message,
        Resp: Message,
        E: fmt::Display + Send + 'static,
        F: Fn(RequestStream<Req>, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResponseStream<Resp>, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler {
            kind: RpcKind::StreamStream,
            serve: Serve::Native(Arc::new(move |call| {
                Box::pin(server::serve_stream_stream(f.clone(), call))
            })),
        }
    }

    /// One protobuf request in, one protobuf response out, on hivemind's wire (a handler that
    /// hivemind registers with `add_protobuf_handler` and neither `stream_input` nor
    /// `stream_output`). The error's text reaches the caller as `CallUnaryResponse.error`.
    pub fn proto_unary<Req, Resp, E, F, Fut>(f: F) -> Handler
    where
        Req: ProtoMessage,
        Resp: ProtoMessage,
        E: fmt::Display + Send + 'static,
        F: Fn(Req, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler {
            kind: RpcKind::UnaryUnary,
            serve: Serve::ProtoUnary(Arc::new(move |bytes: Bytes, ctx| {
                let f = f.clone();
                Box::pin(async move {
                    let request =
                        Req::decode(bytes).map_err(|e| format!("cannot decode request: {e}"))?;
                    match f(request, ctx).await {
                        Ok(response) => Ok(response.encode_to_vec()),
                        Err(err) => Err(err.to_string()),
                    }
                })
            })),
        }
    }

    /// A stream of protobuf requests in, one response out, on hivemind's wire (`stream_input`).
    pub fn proto_stream_unary<Req, Resp, E, F, Fut>(f: F) -> Handler
    where
        Req: ProtoMessage,
        Resp: ProtoMessage,
        E: fmt::Display + Send + 'static,
        F: Fn(RequestStream<Req>, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler::proto_stream(RpcKind::StreamUnary, move |requests, ctx| {
            let f = f.clone();
            async move {
                let response = f(decode_requests(requests), ctx)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(ResponseStream::iter([response.encode_to_vec()]))
            }
        })
    }

    /// One protobuf request in, a stream of responses out, on hivemind's wire (`stream_output`).
    pub fn proto_unary_stream<Req, Resp, E, F, Fut>(f: F) -> Handler
    where
        Req: ProtoMessage,
        Resp: ProtoMessage,
        E: fmt::Display + Send + 'static,
        F: Fn(Req, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResponseStream<Resp>, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler::proto_stream(RpcKind::UnaryStream, move |requests, ctx| {
            let f = f.clone();
            async move {
                let request = first_request::<Req>(requests).await?;
                let responses = f(request, ctx).await.map_err(|e| e.to_string())?;
                Ok(encode_responses(responses))
            }
        })
    }

    /// A stream of protobuf requests in, a stream of responses out, on hivemind's wire.
    pub fn proto_stream_stream<Req, Resp, E, F, Fut>(f: F) -> Handler
    where
        Req: ProtoMessage,
        Resp: ProtoMessage,
        E: fmt::Display + Send + 'static,
        F: Fn(RequestStream<Req>, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResponseStream<Resp>, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler::proto_stream(RpcKind::StreamStream, move |requests, ctx| {
            let f = f.clone();
            async move {
                let responses = f(decode_requests(requests), ctx)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(encode_responses(responses))
            }
        })
    }

    fn proto_stream<F, Fut>(kind: RpcKind, f: F) -> Handler
    where
        F: Fn(RequestStream<Bytes>, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResponseStream<Vec<u8>>, String>> + Send + 'static,
    {
        Handler {
            kind,
            serve: Serve::ProtoStream(Arc::new(move |requests, ctx| Box::pin(f(requests, ctx)))),
        }
    }

    /// The kind of call this handler serves.
    pub fn kind(&self) -> RpcKind {
        self.kind
    }

    /// Whether this handler speaks hivemind's wire (made by a `proto_*` constructor).
    pub fn is_proto(&self) -> bool {
        !matches!(self.serve, Serve::Native(_))
    }

    pub(crate) fn serve_kind(&self) -> &Serve {
        &self.serve
    }

    /// Serves a native call; `None` for a hivemind-wire handler.
    pub(crate) fn serve(&self, call: ServerCall) -> Option<BoxFuture<'static, CallOutcome>> {
        match &self.serve {
            Serve::Native(serve) => Some(serve(call)),
            _ => None,
        }
    }
}

fn decode_requests<Req: ProtoMessage>(requests: RequestStream<Bytes>) -> RequestStream<Req> {
    RequestStream::new(requests.map(|item| {
        item.and_then(|bytes| {
            Req::decode(bytes)
                .map_err(|e| RpcError::Malformed(format!("cannot decode request: {e}")))
        })
    }))
}

async fn first_request<Req: ProtoMessage>(
    mut requests: RequestStream<Bytes>,
) -> Result<Req, String> {
    match requests.next().await {
        Some(Ok(bytes)) => Req::decode(bytes).map_err(|e| format!("cannot decode request: {e}")),
        Some(Err(err)) => Err(err.to_string()),
        None => Err("the caller sent no request".into()),
    }
}

fn encode_responses<Resp: ProtoMessage>(
    responses: ResponseStream<Resp>,
) -> ResponseStream<Vec<u8>> {
    ResponseStream::new(responses.map(|item| item.map(|m| m.encode_to_vec())))
}

/// A registered handler with what it was registered with.
pub(crate) struct Entry {
    pub name: Arc<str>,
    pub handler: Handler,
    pub interceptor: Option<Arc<dyn Interceptor>>,
}

/// Handlers by handle name; read on every inbound call, written on (un)registration.
#[derive(Default)]
pub(crate) struct Registry {
    entries: RwLock<FastMap<String, Arc<Entry>>>,
    /// The libp2p protocols of the hivemind-wire handlers (`PREFIX ++ name`, see
    /// [`crate::hivemind::muxer`]), rebuilt on every change: connections ask for it on every poll.
    proto_protocols: RwLock<Arc<Vec<libp2p::StreamProtocol>>>,
}

impl Registry {
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Adds all handlers or none.
    pub(crate) fn add(
        &self,
        handlers: Vec<(String, Handler)>,
        interceptor: Option<Arc<dyn Interceptor>>,
    ) -> Result<(), RpcError> {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let mut seen = std::collections::HashSet::new();
        for (name, _) in &handlers {
            if entries.contains_key(name) || !seen.insert(name.as_str()) {
                return Err(RpcError::DuplicateHandler { name: name.clone() });
            }
        }
        for (name, handler) in handlers {
            let entry = Entry {
                name: Arc::from(name.as_str()),
                handler,
                interceptor: interceptor.clone(),
            };
            entries.insert(name, Arc::new(entry));
        }
        self.rebuild_protocols(&entries);
        Ok(())
    }

    /// The protocols of the hivemind-wire handlers, for a connection's `listen_protocol`.
    pub(crate) fn proto_protocols(&self) -> Arc<Vec<libp2p::StreamProtocol>> {
        self.proto_protocols
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn rebuild_protocols(&self, entries: &FastMap<String, Arc<Entry>>) {
        let protocols = entries
            .values()
            .filter(|entry| entry.handler.is_proto())
            .filter_map(|entry| crate::hivemind::muxer::protocol(&entry.name).ok())
            .collect();
        *self
            .proto_protocols
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(protocols);
    }

    /// Removes every named handler that exists; reports the first name that did not.
    pub(crate) fn remove(&self, names: &[String]) -> Result<(), RpcError> {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let mut missing = None;
        for name in names {
            if entries.remove(name).is_none() && missing.is_none() {
                missing = Some(name.clone());
            }
        }
        self.rebuild_protocols(&entries);
        match missing {
            Some(name) => Err(RpcError::UnknownHandler { name }),
            None => Ok(()),
        }
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = entries.keys().cloned().collect();
        names.sort();
        names
    }
}

/// The handle name of a handler, exactly as hivemind forms it: `Foo.rpc_x`, or `ns::Foo.rpc_x`.
pub fn handle_name(namespace: Option<&str>, servicer: &str, method: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}::{servicer}.{method}"),
        None => format!("{servicer}.{method}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_names_match_hivemind() {
        assert_eq!(
            handle_name(None, "DHTProtocol", "rpc_find"),
            "DHTProtocol.rpc_find"
        );
        assert_eq!(
            handle_name(Some("expert.0"), "Servicer", "rpc_x"),
            "expert.0::Servicer.rpc_x"
        );
    }

    #[test]
    fn registration_is_all_or_nothing() {
        let registry = Registry::default();
        let h = || Handler::unary(|x: u32, _ctx| async move { Ok::<_, String>(x) });
        registry.add(vec![("a".into(), h())], None).unwrap();
        let err = registry
            .add(vec![("b".into(), h()), ("a".into(), h())], None)
            .unwrap_err();
        assert_eq!(err, RpcError::DuplicateHandler { name: "a".into() });
        assert_eq!(registry.names(), vec!["a".to_string()]);
        assert!(
            registry
                .add(vec![("c".into(), h()), ("c".into(), h())], None)
                .is_err()
        );
        assert!(registry.remove(&["a".into(), "zzz".into()]).is_err());
        assert!(registry.names().is_empty());
    }
}
