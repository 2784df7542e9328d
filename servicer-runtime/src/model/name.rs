//! Handle names, formed exactly as hivemind forms them: `Class.rpc_x`, or `ns::Class.rpc_x` in a
//! namespace. [`HandlePrefix`] is the one formatter; [`handle_name`] is a shorthand for it.

use std::fmt;
use std::sync::Arc;

/// The part of a handle name before the method: `Class.` or `ns::Class.`, formatted once and
/// shared by every call of a stub.
#[derive(Clone, PartialEq, Eq)]
pub struct HandlePrefix(Arc<str>);

impl HandlePrefix {
    /// The prefix of `servicer`'s handlers, optionally in `namespace`.
    pub fn new(namespace: Option<&str>, servicer: &str) -> Self {
        let prefix = match namespace {
            Some(ns) => format!("{ns}::{servicer}."),
            None => format!("{servicer}."),
        };
        HandlePrefix(prefix.into())
    }

    /// The handle name of `method`.
    pub fn handle(&self, method: &str) -> String {
        let mut name = String::with_capacity(self.0.len() + method.len());
        name.push_str(&self.0);
        name.push_str(method);
        name
    }
}

impl fmt::Debug for HandlePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// The handle name of a handler: `Foo.rpc_x`, or `ns::Foo.rpc_x` in namespace `ns`.
pub fn handle_name(namespace: Option<&str>, servicer: &str, method: &str) -> String {
    HandlePrefix::new(namespace, servicer).handle(method)
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
        let prefix = HandlePrefix::new(Some("ns"), "Foo");
        assert_eq!(prefix.handle("rpc_a"), "ns::Foo.rpc_a");
        assert_eq!(format!("{prefix:?}"), "\"ns::Foo.\"");
    }
}
