//! Beam search over the DHT (hivemind's `traverse_dht`): several queries share a pool of workers,
//! and one request to a peer carries every unfinished query that peer is close to.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::Notify;

use crate::{FastMap, FastSet, lock};

/// A point of a metric keyspace: node ids and query ids alike.
pub trait Keyspace: Copy + Eq + Hash + Ord + Send + Sync + 'static {
    /// Distance type; smaller is closer.
    type Distance: Ord + Copy + Send;

    /// The distance between two points (XOR for Kademlia).
    fn distance(&self, other: &Self) -> Self::Distance;
}

/// How wide and how parallel a search is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraverseConfig {
    /// How many nearest nodes to keep per query (hivemind's `beam_size`).
    pub beam_size: usize,
    /// Concurrent requests in flight (hivemind's `num_workers`).
    pub num_workers: usize,
    /// Queries one request may carry (hivemind's `queries_per_call`).
    pub queries_per_call: usize,
}

/// What a peer answered for one query: its neighbours, and whether the search for this query may
/// stop (e.g. a good enough value was found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<K> {
    /// Nodes the peer knows near the query.
    pub neighbors: Vec<K>,
    /// Stop searching for this query.
    pub stop: bool,
}

/// The outcome per query: the nearest nodes found, nearest first, and every node asked.
pub type Traversal<K> = (HashMap<K, Vec<K>>, HashMap<K, HashSet<K>>);

struct QueryState<K: Keyspace> {
    candidates: BinaryHeap<Reverse<(K::Distance, K)>>,
    nearest: BinaryHeap<(K::Distance, K)>,
    known: FastSet<K>,
    visited: HashSet<K>,
    active_workers: usize,
}

impl<K: Keyspace> QueryState<K> {
    /// The distance a node must beat to enter a full beam; `None` while the beam has room.
    fn upper_bound(&self, beam_size: usize) -> Option<K::Distance> {
        (self.nearest.len() >= beam_size)
            .then(|| self.nearest.peek().map(|(d, _)| *d))
            .flatten()
    }

    fn within(&self, distance: K::Distance, beam_size: usize) -> bool {
        self.upper_bound(beam_size)
            .is_none_or(|bound| distance <= bound)
    }

    /// The distance of the nearest candidate worth asking.
    fn best_candidate(&self, beam_size: usize) -> Option<K::Distance> {
        let Reverse((d, _)) = self.candidates.peek()?;
        self.within(*d, beam_size).then_some(*d)
    }

    fn offer(&mut self, query: &K, node: K, beam_size: usize) {
        if !self.known.insert(node) {
            return;
        }
        let distance = query.distance(&node);
        if self.nearest.len() < beam_size || self.within(distance, beam_size) {
            self.candidates.push(Reverse((distance, node)));
            self.nearest.push((distance, node));
            if self.nearest.len() > beam_size {
                self.nearest.pop();
            }
        }
    }
}

struct State<K: Keyspace, C> {
    queries: FastMap<K, QueryState<K>>,
    unfinished: FastSet<K>,
    nearest: HashMap<K, Vec<K>>,
    visited: HashMap<K, HashSet<K>>,
    busy_workers: usize,
    found: C,
}

impl<K: Keyspace, C: FnMut(K, &[K], &HashSet<K>)> State<K, C> {
    /// Ends the search for `query`; the callback fires exactly once per query.
    fn finish(&mut self, query: K) {
        if !self.unfinished.remove(&query) {
            return;
        }
        let Some(state) = self.queries.remove(&query) else {
            return;
        };
        let nearest: Vec<K> = state
            .nearest
            .into_sorted_vec()
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        (self.found)(query, &nearest, &state.visited);
        self.nearest.insert(query, nearest);
        self.visited.insert(query, state.visited);
    }

    /// The next peer to ask and the queries to ask it, or why there is none.
    fn next_request(&mut self, config: &TraverseConfig) -> Next<K> {
        loop {
            if self.unfinished.is_empty() {
                return Next::Done;
            }
            let beam = config.beam_size;
            let chosen = self
                .unfinished
                .iter()
                .filter_map(|q| {
                    let state = &self.queries[q];
                    state
                        .best_candidate(beam)
                        .map(|d| ((state.active_workers, d), *q))
                })
                .min();
            let Some((_, query)) = chosen else {
                if self.busy_workers > 0 {
                    return Next::Wait;
                }
                let all: Vec<K> = self.unfinished.iter().copied().collect();
                for q in all {
                    self.finish(q);
                }
                return Next::Done;
            };
            let state = self
                .queries
                .get_mut(&query)
                .expect("unfinished query has state");
            let Some(Reverse((distance, peer))) = state.candidates.pop() else {
                continue;
            };
            if state.visited.contains(&peer) {
                continue;
            }
            if !state.within(distance, beam) {
                if state.active_workers == 0 {
                    self.finish(query);
                }
                continue;
            }
            // Share the request with the other unfinished queries closest to this peer.
            let mut others: Vec<(K::Distance, K)> = self
                .unfinished
                .iter()
                .filter(|q| **q != query && !self.queries[*q].visited.contains(&peer))
                .map(|q| (q.distance(&peer), *q))
                .collect();
            others.sort();
            let batch: Vec<K> = std::iter::once(query)
                .chain(
                    others
                        .into_iter()
                        .take(config.queries_per_call.saturating_sub(1))
                        .map(|(_, q)| q),
                )
                .collect();
            for q in &batch {
                let state = self.queries.get_mut(q).expect("batched query has state");
                state.visited.insert(peer);
                state.active_workers += 1;
            }
            self.busy_workers += 1;
            return Next::Ask(peer, batch);
        }
    }

    fn absorb(&mut self, batch: &[K], mut answers: HashMap<K, Answer<K>>, beam_size: usize) {
        self.busy_workers -= 1;
        for query in batch {
            let Some(state) = self.queries.get_mut(query) else {
                continue; // finished meanwhile
            };
            state.active_workers -= 1;
            match answers.remove(query) {
                Some(Answer { stop: true, .. }) => self.finish(*query),
                Some(Answer { neighbors, .. }) => {
                    for node in neighbors {
                        state.offer(query, node, beam_size);
                    }
                }
                None => {}
            }
        }
    }
}

enum Next<K> {
    Ask(K, Vec<K>),
    Wait,
    Done,
}

/// Finds the `beam_size` nearest nodes to every query, starting from `initial_nodes`.
///
/// `get_neighbors(peer, queries)` asks one peer about several queries; a peer that fails should
/// answer with an empty map. `found(query, nearest, visited)` fires exactly once per query, as soon
/// as that query is finished. `visited` pre-marks nodes not to ask (per query). Returns when every
/// query is finished; requests still in flight then are dropped, which cancels them.
pub async fn traverse<K, F, Fut, C>(
    queries: &[K],
    initial_nodes: &[K],
    config: TraverseConfig,
    visited: HashMap<K, HashSet<K>>,
    get_neighbors: F,
    found: C,
) -> Traversal<K>
where
    K: Keyspace,
    F: Fn(K, Vec<K>) -> Fut,
    Fut: Future<Output = HashMap<K, Answer<K>>>,
    C: FnMut(K, &[K], &HashSet<K>),
{
    let beam = config.beam_size.max(1);
    let config = TraverseConfig {
        beam_size: beam,
        num_workers: config.num_workers.max(1),
        queries_per_call: config.queries_per_call.max(1),
    };
    let mut visited = visited;
    let mut state = State {
        queries: FastMap::default(),
        unfinished: FastSet::default(),
        nearest: HashMap::new(),
        visited: HashMap::new(),
        busy_workers: 0,
        found,
    };
    for query in queries {
        if state.queries.contains_key(query) {
            continue;
        }
        let mut q = QueryState {
            candidates: BinaryHeap::new(),
            nearest: BinaryHeap::new(),
            known: FastSet::default(),
            visited: visited.remove(query).unwrap_or_default(),
            active_workers: 0,
        };
        for node in initial_nodes {
            q.offer(query, *node, beam);
        }
        state.queries.insert(*query, q);
        state.unfinished.insert(*query);
    }
    let state = Mutex::new(state);
    let progress = Notify::new();
    let worker = || async {
        loop {
            let notified = progress.notified();
            futures::pin_mut!(notified);
            notified.as_mut().enable();
            let next = lock(&state).next_request(&config);
            match next {
                Next::Done => {
                    progress.notify_waiters();
                    return;
                }
                Next::Wait => notified.await,
                Next::Ask(peer, batch) => {
                    let answers = get_neighbors(peer, batch.clone()).await;
                    lock(&state).absorb(&batch, answers, beam);
                    progress.notify_waiters();
                }
            }
        }
    };
    let mut workers: FuturesUnordered<_> = (0..config.num_workers).map(|_| worker()).collect();
    // The first worker to see the search done ends it; the others' requests are dropped.
    workers.next().await;
    drop(workers);
    let state = state.into_inner().unwrap_or_else(|e| e.into_inner());
    (state.nearest, state.visited)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    impl Keyspace for u64 {
        type Distance = u64;
        fn distance(&self, other: &u64) -> u64 {
            self ^ other
        }
    }

    /// A swarm shaped like Kademlia routing tables: each node knows its `k`
    /// nearest nodes and up to two nodes per bucket (common-prefix length).
    /// A `BTreeMap` so that `keys()` (and thus the start nodes) is the same in
    /// every run: a `HashMap`'s order is random per process.
    fn swarm(n: usize, k: usize, seed: u64) -> BTreeMap<u64, Vec<u64>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let ids: Vec<u64> = (0..n).map(|_| rng.r#gen()).collect();
        ids.iter()
            .map(|&id| {
                let mut others: Vec<u64> = ids.iter().copied().filter(|&o| o != id).collect();
                others.sort_by_key(|o| o ^ id);
                let mut known: Vec<u64> = others[..k].to_vec();
                let mut per_bucket = [0u8; 65];
                for &o in &others[k..] {
                    let bucket = (o ^ id).leading_zeros() as usize;
                    if per_bucket[bucket] < 2 {
                        per_bucket[bucket] += 1;
                        known.push(o);
                    }
                }
                (id, known)
            })
            .collect()
    }

    fn brute_nearest(ids: &[u64], query: u64, k: usize) -> Vec<u64> {
        let mut sorted = ids.to_vec();
        sorted.sort_by_key(|o| o ^ query);
        sorted.truncate(k);
        sorted
    }

    #[tokio::test]
    async fn finds_the_true_nearest_and_calls_back_once_per_query() {
        for seed in 0..8 {
            nearest_search_with_seed(seed).await;
        }
    }

    async fn nearest_search_with_seed(seed: u64) {
        let graph = swarm(300, 8, seed);
        let ids: Vec<u64> = graph.keys().copied().collect();
        let mut rng = StdRng::seed_from_u64(seed + 1);
        let queries: Vec<u64> = (0..32).map(|_| rng.r#gen()).collect();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let mut found = HashMap::new();
        let (nearest, visited) = traverse(
            &queries,
            &ids[..3],
            TraverseConfig {
                beam_size: 8,
                num_workers: 4,
                queries_per_call: 5,
            },
            HashMap::new(),
            |peer, qs: Vec<u64>| {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let known = graph[&peer].clone();
                async move {
                    tokio::task::yield_now().await;
                    qs.into_iter()
                        .map(|q| {
                            let mut near = known.clone();
                            near.sort_by_key(|o| o ^ q);
                            (
                                q,
                                Answer {
                                    neighbors: near,
                                    stop: false,
                                },
                            )
                        })
                        .collect()
                }
            },
            |q, near: &[u64], _visited: &HashSet<u64>| {
                assert!(
                    found.insert(q, near.to_vec()).is_none(),
                    "callback fired twice for {q}"
                );
            },
        )
        .await;
        assert_eq!(found.len(), queries.len());
        let mut exact_top1 = 0;
        for q in &queries {
            assert_eq!(nearest[q], found[q]);
            assert!(!visited[q].is_empty());
            if nearest[q][0] == brute_nearest(&ids, *q, 1)[0] {
                exact_top1 += 1;
            }
        }
        println!(
            "seed {seed}: top-1 exact for {exact_top1}/{} queries, {} requests",
            queries.len(),
            calls.load(std::sync::atomic::Ordering::Relaxed)
        );
        assert!(
            exact_top1 >= queries.len() * 9 / 10,
            "seed {seed}: {exact_top1}"
        );
        // Sharing: fewer requests than one per query per visited node.
        let visits: usize = visited.values().map(|v| v.len()).sum();
        assert!(calls.load(std::sync::atomic::Ordering::Relaxed) < visits);
    }

    #[tokio::test]
    async fn stop_ends_a_query_and_dead_peers_are_skipped() {
        let graph = swarm(100, 6, 3);
        let ids: Vec<u64> = graph.keys().copied().collect();
        let dead: HashSet<u64> = ids.iter().copied().step_by(3).collect();
        let target = ids[50];
        let (nearest, _) = traverse(
            &[target, target ^ 1],
            &ids[..5],
            TraverseConfig {
                beam_size: 4,
                num_workers: 2,
                queries_per_call: 2,
            },
            HashMap::new(),
            |peer, qs: Vec<u64>| {
                let answer = if dead.contains(&peer) {
                    HashMap::new()
                } else {
                    qs.iter()
                        .map(|q| {
                            let stop = *q == target && peer == target;
                            (
                                *q,
                                Answer {
                                    neighbors: graph[&peer].clone(),
                                    stop,
                                },
                            )
                        })
                        .collect()
                };
                async move { answer }
            },
            |_, _: &[u64], _: &HashSet<u64>| {},
        )
        .await;
        assert_eq!(nearest.len(), 2);
        assert!(nearest[&target].len() <= 4);
    }

    #[tokio::test]
    async fn no_initial_nodes_finishes_at_once() {
        let mut fired = 0;
        let (nearest, visited) = traverse(
            &[1u64, 2, 3],
            &[],
            TraverseConfig {
                beam_size: 3,
                num_workers: 2,
                queries_per_call: 2,
            },
            HashMap::new(),
            |_, _| async { HashMap::new() },
            |_, near: &[u64], _: &HashSet<u64>| {
                assert!(near.is_empty());
                fired += 1;
            },
        )
        .await;
        assert_eq!(fired, 3);
        assert!(nearest.values().all(|v| v.is_empty()));
        assert!(visited.values().all(|v| v.is_empty()));
    }
}
