//! Shared setup of the wire-level attacks: native frames written by hand, DHT node configs.

use crate::common::PATIENCE;

use p2p_servicer::dht::messages::{AddrList, NodeInfo};
use p2p_servicer::dht::{DhtConfig, DhtNode};
use p2p_servicer::runtime::native::codec;
use p2p_servicer::runtime::native::frame::{CallHeader, FrameKind};
use p2p_servicer::runtime::{Multiaddr, P2PConfig, RpcKind, WireMode};

/// A native frame: `kind | u32 length | payload`.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The native call header of a unary call to `name`.
pub fn unary_call_header(name: &str) -> Vec<u8> {
    let header = CallHeader {
        name: name.to_owned(),
        kind: RpcKind::UnaryUnary,
    };
    frame(FrameKind::Call as u8, &codec::encode(&header).unwrap())
}

/// A native-wire DHT node on `p2p`, bootstrapping from `initial`.
pub fn native_dht(p2p: P2PConfig, initial: Vec<Multiaddr>) -> DhtConfig {
    DhtConfig::default()
        .with_p2p(p2p)
        .with_wait_timeout(PATIENCE)
        .with_initial_peers(initial)
}

/// A hivemind-wire DHT node, bootstrapping from `initial`.
pub fn hivemind_dht(initial: Vec<Multiaddr>) -> DhtConfig {
    DhtConfig::default()
        .with_bucket_size(5)
        .with_num_replicas(3)
        .with_wait_timeout(PATIENCE)
        .with_p2p(P2PConfig::default().with_wire_mode(WireMode::Hivemind))
        .with_initial_peers(initial)
}

/// `node` as the sender of a request.
pub fn sender(node: &DhtNode) -> NodeInfo {
    NodeInfo {
        node_id: Some(node.node_id()),
        addrs: AddrList::from_multiaddrs(&node.p2p().visible_maddrs()),
    }
}

/// `addr` without its `/p2p/<peer id>` suffix.
pub fn without_p2p(mut addr: Multiaddr) -> Multiaddr {
    if matches!(
        addr.iter().last(),
        Some(libp2p::multiaddr::Protocol::P2p(_))
    ) {
        addr.pop();
    }
    addr
}
