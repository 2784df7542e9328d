//! Typed values in and out of the DHT: msgpack, as hivemind's `MSGPackSerializer` writes them
//! (maps with field names, strings as str, bytes as bin), so values cross between Rust and Python.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::DhtError;

/// Nesting allowed in a subkey: hivemind's keys are scalars or flat tuples.
pub(crate) const MAX_MSGPACK_DEPTH: usize = 16;

/// Whether `bytes` can be a dictionary subkey: exactly one msgpack object, nested at most
/// [`MAX_MSGPACK_DEPTH`] deep, and not nil (nil marks a regular value). Subkeys are spliced into
/// the msgpack of whole dictionaries as they are, so one that is not a msgpack object would
/// corrupt every answer that carries its dictionary.
pub(crate) fn is_subkey(bytes: &[u8]) -> bool {
    let mut cursor = std::io::Cursor::new(bytes);
    matches!(
        rmpv::decode::read_value_with_max_depth(&mut cursor, MAX_MSGPACK_DEPTH),
        Ok(value) if !value.is_nil()
    ) && cursor.position() as usize == bytes.len()
}

/// Encodes a value as msgpack (structs as maps with field names).
pub fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, DhtError> {
    rmp_serde::to_vec_named(value).map_err(|e| DhtError::Encode(e.to_string()))
}

/// Decodes a msgpack value of at most `limit` bytes.
///
/// Python tuples arrive as hivemind's ext type 0x40; they decode as Rust tuples or sequences.
/// (Rust tuples are written as plain arrays, which Python reads as lists.)
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, DhtError> {
    if bytes.len() > limit {
        return Err(DhtError::ValueTooLarge {
            size: bytes.len(),
            limit,
        });
    }
    match rmp_serde::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(first) => {
            // Only values with ext types need the slower path.
            let plain =
                without_tuple_ext(bytes).ok_or_else(|| DhtError::Decode(first.to_string()))?;
            rmp_serde::from_slice(&plain).map_err(|e| DhtError::Decode(e.to_string()))
        }
    }
}

/// Re-encodes a msgpack value with every tuple (ext 0x40) turned into a plain array; `None` if
/// the bytes are not one valid value or hold no tuple.
fn without_tuple_ext(bytes: &[u8]) -> Option<Vec<u8>> {
    fn unwrap_tuples(value: rmpv::Value, depth: usize, changed: &mut bool) -> Option<rmpv::Value> {
        // Nesting deeper than this is refused rather than risking the stack.
        if depth > 64 {
            return None;
        }
        Some(match value {
            rmpv::Value::Ext(code, data) if code == crate::id::TUPLE_EXT => {
                *changed = true;
                let inner = rmpv::decode::read_value(&mut data.as_slice()).ok()?;
                unwrap_tuples(inner, depth + 1, changed)?
            }
            rmpv::Value::Array(items) => rmpv::Value::Array(
                items
                    .into_iter()
                    .map(|v| unwrap_tuples(v, depth + 1, changed))
                    .collect::<Option<_>>()?,
            ),
            rmpv::Value::Map(entries) => rmpv::Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        Some((
                            unwrap_tuples(k, depth + 1, changed)?,
                            unwrap_tuples(v, depth + 1, changed)?,
                        ))
                    })
                    .collect::<Option<_>>()?,
            ),
            other => other,
        })
    }
    let mut input = bytes;
    let value = rmpv::decode::read_value(&mut input).ok()?;
    if !input.is_empty() {
        return None;
    }
    let mut changed = false;
    let value = unwrap_tuples(value, 0, &mut changed)?;
    if !changed {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    rmpv::encode::write_value(&mut out, &value).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Expert {
        uid: String,
        port: u16,
        load: f64,
    }

    #[test]
    fn subkeys_are_one_msgpack_object() {
        assert!(is_subkey(&encode_value("a").unwrap()));
        assert!(is_subkey(&encode_value(&(1, "x")).unwrap()));
        for bad in [&b""[..], b"\xc0", b"\xc1", b"\xa1a\x00", b"\x92\x01"] {
            assert!(!is_subkey(bad), "{bad:?}");
        }
        let deep = [vec![0x91u8; 10_000], vec![0x01]].concat();
        assert!(!is_subkey(&deep));
    }

    #[test]
    fn values_round_trip_as_hivemind_msgpack() {
        let expert = Expert {
            uid: "ffn.0.3".into(),
            port: 31337,
            load: 1.5,
        };
        let bytes = encode_value(&expert).unwrap();
        // A map with string keys, as Python's msgpack would write a dict; floats as float64.
        assert_eq!(bytes[0], 0x83);
        assert!(
            bytes
                .windows(9)
                .any(|w| w == hex::decode("cb3ff8000000000000").unwrap())
        );
        assert_eq!(decode_value::<Expert>(&bytes, 1024).unwrap(), expert);
        assert_eq!(hex::encode(encode_value(&"mykey").unwrap()), "a56d796b6579");
        assert_eq!(
            hex::encode(encode_value(&vec![1, 2, 3]).unwrap()),
            "93010203"
        );
        assert!(matches!(
            decode_value::<Expert>(&bytes, 4),
            Err(DhtError::ValueTooLarge { .. })
        ));
        assert!(decode_value::<Expert>(b"\xc1garbage", 1024).is_err());
    }

    #[test]
    fn python_tuples_decode_as_rust_tuples() {
        // hivemind's msgpack for ("a", (1, 2)): ext 0x40 around ["a", ext 0x40 around [1, 2]].
        let inner = crate::Key::from((1, 2)).to_msgpack();
        let mut array = vec![0x92, 0xa1, b'a'];
        array.extend_from_slice(&inner);
        let mut outer = vec![0xc7, array.len() as u8, 0x40];
        outer.extend_from_slice(&array);
        let decoded: (String, (i32, i32)) = decode_value(&outer, 1024).unwrap();
        assert_eq!(decoded, ("a".to_string(), (1, 2)));
        let as_list: Vec<i32> =
            decode_value(&crate::Key::from((1, 2, 3)).to_msgpack(), 1024).unwrap();
        assert_eq!(as_list, [1, 2, 3]);
    }
}
