//! The swarm a node runs: its transports (TCP, QUIC and in-memory, with noise and yamux, under a
//! DNS resolver, see [`super::dns`]) and its behaviours (connection limits in total, per peer, per
//! IP and by memory; RPC, identify, ping, AutoNAT v2 client and server, and Kademlia for peer
//! lookups when enabled).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, Swarm, Transport, autonat, connection_limits, identify, memory_connection_limits,
    noise, ping, tcp, yamux,
};

use super::dns::system_resolver_config;
use super::ip_limits::IpLimits;
use super::muxer::TranslatingMuxer;
use super::routing::{self, Kad};
use super::{Inbound, RpcBehaviour};
use crate::RpcError;
use crate::config::ConnectionLimits;

/// The behaviours of a node.
#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
pub(crate) struct Behaviour {
    /// Connections in total and per peer.
    pub connections: connection_limits::Behaviour,
    /// Inbound connections per IP.
    pub per_ip: IpLimits,
    /// No new connections while memory is short.
    pub memory: memory_connection_limits::Behaviour,
    pub rpc: RpcBehaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    /// Asks peers to dial back the addresses identify saw for this node; one that answers
    /// confirms the address (`SwarmEvent::ExternalAddrConfirmed`).
    pub autonat: autonat::v2::client::Behaviour,
    /// Dials back other nodes' addresses for them (over a new port, so that an existing
    /// connection or NAT mapping cannot fake reachability).
    pub autonat_server: autonat::v2::server::Behaviour,
    /// Peer lookups by id (see [`super::PeerRouting`]), when enabled.
    pub kad: Toggle<Kad>,
}

/// How the transport is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TransportConfig {
    /// How long negotiating a stream, and a Kademlia lookup, may take.
    pub negotiation_timeout: Duration,
    /// How long a connection without streams stays open.
    pub idle_connection_timeout: Duration,
    /// Whether every connection's muxer translates protocol names without a leading `/`
    /// (hivemind's), see [`super::muxer`].
    pub translate_names: bool,
    /// Whether the node runs Kademlia to find peers known only by id.
    pub look_up_peers: bool,
    /// Bounds on connections.
    pub limits: ConnectionLimits,
    /// How often the AutoNAT client asks a server to test its untested candidate addresses.
    pub autonat_probe_interval: Duration,
}

/// Builds the swarm of a node with identity `keypair` that hands inbound streams to `inbound`.
pub(crate) fn build(
    keypair: Keypair,
    config: TransportConfig,
    inbound: Arc<dyn Inbound>,
) -> Result<Swarm<Behaviour>, RpcError> {
    if config.translate_names {
        build_translating(keypair, config, inbound)
    } else {
        build_plain(keypair, config, inbound)
    }
}

fn setup(what: &str, e: &dyn std::fmt::Display) -> RpcError {
    RpcError::Setup(format!("{what}: {e}"))
}

fn behaviour(key: &Keypair, config: TransportConfig, inbound: Arc<dyn Inbound>) -> Behaviour {
    let local = key.public().to_peer_id();
    let limits = config.limits;
    Behaviour {
        connections: connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established_incoming(Some(limits.inbound))
                .with_max_pending_incoming(Some(limits.pending_inbound))
                .with_max_established_per_peer(Some(limits.per_peer)),
        ),
        per_ip: IpLimits::new(limits.inbound_per_ip),
        memory: match limits.memory {
            Some(bytes) => memory_connection_limits::Behaviour::with_max_bytes(bytes),
            None => memory_connection_limits::Behaviour::with_max_percentage(0.9),
        },
        rpc: RpcBehaviour::new(
            local,
            inbound,
            config.negotiation_timeout,
            config.look_up_peers,
        ),
        identify: identify::Behaviour::new(identify::Config::new(
            "/servicer/1.0.0".into(),
            key.public(),
        )),
        ping: ping::Behaviour::default(),
        autonat: autonat::v2::client::Behaviour::new(
            rand_autonat::make_rng::<rand_autonat::rngs::StdRng>(),
            autonat::v2::client::Config::default()
                .with_probe_interval(config.autonat_probe_interval),
        ),
        autonat_server: autonat::v2::server::Behaviour::default(),
        kad: routing::behaviour(local, config.look_up_peers, config.negotiation_timeout),
    }
}

fn swarm_config(c: libp2p::swarm::Config, idle: Duration) -> libp2p::swarm::Config {
    // V1Lazy sends the protocol proposal together with the first frame, so opening a
    // stream costs no extra round trip (every behaviour here proposes one protocol).
    c.with_idle_connection_timeout(idle)
        .with_substream_upgrade_protocol_override(Version::V1Lazy)
}

fn build_plain(
    keypair: Keypair,
    config: TransportConfig,
    inbound: Arc<dyn Inbound>,
) -> Result<Swarm<Behaviour>, RpcError> {
    let idle = config.idle_connection_timeout;
    let (dns, dns_opts) = system_resolver_config();
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
        .with_dns_config(dns, dns_opts)
        .with_behaviour(|key| behaviour(key, config, inbound))
        .map_err(|e| setup("behaviour", &e))?
        .with_swarm_config(|c| swarm_config(c, idle))
        .build();
    Ok(swarm)
}

/// The same stack as [`build_plain`] (TCP, QUIC, memory; noise; yamux; DNS) with every connection's
/// muxer wrapped in a [`TranslatingMuxer`], which is how hivemind's protocol names without a
/// leading `/` get through rust-libp2p's negotiation (see [`super::muxer`]).
fn build_translating(
    keypair: Keypair,
    config: TransportConfig,
    inbound: Arc<dyn Inbound>,
) -> Result<Swarm<Behaviour>, RpcError> {
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let idle = config.idle_connection_timeout;
    let (dns, dns_opts) = system_resolver_config();
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
        .with_dns_config(dns, dns_opts)
        .with_behaviour(|key| behaviour(key, config, inbound))
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
