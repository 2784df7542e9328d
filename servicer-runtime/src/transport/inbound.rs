//! [`Inbound`]: where a connection handler sends the streams remote peers open.

use std::sync::Arc;

use libp2p::{PeerId, StreamProtocol};

/// Receives inbound streams (implemented by the node's server).
pub(crate) trait Inbound: Send + Sync + 'static {
    /// The protocols inbound streams may be negotiated for; asked whenever a connection accepts
    /// a stream, so it may change while connections are open.
    fn protocols(&self) -> Arc<Vec<StreamProtocol>>;

    /// Takes a stream `remote` opened and negotiated for `protocol`.
    fn accept(&self, stream: libp2p::Stream, protocol: StreamProtocol, remote: PeerId);
}
