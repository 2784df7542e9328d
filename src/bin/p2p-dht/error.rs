//! [`CliError`]: why the program stops, and the exit code each reason gets.

use p2p_servicer::dht::DhtError;

/// The exit codes (the README and `--help` list them).
pub mod code {
    /// Done.
    pub const OK: i32 = 0;
    /// `get` found no value, or `store` found no node that accepted it.
    pub const NOT_FOUND: i32 = 1;
    /// A bad command line (clap's own code for usage errors).
    pub const USAGE: i32 = 2;
    /// The DHT could not be reached, or the node could not start.
    pub const UNREACHABLE: i32 = 3;
}

/// Why the program stops early.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag's value makes no sense.
    #[error("{0}")]
    Usage(String),
    /// No value under the key, or no node stored it.
    #[error("{0}")]
    NotFound(String),
    /// The node could not start or join the DHT.
    #[error("cannot join the DHT: {0}")]
    Dht(#[from] DhtError),
    /// The metrics server could not start.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

impl CliError {
    /// The exit code for this error.
    pub fn code(&self) -> i32 {
        match self {
            CliError::Usage(_) => code::USAGE,
            CliError::NotFound(_) => code::NOT_FOUND,
            CliError::Dht(_) | CliError::Metrics { .. } | CliError::Runtime(_) => code::UNREACHABLE,
        }
    }
}
