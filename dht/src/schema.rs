//! [`SchemaValidator`]: values under declared keys must be of the declared serde types (hivemind's
//! `SchemaValidator`, with serde types in place of a pydantic model).

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_bytes::ByteBuf;

use crate::DhtId;
use crate::validation::{DhtRecord, REGULAR_SUBKEY, RecordValidator};

type Check = Arc<dyn Fn(&DhtRecord) -> bool + Send + Sync>;

/// One declared field: its name (for messages) and the check of its records.
#[derive(Clone)]
struct Field {
    name: String,
    check: Check,
}

#[derive(Default)]
struct Fields {
    /// Key id -> the fields of every merged schema declared under it.
    by_key: HashMap<DhtId, Vec<Field>>,
    allow_extra_keys: bool,
}

/// Refuses records under declared keys whose values are not of the declared types.
///
/// Types are checked strictly, as hivemind checks them (its records pass only when the parsed
/// value equals the original): a value passes when it decodes as the type and encodes back to the
/// same msgpack value, so `779.0` is not a `u64` and a string is not bytes. Keys are the field
/// names (with `prefix_` before them if a prefix is set), hashed as [`DhtId::generate`] hashes
/// string keys. Priority 0; two schema validators merge: a record passes if any schema that
/// declares its key accepts it, and extra keys are allowed if either allows them.
///
/// ```
/// use serde_bytes::ByteBuf;
/// use servicer_dht::{BytesWithOwner, SchemaValidator};
///
/// let schema = SchemaValidator::builder()
///     .regular::<ByteBuf>("experiment_name")
///     .dictionary::<ByteBuf, u64>("n_batches")
///     .dictionary::<BytesWithOwner, ByteBuf>("signed_data")
///     .build();
/// # let _ = schema;
/// ```
pub struct SchemaValidator {
    fields: RwLock<Fields>,
}

impl fmt::Debug for SchemaValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = self.fields.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&str> = fields
            .by_key
            .values()
            .flatten()
            .map(|f| f.name.as_str())
            .collect();
        names.sort_unstable();
        f.debug_struct("SchemaValidator")
            .field("fields", &names)
            .field("allow_extra_keys", &fields.allow_extra_keys)
            .finish()
    }
}

/// Declares the fields of a [`SchemaValidator`].
#[must_use]
pub struct SchemaBuilder {
    prefix: Option<String>,
    allow_extra_keys: bool,
    fields: Vec<(String, Check)>,
}

impl SchemaValidator {
    /// Starts a schema: no fields, extra keys allowed, no prefix.
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder {
            prefix: None,
            allow_extra_keys: true,
            fields: Vec::new(),
        }
    }

    /// The number of declared keys (after merges).
    pub fn num_keys(&self) -> usize {
        self.fields
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .len()
    }
}

impl SchemaBuilder {
    /// Keys are `{prefix}_{field}` instead of `{field}`, so that several schemas of one kind can
    /// live in one DHT.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Whether keys the schema does not declare may be stored. Default true.
    pub fn allow_extra_keys(mut self, allow: bool) -> Self {
        self.allow_extra_keys = allow;
        self
    }

    /// A field holding a regular value (no subkey) of type `T`.
    pub fn regular<T: Serialize + DeserializeOwned>(mut self, name: &str) -> Self {
        let check: Check = Arc::new(|record: &DhtRecord| {
            record.subkey == REGULAR_SUBKEY && strict::<T>(&record.value)
        });
        self.fields.push((name.to_owned(), check));
        self
    }

    /// A field holding a dictionary value: subkeys of type `K`, values of type `V`.
    pub fn dictionary<K, V>(mut self, name: &str) -> Self
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        let check: Check = Arc::new(|record: &DhtRecord| {
            record.subkey != REGULAR_SUBKEY
                && strict::<K>(&record.subkey)
                && strict::<V>(&record.value)
        });
        self.fields.push((name.to_owned(), check));
        self
    }

    /// The validator.
    pub fn build(self) -> SchemaValidator {
        let mut by_key: HashMap<DhtId, Vec<Field>> = HashMap::new();
        for (name, check) in self.fields {
            let key = match &self.prefix {
                Some(prefix) => format!("{prefix}_{name}"),
                None => name.clone(),
            };
            by_key
                .entry(DhtId::generate(key.as_str()))
                .or_default()
                .push(Field { name, check });
        }
        SchemaValidator {
            fields: RwLock::new(Fields {
                by_key,
                allow_extra_keys: self.allow_extra_keys,
            }),
        }
    }
}

/// Whether `bytes` is one msgpack value of type `T`, without coercion.
fn strict<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> bool {
    // Records are bounded by the message size already.
    let Ok(decoded) = crate::decode_value::<T>(bytes, usize::MAX) else {
        return false;
    };
    let Ok(reencoded) = crate::encode_value(&decoded) else {
        return false;
    };
    match (canonical(bytes), canonical(&reencoded)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// One msgpack value with tuples (ext 0x40) unwrapped into arrays and map entries sorted, so
/// that two encodings of one value compare equal; `None` if `bytes` is not exactly one value.
fn canonical(bytes: &[u8]) -> Option<rmpv::Value> {
    fn normalize(value: rmpv::Value, depth: usize) -> Option<rmpv::Value> {
        if depth > 64 {
            return None;
        }
        Some(match value {
            rmpv::Value::Ext(code, data) if code == crate::id::TUPLE_EXT => normalize(
                rmpv::decode::read_value(&mut data.as_slice()).ok()?,
                depth + 1,
            )?,
            rmpv::Value::Array(items) => rmpv::Value::Array(
                items
                    .into_iter()
                    .map(|v| normalize(v, depth + 1))
                    .collect::<Option<_>>()?,
            ),
            rmpv::Value::Map(entries) => {
                let mut entries = entries
                    .into_iter()
                    .map(|(k, v)| Some((normalize(k, depth + 1)?, normalize(v, depth + 1)?)))
                    .collect::<Option<Vec<_>>>()?;
                entries.sort_by_cached_key(|(k, _)| {
                    let mut out = Vec::new();
                    let _ = rmpv::encode::write_value(&mut out, k);
                    out
                });
                rmpv::Value::Map(entries)
            }
            other => other,
        })
    }
    let mut input = bytes;
    let value = rmpv::decode::read_value(&mut input).ok()?;
    if !input.is_empty() {
        return None;
    }
    normalize(value, 0)
}

impl RecordValidator for SchemaValidator {
    fn validate(&self, record: &DhtRecord) -> bool {
        let Some(key) = DhtId::from_slice(&record.key) else {
            return false;
        };
        let fields = self.fields.read().unwrap_or_else(|e| e.into_inner());
        match fields.by_key.get(&key) {
            None => fields.allow_extra_keys,
            Some(declared) => declared.iter().any(|field| (field.check)(record)),
        }
    }

    fn merge_with(&self, other: &dyn RecordValidator) -> bool {
        let Some(other) = other.as_any().downcast_ref::<SchemaValidator>() else {
            return false;
        };
        if std::ptr::eq(self, other) {
            return true;
        }
        let theirs = other.fields.read().unwrap_or_else(|e| e.into_inner());
        let mut ours = self.fields.write().unwrap_or_else(|e| e.into_inner());
        for (key, fields) in &theirs.by_key {
            ours.by_key
                .entry(*key)
                .or_default()
                .extend(fields.iter().cloned());
        }
        ours.allow_extra_keys |= theirs.allow_extra_keys;
        true
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Bytes that carry an owner marker (hivemind's `BytesWithPublicKey`): as a subkey type, it makes
/// a schema accept only records protected by [`SignatureValidator`](crate::SignatureValidator).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct BytesWithOwner(pub ByteBuf);

impl<'de> Deserialize<'de> for BytesWithOwner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = ByteBuf::deserialize(deserializer)?;
        if crate::crypto::has_owner_marker(&bytes) {
            Ok(BytesWithOwner(bytes))
        } else {
            Err(serde::de::Error::custom("no [owner:...] marker"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_value;

    fn record(key: &str, subkey: Option<&[u8]>, value: &[u8]) -> DhtRecord {
        DhtRecord {
            key: DhtId::generate(key).to_bytes().to_vec(),
            subkey: subkey.map_or(REGULAR_SUBKEY.to_vec(), <[u8]>::to_vec),
            value: value.to_vec(),
            expiration_time: 0.0,
        }
    }

    fn enc<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        encode_value(value).unwrap()
    }

    #[test]
    fn strictness() {
        assert!(strict::<u64>(&enc(&777u64)));
        assert!(strict::<i64>(&enc(&-5i64)));
        assert!(!strict::<u64>(&enc(&-5i64)));
        assert!(!strict::<u64>(&enc(&779.0f64)));
        assert!(!strict::<u64>(&enc(&779.5f64)));
        assert!(!strict::<u64>(&enc("777")));
        assert!(!strict::<ByteBuf>(&enc("text")), "str is not bytes");
        assert!(!strict::<String>(&enc(&ByteBuf::from(b"x".to_vec()))));
        assert!(strict::<HashMap<String, u32>>(&enc(&HashMap::from([
            ("a".to_owned(), 1),
            ("b".to_owned(), 2)
        ]))));
        // Python's tuple (1, 2) as hivemind writes it.
        assert!(strict::<(u8, u8)>(&[0xc7, 0x03, 0x40, 0x92, 0x01, 0x02]));
        assert!(!strict::<u64>(&[0xcd, 0x03]), "truncated");
        assert!(!strict::<u64>(&[0x01, 0x02]), "trailing bytes");
    }

    #[test]
    fn fields_prefix_and_extra_keys() {
        let schema = SchemaValidator::builder()
            .prefix("prefix")
            .allow_extra_keys(false)
            .regular::<i64>("field")
            .build();
        assert!(schema.validate(&record("prefix_field", None, &enc(&777))));
        assert!(!schema.validate(&record("prefix_field", None, &enc("string_value"))));
        assert!(!schema.validate(&record("field", None, &enc(&777))));
    }

    #[test]
    fn dictionaries_need_subkeys_of_the_declared_type() {
        let schema = SchemaValidator::builder()
            .dictionary::<ByteBuf, u64>("n_batches")
            .build();
        let uid = enc(&ByteBuf::from(b"uid1".to_vec()));
        assert!(schema.validate(&record("n_batches", Some(&uid), &enc(&777u64))));
        assert!(!schema.validate(&record("n_batches", None, &enc(&777u64))));
        assert!(!schema.validate(&record("n_batches", Some(&enc(&666)), &enc(&777u64))));
        assert!(
            schema.validate(&record("other", None, &enc(&1))),
            "extra keys allowed"
        );
    }

    #[test]
    fn schemas_merge() {
        let a = SchemaValidator::builder()
            .allow_extra_keys(false)
            .regular::<i64>("some_field")
            .regular::<String>("another_field")
            .build();
        let b = SchemaValidator::builder()
            .allow_extra_keys(false)
            .regular::<i64>("another_field")
            .build();
        assert!(a.merge_with(&b));
        assert_eq!(a.num_keys(), 2);
        assert!(a.validate(&record("another_field", None, &enc(&42))));
        assert!(a.validate(&record("another_field", None, &enc("text"))));
        assert!(!a.validate(&record("some_field", None, &enc("text"))));
        assert!(!a.validate(&record("unknown", None, &enc(&1))));
        struct Other;
        impl RecordValidator for Other {
            fn validate(&self, _: &DhtRecord) -> bool {
                true
            }
            fn as_any(&self) -> &dyn Any {
                self
            }
        }
        assert!(!a.merge_with(&Other));
    }
}
