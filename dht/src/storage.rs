//! Local storage: [`TimedStorage`] with expiration and newest-wins rules, [`DictionaryDhtValue`]
//! (subkey -> value), and [`DhtLocalStorage`], which holds either under a key.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::hash::Hash;

use crate::time::{DhtTime, ValueWithExpiration, get_dht_time};
use crate::{DhtId, FastMap};

/// A heap entry: when `key` expires. Stale entries (the key was re-stored since) are skipped.
#[derive(Debug, Clone)]
struct HeapEntry<K> {
    expiration_time: DhtTime,
    key: K,
}

impl<K> PartialEq for HeapEntry<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<K> Eq for HeapEntry<K> {}
impl<K> PartialOrd for HeapEntry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for HeapEntry<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.expiration_time.total_cmp(&other.expiration_time)
    }
}

/// A map whose entries expire: expired entries are never returned, a key keeps its newest value,
/// and with a maximum size the soonest-expiring entries are evicted first.
#[derive(Debug, Clone)]
pub struct TimedStorage<K, V> {
    data: FastMap<K, ValueWithExpiration<V>>,
    expirations: BinaryHeap<Reverse<HeapEntry<K>>>,
    maxsize: Option<usize>,
    frozen: bool,
}

impl<K: Clone + Eq + Hash, V> Default for TimedStorage<K, V> {
    fn default() -> Self {
        Self::new(None)
    }
}

impl<K: Clone + Eq + Hash, V> TimedStorage<K, V> {
    /// Storage holding at most `maxsize` entries (`None`: unbounded).
    pub fn new(maxsize: Option<usize>) -> Self {
        TimedStorage {
            data: FastMap::default(),
            expirations: BinaryHeap::new(),
            maxsize,
            frozen: false,
        }
    }

    /// Stores `value` unless it has already expired or the key holds a value that expires at the
    /// same time or later. Returns whether it was stored.
    pub fn store(&mut self, key: K, value: V, expiration_time: DhtTime) -> bool {
        if expiration_time < get_dht_time() && !self.frozen {
            return false;
        }
        if let Some(existing) = self.data.get(&key)
            && existing.expiration_time >= expiration_time
        {
            // A rejected store must not touch the newer value's heap entry
            // (docs/hivemind-compat.md#q3).
            return false;
        }
        self.set(key, value, expiration_time);
        self.remove_outdated();
        true
    }

    fn set(&mut self, key: K, value: V, expiration_time: DhtTime) {
        self.expirations.push(Reverse(HeapEntry {
            expiration_time,
            key: key.clone(),
        }));
        self.data
            .insert(key, ValueWithExpiration::new(value, expiration_time));
        // Stale heap entries pile up when keys are re-stored often: rebuild now and then.
        if self.expirations.len() > 2 * self.data.len() + 64 {
            self.expirations = self
                .data
                .iter()
                .map(|(k, v)| {
                    Reverse(HeapEntry {
                        expiration_time: v.expiration_time,
                        key: k.clone(),
                    })
                })
                .collect();
        }
    }

    /// Moves a present key's expiration later, keeping its value.
    pub(crate) fn extend(&mut self, key: &K, expiration_time: DhtTime) {
        if let Some(entry) = self.data.get_mut(key)
            && entry.expiration_time < expiration_time
        {
            entry.expiration_time = expiration_time;
            self.expirations.push(Reverse(HeapEntry {
                expiration_time,
                key: key.clone(),
            }));
        }
    }

    fn remove_outdated(&mut self) {
        if self.frozen {
            return;
        }
        let now = get_dht_time();
        while let Some(Reverse(top)) = self.expirations.peek() {
            let current = self
                .data
                .get(&top.key)
                .is_some_and(|v| v.expiration_time == top.expiration_time);
            let over_size = self.maxsize.is_some_and(|max| self.data.len() > max);
            if current && top.expiration_time >= now && !over_size {
                break;
            }
            let Some(Reverse(top)) = self.expirations.pop() else {
                break;
            };
            if current {
                self.data.remove(&top.key);
            }
        }
    }

    /// The value of `key`, if present and not expired.
    pub fn get(&mut self, key: &K) -> Option<&ValueWithExpiration<V>> {
        self.remove_outdated();
        self.data.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut ValueWithExpiration<V>> {
        self.remove_outdated();
        self.data.get_mut(key)
    }

    /// Every unexpired entry, in no particular order.
    pub fn items(&mut self) -> impl Iterator<Item = (&K, &ValueWithExpiration<V>)> {
        self.remove_outdated();
        self.data.iter()
    }

    /// The entry that expires first.
    #[cfg(test)]
    pub fn top(&mut self) -> Option<(&K, &ValueWithExpiration<V>)> {
        self.remove_outdated();
        let key = loop {
            let Reverse(top) = self.expirations.peek()?;
            match self.data.get(&top.key) {
                Some(v) if v.expiration_time == top.expiration_time => break top.key.clone(),
                _ => {
                    self.expirations.pop();
                }
            }
        };
        self.data.get_key_value(&key)
    }

    /// Removes `key`; a missing key is fine.
    #[cfg(test)]
    pub fn remove(&mut self, key: &K) -> Option<ValueWithExpiration<V>> {
        self.data.remove(key)
    }

    /// Number of unexpired entries.
    pub fn len(&mut self) -> usize {
        self.remove_outdated();
        self.data.len()
    }

    /// Whether there is no unexpired entry.
    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// Runs `f` with expiration and size eviction turned off (hivemind's `freeze()`), e.g. to
    /// read a consistent snapshot or to rebuild a value from a message.
    pub fn frozen<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let was = std::mem::replace(&mut self.frozen, true);
        let result = f(self);
        self.frozen = was;
        self.remove_outdated();
        result
    }
}

/// A dictionary value: subkeys (msgpack bytes) to values with their own expiration.
#[derive(Debug, Clone)]
pub struct DictionaryDhtValue {
    entries: TimedStorage<Vec<u8>, Vec<u8>>,
    latest_expiration_time: DhtTime,
}

impl Default for DictionaryDhtValue {
    fn default() -> Self {
        DictionaryDhtValue {
            entries: TimedStorage::default(),
            latest_expiration_time: f64::NEG_INFINITY,
        }
    }
}

impl PartialEq for DictionaryDhtValue {
    fn eq(&self, other: &Self) -> bool {
        self.latest_expiration_time == other.latest_expiration_time
            && self.entries.data == other.entries.data
    }
}

impl DictionaryDhtValue {
    /// Stores `value` under `subkey` if it is new or strictly newer there.
    pub fn store(&mut self, subkey: Vec<u8>, value: Vec<u8>, expiration_time: DhtTime) -> bool {
        self.latest_expiration_time = self.latest_expiration_time.max(expiration_time);
        self.entries.store(subkey, value, expiration_time)
    }

    /// The latest expiration ever stored: the dictionary's own expiration.
    pub fn latest_expiration_time(&self) -> DhtTime {
        self.latest_expiration_time
    }

    /// The value under `subkey`, if not expired.
    pub fn get(&mut self, subkey: &[u8]) -> Option<&ValueWithExpiration<Vec<u8>>> {
        self.entries.get(&subkey.to_vec())
    }

    /// Every unexpired `(subkey, value)`.
    pub fn items(&mut self) -> impl Iterator<Item = (&Vec<u8>, &ValueWithExpiration<Vec<u8>>)> {
        self.entries.items()
    }

    /// Every entry, expired or not (for sending a consistent snapshot).
    pub fn snapshot(&mut self) -> Vec<(Vec<u8>, ValueWithExpiration<Vec<u8>>)> {
        self.entries
            .frozen(|e| e.data.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// Rebuilds a dictionary from a snapshot, keeping entries as they are (hivemind's `unpackb`).
    pub fn from_snapshot(
        entries: impl IntoIterator<Item = (Vec<u8>, ValueWithExpiration<Vec<u8>>)>,
        latest_expiration_time: DhtTime,
    ) -> Self {
        let mut dict = DictionaryDhtValue::default();
        dict.entries.frozen(|e| {
            for (subkey, v) in entries {
                e.store(subkey, v.value, v.expiration_time);
            }
        });
        dict.latest_expiration_time = latest_expiration_time;
        dict
    }

    /// Number of unexpired subkeys.
    pub fn len(&mut self) -> usize {
        self.entries.len()
    }

    /// Every entry held, expired ones included until they are dropped, without copying.
    pub(crate) fn entries(
        &self,
    ) -> impl Iterator<Item = (&Vec<u8>, &ValueWithExpiration<Vec<u8>>)> {
        self.entries.data.iter()
    }

    /// Bytes of the subkeys and values held, expired ones included until they are dropped.
    pub(crate) fn bytes(&self) -> usize {
        self.entries
            .data
            .iter()
            .map(|(subkey, v)| subkey.len() + v.value.len())
            .sum()
    }

    /// Whether no subkey is left.
    pub fn is_empty(&mut self) -> bool {
        self.entries.is_empty()
    }
}

/// What a key holds: one value, or a dictionary of subkeys.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredValue {
    /// A regular value (msgpack bytes).
    Regular(Vec<u8>),
    /// A dictionary value.
    Dictionary(DictionaryDhtValue),
}

impl StoredValue {
    /// About how many bytes it takes in a message: its values and subkeys, and a little per
    /// dictionary entry.
    pub(crate) fn wire_size(&self) -> usize {
        match self {
            StoredValue::Regular(value) => value.len() + 16,
            StoredValue::Dictionary(dict) => {
                dict.entries()
                    .map(|(s, v)| s.len() + v.value.len() + 24)
                    .sum::<usize>()
                    + 16
            }
        }
    }
}

/// A node's storage (or cache): [`StoredValue`]s by key id.
#[derive(Debug, Clone, Default)]
pub struct DhtLocalStorage {
    inner: TimedStorage<DhtId, StoredValue>,
}

impl DhtLocalStorage {
    /// Storage holding at most `maxsize` keys.
    pub fn new(maxsize: Option<usize>) -> Self {
        DhtLocalStorage {
            inner: TimedStorage::new(maxsize),
        }
    }

    /// Stores a regular value, or one subkey of a dictionary value.
    pub fn store(
        &mut self,
        key: DhtId,
        value: Vec<u8>,
        expiration_time: DhtTime,
        subkey: Option<Vec<u8>>,
    ) -> bool {
        match subkey {
            Some(subkey) => self.store_subkey(key, subkey, value, expiration_time),
            None => self
                .inner
                .store(key, StoredValue::Regular(value), expiration_time),
        }
    }

    /// Stores one subkey: turns a missing or older regular value into a dictionary, adds to an
    /// existing dictionary (refreshing its expiration), and refuses when a newer regular value
    /// is there.
    pub fn store_subkey(
        &mut self,
        key: DhtId,
        subkey: Vec<u8>,
        value: Vec<u8>,
        expiration_time: DhtTime,
    ) -> bool {
        match self.inner.get_mut(&key) {
            Some(entry) => match &mut entry.value {
                StoredValue::Dictionary(dict) => {
                    let stored = dict.store(subkey, value, expiration_time);
                    if stored {
                        self.inner.extend(&key, expiration_time);
                    }
                    stored
                }
                StoredValue::Regular(_) if expiration_time > entry.expiration_time => {
                    self.new_dictionary(key, subkey, value, expiration_time)
                }
                StoredValue::Regular(_) => false,
            },
            None => self.new_dictionary(key, subkey, value, expiration_time),
        }
    }

    fn new_dictionary(
        &mut self,
        key: DhtId,
        subkey: Vec<u8>,
        value: Vec<u8>,
        expiration_time: DhtTime,
    ) -> bool {
        let mut dict = DictionaryDhtValue::default();
        if !dict.store(subkey, value, expiration_time) {
            return false;
        }
        let latest = dict.latest_expiration_time();
        self.inner.store(key, StoredValue::Dictionary(dict), latest)
    }

    /// Stores a whole dictionary: every subkey, the AND of the results (hivemind's `all()` stops
    /// at the first refusal and skips the rest: docs/hivemind-compat.md#q4).
    pub fn store_dictionary(&mut self, key: DhtId, dict: &mut DictionaryDhtValue) -> bool {
        let mut all = true;
        for (subkey, v) in dict.snapshot() {
            all &= self.store_subkey(key, subkey, v.value, v.expiration_time);
        }
        all
    }

    /// The value under `key`, if not expired.
    pub fn get(&mut self, key: &DhtId) -> Option<&ValueWithExpiration<StoredValue>> {
        self.inner.get(key)
    }

    /// Whether `key` holds a dictionary with an unexpired subkey that names an owner: such a
    /// dictionary may only be added to, never replaced by a regular value.
    pub(crate) fn holds_owned_dictionary(&mut self, key: &DhtId) -> bool {
        match self.inner.get_mut(key).map(|entry| &mut entry.value) {
            Some(StoredValue::Dictionary(dict)) => dict
                .items()
                .any(|(subkey, _)| crate::crypto::has_owner_marker(subkey)),
            _ => false,
        }
    }

    /// How many subkeys the dictionary under `key` would have with `subkeys` added (a regular
    /// value counts as none).
    pub fn subkeys_after(&mut self, key: &DhtId, subkeys: &[&[u8]]) -> usize {
        match self.inner.get_mut(key).map(|entry| &mut entry.value) {
            Some(StoredValue::Dictionary(dict)) => {
                let new = subkeys.iter().filter(|s| dict.get(s).is_none()).count();
                dict.len() + new
            }
            _ => subkeys.len(),
        }
    }

    /// Removes a key.
    #[cfg(test)]
    pub fn remove(&mut self, key: &DhtId) -> Option<ValueWithExpiration<StoredValue>> {
        self.inner.remove(key)
    }

    /// Every unexpired entry.
    pub fn items(&mut self) -> impl Iterator<Item = (&DhtId, &ValueWithExpiration<StoredValue>)> {
        self.inner.items()
    }

    /// The entry that expires first.
    #[cfg(test)]
    pub fn top(&mut self) -> Option<(&DhtId, &ValueWithExpiration<StoredValue>)> {
        self.inner.top()
    }

    /// Number of keys.
    pub fn len(&mut self) -> usize {
        self.inner.len()
    }

    /// Bytes of the unexpired values held (a dictionary's: its subkeys and values).
    pub(crate) fn bytes(&mut self) -> usize {
        self.items()
            .map(|(_, v)| match &v.value {
                StoredValue::Regular(value) => value.len(),
                StoredValue::Dictionary(dict) => dict.bytes(),
            })
            .sum()
    }

    /// See [`TimedStorage::frozen`].
    #[cfg(test)]
    pub fn frozen<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let was = std::mem::replace(&mut self.inner.frozen, true);
        let result = f(self);
        self.inner.frozen = was;
        self.inner.remove_outdated();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn now() -> DhtTime {
        get_dht_time()
    }

    fn id(key: &str) -> DhtId {
        DhtId::generate(key)
    }

    fn regular(storage: &mut DhtLocalStorage, key: &str) -> Option<(Vec<u8>, DhtTime)> {
        match storage.get(&id(key)) {
            Some(ValueWithExpiration {
                value: StoredValue::Regular(v),
                expiration_time,
            }) => Some((v.clone(), *expiration_time)),
            _ => None,
        }
    }

    #[test]
    fn store_get_expired_and_empty() {
        let mut s = DhtLocalStorage::default();
        assert!(s.store(id("key"), b"val".to_vec(), now() + 30.0, None));
        assert_eq!(regular(&mut s, "key").unwrap().0, b"val");
        assert!(s.store(id("short"), b"v".to_vec(), now() + 0.05, None));
        std::thread::sleep(Duration::from_millis(200));
        assert!(s.get(&id("short")).is_none());
        assert!(s.get(&id("missing")).is_none());
        assert!(!s.store(id("past"), b"v".to_vec(), now() - 1.0, None));
    }

    #[test]
    fn newer_expiration_wins() {
        let mut s = DhtLocalStorage::default();
        let t = now();
        assert!(s.store(id("k"), b"val1".to_vec(), t + 1.0, None));
        assert!(s.store(id("k"), b"val2".to_vec(), t + 200.0, None));
        assert!(!s.store(id("k"), b"val3".to_vec(), t + 200.0, None));
        assert!(!s.store(id("k"), b"val4".to_vec(), t + 100.0, None));
        assert_eq!(regular(&mut s, "k").unwrap(), (b"val2".to_vec(), t + 200.0));
    }

    #[test]
    fn rejected_store_does_not_shorten_a_newer_value() {
        // docs/hivemind-compat.md#q3: a rejected store's earlier expiration must not evict the
        // newer value.
        let mut s = TimedStorage::default();
        let t = now();
        assert!(s.store("k", "new", t + 100.0));
        assert!(!s.store("k", "old", t + 0.05));
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(s.get(&"k").unwrap().value, "new");
    }

    #[test]
    fn maxsize_evicts_soonest_expiring() {
        let mut s = DhtLocalStorage::new(Some(2));
        let t = now();
        s.store(id("key1a"), b"val1a".to_vec(), t + 10.0, None);
        s.store(id("key1b"), b"val1b".to_vec(), t + 10.0, None);
        s.store(id("key1a"), b"val1a2".to_vec(), t + 20.0, None);
        s.store(id("key2"), b"val2".to_vec(), t + 200.0, None);
        assert_eq!(regular(&mut s, "key2").unwrap().0, b"val2");
        assert_eq!(regular(&mut s, "key1a").unwrap().0, b"val1a2");
        assert!(regular(&mut s, "key1b").is_none());
    }

    #[test]
    fn top_follows_expirations() {
        let mut s = DhtLocalStorage::new(Some(3));
        let t = now();
        s.store(id("key1"), b"val1".to_vec(), t + 10.0, None);
        s.store(id("key2"), b"val2".to_vec(), t + 20.0, None);
        s.store(id("key3"), b"val3".to_vec(), t + 40.0, None);
        assert_eq!(*s.top().unwrap().0, id("key1"));
        s.store(id("key1"), b"val1_new".to_vec(), t + 30.0, None);
        assert_eq!(*s.top().unwrap().0, id("key2"));
        s.remove(&id("key2"));
        let (k, v) = s.top().unwrap();
        assert_eq!(
            (*k, &v.value),
            (id("key1"), &StoredValue::Regular(b"val1_new".to_vec()))
        );
        s.store(id("key2"), b"val2".to_vec(), t + 50.0, None);
        s.store(id("key4"), b"val4".to_vec(), t + 60.0, None);
        let (k, v) = s.top().unwrap();
        assert_eq!(
            (*k, &v.value),
            (id("key3"), &StoredValue::Regular(b"val3".to_vec()))
        );
    }

    #[test]
    fn nested_dictionaries_follow_hivemind_rules() {
        let t = now();
        let mut d2 = DictionaryDhtValue::default();
        d2.store(b"subkey1".to_vec(), b"value1".to_vec(), t + 20.0);
        d2.store(b"subkey2".to_vec(), b"value2".to_vec(), t + 30.0);
        d2.store(b"subkey3".to_vec(), b"value3".to_vec(), t + 10.0);
        assert_eq!(d2.latest_expiration_time(), t + 30.0);

        let mut s = DhtLocalStorage::default();
        for (subkey, v) in d2.snapshot() {
            assert!(s.store_subkey(id("foo"), subkey, v.value, v.expiration_time));
        }
        assert!(s.store(id("bar"), b"456".to_vec(), t + 20.0, None));
        let foo = s.get(&id("foo")).unwrap().clone();
        assert_eq!(foo.expiration_time, t + 30.0);
        let StoredValue::Dictionary(mut foo) = foo.value else {
            panic!("foo is not a dictionary")
        };
        assert_eq!(foo, d2);
        assert_eq!(
            foo.get(b"subkey1").unwrap(),
            &ValueWithExpiration::new(b"value1".to_vec(), t + 20.0)
        );
        assert_eq!(foo.len(), 3);

        assert!(s.store_subkey(id("foo"), b"subkey4".to_vec(), b"value4".to_vec(), t + 40.0));
        assert!(!s.store_subkey(id("bar"), b"subkeyA".to_vec(), b"valueA".to_vec(), t + 10.0));
        assert!(s.store_subkey(id("bar"), b"subkeyA".to_vec(), b"valueA".to_vec(), t + 30.0));
        assert!(s.store_subkey(id("bar"), b"subkeyB".to_vec(), b"valueB".to_vec(), t + 40.0));
        assert!(s.store_subkey(
            id("bar"),
            b"subkeyA".to_vec(),
            b"valueA+".to_vec(),
            t + 50.0
        ));
        let bar = s.get(&id("bar")).unwrap().clone();
        assert_eq!(bar.expiration_time, t + 50.0);
        let StoredValue::Dictionary(mut bar) = bar.value else {
            panic!("bar is not a dictionary")
        };
        assert_eq!(bar.len(), 2);
        assert_eq!(bar.get(b"subkeyA").unwrap().value, b"valueA+");

        assert!(!s.store(id("foo"), b"nothing".to_vec(), t + 35.0, None));
        let StoredValue::Dictionary(mut foo) = s.get(&id("foo")).unwrap().value.clone() else {
            panic!("foo changed kind")
        };
        assert_eq!(
            foo.get(b"subkey2").unwrap(),
            &ValueWithExpiration::new(b"value2".to_vec(), t + 30.0)
        );
        assert_eq!(foo.len(), 4);
        assert!(s.store(id("foo"), b"nothing".to_vec(), t + 50.0, None));
        assert_eq!(
            regular(&mut s, "foo").unwrap(),
            (b"nothing".to_vec(), t + 50.0)
        );
    }

    #[test]
    fn freeze_keeps_expired_and_oversized_entries() {
        let mut s = DhtLocalStorage::new(Some(2));
        s.frozen(|s| {
            assert!(s.store(id("key1"), b"val1".to_vec(), now() + 0.01, None));
            std::thread::sleep(Duration::from_millis(50));
            assert!(s.get(&id("key1")).is_some());
        });
        assert!(s.get(&id("key1")).is_none());
        let t = now();
        s.frozen(|s| {
            s.store(id("key1"), b"val1".to_vec(), t + 10.0, None);
            s.store(id("key2"), b"val2".to_vec(), t + 20.0, None);
            s.store(id("key3"), b"val3".to_vec(), t + 30.0, None);
            assert_eq!(s.len(), 3);
        });
        assert_eq!(s.len(), 2);
        assert!(s.get(&id("key1")).is_none());
    }

    #[test]
    fn whole_dictionary_store_stores_every_subkey() {
        // docs/hivemind-compat.md#q4: a refused subkey must not keep the others from being stored.
        let t = now();
        let mut s = DhtLocalStorage::default();
        assert!(s.store_subkey(id("d"), b"a".to_vec(), b"new".to_vec(), t + 100.0));
        let mut incoming = DictionaryDhtValue::default();
        incoming.store(b"a".to_vec(), b"old".to_vec(), t + 10.0);
        incoming.store(b"b".to_vec(), b"fresh".to_vec(), t + 20.0);
        assert!(!s.store_dictionary(id("d"), &mut incoming));
        let StoredValue::Dictionary(mut d) = s.get(&id("d")).unwrap().value.clone() else {
            panic!("not a dictionary")
        };
        assert_eq!(d.get(b"a").unwrap().value, b"new");
        assert_eq!(d.get(b"b").unwrap().value, b"fresh");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever the order of stores, a key holds its newest unexpired value, and nothing
        /// expired is ever returned.
        #[test]
        fn storage_keeps_the_newest_and_never_returns_expired(
            ops in proptest::collection::vec((0u8..6, -50i32..500, proptest::bool::ANY), 1..80),
            maxsize in proptest::option::of(1usize..8),
        ) {
            let base = now();
            let mut s: TimedStorage<u8, u32> = TimedStorage::new(maxsize);
            let mut newest: HashMap<u8, (DhtTime, u32)> = HashMap::new();
            for (i, (key, offset, _)) in ops.iter().enumerate() {
                let exp = base + f64::from(*offset);
                let stored = s.store(*key, i as u32, exp);
                let expected = exp >= get_dht_time()
                    && newest.get(key).is_none_or(|(e, _)| exp > *e);
                if stored {
                    newest.insert(*key, (exp, i as u32));
                }
                // A store can be refused only for being expired or not newer than what is held.
                if !stored && expected {
                    proptest::prop_assert!(s.get(key).is_some_and(|v| v.expiration_time >= exp));
                }
            }
            let t = get_dht_time();
            for (key, (exp, value)) in &newest {
                if let Some(v) = s.get(key) {
                    proptest::prop_assert!(v.expiration_time >= t);
                    proptest::prop_assert_eq!((v.expiration_time, v.value), (*exp, *value));
                } else {
                    proptest::prop_assert!(maxsize.is_some() || *exp < t);
                }
            }
        }
    }
}
