//! The one error type of the hivemind wire codecs.

use crate::RpcError;

/// What can go wrong while encoding, decoding or negotiating hivemind's wire format.
///
/// Decoders return these for any malformed input; none of them panics. [`From`] maps each to the
/// runtime's [`RpcError`], the error that calls report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HivemindWireError {
    /// A message or frame is larger than the limit (hivemind's is 4 MiB).
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The announced (or actual) length of the message.
        size: u64,
        /// The limit it broke.
        limit: usize,
    },
    /// A varint length prefix longer than 10 bytes, or one that overflows `u64`.
    #[error("invalid varint length prefix")]
    InvalidVarint,
    /// The payload is not a valid protobuf message of the expected type.
    #[error("malformed protobuf message: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A stream frame starts with a marker other than `0x00` (message) or `0x01` (error).
    #[error("unknown frame marker {0:#04x}")]
    UnknownMarker(u8),
    /// A unary envelope's call id is not 16 bytes (the Go daemon drops such calls unanswered).
    #[error("call id must be 16 bytes, got {0}")]
    InvalidCallId(usize),
    /// A unary envelope carries the wrong member of its `oneof` (or none).
    #[error("expected a unary envelope with `{expected}`, got {got}")]
    UnexpectedEnvelope {
        /// The field that was expected: `callUnary` or `unaryResponse`.
        expected: &'static str,
        /// What the envelope carried instead.
        got: &'static str,
    },
    /// The stream ended in the middle of a message or frame.
    #[error("stream ended inside a message ({buffered} bytes buffered)")]
    Truncated {
        /// How many bytes of the unfinished message had arrived.
        buffered: usize,
    },
    /// The stream ended before the expected message started.
    #[error("stream ended before a message arrived")]
    Eof,
    /// The remote answered `na` to every protocol we proposed.
    #[error("protocol not supported by the remote: {0}")]
    ProtocolNotSupported(String),
    /// A protocol name that multistream-select cannot carry (empty, or containing `\n`).
    #[error("invalid protocol name {0:?}")]
    InvalidProtocolName(String),
    /// The remote broke the multistream-select protocol.
    #[error("multistream-select: {0}")]
    Negotiation(String),
    /// The underlying stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The node's budget for large messages in flight is spent (a message this node serves).
    #[error("{0}")]
    Busy(&'static str),
}

impl From<HivemindWireError> for RpcError {
    fn from(e: HivemindWireError) -> Self {
        match e {
            HivemindWireError::TooLarge { size, limit } => RpcError::MessageTooLarge {
                size: usize::try_from(size).unwrap_or(usize::MAX),
                limit,
            },
            HivemindWireError::ProtocolNotSupported(name) => RpcError::UnknownHandler { name },
            HivemindWireError::Busy(reason) => RpcError::Busy {
                reason: reason.into(),
            },
            HivemindWireError::Eof | HivemindWireError::Io(_) => {
                RpcError::ConnectionClosed(e.to_string())
            }
            other => RpcError::Malformed(other.to_string()),
        }
    }
}
