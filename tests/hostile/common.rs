//! Shared setup: victims, honest peers, attackers (plain P2P nodes that call the victim's
//! handlers), honest rounds, waiting on conditions, and the process's memory.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use p2p_servicer::dht::messages::{AddrList, NodeInfo, StoreItem, StoreValue};
use p2p_servicer::dht::{
    DhtConfig, DhtId, DhtNode, DhtProtocol, DhtProtocolStub, Limits, ProtocolConfig,
    SignatureValidator, Validators, encode_value, get_dht_time,
};
use p2p_servicer::runtime::{Keypair, P2P, P2PConfig, PeerId};

/// Deadline of every wait and every call: generous, for a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A node's configuration: these limits, calls that wait [`PATIENCE`].
pub fn config(limits: Limits) -> DhtConfig {
    DhtConfig::default()
        .with_wait_timeout(PATIENCE)
        .with_limits(limits)
}

/// A configuration whose node signs with `keypair` (also its libp2p identity) and validates
/// signatures, with the validator.
pub fn signing_config(keypair: Keypair, limits: Limits) -> (DhtConfig, Arc<SignatureValidator>) {
    let validator = Arc::new(SignatureValidator::new(keypair.clone()));
    let config = config(limits)
        .with_p2p(P2PConfig::default().with_keypair(keypair))
        .with_record_validators(Validators(vec![validator.clone()]));
    (config, validator)
}

/// A DHT node with this configuration and no initial peers.
pub async fn node(config: DhtConfig) -> DhtNode {
    DhtNode::create(config).await.expect("create a DHT node")
}

/// An honest DHT node whose initial peer is `victim`, once `victim` has it in its routing table.
pub async fn honest_near(victim: &DhtNode, config: DhtConfig) -> DhtNode {
    let honest = DhtNode::create(config.with_initial_peers(victim.p2p().visible_maddrs()))
        .await
        .expect("create the honest node");
    let id = honest.node_id();
    wait_for("the victim to know the honest node", || {
        victim.protocol().knows_node(&id)
    })
    .await;
    honest
}

/// A plain P2P node (it serves no DHT) connected to `victim`.
pub async fn attacker(victim: &DhtNode) -> P2P {
    P2P::create(P2PConfig::default().with_initial_peers(victim.p2p().visible_maddrs()))
        .await
        .expect("create the attacker")
}

/// The victim's handlers as `from` calls them, with a deadline of `deadline`.
pub fn stub(from: &P2P, victim: PeerId, deadline: Duration) -> DhtProtocolStub {
    DhtProtocol::get_stub(from, victim).with_deadline(deadline)
}

/// A client-mode protocol on `p2p` (it calls, serves nothing, and names no node id).
pub fn client_protocol(p2p: &P2P) -> DhtProtocol {
    DhtProtocol::create(
        p2p,
        DhtId::random(),
        ProtocolConfig::default()
            .with_wait_timeout(PATIENCE)
            .with_client_mode(true),
    )
    .expect("create a client protocol")
}

/// A sender that names no DHT id (a client-mode caller).
pub fn anonymous() -> NodeInfo {
    NodeInfo {
        node_id: None,
        addrs: AddrList::default(),
    }
}

/// A sender that claims the DHT id `node_id`.
pub fn claiming(node_id: DhtId) -> NodeInfo {
    NodeInfo {
        node_id: Some(node_id),
        addrs: AddrList::default(),
    }
}

/// A store item under `key`.
pub fn item(key: &str, value: StoreValue, expiration_time: f64) -> StoreItem {
    StoreItem {
        key: DhtId::generate(key),
        value,
        expiration_time,
        in_cache: false,
    }
}

/// A regular store item whose value is the msgpack encoding of `value`.
pub fn regular(key: &str, value: &str, expiration_time: f64) -> StoreItem {
    item(
        key,
        StoreValue::Regular(encode_value(value).unwrap()),
        expiration_time,
    )
}

/// Honest work through the victim: `honest` stores a value on it and finds it there again.
pub async fn honest_round(honest: &DhtProtocol, victim: PeerId, tag: &str) {
    let key = format!("honest {tag}");
    let stored = honest
        .call_store_detailed(
            victim,
            vec![regular(&key, "honest value", get_dht_time() + 60.0)],
        )
        .await;
    assert_eq!(
        stored,
        Some(vec![Ok(())]),
        "honest store of {key:?} through the victim"
    );
    let found = honest
        .call_find(victim, vec![DhtId::generate(key.as_str())])
        .await
        .unwrap_or_else(|| panic!("honest find of {key:?}: the victim did not answer"));
    assert!(
        found.values().all(|f| f.value.is_some()),
        "honest find of {key:?}: no value"
    );
}

/// Waits until `condition` holds, at most [`PATIENCE`].
pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "waited {PATIENCE:?} for {what} in vain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `sample` stops changing for `quiet` (at most [`PATIENCE`]); returns its last value.
pub async fn settled<T: PartialEq>(quiet: Duration, mut sample: impl FnMut() -> T) -> T {
    let deadline = Instant::now() + PATIENCE;
    let mut last = sample();
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = sample();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet || Instant::now() >= deadline {
            return last;
        }
    }
}

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// The process's peak resident set (VmHWM), in bytes.
pub fn peak_rss() -> u64 {
    status_kib("VmHWM:") * 1024
}

/// The process's resident set (VmRSS), in bytes.
pub fn rss() -> u64 {
    status_kib("VmRSS:") * 1024
}

/// Guards the machine while a test runs an attack that balloons memory on defective code: if
/// the process's resident set passes `limit`, it aborts the test process (the machine is shared
/// and has no swap). Stops when dropped.
pub struct MemoryGuard {
    stop: Arc<AtomicBool>,
}

impl MemoryGuard {
    pub fn start(limit: u64) -> MemoryGuard {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let now = rss();
                if now > limit {
                    eprintln!(
                        "MemoryGuard: resident set {} MiB passed {} MiB: aborting the test process",
                        now >> 20,
                        limit >> 20
                    );
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        MemoryGuard { stop }
    }
}

impl Drop for MemoryGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
