#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

/// The DHT: ids, routing, storage and the `DhtProtocol` servicer.
pub use servicer_dht as dht;
/// The P2P node, wire format, handler registry and stub base.
pub use servicer_runtime as runtime;

/// Makes a servicer of an impl block of `async fn rpc_*` handlers; see the crate docs.
pub use servicer_macros::servicer;
