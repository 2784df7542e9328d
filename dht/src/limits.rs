//! Bounds on what remote peers can make a node hold or do, so that one peer cannot fill a node's
//! memory or tie it up with huge requests.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

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
    /// The most value bytes (subkeys included) that one remote peer may have written and that are
    /// still held, in storage and cache. Default 64 MiB.
    pub max_bytes_per_peer: usize,
    /// The most value bytes all remote peers together may have written and that are still held.
    /// Default 1 GiB.
    pub max_bytes: usize,
    /// The furthest in the future a record may expire: stores past it are refused
    /// ([`Rejection::ExpiresTooLate`]), and values that other nodes answer with past it are taken
    /// as not found, so that nobody pins a record, or wins every lookup of a key, for good.
    /// Default 24 hours.
    pub max_ttl: Duration,
    /// The most bytes of values and node records one `rpc_find` answer carries. Keys whose value
    /// does not fit are answered without it (with their nearest nodes), a key asked twice is
    /// answered once. Keep it above [`max_value_size`](Self::max_value_size) and below the
    /// node's message size. Default 3 MiB (the message cap is 4 MiB).
    pub max_answer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value_size: 1 << 20,
            max_keys_per_request: 1024,
            max_subkeys_per_dictionary: 16_384,
            max_records_per_peer: 100_000,
            max_records: 1_000_000,
            max_bytes_per_peer: 64 << 20,
            max_bytes: 1 << 30,
            max_ttl: Duration::from_secs(24 * 60 * 60),
            max_answer_bytes: 3 << 20,
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

    /// Sets [`max_bytes_per_peer`](Self::max_bytes_per_peer).
    pub fn with_max_bytes_per_peer(mut self, bytes: usize) -> Self {
        self.max_bytes_per_peer = bytes;
        self
    }

    /// Sets [`max_bytes`](Self::max_bytes).
    pub fn with_max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Sets [`max_ttl`](Self::max_ttl).
    pub fn with_max_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// Sets [`max_answer_bytes`](Self::max_answer_bytes).
    pub fn with_max_answer_bytes(mut self, bytes: usize) -> Self {
        self.max_answer_bytes = bytes;
        self
    }

    /// Whether an expiration is one this node accepts at `now`: finite, and at most
    /// [`max_ttl`](Self::max_ttl) ahead.
    pub(crate) fn acceptable_expiration(&self, expiration_time: DhtTime, now: DhtTime) -> bool {
        expiration_time.is_finite() && expiration_time <= now + self.max_ttl.as_secs_f64()
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
    /// The sender holds [`Limits::max_records_per_peer`] records or
    /// [`Limits::max_bytes_per_peer`] bytes on this node already.
    #[error("the sender's quota of stored records is used up")]
    PeerQuotaExceeded,
    /// Remote peers hold [`Limits::max_records`] records or [`Limits::max_bytes`] bytes on this
    /// node already.
    #[error("the node stores as many records as it accepts")]
    StorageFull,
    /// The expiration is further ahead than [`Limits::max_ttl`].
    #[error("the record expires later than the node accepts")]
    ExpiresTooLate,
    /// The key holds a dictionary with subkeys their owners signed: only a dictionary store may
    /// add to it, not a regular value that would replace it.
    #[error("the key holds records their owners signed")]
    Protected,
    /// The node refused without a reason: hivemind's wire answers a bare `false` (an outdated or
    /// invalid record, as far as hivemind's rules go).
    #[error("the node refused the record")]
    Refused,
}

impl Rejection {
    /// Every variant, in declaration order: [`index`](Self::index) is the position here.
    pub(crate) const ALL: [Rejection; 10] = [
        Rejection::Invalid,
        Rejection::Outdated,
        Rejection::Expired,
        Rejection::ValueTooLarge,
        Rejection::TooManySubkeys,
        Rejection::PeerQuotaExceeded,
        Rejection::StorageFull,
        Rejection::ExpiresTooLate,
        Rejection::Protected,
        Rejection::Refused,
    ];

    /// The reason in snake case (`"value_too_large"`), as metrics label it: one fixed string per
    /// variant, so what peers send never adds a label value.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::Invalid => "invalid",
            Rejection::Outdated => "outdated",
            Rejection::Expired => "expired",
            Rejection::ValueTooLarge => "value_too_large",
            Rejection::TooManySubkeys => "too_many_subkeys",
            Rejection::PeerQuotaExceeded => "peer_quota_exceeded",
            Rejection::StorageFull => "storage_full",
            Rejection::ExpiresTooLate => "expires_too_late",
            Rejection::Protected => "protected",
            Rejection::Refused => "refused",
        }
    }

    /// The variant's position in [`ALL`](Self::ALL), for arrays of counters indexed by reason.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One record: a key and its subkey (msgpack bytes, or the regular-value marker).
pub(crate) type RecordId = (DhtId, Vec<u8>);

/// Who wrote the records remote peers stored, so that the record and byte quotas of [`Limits`]
/// can be enforced. A record counts against its writer until it expires or someone else
/// overwrites it; only records actually stored are counted.
#[derive(Default)]
pub(crate) struct Writers {
    by_record: HashMap<RecordId, Written>,
    per_peer: HashMap<PeerId, Usage>,
    /// Bytes of every record in `by_record`.
    bytes: usize,
    /// Expirations, soonest first; entries of overwritten records are skipped when popped.
    expiry: BinaryHeap<Reverse<(Expiration, RecordId)>>,
}

/// One counted record.
struct Written {
    writer: PeerId,
    expiration_time: DhtTime,
    bytes: usize,
}

/// What one peer has written and is still held.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    records: usize,
    bytes: usize,
}

/// What the items of a request checked so far would add to the counts (an overestimate when one
/// request writes a record twice).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Pending {
    records: usize,
    bytes: usize,
    records_total: usize,
    bytes_total: usize,
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
                .is_some_and(|w| w.expiration_time == at.0)
            {
                self.release(&record);
            }
        }
        // Overwrites leave stale heap entries behind: rebuild before they dominate.
        if self.expiry.len() > 2 * self.by_record.len() + 1024 {
            self.expiry = self
                .by_record
                .iter()
                .map(|(record, w)| Reverse((Expiration(w.expiration_time), record.clone())))
                .collect();
        }
    }

    /// Whether `writer` may write `records` (each with its size in bytes) within its quotas and
    /// the node's.
    pub fn check<'a>(
        &self,
        limits: &Limits,
        writer: &PeerId,
        records: impl IntoIterator<Item = (&'a RecordId, usize)>,
    ) -> Result<(), Rejection> {
        self.check_after(limits, writer, records, &mut Pending::default())
    }

    /// [`check`](Self::check) for the next item of a request, after the earlier items that
    /// passed (`pending`, which this item's records join when it passes too): the items of one
    /// request together stay within the quotas, so none past them reaches the validators.
    pub fn check_after<'a>(
        &self,
        limits: &Limits,
        writer: &PeerId,
        records: impl IntoIterator<Item = (&'a RecordId, usize)>,
        pending: &mut Pending,
    ) -> Result<(), Rejection> {
        let base = self.per_peer.get(writer).copied().unwrap_or_default();
        let mut usage = Usage {
            records: base.records + pending.records,
            bytes: base.bytes + pending.bytes,
        };
        let mut records_total = self.by_record.len() + pending.records_total;
        let mut bytes_total = self.bytes + pending.bytes_total;
        for (record, bytes) in records {
            match self.by_record.get(record) {
                Some(w) if w.writer == *writer => {
                    usage.bytes = usage.bytes.saturating_sub(w.bytes) + bytes;
                    bytes_total = bytes_total.saturating_sub(w.bytes) + bytes;
                }
                Some(w) => {
                    usage.records += 1;
                    usage.bytes += bytes;
                    bytes_total = bytes_total.saturating_sub(w.bytes) + bytes;
                }
                None => {
                    usage.records += 1;
                    usage.bytes += bytes;
                    records_total += 1;
                    bytes_total += bytes;
                }
            }
        }
        if usage.records > limits.max_records_per_peer || usage.bytes > limits.max_bytes_per_peer {
            return Err(Rejection::PeerQuotaExceeded);
        }
        if records_total > limits.max_records || bytes_total > limits.max_bytes {
            return Err(Rejection::StorageFull);
        }
        *pending = Pending {
            records: usage.records - base.records,
            bytes: usage.bytes.saturating_sub(base.bytes),
            records_total: records_total - self.by_record.len(),
            bytes_total: bytes_total.saturating_sub(self.bytes),
        };
        Ok(())
    }

    /// Records that `writer` wrote `record` of `bytes` bytes, and that it is stored (`None`: this
    /// node itself, which has no quota).
    pub fn wrote(
        &mut self,
        writer: Option<PeerId>,
        record: RecordId,
        expiration_time: DhtTime,
        bytes: usize,
    ) {
        self.release(&record);
        let Some(writer) = writer else { return };
        let usage = self.per_peer.entry(writer).or_default();
        usage.records += 1;
        usage.bytes += bytes;
        self.bytes += bytes;
        self.expiry
            .push(Reverse((Expiration(expiration_time), record.clone())));
        self.by_record.insert(
            record,
            Written {
                writer,
                expiration_time,
                bytes,
            },
        );
    }

    fn release(&mut self, record: &RecordId) {
        let Some(written) = self.by_record.remove(record) else {
            return;
        };
        self.bytes = self.bytes.saturating_sub(written.bytes);
        if let Some(usage) = self.per_peer.get_mut(&written.writer) {
            usage.records -= 1;
            usage.bytes = usage.bytes.saturating_sub(written.bytes);
            if usage.records == 0 {
                self.per_peer.remove(&written.writer);
            }
        }
    }

    /// How many held records `peer` wrote.
    pub fn records_of(&self, peer: &PeerId) -> usize {
        self.per_peer.get(peer).map_or(0, |usage| usage.records)
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
        writers.wrote(Some(a), rec(1), 10.0, 1);
        writers.wrote(Some(a), rec(2), 20.0, 1);
        assert_eq!(
            writers.check(&limits, &a, [(&rec(3), 1)]),
            Err(Rejection::PeerQuotaExceeded)
        );
        // Rewriting its own record is free.
        assert_eq!(writers.check(&limits, &a, [(&rec(2), 1)]), Ok(()));
        writers.wrote(Some(b), rec(3), 30.0, 1);
        assert_eq!(
            writers.check(&limits, &b, [(&rec(4), 1)]),
            Err(Rejection::StorageFull)
        );
        // b overwrites a's record: it moves to b's count.
        writers.wrote(Some(b), rec(1), 40.0, 1);
        assert_eq!((writers.records_of(&a), writers.records_of(&b)), (1, 2));
        // The stale heap entry of rec(1) at 10.0 must not release b's record.
        writers.expire(15.0);
        assert_eq!((writers.records_of(&a), writers.records_of(&b)), (1, 2));
        writers.expire(25.0);
        assert_eq!((writers.records_of(&a), writers.len()), (0, 2));
        // The node's own write takes a record out of the accounting.
        writers.wrote(None, rec(3), 50.0, 1);
        assert_eq!((writers.records_of(&b), writers.len()), (1, 1));
    }

    #[test]
    fn every_rejection_has_its_index_and_own_label() {
        let mut labels = std::collections::HashSet::new();
        for (i, rejection) in Rejection::ALL.iter().enumerate() {
            assert_eq!(rejection.index(), i);
            assert!(labels.insert(rejection.label()));
        }
    }

    #[test]
    fn stale_entries_are_compacted() {
        let mut writers = Writers::default();
        let a = PeerId::random();
        for i in 0..5000 {
            writers.wrote(Some(a), rec(1), 100.0 + i as f64, 1);
        }
        writers.expire(0.0);
        assert!(writers.expiry.len() <= 1024 + 2);
        assert_eq!(writers.len(), 1);
    }
}
