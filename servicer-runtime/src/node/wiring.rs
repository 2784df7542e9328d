//! [`Wiring`]: everything a node's [`WireMode`] decides, decided in this one place when the node
//! is built.

use crate::WireMode;
use crate::wire::{Hivemind, Native, Wire, WireId};

/// What a node's wire mode decides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wiring {
    /// The wires the node serves handlers on and calls with.
    wires: &'static [&'static str],
    /// Whether connections translate protocol names without a leading `/` (hivemind's).
    pub translate_names: bool,
    /// Whether the node runs Kademlia to find peers known only by id (hivemind's messages carry
    /// no addresses).
    pub look_up_peers: bool,
}

impl Wiring {
    pub(crate) fn of(mode: WireMode) -> Self {
        match mode {
            WireMode::Native => Wiring {
                wires: &[Native::NAME],
                translate_names: false,
                look_up_peers: false,
            },
            WireMode::Hivemind => Wiring {
                wires: &[Native::NAME, Hivemind::NAME],
                translate_names: true,
                look_up_peers: true,
            },
        }
    }

    /// Whether the node speaks wire `W`.
    pub(crate) fn speaks<W: Wire>(&self) -> bool {
        self.wires.contains(&W::NAME)
    }
}
