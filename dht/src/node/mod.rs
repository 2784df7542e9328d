//! [`DhtNode`]: hivemind's `DHTNode`, the async API of the DHT. This module holds the node's
//! life (create, bootstrap, background refreshes, shutdown); each subsystem has its own module.

mod cache;
mod config;
mod get;
mod persist;
mod search;
mod store;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use servicer_runtime::{P2P, PeerId, RpcError, WireMode, multiaddr_peer_id};
use tokio::task::JoinHandle;

use crate::FastMap;
use crate::blacklist::Blacklist;
use crate::error::{BootstrapFailure, DhtError};
use crate::id::DhtId;
use crate::metrics::StatsSource;
use crate::protocol::DhtProtocol;
use crate::stats::{DhtStats, LookupStats};
use crate::time::{DhtTime, get_dht_time};
use crate::validation::RecordValidator;

pub use config::{DhtConfig, Validators};
pub use get::DhtValue;
pub use store::StoreRequestItem;

use get::PendingGet;

/// A node's parts: the P2P node and protocol it runs on, then each subsystem's own state.
struct NodeInner {
    p2p: P2P,
    protocol: DhtProtocol,
    config: DhtConfig,
    /// Background tasks (cache and routing-table refreshes), aborted on shutdown.
    background: Mutex<Vec<JoinHandle<()>>>,
    /// Searches run and their hops, for [`DhtNode::lookup_stats`].
    searches: AtomicU64,
    search_hops: AtomicU64,
    /// Set once bootstrap finished with an answering initial peer, or found none to ask.
    bootstrapped: AtomicBool,
    /// Peers banned from searches for failing a find.
    blacklist: Mutex<Blacklist>,
    /// Gets in flight by key, which later gets of the key may join.
    pending_gets: Mutex<FastMap<DhtId, Vec<PendingGet>>>,
    next_get_id: AtomicU64,
    /// Cached keys to refresh, and when.
    refresh_queue: Mutex<FastMap<DhtId, DhtTime>>,
    refresh_wakeup: tokio::sync::Notify,
    /// The data dir's database and writer, with [`DhtConfig::with_data_dir`].
    persistence: Option<persist::Persistence>,
}

/// A DHT node: the async API (hivemind's `DHTNode`). Cheap to clone.
#[derive(Clone)]
pub struct DhtNode {
    inner: Arc<NodeInner>,
}

impl std::fmt::Debug for DhtNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhtNode")
            .field("node_id", &self.node_id())
            .field("peer_id", &self.inner.p2p.peer_id())
            .finish()
    }
}

impl DhtNode {
    /// Starts a node: opens its data dir (if [configured](DhtConfig::with_data_dir)) and loads
    /// its records, creates its P2P node, serves the DHT (unless in client mode), pings the
    /// initial peers (and the saved ones) and looks up its own neighbourhood.
    pub async fn create(config: DhtConfig) -> Result<DhtNode, DhtError> {
        let mut p2p_config = config
            .p2p
            .clone()
            .with_initial_peers(config.initial_peers.clone());
        let saved = match &config.data_dir {
            Some(dir) => {
                let (data, saved) =
                    persist::open(dir, &config.protocol.limits, config.node_id).await?;
                if !p2p_config.has_identity() {
                    p2p_config = p2p_config.with_identity_path(dir.join(persist::IDENTITY_FILE));
                }
                Some((data, saved))
            }
            None => None,
        };
        let p2p = P2P::create(p2p_config).await?;
        match Self::with_p2p(p2p.clone(), config, saved).await {
            Ok(node) => Ok(node),
            Err(err) => {
                p2p.shutdown().await;
                Err(err)
            }
        }
    }

    async fn with_p2p(
        p2p: P2P,
        config: DhtConfig,
        saved: Option<(Arc<persist::DataDir>, persist::Saved)>,
    ) -> Result<DhtNode, DhtError> {
        let node_id = saved
            .as_ref()
            .map(|(_, saved)| saved.node_id)
            .or(config.node_id)
            .unwrap_or_else(DhtId::random);
        let protocol = DhtProtocol::create(&p2p, node_id, config.protocol.clone())?;
        protocol
            .validator()
            .extend(config.record_validators.0.iter().cloned());
        let (persistence, saved_peers) = match saved {
            Some((data, saved)) => {
                protocol.track_changes();
                let loaded = protocol.load_records(saved.records);
                tracing::info!(loaded, peers = saved.peers.len(), "loaded the data dir");
                let peers: Vec<PeerId> = saved.peers.iter().map(|(peer, _)| *peer).collect();
                // Not the P2P node's initial peers: one that left must not fail its start.
                p2p.add_addresses(saved.peers).await?;
                (Some(persist::Persistence::new(data)), peers)
            }
            None => (None, Vec::new()),
        };
        let node = DhtNode {
            inner: Arc::new(NodeInner {
                searches: AtomicU64::new(0),
                search_hops: AtomicU64::new(0),
                bootstrapped: AtomicBool::new(false),
                refresh_queue: Mutex::default(),
                refresh_wakeup: tokio::sync::Notify::new(),
                pending_gets: Mutex::default(),
                next_get_id: AtomicU64::new(0),
                p2p,
                protocol,
                blacklist: Mutex::new(Blacklist::new(config.blacklist_time, config.backoff_rate)),
                background: Mutex::new(Vec::new()),
                persistence,
                config,
            }),
        };
        // Before bootstrap, so that scrapes during it see the node, not yet bootstrapped.
        let source = Arc::downgrade(&node.inner);
        node.inner.config.metrics.attach(source);
        if let Some(persistence) = &node.inner.persistence {
            persistence.start(Arc::downgrade(&node.inner));
        }
        if let Err(err) = node.bootstrap(&saved_peers).await {
            node.stop_persistence().await;
            return Err(err);
        }
        if let Some(before) = node.inner.config.cache_refresh_before_expiry {
            let weak = Arc::downgrade(&node.inner);
            let task = tokio::spawn(async move {
                while let Some(inner) = weak.upgrade() {
                    if !(DhtNode { inner }).refresh_due_cache_entries(before).await {
                        return;
                    }
                }
            });
            node.lock_background().push(task);
        }
        if let Some(period) = node.inner.config.refresh_timeout {
            let weak = Arc::downgrade(&node.inner);
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    DhtNode { inner }.refresh_routing_table(period).await;
                }
            });
            node.lock_background().push(task);
        }
        Ok(node)
    }

    /// Pings the initial peers and the `saved` ones (from the data dir), then looks up this
    /// node's neighbourhood. Saved peers are pinged without validation and their failures are
    /// only warnings: they may have left since.
    async fn bootstrap(&self, saved: &[PeerId]) -> Result<(), DhtError> {
        let config = &self.inner.config;
        let given: HashSet<PeerId> = config
            .initial_peers
            .iter()
            .filter_map(multiaddr_peer_id)
            .collect();
        let saved: HashSet<PeerId> = saved
            .iter()
            .copied()
            .filter(|peer| !given.contains(peer) && *peer != self.inner.p2p.peer_id())
            .collect();
        let peers: Vec<(PeerId, bool)> = given
            .iter()
            .map(|peer| (*peer, false))
            .chain(saved.into_iter().map(|peer| (peer, true)))
            .collect();
        if peers.is_empty() {
            self.inner.bootstrapped.store(true, Ordering::Release);
            return Ok(());
        }
        let timeout = config
            .bootstrap_timeout
            .unwrap_or(config.protocol.wait_timeout);
        let started = tokio::time::Instant::now();
        let validate = config.ensure_bootstrap_success;
        let mut pings: FuturesUnordered<_> = peers
            .iter()
            .map(|&(peer, was_saved)| async move {
                let pinged = self
                    .inner
                    .protocol
                    .call_ping_or_fail(peer, validate && !was_saved, config.strict && !was_saved)
                    .await;
                (peer, was_saved, pinged)
            })
            .collect();
        let mut answered = 0;
        let mut failures = Vec::new();
        let mut saved_failures = Vec::new();
        let mut first_error = None;
        // Wait for the first answer, then for the others until the bootstrap timeout.
        while let Some((peer, was_saved, result)) = if answered == 0 {
            pings.next().await
        } else {
            tokio::time::timeout_at(started + timeout, pings.next())
                .await
                .ok()
                .flatten()
        } {
            let failures = if was_saved {
                &mut saved_failures
            } else {
                &mut failures
            };
            match result {
                Ok(Some(_)) => answered += 1,
                Ok(None) => failures.push(BootstrapFailure {
                    peer,
                    reason: "answered, but serves no DHT (a client-mode node)".into(),
                }),
                Err(DhtError::Rpc(err)) => failures.push(BootstrapFailure {
                    peer,
                    reason: self.why_unanswered(peer, &err).await,
                }),
                Err(err) => {
                    failures.push(BootstrapFailure {
                        peer,
                        reason: err.to_string(),
                    });
                    first_error.get_or_insert(err);
                }
            }
        }
        drop(pings);
        if let Some(err) = first_error.filter(|_| config.strict) {
            return Err(err);
        }
        for failure in &failures {
            tracing::warn!(peer = %failure.peer, reason = %failure.reason, "initial peer did not answer");
        }
        for failure in &saved_failures {
            tracing::warn!(peer = %failure.peer, reason = %failure.reason, "saved peer (from the data dir) did not answer");
        }
        // Saved peers alone never fail the start: they may have left since.
        if answered == 0 && !failures.is_empty() {
            let err = DhtError::Bootstrap { failures };
            if config.ensure_bootstrap_success {
                return Err(err);
            }
            tracing::warn!("{err} (continuing: ensure_bootstrap_success is off)");
        }
        let remaining = timeout.saturating_sub(started.elapsed());
        let own = self.node_id();
        let _ = tokio::time::timeout(remaining.max(config.protocol.wait_timeout), async {
            self.find_nearest_nodes(&[own], None, false).await
        })
        .await;
        // A node whose only peers were saved ones, all gone, starts over as a first node.
        if answered > 0 || given.is_empty() {
            self.inner.bootstrapped.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Why `peer` did not answer a ping with `err`, for an operator: the transport's cause, or,
    /// for a peer that does not serve the DHT on this node's wire, whether it serves it on the
    /// other one.
    async fn why_unanswered(&self, peer: PeerId, err: &RpcError) -> String {
        let ours = self.inner.p2p.config().wire_mode();
        let other = match err {
            RpcError::PeerUnreachable { cause, reason, .. } => {
                return format!("{cause} ({reason})");
            }
            RpcError::DeadlineExceeded(after) => {
                return format!("timed out: no answer within {after:?}");
            }
            // A node that speaks both wires says which one its handler is on.
            RpcError::KindMismatch { actual, .. } => [WireMode::Native, WireMode::Hivemind]
                .into_iter()
                .find(|mode| *mode != ours && actual.ends_with(&format!("on the {mode} wire"))),
            RpcError::UnknownHandler { .. } => {
                self.inner.protocol.answers_on_other_wire(peer).await
            }
            // hivemind's wire negotiates lazily: a refused protocol shows as a closed stream.
            RpcError::ConnectionClosed(_) => {
                match self.inner.protocol.answers_on_other_wire(peer).await {
                    Some(theirs) => Some(theirs),
                    None => return err.to_string(),
                }
            }
            other => return other.to_string(),
        };
        match other {
            Some(theirs) => format!(
                "wrong wire: the peer serves the DHT on the {theirs} wire and this node speaks \
                 the {ours} wire (use --wire {theirs})"
            ),
            None => format!(
                "protocol not supported: the peer does not serve the DHT on the {ours} wire (not \
                 a DHT node, or a hivemind node that needs --wire hivemind?)"
            ),
        }
    }

    /// Looks up buckets nobody updated for `period`, with a random id in each.
    async fn refresh_routing_table(&self, period: Duration) {
        let stale: Vec<DhtId> = {
            let state = self.inner.protocol.state();
            let now = get_dht_time();
            state
                .routing_table
                .buckets()
                .iter()
                .filter(|b| b.last_updated() < now - period.as_secs_f64())
                .map(|b| random_in_bucket(b.lower(), b.depth()))
                .collect()
        };
        // One lookup per stale bucket, each a list of one id (hivemind passes a bare id:
        // docs/hivemind-compat.md#q6).
        for id in stale {
            self.find_nearest_nodes(&[id], None, false).await;
        }
    }

    /// This node's DHT id.
    pub fn node_id(&self) -> DhtId {
        self.inner.protocol.node_id()
    }

    /// The P2P node underneath.
    pub fn p2p(&self) -> &P2P {
        &self.inner.p2p
    }

    /// The RPC layer, with the routing table, storage and cache.
    pub fn protocol(&self) -> &DhtProtocol {
        &self.inner.protocol
    }

    /// The configuration.
    pub fn config(&self) -> &DhtConfig {
        &self.inner.config
    }

    fn lock_background(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.inner
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Adds record validators to the running node.
    pub fn add_validators(&self, validators: impl IntoIterator<Item = Arc<dyn RecordValidator>>) {
        self.inner.protocol.validator().extend(validators);
    }

    /// A snapshot of what this node holds and has done: the protocol's
    /// [`stats`](DhtProtocol::stats) with this node's searches.
    pub fn stats(&self) -> DhtStats {
        self.inner.stats()
    }

    /// Whether the node has bootstrapped: its bootstrap finished with at least one initial peer
    /// answering, or it was created without initial peers (saved peers of its data dir that
    /// are all gone leave it a first node, bootstrapped). A node whose initial peers all failed
    /// (created with [`with_ensure_bootstrap_success`](DhtConfig::with_ensure_bootstrap_success)
    /// off) stays unbootstrapped, however many nodes it meets later.
    pub fn is_bootstrapped(&self) -> bool {
        self.inner.is_bootstrapped()
    }

    /// Waits until the earliest queued refresh of a cached value is due (or the queue changes),
    /// then refreshes up to `chunk_size` due keys in one get. Returns false once the node is
    /// shutting down.
    async fn refresh_due_cache_entries(&self, before: Duration) -> bool {
        if let Some((keys, sufficient)) = self.due_cache_refreshes(before).await {
            self.get_values(&keys, Some(sufficient), true).await;
        }
        !self.inner.p2p.is_shut_down()
    }

    /// Stops background work and the handlers, saves everything to the data dir (if any), and
    /// stops the P2P node.
    pub async fn shutdown(&self) {
        for task in self.lock_background().drain(..) {
            task.abort();
        }
        let _ = self.inner.protocol.shutdown();
        self.stop_persistence().await;
        self.inner.p2p.shutdown().await;
    }
}

impl NodeInner {
    /// The searches run so far, for [`DhtNode::lookup_stats`].
    fn lookup_stats(&self) -> LookupStats {
        LookupStats {
            searches: self.searches.load(Ordering::Relaxed),
            hops: self.search_hops.load(Ordering::Relaxed),
        }
    }
}

impl StatsSource for NodeInner {
    fn stats(&self) -> DhtStats {
        DhtStats {
            lookups: self.lookup_stats(),
            ..self.protocol.stats()
        }
    }

    fn is_bootstrapped(&self) -> bool {
        self.bootstrapped.load(Ordering::Acquire)
    }
}

/// A uniformly random id in the bucket `[lower, lower + 2^(160 - depth))`.
fn random_in_bucket(lower: DhtId, depth: u32) -> DhtId {
    let random = DhtId::random();
    let mut id = lower;
    for bit in depth..160 {
        id = id.with_bit(bit, random.bit(bit));
    }
    id
}
