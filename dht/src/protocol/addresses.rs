//! Where DHT nodes listen: the addresses their messages carry, recorded so that find answers can
//! hand them out without a trip to the swarm task, and this node's own addresses for its
//! outgoing messages.

use std::sync::{Mutex, MutexGuard};

use servicer_runtime::{Multiaddr, PeerId};

use super::DhtProtocol;
use crate::FastMap;
use crate::addrs::AddrList;
use crate::messages::NodeInfo;

/// At most this many addresses of one node are taken from a message.
const MAX_ADDRS_PER_NODE: usize = 8;

/// Past this many recorded nodes, the records of nodes not in the routing table are dropped.
const MAX_KNOWN_ADDRS: usize = 4096;

/// The addresses of other nodes and of this one.
#[derive(Default)]
pub(super) struct AddressBook {
    /// Where DHT nodes said they listen.
    known: Mutex<FastMap<PeerId, AddrList>>,
    /// This node's visible addresses, and their `AddrList` for outgoing messages.
    own: Mutex<(Vec<Multiaddr>, AddrList)>,
}

impl AddressBook {
    /// Where DHT nodes said they listen, locked.
    pub(super) fn known(&self) -> MutexGuard<'_, FastMap<PeerId, AddrList>> {
        crate::lock(&self.known)
    }
}

impl DhtProtocol {
    /// This node's visible addresses, re-encoded only when they change.
    pub(super) fn own_addrs(&self) -> AddrList {
        let visible = self.inner.p2p.visible_maddrs();
        let mut own = crate::lock(&self.inner.addrs.own);
        if own.0 != visible {
            own.1 = AddrList::from_multiaddrs(&visible);
            own.0 = visible;
        }
        own.1.clone()
    }

    /// Remembers where a DHT node that contacted us listens (client-mode senders are skipped:
    /// they are never handed out).
    pub(super) async fn remember_addresses(&self, peer: PeerId, sender: &NodeInfo) {
        if sender.node_id.is_none() || sender.addrs.is_empty() {
            return;
        }
        let learned = self.learn_addresses(vec![(peer, sender.addrs.clone())]);
        if !learned.is_empty() {
            let _ = self.inner.p2p.add_addresses(learned).await;
        }
    }

    /// Records addresses of DHT nodes; returns the ones that are new, parsed, for the P2P node.
    /// The record answers find requests without a trip to the swarm task.
    pub(super) fn learn_addresses(
        &self,
        peers: Vec<(PeerId, AddrList)>,
    ) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut known = self.inner.addrs.known();
        let mut new = Vec::new();
        for (peer, addrs) in peers {
            let addrs = addrs.truncated(MAX_ADDRS_PER_NODE);
            if addrs.is_empty() || known.get(&peer) == Some(&addrs) {
                continue;
            }
            new.push((peer, addrs.to_multiaddrs()));
            known.insert(peer, addrs);
        }
        // Keep the record to about the nodes the routing table can hold.
        if known.len() > MAX_KNOWN_ADDRS {
            let state = self.state();
            known.retain(|peer, _| state.routing_table.get_id(peer).is_some());
        }
        new
    }
}

impl DhtProtocol {
    /// The nodes of the routing table with where they listen (recorded from their messages, or
    /// else what the swarm knows), for a node that saves its table. Nodes without any address are
    /// left out.
    pub(crate) async fn routing_table_addresses(&self) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let peers: Vec<PeerId> = {
            let state = self.state();
            state.routing_table.nodes().map(|(_, peer)| *peer).collect()
        };
        let mut found = Vec::with_capacity(peers.len());
        let mut unknown = Vec::new();
        {
            let known = self.inner.addrs.known();
            for peer in peers {
                match known.get(&peer) {
                    Some(addrs) if !addrs.is_empty() => found.push((peer, addrs.to_multiaddrs())),
                    _ => unknown.push(peer),
                }
            }
        }
        if !unknown.is_empty()
            && let Ok(addrs) = self.inner.p2p.addresses_of(unknown.clone()).await
        {
            found.extend(
                unknown
                    .into_iter()
                    .zip(addrs)
                    .filter(|(_, addrs)| !addrs.is_empty()),
            );
        }
        found
    }
}
