//! [`DhtNode`]: bootstrap, beam-search lookups, replicated stores, gets with caching.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use serde::de::DeserializeOwned;
use servicer_runtime::multiaddr_peer_id;
use servicer_runtime::{Multiaddr, P2P, P2PConfig, PeerId};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::blacklist::Blacklist;
use crate::limits::Limits;
use crate::messages::{StoreItem, StoreValue};
use crate::protocol::{FindOutcome, ProtocolConfig};
use crate::stats::{DhtStats, LookupStats};
use crate::storage::StoredValue;
use crate::time::{DhtTime, ValueWithExpiration, get_dht_time};
use crate::traverse::{Answer, Keyspace, TraverseConfig, traverse};
use crate::validation::{DhtRecord, REGULAR_SUBKEY, RecordValidator};
use crate::{DhtError, DhtId, DhtProtocol, FastMap, Key, decode_value, encode_value, lock};

/// How a [`DhtNode`] is created; the defaults are hivemind's.
#[derive(Debug, Clone)]
pub struct DhtConfig {
    /// The P2P node to create (listen addresses, identity, ...). Its initial peers are set from
    /// [`initial_peers`](Self::initial_peers).
    pub p2p: P2PConfig,
    /// This node's id. Default: random.
    pub node_id: Option<DhtId>,
    /// Peers to bootstrap from, as full `/p2p/` multiaddrs.
    pub initial_peers: Vec<Multiaddr>,
    /// Nodes per k-bucket, results per find, default beam size. Default 20.
    pub bucket_size: usize,
    /// Nodes each value is stored on. Default 5.
    pub num_replicas: usize,
    /// Bucket splitting parameter. Default 5.
    pub depth_modulo: u32,
    /// At most this many RPCs in flight. Default: unlimited.
    pub parallel_rpc: Option<usize>,
    /// Deadline of each RPC. Default 3 s.
    pub wait_timeout: Duration,
    /// Period of the refresh of buckets not updated for that long. Default: off.
    pub refresh_timeout: Option<Duration>,
    /// How long bootstrap waits for initial peers. Default: `wait_timeout`.
    pub bootstrap_timeout: Option<Duration>,
    /// Cache values this node looked up. Default true.
    pub cache_locally: bool,
    /// Also store looked-up values in the cache of this many nodes near the key. Default 1.
    pub cache_nearest: usize,
    /// At most this many keys in the cache. Default: unlimited.
    pub cache_size: Option<usize>,
    /// Refresh a cached value this long before it expires, if it was used from the cache.
    /// Default 5 s; `None` disables it.
    pub cache_refresh_before_expiry: Option<Duration>,
    /// Cache values this node stored. Default true.
    pub cache_on_store: bool,
    /// Concurrent gets of one key share one search. Default true.
    pub reuse_get_requests: bool,
    /// Concurrent requests of one lookup. Default 4.
    pub num_workers: usize,
    /// At most this many keys per find request of a get. Default 16.
    pub chunk_size: usize,
    /// Ban for peers that fail a find; 0 disables. Default 5 s.
    pub blacklist_time: Duration,
    /// Each further failure multiplies the ban. Default 2.
    pub backoff_rate: f64,
    /// Serve nothing and stay out of others' tables. Default false.
    pub client_mode: bool,
    /// Fail `create` when no initial peer answers. Default true.
    pub ensure_bootstrap_success: bool,
    /// Fail `create` when an initial peer fails validation (reachability, clock). Default true.
    pub strict: bool,
    /// What the node accepts from remote peers (value size, request size, subkeys, quotas);
    /// see [`Limits`] for the defaults.
    pub limits: Limits,
    /// Validators for every stored and found record (hivemind's `record_validators`).
    pub record_validators: Validators,
}

/// A list of record validators, for [`DhtConfig::record_validators`].
#[derive(Clone, Default)]
pub struct Validators(pub Vec<Arc<dyn RecordValidator>>);

impl Validators {
    /// Adds a validator.
    pub fn with(mut self, validator: Arc<dyn RecordValidator>) -> Self {
        self.0.push(validator);
        self
    }
}

impl std::fmt::Debug for Validators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Validators({})", self.0.len())
    }
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            p2p: P2PConfig::default(),
            node_id: None,
            initial_peers: Vec::new(),
            bucket_size: 20,
            num_replicas: 5,
            depth_modulo: 5,
            parallel_rpc: None,
            wait_timeout: Duration::from_secs(3),
            refresh_timeout: None,
            bootstrap_timeout: None,
            cache_locally: true,
            cache_nearest: 1,
            cache_size: None,
            cache_refresh_before_expiry: Some(Duration::from_secs(5)),
            cache_on_store: true,
            reuse_get_requests: true,
            num_workers: 4,
            chunk_size: 16,
            blacklist_time: Duration::from_secs(5),
            backoff_rate: 2.0,
            client_mode: false,
            ensure_bootstrap_success: true,
            strict: true,
            limits: Limits::default(),
            record_validators: Validators::default(),
        }
    }
}

impl DhtConfig {
    /// Bootstrap from these peers.
    pub fn with_initial_peers(mut self, peers: impl IntoIterator<Item = Multiaddr>) -> Self {
        self.initial_peers = peers.into_iter().collect();
        self
    }

    /// Create the P2P node from this configuration.
    pub fn with_p2p(mut self, p2p: P2PConfig) -> Self {
        self.p2p = p2p;
        self
    }

    /// Run as a client: no handlers, not in anyone's routing table.
    pub fn with_client_mode(mut self, client_mode: bool) -> Self {
        self.client_mode = client_mode;
        self
    }
}

/// A value as `get` returns it: one value, or a dictionary of subkeys (msgpack bytes) to values.
#[derive(Debug, Clone, PartialEq)]
pub enum DhtValue<V> {
    /// A regular value.
    Regular(V),
    /// A dictionary value: subkey (msgpack bytes, see [`Key::to_msgpack`]) to value.
    Dictionary(HashMap<Vec<u8>, ValueWithExpiration<V>>),
}

/// The best value a get has seen so far for one key.
#[derive(Default)]
struct SearchState {
    found: Option<ValueWithExpiration<StoredValue>>,
    /// Who supplied the newest value (`None`: this node).
    source: Option<Option<PeerId>>,
    sufficient: DhtTime,
}

impl SearchState {
    fn best(&self) -> DhtTime {
        self.found
            .as_ref()
            .map_or(f64::NEG_INFINITY, |f| f.expiration_time)
    }

    fn finished(&self) -> bool {
        self.best() >= self.sufficient
    }

    /// Takes a candidate: dictionaries merge subkey by subkey, otherwise the newer wins. The
    /// local value is never mutated: candidates are copies (hivemind quirk Q9).
    fn add(&mut self, candidate: ValueWithExpiration<StoredValue>, source: Option<PeerId>) {
        let newer = candidate.expiration_time > self.best();
        match (&mut self.found, candidate) {
            (
                Some(ValueWithExpiration {
                    value: StoredValue::Dictionary(current),
                    expiration_time,
                }),
                ValueWithExpiration {
                    value: StoredValue::Dictionary(mut incoming),
                    expiration_time: incoming_exp,
                },
            ) => {
                for (subkey, v) in incoming.snapshot() {
                    current.store(subkey, v.value, v.expiration_time);
                }
                *expiration_time = expiration_time.max(incoming_exp);
            }
            (found, candidate) if newer => *found = Some(candidate),
            _ => {}
        }
        if newer {
            self.source = Some(source);
        }
    }
}

/// A get in flight for one key, which later gets may join.
struct PendingGet {
    id: u64,
    sufficient: DhtTime,
    /// Set for the get that searches; joiners have `None`.
    result: Option<FoundReceiver>,
}

/// A search's outcome: `None` until it finishes, then what it found.
type FoundSender = watch::Sender<Option<Option<ValueWithExpiration<StoredValue>>>>;
type FoundReceiver = watch::Receiver<Option<Option<ValueWithExpiration<StoredValue>>>>;

/// The gets of one `get_many_by_id` call in the pending table; removed on drop, even when the
/// call is cancelled.
struct Registration<'a> {
    inner: &'a NodeInner,
    entries: Vec<(DhtId, u64)>,
    senders: HashMap<DhtId, FoundSender>,
}

impl<'a> Registration<'a> {
    fn new(inner: &'a NodeInner) -> Self {
        Registration {
            inner,
            entries: Vec::new(),
            senders: HashMap::new(),
        }
    }

    /// Registers a get of `key`; returns the running search to wait for (the one that looks
    /// furthest ahead), with how far ahead it looks.
    fn join(
        &mut self,
        key: DhtId,
        sufficient: DhtTime,
        reuse: bool,
    ) -> Option<(FoundReceiver, DhtTime)> {
        let id = self
            .inner
            .next_get_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut pending = lock(&self.inner.pending_gets);
        let gets = pending.entry(key).or_default();
        let running = reuse
            .then(|| {
                gets.iter()
                    .filter_map(|g| g.result.clone().map(|rx| (rx, g.sufficient)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
            })
            .flatten();
        let result = match running {
            Some(_) => None,
            None => {
                let (tx, rx) = watch::channel(None);
                self.senders.insert(key, tx);
                Some(rx)
            }
        };
        gets.push(PendingGet {
            id,
            sufficient,
            result,
        });
        self.entries.push((key, id));
        running
    }

    /// Hands this call's results to the gets that joined them.
    fn publish(&mut self, searches: &HashMap<DhtId, SearchState>) {
        for (key, tx) in self.senders.drain() {
            let found = searches.get(&key).and_then(|s| s.found.clone());
            let _ = tx.send(Some(found));
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut pending = lock(&self.inner.pending_gets);
        for (key, id) in self.entries.drain(..) {
            if let Some(gets) = pending.get_mut(&key) {
                gets.retain(|g| g.id != id);
                if gets.is_empty() {
                    pending.remove(&key);
                }
            }
        }
    }
}

/// The hop of each node one search knows of (see [`LookupStats::hops`]).
struct Hops {
    hop: Mutex<FastMap<DhtId, u64>>,
    deepest: AtomicU64,
}

impl Hops {
    fn new(initial: &[DhtId]) -> Hops {
        Hops {
            hop: Mutex::new(initial.iter().map(|id| (*id, 1)).collect()),
            deepest: AtomicU64::new(0),
        }
    }

    /// `node` answered, naming `named`.
    fn answered(&self, node: &DhtId, named: impl IntoIterator<Item = DhtId>) {
        let mut hops = lock(&self.hop);
        let hop = hops.get(node).copied().unwrap_or(1);
        self.deepest.fetch_max(hop, Ordering::Relaxed);
        for id in named {
            hops.entry(id).or_insert(hop + 1);
        }
    }
}

struct NodeInner {
    /// Searches run and their hops, for [`DhtNode::lookup_stats`].
    searches: AtomicU64,
    search_hops: AtomicU64,
    /// Cached keys to refresh, and when.
    refresh_queue: Mutex<FastMap<DhtId, DhtTime>>,
    refresh_wakeup: tokio::sync::Notify,
    pending_gets: Mutex<FastMap<DhtId, Vec<PendingGet>>>,
    next_get_id: std::sync::atomic::AtomicU64,
    p2p: P2P,
    protocol: DhtProtocol,
    config: DhtConfig,
    blacklist: Mutex<Blacklist>,
    background: Mutex<Vec<JoinHandle<()>>>,
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
    /// Starts a node: creates its P2P node, serves the DHT (unless in client mode), pings the
    /// initial peers and looks up its own neighbourhood.
    pub async fn create(config: DhtConfig) -> Result<DhtNode, DhtError> {
        let p2p_config = config
            .p2p
            .clone()
            .with_initial_peers(config.initial_peers.clone());
        let p2p = P2P::create(p2p_config).await?;
        match Self::with_p2p(p2p.clone(), config).await {
            Ok(node) => Ok(node),
            Err(err) => {
                p2p.shutdown().await;
                Err(err)
            }
        }
    }

    async fn with_p2p(p2p: P2P, config: DhtConfig) -> Result<DhtNode, DhtError> {
        let node_id = config.node_id.unwrap_or_else(DhtId::random);
        let protocol = DhtProtocol::create(
            &p2p,
            node_id,
            ProtocolConfig::default()
                .with_bucket_size(config.bucket_size)
                .with_depth_modulo(config.depth_modulo)
                .with_num_replicas(config.num_replicas)
                .with_wait_timeout(config.wait_timeout)
                .with_parallel_rpc(config.parallel_rpc)
                .with_cache_size(config.cache_size)
                .with_client_mode(config.client_mode)
                .with_limits(config.limits.clone()),
        )?;
        protocol
            .validator()
            .extend(config.record_validators.0.iter().cloned());
        let node = DhtNode {
            inner: Arc::new(NodeInner {
                searches: AtomicU64::new(0),
                search_hops: AtomicU64::new(0),
                refresh_queue: Mutex::default(),
                refresh_wakeup: tokio::sync::Notify::new(),
                pending_gets: Mutex::default(),
                next_get_id: std::sync::atomic::AtomicU64::new(0),
                p2p,
                protocol,
                blacklist: Mutex::new(Blacklist::new(config.blacklist_time, config.backoff_rate)),
                background: Mutex::new(Vec::new()),
                config,
            }),
        };
        node.bootstrap().await?;
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

    async fn bootstrap(&self) -> Result<(), DhtError> {
        let config = &self.inner.config;
        let peers: Vec<PeerId> = config
            .initial_peers
            .iter()
            .filter_map(multiaddr_peer_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if peers.is_empty() {
            return Ok(());
        }
        let timeout = config.bootstrap_timeout.unwrap_or(config.wait_timeout);
        let started = tokio::time::Instant::now();
        let validate = config.ensure_bootstrap_success;
        let mut pings: FuturesUnordered<_> = peers
            .iter()
            .map(|peer| {
                self.inner
                    .protocol
                    .call_ping(*peer, validate, config.strict)
            })
            .collect();
        let mut answered = 0;
        let mut first_error = None;
        // Wait for the first answer, then for the others until the bootstrap timeout.
        while let Some(result) = if answered == 0 {
            pings.next().await
        } else {
            tokio::time::timeout_at(started + timeout, pings.next())
                .await
                .ok()
                .flatten()
        } {
            match result {
                Ok(Some(_)) => answered += 1,
                Ok(None) => {}
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        drop(pings);
        if let Some(err) = first_error.filter(|_| config.strict) {
            return Err(err);
        }
        if answered == 0 {
            let message = "DhtNode bootstrap failed: none of the initial peers responded to a ping \
                           (set ensure_bootstrap_success = false to ignore)";
            if config.ensure_bootstrap_success {
                return Err(DhtError::Bootstrap(message.into()));
            }
            tracing::warn!("{message}");
        }
        let remaining = timeout.saturating_sub(started.elapsed());
        let own = self.node_id();
        let _ = tokio::time::timeout(remaining.max(config.wait_timeout), async {
            self.find_nearest_nodes(&[own], None, false).await
        })
        .await;
        Ok(())
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
        // hivemind passes a bare id here and the task dies (quirk Q6): look each one up.
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

    /// How many gets of `key` are in flight now (searching or waiting on another's search).
    pub fn pending_gets(&self, key: &DhtId) -> usize {
        lock(&self.inner.pending_gets).get(key).map_or(0, Vec::len)
    }

    /// The beam searches this node has run so far and their hops. With the RPC counts of
    /// [`DhtProtocol::rpcs_sent`], this tells what lookups cost.
    pub fn lookup_stats(&self) -> LookupStats {
        LookupStats {
            searches: self.inner.searches.load(Ordering::Relaxed),
            hops: self.inner.search_hops.load(Ordering::Relaxed),
        }
    }

    /// A snapshot of what this node holds and has done: the protocol's
    /// [`stats`](DhtProtocol::stats) with this node's searches.
    pub fn stats(&self) -> DhtStats {
        DhtStats {
            lookups: self.lookup_stats(),
            ..self.inner.protocol.stats()
        }
    }

    fn record_search(&self, hops: &Hops) {
        self.inner.searches.fetch_add(1, Ordering::Relaxed);
        let deepest = hops.deepest.load(Ordering::Relaxed);
        self.inner.search_hops.fetch_add(deepest, Ordering::Relaxed);
    }

    /// Peers banned now for failing to answer a find.
    pub fn banned_peers(&self) -> Vec<PeerId> {
        self.blacklist().banned()
    }

    fn blacklist(&self) -> std::sync::MutexGuard<'_, Blacklist> {
        self.inner
            .blacklist
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// `call_find` that skips banned peers, bans peers that fail, and drops banned peers from
    /// the answer.
    async fn find_with_blacklist(
        &self,
        peer: PeerId,
        keys: Vec<DhtId>,
    ) -> Option<HashMap<DhtId, FindOutcome>> {
        if self.blacklist().contains(&peer) {
            return None;
        }
        let mut response = self.inner.protocol.call_find(peer, keys).await;
        let mut blacklist = self.blacklist();
        match &mut response {
            Some(outcomes) => {
                blacklist.register_success(&peer);
                for outcome in outcomes.values_mut() {
                    outcome.nearest.retain(|(_, p)| !blacklist.contains(p));
                }
            }
            None => blacklist.register_failure(peer),
        }
        response
    }

    /// Nearest known nodes to each query, not banned, as initial nodes of a search.
    fn initial_nodes(&self, queries: &[DhtId], beam_size: usize) -> HashMap<DhtId, PeerId> {
        let state = self.inner.protocol.state();
        let blacklist = self.blacklist();
        let own = self.node_id();
        queries
            .iter()
            .flat_map(|q| {
                state
                    .routing_table
                    .get_nearest_neighbors(q, beam_size, Some(&own))
            })
            .filter(|(_, peer)| !blacklist.contains(peer))
            .collect()
    }

    /// The `k_nearest` (default `bucket_size`) nodes nearest to each query, nearest first;
    /// this node is among them unless `exclude_self`. Nodes that failed to answer are left out
    /// (hivemind keeps them: quirk Q7).
    pub async fn find_nearest_nodes(
        &self,
        queries: &[DhtId],
        k_nearest: Option<usize>,
        exclude_self: bool,
    ) -> HashMap<DhtId, Vec<(DhtId, PeerId)>> {
        let k = k_nearest.unwrap_or(self.inner.config.bucket_size);
        let beam_size = k.max(self.inner.config.bucket_size);
        let (beams, peers) = self.search_nearest(queries, beam_size).await;
        let own = self.node_id();
        let me = self.inner.p2p.peer_id();
        beams
            .into_iter()
            .map(|(query, mut nearest)| {
                if !exclude_self {
                    nearest.push(own);
                    nearest.sort_by_key(|id| id.distance(&query));
                }
                let nodes = nearest
                    .into_iter()
                    .filter_map(|id| {
                        if id == own {
                            (!exclude_self).then_some((id, me))
                        } else {
                            peers.get(&id).map(|p| (id, *p))
                        }
                    })
                    .take(k)
                    .collect();
                (query, nodes)
            })
            .collect()
    }

    /// Beam search for the nearest live nodes of each query; also returns their peer ids.
    async fn search_nearest(
        &self,
        queries: &[DhtId],
        beam_size: usize,
    ) -> (HashMap<DhtId, Vec<DhtId>>, HashMap<DhtId, PeerId>) {
        let peers = Mutex::new(self.initial_nodes(queries, beam_size));
        let failed = Mutex::new(HashSet::new());
        let initial: Vec<DhtId> = lock(&peers).keys().copied().collect();
        let hops = Hops::new(&initial);
        let own = self.node_id();
        let visited = queries.iter().map(|q| (*q, HashSet::from([own]))).collect();
        let config = TraverseConfig {
            beam_size,
            num_workers: self.inner.config.num_workers,
            queries_per_call: (queries.len() as f64).sqrt() as usize,
        };
        let (mut nearest, _) = traverse(
            queries,
            &initial,
            config,
            visited,
            |node, batch| {
                let peer = lock(&peers).get(&node).copied();
                let (peers, failed, hops) = (&peers, &failed, &hops);
                async move {
                    let Some(peer) = peer else {
                        return HashMap::new();
                    };
                    let Some(outcomes) = self.find_with_blacklist(peer, batch).await else {
                        lock(failed).insert(node);
                        return HashMap::new();
                    };
                    hops.answered(&node, named(&outcomes));
                    let mut known = lock(peers);
                    outcomes
                        .into_iter()
                        .map(|(query, outcome)| {
                            known.extend(outcome.nearest.iter().copied());
                            let neighbors = outcome.nearest.into_iter().map(|(id, _)| id).collect();
                            (
                                query,
                                Answer {
                                    neighbors,
                                    stop: false,
                                },
                            )
                        })
                        .collect()
                }
            },
            |_, _, _| {},
        )
        .await;
        self.record_search(&hops);
        let failed = failed.into_inner().unwrap_or_else(|e| e.into_inner());
        for beam in nearest.values_mut() {
            beam.retain(|id| !failed.contains(id));
        }
        (
            nearest,
            peers.into_inner().unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Stores a typed value under `key` (or under `subkey` of the dictionary at `key`) until
    /// `expiration_time`, on `num_replicas` nodes nearest to the key. True if any accepted it.
    pub async fn store<V: Serialize + ?Sized>(
        &self,
        key: impl Into<Key>,
        value: &V,
        expiration_time: DhtTime,
        subkey: Option<Key>,
    ) -> Result<bool, DhtError> {
        self.store_encoded(key.into(), encode_value(value)?, expiration_time, subkey)
            .await
    }

    /// Stores an already encoded value; see [`store`](Self::store). Fails with
    /// [`DhtError::ValueTooLarge`] past [`Limits::max_value_size`], which other nodes refuse.
    pub async fn store_encoded(
        &self,
        key: Key,
        value: Vec<u8>,
        expiration_time: DhtTime,
        subkey: Option<Key>,
    ) -> Result<bool, DhtError> {
        let limit = self.inner.config.limits.max_value_size;
        if value.len() > limit {
            return Err(DhtError::ValueTooLarge {
                size: value.len(),
                limit,
            });
        }
        let item = StoreRequestItem {
            key,
            subkey,
            value,
            expiration_time,
        };
        Ok(self
            .store_many(vec![item], false)
            .await
            .into_iter()
            .all(|ok| ok))
    }

    /// Stores many items; one result per item, in order.
    pub async fn store_many(&self, items: Vec<StoreRequestItem>, exclude_self: bool) -> Vec<bool> {
        let mut by_key: HashMap<DhtId, Vec<usize>> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            by_key
                .entry(DhtId::generate(item.key.clone()))
                .or_default()
                .push(i);
        }
        let key_ids: Vec<DhtId> = by_key.keys().copied().collect();
        let beam_size = self
            .inner
            .config
            .bucket_size
            .max(self.inner.config.num_replicas);
        let (beams, peers) = self.search_nearest(&key_ids, beam_size).await;
        let mut results = vec![false; items.len()];
        let stores = by_key.iter().map(|(key_id, indices)| {
            let mut candidates: Vec<(DhtId, Option<PeerId>)> = beams
                .get(key_id)
                .into_iter()
                .flatten()
                .filter_map(|id| peers.get(id).map(|p| (*id, Some(*p))))
                .collect();
            if !exclude_self {
                candidates.push((self.node_id(), None));
            }
            candidates.sort_by_key(|(id, _)| id.distance(key_id));
            let batch: Vec<(usize, StoreItem)> = indices
                .iter()
                .map(|&i| {
                    let item = &items[i];
                    let subkey = item.subkey.as_ref().map(Key::to_msgpack);
                    let signed = self.inner.protocol.validator().sign_value(&DhtRecord {
                        key: key_id.to_bytes().to_vec(),
                        subkey: subkey.clone().unwrap_or_else(|| REGULAR_SUBKEY.to_vec()),
                        value: item.value.clone(),
                        expiration_time: item.expiration_time,
                    });
                    let value = match subkey {
                        Some(subkey) => StoreValue::Subkey {
                            subkey,
                            value: signed,
                        },
                        None => StoreValue::Regular(signed),
                    };
                    (
                        i,
                        StoreItem {
                            key: *key_id,
                            value,
                            expiration_time: item.expiration_time,
                            in_cache: false,
                        },
                    )
                })
                .collect();
            self.store_on_replicas(candidates, batch)
        });
        let outcomes: Vec<Vec<(usize, bool)>> = futures::future::join_all(stores).await;
        for (i, ok) in outcomes.into_iter().flatten() {
            results[i] = ok;
        }
        if self.inner.config.cache_on_store {
            self.update_cache_on_store(&items, &results);
        }
        results
    }

    /// hivemind's `_update_cache_on_store`: cache a stored regular value; when every replica
    /// refused one, refresh a cached copy that is no newer than the refused value (the refusal
    /// means a newer value exists); add stored subkeys to a cached dictionary and refresh it, since
    /// other writers may have added subkeys.
    fn update_cache_on_store(&self, items: &[StoreRequestItem], results: &[bool]) {
        let mut refresh_now = Vec::new();
        {
            let mut state = self.inner.protocol.state();
            for (item, &ok) in items.iter().zip(results) {
                let key = DhtId::generate(item.key.clone());
                match &item.subkey {
                    None if ok => {
                        state
                            .cache
                            .store(key, item.value.clone(), item.expiration_time, None);
                    }
                    None => {
                        if state
                            .cache
                            .get(&key)
                            .is_some_and(|cached| cached.expiration_time <= item.expiration_time)
                        {
                            refresh_now.push(key);
                        }
                    }
                    Some(subkey) => {
                        if state.cache.get(&key).is_none() {
                            continue;
                        }
                        if ok {
                            state.cache.store_subkey(
                                key,
                                subkey.to_msgpack(),
                                item.value.clone(),
                                item.expiration_time,
                            );
                        }
                        refresh_now.push(key);
                    }
                }
            }
        }
        if refresh_now.is_empty() || self.inner.config.cache_refresh_before_expiry.is_none() {
            return;
        }
        let now = get_dht_time();
        let mut queue = lock(&self.inner.refresh_queue);
        for key in refresh_now {
            queue.insert(key, now);
        }
        drop(queue);
        self.inner.refresh_wakeup.notify_one();
    }

    /// Stores one key's items on the nearest candidates until `num_replicas` answered, trying
    /// further candidates when one fails. An item is stored if any replica accepted it (hivemind
    /// keeps the last replica's answer: quirk Q8).
    async fn store_on_replicas(
        &self,
        mut candidates: Vec<(DhtId, Option<PeerId>)>,
        batch: Vec<(usize, StoreItem)>,
    ) -> Vec<(usize, bool)> {
        let replicas = self.inner.config.num_replicas.max(1);
        let mut accepted = vec![false; batch.len()];
        let mut successes = 0;
        candidates.reverse(); // pop() gives the nearest
        let items: Vec<StoreItem> = batch.iter().map(|(_, item)| item.clone()).collect();
        let mut pending = FuturesUnordered::new();
        loop {
            while successes + pending.len() < replicas {
                let Some((_, peer)) = candidates.pop() else {
                    break;
                };
                let items = items.clone();
                pending.push(async move {
                    match peer {
                        None => Some(self.store_locally(items)),
                        Some(peer) => self.inner.protocol.call_store(peer, items).await,
                    }
                });
            }
            let Some(result) = pending.next().await else {
                break;
            };
            if let Some(oks) = result {
                successes += 1;
                for (acc, ok) in accepted.iter_mut().zip(oks) {
                    *acc |= ok;
                }
            }
            if successes >= replicas && pending.is_empty() {
                break;
            }
        }
        batch.into_iter().map(|(i, _)| i).zip(accepted).collect()
    }

    fn store_locally(&self, items: Vec<StoreItem>) -> Vec<bool> {
        self.inner
            .protocol
            .apply_store(None, items)
            .iter()
            .map(Result::is_ok)
            .collect()
    }

    /// Gets the value under `key` and decodes it. With `latest`, searches until no newer value
    /// can be found; otherwise stops at the first unexpired one.
    pub async fn get<V: DeserializeOwned>(
        &self,
        key: impl Into<Key>,
        latest: bool,
    ) -> Result<Option<ValueWithExpiration<DhtValue<V>>>, DhtError> {
        let id = DhtId::generate(key);
        let sufficient = if latest {
            f64::INFINITY
        } else {
            get_dht_time()
        };
        let found = self
            .get_many_by_id(&[id], Some(sufficient))
            .await
            .remove(&id)
            .flatten();
        found.map(|v| self.decode(&id, v)).transpose()
    }

    /// Gets and decodes several keys with one shared search.
    pub async fn get_many<V: DeserializeOwned>(
        &self,
        keys: Vec<Key>,
        latest: bool,
    ) -> Result<Vec<(Key, Option<ValueWithExpiration<DhtValue<V>>>)>, DhtError> {
        let ids: Vec<DhtId> = keys.iter().map(|k| DhtId::generate(k.clone())).collect();
        let sufficient = if latest {
            f64::INFINITY
        } else {
            get_dht_time()
        };
        let mut found = self.get_many_by_id(&ids, Some(sufficient)).await;
        keys.into_iter()
            .zip(ids)
            .map(|(key, id)| {
                let value = found
                    .remove(&id)
                    .flatten()
                    .map(|v| self.decode(&id, v))
                    .transpose()?;
                Ok((key, value))
            })
            .collect()
    }

    /// Strips what validators added (signatures) and decodes the msgpack values.
    fn decode<V: DeserializeOwned>(
        &self,
        key: &DhtId,
        found: ValueWithExpiration<StoredValue>,
    ) -> Result<ValueWithExpiration<DhtValue<V>>, DhtError> {
        let limit = self.inner.config.limits.max_value_size;
        let validator = self.inner.protocol.validator();
        let strip = |subkey: &[u8], value: &[u8], expiration_time| {
            if validator.is_empty() {
                return value.to_vec();
            }
            validator.strip_value(&DhtRecord {
                key: key.to_bytes().to_vec(),
                subkey: subkey.to_vec(),
                value: value.to_vec(),
                expiration_time,
            })
        };
        let value = match found.value {
            StoredValue::Regular(bytes) => DhtValue::Regular(decode_value(
                &strip(REGULAR_SUBKEY, &bytes, found.expiration_time),
                limit,
            )?),
            StoredValue::Dictionary(mut dict) => DhtValue::Dictionary(
                dict.items()
                    .map(|(subkey, v)| {
                        let bytes = strip(subkey, &v.value, v.expiration_time);
                        Ok((
                            subkey.clone(),
                            ValueWithExpiration::new(
                                decode_value(&bytes, limit)?,
                                v.expiration_time,
                            ),
                        ))
                    })
                    .collect::<Result<_, DhtError>>()?,
            ),
        };
        Ok(ValueWithExpiration::new(value, found.expiration_time))
    }

    /// Gets raw values by key id: local storage and cache first, then a shared beam search for
    /// the keys not yet found with an expiration of at least `sufficient_expiration_time`
    /// (default: now, i.e. any unexpired value).
    pub async fn get_many_by_id(
        &self,
        keys: &[DhtId],
        sufficient_expiration_time: Option<DhtTime>,
    ) -> HashMap<DhtId, Option<ValueWithExpiration<StoredValue>>> {
        self.get_values(keys, sufficient_expiration_time, false)
            .await
    }

    async fn get_values(
        &self,
        keys: &[DhtId],
        sufficient_expiration_time: Option<DhtTime>,
        is_refresh: bool,
    ) -> HashMap<DhtId, Option<ValueWithExpiration<StoredValue>>> {
        let sufficient = sufficient_expiration_time.unwrap_or_else(get_dht_time);
        let mut searches: HashMap<DhtId, SearchState> = HashMap::new();
        {
            let mut state = self.inner.protocol.state();
            for key in keys {
                let search = searches.entry(*key).or_insert_with(|| SearchState {
                    sufficient,
                    ..SearchState::default()
                });
                // A refresh looks past the cache: the cached value is what it wants to renew.
                let cached = (!is_refresh)
                    .then(|| state.cache.get(key).cloned())
                    .flatten();
                for local in [state.storage.get(key).cloned(), cached]
                    .into_iter()
                    .flatten()
                {
                    search.add(local, None);
                }
            }
        }
        let unfinished: Vec<DhtId> = searches
            .iter()
            .filter(|(_, s)| !s.finished())
            .map(|(k, _)| *k)
            .collect();
        if unfinished.is_empty() {
            self.schedule_cache_refresh(&searches, is_refresh);
            return searches.into_iter().map(|(k, s)| (k, s.found)).collect();
        }
        // reuse_get_requests: join a search already running for a key, if it looks at least as
        // far ahead as this one; otherwise lead one that later gets can join.
        let mut registration = Registration::new(&self.inner);
        let mut leading = Vec::new();
        let mut following = Vec::new();
        for key in unfinished {
            match registration.join(key, sufficient, self.inner.config.reuse_get_requests) {
                Some((rx, leader_sufficient)) => following.push((key, rx, leader_sufficient)),
                None => leading.push(key),
            }
        }
        let lead = async {
            self.search_values(&mut searches, leading.clone(), is_refresh)
                .await;
            // Publish at once: other gets may be waiting on these keys while this one waits on
            // theirs.
            registration.publish(&searches);
        };
        let follow = futures::future::join_all(following.into_iter().map(
            |(key, mut rx, leader_sufficient)| async move {
                let found = rx
                    .wait_for(Option::is_some)
                    .await
                    .ok()
                    .and_then(|v| v.clone());
                (key, found, leader_sufficient)
            },
        ));
        let ((), followed) = futures::future::join(lead, follow).await;
        drop(registration);
        let mut orphaned = Vec::new();
        for (key, found, leader_sufficient) in followed {
            let search = searches.entry(key).or_default();
            match found {
                Some(Some(value)) => {
                    search.add(value, None);
                    // The leader settled for an older value than this get wants: look further.
                    if !search.finished() && leader_sufficient < sufficient {
                        orphaned.push(key);
                    }
                }
                // The leader searched until its end and found nothing: neither would this get.
                Some(None) => {}
                // The leading get was cancelled before it finished: search ourselves.
                None => orphaned.push(key),
            }
        }
        if !orphaned.is_empty() {
            self.search_values(&mut searches, orphaned, is_refresh)
                .await;
        }
        self.schedule_cache_refresh(&searches, is_refresh);
        searches.into_iter().map(|(k, s)| (k, s.found)).collect()
    }

    /// The beam search of a get: asks nodes near each key until its search is satisfied.
    async fn search_values(
        &self,
        searches: &mut HashMap<DhtId, SearchState>,
        keys: Vec<DhtId>,
        is_refresh: bool,
    ) {
        if keys.is_empty() {
            return;
        }
        let beam_size = self.inner.config.bucket_size;
        let searches_cell = Mutex::new(&mut *searches);
        let peers = Mutex::new(self.initial_nodes(&keys, beam_size));
        let initial: Vec<DhtId> = lock(&peers).keys().copied().collect();
        let hops = Hops::new(&initial);
        let own = self.node_id();
        let visited = keys.iter().map(|q| (*q, HashSet::from([own]))).collect();
        let config = TraverseConfig {
            beam_size,
            num_workers: self.inner.config.num_workers,
            queries_per_call: ((keys.len() as f64).sqrt() as usize)
                .min(self.inner.config.chunk_size),
        };
        let nearest_found = Mutex::new(HashMap::new());
        traverse(
            &keys,
            &initial,
            config,
            visited,
            |node, batch| {
                let peer = lock(&peers).get(&node).copied();
                let (peers, searches, hops) = (&peers, &searches_cell, &hops);
                async move {
                    let Some(peer) = peer else {
                        return HashMap::new();
                    };
                    let Some(outcomes) = self.find_with_blacklist(peer, batch).await else {
                        return HashMap::new();
                    };
                    hops.answered(&node, named(&outcomes));
                    let mut known = lock(peers);
                    let mut searches = lock(searches);
                    outcomes
                        .into_iter()
                        .map(|(query, outcome)| {
                            known.extend(outcome.nearest.iter().copied());
                            let search = searches.entry(query).or_default();
                            if let Some(value) = outcome.value {
                                search.add(value, Some(peer));
                            }
                            let neighbors = outcome.nearest.into_iter().map(|(id, _)| id).collect();
                            (
                                query,
                                Answer {
                                    neighbors,
                                    stop: search.finished(),
                                },
                            )
                        })
                        .collect()
                }
            },
            |query, nearest: &[DhtId], _| {
                lock(&nearest_found).insert(query, nearest.to_vec());
            },
        )
        .await;
        self.record_search(&hops);
        let nearest_found = nearest_found
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let peers = peers.into_inner().unwrap_or_else(|e| e.into_inner());
        self.cache_results(searches, &nearest_found, &peers, is_refresh);
    }

    /// Queues a refresh of cached values a get just used (found locally, present in the cache),
    /// `cache_refresh_before_expiry` before they expire.
    fn schedule_cache_refresh(&self, searches: &HashMap<DhtId, SearchState>, is_refresh: bool) {
        let Some(before) = self.inner.config.cache_refresh_before_expiry else {
            return;
        };
        if is_refresh {
            return;
        }
        let mut due = Vec::new();
        {
            let mut state = self.inner.protocol.state();
            for (key, search) in searches {
                if let (Some(found), Some(None)) = (&search.found, &search.source)
                    && state.cache.get(key).is_some()
                {
                    due.push((*key, found.expiration_time - before.as_secs_f64()));
                }
            }
        }
        if due.is_empty() {
            return;
        }
        let mut queue = lock(&self.inner.refresh_queue);
        for (key, at) in due {
            queue
                .entry(key)
                .and_modify(|t| *t = t.min(at))
                .or_insert(at);
        }
        drop(queue);
        self.inner.refresh_wakeup.notify_one();
    }

    /// Cached keys waiting for a refresh.
    pub fn cache_refresh_queue_len(&self) -> usize {
        lock(&self.inner.refresh_queue).len()
    }

    /// Waits until the earliest queued refresh is due (or the queue changes), then refreshes up
    /// to `chunk_size` due keys in one get. Returns false once the node is shutting down.
    async fn refresh_due_cache_entries(&self, before: Duration) -> bool {
        let wakeup = self.inner.refresh_wakeup.notified();
        futures::pin_mut!(wakeup);
        wakeup.as_mut().enable();
        let earliest = lock(&self.inner.refresh_queue)
            .values()
            .copied()
            .min_by(f64::total_cmp);
        let now = get_dht_time();
        // Waits are capped so that the task lets go of the node now and then: a node dropped
        // without shutdown is then freed.
        const MAX_WAIT: f64 = 1.0;
        match earliest {
            Some(at) if at <= now => {}
            other => {
                let wait = other.map_or(MAX_WAIT, |at| (at - now).min(MAX_WAIT));
                let _ = tokio::time::timeout(Duration::from_secs_f64(wait), wakeup).await;
                return !self.inner.p2p.is_shut_down();
            }
        }
        let keys: Vec<DhtId> = {
            let mut queue = lock(&self.inner.refresh_queue);
            let mut due: Vec<(DhtTime, DhtId)> = queue
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(k, at)| (*at, *k))
                .collect();
            due.sort_by(|a, b| a.0.total_cmp(&b.0));
            due.truncate(self.inner.config.chunk_size.max(1));
            for (_, key) in &due {
                queue.remove(key);
            }
            due.into_iter().map(|(_, k)| k).collect()
        };
        let max_expiration = {
            let mut state = self.inner.protocol.state();
            keys.iter()
                .filter_map(|k| state.cache.get(k).map(|v| v.expiration_time))
                .fold(get_dht_time(), f64::max)
        };
        let sufficient = max_expiration + before.as_secs_f64() + 1.0;
        self.get_values(&keys, Some(sufficient), true).await;
        !self.inner.p2p.is_shut_down()
    }

    /// `cache_locally` and `cache_nearest` for values found on other nodes.
    fn cache_results(
        &self,
        searches: &HashMap<DhtId, SearchState>,
        nearest: &HashMap<DhtId, Vec<DhtId>>,
        peers: &HashMap<DhtId, PeerId>,
        is_refresh: bool,
    ) {
        let config = &self.inner.config;
        let mut to_cache_remotely: HashMap<PeerId, Vec<StoreItem>> = HashMap::new();
        {
            let mut state = self.inner.protocol.state();
            for (key, search) in searches {
                let (Some(found), Some(Some(source))) = (&search.found, &search.source) else {
                    continue; // nothing found, or found locally
                };
                let stored = state.storage.get(key).map(|v| v.expiration_time);
                let cached = state.cache.get(key).map(|v| v.expiration_time);
                let newer_than_local = [stored, cached]
                    .into_iter()
                    .flatten()
                    .all(|local| local < found.expiration_time);
                if !newer_than_local {
                    continue;
                }
                if config.cache_locally || is_refresh {
                    cache_value(&mut state.cache, *key, found.clone());
                }
                let targets = nearest
                    .get(key)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| peers.get(id))
                    .filter(|p| *p != source)
                    .take(config.cache_nearest);
                for peer in targets {
                    to_cache_remotely.entry(*peer).or_default().push(StoreItem {
                        key: *key,
                        value: StoreValue::from_stored(&found.value),
                        expiration_time: found.expiration_time,
                        in_cache: true,
                    });
                }
            }
        }
        for (peer, items) in to_cache_remotely {
            let protocol = self.inner.protocol.clone();
            tokio::spawn(async move {
                protocol.call_store(peer, items).await;
            });
        }
    }

    /// Stops background work, the handlers and the P2P node.
    pub async fn shutdown(&self) {
        for task in self.lock_background().drain(..) {
            task.abort();
        }
        let _ = self.inner.protocol.shutdown();
        self.inner.p2p.shutdown().await;
    }
}

/// The nodes an answer to a find named, for every key.
fn named(outcomes: &HashMap<DhtId, FindOutcome>) -> impl Iterator<Item = DhtId> + '_ {
    outcomes
        .values()
        .flat_map(|o| o.nearest.iter().map(|(id, _)| *id))
}

fn cache_value(
    cache: &mut crate::DhtLocalStorage,
    key: DhtId,
    found: ValueWithExpiration<StoredValue>,
) {
    match found.value {
        StoredValue::Regular(v) => {
            cache.store(key, v, found.expiration_time, None);
        }
        StoredValue::Dictionary(mut d) => {
            cache.store_dictionary(key, &mut d);
        }
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

/// One item of [`DhtNode::store_many`]: an encoded value under a key, optionally a subkey.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreRequestItem {
    /// The key.
    pub key: Key,
    /// The subkey, for a dictionary value.
    pub subkey: Option<Key>,
    /// The msgpack-encoded value (see [`encode_value`]).
    pub value: Vec<u8>,
    /// When it expires.
    pub expiration_time: DhtTime,
}
