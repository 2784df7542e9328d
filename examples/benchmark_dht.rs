//! A port of hivemind's `benchmarks/benchmark_dht.py`: concurrent workers store subkeys of fresh
//! keys through random peers and read them back through others, while peers are shut down.
//!
//! `cargo run --release --example benchmark_dht [-- --num-peers 16 --transport memory]`
//!
//! Same parameters, defaults and printed figures as hivemind's script (the node survival rate is
//! computed from the peers actually alive, unlike hivemind's). The peers are nodes in one process
//! (hivemind runs one process per peer).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rand::rngs::StdRng;
use rand::seq::{IteratorRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use servicer::dht::{DhtConfig, DhtNode, DhtValue, Key, get_dht_time};
use servicer::runtime::{Multiaddr, P2PConfig};
use tokio::sync::Mutex;

#[derive(Clone, Copy, ValueEnum)]
enum Transport {
    Tcp,
    Memory,
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
    /// Print one JSON object per figure.
    #[arg(long)]
    json: bool,
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
struct NodeKiller {
    counter: AtomicUsize,
    timestamps: Vec<usize>,
    victims: Mutex<Vec<DhtNode>>,
}

impl NodeKiller {
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

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut rng = StdRng::seed_from_u64(args.random_seed);
    let listen: Multiaddr = match args.transport {
        Transport::Tcp => "/ip4/127.0.0.1/tcp/0",
        Transport::Memory => "/memory/0",
    }
    .parse()
    .expect("valid address");
    let wait_timeout = Duration::from_secs_f64(args.wait_timeout);

    let setup = Instant::now();
    let mut peers: Vec<DhtNode> = Vec::with_capacity(args.num_peers);
    for _ in 0..args.num_peers {
        let initial: Vec<Multiaddr> = peers
            .choose_multiple(&mut rng, args.initial_peers)
            .flat_map(|p| p.p2p().visible_maddrs())
            .collect();
        let config = DhtConfig {
            wait_timeout,
            ..DhtConfig::default()
                .with_p2p(P2PConfig::default().with_listen_addrs([listen.clone()]))
                .with_initial_peers(initial)
        };
        peers.push(DhtNode::create(config).await.expect("peer starts"));
    }
    let setup_time = setup.elapsed();

    let num_shutdown = (args.failure_rate * args.num_peers as f64) as usize;
    assert!(
        num_shutdown < args.num_peers,
        "the failure rate would shut down every peer"
    );
    let shutdown_idx: Vec<usize> = (0..args.num_peers).choose_multiple(&mut rng, num_shutdown);
    let remaining: Vec<DhtNode> = (0..args.num_peers)
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
                    let stores: Vec<(DhtNode, String, String)> = remaining
                        .choose_multiple(&mut rng, n_store)
                        .map(|p| (p.clone(), hex_token(&mut rng), hex_token(&mut rng)))
                        .collect();
                    let t = Instant::now();
                    let results =
                        futures::future::join_all(stores.iter().map(|(peer, subkey, value)| {
                            let exp = get_dht_time() + expiration;
                            peer.store(key.as_str(), value, exp, Some(Key::from(subkey.as_str())))
                        }))
                        .await;
                    killer.check_and_kill().await;
                    store_times.push(t.elapsed().as_secs_f64());
                    let expected: HashMap<Vec<u8>, String> = stores
                        .iter()
                        .zip(&results)
                        .filter(|(_, ok)| matches!(ok, Ok(true)))
                        .map(|((_, subkey, value), _)| {
                            (Key::from(subkey.as_str()).to_msgpack(), value.clone())
                        })
                        .collect();
                    stored += expected.len();
                    if delay > 0.0 {
                        tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                    }
                    let getters: Vec<DhtNode> = remaining
                        .choose_multiple(&mut rng, n_get)
                        .cloned()
                        .collect();
                    let t = Instant::now();
                    let answers = futures::future::join_all(
                        getters
                            .iter()
                            .map(|peer| peer.get::<String>(key.as_str(), latest)),
                    )
                    .await;
                    get_times.push(t.elapsed().as_secs_f64());
                    for answer in answers {
                        if let Ok(Some(found)) = answer
                            && let DhtValue::Dictionary(dict) = found.value
                            && dict.len() == expected.len()
                            && expected
                                .iter()
                                .all(|(s, v)| dict.get(s).is_some_and(|x| &x.value == v))
                        {
                            got += 1;
                        }
                    }
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
    let alive = peers.iter().filter(|p| !p.p2p().is_shut_down()).count();

    let total_stores = total_rounds * args.num_store_peers.min(remaining.len());
    let total_gets = total_rounds * args.num_get_peers.min(remaining.len());
    let (sm, ss, sx) = stats(&store_times);
    let (gm, gs, gx) = stats(&get_times);
    let rss = peak_rss_bytes();
    let figures: Vec<(&str, f64, String)> = vec![
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
        (
            "store success rate",
            100.0 * stored as f64 / total_stores as f64,
            format!(
                "Store success rate: {:.1}% ({stored}/{total_stores})",
                100.0 * stored as f64 / total_stores as f64
            ),
        ),
        (
            "get success rate",
            100.0 * got as f64 / total_gets as f64,
            format!(
                "Get success rate: {:.1}% ({got}/{total_gets})",
                100.0 * got as f64 / total_gets as f64
            ),
        ),
        (
            "node survival rate",
            100.0 * alive as f64 / peers.len() as f64,
            format!(
                "Node survival rate: {:.3}%",
                100.0 * alive as f64 / peers.len() as f64
            ),
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
    for (name, value, line) in figures {
        if args.json {
            println!("{{\"figure\":\"{name}\",\"value\":{value:.6}}}");
        } else {
            println!("{line}");
        }
    }
    for peer in peers {
        peer.shutdown().await;
    }
}
