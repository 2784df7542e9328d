//! multistream-select 1.0 for any protocol name, including hivemind's names without a leading
//! `/` (`DHTProtocol.rpc_ping`, `ns::Class.rpc_x`).
//!
//! # The protocol
//!
//! Every libp2p stream starts with a negotiation of what it will carry. Each message is
//! `uvarint(len) ++ line ++ "\n"`; the dialer sends the header `/multistream/1.0.0` and its first
//! proposal at once, the listener answers with the header and then either echoes the proposal
//! (accepted; the stream now carries that protocol) or answers `na` (the dialer may propose
//! another name). Nothing in the protocol needs a `/`: go-multistream (what hivemind's daemon
//! speaks) accepts any token (`multistream.go:194-238`, `lpReadBuf` `:280-310` of
//! multiformats/go-multistream), and on the wire a hivemind call starts with
//! `13 "/multistream/1.0.0\n" 15 "DHTProtocol.rpc_ping\n"` (reference §1.0).
//!
//! This module implements both sides over any `futures` stream: [`dialer_select`] (propose,
//! wait for the answer), [`dialer_propose_lazy`] + [`dialer_confirm_lazy`] (propose, send data at
//! once, check the answer later, as go-libp2p does for protocols identify announced), and
//! [`listener_select`] (answer proposals with a predicate). It reads exactly the negotiation's
//! bytes and never more, so whatever follows stays in the stream for the protocol. Lines are
//! limited to [`MAX_MESSAGE_LEN`] bytes, go-multistream's limit (`lpReadBuf`: `length > 1024` is
//! `ErrTooLarge`). Like go-multistream ≥ 0.4, the listener answers `ls` with `na`.
//! [`encode_message`] and [`decode_message`] are the sans-I/O message codec underneath.
//!
//! # Why rust-libp2p cannot do this, and how this module gets a stream to run on
//!
//! rust-libp2p 0.57.1 (libp2p-swarm 0.48.0, libp2p-core 0.44.0, multistream-select 0.14.0;
//! paths below are inside those crates):
//!
//! 1. **Every substream a `ConnectionHandler` sees has already been through rust's
//!    multistream-select**, with no way to opt out: the connection takes each new substream from
//!    the muxer (`libp2p-swarm/src/connection.rs:415` `poll_outbound_unpin`, `:437`
//!    `poll_inbound_unpin`) and wraps it in `StreamUpgrade::new_outbound` /
//!    `new_inbound` (`connection.rs:552-631`), which call
//!    `multistream_select::dialer_select_proto` (`:581`) and `listener_select_proto` (`:618`)
//!    directly, with the names from the handler's `UpgradeInfo`. The handler only ever gets the
//!    `Negotiated` stream or a `StreamUpgradeError` (`handler.rs:694-703`: `Timeout`,
//!    `Apply`, `NegotiationFailed`, `Io`: none hands back the raw stream). `ReadyUpgrade` and
//!    `DeniedUpgrade` (libp2p-core `src/upgrade/{ready,denied}.rs`) go through the same
//!    negotiation (a `DeniedUpgrade` just fails it), and the only knob,
//!    `swarm::Config::with_substream_upgrade_protocol_override` (`libp2p-swarm/src/lib.rs:1471`,
//!    used at `connection.rs:557-573`), chooses between `V1` and `V1Lazy`.
//! 2. **That negotiation refuses names without `/`**, although `UpgradeInfo::Info` is any
//!    `AsRef<str>` (`libp2p-core/src/upgrade.rs:83`): `Protocol::try_from` requires a leading `/`
//!    (`multistream-select/src/protocol.rs:83-86, 105-108`); the dialer fails before sending
//!    anything (`dialer_select.rs:134`, `ProtocolError::InvalidProtocol`); the listener drops such
//!    names from its own list (`listener_select.rs:52-64`); and a received line is only a protocol
//!    if it starts with `/` (`protocol.rs:191-199`), else it is parsed as an `ls` answer and the
//!    stream is reset. `StreamProtocol` also insists on the `/` (`libp2p-swarm/src/stream_protocol.rs:23-27,
//!    39-41`), which is why `libp2p-stream` cannot name hivemind's handlers.
//! 3. Patching `multistream-select` works (the probe of reference §4 did), but `[patch]` only
//!    applies in the top-level workspace: a library cannot impose it on its users.
//!
//! So the one place where our own code sees a substream *before* rust's negotiation is the
//! **stream muxer**: a transport's output is `(PeerId, impl StreamMuxer)`, and
//! `Transport::map` (`libp2p-core/src/transport.rs:190`) can wrap that muxer; the swarm builder's
//! `with_other_transport` (`libp2p/src/builder/phase/other_transport.rs:22-34`) takes any such
//! transport (TCP, QUIC and memory alike: the runtime would build its TCP transport with it instead
//! of `with_tcp`, `servicer-runtime/src/swarm.rs:59-77`). The planned route for the `hivemind`
//! mode is a muxer wrapper whose substreams **translate names** during the negotiation and are
//! transparent afterwards:
//!
//! - outbound: the runtime's handler asks for `PREFIX ++ name` (a valid `StreamProtocol`, e.g.
//!   `/servicer/hivemind/DHTProtocol.rpc_ping`); the wrapper rewrites that proposal to `name` on
//!   the wire and the remote's echo `name` back to `PREFIX ++ name` (`na` passes unchanged). Only
//!   the header and the first proposal need rewriting: the runtime proposes one name per stream, and
//!   rust's dialer gives up after an `na` for its only name (`dialer_select.rs:196`).
//! - inbound: the wrapper rewrites each proposal without a `/` to `PREFIX ++ name` for rust's
//!   listener, which accepts it if the handler's `listen_protocol` lists it (so unknown names get
//!   rust's own `na`), and rewrites the listener's echo back to `name`. It parses the next
//!   proposal only after the listener answered `na` (after an echo everything is data: a lazy go
//!   dialer sends its request right behind the proposal), and rust's listener reads a varint a byte
//!   at a time and then exactly one message (`length_delimited.rs:154-210`), so no data is ever
//!   taken for a proposal.
//! - slash names pass through untouched in both directions; only a rewritten proposal's echo is
//!   rewritten back, so a remote proposing `PREFIX...` itself cannot confuse the translation.
//!
//! That keeps hivemind streams inside the ordinary `ConnectionHandler` machinery (keep-alive,
//! negotiation timeouts, inbound stream limits, `V1Lazy` pipelining of the runtime's requests),
//! with no side channels. The translation needs only the sans-I/O codec of this module
//! ([`encode_message`], [`decode_message`], [`Message`]). The async functions here are the same
//! negotiation run end to end on a raw stream: the reference implementation that the translated
//! byte streams are tested against (they must produce the transcripts of the tests below), and the
//! tool for a raw substream that some other route provides (the alternative, a wrapper that
//! *terminates* rust's negotiation for a marker protocol and lets the handler run
//! [`dialer_select`] on the raw substream, needs a registry of names in the muxer for inbound `na`
//! and is more code). Advertising the real names in identify (so that go dialers negotiate
//! lazily, saving a round trip per call) stays impossible without patching: the swarm drops names
//! without `/` from `ProtocolsChange` (`libp2p-swarm/src/handler.rs:362, 441, 457`).

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{HivemindWireError, varint};

/// The multistream-select 1.0 header line (without its `\n`).
pub const PROTOCOL_ID: &str = "/multistream/1.0.0";

/// The line that refuses a proposal.
pub const NOT_AVAILABLE: &str = "na";

/// The line that asks for the listener's protocols (answered with `na` here).
pub const LIST_PROTOCOLS: &str = "ls";

/// The longest message (line plus `\n`) read or written: go-multistream's limit.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// How many proposals a listener answers with `na` before it gives up on the stream.
pub const MAX_PROPOSALS: usize = 64;

/// One negotiation message, as [`decode_message`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `/multistream/1.0.0`.
    Header,
    /// `na`.
    NotAvailable,
    /// `ls`.
    ListProtocols,
    /// Any other single line: a proposal (from a dialer) or an echo (from a listener).
    Protocol(String),
}

impl Message {
    /// The line this message carries (without `\n`).
    pub fn line(&self) -> &str {
        match self {
            Message::Header => PROTOCOL_ID,
            Message::NotAvailable => NOT_AVAILABLE,
            Message::ListProtocols => LIST_PROTOCOLS,
            Message::Protocol(name) => name,
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
pub fn decode_message(src: &[u8]) -> Result<Option<(Message, usize)>, HivemindWireError> {
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

fn parse_line(body: &[u8]) -> Result<Message, HivemindWireError> {
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
        PROTOCOL_ID => Message::Header,
        NOT_AVAILABLE => Message::NotAvailable,
        LIST_PROTOCOLS => Message::ListProtocols,
        name => Message::Protocol(name.to_owned()),
    })
}

/// Reads exactly one message: the varint a byte at a time, then the message.
async fn read_message<R: AsyncRead + Unpin>(io: &mut R) -> Result<Message, HivemindWireError> {
    let mut prefix = Vec::with_capacity(2);
    let len = loop {
        let mut byte = [0u8; 1];
        if io.read(&mut byte).await? == 0 {
            return Err(if prefix.is_empty() {
                HivemindWireError::Eof
            } else {
                HivemindWireError::Truncated {
                    buffered: prefix.len(),
                }
            });
        }
        prefix.push(byte[0]);
        if let Some((len, _)) = varint::decode(&prefix)? {
            break len;
        }
    };
    if len > MAX_MESSAGE_LEN as u64 {
        return Err(HivemindWireError::TooLarge {
            size: len,
            limit: MAX_MESSAGE_LEN,
        });
    }
    let mut body = vec![0u8; len as usize];
    let mut filled = 0;
    while filled < body.len() {
        let n = io.read(&mut body[filled..]).await?;
        if n == 0 {
            return Err(HivemindWireError::Truncated {
                buffered: prefix.len() + filled,
            });
        }
        filled += n;
    }
    parse_line(&body)
}

async fn write_lines<W: AsyncWrite + Unpin>(
    io: &mut W,
    lines: &[&str],
) -> Result<(), HivemindWireError> {
    let mut out = Vec::new();
    for line in lines {
        encode_message(line, &mut out)?;
    }
    io.write_all(&out).await?;
    io.flush().await?;
    Ok(())
}

/// Reads the listener's header, then its answer to `proposal`: `Ok(true)` for the echo,
/// `Ok(false)` for `na`.
async fn await_answer<R: AsyncRead + Unpin>(
    io: &mut R,
    proposal: &str,
    header_seen: &mut bool,
) -> Result<bool, HivemindWireError> {
    loop {
        match read_message(io).await? {
            Message::Header if !*header_seen => *header_seen = true,
            Message::Protocol(name) if *header_seen && name == proposal => return Ok(true),
            Message::NotAvailable if *header_seen => return Ok(false),
            other => {
                return Err(HivemindWireError::Negotiation(format!(
                    "unexpected answer {:?} to proposal {proposal:?}",
                    other.line()
                )));
            }
        }
    }
}

/// Negotiates as the dialer: sends the header with the first proposal, waits for the answer,
/// proposes the next name after each `na`, and returns the accepted one.
/// [`HivemindWireError::ProtocolNotSupported`] when the listener refused them all.
pub async fn dialer_select<S, I, P>(io: &mut S, protocols: I) -> Result<P, HivemindWireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    I: IntoIterator<Item = P>,
    P: AsRef<str>,
{
    let mut header_seen = false;
    let mut refused = Vec::new();
    for (i, protocol) in protocols.into_iter().enumerate() {
        let name = protocol.as_ref();
        validate_name(name)?;
        if i == 0 {
            write_lines(io, &[PROTOCOL_ID, name]).await?;
        } else {
            write_lines(io, &[name]).await?;
        }
        if await_answer(io, name, &mut header_seen).await? {
            return Ok(protocol);
        }
        refused.push(name.to_owned());
    }
    Err(HivemindWireError::ProtocolNotSupported(refused.join(", ")))
}

/// The first half of a lazy (pipelined) negotiation: sends the header and the one proposal and
/// returns at once, so the caller can write its request right behind them. The caller must then
/// call [`dialer_confirm_lazy`] before it reads the protocol's first byte.
pub async fn dialer_propose_lazy<W: AsyncWrite + Unpin>(
    io: &mut W,
    protocol: &str,
) -> Result<(), HivemindWireError> {
    validate_name(protocol)?;
    write_lines(io, &[PROTOCOL_ID, protocol]).await
}

/// The second half of a lazy negotiation: reads the listener's header and its answer to
/// `protocol`. An `na` is [`HivemindWireError::ProtocolNotSupported`]; the listener then reads
/// whatever was sent behind the proposal as further proposals, so the stream is unusable: close it.
pub async fn dialer_confirm_lazy<R: AsyncRead + Unpin>(
    io: &mut R,
    protocol: &str,
) -> Result<(), HivemindWireError> {
    let mut header_seen = false;
    if await_answer(io, protocol, &mut header_seen).await? {
        Ok(())
    } else {
        Err(HivemindWireError::ProtocolNotSupported(protocol.to_owned()))
    }
}

/// Negotiates as the listener: sends the header, reads the dialer's, then answers each proposal:
/// `na` unless `is_supported(name)`, in which case it echoes the name and returns it. `ls` is
/// answered with `na`. Gives up after [`MAX_PROPOSALS`] refusals.
pub async fn listener_select<S, F>(io: &mut S, mut is_supported: F) -> Result<String, HivemindWireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(&str) -> bool,
{
    // go-multistream writes its header before reading the dialer's (`multistream.go:206`).
    write_lines(io, &[PROTOCOL_ID]).await?;
    match read_message(io).await? {
        Message::Header => {}
        other => {
            return Err(HivemindWireError::Negotiation(format!(
                "expected the header {PROTOCOL_ID:?}, got {:?}",
                other.line()
            )));
        }
    }
    for _ in 0..MAX_PROPOSALS {
        match read_message(io).await? {
            Message::Protocol(name) if is_supported(&name) => {
                write_lines(io, &[&name]).await?;
                return Ok(name);
            }
            Message::Protocol(_) | Message::ListProtocols => {
                write_lines(io, &[NOT_AVAILABLE]).await?;
            }
            Message::Header | Message::NotAvailable => {
                return Err(HivemindWireError::Negotiation(
                    "expected a proposal".into(),
                ));
            }
        }
    }
    Err(HivemindWireError::Negotiation(format!(
        "more than {MAX_PROPOSALS} refused proposals"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::{ReadHalf, WriteHalf};
    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

    type Pipe = Compat<tokio::io::DuplexStream>;

    fn pipe() -> (Pipe, Pipe) {
        let (a, b) = tokio::io::duplex(4096);
        (a.compat(), b.compat())
    }

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

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        digits
            .chunks(2)
            .map(|pair| {
                let text = std::str::from_utf8(pair).unwrap_or("00");
                u8::from_str_radix(text, 16).unwrap_or(0)
            })
            .collect()
    }

    async fn read_n<R: AsyncRead + Unpin>(io: &mut R, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        let ok = io.read_exact(&mut buf).await.is_ok();
        assert!(ok, "short read of {n} bytes");
        buf
    }

    #[test]
    fn messages_match_the_reference_bytes() {
        // Reference §1.0: `13 2f6d…300a 15 44485450…6e670a`.
        assert_eq!(msg(PROTOCOL_ID), hex(HEADER_HEX));
        assert_eq!(msg("DHTProtocol.rpc_ping"), hex(PING_HEX));
        assert_eq!(msg(NOT_AVAILABLE), hex(NA_HEX));
        let both = cat(&[&hex(HEADER_HEX), &hex(PING_HEX)]);
        let first = decode_message(&both).ok().flatten();
        assert_eq!(first, Some((Message::Header, 20)));
        let second = decode_message(&both[20..]).ok().flatten();
        assert_eq!(
            second,
            Some((Message::Protocol("DHTProtocol.rpc_ping".into()), 22))
        );
        for cut in 0..20 {
            assert!(matches!(decode_message(&both[..cut]), Ok(None)));
        }
    }

    #[test]
    fn names_are_checked() {
        for good in ["DHTProtocol.rpc_ping", "ns::Class.rpc_x", "/ipfs/ping/1.0.0", "x"] {
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

    #[tokio::test]
    async fn dialer_and_listener_agree_and_leave_the_data() {
        let (mut a, mut b) = pipe();
        let dialer = async {
            let chosen = dialer_select(&mut a, ["DHTProtocol.rpc_ping"]).await?;
            a.write_all(b"request").await?;
            a.flush().await?;
            Ok::<_, HivemindWireError>((chosen, read_n(&mut a, 5).await))
        };
        let listener = async {
            let name = listener_select(&mut b, |n| n.starts_with("DHTProtocol.")).await?;
            let data = read_n(&mut b, 7).await;
            b.write_all(b"reply").await?;
            b.flush().await?;
            Ok::<_, HivemindWireError>((name, data))
        };
        let (d, l) = tokio::join!(dialer, listener);
        let (chosen, reply) = d.unwrap_or_else(|e| panic!("dialer: {e}"));
        let (name, data) = l.unwrap_or_else(|e| panic!("listener: {e}"));
        assert_eq!(chosen, "DHTProtocol.rpc_ping");
        assert_eq!(name, "DHTProtocol.rpc_ping");
        assert_eq!(data, b"request");
        assert_eq!(reply, b"reply");
    }

    #[tokio::test]
    async fn refused_names_fall_back_and_then_fail() {
        let (mut a, mut b) = pipe();
        let dialer = dialer_select(&mut a, ["Missing.rpc_x", "ns::Known.rpc_y"]);
        let listener = listener_select(&mut b, |n| n == "ns::Known.rpc_y");
        let (d, l) = tokio::join!(dialer, listener);
        assert_eq!(d.ok(), Some("ns::Known.rpc_y"));
        assert_eq!(l.ok().as_deref(), Some("ns::Known.rpc_y"));

        let (mut a, mut b) = pipe();
        let dialer = async {
            let r = dialer_select(&mut a, ["A.rpc_a", "B.rpc_b"]).await;
            // The dialer gives up by closing: the listener sees EOF.
            let _ = a.close().await;
            r
        };
        let listener = listener_select(&mut b, |_| false);
        let (d, l) = tokio::join!(dialer, listener);
        assert!(
            matches!(&d, Err(HivemindWireError::ProtocolNotSupported(names)) if names == "A.rpc_a, B.rpc_b"),
            "{d:?}"
        );
        assert!(matches!(l, Err(HivemindWireError::Eof)), "{l:?}");
    }

    #[tokio::test]
    async fn lazy_dialer_pipelines_its_request() {
        let (mut a, mut b) = pipe();
        let dialer = async {
            dialer_propose_lazy(&mut a, "DHTProtocol.rpc_find").await?;
            a.write_all(b"req").await?;
            a.flush().await?;
            dialer_confirm_lazy(&mut a, "DHTProtocol.rpc_find").await?;
            Ok::<_, HivemindWireError>(read_n(&mut a, 3).await)
        };
        let listener = async {
            let name = listener_select(&mut b, |_| true).await?;
            let data = read_n(&mut b, 3).await;
            b.write_all(b"rep").await?;
            b.flush().await?;
            Ok::<_, HivemindWireError>((name, data))
        };
        let (d, l) = tokio::join!(dialer, listener);
        assert_eq!(d.ok(), Some(b"rep".to_vec()));
        let (name, data) = l.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((name.as_str(), data.as_slice()), ("DHTProtocol.rpc_find", &b"req"[..]));
    }

    /// The dialer's bytes, byte for byte, against a scripted go-style listener (header first,
    /// then `na`, then the echo).
    #[tokio::test]
    async fn dialer_transcript() {
        let (mut a, b) = pipe();
        let (mut b_read, mut b_write): (ReadHalf<Pipe>, WriteHalf<Pipe>) = b.split();
        let script = async {
            let first = read_n(&mut b_read, 20 + 15).await;
            assert_eq!(first, cat(&[&hex(HEADER_HEX), &msg("Old.rpc_a")]));
            b_write.write_all(&cat(&[&hex(HEADER_HEX), &hex(NA_HEX)])).await?;
            b_write.flush().await?;
            let second = read_n(&mut b_read, 22).await;
            assert_eq!(second, hex(PING_HEX));
            b_write.write_all(&hex(PING_HEX)).await?;
            b_write.flush().await?;
            Ok::<_, std::io::Error>(())
        };
        let dialer = dialer_select(&mut a, ["Old.rpc_a", "DHTProtocol.rpc_ping"]);
        let (s, d) = tokio::join!(script, dialer);
        assert!(s.is_ok());
        assert_eq!(d.ok(), Some("DHTProtocol.rpc_ping"));
    }

    /// The listener's bytes, byte for byte, against a scripted go-style dialer.
    #[tokio::test]
    async fn listener_transcript() {
        let (mut a, b) = pipe();
        let (mut b_read, mut b_write) = b.split();
        let script = async {
            // A go dialer (full negotiation): header + proposal in one write.
            b_write
                .write_all(&cat(&[&hex(HEADER_HEX), &msg("Nope.rpc_x")]))
                .await?;
            b_write.flush().await?;
            let answer = read_n(&mut b_read, 20 + 4).await;
            assert_eq!(answer, cat(&[&hex(HEADER_HEX), &hex(NA_HEX)]));
            b_write.write_all(&msg("ls")).await?;
            b_write.flush().await?;
            assert_eq!(read_n(&mut b_read, 4).await, hex(NA_HEX));
            b_write.write_all(&cat(&[&hex(PING_HEX), b"DATA"])).await?;
            b_write.flush().await?;
            assert_eq!(read_n(&mut b_read, 22).await, hex(PING_HEX));
            Ok::<_, std::io::Error>(())
        };
        let listener = async {
            let name = listener_select(&mut a, |n| n == "DHTProtocol.rpc_ping").await?;
            Ok::<_, HivemindWireError>((name, read_n(&mut a, 4).await))
        };
        let (s, l) = tokio::join!(script, listener);
        assert!(s.is_ok());
        let (name, data) = l.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name, "DHTProtocol.rpc_ping");
        assert_eq!(data, b"DATA");
    }

    #[tokio::test]
    async fn listener_refuses_a_bad_header_and_garbage() {
        let (mut a, mut b) = pipe();
        let script = async {
            b.write_all(&msg("/multistream/2.0.0")).await?;
            b.flush().await
        };
        let (_, l) = tokio::join!(script, listener_select(&mut a, |_| true));
        assert!(matches!(l, Err(HivemindWireError::Negotiation(_))), "{l:?}");

        let (mut a, mut b) = pipe();
        let script = async {
            b.write_all(&hex(HEADER_HEX)).await?;
            b.write_all(&[0xff, 0xff, 0xff]).await?;
            b.flush().await
        };
        let (_, l) = tokio::join!(script, listener_select(&mut a, |_| true));
        assert!(matches!(l, Err(HivemindWireError::TooLarge { .. })), "{l:?}");
    }

    /// rust-libp2p's own multistream-select (0.14, what libp2p 0.57 uses) against ours: slash
    /// names work both ways, so the two speak the same bytes; and the facts this module's docs
    /// rely on: rust's dialer refuses a name without `/` before sending anything, and rust's
    /// listener cannot answer one.
    #[tokio::test]
    async fn interop_with_rust_libp2p_multistream_select() {
        use multistream_select::{Version, dialer_select_proto, listener_select_proto};

        // rust dialer → our listener
        let (a, mut b) = pipe();
        let rust = async {
            let (p, mut io) = dialer_select_proto(a, ["/ipfs/ping/1.0.0"], Version::V1).await?;
            io.write_all(b"x").await?;
            io.flush().await?;
            Ok::<_, std::io::Error>(p)
        };
        let ours = async {
            let name = listener_select(&mut b, |n| n == "/ipfs/ping/1.0.0").await?;
            Ok::<_, HivemindWireError>((name, read_n(&mut b, 1).await))
        };
        let (r, o) = tokio::join!(rust, ours);
        assert_eq!(r.ok(), Some("/ipfs/ping/1.0.0"));
        assert_eq!(o.ok(), Some(("/ipfs/ping/1.0.0".to_owned(), b"x".to_vec())));

        // our dialer → rust listener
        let (mut a, b) = pipe();
        let rust = async {
            let (p, mut io) = listener_select_proto(b, ["/a/1", "/servicer/x"]).await?;
            io.write_all(b"y").await?;
            io.flush().await?;
            Ok::<_, std::io::Error>(p)
        };
        let ours = async {
            let p = dialer_select(&mut a, ["/nope", "/servicer/x"]).await?;
            Ok::<_, HivemindWireError>((p, read_n(&mut a, 1).await))
        };
        let (r, o) = tokio::join!(rust, ours);
        assert_eq!(r.ok(), Some("/servicer/x"));
        assert_eq!(o.ok(), Some(("/servicer/x", b"y".to_vec())));

        // rust dialer with a hivemind name: fails locally.
        let (a, _b) = pipe();
        let r = dialer_select_proto(a, ["DHTProtocol.rpc_ping"], Version::V1).await;
        assert!(r.is_err());

        // our dialer with a hivemind name → rust listener that "supports" it: no agreement.
        let (mut a, b) = pipe();
        let rust = listener_select_proto(b, ["DHTProtocol.rpc_ping"]);
        let ours = dialer_select(&mut a, ["DHTProtocol.rpc_ping"]);
        let (r, o) = tokio::join!(rust, ours);
        assert!(r.is_err());
        assert!(o.is_err());
    }

    /// The negotiation on a real yamux substream of rust-libp2p (libp2p-yamux 0.48), as the muxer
    /// wrapper of the module docs would see it: raw, before any multistream-select.
    #[tokio::test]
    async fn over_a_real_yamux_substream() {
        use futures::future::poll_fn;
        use libp2p::core::muxing::{StreamMuxer, StreamMuxerExt};
        use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
        use std::task::Poll;

        fn drive<M>(mut muxer: M) -> tokio::task::JoinHandle<()>
        where
            M: StreamMuxer + Unpin + Send + 'static,
        {
            tokio::spawn(poll_fn(move |cx| {
                loop {
                    match muxer.poll_unpin(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Ready(Ok(_)) => {}
                    }
                }
            }))
        }

        let (a, b) = pipe();
        let dialer_muxer = libp2p::yamux::Config::default().upgrade_outbound(a, "/yamux/1.0.0");
        let listener_muxer = libp2p::yamux::Config::default().upgrade_inbound(b, "/yamux/1.0.0");
        let (Ok(mut dialer_muxer), Ok(mut listener_muxer)) =
            tokio::join!(dialer_muxer, listener_muxer)
        else {
            panic!("yamux upgrade failed");
        };

        let outbound = poll_fn(|cx| dialer_muxer.poll_outbound_unpin(cx)).await;
        let Ok(mut outbound) = outbound else {
            panic!("no outbound substream");
        };
        let d_driver = drive(dialer_muxer);
        let dialer = tokio::spawn(async move {
            dialer_propose_lazy(&mut outbound, "DHTProtocol.rpc_store").await?;
            outbound.write_all(b"store me").await?;
            outbound.flush().await?;
            dialer_confirm_lazy(&mut outbound, "DHTProtocol.rpc_store").await?;
            let reply = read_n(&mut outbound, 2).await;
            Ok::<_, HivemindWireError>(reply)
        });

        let inbound = poll_fn(|cx| listener_muxer.poll_inbound_unpin(cx)).await;
        let Ok(mut inbound) = inbound else {
            panic!("no inbound substream");
        };
        let l_driver = drive(listener_muxer);
        let name = listener_select(&mut inbound, |n| n == "DHTProtocol.rpc_store").await;
        assert_eq!(name.ok().as_deref(), Some("DHTProtocol.rpc_store"));
        assert_eq!(read_n(&mut inbound, 8).await, b"store me");
        assert!(inbound.write_all(b"ok").await.is_ok());
        assert!(inbound.flush().await.is_ok());

        let reply = tokio::time::timeout(std::time::Duration::from_secs(10), dialer).await;
        assert!(matches!(reply, Ok(Ok(Ok(ref r))) if r == b"ok"), "{reply:?}");
        d_driver.abort();
        l_driver.abort();
    }
}
