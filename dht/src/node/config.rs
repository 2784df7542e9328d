//! [`DhtConfig`]: how a [`DhtNode`](super::DhtNode) is created, with hivemind's defaults, and the
//! record [`Validators`] it starts with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use servicer_runtime::{Multiaddr, P2PConfig};

use crate::id::DhtId;
use crate::limits::Limits;
use crate::metrics::DhtMetrics;
use crate::protocol::ProtocolConfig;
use crate::validation::RecordValidator;

/// How a [`DhtNode`](super::DhtNode) is created. Build it with [`DhtConfig::default`]
/// (hivemind's defaults) and the `with_*` methods. It holds the node's
/// [`ProtocolConfig`]; the `with_*` methods for the protocol's parameters set them there.
///
/// ```
/// use std::time::Duration;
/// use servicer_dht::{DhtConfig, ProtocolConfig};
///
/// let config = DhtConfig::default()
///     .with_num_replicas(3)
///     .with_wait_timeout(Duration::from_secs(10))
///     .with_cache_locally(false);
/// assert_eq!(config.protocol().num_replicas(), 3);
/// assert_eq!(config.protocol().bucket_size(), ProtocolConfig::default().bucket_size());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DhtConfig {
    pub(crate) p2p: P2PConfig,
    pub(crate) node_id: Option<DhtId>,
    pub(crate) initial_peers: Vec<Multiaddr>,
    pub(crate) protocol: ProtocolConfig,
    pub(crate) refresh_timeout: Option<Duration>,
    pub(crate) bootstrap_timeout: Option<Duration>,
    pub(crate) cache_locally: bool,
    pub(crate) cache_nearest: usize,
    pub(crate) cache_refresh_before_expiry: Option<Duration>,
    pub(crate) cache_on_store: bool,
    pub(crate) reuse_get_requests: bool,
    pub(crate) num_workers: usize,
    pub(crate) chunk_size: usize,
    pub(crate) blacklist_time: Duration,
    pub(crate) backoff_rate: f64,
    pub(crate) ensure_bootstrap_success: bool,
    pub(crate) strict: bool,
    pub(crate) record_validators: Validators,
    pub(crate) metrics: DhtMetrics,
    pub(crate) data_dir: Option<PathBuf>,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            p2p: P2PConfig::default(),
            node_id: None,
            initial_peers: Vec::new(),
            protocol: ProtocolConfig::default(),
            refresh_timeout: None,
            bootstrap_timeout: None,
            cache_locally: true,
            cache_nearest: 1,
            cache_refresh_before_expiry: Some(Duration::from_secs(5)),
            cache_on_store: true,
            reuse_get_requests: true,
            num_workers: 4,
            chunk_size: 16,
            blacklist_time: Duration::from_secs(5),
            backoff_rate: 2.0,
            ensure_bootstrap_success: true,
            strict: true,
            record_validators: Validators::default(),
            metrics: DhtMetrics::default(),
            data_dir: None,
        }
    }
}

impl DhtConfig {
    /// The P2P node to create (listen addresses, identity, wire, ...). Its initial peers are
    /// replaced by those of [`with_initial_peers`](Self::with_initial_peers). Default:
    /// [`P2PConfig::default`].
    pub fn with_p2p(mut self, p2p: P2PConfig) -> Self {
        self.p2p = p2p;
        self
    }

    /// This node's DHT id. Default: a random one.
    pub fn with_node_id(mut self, node_id: DhtId) -> Self {
        self.node_id = Some(node_id);
        self
    }

    /// Peers to bootstrap from, as full `/p2p/` multiaddrs. Default: none, a node that starts a
    /// DHT of its own.
    pub fn with_initial_peers(mut self, peers: impl IntoIterator<Item = Multiaddr>) -> Self {
        self.initial_peers = peers.into_iter().collect();
        self
    }

    /// All of the protocol's parameters at once. Default: [`ProtocolConfig::default`].
    pub fn with_protocol(mut self, protocol: ProtocolConfig) -> Self {
        self.protocol = protocol;
        self
    }

    /// Nodes per k-bucket, results per find, and the default beam size of a search. Default: 20.
    /// At least 1 (see [`ProtocolConfig::with_bucket_size`]).
    pub fn with_bucket_size(mut self, nodes: usize) -> Self {
        self.protocol = self.protocol.with_bucket_size(nodes);
        self
    }

    /// The bucket splitting parameter. Default: 5. At least 1 (see
    /// [`ProtocolConfig::with_depth_modulo`]).
    pub fn with_depth_modulo(mut self, levels: u32) -> Self {
        self.protocol = self.protocol.with_depth_modulo(levels);
        self
    }

    /// Nodes each value is stored on. Default: 5. At least 1 (see
    /// [`ProtocolConfig::with_num_replicas`]).
    pub fn with_num_replicas(mut self, nodes: usize) -> Self {
        self.protocol = self.protocol.with_num_replicas(nodes);
        self
    }

    /// Deadline of each RPC. Default: 3 s (see [`ProtocolConfig::with_wait_timeout`]).
    pub fn with_wait_timeout(mut self, timeout: Duration) -> Self {
        self.protocol = self.protocol.with_wait_timeout(timeout);
        self
    }

    /// At most this many RPCs in flight. Default: `None`, no limit. At least 1 (see
    /// [`ProtocolConfig::with_parallel_rpc`]).
    pub fn with_parallel_rpc(mut self, calls: Option<usize>) -> Self {
        self.protocol = self.protocol.with_parallel_rpc(calls);
        self
    }

    /// At most this many keys in the cache. Default: `None`, no limit (see
    /// [`ProtocolConfig::with_cache_size`]).
    pub fn with_cache_size(mut self, keys: Option<usize>) -> Self {
        self.protocol = self.protocol.with_cache_size(keys);
        self
    }

    /// Run as a client: serve nothing, stay out of others' routing tables. Default: `false`
    /// (see [`ProtocolConfig::with_client_mode`]).
    pub fn with_client_mode(mut self, client_mode: bool) -> Self {
        self.protocol = self.protocol.with_client_mode(client_mode);
        self
    }

    /// What the node accepts from remote peers (value size, request size, subkeys, quotas).
    /// Default: [`Limits::default`] (see [`ProtocolConfig::with_limits`]).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.protocol = self.protocol.with_limits(limits);
        self
    }

    /// Every this often, look up the buckets nobody updated for that long. Default: `None`, no
    /// refresh. A zero period is taken as 1 ms.
    pub fn with_refresh_timeout(mut self, period: Option<Duration>) -> Self {
        self.refresh_timeout = period.map(|p| p.max(Duration::from_millis(1)));
        self
    }

    /// How long bootstrap waits for more initial peers to answer once one has. Default: `None`,
    /// the wait timeout. Any duration.
    pub fn with_bootstrap_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.bootstrap_timeout = timeout;
        self
    }

    /// Cache the values this node looked up. Default: `true`.
    pub fn with_cache_locally(mut self, cache: bool) -> Self {
        self.cache_locally = cache;
        self
    }

    /// Also store a looked-up value in the cache of this many nodes near the key (those that
    /// lacked it). Default: 1. 0 caches on no other node.
    pub fn with_cache_nearest(mut self, nodes: usize) -> Self {
        self.cache_nearest = nodes;
        self
    }

    /// Refresh a cached value this long before it expires, if a get used it from the cache.
    /// Default: 5 s. `None` refreshes nothing.
    pub fn with_cache_refresh_before_expiry(mut self, before: Option<Duration>) -> Self {
        self.cache_refresh_before_expiry = before;
        self
    }

    /// Cache the values this node stored. Default: `true`.
    pub fn with_cache_on_store(mut self, cache: bool) -> Self {
        self.cache_on_store = cache;
        self
    }

    /// Concurrent gets of one key share one search. Default: `true`.
    pub fn with_reuse_get_requests(mut self, reuse: bool) -> Self {
        self.reuse_get_requests = reuse;
        self
    }

    /// Concurrent requests of one lookup. Default: 4. At least 1 (0 is taken as 1).
    pub fn with_num_workers(mut self, workers: usize) -> Self {
        self.num_workers = workers.max(1);
        self
    }

    /// At most this many keys per find request of a get, and per refresh of cached values.
    /// Default: 16. At least 1 (0 is taken as 1).
    pub fn with_chunk_size(mut self, keys: usize) -> Self {
        self.chunk_size = keys.max(1);
        self
    }

    /// How long a peer that failed a find is banned from this node's searches. Default: 5 s.
    /// Zero bans nobody.
    pub fn with_blacklist_time(mut self, ban: Duration) -> Self {
        self.blacklist_time = ban;
        self
    }

    /// Each further failure of a banned peer multiplies its ban by this (up to a million times
    /// the blacklist time). Default: 2.0. At least 1.0 (smaller values and NaN are taken as 1.0).
    pub fn with_backoff_rate(mut self, rate: f64) -> Self {
        self.backoff_rate = if rate >= 1.0 { rate } else { 1.0 };
        self
    }

    /// Fail [`DhtNode::create`](super::DhtNode::create) when initial peers are given and none
    /// answers. Default: `true`.
    pub fn with_ensure_bootstrap_success(mut self, ensure: bool) -> Self {
        self.ensure_bootstrap_success = ensure;
        self
    }

    /// Fail [`DhtNode::create`](super::DhtNode::create) when an initial peer fails validation
    /// (it cannot reach this node, or its clock is more than 3 s off); otherwise only warn.
    /// Default: `true`.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Validators for every stored and found record (hivemind's `record_validators`). Default:
    /// none.
    pub fn with_record_validators(mut self, validators: Validators) -> Self {
        self.record_validators = validators;
        self
    }

    /// The Prometheus metrics the node reports to (see [`DhtMetrics::new`]); the runtime's own
    /// are set on the P2P node's config
    /// ([`P2PConfig::with_metrics`](servicer_runtime::P2PConfig::with_metrics)), and both can
    /// share one registry. Default: [`DhtMetrics::default`], registered nowhere (the node still
    /// counts: see [`DhtNode::stats`](super::DhtNode::stats)).
    pub fn with_metrics(mut self, metrics: DhtMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Keep the node's state in `dir` so that a restart loses nothing: its identity
    /// (`identity.key`, unless [`P2PConfig::with_keypair`] or [`P2PConfig::with_identity_path`]
    /// chose one), its DHT id (unless [`with_node_id`](Self::with_node_id) sets one), the
    /// records it stores as a replica (not its cache) and its routing table (`dht.redb`). The folder is created if missing; one that cannot be opened fails
    /// [`DhtNode::create`](super::DhtNode::create) with
    /// [`DhtError::Persistence`](crate::DhtError::Persistence). Default: none, and nothing
    /// touches the disk.
    ///
    /// On start the node loads every unexpired record (through the storage's newest-wins rules,
    /// charged to no remote writer's quota) and bootstraps from the saved peers as well as the
    /// [initial peers](Self::with_initial_peers); saved peers that do not answer are only
    /// warned about.
    ///
    /// Guarantee: a store acknowledged at least 1 s before the process is killed (even
    /// `kill -9`) is on disk; on a clean shutdown ([`DhtNode::shutdown`](super::DhtNode::shutdown))
    /// everything is. Writes are batched every 100 ms and committed with an fsync.
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The data dir, if any (see [`with_data_dir`](Self::with_data_dir)).
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// The P2P node's configuration.
    pub fn p2p(&self) -> &P2PConfig {
        &self.p2p
    }

    /// The protocol's parameters.
    pub fn protocol(&self) -> &ProtocolConfig {
        &self.protocol
    }

    /// The peers to bootstrap from.
    pub fn initial_peers(&self) -> &[Multiaddr] {
        &self.initial_peers
    }
}

/// A list of record validators, for [`DhtConfig::with_record_validators`].
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
