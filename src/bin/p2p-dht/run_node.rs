//! The `node` subcommand: runs a DHT node until SIGTERM or SIGINT, then drains its calls, saves
//! its state and exits 0.

use std::path::Path;
use std::sync::Arc;

use p2p_servicer::dht::{DhtConfig, DhtMetrics, DhtNode};
use p2p_servicer::runtime::prometheus_client::registry::Registry;
use p2p_servicer::runtime::{Metrics, Multiaddr, P2P, P2PConfig, Reachability};

use crate::args::{Common, NodeArgs, seconds};
use crate::error::CliError;
use crate::http;

/// Where a node listens without `--host-maddrs`: every interface, TCP and QUIC, on IPv6 too
/// where the host has it.
fn default_listen_addrs() -> Vec<Multiaddr> {
    let mut hosts = vec!["/ip4/0.0.0.0"];
    if std::net::TcpListener::bind("[::]:0").is_ok() {
        hosts.push("/ip6/::");
    }
    hosts
        .into_iter()
        .flat_map(|host| [format!("{host}/tcp/0"), format!("{host}/udp/0/quic-v1")])
        .filter_map(|addr| addr.parse().ok())
        .collect()
}

/// The node's configuration from the command line.
fn config(
    common: &Common,
    args: &NodeArgs,
    registry: &mut Registry,
) -> Result<DhtConfig, CliError> {
    let listen = if args.host_maddrs.is_empty() {
        default_listen_addrs()
    } else {
        args.host_maddrs.clone()
    };
    let mut p2p = P2PConfig::default()
        .with_wire_mode(common.wire)
        .with_listen_addrs(listen)
        .with_announce_addrs(args.announce_maddrs.clone())
        .with_metrics(Metrics::new(registry));
    if let Some(path) = &args.identity_path {
        p2p = p2p.with_identity_path(path);
    }
    let period = seconds("--refresh-period", args.refresh_period)?;
    let mut config = DhtConfig::default();
    if let Some(dir) = &args.data_dir {
        // The identity goes there too (DATA_DIR/identity.key) unless --identity-path says.
        config = config.with_data_dir(dir);
    }
    Ok(config
        .with_p2p(p2p)
        .with_initial_peers(common.initial_peers.clone())
        .with_refresh_timeout(Some(period))
        .with_client_mode(args.client_mode)
        .with_metrics(DhtMetrics::new(registry)))
}

/// Resolves on SIGTERM (what systemd and container runtimes send) or SIGINT (Ctrl-C), naming it.
async fn stop_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(%err, "cannot watch SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

fn shown(path: Option<&Path>) -> String {
    path.map_or_else(|| "none".into(), |p| p.display().to_string())
}

/// How often the node looks for a change in what AutoNAT found and in its visible addresses.
const ADDRESS_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// What the node last reported about its addresses.
#[derive(PartialEq)]
struct Seen {
    reachability: Reachability,
    external: Vec<Multiaddr>,
    visible: Vec<Multiaddr>,
}

impl Seen {
    fn of(p2p: &P2P) -> Seen {
        Seen {
            reachability: p2p.reachability(),
            external: p2p.external_addrs(),
            visible: p2p.visible_maddrs(),
        }
    }
}

fn joined(addrs: &[Multiaddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// On stdout, for scripts and people: what other nodes pass to join this one.
fn print_initial_peers(visible: &[Multiaddr]) {
    println!(
        "To connect other peers to this one, use --initial-peers {}",
        joined(visible)
    );
}

/// Logs what changed since `old` and prints the visible addresses again if they changed.
fn report_change(old: &Seen, new: &Seen) {
    if old.reachability != new.reachability || old.external != new.external {
        tracing::info!(
            reachability = %new.reachability,
            external_addresses = %joined(&new.external),
            "AutoNAT: reachability or confirmed external addresses changed"
        );
    }
    if old.visible != new.visible {
        tracing::info!(addresses = %joined(&new.visible), "visible addresses changed");
        print_initial_peers(&new.visible);
    }
}

/// Runs the node until a stop signal.
pub async fn run(common: Common, args: NodeArgs) -> Result<(), CliError> {
    let drain = seconds("--drain-timeout", args.drain_timeout)?;
    let mut registry = Registry::default();
    let config = config(&common, &args, &mut registry)?;
    let health = Arc::new(http::Health::default());
    let metrics_addr = match args.metrics_addr {
        Some(addr) => Some(http::serve(addr, Arc::new(registry), health.clone()).await?),
        None => None,
    };
    // One listener for the whole run: a signal between two loop turns must not be missed.
    let stop = stop_signal();
    tokio::pin!(stop);
    let node = tokio::select! {
        node = DhtNode::create(config) => node?,
        signal = &mut stop => {
            tracing::info!(signal, "stopped while joining the DHT");
            return Ok(());
        }
    };
    health.running(node.clone());
    let mut seen = Seen::of(node.p2p());
    tracing::info!(
        peer_id = %node.p2p().peer_id(),
        wire = %common.wire,
        addresses = %joined(&seen.visible),
        data_dir = %shown(args.data_dir.as_deref()),
        metrics = %metrics_addr.map_or_else(|| "off".into(), |a| format!("http://{a}/metrics")),
        client_mode = args.client_mode,
        "DHT node running"
    );
    print_initial_peers(&seen.visible);
    let period = seconds("--refresh-period", args.refresh_period)?;
    let mut status = tokio::time::interval(period);
    status.tick().await;
    let mut check = tokio::time::interval(ADDRESS_CHECK);
    let signal = loop {
        tokio::select! {
            signal = &mut stop => break signal,
            _ = check.tick() => {
                let now = Seen::of(node.p2p());
                if now != seen {
                    report_change(&seen, &now);
                    seen = now;
                }
            }
            _ = status.tick() => {
                let stats = node.stats();
                tracing::info!(
                    "{} DHT nodes in the routing table, {} keys in local storage",
                    stats.routing_table_size,
                    stats.stored_keys
                );
            }
        }
    };
    tracing::info!(signal, ?drain, "shutting down: finishing calls in flight");
    health.stopping();
    let unfinished = node.p2p().drain(drain).await;
    if unfinished > 0 {
        tracing::warn!(
            unfinished,
            "calls still running at the drain deadline were dropped"
        );
    }
    node.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
