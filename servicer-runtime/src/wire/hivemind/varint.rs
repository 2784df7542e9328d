//! Unsigned LEB128 varints, as protobuf, gogo's delimited writer and multistream-select use them.

use super::HivemindWireError;

/// The longest varint of a `u64`.
pub(crate) const MAX_VARINT_LEN: usize = 10;

/// Appends the varint of `value` to `dst`.
pub(crate) fn encode(mut value: u64, dst: &mut Vec<u8>) {
    while value >= 0x80 {
        dst.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    dst.push(value as u8);
}

/// Decodes a varint at the start of `src`: `Ok(Some((value, bytes used)))`, `Ok(None)` when `src`
/// ends inside the varint, an error past 10 bytes or on overflow. Non-minimal encodings are
/// accepted, like Go's `binary.ReadUvarint`.
pub(crate) fn decode(src: &[u8]) -> Result<Option<(u64, usize)>, HivemindWireError> {
    let mut value: u64 = 0;
    for (i, &byte) in src.iter().enumerate() {
        if i == MAX_VARINT_LEN - 1 && byte > 1 {
            return Err(HivemindWireError::InvalidVarint);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
        if i + 1 == MAX_VARINT_LEN {
            return Err(HivemindWireError::InvalidVarint);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode(v, &mut out);
        out
    }

    #[test]
    fn known_encodings() {
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(0x13), [0x13]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(4 * 1024 * 1024), [0x80, 0x80, 0x80, 0x02]);
        assert_eq!(enc(u64::MAX).len(), MAX_VARINT_LEN);
    }

    #[test]
    fn round_trips_and_prefixes() {
        for v in [0, 1, 127, 128, 300, 16_383, 16_384, 1 << 35, u64::MAX] {
            let bytes = enc(v);
            assert_eq!(decode(&bytes).ok().flatten(), Some((v, bytes.len())));
            for cut in 0..bytes.len() {
                assert!(
                    matches!(decode(&bytes[..cut]), Ok(None)),
                    "{v} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn rejects_overlong_and_overflow() {
        assert!(decode(&[0x80; 11]).is_err());
        assert!(decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).is_err());
        assert_eq!(decode(&[0x80, 0x00]).ok().flatten(), Some((0, 2)));
    }
}
