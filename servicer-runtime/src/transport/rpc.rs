//! [`RpcBehaviour`]: the runtime's `NetworkBehaviour`. It remembers peers' addresses, opens
//! outbound streams on a connection to the peer (dialling it first when needed), and gives every
//! connection a handler that passes inbound streams to the [`Inbound`].
//!
//! We write our own instead of using `libp2p-stream` because that crate drops inbound streams when
//! the acceptor lags, has no timeout on `open_stream` (rust-libp2p#6157) and sends every inbound
//! stream through the swarm task. Here each connection's handler hands an inbound stream to the
//! server directly, outbound opens carry their own timeout, and dial failures answer every waiting
//! caller at once.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, DialError, FromSwarm, NetworkBehaviour, NotifyHandler,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{PeerId, StreamProtocol};

use super::Inbound;
use super::connection::{OpenStream, RpcHandler, StreamReply};
use super::dial_failure;
use crate::{RpcError, Unreachable};

/// At most this many addresses are remembered per peer.
const MAX_ADDRS_PER_PEER: usize = 8;

/// At most this many peers' addresses are remembered (they come from others' messages); past
/// it, only connected peers' are kept.
const MAX_ADDRESS_BOOK_PEERS: usize = 16_384;

/// What [`RpcBehaviour`] asks of the swarm task.
#[derive(Debug)]
pub(crate) enum RpcEvent {
    /// Streams wait for `peer`, but no behaviour knows an address of it: look it up
    /// ([`super::PeerRouting`]), then call [`RpcBehaviour::route_found`] or
    /// [`RpcBehaviour::route_failed`].
    AddressesNeeded(PeerId),
}

/// Why a stream to a peer without a known address fails.
const NO_ADDRESS: &str = "no known address; connect to it or add its addresses first";

/// Why it fails when a lookup in Kademlia came first.
pub(crate) const NO_ADDRESS_FOUND: &str = "no known address, and a kad lookup (/ipfs/kad/1.0.0) did not find one; connect to it or add its addresses first";

pub(crate) struct RpcBehaviour {
    local_peer: PeerId,
    inbound: Arc<dyn Inbound>,
    /// How long negotiating a stream may take.
    negotiation_timeout: Duration,
    /// Whether peers without a known address are looked up (see [`RpcEvent::AddressesNeeded`]).
    looks_up_peers: bool,
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    connections: HashMap<PeerId, Vec<ConnectionId>>,
    waiting_for_connection: HashMap<PeerId, Vec<OpenStream>>,
    actions: VecDeque<ToSwarm<RpcEvent, OpenStream>>,
}

impl RpcBehaviour {
    pub(crate) fn new(
        local_peer: PeerId,
        inbound: Arc<dyn Inbound>,
        negotiation_timeout: Duration,
        looks_up_peers: bool,
    ) -> Self {
        RpcBehaviour {
            local_peer,
            inbound,
            negotiation_timeout,
            looks_up_peers,
            addresses: HashMap::new(),
            connections: HashMap::new(),
            waiting_for_connection: HashMap::new(),
            actions: VecDeque::new(),
        }
    }

    /// Remembers addresses of `peer` (without a `/p2p/` suffix) for later dials.
    pub(crate) fn add_addresses(
        &mut self,
        peer: PeerId,
        addrs: impl IntoIterator<Item = Multiaddr>,
    ) {
        if !self.addresses.contains_key(&peer) && self.addresses.len() >= MAX_ADDRESS_BOOK_PEERS {
            // Addresses fed by others' messages: keep those of connected peers, then make room.
            let connections = &self.connections;
            self.addresses
                .retain(|peer, _| connections.contains_key(peer));
            if self.addresses.len() >= MAX_ADDRESS_BOOK_PEERS {
                return;
            }
        }
        let known = self.addresses.entry(peer).or_default();
        for addr in addrs {
            let addr = without_p2p(addr);
            if !known.contains(&addr) {
                if known.len() == MAX_ADDRS_PER_PEER {
                    known.remove(0);
                }
                known.push(addr);
            }
        }
    }

    /// The remembered addresses of `peer`.
    pub(crate) fn addresses_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.addresses.get(peer).cloned().unwrap_or_default()
    }

    pub(crate) fn is_connected(&self, peer: &PeerId) -> bool {
        self.connections.contains_key(peer)
    }

    /// Opens a stream of `protocol` to `peer`, dialling it first if needed; `refused` is the
    /// error the caller gets if the peer does not support `protocol`.
    pub(crate) fn open_stream(
        &mut self,
        peer: PeerId,
        protocol: StreamProtocol,
        refused: RpcError,
        reply: StreamReply,
    ) {
        if peer == self.local_peer {
            let _ = reply.send(Err(RpcError::PeerUnreachable {
                peer,
                cause: Unreachable::LocalPeer,
                reason: "cannot call the local node over the network".into(),
            }));
            return;
        }
        let open = OpenStream {
            protocol,
            refused,
            reply,
        };
        if let Some(&connection) = self.connections.get(&peer).and_then(|c| c.last()) {
            self.actions.push_back(ToSwarm::NotifyHandler {
                peer_id: peer,
                handler: NotifyHandler::One(connection),
                event: open,
            });
            return;
        }
        // With peer lookups, dial even without an address of our own: kad may know one (its
        // routing table answers the dial), and if not, the dial's `NoAddresses` failure starts a
        // lookup (see `on_swarm_event`).
        if !self.looks_up_peers && self.addresses.get(&peer).is_none_or(|a| a.is_empty()) {
            let _ = open.reply.send(Err(RpcError::PeerUnreachable {
                peer,
                cause: Unreachable::NoAddress,
                reason: NO_ADDRESS.into(),
            }));
            return;
        }
        let waiting = self.waiting_for_connection.entry(peer).or_default();
        waiting.retain(|o| !o.reply.is_closed());
        waiting.push(open);
        if waiting.len() == 1 {
            self.actions.push_back(ToSwarm::Dial {
                opts: DialOpts::peer_id(peer)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
            });
        }
    }

    /// A lookup found `addrs` for `peer`: remember them and dial it again for the streams that
    /// still wait (no addresses: the same as [`route_failed`](Self::route_failed)).
    pub(crate) fn route_found(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if addrs.is_empty() {
            self.route_failed(peer, NO_ADDRESS_FOUND);
            return;
        }
        self.add_addresses(peer, addrs);
        if self.is_connected(&peer) {
            return;
        }
        let Some(waiting) = self.waiting_for_connection.get_mut(&peer) else {
            return;
        };
        waiting.retain(|o| !o.reply.is_closed());
        if waiting.is_empty() {
            self.waiting_for_connection.remove(&peer);
            return;
        }
        self.actions.push_back(ToSwarm::Dial {
            opts: DialOpts::peer_id(peer)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build(),
        });
    }

    /// A lookup of `peer` failed: the streams waiting for it fail as unreachable.
    pub(crate) fn route_failed(&mut self, peer: PeerId, reason: &str) {
        if self.is_connected(&peer) {
            return;
        }
        self.fail_waiting(peer, Unreachable::NoAddress, reason);
    }

    /// Fails every stream waiting for a connection to `peer`.
    fn fail_waiting(&mut self, peer: PeerId, cause: Unreachable, reason: &str) {
        for open in self
            .waiting_for_connection
            .remove(&peer)
            .unwrap_or_default()
        {
            let _ = open.reply.send(Err(RpcError::PeerUnreachable {
                peer,
                cause,
                reason: reason.to_owned(),
            }));
        }
    }

    fn handler(&self, peer: PeerId, connection: ConnectionId) -> RpcHandler {
        RpcHandler::new(
            self.inbound.clone(),
            peer,
            connection,
            self.negotiation_timeout,
        )
    }
}

/// `addr` without its `/p2p/<peer id>` suffix, if it has one.
pub(crate) fn without_p2p(mut addr: Multiaddr) -> Multiaddr {
    if let Some(libp2p::multiaddr::Protocol::P2p(_)) = addr.iter().last() {
        addr.pop();
    }
    addr
}

impl NetworkBehaviour for RpcBehaviour {
    type ConnectionHandler = RpcHandler;
    type ToSwarm = RpcEvent;

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer, connection_id))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        _addresses: &[Multiaddr],
        _effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        Ok(maybe_peer
            .and_then(|peer| self.addresses.get(&peer).cloned())
            .unwrap_or_default())
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.add_addresses(peer, [addr.clone()]);
        Ok(self.handler(peer, connection_id))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                self.connections
                    .entry(e.peer_id)
                    .or_default()
                    .push(e.connection_id);
                for open in self
                    .waiting_for_connection
                    .remove(&e.peer_id)
                    .unwrap_or_default()
                {
                    self.actions.push_back(ToSwarm::NotifyHandler {
                        peer_id: e.peer_id,
                        handler: NotifyHandler::One(e.connection_id),
                        event: open,
                    });
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(connections) = self.connections.get_mut(&e.peer_id) {
                    connections.retain(|c| *c != e.connection_id);
                    if connections.is_empty() {
                        self.connections.remove(&e.peer_id);
                    }
                }
            }
            FromSwarm::DialFailure(e) => {
                let Some(peer) = e.peer_id else { return };
                if self.is_connected(&peer) {
                    return;
                }
                match e.error {
                    // Another dial of the peer is under way (ours or kad's); its outcome
                    // answers the waiting streams.
                    DialError::DialPeerConditionFalse(_) => return,
                    DialError::NoAddresses
                        if self.looks_up_peers
                            && self.waiting_for_connection.contains_key(&peer) =>
                    {
                        self.actions
                            .push_back(ToSwarm::GenerateEvent(RpcEvent::AddressesNeeded(peer)));
                        return;
                    }
                    _ => {}
                }
                let (cause, reason) = dial_failure(e.error);
                self.fail_waiting(peer, cause, &reason);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<ToSwarm<RpcEvent, THandlerInEvent<Self>>> {
        match self.actions.pop_front() {
            Some(action) => Poll::Ready(action),
            None => Poll::Pending,
        }
    }
}
