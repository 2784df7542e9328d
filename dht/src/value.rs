//! Typed values in and out of the DHT: msgpack, as hivemind's `MSGPackSerializer` writes them
//! (maps with field names, strings as str, bytes as bin), so values cross between Rust and Python.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::DhtError;

/// Encodes a value as msgpack (structs as maps with field names).
pub fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, DhtError> {
    rmp_serde::to_vec_named(value).map_err(|e| DhtError::Encode(e.to_string()))
}

/// Decodes a msgpack value of at most `limit` bytes.
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, DhtError> {
    if bytes.len() > limit {
        return Err(DhtError::ValueTooLarge {
            size: bytes.len(),
            limit,
        });
    }
    rmp_serde::from_slice(bytes).map_err(|e| DhtError::Decode(e.to_string()))
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
}
