//! RPC benchmark: our calls between two nodes on loopback TCP, beside a plain tokio TCP ping-pong
//! with the same framing and codec, measured in the same run.
//!
//! `cargo run --release --example benchmark_rpc [-- --calls 1000 --runtime current-thread --json]`

use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use servicer::runtime::{
    Handler, P2P, P2PConfig, RequestStream, ResponseStream, RpcContext, StubBase, codec,
};
use servicer::servicer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
#[command(about = "Measures RPC latency and throughput between two nodes on loopback")]
struct Args {
    /// Sequential unary calls to time.
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    /// Responses in the server-streaming test.
    #[arg(long, default_value_t = 10_000)]
    stream_messages: usize,
    /// Print one JSON object per figure instead of a table.
    #[arg(long)]
    json: bool,
    /// The tokio runtime both nodes (and the baseline) run on.
    #[arg(long, value_enum, default_value_t = Runtime::MultiThread)]
    runtime: Runtime,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Runtime {
    /// tokio's default: a worker thread per core; every hop between tasks may wake a thread.
    MultiThread,
    /// One thread: no cross-thread wake-ups.
    CurrentThread,
}

struct Figure {
    name: &'static str,
    value: f64,
    unit: &'static str,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Plain tokio TCP ping-pong: `kind | u32 length | bincode payload` each way, as our frames.
async fn tcp_baseline(calls: usize) -> Vec<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        sock.set_nodelay(true).unwrap();
        let mut header = [0u8; 5];
        let mut buf = Vec::new();
        while sock.read_exact(&mut header).await.is_ok() {
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            buf.resize(len, 0);
            sock.read_exact(&mut buf).await.unwrap();
            let x: i64 = codec::decode(&buf, 4 << 20).unwrap();
            let out = frame(&(x * x));
            sock.write_all(&out).await.unwrap();
        }
    });
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.set_nodelay(true).unwrap();
    let mut times = Vec::with_capacity(calls);
    let mut header = [0u8; 5];
    let mut buf = Vec::new();
    for i in 0..calls as i64 {
        let start = Instant::now();
        sock.write_all(&frame(&i)).await.unwrap();
        sock.read_exact(&mut header).await.unwrap();
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        buf.resize(len, 0);
        sock.read_exact(&mut buf).await.unwrap();
        let y: i64 = codec::decode(&buf, 4 << 20).unwrap();
        assert_eq!(y, i * i);
        times.push(start.elapsed());
    }
    times
}

fn frame(value: &i64) -> Vec<u8> {
    let payload = codec::encode(value).unwrap();
    let mut out = vec![1u8];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

async fn sequential(stub: &StubBase, calls: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(calls);
    for i in 0..calls as i64 {
        let start = Instant::now();
        let y: i64 = stub.unary("rpc_square", i).await.unwrap();
        assert_eq!(y, i * i);
        times.push(start.elapsed());
    }
    times
}

/// The same square handler, behind `#[servicer]`, to compare the generated stub with the raw call.
struct Squarer;

#[servicer]
impl Squarer {
    async fn rpc_square(&self, x: i64, _ctx: RpcContext) -> Result<i64, String> {
        Ok(x * x)
    }
}

fn main() {
    let args = Args::parse();
    let runtime = match args.runtime {
        Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .expect("tokio runtime");
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let server = P2P::create(P2PConfig::default()).await.unwrap();
    server
        .add_handlers(
            vec![
                (
                    "Bench.rpc_square".into(),
                    Handler::unary(|x: i64, _ctx| async move { Ok::<_, String>(x * x) }),
                ),
                (
                    "Bench.rpc_count".into(),
                    Handler::unary_stream(|n: u64, _ctx| async move {
                        Ok::<_, String>(ResponseStream::iter(0..n))
                    }),
                ),
                (
                    "Bench.rpc_sum".into(),
                    Handler::stream_unary(|xs: RequestStream<u64>, _ctx| async move {
                        Ok::<_, String>(
                            xs.fold(0u64, |a, x| async move { a + x.unwrap_or(0) })
                                .await,
                        )
                    }),
                ),
                (
                    "Bench.rpc_blob".into(),
                    Handler::unary(|v: serde_bytes_like::Blob, _ctx| async move {
                        Ok::<_, String>(v.0.len() as u64)
                    }),
                ),
            ],
            None,
        )
        .unwrap();
    let client = P2P::create(P2PConfig::default().with_initial_peers(server.visible_maddrs()))
        .await
        .unwrap();
    let stub = StubBase::new(&client, server.peer_id(), "Bench", None);
    std::sync::Arc::new(Squarer)
        .add_p2p_handlers(&server, None)
        .unwrap();
    let generated = Squarer::get_stub(&client, server.peer_id());
    let mut figures = Vec::new();

    // Warm up both paths.
    sequential(&stub, 200).await;
    tcp_baseline(200).await;

    let mut ours = sequential(&stub, args.calls).await;
    let mut base = tcp_baseline(args.calls).await;
    ours.sort();
    base.sort();
    let total: Duration = ours.iter().sum();
    let (p50, p99) = (percentile(&ours, 0.5), percentile(&ours, 0.99));
    let (b50, b99) = (percentile(&base, 0.5), percentile(&base, 0.99));
    figures.push(Figure {
        name: "unary sequential p50",
        value: p50,
        unit: "us",
    });
    figures.push(Figure {
        name: "unary sequential p99",
        value: p99,
        unit: "us",
    });
    figures.push(Figure {
        name: "unary sequential calls/s",
        value: args.calls as f64 / total.as_secs_f64(),
        unit: "calls/s",
    });
    figures.push(Figure {
        name: "baseline tokio TCP p50",
        value: b50,
        unit: "us",
    });
    figures.push(Figure {
        name: "baseline tokio TCP p99",
        value: b99,
        unit: "us",
    });
    figures.push(Figure {
        name: "unary p50 / baseline p50",
        value: p50 / b50,
        unit: "x",
    });

    // The generated stub on the same path.
    let mut times = Vec::with_capacity(args.calls);
    for i in 0..args.calls as i64 {
        let start = Instant::now();
        assert_eq!(generated.rpc_square(i).await.unwrap(), i * i);
        times.push(start.elapsed());
    }
    times.sort();
    let g50 = percentile(&times, 0.5);
    figures.push(Figure {
        name: "#[servicer] stub unary p50",
        value: g50,
        unit: "us",
    });
    figures.push(Figure {
        name: "stub p50 / raw StubBase p50",
        value: g50 / p50,
        unit: "x",
    });

    // 64 concurrent callers.
    let start = Instant::now();
    let per_caller = args.calls.max(64) / 64;
    let callers: Vec<_> = (0..64)
        .map(|_| {
            let stub = stub.clone();
            tokio::spawn(async move { sequential(&stub, per_caller).await })
        })
        .collect();
    for c in callers {
        c.await.unwrap();
    }
    figures.push(Figure {
        name: "unary 64 concurrent callers",
        value: (per_caller * 64) as f64 / start.elapsed().as_secs_f64(),
        unit: "calls/s",
    });

    // One request, a stream of responses.
    let start = Instant::now();
    let n = args.stream_messages as u64;
    let got = stub
        .unary_stream::<u64, u64>("rpc_count", n)
        .await
        .unwrap()
        .fold(0u64, |a, _| async move { a + 1 })
        .await;
    assert_eq!(got, n);
    figures.push(Figure {
        name: "unary -> stream messages/s",
        value: n as f64 / start.elapsed().as_secs_f64(),
        unit: "msgs/s",
    });

    // Open a stream, send 10 messages, get the answer.
    let mut times = Vec::new();
    for _ in 0..args.calls.min(1000) {
        let start = Instant::now();
        let sum: u64 = stub
            .stream_unary("rpc_sum", futures::stream::iter(0..10u64))
            .await
            .unwrap();
        assert_eq!(sum, 45);
        times.push(start.elapsed());
    }
    times.sort();
    figures.push(Figure {
        name: "stream of 10 -> unary p50",
        value: percentile(&times, 0.5),
        unit: "us",
    });

    // Bulk throughput with 1 MiB messages.
    let blob = serde_bytes_like::Blob(vec![7u8; 1 << 20]);
    let rounds = 64;
    let start = Instant::now();
    for _ in 0..rounds {
        let n: u64 = stub.unary("rpc_blob", blob.clone()).await.unwrap();
        assert_eq!(n, 1 << 20);
    }
    figures.push(Figure {
        name: "bulk 1 MiB unary",
        value: rounds as f64 / start.elapsed().as_secs_f64(),
        unit: "MiB/s",
    });

    for f in &figures {
        if args.json {
            println!(
                "{{\"figure\":\"{}\",\"value\":{:.3},\"unit\":\"{}\"}}",
                f.name, f.value, f.unit
            );
        } else {
            println!("{:<32} {:>12.1} {}", f.name, f.value, f.unit);
        }
    }
    client.shutdown().await;
    server.shutdown().await;
}

/// A byte blob that bincode encodes as one length and the raw bytes.
mod serde_bytes_like {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Clone)]
    pub struct Blob(pub Vec<u8>);

    impl Serialize for Blob {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for Blob {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
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
}
