//! hivemind's `DictionaryDHTValue` as msgpack: how a whole dictionary value travels in
//! hivemind's store requests and find results.

use std::io::Cursor;

use crate::error::DhtError;
use crate::messages::DictEntry;
use crate::time::DhtTime;
use crate::value::MAX_MSGPACK_DEPTH;

/// hivemind's msgpack ext code for `DictionaryDHTValue`.
const DICTIONARY_EXT: i8 = 0x50;

/// hivemind's `DictionaryDHTValue` as msgpack: ext 0x50 around
/// `[maxsize (inf), latest_expiration_time, [[subkey, value, expiration_time], ...]]`, the subkey as a
/// msgpack object (our subkeys are its bytes), the value as bin. `latest` is the dictionary's
/// expiration time, which is what hivemind stores it under.
pub(super) fn encode_dictionary(entries: &[DictEntry], latest: DhtTime) -> Vec<u8> {
    // Writes into a Vec cannot fail.
    let mut payload = Vec::new();
    let _ = rmp::encode::write_array_len(&mut payload, 3);
    // maxsize: hivemind's unbounded default
    let _ = rmp::encode::write_f64(&mut payload, f64::INFINITY);
    let _ = rmp::encode::write_f64(&mut payload, latest);
    let _ = rmp::encode::write_array_len(&mut payload, entries.len() as u32);
    for entry in entries {
        let _ = rmp::encode::write_array_len(&mut payload, 3);
        payload.extend_from_slice(&entry.subkey);
        let _ = rmp::encode::write_bin(&mut payload, &entry.value);
        let _ = rmp::encode::write_f64(&mut payload, entry.expiration_time);
    }
    let mut out = Vec::with_capacity(payload.len() + 6);
    let _ = rmp::encode::write_ext_meta(&mut out, payload.len() as u32, DICTIONARY_EXT);
    out.extend_from_slice(&payload);
    out
}

/// The inverse of [`encode_dictionary`]: the latest expiration time and the entries, each subkey
/// as the exact msgpack bytes it arrived as (signatures cover them).
pub(super) fn decode_dictionary(bytes: &[u8]) -> Result<(DhtTime, Vec<DictEntry>), DhtError> {
    let bad = |what: &str| DhtError::Malformed(format!("dictionary value: {what}"));
    let mut cur = Cursor::new(bytes);
    let meta = rmp::decode::read_ext_meta(&mut cur).map_err(|_| bad("not a msgpack ext"))?;
    if meta.typeid != DICTIONARY_EXT {
        return Err(bad("not ext type 0x50"));
    }
    let start = cur.position() as usize;
    let payload = bytes
        .get(start..start + meta.size as usize)
        .filter(|p| start + p.len() == bytes.len())
        .ok_or_else(|| bad("ext size does not match"))?;
    let mut cur = Cursor::new(payload);
    if rmp::decode::read_array_len(&mut cur).ok() != Some(3) {
        return Err(bad("not [maxsize, latest_expiration_time, items]"));
    }
    read_value(&mut cur)?; // maxsize: a local cache bound, meaningless to the receiver
    let latest = as_time(read_value(&mut cur)?).ok_or_else(|| bad("expiration not a number"))?;
    let n = rmp::decode::read_array_len(&mut cur).map_err(|_| bad("items not an array"))?;
    // Each entry takes at least 4 bytes: never pre-allocate what the bytes cannot hold.
    let mut entries = Vec::with_capacity((n as usize).min(payload.len() / 4));
    for _ in 0..n {
        if rmp::decode::read_array_len(&mut cur).ok() != Some(3) {
            return Err(bad("item not [subkey, value, expiration_time]"));
        }
        let from = cur.position() as usize;
        read_value(&mut cur)?;
        let subkey = payload[from..cur.position() as usize].to_vec();
        let rmpv::Value::Binary(value) = read_value(&mut cur)? else {
            return Err(bad("value not bytes"));
        };
        let expiration_time =
            as_time(read_value(&mut cur)?).ok_or_else(|| bad("expiration not a number"))?;
        entries.push(DictEntry {
            subkey,
            value,
            expiration_time,
        });
    }
    if cur.position() as usize != payload.len() {
        return Err(bad("trailing bytes"));
    }
    Ok((latest, entries))
}

fn read_value(cur: &mut Cursor<&[u8]>) -> Result<rmpv::Value, DhtError> {
    rmpv::decode::read_value_with_max_depth(cur, MAX_MSGPACK_DEPTH)
        .map_err(|e| DhtError::Malformed(format!("dictionary value: {e}")))
}

fn as_time(value: rmpv::Value) -> Option<DhtTime> {
    match value {
        rmpv::Value::F64(t) => Some(t),
        rmpv::Value::F32(t) => Some(t.into()),
        rmpv::Value::Integer(i) => i.as_f64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(subkey: &[u8], value: &[u8], expiration_time: f64) -> DictEntry {
        DictEntry {
            subkey: subkey.to_vec(),
            value: value.to_vec(),
            expiration_time,
        }
    }

    #[test]
    fn dictionary_round_trip() {
        // msgpack subkeys: "a", 7, a (1, "x") tuple as hivemind's ext 0x40
        let entries = vec![
            entry(b"\xa1a", b"\x01", 10.5),
            entry(b"\x07", b"", 11.0),
            entry(b"\xd6\x40\x92\x01\xa1x", b"\xc3", 12.0),
        ];
        let bytes = encode_dictionary(&entries, 12.0);
        let (latest, decoded) = decode_dictionary(&bytes).expect("decodes");
        assert_eq!(latest, 12.0);
        assert_eq!(decoded, entries);
    }

    #[test]
    fn dictionary_rejects_garbage() {
        let good = encode_dictionary(&[entry(b"\xa1a", b"\x01", 10.5)], 10.5);
        for cut in 0..good.len() {
            assert!(decode_dictionary(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode_dictionary(&trailing).is_err());
        assert!(decode_dictionary(b"\xc0").is_err());
        // 10,000 nested arrays as a subkey: refused, not a stack overflow
        let mut deep = vec![0x93, 0xc0, 0xcb];
        deep.extend_from_slice(&1.0f64.to_be_bytes());
        deep.extend_from_slice(&[0x91, 0x93]);
        deep.extend(std::iter::repeat_n(0x91, 10_000));
        deep.extend_from_slice(&[0xc0, 0xc4, 0x00, 0xcb]);
        deep.extend_from_slice(&1.0f64.to_be_bytes());
        let mut ext = Vec::new();
        let _ = rmp::encode::write_ext_meta(&mut ext, deep.len() as u32, DICTIONARY_EXT);
        ext.extend_from_slice(&deep);
        assert!(decode_dictionary(&ext).is_err());
    }

    proptest::proptest! {
        /// Whatever a peer sends as a dictionary decodes or fails cleanly; what we encode
        /// decodes to itself.
        #[test]
        fn dictionary_decoding_never_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
            entries in proptest::collection::vec(
                (
                    proptest::collection::vec(proptest::num::u8::ANY, 0..16),
                    proptest::num::f64::NORMAL,
                ),
                0..8,
            ),
            flip in proptest::num::usize::ANY,
        ) {
            let _ = decode_dictionary(&bytes);
            let entries: Vec<DictEntry> = entries
                .into_iter()
                .enumerate()
                .map(|(i, (value, t))| entry(&[i as u8], &value, t))
                .collect();
            let mut encoded = encode_dictionary(&entries, 1.0);
            proptest::prop_assert_eq!(decode_dictionary(&encoded), Ok((1.0, entries)));
            let at = flip % encoded.len();
            encoded[at] ^= 0x5a;
            let _ = decode_dictionary(&encoded);
        }
    }
}
