//! The message codec: the only module that names `bincode`.
//!
//! bincode is frozen and unmaintained (RUSTSEC-2025-0141); keeping every call here means the format
//! can be swapped in one place.

use bytes::{BufMut, BytesMut};
use serde::{Serialize, de::DeserializeOwned};

use crate::RpcError;

/// Upper bound on what one decode may allocate, on top of the frame limit that bounds the input.
const DECODE_ALLOC_LIMIT: usize = 256 << 20;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Appends the encoding of `value` to `dst` and returns how many bytes were written.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    dst: &mut BytesMut,
) -> Result<usize, RpcError> {
    let before = dst.len();
    let mut writer = dst.writer();
    bincode::serde::encode_into_std_write(value, &mut writer, config())
        .map_err(|e| RpcError::Malformed(format!("cannot encode message: {e}")))?;
    Ok(writer.into_inner().len() - before)
}

/// Encodes `value` into a new buffer.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, RpcError> {
    bincode::serde::encode_to_vec(value, config())
        .map_err(|e| RpcError::Malformed(format!("cannot encode message: {e}")))
}

/// Decodes one `T` that must fill `bytes` exactly; `bytes` is at most `limit` long.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, RpcError> {
    if bytes.len() > limit {
        return Err(RpcError::MessageTooLarge {
            size: bytes.len(),
            limit,
        });
    }
    let (value, read) =
        bincode::serde::decode_from_slice(bytes, config().with_limit::<DECODE_ALLOC_LIMIT>())
            .map_err(|e| RpcError::Malformed(e.to_string()))?;
    if read != bytes.len() {
        return Err(RpcError::Malformed(format!(
            "{} trailing bytes after message",
            bytes.len() - read
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes() {
        let bytes = encode(&(7u32, "seven".to_string())).unwrap();
        let back: (u32, String) = decode(&bytes, 1024).unwrap();
        assert_eq!(back, (7, "seven".into()));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode::<(u32, String)>(&longer, 1024),
            Err(RpcError::Malformed(_))
        ));
        assert!(matches!(
            decode::<(u32, String)>(&bytes, 2),
            Err(RpcError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let garbage = [0xffu8; 64];
        assert!(decode::<Vec<String>>(&garbage, 1024).is_err());
        assert!(decode::<String>(&[0xfc, 0xff, 0xff, 0xff, 0x7f], 1024).is_err());
    }
}
