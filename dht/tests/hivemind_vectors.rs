//! hivemind's DHT messages against byte-exact vectors captured from a real hivemind 1.1.12
//! (`servicer-runtime/tests/data/hivemind-vectors.txt`, made by
//! `scripts/capture-hivemind-vectors.py` with hivemind's own `dht_pb2` classes, `DHTID`, and
//! `MSGPackSerializer`): each decodes with the values the script put in and re-encodes to the
//! same bytes. No Python is needed to run these.

use prost::Message;
use servicer_dht::hivemind_proto::{
    FindRequest, FindResponse, PingRequest, PingResponse, ResultType, StoreRequest, StoreResponse,
};

/// The vectors live with the runtime's wire tests, which check the envelopes that carry these.
const VECTORS: &str = include_str!("../../servicer-runtime/tests/data/hivemind-vectors.txt");

/// The script's fixed inputs.
const EXPIRATION: f64 = 1764000000.25;
/// `DHTID.generate("mykey")` (docs/hivemind-compat.md#w10) and `DHTID.generate(("tuple", 1))`.
const MYKEY_ID: &str = "6a9a82708532eead9c87b7c2aa81916d0a0c4619";
const TUPLE_ID: &str = "47d7eaff2f52d870635915c3cdd2c6fc15fc014d";

/// The bytes of a vector's hex text.
fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("vector is hex")
}

fn vector(name: &str) -> Vec<u8> {
    VECTORS
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (n, hex) = line.split_once(' ').unwrap_or((line, ""));
            (n == name).then(|| unhex(hex.trim()))
        })
        .unwrap_or_else(|| panic!("no vector {name}"))
}

/// Decodes the vector `name` as `M`, re-encodes, and checks the bytes are unchanged.
fn round_trip<M: Message + Default>(name: &str) -> M {
    let bytes = vector(name);
    let message = M::decode(bytes.as_slice()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        message.encode_to_vec(),
        bytes,
        "{name} re-encodes differently"
    );
    message
}

#[test]
fn ping_messages() {
    let request: PingRequest = round_trip("dht.ping_request");
    assert!(request.validate);
    assert!(request.auth.is_none());
    assert_eq!(request.peer.map(|p| p.node_id.len()), Some(20));

    let client: PingRequest = round_trip("dht.ping_request_client");
    assert_eq!(client, PingRequest::default());

    let response: PingResponse = round_trip("dht.ping_response");
    assert!(response.available);
    assert_eq!(response.dht_time, EXPIRATION - 600.0);
    assert_eq!(response.peer.map(|p| p.node_id.len()), Some(20));
}

#[test]
fn store_messages() {
    let request: StoreRequest = round_trip("dht.store_request");
    assert_eq!(request.keys.len(), 3);
    assert_eq!(request.keys[0], unhex(MYKEY_ID));
    assert_eq!(request.keys[1], unhex(TUPLE_ID));
    // IS_REGULAR_VALUE = msgpack(None), a msgpack subkey, IS_DICTIONARY = b"".
    assert_eq!(
        request.subkeys,
        [vec![0xc0], b"\xa6subkey".to_vec(), vec![]]
    );
    assert_eq!(request.values[0], b"\xa5hello");
    assert_eq!(
        request.expiration_time,
        [EXPIRATION, EXPIRATION + 1.0, EXPIRATION + 2.0]
    );
    assert_eq!(request.in_cache, [false, true, false]);
    assert!(request.peer.is_some());

    let response: StoreResponse = round_trip("dht.store_response");
    assert_eq!(response.store_ok, [true, false, true]);
}

#[test]
fn find_messages() {
    let request: FindRequest = round_trip("dht.find_request");
    assert_eq!(request.keys.len(), 2);
    assert_eq!(request.keys[0], unhex(MYKEY_ID));

    let response: FindResponse = round_trip("dht.find_response");
    let kinds: Vec<ResultType> = response.results.iter().map(|r| r.r#type()).collect();
    assert_eq!(
        kinds,
        [
            ResultType::FoundRegular,
            ResultType::NotFound,
            ResultType::FoundDictionary
        ]
    );
    let found = &response.results[0];
    assert_eq!(found.value, b"\xa5hello");
    assert_eq!(found.expiration_time, EXPIRATION);
    assert_eq!(found.nearest_node_ids.len(), found.nearest_peer_ids.len());
    let missing = &response.results[1];
    assert!(missing.value.is_empty());
    assert_eq!(missing.nearest_peer_ids.len(), 2);
    for peer in &missing.nearest_peer_ids {
        assert!(servicer_runtime::PeerId::from_bytes(peer).is_ok());
    }
    // A DictionaryDHTValue is msgpack ext type 0x50.
    assert_eq!(&response.results[2].value[..3], &[0xc7, 0x14, 0x50]);
}

/// A dictionary with live entries, whole (as replication stores it) and as a find result; the
/// DHT's own translation of its contents is tested next to it, in `src/hivemind_wire/`.
#[test]
fn dictionary_messages() {
    let request: StoreRequest = round_trip("dht.store_request_dictionary");
    assert_eq!(request.subkeys, [Vec::<u8>::new()]);
    let response: FindResponse = round_trip("dht.find_response_dictionary");
    assert_eq!(response.results[0].r#type(), ResultType::FoundDictionary);
    assert_eq!(response.results[0].value, request.values[0]);
}
