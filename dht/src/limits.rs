//! Bounds on what remote peers can make a node hold or do, so that one peer cannot fill a node's
//! memory or tie it up with huge requests.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use serde::{Deserialize, Serialize};
use servicer_runtime::PeerId;

use crate::DhtId;
use crate::time::DhtTime;

/// Limits a node enforces on the requests it serves. Each has a documented default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest value (msgpack bytes, signature included) a node stores or decodes.
    /// Default 1 MiB.
    pub max_value_size: usize,
    /// The most items in one `rpc_store` or keys in one `rpc_find`; larger requests are refused
    /// whole (callers split theirs). Default 1024.
    pub max_keys_per_request: usize,
    /// The most subkeys one dictionary value may have. Default 16,384.
    pub max_subkeys_per_dictionary: usize,
    /// The most records (a regular value, or one subkey of a dictionary) that one remote peer may
    /// have written and that are still held, in storage and cache. Default 100,000.
    pub max_records_per_peer: usize,
    /// The most records all remote peers together may have written and that are still held.
    /// Default 1,000,000.
    pub max_records: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value_size: 1 << 20,
            max_keys_per_request: 1024,
            max_subkeys_per_dictionary: 16_384,
            max_records_per_peer: 100_000,
            max_records: 1_000_000,
        }
    }
}

impl Limits {
    /// Sets [`max_value_size`](Self::max_value_size).
    pub fn with_max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// Sets [`max_keys_per_request`](Self::max_keys_per_request) (at least 1).
    pub fn with_max_keys_per_request(mut self, keys: usize) -> Self {
        self.max_keys_per_request = keys.max(1);
        self
    }

    /// Sets [`max_subkeys_per_dictionary`](Self::max_subkeys_per_dictionary).
    pub fn with_max_subkeys_per_dictionary(mut self, subkeys: usize) -> Self {
        self.max_subkeys_per_dictionary = subkeys;
        self
    }

    /// Sets [`max_records_per_peer`](Self::max_records_per_peer).
    pub fn with_max_records_per_peer(mut self, records: usize) -> Self {
        self.max_records_per_peer = records;
        self
    }

    /// Sets [`max_records`](Self::max_records).
    pub fn with_max_records(mut self, records: usize) -> Self {
        self.max_records = records;
        self
    }
}

/// Why a node did not store an item: the per-item answer of `rpc_store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// A validator refused the record (bad signature, wrong type, ...).
    #[error("the record failed validation")]
    Invalid,
    /// The node holds a value for it that expires later.
    #[error("a newer value is already stored")]
    Outdated,
    /// The record's expiration time has passed.
    #[error("the record has expired")]
    Expired,
    /// The value exceeds [`Limits::max_value_size`].
    #[error("the value is larger than the node accepts")]
    ValueTooLarge,
    /// The dictionary would exceed [`Limits::max_subkeys_per_dictionary`].
    #[error("the dictionary has as many subkeys as the node accepts")]
    TooManySubkeys,
    /// The sender holds [`Limits::max_records_per_peer`] records on this node already.
    #[error("the sender's quota of stored records is used up")]
    PeerQuotaExceeded,
    /// Remote peers hold [`Limits::max_records`] records on this node already.
    #[error("the node stores as many records as it accepts")]
    StorageFull,
    /// The node refused without a reason: hivemind's wire answers a bare `false` (an outdated or
    /// invalid record, as far as hivemind's rules go).
    #[error("the node refused the record")]
    Refused,
}

/// One record: a key and its subkey (msgpack bytes, or the regular-value marker).
pub(crate) type RecordId = (DhtId, Vec<u8>);

/// Who wrote the records remote peers stored, so that [`Limits::max_records_per_peer`] and
/// [`Limits::max_records`] can be enforced. A record counts against its writer until it expires
/// or someone else overwrites it.
#[derive(Default)]
pub(crate) struct Writers {
    by_record: HashMap<RecordId, (PeerId, DhtTime)>,
    per_peer: HashMap<PeerId, usize>,
    /// Expirations, soonest first; entries of overwritten records are skipped when popped.
    expiry: BinaryHeap<Reverse<(Expiration, RecordId)>>,
}

/// An expiration time ordered by `f64::total_cmp`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Expiration(DhtTime);

impl Eq for Expiration {}

impl PartialOrd for Expiration {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Expiration {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Writers {
    /// Forgets records that expired by `now`.
    pub fn expire(&mut self, now: DhtTime) {
        while let Some(Reverse((at, _))) = self.expiry.peek() {
            if at.0 > now {
                break;
            }
            let Some(Reverse((at, record))) = self.expiry.pop() else {
                break;
            };
            if self
                .by_record
                .get(&record)
                .is_some_and(|(_, exp)| *exp == at.0)
            {
                self.release(&record);
            }
        }
        // Overwrites leave stale heap entries behind: rebuild before they dominate.
        if self.expiry.len() > 2 * self.by_record.len() + 1024 {
            self.expiry = self
                .by_record
                .iter()
                .map(|(record, (_, exp))| Reverse((Expiration(*exp), record.clone())))
                .collect();
        }
    }

    /// Whether `writer` may write `records` within its quota and the node's.
    pub fn check<'a>(
        &self,
        limits: &Limits,
        writer: &PeerId,
        records: impl IntoIterator<Item = &'a RecordId>,
    ) -> Result<(), Rejection> {
        let mut theirs_new = 0;
        let mut new = 0;
        for record in records {
            match self.by_record.get(record) {
                Some((owner, _)) if owner == writer => {}
                Some(_) => theirs_new += 1,
                None => {
                    theirs_new += 1;
                    new += 1;
                }
            }
        }
        if self.per_peer.get(writer).copied().unwrap_or(0) + theirs_new
            > limits.max_records_per_peer
        {
            return Err(Rejection::PeerQuotaExceeded);
        }
        if self.by_record.len() + new > limits.max_records {
            return Err(Rejection::StorageFull);
        }
        Ok(())
    }

    /// Records that `writer` wrote `record` (`None`: this node itself, which has no quota).
    pub fn wrote(&mut self, writer: Option<PeerId>, record: RecordId, expiration_time: DhtTime) {
        self.release(&record);
        let Some(writer) = writer else { return };
        *self.per_peer.entry(writer).or_default() += 1;
        self.expiry
            .push(Reverse((Expiration(expiration_time), record.clone())));
        self.by_record.insert(record, (writer, expiration_time));
    }

    fn release(&mut self, record: &RecordId) {
        let Some((writer, _)) = self.by_record.remove(record) else {
            return;
        };
        if let Some(count) = self.per_peer.get_mut(&writer) {
            *count -= 1;
            if *count == 0 {
                self.per_peer.remove(&writer);
            }
        }
    }

    /// How many held records `peer` wrote.
    pub fn records_of(&self, peer: &PeerId) -> usize {
        self.per_peer.get(peer).copied().unwrap_or(0)
    }

    /// How many held records remote peers wrote.
    pub fn len(&self) -> usize {
        self.by_record.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u8) -> RecordId {
        (DhtId::generate(i as i64), vec![0xc0])
    }

    #[test]
    fn quotas_count_until_expiry_or_overwrite() {
        let limits = Limits::default()
            .with_max_records_per_peer(2)
            .with_max_records(3);
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut writers = Writers::default();
        writers.wrote(Some(a), rec(1), 10.0);
        writers.wrote(Some(a), rec(2), 20.0);
        assert_eq!(
            writers.check(&limits, &a, [&rec(3)]),
            Err(Rejection::PeerQuotaExceeded)
        );
        // Rewriting its own record is free.
        assert_eq!(writers.check(&limits, &a, [&rec(2)]), Ok(()));
        writers.wrote(Some(b), rec(3), 30.0);
        assert_eq!(
            writers.check(&limits, &b, [&rec(4)]),
            Err(Rejection::StorageFull)
        );
        // b overwrites a's record: it moves to b's count.
        writers.wrote(Some(b), rec(1), 40.0);
        assert_eq!((writers.records_of(&a), writers.records_of(&b)), (1, 2));
        // The stale heap entry of rec(1) at 10.0 must not release b's record.
        writers.expire(15.0);
        assert_eq!((writers.records_of(&a), writers.records_of(&b)), (1, 2));
        writers.expire(25.0);
        assert_eq!((writers.records_of(&a), writers.len()), (0, 2));
        // The node's own write takes a record out of the accounting.
        writers.wrote(None, rec(3), 50.0);
        assert_eq!((writers.records_of(&b), writers.len()), (1, 1));
    }

    #[test]
    fn stale_entries_are_compacted() {
        let mut writers = Writers::default();
        let a = PeerId::random();
        for i in 0..5000 {
            writers.wrote(Some(a), rec(1), 100.0 + i as f64);
        }
        writers.expire(0.0);
        assert!(writers.expiry.len() <= 1024 + 2);
        assert_eq!(writers.len(), 1);
    }
}
