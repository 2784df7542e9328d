//! [`DhtId`]: 160-bit identifiers of nodes and keys, hashed exactly as hivemind hashes them.

use std::fmt;

use rand::RngCore;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha1::{Digest, Sha1};

/// Bytes in an id.
pub const ID_BYTES: usize = 20;

/// A 160-bit id: a node's place in the keyspace, or a key's. Ordered as a big-endian integer.
///
/// Serialized as a byte string of 20 bytes: one copy, where an array goes through serde byte by
/// byte (every find response carries dozens of ids).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DhtId([u8; ID_BYTES]);

impl Serialize for DhtId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for DhtId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;

        impl Visitor<'_> for IdVisitor {
            type Value = DhtId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{ID_BYTES} bytes")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<DhtId, E> {
                v.try_into()
                    .map(DhtId)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
        }

        deserializer.deserialize_bytes(IdVisitor)
    }
}

impl DhtId {
    /// The smallest id, 0.
    pub const MIN: DhtId = DhtId([0; ID_BYTES]);
    /// The largest id, 2^160 - 1.
    pub const MAX: DhtId = DhtId([0xff; ID_BYTES]);

    /// The id of a key: SHA-1 of the key's msgpack encoding, or of the raw bytes for a byte key,
    /// exactly as hivemind's `DHTID.generate(key)`, so a key lands on the same id in both.
    ///
    /// ```
    /// use servicer_dht::DhtId;
    /// assert_eq!(DhtId::generate("mykey").to_string(), "6a9a82708532eead9c87b7c2aa81916d0a0c4619");
    /// ```
    pub fn generate(key: impl Into<Key>) -> DhtId {
        let key = key.into();
        let digest = match &key {
            Key::Bytes(raw) => Sha1::digest(raw),
            other => Sha1::digest(other.to_msgpack()),
        };
        DhtId(digest.into())
    }

    /// A uniformly random id (hivemind hashes a 255-byte buffer, docs/hivemind-compat.md#q1; any
    /// uniform id will do).
    pub fn random() -> DhtId {
        let mut bytes = [0u8; ID_BYTES];
        rand::thread_rng().fill_bytes(&mut bytes);
        DhtId(bytes)
    }

    /// The id with these big-endian bytes.
    pub const fn from_bytes(bytes: [u8; ID_BYTES]) -> DhtId {
        DhtId(bytes)
    }

    /// The id from a slice of at most 20 big-endian bytes (shorter slices are zero-extended on the
    /// left, as hivemind's `from_bytes`); `None` if longer.
    pub fn from_slice(bytes: &[u8]) -> Option<DhtId> {
        if bytes.len() > ID_BYTES {
            return None;
        }
        let mut out = [0u8; ID_BYTES];
        out[ID_BYTES - bytes.len()..].copy_from_slice(bytes);
        Some(DhtId(out))
    }

    /// Big-endian bytes.
    pub const fn to_bytes(&self) -> [u8; ID_BYTES] {
        self.0
    }

    /// Big-endian bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; ID_BYTES] {
        &self.0
    }

    /// XOR distance, comparable as an id.
    pub fn xor_distance(&self, other: &DhtId) -> DhtId {
        let mut out = [0u8; ID_BYTES];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a ^ b;
        }
        DhtId(out)
    }

    /// Number of leading bits two ids share (160 for equal ids).
    pub fn common_prefix_len(&self, other: &DhtId) -> u32 {
        self.xor_distance(other).leading_zeros()
    }

    /// Leading zero bits.
    pub fn leading_zeros(&self) -> u32 {
        let mut zeros = 0;
        for byte in self.0 {
            if byte == 0 {
                zeros += 8;
            } else {
                return zeros + byte.leading_zeros();
            }
        }
        zeros
    }

    /// The bit at `index` (0 = most significant).
    pub fn bit(&self, index: u32) -> bool {
        let byte = self.0[(index / 8) as usize];
        byte & (0x80 >> (index % 8)) != 0
    }

    /// This id with bit `index` set to `value`.
    pub fn with_bit(mut self, index: u32, value: bool) -> DhtId {
        let mask = 0x80u8 >> (index % 8);
        let byte = &mut self.0[(index / 8) as usize];
        if value {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
        self
    }

    /// This id with every bit from `index` on cleared: the lower bound of its prefix interval.
    pub fn prefix(mut self, len: u32) -> DhtId {
        for i in len..(ID_BYTES as u32 * 8) {
            if i % 8 == 0 {
                self.0[(i / 8) as usize] = 0;
            } else {
                self = self.with_bit(i, false);
            }
        }
        self
    }
}

impl fmt::Display for DhtId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DhtId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DhtId({self})")
    }
}

impl crate::traverse::Keyspace for DhtId {
    type Distance = DhtId;

    fn distance(&self, other: &DhtId) -> DhtId {
        self.xor_distance(other)
    }
}

/// A DHT key or subkey, as hivemind's keys are Python values: strings, byte strings, integers,
/// booleans, `None` and tuples of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// A string (msgpack str).
    Str(String),
    /// Bytes: hashed raw as a top-level key, msgpack bin inside a tuple or as a subkey.
    Bytes(Vec<u8>),
    /// An integer, in msgpack's smallest encoding.
    Int(i128),
    /// A boolean (distinct from 0 and 1, unlike in Python: docs/hivemind-compat.md#q12).
    Bool(bool),
    /// Python's `None`.
    Nil,
    /// A tuple: msgpack ext type 0x40 around the array of its items.
    Tuple(Vec<Key>),
}

/// hivemind's msgpack ext code for tuples.
pub(crate) const TUPLE_EXT: i8 = 0x40;

impl Key {
    /// The msgpack encoding hivemind's `MSGPackSerializer.dumps` gives this value.
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_msgpack(&mut out);
        out
    }

    fn write_msgpack(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = match self {
            Key::Str(s) => rmp::encode::write_str(out, s).map(drop).map_err(drop),
            Key::Bytes(b) => rmp::encode::write_bin(out, b).map(drop).map_err(drop),
            Key::Int(i) if *i >= 0 => rmp::encode::write_uint(out, *i as u64)
                .map(drop)
                .map_err(drop),
            Key::Int(i) => rmp::encode::write_sint(out, *i as i64)
                .map(drop)
                .map_err(drop),
            Key::Bool(b) => rmp::encode::write_bool(out, *b).map_err(drop),
            Key::Nil => rmp::encode::write_nil(out).map_err(drop),
            Key::Tuple(items) => {
                let mut inner = Vec::new();
                let _ = rmp::encode::write_array_len(&mut inner, items.len() as u32);
                for item in items {
                    item.write_msgpack(&mut inner);
                }
                let _ = rmp::encode::write_ext_meta(out, inner.len() as u32, TUPLE_EXT);
                out.extend_from_slice(&inner);
                Ok(())
            }
        };
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key::Str(s.to_string())
    }
}

impl From<String> for Key {
    fn from(s: String) -> Key {
        Key::Str(s)
    }
}

impl From<&String> for Key {
    fn from(s: &String) -> Key {
        Key::Str(s.clone())
    }
}

impl From<&[u8]> for Key {
    fn from(b: &[u8]) -> Key {
        Key::Bytes(b.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Key {
    fn from(b: &[u8; N]) -> Key {
        Key::Bytes(b.to_vec())
    }
}

impl From<Vec<u8>> for Key {
    fn from(b: Vec<u8>) -> Key {
        Key::Bytes(b)
    }
}

impl From<bool> for Key {
    fn from(b: bool) -> Key {
        Key::Bool(b)
    }
}

impl From<()> for Key {
    fn from(_: ()) -> Key {
        Key::Nil
    }
}

macro_rules! int_keys {
    ($($t:ty),*) => {$(
        impl From<$t> for Key {
            fn from(i: $t) -> Key {
                Key::Int(i as i128)
            }
        }
    )*};
}
int_keys!(i8, i16, i32, i64, u8, u16, u32, u64, isize, usize);

macro_rules! tuple_keys {
    ($(($($t:ident),+)),*) => {$(
        impl<$($t: Into<Key>),+> From<($($t,)+)> for Key {
            #[allow(non_snake_case)]
            fn from(($($t,)+): ($($t,)+)) -> Key {
                Key::Tuple(vec![$($t.into()),+])
            }
        }
    )*};
}
tuple_keys!((A), (A, B), (A, B, C), (A, B, C, D));

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: impl Into<Key>, msgpack: &str, id: &str) {
        let key = key.into();
        if !matches!(key, Key::Bytes(_)) {
            assert_eq!(hex::encode(key.to_msgpack()), msgpack, "{key:?}");
        }
        assert_eq!(DhtId::generate(key.clone()).to_string(), id, "{key:?}");
    }

    #[test]
    fn serializes_as_a_byte_string_of_twenty() {
        use servicer_runtime::native::codec;
        let id = DhtId::generate("mykey");
        let encoded = codec::encode(&id).unwrap();
        assert_eq!(encoded.len(), 1 + ID_BYTES);
        assert_eq!(encoded[0] as usize, ID_BYTES);
        assert_eq!(&encoded[1..], id.to_bytes());
        assert_eq!(codec::decode::<DhtId>(&encoded, 64).unwrap(), id);
        for len in [0, 19, 21] {
            let bytes = codec::encode(&serde_bytes::ByteBuf::from(vec![1u8; len])).unwrap();
            assert!(codec::decode::<DhtId>(&bytes, 64).is_err(), "{len} bytes");
        }
    }

    #[test]
    fn hivemind_test_vectors() {
        check(
            "mykey",
            "a56d796b6579",
            "6a9a82708532eead9c87b7c2aa81916d0a0c4619",
        );
        check("", "a0", "c7da1ff95a25c353f1319604703e8bfd287ee1a1");
        check(
            "ololo",
            "a56f6c6f6c6f",
            "bc02d17b6d1fb1db05a94cfedc9c6a0d471c124a",
        );
        check(
            "a".repeat(40),
            &format!("d928{}", "61".repeat(40)),
            "d6fc2913aa792426b903d8054f9d20b44dcc1708",
        );
        check(b"raw-bytes", "", "1e4f35295d35c216378ed71a38dbe04acc586443");
        check(0, "00", "5ba93c9db0cff93f52b521d7420e43f6eda2784f");
        check(1, "01", "bf8b4530d8d246dd74ac53a13471bba17941dff7");
        check(-1, "ff", "85e53271e14006f0265921d02d4d736cdc580b0b");
        check(4555, "cd11cb", "f7910a8c10256701777fc83ddbbe5e00860ec975");
        check(
            1u64 << 40,
            "cf0000010000000000",
            "ff886d7ccd2be002a9a842f7241d8fd4886303cc",
        );
        check(
            ("tuple", 1),
            "d74092a57475706c6501",
            "47d7eaff2f52d870635915c3cdd2c6fc15fc014d",
        );
        // More keys, with the msgpack bytes and ids that hivemind 1.1.12's `DHTID.generate` gives
        // them (docs/hivemind-compat.md#w10).
        check(
            "key",
            "a36b6579",
            "88c6f489594d5d9a9d57d93567bfb6ee377abd24",
        );
        check(b"key", "", "a62f2225bf70bfaccbc7f1ef2a397836717377de");
        check(123, "7b", "60ba4b2daa4ed4d070fec06687e249e0e6f9ee45");
        check(
            ("a", 1),
            "d64092a16101",
            "edd01de4b5be93353047fae489cc36b2e8f20fb1",
        );
        check((), "c0", "2149aa9e07dda9bbf502e088d8d0a38e8fb94f2e");
    }

    #[test]
    fn tuples_differ_from_lists_and_bools_from_ints() {
        assert_eq!(
            hex::encode(Key::from((1, 2, 3)).to_msgpack()),
            "d64093010203"
        );
        assert_ne!(Key::from(false).to_msgpack(), Key::from(0).to_msgpack());
        assert_ne!(
            Key::from(("1", false, 0)).to_msgpack(),
            Key::from(("1", 0, 0)).to_msgpack()
        );
    }

    #[test]
    fn ids_basic() {
        for _ in 0..100 {
            let (a, b) = (DhtId::random(), DhtId::random());
            assert_eq!(a.xor_distance(&a), DhtId::MIN);
            assert!(a == b || a.xor_distance(&b) > DhtId::MIN);
            assert_eq!(DhtId::from_bytes(a.to_bytes()), a);
            assert_eq!(DhtId::from_slice(a.as_bytes()), Some(a));
        }
        assert_eq!(DhtId::from_slice(b""), Some(DhtId::MIN));
        assert_eq!(DhtId::from_slice(&[0; 21]), None);
    }

    #[test]
    fn common_prefix_matches_bit_strings() {
        let bits = |id: &DhtId| -> String { id.0.iter().map(|b| format!("{b:08b}")).collect() };
        for i in 0..200u64 {
            let a = DhtId::from_slice(&(i * 7919 % 4097).to_be_bytes()).unwrap();
            let b = DhtId::from_slice(&(i * 104729 % 4097).to_be_bytes()).unwrap();
            let expected = bits(&a)
                .chars()
                .zip(bits(&b).chars())
                .take_while(|(x, y)| x == y)
                .count() as u32;
            assert_eq!(a.common_prefix_len(&b), expected);
        }
        let id = DhtId::random();
        assert_eq!(id.prefix(0), DhtId::MIN);
        assert_eq!(id.prefix(160), id);
        assert!(id.prefix(13).common_prefix_len(&id) >= 13);
    }
}
