//! Peers that failed to answer, banned for a while with exponential backoff.

use std::time::{Duration, Instant};

use servicer_runtime::PeerId;

use crate::FastMap;

/// Peers with a failure history kept; past it, those not banned now are forgotten.
const MAX_REMEMBERED: usize = 4096;

/// Bans a peer for `base_time * backoff_rate ^ failures` after each failure (hivemind's
/// `Blacklist`); a success clears it.
#[derive(Debug, Clone)]
pub struct Blacklist {
    base_time: Duration,
    backoff_rate: f64,
    banned_until: FastMap<PeerId, Instant>,
    failures: FastMap<PeerId, i32>,
}

impl Blacklist {
    /// A blacklist; a zero `base_time` bans nobody.
    pub fn new(base_time: Duration, backoff_rate: f64) -> Self {
        Blacklist {
            base_time,
            backoff_rate,
            banned_until: FastMap::default(),
            failures: FastMap::default(),
        }
    }

    /// Whether `peer` is banned now.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.banned_until
            .get(peer)
            .is_some_and(|until| Instant::now() < *until)
    }

    /// The peers banned now.
    pub fn banned(&self) -> Vec<PeerId> {
        let now = Instant::now();
        self.banned_until
            .iter()
            .filter(|(_, until)| now < **until)
            .map(|(peer, _)| *peer)
            .collect()
    }

    /// Bans `peer` unless it is banned already.
    pub fn register_failure(&mut self, peer: PeerId) {
        if self.contains(&peer) || self.base_time.is_zero() {
            return;
        }
        if self.failures.len() >= MAX_REMEMBERED && !self.failures.contains_key(&peer) {
            // Peers whose ban ended lose their history first: others' failures cannot grow this.
            let now = Instant::now();
            self.banned_until.retain(|_, until| now < *until);
            let banned = &self.banned_until;
            self.failures.retain(|peer, _| banned.contains_key(peer));
            if self.failures.len() >= MAX_REMEMBERED {
                return;
            }
        }
        let failures = self.failures.entry(peer).or_insert(0);
        let ban = self
            .base_time
            .mul_f64(self.backoff_rate.powi(*failures).min(1e6));
        *failures += 1;
        self.banned_until.insert(peer, Instant::now() + ban);
    }

    /// Lifts the ban and forgets past failures.
    pub fn register_success(&mut self, peer: &PeerId) {
        self.banned_until.remove(peer);
        self.failures.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_success_clears() {
        let base = Duration::from_millis(10);
        let mut list = Blacklist::new(base, 2.0);
        let peer = PeerId::random();
        assert!(!list.contains(&peer));
        for failures in 0..3 {
            let before = Instant::now();
            list.register_failure(peer);
            let ban = base.mul_f64(2f64.powi(failures));
            let until = list.banned_until[&peer];
            assert!(until >= before + ban && until <= Instant::now() + ban);
            // A failure while banned does not extend the ban.
            list.register_failure(peer);
            assert_eq!(list.banned_until[&peer], until);
            std::thread::sleep(ban + Duration::from_millis(5));
            assert!(!list.contains(&peer));
        }
        list.register_failure(peer);
        list.register_success(&peer);
        assert!(!list.contains(&peer));
        assert!(!list.failures.contains_key(&peer));
        let mut off = Blacklist::new(Duration::ZERO, 2.0);
        off.register_failure(peer);
        assert!(!off.contains(&peer));
    }
}
