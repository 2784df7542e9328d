//! The runtime behind `#[servicer]`: a peer-to-peer node on rust-libp2p and tokio, its RPC wire
//! format, the handler registry and the stub base that generated stubs wrap.
//!
//! - [`P2P`]: the node (a cloneable handle to the task that owns the libp2p swarm), created from a
//!   [`P2PConfig`]. TCP, QUIC and an in-memory transport (`/memory/N`), noise, yamux, identify, ping.
//! - [`Handler`]: an async function of one of the four [`RpcKind`]s, registered by name on a node;
//!   [`Interceptor`]s see every call first.
//! - [`StubBase`]: calls a remote peer's handlers; [`ResponseStream`] and [`RequestStream`] carry
//!   streams of messages.
//! - [`RpcError`]: the one error type; [`RpcContext`]: what a handler knows about its caller.
//!
//! Wire: every call runs on a libp2p stream of the protocol `/servicer/rpc/1.0.0` as frames
//! `kind | u32 length | payload` (see the `frame` module): a call header, messages, and an end or an
//! error frame. Streams of finished calls are kept and reused, so a call costs one round trip and
//! no protocol negotiation.
//!
//! [`WireMode::Hivemind`] adds hivemind 1.1.12's wire (see [`hivemind`]): protocol names without a
//! leading `/`, protobuf messages, handlers made with `Handler::proto_*` and called with
//! `StubBase::proto_*`.

#![warn(missing_docs)]

mod behaviour;
pub mod codec;
mod config;
mod context;
mod error;
pub mod frame;
mod handler;
pub mod hivemind;
mod identity;
mod limits;
mod p2p;
mod pool;
mod routing;
mod server;
mod stream;
mod stream_io;
mod stub;
mod swarm;

pub use config::{DEFAULT_MAX_MESSAGE_SIZE, P2PConfig, WireMode};
pub use context::RpcContext;
pub use error::RpcError;
pub use handler::{Handler, Interceptor, Message, ProtoMessage, RpcKind, handle_name};
pub use identity::load_or_create_identity;
pub use libp2p::identity::{Keypair, PublicKey};
pub use libp2p::{Multiaddr, PeerId, Stream};
pub use p2p::{P2P, multiaddr_peer_id};
pub use stream::{RequestStream, ResponseSender, ResponseStream};
pub use stub::StubBase;

/// A hash map of per-call state (keyed by peer ids and handler names, which remote peers
/// choose): seeded per map, and several times faster than std's SipHash on a `PeerId`'s digest.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Re-exports for code that `#[servicer]` emits; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use futures::Stream;
}
