//! The DHT's one error type.

use std::path::PathBuf;

use servicer_runtime::{PeerId, RpcError};

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
    /// A peer's request or response that breaks the protocol (misaligned lists, a DHT id that is
    /// not 20 bytes, an undecodable dictionary).
    #[error("malformed DHT message: {0}")]
    Malformed(String),
    /// A value larger than the limit.
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A key with an owner marker: keys travel hashed, so a marker in one protects nothing.
    #[error(
        "the key holds an owner marker, which protects nothing in a key (keys travel hashed): put it in the subkey"
    )]
    OwnerMarkerInKey,
    /// A request with more keys than the node serves at once.
    #[error("request of {count} keys exceeds the limit of {limit} keys per request")]
    TooManyKeys {
        /// Keys in the request.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A peer's clock is further from ours than hivemind's 3 s rule allows (validated ping).
    #[error(
        "peer {peer} has a clock {offset:+.3} s from ours; local time must be within {max} s of others'"
    )]
    ClockSkew {
        /// The peer.
        peer: PeerId,
        /// Its clock minus ours (seconds; outside the round trip).
        offset: f64,
        /// The allowed discrepancy.
        max: f64,
    },
    /// A peer could not ping this node back (validated ping): this node is probably behind a
    /// firewall or announces addresses others cannot dial.
    #[error("peer {peer} cannot reach this node: check the announced addresses and firewall")]
    Unreachable {
        /// The peer.
        peer: PeerId,
    },
    /// The node is not running (it failed to start, shut down, or its thread died).
    #[error("DHT node unavailable: {0}")]
    Stopped(String),
    /// No initial peer answered; why, for each.
    #[error("bootstrap failed: none of the {} initial peers answered: {}", failures.len(), BootstrapFailure::list(failures))]
    Bootstrap {
        /// Each initial peer and why it did not answer.
        failures: Vec<BootstrapFailure>,
    },
    /// The node's data dir (see `DhtConfig::with_data_dir`) could not be opened, read or written.
    #[error("data dir {}: {reason}", path.display())]
    Persistence {
        /// The file or folder concerned.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An RPC failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

/// Why one initial peer did not answer the bootstrap ping.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapFailure {
    /// The peer, as its address named it.
    pub peer: PeerId,
    /// What went wrong, in words an operator can act on.
    pub reason: String,
}

impl std::fmt::Display for BootstrapFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.peer, self.reason)
    }
}

impl BootstrapFailure {
    fn list(failures: &[BootstrapFailure]) -> String {
        failures
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}
