//! [`Reachability`]: whether other peers can dial this node directly, as AutoNAT finds out.

use libp2p::Multiaddr;

/// Whether other peers can dial this node directly, from AutoNAT (v2) probes: the node asks the
/// peers it dialled to dial back the addresses that identify saw for it, each over a new
/// connection from a new port.
///
/// See [`P2P::reachability`](crate::P2P::reachability) and
/// [`P2P::external_addrs`](crate::P2P::external_addrs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Reachability {
    /// No probe has finished yet (no AutoNAT server among the peers this node dialled, or no
    /// address observed for it yet).
    #[default]
    Unknown,
    /// A server dialled back at least one address: it is confirmed and announced.
    Public,
    /// Servers failed to dial back every address tested so far, and none is confirmed (a node
    /// behind a NAT or a firewall).
    Private,
}

impl std::fmt::Display for Reachability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reachability::Unknown => "unknown",
            Reachability::Public => "public",
            Reachability::Private => "private",
        })
    }
}

/// What AutoNAT found so far: the confirmed external addresses, and whether a probe failed.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    confirmed: Vec<Multiaddr>,
    failed: bool,
}

impl Reach {
    /// The confirmed external addresses, oldest first.
    pub(crate) fn confirmed(&self) -> &[Multiaddr] {
        &self.confirmed
    }

    /// Whether this node is reachable.
    pub(crate) fn reachability(&self) -> Reachability {
        match (self.confirmed.is_empty(), self.failed) {
            (false, _) => Reachability::Public,
            (true, true) => Reachability::Private,
            (true, false) => Reachability::Unknown,
        }
    }

    /// A server dialled `addr` back. Returns whether it was new.
    pub(crate) fn confirm(&mut self, addr: Multiaddr) -> bool {
        if self.confirmed.contains(&addr) {
            return false;
        }
        self.confirmed.push(addr);
        true
    }

    /// `addr` is no longer confirmed. Returns whether it was.
    pub(crate) fn expire(&mut self, addr: &Multiaddr) -> bool {
        let before = self.confirmed.len();
        self.confirmed.retain(|a| a != addr);
        self.confirmed.len() != before
    }

    /// A server could not dial back a tested address.
    pub(crate) fn probe_failed(&mut self) {
        self.failed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_once_confirmed_private_after_a_failure_alone() {
        let mut reach = Reach::default();
        assert_eq!(reach.reachability(), Reachability::Unknown);
        reach.probe_failed();
        assert_eq!(reach.reachability(), Reachability::Private);
        let addr: Multiaddr = "/ip4/10.77.0.2/tcp/4001".parse().unwrap();
        assert!(reach.confirm(addr.clone()));
        assert!(!reach.confirm(addr.clone()));
        assert_eq!(reach.reachability(), Reachability::Public);
        assert!(reach.expire(&addr));
        assert_eq!(reach.reachability(), Reachability::Private);
    }
}
