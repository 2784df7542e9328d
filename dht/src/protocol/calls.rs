//! Calls on other nodes: `call_ping`, `call_store` and `call_find` send a request on the
//! protocol's wire and record in the routing table whether the peer answered.

use std::collections::HashMap;

use servicer_runtime::{PeerId, RpcError};

use super::DhtProtocol;
use super::rules::Contact;
use super::wire::Remote;
use crate::error::DhtError;
use crate::id::DhtId;
use crate::limits::Rejection;
use crate::messages::{DictEntry, FindRequest, FoundValue, PingRequest, StoreItem, StoreRequest};
use crate::stats::SentCounters;
use crate::storage::StoredValue;
use crate::time::{MAX_DHT_TIME_DISCREPANCY_SECONDS, ValueWithExpiration, get_dht_time};
use crate::validation::REGULAR_SUBKEY;

/// What `call_find` learned about one key.
#[derive(Debug, Clone, PartialEq)]
pub struct FindOutcome {
    /// The value with its expiration, if the peer had one.
    pub value: Option<ValueWithExpiration<StoredValue>>,
    /// The peer's nearest nodes to the key, nearest first.
    pub nearest: Vec<(DhtId, PeerId)>,
}

impl DhtProtocol {
    /// `peer`, to be called on the protocol's wire within the protocol's deadline.
    fn remote(&self, peer: PeerId) -> Remote<'_> {
        Remote {
            p2p: &self.inner.p2p,
            peer,
            deadline: self.inner.config.wait_timeout,
        }
    }

    async fn slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        match &self.inner.rpc_slots {
            Some(slots) => slots.acquire().await.ok(),
            None => None,
        }
    }

    /// Pings `peer`; returns its DHT id if it answered as a DHT node. With `validate`, also checks
    /// that it can reach this node and that the clocks agree within 3 s: a failed check is an
    /// error with `strict`, a warning otherwise.
    pub async fn call_ping(
        &self,
        peer: PeerId,
        validate: bool,
        strict: bool,
    ) -> Result<Option<DhtId>, DhtError> {
        match self.call_ping_or_fail(peer, validate, strict).await {
            Err(DhtError::Rpc(_)) => Ok(None),
            other => other,
        }
    }

    /// [`call_ping`](Self::call_ping), with a ping that got no answer as the call's error
    /// ([`DhtError::Rpc`]) instead of `Ok(None)`: why the peer did not answer.
    pub async fn call_ping_or_fail(
        &self,
        peer: PeerId,
        validate: bool,
        strict: bool,
    ) -> Result<Option<DhtId>, DhtError> {
        let requested = get_dht_time();
        let response = {
            let _slot = self.slot().await;
            SentCounters::count(&self.inner.sent.ping);
            let request = PingRequest {
                peer: self.node_info(),
                validate,
            };
            self.inner.wire.ping(self.remote(peer), request).await
        };
        let responded_at = get_dht_time();
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                tracing::debug!(%peer, %err, "ping failed");
                self.update_routing_table(self.id_of(&peer), peer, Contact::Failed);
                return Err(match err {
                    DhtError::Rpc(err) => DhtError::Rpc(err),
                    other => DhtError::Rpc(RpcError::Malformed(other.to_string())),
                });
            }
        };
        let peer_id = response.peer.node_id;
        if validate && peer_id.is_some() {
            let max = MAX_DHT_TIME_DISCREPANCY_SECONDS;
            let problem = if !self.inner.config.client_mode && !response.available {
                Some(DhtError::Unreachable { peer })
            } else if !response.dht_time.is_finite() {
                Some(DhtError::ClockSkew {
                    peer,
                    offset: response.dht_time,
                    max,
                })
            } else if response.dht_time != 0.0
                && (response.dht_time < requested - max || response.dht_time > responded_at + max)
            {
                let offset = if response.dht_time < requested {
                    response.dht_time - requested
                } else {
                    response.dht_time - responded_at
                };
                Some(DhtError::ClockSkew { peer, offset, max })
            } else {
                None
            };
            if let Some(problem) = problem {
                if strict {
                    return Err(problem);
                }
                tracing::warn!("{problem}");
            }
        }
        self.update_routing_table(peer_id, peer, Contact::Answered);
        Ok(peer_id)
    }

    /// Stores items on `peer`; a result per item, or `None` if the peer did not answer.
    pub async fn call_store(&self, peer: PeerId, items: Vec<StoreItem>) -> Option<Vec<bool>> {
        let results = self.call_store_detailed(peer, items).await?;
        Some(results.iter().map(Result::is_ok).collect())
    }

    /// Stores items on `peer`: per item, stored or why not; `None` if the peer did not answer.
    /// More items than [`Limits::max_keys_per_request`](crate::Limits::max_keys_per_request) go in several requests.
    pub async fn call_store_detailed(
        &self,
        peer: PeerId,
        items: Vec<StoreItem>,
    ) -> Option<Vec<Result<(), Rejection>>> {
        let mut results = Vec::with_capacity(items.len());
        for chunk in items.chunks(self.inner.config.limits.max_keys_per_request.max(1)) {
            let response = {
                let _slot = self.slot().await;
                SentCounters::count(&self.inner.sent.store);
                let request = StoreRequest {
                    peer: self.node_info(),
                    items: chunk.to_vec(),
                };
                self.inner.wire.store(self.remote(peer), request).await
            };
            match response {
                Ok(response) if response.results.len() == chunk.len() => {
                    self.update_routing_table(response.peer.node_id, peer, Contact::Answered);
                    results.extend(response.results);
                }
                Ok(_) => {
                    tracing::debug!(%peer, "store answered with the wrong number of results");
                    return None;
                }
                Err(err) => {
                    tracing::debug!(%peer, %err, "store failed");
                    self.update_routing_table(self.id_of(&peer), peer, Contact::Failed);
                    return None;
                }
            }
        }
        Some(results)
    }

    /// Looks keys up on `peer`: per key, its value (if any) and its nearest nodes; `None` if the
    /// peer did not answer. The addresses of the nodes it names are remembered for later dials.
    /// More keys than [`Limits::max_keys_per_request`](crate::Limits::max_keys_per_request) go in several requests.
    pub async fn call_find(
        &self,
        peer: PeerId,
        keys: Vec<DhtId>,
    ) -> Option<HashMap<DhtId, FindOutcome>> {
        let limit = self.inner.config.limits.max_keys_per_request.max(1);
        if keys.len() <= limit {
            return self.call_find_once(peer, keys).await;
        }
        let mut outcomes = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(limit) {
            outcomes.extend(self.call_find_once(peer, chunk.to_vec()).await?);
        }
        Some(outcomes)
    }

    async fn call_find_once(
        &self,
        peer: PeerId,
        keys: Vec<DhtId>,
    ) -> Option<HashMap<DhtId, FindOutcome>> {
        let response = {
            let _slot = self.slot().await;
            SentCounters::count(&self.inner.sent.find);
            let request = FindRequest {
                peer: self.node_info(),
                keys: keys.clone(),
            };
            self.inner.wire.find(self.remote(peer), request).await
        };
        let response = match response {
            Ok(response) if response.results.len() == keys.len() => response,
            Ok(_) => {
                tracing::debug!(%peer, "find answered with the wrong number of results");
                return None;
            }
            Err(err) => {
                tracing::debug!(%peer, %err, "find failed");
                self.update_routing_table(self.id_of(&peer), peer, Contact::Failed);
                return None;
            }
        };
        self.update_routing_table(response.peer.node_id, peer, Contact::Answered);
        let limits = &self.inner.config.limits;
        let now = get_dht_time();
        let mut addresses = Vec::new();
        let outcomes = keys
            .into_iter()
            .zip(response.results)
            .map(|(key, result)| {
                // A peer names at most a bucket of nodes per key: more is not taken in.
                let nearest = result
                    .nearest
                    .into_iter()
                    .take(self.inner.config.bucket_size)
                    .map(|record| {
                        addresses.push((record.peer_id, record.addrs));
                        (record.node_id, record.peer_id)
                    })
                    .collect();
                // A value that fails validation, or expires further ahead than this node would
                // store, counts as not found.
                let value = match result.value {
                    FoundValue::NotFound => None,
                    FoundValue::Regular {
                        expiration_time, ..
                    } if !limits.acceptable_expiration(expiration_time, now) => None,
                    FoundValue::Dictionary {
                        ref entries,
                        expiration_time,
                    } if !limits.acceptable_expiration(expiration_time, now)
                        || entries
                            .iter()
                            .any(|e| !limits.acceptable_expiration(e.expiration_time, now)) =>
                    {
                        None
                    }
                    FoundValue::Regular {
                        ref value,
                        expiration_time,
                    } if !self.valid(&key, REGULAR_SUBKEY, value, expiration_time) => None,
                    FoundValue::Dictionary { ref entries, .. }
                        if !entries
                            .iter()
                            .all(|e| self.valid(&key, &e.subkey, &e.value, e.expiration_time)) =>
                    {
                        None
                    }
                    FoundValue::Regular {
                        value,
                        expiration_time,
                    } => Some(ValueWithExpiration::new(
                        StoredValue::Regular(value),
                        expiration_time,
                    )),
                    FoundValue::Dictionary {
                        entries,
                        expiration_time,
                    } => Some(ValueWithExpiration::new(
                        StoredValue::Dictionary(DictEntry::dictionary(entries, expiration_time)),
                        expiration_time,
                    )),
                };
                (key, FindOutcome { value, nearest })
            })
            .collect();
        let learned = self.learn_addresses(addresses);
        if !learned.is_empty() {
            let _ = self.inner.p2p.add_addresses(learned).await;
        }
        Some(outcomes)
    }
}
