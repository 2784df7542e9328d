//! [`Connector`]: how the client halves of the wires reach a peer (the node implements it).

use std::future::Future;
use std::time::Duration;

use libp2p::swarm::ConnectionId;
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::OwnedSemaphorePermit;

use super::native::Pool;
use super::settings::CallSettings;
use crate::RpcError;

/// What a wire's client half needs from the node to call one peer.
/// Cheap to clone: a streaming call keeps one for as long as its responses last.
pub trait Connector: Clone + Unpin + Send + Sync + 'static {
    /// The peer called.
    fn peer(&self) -> PeerId;

    /// The limits of a call.
    fn settings(&self) -> CallSettings;

    /// Waits for a slot for one more call to the peer; the call holds it until it ends.
    fn slot(&self) -> impl Future<Output = Result<OwnedSemaphorePermit, RpcError>> + Send;

    /// A newly negotiated stream of `protocol` to the peer, and the connection it is on;
    /// `refused` is the error if the peer does not support `protocol`.
    fn open(
        &self,
        protocol: StreamProtocol,
        refused: RpcError,
    ) -> impl Future<Output = Result<(libp2p::Stream, ConnectionId), RpcError>> + Send;

    /// The node's idle native streams, which native calls reuse.
    fn pool(&self) -> &Pool;
}

/// One call as a stub starts it.
pub struct Call<'a, C> {
    /// How the call reaches its peer.
    pub connector: &'a C,
    /// The full handle name, e.g. `ns::Foo.rpc_x`.
    pub name: &'a str,
    /// How long a unary call, or opening a streaming call, may take.
    pub deadline: Duration,
}

impl<C> Call<'_, C> {
    /// `fut`'s outcome, or [`RpcError::DeadlineExceeded`] once the call's deadline passes.
    pub async fn within<T>(
        &self,
        fut: impl Future<Output = Result<T, RpcError>>,
    ) -> Result<T, RpcError> {
        tokio::time::timeout(self.deadline, fut)
            .await
            .unwrap_or(Err(RpcError::DeadlineExceeded(self.deadline)))
    }
}
