//! The node's server as the transport's [`Inbound`].

use std::sync::Arc;

use libp2p::{PeerId, StreamProtocol};

use crate::serve::Server;
use crate::transport::Inbound;

/// Hands inbound streams straight from connection handlers to the server, which serves each on
/// its own task; the swarm task is not involved.
pub(crate) struct ToServer(pub Arc<Server>);

impl Inbound for ToServer {
    fn protocols(&self) -> Arc<Vec<StreamProtocol>> {
        self.0.protocols()
    }

    fn accept(&self, stream: libp2p::Stream, protocol: StreamProtocol, remote: PeerId) {
        self.0.accept(stream, &protocol, remote);
    }
}
