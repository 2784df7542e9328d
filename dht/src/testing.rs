//! Hooks into a node's state for tests and simulations, with the `testing` feature: they set up
//! situations the network would take long to produce (a node in the routing table that never
//! pinged, a value stored without a store request). Programs have no use for them.

use servicer_runtime::PeerId;

use crate::id::DhtId;
use crate::limits::Rejection;
use crate::messages::StoreItem;
use crate::protocol::{Contact, DhtProtocol};

/// Records that `peer`, with DHT id `node_id` (`None`: a client-mode node), answered a request
/// (`responded`) or failed one, exactly as an RPC outcome would: a new node gets the stored
/// values it should replicate, a full bucket pings its stalest node, a node that failed is
/// removed.
pub fn update_routing_table(
    protocol: &DhtProtocol,
    node_id: Option<DhtId>,
    peer: PeerId,
    responded: bool,
) {
    let contact = if responded {
        Contact::Answered
    } else {
        Contact::Failed
    };
    protocol.update_routing_table(node_id, peer, contact);
}

/// Stores items on `protocol`'s own node, through the checks of a store request (limits,
/// validators, newest wins) but without a sender's quota: what the node does with its own
/// replica. A result per item.
pub fn store_locally(protocol: &DhtProtocol, items: Vec<StoreItem>) -> Vec<Result<(), Rejection>> {
    protocol.apply_store(None, items)
}

/// The peer the routing table holds for the DHT id `node_id` (as an active node or a
/// replacement).
pub fn peer_of_node(protocol: &DhtProtocol, node_id: &DhtId) -> Option<PeerId> {
    protocol.state().routing_table.get_peer(node_id)
}
