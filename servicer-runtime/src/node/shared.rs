//! [`Shared`]: the state of a node that its handles, its swarm task and its stubs share.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use libp2p::{Multiaddr, PeerId};

use super::limits::OutboundLimits;
use super::reachability::{Reach, Reachability};
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
    addrs: RwLock<Addrs>,
    /// What [`P2P::visible_maddrs`](super::P2P::visible_maddrs) returns, kept up to date with
    /// `addrs`: callers such as the DHT ask for it on every request.
    visible: RwLock<Vec<Multiaddr>>,
    /// Set once the swarm task has ended.
    shut_down: AtomicBool,
}

/// The addresses the node listens on and what AutoNAT found.
#[derive(Default)]
struct Addrs {
    listen: Vec<Multiaddr>,
    reach: Reach,
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
            addrs: RwLock::default(),
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
        self.update(|addrs| {
            let new = !addrs.listen.contains(&addr);
            if new {
                addrs.listen.push(addr);
            }
            new
        });
    }

    pub(crate) fn remove_listen_addr(&self, addr: &Multiaddr) {
        self.update(|addrs| {
            let before = addrs.listen.len();
            addrs.listen.retain(|a| a != addr);
            addrs.listen.len() != before
        });
    }

    /// AutoNAT confirmed `addr`.
    pub(crate) fn confirm_external_addr(&self, addr: Multiaddr) {
        self.update(|addrs| addrs.reach.confirm(addr));
    }

    /// `addr` is no longer a confirmed external address.
    pub(crate) fn expire_external_addr(&self, addr: &Multiaddr) {
        self.update(|addrs| addrs.reach.expire(addr));
    }

    /// An AutoNAT server could not dial back a tested address.
    pub(crate) fn external_probe_failed(&self) {
        self.update(|addrs| {
            addrs.reach.probe_failed();
            false
        });
    }

    /// The confirmed external addresses.
    pub(crate) fn external_addrs(&self) -> Vec<Multiaddr> {
        self.read().reach.confirmed().to_vec()
    }

    pub(crate) fn reachability(&self) -> Reachability {
        self.read().reach.reachability()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Addrs> {
        self.addrs.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `change` and, when it says the addresses changed, recomputes the visible ones
    /// (with `addrs` still locked, so that concurrent updates apply in order).
    fn update(&self, change: impl FnOnce(&mut Addrs) -> bool) {
        let mut addrs = self.addrs.write().unwrap_or_else(|e| e.into_inner());
        if change(&mut addrs) && self.config.announce_addrs.is_empty() {
            let mut announced = addrs.reach.confirmed().to_vec();
            for addr in &addrs.listen {
                if !announced.contains(addr) {
                    announced.push(addr.clone());
                }
            }
            *self.visible.write().unwrap_or_else(|e| e.into_inner()) =
                visible(&announced, self.local_peer);
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
