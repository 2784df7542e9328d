//! [`DhtProtocol`]: the DHT's RPCs (`rpc_ping`, `rpc_store`, `rpc_find`) as a `#[servicer]`, and
//! the `call_*` wrappers that keep the routing table up to date on every success and failure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use servicer_macros::servicer;
use servicer_runtime::{Multiaddr, P2P, PeerId, RpcContext, WireMode};
use tokio::sync::Semaphore;

use crate::FastMap;
use crate::addrs::AddrList;
use crate::hivemind_wire::{HivemindDhtProtocol, Remote};
use crate::limits::{Limits, RecordId, Rejection, Writers};
use crate::routing::RoutingTable;
use crate::storage::{DhtLocalStorage, DictionaryDhtValue, StoredValue};
use crate::time::{DhtTime, MAX_DHT_TIME_DISCREPANCY_SECONDS, ValueWithExpiration, get_dht_time};
use crate::validation::{CompositeValidator, DhtRecord, REGULAR_SUBKEY};
use crate::{DhtError, DhtId};

/// Who sent a message: the sender's node id, or `None` for a client-mode node, which others must
/// not add to their routing tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The sender's DHT id, if it serves the DHT.
    pub node_id: Option<DhtId>,
    /// Where the sender can be dialled, so that the receiver can hand it out in find results
    /// without waiting for libp2p's identify exchange.
    pub addrs: AddrList,
}

/// `rpc_ping` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingRequest {
    /// The caller.
    pub peer: NodeInfo,
    /// Ask the callee to ping back, to tell whether the caller is reachable.
    pub validate: bool,
}

/// `rpc_ping` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingResponse {
    /// The callee.
    pub peer: NodeInfo,
    /// The callee's clock.
    pub dht_time: DhtTime,
    /// With `validate`: whether the callee could reach the caller.
    pub available: bool,
}

/// One subkey of a dictionary value on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DictEntry {
    /// The subkey (msgpack bytes).
    #[serde(with = "serde_bytes")]
    pub subkey: Vec<u8>,
    /// The value (msgpack bytes).
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// When this subkey expires.
    pub expiration_time: DhtTime,
}

/// What one store item writes (hivemind's marker subkeys, as an enum).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StoreValue {
    /// A regular value.
    Regular(#[serde(with = "serde_bytes")] Vec<u8>),
    /// One subkey of a dictionary value.
    Subkey {
        /// The subkey (msgpack bytes).
        #[serde(with = "serde_bytes")]
        subkey: Vec<u8>,
        /// The value (msgpack bytes).
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// A whole dictionary value.
    Dictionary(Vec<DictEntry>),
}

/// One item of a bulk store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreItem {
    /// The key's id.
    pub key: DhtId,
    /// What to write.
    pub value: StoreValue,
    /// When it expires.
    pub expiration_time: DhtTime,
    /// Write to the cache instead of the storage.
    pub in_cache: bool,
}

/// `rpc_store` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreRequest {
    /// The caller.
    pub peer: NodeInfo,
    /// The items to store.
    pub items: Vec<StoreItem>,
}

/// `rpc_store` response: one result per item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreResponse {
    /// The callee.
    pub peer: NodeInfo,
    /// Per item: stored, or why not.
    pub results: Vec<Result<(), Rejection>>,
}

/// `rpc_find` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindRequest {
    /// The caller.
    pub peer: NodeInfo,
    /// The key ids to look up.
    pub keys: Vec<DhtId>,
}

/// What a node holds under a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FoundValue {
    /// Nothing.
    NotFound,
    /// A regular value.
    Regular {
        /// The value (msgpack bytes).
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        /// When it expires.
        expiration_time: DhtTime,
    },
    /// A dictionary value.
    Dictionary {
        /// Its subkeys.
        entries: Vec<DictEntry>,
        /// The dictionary's own expiration (its latest subkey's).
        expiration_time: DhtTime,
    },
}

/// A peer as a find result names it: enough to dial it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// Its DHT id.
    pub node_id: DhtId,
    /// Its libp2p peer id (as its bytes on the wire).
    #[serde(with = "crate::addrs::peer_id_bytes")]
    pub peer_id: PeerId,
    /// Addresses it can be reached at.
    pub addrs: AddrList,
}

/// The answer for one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindResult {
    /// The value, if the callee has one.
    pub value: FoundValue,
    /// The callee's nearest nodes to the key.
    pub nearest: Vec<PeerRecord>,
}

/// `rpc_find` response: one result per key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindResponse {
    /// The callee.
    pub peer: NodeInfo,
    /// Results, in the order of the request's keys.
    pub results: Vec<FindResult>,
}

/// At most this many addresses of one node are taken from a message.
const MAX_ADDRS_PER_NODE: usize = 8;

/// Past this many recorded nodes, the records of nodes not in the routing table are dropped.
const MAX_KNOWN_ADDRS: usize = 4096;

type AddressBook = FastMap<PeerId, AddrList>;

/// What `call_find` learned about one key.
#[derive(Debug, Clone, PartialEq)]
pub struct FindOutcome {
    /// The value with its expiration, if the peer had one.
    pub value: Option<ValueWithExpiration<StoredValue>>,
    /// The peer's nearest nodes to the key, nearest first.
    pub nearest: Vec<(DhtId, PeerId)>,
}

/// Parameters of a [`DhtProtocol`].
#[derive(Debug, Clone)]
pub struct ProtocolConfig {
    /// Nodes per k-bucket (hivemind default 20).
    pub bucket_size: usize,
    /// Buckets far from the node split only every `depth_modulo` levels (default 5).
    pub depth_modulo: u32,
    /// How many nearest nodes a value is replicated to (default 5).
    pub num_replicas: usize,
    /// Deadline of each RPC (default 3 s).
    pub wait_timeout: Duration,
    /// At most this many RPCs in flight (default: no limit).
    pub parallel_rpc: Option<usize>,
    /// At most this many keys in the cache (default: no limit).
    pub cache_size: Option<usize>,
    /// Serve no RPCs and stay out of others' routing tables.
    pub client_mode: bool,
    /// What the node accepts from remote peers.
    pub limits: Limits,
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

/// The mutable state: routing table, storage and cache.
pub struct ProtocolState {
    /// Known nodes.
    pub routing_table: RoutingTable,
    /// Values this node is responsible for.
    pub storage: DhtLocalStorage,
    /// Values cached from lookups.
    pub cache: DhtLocalStorage,
    /// Who wrote the records remote peers stored, for the quotas.
    pub(crate) writers: Writers,
}

/// How many requests a node sent, by RPC: each request put on the wire counts once, whether it
/// was answered or not; a call split into several requests (more keys than
/// [`Limits::max_keys_per_request`]) counts each. Background work (replication to new nodes,
/// pings of stale nodes, caching on nearby nodes) counts too. See [`DhtProtocol::rpcs_sent`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RpcCounts {
    /// `rpc_ping` requests.
    pub ping: u64,
    /// `rpc_store` requests.
    pub store: u64,
    /// `rpc_find` requests.
    pub find: u64,
}

impl RpcCounts {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.ping + self.store + self.find
    }
}

impl std::ops::Sub for RpcCounts {
    type Output = RpcCounts;

    /// The requests sent between two snapshots (`later - earlier`).
    fn sub(self, earlier: RpcCounts) -> RpcCounts {
        RpcCounts {
            ping: self.ping - earlier.ping,
            store: self.store - earlier.store,
            find: self.find - earlier.find,
        }
    }
}

/// The counters behind [`RpcCounts`]; relaxed atomics, since they are statistics only.
#[derive(Default)]
struct SentCounters {
    ping: AtomicU64,
    store: AtomicU64,
    find: AtomicU64,
}

struct Inner {
    p2p: P2P,
    sent: SentCounters,
    validator: Arc<CompositeValidator>,
    /// Where DHT nodes said they listen.
    addrs: Mutex<AddressBook>,
    /// This node's visible addresses, and their `AddrList` for outgoing messages.
    own_addrs: Mutex<(Vec<Multiaddr>, AddrList)>,
    node_id: DhtId,
    config: ProtocolConfig,
    state: Mutex<ProtocolState>,
    rpc_slots: Option<Semaphore>,
}

/// The DHT's RPC layer: serves `rpc_ping`, `rpc_store` and `rpc_find` and calls them on others.
/// Cheap to clone.
#[derive(Clone)]
pub struct DhtProtocol {
    inner: Arc<Inner>,
}

#[servicer(name = "DHTProtocol")]
impl DhtProtocol {
    /// Answers with this node's id and clock; with `validate`, pings the caller back to tell it
    /// whether it is reachable.
    pub async fn rpc_ping(
        &self,
        request: PingRequest,
        ctx: RpcContext,
    ) -> Result<PingResponse, DhtError> {
        self.remember_addresses(ctx.remote_peer(), &request.peer)
            .await;
        let mut available = false;
        if let Some(sender_id) = request.peer.node_id {
            if request.validate {
                available = self
                    .call_ping(ctx.remote_peer(), false, false)
                    .await
                    .ok()
                    .flatten()
                    == Some(sender_id);
            }
            self.update_routing_table(
                Some(sender_id),
                ctx.remote_peer(),
                available || !request.validate,
            );
        }
        Ok(PingResponse {
            peer: self.node_info(),
            dht_time: get_dht_time(),
            available,
        })
    }

    /// Stores every item it can; a result per item.
    pub async fn rpc_store(
        &self,
        request: StoreRequest,
        ctx: RpcContext,
    ) -> Result<StoreResponse, DhtError> {
        self.check_request_size(request.items.len())?;
        self.remember_addresses(ctx.remote_peer(), &request.peer)
            .await;
        self.update_routing_table(request.peer.node_id, ctx.remote_peer(), true);
        let results = self.apply_store(Some(ctx.remote_peer()), request.items);
        Ok(StoreResponse {
            peer: self.node_info(),
            results,
        })
    }

    /// For each key: the newest of what storage and cache hold, and the nearest known nodes.
    pub async fn rpc_find(
        &self,
        request: FindRequest,
        ctx: RpcContext,
    ) -> Result<FindResponse, DhtError> {
        self.check_request_size(request.keys.len())?;
        self.remember_addresses(ctx.remote_peer(), &request.peer)
            .await;
        self.update_routing_table(request.peer.node_id, ctx.remote_peer(), true);
        let (values, nearest): (Vec<FoundValue>, Vec<Vec<(DhtId, PeerId)>>) = {
            let mut state = self.state();
            request
                .keys
                .iter()
                .map(|key| {
                    let ProtocolState {
                        routing_table,
                        storage,
                        cache,
                        ..
                    } = &mut *state;
                    let stored = newest(storage.get(key), cache.get(key));
                    let nearest = routing_table.get_nearest_neighbors(
                        key,
                        self.inner.config.bucket_size,
                        request.peer.node_id.as_ref(),
                    );
                    (found_value(stored), nearest)
                })
                .unzip()
        };
        // hivemind's messages carry no addresses (peers find each other through kad there).
        let with_addrs = self.inner.p2p.config().wire_mode() != WireMode::Hivemind;
        let mut unknown: Vec<PeerId> = Vec::new();
        let mut results: Vec<FindResult> = {
            let known = crate::lock(&self.inner.addrs);
            let mut record = |(node_id, peer): (DhtId, PeerId)| {
                let addrs = if with_addrs {
                    known.get(&peer).cloned().unwrap_or_else(|| {
                        unknown.push(peer);
                        AddrList::default()
                    })
                } else {
                    AddrList::default()
                };
                PeerRecord {
                    node_id,
                    peer_id: peer,
                    addrs,
                }
            };
            values
                .into_iter()
                .zip(nearest)
                .map(|(value, nearest)| FindResult {
                    value,
                    nearest: nearest.into_iter().map(&mut record).collect(),
                })
                .collect()
        };
        unknown.sort();
        unknown.dedup();
        // Nodes whose addresses came only from libp2p (dials, identify): ask the swarm.
        if !unknown.is_empty()
            && let Ok(found) = self.inner.p2p.addresses_of(unknown.clone()).await
        {
            let found: FastMap<PeerId, AddrList> = unknown
                .into_iter()
                .zip(found)
                .map(|(peer, addrs)| (peer, AddrList::from_multiaddrs(&addrs)))
                .collect();
            for record in results.iter_mut().flat_map(|r| r.nearest.iter_mut()) {
                if record.addrs.is_empty()
                    && let Some(addrs) = found.get(&record.peer_id)
                {
                    record.addrs = addrs.clone();
                }
            }
        }
        Ok(FindResponse {
            peer: self.node_info(),
            results,
        })
    }
}

fn dictionary(entries: Vec<DictEntry>, expiration_time: DhtTime) -> DictionaryDhtValue {
    DictionaryDhtValue::from_snapshot(
        entries.into_iter().map(|e| {
            (
                e.subkey,
                ValueWithExpiration::new(e.value, e.expiration_time),
            )
        }),
        expiration_time,
    )
}

fn newest(
    a: Option<&ValueWithExpiration<StoredValue>>,
    b: Option<&ValueWithExpiration<StoredValue>>,
) -> Option<ValueWithExpiration<StoredValue>> {
    match (a, b) {
        (Some(a), Some(b)) if b.expiration_time > a.expiration_time => Some(b.clone()),
        (Some(a), _) => Some(a.clone()),
        (None, b) => b.cloned(),
    }
}

fn found_value(stored: Option<ValueWithExpiration<StoredValue>>) -> FoundValue {
    match stored {
        None => FoundValue::NotFound,
        Some(ValueWithExpiration {
            value: StoredValue::Regular(value),
            expiration_time,
        }) => FoundValue::Regular {
            value,
            expiration_time,
        },
        Some(ValueWithExpiration {
            value: StoredValue::Dictionary(dict),
            expiration_time,
        }) => FoundValue::Dictionary {
            entries: dict_entries(&dict),
            expiration_time,
        },
    }
}

/// A dictionary's subkeys as they go on the wire (expired ones included: the receiver drops them).
pub(crate) fn dict_entries(dict: &DictionaryDhtValue) -> Vec<DictEntry> {
    dict.clone()
        .snapshot()
        .into_iter()
        .map(|(subkey, v)| DictEntry {
            subkey,
            value: v.value,
            expiration_time: v.expiration_time,
        })
        .collect()
}

/// The records of a store item, with their expirations.
fn record_ids(item: &StoreItem) -> Vec<(RecordId, DhtTime)> {
    match &item.value {
        StoreValue::Regular(_) => vec![((item.key, REGULAR_SUBKEY.to_vec()), item.expiration_time)],
        StoreValue::Subkey { subkey, .. } => {
            vec![((item.key, subkey.clone()), item.expiration_time)]
        }
        StoreValue::Dictionary(entries) => entries
            .iter()
            .map(|e| ((item.key, e.subkey.clone()), e.expiration_time))
            .collect(),
    }
}

/// What to send to store a value as it is held locally.
pub(crate) fn store_value(value: &StoredValue) -> StoreValue {
    match value {
        StoredValue::Regular(v) => StoreValue::Regular(v.clone()),
        StoredValue::Dictionary(d) => StoreValue::Dictionary(dict_entries(d)),
    }
}

impl DhtProtocol {
    /// Creates the protocol on `p2p` and, unless in client mode, serves its handlers there.
    pub fn create(
        p2p: &P2P,
        node_id: DhtId,
        config: ProtocolConfig,
    ) -> Result<DhtProtocol, DhtError> {
        let state = ProtocolState {
            routing_table: RoutingTable::new(node_id, config.bucket_size, config.depth_modulo),
            storage: DhtLocalStorage::new(None),
            cache: DhtLocalStorage::new(config.cache_size),
            writers: Writers::default(),
        };
        let protocol = DhtProtocol {
            inner: Arc::new(Inner {
                p2p: p2p.clone(),
                sent: SentCounters::default(),
                validator: Arc::default(),
                addrs: Mutex::default(),
                own_addrs: Mutex::default(),
                node_id,
                rpc_slots: config.parallel_rpc.map(Semaphore::new),
                config,
                state: Mutex::new(state),
            }),
        };
        if !protocol.inner.config.client_mode {
            if p2p.config().wire_mode() == WireMode::Hivemind {
                Arc::new(HivemindDhtProtocol::new(protocol.clone())).add_p2p_handlers(p2p, None)?;
            } else {
                Arc::new(protocol.clone()).add_p2p_handlers(p2p, None)?;
            }
        }
        Ok(protocol)
    }

    /// How many requests this node has sent so far, by RPC (for benchmarks and monitoring).
    pub fn rpcs_sent(&self) -> RpcCounts {
        let sent = &self.inner.sent;
        RpcCounts {
            ping: sent.ping.load(Ordering::Relaxed),
            store: sent.store.load(Ordering::Relaxed),
            find: sent.find.load(Ordering::Relaxed),
        }
    }

    /// Stops serving the handlers (a no-op in client mode).
    pub fn shutdown(&self) -> Result<(), DhtError> {
        if !self.inner.config.client_mode {
            let p2p = &self.inner.p2p;
            if p2p.config().wire_mode() == WireMode::Hivemind {
                HivemindDhtProtocol::remove_p2p_handlers(p2p, None)?;
            } else {
                DhtProtocol::remove_p2p_handlers(p2p, None)?;
            }
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

    /// Locks the routing table, storage and cache. Keep the guard short: never across an await.
    pub fn state(&self) -> MutexGuard<'_, ProtocolState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn node_info(&self) -> NodeInfo {
        if self.inner.config.client_mode {
            return NodeInfo {
                node_id: None,
                addrs: AddrList::default(),
            };
        }
        NodeInfo {
            node_id: Some(self.inner.node_id),
            addrs: self.own_addrs(),
        }
    }

    /// This node's visible addresses, re-encoded only when they change.
    fn own_addrs(&self) -> AddrList {
        let visible = self.inner.p2p.visible_maddrs();
        let mut own = crate::lock(&self.inner.own_addrs);
        if own.0 != visible {
            own.1 = AddrList::from_multiaddrs(&visible);
            own.0 = visible;
        }
        own.1.clone()
    }

    /// Remembers where a DHT node that contacted us listens (client-mode senders are skipped:
    /// they are never handed out).
    async fn remember_addresses(&self, peer: PeerId, sender: &NodeInfo) {
        if sender.node_id.is_none() || sender.addrs.is_empty() {
            return;
        }
        let learned = self.learn_addresses(vec![(peer, sender.addrs.clone())]);
        if !learned.is_empty() {
            let _ = self.inner.p2p.add_addresses(learned).await;
        }
    }

    /// Records addresses of DHT nodes; returns the ones that are new, parsed, for the P2P node.
    /// The record answers find requests without a trip to the swarm task.
    fn learn_addresses(&self, peers: Vec<(PeerId, AddrList)>) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut known = crate::lock(&self.inner.addrs);
        let mut new = Vec::new();
        for (peer, addrs) in peers {
            let addrs = addrs.truncated(MAX_ADDRS_PER_NODE);
            if addrs.is_empty() || known.get(&peer) == Some(&addrs) {
                continue;
            }
            new.push((peer, addrs.to_multiaddrs()));
            known.insert(peer, addrs);
        }
        // Keep the record to about the nodes the routing table can hold.
        if known.len() > MAX_KNOWN_ADDRS {
            let state = self.state();
            known.retain(|peer, _| state.routing_table.get_id(peer).is_some());
        }
        new
    }

    /// The validators every stored and found record goes through.
    pub fn validator(&self) -> &Arc<CompositeValidator> {
        &self.inner.validator
    }

    /// Whether a record passes the validators.
    pub fn valid(
        &self,
        key: &DhtId,
        subkey: &[u8],
        value: &[u8],
        expiration_time: DhtTime,
    ) -> bool {
        let validator = &self.inner.validator;
        validator.is_empty()
            || validator.validate(&DhtRecord {
                key: key.to_bytes().to_vec(),
                subkey: subkey.to_vec(),
                value: value.to_vec(),
                expiration_time,
            })
    }

    /// Whether every record of a store item passes the validators.
    pub fn valid_item(&self, item: &StoreItem) -> bool {
        match &item.value {
            StoreValue::Regular(value) => {
                self.valid(&item.key, REGULAR_SUBKEY, value, item.expiration_time)
            }
            StoreValue::Subkey { subkey, value } => {
                self.valid(&item.key, subkey, value, item.expiration_time)
            }
            StoreValue::Dictionary(entries) => entries
                .iter()
                .all(|e| self.valid(&item.key, &e.subkey, &e.value, e.expiration_time)),
        }
    }

    /// How many records held here `peer` wrote (its quota use, [`Limits::max_records_per_peer`]).
    pub fn records_written_by(&self, peer: &PeerId) -> usize {
        let mut state = self.state();
        state.writers.expire(get_dht_time());
        state.writers.records_of(peer)
    }

    /// How many records held here remote peers wrote ([`Limits::max_records`]).
    pub fn remote_records(&self) -> usize {
        let mut state = self.state();
        state.writers.expire(get_dht_time());
        state.writers.len()
    }

    fn check_request_size(&self, count: usize) -> Result<(), DhtError> {
        let limit = self.inner.config.limits.max_keys_per_request;
        if count > limit {
            return Err(DhtError::TooManyKeys { count, limit });
        }
        Ok(())
    }

    /// Stores items written by `sender` (`None`: this node itself): limits, validators, then
    /// storage or cache. A result per item.
    pub(crate) fn apply_store(
        &self,
        sender: Option<PeerId>,
        items: Vec<StoreItem>,
    ) -> Vec<Result<(), Rejection>> {
        let limits = &self.inner.config.limits;
        let now = get_dht_time();
        // Validate before taking the lock: validators may verify signatures.
        let checked: Vec<Result<(), Rejection>> = items
            .iter()
            .map(|item| {
                let values: Vec<&[u8]> = match &item.value {
                    StoreValue::Regular(value) | StoreValue::Subkey { value, .. } => vec![value],
                    StoreValue::Dictionary(entries) => {
                        entries.iter().map(|e| e.value.as_slice()).collect()
                    }
                };
                let expirations_finite = match &item.value {
                    StoreValue::Dictionary(entries) => {
                        entries.iter().all(|e| e.expiration_time.is_finite())
                    }
                    _ => true,
                } && item.expiration_time.is_finite();
                if !expirations_finite {
                    // NaN or infinity: never expiring would pin memory for good.
                    Err(Rejection::Invalid)
                } else if values.iter().any(|v| v.len() > limits.max_value_size) {
                    Err(Rejection::ValueTooLarge)
                } else if values.len() > limits.max_subkeys_per_dictionary {
                    Err(Rejection::TooManySubkeys)
                } else if item.expiration_time <= now {
                    Err(Rejection::Expired)
                } else if !self.valid_item(item) {
                    Err(Rejection::Invalid)
                } else {
                    Ok(())
                }
            })
            .collect();
        let mut state = self.state();
        let ProtocolState {
            storage,
            cache,
            writers,
            ..
        } = &mut *state;
        writers.expire(now);
        items
            .into_iter()
            .zip(checked)
            .map(|(item, checked)| {
                checked?;
                let target = if item.in_cache {
                    &mut *cache
                } else {
                    &mut *storage
                };
                let records = record_ids(&item);
                if let Some(sender) = &sender {
                    writers.check(limits, sender, records.iter().map(|(r, _)| r))?;
                }
                let subkeys: Vec<&[u8]> = records
                    .iter()
                    .map(|((_, subkey), _)| subkey.as_slice())
                    .filter(|subkey| *subkey != REGULAR_SUBKEY)
                    .collect();
                if !subkeys.is_empty()
                    && target.subkeys_after(&item.key, &subkeys) > limits.max_subkeys_per_dictionary
                {
                    return Err(Rejection::TooManySubkeys);
                }
                let stored = match item.value {
                    StoreValue::Regular(value) => {
                        target.store(item.key, value, item.expiration_time, None)
                    }
                    StoreValue::Subkey { subkey, value } => {
                        target.store_subkey(item.key, subkey, value, item.expiration_time)
                    }
                    StoreValue::Dictionary(entries) => {
                        let mut dict = dictionary(entries, item.expiration_time);
                        target.store_dictionary(item.key, &mut dict)
                    }
                };
                // A dictionary may be stored in part: its records count either way.
                for (record, expiration_time) in records {
                    writers.wrote(sender, record, expiration_time);
                }
                if stored {
                    Ok(())
                } else {
                    Err(Rejection::Outdated)
                }
            })
            .collect()
    }

    fn stub(&self, peer: PeerId) -> Remote {
        Remote::new(&self.inner.p2p, peer).with_deadline(self.inner.config.wait_timeout)
    }

    async fn slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        match &self.inner.rpc_slots {
            Some(slots) => slots.acquire().await.ok(),
            None => None,
        }
    }

    /// Pings `peer`; returns its DHT id if it answered as a DHT node. With `validate`, also checks
    /// that it can reach this node and that the clocks agree within 3 s: a failed check is an
    /// error with `strict`, a warning otherwise.
    pub async fn call_ping(
        &self,
        peer: PeerId,
        validate: bool,
        strict: bool,
    ) -> Result<Option<DhtId>, DhtError> {
        let requested = get_dht_time();
        let response = {
            let _slot = self.slot().await;
            self.inner.sent.ping.fetch_add(1, Ordering::Relaxed);
            self.stub(peer)
                .rpc_ping(PingRequest {
                    peer: self.node_info(),
                    validate,
                })
                .await
        };
        let responded_at = get_dht_time();
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                tracing::debug!(%peer, %err, "ping failed");
                self.update_routing_table(self.inner.state_id_of(&peer), peer, false);
                return Ok(None);
            }
        };
        let peer_id = response.peer.node_id;
        if validate && peer_id.is_some() {
            let max = MAX_DHT_TIME_DISCREPANCY_SECONDS;
            let problem = if !self.inner.config.client_mode && !response.available {
                Some(DhtError::Unreachable { peer })
            } else if response.dht_time != 0.0
                && (response.dht_time < requested - max || response.dht_time > responded_at + max)
            {
                let offset = if response.dht_time < requested {
                    response.dht_time - requested
                } else {
                    response.dht_time - responded_at
                };
                Some(DhtError::ClockSkew { peer, offset, max })
            } else {
                None
            };
            if let Some(problem) = problem {
                if strict {
                    return Err(problem);
                }
                tracing::warn!("{problem}");
            }
        }
        self.update_routing_table(peer_id, peer, peer_id.is_some());
        Ok(peer_id)
    }

    /// Stores items on `peer`; a result per item, or `None` if the peer did not answer.
    pub async fn call_store(&self, peer: PeerId, items: Vec<StoreItem>) -> Option<Vec<bool>> {
        let results = self.call_store_detailed(peer, items).await?;
        Some(results.iter().map(Result::is_ok).collect())
    }

    /// Stores items on `peer`: per item, stored or why not; `None` if the peer did not answer.
    /// More items than [`Limits::max_keys_per_request`] go in several requests.
    pub async fn call_store_detailed(
        &self,
        peer: PeerId,
        items: Vec<StoreItem>,
    ) -> Option<Vec<Result<(), Rejection>>> {
        let mut results = Vec::with_capacity(items.len());
        for chunk in items.chunks(self.inner.config.limits.max_keys_per_request.max(1)) {
            let response = {
                let _slot = self.slot().await;
                self.inner.sent.store.fetch_add(1, Ordering::Relaxed);
                self.stub(peer)
                    .rpc_store(StoreRequest {
                        peer: self.node_info(),
                        items: chunk.to_vec(),
                    })
                    .await
            };
            match response {
                Ok(response) if response.results.len() == chunk.len() => {
                    self.update_routing_table(response.peer.node_id, peer, true);
                    results.extend(response.results);
                }
                Ok(_) => {
                    tracing::debug!(%peer, "store answered with the wrong number of results");
                    return None;
                }
                Err(err) => {
                    tracing::debug!(%peer, %err, "store failed");
                    self.update_routing_table(self.inner.state_id_of(&peer), peer, false);
                    return None;
                }
            }
        }
        Some(results)
    }

    /// Looks keys up on `peer`: per key, its value (if any) and its nearest nodes; `None` if the
    /// peer did not answer. The addresses of the nodes it names are remembered for later dials.
    /// More keys than [`Limits::max_keys_per_request`] go in several requests.
    pub async fn call_find(
        &self,
        peer: PeerId,
        keys: Vec<DhtId>,
    ) -> Option<HashMap<DhtId, FindOutcome>> {
        let limit = self.inner.config.limits.max_keys_per_request.max(1);
        if keys.len() <= limit {
            return self.call_find_once(peer, keys).await;
        }
        let mut outcomes = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(limit) {
            outcomes.extend(self.call_find_once(peer, chunk.to_vec()).await?);
        }
        Some(outcomes)
    }

    async fn call_find_once(
        &self,
        peer: PeerId,
        keys: Vec<DhtId>,
    ) -> Option<HashMap<DhtId, FindOutcome>> {
        let response = {
            let _slot = self.slot().await;
            self.inner.sent.find.fetch_add(1, Ordering::Relaxed);
            self.stub(peer)
                .rpc_find(FindRequest {
                    peer: self.node_info(),
                    keys: keys.clone(),
                })
                .await
        };
        let response = match response {
            Ok(response) if response.results.len() == keys.len() => response,
            Ok(_) => {
                tracing::debug!(%peer, "find answered with the wrong number of results");
                return None;
            }
            Err(err) => {
                tracing::debug!(%peer, %err, "find failed");
                self.update_routing_table(self.inner.state_id_of(&peer), peer, false);
                return None;
            }
        };
        self.update_routing_table(response.peer.node_id, peer, true);
        let mut addresses = Vec::new();
        let outcomes = keys
            .into_iter()
            .zip(response.results)
            .map(|(key, result)| {
                let nearest = result
                    .nearest
                    .into_iter()
                    .map(|record| {
                        addresses.push((record.peer_id, record.addrs));
                        (record.node_id, record.peer_id)
                    })
                    .collect();
                // A value that fails validation counts as not found.
                let value = match result.value {
                    FoundValue::NotFound => None,
                    FoundValue::Regular {
                        ref value,
                        expiration_time,
                    } if !self.valid(&key, REGULAR_SUBKEY, value, expiration_time) => None,
                    FoundValue::Dictionary { ref entries, .. }
                        if !entries
                            .iter()
                            .all(|e| self.valid(&key, &e.subkey, &e.value, e.expiration_time)) =>
                    {
                        None
                    }
                    FoundValue::Regular {
                        value,
                        expiration_time,
                    } => Some(ValueWithExpiration::new(
                        StoredValue::Regular(value),
                        expiration_time,
                    )),
                    FoundValue::Dictionary {
                        entries,
                        expiration_time,
                    } => Some(ValueWithExpiration::new(
                        StoredValue::Dictionary(dictionary(entries, expiration_time)),
                        expiration_time,
                    )),
                };
                (key, FindOutcome { value, nearest })
            })
            .collect();
        let learned = self.learn_addresses(addresses);
        if !learned.is_empty() {
            let _ = self.inner.p2p.add_addresses(learned).await;
        }
        Some(outcomes)
    }

    /// Records that `peer` (with DHT id `node_id`, if it serves the DHT) answered or not. A new
    /// node gets the stored values it should replicate; a full bucket pings its stalest node; a
    /// node that did not answer is removed.
    pub fn update_routing_table(&self, node_id: Option<DhtId>, peer: PeerId, responded: bool) {
        let Some(node_id) = node_id else { return };
        if node_id == self.inner.node_id {
            return;
        }
        let mut state = self.state();
        if !responded {
            state.routing_table.remove(&node_id);
            return;
        }
        let to_replicate = if state.routing_table.contains(&node_id) {
            Vec::new()
        } else {
            self.values_for_new_node(&mut state, node_id)
        };
        let to_ping = state.routing_table.add_or_update_node(node_id, peer);
        drop(state);
        if !to_replicate.is_empty() {
            let me = self.clone();
            tokio::spawn(async move {
                me.call_store(peer, to_replicate).await;
            });
        }
        if let Some((_, stale_peer)) = to_ping {
            let me = self.clone();
            tokio::spawn(async move {
                let _ = me.call_ping(stale_peer, false, false).await;
            });
        }
    }

    /// hivemind's replication rule: send a stored value to a newly met node if it is among the
    /// `num_replicas` nearest to the key while this node is nearer than all of them (or there
    /// are none).
    fn values_for_new_node(&self, state: &mut ProtocolState, new_id: DhtId) -> Vec<StoreItem> {
        let ProtocolState {
            routing_table,
            storage,
            ..
        } = state;
        let replicas = self.inner.config.num_replicas;
        let own = self.inner.node_id;
        storage
            .items()
            .filter(|(key, _)| {
                let neighbors = routing_table.get_nearest_neighbors(key, replicas, Some(&own));
                let (Some(nearest), Some(farthest)) = (neighbors.first(), neighbors.last()) else {
                    return true;
                };
                let new_distance = key.xor_distance(&new_id);
                new_distance < key.xor_distance(&farthest.0)
                    && key.xor_distance(&own) < key.xor_distance(&nearest.0)
            })
            .map(|(key, stored)| StoreItem {
                key: *key,
                value: store_value(&stored.value),
                expiration_time: stored.expiration_time,
                in_cache: false,
            })
            .collect()
    }
}

impl Inner {
    /// The DHT id the routing table knows for `peer`.
    fn state_id_of(&self, peer: &PeerId) -> Option<DhtId> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .routing_table
            .get_id(peer)
    }
}
