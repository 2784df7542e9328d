//! The sans-I/O message codec of multistream-select 1.0, for any protocol name, including
//! hivemind's names without a leading `/` (`DHTProtocol.rpc_ping`, `ns::Class.rpc_x`).
//!
//! Every libp2p stream starts with a negotiation of what it will carry. Each message is
//! `uvarint(len) ++ line ++ "\n"`; the dialer sends the header `/multistream/1.0.0` and its
//! proposal, the listener answers with the header and then either echoes the proposal (accepted;
//! the stream now carries that protocol) or answers `na`. Nothing in the protocol needs a `/`:
//! go-multistream (what hivemind's daemon speaks) accepts any token, and on the wire a hivemind
//! call starts with `13 "/multistream/1.0.0\n" 15 "DHTProtocol.rpc_ping\n"`
//! (docs/hivemind-compat.md#w2). rust-libp2p's multistream-select refuses such names;
//! `servicer-runtime/src/transport/muxer.rs` explains how the runtime gets around that with this
//! codec.

use super::{HivemindWireError, varint};

/// The multistream-select 1.0 header line (without its `\n`).
pub const PROTOCOL_ID: &str = "/multistream/1.0.0";

/// The line that refuses a proposal.
pub const NOT_AVAILABLE: &str = "na";

/// The line that asks for the listener's protocols.
pub const LIST_PROTOCOLS: &str = "ls";

/// The longest message (line plus `\n`) read or written: go-multistream's limit.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// One negotiation message, as [`decode_message`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NegotiationMessage {
    /// `/multistream/1.0.0`.
    Header,
    /// `na`.
    NotAvailable,
    /// `ls`.
    ListProtocols,
    /// Any other single line: a proposal (from a dialer) or an echo (from a listener).
    Protocol(String),
}

impl NegotiationMessage {
    /// The line this message carries (without `\n`).
    pub fn line(&self) -> &str {
        match self {
            NegotiationMessage::Header => PROTOCOL_ID,
            NegotiationMessage::NotAvailable => NOT_AVAILABLE,
            NegotiationMessage::ListProtocols => LIST_PROTOCOLS,
            NegotiationMessage::Protocol(name) => name,
        }
    }
}

/// Checks that `name` can be carried: not empty, no `\n`, short enough.
pub fn validate_name(name: &str) -> Result<(), HivemindWireError> {
    if name.is_empty() || name.contains('\n') || name.len() + 1 > MAX_MESSAGE_LEN {
        return Err(HivemindWireError::InvalidProtocolName(name.to_owned()));
    }
    Ok(())
}

/// Appends `uvarint(len) ++ line ++ "\n"` to `dst`, after [`validate_name`] on `line`.
pub fn encode_message(line: &str, dst: &mut Vec<u8>) -> Result<(), HivemindWireError> {
    validate_name(line)?;
    varint::encode(line.len() as u64 + 1, dst);
    dst.extend_from_slice(line.as_bytes());
    dst.push(b'\n');
    Ok(())
}

/// Decodes one message at the start of `src`: `Ok(None)` while more bytes are needed, else the
/// message and how many bytes it used. A message must be one UTF-8 line ending in `\n`, at most
/// [`MAX_MESSAGE_LEN`] bytes (an `ls` answer, a list of lines, is refused: this side never sends
/// `ls`).
pub fn decode_message(
    src: &[u8],
) -> Result<Option<(NegotiationMessage, usize)>, HivemindWireError> {
    let Some((len, prefix)) = varint::decode(src)? else {
        return Ok(None);
    };
    if len > MAX_MESSAGE_LEN as u64 {
        return Err(HivemindWireError::TooLarge {
            size: len,
            limit: MAX_MESSAGE_LEN,
        });
    }
    let end = prefix + len as usize;
    let Some(body) = src.get(prefix..end) else {
        return Ok(None);
    };
    Ok(Some((parse_line(body)?, end)))
}

fn parse_line(body: &[u8]) -> Result<NegotiationMessage, HivemindWireError> {
    let Some((b'\n', line)) = body.split_last() else {
        return Err(HivemindWireError::Negotiation(
            "message without a trailing newline".into(),
        ));
    };
    if line.is_empty() || line.contains(&b'\n') {
        return Err(HivemindWireError::Negotiation(
            "message is not a single non-empty line".into(),
        ));
    }
    let line = std::str::from_utf8(line)
        .map_err(|_| HivemindWireError::Negotiation("message is not UTF-8".into()))?;
    Ok(match line {
        PROTOCOL_ID => NegotiationMessage::Header,
        NOT_AVAILABLE => NegotiationMessage::NotAvailable,
        LIST_PROTOCOLS => NegotiationMessage::ListProtocols,
        name => NegotiationMessage::Protocol(name.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::hivemind::test_messages::hex;
    fn msg(line: &str) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(encode_message(line, &mut out).is_ok(), "{line:?}");
        out
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    const HEADER_HEX: &str = "13 2f6d756c746973747265616d2f312e302e300a";
    const PING_HEX: &str = "15 44485450726f746f636f6c2e7270635f70696e670a";
    const NA_HEX: &str = "03 6e610a";

    #[test]
    fn messages_match_hivemind_bytes() {
        // The first bytes of every hivemind call (docs/hivemind-compat.md#w2):
        // `13 2f6d…300a 15 44485450…6e670a`.
        assert_eq!(msg(PROTOCOL_ID), hex(HEADER_HEX));
        assert_eq!(msg("DHTProtocol.rpc_ping"), hex(PING_HEX));
        assert_eq!(msg(NOT_AVAILABLE), hex(NA_HEX));
        let both = cat(&[&hex(HEADER_HEX), &hex(PING_HEX)]);
        let first = decode_message(&both).ok().flatten();
        assert_eq!(first, Some((NegotiationMessage::Header, 20)));
        let second = decode_message(&both[20..]).ok().flatten();
        assert_eq!(
            second,
            Some((
                NegotiationMessage::Protocol("DHTProtocol.rpc_ping".into()),
                22
            ))
        );
        for cut in 0..20 {
            assert!(matches!(decode_message(&both[..cut]), Ok(None)));
        }
    }

    #[test]
    fn names_are_checked() {
        for good in [
            "DHTProtocol.rpc_ping",
            "ns::Class.rpc_x",
            "/ipfs/ping/1.0.0",
            "x",
        ] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(MAX_MESSAGE_LEN);
        for bad in ["", "a\nb", "trailing\n", long.as_str()] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name(&"a".repeat(MAX_MESSAGE_LEN - 1)).is_ok());
    }

    #[test]
    fn malformed_messages_are_errors() {
        // no newline, empty line, inner newline, not UTF-8, too long
        for bad in [&b"\x02na"[..], b"\x01\n", b"\x04a\nb\n", b"\x03\xff\xfe\n"] {
            assert!(decode_message(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            decode_message(&[0x81, 0x08]),
            Err(HivemindWireError::TooLarge { size: 1025, .. })
        ));
        let mut seed = 0x1234_5678_9abc_def1u64;
        for round in 0..2000usize {
            let bytes: Vec<u8> = (0..round % 30)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = decode_message(&bytes);
        }
    }
}
