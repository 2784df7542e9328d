//! [`Replications`]: the bound on hivemind's replication of stored values to newly met nodes.
//! Each replication scans the storage and sends a store, so a peer that shows up under ever new
//! node ids (or many peers) must not be able to make the node do it at will: a node is sent
//! values only when it first answers a call of this node's (the routing table marks it
//! verified), at most once per peer per [`PER_PEER_INTERVAL`], and at most [`MAX_IN_FLIGHT`] at
//! once.

use std::time::{Duration, Instant};

use servicer_runtime::PeerId;

use crate::FastMap;

/// Replications running at once.
pub(super) const MAX_IN_FLIGHT: usize = 8;

/// A peer gets at most one replication per this interval.
pub(super) const PER_PEER_INTERVAL: Duration = Duration::from_secs(60);

/// Peers remembered for [`PER_PEER_INTERVAL`]; past it, no new replication starts until the
/// oldest are forgotten.
const MAX_REMEMBERED: usize = 4096;

/// Replications under way, and the peers that recently had one.
#[derive(Default)]
pub(super) struct Replications {
    in_flight: usize,
    recent: FastMap<PeerId, Instant>,
}

impl Replications {
    /// Whether a replication to `peer` may start now; if so it counts as started.
    pub(super) fn try_start(&mut self, peer: PeerId) -> bool {
        let now = Instant::now();
        if self.recent.len() >= MAX_REMEMBERED {
            self.recent
                .retain(|_, at| now.duration_since(*at) < PER_PEER_INTERVAL);
        }
        let recently = self
            .recent
            .get(&peer)
            .is_some_and(|at| now.duration_since(*at) < PER_PEER_INTERVAL);
        if recently || self.in_flight >= MAX_IN_FLIGHT || self.recent.len() >= MAX_REMEMBERED {
            return false;
        }
        self.recent.insert(peer, now);
        self.in_flight += 1;
        true
    }

    /// A replication started by [`try_start`](Self::try_start) ended.
    pub(super) fn finish(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_peer_and_a_few_at_once() {
        let mut replications = Replications::default();
        let peer = PeerId::random();
        assert!(replications.try_start(peer));
        assert!(!replications.try_start(peer));
        replications.finish();
        assert!(!replications.try_start(peer));
        let others: Vec<bool> = (0..MAX_IN_FLIGHT)
            .map(|_| replications.try_start(PeerId::random()))
            .collect();
        assert_eq!(
            others.iter().filter(|started| **started).count(),
            MAX_IN_FLIGHT
        );
        assert!(!replications.try_start(PeerId::random()));
    }
}
