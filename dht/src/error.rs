//! The DHT's one error type.

use servicer_runtime::RpcError;

/// What can go wrong in the DHT.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    /// A value or subkey could not be encoded as msgpack.
    #[error("cannot encode value: {0}")]
    Encode(String),
    /// Bytes that do not decode as the expected type.
    #[error("cannot decode value: {0}")]
    Decode(String),
    /// A value larger than the limit.
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A peer failed a check (reachability, clock skew).
    #[error("validation failed: {0}")]
    Validation(String),
    /// The node is not running (it failed to start, shut down, or its thread died).
    #[error("DHT node unavailable: {0}")]
    Stopped(String),
    /// No initial peer answered.
    #[error("{0}")]
    Bootstrap(String),
    /// An RPC failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
}
