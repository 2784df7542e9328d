//! [`DhtProtocol`]: the DHT's RPCs (`rpc_ping`, `rpc_store`, `rpc_find`) as a `#[servicer]`, the
//! `call_*` wrappers that keep the routing table up to date on every success and failure, and the
//! state they share (routing table, storage, cache).
//!
//! The protocol speaks native messages ([`crate::messages`]) only. Which wire carries them is a
//! [`DhtWire`] the protocol is created with; this layer implements the native one, and the
//! hivemind adapter, above it, implements hivemind's.

mod addresses;
mod calls;
mod changes;
mod config;
mod handlers;
mod replication;
mod rules;
mod wire;

use std::sync::{Arc, Mutex, MutexGuard};

use servicer_runtime::{P2P, PeerId};
use tokio::sync::Semaphore;

use crate::FastSet;
use crate::error::DhtError;
use crate::id::DhtId;
use crate::limits::Writers;
use crate::messages::NodeInfo;
use crate::routing::RoutingTable;
use crate::stats::{DhtStats, RpcCounts, SentCounters, StoreCounters};
use crate::storage::{DhtLocalStorage, StoredValue};
use crate::time::{ValueWithExpiration, get_dht_time};
use crate::validation::CompositeValidator;

pub use calls::FindOutcome;
pub(crate) use changes::LoadedValue;
pub use config::ProtocolConfig;
pub use handlers::DhtProtocolStub;
#[cfg(feature = "testing")]
pub(crate) use rules::Contact;
pub(crate) use wire::{DhtWire, NativeWire, Remote, WireCall};

/// The mutable state: routing table, storage and cache.
pub(crate) struct ProtocolState {
    /// Known nodes.
    pub(crate) routing_table: RoutingTable,
    /// Values this node is responsible for.
    pub(crate) storage: DhtLocalStorage,
    /// Values cached from lookups.
    pub(crate) cache: DhtLocalStorage,
    /// Who wrote the records remote peers stored, for the quotas.
    pub(crate) writers: Writers,
    /// Keys of `storage` written since the node last saved them to its data dir; `None` when it
    /// has none (see [`changes`]).
    pub(crate) changed: Option<FastSet<DhtId>>,
}

struct ProtocolInner {
    p2p: P2P,
    /// The wire every handler is served on and every call goes out on, chosen at creation.
    wire: Arc<dyn DhtWire>,
    sent: SentCounters,
    /// Items of remote peers' store requests, accepted and refused by reason.
    stores: StoreCounters,
    validator: Arc<CompositeValidator>,
    addrs: addresses::AddressBook,
    node_id: DhtId,
    config: ProtocolConfig,
    state: Mutex<ProtocolState>,
    rpc_slots: Option<Semaphore>,
    /// Replications to newly met nodes under way, and who recently had one.
    replications: Mutex<replication::Replications>,
    /// Blocking threads that may verify signatures of store requests at once: one per core.
    verifiers: Semaphore,
}

/// The DHT's RPC layer: serves `rpc_ping`, `rpc_store` and `rpc_find` and calls them on others.
/// Cheap to clone.
#[derive(Clone)]
pub struct DhtProtocol {
    inner: Arc<ProtocolInner>,
}

impl std::fmt::Debug for DhtProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhtProtocol")
            .field("node_id", &self.inner.node_id)
            .field("peer_id", &self.inner.p2p.peer_id())
            .finish_non_exhaustive()
    }
}

impl DhtProtocol {
    /// The protocol on `p2p`, speaking `wire`; unless in client mode, serves its handlers there.
    pub(crate) fn with_wire(
        p2p: &P2P,
        node_id: DhtId,
        config: ProtocolConfig,
        wire: Arc<dyn DhtWire>,
    ) -> Result<DhtProtocol, DhtError> {
        let state = ProtocolState {
            routing_table: RoutingTable::new(node_id, config.bucket_size, config.depth_modulo),
            storage: DhtLocalStorage::new(None),
            cache: DhtLocalStorage::new(config.cache_size),
            writers: Writers::default(),
            changed: None,
        };
        let protocol = DhtProtocol {
            inner: Arc::new(ProtocolInner {
                p2p: p2p.clone(),
                wire,
                sent: SentCounters::default(),
                stores: StoreCounters::default(),
                validator: Arc::default(),
                addrs: addresses::AddressBook::default(),
                node_id,
                rpc_slots: config.parallel_rpc.map(Semaphore::new),
                replications: Mutex::default(),
                verifiers: Semaphore::new(
                    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
                ),
                config,
                state: Mutex::new(state),
            }),
        };
        if !protocol.inner.config.client_mode {
            protocol.inner.wire.serve(&protocol)?;
        }
        Ok(protocol)
    }

    /// How many requests this node has sent so far, by RPC: a cheap read of the counters in
    /// [`stats`](Self::stats), for benchmarks that sample it often.
    pub fn rpcs_sent(&self) -> RpcCounts {
        self.inner.sent.snapshot()
    }

    /// A snapshot of what this node holds and has sent. Counting the bytes takes a pass over
    /// the storage and the cache.
    pub fn stats(&self) -> DhtStats {
        let mut state = self.state();
        let ProtocolState {
            routing_table,
            storage,
            cache,
            writers,
            ..
        } = &mut *state;
        writers.expire(get_dht_time());
        DhtStats {
            routing_table_size: routing_table.len(),
            stored_keys: storage.len(),
            stored_bytes: storage.bytes(),
            cached_keys: cache.len(),
            cached_bytes: cache.bytes(),
            remote_records: writers.len(),
            requests_sent: self.rpcs_sent(),
            lookups: Default::default(),
            stores_accepted: self.inner.stores.accepted(),
            stores_refused: self.inner.stores.refused(),
        }
    }

    /// The unexpired value this node stores under `key` (as one of its replicas).
    pub fn stored_value(&self, key: &DhtId) -> Option<ValueWithExpiration<StoredValue>> {
        self.state().storage.get(key).cloned()
    }

    /// The unexpired value this node has cached under `key` (from a lookup, or a peer's
    /// `in_cache` store).
    pub fn cached_value(&self, key: &DhtId) -> Option<ValueWithExpiration<StoredValue>> {
        self.state().cache.get(key).cloned()
    }

    /// Whether the routing table holds the node with this DHT id (as an active node or a
    /// replacement).
    pub fn knows_node(&self, node_id: &DhtId) -> bool {
        self.state().routing_table.contains(node_id)
    }

    /// Stops serving the handlers (a no-op in client mode).
    pub fn shutdown(&self) -> Result<(), DhtError> {
        if !self.inner.config.client_mode {
            self.inner.wire.unserve(&self.inner.p2p)?;
        }
        Ok(())
    }

    /// This node's id.
    pub fn node_id(&self) -> DhtId {
        self.inner.node_id
    }

    /// The node the protocol runs on.
    pub fn p2p(&self) -> &P2P {
        &self.inner.p2p
    }

    /// The protocol's parameters.
    pub fn config(&self) -> &ProtocolConfig {
        &self.inner.config
    }

    /// The validators every stored and found record goes through.
    pub fn validator(&self) -> &Arc<CompositeValidator> {
        &self.inner.validator
    }

    /// How many records held here `peer` wrote (its quota use,
    /// [`Limits::max_records_per_peer`](crate::Limits::max_records_per_peer)).
    pub fn records_written_by(&self, peer: &PeerId) -> usize {
        let mut state = self.state();
        state.writers.expire(get_dht_time());
        state.writers.records_of(peer)
    }

    /// How many records held here remote peers wrote ([`Limits::max_records`](crate::Limits::max_records)).
    pub fn remote_records(&self) -> usize {
        let mut state = self.state();
        state.writers.expire(get_dht_time());
        state.writers.len()
    }

    /// Locks the routing table, storage and cache. Keep the guard short: never across an await.
    pub(crate) fn state(&self) -> MutexGuard<'_, ProtocolState> {
        crate::lock(&self.inner.state)
    }

    /// The DHT id the routing table knows for `peer`.
    fn id_of(&self, peer: &PeerId) -> Option<DhtId> {
        self.state().routing_table.get_id(peer)
    }

    /// Who this node is, as its messages say: no id in client mode (others must not add it to
    /// their routing tables).
    pub(crate) fn node_info(&self) -> NodeInfo {
        if self.inner.config.client_mode {
            return NodeInfo {
                node_id: None,
                addrs: Default::default(),
            };
        }
        NodeInfo {
            node_id: Some(self.inner.node_id),
            addrs: self.own_addrs(),
        }
    }
}
