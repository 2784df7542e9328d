//! [`P2PConfig`]: everything a node is created with, with documented defaults.

use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::identity::Keypair;

use crate::metrics::Metrics;

/// Default cap on one message, as hivemind's `DEFAULT_MAX_MSG_SIZE`.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// Default of [`P2PConfig::with_max_message_memory`]: 64 MiB.
pub(crate) const DEFAULT_MAX_MESSAGE_MEMORY: usize = 64 << 20;

/// Which wire a node speaks (hivemind's: docs/hivemind-compat.md). The servicer model (handlers,
/// kinds, stubs) is the same in both; the protocol names, the framing and the message codec
/// differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireMode {
    /// This project's own wire: one protocol `/servicer/rpc/1.0.0`, `kind | u32 length | bincode`
    /// frames, reused streams.
    #[default]
    Native,
    /// The exact wire of hivemind 1.1.12 (see [`crate::hivemind`]): each handler is a libp2p
    /// protocol named `Class.rpc_x` (no leading `/`), unary calls are one stream each with a
    /// `PersistentConnectionRequest` envelope, streaming calls use `marker | u64 length` frames,
    /// and messages are protobuf. `Handler<Hivemind>`s are served on it; `Handler<Native>`s stay
    /// reachable over the native protocol. The node also runs Kademlia (`/ipfs/kad/1.0.0`, server
    /// mode) for peer routing, as hivemind's Go daemons do: they find it by peer id, and it finds
    /// peers known only by id.
    Hivemind,
}

impl std::str::FromStr for WireMode {
    type Err = crate::RpcError;

    /// `native` or `hivemind` (as command-line flags spell them).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "native" => Ok(WireMode::Native),
            "hivemind" => Ok(WireMode::Hivemind),
            other => Err(crate::RpcError::Setup(format!(
                "unknown wire mode `{other}`: use `native` or `hivemind`"
            ))),
        }
    }
}

impl std::fmt::Display for WireMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WireMode::Native => "native",
            WireMode::Hivemind => "hivemind",
        })
    }
}

/// How a node is created. Build it with [`P2PConfig::default`] and the `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use servicer_runtime::P2PConfig;
///
/// let config = P2PConfig::default()
///     .with_listen_addrs(["/ip4/127.0.0.1/tcp/0".parse().unwrap()])
///     .with_unary_deadline(Duration::from_secs(5));
/// assert_eq!(config.max_message_size(), 4 * 1024 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct P2PConfig {
    pub(crate) keypair: Option<Keypair>,
    pub(crate) identity_path: Option<PathBuf>,
    pub(crate) listen_addrs: Vec<Multiaddr>,
    pub(crate) announce_addrs: Vec<Multiaddr>,
    pub(crate) initial_peers: Vec<Multiaddr>,
    pub(crate) require_initial_peers: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_message_size: usize,
    pub(crate) unary_deadline: Duration,
    pub(crate) stream_idle_deadline: Duration,
    pub(crate) server_idle_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) pool_idle_timeout: Duration,
    pub(crate) idle_connection_timeout: Duration,
    pub(crate) max_inbound_calls: usize,
    pub(crate) max_inbound_calls_per_peer: usize,
    pub(crate) max_outbound_streams_per_peer: usize,
    pub(crate) max_inbound_streams: usize,
    pub(crate) max_inbound_streams_per_peer: usize,
    pub(crate) max_message_memory: usize,
    pub(crate) connection_limits: ConnectionLimits,
    pub(crate) metrics: Metrics,
    pub(crate) wire_mode: WireMode,
    pub(crate) autonat_probe_interval: Duration,
}

/// Bounds on the connections a node accepts, set through [`P2PConfig`]'s `with_max_*` methods.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ConnectionLimits {
    pub(crate) inbound: u32,
    pub(crate) pending_inbound: u32,
    pub(crate) per_peer: u32,
    pub(crate) inbound_per_ip: usize,
    pub(crate) memory: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            inbound: 1024,
            pending_inbound: 256,
            per_peer: 4,
            inbound_per_ip: 64,
            memory: None,
        }
    }
}

impl Default for P2PConfig {
    fn default() -> Self {
        P2PConfig {
            keypair: None,
            identity_path: None,
            listen_addrs: vec![default_listen_addr()],
            announce_addrs: Vec::new(),
            initial_peers: Vec::new(),
            require_initial_peers: false,
            connect_timeout: Duration::from_secs(10),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            unary_deadline: Duration::from_secs(30),
            stream_idle_deadline: Duration::from_secs(60),
            server_idle_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(30),
            idle_connection_timeout: Duration::from_secs(30),
            max_inbound_calls: 4096,
            max_inbound_calls_per_peer: 256,
            max_outbound_streams_per_peer: 256,
            max_inbound_streams: 8192,
            max_inbound_streams_per_peer: 512,
            max_message_memory: DEFAULT_MAX_MESSAGE_MEMORY,
            connection_limits: ConnectionLimits::default(),
            metrics: Metrics::default(),
            wire_mode: WireMode::Native,
            autonat_probe_interval: Duration::from_secs(5),
        }
    }
}

fn default_listen_addr() -> Multiaddr {
    Multiaddr::empty()
        .with(libp2p::multiaddr::Protocol::Ip4([127, 0, 0, 1].into()))
        .with(libp2p::multiaddr::Protocol::Tcp(0))
}

impl P2PConfig {
    /// Uses this key as the node's identity. Default: a random Ed25519 key.
    pub fn with_keypair(mut self, keypair: Keypair) -> Self {
        self.keypair = Some(keypair);
        self
    }

    /// Loads the identity from this file, creating it with a new Ed25519 key if it is missing
    /// (hivemind's `identity_path`). The file holds the libp2p protobuf encoding of the key.
    pub fn with_identity_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.identity_path = Some(path.into());
        self
    }

    /// Addresses to listen on. Default: `/ip4/127.0.0.1/tcp/0`. Use `/ip4/…/udp/0/quic-v1` for QUIC
    /// and `/memory/0` for the in-process transport.
    pub fn with_listen_addrs(mut self, addrs: impl IntoIterator<Item = Multiaddr>) -> Self {
        self.listen_addrs = addrs.into_iter().collect();
        self
    }

    /// Addresses to announce instead of the listen addresses (e.g. behind a port forward).
    pub fn with_announce_addrs(mut self, addrs: impl IntoIterator<Item = Multiaddr>) -> Self {
        self.announce_addrs = addrs.into_iter().collect();
        self
    }

    /// Peers to dial at start, as full multiaddrs ending in `/p2p/<peer id>`.
    pub fn with_initial_peers(mut self, addrs: impl IntoIterator<Item = Multiaddr>) -> Self {
        self.initial_peers = addrs.into_iter().collect();
        self
    }

    /// Whether [`P2P::create`](crate::P2P::create) fails when initial peers are given but none of
    /// them can be reached within the connect timeout. Default: `false`.
    pub fn with_require_initial_peers(mut self, require: bool) -> Self {
        self.require_initial_peers = require;
        self
    }

    /// How long dialling a peer may take. Default: 10 s.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The largest message this node sends or accepts. Default: 4 MiB.
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// The deadline of a unary call unless the stub sets its own. Default: 30 s.
    pub fn with_unary_deadline(mut self, deadline: Duration) -> Self {
        self.unary_deadline = deadline;
        self
    }

    /// How long a stream may go without a message, on either side; also how long a node serving
    /// a call waits for its caller to take (read) an answer before it ends the call, so that
    /// callers that stop reading do not keep slots and buffers. Default: 60 s.
    pub fn with_stream_idle_deadline(mut self, deadline: Duration) -> Self {
        self.stream_idle_deadline = deadline;
        self
    }

    /// How long a caller has, on a stream it just opened, to send the call header, and for a call
    /// with one request (unary or server-streaming), to send that request. The call takes a slot
    /// under [`with_max_inbound_calls`](Self::with_max_inbound_calls) only once its request is
    /// in, so callers that open streams and send nothing hold no slot, and their streams are
    /// closed after this. Default: 10 s.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long a connection without streams stays open. Default: 30 s (hivemind's `idle_timeout`).
    pub fn with_idle_connection_timeout(mut self, timeout: Duration) -> Self {
        self.idle_connection_timeout = timeout;
        self
    }

    /// Concurrent inbound calls in total; past it callers get [`RpcError::Busy`](crate::RpcError::Busy).
    /// The last eighth is kept for peers with fewer than 4 calls in flight, so that a few peers
    /// using their whole [per-peer share](Self::with_max_inbound_calls_per_peer) cannot lock the
    /// others out. Default: 4096.
    pub fn with_max_inbound_calls(mut self, calls: usize) -> Self {
        self.max_inbound_calls = calls;
        self
    }

    /// Concurrent inbound calls from one peer; past it that peer gets
    /// [`RpcError::Busy`](crate::RpcError::Busy). Default: 256.
    pub fn with_max_inbound_calls_per_peer(mut self, calls: usize) -> Self {
        self.max_inbound_calls_per_peer = calls;
        self
    }

    /// Concurrent outbound calls to one peer; more wait for a free slot (within their deadline).
    /// Default: 256 (yamux allows 512 streams per connection).
    pub fn with_max_outbound_streams_per_peer(mut self, streams: usize) -> Self {
        self.max_outbound_streams_per_peer = streams.max(1);
        self
    }

    /// Inbound streams open at once, in total; a stream past it is reset as soon as it is
    /// negotiated. A stream counts from its negotiation until it closes, idle between calls
    /// included. The last eighth is kept for peers with few streams open (see
    /// [`with_max_inbound_calls`](Self::with_max_inbound_calls)). Default: 8192.
    pub fn with_max_inbound_streams(mut self, streams: usize) -> Self {
        self.max_inbound_streams = streams;
        self
    }

    /// Inbound streams open at once from one peer. Above the
    /// [outbound pool](Self::with_max_outbound_streams_per_peer) another node of this library
    /// keeps to a peer. Default: 512.
    pub fn with_max_inbound_streams_per_peer(mut self, streams: usize) -> Self {
        self.max_inbound_streams_per_peer = streams;
        self
    }

    /// Bytes of large messages (64 KiB and more) that inbound calls may hold at once: requests
    /// being received and handled, responses being sent. A request whose frame would pass it is
    /// answered [`RpcError::Busy`](crate::RpcError::Busy) before it is buffered, and a response
    /// that would pass it is replaced by that error, so what strangers make the node buffer
    /// stays within this. Default: 64 MiB.
    pub fn with_max_message_memory(mut self, bytes: usize) -> Self {
        self.max_message_memory = bytes;
        self
    }

    /// Established inbound connections in total; more are refused. Default: 1024.
    pub fn with_max_inbound_connections(mut self, connections: u32) -> Self {
        self.connection_limits.inbound = connections;
        self
    }

    /// Inbound connections still in their handshake; more are refused. Default: 256.
    pub fn with_max_pending_inbound_connections(mut self, connections: u32) -> Self {
        self.connection_limits.pending_inbound = connections;
        self
    }

    /// Established connections with one peer, both ways. Default: 4 (one is the norm;
    /// simultaneous dials make two).
    pub fn with_max_connections_per_peer(mut self, connections: u32) -> Self {
        self.connection_limits.per_peer = connections.max(1);
        self
    }

    /// Inbound connections, pending or established, from one IPv4 address or one IPv6 /64
    /// (loopback addresses are not counted: they are this machine's own processes, as in
    /// go-libp2p's default limits). Peer ids cost nothing to make, so this is what keeps one host
    /// from taking every inbound slot. Default: 64.
    pub fn with_max_inbound_connections_per_ip(mut self, connections: usize) -> Self {
        self.connection_limits.inbound_per_ip = connections;
        self
    }

    /// New connections are refused while the process's resident memory is above this many
    /// bytes (checked at most once a second). Default: `None`, 90% of the machine's physical
    /// memory. Streams on each connection are bounded by the muxers (yamux: 512 per TCP
    /// connection; QUIC: 256) and by [`with_max_inbound_streams`](Self::with_max_inbound_streams).
    pub fn with_max_memory(mut self, bytes: Option<usize>) -> Self {
        self.connection_limits.memory = bytes;
        self
    }

    /// Where the node's metrics go: make them with [`Metrics::new`] on your registry. Default:
    /// counted, exported nowhere.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Which wire the node speaks. Default: [`WireMode::Native`].
    pub fn with_wire_mode(mut self, mode: WireMode) -> Self {
        self.wire_mode = mode;
        self
    }

    /// How often the node's AutoNAT (v2) client asks one of the peers it dialled to dial back
    /// its untested candidate addresses (those identify saw for it; at most 10, most often seen
    /// first). One successful dial-back confirms an address: it becomes an
    /// [external address](crate::P2P::external_addrs) and part of the
    /// [visible addresses](crate::P2P::visible_maddrs); a failed one makes the node
    /// [`Private`](crate::Reachability::Private) until an address is confirmed. Default: 5 s
    /// (libp2p-autonat's).
    ///
    /// Every node also serves AutoNAT to the peers that dial it, with libp2p-autonat 0.16's
    /// fixed limits (it has no settings): at most 10 dial requests in flight per connection, each
    /// given 10 s; the dial-back is a new connection from a new port, under this node's
    /// connection limits; and a client asking for an address other than the one its connection
    /// comes from must first send 30 to 100 kB, so that the server cannot be made to flood a
    /// third party.
    pub fn with_autonat_probe_interval(mut self, interval: Duration) -> Self {
        self.autonat_probe_interval = interval.max(Duration::from_millis(100));
        self
    }

    /// Whether an identity was chosen ([`with_keypair`](Self::with_keypair) or
    /// [`with_identity_path`](Self::with_identity_path)) rather than a random key.
    pub fn has_identity(&self) -> bool {
        self.keypair.is_some() || self.identity_path.is_some()
    }

    /// Which wire the node speaks.
    pub fn wire_mode(&self) -> WireMode {
        self.wire_mode
    }

    /// The largest message this node sends or accepts.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The default deadline of unary calls.
    pub fn unary_deadline(&self) -> Duration {
        self.unary_deadline
    }
}
