//! Stores: a value goes to the `num_replicas` nodes nearest to its key, found by a beam search,
//! this node among them unless excluded.

use std::collections::HashMap;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use servicer_runtime::PeerId;

use super::DhtNode;
use super::cache::StoreOutcome;
use crate::crypto::has_owner_marker;
use crate::error::DhtError;
use crate::id::{DhtId, Key};
use crate::messages::{StoreItem, StoreValue};
use crate::time::DhtTime;
use crate::traverse::Keyspace;
use crate::validation::{DhtRecord, REGULAR_SUBKEY};
use crate::value::encode_value;

/// One item of [`DhtNode::store_many`]: an encoded value under a key, optionally a subkey.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreRequestItem {
    /// The key.
    pub key: Key,
    /// The subkey, for a dictionary value.
    pub subkey: Option<Key>,
    /// The msgpack-encoded value (see [`encode_value`]).
    pub value: Vec<u8>,
    /// When it expires.
    pub expiration_time: DhtTime,
}

impl DhtNode {
    /// Stores a typed value under `key` (or under `subkey` of the dictionary at `key`) until
    /// `expiration_time`, on `num_replicas` nodes nearest to the key. True if any accepted it.
    pub async fn store<V: Serialize + ?Sized>(
        &self,
        key: impl Into<Key>,
        value: &V,
        expiration_time: DhtTime,
        subkey: Option<Key>,
    ) -> Result<bool, DhtError> {
        self.store_encoded(key.into(), encode_value(value)?, expiration_time, subkey)
            .await
    }

    /// Stores an already encoded value; see [`store`](Self::store). Fails with
    /// [`DhtError::ValueTooLarge`] past [`Limits::max_value_size`](crate::Limits::max_value_size), which other nodes refuse.
    pub async fn store_encoded(
        &self,
        key: Key,
        value: Vec<u8>,
        expiration_time: DhtTime,
        subkey: Option<Key>,
    ) -> Result<bool, DhtError> {
        if has_owner_marker(&key.to_msgpack()) {
            return Err(DhtError::OwnerMarkerInKey);
        }
        let limit = self.inner.config.protocol.limits.max_value_size;
        if value.len() > limit {
            return Err(DhtError::ValueTooLarge {
                size: value.len(),
                limit,
            });
        }
        let item = StoreRequestItem {
            key,
            subkey,
            value,
            expiration_time,
        };
        Ok(self
            .store_many(vec![item], false)
            .await
            .into_iter()
            .all(|ok| ok))
    }

    /// Stores many items; one result per item, in order. An item whose key holds an owner marker
    /// is not stored (see [`DhtError::OwnerMarkerInKey`]).
    pub async fn store_many(&self, items: Vec<StoreRequestItem>, exclude_self: bool) -> Vec<bool> {
        let mut by_key: HashMap<DhtId, Vec<usize>> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            if has_owner_marker(&item.key.to_msgpack()) {
                continue;
            }
            by_key
                .entry(DhtId::generate(item.key.clone()))
                .or_default()
                .push(i);
        }
        let key_ids: Vec<DhtId> = by_key.keys().copied().collect();
        let beam_size = self
            .inner
            .config
            .protocol
            .bucket_size
            .max(self.inner.config.protocol.num_replicas);
        let (beams, peers) = self.search_nearest(&key_ids, beam_size).await;
        let mut results = vec![false; items.len()];
        let stores = by_key.iter().map(|(key_id, indices)| {
            let mut candidates: Vec<(DhtId, Option<PeerId>)> = beams
                .get(key_id)
                .into_iter()
                .flatten()
                .filter_map(|id| peers.get(id).map(|p| (*id, Some(*p))))
                .collect();
            if !exclude_self {
                candidates.push((self.node_id(), None));
            }
            candidates.sort_by_key(|(id, _)| id.distance(key_id));
            let batch: Vec<(usize, StoreItem)> = indices
                .iter()
                .map(|&i| {
                    let item = &items[i];
                    let subkey = item.subkey.as_ref().map(Key::to_msgpack);
                    let signed = self.inner.protocol.validator().sign_value(&DhtRecord {
                        key: key_id.to_bytes().to_vec(),
                        subkey: subkey.clone().unwrap_or_else(|| REGULAR_SUBKEY.to_vec()),
                        value: item.value.clone(),
                        expiration_time: item.expiration_time,
                    });
                    let value = match subkey {
                        Some(subkey) => StoreValue::Subkey {
                            subkey,
                            value: signed,
                        },
                        None => StoreValue::Regular(signed),
                    };
                    (
                        i,
                        StoreItem {
                            key: *key_id,
                            value,
                            expiration_time: item.expiration_time,
                            in_cache: false,
                        },
                    )
                })
                .collect();
            self.store_on_replicas(candidates, batch)
        });
        let outcomes: Vec<Vec<(usize, bool)>> = futures::future::join_all(stores).await;
        for (i, ok) in outcomes.into_iter().flatten() {
            results[i] = ok;
        }
        if self.inner.config.cache_on_store {
            let outcomes = items
                .iter()
                .zip(&results)
                .map(|(item, &stored)| StoreOutcome {
                    key: DhtId::generate(item.key.clone()),
                    subkey: item.subkey.as_ref(),
                    value: &item.value,
                    expiration_time: item.expiration_time,
                    stored,
                });
            self.update_cache_on_store(outcomes);
        }
        results
    }

    /// Stores one key's items on the nearest candidates until `num_replicas` answered, trying
    /// further candidates when one fails. An item is stored if any replica accepted it (hivemind
    /// keeps the last replica's answer: docs/hivemind-compat.md#q8).
    async fn store_on_replicas(
        &self,
        mut candidates: Vec<(DhtId, Option<PeerId>)>,
        batch: Vec<(usize, StoreItem)>,
    ) -> Vec<(usize, bool)> {
        let replicas = self.inner.config.protocol.num_replicas.max(1);
        let mut accepted = vec![false; batch.len()];
        let mut successes = 0;
        candidates.reverse(); // pop() gives the nearest
        let items: Vec<StoreItem> = batch.iter().map(|(_, item)| item.clone()).collect();
        let mut pending = FuturesUnordered::new();
        loop {
            while successes + pending.len() < replicas {
                let Some((_, peer)) = candidates.pop() else {
                    break;
                };
                let items = items.clone();
                pending.push(async move {
                    match peer {
                        None => Some(self.store_locally(items)),
                        Some(peer) => self.inner.protocol.call_store(peer, items).await,
                    }
                });
            }
            let Some(result) = pending.next().await else {
                break;
            };
            if let Some(oks) = result {
                successes += 1;
                for (acc, ok) in accepted.iter_mut().zip(oks) {
                    *acc |= ok;
                }
            }
            if successes >= replicas && pending.is_empty() {
                break;
            }
        }
        batch.into_iter().map(|(i, _)| i).zip(accepted).collect()
    }

    fn store_locally(&self, items: Vec<StoreItem>) -> Vec<bool> {
        self.inner
            .protocol
            .apply_store(None, items)
            .iter()
            .map(Result::is_ok)
            .collect()
    }
}
