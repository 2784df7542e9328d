//! The runtime's one error type.

use std::time::Duration;

use libp2p::PeerId;

/// Everything that can go wrong in the runtime: creating a node, registering handlers, and calls.
///
/// Call errors say which side failed: [`RpcError::Remote`] is the remote handler's own error,
/// the others come from the transport or from this node.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum RpcError {
    /// The remote handler returned an error; `message` is its `Display` text.
    #[error("remote handler failed: {message}")]
    Remote {
        /// The handler error's message.
        message: String,
    },
    /// No handler with this name is registered (on the remote peer for calls, locally for removal).
    #[error("no handler named `{name}` is registered")]
    UnknownHandler {
        /// The handle name that was asked for.
        name: String,
    },
    /// A handler with this name is already registered; remove it first.
    #[error("a handler named `{name}` is already registered")]
    DuplicateHandler {
        /// The handle name.
        name: String,
    },
    /// The called handler has a different kind (unary / streaming) than the caller expected.
    #[error("handler `{name}` is {actual}, but was called as {expected}")]
    KindMismatch {
        /// The handle name.
        name: String,
        /// The kind the caller used.
        expected: String,
        /// The kind the handler has.
        actual: String,
    },
    /// The remote node's interceptor refused the call.
    #[error("call refused: {message}")]
    Refused {
        /// Why the interceptor refused.
        message: String,
    },
    /// The remote node is at its limit of concurrent calls; retry later.
    #[error("peer is busy: {reason}")]
    Busy {
        /// Which limit was hit.
        reason: String,
    },
    /// No connection to the peer could be made, or it does not speak the protocol.
    #[error("peer {peer} is unreachable ({cause}): {reason}")]
    PeerUnreachable {
        /// The peer that was dialled.
        peer: PeerId,
        /// Why, in a form a program can branch on.
        cause: Unreachable,
        /// What the transport said.
        reason: String,
    },
    /// The call did not finish within its deadline (for streams: no message within the idle deadline).
    #[error("deadline of {0:?} exceeded")]
    DeadlineExceeded(Duration),
    /// A message was larger than the limit of the side that refused it.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// The size of the message (or its announced length).
        size: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// Bytes that could not be decoded as the expected frame or message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The stream or connection closed before the call finished.
    #[error("connection closed: {0}")]
    ConnectionClosed(String),
    /// The call was cancelled.
    #[error("call cancelled")]
    Cancelled,
    /// The local node has shut down.
    #[error("the P2P node has shut down")]
    Shutdown,
    /// The operation needs another configuration of the node, e.g. a protobuf handler or call on a
    /// node that does not speak [`WireMode::Hivemind`](crate::WireMode::Hivemind).
    #[error("not supported here: {0}")]
    Unsupported(String),
    /// The node could not be created or configured (identity file, listen address, transport).
    #[error("node setup failed: {0}")]
    Setup(String),
}

/// Why a peer could not be reached: the cause of [`RpcError::PeerUnreachable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unreachable {
    /// The host answered that nothing listens there (TCP reset, QUIC refused).
    Refused,
    /// No connection within the connect timeout (a host that drops packets, or is not there).
    Timeout,
    /// The node at the address has another peer id than the address names.
    WrongPeerId,
    /// A DNS name in the address did not resolve.
    Dns,
    /// This node cannot dial addresses of this kind (a transport it lacks).
    UnsupportedAddress,
    /// A connection was made, but the security or muxer handshake failed (not a libp2p node,
    /// or one with other protocols).
    Handshake,
    /// The node is connected but does not speak the protocol asked for.
    ProtocolNotSupported,
    /// No address of the peer is known.
    NoAddress,
    /// The connection was refused by this node's own limits or policy.
    Denied,
    /// The peer is this node itself.
    LocalPeer,
    /// Anything else the transport reported.
    Other,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unreachable::Refused => "connection refused",
            Unreachable::Timeout => "timed out",
            Unreachable::WrongPeerId => "wrong peer id",
            Unreachable::Dns => "DNS name not resolved",
            Unreachable::UnsupportedAddress => "address not supported",
            Unreachable::Handshake => "handshake failed",
            Unreachable::ProtocolNotSupported => "protocol not supported",
            Unreachable::NoAddress => "no known address",
            Unreachable::Denied => "denied by local limits",
            Unreachable::LocalPeer => "the local node",
            Unreachable::Other => "transport error",
        })
    }
}

impl RpcError {
    /// Builds a [`RpcError::Remote`]-style error for a handler's response stream item.
    pub fn handler(message: impl std::fmt::Display) -> Self {
        RpcError::Remote {
            message: message.to_string(),
        }
    }
}

impl From<std::io::Error> for RpcError {
    /// Bytes that did not decode are [`RpcError::Malformed`]; any other I/O failure means the
    /// stream is gone.
    fn from(err: std::io::Error) -> Self {
        match err.kind() {
            std::io::ErrorKind::InvalidData => RpcError::Malformed(err.to_string()),
            _ => RpcError::ConnectionClosed(err.to_string()),
        }
    }
}
