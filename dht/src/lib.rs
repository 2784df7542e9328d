//! A Kademlia DHT with hivemind's semantics, built on `#[servicer]` stubs.

pub mod error;
pub mod id;
pub mod traverse;

pub use error::DhtError;
pub use id::{DhtId, Key};
