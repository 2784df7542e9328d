//! The DHT's messages on the native wire: the requests and responses of `rpc_ping`, `rpc_store`
//! and `rpc_find`, encoded by the runtime's codec. A program that speaks to DHT nodes without
//! being one (a tool, a test impersonating a peer) builds these.
//!
//! hivemind's wire carries the same information in its own protobuf messages
//! ([`crate::hivemind_proto`]); the node translates at that edge and keeps these inside.

use serde::{Deserialize, Serialize};
use servicer_runtime::PeerId;

use crate::id::DhtId;
use crate::limits::Rejection;
use crate::storage::{DictionaryDhtValue, StoredValue};
use crate::time::{DhtTime, ValueWithExpiration};

pub use crate::addrs::AddrList;

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

impl StoreValue {
    /// How many records it writes: one, or one per dictionary entry.
    pub(crate) fn records(&self) -> usize {
        match self {
            StoreValue::Regular(_) | StoreValue::Subkey { .. } => 1,
            StoreValue::Dictionary(entries) => entries.len(),
        }
    }

    /// What to send to store a value as this node holds it.
    pub(crate) fn from_stored(value: &StoredValue) -> StoreValue {
        match value {
            StoredValue::Regular(v) => StoreValue::Regular(v.clone()),
            StoredValue::Dictionary(d) => StoreValue::Dictionary(DictEntry::all_of(d)),
        }
    }
}

impl FoundValue {
    /// What to answer for a key that holds `stored`, copying each byte once.
    pub(crate) fn of(stored: &ValueWithExpiration<StoredValue>) -> FoundValue {
        match &stored.value {
            StoredValue::Regular(value) => FoundValue::Regular {
                value: value.clone(),
                expiration_time: stored.expiration_time,
            },
            StoredValue::Dictionary(dict) => FoundValue::Dictionary {
                entries: DictEntry::all_of(dict),
                expiration_time: stored.expiration_time,
            },
        }
    }
}

impl DictEntry {
    /// A dictionary's subkeys as they go on the wire (expired ones included: the receiver drops
    /// them).
    pub(crate) fn all_of(dict: &DictionaryDhtValue) -> Vec<DictEntry> {
        dict.entries()
            .map(|(subkey, v)| DictEntry {
                subkey: subkey.clone(),
                value: v.value.clone(),
                expiration_time: v.expiration_time,
            })
            .collect()
    }

    /// The dictionary these entries make, with its own expiration, entries kept as they are.
    pub(crate) fn dictionary(
        entries: Vec<DictEntry>,
        expiration_time: DhtTime,
    ) -> DictionaryDhtValue {
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
}
