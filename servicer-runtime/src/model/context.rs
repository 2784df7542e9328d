//! What a handler knows about the call it serves.

use std::sync::Arc;

use libp2p::PeerId;

/// The context of one inbound call, passed to every handler (hivemind's `P2PContext`).
#[derive(Debug, Clone)]
pub struct RpcContext {
    handle_name: Arc<str>,
    local_peer: PeerId,
    remote_peer: PeerId,
}

impl RpcContext {
    /// Builds a context, to call a handler method directly (unit tests, fuzzing); the runtime
    /// makes one for every inbound call.
    pub fn new(handle_name: Arc<str>, local_peer: PeerId, remote_peer: PeerId) -> Self {
        RpcContext {
            handle_name,
            local_peer,
            remote_peer,
        }
    }

    /// The full handle name, e.g. `Foo.rpc_x` or `ns::Foo.rpc_x`.
    pub fn handle_name(&self) -> &str {
        &self.handle_name
    }

    /// The handle name as the context holds it, to share without a copy.
    pub(crate) fn shared_handle_name(&self) -> &Arc<str> {
        &self.handle_name
    }

    /// This node's peer id.
    pub fn local_peer(&self) -> PeerId {
        self.local_peer
    }

    /// The caller's peer id, as authenticated by the transport's handshake.
    pub fn remote_peer(&self) -> PeerId {
        self.remote_peer
    }
}
