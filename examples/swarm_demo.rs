//! A DHT swarm in one process: starts nodes on loopback, stores keys (some as dictionaries with
//! subkeys) through random nodes, reads them back through other nodes, and prints what happened.
//!
//! `cargo run --release --example swarm_demo [-- --nodes 32 --keys 100 --transport memory]`

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use p2p_servicer::dht::{DhtConfig, DhtNode, DhtValue, Key, get_dht_time};
use p2p_servicer::runtime::{Multiaddr, P2PConfig};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, ValueEnum)]
enum Transport {
    Tcp,
    Memory,
}

#[derive(Parser)]
#[command(about = "Runs a DHT swarm in one process and reports store/get success and latency")]
struct Args {
    /// Nodes in the swarm.
    #[arg(long, default_value_t = 32)]
    nodes: usize,
    /// Keys to store; every fifth one is a dictionary with three subkeys.
    #[arg(long, default_value_t = 100)]
    keys: usize,
    /// Transport between the nodes.
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    transport: Transport,
    /// Seed of the random choices.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let listen: Multiaddr = match args.transport {
        Transport::Tcp => "/ip4/127.0.0.1/tcp/0",
        Transport::Memory => "/memory/0",
    }
    .parse()
    .expect("valid address");

    let started = Instant::now();
    let mut nodes: Vec<DhtNode> = Vec::with_capacity(args.nodes);
    for _ in 0..args.nodes.max(1) {
        let initial: Vec<Multiaddr> = nodes
            .choose_multiple(&mut rng, 3)
            .flat_map(|n| n.p2p().visible_maddrs())
            .collect();
        let config = DhtConfig::default()
            .with_p2p(P2PConfig::default().with_listen_addrs([listen.clone()]))
            .with_initial_peers(initial);
        nodes.push(DhtNode::create(config).await.expect("node starts"));
    }
    let startup = started.elapsed();

    let expiration = get_dht_time() + 600.0;
    let (mut stored, mut store_times, mut storers) = (0, Vec::new(), Vec::new());
    for k in 0..args.keys {
        let storer = rng.gen_range(0..nodes.len());
        storers.push(storer);
        let node = &nodes[storer];
        let start = Instant::now();
        let ok = if k % 5 == 0 {
            let mut all = true;
            for s in 0..3 {
                let sub = Some(Key::from(format!("sub{s}")));
                all &= node
                    .store(format!("key{k}"), &(k * 10 + s), expiration, sub)
                    .await
                    .unwrap_or(false);
            }
            all
        } else {
            node.store(format!("key{k}"), &k, expiration, None)
                .await
                .unwrap_or(false)
        };
        store_times.push(start.elapsed());
        stored += usize::from(ok);
    }

    let (mut found, mut get_times) = (0, Vec::new());
    for (k, storer) in storers.iter().enumerate() {
        // Read through a node other than the one that stored the key.
        let reader = (storer + rng.gen_range(1..nodes.len().max(2))) % nodes.len();
        let node = &nodes[reader];
        let start = Instant::now();
        let got = node
            .get::<usize>(format!("key{k}"), rng.r#gen::<bool>())
            .await;
        get_times.push(start.elapsed());
        let correct = match got {
            Ok(Some(v)) => match v.value {
                DhtValue::Regular(x) => x == k,
                DhtValue::Dictionary(d) => d.len() == 3 && d.values().all(|v| v.value / 10 == k),
            },
            _ => false,
        };
        found += usize::from(correct);
    }

    let rate = |n: usize| 100.0 * n as f64 / args.keys.max(1) as f64;
    println!(
        "swarm of {} nodes ({}), {} keys (every fifth with 3 subkeys)",
        nodes.len(),
        match args.transport {
            Transport::Tcp => "loopback TCP",
            Transport::Memory => "in-memory transport",
        },
        args.keys
    );
    println!("{:<28} {:>12}", "figure", "value");
    println!("{:<28} {:>12.2?}", "swarm startup", startup);
    println!("{:<28} {:>11.1}%", "store success", rate(stored));
    println!("{:<28} {:>11.1}%", "get success (other node)", rate(found));
    println!("{:<28} {:>12.2?}", "median store", median(store_times));
    println!("{:<28} {:>12.2?}", "median get", median(get_times));
    println!("{:<28} {:>12.2?}", "total", started.elapsed());
    for node in nodes {
        node.shutdown().await;
    }
}
