//! hivemind's DHT messages to and from the native ones. What hivemind's messages cannot carry is
//! lost here: node addresses, and the reason a store was refused ([`Rejection::Refused`]).

use servicer_runtime::PeerId;

use super::dictionary::{decode_dictionary, encode_dictionary};
use crate::addrs::AddrList;
use crate::error::DhtError;
use crate::hivemind_proto as proto;
use crate::id::{DhtId, ID_BYTES};
use crate::limits::Rejection;
use crate::messages::{
    FindRequest, FindResponse, FindResult, FoundValue, NodeInfo, PeerRecord, PingRequest,
    PingResponse, StoreItem, StoreRequest, StoreResponse, StoreValue,
};
use crate::validation::REGULAR_SUBKEY;

/// hivemind's subkey marker for a whole dictionary (`DHTProtocol.IS_DICTIONARY`).
const IS_DICTIONARY: &[u8] = b"";

/// hivemind's ping request as the native one.
pub(super) fn ping_request(request: proto::PingRequest) -> Result<PingRequest, DhtError> {
    Ok(PingRequest {
        peer: node_info(request.peer)?,
        validate: request.validate,
    })
}

/// A native ping request as hivemind's.
pub(super) fn proto_ping_request(request: &PingRequest) -> proto::PingRequest {
    proto::PingRequest {
        auth: None,
        peer: Some(proto_node_info(&request.peer)),
        validate: request.validate,
    }
}

/// hivemind's ping response as the native one.
pub(super) fn ping_response(response: proto::PingResponse) -> Result<PingResponse, DhtError> {
    Ok(PingResponse {
        peer: node_info(response.peer)?,
        dht_time: response.dht_time,
        available: response.available,
    })
}

/// A native ping response as hivemind's.
pub(super) fn proto_ping_response(response: &PingResponse) -> proto::PingResponse {
    proto::PingResponse {
        auth: None,
        peer: Some(proto_node_info(&response.peer)),
        dht_time: response.dht_time,
        available: response.available,
    }
}

/// hivemind's store response as the native one: a refusal carries no reason.
pub(super) fn store_response(response: proto::StoreResponse) -> Result<StoreResponse, DhtError> {
    Ok(StoreResponse {
        peer: node_info(response.peer)?,
        results: response
            .store_ok
            .into_iter()
            .map(|ok| if ok { Ok(()) } else { Err(Rejection::Refused) })
            .collect(),
    })
}

/// A native store response as hivemind's: stored or not, per item.
pub(super) fn proto_store_response(response: &StoreResponse) -> proto::StoreResponse {
    proto::StoreResponse {
        auth: None,
        store_ok: response.results.iter().map(Result::is_ok).collect(),
        peer: Some(proto_node_info(&response.peer)),
    }
}

/// hivemind's find request as the native one.
pub(super) fn find_request(request: proto::FindRequest) -> Result<FindRequest, DhtError> {
    Ok(FindRequest {
        peer: node_info(request.peer)?,
        keys: request
            .keys
            .iter()
            .map(|key| dht_id(key))
            .collect::<Result<_, _>>()?,
    })
}

/// A native find request as hivemind's.
pub(super) fn proto_find_request(request: &FindRequest) -> proto::FindRequest {
    proto::FindRequest {
        auth: None,
        keys: request.keys.iter().map(|k| k.to_bytes().to_vec()).collect(),
        peer: Some(proto_node_info(&request.peer)),
    }
}

/// hivemind's find response as the native one.
pub(super) fn find_response(response: proto::FindResponse) -> Result<FindResponse, DhtError> {
    Ok(FindResponse {
        peer: node_info(response.peer)?,
        results: response.results.into_iter().map(find_result).collect(),
    })
}

/// A native find response as hivemind's: nearest nodes by id, without addresses.
pub(super) fn proto_find_response(response: FindResponse) -> proto::FindResponse {
    proto::FindResponse {
        auth: None,
        results: response
            .results
            .into_iter()
            .map(proto_find_result)
            .collect(),
        peer: Some(proto_node_info(&response.peer)),
    }
}

fn malformed(what: impl std::fmt::Display) -> DhtError {
    DhtError::Malformed(what.to_string())
}

fn dht_id(bytes: &[u8]) -> Result<DhtId, DhtError> {
    let bytes: [u8; ID_BYTES] = bytes
        .try_into()
        .map_err(|_| malformed(format!("a DHT id of {} bytes, not 20", bytes.len())))?;
    Ok(DhtId::from_bytes(bytes))
}

/// An absent or empty `NodeInfo` is a client-mode node.
fn node_info(info: Option<proto::NodeInfo>) -> Result<NodeInfo, DhtError> {
    let node_id = match info {
        Some(info) if !info.node_id.is_empty() => Some(dht_id(&info.node_id)?),
        _ => None,
    };
    Ok(NodeInfo {
        node_id,
        addrs: AddrList::default(),
    })
}

fn proto_node_info(info: &NodeInfo) -> proto::NodeInfo {
    proto::NodeInfo {
        node_id: info
            .node_id
            .map(|id| id.to_bytes().to_vec())
            .unwrap_or_default(),
    }
}

/// hivemind's five aligned lists as store items; the subkey tag says what each value is.
pub(super) fn store_request(request: proto::StoreRequest) -> Result<StoreRequest, DhtError> {
    let n = request.keys.len();
    if [
        request.subkeys.len(),
        request.values.len(),
        request.expiration_time.len(),
        request.in_cache.len(),
    ] != [n; 4]
    {
        return Err(malformed("store request lists are not aligned"));
    }
    let items = request
        .keys
        .iter()
        .zip(request.subkeys)
        .zip(request.values)
        .zip(request.expiration_time)
        .zip(request.in_cache)
        .map(|((((key, tag), value), expiration_time), in_cache)| {
            let value = if tag == IS_DICTIONARY {
                StoreValue::Dictionary(decode_dictionary(&value)?.1)
            } else if tag == REGULAR_SUBKEY {
                StoreValue::Regular(value)
            } else {
                StoreValue::Subkey { subkey: tag, value }
            };
            Ok(StoreItem {
                key: dht_id(key)?,
                value,
                expiration_time,
                in_cache,
            })
        })
        .collect::<Result<_, DhtError>>()?;
    Ok(StoreRequest {
        peer: node_info(request.peer)?,
        items,
    })
}

pub(super) fn proto_store_request(request: StoreRequest) -> proto::StoreRequest {
    let mut out = proto::StoreRequest {
        peer: Some(proto_node_info(&request.peer)),
        ..proto::StoreRequest::default()
    };
    for item in request.items {
        let (tag, value) = match item.value {
            StoreValue::Regular(value) => (REGULAR_SUBKEY.to_vec(), value),
            StoreValue::Subkey { subkey, value } => (subkey, value),
            StoreValue::Dictionary(entries) => (
                IS_DICTIONARY.to_vec(),
                encode_dictionary(&entries, item.expiration_time),
            ),
        };
        out.keys.push(item.key.to_bytes().to_vec());
        out.subkeys.push(tag);
        out.values.push(value);
        out.expiration_time.push(item.expiration_time);
        out.in_cache.push(item.in_cache);
    }
    out
}

fn proto_find_result(result: FindResult) -> proto::FindResult {
    let (kind, value, expiration_time) = match result.value {
        FoundValue::NotFound => (proto::ResultType::NotFound, Vec::new(), 0.0),
        FoundValue::Regular {
            value,
            expiration_time,
        } => (proto::ResultType::FoundRegular, value, expiration_time),
        FoundValue::Dictionary {
            entries,
            expiration_time,
        } => (
            proto::ResultType::FoundDictionary,
            encode_dictionary(&entries, expiration_time),
            expiration_time,
        ),
    };
    let (nearest_node_ids, nearest_peer_ids) = result
        .nearest
        .into_iter()
        .map(|record| {
            (
                record.node_id.to_bytes().to_vec(),
                record.peer_id.to_bytes(),
            )
        })
        .unzip();
    proto::FindResult {
        r#type: kind as i32,
        value,
        expiration_time,
        nearest_node_ids,
        nearest_peer_ids,
    }
}

/// One result of a find response. What does not parse fails only itself: an unknown type or a
/// dictionary that does not decode is taken as not found, a node whose id or peer id does not
/// parse is passed over (as hivemind passes over bad peer ids), and misaligned node lists name
/// no node.
fn find_result(result: proto::FindResult) -> FindResult {
    let value = match proto::ResultType::try_from(result.r#type) {
        Ok(proto::ResultType::FoundRegular) => FoundValue::Regular {
            value: result.value,
            expiration_time: result.expiration_time,
        },
        Ok(proto::ResultType::FoundDictionary) => match decode_dictionary(&result.value) {
            Ok((_, entries)) => FoundValue::Dictionary {
                entries,
                expiration_time: result.expiration_time,
            },
            Err(err) => {
                tracing::debug!(%err, "a find result's dictionary does not decode");
                FoundValue::NotFound
            }
        },
        Ok(proto::ResultType::NotFound) | Err(_) => FoundValue::NotFound,
    };
    let nearest = if result.nearest_node_ids.len() == result.nearest_peer_ids.len() {
        result
            .nearest_node_ids
            .iter()
            .zip(result.nearest_peer_ids)
            .filter_map(|(node_id, peer_id)| {
                Some(PeerRecord {
                    node_id: dht_id(node_id).ok()?,
                    peer_id: PeerId::from_bytes(&peer_id).ok()?,
                    addrs: AddrList::default(),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    FindResult { value, nearest }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message captured from hivemind 1.1.12 (see `scripts/capture-hivemind-vectors.py`).
    fn vector<M: prost::Message + Default>(name: &str) -> (Vec<u8>, M) {
        const VECTORS: &str =
            include_str!("../../../servicer-runtime/tests/data/hivemind-vectors.txt");
        let hex = VECTORS
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no vector {name}"));
        let bytes = hex::decode(hex.trim()).expect("hex");
        let message = M::decode(bytes.as_slice()).expect("decodes");
        (bytes, message)
    }

    /// hivemind's store request (regular value, subkey, a dictionary whose entries expired)
    /// becomes native items and goes back to the very same bytes.
    #[test]
    fn store_request_vector_round_trip() {
        let (bytes, message) = vector::<proto::StoreRequest>("dht.store_request");
        let request = store_request(message).expect("translates");
        assert!(matches!(&request.items[0].value, StoreValue::Regular(v) if v == b"\xa5hello"));
        assert!(
            matches!(&request.items[1].value, StoreValue::Subkey { subkey, .. } if subkey == b"\xa6subkey")
        );
        assert!(request.items[1].in_cache);
        assert!(matches!(&request.items[2].value, StoreValue::Dictionary(e) if e.is_empty()));
        let mut back = proto_store_request(request);
        // That dictionary's own latest expiration (EXPIRATION) differs from the item's
        // (EXPIRATION + 2), which hivemind never sends and our items do not carry: the rest
        // must be byte-exact.
        back.values[2] = message_value(&bytes, 2);
        assert_eq!(prost::Message::encode_to_vec(&back), bytes);
    }

    fn message_value(bytes: &[u8], i: usize) -> Vec<u8> {
        let message: proto::StoreRequest = prost::Message::decode(bytes).expect("decodes");
        message.values[i].clone()
    }

    /// A whole dictionary with a str and a tuple subkey: subkeys keep their exact msgpack bytes.
    #[test]
    fn store_dictionary_vector_round_trip() {
        let (bytes, message) = vector::<proto::StoreRequest>("dht.store_request_dictionary");
        let request = store_request(message).expect("translates");
        let StoreValue::Dictionary(entries) = &request.items[0].value else {
            panic!("a dictionary");
        };
        let entries: Vec<_> = entries
            .iter()
            .map(|e| {
                (
                    hex::encode(&e.subkey),
                    hex::encode(&e.value),
                    e.expiration_time,
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                (
                    "a67375626b6579".into(),
                    "a873756276616c7565".into(),
                    4102444800.5
                ),
                (
                    "d74092a57475706c6501".into(),
                    "c4056279746573".into(),
                    4102444799.5
                ),
            ]
        );
        assert_eq!(
            prost::Message::encode_to_vec(&proto_store_request(request)),
            bytes
        );
    }

    /// hivemind's find responses (regular, not found, dictionary) round-trip byte for byte.
    #[test]
    fn find_response_vector_round_trip() {
        let (bytes, message) = vector::<proto::FindResponse>("dht.find_response");
        find_response_round_trip(bytes, message);
        let (bytes, message) = vector::<proto::FindResponse>("dht.find_response_dictionary");
        find_response_round_trip(bytes, message);
    }

    fn find_response_round_trip(bytes: Vec<u8>, message: proto::FindResponse) {
        let results: Vec<FindResult> = message.results.into_iter().map(find_result).collect();
        assert!(matches!(
            results.last().map(|r| &r.value),
            Some(FoundValue::Dictionary { .. })
        ));
        let back = proto::FindResponse {
            auth: None,
            results: results.into_iter().map(proto_find_result).collect(),
            peer: message.peer,
        };
        assert_eq!(prost::Message::encode_to_vec(&back), bytes);
    }

    #[test]
    fn store_request_must_be_aligned() {
        let request = proto::StoreRequest {
            keys: vec![vec![1; 20]],
            subkeys: vec![REGULAR_SUBKEY.to_vec()],
            values: vec![],
            expiration_time: vec![1.0],
            in_cache: vec![false],
            ..proto::StoreRequest::default()
        };
        assert!(matches!(
            store_request(request),
            Err(DhtError::Malformed(_))
        ));
    }

    /// A result that does not parse fails only itself: the response and its other results stand.
    #[test]
    fn a_bad_find_result_fails_only_itself() {
        let good = proto::FindResult {
            r#type: proto::ResultType::FoundRegular as i32,
            value: b"\x01".to_vec(),
            expiration_time: 5.0,
            nearest_node_ids: vec![vec![7; 20], vec![8; 3]],
            nearest_peer_ids: vec![PeerId::random().to_bytes(), PeerId::random().to_bytes()],
        };
        let bad_dictionary = proto::FindResult {
            r#type: proto::ResultType::FoundDictionary as i32,
            value: b"\xc1".to_vec(),
            ..proto::FindResult::default()
        };
        let misaligned = proto::FindResult {
            r#type: 99,
            nearest_node_ids: vec![vec![7; 20]],
            ..proto::FindResult::default()
        };
        let response = find_response(proto::FindResponse {
            auth: None,
            results: vec![good, bad_dictionary, misaligned],
            peer: None,
        })
        .expect("the response stands");
        let [good, bad, misaligned] = &response.results[..] else {
            panic!("three results")
        };
        assert!(matches!(good.value, FoundValue::Regular { .. }));
        assert_eq!(good.nearest.len(), 1, "the 3-byte node id is passed over");
        assert_eq!(
            (&bad.value, misaligned.nearest.len()),
            (&FoundValue::NotFound, 0)
        );
        assert_eq!(misaligned.value, FoundValue::NotFound);
    }
}
