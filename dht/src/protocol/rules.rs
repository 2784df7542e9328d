//! The rules every record and every met node goes through: limits and validators on stores,
//! the routing table's updates, and hivemind's replication of stored values to new nodes.

use servicer_runtime::PeerId;

use super::{DhtProtocol, ProtocolState};
use crate::id::DhtId;
use crate::limits::{RecordId, Rejection};
use crate::messages::{DictEntry, StoreItem, StoreValue};
use crate::time::{DhtTime, get_dht_time};
use crate::validation::{DhtRecord, REGULAR_SUBKEY};

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

    /// Stores items written by `sender` (`None`: this node itself): limits, validators, then
    /// storage or cache. A result per item.
    pub(crate) fn apply_store(
        &self,
        sender: Option<PeerId>,
        items: Vec<StoreItem>,
    ) -> Vec<Result<(), Rejection>> {
        let limits = &self.inner.config.limits;
        let now = get_dht_time();
        // Validate before taking the lock: validators may verify signatures.
        let checked: Vec<Result<(), Rejection>> = items
            .iter()
            .map(|item| {
                let values: Vec<&[u8]> = match &item.value {
                    StoreValue::Regular(value) | StoreValue::Subkey { value, .. } => vec![value],
                    StoreValue::Dictionary(entries) => {
                        entries.iter().map(|e| e.value.as_slice()).collect()
                    }
                };
                let expirations_finite = match &item.value {
                    StoreValue::Dictionary(entries) => {
                        entries.iter().all(|e| e.expiration_time.is_finite())
                    }
                    _ => true,
                } && item.expiration_time.is_finite();
                if !expirations_finite {
                    // NaN or infinity: never expiring would pin memory for good.
                    Err(Rejection::Invalid)
                } else if values.iter().any(|v| v.len() > limits.max_value_size) {
                    Err(Rejection::ValueTooLarge)
                } else if values.len() > limits.max_subkeys_per_dictionary {
                    Err(Rejection::TooManySubkeys)
                } else if item.expiration_time <= now {
                    Err(Rejection::Expired)
                } else if !self.valid_item(item) {
                    Err(Rejection::Invalid)
                } else {
                    Ok(())
                }
            })
            .collect();
        let mut state = self.state();
        let ProtocolState {
            storage,
            cache,
            writers,
            ..
        } = &mut *state;
        writers.expire(now);
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
                    writers.check(limits, sender, records.iter().map(|(r, _)| r))?;
                }
                let subkeys: Vec<&[u8]> = records
                    .iter()
                    .map(|((_, subkey), _)| subkey.as_slice())
                    .filter(|subkey| *subkey != REGULAR_SUBKEY)
                    .collect();
                if !subkeys.is_empty()
                    && target.subkeys_after(&item.key, &subkeys) > limits.max_subkeys_per_dictionary
                {
                    return Err(Rejection::TooManySubkeys);
                }
                let stored = match item.value {
                    StoreValue::Regular(value) => {
                        target.store(item.key, value, item.expiration_time, None)
                    }
                    StoreValue::Subkey { subkey, value } => {
                        target.store_subkey(item.key, subkey, value, item.expiration_time)
                    }
                    StoreValue::Dictionary(entries) => {
                        let mut dict = DictEntry::dictionary(entries, item.expiration_time);
                        target.store_dictionary(item.key, &mut dict)
                    }
                };
                // A dictionary may be stored in part: its records count either way.
                for (record, expiration_time) in records {
                    writers.wrote(sender, record, expiration_time);
                }
                if stored {
                    Ok(())
                } else {
                    Err(Rejection::Outdated)
                }
            })
            .collect()
    }

    /// Records that `peer` (with DHT id `node_id`, if it serves the DHT) answered or not. A new
    /// node gets the stored values it should replicate; a full bucket pings its stalest node; a
    /// node that did not answer is removed.
    pub(crate) fn update_routing_table(
        &self,
        node_id: Option<DhtId>,
        peer: PeerId,
        responded: bool,
    ) {
        let Some(node_id) = node_id else { return };
        if node_id == self.inner.node_id {
            return;
        }
        let mut state = self.state();
        if !responded {
            state.routing_table.remove(&node_id);
            return;
        }
        let to_replicate = if state.routing_table.contains(&node_id) {
            Vec::new()
        } else {
            self.values_for_new_node(&mut state, node_id)
        };
        let to_ping = state.routing_table.add_or_update_node(node_id, peer);
        drop(state);
        if !to_replicate.is_empty() {
            let me = self.clone();
            tokio::spawn(async move {
                me.call_store(peer, to_replicate).await;
            });
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
                let neighbors = routing_table.get_nearest_neighbors(key, replicas, Some(&own));
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

/// The records of a store item, with their expirations.
fn record_ids(item: &StoreItem) -> Vec<(RecordId, DhtTime)> {
    match &item.value {
        StoreValue::Regular(_) => vec![((item.key, REGULAR_SUBKEY.to_vec()), item.expiration_time)],
        StoreValue::Subkey { subkey, .. } => {
            vec![((item.key, subkey.clone()), item.expiration_time)]
        }
        StoreValue::Dictionary(entries) => entries
            .iter()
            .map(|e| ((item.key, e.subkey.clone()), e.expiration_time))
            .collect(),
    }
}
