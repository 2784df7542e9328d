//! A port of hivemind's `benchmarks/benchmark_dht.py`: concurrent workers store subkeys of fresh
//! keys through random peers and read them back through others, while peers are shut down.
//!
//! `cargo run --release --example benchmark_dht [-- --num-peers 16 --transport memory]`
//!
//! Same parameters, defaults and printed figures as hivemind's script (the node survival rate is
//! computed from the peers actually alive, unlike hivemind's: docs/hivemind-compat.md#q10). The
//! peers are nodes in one process (hivemind runs one process per peer).
//!
//! `--scenario pair` measures single operations instead: two nodes started, then values stored
//! through one and got (latest) through the other, one call at a time, with their p50 and p99.
//!
//! `--baseline kad` runs the same workload on libp2p-kad as well (see `benchmark_dht/kad.rs`),
//! each system in a child process of its own so that the peak RSS of one does not count for the
//! other, and prints both with our figures as ratios to kad's; `--runs N` takes medians of N runs.
//!
//! The program runs on mimalloc; `--features system-allocator` runs it on the system's malloc.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use p2p_servicer::dht::{DhtConfig, DhtNode, DhtValue, Key, get_dht_time};
use p2p_servicer::runtime::{Multiaddr, P2PConfig};
use rand::rngs::StdRng;
use rand::seq::{IteratorRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;

#[path = "benchmark_dht/kad.rs"]
mod kad;
#[path = "shared/runtime.rs"]
mod runtime;
#[path = "shared/stats.rs"]
mod stats;
use runtime::Runtime;
use stats::{median, percentile};

// Every DHT request allocates a few dozen small buffers, and tokio's two worker threads free many
// of them on the thread that did not allocate them: glibc's malloc then takes its arena locks, and
// this benchmark runs 1.5-1.8x longer on it than on mimalloc (libp2p-kad: 1.08x). Both systems run
// on the same allocator here; BENCHMARKS.md has the figures with each.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator this program runs on, for the printed figures.
const ALLOCATOR_NAME: &str = if cfg!(feature = "system-allocator") {
    "system malloc"
} else {
    "mimalloc"
};

#[derive(Clone, Copy, ValueEnum)]
enum Transport {
    Tcp,
    Memory,
}

#[derive(Clone, Copy, ValueEnum)]
enum Scenario {
    /// hivemind's benchmark_dht workload.
    Swarm,
    /// Two nodes, one operation at a time: a store through the first, a get through the second.
    Pair,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
enum System {
    /// This crate's `DhtNode`.
    Ours,
    /// libp2p-kad 0.49.
    Kad,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Ours => "ours",
            System::Kad => "kad",
        }
    }
}

#[derive(Parser)]
#[command(about = "hivemind's DHT benchmark on this crate's DhtNode")]
struct Args {
    #[arg(long, alias = "num_peers", default_value_t = 16)]
    num_peers: usize,
    #[arg(long, alias = "initial_peers", default_value_t = 4)]
    initial_peers: usize,
    #[arg(long, alias = "random_seed", default_value_t = 30)]
    random_seed: u64,
    #[arg(long, alias = "num_threads", default_value_t = 10)]
    num_threads: usize,
    #[arg(long, alias = "total_num_rounds", default_value_t = 16)]
    total_num_rounds: usize,
    #[arg(long, alias = "num_store_peers", default_value_t = 8)]
    num_store_peers: usize,
    #[arg(long, alias = "num_get_peers", default_value_t = 8)]
    num_get_peers: usize,
    /// Seconds to sleep after each round.
    #[arg(long, alias = "wait_after_iteration", default_value_t = 0.0)]
    wait_after_iteration: f64,
    /// Seconds between the stores and the gets of a round.
    #[arg(long, default_value_t = 0.0)]
    delay: f64,
    /// Per-RPC timeout in seconds.
    #[arg(long, alias = "wait_timeout", default_value_t = 5.0)]
    wait_timeout: f64,
    /// Seconds until stored values expire.
    #[arg(long, default_value_t = 300.0)]
    expiration: f64,
    /// Get the latest value (search until no newer one can be found).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    latest: bool,
    /// Fraction of the peers shut down during the run.
    #[arg(long, alias = "failure_rate", default_value_t = 0.1)]
    failure_rate: f64,
    /// Transport between the peers.
    #[arg(long, value_enum, default_value_t = Transport::Memory)]
    transport: Transport,
    /// The tokio runtime the peers run on (both systems alike).
    #[arg(long, value_enum, default_value_t = Runtime::MultiThread)]
    runtime: Runtime,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Swarm)]
    scenario: Scenario,
    /// `--scenario pair`: how many store + get pairs to time.
    #[arg(long, default_value_t = 2000)]
    ops: usize,
    /// Which DHT runs the workload in this process.
    #[arg(long, value_enum, default_value_t = System::Ours)]
    system: System,
    /// Also run the workload on this baseline and print our figures as ratios to it.
    #[arg(long, value_enum)]
    baseline: Option<System>,
    /// Run each system this many times (each in a child process) and print the medians.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Print one JSON object per figure.
    #[arg(long)]
    json: bool,
    /// Give each of our peers a data dir (`DhtConfig::with_data_dir`) under this folder, one
    /// subfolder per process and peer, to measure what persistence costs.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl Args {
    /// The workload's flags, to run it again in a child process.
    fn workload_flags(&self) -> Vec<String> {
        fn name(value: impl ValueEnum) -> String {
            let value = value.to_possible_value().expect("no variant is skipped");
            value.get_name().to_string()
        }
        [
            ("--num-peers", self.num_peers.to_string()),
            ("--initial-peers", self.initial_peers.to_string()),
            ("--random-seed", self.random_seed.to_string()),
            ("--num-threads", self.num_threads.to_string()),
            ("--total-num-rounds", self.total_num_rounds.to_string()),
            ("--num-store-peers", self.num_store_peers.to_string()),
            ("--num-get-peers", self.num_get_peers.to_string()),
            (
                "--wait-after-iteration",
                self.wait_after_iteration.to_string(),
            ),
            ("--delay", self.delay.to_string()),
            ("--wait-timeout", self.wait_timeout.to_string()),
            ("--expiration", self.expiration.to_string()),
            ("--latest", self.latest.to_string()),
            ("--failure-rate", self.failure_rate.to_string()),
            ("--transport", name(self.transport)),
            ("--scenario", name(self.scenario)),
            ("--runtime", name(self.runtime)),
            ("--ops", self.ops.to_string()),
        ]
        .into_iter()
        .chain(
            self.data_dir
                .iter()
                .map(|dir| ("--data-dir", dir.display().to_string())),
        )
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect()
    }
}

/// `--data-dir`, for [`BenchPeer::start`] of our peers, and how many of them took a subfolder.
static DATA_DIR: OnceLock<PathBuf> = OnceLock::new();
static DATA_DIRS_TAKEN: AtomicUsize = AtomicUsize::new(0);

/// A DHT peer as the workload uses it: ours or the baseline's.
trait BenchPeer: Clone + Send + Sync + 'static {
    /// Starts a peer listening on `listen` that bootstraps from `initial` (full `/p2p/` addrs).
    fn start(
        listen: Multiaddr,
        initial: Vec<Multiaddr>,
        wait_timeout: Duration,
    ) -> impl Future<Output = Self> + Send;
    /// Full `/p2p/` addresses to bootstrap others from.
    fn addrs(&self) -> Vec<Multiaddr>;
    /// Stores `value` under `subkey` of `key` for `expiration` seconds; true if stored.
    fn store(
        &self,
        key: &str,
        subkey: &str,
        value: &str,
        expiration: f64,
    ) -> impl Future<Output = bool> + Send;
    /// Stores the plain `value` under `key` for `expiration` seconds; true if stored.
    fn store_value(
        &self,
        key: &str,
        value: &str,
        expiration: f64,
    ) -> impl Future<Output = bool> + Send;
    /// Gets the plain value under `key` (the newest one with `latest`, where the system can).
    fn get_value(&self, key: &str, latest: bool) -> impl Future<Output = Option<String>> + Send;
    /// Gets `key`; true if it holds exactly the `expected` subkeys and values.
    fn get_all(
        &self,
        key: &str,
        expected: &HashMap<String, String>,
        latest: bool,
    ) -> impl Future<Output = bool> + Send;
    fn shutdown(&self) -> impl Future<Output = ()> + Send;
    fn is_alive(&self) -> bool;
    /// Requests this peer has sent so far, where the system counts them.
    fn requests_sent(&self) -> Option<u64> {
        None
    }
}

impl BenchPeer for DhtNode {
    async fn start(listen: Multiaddr, initial: Vec<Multiaddr>, wait_timeout: Duration) -> Self {
        let config = DhtConfig::default()
            .with_p2p(P2PConfig::default().with_listen_addrs([listen]))
            .with_initial_peers(initial)
            .with_wait_timeout(wait_timeout);
        let config = match DATA_DIR.get() {
            // A fresh folder per process and peer: a run must not load an earlier one's records.
            Some(dir) => {
                let peer = DATA_DIRS_TAKEN.fetch_add(1, Ordering::Relaxed);
                config.with_data_dir(dir.join(format!("{}-{peer}", std::process::id())))
            }
            None => config,
        };
        DhtNode::create(config).await.expect("peer starts")
    }

    fn addrs(&self) -> Vec<Multiaddr> {
        self.p2p().visible_maddrs()
    }

    async fn store(&self, key: &str, subkey: &str, value: &str, expiration: f64) -> bool {
        let exp = get_dht_time() + expiration;
        matches!(
            DhtNode::store(self, key, value, exp, Some(Key::from(subkey))).await,
            Ok(true)
        )
    }

    async fn store_value(&self, key: &str, value: &str, expiration: f64) -> bool {
        let exp = get_dht_time() + expiration;
        matches!(DhtNode::store(self, key, value, exp, None).await, Ok(true))
    }

    async fn get_value(&self, key: &str, latest: bool) -> Option<String> {
        match self.get::<String>(key, latest).await {
            Ok(Some(found)) => match found.value {
                DhtValue::Regular(value) => Some(value),
                DhtValue::Dictionary(_) => None,
            },
            _ => None,
        }
    }

    async fn get_all(&self, key: &str, expected: &HashMap<String, String>, latest: bool) -> bool {
        let Ok(Some(found)) = self.get::<String>(key, latest).await else {
            return false;
        };
        let DhtValue::Dictionary(dict) = found.value else {
            return false;
        };
        dict.len() == expected.len()
            && expected.iter().all(|(subkey, value)| {
                dict.get(&Key::from(subkey.as_str()).to_msgpack())
                    .is_some_and(|x| &x.value == value)
            })
    }

    async fn shutdown(&self) {
        DhtNode::shutdown(self).await;
    }

    fn is_alive(&self) -> bool {
        !self.p2p().is_shut_down()
    }

    fn requests_sent(&self) -> Option<u64> {
        Some(self.protocol().rpcs_sent().total())
    }
}

/// Requests every peer sent so far, if the system counts them.
fn requests_sent<P: BenchPeer>(peers: &[P]) -> Option<u64> {
    peers.iter().map(BenchPeer::requests_sent).sum()
}

/// CPU time (user + system) this process has used, in seconds, from /proc (Linux, at the usual
/// 100 clock ticks per second); `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn hex_token(rng: &mut StdRng) -> String {
    (0..16)
        .map(|_| format!("{:02x}", rng.r#gen::<u8>()))
        .collect()
}

fn stats(times: &[f64]) -> (f64, f64, f64) {
    let n = times.len() as f64;
    let mean = times.iter().sum::<f64>() / n;
    let var = times.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt(), times.iter().copied().fold(0.0, f64::max))
}

/// Peak resident memory of this process, from /proc (Linux); `None` elsewhere.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Shuts a peer down each time the global count of store phases reaches the next timestamp.
struct NodeKiller<P> {
    counter: AtomicUsize,
    timestamps: Vec<usize>,
    victims: Mutex<Vec<P>>,
}

impl<P: BenchPeer> NodeKiller<P> {
    async fn check_and_kill(&self) {
        let count = self.counter.fetch_add(1, Ordering::SeqCst);
        if self.timestamps.contains(&count) {
            let victim = self.victims.lock().await.pop();
            if let Some(node) = victim {
                node.shutdown().await;
            }
        }
    }
}

fn main() {
    let args = Args::parse();
    if let Some(dir) = &args.data_dir {
        let _ = DATA_DIR.set(dir.clone());
    }
    if args.baseline.is_some() || args.runs > 1 {
        compare(&args);
        return;
    }
    args.runtime.build().block_on(run_here(args));
}

/// Runs `--scenario` on `--system` in this process and prints its figures.
async fn run_here(args: Args) {
    // The workload runs in a spawned task, as an application's would: `block_on`'s thread is not
    // one of the runtime's workers, and a caller there pays a cross-thread wake-up per call.
    let (scenario, system, json, runtime) = (args.scenario, args.system, args.json, args.runtime);
    let args = Arc::new(args);
    let figures = tokio::spawn(async move {
        match (scenario, system) {
            (Scenario::Swarm, System::Ours) => run::<DhtNode>(&args).await,
            (Scenario::Swarm, System::Kad) => run::<kad::KadPeer>(&args).await,
            (Scenario::Pair, System::Ours) => run_pair::<DhtNode>(&args).await,
            (Scenario::Pair, System::Kad) => run_pair::<kad::KadPeer>(&args).await,
        }
    })
    .await
    .expect("the workload runs to its end");
    if !json {
        println!("Allocator: {ALLOCATOR_NAME}, {} runtime", runtime.name());
    }
    for (name, value, line) in figures {
        if json {
            println!("{{\"figure\":\"{name}\",\"value\":{value:.6}}}");
        } else {
            println!("{line}");
        }
    }
}

/// Runs each system `--runs` times, each run in a child process (this program with `--system`
/// and `--json`), alternating the systems so that other load touches both alike; prints the
/// medians and our figures as ratios to the baseline's.
fn compare(args: &Args) {
    let mut systems = vec![System::Ours];
    systems.extend(args.baseline.filter(|b| *b != System::Ours));
    let exe = std::env::current_exe().expect("own path");
    let mut names: Vec<String> = Vec::new();
    let mut values: HashMap<(System, String), Vec<f64>> = HashMap::new();
    for _ in 0..args.runs.max(1) {
        for &system in &systems {
            let output = Command::new(&exe)
                .args(args.workload_flags())
                .args(["--system", system.name(), "--json"])
                .output()
                .expect("child benchmark runs");
            assert!(
                output.status.success(),
                "{} run failed: {}",
                system.name(),
                String::from_utf8_lossy(&output.stderr)
            );
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                let Some((name, value)) = parse_figure(line) else {
                    continue;
                };
                if !names.contains(&name) {
                    names.push(name.clone());
                }
                values.entry((system, name)).or_default().push(value);
            }
        }
    }
    let median =
        |system: System, name: &str| Some(median(values.get(&(system, name.to_string()))?.clone()));
    let baseline = systems.get(1).copied();
    if !args.json {
        let mut header = format!("{:<26} {:>12}", "figure", "ours");
        if let Some(b) = baseline {
            header += &format!(" {:>12} {:>12}", b.name(), format!("ours/{}", b.name()));
        }
        println!(
            "medians of {} run(s), allocator: {ALLOCATOR_NAME}, {} runtime",
            args.runs.max(1),
            args.runtime.name()
        );
        println!("{header}");
    }
    for name in &names {
        let ours = median(System::Ours, name);
        let base = baseline.and_then(|b| median(b, name));
        let ratio = ours
            .zip(base)
            .filter(|(_, b)| *b != 0.0)
            .map(|(o, b)| o / b);
        if args.json {
            let mut json = format!("{{\"figure\":\"{name}\",\"ours\":{}", num(ours));
            if let Some(b) = baseline {
                json += &format!(
                    ",\"{0}\":{1},\"ours_over_{0}\":{2}",
                    b.name(),
                    num(base),
                    num(ratio)
                );
            }
            println!("{json}}}");
        } else {
            let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
            let mut row = format!("{name:<26} {:>12}", cell(ours));
            if baseline.is_some() {
                let ratio = ratio.map_or("-".into(), |r| format!("{r:.3}x"));
                row += &format!(" {:>12} {:>12}", cell(base), ratio);
            }
            println!("{row}");
        }
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.6}"))
}

/// Reads one `{"figure":"name","value":x}` line of a child's `--json` output.
fn parse_figure(line: &str) -> Option<(String, f64)> {
    let rest = line.strip_prefix("{\"figure\":\"")?;
    let (name, rest) = rest.split_once('"')?;
    let value = rest.strip_prefix(",\"value\":")?.strip_suffix('}')?;
    Some((name.to_string(), value.parse().ok()?))
}

/// The address a peer listens on for `--transport`.
fn listen_addr(transport: Transport) -> Multiaddr {
    match transport {
        Transport::Tcp => "/ip4/127.0.0.1/tcp/0",
        Transport::Memory => "/memory/0",
    }
    .parse()
    .expect("valid address")
}

/// A success-rate figure: `ok` of `total`, as hivemind prints it under `label`.
fn success_rate(
    name: &'static str,
    label: &str,
    ok: usize,
    total: usize,
) -> (&'static str, f64, String) {
    let rate = 100.0 * ok as f64 / total.max(1) as f64;
    (name, rate, format!("{label}: {rate:.1}% ({ok}/{total})"))
}

/// Runs `op` and returns its output, how long it took and the requests `peers` sent meanwhile
/// (where the system counts them).
async fn timed<P: BenchPeer, T>(
    peers: &[P],
    op: impl Future<Output = T>,
) -> (T, Duration, Option<u64>) {
    let before = requests_sent(peers);
    let started = Instant::now();
    let out = op.await;
    let took = started.elapsed();
    let sent = requests_sent(peers)
        .zip(before)
        .map(|(after, before)| after - before);
    (out, took, sent)
}

/// `--scenario pair`: two peers started (the second bootstrapping from the first), then `--ops`
/// times a fresh key stored through the first and got through the second, one call at a time.
async fn run_pair<P: BenchPeer>(args: &Args) -> Vec<(&'static str, f64, String)> {
    let listen = listen_addr(args.transport);
    let wait_timeout = Duration::from_secs_f64(args.wait_timeout);
    let setup = Instant::now();
    let first = P::start(listen.clone(), Vec::new(), wait_timeout).await;
    let second = P::start(listen, first.addrs(), wait_timeout).await;
    let setup_time = setup.elapsed().as_secs_f64();

    let mut rng = StdRng::seed_from_u64(args.random_seed);
    let (mut store_times, mut get_times) = (Vec::new(), Vec::new());
    let (mut stored, mut got) = (0usize, 0usize);
    let both = [first.clone(), second.clone()];
    // Requests both peers sent during the stores and during the gets, where the system counts.
    let (mut store_requests, mut get_requests) = (Some(0), Some(0));
    for _ in 0..args.ops {
        let (key, value) = (hex_token(&mut rng), hex_token(&mut rng));
        let store = first.store_value(&key, &value, args.expiration);
        let (ok, took, sent) = timed(&both, store).await;
        stored += usize::from(ok);
        store_times.push(took);
        store_requests = store_requests.zip(sent).map(|(a, b)| a + b);
        let (found, took, sent) = timed(&both, second.get_value(&key, args.latest)).await;
        got += usize::from(found.as_deref() == Some(value.as_str()));
        get_times.push(took);
        get_requests = get_requests.zip(sent).map(|(a, b)| a + b);
    }
    store_times.sort();
    get_times.sort();
    let mut figures = vec![(
        "two peers started",
        setup_time,
        format!("Started two peers in {setup_time:.4} sec."),
    )];
    for (name, times, p) in [
        ("store p50 ms", &store_times, 0.5),
        ("store p99 ms", &store_times, 0.99),
        ("get p50 ms", &get_times, 0.5),
        ("get p99 ms", &get_times, 0.99),
    ] {
        let ms = percentile(times, p).as_secs_f64() * 1e3;
        figures.push((name, ms, format!("{name}: {ms:.3}")));
    }
    for (name, requests) in [
        ("requests per store", store_requests),
        ("requests per get", get_requests),
    ] {
        if let Some(n) = requests {
            let per_op = n as f64 / args.ops.max(1) as f64;
            figures.push((name, per_op, format!("{name}: {per_op:.2}")));
        }
    }
    figures.push(success_rate(
        "store success rate",
        "Store success rate",
        stored,
        args.ops,
    ));
    figures.push(success_rate(
        "get success rate",
        "Get success rate",
        got,
        args.ops,
    ));
    first.shutdown().await;
    second.shutdown().await;
    figures
}

/// Runs the workload on peers of type `P`; returns (figure name, value, hivemind-style line).
async fn run<P: BenchPeer>(args: &Args) -> Vec<(&'static str, f64, String)> {
    let mut rng = StdRng::seed_from_u64(args.random_seed);
    let listen = listen_addr(args.transport);
    let wait_timeout = Duration::from_secs_f64(args.wait_timeout);

    let setup = Instant::now();
    let mut peers: Vec<P> = Vec::with_capacity(args.num_peers);
    for _ in 0..args.num_peers {
        let initial: Vec<Multiaddr> = peers
            .choose_multiple(&mut rng, args.initial_peers)
            .flat_map(|p| p.addrs())
            .collect();
        peers.push(P::start(listen.clone(), initial, wait_timeout).await);
    }
    let setup_time = setup.elapsed();

    let num_shutdown = (args.failure_rate * args.num_peers as f64) as usize;
    assert!(
        num_shutdown < args.num_peers,
        "the failure rate would shut down every peer"
    );
    let shutdown_idx: Vec<usize> = (0..args.num_peers).choose_multiple(&mut rng, num_shutdown);
    let remaining: Vec<P> = (0..args.num_peers)
        .filter(|i| !shutdown_idx.contains(i))
        .map(|i| peers[i].clone())
        .collect();
    let total_rounds = args.num_threads * args.total_num_rounds;
    let mut timestamps =
        (0..total_rounds).choose_multiple(&mut rng, num_shutdown.min(total_rounds));
    timestamps.sort();
    let killer = Arc::new(NodeKiller {
        counter: AtomicUsize::new(0),
        timestamps,
        victims: Mutex::new(shutdown_idx.iter().map(|i| peers[*i].clone()).collect()),
    });
    let remaining = Arc::new(remaining);

    let (sent_before, cpu_before) = (requests_sent(&peers), cpu_seconds());
    let start = Instant::now();
    let workers: Vec<_> = (0..args.num_threads)
        .map(|w| {
            let (remaining, killer) = (remaining.clone(), killer.clone());
            let mut rng = StdRng::seed_from_u64(args.random_seed.wrapping_add(w as u64 + 1));
            let (rounds, n_store, n_get, latest) = (
                args.total_num_rounds,
                args.num_store_peers,
                args.num_get_peers,
                args.latest,
            );
            let (delay, wait_after, expiration) =
                (args.delay, args.wait_after_iteration, args.expiration);
            tokio::spawn(async move {
                let (mut store_times, mut get_times) = (Vec::new(), Vec::new());
                let (mut stored, mut got) = (0usize, 0usize);
                for _ in 0..rounds {
                    let key = hex_token(&mut rng);
                    let stores: Vec<(P, String, String)> = remaining
                        .choose_multiple(&mut rng, n_store)
                        .map(|p| (p.clone(), hex_token(&mut rng), hex_token(&mut rng)))
                        .collect();
                    let t = Instant::now();
                    let results =
                        futures::future::join_all(stores.iter().map(|(peer, subkey, value)| {
                            peer.store(&key, subkey, value, expiration)
                        }))
                        .await;
                    killer.check_and_kill().await;
                    store_times.push(t.elapsed().as_secs_f64());
                    let expected: HashMap<String, String> = stores
                        .iter()
                        .zip(&results)
                        .filter(|(_, ok)| **ok)
                        .map(|((_, subkey, value), _)| (subkey.clone(), value.clone()))
                        .collect();
                    stored += expected.len();
                    if delay > 0.0 {
                        tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                    }
                    let getters: Vec<P> = remaining
                        .choose_multiple(&mut rng, n_get)
                        .cloned()
                        .collect();
                    let t = Instant::now();
                    let answers = futures::future::join_all(
                        getters
                            .iter()
                            .map(|peer| peer.get_all(&key, &expected, latest)),
                    )
                    .await;
                    get_times.push(t.elapsed().as_secs_f64());
                    got += answers.into_iter().filter(|ok| *ok).count();
                    if wait_after > 0.0 {
                        tokio::time::sleep(Duration::from_secs_f64(wait_after)).await;
                    }
                }
                (store_times, get_times, stored, got)
            })
        })
        .collect();
    let (mut store_times, mut get_times, mut stored, mut got) = (Vec::new(), Vec::new(), 0, 0);
    for worker in workers {
        let (s, g, ok_s, ok_g) = worker.await.expect("worker finished");
        store_times.extend(s);
        get_times.extend(g);
        stored += ok_s;
        got += ok_g;
    }
    let total_time = start.elapsed().as_secs_f64();
    let requests = requests_sent(&peers)
        .zip(sent_before)
        .map(|(after, before)| (after - before) as f64);
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let alive = peers.iter().filter(|p| p.is_alive()).count();

    let total_stores = total_rounds * args.num_store_peers.min(remaining.len());
    let total_gets = total_rounds * args.num_get_peers.min(remaining.len());
    let (sm, ss, sx) = stats(&store_times);
    let (gm, gs, gx) = stats(&get_times);
    let rss = peak_rss_bytes();
    let figures: Vec<(&'static str, f64, String)> = vec![
        (
            "peers started",
            setup_time.as_secs_f64(),
            format!(
                "Started {} peers in {:.3} sec.",
                args.num_peers,
                setup_time.as_secs_f64()
            ),
        ),
        (
            "store wall time mean",
            sm,
            format!("Store wall time (sec.): mean({sm:.3}) std({ss:.3}) max({sx:.3})"),
        ),
        (
            "get wall time mean",
            gm,
            format!("Get wall time (sec.): mean({gm:.3}) std({gs:.3}) max({gx:.3})"),
        ),
        (
            "store time per worker",
            store_times.iter().sum::<f64>() / args.num_threads as f64,
            format!(
                "Average store time per worker: {:.3} sec.",
                store_times.iter().sum::<f64>() / args.num_threads as f64
            ),
        ),
        (
            "get time per worker",
            get_times.iter().sum::<f64>() / args.num_threads as f64,
            format!(
                "Average get time per worker: {:.3} sec.",
                get_times.iter().sum::<f64>() / args.num_threads as f64
            ),
        ),
        (
            "total time",
            total_time,
            format!("Total benchmark time: {total_time:.5} sec."),
        ),
        success_rate(
            "store success rate",
            "Store success rate",
            stored,
            total_stores,
        ),
        success_rate("get success rate", "Get success rate", got, total_gets),
        (
            "node survival rate",
            100.0 * alive as f64 / peers.len() as f64,
            format!(
                "Node survival rate: {:.3}%",
                100.0 * alive as f64 / peers.len() as f64
            ),
        ),
        (
            "CPU time",
            cpu.unwrap_or(0.0),
            match cpu {
                Some(cpu) => format!("CPU time (user + system) during the workload: {cpu:.2} sec."),
                None => "CPU time: unknown".into(),
            },
        ),
        (
            "requests sent",
            requests.unwrap_or(0.0),
            match requests {
                Some(n) => format!(
                    "Requests sent by all peers: {n:.0} ({:.0} per second)",
                    n / total_time
                ),
                None => "Requests sent: not counted".into(),
            },
        ),
        (
            "peak RSS per node MiB",
            rss.map_or(0.0, |b| b as f64 / args.num_peers as f64 / (1 << 20) as f64),
            match rss {
                Some(b) => format!(
                    "Peak RSS per node: {:.2} MiB",
                    b as f64 / args.num_peers as f64 / (1 << 20) as f64
                ),
                None => "Peak RSS per node: unknown".into(),
            },
        ),
    ];
    for peer in peers {
        peer.shutdown().await;
    }
    // A system that does not count its requests has no such figure, rather than a zero.
    figures
        .into_iter()
        .filter(|(name, _, _)| *name != "requests sent" || requests.is_some())
        .collect()
}
