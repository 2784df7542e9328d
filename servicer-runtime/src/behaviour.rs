//! The RPC protocol as a libp2p `NetworkBehaviour` and `ConnectionHandler`.
//!
//! We write our own instead of using `libp2p-stream` because that crate drops inbound streams when
//! the acceptor lags, has no timeout on `open_stream` (rust-libp2p#6157) and sends every inbound
//! stream through the swarm task. Here each connection's handler spawns the serving task for an
//! inbound stream directly, outbound opens carry their own timeout, and dial failures answer every
//! waiting caller at once.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade, UpgradeInfo};
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::DialError;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, NotifyHandler, StreamUpgradeError, SubstreamProtocol, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::oneshot;

use crate::hivemind::muxer::PREFIX;
use crate::p2p::Shared;
use crate::{RpcError, WireMode, server};

/// The one protocol of the native wire; the handler name travels in each call's header.
pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/servicer/rpc/1.0.0");

/// At most this many addresses are remembered per peer.
const MAX_ADDRS_PER_PEER: usize = 8;

/// Where an opened outbound stream (or the reason it failed) is sent.
pub(crate) type StreamReply = oneshot::Sender<Result<(libp2p::Stream, ConnectionId), RpcError>>;

/// What [`RpcBehaviour`] asks of the swarm task.
#[derive(Debug)]
pub(crate) enum RpcEvent {
    /// Streams wait for `peer`, but no behaviour knows an address of it: look it up
    /// ([`crate::routing`], hivemind wire only), then call [`RpcBehaviour::route_found`] or
    /// [`RpcBehaviour::route_failed`].
    AddressesNeeded(PeerId),
}

pub(crate) struct RpcBehaviour {
    shared: Arc<Shared>,
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    connections: HashMap<PeerId, Vec<ConnectionId>>,
    waiting_for_connection: HashMap<PeerId, Vec<(StreamProtocol, StreamReply)>>,
    actions: VecDeque<ToSwarm<RpcEvent, OpenStream>>,
}

impl RpcBehaviour {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RpcBehaviour {
            shared,
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

    /// Opens a stream of `protocol` to `peer`, dialling it first if needed.
    pub(crate) fn open_stream(
        &mut self,
        peer: PeerId,
        protocol: StreamProtocol,
        reply: StreamReply,
    ) {
        if peer == self.shared.local_peer {
            let _ = reply.send(Err(RpcError::PeerUnreachable {
                peer,
                reason: "cannot call the local node over the network".into(),
            }));
            return;
        }
        if let Some(&connection) = self.connections.get(&peer).and_then(|c| c.last()) {
            self.actions.push_back(ToSwarm::NotifyHandler {
                peer_id: peer,
                handler: NotifyHandler::One(connection),
                event: OpenStream { protocol, reply },
            });
            return;
        }
        // On the hivemind wire, dial even without an address of our own: kad may know one
        // (its routing table answers the dial), and if not, the dial's `NoAddresses` failure
        // starts a lookup (see `on_swarm_event`).
        if !self.routes_unknown_peers() && self.addresses.get(&peer).is_none_or(|a| a.is_empty()) {
            let _ = reply.send(Err(RpcError::PeerUnreachable {
                peer,
                reason: NO_ADDRESS.into(),
            }));
            return;
        }
        let waiting = self.waiting_for_connection.entry(peer).or_default();
        waiting.retain(|(_, r)| !r.is_closed());
        waiting.push((protocol, reply));
        if waiting.len() == 1 {
            self.actions.push_back(ToSwarm::Dial {
                opts: DialOpts::peer_id(peer)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
            });
        }
    }

    /// Whether peers without a known address are looked up (kad runs on the hivemind wire only).
    fn routes_unknown_peers(&self) -> bool {
        self.shared.config.wire_mode == WireMode::Hivemind
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
        waiting.retain(|(_, r)| !r.is_closed());
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
        self.fail_waiting(peer, reason);
    }

    /// Fails every stream waiting for a connection to `peer`.
    fn fail_waiting(&mut self, peer: PeerId, reason: &str) {
        for (_, reply) in self
            .waiting_for_connection
            .remove(&peer)
            .unwrap_or_default()
        {
            let _ = reply.send(Err(RpcError::PeerUnreachable {
                peer,
                reason: reason.to_owned(),
            }));
        }
    }
}

/// Why a stream to a peer without a known address fails.
const NO_ADDRESS: &str = "no known address; connect to it or add its addresses first";

/// Why it fails on the hivemind wire, where the lookup in the DHT came first.
pub(crate) const NO_ADDRESS_FOUND: &str = "no known address, and a kad lookup (/ipfs/kad/1.0.0) did not find one; connect to it or add its addresses first";

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
        Ok(RpcHandler::new(self.shared.clone(), peer, connection_id))
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
        Ok(RpcHandler::new(self.shared.clone(), peer, connection_id))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                self.connections
                    .entry(e.peer_id)
                    .or_default()
                    .push(e.connection_id);
                for (protocol, reply) in self
                    .waiting_for_connection
                    .remove(&e.peer_id)
                    .unwrap_or_default()
                {
                    self.actions.push_back(ToSwarm::NotifyHandler {
                        peer_id: e.peer_id,
                        handler: NotifyHandler::One(e.connection_id),
                        event: OpenStream { protocol, reply },
                    });
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                self.shared
                    .pool
                    .purge_connection(&e.peer_id, e.connection_id);
                if let Some(connections) = self.connections.get_mut(&e.peer_id) {
                    connections.retain(|c| *c != e.connection_id);
                    if connections.is_empty() {
                        self.connections.remove(&e.peer_id);
                        self.shared.limits.forget(&e.peer_id);
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
                        if self.routes_unknown_peers()
                            && self.waiting_for_connection.contains_key(&peer) =>
                    {
                        self.actions
                            .push_back(ToSwarm::GenerateEvent(RpcEvent::AddressesNeeded(peer)));
                        return;
                    }
                    _ => {}
                }
                self.fail_waiting(peer, &e.error.to_string());
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

/// Asks a connection to open an outbound stream of `protocol`.
#[derive(Debug)]
pub(crate) struct OpenStream {
    protocol: StreamProtocol,
    reply: StreamReply,
}

/// The protocols of one side of a negotiation, handing the stream and the chosen name to the
/// handler. Names are `StreamProtocol`s: hivemind's names appear as `PREFIX ++ name`, which the
/// connection's [`TranslatingMuxer`](crate::hivemind::muxer::TranslatingMuxer) maps to and from
/// the bare name on the wire.
#[derive(Debug, Clone)]
pub(crate) struct Protocols {
    native: bool,
    others: Arc<Vec<StreamProtocol>>,
}

impl Protocols {
    fn one(protocol: StreamProtocol) -> Self {
        Protocols {
            native: false,
            others: Arc::new(vec![protocol]),
        }
    }
}

impl UpgradeInfo for Protocols {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        let mut all = Vec::with_capacity(self.others.len() + 1);
        if self.native {
            all.push(PROTOCOL);
        }
        all.extend(self.others.iter().cloned());
        all.into_iter()
    }
}

impl InboundUpgrade<libp2p::Stream> for Protocols {
    type Output = (libp2p::Stream, StreamProtocol);
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Output, Infallible>>;

    fn upgrade_inbound(self, stream: libp2p::Stream, info: StreamProtocol) -> Self::Future {
        std::future::ready(Ok((stream, info)))
    }
}

impl OutboundUpgrade<libp2p::Stream> for Protocols {
    type Output = (libp2p::Stream, StreamProtocol);
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Output, Infallible>>;

    fn upgrade_outbound(self, stream: libp2p::Stream, info: StreamProtocol) -> Self::Future {
        std::future::ready(Ok((stream, info)))
    }
}

/// One connection's side of the protocol.
pub(crate) struct RpcHandler {
    shared: Arc<Shared>,
    remote: PeerId,
    connection: ConnectionId,
    to_open: VecDeque<OpenStream>,
}

impl RpcHandler {
    fn new(shared: Arc<Shared>, remote: PeerId, connection: ConnectionId) -> Self {
        RpcHandler {
            shared,
            remote,
            connection,
            to_open: VecDeque::new(),
        }
    }
}

impl ConnectionHandler for RpcHandler {
    type FromBehaviour = OpenStream;
    type ToBehaviour = Infallible;
    type InboundProtocol = Protocols;
    type OutboundProtocol = Protocols;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = (StreamProtocol, StreamReply);

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, ()> {
        let others = match self.shared.config.wire_mode {
            WireMode::Native => Arc::default(),
            // Every hivemind-wire handler is its own protocol.
            WireMode::Hivemind => self.shared.registry.proto_protocols(),
        };
        let protocols = Protocols {
            native: true,
            others,
        };
        SubstreamProtocol::new(protocols, ()).with_timeout(self.shared.config.connect_timeout)
    }

    fn poll(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, (StreamProtocol, StreamReply), Infallible>,
    > {
        while let Some(OpenStream { protocol, reply }) = self.to_open.pop_front() {
            // The caller gave up (deadline, drop): don't open a stream nobody reads.
            if reply.is_closed() {
                continue;
            }
            let upgrade = Protocols::one(protocol.clone());
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(upgrade, (protocol, reply))
                    .with_timeout(self.shared.config.connect_timeout),
            });
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, open: OpenStream) {
        self.to_open.push_back(open);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            (),
            (StreamProtocol, StreamReply),
        >,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (stream, protocol),
                ..
            }) => {
                if self.shared.is_closed() {
                    return;
                }
                if protocol == PROTOCOL {
                    tokio::spawn(server::serve_stream(
                        stream,
                        self.remote,
                        self.shared.clone(),
                    ));
                } else if let Some(name) = protocol.as_ref().strip_prefix(PREFIX) {
                    tokio::spawn(crate::hivemind::server::serve(
                        stream,
                        name.to_owned(),
                        self.remote,
                        self.shared.clone(),
                    ));
                }
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: (stream, _),
                info: (_, reply),
            }) => {
                let _ = reply.send(Ok((stream, self.connection)));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError {
                info: (protocol, reply),
                error,
            }) => {
                let err = match error {
                    StreamUpgradeError::Timeout => {
                        RpcError::DeadlineExceeded(self.shared.config.connect_timeout)
                    }
                    StreamUpgradeError::NegotiationFailed => {
                        match protocol.as_ref().strip_prefix(PREFIX) {
                            Some(name) => RpcError::UnknownHandler {
                                name: name.to_owned(),
                            },
                            None => RpcError::PeerUnreachable {
                                peer: self.remote,
                                reason: format!("peer does not speak {protocol}"),
                            },
                        }
                    }
                    StreamUpgradeError::Io(e) => RpcError::ConnectionClosed(e.to_string()),
                    StreamUpgradeError::Apply(never) => match never {},
                };
                let _ = reply.send(Err(err));
            }
            _ => {}
        }
    }
}
