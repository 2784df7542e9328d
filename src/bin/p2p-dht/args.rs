//! The command line: flags with both spellings (`--initial-peers` and hivemind-dht's
//! `--initial_peers`), an environment variable for each, and the subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use p2p_servicer::runtime::{Multiaddr, WireMode};

use crate::error::CliError;

/// Flags that take several values. A value of theirs starts with `/` (a multiaddr); the first
/// argument that does not ends the list, so `--initial-peers A B get k` keeps `get` a subcommand.
const MULTI_VALUED: &[&str] = &[
    "--initial-peers",
    "--initial_peers",
    "--host-maddrs",
    "--host_maddrs",
    "--announce-maddrs",
    "--announce_maddrs",
];

/// Rewrites `--flag A B` into `--flag=A --flag=B` for the [`MULTI_VALUED`] flags, so a list is
/// as long as its multiaddrs and never takes the subcommand or its arguments.
pub fn split_lists(argv: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut argv = argv.into_iter().peekable();
    while let Some(arg) = argv.next() {
        if !MULTI_VALUED.contains(&arg.as_str()) {
            out.push(arg);
            continue;
        }
        let mut values = 0;
        while let Some(value) = argv.next_if(|next| next.starts_with('/')) {
            out.push(format!("{arg}={value}"));
            values += 1;
        }
        if values == 0 {
            // Let clap say that the flag needs a value.
            out.push(arg);
        }
    }
    out
}

/// Runs a DHT node, or stores and gets a key through one.
#[derive(Debug, Parser)]
#[command(
    name = "p2p-dht",
    version,
    about = "A Kademlia DHT node with hivemind's semantics, and a client for it",
    long_about = "A Kademlia DHT node with hivemind's semantics (values with expiration times, \
                  dictionaries, signed records), on its own wire or hivemind 1.1.12's. Without a \
                  subcommand it runs a node, like hivemind-dht.",
    after_help = "Examples:\n  \
        p2p-dht node --host-maddrs /ip4/0.0.0.0/tcp/31337 --data-dir /var/lib/p2p-dht \\\n      \
        --metrics-addr 127.0.0.1:9100\n  \
        p2p-dht --initial_peers /ip4/10.0.0.1/tcp/31337/p2p/12D3KooW... get greeting\n  \
        p2p-dht node --initial-peers /dns4/bootstrap.example.org/tcp/31337/p2p/12D3KooW...\n\n\
        Exit codes: 0 ok, 1 not found (get) or not stored (store), 2 usage, 3 the DHT could not \
        be reached (or the node could not start).\n\
        Every flag also reads the environment variable P2P_DHT_<FLAG> (e.g. \
        P2P_DHT_INITIAL_PEERS, lists separated by commas)."
)]
pub struct Cli {
    /// What to do (default: run a node).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of every subcommand.
    #[command(flatten)]
    pub common: Common,
    /// The node's flags (also accepted before `node`, and without a subcommand).
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Flags every subcommand takes, before or after it.
#[derive(Debug, Args)]
pub struct Common {
    /// Peers to bootstrap from, as full /p2p/ multiaddrs (as a node prints them).
    #[arg(
        long,
        visible_alias = "initial_peers",
        env = "P2P_DHT_INITIAL_PEERS",
        value_delimiter = ',',
        num_args = 1..,
        global = true
    )]
    pub initial_peers: Vec<Multiaddr>,
    /// The wire: `native`, or `hivemind` to join a hivemind 1.1.12 swarm.
    #[arg(long, env = "P2P_DHT_WIRE", default_value_t = WireMode::Native, global = true)]
    pub wire: WireMode,
    /// How logs (on stderr) look.
    #[arg(
        long,
        visible_alias = "log_format",
        env = "P2P_DHT_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line per event, with a timestamp.
    Text,
    /// One JSON object per line.
    Json,
}

/// The node's flags: hivemind-dht's, and this node's own.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Addresses to listen on [default: /ip4/0.0.0.0/tcp/0, /ip4/0.0.0.0/udp/0/quic-v1, and
    /// the same on /ip6/:: where the host has IPv6].
    #[arg(
        long,
        visible_alias = "host_maddrs",
        env = "P2P_DHT_HOST_MADDRS",
        value_delimiter = ',',
        num_args = 1..,
        global = true
    )]
    pub host_maddrs: Vec<Multiaddr>,
    /// Addresses to announce instead of the listen addresses.
    #[arg(
        long,
        visible_alias = "announce_maddrs",
        env = "P2P_DHT_ANNOUNCE_MADDRS",
        value_delimiter = ',',
        num_args = 1..,
        global = true
    )]
    pub announce_maddrs: Vec<Multiaddr>,
    /// Key file: loaded if present, created otherwise, so the peer id survives restarts
    /// [default: DATA_DIR/identity.key with --data-dir, a new identity without].
    #[arg(
        long,
        visible_alias = "identity_path",
        env = "P2P_DHT_IDENTITY_PATH",
        global = true
    )]
    pub identity_path: Option<PathBuf>,
    /// Seconds between status lines and routing-table refreshes.
    #[arg(
        long,
        visible_alias = "refresh_period",
        env = "P2P_DHT_REFRESH_PERIOD",
        default_value_t = 30.0,
        global = true
    )]
    pub refresh_period: f64,
    /// Serve nothing; stay out of others' routing tables.
    #[arg(
        long,
        visible_alias = "client_mode",
        env = "P2P_DHT_CLIENT_MODE",
        global = true
    )]
    pub client_mode: bool,
    /// Folder for the identity, the records this node stores and its routing table, kept across
    /// restarts. Without it nothing touches the disk.
    #[arg(
        long,
        visible_alias = "data_dir",
        env = "P2P_DHT_DATA_DIR",
        global = true
    )]
    pub data_dir: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics and readiness at /healthz.
    #[arg(
        long,
        visible_alias = "metrics_addr",
        env = "P2P_DHT_METRICS_ADDR",
        global = true
    )]
    pub metrics_addr: Option<SocketAddr>,
    /// Seconds in-flight calls get to finish on SIGTERM / SIGINT.
    #[arg(
        long,
        env = "P2P_DHT_DRAIN_TIMEOUT",
        default_value_t = 5.0,
        global = true
    )]
    pub drain_timeout: f64,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs a DHT node until SIGTERM or Ctrl-C.
    #[command(
        after_help = "Example:\n  p2p-dht node --host_maddrs /ip4/0.0.0.0/tcp/31337 \
                            --data-dir /var/lib/p2p-dht --metrics-addr 127.0.0.1:9100"
    )]
    Node,
    /// Stores VALUE (a string) under KEY, through a client-mode node.
    #[command(after_help = "Example:\n  p2p-dht store greeting hello --ttl 600 \
                            --initial-peers /ip4/10.0.0.1/tcp/31337/p2p/12D3KooW...")]
    Store {
        /// The key.
        key: String,
        /// The value, stored as a msgpack string.
        value: String,
        /// Store under this subkey of a dictionary value.
        #[arg(long)]
        subkey: Option<String>,
        /// Seconds until the value expires.
        #[arg(long, default_value_t = 3600.0)]
        ttl: f64,
    },
    /// Prints the value under KEY and its expiration; exits 1 if there is none.
    #[command(after_help = "Example:\n  p2p-dht get greeting --latest \
                            --initial-peers /ip4/10.0.0.1/tcp/31337/p2p/12D3KooW...")]
    Get {
        /// The key.
        key: String,
        /// Search until no newer value can be found.
        #[arg(long)]
        latest: bool,
    },
}

/// A positive, finite number of seconds, or a usage error naming `flag`.
pub fn seconds(flag: &str, value: f64) -> Result<Duration, CliError> {
    if value.is_finite() && value > 0.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(CliError::Usage(format!(
            "{flag} must be a positive number of seconds, not {value}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lists_end_at_the_first_non_address() {
        let argv = split_lists(strings(&[
            "p2p-dht",
            "--initial_peers",
            "/a",
            "/b",
            "get",
            "k",
        ]));
        assert_eq!(
            argv,
            strings(&[
                "p2p-dht",
                "--initial_peers=/a",
                "--initial_peers=/b",
                "get",
                "k"
            ])
        );
    }

    #[test]
    fn flags_parse_before_and_after_the_subcommand() {
        let peer = "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWLZ3ugaFYpZnmh9GG6E2bHXZUwULhCZ3aXSMX5mt2BTay";
        for argv in [
            vec!["p2p-dht", "--initial-peers", peer, "get", "k", "--latest"],
            vec!["p2p-dht", "get", "k", "--initial_peers", peer, "--latest"],
            vec!["p2p-dht", "get", "--initial-peers", peer, "k"],
        ] {
            let cli = Cli::try_parse_from(split_lists(strings(&argv))).unwrap();
            assert_eq!(cli.common.initial_peers.len(), 1, "{argv:?}");
            assert!(matches!(cli.command, Some(Command::Get { ref key, .. }) if key == "k"));
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
