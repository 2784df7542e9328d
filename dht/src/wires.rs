//! [`DhtProtocol::create`]: the one place that picks the DHT's wire, from the wire the node
//! speaks. Everything below asks the chosen [`DhtWire`] and never the node's wire mode.

use std::sync::Arc;

use servicer_runtime::{P2P, PeerId, WireMode};

use crate::error::DhtError;
use crate::hivemind_wire::HivemindWire;
use crate::id::DhtId;
use crate::messages::PingRequest;
use crate::protocol::{DhtProtocol, DhtWire, NativeWire, ProtocolConfig, Remote};

impl DhtProtocol {
    /// Creates the protocol on `p2p` and, unless in client mode, serves its handlers there. It
    /// speaks the wire `p2p` speaks: hivemind's messages on a node in `WireMode::Hivemind`, its
    /// own otherwise.
    pub fn create(
        p2p: &P2P,
        node_id: DhtId,
        config: ProtocolConfig,
    ) -> Result<DhtProtocol, DhtError> {
        DhtProtocol::with_wire(p2p, node_id, config, wire_of(p2p))
    }
}

impl DhtProtocol {
    /// The other wire, if `peer` answers a ping on it: tells a DHT node of the other wire from a
    /// peer that serves no DHT (bootstrap diagnostics). Nothing is learnt from the answer.
    pub(crate) async fn answers_on_other_wire(&self, peer: PeerId) -> Option<WireMode> {
        let p2p = self.p2p();
        let (mode, wire): (WireMode, Arc<dyn DhtWire>) = match p2p.config().wire_mode() {
            WireMode::Hivemind => (WireMode::Native, Arc::new(NativeWire)),
            _ => (WireMode::Hivemind, Arc::new(HivemindWire)),
        };
        let remote = Remote {
            p2p,
            peer,
            deadline: self.config().wait_timeout,
        };
        let request = PingRequest {
            peer: self.node_info(),
            validate: false,
        };
        wire.ping(remote, request).await.ok().map(|_| mode)
    }
}

/// The DHT wire for the wire `p2p` speaks.
fn wire_of(p2p: &P2P) -> Arc<dyn DhtWire> {
    match p2p.config().wire_mode() {
        WireMode::Hivemind => Arc::new(HivemindWire),
        // The native wire, and any wire the runtime adds that has no DHT messages of its own.
        _ => Arc::new(NativeWire),
    }
}
