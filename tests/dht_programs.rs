//! The installed program, `p2p-dht`, as an operator runs it: real processes on 127.0.0.1, its
//! metrics scraped over HTTP, stopped with SIGTERM and `kill -9`, restarted from its data dir.

mod programs;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use p2p_servicer::dht::{DhtConfig, DhtId, DhtNode, get_dht_time};
use p2p_servicer::runtime::{Multiaddr, P2PConfig, PeerId, WireMode};
use programs::Running;

/// Generous: the machine may be a loaded 2-core one.
const PATIENCE: Duration = Duration::from_secs(60);

fn program() -> Command {
    Command::new(env!("CARGO_BIN_EXE_p2p-dht"))
}

/// A `p2p-dht` process (see `tests/programs`), with what this file reads from its output.
struct NodeProcess(Running);

impl std::ops::Deref for NodeProcess {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.0
    }
}

impl std::ops::DerefMut for NodeProcess {
    fn deref_mut(&mut self) -> &mut Running {
        &mut self.0
    }
}

impl NodeProcess {
    fn start(args: &[&str]) -> NodeProcess {
        NodeProcess::start_in(Path::new("."), args)
    }

    /// Starts one in the folder `cwd`.
    fn start_in(cwd: &Path, args: &[&str]) -> NodeProcess {
        let mut command = program();
        command.current_dir(cwd).args(args);
        NodeProcess(Running::spawn("p2p-dht", &mut command, PATIENCE))
    }

    /// The address other nodes join with, from the line the node prints on start.
    fn address(&mut self) -> String {
        let prefix = "To connect other peers to this one, use --initial-peers ";
        let line = self.wait_for("address line", |line| line.starts_with(prefix));
        let addr = line[prefix.len()..]
            .split(' ')
            .next()
            .expect("an address")
            .to_string();
        assert!(addr.contains("/p2p/"), "{addr}");
        addr
    }

    /// The metrics endpoint's `host:port`, from the startup log line.
    fn metrics_addr(&mut self) -> String {
        let line = self.wait_for("metrics address", |line| line.contains("metrics=http://"));
        let from = line.find("metrics=http://").expect("found") + "metrics=http://".len();
        line[from..]
            .split('/')
            .next()
            .expect("host:port")
            .to_string()
    }
}

fn run(args: &[&str]) -> Output {
    program().args(args).output().expect("p2p-dht runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `/metrics` parsed: each sample's value by its name and labels (`name{a="x",b="y"}`, labels
/// sorted).
fn scrape(addr: &str) -> HashMap<String, f64> {
    let mut response = ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .expect("/metrics answers");
    let body = response.body_mut().read_to_string().expect("a text body");
    let lines = body.lines().map(|line| Ok(line.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("a Prometheus exposition");
    scrape
        .samples
        .into_iter()
        .map(|sample| {
            let mut labels: Vec<String> = sample
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            labels.sort();
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            let name = if labels.is_empty() {
                sample.metric
            } else {
                format!("{}{{{}}}", sample.metric, labels.join(","))
            };
            (name, value)
        })
        .collect()
}

fn health(addr: &str) -> u16 {
    match ureq::get(&format!("http://{addr}/healthz")).call() {
        Ok(response) => response.status().as_u16(),
        Err(ureq::Error::StatusCode(code)) => code,
        Err(err) => panic!("/healthz: {err}"),
    }
}

/// Waits until `/metrics` shows `name` at `at_least` or more.
fn wait_for_metric(addr: &str, name: &str, at_least: f64) -> HashMap<String, f64> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let metrics = scrape(addr);
        if metrics.get(name).is_some_and(|v| *v >= at_least) {
            return metrics;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {at_least}: {:?}",
            metrics.get(name)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn patient() -> DhtConfig {
    DhtConfig::default().with_wait_timeout(Duration::from_secs(30))
}

fn peer_of(addr: &str) -> String {
    addr.rsplit_once("/p2p/")
        .expect("a /p2p/ address")
        .1
        .to_string()
}

#[test]
fn a_node_is_watched_stopped_and_restarted_without_losing_anything() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let dir = data.path().to_str().expect("a UTF-8 path");
    // Flags before and after the subcommand, in both spellings.
    let args = [
        "--host_maddrs",
        "/ip4/127.0.0.1/tcp/0",
        "node",
        "--data-dir",
        dir,
        "--metrics-addr",
        "127.0.0.1:0",
        "--refresh_period",
        "1",
    ];
    let mut node = NodeProcess::start(&args);
    let addr = node.address();
    let metrics = node.metrics_addr();
    assert_eq!(health(&metrics), 200);

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    // Another node joins it, and stays up while it restarts.
    let neighbour = runtime
        .block_on(DhtNode::create(patient().with_initial_peers([
            addr.parse::<Multiaddr>().expect("an address"),
        ])))
        .expect("the neighbour joins");

    let stored = run(&[
        "--initial-peers",
        &addr,
        "store",
        "greeting",
        "hello",
        "--ttl",
        "600",
    ]);
    assert!(stored.status.success(), "{}", text(&stored.stderr));
    let got = run(&["get", "greeting", "--initial_peers", &addr, "--latest"]);
    assert!(got.status.success(), "{}", text(&got.stderr));
    assert!(
        text(&got.stdout).contains("\"hello\""),
        "{}",
        text(&got.stdout)
    );

    let scraped = wait_for_metric(&metrics, "servicer_dht_stored_keys", 1.0);
    assert_eq!(scraped["servicer_dht_stored_keys"], 1.0);
    assert!(
        scraped["servicer_dht_routing_table_size"] >= 1.0,
        "{scraped:?}"
    );
    assert_eq!(scraped["servicer_dht_bootstrapped"], 1.0);
    let stores_served: f64 = scraped
        .iter()
        .filter(|(name, _)| {
            name.starts_with("servicer_rpc_calls_total{")
                && name.contains("rpc_store")
                && name.contains("outcome=\"ok\"")
        })
        .map(|(_, v)| v)
        .sum();
    assert!(stores_served >= 1.0, "{scraped:?}");

    // SIGTERM: a clean exit, soon.
    node.signal("-TERM");
    let status = node.exit_within(Duration::from_secs(5));
    assert!(status.success(), "{status}");
    drop(node);

    // Restarted from its data dir with no initial peers: the same peer, its record, its peers.
    let mut node = NodeProcess::start(&args);
    let again = node.address();
    assert_eq!(peer_of(&again), peer_of(&addr));
    let metrics = node.metrics_addr();
    let scraped = wait_for_metric(&metrics, "servicer_dht_routing_table_size", 1.0);
    assert_eq!(scraped["servicer_dht_stored_keys"], 1.0, "{scraped:?}");
    let got = run(&["get", "greeting", "--initial-peers", &again]);
    assert!(got.status.success(), "{}", text(&got.stderr));
    assert!(
        text(&got.stdout).contains("\"hello\""),
        "{}",
        text(&got.stdout)
    );
    runtime.block_on(neighbour.shutdown());
}

#[test]
fn acknowledged_stores_survive_kill_9() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let dir = data.path().to_str().expect("a UTF-8 path");
    let args = [
        "node",
        "--host-maddrs",
        "/ip4/127.0.0.1/tcp/0",
        "--data-dir",
        dir,
    ];
    let mut node = NodeProcess::start(&args);
    let addr: Multiaddr = node.address().parse().expect("an address");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");

    // Another process floods the node with stores, noting when each was acknowledged.
    let client = runtime
        .block_on(DhtNode::create(
            patient().with_client_mode(true).with_initial_peers([addr]),
        ))
        .expect("the client joins");
    let mut acknowledged: Vec<(String, Instant)> = Vec::new();
    let flood_until = Instant::now() + Duration::from_secs(3);
    let mut i = 0;
    while Instant::now() < flood_until {
        let key = format!("flood-{i}");
        let ok = runtime
            .block_on(client.store(key.as_str(), &i, get_dht_time() + 3600.0, None))
            .unwrap_or(false);
        if ok {
            acknowledged.push((key, Instant::now()));
        }
        i += 1;
    }
    let killed = Instant::now();
    node.signal("-KILL");
    node.exit_within(PATIENCE);
    drop(node);
    runtime.block_on(client.shutdown());
    assert!(
        acknowledged.len() > 10,
        "only {} stores",
        acknowledged.len()
    );

    let mut node = NodeProcess::start(&args);
    let addr: Multiaddr = node.address().parse().expect("an address");
    let reader = runtime
        .block_on(DhtNode::create(
            patient().with_client_mode(true).with_initial_peers([addr]),
        ))
        .expect("a reader joins");
    // The guarantee (DhtConfig::with_data_dir): stores acknowledged 1 s before the kill survive.
    let guaranteed: Vec<&String> = acknowledged
        .iter()
        .filter(|(_, at)| *at + Duration::from_secs(1) <= killed)
        .map(|(key, _)| key)
        .collect();
    let ids: Vec<DhtId> = guaranteed
        .iter()
        .map(|key| DhtId::generate(key.as_str()))
        .collect();
    let found = runtime.block_on(reader.get_many_by_id(&ids, None));
    let lost: Vec<&&String> = guaranteed
        .iter()
        .zip(&ids)
        .filter(|(_, id)| !matches!(found.get(id), Some(Some(_))))
        .map(|(key, _)| key)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged stores lost, e.g. {:?}",
        lost.len(),
        guaranteed.len(),
        lost.first()
    );
    let recent = acknowledged.len() - guaranteed.len();
    let recent_kept = acknowledged
        .iter()
        .filter(|(_, at)| *at + Duration::from_secs(1) > killed)
        .filter(|(key, _)| {
            let found =
                runtime.block_on(reader.get_many_by_id(&[DhtId::generate(key.as_str())], None));
            found.values().any(Option::is_some)
        })
        .count();
    eprintln!(
        "{} stores acknowledged, {} of them 1 s before the kill: all kept; of the last second's \
         {recent}, {recent_kept} kept",
        acknowledged.len(),
        guaranteed.len()
    );
    runtime.block_on(reader.shutdown());
}

#[test]
fn a_failed_bootstrap_names_each_peer_and_exits_3() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (closed, live, other_wire) = runtime.block_on(async {
        let ghost = DhtNode::create(patient()).await.expect("a node");
        let closed = ghost.p2p().visible_maddrs()[0].to_string();
        ghost.shutdown().await;
        let live = DhtNode::create(patient()).await.expect("a node");
        let other_wire = DhtNode::create(
            patient().with_p2p(P2PConfig::default().with_wire_mode(WireMode::Hivemind)),
        )
        .await
        .expect("a node on hivemind's wire");
        (closed, live, other_wire)
    });
    let live_addr = live.p2p().visible_maddrs()[0].to_string();
    let (transport, _) = live_addr.rsplit_once("/p2p/").expect("a /p2p/ address");
    let impostor = PeerId::random();
    let wrong_id = format!("{transport}/p2p/{impostor}");
    let other = other_wire.p2p().visible_maddrs()[0].to_string();

    let mut node = NodeProcess::start(&[
        "--host-maddrs",
        "/ip4/127.0.0.1/tcp/0",
        "--initial-peers",
        &closed,
        &wrong_id,
        &other,
    ]);
    let status = node.exit_within(PATIENCE);
    assert_eq!(status.code(), Some(3), "{}", node.seen.join("\n"));
    let error = node.wait_for("the error", |line| line.contains("bootstrap failed"));
    assert!(
        error.contains(&peer_of(&closed)) && error.contains("refused"),
        "{error}"
    );
    assert!(
        error.contains(&impostor.to_string()) && error.contains("wrong peer id"),
        "{error}"
    );
    assert!(
        error.contains(&peer_of(&other)) && error.contains("wrong wire"),
        "{error}"
    );
    runtime.block_on(async {
        live.shutdown().await;
        other_wire.shutdown().await;
    });
}

#[test]
fn the_client_exit_codes_and_flag_order() {
    let data = tempfile::tempdir().expect("a temporary folder");
    // Without --data-dir nothing is written: the node runs in an empty folder.
    let mut node = NodeProcess::start_in(data.path(), &["--host-maddrs", "/ip4/127.0.0.1/tcp/0"]);
    let addr = node.address();
    // Not found: 1, with the global flag after the subcommand and its argument.
    let missing = run(&["get", "no-such-key", "--initial-peers", &addr]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing.stderr));
    // Before the subcommand, several addresses: the list ends at the subcommand.
    let stored = run(&["--initial-peers", &addr, &addr, "store", "k", "v"]);
    assert_eq!(stored.status.code(), Some(0), "{}", text(&stored.stderr));
    // Through the environment.
    let got = program()
        .args(["get", "k"])
        .env("P2P_DHT_INITIAL_PEERS", &addr)
        .output()
        .expect("p2p-dht runs");
    assert_eq!(got.status.code(), Some(0), "{}", text(&got.stderr));
    // Usage: 2.
    assert_eq!(run(&["get", "k"]).status.code(), Some(2));
    assert_eq!(run(&["--no-such-flag"]).status.code(), Some(2));
    assert_eq!(
        run(&["store", "k", "v", "--ttl", "-1", "--initial-peers", &addr])
            .status
            .code(),
        Some(2)
    );
    // Unreachable: 3.
    let closed = format!("/ip4/127.0.0.1/tcp/1/p2p/{}", PeerId::random());
    let unreachable = run(&["get", "k", "--initial-peers", &closed]);
    assert_eq!(
        unreachable.status.code(),
        Some(3),
        "{}",
        text(&unreachable.stderr)
    );
    assert!(
        text(&unreachable.stderr).contains("refused"),
        "{}",
        text(&unreachable.stderr)
    );
    // --version and --help with examples.
    let version = run(&["--version"]);
    assert!(
        text(&version.stdout).starts_with("p2p-dht "),
        "{}",
        text(&version.stdout)
    );
    for sub in ["node", "store", "get"] {
        let help = run(&[sub, "--help"]);
        assert!(
            text(&help.stdout).contains("Example"),
            "{sub}: {}",
            text(&help.stdout)
        );
    }
    node.signal("-TERM");
    assert!(node.exit_within(PATIENCE).success());
    assert!(is_empty(data.path()));
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}
