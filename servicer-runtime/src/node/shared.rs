//! [`Shared`]: the state of a node that its handles, its swarm task and its stubs share.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use libp2p::{Multiaddr, PeerId};

use super::limits::OutboundLimits;
use super::wiring::Wiring;
use crate::P2PConfig;
use crate::serve::Server;
use crate::wire::Pool;

/// State shared by the handle, the swarm task and the stubs.
pub(crate) struct Shared {
    pub local_peer: PeerId,
    pub config: P2PConfig,
    pub wiring: Wiring,
    pub server: Arc<Server>,
    pub outbound: OutboundLimits,
    pub pool: Pool,
    listen_addrs: RwLock<Vec<Multiaddr>>,
    /// What [`P2P::visible_maddrs`](super::P2P::visible_maddrs) returns, kept up to date with `listen_addrs`: callers such as
    /// the DHT ask for it on every request.
    visible: RwLock<Vec<Multiaddr>>,
    /// Set once the swarm task has ended.
    shut_down: AtomicBool,
}

impl Shared {
    pub(crate) fn new(
        local_peer: PeerId,
        config: P2PConfig,
        wiring: Wiring,
        server: Arc<Server>,
    ) -> Self {
        Shared {
            local_peer,
            wiring,
            outbound: OutboundLimits::new(config.max_outbound_streams_per_peer),
            server,
            pool: Pool::default(),
            listen_addrs: RwLock::default(),
            visible: RwLock::new(visible(&config.announce_addrs, local_peer)),
            config,
            shut_down: AtomicBool::new(false),
        }
    }

    /// What [`P2P::visible_maddrs`](super::P2P::visible_maddrs) returns.
    pub(crate) fn visible_maddrs(&self) -> Vec<Multiaddr> {
        self.visible
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// The node is gone: its server refuses calls and its handles see it shut down.
    pub(crate) fn close(&self) {
        self.server.close();
        self.shut_down.store(true, Ordering::Release);
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
