//! Unary calls on hivemind's wire: one libp2p stream per call, one varint-delimited
//! [`PersistentConnectionRequest`] each way.
//!
//! What the Go daemon (`p2pd`, learning-at-home/go-libp2p-daemon v0.5.0.hivemind1) puts on the
//! network for `P2P.call_protobuf_handler` (docs/hivemind-compat.md#w4):
//!
//! ```text
//! caller → callee: uvarint(len) ++ PersistentConnectionRequest{1: callId (16 B), 3: CallUnaryRequest{1: peer, 2: proto, 3: data}}
//! callee → caller: uvarint(len) ++ PersistentConnectionRequest{1: callId, 4: CallUnaryResponse{1: response | 2: error}}
//! then the callee closes the stream.
//! ```
//!
//! - The framing is gogo-protobuf's delimited writer (`ggio.NewDelimitedWriter`,
//!   `persistent_stream.go:214, 340`): the varint is the length of the protobuf alone. Readers cap
//!   that length at 4 MiB (`ggio.NewDelimitedReader(s, persistentConnMsgMaxSize)`,
//!   `persistent_stream.go:221, 286`); longer envelopes end the call without a reply.
//! - The call id must be exactly 16 bytes (`uuid.FromBytes`, `persistent_stream.go:300-304`), or
//!   the callee closes the stream without answering. hivemind sends `uuid4().bytes`.
//! - `callUnary.peer` is the *callee's* own id on the network; the callee's daemon overwrites it
//!   with the connection's remote peer (`persistent_stream.go:297-298`): take the caller's identity
//!   from the connection, never from this field.
//! - A handler failure is `error = repr(exc).encode()` (`control.py:224-225`); Python decodes it
//!   with `errors="ignore"`, [`UnaryReply::from_envelope`] lossily.
//! - **Never half-close before the reply**: the callee's daemon treats EOF on its read side as
//!   cancellation (`notifyWhenClosed`, `persistent_stream.go:248-264, 325-336`;
//!   docs/hivemind-compat.md#w5). Cancel a call by closing or resetting the whole stream. That is
//!   why [`write_envelope`] flushes but never closes.
//!
//! Sans-I/O pieces ([`encode_delimited`], [`decode_delimited`], [`EnvelopeCodec`]) work on
//! buffers; [`read_envelope`] and [`write_envelope`] work on any `futures` stream (a libp2p
//! substream).

use bytes::{Buf, BytesMut};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use prost::Message as _;

use super::proto::{
    CallUnaryRequest, CallUnaryResponse, PersistentConnectionRequest, call_unary_response,
    persistent_connection_request::Body as Envelope,
};
use super::{HivemindWireError, varint};
use crate::DEFAULT_MAX_MESSAGE_SIZE;
use crate::memory::Held;

/// A unary call's 16-byte id (a UUID on hivemind's side), echoed in the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallId(pub [u8; 16]);

impl CallId {
    /// A random version-4 UUID, as hivemind's `uuid4()` makes them.
    pub fn random() -> Self {
        let mut bytes: [u8; 16] = rand::random();
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
        CallId(bytes)
    }

    /// Takes a call id from the wire; it must be exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, HivemindWireError> {
        <[u8; 16]>::try_from(bytes)
            .map(CallId)
            .map_err(|_| HivemindWireError::InvalidCallId(bytes.len()))
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// The request of a unary call, as the callee sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnaryRequest {
    /// The call id, to echo in the reply.
    pub call_id: CallId,
    /// `callUnary.peer`: the callee's own peer id as the caller wrote it (not authenticated; may
    /// be empty or garbage from a non-Go caller).
    pub peer: Vec<u8>,
    /// The handler name (the same string as the stream's protocol), e.g. `DHTProtocol.rpc_ping`.
    pub proto: String,
    /// The serialized request message.
    pub data: Vec<u8>,
}

impl UnaryRequest {
    /// The envelope that carries this request.
    pub fn to_envelope(&self) -> PersistentConnectionRequest {
        PersistentConnectionRequest {
            call_id: self.call_id.0.to_vec(),
            message: Some(Envelope::CallUnary(CallUnaryRequest {
                peer: self.peer.clone(),
                proto: self.proto.clone(),
                data: self.data.clone(),
            })),
        }
    }

    /// Reads a request out of an envelope: it must carry `callUnary` and a 16-byte call id.
    pub fn from_envelope(envelope: PersistentConnectionRequest) -> Result<Self, HivemindWireError> {
        let call_id = CallId::from_slice(&envelope.call_id)?;
        match envelope.message {
            Some(Envelope::CallUnary(call)) => Ok(UnaryRequest {
                call_id,
                peer: call.peer,
                proto: call.proto,
                data: call.data,
            }),
            other => Err(HivemindWireError::UnexpectedEnvelope {
                expected: "callUnary",
                got: envelope_kind(other.as_ref()),
            }),
        }
    }
}

/// What a unary call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnaryOutcome {
    /// `response`: the serialized response message.
    Response(Vec<u8>),
    /// `error`: the remote handler's error (Python sends `repr(exc)`).
    Error(String),
}

/// The reply of a unary call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnaryReply {
    /// The request's call id.
    pub call_id: CallId,
    /// The response or the handler's error.
    pub outcome: UnaryOutcome,
}

impl UnaryReply {
    /// The envelope that carries this reply.
    pub fn to_envelope(&self) -> PersistentConnectionRequest {
        let result = match &self.outcome {
            UnaryOutcome::Response(bytes) => call_unary_response::Result::Response(bytes.clone()),
            UnaryOutcome::Error(message) => {
                call_unary_response::Result::Error(message.as_bytes().to_vec())
            }
        };
        PersistentConnectionRequest {
            call_id: self.call_id.0.to_vec(),
            message: Some(Envelope::UnaryResponse(CallUnaryResponse {
                result: Some(result),
            })),
        }
    }

    /// Reads a reply out of an envelope: it must carry `unaryResponse` with `response` or `error`
    /// set and a 16-byte call id. The error text is decoded lossily (Python:
    /// `error.decode(errors="ignore")`).
    pub fn from_envelope(envelope: PersistentConnectionRequest) -> Result<Self, HivemindWireError> {
        let call_id = CallId::from_slice(&envelope.call_id)?;
        let outcome = match envelope.message {
            Some(Envelope::UnaryResponse(CallUnaryResponse {
                result: Some(result),
            })) => match result {
                call_unary_response::Result::Response(bytes) => UnaryOutcome::Response(bytes),
                call_unary_response::Result::Error(bytes) => {
                    UnaryOutcome::Error(String::from_utf8_lossy(&bytes).into_owned())
                }
            },
            Some(Envelope::UnaryResponse(CallUnaryResponse { result: None })) => {
                return Err(HivemindWireError::UnexpectedEnvelope {
                    expected: "unaryResponse.response or unaryResponse.error",
                    got: "an empty unaryResponse",
                });
            }
            other => {
                return Err(HivemindWireError::UnexpectedEnvelope {
                    expected: "unaryResponse",
                    got: envelope_kind(other.as_ref()),
                });
            }
        };
        Ok(UnaryReply { call_id, outcome })
    }
}

fn envelope_kind(message: Option<&Envelope>) -> &'static str {
    match message {
        None => "no message",
        Some(Envelope::AddUnaryHandler(_)) => "addUnaryHandler",
        Some(Envelope::RemoveUnaryHandler(_)) => "removeUnaryHandler",
        Some(Envelope::CallUnary(_)) => "callUnary",
        Some(Envelope::UnaryResponse(_)) => "unaryResponse",
        Some(Envelope::Cancel(_)) => "cancel",
    }
}

/// `uvarint(len) ++ envelope`, refusing an envelope longer than `limit` bytes (the varint is not
/// counted, as in Python's `ByteSize() > limit` check and gogo's reader).
pub fn encode_delimited(
    envelope: &PersistentConnectionRequest,
    limit: usize,
) -> Result<Vec<u8>, HivemindWireError> {
    let len = envelope.encoded_len();
    if len > limit {
        return Err(HivemindWireError::TooLarge {
            size: len as u64,
            limit,
        });
    }
    let mut out = Vec::with_capacity(len + varint::MAX_VARINT_LEN);
    varint::encode(len as u64, &mut out);
    // Encoding into a `Vec` cannot run out of room; map the impossible error anyway.
    envelope
        .encode(&mut out)
        .map_err(|_| HivemindWireError::TooLarge {
            size: len as u64,
            limit,
        })?;
    Ok(out)
}

/// Decodes one delimited envelope at the start of `src`: `Ok(None)` while more bytes are needed,
/// else the envelope and how many bytes it used. The announced length is checked against `limit`
/// before the payload is awaited.
pub fn decode_delimited(
    src: &[u8],
    limit: usize,
) -> Result<Option<(PersistentConnectionRequest, usize)>, HivemindWireError> {
    let Some((len, prefix)) = varint::decode(src)? else {
        return Ok(None);
    };
    let len = checked_len(len, limit)?;
    let end = prefix.saturating_add(len);
    let Some(payload) = src.get(prefix..end) else {
        return Ok(None);
    };
    let envelope = PersistentConnectionRequest::decode(payload)?;
    Ok(Some((envelope, end)))
}

fn checked_len(len: u64, limit: usize) -> Result<usize, HivemindWireError> {
    match usize::try_from(len) {
        Ok(n) if n <= limit => Ok(n),
        _ => Err(HivemindWireError::TooLarge { size: len, limit }),
    }
}

/// A `tokio_util` codec of delimited envelopes, for use with `FramedRead`/`FramedWrite`.
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeCodec {
    limit: usize,
}

impl EnvelopeCodec {
    /// A codec that refuses envelopes longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        EnvelopeCodec { limit }
    }
}

impl Default for EnvelopeCodec {
    /// A codec with hivemind's limit, [`DEFAULT_MAX_MESSAGE_SIZE`].
    fn default() -> Self {
        EnvelopeCodec::new(DEFAULT_MAX_MESSAGE_SIZE)
    }
}

impl tokio_util::codec::Decoder for EnvelopeCodec {
    type Item = PersistentConnectionRequest;
    type Error = HivemindWireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        // Check the announced length first, and reserve room for the rest of the payload.
        if let Some((len, prefix)) = varint::decode(src)? {
            let len = checked_len(len, self.limit)?;
            src.reserve(
                prefix
                    .saturating_add(len)
                    .saturating_sub(src.len())
                    .min(DEFAULT_MAX_MESSAGE_SIZE),
            );
        }
        match decode_delimited(src, self.limit)? {
            Some((envelope, used)) => {
                src.advance(used);
                Ok(Some(envelope))
            }
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        match self.decode(src)? {
            Some(envelope) => Ok(Some(envelope)),
            None if src.is_empty() => Ok(None),
            None => Err(HivemindWireError::Truncated {
                buffered: src.len(),
            }),
        }
    }
}

impl tokio_util::codec::Encoder<&PersistentConnectionRequest> for EnvelopeCodec {
    type Error = HivemindWireError;

    fn encode(
        &mut self,
        item: &PersistentConnectionRequest,
        dst: &mut BytesMut,
    ) -> Result<(), Self::Error> {
        dst.extend_from_slice(&encode_delimited(item, self.limit)?);
        Ok(())
    }
}

/// Reads exactly one delimited envelope from `io`, and not a byte more (the varint is read a byte
/// at a time). EOF before the first byte is [`HivemindWireError::Eof`] (the callee closed without
/// answering, as hivemind does for unknown handlers and over-size replies); EOF later is
/// [`HivemindWireError::Truncated`].
pub async fn read_envelope<R: AsyncRead + Unpin>(
    io: &mut R,
    limit: usize,
) -> Result<PersistentConnectionRequest, HivemindWireError> {
    read_envelope_charged(io, limit, &mut Held::default()).await
}

/// [`read_envelope`], charging a large envelope to `held` before it is buffered.
pub(crate) async fn read_envelope_charged<R: AsyncRead + Unpin>(
    io: &mut R,
    limit: usize,
    held: &mut Held,
) -> Result<PersistentConnectionRequest, HivemindWireError> {
    let mut prefix = Vec::with_capacity(varint::MAX_VARINT_LEN);
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
            break checked_len(len, limit)?;
        }
    };
    let payload = super::read_payload(io, len, prefix.len(), held).await?;
    Ok(PersistentConnectionRequest::decode(payload.as_slice())?)
}

/// Writes one delimited envelope to `io` and flushes it. It never closes `io`: a half-close
/// before the reply cancels the call on a hivemind callee.
pub async fn write_envelope<W: AsyncWrite + Unpin>(
    io: &mut W,
    envelope: &PersistentConnectionRequest,
    limit: usize,
) -> Result<(), HivemindWireError> {
    let bytes = encode_delimited(envelope, limit)?;
    io.write_all(&bytes).await?;
    io.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::hivemind::test_messages::{NodeInfo, PingRequest, hex};
    use tokio_util::codec::{Decoder, Encoder};

    const ZERO_ID: CallId = CallId([0; 16]);

    /// A reply carrying `response = b"RESP"` with an all-zero call id (docs/hivemind-compat.md#w4).
    const RESP_VECTOR: &str = "1a 0a10 00000000000000000000000000000000 2206 0a04 52455350";
    /// A reply carrying `error = b"ValueError('x')"`, a Python handler's `repr(exc)`
    /// (docs/hivemind-compat.md#w5).
    const ERROR_VECTOR: &str =
        "25 0a10 00000000000000000000000000000000 2211 120f 56616c75654572726f7228277827 29";

    #[tokio::test]
    async fn a_large_envelope_is_charged_before_it_is_buffered() {
        use crate::memory::{LARGE_MESSAGE, MessageMemory};
        // Only the length prefix of a 1 MiB envelope: nothing of it has arrived.
        let mut prefix = Vec::new();
        varint::encode(1 << 20, &mut prefix);
        let memory = MessageMemory::new(4 * LARGE_MESSAGE);
        let mut held = Held::of(memory);
        let read = read_envelope_charged(
            &mut futures::io::Cursor::new(prefix),
            DEFAULT_MAX_MESSAGE_SIZE,
            &mut held,
        )
        .await;
        assert!(matches!(read, Err(HivemindWireError::Busy(_))), "{read:?}");
    }

    #[test]
    fn reply_vector() {
        let bytes = hex(RESP_VECTOR);
        let reply = UnaryReply {
            call_id: ZERO_ID,
            outcome: UnaryOutcome::Response(b"RESP".to_vec()),
        };
        assert_eq!(
            encode_delimited(&reply.to_envelope(), DEFAULT_MAX_MESSAGE_SIZE).ok(),
            Some(bytes.clone())
        );
        let (envelope, used) = decode_delimited(&bytes, DEFAULT_MAX_MESSAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("vector does not decode"));
        assert_eq!(used, bytes.len());
        assert_eq!(UnaryReply::from_envelope(envelope).ok(), Some(reply));
    }

    #[test]
    fn error_vector() {
        let bytes = hex(ERROR_VECTOR);
        let reply = UnaryReply {
            call_id: ZERO_ID,
            outcome: UnaryOutcome::Error("ValueError('x')".into()),
        };
        assert_eq!(
            encode_delimited(&reply.to_envelope(), DEFAULT_MAX_MESSAGE_SIZE).ok(),
            Some(bytes.clone())
        );
        let decoded = decode_delimited(&bytes, DEFAULT_MAX_MESSAGE_SIZE)
            .ok()
            .flatten()
            .map(|(e, _)| UnaryReply::from_envelope(e).ok());
        assert_eq!(decoded, Some(Some(reply)));
    }

    /// The request's layout (docs/hivemind-compat.md#w4: `6c 0a10<callId> 1a58 0a26<38B peer id>
    /// 1214 "DHTProtocol.rpc_ping" 1a18 <PingRequest 24B>`) leaves the peer id and node id open;
    /// this vector fills them by hand (an Ed25519 peer id `00 24 08 01 12 20 ++ 32 × ab`, node id
    /// `20 × 11`) following the protobuf encoding rules, and checks every length of that layout.
    #[test]
    fn request_vector_layout() {
        let peer = hex(&format!("0024 0801 1220 {}", "ab".repeat(32)));
        let ping = PingRequest {
            peer: Some(NodeInfo {
                node_id: vec![0x11; 20],
            }),
            validate: false,
        };
        let ping_bytes = ping.encode_to_vec();
        assert_eq!(ping_bytes, hex(&format!("1216 0a14 {}", "11".repeat(20))));
        let request = UnaryRequest {
            call_id: ZERO_ID,
            peer: peer.clone(),
            proto: "DHTProtocol.rpc_ping".into(),
            data: ping_bytes.clone(),
        };
        let expected = hex(&format!(
            "6c 0a10 {zeros} 1a58 0a26 {peer} 1214 {name} 1a18 {ping}",
            zeros = "00".repeat(16),
            peer = hex_string(&peer),
            name = hex_string(b"DHTProtocol.rpc_ping"),
            ping = hex_string(&ping_bytes),
        ));
        let encoded = encode_delimited(&request.to_envelope(), DEFAULT_MAX_MESSAGE_SIZE).ok();
        assert_eq!(encoded.as_deref(), Some(expected.as_slice()));
        let decoded = decode_delimited(&expected, DEFAULT_MAX_MESSAGE_SIZE)
            .ok()
            .flatten()
            .map(|(e, used)| (UnaryRequest::from_envelope(e).ok(), used));
        assert_eq!(decoded, Some((Some(request), expected.len())));
    }

    fn hex_string(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn required_fields_are_always_encoded() {
        // proto2 `required`: gogo rejects a CallUnaryRequest without peer/proto/data, so even
        // empty ones must be on the wire: 0a00 1200 1a00.
        let request = UnaryRequest {
            call_id: ZERO_ID,
            peer: Vec::new(),
            proto: String::new(),
            data: Vec::new(),
        };
        let expected = hex(&format!("1a 0a10 {} 1a06 0a00 1200 1a00", "00".repeat(16)));
        assert_eq!(
            encode_delimited(&request.to_envelope(), DEFAULT_MAX_MESSAGE_SIZE).ok(),
            Some(expected)
        );
        // An empty response is `response = b""`, still present: 2202 0a00.
        let reply = UnaryReply {
            call_id: ZERO_ID,
            outcome: UnaryOutcome::Response(Vec::new()),
        };
        let expected = hex(&format!("16 0a10 {} 2202 0a00", "00".repeat(16)));
        assert_eq!(
            encode_delimited(&reply.to_envelope(), DEFAULT_MAX_MESSAGE_SIZE).ok(),
            Some(expected)
        );
    }

    #[test]
    fn incremental_decode_waits_for_every_byte() {
        let bytes = hex(RESP_VECTOR);
        for cut in 0..bytes.len() {
            assert!(
                matches!(
                    decode_delimited(&bytes[..cut], DEFAULT_MAX_MESSAGE_SIZE),
                    Ok(None)
                ),
                "cut at {cut}"
            );
        }
        let mut codec = EnvelopeCodec::default();
        let mut buf = BytesMut::new();
        for (i, byte) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let got = codec.decode(&mut buf);
            if i + 1 < bytes.len() {
                assert!(matches!(got, Ok(None)), "byte {i}");
            } else {
                assert!(matches!(got, Ok(Some(_))));
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn limit_is_checked_before_the_payload_arrives() {
        // Announces 4 MiB + 1 with no payload at all.
        let mut announce = Vec::new();
        varint::encode(DEFAULT_MAX_MESSAGE_SIZE as u64 + 1, &mut announce);
        assert!(matches!(
            decode_delimited(&announce, DEFAULT_MAX_MESSAGE_SIZE),
            Err(HivemindWireError::TooLarge { .. })
        ));
        let mut codec = EnvelopeCodec::default();
        assert!(matches!(
            codec.decode(&mut BytesMut::from(&announce[..])),
            Err(HivemindWireError::TooLarge { .. })
        ));
        // Exactly at the limit is allowed (gogo: `length > maxSize` fails).
        let big = UnaryReply {
            call_id: ZERO_ID,
            outcome: UnaryOutcome::Response(vec![7; 100]),
        }
        .to_envelope();
        let len = big.encoded_len();
        assert!(encode_delimited(&big, len).is_ok());
        assert!(matches!(
            encode_delimited(&big, len - 1),
            Err(HivemindWireError::TooLarge { .. })
        ));
        let bytes = encode_delimited(&big, len).unwrap_or_default();
        assert!(decode_delimited(&bytes, len).is_ok());
        assert!(decode_delimited(&bytes, len - 1).is_err());
        // A u64::MAX length under an unlimited limit waits for bytes; it never overflows.
        let mut huge = Vec::new();
        varint::encode(u64::MAX, &mut huge);
        assert!(matches!(
            decode_delimited(&huge, usize::MAX),
            Ok(None) | Err(_)
        ));
    }

    #[test]
    fn call_id_must_be_16_bytes() {
        let mut envelope = UnaryReply {
            call_id: ZERO_ID,
            outcome: UnaryOutcome::Response(Vec::new()),
        }
        .to_envelope();
        envelope.call_id = vec![0; 8];
        assert!(matches!(
            UnaryReply::from_envelope(envelope),
            Err(HivemindWireError::InvalidCallId(8))
        ));
        let id = CallId::random();
        assert_eq!(id.as_bytes()[6] >> 4, 4);
        assert_eq!(id.as_bytes()[8] >> 6, 0b10);
    }

    #[test]
    fn wrong_envelope_kinds_are_errors() {
        let request = UnaryRequest {
            call_id: ZERO_ID,
            peer: Vec::new(),
            proto: "x".into(),
            data: Vec::new(),
        };
        assert!(matches!(
            UnaryReply::from_envelope(request.to_envelope()),
            Err(HivemindWireError::UnexpectedEnvelope {
                got: "callUnary",
                ..
            })
        ));
        let empty = PersistentConnectionRequest {
            call_id: vec![0; 16],
            message: Some(Envelope::UnaryResponse(CallUnaryResponse { result: None })),
        };
        assert!(UnaryReply::from_envelope(empty.clone()).is_err());
        assert!(UnaryRequest::from_envelope(empty).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut codec = EnvelopeCodec::new(1024);
        for round in 0..2000 {
            let len = round % 64;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = decode_delimited(&bytes, 1024);
            let _ = codec.decode_eof(&mut BytesMut::from(&bytes[..]));
            if let Ok(Some((e, _))) = decode_delimited(&bytes, 1024) {
                let _ = UnaryRequest::from_envelope(e.clone());
                let _ = UnaryReply::from_envelope(e);
            }
        }
    }

    #[test]
    fn codec_round_trip_and_truncation() {
        let mut codec = EnvelopeCodec::default();
        let reply = UnaryReply {
            call_id: CallId::random(),
            outcome: UnaryOutcome::Error("RustError('boom')".into()),
        };
        let mut buf = BytesMut::new();
        assert!(codec.encode(&reply.to_envelope(), &mut buf).is_ok());
        let whole = buf.clone();
        buf.truncate(whole.len() - 1);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(HivemindWireError::Truncated { .. })
        ));
        let mut buf = whole;
        let decoded = codec.decode_eof(&mut buf).ok().flatten();
        assert_eq!(
            decoded.map(|e| UnaryReply::from_envelope(e).ok()),
            Some(Some(reply))
        );
    }

    #[tokio::test]
    async fn async_read_write_over_a_pipe() {
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let (a, b) = tokio::io::duplex(64);
        let (mut a, mut b) = (a.compat(), b.compat());
        let request = UnaryRequest {
            call_id: CallId::random(),
            peer: vec![1, 2, 3],
            proto: "DHTProtocol.rpc_find".into(),
            data: vec![9; 1000],
        };
        let envelope = request.to_envelope();
        let writer = async {
            write_envelope(&mut a, &envelope, DEFAULT_MAX_MESSAGE_SIZE).await?;
            // Trailing bytes after the envelope must stay unread.
            a.write_all(b"next").await?;
            a.close().await?;
            Ok::<_, HivemindWireError>(())
        };
        let reader = async {
            let got = read_envelope(&mut b, DEFAULT_MAX_MESSAGE_SIZE).await?;
            let mut rest = Vec::new();
            b.read_to_end(&mut rest).await?;
            let eof = read_envelope(&mut b, DEFAULT_MAX_MESSAGE_SIZE).await;
            Ok::<_, HivemindWireError>((got, rest, eof))
        };
        let (w, r) = tokio::join!(writer, reader);
        assert!(w.is_ok());
        let (got, rest, eof) = r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(UnaryRequest::from_envelope(got).ok(), Some(request));
        assert_eq!(rest, b"next");
        assert!(matches!(eof, Err(HivemindWireError::Eof)));
    }

    #[tokio::test]
    async fn async_read_reports_truncation_and_limit() {
        let bytes = hex(RESP_VECTOR);
        let mut short = futures::io::Cursor::new(bytes[..10].to_vec());
        assert!(matches!(
            read_envelope(&mut short, DEFAULT_MAX_MESSAGE_SIZE).await,
            Err(HivemindWireError::Truncated { buffered: 10 })
        ));
        let mut cursor = futures::io::Cursor::new(bytes.clone());
        assert!(matches!(
            read_envelope(&mut cursor, 10).await,
            Err(HivemindWireError::TooLarge { size: 26, .. })
        ));
    }
}
