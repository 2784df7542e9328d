//! [`Pool`]: idle native streams kept per peer, so that calls reuse them instead of negotiating a
//! new stream each.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::swarm::ConnectionId;

use super::io::{Io, shrink_buffers};
use crate::FastMap;

/// At most this many idle streams are kept per peer; more are closed.
const MAX_IDLE_PER_PEER: usize = 64;

/// An open stream with our framing, and the connection it lives on.
pub(crate) struct PooledStream {
    pub io: Io,
    pub connection: ConnectionId,
}

struct Idle {
    stream: PooledStream,
    since: Instant,
}

/// The idle streams of a node, by peer. Bounded: at most [`MAX_IDLE_PER_PEER`] per peer, each
/// closed after the node's pool idle timeout, and purged with its connection.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<FastMap<PeerId, Vec<Idle>>>,
}

impl Pool {
    /// The most recently used idle stream to `peer`, if any.
    pub(crate) fn take(&self, peer: &PeerId) -> Option<PooledStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let streams = idle.get_mut(peer)?;
        let stream = streams.pop().map(|i| i.stream);
        if streams.is_empty() {
            idle.remove(peer);
        }
        stream
    }

    pub(crate) fn put(&self, peer: PeerId, mut stream: PooledStream) {
        shrink_buffers(&mut stream.io);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let streams = idle.entry(peer).or_default();
        if streams.len() < MAX_IDLE_PER_PEER {
            streams.push(Idle {
                stream,
                since: Instant::now(),
            });
        }
    }

    /// Forgets the streams of a closed connection.
    pub(crate) fn purge_connection(&self, peer: &PeerId, connection: ConnectionId) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(streams) = idle.get_mut(peer) {
            streams.retain(|i| i.stream.connection != connection);
            if streams.is_empty() {
                idle.remove(peer);
            }
        }
    }

    /// Closes streams idle for longer than `max_idle`, so that unused connections can close.
    pub(crate) fn evict_idle(&self, max_idle: Duration) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|_, streams| {
            streams.retain(|i| i.since.elapsed() < max_idle);
            !streams.is_empty()
        });
    }

    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
