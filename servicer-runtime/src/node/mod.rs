//! The node: [`P2P`], the handle programs hold, and what it is built from: the swarm task, the
//! outbound side that stubs call through, and the one place where the wire mode decides anything.

mod identity;
mod inbound;
mod limits;
mod outbound;
mod p2p;
mod reachability;
mod shared;
mod task;
mod wiring;

pub use identity::load_or_create_identity;
pub(crate) use outbound::Outbound;
pub use p2p::{P2P, multiaddr_peer_id};
pub use reachability::Reachability;
