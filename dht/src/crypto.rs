//! Owned records: [`SignatureValidator`] lets only the holder of a key write records whose
//! subkey names that key as owner (hivemind's `RSASignatureValidator`, with the node's Ed25519
//! libp2p key instead of RSA).
//!
//! Owner markers protect subkeys only. A key travels as its hash, so a marker in a key is not
//! seen by any validator: [`DhtNode::store`](crate::DhtNode::store) refuses such keys with
//! [`DhtError::OwnerMarkerInKey`](crate::DhtError::OwnerMarkerInKey) rather than store them
//! unprotected. A key holding a dictionary with owned subkeys cannot be replaced by a regular
//! value ([`Rejection::Protected`](crate::Rejection::Protected)).
//!
//! # Formats
//! - Owner marker, put anywhere in a subkey: `[owner:` + base64 (standard, padded) of the
//!   libp2p protobuf encoding of the public key + `]`.
//! - Signature marker, appended to the value: `[signature:` + base64 of the 64-byte Ed25519
//!   signature + `]`.
//! - What is signed: the msgpack array `[key, subkey, value, expiration_time]` of the record, with
//!   key, subkey and value as bin and the expiration as float 64, and the value taken without its
//!   signature markers. Because the expiration is signed, a captured record cannot be replayed
//!   with a later expiration.

use std::any::Any;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use servicer_runtime::{Keypair, PublicKey};

use crate::validation::{DhtRecord, RecordValidator};

const OWNER_OPEN: &[u8] = b"[owner:";
const SIGNATURE_OPEN: &[u8] = b"[signature:";

/// Signs the records this node owns and refuses owned records not signed by their owner.
///
/// Priority 10, as hivemind's: it signs last and validates first, so other validators see values
/// without signatures. Two of them merge (the second is dropped), as in hivemind.
pub struct SignatureValidator {
    keypair: Keypair,
    marker: Vec<u8>,
}

impl std::fmt::Debug for SignatureValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureValidator")
            .field("owner", &String::from_utf8_lossy(&self.marker))
            .finish()
    }
}

impl SignatureValidator {
    /// A validator that signs with `keypair` (use the node's own identity key, so that the owner
    /// marker names the node's peer id).
    pub fn new(keypair: Keypair) -> Self {
        let marker = owner_marker(&keypair.public());
        SignatureValidator { keypair, marker }
    }

    /// This node's owner marker: put it in a subkey to protect the record (a key with a marker
    /// is refused: [`DhtError::OwnerMarkerInKey`](crate::DhtError::OwnerMarkerInKey)).
    pub fn local_public_key(&self) -> &[u8] {
        &self.marker
    }
}

/// The owner marker of `key`.
pub fn owner_marker(key: &PublicKey) -> Vec<u8> {
    [
        OWNER_OPEN,
        STANDARD.encode(key.encode_protobuf()).as_bytes(),
        b"]",
    ]
    .concat()
}

/// The contents of every `[open...]` marker in `bytes` (markers end at the first `]`, which
/// base64 never contains).
fn markers<'a>(bytes: &'a [u8], open: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let start = find(rest, open)? + open.len();
        let len = rest[start..].iter().position(|&b| b == b']')?;
        let found = &rest[start..start + len];
        rest = &rest[start + len + 1..];
        Some(found)
    })
}

/// Whether `bytes` holds an owner marker.
pub fn has_owner_marker(bytes: &[u8]) -> bool {
    markers(bytes, OWNER_OPEN).next().is_some()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `value` with every signature marker removed.
fn without_signatures(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = find(rest, SIGNATURE_OPEN) {
        let Some(len) = rest[start..].iter().position(|&b| b == b']') else {
            break;
        };
        out.extend_from_slice(&rest[..start]);
        rest = &rest[start + len + 1..];
    }
    out.extend_from_slice(rest);
    out
}

/// The bytes a signature covers: msgpack `[key, subkey, value, expiration_time]`.
fn signed_bytes(record: &DhtRecord, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.key.len() + record.subkey.len() + value.len() + 24);
    // Writes into a Vec cannot fail.
    let _ = rmp::encode::write_array_len(&mut out, 4);
    for part in [&record.key[..], &record.subkey[..], value] {
        let _ = rmp::encode::write_bin(&mut out, part);
    }
    let _ = rmp::encode::write_f64(&mut out, record.expiration_time);
    out
}

impl RecordValidator for SignatureValidator {
    fn validate(&self, record: &DhtRecord) -> bool {
        let mut owners =
            markers(&record.key, OWNER_OPEN).chain(markers(&record.subkey, OWNER_OPEN));
        let Some(owner) = owners.next() else {
            return true; // not protected
        };
        if owners.any(|other| other != owner) {
            return false; // two owners: nobody can sign for both
        }
        let mut signatures = markers(&record.value, SIGNATURE_OPEN);
        let (Some(signature), None) = (signatures.next(), signatures.next()) else {
            return false;
        };
        let (Ok(key), Ok(signature)) = (STANDARD.decode(owner), STANDARD.decode(signature)) else {
            return false;
        };
        let Ok(key) = PublicKey::try_decode_protobuf(&key) else {
            return false;
        };
        let message = signed_bytes(record, &without_signatures(&record.value));
        key.verify(&message, &signature)
    }

    fn sign_value(&self, record: &DhtRecord) -> Vec<u8> {
        if find(&record.key, &self.marker).is_none() && find(&record.subkey, &self.marker).is_none()
        {
            return record.value.clone();
        }
        let Ok(signature) = self.keypair.sign(&signed_bytes(record, &record.value)) else {
            // Only RSA keys can fail to sign; leave the value unsigned (validation refuses it).
            tracing::warn!("cannot sign a record with this key type");
            return record.value.clone();
        };
        [
            &record.value[..],
            SIGNATURE_OPEN,
            STANDARD.encode(signature).as_bytes(),
            b"]",
        ]
        .concat()
    }

    fn strip_value(&self, record: &DhtRecord) -> Vec<u8> {
        without_signatures(&record.value)
    }

    fn priority(&self) -> i32 {
        10
    }

    fn merge_with(&self, other: &dyn RecordValidator) -> bool {
        other.as_any().is::<SignatureValidator>()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::get_dht_time;

    fn record(key: &[u8], subkey: &[u8], value: &[u8]) -> DhtRecord {
        DhtRecord {
            key: key.to_vec(),
            subkey: subkey.to_vec(),
            value: value.to_vec(),
            expiration_time: get_dht_time() + 10.0,
        }
    }

    /// hivemind's `test_rsa_signature_validator`, with Ed25519 keys.
    #[test]
    fn signature_validator() {
        let receiver = SignatureValidator::new(Keypair::generate_ed25519());
        let sender = SignatureValidator::new(Keypair::generate_ed25519());
        let mallory = SignatureValidator::new(Keypair::generate_ed25519());

        let plain = record(b"key", b"subkey", b"value");
        let owner = sender.local_public_key();
        let protected = [
            record(&[b"key", owner].concat(), b"subkey", b"value"),
            record(b"key", &[b"subkey", owner].concat(), b"value"),
        ];

        assert_eq!(sender.sign_value(&plain), b"value");
        assert!(receiver.validate(&plain));

        for record in &protected {
            let signed = DhtRecord {
                value: sender.sign_value(record),
                ..record.clone()
            };
            assert!(find(&signed.value, SIGNATURE_OPEN).is_some());
            assert!(receiver.validate(&signed));
            assert_eq!(receiver.strip_value(&signed), b"value");

            let bad_values = [
                b"value".to_vec(),
                b"value[signature:INVALID_BYTES]".to_vec(),
                // Signed over the very record, with mallory's key.
                [
                    &b"value"[..],
                    SIGNATURE_OPEN,
                    STANDARD
                        .encode(
                            mallory
                                .keypair
                                .sign(&signed_bytes(record, b"value"))
                                .unwrap(),
                        )
                        .as_bytes(),
                    b"]",
                ]
                .concat(),
            ];
            for value in bad_values {
                assert!(!receiver.validate(&DhtRecord {
                    value,
                    ..record.clone()
                }));
            }
            // Replaying the signed value with a later expiration fails.
            assert!(!receiver.validate(&DhtRecord {
                expiration_time: signed.expiration_time + 100.0,
                ..signed.clone()
            }));
            // So does a value signed twice.
            let twice = DhtRecord {
                value: sender.sign_value(&signed),
                ..signed.clone()
            };
            assert!(!receiver.validate(&twice));
        }

        // Two different owners in one record: refused.
        let two = record(owner, mallory.local_public_key(), b"value");
        let signed = DhtRecord {
            value: sender.sign_value(&two),
            ..two.clone()
        };
        assert!(!receiver.validate(&signed));
    }

    #[test]
    fn markers_are_found_and_stripped() {
        assert_eq!(
            markers(b"a[owner:x]b[owner:yy]", OWNER_OPEN).collect::<Vec<_>>(),
            [&b"x"[..], b"yy"]
        );
        assert_eq!(markers(b"[owner:unterminated", OWNER_OPEN).count(), 0);
        assert_eq!(without_signatures(b"v[signature:a]w[signature:b]"), b"vw");
        assert_eq!(without_signatures(b"v[signature:open"), b"v[signature:open");
    }

    #[test]
    fn validators_merge() {
        let a = SignatureValidator::new(Keypair::generate_ed25519());
        let b = SignatureValidator::new(Keypair::generate_ed25519());
        assert!(a.merge_with(&b));
        assert_ne!(a.local_public_key(), b.local_public_key());
    }
}
