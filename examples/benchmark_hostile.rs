//! Honest peers run a DHT workload through a victim node, first alone, then while attackers
//! flood the victim; prints the honest success rate and latency of both runs and the victim's
//! peak resident set.
//!
//! `cargo run --release --example benchmark_hostile [-- --seconds 20 --attacks all]`
//!
//! Three processes on 127.0.0.1, so that each one's memory and CPU are its own: the victim (a
//! `DhtNode` with the default configuration), this one (the honest peers, `--honest-peers` DHT
//! nodes that bootstrap from the victim, and `--workers` workers that each store a subkey of a
//! fresh key through one random honest peer and get it back through another, as benchmark_dht
//! does), and the attackers. With five nodes in all (the default) every key is stored on the
//! victim, so every honest operation goes through it.
//!
//! The attacks (`--attacks`, all by default), each from identities of its own:
//! - `repeated-find`: finds naming one 900 KiB value 1,024 times, 8 at once;
//! - `unread-answers`: finds of that value whose answers are never read, 32 streams kept;
//! - `header-only`: 4 identities x 64 streams that send only a call header;
//! - `max-ttl-stores`: stores of 100 records that expire a minute before the maximum TTL;
//! - `large-requests`: 2 identities x 16 streams that send all but the last byte of a 4 MiB request;
//! - `connection-flood`: 10 fresh identities a second connect, 64 kept open;
//! - `node-id-churn`: pings under a fresh node id each, 4 at once, every tenth asking for a ping back.
//!
//! The honest workers are paced (`--pace-ms`) so that the quiet run measures service rather than
//! a saturated machine, and the attackers run at the lowest CPU priority
//! (`--attackers-at-normal-priority` to change that): on two cores, an attacker process at full
//! priority mostly measures the scheduler, while on the internet its CPU is its own. What the
//! attacks cost the victim shows in its CPU time, printed for both runs.
//!
//! Targets (BENCHMARKS.md, "Hostile peers"): 100% honest success, honest p99 within 3x of the quiet
//! run, the victim's peak resident set within `--rss-budget-mib` (256 MiB by default).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use p2p_servicer::dht::messages::{
    AddrList, FindRequest, NodeInfo, PingRequest, StoreItem, StoreRequest, StoreValue,
};
use p2p_servicer::dht::{
    DhtConfig, DhtId, DhtNode, DhtProtocol, DhtValue, Key, encode_value, get_dht_time,
};
use p2p_servicer::runtime::native::codec;
use p2p_servicer::runtime::native::frame::{CallHeader, FrameKind};
use p2p_servicer::runtime::{
    Multiaddr, P2P, P2PConfig, PeerId, RpcError, RpcKind, multiaddr_peer_id,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[path = "shared/stats.rs"]
mod stats;
use stats::{median, percentile};

// The allocator p2p-dht runs on (see benchmark_dht.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Runs the victim and the attackers as child processes, and the honest peers.
    Coordinator,
    /// The victim node: prints its address, serves until its stdin closes.
    Victim,
    /// The attackers, against `--victim`.
    Attacker,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
enum Attack {
    All,
    RepeatedFind,
    UnreadAnswers,
    HeaderOnly,
    MaxTtlStores,
    LargeRequests,
    ConnectionFlood,
    NodeIdChurn,
}

const ATTACKS: [Attack; 7] = [
    Attack::RepeatedFind,
    Attack::UnreadAnswers,
    Attack::HeaderOnly,
    Attack::MaxTtlStores,
    Attack::LargeRequests,
    Attack::ConnectionFlood,
    Attack::NodeIdChurn,
];

#[derive(Parser)]
#[command(about = "An honest DHT workload through a victim node, quiet and under attack")]
struct Args {
    /// Honest DHT nodes besides the victim.
    #[arg(long, default_value_t = 4)]
    honest_peers: usize,
    /// Honest workers, each doing one store and one get at a time.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Milliseconds each worker leaves between the starts of its store-and-get pairs, so that
    /// the quiet run measures service, not a saturated machine (0: back to back).
    #[arg(long, default_value_t = 20)]
    pace_ms: u64,
    /// Run the attackers at the machine's normal CPU priority. By default they run at the
    /// lowest (`nice -n 19`): on the internet their CPU is their own, and on two cores an
    /// attacker process at full priority mostly measures the scheduler.
    #[arg(long)]
    attackers_at_normal_priority: bool,
    /// Seconds each run (quiet, then under attack) lasts.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// The attacks to run.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    attacks: Vec<Attack>,
    /// The victim's peak resident set must stay within this many MiB.
    #[arg(long, default_value_t = 256)]
    rss_budget_mib: u64,
    #[arg(long, default_value_t = 7)]
    random_seed: u64,
    #[arg(long, value_enum, default_value = "coordinator", hide = true)]
    role: Role,
    /// The victim's full address (for `--role attacker`).
    #[arg(long, hide = true)]
    victim: Option<Multiaddr>,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match args.role {
        Role::Coordinator => runtime.block_on(coordinate(args)),
        Role::Victim => runtime.block_on(victim()),
        Role::Attacker => {
            let victim = args.victim.clone().expect("--victim");
            runtime.block_on(attack(victim, attacks(&args.attacks)));
        }
    }
}

fn attacks(chosen: &[Attack]) -> Vec<Attack> {
    if chosen.contains(&Attack::All) {
        ATTACKS.to_vec()
    } else {
        chosen.to_vec()
    }
}

fn loopback() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr")
}

// ---- the victim ----

async fn victim() {
    let config =
        DhtConfig::default().with_p2p(P2PConfig::default().with_listen_addrs([loopback()]));
    let node = DhtNode::create(config).await.expect("the victim starts");
    println!("VICTIM {}", node.p2p().visible_maddrs()[0]);
    std::io::stdout().flush().expect("stdout");
    // Serves until the coordinator closes stdin.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            line.clear();
        }
    })
    .await
    .expect("stdin");
    node.shutdown().await;
}

// ---- the coordinator and the honest workload ----

/// A child process of this program and the lines it prints.
struct Process {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

/// Starts this program in `role`; with `nice`, at the lowest CPU priority.
fn spawn(role: &str, extra: &[String], nice: bool) -> Process {
    let program = std::env::current_exe().expect("this program");
    let mut command = if nice {
        let mut command = Command::new("nice");
        command.args(["-n", "19"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    let mut child = command
        .arg("--role")
        .arg(role)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn a child process");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    Process { child, lines }
}

impl Process {
    /// The rest of the first line that starts with `tag`.
    fn wait_for(&mut self, tag: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("a line from the child");
            if let Some(rest) = line.strip_prefix(tag) {
                return rest.trim().to_owned();
            }
        }
        panic!("the child process ended before printing {tag}");
    }

    /// A field of the child's /proc status, in bytes.
    fn status_bytes(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    }

    /// CPU time (user + system) the child has used, in seconds (at 100 clock ticks a second).
    fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / 100.0)
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One honest operation: how long it took and whether it did what it should.
struct Op {
    took: Duration,
    ok: bool,
}

/// The figures of one run of the workload.
struct Run {
    stores: Vec<Op>,
    gets: Vec<Op>,
}

impl Run {
    fn success_rate(&self) -> f64 {
        let all = self.stores.len() + self.gets.len();
        let ok = self
            .stores
            .iter()
            .chain(&self.gets)
            .filter(|op| op.ok)
            .count();
        100.0 * ok as f64 / all.max(1) as f64
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut times: Vec<Duration> = self
            .stores
            .iter()
            .chain(&self.gets)
            .map(|op| op.took)
            .collect();
        times.sort();
        percentile(&times, p)
    }

    fn median_ms(&self) -> f64 {
        let times: Vec<f64> = self
            .stores
            .iter()
            .chain(&self.gets)
            .map(|op| ms(op.took))
            .collect();
        if times.is_empty() { 0.0 } else { median(times) }
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name}: {} operations, honest success {:.2}%, p50 {:.1} ms, p99 {:.1} ms",
            self.stores.len() + self.gets.len(),
            self.success_rate(),
            self.median_ms(),
            ms(self.percentile(0.99)),
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn workload(peers: &Arc<Vec<DhtNode>>, args: &Args, seed: u64) -> Run {
    let (workers, pace) = (args.workers, Duration::from_millis(args.pace_ms));
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let peers = peers.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(w as u64));
                let (mut stores, mut gets) = (Vec::new(), Vec::new());
                let mut next = tokio::time::Instant::now();
                while Instant::now() < deadline {
                    tokio::time::sleep_until(next).await;
                    next += pace;
                    let key = format!("{:032x}", rng.r#gen::<u128>());
                    let (subkey, value) = (
                        format!("{:x}", rng.r#gen::<u64>()),
                        format!("{:x}", rng.r#gen::<u64>()),
                    );
                    let mut pair = peers.choose_multiple(&mut rng, 2);
                    let (through, back) =
                        (pair.next().expect("a peer"), pair.next().expect("a peer"));
                    let t = Instant::now();
                    let stored = through
                        .store(
                            &key,
                            &value,
                            get_dht_time() + 300.0,
                            Some(Key::from(subkey.as_str())),
                        )
                        .await;
                    stores.push(Op {
                        took: t.elapsed(),
                        ok: matches!(stored, Ok(true)),
                    });
                    let t = Instant::now();
                    let got = back.get::<String>(&key, true).await;
                    let ok = match got {
                        Ok(Some(found)) => match found.value {
                            DhtValue::Dictionary(dict) => dict
                                .get(&Key::from(subkey.as_str()).to_msgpack())
                                .is_some_and(|v| v.value == value),
                            DhtValue::Regular(_) => false,
                        },
                        _ => false,
                    };
                    gets.push(Op {
                        took: t.elapsed(),
                        ok,
                    });
                }
                (stores, gets)
            })
        })
        .collect();
    let mut run = Run {
        stores: Vec::new(),
        gets: Vec::new(),
    };
    for task in tasks {
        let (stores, gets) = task.await.expect("a worker");
        run.stores.extend(stores);
        run.gets.extend(gets);
    }
    run
}

async fn coordinate(args: Args) {
    let chosen = attacks(&args.attacks);
    let mut victim = spawn("victim", &[], false);
    let victim_addr: Multiaddr = victim
        .wait_for("VICTIM")
        .parse()
        .expect("the victim's address");
    let mut peers = Vec::with_capacity(args.honest_peers);
    for _ in 0..args.honest_peers {
        let mut initial = vec![victim_addr.clone()];
        initial.extend(
            peers
                .iter()
                .flat_map(|p: &DhtNode| p.p2p().visible_maddrs()),
        );
        let config = DhtConfig::default()
            .with_p2p(P2PConfig::default().with_listen_addrs([loopback()]))
            .with_initial_peers(initial);
        peers.push(
            DhtNode::create(config)
                .await
                .expect("an honest peer starts"),
        );
    }
    let peers = Arc::new(peers);
    println!(
        "victim {victim_addr}, {} honest peers, {} workers, {:.0} s per run",
        peers.len(),
        args.workers,
        args.seconds
    );

    let cpu_start = victim.cpu_seconds();
    let quiet = workload(&peers, &args, args.random_seed).await;
    let quiet_peak = victim.status_bytes("VmHWM:");
    let cpu_quiet = victim.cpu_seconds();
    println!("{}", quiet.line("quiet"));

    let names: Vec<String> = chosen
        .iter()
        .map(|a| a.to_possible_value().expect("a name").get_name().to_owned())
        .collect();
    let mut attacker = spawn(
        "attacker",
        &[
            "--victim".into(),
            victim_addr.to_string(),
            "--attacks".into(),
            names.join(","),
        ],
        !args.attackers_at_normal_priority,
    );
    attacker.wait_for("ATTACKING");
    println!(
        "attacks: {} (attackers at {} CPU priority)",
        names.join(", "),
        if args.attackers_at_normal_priority {
            "normal"
        } else {
            "the lowest"
        }
    );
    let cpu_before_attack = victim.cpu_seconds();
    let attacked = workload(&peers, &args, args.random_seed + 1).await;
    let cpu_attacked = victim.cpu_seconds();
    let attack_peak = victim.status_bytes("VmHWM:");
    let victim_rss = victim.status_bytes("VmRSS:");
    attacker.child.kill().ok();
    let report: Vec<String> = attacker
        .lines
        .by_ref()
        .map_while(Result::ok)
        .filter(|l| l.starts_with("ATTACK "))
        .collect();
    let _ = attacker.child.wait();
    println!("{}", attacked.line("under attack"));
    for line in report.iter().rev().take(chosen.len()).rev() {
        println!("  {}", line.trim_start_matches("ATTACK "));
    }
    let mib = |b: Option<u64>| {
        b.map_or("unknown".to_owned(), |b| {
            format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
        })
    };
    println!(
        "victim peak resident set: {} after the quiet run, {} after the attacks (now {}); budget {} MiB",
        mib(quiet_peak),
        mib(attack_peak),
        mib(victim_rss),
        args.rss_budget_mib
    );
    let spent = |from: Option<f64>, to: Option<f64>| {
        from.zip(to).map_or("unknown".to_owned(), |(a, b)| {
            format!("{:.0}%", 100.0 * (b - a) / args.seconds)
        })
    };
    println!(
        "victim CPU: {} of a core in the quiet run, {} under attack",
        spent(cpu_start, cpu_quiet),
        spent(cpu_before_attack, cpu_attacked)
    );
    let ratio =
        attacked.percentile(0.99).as_secs_f64() / quiet.percentile(0.99).as_secs_f64().max(1e-9);
    let within_budget = attack_peak.is_some_and(|b| b <= args.rss_budget_mib << 20);
    println!(
        "targets: honest success 100%: {}; p99 within 3x of quiet ({ratio:.2}x): {}; peak RSS within budget: {}",
        yes(attacked.success_rate() >= 100.0),
        yes(ratio <= 3.0),
        yes(within_budget),
    );
    drop(victim.child.stdin.take());
    for peer in peers.iter() {
        peer.shutdown().await;
    }
    victim.stop();
}

fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

// ---- the attackers ----

/// What one attack did so far.
#[derive(Default)]
struct Counter {
    sent: AtomicU64,
    answered: AtomicU64,
    busy: AtomicU64,
    refused: AtomicU64,
}

impl Counter {
    fn record<T>(&self, result: &Result<T, RpcError>) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(_) => self.answered.fetch_add(1, Ordering::Relaxed),
            Err(RpcError::Busy { .. }) => self.busy.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.refused.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// A fresh identity connected to the victim.
async fn identity(victim: &Multiaddr) -> Option<P2P> {
    P2P::create(
        P2PConfig::default()
            .with_listen_addrs([loopback()])
            .with_initial_peers([victim.clone()])
            .with_require_initial_peers(true),
    )
    .await
    .ok()
}

fn anonymous() -> NodeInfo {
    NodeInfo {
        node_id: None,
        addrs: AddrList::default(),
    }
}

/// A native frame: `kind | u32 length | payload`.
fn frame(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind as u8];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn call_header(name: &str) -> Vec<u8> {
    let header = CallHeader {
        name: name.into(),
        kind: RpcKind::UnaryUnary,
    };
    frame(
        FrameKind::Call,
        &codec::encode(&header).expect("a call header"),
    )
}

const BIG_VALUE: usize = 900 * 1024;

async fn attack(victim: Multiaddr, attacks: Vec<Attack>) {
    let victim_peer = multiaddr_peer_id(&victim).expect("the victim's peer id");
    let big_key = DhtId::generate("benchmark_hostile: a value of 900 KiB");
    if attacks
        .iter()
        .any(|a| matches!(a, Attack::RepeatedFind | Attack::UnreadAnswers))
    {
        let owner = identity(&victim).await.expect("an attacker connects");
        let value =
            encode_value(&serde_bytes::ByteBuf::from(vec![0x5a; BIG_VALUE])).expect("a value");
        let stored = DhtProtocol::get_stub(&owner, victim_peer)
            .rpc_store(StoreRequest {
                peer: anonymous(),
                items: vec![StoreItem {
                    key: big_key,
                    value: StoreValue::Regular(value),
                    expiration_time: get_dht_time() + 3600.0,
                    in_cache: false,
                }],
            })
            .await;
        assert!(
            stored.is_ok_and(|r| r.results == vec![Ok(())]),
            "the big value is stored on the victim"
        );
    }
    let counters: Vec<(Attack, Arc<Counter>)> = attacks
        .iter()
        .map(|a| (*a, Arc::new(Counter::default())))
        .collect();
    for (kind, counter) in &counters {
        let (victim, counter) = (victim.clone(), counter.clone());
        match kind {
            Attack::RepeatedFind => {
                tokio::spawn(repeated_find(victim, victim_peer, big_key, counter))
            }
            Attack::UnreadAnswers => {
                tokio::spawn(unread_answers(victim, victim_peer, big_key, counter))
            }
            Attack::HeaderOnly => tokio::spawn(header_only(victim, victim_peer, counter)),
            Attack::MaxTtlStores => tokio::spawn(max_ttl_stores(victim, victim_peer, counter)),
            Attack::LargeRequests => tokio::spawn(large_requests(victim, victim_peer, counter)),
            Attack::ConnectionFlood => tokio::spawn(connection_flood(victim, counter)),
            Attack::NodeIdChurn => tokio::spawn(node_id_churn(victim, victim_peer, counter)),
            Attack::All => unreachable!("expanded by attacks()"),
        };
    }
    println!("ATTACKING");
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (kind, counter) in &counters {
            println!(
                "ATTACK {kind:?}: {} sent, {} answered, {} busy, {} refused or failed",
                counter.sent.load(Ordering::Relaxed),
                counter.answered.load(Ordering::Relaxed),
                counter.busy.load(Ordering::Relaxed),
                counter.refused.load(Ordering::Relaxed),
            );
        }
        std::io::stdout().flush().ok();
    }
}

async fn repeated_find(victim: Multiaddr, peer: PeerId, key: DhtId, counter: Arc<Counter>) {
    let Some(p2p) = identity(&victim).await else {
        return;
    };
    let stub = DhtProtocol::get_stub(&p2p, peer).with_deadline(Duration::from_secs(30));
    futures::stream::repeat(())
        .for_each_concurrent(8, |()| {
            let (stub, counter) = (stub.clone(), counter.clone());
            async move {
                let answer = stub
                    .rpc_find(FindRequest {
                        peer: anonymous(),
                        keys: vec![key; 1024],
                    })
                    .await;
                counter.record(&answer);
            }
        })
        .await;
}

async fn unread_answers(victim: Multiaddr, peer: PeerId, key: DhtId, counter: Arc<Counter>) {
    let Some(p2p) = identity(&victim).await else {
        return;
    };
    let mut request = call_header("DHTProtocol.rpc_find");
    let find = FindRequest {
        peer: anonymous(),
        keys: vec![key],
    };
    request.extend(frame(
        FrameKind::Message,
        &codec::encode(&find).expect("a request"),
    ));
    let mut held = VecDeque::new();
    loop {
        let opened = async {
            let mut stream = p2p.open_raw_stream(peer).await?;
            stream
                .write_all(&request)
                .await
                .map_err(|e| RpcError::ConnectionClosed(e.to_string()))?;
            stream
                .flush()
                .await
                .map_err(|e| RpcError::ConnectionClosed(e.to_string()))?;
            Ok(stream)
        }
        .await;
        counter.record(&opened);
        held.extend(opened.ok());
        if held.len() > 32 {
            held.pop_front();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn header_only(victim: Multiaddr, peer: PeerId, counter: Arc<Counter>) {
    let header = Arc::new(call_header("DHTProtocol.rpc_find"));
    for _ in 0..4 {
        let Some(p2p) = identity(&victim).await else {
            continue;
        };
        for _ in 0..64 {
            let (p2p, header, counter) = (p2p.clone(), header.clone(), counter.clone());
            tokio::spawn(async move {
                loop {
                    let Ok(mut stream) = p2p.open_raw_stream(peer).await else {
                        counter.record::<()>(&Err(RpcError::Shutdown));
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    };
                    let sent = stream.write_all(&header).await;
                    counter.sent.fetch_add(1, Ordering::Relaxed);
                    if sent.is_ok() {
                        // Held until the victim closes it.
                        let mut sink = Vec::new();
                        let _ = stream.read_to_end(&mut sink).await;
                    }
                    counter.refused.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
}

async fn max_ttl_stores(victim: Multiaddr, peer: PeerId, counter: Arc<Counter>) {
    let Some(p2p) = identity(&victim).await else {
        return;
    };
    let stub = DhtProtocol::get_stub(&p2p, peer).with_deadline(Duration::from_secs(30));
    let value = encode_value(&"x".repeat(1000)).expect("a value");
    let mut rng = StdRng::seed_from_u64(11);
    loop {
        let expiration = get_dht_time() + 24.0 * 3600.0 - 60.0;
        let items = (0..100)
            .map(|_| StoreItem {
                key: DhtId::generate(format!("{:x}", rng.r#gen::<u128>()).as_str()),
                value: StoreValue::Regular(value.clone()),
                expiration_time: expiration,
                in_cache: false,
            })
            .collect();
        let stored = stub
            .rpc_store(StoreRequest {
                peer: anonymous(),
                items,
            })
            .await;
        match &stored {
            Ok(answer) => {
                let accepted = answer.results.iter().filter(|r| r.is_ok()).count() as u64;
                counter.sent.fetch_add(100, Ordering::Relaxed);
                counter.answered.fetch_add(accepted, Ordering::Relaxed);
                counter.refused.fetch_add(100 - accepted, Ordering::Relaxed);
            }
            Err(_) => counter.record(&stored),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn large_requests(victim: Multiaddr, peer: PeerId, counter: Arc<Counter>) {
    const ANNOUNCED: usize = (4 << 20) - 1024;
    let mut head = call_header("DHTProtocol.rpc_store");
    head.push(FrameKind::Message as u8);
    head.extend_from_slice(&(ANNOUNCED as u32).to_be_bytes());
    let head = Arc::new(head);
    let body = Arc::new(vec![0x42u8; ANNOUNCED - 1]);
    for _ in 0..2 {
        let Some(p2p) = identity(&victim).await else {
            continue;
        };
        for _ in 0..16 {
            let (p2p, head, body, counter) =
                (p2p.clone(), head.clone(), body.clone(), counter.clone());
            tokio::spawn(async move {
                loop {
                    let Ok(mut stream) = p2p.open_raw_stream(peer).await else {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    };
                    counter.sent.fetch_add(1, Ordering::Relaxed);
                    let sent = async {
                        stream.write_all(&head).await?;
                        stream.write_all(&body).await?;
                        stream.flush().await
                    }
                    .await;
                    if sent.is_ok() {
                        counter.answered.fetch_add(1, Ordering::Relaxed);
                        let mut sink = Vec::new();
                        let _ = stream.read_to_end(&mut sink).await;
                    } else {
                        counter.refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    }
}

async fn connection_flood(victim: Multiaddr, counter: Arc<Counter>) {
    let mut held = VecDeque::new();
    loop {
        let started = Instant::now();
        let connected = identity(&victim).await.ok_or(RpcError::Shutdown);
        counter.record(&connected);
        held.extend(connected.ok());
        if held.len() > 64
            && let Some(old) = held.pop_front()
        {
            tokio::spawn(async move { old.shutdown().await });
        }
        tokio::time::sleep(Duration::from_millis(100).saturating_sub(started.elapsed())).await;
    }
}

async fn node_id_churn(victim: Multiaddr, peer: PeerId, counter: Arc<Counter>) {
    let Some(p2p) = identity(&victim).await else {
        return;
    };
    let stub = DhtProtocol::get_stub(&p2p, peer).with_deadline(Duration::from_secs(30));
    let sent = AtomicU64::new(0);
    futures::stream::repeat(())
        .for_each_concurrent(4, |()| {
            let (stub, counter) = (stub.clone(), counter.clone());
            let validate = sent.fetch_add(1, Ordering::Relaxed).is_multiple_of(10);
            async move {
                let answer = stub
                    .rpc_ping(PingRequest {
                        peer: NodeInfo {
                            node_id: Some(DhtId::random()),
                            addrs: AddrList::default(),
                        },
                        validate,
                    })
                    .await;
                counter.record(&answer);
            }
        })
        .await;
}
