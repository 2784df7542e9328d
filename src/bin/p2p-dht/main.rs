//! `p2p-dht`: a DHT node (the counterpart of hivemind's `hivemind-dht`) and a client for it.
//! `cargo install --path .` installs it; `p2p-dht --help` lists the flags, the environment
//! variables and the exit codes.

mod args;
mod client;
mod error;
mod http;
mod logging;
mod run_node;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::error::{CliError, code};

// A DHT node frees many small buffers on another tokio worker thread than the one that allocated
// them, which glibc's malloc serializes on its arena locks (BENCHMARKS.md, "Allocator").
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse_from(args::split_lists(std::env::args()));
    let serving = matches!(cli.command, None | Some(Command::Node));
    // A node logs its life at INFO; a one-shot client keeps its output to the answer.
    logging::init(cli.common.log_format, if serving { "info" } else { "warn" });
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
        .and_then(|runtime| {
            runtime.block_on(async {
                match cli.command {
                    None | Some(Command::Node) => run_node::run(cli.common, cli.node).await,
                    Some(Command::Store {
                        key,
                        value,
                        subkey,
                        ttl,
                    }) => client::store(&cli.common, &key, &value, subkey, ttl).await,
                    Some(Command::Get { key, latest }) => {
                        client::get(&cli.common, &key, latest).await
                    }
                }
            })
        });
    match result {
        Ok(()) => std::process::exit(code::OK),
        Err(err) => {
            if serving {
                tracing::error!("{err}");
            } else {
                eprintln!("p2p-dht: {err}");
            }
            std::process::exit(err.code());
        }
    }
}
