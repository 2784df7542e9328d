//! A node's data dir ([`DhtConfig::with_data_dir`](super::DhtConfig::with_data_dir)): its
//! identity, DHT id, the records it stores as a replica and its routing table survive a restart.
//!
//! The records, the routing table and the DHT id (unless configured) live in one
//! [redb](https://docs.rs/redb) database, `DIR/dht.redb`. Why redb: pure Rust (no C library to
//! build), ACID with every commit fsync'd by default, a single file, and well kept. The identity
//! is the runtime's key file, `DIR/identity.key`.
//!
//! The hot path stays free: a store only adds its key to a set in the protocol's state
//! ([`crate::protocol`]'s `changes`). A background task wakes every [`FLUSH_PERIOD`], takes the
//! set, copies the keys' current values under the state lock, and writes them in one write
//! transaction on a blocking thread (a key gone or expired is deleted). It purges expired records
//! every [`PURGE_PERIOD`] (and on start) and saves the routing table every [`ROUTING_PERIOD`] and
//! on shutdown. A failed write is logged and retried at the next wake-up.
//!
//! Guarantee: a store acknowledged at least 1 s before the process is killed (even `kill -9`) is
//! on disk; on a clean shutdown ([`DhtNode::shutdown`]) everything is.
//!
//! Records are encoded by the runtime's codec ([`servicer_runtime::native::codec`]) as a
//! [`DiskRecord`], under a format version kept in the `meta` table. A record that does not decode
//! is skipped with a warning.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use servicer_runtime::native::codec;
use servicer_runtime::{Multiaddr, PeerId, multiaddr_peer_id};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{DhtNode, NodeInner};
use crate::error::DhtError;
use crate::id::DhtId;
use crate::limits::Limits;
use crate::protocol::LoadedValue;
use crate::storage::StoredValue;
use crate::time::{DhtTime, ValueWithExpiration, get_dht_time};

/// The database, in the data dir.
pub(super) const DB_FILE: &str = "dht.redb";
/// The node's key, in the data dir (unless the P2P config names an identity).
pub(super) const IDENTITY_FILE: &str = "identity.key";
/// The on-disk format this code reads and writes.
const FORMAT_VERSION: u64 = 1;
const FORMAT_KEY: &str = "format_version";

/// Format version and other facts about the database.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Key id (20 bytes) to its [`DiskRecord`].
pub(super) const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
/// Key id to the record's expiration, so that purging reads no values.
const EXPIRATIONS: TableDefinition<&[u8], f64> = TableDefinition::new("expirations");
/// The node's own facts: its DHT id, so that it keeps its place in the keyspace.
const NODE: TableDefinition<&str, &[u8]> = TableDefinition::new("node");
const NODE_ID_KEY: &str = "node_id";
/// Peer id to its listen addresses (each a multiaddr's bytes), encoded by the codec.
const PEERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("peers");

/// How often changed records are written: well within the 1 s of the guarantee.
pub(super) const FLUSH_PERIOD: Duration = Duration::from_millis(100);
/// How often the routing table is saved.
pub(super) const ROUTING_PERIOD: Duration = Duration::from_secs(10);
/// How often expired records are deleted from disk.
pub(super) const PURGE_PERIOD: Duration = Duration::from_secs(60);
/// The largest saved address list of one peer that is read back.
const MAX_PEER_BYTES: usize = 64 << 10;

/// A record as saved: what the storage holds under a key.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DiskRecord {
    /// The record's expiration (a dictionary's: its latest subkey's).
    pub(super) expiration_time: DhtTime,
    /// The value.
    pub(super) value: DiskValue,
}

/// A saved value. Signatures are inside the bytes, so they survive as they are.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum DiskValue {
    /// A regular value.
    Regular(Vec<u8>),
    /// A dictionary: subkey, value, expiration of each unexpired entry.
    Dictionary(Vec<(Vec<u8>, Vec<u8>, DhtTime)>),
}

impl DiskRecord {
    /// The record of a stored value, or `None` when nothing unexpired is left to save.
    fn of(stored: &ValueWithExpiration<StoredValue>, now: DhtTime) -> Option<DiskRecord> {
        let value = match &stored.value {
            StoredValue::Regular(value) => DiskValue::Regular(value.clone()),
            StoredValue::Dictionary(dict) => {
                let entries: Vec<_> = dict
                    .entries()
                    .filter(|(_, v)| v.expiration_time >= now)
                    .map(|(subkey, v)| (subkey.clone(), v.value.clone(), v.expiration_time))
                    .collect();
                if entries.is_empty() {
                    return None;
                }
                DiskValue::Dictionary(entries)
            }
        };
        Some(DiskRecord {
            expiration_time: stored.expiration_time,
            value,
        })
    }
}

/// What a data dir held at start.
pub(super) struct Saved {
    /// The node's DHT id: the configured one, else the saved one, else a new one (saved now).
    pub(super) node_id: DhtId,
    /// Unexpired records.
    pub(super) records: Vec<(DhtId, DhtTime, LoadedValue)>,
    /// The saved routing table's peers, each with its full `/p2p/` multiaddrs.
    pub(super) peers: Vec<(PeerId, Vec<Multiaddr>)>,
}

/// An open database. Its calls block: run them on a blocking thread.
pub(super) struct DataDir {
    db: Database,
    path: PathBuf,
    /// The largest record that is read back.
    record_limit: usize,
}

impl DataDir {
    /// Opens (or creates) the database in `dir`, checks its format, purges expired records and
    /// reads what is left.
    fn open(
        dir: &Path,
        limits: &Limits,
        configured: Option<DhtId>,
    ) -> Result<(DataDir, Saved), DhtError> {
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, "cannot create the folder", e))?;
        let path = dir.join(DB_FILE);
        let db = Database::create(&path).map_err(|e| fail(&path, "cannot open the database", e))?;
        // Any value the node accepts, in every subkey a dictionary may have, and room for the
        // encoding's own bytes.
        let record_limit = limits
            .max_value_size
            .saturating_add(1024)
            .saturating_mul(limits.max_subkeys_per_dictionary.max(1));
        let data = DataDir {
            db,
            path,
            record_limit,
        };
        data.check_format()
            .map_err(|e| data.fail("cannot set up", e))?;
        let node_id = data
            .node_id(configured)
            .map_err(|e| data.fail("cannot keep the node id", e))?;
        data.purge(get_dht_time())?;
        let saved = data
            .read(node_id)
            .map_err(|e| data.fail("cannot read", e))?;
        Ok((data, saved))
    }

    fn fail(&self, what: &str, err: impl std::fmt::Display) -> DhtError {
        fail(&self.path, what, err)
    }

    /// Creates the tables and the format version, or refuses a database of another format.
    fn check_format(&self) -> Result<(), String> {
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
            let found = meta
                .get(FORMAT_KEY)
                .map_err(|e| e.to_string())?
                .map(|v| v.value());
            match found {
                Some(FORMAT_VERSION) => {}
                Some(other) => {
                    return Err(format!(
                        "written in format {other}, this node reads format {FORMAT_VERSION}"
                    ));
                }
                None => {
                    meta.insert(FORMAT_KEY, FORMAT_VERSION)
                        .map_err(|e| e.to_string())?;
                }
            }
            txn.open_table(RECORDS).map_err(|e| e.to_string())?;
            txn.open_table(EXPIRATIONS).map_err(|e| e.to_string())?;
            txn.open_table(PEERS).map_err(|e| e.to_string())?;
            txn.open_table(NODE).map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())
    }

    /// The configured DHT id, else the saved one, else a random one; saved if new.
    fn node_id(&self, configured: Option<DhtId>) -> Result<DhtId, redb::Error> {
        let txn = self.db.begin_write()?;
        let node_id = {
            let mut table = txn.open_table(NODE)?;
            let saved = table
                .get(NODE_ID_KEY)?
                .and_then(|v| DhtId::from_slice(v.value()));
            let node_id = configured.or(saved).unwrap_or_else(DhtId::random);
            if saved != Some(node_id) {
                table.insert(NODE_ID_KEY, node_id.as_bytes().as_slice())?;
            }
            node_id
        };
        txn.commit()?;
        Ok(node_id)
    }

    /// Every record that decodes and has not expired, and every saved peer's addresses.
    fn read(&self, node_id: DhtId) -> Result<Saved, redb::Error> {
        let txn = self.db.begin_read()?;
        let now = get_dht_time();
        let mut records = Vec::new();
        for entry in txn.open_table(RECORDS)?.iter()? {
            let (key, value) = entry?;
            let Some(id) = DhtId::from_slice(key.value()) else {
                tracing::warn!(path = %self.path.display(), "skipping a saved record: its key is not a DHT id");
                continue;
            };
            let record: DiskRecord = match codec::decode(value.value(), self.record_limit) {
                Ok(record) => record,
                Err(err) => {
                    tracing::warn!(key = ?id, %err, path = %self.path.display(), "skipping a saved record that does not decode");
                    continue;
                }
            };
            if record.expiration_time < now {
                continue;
            }
            let value = match record.value {
                DiskValue::Regular(value) => LoadedValue::Regular(value),
                DiskValue::Dictionary(entries) => LoadedValue::Dictionary(entries),
            };
            records.push((id, record.expiration_time, value));
        }
        let mut peers = Vec::new();
        for entry in txn.open_table(PEERS)?.iter()? {
            let (key, value) = entry?;
            let Ok(peer) = PeerId::from_bytes(key.value()) else {
                tracing::warn!(path = %self.path.display(), "skipping a saved peer: not a peer id");
                continue;
            };
            let addrs: Vec<Vec<u8>> = match codec::decode(value.value(), MAX_PEER_BYTES) {
                Ok(addrs) => addrs,
                Err(err) => {
                    tracing::warn!(%peer, %err, "skipping a saved peer whose addresses do not decode");
                    continue;
                }
            };
            let addrs: Vec<Multiaddr> = addrs
                .into_iter()
                .filter_map(|bytes| Multiaddr::try_from(bytes).ok())
                .filter_map(|addr| full_addr(addr, peer))
                .collect();
            if !addrs.is_empty() {
                peers.push((peer, addrs));
            }
        }
        Ok(Saved {
            node_id,
            records,
            peers,
        })
    }

    /// Writes records (`None`: delete the key) in one transaction.
    fn write(&self, records: Vec<(DhtId, Option<DiskRecord>)>) -> Result<(), DhtError> {
        let write = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            {
                let mut values = txn.open_table(RECORDS)?;
                let mut expirations = txn.open_table(EXPIRATIONS)?;
                for (key, record) in &records {
                    let key = key.as_bytes().as_slice();
                    let encoded = record.as_ref().map(codec::encode).transpose();
                    match (record, encoded) {
                        (Some(record), Ok(Some(bytes))) => {
                            values.insert(key, bytes.as_slice())?;
                            expirations.insert(key, record.expiration_time)?;
                        }
                        (_, Err(err)) => {
                            tracing::error!(%err, "cannot encode a record for the data dir");
                        }
                        _ => {
                            values.remove(key)?;
                            expirations.remove(key)?;
                        }
                    }
                }
            }
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| self.fail("cannot write records", e))
    }

    /// Deletes the records that expired before `now`.
    fn purge(&self, now: DhtTime) -> Result<(), DhtError> {
        let purge = || -> Result<usize, redb::Error> {
            let txn = self.db.begin_write()?;
            let purged = {
                let mut values = txn.open_table(RECORDS)?;
                let mut expirations = txn.open_table(EXPIRATIONS)?;
                let mut expired = Vec::new();
                for entry in expirations.iter()? {
                    let (key, expiration) = entry?;
                    if expiration.value() < now {
                        expired.push(key.value().to_vec());
                    }
                }
                for key in &expired {
                    values.remove(key.as_slice())?;
                    expirations.remove(key.as_slice())?;
                }
                expired.len()
            };
            txn.commit()?;
            Ok(purged)
        };
        let purged = purge().map_err(|e| self.fail("cannot purge expired records", e))?;
        tracing::debug!(purged, "purged expired records from the data dir");
        Ok(())
    }

    /// Replaces the saved routing table.
    fn save_peers(&self, peers: Vec<(PeerId, Vec<Multiaddr>)>) -> Result<(), DhtError> {
        let save = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            {
                let mut table = txn.open_table(PEERS)?;
                table.retain(|_, _| false)?;
                for (peer, addrs) in &peers {
                    let addrs: Vec<Vec<u8>> = addrs.iter().map(|a| a.to_vec()).collect();
                    match codec::encode(&addrs) {
                        Ok(bytes) => {
                            table.insert(peer.to_bytes().as_slice(), bytes.as_slice())?;
                        }
                        Err(err) => {
                            tracing::error!(%peer, %err, "cannot encode a peer's addresses")
                        }
                    }
                }
            }
            txn.commit()?;
            Ok(())
        };
        save().map_err(|e| self.fail("cannot save the routing table", e))
    }
}

fn fail(path: &Path, what: &str, err: impl std::fmt::Display) -> DhtError {
    DhtError::Persistence {
        path: path.to_path_buf(),
        reason: format!("{what}: {err}"),
    }
}

/// `addr` ending in `/p2p/<peer>`; `None` if it names another peer.
fn full_addr(addr: Multiaddr, peer: PeerId) -> Option<Multiaddr> {
    match multiaddr_peer_id(&addr) {
        Some(named) if named == peer => Some(addr),
        Some(_) => None,
        None => format!("{addr}/p2p/{peer}").parse().ok(),
    }
}

/// Runs a blocking call of the database on a blocking thread.
async fn blocking<T: Send + 'static>(
    path: &Path,
    call: impl FnOnce() -> Result<T, DhtError> + Send + 'static,
) -> Result<T, DhtError> {
    tokio::task::spawn_blocking(call)
        .await
        .unwrap_or_else(|e| Err(fail(path, "the database thread failed", e)))
}

/// Opens the data dir `dir` (see [`DataDir::open`]) off the async workers.
pub(super) async fn open(
    dir: &Path,
    limits: &Limits,
    configured: Option<DhtId>,
) -> Result<(Arc<DataDir>, Saved), DhtError> {
    let owned = dir.to_path_buf();
    let limits = limits.clone();
    let (data, saved) = blocking(dir, move || DataDir::open(&owned, &limits, configured)).await?;
    Ok((Arc::new(data), saved))
}

/// A running node's persistence: its database, and the task that writes to it.
pub(super) struct Persistence {
    /// The database, closed (`None`) on shutdown so that a new node may open it.
    data: Mutex<Option<Arc<DataDir>>>,
    /// One save at a time: a later one must not be overtaken by an earlier, staler one. It
    /// holds the routing table last saved, so an unchanged one is not written again.
    saving: tokio::sync::Mutex<Vec<(PeerId, Vec<Multiaddr>)>>,
    stop: Arc<Notify>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Persistence {
    pub(super) fn new(data: Arc<DataDir>) -> Self {
        Persistence {
            data: Mutex::new(Some(data)),
            saving: tokio::sync::Mutex::new(Vec::new()),
            stop: Arc::new(Notify::new()),
            task: Mutex::new(None),
        }
    }

    /// Starts the background writer of the node `inner`.
    pub(super) fn start(&self, inner: Weak<NodeInner>) {
        let stop = self.stop.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let started = tokio::time::Instant::now();
            let (mut routing_saved, mut purged) = (started, started);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.notified() => return,
                }
                let Some(inner) = inner.upgrade() else { return };
                let node = DhtNode { inner };
                if let Err(err) = node.save_records().await {
                    tracing::error!(%err, "saving records failed; retrying");
                }
                let now = tokio::time::Instant::now();
                if now - routing_saved >= ROUTING_PERIOD {
                    routing_saved = now;
                    if let Err(err) = node.save_routing_table().await {
                        tracing::error!(%err, "saving the routing table failed");
                    }
                }
                if now - purged >= PURGE_PERIOD {
                    purged = now;
                    if let Err(err) = node.purge_saved().await {
                        tracing::error!(%err, "purging expired records failed");
                    }
                }
            }
        });
        *crate::lock(&self.task) = Some(task);
    }

    /// The database, unless closed.
    fn data(&self) -> Option<Arc<DataDir>> {
        crate::lock(&self.data).clone()
    }

    /// Stops the background writer, waiting for a save under way.
    pub(super) async fn stop(&self) {
        let task = crate::lock(&self.task).take();
        if let Some(task) = task {
            self.stop.notify_one();
            let _ = task.await;
        }
    }
}

impl DhtNode {
    /// The persistence and its open database, if any.
    fn persistence(&self) -> Option<(&Persistence, Arc<DataDir>)> {
        let persistence = self.inner.persistence.as_ref()?;
        Some((persistence, persistence.data()?))
    }

    /// Writes the records changed since the last save.
    pub(super) async fn save_records(&self) -> Result<(), DhtError> {
        let Some((persistence, data)) = self.persistence() else {
            return Ok(());
        };
        let _saving = persistence.saving.lock().await;
        let now = get_dht_time();
        let records = self
            .inner
            .protocol
            .take_changes(|key, stored| (key, stored.and_then(|s| DiskRecord::of(s, now))));
        if records.is_empty() {
            return Ok(());
        }
        let keys: Vec<DhtId> = records.iter().map(|(key, _)| *key).collect();
        let path = data.path.clone();
        let written = blocking(&path, move || data.write(records)).await;
        if written.is_err() {
            self.inner.protocol.mark_changed(keys);
        }
        written
    }

    /// Saves the routing table's peers with their addresses. An empty table keeps the peers
    /// saved before: a node cut off for a while still rejoins them after a restart.
    pub(super) async fn save_routing_table(&self) -> Result<(), DhtError> {
        let Some((persistence, data)) = self.persistence() else {
            return Ok(());
        };
        let mut peers = self.inner.protocol.routing_table_addresses().await;
        if peers.is_empty() {
            return Ok(());
        }
        peers.sort_by_key(|(peer, _)| *peer);
        let mut saved = persistence.saving.lock().await;
        if *saved == peers {
            return Ok(());
        }
        let path = data.path.clone();
        let written = peers.clone();
        blocking(&path, move || data.save_peers(written)).await?;
        *saved = peers;
        Ok(())
    }

    async fn purge_saved(&self) -> Result<(), DhtError> {
        let Some((persistence, data)) = self.persistence() else {
            return Ok(());
        };
        let _saving = persistence.saving.lock().await;
        let path = data.path.clone();
        blocking(&path, move || data.purge(get_dht_time())).await
    }

    /// Writes everything not yet in the data dir now: the changed records and the routing table.
    /// Without a data dir (or after [`shutdown`](Self::shutdown)), does nothing. The background writer does this on its own (records
    /// every 100 ms, the routing table every 10 s); this is for tests and operators who want it
    /// done at a moment of their choosing.
    pub async fn flush(&self) -> Result<(), DhtError> {
        self.save_records().await?;
        self.save_routing_table().await
    }

    /// Stops the background writer, saves everything and closes the database (on shutdown).
    pub(super) async fn stop_persistence(&self) {
        let Some(persistence) = self.inner.persistence.as_ref() else {
            return;
        };
        persistence.stop().await;
        if let Err(err) = self.flush().await {
            tracing::error!(%err, "the final save to the data dir failed");
        }
        let _saving = persistence.saving.lock().await;
        crate::lock(&persistence.data).take();
    }
}
