//! [`P2P`]: the node handle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, Stream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::handler::Registry;
use crate::limits::Limits;
use crate::pool::{Pool, PooledStream};
use crate::server::{self, CallSettings};
use crate::swarm::{self, Command};
use crate::{Handler, Interceptor, P2PConfig, RpcError, identity};

/// Commands waiting for the swarm task; callers wait when it is full.
const COMMAND_BUFFER: usize = 1024;

/// State shared by the handle, the swarm task and the connection handlers.
pub(crate) struct Shared {
    pub local_peer: PeerId,
    pub config: P2PConfig,
    pub registry: Registry,
    pub limits: Limits,
    pub pool: Pool,
    listen_addrs: RwLock<Vec<Multiaddr>>,
    /// What [`P2P::visible_maddrs`] returns, kept up to date with `listen_addrs`: callers such as
    /// the DHT ask for it on every request.
    visible: RwLock<Vec<Multiaddr>>,
    closed: AtomicBool,
}

impl Shared {
    pub(crate) fn call_settings(&self) -> CallSettings {
        CallSettings {
            max_message_size: self.config.max_message_size,
            idle: self.config.stream_idle_deadline,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub(crate) fn add_listen_addr(&self, addr: Multiaddr) {
        let mut addrs = self.listen_addrs.write().unwrap_or_else(|e| e.into_inner());
        if !addrs.contains(&addr) {
            addrs.push(addr);
            self.update_visible(&addrs);
        }
    }

    pub(crate) fn remove_listen_addr(&self, addr: &Multiaddr) {
        let mut addrs = self.listen_addrs.write().unwrap_or_else(|e| e.into_inner());
        addrs.retain(|a| a != addr);
        self.update_visible(&addrs);
    }

    /// Recomputes the visible addresses (called with the listen addresses locked, so that
    /// concurrent updates apply in order).
    fn update_visible(&self, listen: &[Multiaddr]) {
        if self.config.announce_addrs.is_empty() {
            *self.visible.write().unwrap_or_else(|e| e.into_inner()) =
                visible(listen, self.local_peer);
        }
    }
}

/// `addrs`, each ending in `/p2p/<local>` (an address naming another peer is kept as it is).
fn visible(addrs: &[Multiaddr], local: PeerId) -> Vec<Multiaddr> {
    addrs
        .iter()
        .map(|addr| addr.clone().with_p2p(local).unwrap_or_else(|addr| addr))
        .collect()
}

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
            (None, Some(path)) => identity::load_or_create_identity(path)?,
            (None, None) => Keypair::generate_ed25519(),
        };
        let initial_peers = config
            .initial_peers
            .iter()
            .map(|addr| peer_of(addr).map(|peer| (peer, addr.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let local_peer = keypair.public().to_peer_id();
        let shared = Arc::new(Shared {
            local_peer,
            limits: Limits::new(&config),
            registry: Registry::default(),
            pool: Pool::default(),
            listen_addrs: RwLock::default(),
            visible: RwLock::new(visible(&config.announce_addrs, local_peer)),
            closed: AtomicBool::new(false),
            config,
        });
        let mut swarm = swarm::build(keypair, shared.clone())?;
        let bound = swarm::listen(
            &mut swarm,
            &shared.config.listen_addrs,
            shared.config.connect_timeout,
        )
        .await?;
        for addr in bound {
            shared.add_listen_addr(addr);
        }
        let (commands, receiver) = mpsc::channel(COMMAND_BUFFER);
        let task = tokio::spawn(swarm::run(swarm, receiver, shared.clone()));
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

    /// Remembers addresses of a peer so that calls to it can dial it.
    pub async fn add_addresses(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), RpcError> {
        self.add_peer_addresses(vec![(peer, addrs)]).await
    }

    /// Remembers addresses of several peers at once (e.g. the peers a DHT lookup returned).
    pub async fn add_peer_addresses(
        &self,
        peers: Vec<(PeerId, Vec<Multiaddr>)>,
    ) -> Result<(), RpcError> {
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
    /// listen addresses, each ending in `/p2p/<peer id>`.
    pub fn visible_maddrs(&self) -> Vec<Multiaddr> {
        let visible = &self.inner.shared.visible;
        visible.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Peers with at least one open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, RpcError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::ConnectedPeers { reply }).await?;
        rx.await.map_err(|_| RpcError::Shutdown)
    }

    /// Registers one handler under `name`.
    pub fn add_handler(&self, name: impl Into<String>, handler: Handler) -> Result<(), RpcError> {
        self.add_handlers(vec![(name.into(), handler)], None)
    }

    /// Registers several handlers, all or none; `interceptor` sees every call to any of them.
    pub fn add_handlers(
        &self,
        handlers: Vec<(String, Handler)>,
        interceptor: Option<Arc<dyn Interceptor>>,
    ) -> Result<(), RpcError> {
        if self.is_shut_down() {
            return Err(RpcError::Shutdown);
        }
        if self.inner.shared.config.wire_mode != crate::WireMode::Hivemind
            && let Some((name, _)) = handlers.iter().find(|(_, h)| h.is_proto())
        {
            return Err(RpcError::Unsupported(format!(
                "`{name}` is a hivemind-wire handler; the node needs WireMode::Hivemind"
            )));
        }
        self.inner.shared.registry.add(handlers, interceptor)
    }

    /// Unregisters one handler; later calls to it fail with [`RpcError::UnknownHandler`].
    pub fn remove_handler(&self, name: &str) -> Result<(), RpcError> {
        self.remove_handlers(&[name.to_string()])
    }

    /// Unregisters handlers; reports the first name that was not registered.
    pub fn remove_handlers(&self, names: &[String]) -> Result<(), RpcError> {
        self.inner.shared.registry.remove(names)
    }

    /// The names of the registered handlers, sorted.
    pub fn handler_names(&self) -> Vec<String> {
        self.inner.shared.registry.names()
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &P2PConfig {
        &self.inner.shared.config
    }

    /// Whether [`shutdown`](Self::shutdown) has run.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shared.is_closed()
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

    /// An idle pooled stream to `peer`, or a new one.
    pub(crate) async fn stream(&self, peer: PeerId) -> Result<(PooledStream, bool), RpcError> {
        if let Some(stream) = self.inner.shared.pool.take(&peer) {
            return Ok((stream, true));
        }
        self.open_stream(peer).await.map(|s| (s, false))
    }

    /// A newly negotiated stream to `peer`.
    pub(crate) async fn open_stream(&self, peer: PeerId) -> Result<PooledStream, RpcError> {
        let (stream, connection) = self.open_raw(peer, crate::behaviour::PROTOCOL).await?;
        Ok(PooledStream {
            io: server::framed(stream, self.inner.shared.config.max_message_size),
            connection,
        })
    }

    /// Opens a stream of the RPC protocol to `peer` with nothing sent on it: for tools and tests
    /// that write [frames](crate::frame) by hand. Calls go through stubs instead.
    pub async fn open_raw_stream(&self, peer: PeerId) -> Result<Stream, RpcError> {
        Ok(self.open_raw(peer, crate::behaviour::PROTOCOL).await?.0)
    }

    /// Opens a stream to `peer` for the hivemind handler `name` (e.g. `DHTProtocol.rpc_ping`):
    /// on the wire its protocol is `name` itself. Needs [`WireMode::Hivemind`](crate::WireMode).
    pub async fn open_hivemind_stream(&self, peer: PeerId, name: &str) -> Result<Stream, RpcError> {
        if self.inner.shared.config.wire_mode != crate::WireMode::Hivemind {
            return Err(RpcError::Unsupported(format!(
                "calling `{name}` on hivemind's wire needs WireMode::Hivemind"
            )));
        }
        if name.is_empty() || name.contains('\n') {
            return Err(RpcError::Malformed(format!(
                "invalid handler name {name:?}"
            )));
        }
        let protocol = crate::hivemind::muxer::protocol(name)
            .map_err(|e| RpcError::Malformed(format!("invalid handler name {name:?}: {e}")))?;
        Ok(self.open_raw(peer, protocol).await?.0)
    }

    async fn open_raw(
        &self,
        peer: PeerId,
        protocol: libp2p::StreamProtocol,
    ) -> Result<(Stream, ConnectionId), RpcError> {
        if self.is_shut_down() {
            return Err(RpcError::Shutdown);
        }
        let (reply, rx) = oneshot::channel();
        self.command(Command::OpenStream {
            peer,
            protocol,
            reply,
        })
        .await?;
        let (stream, connection) = rx.await.map_err(|_| {
            if self.is_shut_down() {
                RpcError::Shutdown
            } else {
                // The connection closed before its handler could open the stream.
                RpcError::ConnectionClosed("connection closed while opening a stream".into())
            }
        })??;
        Ok((stream, connection))
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
