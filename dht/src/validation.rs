//! Record validators: checks (and signatures) that every stored and found value goes through.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, RwLock};

use crate::time::DhtTime;

/// The subkey a regular (non-dictionary) value has in a record: msgpack `None`, hivemind's
/// `IS_REGULAR_VALUE`.
pub const REGULAR_SUBKEY: &[u8] = b"\xc0";

/// One value as validators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct DhtRecord {
    /// The key's id bytes.
    pub key: Vec<u8>,
    /// The subkey's msgpack bytes, or [`REGULAR_SUBKEY`].
    pub subkey: Vec<u8>,
    /// The value's bytes, as stored (signed, if a validator signs).
    pub value: Vec<u8>,
    /// When it expires.
    pub expiration_time: DhtTime,
}

/// Checks records before they are stored or returned, and may sign values on their way out
/// (hivemind's `RecordValidatorBase`).
pub trait RecordValidator: Send + Sync + 'static {
    /// Whether the record may be stored or returned.
    fn validate(&self, record: &DhtRecord) -> bool;

    /// The value to store for a record this node writes (e.g. with a signature added).
    fn sign_value(&self, record: &DhtRecord) -> Vec<u8> {
        record.value.clone()
    }

    /// The value without what `sign_value` added.
    fn strip_value(&self, record: &DhtRecord) -> Vec<u8> {
        record.value.clone()
    }

    /// Signing runs in increasing priority, validating and stripping in decreasing priority.
    fn priority(&self) -> i32 {
        0
    }

    /// Takes `other` into this validator instead of adding it as a separate one; returns
    /// whether it did.
    fn merge_with(&self, other: &dyn RecordValidator) -> bool {
        let _ = other;
        false
    }

    /// For `merge_with` implementations that need the concrete type.
    fn as_any(&self) -> &dyn Any;
}

/// Several validators applied in priority order (hivemind's `CompositeValidator`).
#[derive(Default)]
pub struct CompositeValidator {
    validators: RwLock<Vec<Arc<dyn RecordValidator>>>,
}

impl fmt::Debug for CompositeValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompositeValidator")
            .field("validators", &self.list().len())
            .finish()
    }
}

impl CompositeValidator {
    fn list(&self) -> Vec<Arc<dyn RecordValidator>> {
        self.validators
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Adds validators; each is first offered to the present ones' `merge_with`.
    pub fn extend(&self, new: impl IntoIterator<Item = Arc<dyn RecordValidator>>) {
        let mut validators = self.validators.write().unwrap_or_else(|e| e.into_inner());
        for validator in new {
            if !validators.iter().any(|v| v.merge_with(validator.as_ref())) {
                validators.push(validator);
            }
        }
        validators.sort_by_key(|v| v.priority());
    }

    /// The number of validators (after merges).
    pub fn len(&self) -> usize {
        self.list().len()
    }

    /// Whether there is no validator (then every record is valid and values pass unchanged).
    pub fn is_empty(&self) -> bool {
        self.validators
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Validates in decreasing priority; each later validator sees the value stripped by the
    /// earlier ones.
    pub fn validate(&self, record: &DhtRecord) -> bool {
        let validators = self.list();
        let mut record = record.clone();
        for (i, validator) in validators.iter().rev().enumerate() {
            if !validator.validate(&record) {
                return false;
            }
            if i + 1 < validators.len() {
                record.value = validator.strip_value(&record);
            }
        }
        true
    }

    /// Signs in increasing priority, each validator signing the previous one's output.
    pub fn sign_value(&self, record: &DhtRecord) -> Vec<u8> {
        let mut record = record.clone();
        for validator in self.list() {
            record.value = validator.sign_value(&record);
        }
        record.value
    }

    /// Strips in decreasing priority.
    pub fn strip_value(&self, record: &DhtRecord) -> Vec<u8> {
        let mut record = record.clone();
        for validator in self.list().iter().rev() {
            record.value = validator.strip_value(&record);
        }
        record.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends its tag when signing; requires it when validating.
    struct Tag(u8, i32);

    impl RecordValidator for Tag {
        fn validate(&self, record: &DhtRecord) -> bool {
            record.value.last() == Some(&self.0)
        }
        fn sign_value(&self, record: &DhtRecord) -> Vec<u8> {
            let mut v = record.value.clone();
            v.push(self.0);
            v
        }
        fn strip_value(&self, record: &DhtRecord) -> Vec<u8> {
            let mut v = record.value.clone();
            if v.last() == Some(&self.0) {
                v.pop();
            }
            v
        }
        fn priority(&self) -> i32 {
            self.1
        }
        fn merge_with(&self, other: &dyn RecordValidator) -> bool {
            other
                .as_any()
                .downcast_ref::<Tag>()
                .is_some_and(|t| t.0 == self.0)
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    #[test]
    fn composite_orders_by_priority_and_merges() {
        let composite = CompositeValidator::default();
        assert!(composite.is_empty());
        composite.extend([
            Arc::new(Tag(b'b', 10)) as Arc<dyn RecordValidator>,
            Arc::new(Tag(b'a', 0)),
            Arc::new(Tag(b'b', 10)),
        ]);
        assert_eq!(composite.list().len(), 2, "the duplicate merged");
        let record = DhtRecord {
            key: vec![1],
            subkey: REGULAR_SUBKEY.to_vec(),
            value: b"v".to_vec(),
            expiration_time: 1.0,
        };
        // Signed by priority 0 first, then 10.
        let signed = composite.sign_value(&record);
        assert_eq!(signed, b"vab");
        let signed_record = DhtRecord {
            value: signed,
            ..record.clone()
        };
        assert!(composite.validate(&signed_record));
        assert_eq!(composite.strip_value(&signed_record), b"v");
        assert!(!composite.validate(&record));
        let wrong_order = DhtRecord {
            value: b"vba".to_vec(),
            ..record
        };
        assert!(!composite.validate(&wrong_order));
    }
}
