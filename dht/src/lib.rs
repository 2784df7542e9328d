//! A Kademlia DHT with hivemind's semantics, built on `#[servicer]` stubs.
//!
//! [`DhtNode`] is the async API (hivemind's `DHTNode`): create it from a [`DhtConfig`], then
//! [`store`](DhtNode::store) and [`get`](DhtNode::get) values that expire, regular or
//! dictionaries of subkeys. [`Dht`] runs a node on its own thread for blocking code.
//! [`DhtProtocol`] is the RPC layer underneath (`rpc_ping`, `rpc_store`, `rpc_find` and the
//! calls that keep the routing table), configured by a [`ProtocolConfig`]; [`DhtStats`] is a
//! snapshot of what a node holds and has sent, and [`DhtMetrics`] the same figures for Prometheus.
//! Records go through [`RecordValidator`]s:
//! [`SignatureValidator`] for owned records, [`SchemaValidator`] for typed ones.
//!
//! A node speaks the wire of the P2P node it runs on: its own messages, or on a node in
//! `WireMode::Hivemind` the exact messages of hivemind 1.1.12 ([`HivemindDhtProtocol`]).
//!
//! Every public item has one path: the crate root, except two families of messages, each in
//! its own module:
//! - [`messages`]: the requests and responses of the native wire, for programs that talk to
//!   DHT nodes without being one (tools, tests that impersonate a peer);
//! - [`hivemind_proto`]: hivemind's protobuf messages of the same RPCs.
//!
//! # Features
//!
//! - `testing` (off by default): the `servicer_dht::testing` module, hooks into a node's state that tests
//!   and simulations use to set up situations (a node in the routing table that never
//!   answered, a value stored without a request). Programs have no use for it.

#![warn(missing_docs)]

mod addrs;
mod blacklist;
mod crypto;
mod error;
mod handle;
pub mod hivemind_proto;
mod hivemind_wire;
mod id;
mod limits;
pub mod messages;
mod metrics;
mod node;
mod protocol;
mod routing;
mod schema;
mod stats;
mod storage;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
mod traverse;
mod validation;
mod value;
mod wires;

pub use crypto::SignatureValidator;
pub use error::{BootstrapFailure, DhtError};
pub use handle::Dht;
pub use hivemind_wire::{HivemindDhtProtocol, HivemindDhtProtocolStub};
pub use id::{DhtId, Key};
pub use limits::{Limits, Rejection};
pub use metrics::DhtMetrics;
pub use node::{DhtConfig, DhtNode, DhtValue, StoreRequestItem, Validators};
pub use protocol::{DhtProtocol, DhtProtocolStub, FindOutcome, ProtocolConfig};
pub use schema::{BytesWithOwner, SchemaBuilder, SchemaValidator};
pub use stats::{DhtStats, LookupStats, RpcCounts, StoresRefused};
pub use storage::{DictionaryDhtValue, StoredValue};
pub use time::{DhtTime, ValueWithExpiration, get_dht_time};
pub use validation::{CompositeValidator, DhtRecord, REGULAR_SUBKEY, RecordValidator};
pub use value::{decode_value, encode_value};

/// A hash map of internal state. Its keys (peer ids, DHT ids) are often chosen by remote peers, so
/// the hasher is seeded per map; foldhash is several times faster than std's SipHash on the
/// 64-byte digest a `PeerId` hashes, and these maps are on the DHT's hot paths.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A hash set of internal state; see [`FastMap`].
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Locks a mutex, recovering it if a panicking thread poisoned it: every lock in this crate
/// guards plain data that stays consistent between statements.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
