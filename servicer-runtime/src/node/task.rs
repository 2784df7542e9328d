//! The swarm task: the one task that owns a node's libp2p swarm. [`P2P`](super::P2P) handles talk
//! to it through [`Command`]s; it answers them and the swarm's events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::metrics::Recorder;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify};
use tokio::sync::{mpsc, oneshot};

use super::shared::Shared;
use crate::RpcError;
use crate::transport::{
    Behaviour, BehaviourEvent, PeerRouting, RpcEvent, StreamReply, dial_failure,
};

/// How often idle pooled streams are swept.
const SWEEP_PERIOD: Duration = Duration::from_secs(5);

/// Requests from [`P2P`](super::P2P) handles to the swarm task.
pub(crate) enum Command {
    OpenStream {
        peer: PeerId,
        protocol: StreamProtocol,
        refused: RpcError,
        reply: StreamReply,
    },
    Connect {
        peer: PeerId,
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), RpcError>>,
    },
    AddAddresses {
        peers: Vec<(PeerId, Vec<Multiaddr>)>,
    },
    AddressesOf {
        peers: Vec<PeerId>,
        reply: oneshot::Sender<Vec<Vec<Multiaddr>>>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Serves commands and swarm events until shutdown or until every handle is gone.
pub(crate) async fn run(
    mut swarm: Swarm<Behaviour>,
    mut commands: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
) {
    let mut connect_waiters: HashMap<PeerId, Vec<oneshot::Sender<Result<(), RpcError>>>> =
        HashMap::new();
    let mut routing = PeerRouting::default();
    let mut sweep = tokio::time::interval(SWEEP_PERIOD);
    let mut shutdown_reply = None;
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => break,
                Some(Command::Shutdown { reply }) => {
                    shutdown_reply = Some(reply);
                    break;
                }
                Some(Command::OpenStream { peer, protocol, refused, reply }) => {
                    swarm.behaviour_mut().rpc.open_stream(peer, protocol, refused, reply);
                }
                Some(Command::Connect { peer, addr, reply }) => {
                    swarm.behaviour_mut().rpc.add_addresses(peer, [addr.clone()]);
                    if swarm.is_connected(&peer) {
                        let _ = reply.send(Ok(()));
                        continue;
                    }
                    connect_waiters.entry(peer).or_default().push(reply);
                    let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                        .addresses(vec![addr])
                        .build();
                    if let Err(err) = swarm.dial(opts) {
                        let (cause, reason) = dial_failure(&err);
                        for reply in connect_waiters.remove(&peer).unwrap_or_default() {
                            let _ = reply.send(Err(RpcError::PeerUnreachable {
                                peer,
                                cause,
                                reason: reason.clone(),
                            }));
                        }
                    }
                }
                Some(Command::AddAddresses { peers }) => {
                    for (peer, addrs) in peers {
                        let behaviour = swarm.behaviour_mut();
                        PeerRouting::on_addresses(behaviour.kad.as_mut(), peer, &addrs);
                        behaviour.rpc.add_addresses(peer, addrs);
                    }
                }
                Some(Command::AddressesOf { peers, reply }) => {
                    let behaviour = swarm.behaviour_mut();
                    let addrs = peers
                        .iter()
                        .map(|peer| {
                            let mut addrs = behaviour.rpc.addresses_of(peer);
                            for addr in PeerRouting::addresses_of(behaviour.kad.as_mut(), peer) {
                                if !addrs.contains(&addr) {
                                    addrs.push(addr);
                                }
                            }
                            addrs
                        })
                        .collect();
                    let _ = reply.send(addrs);
                }
                Some(Command::ConnectedPeers { reply }) => {
                    let _ = reply.send(swarm.connected_peers().copied().collect());
                }
            },
            event = swarm.select_next_some() => {
                record(&shared, &event);
                match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    routing.on_connected(swarm.behaviour_mut().kad.as_mut(), peer_id);
                    for reply in connect_waiters.remove(&peer_id).unwrap_or_default() {
                        let _ = reply.send(Ok(()));
                    }
                }
                SwarmEvent::ConnectionClosed { peer_id, connection_id, num_established, .. } => {
                    shared.pool.purge_connection(&peer_id, connection_id);
                    if num_established == 0 {
                        shared.server.forget(&peer_id);
                        shared.outbound.forget(&peer_id);
                    }
                }
                SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. }
                    if !swarm.is_connected(&peer) =>
                {
                    let (cause, reason) = dial_failure(&error);
                    for reply in connect_waiters.remove(&peer).unwrap_or_default() {
                        let _ = reply.send(Err(RpcError::PeerUnreachable {
                            peer,
                            cause,
                            reason: reason.clone(),
                        }));
                    }
                }
                SwarmEvent::NewListenAddr { address, .. } => shared.add_listen_addr(address),
                SwarmEvent::ExpiredListenAddr { address, .. } => shared.remove_listen_addr(&address),
                SwarmEvent::ExternalAddrConfirmed { address } => {
                    tracing::debug!(%address, "AutoNAT confirmed an external address");
                    shared.confirm_external_addr(address);
                }
                SwarmEvent::ExternalAddrExpired { address } => shared.expire_external_addr(&address),
                SwarmEvent::Behaviour(BehaviourEvent::Autonat(event)) => {
                    if let Err(error) = &event.result {
                        tracing::debug!(
                            address = %event.tested_addr, server = %event.server, %error,
                            "AutoNAT server could not dial back"
                        );
                        shared.external_probe_failed();
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                    peer_id,
                    info,
                    ..
                })) => {
                    let behaviour = swarm.behaviour_mut();
                    PeerRouting::on_identify(
                        behaviour.kad.as_mut(),
                        peer_id,
                        &info.protocols,
                        &info.listen_addrs,
                    );
                    behaviour.rpc.add_addresses(peer_id, info.listen_addrs);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Rpc(RpcEvent::AddressesNeeded(peer))) => {
                    let behaviour = swarm.behaviour_mut();
                    let timeout = shared.config.connect_timeout;
                    routing.lookup(&mut behaviour.rpc, behaviour.kad.as_mut(), peer, timeout);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => {
                    let behaviour = swarm.behaviour_mut();
                    routing.on_kad_event(&mut behaviour.rpc, behaviour.kad.as_mut(), event);
                }
                _ => {}
            }},
            _ = sweep.tick() => {
                shared.pool.evict_idle(shared.config.pool_idle_timeout);
                routing.expire(&mut swarm.behaviour_mut().rpc, tokio::time::Instant::now());
            }
        }
    }
    shared.close();
    shared.pool.clear();
    drop(swarm);
    if let Some(reply) = shutdown_reply {
        let _ = reply.send(());
    }
}

/// Gives `event` to libp2p's metrics, when the node exports them.
fn record(shared: &Shared, event: &SwarmEvent<BehaviourEvent>) {
    let Some(metrics) = shared.config.metrics.swarm() else {
        return;
    };
    metrics.record(event);
    match event {
        SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => metrics.record(event),
        SwarmEvent::Behaviour(BehaviourEvent::Ping(event)) => metrics.record(event),
        SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => metrics.record(event),
        _ => {}
    }
}
