//! [`ProtocolConfig`]: the parameters of a [`DhtProtocol`](super::DhtProtocol), with hivemind's
//! defaults.

use std::time::Duration;

use crate::limits::Limits;

/// Parameters of a [`DhtProtocol`](super::DhtProtocol). Build it with
/// [`ProtocolConfig::default`] (hivemind's defaults) and the `with_*` methods; a
/// [`DhtConfig`](crate::DhtConfig) holds one.
///
/// ```
/// use std::time::Duration;
/// use servicer_dht::ProtocolConfig;
///
/// let config = ProtocolConfig::default()
///     .with_bucket_size(10)
///     .with_wait_timeout(Duration::from_secs(10));
/// assert_eq!(config.bucket_size(), 10);
/// assert_eq!(config.num_replicas(), 5);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProtocolConfig {
    pub(crate) bucket_size: usize,
    pub(crate) depth_modulo: u32,
    pub(crate) num_replicas: usize,
    pub(crate) wait_timeout: Duration,
    pub(crate) parallel_rpc: Option<usize>,
    pub(crate) cache_size: Option<usize>,
    pub(crate) client_mode: bool,
    pub(crate) limits: Limits,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            bucket_size: 20,
            depth_modulo: 5,
            num_replicas: 5,
            wait_timeout: Duration::from_secs(3),
            parallel_rpc: None,
            cache_size: None,
            client_mode: false,
            limits: Limits::default(),
        }
    }
}

impl ProtocolConfig {
    /// Nodes per k-bucket, and nodes a find answer names per key. Default: 20. At least 1 (0 is
    /// taken as 1).
    pub fn with_bucket_size(mut self, nodes: usize) -> Self {
        self.bucket_size = nodes.max(1);
        self
    }

    /// Buckets that do not cover this node's id split only at depths that are multiples of
    /// this. Default: 5. At least 1 (0 is taken as 1).
    pub fn with_depth_modulo(mut self, levels: u32) -> Self {
        self.depth_modulo = levels.max(1);
        self
    }

    /// How many of the nodes nearest to a key hold its value: stores go to that many, and a
    /// stored value is handed to a newly met node that is among them. Default: 5. At least 1
    /// (0 is taken as 1).
    pub fn with_num_replicas(mut self, nodes: usize) -> Self {
        self.num_replicas = nodes.max(1);
        self
    }

    /// Deadline of each RPC this node sends. Default: 3 s. Any duration; a call that gets no
    /// answer in time counts as a failure of the peer.
    pub fn with_wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// At most this many RPCs in flight at once; more wait for a slot. Default: `None`, no
    /// limit. At least 1 (`Some(0)` is taken as `Some(1)`).
    pub fn with_parallel_rpc(mut self, calls: Option<usize>) -> Self {
        self.parallel_rpc = calls.map(|calls| calls.max(1));
        self
    }

    /// At most this many keys in the cache; past it the soonest-expiring go first. Default:
    /// `None`, no limit. `Some(0)` caches nothing.
    pub fn with_cache_size(mut self, keys: Option<usize>) -> Self {
        self.cache_size = keys;
        self
    }

    /// Serve no RPCs and stay out of others' routing tables (the node only calls). Default:
    /// `false`.
    pub fn with_client_mode(mut self, client_mode: bool) -> Self {
        self.client_mode = client_mode;
        self
    }

    /// What the node accepts from remote peers (value size, request size, subkeys, quotas).
    /// Default: [`Limits::default`], whose documentation gives each default.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Nodes per k-bucket.
    pub fn bucket_size(&self) -> usize {
        self.bucket_size
    }

    /// Nodes each value is stored on.
    pub fn num_replicas(&self) -> usize {
        self.num_replicas
    }

    /// Deadline of each RPC.
    pub fn wait_timeout(&self) -> Duration {
        self.wait_timeout
    }

    /// Whether the node serves nothing.
    pub fn client_mode(&self) -> bool {
        self.client_mode
    }

    /// What the node accepts from remote peers.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}
