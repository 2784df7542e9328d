//! hivemind's DHT messages (`hivemind/proto/dht.proto`, proto3, of hivemind 1.1.12, commit
//! 4bd43b77), written by hand with `prost` derives from the field numbers: the requests and
//! responses of `DHTProtocol.rpc_ping`, `rpc_store` and `rpc_find` on hivemind's wire
//! ([`servicer_runtime::WireMode::Hivemind`]). `tests/hivemind_vectors.rs` checks them byte for
//! byte against vectors captured from hivemind itself.
//!
//! [`HivemindDhtProtocol`](crate::HivemindDhtProtocol) serves them, translating to and from the
//! native messages ([`crate::messages`]).

use servicer_runtime::hivemind::proto::{RequestAuthInfo, ResponseAuthInfo};

/// `NodeInfo` (dht.proto): a DHT node's own id; empty in client mode.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct NodeInfo {
    /// `bytes node_id = 1`: the 20-byte `DHTID.to_bytes()` (random, not derived from the peer id).
    #[prost(bytes = "vec", tag = "1")]
    pub node_id: Vec<u8>,
}

/// `PingRequest` (dht.proto): the request of `DHTProtocol.rpc_ping`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct PingRequest {
    /// `RequestAuthInfo auth = 1`.
    #[prost(message, optional, tag = "1")]
    pub auth: Option<RequestAuthInfo>,
    /// `NodeInfo peer = 2`: the sender's own node info (absent or empty in client mode).
    #[prost(message, optional, tag = "2")]
    pub peer: Option<NodeInfo>,
    /// `bool validate = 3`: ask the recipient to ping back and report [`PingResponse::available`].
    #[prost(bool, tag = "3")]
    pub validate: bool,
}

/// `PingResponse` (dht.proto): the response of `DHTProtocol.rpc_ping`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct PingResponse {
    /// `ResponseAuthInfo auth = 1`.
    #[prost(message, optional, tag = "1")]
    pub auth: Option<ResponseAuthInfo>,
    /// `NodeInfo peer = 2`: the respondent's node info.
    #[prost(message, optional, tag = "2")]
    pub peer: Option<NodeInfo>,
    /// `double dht_time = 4`: the respondent's clock (seconds since the Unix epoch).
    #[prost(double, tag = "4")]
    pub dht_time: f64,
    /// `bool available = 5`: with `validate`, whether the respondent could ping the sender back.
    #[prost(bool, tag = "5")]
    pub available: bool,
}

/// `StoreRequest` (dht.proto): the request of `DHTProtocol.rpc_store`; five aligned lists.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct StoreRequest {
    /// `RequestAuthInfo auth = 1`.
    #[prost(message, optional, tag = "1")]
    pub auth: Option<RequestAuthInfo>,
    /// `repeated bytes keys = 2`: 20-byte key ids.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub keys: Vec<Vec<u8>>,
    /// `repeated bytes subkeys = 3`: msgpack subkeys; `c0` (msgpack `None`) for a regular value.
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub subkeys: Vec<Vec<u8>>,
    /// `repeated bytes values = 4`: msgpack values.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub values: Vec<Vec<u8>>,
    /// `repeated double expiration_time = 5` (packed).
    #[prost(double, repeated, tag = "5")]
    pub expiration_time: Vec<f64>,
    /// `repeated bool in_cache = 6` (packed).
    #[prost(bool, repeated, tag = "6")]
    pub in_cache: Vec<bool>,
    /// `NodeInfo peer = 7`: the sender's own node info.
    #[prost(message, optional, tag = "7")]
    pub peer: Option<NodeInfo>,
}

/// `StoreResponse` (dht.proto): the response of `DHTProtocol.rpc_store`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct StoreResponse {
    /// `ResponseAuthInfo auth = 1`.
    #[prost(message, optional, tag = "1")]
    pub auth: Option<ResponseAuthInfo>,
    /// `repeated bool store_ok = 2` (packed): one per stored key.
    #[prost(bool, repeated, tag = "2")]
    pub store_ok: Vec<bool>,
    /// `NodeInfo peer = 3`: the respondent's node info.
    #[prost(message, optional, tag = "3")]
    pub peer: Option<NodeInfo>,
}

/// `FindRequest` (dht.proto): the request of `DHTProtocol.rpc_find`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct FindRequest {
    /// `RequestAuthInfo auth = 1`.
    #[prost(message, optional, tag = "1")]
    pub auth: Option<RequestAuthInfo>,
    /// `repeated bytes keys = 2`: 20-byte key ids.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub keys: Vec<Vec<u8>>,
    /// `NodeInfo peer = 3`: the sender's own node info.
    #[prost(message, optional, tag = "3")]
    pub peer: Option<NodeInfo>,
}

/// `ResultType` (dht.proto): what [`FindResult::value`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum ResultType {
    /// `NOT_FOUND = 0`.
    NotFound = 0,
    /// `FOUND_REGULAR = 1`: a msgpack value.
    FoundRegular = 1,
    /// `FOUND_DICTIONARY = 2`: a msgpack `DictionaryDHTValue`.
    FoundDictionary = 2,
}

/// `FindResult` (dht.proto): the answer for one key of a [`FindRequest`].
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct FindResult {
    /// `ResultType type = 1`, as its raw number (unknown numbers survive a decode); read it with
    /// `FindResult::r#type()`.
    #[prost(enumeration = "ResultType", tag = "1")]
    pub r#type: i32,
    /// `bytes value = 2`.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    /// `double expiration_time = 3`.
    #[prost(double, tag = "3")]
    pub expiration_time: f64,
    /// `repeated bytes nearest_node_ids = 4`: aligned with `nearest_peer_ids`.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub nearest_node_ids: Vec<Vec<u8>>,
    /// `repeated bytes nearest_peer_ids = 5`: libp2p peer ids (multihash bytes).
    #[prost(bytes = "vec", repeated, tag = "5")]
    pub nearest_peer_ids: Vec<Vec<u8>>,
}

/// `FindResponse` (dht.proto): the response of `DHTProtocol.rpc_find`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct FindResponse {
    /// `ResponseAuthInfo auth = 1`.
    #[prost(message, optional, tag = "1")]
    pub auth: Option<ResponseAuthInfo>,
    /// `repeated FindResult results = 2`: one per requested key.
    #[prost(message, repeated, tag = "2")]
    pub results: Vec<FindResult>,
    /// `NodeInfo peer = 3`: the respondent's node info.
    #[prost(message, optional, tag = "3")]
    pub peer: Option<NodeInfo>,
}
