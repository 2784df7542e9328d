//! Concurrency limits: inbound calls (per peer and in total) and outbound streams per peer.

use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{FastMap, P2PConfig, RpcError};

/// Permits held while an inbound call runs.
pub(crate) struct InboundPermits {
    _total: OwnedSemaphorePermit,
    _peer: OwnedSemaphorePermit,
}

pub(crate) struct Limits {
    inbound_total: Arc<Semaphore>,
    inbound_per_peer: usize,
    outbound_per_peer: usize,
    inbound: Mutex<FastMap<PeerId, Arc<Semaphore>>>,
    outbound: Mutex<FastMap<PeerId, Arc<Semaphore>>>,
}

impl Limits {
    pub(crate) fn new(config: &P2PConfig) -> Self {
        Limits {
            inbound_total: Arc::new(Semaphore::new(config.max_inbound_calls)),
            inbound_per_peer: config.max_inbound_calls_per_peer,
            outbound_per_peer: config.max_outbound_streams_per_peer,
            inbound: Mutex::default(),
            outbound: Mutex::default(),
        }
    }

    fn semaphore(
        map: &Mutex<FastMap<PeerId, Arc<Semaphore>>>,
        peer: PeerId,
        size: usize,
    ) -> Arc<Semaphore> {
        map.lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(peer)
            .or_insert_with(|| Arc::new(Semaphore::new(size)))
            .clone()
    }

    /// A slot for one inbound call, or `None` when the peer or the node is at its limit.
    pub(crate) fn try_acquire_inbound(&self, peer: PeerId) -> Option<InboundPermits> {
        let peer_sem = Self::semaphore(&self.inbound, peer, self.inbound_per_peer);
        let peer = peer_sem.try_acquire_owned().ok()?;
        let total = self.inbound_total.clone().try_acquire_owned().ok()?;
        Some(InboundPermits {
            _total: total,
            _peer: peer,
        })
    }

    /// Waits for a slot for one outbound call to `peer`.
    pub(crate) async fn acquire_outbound(
        &self,
        peer: PeerId,
    ) -> Result<OwnedSemaphorePermit, RpcError> {
        Self::semaphore(&self.outbound, peer, self.outbound_per_peer)
            .acquire_owned()
            .await
            .map_err(|_| RpcError::Shutdown)
    }

    /// Drops the per-peer state of a peer we are no longer connected to.
    pub(crate) fn forget(&self, peer: &PeerId) {
        for map in [&self.inbound, &self.outbound] {
            let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
            // A semaphore still referenced elsewhere belongs to calls in flight: keep it.
            if map.get(peer).is_some_and(|s| Arc::strong_count(s) == 1) {
                map.remove(peer);
            }
        }
    }
}
