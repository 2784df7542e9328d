//! The rules every record and every met node goes through: limits and validators on stores,
//! the routing table's updates, and hivemind's replication of stored values to new nodes.

use servicer_runtime::PeerId;

use super::{DhtProtocol, ProtocolState};
use crate::id::DhtId;
use crate::limits::{Limits, Pending, RecordId, Rejection};
use crate::messages::{DictEntry, StoreItem, StoreValue};
use crate::time::{DhtTime, get_dht_time};
use crate::validation::{DhtRecord, REGULAR_SUBKEY};
use crate::value::is_subkey;

impl DhtProtocol {
    /// Whether a record passes the validators.
    pub(super) fn valid(
        &self,
        key: &DhtId,
        subkey: &[u8],
        value: &[u8],
        expiration_time: DhtTime,
    ) -> bool {
        let validator = &self.inner.validator;
        validator.is_empty()
            || validator.validate(&DhtRecord {
                key: key.to_bytes().to_vec(),
                subkey: subkey.to_vec(),
                value: value.to_vec(),
                expiration_time,
            })
    }

    /// Whether every record of a store item passes the validators.
    pub(super) fn valid_item(&self, item: &StoreItem) -> bool {
        match &item.value {
            StoreValue::Regular(value) => {
                self.valid(&item.key, REGULAR_SUBKEY, value, item.expiration_time)
            }
            StoreValue::Subkey { subkey, value } => {
                self.valid(&item.key, subkey, value, item.expiration_time)
            }
            StoreValue::Dictionary(entries) => entries
                .iter()
                .all(|e| self.valid(&item.key, &e.subkey, &e.value, e.expiration_time)),
        }
    }

    /// Stores items written by `sender` (`None`: this node itself): limits and quotas, then
    /// validators, then storage or cache. A result per item.
    pub(crate) fn apply_store(
        &self,
        sender: Option<PeerId>,
        items: Vec<StoreItem>,
    ) -> Vec<Result<(), Rejection>> {
        let mut checked = self.admit_items(sender.as_ref(), &items);
        self.validate_items(&items, &mut checked);
        self.commit_items(sender, items, checked)
    }

    /// [`apply_store`](Self::apply_store) for a store request from `sender`: the validators
    /// (signature checks) run after the quotas, and, when there are many records, on a blocking
    /// thread among at most as many as there are cores, not on the async workers.
    pub(crate) async fn apply_remote_store(
        &self,
        sender: PeerId,
        items: Vec<StoreItem>,
    ) -> Vec<Result<(), Rejection>> {
        let results = self.decide_remote_store(sender, items).await;
        self.inner.stores.count(&results);
        results
    }

    /// The answers of [`apply_remote_store`](Self::apply_remote_store), before they are counted.
    async fn decide_remote_store(
        &self,
        sender: PeerId,
        items: Vec<StoreItem>,
    ) -> Vec<Result<(), Rejection>> {
        let mut checked = self.admit_items(Some(&sender), &items);
        let records: usize = items
            .iter()
            .zip(&checked)
            .filter(|(_, checked)| checked.is_ok())
            .map(|(item, _)| item.value.records())
            .sum();
        if records <= INLINE_VALIDATIONS || self.inner.validator.is_empty() {
            self.validate_items(&items, &mut checked);
            return self.commit_items(Some(sender), items, checked);
        }
        let count = items.len();
        let Ok(_slot) = self.inner.verifiers.acquire().await else {
            return vec![Err(Rejection::Invalid); count];
        };
        let me = self.clone();
        let validated = tokio::task::spawn_blocking(move || {
            me.validate_items(&items, &mut checked);
            (items, checked)
        })
        .await;
        match validated {
            Ok((items, checked)) => self.commit_items(Some(sender), items, checked),
            // A validator panicked: nothing of this request is trusted.
            Err(_) => vec![Err(Rejection::Invalid); count],
        }
    }

    /// The checks that need no validator: expirations, sizes, and the sender's quotas as they
    /// stand (checked again when the items are written).
    fn admit_items(
        &self,
        sender: Option<&PeerId>,
        items: &[StoreItem],
    ) -> Vec<Result<(), Rejection>> {
        let limits = &self.inner.config.limits;
        let now = get_dht_time();
        let mut checked: Vec<Result<(), Rejection>> = items
            .iter()
            .map(|item| precheck(limits, item, now))
            .collect();
        if let Some(sender) = sender {
            let mut state = self.state();
            state.writers.expire(now);
            let mut pending = Pending::default();
            for (item, checked) in items.iter().zip(&mut checked) {
                if checked.is_ok() {
                    let records = record_ids(item);
                    *checked = state.writers.check_after(
                        limits,
                        sender,
                        records.iter().map(|(record, _, bytes)| (record, *bytes)),
                        &mut pending,
                    );
                }
            }
        }
        checked
    }

    /// Runs the validators on the items that passed so far.
    fn validate_items(&self, items: &[StoreItem], checked: &mut [Result<(), Rejection>]) {
        for (item, checked) in items.iter().zip(checked) {
            if checked.is_ok() && !self.valid_item(item) {
                *checked = Err(Rejection::Invalid);
            }
        }
    }

    /// Writes the items that passed, under the lock: quotas again, then the storage rules. Only
    /// the records actually stored are charged to the sender.
    fn commit_items(
        &self,
        sender: Option<PeerId>,
        items: Vec<StoreItem>,
        checked: Vec<Result<(), Rejection>>,
    ) -> Vec<Result<(), Rejection>> {
        let limits = &self.inner.config.limits;
        let mut state = self.state();
        let ProtocolState {
            storage,
            cache,
            writers,
            changed,
            ..
        } = &mut *state;
        writers.expire(get_dht_time());
        items
            .into_iter()
            .zip(checked)
            .map(|(item, checked)| {
                checked?;
                let target = if item.in_cache {
                    &mut *cache
                } else {
                    &mut *storage
                };
                let records = record_ids(&item);
                if let Some(sender) = &sender {
                    writers.check(
                        limits,
                        sender,
                        records.iter().map(|(record, _, bytes)| (record, *bytes)),
                    )?;
                }
                let subkeys: Vec<&[u8]> = records
                    .iter()
                    .map(|((_, subkey), _, _)| subkey.as_slice())
                    .filter(|subkey| *subkey != REGULAR_SUBKEY)
                    .collect();
                if !subkeys.is_empty()
                    && target.subkeys_after(&item.key, &subkeys) > limits.max_subkeys_per_dictionary
                {
                    return Err(Rejection::TooManySubkeys);
                }
                let key = item.key;
                let (stored, any_stored) = match item.value {
                    StoreValue::Regular(value) => {
                        if target.holds_owned_dictionary(&item.key) {
                            return Err(Rejection::Protected);
                        }
                        let bytes = value.len();
                        let stored = target.store(item.key, value, item.expiration_time, None);
                        if stored {
                            let record = (item.key, REGULAR_SUBKEY.to_vec());
                            writers.wrote(sender, record, item.expiration_time, bytes);
                        }
                        (stored, stored)
                    }
                    StoreValue::Subkey { subkey, value } => {
                        let bytes = subkey.len() + value.len();
                        let record = (item.key, subkey.clone());
                        let stored =
                            target.store_subkey(item.key, subkey, value, item.expiration_time);
                        if stored {
                            writers.wrote(sender, record, item.expiration_time, bytes);
                        }
                        (stored, stored)
                    }
                    StoreValue::Dictionary(entries) => {
                        // Every subkey is tried (docs/hivemind-compat.md#q4); the result is
                        // whether all were stored.
                        let mut dict = DictEntry::dictionary(entries, item.expiration_time);
                        let (mut all, mut any) = (true, false);
                        for (subkey, entry) in dict.snapshot() {
                            let bytes = subkey.len() + entry.value.len();
                            let record = (item.key, subkey.clone());
                            let stored = target.store_subkey(
                                item.key,
                                subkey,
                                entry.value,
                                entry.expiration_time,
                            );
                            if stored {
                                writers.wrote(sender, record, entry.expiration_time, bytes);
                            }
                            all &= stored;
                            any |= stored;
                        }
                        (all, any)
                    }
                };
                // The data dir's writer saves the key later: here only a set insert.
                if any_stored
                    && !item.in_cache
                    && let Some(changed) = changed
                {
                    changed.insert(key);
                }
                if stored {
                    Ok(())
                } else {
                    Err(Rejection::Outdated)
                }
            })
            .collect()
    }

    /// Records how `peer` (with DHT id `node_id`, if it serves the DHT) was last heard from.
    ///
    /// A routing-table entry changes only on its own peer's evidence: an id held by another peer
    /// is not taken over (that peer keeps it until it fails a call of this node's), and a failure
    /// removes an id only from the peer that failed. A node is sent the stored values it should
    /// replicate when it first answers a call of this node's (a node that only called is known
    /// by its word alone), within the bounds of
    /// [`Replications`](super::replication::Replications). A full bucket pings its stalest node.
    pub(crate) fn update_routing_table(
        &self,
        node_id: Option<DhtId>,
        peer: PeerId,
        contact: Contact,
    ) {
        let Some(node_id) = node_id else { return };
        if node_id == self.inner.node_id {
            return;
        }
        let mut state = self.state();
        let holder = state.routing_table.get_peer(&node_id);
        if contact == Contact::Failed {
            if holder == Some(peer) {
                state.routing_table.remove(&node_id);
            }
            return;
        }
        if holder.is_some_and(|holder| holder != peer) {
            return;
        }
        let to_ping = state.routing_table.add_or_update_node(node_id, peer);
        let newly_verified =
            contact == Contact::Answered && state.routing_table.mark_verified(&node_id);
        if newly_verified && crate::lock(&self.inner.replications).try_start(peer) {
            let items = self.values_for_new_node(&mut state, node_id);
            drop(state);
            let me = self.clone();
            tokio::spawn(async move {
                if !items.is_empty() {
                    me.call_store(peer, items).await;
                }
                crate::lock(&me.inner.replications).finish();
            });
        } else {
            drop(state);
        }
        if let Some((_, stale_peer)) = to_ping {
            let me = self.clone();
            tokio::spawn(async move {
                let _ = me.call_ping(stale_peer, false, false).await;
            });
        }
    }

    /// hivemind's replication rule: send a stored value to a newly met node if it is among the
    /// `num_replicas` nearest to the key while this node is nearer than all of them (or there
    /// are none).
    fn values_for_new_node(&self, state: &mut ProtocolState, new_id: DhtId) -> Vec<StoreItem> {
        let ProtocolState {
            routing_table,
            storage,
            ..
        } = state;
        let replicas = self.inner.config.num_replicas;
        let own = self.inner.node_id;
        storage
            .items()
            .filter(|(key, _)| {
                // The nodes that held it before the new one came.
                let mut neighbors =
                    routing_table.get_nearest_neighbors(key, replicas + 1, Some(&own));
                neighbors.retain(|(id, _)| *id != new_id);
                neighbors.truncate(replicas);
                let (Some(nearest), Some(farthest)) = (neighbors.first(), neighbors.last()) else {
                    return true;
                };
                let new_distance = key.xor_distance(&new_id);
                new_distance < key.xor_distance(&farthest.0)
                    && key.xor_distance(&own) < key.xor_distance(&nearest.0)
            })
            .map(|(key, stored)| StoreItem {
                key: *key,
                value: StoreValue::from_stored(&stored.value),
                expiration_time: stored.expiration_time,
                in_cache: false,
            })
            .collect()
    }
}

/// How a peer was last heard from, for [`DhtProtocol::update_routing_table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contact {
    /// It answered a call of this node's.
    Answered,
    /// It called this node (its claims are its own word).
    Called,
    /// It failed to answer a call of this node's.
    Failed,
}

/// Records of one store item that are validated inline; past this many in a request, the
/// validators run on a blocking thread.
const INLINE_VALIDATIONS: usize = 32;

/// The checks of one item that need neither the state nor a validator.
fn precheck(limits: &Limits, item: &StoreItem, now: DhtTime) -> Result<(), Rejection> {
    let (values, expirations): (Vec<&[u8]>, Vec<DhtTime>) = match &item.value {
        StoreValue::Regular(value) | StoreValue::Subkey { value, .. } => {
            (vec![value], vec![item.expiration_time])
        }
        StoreValue::Dictionary(entries) => entries
            .iter()
            .map(|e| (e.value.as_slice(), e.expiration_time))
            .chain([(&[][..], item.expiration_time)])
            .unzip(),
    };
    let subkeys_valid = match &item.value {
        StoreValue::Regular(_) => true,
        StoreValue::Subkey { subkey, .. } => is_subkey(subkey),
        StoreValue::Dictionary(entries) => entries.iter().all(|e| is_subkey(&e.subkey)),
    };
    if !subkeys_valid || expirations.iter().any(|e| !e.is_finite()) {
        // A subkey that is not one msgpack object would corrupt every answer carrying its
        // dictionary; NaN or infinity, never expiring, would pin memory for good.
        Err(Rejection::Invalid)
    } else if values.iter().any(|v| v.len() > limits.max_value_size) {
        Err(Rejection::ValueTooLarge)
    } else if item.value.records() > limits.max_subkeys_per_dictionary {
        Err(Rejection::TooManySubkeys)
    } else if item.expiration_time <= now {
        Err(Rejection::Expired)
    } else if expirations
        .iter()
        .any(|e| !limits.acceptable_expiration(*e, now))
    {
        Err(Rejection::ExpiresTooLate)
    } else {
        Ok(())
    }
}

/// The records of a store item, with their expirations and sizes in bytes.
fn record_ids(item: &StoreItem) -> Vec<(RecordId, DhtTime, usize)> {
    match &item.value {
        StoreValue::Regular(value) => vec![(
            (item.key, REGULAR_SUBKEY.to_vec()),
            item.expiration_time,
            value.len(),
        )],
        StoreValue::Subkey { subkey, value } => {
            vec![(
                (item.key, subkey.clone()),
                item.expiration_time,
                subkey.len() + value.len(),
            )]
        }
        StoreValue::Dictionary(entries) => entries
            .iter()
            .map(|e| {
                (
                    (item.key, e.subkey.clone()),
                    e.expiration_time,
                    e.subkey.len() + e.value.len(),
                )
            })
            .collect(),
    }
}
