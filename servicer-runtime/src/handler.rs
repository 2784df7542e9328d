//! Handlers: the kinds of call, type-erased handler values, interceptors and the registry.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::server::{self, CallOutcome, ServerCall};
use crate::{RequestStream, ResponseStream, RpcContext, RpcError};

/// A type that can travel as a request or response.
pub trait Message: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Message for T {}

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

/// A handler ready to register: an async function of one of the four kinds, with its types erased.
///
/// The error type `E` of a handler only needs `Display`: its text reaches the caller as
/// [`RpcError::Remote`].
#[derive(Clone)]
pub struct Handler {
    kind: RpcKind,
    serve: Arc<ServeFn>,
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
            serve: Arc::new(move |call| Box::pin(server::serve_unary(f.clone(), call))),
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
            serve: Arc::new(move |call| Box::pin(server::serve_stream_unary(f.clone(), call))),
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
            serve: Arc::new(move |call| Box::pin(server::serve_unary_stream(f.clone(), call))),
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
            serve: Arc::new(move |call| Box::pin(server::serve_stream_stream(f.clone(), call))),
        }
    }

    /// The kind of call this handler serves.
    pub fn kind(&self) -> RpcKind {
        self.kind
    }

    pub(crate) fn serve(&self, call: ServerCall) -> BoxFuture<'static, CallOutcome> {
        (self.serve)(call)
    }
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
    entries: RwLock<HashMap<String, Arc<Entry>>>,
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
        Ok(())
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
