//! Streaming calls on hivemind's wire: `marker | u64 big-endian length | protobuf` frames.
//!
//! A hivemind stream handler (`add_protobuf_handler(..., stream_input=True)` or one that returns an
//! async iterator) runs on one libp2p stream per call whose bytes are only hivemind's own framing;
//! the Go daemon pipes them raw (docs/hivemind-compat.md#w6;
//! `hivemind/p2p/p2p_daemon.py:58-62, 368-410`):
//!
//! ```text
//! frame         = marker (1 byte) ++ length (u64, big-endian, 8 bytes) ++ payload
//! marker 0x00   = a message (the handler's protobuf)
//! marker 0x01   = an RPCError{1: message}
//! END_OF_STREAM = 01 00 00 00 00 00 00 00 00   (an error frame with the empty RPCError)
//! ```
//!
//! The two directions read error frames differently, and this module leaves that to the caller of
//! the decoder:
//! - **Caller → callee**: request messages, then [`END_OF_STREAM`]. The Python callee treats
//!   *any* error frame as the end of the requests (`request, _ = await receive_task`, then
//!   `requests.put(None)`, `p2p_daemon.py:478-479`).
//! - **Callee → caller**: response messages; a handler failure is one error frame with
//!   `message = str(exc)` (`p2p_daemon.py:455-459`); the end of the responses is the stream's EOF,
//!   never a frame. A Python caller raises on *any* error frame, even an empty one
//!   (`p2p_daemon.py:504-505`).
//! - **Never half-close early**: the daemon closes the callee's whole socket when the libp2p
//!   stream reaches EOF (`stream.go:19-26` of go-libp2p-daemon v0.5.0.hivemind1), so a caller
//!   that closes its write side after `END_OF_STREAM` gets no responses
//!   (docs/hivemind-compat.md#w6). Keep writing open until the callee's EOF; cancel by closing or
//!   resetting the whole stream.
//!
//! Python reads frames of any length (`receive_raw_data`); this decoder enforces a limit
//! ([`DEFAULT_MAX_MESSAGE_SIZE`] by default) on the announced length before buffering the payload.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use prost::Message as _;

use super::HivemindWireError;
use super::proto::StreamError;
use crate::DEFAULT_MAX_MESSAGE_SIZE;
use crate::memory::Held;

/// The marker of a message frame.
pub const MESSAGE_MARKER: u8 = 0x00;
/// The marker of an error frame (an `RPCError` payload).
pub const ERROR_MARKER: u8 = 0x01;
/// Marker and length: the bytes before a frame's payload.
pub const STREAM_FRAME_HEADER_LEN: usize = 9;
/// hivemind's `END_OF_STREAM`: an error frame carrying the empty `RPCError()`.
pub const END_OF_STREAM: [u8; STREAM_FRAME_HEADER_LEN] = [ERROR_MARKER, 0, 0, 0, 0, 0, 0, 0, 0];

/// One frame of a streaming call.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamFrame {
    /// A serialized protobuf message (marker `0x00`).
    Message(Bytes),
    /// An `RPCError` (marker `0x01`): a handler failure, or with no message, `END_OF_STREAM`.
    Error(StreamError),
}

impl StreamFrame {
    /// hivemind's `END_OF_STREAM`, which ends a caller's requests.
    pub fn end_of_stream() -> Self {
        StreamFrame::Error(StreamError { message: None })
    }

    /// An error frame with `message` (what a failing handler sends).
    pub fn error(message: impl Into<String>) -> Self {
        StreamFrame::Error(StreamError {
            message: Some(message.into()),
        })
    }

    /// A message frame carrying `message` serialized.
    pub fn message<M: prost::Message>(message: &M) -> Self {
        StreamFrame::Message(Bytes::from(message.encode_to_vec()))
    }

    /// Whether this is exactly `END_OF_STREAM` (an error frame without a message).
    pub fn is_end_of_stream(&self) -> bool {
        matches!(self, StreamFrame::Error(StreamError { message: None }))
    }

    /// Appends this frame to `dst`, refusing a payload longer than `limit`.
    pub fn encode(&self, dst: &mut BytesMut, limit: usize) -> Result<(), HivemindWireError> {
        let (marker, payload_len) = match self {
            StreamFrame::Message(payload) => (MESSAGE_MARKER, payload.len()),
            StreamFrame::Error(error) => (ERROR_MARKER, error.encoded_len()),
        };
        if payload_len > limit {
            return Err(HivemindWireError::TooLarge {
                size: payload_len as u64,
                limit,
            });
        }
        dst.reserve(STREAM_FRAME_HEADER_LEN + payload_len);
        dst.put_u8(marker);
        dst.put_u64(payload_len as u64);
        match self {
            StreamFrame::Message(payload) => dst.extend_from_slice(payload),
            StreamFrame::Error(error) => {
                // `dst` was reserved for the whole payload above.
                error.encode(dst).map_err(|_| HivemindWireError::TooLarge {
                    size: payload_len as u64,
                    limit,
                })?
            }
        }
        Ok(())
    }

    /// This frame as bytes.
    pub fn to_bytes(&self, limit: usize) -> Result<Bytes, HivemindWireError> {
        let mut dst = BytesMut::new();
        self.encode(&mut dst, limit)?;
        Ok(dst.freeze())
    }
}

/// An incremental decoder and encoder of [`StreamFrame`]s (a `tokio_util` codec).
///
/// It decides from the first byte whether a frame can be valid (an unknown marker is an error at
/// once), checks the announced length against the limit as soon as the 9-byte header is in, and
/// only then reserves room for the payload. It never panics on any input.
#[derive(Debug, Clone, Copy)]
pub struct StreamFrameCodec {
    limit: usize,
}

impl StreamFrameCodec {
    /// A codec that refuses payloads longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        StreamFrameCodec { limit }
    }
}

impl Default for StreamFrameCodec {
    /// A codec with hivemind's limit, [`DEFAULT_MAX_MESSAGE_SIZE`].
    fn default() -> Self {
        StreamFrameCodec::new(DEFAULT_MAX_MESSAGE_SIZE)
    }
}

/// Reads the header at the start of `header` (9 bytes): the marker and the checked length.
fn parse_header(
    header: &[u8; STREAM_FRAME_HEADER_LEN],
    limit: usize,
) -> Result<(u8, usize), HivemindWireError> {
    let marker = header[0];
    if marker != MESSAGE_MARKER && marker != ERROR_MARKER {
        return Err(HivemindWireError::UnknownMarker(marker));
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&header[1..]);
    let len = u64::from_be_bytes(len_bytes);
    match usize::try_from(len) {
        Ok(n) if n <= limit => Ok((marker, n)),
        _ => Err(HivemindWireError::TooLarge { size: len, limit }),
    }
}

fn frame_from(marker: u8, payload: Bytes) -> Result<StreamFrame, HivemindWireError> {
    if marker == MESSAGE_MARKER {
        Ok(StreamFrame::Message(payload))
    } else {
        Ok(StreamFrame::Error(StreamError::decode(payload)?))
    }
}

impl tokio_util::codec::Decoder for StreamFrameCodec {
    type Item = StreamFrame;
    type Error = HivemindWireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<StreamFrame>, HivemindWireError> {
        let Some(&marker) = src.first() else {
            return Ok(None);
        };
        if marker != MESSAGE_MARKER && marker != ERROR_MARKER {
            return Err(HivemindWireError::UnknownMarker(marker));
        }
        let Some(header) = src.get(..STREAM_FRAME_HEADER_LEN) else {
            return Ok(None);
        };
        let mut head = [0u8; STREAM_FRAME_HEADER_LEN];
        head.copy_from_slice(header);
        let (marker, len) = parse_header(&head, self.limit)?;
        let total = STREAM_FRAME_HEADER_LEN.saturating_add(len);
        if src.len() < total {
            // Room for the rest of the frame, but never more than one default-size message at a
            // time (a huge configured limit must not turn into a huge allocation up front).
            src.reserve((total - src.len()).min(DEFAULT_MAX_MESSAGE_SIZE));
            return Ok(None);
        }
        src.advance(STREAM_FRAME_HEADER_LEN);
        let payload = src.split_to(len).freeze();
        frame_from(marker, payload).map(Some)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<StreamFrame>, HivemindWireError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(HivemindWireError::Truncated {
                buffered: src.len(),
            }),
        }
    }
}

impl tokio_util::codec::Encoder<StreamFrame> for StreamFrameCodec {
    type Error = HivemindWireError;

    fn encode(&mut self, item: StreamFrame, dst: &mut BytesMut) -> Result<(), HivemindWireError> {
        item.encode(dst, self.limit)
    }
}

/// Reads one frame from `io`, and not a byte more. `Ok(None)` is a clean EOF between frames (for
/// a caller: the end of the responses); EOF inside a frame is [`HivemindWireError::Truncated`].
pub async fn read_frame<R: AsyncRead + Unpin>(
    io: &mut R,
    limit: usize,
) -> Result<Option<StreamFrame>, HivemindWireError> {
    read_frame_charged(io, limit, &mut Held::default()).await
}

/// [`read_frame`], charging a large frame to `held` before it is buffered.
pub(crate) async fn read_frame_charged<R: AsyncRead + Unpin>(
    io: &mut R,
    limit: usize,
    held: &mut Held,
) -> Result<Option<StreamFrame>, HivemindWireError> {
    let mut header = [0u8; STREAM_FRAME_HEADER_LEN];
    let mut filled = 0;
    while filled < STREAM_FRAME_HEADER_LEN {
        let n = io.read(&mut header[filled..]).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(HivemindWireError::Truncated { buffered: filled })
            };
        }
        if filled == 0 && header[0] != MESSAGE_MARKER && header[0] != ERROR_MARKER {
            return Err(HivemindWireError::UnknownMarker(header[0]));
        }
        filled += n;
    }
    let (marker, len) = parse_header(&header, limit)?;
    let payload = super::read_payload(io, len, STREAM_FRAME_HEADER_LEN, held).await?;
    frame_from(marker, Bytes::from(payload)).map(Some)
}

/// Writes one frame to `io` and flushes it; it never closes `io` (see the module docs).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    io: &mut W,
    frame: &StreamFrame,
    limit: usize,
) -> Result<(), HivemindWireError> {
    let bytes = frame.to_bytes(limit)?;
    io.write_all(&bytes).await?;
    io.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::hivemind::test_messages::{NodeInfo, PingResponse};
    use tokio_util::codec::{Decoder, Encoder};

    fn decode_all(bytes: &[u8], limit: usize) -> Result<Vec<StreamFrame>, HivemindWireError> {
        let mut codec = StreamFrameCodec::new(limit);
        let mut buf = BytesMut::from(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode_eof(&mut buf)? {
            frames.push(frame);
        }
        Ok(frames)
    }

    #[test]
    fn end_of_stream_is_nine_bytes() {
        // hivemind's END_OF_STREAM, 9 bytes (docs/hivemind-compat.md#w6):
        // `01 00 00 00 00 00 00 00 00` (`p2p_daemon.py:62, 493`).
        assert_eq!(
            StreamFrame::end_of_stream()
                .to_bytes(DEFAULT_MAX_MESSAGE_SIZE)
                .ok()
                .as_deref(),
            Some(&END_OF_STREAM[..])
        );
        let frames = decode_all(&END_OF_STREAM, DEFAULT_MAX_MESSAGE_SIZE).ok();
        assert_eq!(frames, Some(vec![StreamFrame::end_of_stream()]));
        assert!(StreamFrame::end_of_stream().is_end_of_stream());
        assert!(!StreamFrame::error("").is_end_of_stream());
    }

    /// Derived by hand from the framing rules (docs/hivemind-compat.md#w6) and protobuf's encoding
    /// (the captured `stream.error` vector in `servicer-runtime/tests/data/hivemind-vectors.txt`
    /// carries another message): `RPCError{message: "stream boom from python"}` is
    /// `0a 17 <23 bytes>`, so the frame is `01 ++ u64 BE 25 ++ 0a17 ...`.
    #[test]
    fn error_frame_vector() {
        let text = "stream boom from python";
        let mut expected = vec![0x01, 0, 0, 0, 0, 0, 0, 0, 25, 0x0a, 23];
        expected.extend_from_slice(text.as_bytes());
        let frame = StreamFrame::error(text);
        assert_eq!(
            frame.to_bytes(DEFAULT_MAX_MESSAGE_SIZE).ok().as_deref(),
            Some(&expected[..])
        );
        assert_eq!(
            decode_all(&expected, DEFAULT_MAX_MESSAGE_SIZE).ok(),
            Some(vec![frame])
        );
        // An explicitly empty message is `0a 00`, which Python's caller also raises on.
        assert_eq!(
            StreamFrame::error("")
                .to_bytes(DEFAULT_MAX_MESSAGE_SIZE)
                .ok()
                .as_deref(),
            Some(&[1, 0, 0, 0, 0, 0, 0, 0, 2, 0x0a, 0][..])
        );
    }

    /// Derived by hand: a message frame of `PingResponse{peer: {node_id: 20 × 0x22}, dht_time:
    /// 1.5}` = `12 16 0a 14 <20 B> 21 000000000000f83f` (33 bytes).
    #[test]
    fn message_frame_vector() {
        let msg = PingResponse {
            peer: Some(NodeInfo {
                node_id: vec![0x22; 20],
            }),
            dht_time: 1.5,
            available: false,
        };
        let mut payload = vec![0x12, 0x16, 0x0a, 0x14];
        payload.extend_from_slice(&[0x22; 20]);
        payload.extend_from_slice(&[0x21, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f]);
        let mut expected = vec![0x00, 0, 0, 0, 0, 0, 0, 0, 33];
        expected.extend_from_slice(&payload);
        let frame = StreamFrame::message(&msg);
        assert_eq!(
            frame.to_bytes(DEFAULT_MAX_MESSAGE_SIZE).ok().as_deref(),
            Some(&expected[..])
        );
        let frames = decode_all(&expected, DEFAULT_MAX_MESSAGE_SIZE).unwrap_or_default();
        let decoded = match frames.as_slice() {
            [StreamFrame::Message(bytes)] => PingResponse::decode(bytes.clone()).ok(),
            _ => None,
        };
        assert_eq!(decoded, Some(msg));
    }

    #[test]
    fn byte_by_byte_and_many_frames() {
        let frames = vec![
            StreamFrame::Message(Bytes::from_static(b"one")),
            StreamFrame::Message(Bytes::new()),
            StreamFrame::error("bad"),
            StreamFrame::end_of_stream(),
        ];
        let mut wire = BytesMut::new();
        let mut codec = StreamFrameCodec::default();
        for f in &frames {
            assert!(codec.encode(f.clone(), &mut wire).is_ok());
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire.iter() {
            buf.extend_from_slice(&[*byte]);
            while let Ok(Some(f)) = codec.decode(&mut buf) {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert!(buf.is_empty());
    }

    #[test]
    fn limit_is_enforced_on_the_header() {
        let mut header = vec![0x00];
        header.extend_from_slice(&(DEFAULT_MAX_MESSAGE_SIZE as u64 + 1).to_be_bytes());
        assert!(matches!(
            decode_all(&header, DEFAULT_MAX_MESSAGE_SIZE),
            Err(HivemindWireError::TooLarge { .. })
        ));
        let mut max = vec![0x00];
        max.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            decode_all(&max, usize::MAX - STREAM_FRAME_HEADER_LEN),
            Err(HivemindWireError::TooLarge { .. })
        ));
        let frame = StreamFrame::Message(Bytes::from(vec![0; 10]));
        assert!(frame.to_bytes(9).is_err());
        assert!(frame.to_bytes(10).is_ok());
        assert!(matches!(
            decode_all(&frame.to_bytes(10).unwrap_or_default(), 9),
            Err(HivemindWireError::TooLarge { size: 10, limit: 9 })
        ));
    }

    #[test]
    fn unknown_marker_and_truncation() {
        assert!(matches!(
            decode_all(&[0x02], DEFAULT_MAX_MESSAGE_SIZE),
            Err(HivemindWireError::UnknownMarker(2))
        ));
        assert!(matches!(
            decode_all(&END_OF_STREAM[..5], DEFAULT_MAX_MESSAGE_SIZE),
            Err(HivemindWireError::Truncated { buffered: 5 })
        ));
        // An error frame whose payload is not an RPCError.
        assert!(matches!(
            decode_all(&[1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff], DEFAULT_MAX_MESSAGE_SIZE),
            Err(HivemindWireError::Protobuf(_))
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..3000usize {
            let len = round % 40;
            let bytes: Vec<u8> = (0..len)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    // Mostly valid markers and small lengths, to reach deeper states.
                    match i % 9 {
                        0 => (seed % 3) as u8,
                        1..=7 => 0,
                        _ => (seed % 24) as u8,
                    }
                })
                .collect();
            let _ = decode_all(&bytes, 16);
        }
    }

    #[tokio::test]
    async fn async_read_write() {
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let (a, b) = tokio::io::duplex(16);
        let (mut a, mut b) = (a.compat(), b.compat());
        let frames = vec![
            StreamFrame::Message(Bytes::from(vec![5; 100])),
            StreamFrame::end_of_stream(),
        ];
        let writer = async {
            for f in &frames {
                write_frame(&mut a, f, DEFAULT_MAX_MESSAGE_SIZE).await?;
            }
            a.close().await?;
            Ok::<_, HivemindWireError>(())
        };
        let reader = async {
            let mut got = Vec::new();
            while let Some(f) = read_frame(&mut b, DEFAULT_MAX_MESSAGE_SIZE).await? {
                got.push(f);
            }
            Ok::<_, HivemindWireError>(got)
        };
        let (w, r) = tokio::join!(writer, reader);
        assert!(w.is_ok());
        assert_eq!(r.ok(), Some(frames));

        let mut bad = futures::io::Cursor::new(vec![7u8, 0, 0]);
        assert!(matches!(
            read_frame(&mut bad, DEFAULT_MAX_MESSAGE_SIZE).await,
            Err(HivemindWireError::UnknownMarker(7))
        ));
        let mut short = futures::io::Cursor::new(END_OF_STREAM[..4].to_vec());
        assert!(matches!(
            read_frame(&mut short, DEFAULT_MAX_MESSAGE_SIZE).await,
            Err(HivemindWireError::Truncated { buffered: 4 })
        ));
    }
}
