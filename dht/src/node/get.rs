//! Gets: local storage and cache first, then a beam search shared by the keys not found yet;
//! concurrent gets of a key share one search (`reuse_get_requests`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use servicer_runtime::PeerId;
use tokio::sync::watch;

use super::search::{Hops, named};
use super::{DhtNode, NodeInner};
use crate::error::DhtError;
use crate::id::{DhtId, Key};
use crate::lock;
use crate::storage::StoredValue;
use crate::time::{DhtTime, ValueWithExpiration, get_dht_time};
use crate::traverse::{Answer, TraverseConfig, traverse};
use crate::validation::{DhtRecord, REGULAR_SUBKEY};
use crate::value::decode_value;

/// A value as `get` returns it: one value, or a dictionary of subkeys (msgpack bytes) to values.
#[derive(Debug, Clone, PartialEq)]
pub enum DhtValue<V> {
    /// A regular value.
    Regular(V),
    /// A dictionary value: subkey (msgpack bytes, see [`Key::to_msgpack`]) to value.
    Dictionary(HashMap<Vec<u8>, ValueWithExpiration<V>>),
}

/// The best value a get has seen so far for one key.
#[derive(Default)]
struct SearchState {
    found: Option<ValueWithExpiration<StoredValue>>,
    /// Who supplied the newest value (`None`: this node).
    source: Option<Option<PeerId>>,
    sufficient: DhtTime,
}

impl SearchState {
    fn best(&self) -> DhtTime {
        self.found
            .as_ref()
            .map_or(f64::NEG_INFINITY, |f| f.expiration_time)
    }

    fn finished(&self) -> bool {
        self.best() >= self.sufficient
    }

    /// Takes a candidate: dictionaries merge subkey by subkey, otherwise the newer wins. The
    /// local value is never mutated: candidates are copies (docs/hivemind-compat.md#q9).
    fn add(&mut self, candidate: ValueWithExpiration<StoredValue>, source: Option<PeerId>) {
        let newer = candidate.expiration_time > self.best();
        match (&mut self.found, candidate) {
            (
                Some(ValueWithExpiration {
                    value: StoredValue::Dictionary(current),
                    expiration_time,
                }),
                ValueWithExpiration {
                    value: StoredValue::Dictionary(mut incoming),
                    expiration_time: incoming_exp,
                },
            ) => {
                for (subkey, v) in incoming.snapshot() {
                    current.store(subkey, v.value, v.expiration_time);
                }
                *expiration_time = expiration_time.max(incoming_exp);
            }
            (found, candidate) if newer => *found = Some(candidate),
            _ => {}
        }
        if newer {
            self.source = Some(source);
        }
    }
}

/// A get in flight for one key, which later gets may join.
pub(super) struct PendingGet {
    id: u64,
    sufficient: DhtTime,
    /// Set for the get that searches; joiners have `None`.
    result: Option<FoundReceiver>,
}

/// A search's outcome: `None` until it finishes, then what it found.
type FoundSender = watch::Sender<Option<Option<ValueWithExpiration<StoredValue>>>>;
type FoundReceiver = watch::Receiver<Option<Option<ValueWithExpiration<StoredValue>>>>;

/// The gets of one `get_many_by_id` call in the pending table; removed on drop, even when the
/// call is cancelled.
struct Registration<'a> {
    inner: &'a NodeInner,
    entries: Vec<(DhtId, u64)>,
    senders: HashMap<DhtId, FoundSender>,
}

impl<'a> Registration<'a> {
    fn new(inner: &'a NodeInner) -> Self {
        Registration {
            inner,
            entries: Vec::new(),
            senders: HashMap::new(),
        }
    }

    /// Registers a get of `key`; returns the running search to wait for (the one that looks
    /// furthest ahead), with how far ahead it looks.
    fn join(
        &mut self,
        key: DhtId,
        sufficient: DhtTime,
        reuse: bool,
    ) -> Option<(FoundReceiver, DhtTime)> {
        let id = self
            .inner
            .next_get_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut pending = lock(&self.inner.pending_gets);
        let gets = pending.entry(key).or_default();
        let running = reuse
            .then(|| {
                gets.iter()
                    .filter_map(|g| g.result.clone().map(|rx| (rx, g.sufficient)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
            })
            .flatten();
        let result = match running {
            Some(_) => None,
            None => {
                let (tx, rx) = watch::channel(None);
                self.senders.insert(key, tx);
                Some(rx)
            }
        };
        gets.push(PendingGet {
            id,
            sufficient,
            result,
        });
        self.entries.push((key, id));
        running
    }

    /// Hands this call's results to the gets that joined them.
    fn publish(&mut self, searches: &HashMap<DhtId, SearchState>) {
        for (key, tx) in self.senders.drain() {
            let found = searches.get(&key).and_then(|s| s.found.clone());
            let _ = tx.send(Some(found));
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut pending = lock(&self.inner.pending_gets);
        for (key, id) in self.entries.drain(..) {
            if let Some(gets) = pending.get_mut(&key) {
                gets.retain(|g| g.id != id);
                if gets.is_empty() {
                    pending.remove(&key);
                }
            }
        }
    }
}

/// The expiration a get needs before it stops: any unexpired value, or with `latest` none (it
/// searches until no newer value can be found).
fn sufficient(latest: bool) -> DhtTime {
    if latest {
        f64::INFINITY
    } else {
        get_dht_time()
    }
}

impl DhtNode {
    /// Gets the value under `key` and decodes it. With `latest`, searches until no newer value
    /// can be found; otherwise stops at the first unexpired one.
    pub async fn get<V: DeserializeOwned>(
        &self,
        key: impl Into<Key>,
        latest: bool,
    ) -> Result<Option<ValueWithExpiration<DhtValue<V>>>, DhtError> {
        let id = DhtId::generate(key);
        let found = self.get_stored_by_id(id, latest).await;
        found.map(|v| self.decode(&id, v)).transpose()
    }

    /// Gets the value under `key` as it is stored (msgpack bytes, or a dictionary of them),
    /// without decoding it: for programs that show values of any type. `latest` as in
    /// [`get`](Self::get).
    pub async fn get_stored(
        &self,
        key: impl Into<Key>,
        latest: bool,
    ) -> Option<ValueWithExpiration<StoredValue>> {
        self.get_stored_by_id(DhtId::generate(key), latest).await
    }

    async fn get_stored_by_id(
        &self,
        id: DhtId,
        latest: bool,
    ) -> Option<ValueWithExpiration<StoredValue>> {
        self.get_many_by_id(&[id], Some(sufficient(latest)))
            .await
            .remove(&id)
            .flatten()
    }

    /// Gets and decodes several keys with one shared search.
    pub async fn get_many<V: DeserializeOwned>(
        &self,
        keys: Vec<Key>,
        latest: bool,
    ) -> Result<Vec<(Key, Option<ValueWithExpiration<DhtValue<V>>>)>, DhtError> {
        let ids: Vec<DhtId> = keys.iter().map(|k| DhtId::generate(k.clone())).collect();
        let mut found = self.get_many_by_id(&ids, Some(sufficient(latest))).await;
        keys.into_iter()
            .zip(ids)
            .map(|(key, id)| {
                let value = found
                    .remove(&id)
                    .flatten()
                    .map(|v| self.decode(&id, v))
                    .transpose()?;
                Ok((key, value))
            })
            .collect()
    }

    /// Gets raw values by key id: local storage and cache first, then a shared beam search for
    /// the keys not yet found with an expiration of at least `sufficient_expiration_time`
    /// (default: now, i.e. any unexpired value).
    pub async fn get_many_by_id(
        &self,
        keys: &[DhtId],
        sufficient_expiration_time: Option<DhtTime>,
    ) -> HashMap<DhtId, Option<ValueWithExpiration<StoredValue>>> {
        self.get_values(keys, sufficient_expiration_time, false)
            .await
    }

    /// How many gets of `key` are in flight now (searching or waiting on another's search).
    pub fn pending_gets(&self, key: &DhtId) -> usize {
        lock(&self.inner.pending_gets).get(key).map_or(0, Vec::len)
    }

    pub(super) async fn get_values(
        &self,
        keys: &[DhtId],
        sufficient_expiration_time: Option<DhtTime>,
        is_refresh: bool,
    ) -> HashMap<DhtId, Option<ValueWithExpiration<StoredValue>>> {
        let sufficient = sufficient_expiration_time.unwrap_or_else(get_dht_time);
        let mut searches: HashMap<DhtId, SearchState> = HashMap::new();
        {
            let mut state = self.inner.protocol.state();
            for key in keys {
                let search = searches.entry(*key).or_insert_with(|| SearchState {
                    sufficient,
                    ..SearchState::default()
                });
                // A refresh looks past the cache: the cached value is what it wants to renew.
                let cached = (!is_refresh)
                    .then(|| state.cache.get(key).cloned())
                    .flatten();
                for local in [state.storage.get(key).cloned(), cached]
                    .into_iter()
                    .flatten()
                {
                    search.add(local, None);
                }
            }
        }
        let unfinished: Vec<DhtId> = searches
            .iter()
            .filter(|(_, s)| !s.finished())
            .map(|(k, _)| *k)
            .collect();
        if unfinished.is_empty() {
            if !is_refresh {
                self.schedule_cache_refresh(found_locally(&searches));
            }
            return searches.into_iter().map(|(k, s)| (k, s.found)).collect();
        }
        // reuse_get_requests: join a search already running for a key, if it looks at least as
        // far ahead as this one; otherwise lead one that later gets can join.
        let mut registration = Registration::new(&self.inner);
        let mut leading = Vec::new();
        let mut following = Vec::new();
        for key in unfinished {
            match registration.join(key, sufficient, self.inner.config.reuse_get_requests) {
                Some((rx, leader_sufficient)) => following.push((key, rx, leader_sufficient)),
                None => leading.push(key),
            }
        }
        let lead = async {
            self.search_values(&mut searches, leading.clone(), is_refresh)
                .await;
            // Publish at once: other gets may be waiting on these keys while this one waits on
            // theirs.
            registration.publish(&searches);
        };
        let follow = futures::future::join_all(following.into_iter().map(
            |(key, mut rx, leader_sufficient)| async move {
                let found = rx
                    .wait_for(Option::is_some)
                    .await
                    .ok()
                    .and_then(|v| v.clone());
                (key, found, leader_sufficient)
            },
        ));
        let ((), followed) = futures::future::join(lead, follow).await;
        drop(registration);
        let mut orphaned = Vec::new();
        for (key, found, leader_sufficient) in followed {
            let search = searches.entry(key).or_default();
            match found {
                Some(Some(value)) => {
                    search.add(value, None);
                    // The leader settled for an older value than this get wants: look further.
                    if !search.finished() && leader_sufficient < sufficient {
                        orphaned.push(key);
                    }
                }
                // The leader searched until its end and found nothing: neither would this get.
                Some(None) => {}
                // The leading get was cancelled before it finished: search ourselves.
                None => orphaned.push(key),
            }
        }
        if !orphaned.is_empty() {
            self.search_values(&mut searches, orphaned, is_refresh)
                .await;
        }
        if !is_refresh {
            self.schedule_cache_refresh(found_locally(&searches));
        }
        searches.into_iter().map(|(k, s)| (k, s.found)).collect()
    }

    /// The beam search of a get: asks nodes near each key until its search is satisfied.
    async fn search_values(
        &self,
        searches: &mut HashMap<DhtId, SearchState>,
        keys: Vec<DhtId>,
        is_refresh: bool,
    ) {
        if keys.is_empty() {
            return;
        }
        let beam_size = self.inner.config.protocol.bucket_size;
        let searches_cell = Mutex::new(&mut *searches);
        let peers = Mutex::new(self.initial_nodes(&keys, beam_size));
        let initial: Vec<DhtId> = lock(&peers).keys().copied().collect();
        let hops = Hops::new(&initial);
        let own = self.node_id();
        let visited = keys.iter().map(|q| (*q, HashSet::from([own]))).collect();
        let config = TraverseConfig {
            beam_size,
            num_workers: self.inner.config.num_workers,
            queries_per_call: ((keys.len() as f64).sqrt() as usize)
                .min(self.inner.config.chunk_size),
        };
        let nearest_found = Mutex::new(HashMap::new());
        traverse(
            &keys,
            &initial,
            config,
            visited,
            |node, batch| {
                let peer = lock(&peers).get(&node).copied();
                let (peers, searches, hops) = (&peers, &searches_cell, &hops);
                async move {
                    let Some(peer) = peer else {
                        return HashMap::new();
                    };
                    let Some(outcomes) = self.find_with_blacklist(peer, batch).await else {
                        return HashMap::new();
                    };
                    hops.answered(&node, named(&outcomes));
                    let mut known = lock(peers);
                    let mut searches = lock(searches);
                    outcomes
                        .into_iter()
                        .map(|(query, outcome)| {
                            known.extend(outcome.nearest.iter().copied());
                            let search = searches.entry(query).or_default();
                            if let Some(value) = outcome.value {
                                search.add(value, Some(peer));
                            }
                            let neighbors = outcome.nearest.into_iter().map(|(id, _)| id).collect();
                            (
                                query,
                                Answer {
                                    neighbors,
                                    stop: search.finished(),
                                },
                            )
                        })
                        .collect()
                }
            },
            |query, nearest: &[DhtId], _| {
                lock(&nearest_found).insert(query, nearest.to_vec());
            },
        )
        .await;
        self.record_search(&hops);
        let nearest_found = nearest_found
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let peers = peers.into_inner().unwrap_or_else(|e| e.into_inner());
        self.cache_results(found_remotely(searches), &nearest_found, &peers, is_refresh);
    }

    /// Strips what validators added (signatures) and decodes the msgpack values.
    fn decode<V: DeserializeOwned>(
        &self,
        key: &DhtId,
        found: ValueWithExpiration<StoredValue>,
    ) -> Result<ValueWithExpiration<DhtValue<V>>, DhtError> {
        let limit = self.inner.config.protocol.limits.max_value_size;
        let validator = self.inner.protocol.validator();
        let strip = |subkey: &[u8], value: &[u8], expiration_time| {
            if validator.is_empty() {
                return value.to_vec();
            }
            validator.strip_value(&DhtRecord {
                key: key.to_bytes().to_vec(),
                subkey: subkey.to_vec(),
                value: value.to_vec(),
                expiration_time,
            })
        };
        let value = match found.value {
            StoredValue::Regular(bytes) => DhtValue::Regular(decode_value(
                &strip(REGULAR_SUBKEY, &bytes, found.expiration_time),
                limit,
            )?),
            StoredValue::Dictionary(mut dict) => DhtValue::Dictionary(
                dict.items()
                    .map(|(subkey, v)| {
                        let bytes = strip(subkey, &v.value, v.expiration_time);
                        Ok((
                            subkey.clone(),
                            ValueWithExpiration::new(
                                decode_value(&bytes, limit)?,
                                v.expiration_time,
                            ),
                        ))
                    })
                    .collect::<Result<_, DhtError>>()?,
            ),
        };
        Ok(ValueWithExpiration::new(value, found.expiration_time))
    }
}

/// The keys whose best value came from this node's own storage or cache, with its expiration.
fn found_locally(
    searches: &HashMap<DhtId, SearchState>,
) -> impl Iterator<Item = (DhtId, DhtTime)> + '_ {
    searches
        .iter()
        .filter_map(|(key, search)| match (&search.found, &search.source) {
            (Some(found), Some(None)) => Some((*key, found.expiration_time)),
            _ => None,
        })
}

/// The keys whose best value came from another node, with the value and that node.
fn found_remotely(
    searches: &HashMap<DhtId, SearchState>,
) -> impl Iterator<Item = (DhtId, &ValueWithExpiration<StoredValue>, PeerId)> + '_ {
    searches
        .iter()
        .filter_map(|(key, search)| match (&search.found, &search.source) {
            (Some(found), Some(Some(source))) => Some((*key, found, *source)),
            _ => None,
        })
}
