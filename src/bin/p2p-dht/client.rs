//! The `store` and `get` subcommands: a one-shot client-mode node that joins through the initial
//! peers, does one thing and exits.

use p2p_servicer::dht::{DhtConfig, DhtNode, Key, StoredValue, get_dht_time};
use p2p_servicer::runtime::P2PConfig;

use crate::args::{Common, seconds};
use crate::error::CliError;

/// A value as msgpack shows it, or as hex if it is not msgpack.
fn show(bytes: &[u8]) -> String {
    match rmpv::decode::read_value(&mut &bytes[..]) {
        Ok(value) => value.to_string(),
        Err(_) => format!(
            "0x{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

async fn join(common: &Common) -> Result<DhtNode, CliError> {
    if common.initial_peers.is_empty() {
        return Err(CliError::Usage(
            "give at least one --initial-peers address (a node prints its own)".into(),
        ));
    }
    let config = DhtConfig::default()
        .with_p2p(P2PConfig::default().with_wire_mode(common.wire))
        .with_client_mode(true)
        .with_initial_peers(common.initial_peers.clone());
    Ok(DhtNode::create(config).await?)
}

/// Stores `value` under `key` (or its `subkey`) for `ttl` seconds.
pub async fn store(
    common: &Common,
    key: &str,
    value: &str,
    subkey: Option<String>,
    ttl: f64,
) -> Result<(), CliError> {
    let ttl = seconds("--ttl", ttl)?;
    let node = join(common).await?;
    let expiration = get_dht_time() + ttl.as_secs_f64();
    let stored = node
        .store(key, &value, expiration, subkey.map(Key::from))
        .await;
    node.shutdown().await;
    match stored {
        Ok(true) => {
            println!("stored {key} until {expiration:.3}");
            Ok(())
        }
        Ok(false) => Err(CliError::NotFound(format!(
            "no node stored {key} (a newer value may be there)"
        ))),
        Err(err) => Err(err.into()),
    }
}

/// Prints the value under `key`.
pub async fn get(common: &Common, key: &str, latest: bool) -> Result<(), CliError> {
    let node = join(common).await?;
    let found = node.get_stored(key, latest).await;
    node.shutdown().await;
    let Some(found) = found else {
        return Err(CliError::NotFound(format!("{key} not found")));
    };
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
    Ok(())
}
