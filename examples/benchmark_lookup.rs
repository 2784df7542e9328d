//! What lookups cost as the DHT grows: N nodes in one process on the in-memory transport, then
//! sequential `find_nearest_nodes`, `store` and `get` calls from random nodes, each measured by
//! the nodes' own counters (requests sent per RPC, beam searches and their hops).
//!
//! `cargo run --release --example benchmark_lookup [-- --nodes 100,1000 --json]`
//!
//! Each N runs in a child process of its own (this program with `--child`), so that the memory
//! per node of one N does not include what an earlier N left behind.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use p2p_servicer::dht::{DhtConfig, DhtId, DhtNode, LookupStats, RpcCounts, get_dht_time};
use p2p_servicer::runtime::{Multiaddr, P2PConfig};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[derive(Parser)]
#[command(about = "RPCs, hops, accuracy and memory of DHT lookups for growing numbers of nodes")]
struct Args {
    /// Numbers of nodes, one run each.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1000])]
    nodes: Vec<usize>,
    /// Random earlier nodes each node bootstraps from (as benchmark_dht).
    #[arg(long, default_value_t = 4)]
    initial_peers: usize,
    /// Nodes started at once (each bootstraps from nodes started before its batch).
    #[arg(long, default_value_t = 16)]
    start_batch: usize,
    /// `find_nearest_nodes` calls measured per N.
    #[arg(long, default_value_t = 100)]
    finds: usize,
    /// Keys stored (and then got twice each) per N.
    #[arg(long, default_value_t = 100)]
    keys: usize,
    /// Nearest nodes asked of `find_nearest_nodes` (and compared with brute force).
    #[arg(long, default_value_t = 20)]
    k: usize,
    #[arg(long, default_value_t = 30)]
    random_seed: u64,
    /// Print one JSON object per figure.
    #[arg(long)]
    json: bool,
    /// Run one N (the first of `--nodes`) in this process and print its figures as JSON.
    #[arg(long, hide = true)]
    child: bool,
}

/// Resident memory of this process in bytes (`VmRSS`, or `VmHWM` for the peak), Linux only.
fn rss_bytes(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Requests sent by every node so far.
fn all_sent(nodes: &[DhtNode]) -> u64 {
    nodes.iter().map(|n| n.protocol().rpcs_sent().total()).sum()
}

/// What one operation cost.
#[derive(Default)]
struct Costs {
    /// Requests the calling node sent.
    own: Vec<f64>,
    /// Requests every node sent meanwhile (the caller's, plus replication, caching, pings).
    all: Vec<f64>,
    /// Hops of the caller's searches.
    hops: Vec<f64>,
    /// Searches the caller ran.
    searches: Vec<f64>,
    millis: Vec<f64>,
}

impl Costs {
    /// Runs `op` on `node` and records what it cost.
    async fn measure<T>(
        &mut self,
        nodes: &[DhtNode],
        node: &DhtNode,
        op: impl std::future::Future<Output = T>,
    ) -> T {
        let (own, all, lookups): (RpcCounts, u64, LookupStats) = (
            node.protocol().rpcs_sent(),
            all_sent(nodes),
            node.lookup_stats(),
        );
        let t = Instant::now();
        let out = op.await;
        self.millis.push(t.elapsed().as_secs_f64() * 1e3);
        self.own
            .push((node.protocol().rpcs_sent() - own).total() as f64);
        self.all.push((all_sent(nodes) - all) as f64);
        let lookups = node.lookup_stats() - lookups;
        self.hops.push(lookups.hops as f64);
        self.searches.push(lookups.searches as f64);
        out
    }

    fn figures(&self, op: &str, out: &mut Vec<(String, f64)>) {
        out.push((
            format!("{op}: requests by the caller, mean"),
            mean(&self.own),
        ));
        out.push((
            format!("{op}: requests by all nodes, mean"),
            mean(&self.all),
        ));
        out.push((format!("{op}: hops, mean"), mean(&self.hops)));
        out.push((
            format!("{op}: hops, max"),
            self.hops.iter().copied().fold(0.0, f64::max),
        ));
        out.push((format!("{op}: searches, mean"), mean(&self.searches)));
        out.push((format!("{op}: time p50 (ms)"), median(&self.millis)));
    }
}

/// Starts `n` nodes, measures, shuts them down; returns (figure, value) pairs.
async fn run(args: &Args, n: usize) -> Vec<(String, f64)> {
    let mut rng = StdRng::seed_from_u64(args.random_seed);
    let listen: Multiaddr = "/memory/0".parse().expect("valid address");
    let rss_before = rss_bytes("VmRSS:").unwrap_or(0.0);
    let started = Instant::now();
    let mut nodes: Vec<DhtNode> = Vec::with_capacity(n);
    while nodes.len() < n {
        let batch = args.start_batch.max(1).min(n - nodes.len());
        let configs: Vec<DhtConfig> = (0..batch)
            .map(|_| {
                let initial: Vec<Multiaddr> = nodes
                    .choose_multiple(&mut rng, args.initial_peers)
                    .flat_map(|p| p.p2p().visible_maddrs())
                    .collect();
                DhtConfig::default()
                    .with_p2p(P2PConfig::default().with_listen_addrs([listen.clone()]))
                    .with_initial_peers(initial)
            })
            .collect();
        let created = futures::future::join_all(configs.into_iter().map(DhtNode::create)).await;
        nodes.extend(created.into_iter().map(|c| c.expect("node starts")));
    }
    let startup = started.elapsed().as_secs_f64();
    let rss_after = rss_bytes("VmRSS:").unwrap_or(0.0);
    let mut connections = 0usize;
    for node in &nodes {
        connections += node.p2p().connected_peers().await.map_or(0, |c| c.len());
    }
    let table_sizes: Vec<f64> = nodes
        .iter()
        .map(|node| node.stats().routing_table_size as f64)
        .collect();

    // find_nearest_nodes against brute force over every node's id.
    let ids: Vec<DhtId> = nodes.iter().map(DhtNode::node_id).collect();
    let mut finds = Costs::default();
    let (mut top1, mut overlap) = (0usize, 0.0f64);
    for _ in 0..args.finds {
        let node = &nodes[rng.gen_range(0..n)];
        let query = DhtId::random();
        let found = finds
            .measure(
                &nodes,
                node,
                node.find_nearest_nodes(&[query], Some(args.k), false),
            )
            .await;
        let found: Vec<DhtId> = found
            .get(&query)
            .map(|v| v.iter().map(|(id, _)| *id).collect())
            .unwrap_or_default();
        let mut truth = ids.clone();
        truth.sort_by_key(|id| id.xor_distance(&query));
        truth.truncate(args.k);
        if found.first() == truth.first() {
            top1 += 1;
        }
        let truth: HashSet<DhtId> = truth.into_iter().collect();
        overlap += found.iter().filter(|id| truth.contains(id)).count() as f64 / args.k as f64;
    }

    // Stores, then two gets of each key from two other random nodes.
    let mut stores = Costs::default();
    let mut stored: Vec<(String, usize)> = Vec::new();
    for i in 0..args.keys {
        let key = format!("lookup-benchmark-{}-{i}", rng.r#gen::<u64>());
        let at = rng.gen_range(0..n);
        let node = &nodes[at];
        let exp = get_dht_time() + 600.0;
        let ok = stores
            .measure(&nodes, node, node.store(key.as_str(), &i, exp, None))
            .await;
        if matches!(ok, Ok(true)) {
            stored.push((key, at));
        }
    }
    let other = |rng: &mut StdRng, not: usize| loop {
        let i = rng.gen_range(0..n);
        if i != not || n == 1 {
            return i;
        }
    };
    let (mut gets, mut gets_latest) = (Costs::default(), Costs::default());
    let (mut found_any, mut found_latest) = (0usize, 0usize);
    for (key, at) in &stored {
        let node = &nodes[other(&mut rng, *at)];
        let got = gets
            .measure(&nodes, node, node.get::<usize>(key.as_str(), false))
            .await;
        found_any += usize::from(matches!(got, Ok(Some(_))));
        let node = &nodes[other(&mut rng, *at)];
        let got = gets_latest
            .measure(&nodes, node, node.get::<usize>(key.as_str(), true))
            .await;
        found_latest += usize::from(matches!(got, Ok(Some(_))));
    }

    let mut out: Vec<(String, f64)> = vec![
        ("startup (s)".into(), startup),
        (
            "memory per node (MiB)".into(),
            (rss_after - rss_before) / n as f64 / (1 << 20) as f64,
        ),
        (
            "peak RSS per node (MiB)".into(),
            rss_bytes("VmHWM:").unwrap_or(0.0) / n as f64 / (1 << 20) as f64,
        ),
        ("connections per node".into(), connections as f64 / n as f64),
        ("routing table size, mean".into(), mean(&table_sizes)),
        (
            "find_nearest_nodes: top-1 accuracy (%)".into(),
            100.0 * top1 as f64 / args.finds.max(1) as f64,
        ),
        (
            format!("find_nearest_nodes: overlap with true {} (%)", args.k),
            100.0 * overlap / args.finds.max(1) as f64,
        ),
    ];
    finds.figures("find_nearest_nodes", &mut out);
    out.push((
        "store: success (%)".into(),
        100.0 * stored.len() as f64 / args.keys.max(1) as f64,
    ));
    stores.figures("store", &mut out);
    let of_stored = |found: usize| 100.0 * found as f64 / stored.len().max(1) as f64;
    out.push(("get: found (%)".into(), of_stored(found_any)));
    gets.figures("get", &mut out);
    out.push(("get latest: found (%)".into(), of_stored(found_latest)));
    gets_latest.figures("get latest", &mut out);
    for node in nodes {
        node.shutdown().await;
    }
    out
}

/// Reads one `{"figure":"name","value":x}` line of a child's output.
fn parse_figure(line: &str) -> Option<(String, f64)> {
    let rest = line.strip_prefix("{\"figure\":\"")?;
    let (name, rest) = rest.split_once('"')?;
    let value = rest.strip_prefix(",\"value\":")?.strip_suffix('}')?;
    Some((name.to_string(), value.parse().ok()?))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.child {
        let n = args.nodes.first().copied().unwrap_or(100);
        for (name, value) in run(&args, n).await {
            println!("{{\"figure\":\"{name}\",\"value\":{value:.6}}}");
        }
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let mut names: Vec<String> = Vec::new();
    let mut table: HashMap<(String, usize), f64> = HashMap::new();
    let mut done: Vec<usize> = Vec::new();
    for &n in &args.nodes {
        let output = Command::new(&exe)
            .args(["--child", "--nodes", &n.to_string()])
            .args(["--initial-peers", &args.initial_peers.to_string()])
            .args(["--start-batch", &args.start_batch.to_string()])
            .args(["--finds", &args.finds.to_string()])
            .args(["--keys", &args.keys.to_string()])
            .args(["--k", &args.k.to_string()])
            .args(["--random-seed", &args.random_seed.to_string()])
            .output()
            .expect("child runs");
        if !output.status.success() {
            // Most likely out of memory: say so and go on with the sizes that fit.
            eprintln!(
                "N = {n} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            continue;
        }
        for (name, value) in String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(parse_figure)
        {
            if args.json {
                println!("{{\"nodes\":{n},\"figure\":\"{name}\",\"value\":{value:.6}}}");
            }
            if !names.contains(&name) {
                names.push(name.clone());
            }
            table.insert((name, n), value);
        }
        done.push(n);
    }
    if args.json {
        return;
    }
    print!("{:<52}", "figure");
    for n in &done {
        print!(" {:>10}", format!("N={n}"));
    }
    println!();
    for name in &names {
        print!("{name:<52}");
        for n in &done {
            match table.get(&(name.clone(), *n)) {
                Some(v) => print!(" {v:>10.2}"),
                None => print!(" {:>10}", "-"),
            }
        }
        println!();
    }
}
