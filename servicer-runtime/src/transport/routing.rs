//! Peer routing through libp2p Kademlia on `/ipfs/kad/1.0.0`, in server mode: the node's kad, if
//! it runs one ([`WireMode::Hivemind`](crate::WireMode::Hivemind) does), finds peers known only
//! by id.
//!
//! hivemind's DHT replies (`FindResult`) carry peer ids, never addresses, and hivemind's Go daemons
//! resolve an unknown id with a kad `FindPeer` through their routed host
//! (docs/hivemind-compat.md#w15). So the node runs kad as a server (Go daemons can find it and
//! learn its addresses from it), and when a call names a peer whose address nobody here knows, it
//! looks the peer up with a kad closest-peers query (what kad's `FindPeer` is) before giving up.
//! Records are not used: kad serves only peer routing here.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::kad::{self, Mode, QueryId, QueryResult, StoreInserts, store::MemoryStore};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::time::Instant;

use super::rpc::{NO_ADDRESS_FOUND, RpcBehaviour, without_p2p};

/// go-libp2p-kad-dht's protocol (hivemind's daemons run it with `-dhtServer=1`).
pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");

/// Lookups running or waiting at once; past it a stream to an unknown peer fails at once.
const MAX_LOOKUPS: usize = 256;

/// The kad behaviour of a node.
pub(crate) type Kad = kad::Behaviour<MemoryStore>;

/// Kad for peer routing when `enabled`, with lookups bounded like a dial (`timeout`).
pub(crate) fn behaviour(local: PeerId, enabled: bool, timeout: Duration) -> Toggle<Kad> {
    if !enabled {
        return Toggle::from(None);
    }
    let mut kad_config = kad::Config::new(KAD_PROTOCOL);
    // A lookup answers a caller waiting to dial: bound it like a dial.
    kad_config.set_query_timeout(timeout);
    // Records sent to us are handed to us as events (which we ignore) instead of stored.
    kad_config.set_record_filtering(StoreInserts::FilterBoth);
    let mut kad = Kad::with_config(local, MemoryStore::new(local), kad_config);
    // Go daemons add to their routing tables only peers that serve kad; without a confirmed
    // external address kad 0.49 would stay a client, so force server mode.
    kad.set_mode(Some(Mode::Server));
    Toggle::from(Some(kad))
}

/// Whether a peer's identify protocols include kad.
fn speaks_kad(protocols: &[StreamProtocol]) -> bool {
    protocols.contains(&KAD_PROTOCOL)
}

fn table_addresses(kad: &mut Kad, peer: &PeerId) -> Vec<Multiaddr> {
    let Some(bucket) = kad.kbucket(*peer) else {
        return Vec::new();
    };
    bucket
        .iter()
        .find(|entry| entry.node.key.preimage() == peer)
        .map(|entry| entry.node.value.iter().cloned().collect())
        .unwrap_or_default()
}

fn table_is_empty(kad: &mut Kad) -> bool {
    kad.kbuckets().all(|bucket| bucket.num_entries() == 0)
}

/// Lookups of peers that streams wait for; at most one per peer, shared by all its streams.
#[derive(Default)]
pub(crate) struct PeerRouting {
    /// Running kad queries and the peer each looks for.
    queries: HashMap<QueryId, PeerId>,
    running: HashMap<PeerId, QueryId>,
    /// Lookups asked for while kad's routing table was empty (a node that just started: identify
    /// has not yet told kad about the peers it connected to), and when they give up.
    parked: HashMap<PeerId, Instant>,
}

impl PeerRouting {
    /// Tells kad the listen addresses a peer reported in identify, if it serves kad: kad itself only
    /// records addresses it dialled, so peers that dialled us become findable this way.
    pub(crate) fn on_identify(
        kad: Option<&mut Kad>,
        peer: PeerId,
        protocols: &[StreamProtocol],
        addrs: &[Multiaddr],
    ) {
        let Some(kad) = kad else { return };
        if speaks_kad(protocols) {
            for addr in addrs {
                kad.add_address(&peer, addr.clone());
            }
        }
    }

    /// Addresses learnt elsewhere (e.g. [`P2P::add_addresses`](crate::P2P::add_addresses)) of a
    /// peer that is in kad's routing table, hence serves kad.
    pub(crate) fn on_addresses(kad: Option<&mut Kad>, peer: PeerId, addrs: &[Multiaddr]) {
        let Some(kad) = kad else { return };
        if table_addresses(kad, &peer).is_empty() {
            return;
        }
        for addr in addrs {
            kad.add_address(&peer, addr.clone());
        }
    }

    /// The addresses of `peer` in kad's routing table, without `/p2p/` (none without kad).
    pub(crate) fn addresses_of(kad: Option<&mut Kad>, peer: &PeerId) -> Vec<Multiaddr> {
        match kad {
            Some(kad) => table_addresses(kad, peer)
                .into_iter()
                .map(without_p2p)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Looks `peer` up for the streams waiting for it, unless a lookup already runs.
    pub(crate) fn lookup(
        &mut self,
        rpc: &mut RpcBehaviour,
        kad: Option<&mut Kad>,
        peer: PeerId,
        timeout: Duration,
    ) {
        let Some(kad) = kad else {
            rpc.route_failed(peer, NO_ADDRESS_FOUND);
            return;
        };
        if self.running.contains_key(&peer) || self.parked.contains_key(&peer) {
            return;
        }
        if self.running.len() + self.parked.len() >= MAX_LOOKUPS {
            tracing::debug!(%peer, "too many kad lookups at once");
            rpc.route_failed(
                peer,
                "no known address, and too many kad lookups are running",
            );
            return;
        }
        if table_is_empty(kad) {
            tracing::debug!(%peer, "kad routing table empty; the lookup waits for a peer");
            self.parked.insert(peer, Instant::now() + timeout);
            return;
        }
        self.start(kad, peer);
    }

    fn start(&mut self, kad: &mut Kad, peer: PeerId) {
        tracing::debug!(%peer, "looking the peer up in kad");
        let id = kad.get_closest_peers(peer);
        self.queries.insert(id, peer);
        self.running.insert(peer, id);
    }

    /// A connection to `peer` is up: a lookup of it has nothing left to do.
    pub(crate) fn on_connected(&mut self, kad: Option<&mut Kad>, peer: PeerId) {
        self.parked.remove(&peer);
        if let (Some(id), Some(kad)) = (self.running.get(&peer), kad)
            && let Some(mut query) = kad.query_mut(id)
        {
            // Its result still arrives as an event, which finds the peer connected.
            query.finish();
        }
    }

    /// Handles kad's events: finished lookups, and a routing table that got its first peers.
    pub(crate) fn on_kad_event(
        &mut self,
        rpc: &mut RpcBehaviour,
        kad: Option<&mut Kad>,
        event: kad::Event,
    ) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id,
                result: QueryResult::GetClosestPeers(result),
                step,
                ..
            } if step.last => {
                let Some(peer) = self.queries.remove(&id) else {
                    return;
                };
                self.running.remove(&peer);
                let peers = match result {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                let addrs = peers
                    .into_iter()
                    .find(|info| info.peer_id == peer)
                    .map(|info| info.addrs)
                    .unwrap_or_default();
                tracing::debug!(%peer, found = addrs.len(), "kad lookup finished");
                rpc.route_found(peer, addrs);
            }
            kad::Event::RoutingUpdated { .. } if !self.parked.is_empty() => {
                let Some(kad) = kad else { return };
                for (peer, _) in std::mem::take(&mut self.parked) {
                    self.start(kad, peer);
                }
            }
            _ => {}
        }
    }

    /// Gives up the parked lookups whose time is over.
    pub(crate) fn expire(&mut self, rpc: &mut RpcBehaviour, now: Instant) {
        self.parked.retain(|peer, until| {
            let keep = *until > now;
            if !keep {
                rpc.route_failed(*peer, NO_ADDRESS_FOUND);
            }
            keep
        });
    }
}
