//! A Kademlia DHT with hivemind's semantics, built on `#[servicer]` stubs.

#![warn(missing_docs)]

pub mod addrs;
pub mod blacklist;
pub mod crypto;
pub mod error;
pub mod handle;
pub mod hivemind_proto;
pub mod hivemind_wire;
pub mod id;
pub mod limits;
pub mod messages;
pub mod node;
pub mod protocol;
pub mod routing;
pub mod schema;
pub mod stats;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod traverse;
pub mod validation;
pub mod value;
mod wires;

pub use addrs::AddrList;
pub use crypto::SignatureValidator;
pub use error::DhtError;
pub use handle::Dht;
pub use hivemind_wire::{HivemindDhtProtocol, HivemindDhtProtocolStub};
pub use id::{DhtId, Key};
pub use limits::{Limits, Rejection};
pub use node::{DhtConfig, DhtNode, DhtValue, StoreRequestItem, Validators};
pub use protocol::{DhtProtocol, DhtProtocolStub, FindOutcome, ProtocolConfig};
pub use routing::{KBucket, RoutingTable};
pub use schema::{BytesWithOwner, SchemaValidator};
pub use serde_bytes;
pub use stats::{DhtStats, LookupStats, RpcCounts};
pub use storage::{DhtLocalStorage, DictionaryDhtValue, StoredValue, TimedStorage};
pub use time::{DhtTime, ValueWithExpiration, get_dht_time};
pub use validation::{CompositeValidator, DhtRecord, REGULAR_SUBKEY, RecordValidator};
pub use value::{decode_value, encode_value};

/// A hash map of internal state. Its keys (peer ids, DHT ids) are often chosen by remote peers, so
/// the hasher is seeded per map; foldhash is several times faster than std's SipHash on the
/// 64-byte digest a `PeerId` hashes, which showed in profiles of the DHT benchmark.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A hash set of internal state; see [`FastMap`].
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Locks a mutex, recovering it if a panicking thread poisoned it: every lock in this crate
/// guards plain data that stays consistent between statements.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
