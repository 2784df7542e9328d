//! Building the libp2p swarm and the one task that owns it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, Transport, identify, noise, ping, tcp, yamux};
use tokio::sync::{mpsc, oneshot};

use crate::behaviour::{RpcBehaviour, RpcEvent, StreamReply};
use crate::hivemind::muxer::TranslatingMuxer;
use crate::p2p::Shared;
use crate::routing::{self, PeerRouting};
use crate::{RpcError, WireMode};

/// How often idle pooled streams are swept.
const SWEEP_PERIOD: Duration = Duration::from_secs(5);

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
pub(crate) struct Behaviour {
    pub rpc: RpcBehaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    /// Peer routing, on the hivemind wire only (see [`crate::routing`]).
    pub kad: Toggle<routing::Kad>,
}

/// Requests from [`P2P`](crate::P2P) handles to the swarm task.
pub(crate) enum Command {
    OpenStream {
        peer: PeerId,
        protocol: libp2p::StreamProtocol,
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

pub(crate) fn build(keypair: Keypair, shared: Arc<Shared>) -> Result<Swarm<Behaviour>, RpcError> {
    match shared.config.wire_mode {
        WireMode::Native => build_native(keypair, shared),
        WireMode::Hivemind => build_hivemind(keypair, shared),
    }
}

fn setup(what: &str, e: &dyn std::fmt::Display) -> RpcError {
    RpcError::Setup(format!("{what}: {e}"))
}

fn behaviour(key: &Keypair, shared: &Arc<Shared>) -> Behaviour {
    Behaviour {
        rpc: RpcBehaviour::new(shared.clone()),
        identify: identify::Behaviour::new(identify::Config::new(
            "/servicer/1.0.0".into(),
            key.public(),
        )),
        ping: ping::Behaviour::default(),
        kad: routing::behaviour(key.public().to_peer_id(), &shared.config),
    }
}

fn swarm_config(c: libp2p::swarm::Config, idle: Duration) -> libp2p::swarm::Config {
    // V1Lazy sends the protocol proposal together with the first frame, so opening a
    // stream costs no extra round trip (every behaviour here proposes one protocol).
    c.with_idle_connection_timeout(idle)
        .with_substream_upgrade_protocol_override(Version::V1Lazy)
}

fn build_native(keypair: Keypair, shared: Arc<Shared>) -> Result<Swarm<Behaviour>, RpcError> {
    let idle = shared.config.idle_connection_timeout;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup("TCP transport", &e))?
        .with_quic()
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                MemoryTransport::default()
                    .upgrade(Version::V1)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default()),
            )
        })
        .map_err(|e| setup("memory transport", &e))?
        .with_behaviour(|key| behaviour(key, &shared))
        .map_err(|e| setup("behaviour", &e))?
        .with_swarm_config(|c| swarm_config(c, idle))
        .build();
    Ok(swarm)
}

/// The same stack as [`build_native`] (TCP, QUIC, memory; noise; yamux) with every connection's
/// muxer wrapped in a [`TranslatingMuxer`], which is how hivemind's protocol names without a
/// leading `/` get through rust-libp2p's negotiation (see [`crate::hivemind::muxer`]).
fn build_hivemind(keypair: Keypair, shared: Arc<Shared>) -> Result<Swarm<Behaviour>, RpcError> {
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let idle = shared.config.idle_connection_timeout;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)?;
            Ok::<_, BoxError>(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .upgrade(Version::V1)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
                    .map(|(peer, muxer), _| (peer, TranslatingMuxer::new(muxer))),
            )
        })
        .map_err(|e| setup("TCP transport", &e))?
        .with_other_transport(|key| {
            Ok::<_, BoxError>(
                libp2p::quic::tokio::Transport::new(libp2p::quic::Config::new(key))
                    .map(|(peer, muxer), _| (peer, TranslatingMuxer::new(muxer))),
            )
        })
        .map_err(|e| setup("QUIC transport", &e))?
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)?;
            Ok::<_, BoxError>(
                MemoryTransport::default()
                    .upgrade(Version::V1)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
                    .map(|(peer, muxer), _| (peer, TranslatingMuxer::new(muxer))),
            )
        })
        .map_err(|e| setup("memory transport", &e))?
        .with_behaviour(|key| behaviour(key, &shared))
        .map_err(|e| setup("behaviour", &e))?
        .with_swarm_config(|c| swarm_config(c, idle))
        .build();
    Ok(swarm)
}

/// Listens on every configured address and returns the addresses actually bound.
pub(crate) async fn listen(
    swarm: &mut Swarm<Behaviour>,
    addrs: &[Multiaddr],
    timeout: Duration,
) -> Result<Vec<Multiaddr>, RpcError> {
    let mut pending = HashMap::new();
    for addr in addrs {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| RpcError::Setup(format!("cannot listen on {addr}: {e}")))?;
        pending.insert(id, addr.clone());
    }
    let mut bound = Vec::new();
    let wait = async {
        while !pending.is_empty() {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr {
                    listener_id,
                    address,
                } => {
                    pending.remove(&listener_id);
                    bound.push(address);
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    reason,
                    ..
                } if pending.contains_key(&listener_id) => {
                    let addr = &pending[&listener_id];
                    let reason = reason.err().map(|e| e.to_string()).unwrap_or_default();
                    return Err(RpcError::Setup(format!(
                        "cannot listen on {addr}: {reason}"
                    )));
                }
                SwarmEvent::ListenerError { listener_id, error }
                    if pending.contains_key(&listener_id) =>
                {
                    let addr = &pending[&listener_id];
                    return Err(RpcError::Setup(format!("cannot listen on {addr}: {error}")));
                }
                _ => {}
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(result) => result?,
        Err(_) => return Err(RpcError::Setup("listening did not start in time".into())),
    }
    Ok(bound)
}

/// The swarm task: serves commands and swarm events until shutdown or until every handle is gone.
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
                Some(Command::OpenStream { peer, protocol, reply }) => {
                    swarm.behaviour_mut().rpc.open_stream(peer, protocol, reply);
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
                        for reply in connect_waiters.remove(&peer).unwrap_or_default() {
                            let _ = reply.send(Err(RpcError::PeerUnreachable {
                                peer,
                                reason: err.to_string(),
                            }));
                        }
                    }
                }
                Some(Command::AddAddresses { peers }) => {
                    for (peer, addrs) in peers {
                        let behaviour = swarm.behaviour_mut();
                        routing::on_addresses(behaviour, peer, &addrs);
                        behaviour.rpc.add_addresses(peer, addrs);
                    }
                }
                Some(Command::AddressesOf { peers, reply }) => {
                    let behaviour = swarm.behaviour_mut();
                    let addrs = peers
                        .iter()
                        .map(|peer| {
                            let mut addrs = behaviour.rpc.addresses_of(peer);
                            for addr in routing::addresses_of(behaviour, peer) {
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
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    routing.on_connected(swarm.behaviour_mut(), peer_id);
                    for reply in connect_waiters.remove(&peer_id).unwrap_or_default() {
                        let _ = reply.send(Ok(()));
                    }
                }
                SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. }
                    if !swarm.is_connected(&peer) =>
                {
                    for reply in connect_waiters.remove(&peer).unwrap_or_default() {
                        let _ = reply.send(Err(RpcError::PeerUnreachable {
                            peer,
                            reason: error.to_string(),
                        }));
                    }
                }
                SwarmEvent::NewListenAddr { address, .. } => shared.add_listen_addr(address),
                SwarmEvent::ExpiredListenAddr { address, .. } => shared.remove_listen_addr(&address),
                SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                    peer_id,
                    info,
                    ..
                })) => {
                    let behaviour = swarm.behaviour_mut();
                    routing::on_identify(behaviour, peer_id, &info.protocols, &info.listen_addrs);
                    behaviour.rpc.add_addresses(peer_id, info.listen_addrs);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Rpc(RpcEvent::AddressesNeeded(peer))) => {
                    routing.lookup(swarm.behaviour_mut(), peer, shared.config.connect_timeout);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => {
                    routing.on_kad_event(swarm.behaviour_mut(), event);
                }
                _ => {}
            },
            _ = sweep.tick() => {
                shared.pool.evict_idle(shared.config.pool_idle_timeout);
                routing.expire(&mut swarm.behaviour_mut().rpc, tokio::time::Instant::now());
            }
        }
    }
    shared.mark_closed();
    shared.pool.clear();
    drop(swarm);
    if let Some(reply) = shutdown_reply {
        let _ = reply.send(());
    }
}
