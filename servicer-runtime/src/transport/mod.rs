//! The libp2p side of a node: the RPC behaviour and its connection handler, which open outbound
//! streams and hand inbound ones to an [`Inbound`]; the translating muxer that lets hivemind's
//! protocol names through rust-libp2p's negotiation; peer lookup through Kademlia; the DNS
//! resolver's config; and the swarm they are built into. Nothing here knows the node: it talks to
//! it through events and the [`Inbound`] trait.

mod connection;
mod dial_error;
mod dns;
mod inbound;
mod ip_limits;
mod muxer;
mod routing;
mod rpc;
mod swarm;

pub(crate) use connection::StreamReply;
pub(crate) use dial_error::dial_failure;
pub(crate) use inbound::Inbound;
pub(crate) use routing::PeerRouting;
pub(crate) use rpc::{RpcBehaviour, RpcEvent};
pub(crate) use swarm::{Behaviour, BehaviourEvent, TransportConfig, build, listen};
