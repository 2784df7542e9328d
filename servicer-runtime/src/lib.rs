//! The runtime behind `#[servicer]`: a peer-to-peer node on rust-libp2p and tokio, the wires it
//! speaks, the handler registry and the stub base that generated stubs wrap.
//!
//! - [`P2P`]: the node (a cloneable handle to the task that owns the libp2p swarm), created from a
//!   [`P2PConfig`]. TCP, QUIC and an in-memory transport (`/memory/N`), noise, yamux, identify, ping.
//! - [`Handler`]: an async function of one of the four [`RpcKind`]s, registered by name on a node;
//!   [`Interceptor`]s see every call first.
//! - [`StubBase`]: calls a remote peer's handlers; [`ResponseStream`] and [`RequestStream`] carry
//!   streams of messages.
//! - [`RpcError`]: the one error type; [`RpcContext`]: what a handler knows about its caller.
//! - [`Wire`]: how calls look on the network. [`Native`], this project's wire (every call on a
//!   reused stream of `/servicer/rpc/1.0.0`, serde messages, see [`native`]), and [`Hivemind`],
//!   hivemind 1.1.12's (protobuf messages, see [`hivemind`]), which a node speaks when created
//!   with [`WireMode::Hivemind`]. `Handler` and `StubBase` are generic over the wire, so the four
//!   kinds of call read the same on both.
//!
//! `docs/architecture.md` in the repository draws the layers of this crate and follows one call
//! through them.

#![warn(missing_docs)]

mod config;
mod error;
mod memory;
mod metrics;
mod model;
mod node;
mod serve;
mod slots;
mod stub;
mod transport;
mod wire;

pub use config::{DEFAULT_MAX_MESSAGE_SIZE, P2PConfig, WireMode};
pub use error::{RpcError, Unreachable};
pub use libp2p::identity::{Keypair, PublicKey};
pub use libp2p::{Multiaddr, PeerId, Stream};
pub use metrics::Metrics;
pub use model::{
    Interceptor, RequestStream, ResponseSender, ResponseStream, RpcContext, RpcKind, handle_name,
};
pub use node::{P2P, Reachability, load_or_create_identity, multiaddr_peer_id};
/// The `prometheus-client` the node's [`Metrics`] are made with: register them in its `Registry`.
pub use prometheus_client;
pub use serve::Handler;
pub use stub::StubBase;
pub use wire::{Hivemind, Message, Native, Wire};

pub(crate) use model::HandlePrefix;

/// The native wire's format: frames and the message codec, for tools that speak the wire by
/// hand, adversarial tests and fuzzing. Stubs and handlers are the way to make and serve calls.
pub mod native {
    pub use crate::wire::native::{PROTOCOL, codec, frame};
}

/// hivemind 1.1.12's wire format: its protobuf messages, unary envelopes, stream frames and
/// protocol negotiation, for tools and tests that speak it by hand.
pub mod hivemind {
    pub use crate::wire::hivemind::{HivemindWireError, frames, negotiate, proto, unary};
}

/// A hash map of per-call state (keyed by peer ids and handler names, which remote peers
/// choose): seeded per map, and several times faster than std's SipHash on a `PeerId`'s digest.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Re-exports for code that `#[servicer]` emits; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use futures::Stream;
}
