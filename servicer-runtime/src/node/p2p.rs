//! [`P2P`]: the node handle.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::identity::load_or_create_identity;
use super::inbound::ToServer;
use super::shared::Shared;
use super::task::{self, Command};
use super::wiring::Wiring;
use crate::serve::Server;
use crate::transport::{self, TransportConfig};
use crate::wire::{PROTOCOL, Wire};
use crate::{Handler, Interceptor, P2PConfig, Reachability, RpcError, Unreachable};

/// Commands waiting for the swarm task; callers wait when it is full.
const COMMAND_BUFFER: usize = 1024;

/// A peer-to-peer node: a cloneable handle to the task that owns the libp2p swarm.
///
/// It serves registered handlers to other peers and makes calls to theirs (through stubs that
/// `#[servicer]` generates, or [`StubBase`](crate::StubBase) directly).
///
/// ```no_run
/// # async fn demo() -> Result<(), servicer_runtime::RpcError> {
/// use servicer_runtime::{P2P, P2PConfig};
///
/// let server = P2P::create(P2PConfig::default()).await?;
/// let client = P2P::create(
///     P2PConfig::default().with_initial_peers(server.visible_maddrs()),
/// )
/// .await?;
/// assert!(client.connected_peers().await?.contains(&server.peer_id()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct P2P {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for P2P {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2P")
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

impl P2P {
    /// Creates a node: loads or makes its identity, starts listening, and dials the initial peers.
    ///
    /// Must be called inside a tokio runtime. Fails when an address cannot be bound, the identity
    /// file is unusable, or (with [`P2PConfig::with_require_initial_peers`]) no initial peer
    /// answers within the connect timeout.
    pub async fn create(config: P2PConfig) -> Result<P2P, RpcError> {
        let keypair = match (&config.keypair, &config.identity_path) {
            (Some(keypair), _) => keypair.clone(),
            (None, Some(path)) => load_or_create_identity(path)?,
            (None, None) => Keypair::generate_ed25519(),
        };
        let initial_peers = config
            .initial_peers
            .iter()
            .map(|addr| peer_of(addr).map(|peer| (peer, addr.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let local_peer = keypair.public().to_peer_id();
        let wiring = Wiring::of(config.wire_mode);
        let server = Arc::new(Server::new(local_peer, &config));
        let transport = TransportConfig {
            negotiation_timeout: config.connect_timeout,
            idle_connection_timeout: config.idle_connection_timeout,
            translate_names: wiring.translate_names,
            look_up_peers: wiring.look_up_peers,
            limits: config.connection_limits,
            autonat_probe_interval: config.autonat_probe_interval,
        };
        let shared = Arc::new(Shared::new(local_peer, config, wiring, server.clone()));
        let mut swarm = transport::build(keypair, transport, Arc::new(ToServer(server)))?;
        let bound = transport::listen(
            &mut swarm,
            &shared.config.listen_addrs,
            shared.config.connect_timeout,
        )
        .await?;
        for addr in bound {
            shared.add_listen_addr(addr);
        }
        let (commands, receiver) = mpsc::channel(COMMAND_BUFFER);
        let task = tokio::spawn(task::run(swarm, receiver, shared.clone()));
        let p2p = P2P {
            inner: Arc::new(Inner {
                shared,
                commands,
                task: Mutex::new(Some(task)),
            }),
        };
        p2p.connect_initial_peers(initial_peers).await?;
        Ok(p2p)
    }

    async fn connect_initial_peers(&self, peers: Vec<(PeerId, Multiaddr)>) -> Result<(), RpcError> {
        if peers.is_empty() {
            return Ok(());
        }
        let attempts = peers
            .iter()
            .map(|(peer, addr)| self.connect_to(*peer, addr.clone()));
        let results = futures::future::join_all(attempts).await;
        let errors: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        if errors.len() == peers.len() && self.inner.shared.config.require_initial_peers {
            self.shutdown().await;
            return Err(RpcError::Setup(format!(
                "none of the {} initial peers could be reached: {}",
                peers.len(),
                errors.join("; ")
            )));
        }
        for error in errors {
            tracing::warn!(%error, "initial peer unreachable");
        }
        Ok(())
    }

    async fn connect_to(&self, peer: PeerId, addr: Multiaddr) -> Result<(), RpcError> {
        let timeout = self.inner.shared.config.connect_timeout;
        let (reply, rx) = oneshot::channel();
        self.command(Command::Connect { peer, addr, reply }).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RpcError::Shutdown),
            Err(_) => Err(RpcError::PeerUnreachable {
                peer,
                cause: Unreachable::Timeout,
                reason: format!("no connection within {timeout:?}"),
            }),
        }
    }

    /// Dials a peer by its full `/p2p/` multiaddr and waits until connected.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, RpcError> {
        let peer = peer_of(&addr)?;
        self.connect_to(peer, addr).await?;
        Ok(peer)
    }

    /// Remembers addresses of peers so that calls to them can dial them (e.g. the peers a DHT
    /// lookup returned).
    pub async fn add_addresses(
        &self,
        peers: impl IntoIterator<Item = (PeerId, Vec<Multiaddr>)>,
    ) -> Result<(), RpcError> {
        let peers = peers.into_iter().collect();
        self.command(Command::AddAddresses { peers }).await
    }

    /// The addresses this node knows for each of `peers` (learned from dials, identify, or
    /// [`add_addresses`](Self::add_addresses)), in the same order.
    pub async fn addresses_of(&self, peers: Vec<PeerId>) -> Result<Vec<Vec<Multiaddr>>, RpcError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::AddressesOf { peers, reply }).await?;
        rx.await.map_err(|_| RpcError::Shutdown)
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.shared.local_peer
    }

    /// Addresses other nodes can use as initial peers: the announce addresses if set, else the
    /// [confirmed external addresses](Self::external_addrs) followed by the listen addresses,
    /// each ending in `/p2p/<peer id>`.
    pub fn visible_maddrs(&self) -> Vec<Multiaddr> {
        self.inner.shared.visible_maddrs()
    }

    /// The external addresses AutoNAT confirmed: addresses that identify saw for this node and
    /// that another peer dialled back over a new connection (without `/p2p/<peer id>`). Empty
    /// until a probe succeeds; always empty behind a NAT.
    pub fn external_addrs(&self) -> Vec<Multiaddr> {
        self.inner.shared.external_addrs()
    }

    /// Whether other peers can dial this node directly, as far as AutoNAT has found out (see
    /// [`P2PConfig::with_autonat_probe_interval`]).
    pub fn reachability(&self) -> Reachability {
        self.inner.shared.reachability()
    }

    /// Peers with at least one open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, RpcError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::ConnectedPeers { reply }).await?;
        rx.await.map_err(|_| RpcError::Shutdown)
    }

    /// Registers handlers of wire `W` by handle name, all or none; `interceptor` sees every call
    /// to any of them. Fails with [`RpcError::Unsupported`] if the node does not speak `W` (see
    /// [`P2PConfig::with_wire_mode`]) and with [`RpcError::DuplicateHandler`] if a name is taken.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), servicer_runtime::RpcError> {
    /// use servicer_runtime::{Handler, Native, P2P, P2PConfig};
    ///
    /// let p2p = P2P::create(P2PConfig::default()).await?;
    /// let square = Handler::<Native>::unary(|x: i64, _ctx| async move { Ok::<_, String>(x * x) });
    /// p2p.add_handlers([("Calculator.rpc_square".into(), square)], None)?;
    /// # Ok(()) }
    /// ```
    pub fn add_handlers<W: Wire>(
        &self,
        handlers: impl IntoIterator<Item = (String, Handler<W>)>,
        interceptor: Option<Arc<dyn Interceptor>>,
    ) -> Result<(), RpcError> {
        if self.is_shut_down() {
            return Err(RpcError::Shutdown);
        }
        let handlers: Vec<(String, Handler<W>)> = handlers.into_iter().collect();
        if !self.speaks::<W>() {
            let names: Vec<&str> = handlers.iter().map(|(name, _)| name.as_str()).collect();
            return Err(RpcError::Unsupported(format!(
                "{names:?} serve on the {} wire, which this node does not speak; create it \
                 with P2PConfig::with_wire_mode",
                W::NAME
            )));
        }
        self.inner.shared.server.add(handlers, interceptor)
    }

    /// Unregisters handlers; later calls to them fail with [`RpcError::UnknownHandler`]. Reports
    /// the first name that was not registered (the others are removed all the same).
    pub fn remove_handlers(
        &self,
        names: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<(), RpcError> {
        self.inner.shared.server.registry().remove(names)
    }

    /// Whether this node speaks wire `W` (every node speaks [`Native`](crate::Native);
    /// [`WireMode::Hivemind`](crate::WireMode::Hivemind) adds [`Hivemind`](crate::Hivemind)).
    pub fn speaks<W: Wire>(&self) -> bool {
        self.inner.shared.wiring.speaks::<W>()
    }

    /// The names of the registered handlers, sorted.
    pub fn handler_names(&self) -> Vec<String> {
        self.inner.shared.server.registry().names()
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &P2PConfig {
        &self.inner.shared.config
    }

    /// Whether [`shutdown`](Self::shutdown) has run.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shared.is_closed()
    }

    /// Stops accepting calls and waits, at most `deadline`, for the inbound calls in flight to
    /// finish; returns how many were still running at the deadline. New streams are dropped and
    /// new calls on open streams answered [`RpcError::Busy`]; the node's own calls to others go
    /// on. Call [`shutdown`](Self::shutdown) afterwards. This is the first half of a graceful stop
    /// (SIGTERM).
    pub async fn drain(&self, deadline: Duration) -> usize {
        let server = &self.inner.shared.server;
        server.close();
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let running = server.calls_in_flight();
            if running == 0 || tokio::time::Instant::now() >= until {
                return running;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the node: closes every connection, so calls in flight on either side end with an
    /// error. Idempotent; other handles see [`RpcError::Shutdown`] afterwards.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    async fn command(&self, command: Command) -> Result<(), RpcError> {
        self.inner
            .commands
            .send(command)
            .await
            .map_err(|_| RpcError::Shutdown)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Opens a stream of the native wire's protocol to `peer` with nothing sent on it, for tests
    /// that write frames by hand (see [`native::frame`](crate::native::frame)). Calls go through
    /// stubs instead.
    #[doc(hidden)]
    pub async fn open_raw_stream(&self, peer: PeerId) -> Result<Stream, RpcError> {
        let refused = RpcError::PeerUnreachable {
            peer,
            cause: Unreachable::ProtocolNotSupported,
            reason: format!("peer does not speak {PROTOCOL}"),
        };
        Ok(self.open(peer, PROTOCOL, refused).await?.0)
    }

    /// A newly negotiated stream of `protocol` to `peer`, dialling it first if needed; `refused`
    /// is the error if the peer does not support `protocol`.
    pub(crate) async fn open(
        &self,
        peer: PeerId,
        protocol: StreamProtocol,
        refused: RpcError,
    ) -> Result<(Stream, ConnectionId), RpcError> {
        if self.is_shut_down() {
            return Err(RpcError::Shutdown);
        }
        let (reply, rx) = oneshot::channel();
        self.command(Command::OpenStream {
            peer,
            protocol,
            refused,
            reply,
        })
        .await?;
        rx.await.map_err(|_| {
            if self.is_shut_down() {
                RpcError::Shutdown
            } else {
                // The connection closed before its handler could open the stream.
                RpcError::ConnectionClosed("connection closed while opening a stream".into())
            }
        })?
    }
}

/// The peer id at the end of a `/p2p/` multiaddr.
fn peer_of(addr: &Multiaddr) -> Result<PeerId, RpcError> {
    multiaddr_peer_id(addr).ok_or_else(|| {
        RpcError::Setup(format!(
            "{addr} does not end in /p2p/<peer id>; use another node's visible_maddrs()"
        ))
    })
}

/// The peer id at the end of a `/p2p/` multiaddr, if there is one.
pub fn multiaddr_peer_id(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}
