//! The routing table: k-buckets over the id space, split as hivemind splits them.

use std::collections::HashSet;

use servicer_runtime::PeerId;

use crate::time::{DhtTime, get_dht_time};
use crate::{DhtId, FastMap, FastSet};

/// One k-bucket: the nodes whose ids start with `depth` bits of `lower`.
#[derive(Debug, Clone)]
pub struct KBucket {
    lower: DhtId,
    depth: u32,
    size: usize,
    /// Active nodes, least recently seen first.
    nodes: Vec<(DhtId, PeerId)>,
    /// Nodes waiting for a free slot, most recently seen last.
    replacements: Vec<(DhtId, PeerId)>,
    requested_for_ping: HashSet<DhtId>,
    last_updated: DhtTime,
}

impl KBucket {
    fn new(lower: DhtId, depth: u32, size: usize) -> Self {
        KBucket {
            lower,
            depth,
            size,
            nodes: Vec::new(),
            replacements: Vec::new(),
            requested_for_ping: HashSet::new(),
            last_updated: get_dht_time(),
        }
    }

    /// The smallest id in range.
    pub fn lower(&self) -> DhtId {
        self.lower
    }

    /// How many leading bits all ids in range share.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Whether `id` falls in this bucket.
    pub fn has_in_range(&self, id: &DhtId) -> bool {
        id.common_prefix_len(&self.lower) >= self.depth
    }

    /// Active nodes, least recently seen first.
    #[cfg(test)]
    pub fn nodes(&self) -> &[(DhtId, PeerId)] {
        &self.nodes
    }

    /// Replacement nodes, most recently seen last.
    #[cfg(test)]
    pub fn replacements(&self) -> &[(DhtId, PeerId)] {
        &self.replacements
    }

    /// When a node was last added or updated here.
    pub fn last_updated(&self) -> DhtTime {
        self.last_updated
    }

    /// Adds or refreshes a node; false when the bucket is full and it became a replacement.
    /// Returns the replacement evicted to make room, if any.
    fn add_or_update(&mut self, id: DhtId, peer: PeerId) -> (bool, Option<(DhtId, PeerId)>) {
        self.requested_for_ping.remove(&id);
        self.last_updated = get_dht_time();
        if let Some(pos) = self.nodes.iter().position(|(n, _)| *n == id) {
            self.nodes.remove(pos);
            self.nodes.push((id, peer));
            return (true, None);
        }
        if self.nodes.len() < self.size {
            self.nodes.push((id, peer));
            return (true, None);
        }
        self.replacements.retain(|(n, _)| *n != id);
        self.replacements.push((id, peer));
        // hivemind keeps replacements without bound (docs/hivemind-compat.md#q16); one bucket's
        // worth is plenty.
        let evicted = (self.replacements.len() > self.size).then(|| self.replacements.remove(0));
        (false, evicted)
    }

    /// The least recently seen active node not already being pinged; marks it as pinged.
    fn request_ping_node(&mut self) -> Option<(DhtId, PeerId)> {
        let node = *self
            .nodes
            .iter()
            .find(|(n, _)| !self.requested_for_ping.contains(n))?;
        self.requested_for_ping.insert(node.0);
        Some(node)
    }

    /// Removes a node; an active node's slot goes to the most recent replacement.
    fn remove(&mut self, id: &DhtId) -> bool {
        self.requested_for_ping.remove(id);
        if let Some(pos) = self.nodes.iter().position(|(n, _)| n == id) {
            self.nodes.remove(pos);
            if let Some(promoted) = self.replacements.pop() {
                self.nodes.push(promoted);
            }
            return true;
        }
        let before = self.replacements.len();
        self.replacements.retain(|(n, _)| n != id);
        before != self.replacements.len()
    }

    /// Two buckets of depth + 1 covering this one's range.
    fn split(self) -> (KBucket, KBucket) {
        let mut left = KBucket::new(self.lower, self.depth + 1, self.size);
        let mut right = KBucket::new(
            self.lower.with_bit(self.depth, true),
            self.depth + 1,
            self.size,
        );
        // By the id's next bit, so an id equal to the midpoint goes right
        // (docs/hivemind-compat.md#q2).
        for (id, peer) in self.nodes.into_iter().chain(self.replacements) {
            let half = if id.bit(self.depth) {
                &mut right
            } else {
                &mut left
            };
            half.add_or_update(id, peer);
        }
        (left, right)
    }
}

/// The routing table of one node: k-buckets that split near the node's own id (and every
/// `depth_modulo` levels elsewhere), with maps from ids to peers and back.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    node_id: DhtId,
    depth_modulo: u32,
    buckets: Vec<KBucket>,
    id_to_peer: FastMap<DhtId, PeerId>,
    peer_to_id: FastMap<PeerId, DhtId>,
    /// Known nodes that answered a call of this node's (the others are known by their word).
    verified: FastSet<DhtId>,
}

impl RoutingTable {
    /// An empty table for the node `node_id`.
    pub fn new(node_id: DhtId, bucket_size: usize, depth_modulo: u32) -> Self {
        RoutingTable {
            node_id,
            depth_modulo: depth_modulo.max(1),
            buckets: vec![KBucket::new(DhtId::MIN, 0, bucket_size.max(1))],
            id_to_peer: FastMap::default(),
            peer_to_id: FastMap::default(),
            verified: FastSet::default(),
        }
    }

    /// The buckets, ordered by range.
    pub fn buckets(&self) -> &[KBucket] {
        &self.buckets
    }

    /// The index of the bucket whose range holds `id`.
    pub fn get_bucket_index(&self, id: &DhtId) -> usize {
        self.buckets
            .partition_point(|b| b.lower <= *id)
            .saturating_sub(1)
    }

    /// Adds or refreshes a node. When its bucket is full and may not split, the node becomes a
    /// replacement and the least recently seen active node is returned: ping it, and remove it
    /// if it does not answer. An id another peer holds is left to that peer.
    pub fn add_or_update_node(&mut self, id: DhtId, peer: PeerId) -> Option<(DhtId, PeerId)> {
        if id == self.node_id {
            return None;
        }
        // An id belongs to the peer that holds it until that peer is removed.
        if self
            .id_to_peer
            .get(&id)
            .is_some_and(|holder| *holder != peer)
        {
            return None;
        }
        if let Some(old) = self.peer_to_id.get(&peer).copied()
            && old != id
        {
            self.remove(&old);
        }
        loop {
            let index = self.get_bucket_index(&id);
            let bucket = &mut self.buckets[index];
            let (active, evicted) = bucket.add_or_update(id, peer);
            if let Some((gone, gone_peer)) = evicted {
                self.verified.remove(&gone);
                self.id_to_peer.remove(&gone);
                self.peer_to_id.remove(&gone_peer);
            }
            self.id_to_peer.insert(id, peer);
            self.peer_to_id.insert(peer, id);
            if active {
                return None;
            }
            let bucket = &self.buckets[index];
            if bucket.has_in_range(&self.node_id) || !bucket.depth.is_multiple_of(self.depth_modulo)
            {
                let (left, right) = self.buckets.remove(index).split();
                self.buckets.insert(index, right);
                self.buckets.insert(index, left);
                continue;
            }
            return self.buckets[index].request_ping_node();
        }
    }

    /// Removes a node (active or replacement); a freed slot goes to a replacement.
    pub fn remove(&mut self, id: &DhtId) -> Option<PeerId> {
        let index = self.get_bucket_index(id);
        self.buckets[index].remove(id);
        self.verified.remove(id);
        let peer = self.id_to_peer.remove(id)?;
        self.peer_to_id.remove(&peer);
        Some(peer)
    }

    /// Marks a known node as having answered a call of this node's; true if it had not before.
    pub fn mark_verified(&mut self, id: &DhtId) -> bool {
        self.id_to_peer.contains_key(id) && self.verified.insert(*id)
    }

    /// The peer of a known node (active or replacement).
    pub fn get_peer(&self, id: &DhtId) -> Option<PeerId> {
        self.id_to_peer.get(id).copied()
    }

    /// The id of a known peer (active or replacement).
    pub fn get_id(&self, peer: &PeerId) -> Option<DhtId> {
        self.peer_to_id.get(peer).copied()
    }

    /// Whether the node is known (active or replacement).
    pub fn contains(&self, id: &DhtId) -> bool {
        self.id_to_peer.contains_key(id)
    }

    /// Number of active nodes.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    /// Number of replacement nodes.
    #[cfg(test)]
    pub fn replacement_count(&self) -> usize {
        self.buckets.iter().map(|b| b.replacements.len()).sum()
    }

    /// Every active node.
    pub fn nodes(&self) -> impl Iterator<Item = &(DhtId, PeerId)> {
        self.buckets.iter().flat_map(|b| b.nodes.iter())
    }

    /// The `k` active nodes nearest to `query` by XOR distance, nearest first, without `exclude`.
    pub fn get_nearest_neighbors(
        &self,
        query: &DhtId,
        k: usize,
        exclude: Option<&DhtId>,
    ) -> Vec<(DhtId, PeerId)> {
        let mut all: Vec<(DhtId, DhtId, PeerId)> = self
            .nodes()
            .filter(|(id, _)| Some(id) != exclude)
            .map(|(id, peer)| (id.xor_distance(query), *id, *peer))
            .collect();
        if k == 0 {
            return Vec::new();
        }
        if all.len() > k {
            all.select_nth_unstable(k - 1);
            all.truncate(k);
        }
        all.sort_unstable();
        all.into_iter().map(|(_, id, peer)| (id, peer)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer() -> PeerId {
        PeerId::random()
    }

    /// `lower + 2^(160 - depth)`, or `None` past the top of the id space.
    fn range_end(lower: DhtId, depth: u32) -> Option<DhtId> {
        let mut bytes = lower.to_bytes();
        let bit = depth.checked_sub(1)?;
        let (mut i, mut add) = ((bit / 8) as usize, 0x80u16 >> (bit % 8));
        loop {
            let sum = bytes[i] as u16 + add;
            bytes[i] = sum as u8;
            if sum < 256 {
                return Some(DhtId::from_bytes(bytes));
            }
            if i == 0 {
                return None;
            }
            i -= 1;
            add = 1;
        }
    }

    fn brute(
        table: &RoutingTable,
        query: &DhtId,
        k: usize,
        exclude: Option<&DhtId>,
    ) -> Vec<(DhtId, PeerId)> {
        let mut all: Vec<(DhtId, PeerId)> = table
            .nodes()
            .copied()
            .filter(|(id, _)| Some(id) != exclude)
            .collect();
        all.sort_by_key(|(id, _)| id.xor_distance(query));
        all.truncate(k);
        all
    }

    #[test]
    fn routing_table_basic() {
        let node_id = DhtId::random();
        let mut table = RoutingTable::new(node_id, 20, 5);
        let mut added = Vec::new();
        for _ in 0..100 {
            let (id, p) = (DhtId::random(), peer());
            assert!(table.add_or_update_node(id, p).is_none());
            assert_eq!(table.get_peer(&id), Some(p));
            assert_eq!(table.get_id(&p), Some(id));
            added.push(id);
        }
        assert_eq!(table.buckets()[0].lower(), DhtId::MIN);
        // The buckets cover [MIN, MAX] without gaps: each starts where the previous one ends.
        let mut expected_lower = Some(DhtId::MIN);
        for bucket in table.buckets() {
            assert_eq!(Some(bucket.lower()), expected_lower);
            expected_lower = range_end(bucket.lower(), bucket.depth());
        }
        assert_eq!(expected_lower, None);
        assert_eq!(table.replacement_count(), 0);
        let n = table.buckets().len();
        assert!((3..=10).contains(&n), "{n} buckets");
        assert_eq!(table.get_peer(&DhtId::random()), None);
        for _ in 0..100 {
            let id = DhtId::random();
            let linear = table
                .buckets()
                .iter()
                .position(|b| b.has_in_range(&id))
                .unwrap();
            assert_eq!(table.get_bucket_index(&id), linear);
        }
        for id in added {
            assert!(table.buckets()[table.get_bucket_index(&id)].has_in_range(&id));
        }
    }

    #[test]
    fn routing_table_parameters() {
        for (k, b, min, max) in [
            (20, 5, 45, 65),
            (50, 5, 35, 45),
            (20, 10, 650, 800),
            (20, 1, 7, 15),
        ] {
            let mut table = RoutingTable::new(DhtId::random(), k, b);
            for _ in 1..10_000 {
                table.add_or_update_node(DhtId::random(), peer());
            }
            for bucket in table.buckets() {
                assert!(bucket.replacements().is_empty() || bucket.nodes().len() == k);
            }
            let n = table.buckets().len();
            println!("bucket_size {k}, depth_modulo {b}: {n} buckets");
            assert!(
                (min..=max).contains(&n),
                "(k={k}, b={b}): {n} buckets, expected {min}..={max}"
            );
        }
    }

    #[test]
    fn routing_table_search() {
        for (size, active_range) in [(10, 10..=10), (10_000, 800..=1100)] {
            let node_id = DhtId::random();
            let mut table = RoutingTable::new(node_id, 20, 5);
            let mut added = 0;
            for _ in 0..size {
                let before = table.len();
                table.add_or_update_node(DhtId::random(), peer());
                added += usize::from(table.len() > before);
            }
            assert!(
                active_range.contains(&table.len()),
                "{} active",
                table.len()
            );
            assert_eq!(table.len(), added);
            // hivemind keeps every replacement (active + replacements == size,
            // docs/hivemind-compat.md#q16); we keep at most a bucket's worth per bucket, so the
            // rest are dropped.
            assert!(table.len() + table.replacement_count() <= size);
            for bucket in table.buckets() {
                assert!(bucket.replacements().len() <= 20);
            }
            let active: Vec<(DhtId, PeerId)> = table.nodes().copied().collect();
            let mut rng = 1u64;
            for i in 0..1000 {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let k = 1 + (rng >> 33) as usize % 100;
                let query = DhtId::random();
                let exclude = (i % 2 == 0).then(|| active[(rng as usize) % active.len()].0);
                assert_eq!(
                    table.get_nearest_neighbors(&query, k, exclude.as_ref()),
                    brute(&table, &query, k, exclude.as_ref())
                );
            }
            for (query, _) in active.iter().take(1000) {
                let k = 1 + (query.as_bytes()[0] as usize % 50);
                let found = table.get_nearest_neighbors(query, k, Some(query));
                let reference = brute(&table, query, k + 1, None);
                assert_eq!(found.len(), reference.len() - 1);
                assert_eq!(found[..], reference[1..]);
                assert_eq!(table.get_nearest_neighbors(query, k, None)[0].0, *query);
            }
        }
    }

    #[test]
    fn full_bucket_asks_to_ping_and_removal_promotes_a_replacement() {
        // depth_modulo 1 never splits a bucket far from the owner: fill one up.
        let owner = DhtId::MIN;
        let mut table = RoutingTable::new(owner, 2, 1);
        let far = |b: u8| {
            DhtId::from_bytes([
                0x80 | b,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                b,
            ])
        };
        let (a, b, c) = ((far(1), peer()), (far(2), peer()), (far(3), peer()));
        assert!(table.add_or_update_node(a.0, a.1).is_none());
        assert!(table.add_or_update_node(b.0, b.1).is_none());
        assert_eq!(table.add_or_update_node(c.0, c.1), Some(a));
        assert_eq!(table.replacement_count(), 1);
        assert_eq!(table.get_peer(&c.0), Some(c.1));
        assert_eq!(table.remove(&a.0), Some(a.1));
        assert_eq!(table.replacement_count(), 0);
        let index = table.get_bucket_index(&c.0);
        assert!(table.buckets()[index].nodes().contains(&c));
        assert_eq!(table.get_id(&a.1), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn nearest_neighbors_equal_brute_force(
            seeds in proptest::collection::vec(any::<[u8; 20]>(), 1..300),
            query in any::<[u8; 20]>(),
            k in 1usize..40,
            bucket_size in 1usize..25,
            depth_modulo in 1u32..8,
        ) {
            let mut table = RoutingTable::new(DhtId::from_bytes(seeds[0]), bucket_size, depth_modulo);
            for s in &seeds[1..] {
                table.add_or_update_node(DhtId::from_bytes(*s), peer());
            }
            let query = DhtId::from_bytes(query);
            prop_assert_eq!(table.get_nearest_neighbors(&query, k, None), brute(&table, &query, k, None));
        }
    }
}
