//! A one-shot client-mode DHT node: store or get one key, then exit.
//!
//! ```text
//! cargo run --release --example dht_client -- store greeting hello --ttl 600 --initial-peers <maddr>...
//! cargo run --release --example dht_client -- get greeting --latest --initial-peers <maddr>...
//! ```
//! `get` prints the value and its expiration time and exits 1 when the key is not found.

use clap::{Parser, Subcommand};
use p2p_servicer::dht::{DhtConfig, DhtNode, Key, StoredValue, get_dht_time};
use p2p_servicer::runtime::{Multiaddr, P2PConfig, WireMode};

#[derive(Parser)]
#[command(about = "Stores or gets one DHT key through the given peers")]
struct Args {
    /// Peers to bootstrap from, as full /p2p/ multiaddrs (after the command: it takes every
    /// address that follows, as a dht_node prints them).
    #[arg(long, alias = "initial_peers", num_args = 1.., global = true)]
    initial_peers: Vec<Multiaddr>,
    /// `native`, or `hivemind` to use a hivemind 1.1.12 swarm.
    #[arg(long, default_value_t = WireMode::Native, global = true)]
    wire: WireMode,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stores VALUE (a string) under KEY.
    Store {
        key: String,
        value: String,
        /// Store under this subkey of a dictionary value.
        #[arg(long)]
        subkey: Option<String>,
        /// Seconds until the value expires.
        #[arg(long, default_value_t = 3600.0)]
        ttl: f64,
    },
    /// Prints the value under KEY.
    Get {
        key: String,
        /// Search until no newer value can be found.
        #[arg(long)]
        latest: bool,
    },
}

fn show(bytes: &[u8]) -> String {
    match rmpv::decode::read_value(&mut &bytes[..]) {
        Ok(value) => value.to_string(),
        Err(_) => format!(
            "0x{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.initial_peers.is_empty() {
        eprintln!("give at least one --initial-peers address (a dht_node prints its own)");
        std::process::exit(2);
    }
    let config = DhtConfig::default()
        .with_p2p(P2PConfig::default().with_wire_mode(args.wire))
        .with_client_mode(true)
        .with_initial_peers(args.initial_peers);
    let node = match DhtNode::create(config).await {
        Ok(node) => node,
        Err(err) => {
            eprintln!("cannot join the DHT: {err}");
            std::process::exit(1);
        }
    };
    let code = match args.command {
        Command::Store {
            key,
            value,
            subkey,
            ttl,
        } => {
            let expiration = get_dht_time() + ttl;
            match node
                .store(key.as_str(), &value, expiration, subkey.map(Key::from))
                .await
            {
                Ok(true) => {
                    println!("stored {key} until {expiration:.3}");
                    0
                }
                Ok(false) => {
                    eprintln!("no node accepted the value (a newer one may exist)");
                    1
                }
                Err(err) => {
                    eprintln!("store failed: {err}");
                    1
                }
            }
        }
        Command::Get { key, latest } => {
            let id = p2p_servicer::dht::DhtId::generate(key.as_str());
            let sufficient = if latest {
                f64::INFINITY
            } else {
                get_dht_time()
            };
            match node
                .get_many_by_id(&[id], Some(sufficient))
                .await
                .remove(&id)
                .flatten()
            {
                None => {
                    eprintln!("{key} not found");
                    1
                }
                Some(found) => {
                    match found.value {
                        StoredValue::Regular(bytes) => println!("{}", show(&bytes)),
                        StoredValue::Dictionary(mut dict) => {
                            for (subkey, v) in dict.items() {
                                println!(
                                    "{}: {} (expires {:.3})",
                                    show(subkey),
                                    show(&v.value),
                                    v.expiration_time
                                );
                            }
                        }
                    }
                    println!("expiration {:.3}", found.expiration_time);
                    0
                }
            }
        }
    };
    node.shutdown().await;
    std::process::exit(code);
}
