//! RPC benchmark: our calls between two nodes on loopback TCP, beside two baselines measured in the
//! same run with the same workload, framing and codec:
//!
//! - (a) a plain tokio TCP connection per caller;
//! - (b) a raw libp2p stream (TCP + noise + yamux, as our nodes use, opened with `libp2p-stream`)
//!   per caller, without the servicer layer.
//!
//! By default it measures everything twice: with both sides in this process, and with the servers in
//! a child process (this program again, `--serve`), which prints its addresses on its first line and
//! exits when its standard input closes; the child is killed when we finish, also on error.
//!
//! ```text
//! cargo run --release --example benchmark_rpc [-- --mode in-process --runtime current-thread --runs 3 --json]
//! cargo run --release --example benchmark_rpc -- --serve [--listen-ip IP]  # prints ADDRS
//! cargo run --release --example benchmark_rpc -- --connect "ADDRS"          # measures them
//! ```

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use libp2p::core::upgrade::Version;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, noise, tcp, yamux};
use p2p_servicer::runtime::native::codec;
use p2p_servicer::runtime::{
    Handler, Native, P2P, P2PConfig, RequestStream, ResponseStream, RpcContext, StubBase,
    multiaddr_peer_id,
};
use p2p_servicer::servicer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio_util::compat::FuturesAsyncReadCompatExt;

#[path = "shared/runtime.rs"]
mod runtime;
#[path = "shared/stats.rs"]
mod stats;
use runtime::Runtime;
use stats::{median, percentile};

#[derive(Parser, Clone)]
#[command(
    about = "Measures RPC latency and throughput between two nodes on loopback, beside a \
                   plain TCP and a raw libp2p baseline"
)]
struct Args {
    /// Sequential unary calls to time per system (64 concurrent callers make a tenth of this
    /// each; streams of 10 requests: at most 1,000).
    #[arg(long, default_value_t = 5000)]
    calls: usize,
    /// Responses in the server-streaming test.
    #[arg(long, default_value_t = 10_000)]
    stream_messages: u64,
    /// Measure this many times (over the same connections) and print the medians.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Print one JSON object per figure instead of a table.
    #[arg(long)]
    json: bool,
    /// The tokio runtime of this process (and of the server child).
    #[arg(long, value_enum, default_value_t = Runtime::MultiThread)]
    runtime: Runtime,
    /// Where the servers run.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// Only run the servers: print their addresses on one line, serve until stdin closes.
    #[arg(long, conflicts_with = "connect")]
    serve: bool,
    /// The address the servers listen on (with `--serve`, one the other machine can reach).
    #[arg(long, default_value = "127.0.0.1")]
    listen_ip: std::net::IpAddr,
    /// Measure against the servers of a `--serve` process, given the line it printed.
    #[arg(long, value_name = "ADDRS")]
    connect: Option<String>,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum Mode {
    /// Servers and callers in this process.
    InProcess,
    /// Servers in a child process.
    TwoProcess,
    /// Both, one after the other.
    Both,
}

fn main() {
    let args = Args::parse();
    let runtime = args.runtime.build();
    if args.serve {
        runtime.block_on(serve(args.listen_ip));
    } else {
        runtime.block_on(run(args));
    }
}

async fn run(args: Args) {
    if let Some(line) = &args.connect {
        let addrs: ServerAddrs = line.parse().unwrap_or_else(|e| panic!("--connect: {e}"));
        report(&args, "remote", &measure_all(&args, &addrs).await);
        return;
    }
    if matches!(args.mode, Mode::InProcess | Mode::Both) {
        let servers = Servers::start(args.listen_ip).await;
        let rows = measure_all(&args, &servers.addrs).await;
        servers.p2p.shutdown().await;
        report(&args, "in-process", &rows);
    }
    if matches!(args.mode, Mode::TwoProcess | Mode::Both) {
        let mut child = ServerChild::spawn(args.runtime, args.listen_ip);
        let line = tokio::task::spawn_blocking(move || {
            let line = child.first_line();
            (child, line)
        })
        .await
        .expect("reading the server's addresses");
        let (child, line) = line;
        let addrs: ServerAddrs = line
            .parse()
            .unwrap_or_else(|e| panic!("server child printed {line:?}: {e}"));
        let rows = measure_all(&args, &addrs).await;
        drop(child);
        report(&args, "two-process", &rows);
    }
}

// ---------------------------------------------------------------------------------------------
// Servers: ours, (a) and (b), in this process or in a `--serve` child.

/// The protocol of baseline (b).
const RAW_PROTOCOL: StreamProtocol = StreamProtocol::new("/benchmark-rpc/raw/1.0.0");

/// Where the three servers listen; printed (and parsed) as one line: `RPC_MADDR RAW_MADDR TCP_ADDR`.
struct ServerAddrs {
    rpc: Multiaddr,
    raw: Multiaddr,
    tcp: SocketAddr,
}

impl std::fmt::Display for ServerAddrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.rpc, self.raw, self.tcp)
    }
}

impl std::str::FromStr for ServerAddrs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        let [rpc, raw, tcp] = parts[..] else {
            return Err("expected three addresses: RPC_MADDR RAW_MADDR TCP_ADDR".into());
        };
        Ok(ServerAddrs {
            rpc: rpc.parse().map_err(|e| format!("{rpc}: {e}"))?,
            raw: raw.parse().map_err(|e| format!("{raw}: {e}"))?,
            tcp: tcp.parse().map_err(|e| format!("{tcp}: {e}"))?,
        })
    }
}

struct Servers {
    p2p: P2P,
    addrs: ServerAddrs,
}

impl Servers {
    async fn start(ip: std::net::IpAddr) -> Servers {
        let listen = Multiaddr::from(ip).with(libp2p::multiaddr::Protocol::Tcp(0));
        let p2p = P2P::create(P2PConfig::default().with_listen_addrs([listen.clone()]))
            .await
            .unwrap();
        p2p.add_handlers(
            vec![
                (
                    "Bench.rpc_square".into(),
                    Handler::<Native>::unary(|x: i64, _ctx| async move { Ok::<_, String>(x * x) }),
                ),
                (
                    "Bench.rpc_count".into(),
                    Handler::<Native>::unary_stream(|n: u64, _ctx| async move {
                        Ok::<_, String>(ResponseStream::iter(0..n))
                    }),
                ),
                (
                    "Bench.rpc_sum".into(),
                    Handler::<Native>::stream_unary(|xs: RequestStream<u64>, _ctx| async move {
                        Ok::<_, String>(
                            xs.fold(0u64, |a, x| async move { a + x.unwrap_or(0) })
                                .await,
                        )
                    }),
                ),
                (
                    "Bench.rpc_blob".into(),
                    Handler::<Native>::unary(|v: Blob, _ctx| async move {
                        Ok::<_, String>(v.0.len() as u64)
                    }),
                ),
            ],
            None,
        )
        .unwrap();
        std::sync::Arc::new(Squarer)
            .add_p2p_handlers(&p2p, None)
            .unwrap();
        let rpc = p2p
            .visible_maddrs()
            .into_iter()
            .next()
            .expect("a TCP address");

        // (a): a task per accepted connection.
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let tcp = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                sock.set_nodelay(true).unwrap();
                tokio::spawn(serve_wire(BufStream::new(Box::new(sock))));
            }
        });

        // (b): a task per accepted stream.
        let mut swarm = raw_swarm();
        swarm.listen_on(listen).unwrap();
        let listen = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        let raw = listen.with_p2p(*swarm.local_peer_id()).unwrap();
        let mut incoming = swarm
            .behaviour()
            .new_control()
            .accept(RAW_PROTOCOL)
            .unwrap();
        tokio::spawn(drive(swarm));
        tokio::spawn(async move {
            while let Some((_, stream)) = incoming.next().await {
                tokio::spawn(serve_wire(BufStream::new(Box::new(stream.compat()))));
            }
        });

        Servers {
            p2p,
            addrs: ServerAddrs { rpc, raw, tcp },
        }
    }
}

/// `--serve`: the servers, until standard input closes (so a parent that dies takes us along).
async fn serve(ip: std::net::IpAddr) {
    let servers = Servers::start(ip).await;
    println!("{}", servers.addrs);
    tokio::task::spawn_blocking(|| {
        std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
    })
    .await
    .ok();
    servers.p2p.shutdown().await;
}

/// The `--serve` child; killed (and reaped) when dropped, also while a panic unwinds.
struct ServerChild(Child);

impl ServerChild {
    fn spawn(runtime: Runtime, ip: std::net::IpAddr) -> ServerChild {
        let exe = std::env::current_exe().expect("path of this program");
        let child = Command::new(exe)
            .args(["--serve", "--runtime", runtime.name()])
            .args(["--listen-ip", &ip.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the server child");
        ServerChild(child)
    }

    fn first_line(&mut self) -> String {
        let stdout = self.0.stdout.take().expect("child stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the child's addresses");
        line
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A swarm with our transport stack (TCP with nodelay, noise, yamux, lazy protocol negotiation)
/// and nothing but `libp2p-stream` on top.
fn raw_swarm() -> Swarm<libp2p_stream::Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(Duration::from_secs(300))
                .with_substream_upgrade_protocol_override(Version::V1Lazy)
        })
        .build()
}

async fn drive(mut swarm: Swarm<libp2p_stream::Behaviour>) {
    loop {
        swarm.select_next_some().await;
    }
}

// ---------------------------------------------------------------------------------------------
// The baselines' wire: our frames (`kind | u32 length | bincode payload`), with the operation in
// the kind byte instead of a call header.

const SQUARE: u8 = 1; // i64 -> one MESSAGE i64
const END: u8 = 3; // ends the ITEMs of a sum (-> one MESSAGE u64), or a COUNT's responses
const COUNT: u8 = 4; // u64 n -> n MESSAGE u64, then END
const ITEM: u8 = 5; // u64, summed until END
const BLOB: u8 = 6; // Blob -> one MESSAGE u64 (its length)
const MESSAGE: u8 = 1;

/// The message limit the servers apply, as our nodes' default.
const LIMIT: usize = p2p_servicer::runtime::DEFAULT_MAX_MESSAGE_SIZE;

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

type Wire = BufStream<Box<dyn Io>>;

async fn read_frame(s: &mut Wire, payload: &mut Vec<u8>) -> std::io::Result<u8> {
    let mut header = [0u8; 5];
    s.read_exact(&mut header).await?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > LIMIT {
        return Err(std::io::Error::other("frame over the limit"));
    }
    payload.resize(len, 0);
    s.read_exact(payload).await?;
    Ok(header[0])
}

/// Queues a frame in the write buffer; the caller flushes.
async fn write_frame<T: serde::Serialize>(
    s: &mut Wire,
    kind: u8,
    value: &T,
) -> std::io::Result<()> {
    let payload = codec::encode(value).map_err(std::io::Error::other)?;
    s.write_u8(kind).await?;
    s.write_u32(payload.len() as u32).await?;
    s.write_all(&payload).await
}

fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> std::io::Result<T> {
    codec::decode(payload, LIMIT).map_err(std::io::Error::other)
}

async fn serve_wire(mut s: Wire) {
    let _ = serve_wire_calls(&mut s).await;
}

async fn serve_wire_calls(s: &mut Wire) -> std::io::Result<()> {
    let mut payload = Vec::new();
    let mut sum = 0u64;
    loop {
        match read_frame(s, &mut payload).await? {
            SQUARE => {
                let x: i64 = decode(&payload)?;
                write_frame(s, MESSAGE, &(x * x)).await?;
            }
            COUNT => {
                let n: u64 = decode(&payload)?;
                for i in 0..n {
                    write_frame(s, MESSAGE, &i).await?;
                }
                write_frame(s, END, &()).await?;
            }
            ITEM => {
                sum += decode::<u64>(&payload)?;
                continue;
            }
            END => {
                write_frame(s, MESSAGE, &std::mem::take(&mut sum)).await?;
            }
            BLOB => {
                let blob: Blob = decode(&payload)?;
                write_frame(s, MESSAGE, &(blob.0.len() as u64)).await?;
            }
            other => return Err(std::io::Error::other(format!("unknown kind {other}"))),
        }
        s.flush().await?;
    }
}

// ---------------------------------------------------------------------------------------------
// Callers: the same four operations on each of the three systems.

/// The same square handler, behind `#[servicer]`, to compare the generated stub with the raw call.
struct Squarer;

#[servicer]
impl Squarer {
    async fn rpc_square(&self, x: i64, _ctx: RpcContext) -> Result<i64, String> {
        Ok(x * x)
    }
}

/// What callers are made from.
enum Target {
    Ours(StubBase),
    Tcp(SocketAddr),
    Raw(libp2p_stream::Control, PeerId),
}

/// One caller: a stub of ours, or one connection (a) or stream (b) of a baseline.
enum Caller {
    Ours(StubBase),
    Wire(Wire),
}

impl Target {
    async fn caller(&self) -> Caller {
        match self {
            Target::Ours(stub) => Caller::Ours(stub.clone()),
            Target::Tcp(addr) => {
                let sock = tokio::net::TcpStream::connect(addr).await.unwrap();
                sock.set_nodelay(true).unwrap();
                Caller::Wire(BufStream::new(Box::new(sock)))
            }
            Target::Raw(control, peer) => {
                // libp2p-stream drops an inbound stream when its acceptor has one waiting, and
                // lazy negotiation means the opener learns of it only at its first read: open the
                // streams one at a time, each with a first call, and again if that fails.
                for _ in 0..10 {
                    let stream = control
                        .clone()
                        .open_stream(*peer, RAW_PROTOCOL)
                        .await
                        .unwrap();
                    let mut wire: Wire = BufStream::new(Box::new(stream.compat()));
                    if wire_square(&mut wire, 3).await.is_ok_and(|y| y == 9) {
                        return Caller::Wire(wire);
                    }
                }
                panic!("the raw libp2p server dropped 10 streams in a row")
            }
        }
    }
}

async fn wire_square(s: &mut Wire, x: i64) -> std::io::Result<i64> {
    write_frame(s, SQUARE, &x).await?;
    s.flush().await?;
    let mut payload = Vec::new();
    match read_frame(s, &mut payload).await? {
        MESSAGE => decode(&payload),
        other => Err(std::io::Error::other(format!("unexpected kind {other}"))),
    }
}

impl Caller {
    async fn square(&mut self, x: i64) -> i64 {
        match self {
            Caller::Ours(stub) => stub.unary("rpc_square", x).await.unwrap(),
            Caller::Wire(s) => wire_square(s, x).await.unwrap(),
        }
    }

    /// Asks for `n` responses; returns how many came.
    async fn count(&mut self, n: u64) -> u64 {
        match self {
            Caller::Ours(stub) => {
                stub.unary_stream::<u64, u64>("rpc_count", n)
                    .await
                    .unwrap()
                    .fold(0u64, |a, x| async move {
                        x.unwrap();
                        a + 1
                    })
                    .await
            }
            Caller::Wire(s) => {
                write_frame(s, COUNT, &n).await.unwrap();
                s.flush().await.unwrap();
                let mut payload = Vec::new();
                let mut got = 0;
                while read_frame(s, &mut payload).await.unwrap() == MESSAGE {
                    let _: u64 = decode(&payload).unwrap();
                    got += 1;
                }
                got
            }
        }
    }

    /// Sends 0..n as a stream of requests; returns the one response, their sum.
    async fn sum(&mut self, n: u64) -> u64 {
        match self {
            Caller::Ours(stub) => stub
                .stream_unary("rpc_sum", futures::stream::iter(0..n))
                .await
                .unwrap(),
            Caller::Wire(s) => {
                for i in 0..n {
                    write_frame(s, ITEM, &i).await.unwrap();
                }
                write_frame(s, END, &()).await.unwrap();
                s.flush().await.unwrap();
                let mut payload = Vec::new();
                assert_eq!(read_frame(s, &mut payload).await.unwrap(), MESSAGE);
                decode(&payload).unwrap()
            }
        }
    }

    /// Sends `blob`; returns the length the server saw.
    async fn blob(&mut self, blob: &Blob) -> u64 {
        match self {
            // The stub takes its request by value.
            Caller::Ours(stub) => stub.unary("rpc_blob", blob.clone()).await.unwrap(),
            Caller::Wire(s) => {
                write_frame(s, BLOB, blob).await.unwrap();
                s.flush().await.unwrap();
                let mut payload = Vec::new();
                assert_eq!(read_frame(s, &mut payload).await.unwrap(), MESSAGE);
                decode(&payload).unwrap()
            }
        }
    }
}

/// Connects to the three servers; returns the targets (ours, (a), (b)) and what keeps them alive.
async fn targets(addrs: &ServerAddrs) -> ([Target; 3], P2P, SquarerStub) {
    let server = multiaddr_peer_id(&addrs.rpc).expect("RPC address ends in /p2p/");
    let client = P2P::create(P2PConfig::default().with_initial_peers(vec![addrs.rpc.clone()]))
        .await
        .unwrap();
    let stub = StubBase::<Native>::new(&client, server, "Bench", None);
    let generated = Squarer::get_stub(&client, server);

    let raw_peer = multiaddr_peer_id(&addrs.raw).expect("raw address ends in /p2p/");
    let mut swarm = raw_swarm();
    swarm.dial(addrs.raw.clone()).unwrap();
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == raw_peer => break,
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                panic!("cannot connect to {}: {error}", addrs.raw)
            }
            _ => {}
        }
    }
    let control = swarm.behaviour().new_control();
    tokio::spawn(drive(swarm));

    (
        [
            Target::Ours(stub),
            Target::Tcp(addrs.tcp),
            Target::Raw(control, raw_peer),
        ],
        client,
        generated,
    )
}

// ---------------------------------------------------------------------------------------------
// Measuring.

const CONCURRENT_CALLERS: usize = 64;
const BULK_CALLS: usize = 64;
const CLIENT_STREAM_MESSAGES: u64 = 10;
/// Each workload runs in this many rounds that take the three systems in turn, so that a change
/// of load on the machine during the run touches all three alike.
const ROUNDS: usize = 5;

/// One system's figures.
#[derive(Default, Clone, Copy)]
struct Measured {
    unary_p50: f64,
    unary_p99: f64,
    unary_rate: f64,
    concurrent_rate: f64,
    server_stream_rate: f64,
    client_stream_p50: f64,
    client_stream_rate: f64,
    bulk_rate: f64,
}

/// Timed calls and the time the rounds took in all.
#[derive(Default)]
struct Samples {
    times: Vec<Duration>,
    busy: Duration,
}

impl Samples {
    async fn time<F: Future<Output = ()>>(&mut self, call: F) {
        let start = Instant::now();
        call.await;
        let took = start.elapsed();
        self.times.push(took);
        self.busy += took;
    }

    /// p50, p99 (microseconds) and calls per second.
    fn summary(mut self) -> (f64, f64, f64) {
        self.times.sort();
        (
            percentile(&self.times, 0.5).as_secs_f64() * 1e6,
            percentile(&self.times, 0.99).as_secs_f64() * 1e6,
            self.times.len() as f64 / self.busy.as_secs_f64(),
        )
    }
}

async fn run_concurrent(callers: Vec<Caller>, calls: usize) -> (Vec<Caller>, Duration) {
    let start = Instant::now();
    let tasks: Vec<_> = callers
        .into_iter()
        .map(|mut caller| {
            tokio::spawn(async move {
                for i in 0..calls as i64 {
                    assert_eq!(caller.square(i).await, i * i);
                }
                caller
            })
        })
        .collect();
    let mut back = Vec::with_capacity(tasks.len());
    for task in tasks {
        back.push(task.await.unwrap());
    }
    (back, start.elapsed())
}

/// Measures the three systems; also returns the generated stub's unary p50.
async fn measure(targets: &[Target; 3], generated: &SquarerStub, args: &Args) -> Run {
    let mut m = [Measured::default(); 3];
    let mut callers = Vec::with_capacity(3);
    for target in targets {
        callers.push(target.caller().await);
    }

    // Unary, sequential; the generated stub takes its turn after our raw calls.
    for caller in &mut callers {
        for i in 0..200 {
            caller.square(i).await;
        }
    }
    let per_round = args.calls.div_ceil(ROUNDS) as i64;
    let mut unary: [Samples; 3] = Default::default();
    let mut stub = Samples::default();
    for _ in 0..ROUNDS {
        for (caller, samples) in callers.iter_mut().zip(&mut unary) {
            for i in 0..per_round {
                samples
                    .time(async { assert_eq!(caller.square(i).await, i * i) })
                    .await;
            }
        }
        for i in 0..per_round {
            stub.time(async { assert_eq!(generated.rpc_square(i).await.unwrap(), i * i) })
                .await;
        }
    }
    for (m, samples) in m.iter_mut().zip(unary) {
        (m.unary_p50, m.unary_p99, m.unary_rate) = samples.summary();
    }
    let stub_p50 = stub.summary().0;

    // 64 concurrent callers; connections, streams and our pool are set up by a first round.
    let mut crowds = Vec::with_capacity(3);
    for target in targets {
        let mut crowd = Vec::with_capacity(CONCURRENT_CALLERS);
        for _ in 0..CONCURRENT_CALLERS {
            crowd.push(target.caller().await);
        }
        crowds.push(run_concurrent(crowd, 5).await.0);
    }
    let per_caller = args.calls.div_ceil(10 * ROUNDS).max(1);
    let mut busy = [Duration::ZERO; 3];
    for _ in 0..ROUNDS {
        for (crowd, busy) in crowds.iter_mut().zip(&mut busy) {
            let (back, took) = run_concurrent(std::mem::take(crowd), per_caller).await;
            *crowd = back;
            *busy += took;
        }
    }
    drop(crowds);
    for (m, busy) in m.iter_mut().zip(busy) {
        m.concurrent_rate = (per_caller * CONCURRENT_CALLERS * ROUNDS) as f64 / busy.as_secs_f64();
    }

    // One request, a stream of responses: the median of the rounds.
    let n = args.stream_messages;
    let mut rates: [Vec<f64>; 3] = Default::default();
    for caller in &mut callers {
        assert_eq!(caller.count(100).await, 100);
    }
    for _ in 0..ROUNDS {
        for (caller, rates) in callers.iter_mut().zip(&mut rates) {
            let start = Instant::now();
            assert_eq!(caller.count(n).await, n);
            rates.push(n as f64 / start.elapsed().as_secs_f64());
        }
    }
    for (m, rates) in m.iter_mut().zip(rates) {
        m.server_stream_rate = median(rates);
    }

    // A stream of 10 requests, one response.
    let expected = (0..CLIENT_STREAM_MESSAGES).sum::<u64>();
    for caller in &mut callers {
        for _ in 0..50 {
            caller.sum(CLIENT_STREAM_MESSAGES).await;
        }
    }
    let per_round = args.calls.min(1000).div_ceil(ROUNDS);
    let mut sums: [Samples; 3] = Default::default();
    for _ in 0..ROUNDS {
        for (caller, samples) in callers.iter_mut().zip(&mut sums) {
            for _ in 0..per_round {
                samples
                    .time(async { assert_eq!(caller.sum(CLIENT_STREAM_MESSAGES).await, expected) })
                    .await;
            }
        }
    }
    for (m, samples) in m.iter_mut().zip(sums) {
        let (p50, _, rate) = samples.summary();
        (m.client_stream_p50, m.client_stream_rate) = (p50, rate);
    }

    // Bulk: 1 MiB requests.
    let blob = Blob(vec![7u8; 1 << 20]);
    for caller in &mut callers {
        for _ in 0..4 {
            caller.blob(&blob).await;
        }
    }
    let mut bulk: [Samples; 3] = Default::default();
    for _ in 0..ROUNDS {
        for (caller, samples) in callers.iter_mut().zip(&mut bulk) {
            for _ in 0..BULK_CALLS.div_ceil(ROUNDS) {
                samples
                    .time(async { assert_eq!(caller.blob(&blob).await, 1 << 20) })
                    .await;
            }
        }
    }
    for (m, samples) in m.iter_mut().zip(bulk) {
        m.bulk_rate = samples.summary().2;
    }
    (m, stub_p50)
}

/// One row of the report: our figure and the baselines' where they have one.
struct Row {
    name: &'static str,
    unit: &'static str,
    ours: f64,
    tcp: Option<f64>,
    raw: Option<f64>,
    /// Latencies: lower is better; rates: higher is better.
    latency: bool,
}

impl Row {
    /// How many times longer ours takes than the baseline (> 1: ours is slower).
    fn slowdown(&self, base: Option<f64>) -> Option<f64> {
        base.map(|b| {
            if self.latency {
                self.ours / b
            } else {
                b / self.ours
            }
        })
    }
}

/// One measurement: ours, (a) and (b), and the generated stub's unary p50.
type Run = ([Measured; 3], f64);

async fn measure_all(args: &Args, addrs: &ServerAddrs) -> Vec<Row> {
    let (targets, client, generated) = targets(addrs).await;
    let mut runs = Vec::with_capacity(args.runs.max(1));
    for _ in 0..args.runs.max(1) {
        runs.push(measure(&targets, &generated, args).await);
    }
    client.shutdown().await;

    let median = |value: &dyn Fn(&Run) -> f64| median(runs.iter().map(value).collect());
    let row = |name, unit, f: fn(&Measured) -> f64, latency| Row {
        name,
        unit,
        ours: median(&|(m, _)| f(&m[0])),
        tcp: Some(median(&|(m, _)| f(&m[1]))),
        raw: Some(median(&|(m, _)| f(&m[2]))),
        latency,
    };
    vec![
        row("unary p50", "us", |m| m.unary_p50, true),
        row("unary p99", "us", |m| m.unary_p99, true),
        row("unary sequential", "calls/s", |m| m.unary_rate, false),
        row(
            "unary 64 concurrent callers",
            "calls/s",
            |m| m.concurrent_rate,
            false,
        ),
        row(
            "unary -> stream of 10,000",
            "msgs/s",
            |m| m.server_stream_rate,
            false,
        ),
        row(
            "stream of 10 -> unary p50",
            "us",
            |m| m.client_stream_p50,
            true,
        ),
        row(
            "stream of 10 -> unary",
            "calls/s",
            |m| m.client_stream_rate,
            false,
        ),
        row("bulk 1 MiB unary", "MiB/s", |m| m.bulk_rate, false),
        Row {
            name: "#[servicer] stub unary p50",
            unit: "us",
            ours: median(&|(_, g50)| *g50),
            tcp: None,
            raw: None,
            latency: true,
        },
    ]
}

fn report(args: &Args, setup: &str, rows: &[Row]) {
    let runtime = args.runtime.name();
    if args.json {
        let num = |x: Option<f64>| x.map_or("null".to_string(), |x| format!("{x:.3}"));
        for r in rows {
            println!(
                "{{\"setup\":\"{setup}\",\"runtime\":\"{runtime}\",\"figure\":\"{}\",\"unit\":\"{}\",\
                 \"ours\":{:.3},\"tcp\":{},\"libp2p\":{},\"slowdown_vs_tcp\":{},\
                 \"slowdown_vs_libp2p\":{}}}",
                r.name,
                r.unit,
                r.ours,
                num(r.tcp),
                num(r.raw),
                num(r.slowdown(r.tcp)),
                num(r.slowdown(r.raw)),
            );
        }
        return;
    }
    println!(
        "\n{setup}, {runtime} runtime; vs (a)/(b): how many times longer ours takes (> 1: slower)"
    );
    println!(
        "{:<28} {:>8} {:>12} {:>12} {:>12} {:>7} {:>7}",
        "figure", "unit", "ours", "(a) tcp", "(b) libp2p", "vs (a)", "vs (b)"
    );
    let num = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.1}"));
    let ratio = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}x"));
    for r in rows {
        println!(
            "{:<28} {:>8} {:>12.1} {:>12} {:>12} {:>7} {:>7}",
            r.name,
            r.unit,
            r.ours,
            num(r.tcp),
            num(r.raw),
            ratio(r.slowdown(r.tcp)),
            ratio(r.slowdown(r.raw)),
        );
    }
}

/// A byte blob that bincode encodes as one length and the raw bytes.
#[derive(Clone)]
struct Blob(Vec<u8>);

impl serde::Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}
