//! The handlers other nodes call: `rpc_ping`, `rpc_store` and `rpc_find`. Each records the
//! caller in the routing table and answers from this node's state; the rules they apply live in
//! [`super::rules`].

use servicer_macros::servicer;
use servicer_runtime::{PeerId, RpcContext};

use super::rules::Contact;
use super::{DhtProtocol, ProtocolState};
use crate::addrs::AddrList;
use crate::error::DhtError;
use crate::id::DhtId;
use crate::messages::{
    FindRequest, FindResponse, FindResult, FoundValue, PeerRecord, PingRequest, PingResponse,
    StoreRequest, StoreResponse,
};
use crate::storage::StoredValue;
use crate::time::{ValueWithExpiration, get_dht_time};
use crate::{FastMap, FastSet};

#[servicer(name = "DHTProtocol")]
impl DhtProtocol {
    /// Answers with this node's id and clock; with `validate`, pings the caller back to tell it
    /// whether it is reachable.
    pub async fn rpc_ping(
        &self,
        request: PingRequest,
        ctx: RpcContext,
    ) -> Result<PingResponse, DhtError> {
        self.remember_addresses(ctx.remote_peer(), &request.peer)
            .await;
        let mut available = false;
        if let Some(sender_id) = request.peer.node_id {
            if request.validate {
                available = self
                    .call_ping(ctx.remote_peer(), false, false)
                    .await
                    .ok()
                    .flatten()
                    == Some(sender_id);
            }
            let contact = if available || !request.validate {
                Contact::Called
            } else {
                Contact::Failed
            };
            self.update_routing_table(Some(sender_id), ctx.remote_peer(), contact);
        }
        Ok(PingResponse {
            peer: self.node_info(),
            dht_time: get_dht_time(),
            available,
        })
    }

    /// Stores every item it can; a result per item.
    pub async fn rpc_store(
        &self,
        request: StoreRequest,
        ctx: RpcContext,
    ) -> Result<StoreResponse, DhtError> {
        self.check_request_size(request.items.len())?;
        self.remember_addresses(ctx.remote_peer(), &request.peer)
            .await;
        self.update_routing_table(request.peer.node_id, ctx.remote_peer(), Contact::Called);
        let results = self
            .apply_remote_store(ctx.remote_peer(), request.items)
            .await;
        Ok(StoreResponse {
            peer: self.node_info(),
            results,
        })
    }

    /// For each key: the newest of what storage and cache hold, and the nearest known nodes.
    pub async fn rpc_find(
        &self,
        request: FindRequest,
        ctx: RpcContext,
    ) -> Result<FindResponse, DhtError> {
        self.check_request_size(request.keys.len())?;
        self.remember_addresses(ctx.remote_peer(), &request.peer)
            .await;
        self.update_routing_table(request.peer.node_id, ctx.remote_peer(), Contact::Called);
        let mut budget = self.inner.config.limits.max_answer_bytes;
        let (values, nearest) = self.answers(&request.keys, request.peer.node_id, &mut budget);
        let with_addrs = self.inner.wire.carries_addresses();
        let mut unknown: Vec<PeerId> = Vec::new();
        let mut results: Vec<FindResult> = {
            let known = self.inner.addrs.known();
            let mut record = |(node_id, peer): (DhtId, PeerId)| {
                let addrs = match known.get(&peer) {
                    Some(addrs) if with_addrs && addrs.byte_len() <= budget => {
                        budget -= addrs.byte_len();
                        addrs.clone()
                    }
                    None if with_addrs && budget >= ADDRS_ESTIMATE => {
                        budget -= ADDRS_ESTIMATE;
                        unknown.push(peer);
                        AddrList::default()
                    }
                    _ => AddrList::default(),
                };
                PeerRecord {
                    node_id,
                    peer_id: peer,
                    addrs,
                }
            };
            values
                .into_iter()
                .zip(nearest)
                .map(|(value, nearest)| FindResult {
                    value,
                    nearest: nearest.into_iter().map(&mut record).collect(),
                })
                .collect()
        };
        unknown.sort();
        unknown.dedup();
        // Nodes whose addresses came only from libp2p (dials, identify): ask the swarm.
        if !unknown.is_empty()
            && let Ok(found) = self.inner.p2p.addresses_of(unknown.clone()).await
        {
            let found: FastMap<PeerId, AddrList> = unknown
                .into_iter()
                .zip(found)
                .map(|(peer, addrs)| (peer, AddrList::from_multiaddrs(&addrs)))
                .collect();
            for record in results.iter_mut().flat_map(|r| r.nearest.iter_mut()) {
                if record.addrs.is_empty()
                    && let Some(addrs) = found.get(&record.peer_id)
                {
                    record.addrs = addrs.clone();
                }
            }
        }
        Ok(FindResponse {
            peer: self.node_info(),
            results,
        })
    }
}

/// Bytes a node record costs in a find answer, addresses aside (id, peer id, framing).
const RECORD_BYTES: usize = 96;

/// Bytes set aside for the addresses of a node that the swarm is asked for.
const ADDRS_ESTIMATE: usize = 128;

impl DhtProtocol {
    /// Per key: what to answer, and its nearest nodes, within `budget` bytes (what is left is
    /// put back). A key asked again is answered once; a value that does not fit is left out.
    fn answers(
        &self,
        keys: &[DhtId],
        requester: Option<DhtId>,
        budget: &mut usize,
    ) -> (Vec<FoundValue>, Vec<Vec<(DhtId, PeerId)>>) {
        let bucket_size = self.inner.config.bucket_size;
        let mut answered: FastSet<DhtId> = FastSet::default();
        let mut state = self.state();
        let ProtocolState {
            routing_table,
            storage,
            cache,
            ..
        } = &mut *state;
        keys.iter()
            .map(|key| {
                if !answered.insert(*key) {
                    return (FoundValue::NotFound, Vec::new());
                }
                let mut nearest =
                    routing_table.get_nearest_neighbors(key, bucket_size, requester.as_ref());
                nearest.truncate(*budget / RECORD_BYTES);
                *budget -= nearest.len() * RECORD_BYTES;
                let value = match newest(storage.get(key), cache.get(key)) {
                    Some(stored) if stored.value.wire_size() <= *budget => {
                        *budget -= stored.value.wire_size();
                        FoundValue::of(stored)
                    }
                    _ => FoundValue::NotFound,
                };
                (value, nearest)
            })
            .unzip()
    }

    fn check_request_size(&self, count: usize) -> Result<(), DhtError> {
        let limit = self.inner.config.limits.max_keys_per_request;
        if count > limit {
            return Err(DhtError::TooManyKeys { count, limit });
        }
        Ok(())
    }
}

/// The newer of what storage and cache hold (storage on a tie).
fn newest<'a>(
    a: Option<&'a ValueWithExpiration<StoredValue>>,
    b: Option<&'a ValueWithExpiration<StoredValue>>,
) -> Option<&'a ValueWithExpiration<StoredValue>> {
    match (a, b) {
        (Some(a), Some(b)) if b.expiration_time > a.expiration_time => Some(b),
        (Some(a), _) => Some(a),
        (None, b) => b,
    }
}
