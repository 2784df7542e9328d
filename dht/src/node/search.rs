//! Beam searches for the nodes nearest to ids ([`DhtNode::find_nearest_nodes`]), the blacklist
//! of peers that failed them, and the hops each search took.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use servicer_runtime::PeerId;

use super::DhtNode;
use crate::blacklist::Blacklist;
use crate::id::DhtId;
use crate::protocol::FindOutcome;
use crate::stats::LookupStats;
use crate::traverse::{Answer, Keyspace, TraverseConfig, traverse};
use crate::{FastMap, lock};

/// The hop of each node one search knows of (see [`LookupStats::hops`]).
pub(super) struct Hops {
    hop: Mutex<FastMap<DhtId, u64>>,
    deepest: AtomicU64,
}

impl Hops {
    pub(super) fn new(initial: &[DhtId]) -> Hops {
        Hops {
            hop: Mutex::new(initial.iter().map(|id| (*id, 1)).collect()),
            deepest: AtomicU64::new(0),
        }
    }

    /// `node` answered, naming `named`.
    pub(super) fn answered(&self, node: &DhtId, named: impl IntoIterator<Item = DhtId>) {
        let mut hops = lock(&self.hop);
        let hop = hops.get(node).copied().unwrap_or(1);
        self.deepest.fetch_max(hop, Ordering::Relaxed);
        for id in named {
            hops.entry(id).or_insert(hop + 1);
        }
    }
}

impl DhtNode {
    /// The beam searches this node has run so far and their hops. With the RPC counts of
    /// [`DhtProtocol::rpcs_sent`](crate::DhtProtocol::rpcs_sent), this tells what lookups cost.
    pub fn lookup_stats(&self) -> LookupStats {
        self.inner.lookup_stats()
    }

    pub(super) fn record_search(&self, hops: &Hops) {
        self.inner.searches.fetch_add(1, Ordering::Relaxed);
        let deepest = hops.deepest.load(Ordering::Relaxed);
        self.inner.search_hops.fetch_add(deepest, Ordering::Relaxed);
    }

    /// Peers banned now for failing to answer a find.
    pub fn banned_peers(&self) -> Vec<PeerId> {
        self.blacklist().banned()
    }

    fn blacklist(&self) -> std::sync::MutexGuard<'_, Blacklist> {
        self.inner
            .blacklist
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// `call_find` that skips banned peers, bans peers that fail, and drops banned peers from
    /// the answer.
    pub(super) async fn find_with_blacklist(
        &self,
        peer: PeerId,
        keys: Vec<DhtId>,
    ) -> Option<HashMap<DhtId, FindOutcome>> {
        if self.blacklist().contains(&peer) {
            return None;
        }
        let mut response = self.inner.protocol.call_find(peer, keys).await;
        let mut blacklist = self.blacklist();
        match &mut response {
            Some(outcomes) => {
                blacklist.register_success(&peer);
                for outcome in outcomes.values_mut() {
                    outcome.nearest.retain(|(_, p)| !blacklist.contains(p));
                }
            }
            None => blacklist.register_failure(peer),
        }
        response
    }

    /// Nearest known nodes to each query, not banned, as initial nodes of a search.
    pub(super) fn initial_nodes(
        &self,
        queries: &[DhtId],
        beam_size: usize,
    ) -> HashMap<DhtId, PeerId> {
        let state = self.inner.protocol.state();
        let blacklist = self.blacklist();
        let own = self.node_id();
        queries
            .iter()
            .flat_map(|q| {
                state
                    .routing_table
                    .get_nearest_neighbors(q, beam_size, Some(&own))
            })
            .filter(|(_, peer)| !blacklist.contains(peer))
            .collect()
    }

    /// The `k_nearest` (default `bucket_size`) nodes nearest to each query, nearest first;
    /// this node is among them unless `exclude_self`. Nodes that failed to answer are left out
    /// (hivemind keeps them: docs/hivemind-compat.md#q7).
    pub async fn find_nearest_nodes(
        &self,
        queries: &[DhtId],
        k_nearest: Option<usize>,
        exclude_self: bool,
    ) -> HashMap<DhtId, Vec<(DhtId, PeerId)>> {
        let k = k_nearest.unwrap_or(self.inner.config.protocol.bucket_size);
        let beam_size = k.max(self.inner.config.protocol.bucket_size);
        let (beams, peers) = self.search_nearest(queries, beam_size).await;
        let own = self.node_id();
        let me = self.inner.p2p.peer_id();
        beams
            .into_iter()
            .map(|(query, mut nearest)| {
                if !exclude_self {
                    nearest.push(own);
                    nearest.sort_by_key(|id| id.distance(&query));
                }
                let nodes = nearest
                    .into_iter()
                    .filter_map(|id| {
                        if id == own {
                            (!exclude_self).then_some((id, me))
                        } else {
                            peers.get(&id).map(|p| (id, *p))
                        }
                    })
                    .take(k)
                    .collect();
                (query, nodes)
            })
            .collect()
    }

    /// Beam search for the nearest live nodes of each query; also returns their peer ids.
    pub(super) async fn search_nearest(
        &self,
        queries: &[DhtId],
        beam_size: usize,
    ) -> (HashMap<DhtId, Vec<DhtId>>, HashMap<DhtId, PeerId>) {
        let peers = Mutex::new(self.initial_nodes(queries, beam_size));
        let failed = Mutex::new(HashSet::new());
        let initial: Vec<DhtId> = lock(&peers).keys().copied().collect();
        let hops = Hops::new(&initial);
        let own = self.node_id();
        let visited = queries.iter().map(|q| (*q, HashSet::from([own]))).collect();
        let config = TraverseConfig {
            beam_size,
            num_workers: self.inner.config.num_workers,
            queries_per_call: (queries.len() as f64).sqrt() as usize,
        };
        let (mut nearest, _) = traverse(
            queries,
            &initial,
            config,
            visited,
            |node, batch| {
                let peer = lock(&peers).get(&node).copied();
                let (peers, failed, hops) = (&peers, &failed, &hops);
                async move {
                    let Some(peer) = peer else {
                        return HashMap::new();
                    };
                    let Some(outcomes) = self.find_with_blacklist(peer, batch).await else {
                        lock(failed).insert(node);
                        return HashMap::new();
                    };
                    hops.answered(&node, named(&outcomes));
                    let mut known = lock(peers);
                    outcomes
                        .into_iter()
                        .map(|(query, outcome)| {
                            known.extend(outcome.nearest.iter().copied());
                            let neighbors = outcome.nearest.into_iter().map(|(id, _)| id).collect();
                            (
                                query,
                                Answer {
                                    neighbors,
                                    stop: false,
                                },
                            )
                        })
                        .collect()
                }
            },
            |_, _, _| {},
        )
        .await;
        self.record_search(&hops);
        let failed = failed.into_inner().unwrap_or_else(|e| e.into_inner());
        for beam in nearest.values_mut() {
            beam.retain(|id| !failed.contains(id));
        }
        (
            nearest,
            peers.into_inner().unwrap_or_else(|e| e.into_inner()),
        )
    }
}

/// The nodes an answer to a find named, for every key.
pub(super) fn named(outcomes: &HashMap<DhtId, FindOutcome>) -> impl Iterator<Item = DhtId> + '_ {
    outcomes
        .values()
        .flat_map(|o| o.nearest.iter().map(|(id, _)| *id))
}
