//! placeholder during bring-up
pub use libp2p::{Multiaddr, PeerId};
