//! [`RpcKind`]: the four kinds of call.

use std::fmt;

use serde::{Deserialize, Serialize};

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
