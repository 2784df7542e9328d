//! What a node holds and has done, as plain snapshots programs print or compare: [`DhtStats`],
//! with the counters it is made of ([`RpcCounts`], [`LookupStats`], [`StoresRefused`]).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::limits::Rejection;

/// A snapshot of a DHT node: what it holds and what it has sent. Take one with
/// [`DhtNode::stats`](crate::DhtNode::stats) (or [`DhtProtocol::stats`](crate::DhtProtocol::stats)
/// for the RPC layer alone); subtract the counters of two snapshots to see what happened between
/// them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DhtStats {
    /// Nodes in the routing table (replacement lists not included).
    pub routing_table_size: usize,
    /// Unexpired keys in the node's storage (the values it is responsible for).
    pub stored_keys: usize,
    /// Bytes of the values (and dictionary subkeys) the storage holds.
    pub stored_bytes: usize,
    /// Unexpired keys in the node's cache (values copied from lookups).
    pub cached_keys: usize,
    /// Bytes of the values (and dictionary subkeys) the cache holds.
    pub cached_bytes: usize,
    /// Records (a regular value, or one subkey of a dictionary) that remote peers wrote and the
    /// node still holds: what [`Limits::max_records`](crate::Limits::max_records) bounds.
    pub remote_records: usize,
    /// Requests the node has sent, by RPC.
    pub requests_sent: RpcCounts,
    /// Beam searches the node has run. Zero from [`DhtProtocol::stats`](crate::DhtProtocol::stats):
    /// searches are the [`DhtNode`](crate::DhtNode)'s.
    pub lookups: LookupStats,
    /// Items of `rpc_store` requests from remote peers that the node stored.
    pub stores_accepted: u64,
    /// Items of `rpc_store` requests from remote peers that the node refused, by reason.
    pub stores_refused: StoresRefused,
}

/// How many requests a node sent, by RPC: each request put on the wire counts once, whether it
/// was answered or not; a call split into several requests (more keys than
/// [`Limits::max_keys_per_request`](crate::Limits::max_keys_per_request)) counts each. Background work (replication to
/// new nodes, pings of stale nodes, caching on nearby nodes) counts too. See
/// [`DhtProtocol::rpcs_sent`](crate::DhtProtocol::rpcs_sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RpcCounts {
    /// `rpc_ping` requests.
    pub ping: u64,
    /// `rpc_store` requests.
    pub store: u64,
    /// `rpc_find` requests.
    pub find: u64,
}

impl RpcCounts {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.ping + self.store + self.find
    }
}

impl std::ops::Sub for RpcCounts {
    type Output = RpcCounts;

    /// The requests sent between two snapshots (`later - earlier`).
    fn sub(self, earlier: RpcCounts) -> RpcCounts {
        RpcCounts {
            ping: self.ping - earlier.ping,
            store: self.store - earlier.store,
            find: self.find - earlier.find,
        }
    }
}

/// The counters behind [`RpcCounts`]; relaxed atomics, since they are statistics only.
#[derive(Default)]
pub(crate) struct SentCounters {
    pub(crate) ping: AtomicU64,
    pub(crate) store: AtomicU64,
    pub(crate) find: AtomicU64,
}

impl SentCounters {
    /// Counts one request.
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub(crate) fn snapshot(&self) -> RpcCounts {
        RpcCounts {
            ping: self.ping.load(Ordering::Relaxed),
            store: self.store.load(Ordering::Relaxed),
            find: self.find.load(Ordering::Relaxed),
        }
    }
}

/// The beam searches a node ran, for benchmarks: see
/// [`DhtNode::lookup_stats`](crate::DhtNode::lookup_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Beam searches run: one per `find_nearest_nodes` and `store_many`, one per `get` that
    /// neither found its value locally nor joined a search already running.
    pub searches: u64,
    /// Their hops, summed. A search's hops are the length of its longest chain of answered
    /// requests in which each request went to a node named in the answer to the one before:
    /// nodes from the own routing table are at hop 1, a node first named by a node at hop `h`
    /// is at hop `h + 1`. It is the least number of round trips one after another the search
    /// needed, however many it ran in parallel.
    pub hops: u64,
}

impl std::ops::Sub for LookupStats {
    type Output = LookupStats;

    /// The searches run between two snapshots (`later - earlier`).
    fn sub(self, earlier: LookupStats) -> LookupStats {
        LookupStats {
            searches: self.searches - earlier.searches,
            hops: self.hops - earlier.hops,
        }
    }
}

/// The items of remote peers' `rpc_store` requests a node refused, by [`Rejection`]: see
/// [`DhtStats::stores_refused`]. Every reason has a count, zero included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoresRefused([u64; Rejection::ALL.len()]);

impl StoresRefused {
    /// Items refused for `reason`.
    pub fn get(&self, reason: Rejection) -> u64 {
        self.0[reason.index()]
    }

    /// All refused items.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Each reason with its count, in the order [`Rejection`] declares them.
    pub fn iter(&self) -> impl Iterator<Item = (Rejection, u64)> + '_ {
        Rejection::ALL.into_iter().zip(self.0)
    }
}

impl std::ops::Sub for StoresRefused {
    type Output = StoresRefused;

    /// The items refused between two snapshots (`later - earlier`).
    fn sub(self, earlier: StoresRefused) -> StoresRefused {
        StoresRefused(std::array::from_fn(|i| self.0[i] - earlier.0[i]))
    }
}

/// The counters behind [`DhtStats::stores_accepted`] and [`StoresRefused`]: relaxed atomics,
/// one per reason, so that counting takes no lock and no allocation.
#[derive(Default)]
pub(crate) struct StoreCounters {
    accepted: AtomicU64,
    refused: [AtomicU64; Rejection::ALL.len()],
}

impl StoreCounters {
    /// Counts the final answer to one store request from a remote peer.
    pub(crate) fn count(&self, results: &[Result<(), Rejection>]) {
        let mut accepted = 0;
        for result in results {
            match result {
                Ok(()) => accepted += 1,
                Err(reason) => {
                    self.refused[reason.index()].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if accepted > 0 {
            self.accepted.fetch_add(accepted, Ordering::Relaxed);
        }
    }

    /// Items accepted so far.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Items refused so far, by reason.
    pub(crate) fn refused(&self) -> StoresRefused {
        StoresRefused(std::array::from_fn(|i| {
            self.refused[i].load(Ordering::Relaxed)
        }))
    }
}
