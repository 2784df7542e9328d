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
use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::core::{Endpoint, Multiaddr};
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

use crate::p2p::Shared;
use crate::{RpcError, server};

/// The one protocol of the native wire; the handler name travels in each call's header.
pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/servicer/rpc/1.0.0");

/// At most this many addresses are remembered per peer.
const MAX_ADDRS_PER_PEER: usize = 8;

/// Where an opened outbound stream (or the reason it failed) is sent.
pub(crate) type StreamReply = oneshot::Sender<Result<(libp2p::Stream, ConnectionId), RpcError>>;

pub(crate) struct RpcBehaviour {
    shared: Arc<Shared>,
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    connections: HashMap<PeerId, Vec<ConnectionId>>,
    waiting_for_connection: HashMap<PeerId, Vec<StreamReply>>,
    actions: VecDeque<ToSwarm<Infallible, OpenStream>>,
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

    /// Opens a stream to `peer`, dialling it first if needed.
    pub(crate) fn open_stream(&mut self, peer: PeerId, reply: StreamReply) {
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
                event: OpenStream(reply),
            });
            return;
        }
        if self.addresses.get(&peer).is_none_or(|a| a.is_empty()) {
            let _ = reply.send(Err(RpcError::PeerUnreachable {
                peer,
                reason: "no known address; connect to it or add its addresses first".into(),
            }));
            return;
        }
        let waiting = self.waiting_for_connection.entry(peer).or_default();
        waiting.retain(|r| !r.is_closed());
        waiting.push(reply);
        if waiting.len() == 1 {
            self.actions.push_back(ToSwarm::Dial {
                opts: DialOpts::peer_id(peer)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
            });
        }
    }
}

fn without_p2p(mut addr: Multiaddr) -> Multiaddr {
    if let Some(libp2p::multiaddr::Protocol::P2p(_)) = addr.iter().last() {
        addr.pop();
    }
    addr
}

impl NetworkBehaviour for RpcBehaviour {
    type ConnectionHandler = RpcHandler;
    type ToSwarm = Infallible;

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
                for reply in self
                    .waiting_for_connection
                    .remove(&e.peer_id)
                    .unwrap_or_default()
                {
                    self.actions.push_back(ToSwarm::NotifyHandler {
                        peer_id: e.peer_id,
                        handler: NotifyHandler::One(e.connection_id),
                        event: OpenStream(reply),
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
                let reason = e.error.to_string();
                for reply in self
                    .waiting_for_connection
                    .remove(&peer)
                    .unwrap_or_default()
                {
                    let _ = reply.send(Err(RpcError::PeerUnreachable {
                        peer,
                        reason: reason.clone(),
                    }));
                }
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

    fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        match self.actions.pop_front() {
            Some(action) => Poll::Ready(action),
            None => Poll::Pending,
        }
    }
}

/// Asks a connection to open an outbound stream.
#[derive(Debug)]
pub(crate) struct OpenStream(StreamReply);

/// One connection's side of the protocol.
pub(crate) struct RpcHandler {
    shared: Arc<Shared>,
    remote: PeerId,
    connection: ConnectionId,
    to_open: VecDeque<StreamReply>,
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
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = StreamReply;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, ()> {
        SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL), ())
            .with_timeout(self.shared.config.connect_timeout)
    }

    fn poll(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, StreamReply, Infallible>> {
        while let Some(reply) = self.to_open.pop_front() {
            // The caller gave up (deadline, drop): don't open a stream nobody reads.
            if reply.is_closed() {
                continue;
            }
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL), reply)
                    .with_timeout(self.shared.config.connect_timeout),
            });
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, OpenStream(reply): OpenStream) {
        self.to_open.push_back(reply);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol, (), StreamReply>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: stream,
                ..
            }) => {
                if self.shared.is_closed() {
                    return;
                }
                tokio::spawn(server::serve_stream(
                    stream,
                    self.remote,
                    self.shared.clone(),
                ));
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: stream,
                info: reply,
            }) => {
                let _ = reply.send(Ok((stream, self.connection)));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: reply, error }) => {
                let err = match error {
                    StreamUpgradeError::Timeout => {
                        RpcError::DeadlineExceeded(self.shared.config.connect_timeout)
                    }
                    StreamUpgradeError::NegotiationFailed => RpcError::PeerUnreachable {
                        peer: self.remote,
                        reason: format!("peer does not speak {PROTOCOL}"),
                    },
                    StreamUpgradeError::Io(e) => RpcError::ConnectionClosed(e.to_string()),
                    StreamUpgradeError::Apply(never) => match never {},
                };
                let _ = reply.send(Err(err));
            }
            _ => {}
        }
    }
}
