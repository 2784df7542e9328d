//! The storage's changes, for a node that saves its records to a data dir: which keys were
//! written since they were last saved, and the way saved records come back in.
//!
//! Tracking is off unless the node has a data dir; then a store only adds its key to a set (see
//! `commit_items` in [`super::rules`]), and the node's writer reads the keys' values later.

use super::DhtProtocol;
use crate::id::DhtId;
use crate::storage::StoredValue;
use crate::time::{DhtTime, ValueWithExpiration};

/// One record read back from disk, as the storage holds it.
pub(crate) enum LoadedValue {
    /// A regular value.
    Regular(Vec<u8>),
    /// A dictionary's subkeys, values and expirations.
    Dictionary(Vec<(Vec<u8>, Vec<u8>, DhtTime)>),
}

impl DhtProtocol {
    /// Starts recording which keys of the storage are written.
    pub(crate) fn track_changes(&self) {
        self.state().changed.get_or_insert_with(Default::default);
    }

    /// Takes the keys written since the last call, each with `read` of its current value
    /// (`None`: gone or expired), under one short hold of the lock. Empty when not tracking.
    pub(crate) fn take_changes<T>(
        &self,
        mut read: impl FnMut(DhtId, Option<&ValueWithExpiration<StoredValue>>) -> T,
    ) -> Vec<T> {
        let mut state = self.state();
        let keys = match state.changed.as_mut() {
            Some(changed) if !changed.is_empty() => std::mem::take(changed),
            _ => return Vec::new(),
        };
        keys.into_iter()
            .map(|key| read(key, state.storage.get(&key)))
            .collect()
    }

    /// Marks keys as written again (their save failed: the next one retries them).
    pub(crate) fn mark_changed(&self, keys: impl IntoIterator<Item = DhtId>) {
        if let Some(changed) = self.state().changed.as_mut() {
            changed.extend(keys);
        }
    }

    /// Puts saved records back into the storage through its own store rules (the newest value
    /// wins), unmarked and charged to no writer's quota. Returns how many keys were taken.
    pub(crate) fn load_records(
        &self,
        records: impl IntoIterator<Item = (DhtId, DhtTime, LoadedValue)>,
    ) -> usize {
        let mut state = self.state();
        let mut loaded = 0;
        for (key, expiration_time, value) in records {
            let stored = match value {
                LoadedValue::Regular(value) => {
                    state.storage.store(key, value, expiration_time, None)
                }
                LoadedValue::Dictionary(entries) => {
                    let mut any = false;
                    for (subkey, value, expiration_time) in entries {
                        any |= state
                            .storage
                            .store_subkey(key, subkey, value, expiration_time);
                    }
                    any
                }
            };
            loaded += usize::from(stored);
        }
        loaded
    }
}
