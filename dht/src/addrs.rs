//! How DHT messages carry peers: [`AddrList`], a node's addresses in one shared buffer, and the
//! serde form of a [`PeerId`] as its bytes.
//!
//! Every find response names up to `bucket_size` peers per key with their addresses, so these are
//! the hottest fields of the DHT's wire. Both keep the bytes of the simple forms (a list of byte
//! strings; the peer id's bytes) while costing no allocation per address: an `AddrList` is cloned
//! into a response by a reference count, decoded into one buffer, and compared by `memcmp` against
//! what this node already knows, so only new addresses are ever parsed.

use std::fmt;

use bytes::Bytes;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use servicer_runtime::Multiaddr;

/// A node's addresses (multiaddr bytes, not checked until [`AddrList::to_multiaddrs`]).
///
/// Serialized as a sequence of byte strings, exactly like `Vec<Vec<u8>>` with `serde_bytes`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AddrList {
    /// Each address as a 4-byte big-endian length and its bytes.
    buf: Bytes,
}

impl AddrList {
    /// A list of these addresses (their bytes), in order.
    pub fn new<A: AsRef<[u8]>>(addrs: impl IntoIterator<Item = A>) -> Self {
        let mut list = Builder::new();
        for addr in addrs {
            list.push(addr.as_ref());
        }
        list.finish()
    }

    /// The addresses of these multiaddrs.
    pub fn from_multiaddrs<'a>(addrs: impl IntoIterator<Item = &'a Multiaddr>) -> Self {
        Self::new(addrs.into_iter().map(|a| a.as_ref()))
    }

    /// Each address's bytes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut rest = &self.buf[..];
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let (addr, tail) = tail.split_at(u32::from_be_bytes(*len) as usize);
            rest = tail;
            Some(addr)
        })
    }

    /// How many addresses.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The bytes the list takes (about what it takes on the wire).
    pub(crate) fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// No address at all.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The first `n` addresses (shares the buffer).
    pub fn truncated(&self, n: usize) -> Self {
        let end: usize = self.iter().take(n).map(|a| 4 + a.len()).sum();
        AddrList {
            buf: self.buf.slice(..end),
        }
    }

    /// The addresses that parse as multiaddrs; the others are skipped.
    pub fn to_multiaddrs(&self) -> Vec<Multiaddr> {
        self.iter()
            .filter_map(|a| Multiaddr::try_from(a.to_vec()).ok())
            .collect()
    }
}

/// Collects a list's bytes on the stack while they fit, so that a typical list costs one
/// allocation of exactly its size (a `BytesMut` with room to spare costs a second one to freeze).
struct Builder {
    stack: [u8; 256],
    len: usize,
    /// The bytes once they outgrew `stack` (never empty then).
    heap: Vec<u8>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            stack: [0; 256],
            len: 0,
            heap: Vec::new(),
        }
    }

    /// Appends `addr`; one longer than 4 GiB (no multiaddr is) is left out, so that every
    /// length in the buffer is exact.
    fn push(&mut self, addr: &[u8]) {
        let Ok(len) = u32::try_from(addr.len()) else {
            return;
        };
        let len = len.to_be_bytes();
        let end = self.len + len.len() + addr.len();
        if self.heap.is_empty() && end <= self.stack.len() {
            self.stack[self.len..self.len + len.len()].copy_from_slice(&len);
            self.stack[self.len + len.len()..end].copy_from_slice(addr);
            self.len = end;
            return;
        }
        if self.heap.is_empty() {
            self.heap.extend_from_slice(&self.stack[..self.len]);
        }
        self.heap.extend_from_slice(&len);
        self.heap.extend_from_slice(addr);
    }

    fn finish(self) -> AddrList {
        let buf = if self.heap.is_empty() {
            Bytes::copy_from_slice(&self.stack[..self.len])
        } else {
            Bytes::from(self.heap)
        };
        AddrList { buf }
    }
}

impl fmt::Debug for AddrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for addr in self.iter() {
            match Multiaddr::try_from(addr.to_vec()) {
                Ok(maddr) => list.entry(&format_args!("{maddr}")),
                Err(_) => list.entry(&format_args!("<{} bytes>", addr.len())),
            };
        }
        list.finish()
    }
}

impl Serialize for AddrList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Length first: bincode needs it up front, and `iter` cannot tell it without a pass.
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for addr in self.iter() {
            seq.serialize_element(serde_bytes::Bytes::new(addr))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for AddrList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ListVisitor)
    }
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = AddrList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of byte strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AddrList, A::Error> {
        let mut list = Builder::new();
        while seq.next_element_seed(Append(&mut list))?.is_some() {}
        Ok(list.finish())
    }
}

/// Decodes one byte string straight onto the end of the list's buffer.
struct Append<'a>(&'a mut Builder);

impl<'de> DeserializeSeed<'de> for Append<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for Append<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.0.push(v);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Self-describing formats may hand bytes over one by one.
        let mut addr = Vec::new();
        while let Some(byte) = seq.next_element::<u8>()? {
            addr.push(byte);
        }
        self.0.push(&addr);
        Ok(())
    }
}

/// A [`PeerId`] as its bytes, written from the stack: the same bytes as `PeerId::to_bytes` without
/// its allocation. Use with `#[serde(with = "crate::addrs::peer_id_bytes")]`.
pub mod peer_id_bytes {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use servicer_runtime::PeerId;

    /// Serializes the peer id's multihash bytes.
    pub fn serialize<S: Serializer>(peer: &PeerId, serializer: S) -> Result<S::Ok, S::Error> {
        // A multihash is at most a 9-byte code, a 1-byte size and a 64-byte digest.
        let mut buf = [0u8; 80];
        let mut out = &mut buf[..];
        let len = peer
            .as_ref()
            .write(&mut out)
            .map_err(serde::ser::Error::custom)?;
        serializer.serialize_bytes(&buf[..len])
    }

    /// Parses the peer id from borrowed bytes (a malformed one fails the message).
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PeerId, D::Error> {
        deserializer.deserialize_bytes(PeerIdVisitor)
    }

    struct PeerIdVisitor;

    impl Visitor<'_> for PeerIdVisitor {
        type Value = PeerId;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the bytes of a peer id")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<PeerId, E> {
            PeerId::from_bytes(v).map_err(E::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use servicer_runtime::PeerId;

    use super::*;

    #[test]
    fn addr_list_has_the_bytes_of_a_list_of_byte_strings() {
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let b: Multiaddr = "/memory/77".parse().unwrap();
        let plain = vec![a.to_vec(), vec![], vec![0xff], b.to_vec()];
        let list = AddrList::new(&plain);
        let as_bytes: Vec<serde_bytes::ByteBuf> = plain
            .iter()
            .cloned()
            .map(serde_bytes::ByteBuf::from)
            .collect();
        let encoded = servicer_runtime::native::codec::encode(&list).unwrap();
        assert_eq!(
            encoded,
            servicer_runtime::native::codec::encode(&as_bytes).unwrap()
        );
        let decoded: AddrList = servicer_runtime::native::codec::decode(&encoded, 1 << 20).unwrap();
        assert_eq!(decoded, list);
        assert_eq!(
            decoded.iter().map(<[u8]>::to_vec).collect::<Vec<_>>(),
            plain
        );
        assert_eq!(decoded.len(), 4);
        assert_eq!(
            decoded.truncated(1).iter().collect::<Vec<_>>(),
            vec![&a.to_vec()[..]]
        );
        assert_eq!(decoded.truncated(9), decoded);
        // Bytes that are no multiaddr are skipped when parsing.
        assert_eq!(decoded.to_multiaddrs(), vec![a, Multiaddr::empty(), b]);
        assert_eq!(AddrList::default().iter().count(), 0);
        assert!(AddrList::default().is_empty());
        // Lists past the builder's stack buffer keep every byte.
        let long: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 40]).collect();
        let list = AddrList::new(&long);
        assert_eq!(list.iter().map(<[u8]>::to_vec).collect::<Vec<_>>(), long);
        let encoded = servicer_runtime::native::codec::encode(&list).unwrap();
        let decoded: AddrList = servicer_runtime::native::codec::decode(&encoded, 1 << 20).unwrap();
        assert_eq!(decoded, list);
    }

    #[test]
    fn addr_list_from_a_format_that_gives_bytes_one_by_one() {
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error, SeqDeserializer};
        let plain = vec![vec![1u8, 2, 3], vec![], vec![4u8]];
        let deserializer: SeqDeserializer<_, Error> = plain.clone().into_deserializer();
        let list = AddrList::deserialize(deserializer).unwrap();
        assert_eq!(list, AddrList::new(&plain));
    }

    #[test]
    fn peer_id_has_the_bytes_of_to_bytes() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Wrapped(#[serde(with = "peer_id_bytes")] PeerId);
        let peer = PeerId::random();
        let encoded = servicer_runtime::native::codec::encode(&Wrapped(peer)).unwrap();
        let plain =
            servicer_runtime::native::codec::encode(&serde_bytes::ByteBuf::from(peer.to_bytes()));
        assert_eq!(encoded, plain.unwrap());
        let decoded: Wrapped = servicer_runtime::native::codec::decode(&encoded, 1 << 20).unwrap();
        assert_eq!(decoded, Wrapped(peer));
        let garbage =
            servicer_runtime::native::codec::encode(&serde_bytes::ByteBuf::from(vec![7u8; 5]));
        assert!(
            servicer_runtime::native::codec::decode::<Wrapped>(&garbage.unwrap(), 1 << 20).is_err()
        );
    }
}
