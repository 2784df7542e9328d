//! Arbitrary bytes through the DHT's msgpack value code. `decode_value` / `encode_value`
//! (dht/src/value.rs, with the ext 0x40 tuple fallback) as a dynamic `rmpv::Value` and as typed
//! values (tuples, sequences, bytes, a struct, `BytesWithOwner`); every msgpack object as a `Key`,
//! through `Key::to_msgpack`; and an ext 0x50 input as hivemind's `DictionaryDHTValue`
//! (dht/src/hivemind_wire/dictionary.rs, private: reached through `HivemindDhtProtocol`'s
//! `rpc_store`, which decodes it, and `rpc_find`, which encodes it, on a fresh client-mode
//! protocol per input). Asserts: no panic; what decodes re-encodes and decodes to an equal value
//! (NaNs compared as NaN) and the same bytes; a stored dictionary comes back from `rpc_find` in
//! hivemind's format and, stored again, is the same dictionary.
#![no_main]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use servicer_dht::hivemind_proto as proto;
use servicer_dht::{
    BytesWithOwner, DhtId, DhtProtocol, HivemindDhtProtocol, Key, Limits, ProtocolConfig,
    StoredValue, decode_value, encode_value, get_dht_time,
};
use servicer_runtime::{P2P, P2PConfig, PeerId, RpcContext};

const LIMIT: usize = 1 << 16;

/// Equal, or equal but for NaNs (which `Debug` prints alike).
fn same<T: Debug + PartialEq>(a: &T, b: &T) -> bool {
    a == b || format!("{a:?}") == format!("{b:?}")
}

/// `data` as a `T`, if it decodes: it must encode, decode to an equal value and encode the same.
fn value<T: Serialize + DeserializeOwned + Debug + PartialEq>(data: &[u8]) {
    let Ok(decoded) = decode_value::<T>(data, LIMIT) else {
        return;
    };
    let bytes = encode_value(&decoded).expect("a decoded value encodes");
    let again: T = decode_value(&bytes, usize::MAX).expect("an encoded value decodes");
    assert!(same(&decoded, &again), "{decoded:?} came back as {again:?}");
    assert_eq!(encode_value(&again).expect("it encodes again"), bytes);
}

/// A value as a hivemind record might hold it (`MSGPackSerializer` writes dataclasses as maps).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    name: String,
    port: u16,
    score: f64,
    tags: Vec<String>,
    blob: ByteBuf,
    nested: Option<(i8, Vec<bool>)>,
}

/// `value` as a `Key`, if it is one: a scalar, or a tuple (ext 0x40 around an array) of keys.
fn key_of(value: &rmpv::Value, depth: usize) -> Option<Key> {
    Some(match value {
        rmpv::Value::Nil => Key::Nil,
        rmpv::Value::Boolean(b) => Key::Bool(*b),
        rmpv::Value::Integer(i) => Key::Int(
            i.as_i64()
                .map(i128::from)
                .or_else(|| i.as_u64().map(i128::from))?,
        ),
        rmpv::Value::String(s) => Key::Str(s.as_str()?.to_owned()),
        rmpv::Value::Binary(b) => Key::Bytes(b.clone()),
        rmpv::Value::Ext(0x40, data) if depth < 32 => {
            let mut inner = data.as_slice();
            let rmpv::Value::Array(items) = rmpv::decode::read_value(&mut inner).ok()? else {
                return None;
            };
            if !inner.is_empty() {
                return None;
            }
            Key::Tuple(
                items
                    .iter()
                    .map(|item| key_of(item, depth + 1))
                    .collect::<Option<_>>()?,
            )
        }
        _ => return None,
    })
}

/// The first msgpack object of `data` as a `Key`: `to_msgpack` must read back as the same key.
fn key(data: &[u8]) {
    let mut input = data;
    let Ok(value) = rmpv::decode::read_value(&mut input) else {
        return;
    };
    let Some(key) = key_of(&value, 0) else {
        return;
    };
    let bytes = key.to_msgpack();
    let mut rest = bytes.as_slice();
    let again = rmpv::decode::read_value(&mut rest).expect("a key's msgpack decodes");
    assert!(rest.is_empty(), "a key's msgpack is one object");
    assert_eq!(key_of(&again, 0).as_ref(), Some(&key));
    DhtId::generate(key);
}

struct Node {
    runtime: tokio::runtime::Runtime,
    p2p: P2P,
    writer: PeerId,
}

static NODE: LazyLock<Node> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let p2p = runtime.block_on(async {
        let config = P2PConfig::default().with_listen_addrs(["/memory/0".parse().expect("addr")]);
        P2P::create(config).await.expect("node")
    });
    Node {
        runtime,
        p2p,
        writer: PeerId::random(),
    }
});

/// An entry of a dictionary as `rpc_find` sends it: the subkey's msgpack bytes, the value, and
/// its expiration.
type Entry = (Vec<u8>, Vec<u8>, f64);

/// Reads `bytes` as hivemind's `DictionaryDHTValue`: ext 0x50 around `[inf, latest, [[subkey,
/// bin, expiration], ...]]`, written the way this node writes it (every number an f64).
fn hivemind_dictionary(bytes: &[u8]) -> (f64, Vec<Entry>) {
    let mut cur = std::io::Cursor::new(bytes);
    let meta = rmp::decode::read_ext_meta(&mut cur).expect("an ext");
    assert_eq!(meta.typeid, 0x50);
    let start = cur.position() as usize;
    assert_eq!(start + meta.size as usize, bytes.len());
    let read = |cur: &mut std::io::Cursor<&[u8]>| rmpv::decode::read_value(cur).expect("msgpack");
    assert_eq!(rmp::decode::read_array_len(&mut cur).ok(), Some(3));
    assert_eq!(rmp::decode::read_f64(&mut cur).ok(), Some(f64::INFINITY));
    let latest = rmp::decode::read_f64(&mut cur).expect("latest expiration as f64");
    let n = rmp::decode::read_array_len(&mut cur).expect("entries");
    let mut entries = Vec::new();
    for _ in 0..n {
        assert_eq!(rmp::decode::read_array_len(&mut cur).ok(), Some(3));
        let from = cur.position() as usize;
        read(&mut cur);
        let subkey = bytes[from..cur.position() as usize].to_vec();
        let rmpv::Value::Binary(value) = read(&mut cur) else {
            panic!("a dictionary value is not bin");
        };
        let expiration = rmp::decode::read_f64(&mut cur).expect("expiration as f64");
        entries.push((subkey, value, expiration));
    }
    assert_eq!(cur.position() as usize, bytes.len());
    entries.sort_by(|a, b| a.partial_cmp(b).expect("no NaN expiration"));
    (latest, entries)
}

fn store_request(key: &DhtId, dictionary: Vec<u8>, expiration: f64) -> proto::StoreRequest {
    proto::StoreRequest {
        keys: vec![key.to_bytes().to_vec()],
        subkeys: vec![Vec::new()], // hivemind's IS_DICTIONARY tag
        values: vec![dictionary],
        expiration_time: vec![expiration],
        in_cache: vec![false],
        ..proto::StoreRequest::default()
    }
}

fn find_request(key: &DhtId) -> proto::FindRequest {
    proto::FindRequest {
        keys: vec![key.to_bytes().to_vec()],
        ..proto::FindRequest::default()
    }
}

/// An ext 0x50 input stored as a dictionary, found, stored again under another key and found.
fn dictionary(data: &[u8]) {
    let node = &*NODE;
    let limits = Limits::default()
        .with_max_value_size(256)
        .with_max_subkeys_per_dictionary(16)
        // Expirations far in the future (small msgpack integers) are accepted.
        .with_max_ttl(Duration::from_secs(1 << 40));
    let config = ProtocolConfig::default()
        .with_client_mode(true)
        .with_limits(limits);
    let protocol = DhtProtocol::create(&node.p2p, DhtId::random(), config).expect("protocol");
    let hivemind = HivemindDhtProtocol::new(protocol.clone());
    let ctx = || {
        RpcContext::new(
            Arc::from("DHTProtocol.fuzz"),
            node.p2p.peer_id(),
            node.writer,
        )
    };
    let (first, second) = (DhtId::generate("first"), DhtId::generate("second"));
    let start = get_dht_time();

    let request = store_request(&first, data.to_vec(), start + 3600.0);
    let Ok(stored) = node.runtime.block_on(hivemind.rpc_store(request, ctx())) else {
        return; // not a dictionary
    };
    assert_eq!(stored.store_ok.len(), 1);
    if !stored.store_ok[0] {
        return;
    }
    let Some(held) = protocol.stored_value(&first) else {
        return;
    };
    assert!(matches!(held.value, StoredValue::Dictionary(_)));
    let found = node
        .runtime
        .block_on(hivemind.rpc_find(find_request(&first), ctx()))
        .expect("find");
    let [result] = found.results.as_slice() else {
        panic!("one result per key");
    };
    assert_eq!(result.r#type, proto::ResultType::FoundDictionary as i32);
    assert_eq!(result.expiration_time, held.expiration_time);
    let (latest, entries) = hivemind_dictionary(&result.value);
    assert_eq!(latest, held.expiration_time);
    // An entry that may expire while this runs would make the second store differ.
    if entries.iter().any(|(_, _, e)| *e < start + 60.0) {
        return;
    }

    let request = store_request(&second, result.value.clone(), result.expiration_time);
    let stored = node
        .runtime
        .block_on(hivemind.rpc_store(request, ctx()))
        .expect("a dictionary rpc_find sent decodes");
    assert_eq!(stored.store_ok, [true]);
    let held_again = protocol.stored_value(&second).expect("stored");
    assert_eq!(held_again, held);
    let found = node
        .runtime
        .block_on(hivemind.rpc_find(find_request(&second), ctx()))
        .expect("find");
    let [result_again] = found.results.as_slice() else {
        panic!("one result per key");
    };
    assert_eq!(result_again.r#type, result.r#type);
    assert_eq!(result_again.expiration_time, result.expiration_time);
    assert_eq!(hivemind_dictionary(&result_again.value), (latest, entries));
}

fuzz_target!(|data: &[u8]| {
    value::<rmpv::Value>(data);
    value::<BTreeMap<String, rmpv::Value>>(data);
    value::<(String, (i32, i32))>(data);
    value::<Vec<i64>>(data);
    value::<Vec<(u64, bool, Option<String>)>>(data);
    value::<ByteBuf>(data);
    value::<String>(data);
    value::<f64>(data);
    value::<Record>(data);
    value::<BytesWithOwner>(data);
    key(data);

    // Only an ext 0x50 can be a dictionary: the rest would fail at its first byte.
    if rmp::decode::read_ext_meta(&mut std::io::Cursor::new(data)).is_ok_and(|m| m.typeid == 0x50) {
        dictionary(data);
    }
});
