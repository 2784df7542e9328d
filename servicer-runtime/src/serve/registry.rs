//! [`Registry`]: the handlers of a node by handle name, for every wire.

use std::any::Any;
use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use libp2p::StreamProtocol;

use super::Handler;
#[cfg(test)]
use crate::wire::Native;
use crate::wire::{Wire, WireId};
use crate::{FastMap, Interceptor, RpcError, RpcKind};

/// A registered handler with what it was registered with.
pub(crate) struct Entry {
    pub name: Arc<str>,
    pub kind: RpcKind,
    /// The wire it serves on ([`crate::wire::WireId::NAME`]).
    pub wire: &'static str,
    /// Its `W::Serve`, for the wire `W` it was made for.
    serve: Box<dyn Any + Send + Sync>,
    /// The protocol it adds to what the node listens on, if its wire gives it one.
    protocol: Option<StreamProtocol>,
    pub interceptor: Option<Arc<dyn Interceptor>>,
}

impl Entry {
    /// The erased handler, if the entry serves on wire `W`.
    pub(crate) fn serve<W: WireId>(&self) -> Option<&W::Serve> {
        self.serve.downcast_ref()
    }
}

/// Handlers by handle name; read on every inbound call, written on (un)registration.
pub(crate) struct Registry {
    entries: RwLock<FastMap<String, Arc<Entry>>>,
    /// Protocols listened on whatever is registered (those of wires that carry every handler on
    /// one protocol).
    shared: Vec<StreamProtocol>,
    /// The protocols to listen on, rebuilt on every change: connections ask for it on every poll.
    protocols: RwLock<Arc<Vec<StreamProtocol>>>,
}

impl Registry {
    /// An empty registry whose node always listens on `shared`.
    pub(crate) fn new(shared: Vec<StreamProtocol>) -> Self {
        Registry {
            entries: RwLock::default(),
            protocols: RwLock::new(Arc::new(shared.clone())),
            shared,
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Adds all handlers or none.
    pub(crate) fn add<W: Wire>(
        &self,
        handlers: Vec<(String, Handler<W>)>,
        interceptor: Option<Arc<dyn Interceptor>>,
    ) -> Result<(), RpcError> {
        let mut prepared = Vec::with_capacity(handlers.len());
        for (name, handler) in handlers {
            let protocol = W::handler_protocol(&name)?;
            let (kind, serve) = handler.into_parts();
            prepared.push(Entry {
                name: Arc::from(name.as_str()),
                kind,
                wire: W::NAME,
                serve: Box::new(serve),
                protocol,
                interceptor: interceptor.clone(),
            });
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let mut seen = HashSet::new();
        for entry in &prepared {
            if entries.contains_key(&*entry.name) || !seen.insert(entry.name.clone()) {
                return Err(RpcError::DuplicateHandler {
                    name: entry.name.to_string(),
                });
            }
        }
        for entry in prepared {
            entries.insert(entry.name.to_string(), Arc::new(entry));
        }
        self.rebuild_protocols(&entries);
        Ok(())
    }

    /// The protocols inbound streams may be negotiated for: the shared ones, and those of the
    /// handlers whose wire gives each handler its own.
    pub(crate) fn protocols(&self) -> Arc<Vec<StreamProtocol>> {
        self.protocols
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn rebuild_protocols(&self, entries: &FastMap<String, Arc<Entry>>) {
        let mut protocols = self.shared.clone();
        protocols.extend(entries.values().filter_map(|entry| entry.protocol.clone()));
        *self.protocols.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(protocols);
    }

    /// Removes every named handler that exists; reports the first name that did not.
    pub(crate) fn remove<I, S>(&self, names: I) -> Result<(), RpcError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let mut missing = None;
        for name in names {
            let name = name.as_ref();
            if entries.remove(name).is_none() && missing.is_none() {
                missing = Some(name.to_owned());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_is_all_or_nothing() {
        let registry = Registry::new(Vec::new());
        let h = || Handler::<Native>::unary(|x: u32, _ctx| async move { Ok::<_, String>(x) });
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
        assert!(registry.remove(["a", "zzz"]).is_err());
        assert!(registry.names().is_empty());
    }
}
