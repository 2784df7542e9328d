//! Caching: values found on other nodes are cached here (`cache_locally`) and on nearby nodes
//! (`cache_nearest`), stored values too (`cache_on_store`), and cached values a get used are
//! refreshed before they expire (`cache_refresh_before_expiry`) through a queue.

use std::collections::HashMap;
use std::time::Duration;

use servicer_runtime::PeerId;

use super::DhtNode;
use crate::id::{DhtId, Key};
use crate::lock;
use crate::messages::{StoreItem, StoreValue};
use crate::storage::{DhtLocalStorage, StoredValue};
use crate::time::{DhtTime, ValueWithExpiration, get_dht_time};

/// What a store did with one item, for [`DhtNode::update_cache_on_store`].
pub(super) struct StoreOutcome<'a> {
    /// The key's id.
    pub(super) key: DhtId,
    /// The subkey, for one subkey of a dictionary.
    pub(super) subkey: Option<&'a Key>,
    /// The encoded value.
    pub(super) value: &'a [u8],
    /// When it expires.
    pub(super) expiration_time: DhtTime,
    /// Whether any replica accepted it.
    pub(super) stored: bool,
}

impl DhtNode {
    /// hivemind's `_update_cache_on_store`: cache a stored regular value; when every replica
    /// refused one, refresh a cached copy that is no newer than the refused value (the refusal
    /// means a newer value exists); add stored subkeys to a cached dictionary and refresh it, since
    /// other writers may have added subkeys.
    pub(super) fn update_cache_on_store<'a>(
        &self,
        outcomes: impl IntoIterator<Item = StoreOutcome<'a>>,
    ) {
        let mut refresh_now = Vec::new();
        {
            let mut state = self.inner.protocol.state();
            for item in outcomes {
                let (key, ok) = (item.key, item.stored);
                match item.subkey {
                    None if ok => {
                        state
                            .cache
                            .store(key, item.value.to_vec(), item.expiration_time, None);
                    }
                    None => {
                        if state
                            .cache
                            .get(&key)
                            .is_some_and(|cached| cached.expiration_time <= item.expiration_time)
                        {
                            refresh_now.push(key);
                        }
                    }
                    Some(subkey) => {
                        if state.cache.get(&key).is_none() {
                            continue;
                        }
                        if ok {
                            state.cache.store_subkey(
                                key,
                                subkey.to_msgpack(),
                                item.value.to_vec(),
                                item.expiration_time,
                            );
                        }
                        refresh_now.push(key);
                    }
                }
            }
        }
        if refresh_now.is_empty() || self.inner.config.cache_refresh_before_expiry.is_none() {
            return;
        }
        let now = get_dht_time();
        let mut queue = lock(&self.inner.refresh_queue);
        for key in refresh_now {
            queue.insert(key, now);
        }
        drop(queue);
        self.inner.refresh_wakeup.notify_one();
    }

    /// Queues a refresh of cached values a get just used: `used` are the keys it found locally,
    /// with the expiration of what it found. Those present in the cache are refreshed
    /// `cache_refresh_before_expiry` before they expire.
    pub(super) fn schedule_cache_refresh(&self, used: impl IntoIterator<Item = (DhtId, DhtTime)>) {
        let Some(before) = self.inner.config.cache_refresh_before_expiry else {
            return;
        };
        let mut due = Vec::new();
        {
            let mut state = self.inner.protocol.state();
            for (key, expiration_time) in used {
                if state.cache.get(&key).is_some() {
                    due.push((key, expiration_time - before.as_secs_f64()));
                }
            }
        }
        if due.is_empty() {
            return;
        }
        let mut queue = lock(&self.inner.refresh_queue);
        for (key, at) in due {
            queue
                .entry(key)
                .and_modify(|t| *t = t.min(at))
                .or_insert(at);
        }
        drop(queue);
        self.inner.refresh_wakeup.notify_one();
    }

    /// Cached keys waiting for a refresh.
    pub fn cache_refresh_queue_len(&self) -> usize {
        lock(&self.inner.refresh_queue).len()
    }

    /// Waits until the earliest queued refresh is due (or the queue changes). Then takes up to
    /// `chunk_size` due keys off the queue, with the expiration a get must find to renew them;
    /// `None` if none was due.
    pub(super) async fn due_cache_refreshes(
        &self,
        before: Duration,
    ) -> Option<(Vec<DhtId>, DhtTime)> {
        let wakeup = self.inner.refresh_wakeup.notified();
        futures::pin_mut!(wakeup);
        wakeup.as_mut().enable();
        let earliest = lock(&self.inner.refresh_queue)
            .values()
            .copied()
            .min_by(f64::total_cmp);
        let now = get_dht_time();
        // Waits are capped so that the task lets go of the node now and then: a node dropped
        // without shutdown is then freed.
        const MAX_WAIT: f64 = 1.0;
        match earliest {
            Some(at) if at <= now => {}
            other => {
                let wait = other.map_or(MAX_WAIT, |at| (at - now).min(MAX_WAIT));
                let _ = tokio::time::timeout(Duration::from_secs_f64(wait), wakeup).await;
                return None;
            }
        }
        let keys: Vec<DhtId> = {
            let mut queue = lock(&self.inner.refresh_queue);
            let mut due: Vec<(DhtTime, DhtId)> = queue
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(k, at)| (*at, *k))
                .collect();
            due.sort_by(|a, b| a.0.total_cmp(&b.0));
            due.truncate(self.inner.config.chunk_size.max(1));
            for (_, key) in &due {
                queue.remove(key);
            }
            due.into_iter().map(|(_, k)| k).collect()
        };
        let max_expiration = {
            let mut state = self.inner.protocol.state();
            keys.iter()
                .filter_map(|k| state.cache.get(k).map(|v| v.expiration_time))
                .fold(get_dht_time(), f64::max)
        };
        let sufficient = max_expiration + before.as_secs_f64() + 1.0;
        Some((keys, sufficient))
    }

    /// `cache_locally` and `cache_nearest` for values a get found on other nodes: `found` has
    /// each key with its value and the peer that supplied it, `nearest` the nodes nearest to
    /// each key and `peers` their peer ids. A refresh caches locally in any case.
    pub(super) fn cache_results<'a>(
        &self,
        found: impl IntoIterator<Item = (DhtId, &'a ValueWithExpiration<StoredValue>, PeerId)>,
        nearest: &HashMap<DhtId, Vec<DhtId>>,
        peers: &HashMap<DhtId, PeerId>,
        is_refresh: bool,
    ) {
        let config = &self.inner.config;
        let mut to_cache_remotely: HashMap<PeerId, Vec<StoreItem>> = HashMap::new();
        {
            let mut state = self.inner.protocol.state();
            for (key, found, source) in found {
                let stored = state.storage.get(&key).map(|v| v.expiration_time);
                let cached = state.cache.get(&key).map(|v| v.expiration_time);
                let newer_than_local = [stored, cached]
                    .into_iter()
                    .flatten()
                    .all(|local| local < found.expiration_time);
                if !newer_than_local {
                    continue;
                }
                if config.cache_locally || is_refresh {
                    cache_value(&mut state.cache, key, found.clone());
                }
                let targets = nearest
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| peers.get(id))
                    .filter(|p| **p != source)
                    .take(config.cache_nearest);
                for peer in targets {
                    to_cache_remotely.entry(*peer).or_default().push(StoreItem {
                        key,
                        value: StoreValue::from_stored(&found.value),
                        expiration_time: found.expiration_time,
                        in_cache: true,
                    });
                }
            }
        }
        for (peer, items) in to_cache_remotely {
            let protocol = self.inner.protocol.clone();
            tokio::spawn(async move {
                protocol.call_store(peer, items).await;
            });
        }
    }
}

fn cache_value(cache: &mut DhtLocalStorage, key: DhtId, found: ValueWithExpiration<StoredValue>) {
    match found.value {
        StoredValue::Regular(v) => {
            cache.store(key, v, found.expiration_time, None);
        }
        StoredValue::Dictionary(mut d) => {
            cache.store_dictionary(key, &mut d);
        }
    }
}
