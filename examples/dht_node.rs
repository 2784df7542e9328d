//! A long-running DHT node, the counterpart of hivemind's `hivemind-dht`.
//!
//! `cargo run --release --example dht_node -- --host-maddrs /ip4/127.0.0.1/tcp/31337`
//!
//! With `--wire hivemind` it speaks hivemind 1.1.12's wire, so Python `hivemind.DHT` nodes can
//! bootstrap from it (`scripts/interop-hivemind.sh`).
//!
//! Prints how to connect to it first, then every refresh period the size of its routing table and
//! storage. Stops cleanly on Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use p2p_servicer::dht::{DhtConfig, DhtNode};
use p2p_servicer::runtime::{Multiaddr, P2PConfig, WireMode};

// A DHT node frees many small buffers on another tokio worker thread than the one that allocated
// them, which glibc's malloc serializes on its arena locks (BENCHMARKS.md, "Allocator").
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Runs a DHT node until Ctrl-C")]
struct Args {
    /// Addresses to listen on.
    #[arg(long, alias = "host_maddrs", num_args = 1.., default_values_t = ["/ip4/127.0.0.1/tcp/0".parse::<Multiaddr>().expect("valid default")])]
    host_maddrs: Vec<Multiaddr>,
    /// Addresses to announce instead of the listen addresses.
    #[arg(long, alias = "announce_maddrs", num_args = 1..)]
    announce_maddrs: Vec<Multiaddr>,
    /// Peers to bootstrap from, as full /p2p/ multiaddrs.
    #[arg(long, alias = "initial_peers", num_args = 1..)]
    initial_peers: Vec<Multiaddr>,
    /// Key file: loaded if present, created otherwise, so the peer id survives restarts.
    #[arg(long, alias = "identity_path")]
    identity_path: Option<PathBuf>,
    /// Seconds between status lines (and routing-table refreshes).
    #[arg(long, alias = "refresh_period", default_value_t = 30.0)]
    refresh_period: f64,
    /// Serve nothing; stay out of others' routing tables.
    #[arg(long, alias = "client_mode")]
    client_mode: bool,
    /// `native`, or `hivemind` to join a hivemind 1.1.12 swarm.
    #[arg(long, default_value_t = WireMode::Native)]
    wire: WireMode,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if !args.refresh_period.is_finite() || args.refresh_period <= 0.0 {
        eprintln!("--refresh-period must be a positive number of seconds");
        std::process::exit(2);
    }
    let period = Duration::from_secs_f64(args.refresh_period);
    let mut p2p = P2PConfig::default()
        .with_wire_mode(args.wire)
        .with_listen_addrs(args.host_maddrs)
        .with_announce_addrs(args.announce_maddrs);
    if let Some(path) = args.identity_path {
        p2p = p2p.with_identity_path(path);
    }
    let config = DhtConfig::default()
        .with_p2p(p2p)
        .with_initial_peers(args.initial_peers)
        .with_refresh_timeout(Some(period))
        .with_client_mode(args.client_mode);
    let node = match DhtNode::create(config).await {
        Ok(node) => node,
        Err(err) => {
            eprintln!("cannot start the DHT node: {err}");
            std::process::exit(1);
        }
    };
    let maddrs: Vec<String> = node
        .p2p()
        .visible_maddrs()
        .iter()
        .map(|m| m.to_string())
        .collect();
    println!(
        "To connect other peers to this one, use --initial-peers {}",
        maddrs.join(" ")
    );
    let mut status = tokio::time::interval(period);
    status.tick().await;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = status.tick() => {
                let stats = node.stats();
                println!(
                    "{} DHT nodes in the routing table, {} keys in local storage",
                    stats.routing_table_size, stats.stored_keys
                );
            }
        }
    }
    println!("Shutting down");
    node.shutdown().await;
}
