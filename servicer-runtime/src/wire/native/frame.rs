//! Framing of the native wire: `kind: u8 | length: u32 big-endian | payload`.
//!
//! A call on a stream is one `Call` frame (handler name and kind), then `Message` frames each way,
//! an `End` frame after the last message of a stream, or one `Error` frame that ends the call.
//! After a streaming call that both sides finished cleanly, the server adds a second `End` (the
//! trailer): the stream then carries the next call, like the stream of a finished unary call.
//! Every length is checked against the receiver's limit before a byte of payload is buffered.
//!
//! Public for tools that speak the wire by hand, for adversarial tests and for fuzzing; the
//! runtime's stubs and servers are the way to make calls.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder};

use super::codec;
use crate::memory::{Held, MessageMemory, SPENT};
use crate::wire::Encode;
use crate::{RpcError, RpcKind};

/// Bytes before the payload: kind and length.
pub const FRAME_HEADER_LEN: usize = 5;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Opens a call: payload is a [`CallHeader`].
    Call = 0,
    /// One request or response message.
    Message = 1,
    /// Ends the call with an error: payload is a [`WireError`].
    Error = 2,
    /// The sender has no more messages for this call.
    End = 3,
}

impl FrameKind {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => FrameKind::Call,
            1 => FrameKind::Message,
            2 => FrameKind::Error,
            3 => FrameKind::End,
            _ => return None,
        })
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What it carries.
    pub kind: FrameKind,
    /// The payload (codec bytes; empty for `End`).
    pub payload: Bytes,
}

/// The first frame of every call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallHeader {
    /// The handle name, e.g. `Foo.rpc_x`.
    pub name: String,
    /// The kind the caller expects the handler to be.
    pub kind: RpcKind,
}

/// Errors as they cross the wire: the payload of an `Error` frame. The caller turns it into the
/// matching [`RpcError`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireError {
    /// The handler failed with this message.
    Remote(String),
    /// No handler of this name.
    UnknownHandler(String),
    /// The handler is of another kind than the caller expected.
    KindMismatch {
        /// The handle name.
        name: String,
        /// The kind the caller expected.
        expected: String,
        /// The handler's kind.
        actual: String,
    },
    /// An interceptor refused the call.
    Refused(String),
    /// The server is at its limit of concurrent calls.
    Busy(String),
    /// A frame exceeded the receiver's limit.
    MessageTooLarge {
        /// The announced size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Bytes that did not decode.
    Malformed(String),
}

impl From<WireError> for RpcError {
    fn from(err: WireError) -> Self {
        match err {
            WireError::Remote(message) => RpcError::Remote { message },
            WireError::UnknownHandler(name) => RpcError::UnknownHandler { name },
            WireError::KindMismatch {
                name,
                expected,
                actual,
            } => RpcError::KindMismatch {
                name,
                expected,
                actual,
            },
            WireError::Refused(message) => RpcError::Refused { message },
            WireError::Busy(reason) => RpcError::Busy { reason },
            WireError::MessageTooLarge { size, limit } => RpcError::MessageTooLarge {
                size: size as usize,
                limit: limit as usize,
            },
            WireError::Malformed(m) => RpcError::Malformed(format!("remote could not decode: {m}")),
        }
    }
}

impl WireError {
    /// The wire form of a local error that the server sends to its caller.
    pub(crate) fn from_local(err: &RpcError) -> WireError {
        match err {
            RpcError::Remote { message } => WireError::Remote(message.clone()),
            RpcError::UnknownHandler { name } => WireError::UnknownHandler(name.clone()),
            RpcError::KindMismatch {
                name,
                expected,
                actual,
            } => WireError::KindMismatch {
                name: name.clone(),
                expected: expected.clone(),
                actual: actual.clone(),
            },
            RpcError::Refused { message } => WireError::Refused(message.clone()),
            RpcError::Busy { reason } => WireError::Busy(reason.clone()),
            RpcError::MessageTooLarge { size, limit } => WireError::MessageTooLarge {
                size: *size as u64,
                limit: *limit as u64,
            },
            other => WireError::Malformed(other.to_string()),
        }
    }
}

/// Appends a frame whose payload `encode` writes; fails without touching `dst` when the payload
/// would exceed `limit`.
#[inline]
fn put_frame_with(
    dst: &mut BytesMut,
    kind: FrameKind,
    limit: usize,
    encode: impl FnOnce(&mut BytesMut) -> Result<usize, RpcError>,
) -> Result<(), RpcError> {
    let start = dst.len();
    dst.put_u8(kind as u8);
    dst.put_u32(0);
    let written = match encode(dst) {
        Ok(n) => n,
        Err(e) => {
            dst.truncate(start);
            return Err(e);
        }
    };
    if written > limit || written > u32::MAX as usize {
        dst.truncate(start);
        return Err(RpcError::MessageTooLarge {
            size: written,
            limit,
        });
    }
    dst[start + 1..start + FRAME_HEADER_LEN].copy_from_slice(&(written as u32).to_be_bytes());
    Ok(())
}

/// Appends a frame whose payload is the codec's encoding of `value` (call headers, errors).
pub(crate) fn put_frame<T: Serialize + ?Sized>(
    dst: &mut BytesMut,
    kind: FrameKind,
    value: &T,
    limit: usize,
) -> Result<(), RpcError> {
    put_frame_with(dst, kind, limit, |dst| codec::encode_into(value, dst))
}

/// Appends a `Message` frame carrying `message`.
#[inline]
pub(crate) fn put_message<T: Encode<super::Native>>(
    dst: &mut BytesMut,
    message: &T,
    limit: usize,
) -> Result<(), RpcError> {
    put_frame_with(dst, FrameKind::Message, limit, |dst| message.encode(dst))
}

/// A [`CallHeader`] that borrows its name: encodes to the same bytes.
#[derive(Serialize)]
struct CallHeaderRef<'a> {
    name: &'a str,
    kind: RpcKind,
}

/// Appends a `Call` frame for handler `name` of `kind`, as [`put_frame`] would for a
/// [`CallHeader`], without building one.
pub(crate) fn put_call(
    dst: &mut BytesMut,
    name: &str,
    kind: RpcKind,
    limit: usize,
) -> Result<(), RpcError> {
    put_frame(dst, FrameKind::Call, &CallHeaderRef { name, kind }, limit)
}

/// Appends an empty `End` frame.
pub(crate) fn put_end(dst: &mut BytesMut) {
    dst.put_u8(FrameKind::End as u8);
    dst.put_u32(0);
}

/// Appends an `Error` frame; errors are small, so this cannot exceed any sane limit.
pub(crate) fn put_error(dst: &mut BytesMut, err: &WireError) {
    // An error message longer than the frame limit is cut rather than lost.
    if put_frame(dst, FrameKind::Error, err, usize::MAX).is_err() {
        put_end(dst);
    }
}

/// Decodes native frames, refusing any whose announced length exceeds `max_payload` (and encodes
/// the frames the runtime sends). On a stream a node serves, large frames are charged to the
/// node's message memory budget ([`P2PConfig::with_max_message_memory`](crate::P2PConfig::with_max_message_memory)) before they are buffered.
#[derive(Debug, Default)]
pub struct CallFrameCodec {
    max_payload: usize,
    /// The large frame being received or last received.
    read: Held,
    /// What the write buffer holds of large frames.
    write: Held,
}

impl CallFrameCodec {
    /// A decoder of frames with payloads of at most `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        CallFrameCodec {
            max_payload,
            ..CallFrameCodec::default()
        }
    }

    /// [`new`](Self::new), charging large frames both ways to `memory`.
    pub(crate) fn charged(max_payload: usize, memory: &Arc<MessageMemory>) -> Self {
        CallFrameCodec {
            max_payload,
            read: Held::of(memory.clone()),
            write: Held::of(memory.clone()),
        }
    }

    /// Gives back what the frames of a finished call held.
    pub(crate) fn release(&mut self) {
        self.read.release();
        self.write.release();
    }
}

/// A codec with the same limit and budget that holds nothing yet.
impl Clone for CallFrameCodec {
    fn clone(&self) -> Self {
        CallFrameCodec {
            max_payload: self.max_payload,
            read: self.read.fresh(),
            write: self.write.fresh(),
        }
    }
}

fn spent() -> RpcError {
    RpcError::Busy {
        reason: SPENT.into(),
    }
}

impl Decoder for CallFrameCodec {
    type Item = Frame;
    type Error = RpcError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, RpcError> {
        if src.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let kind = FrameKind::from_byte(src[0])
            .ok_or_else(|| RpcError::Malformed(format!("unknown frame kind {:#04x}", src[0])))?;
        let len = u32::from_be_bytes([src[1], src[2], src[3], src[4]]) as usize;
        if len > self.max_payload {
            return Err(RpcError::MessageTooLarge {
                size: len,
                limit: self.max_payload,
            });
        }
        // A large frame is charged before a byte of its payload is buffered, and stays charged
        // until its call ends.
        if !self.read.hold_at_least(FRAME_HEADER_LEN + len) {
            return Err(spent());
        }
        if src.len() < FRAME_HEADER_LEN + len {
            src.reserve(FRAME_HEADER_LEN + len - src.len());
            return Ok(None);
        }
        src.advance(FRAME_HEADER_LEN);
        let payload = src.split_to(len).freeze();
        Ok(Some(Frame { kind, payload }))
    }
}

/// A frame to send; message payloads are encoded straight into the write buffer.
#[derive(Debug)]
pub(crate) enum Out<T> {
    Message(T),
    Error(WireError),
    End,
}

impl<T: Encode<super::Native>> Encoder<Out<T>> for CallFrameCodec {
    type Error = RpcError;

    fn encode(&mut self, item: Out<T>, dst: &mut BytesMut) -> Result<(), RpcError> {
        match item {
            Out::Message(value) => {
                let start = dst.len();
                put_message(dst, &value, self.max_payload)?;
                // What the write buffer holds now: this frame and any not yet flushed.
                if !self.write.hold(dst.capacity()) {
                    dst.truncate(start);
                    return Err(spent());
                }
                Ok(())
            }
            Out::Error(err) => {
                put_error(dst, &err);
                Ok(())
            }
            Out::End => {
                put_end(dst);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = BytesMut::new();
        put_frame(&mut buf, FrameKind::Message, &42u64, 1024).unwrap();
        put_end(&mut buf);
        let mut codec = CallFrameCodec::new(1024);
        let first = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(first.kind, FrameKind::Message);
        assert_eq!(codec::decode::<u64>(&first.payload, 1024).unwrap(), 42);
        let end = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(end.kind, FrameKind::End);
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn borrowed_call_headers_encode_like_owned_ones() {
        let header = CallHeader {
            name: "ns::Foo.rpc_x".into(),
            kind: RpcKind::StreamUnary,
        };
        let (mut owned, mut borrowed) = (BytesMut::new(), BytesMut::new());
        put_frame(&mut owned, FrameKind::Call, &header, 1024).unwrap();
        put_call(&mut borrowed, &header.name, header.kind, 1024).unwrap();
        assert_eq!(owned, borrowed);
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut whole = BytesMut::new();
        put_frame(&mut whole, FrameKind::Message, "hello", 1024).unwrap();
        let mut codec = CallFrameCodec::new(1024);
        let mut buf = BytesMut::new();
        for byte in whole.iter() {
            assert!(codec.decode(&mut buf).unwrap().is_none());
            buf.put_u8(*byte);
        }
        assert!(codec.decode(&mut buf).unwrap().is_some());
    }

    #[test]
    fn oversized_and_unknown_frames_are_errors() {
        let mut codec = CallFrameCodec::new(16);
        let mut buf = BytesMut::from(&[1u8, 0, 0, 1, 0][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(RpcError::MessageTooLarge {
                size: 256,
                limit: 16
            })
        ));
        let mut buf = BytesMut::from(&[9u8, 0, 0, 0, 0][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(RpcError::Malformed(_))
        ));
        let mut out = BytesMut::new();
        assert!(matches!(
            put_frame(&mut out, FrameKind::Message, &vec![0u8; 64], 16),
            Err(RpcError::MessageTooLarge { .. })
        ));
        assert!(out.is_empty());
    }

    /// Decodes `data` fed in pieces cut at `cuts`; the frames until the first error.
    fn decode_in_pieces(data: &[u8], cuts: &[usize], limit: usize) -> (Vec<Frame>, bool) {
        let mut codec = CallFrameCodec::new(limit);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.push(data.len());
        points.sort_unstable();
        let mut fed = 0;
        for point in points {
            buf.extend_from_slice(&data[fed..point]);
            fed = point;
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(_) => return (frames, true),
                }
            }
        }
        (frames, false)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// The entry point of the `frame_decoder` fuzz target, bounded: arbitrary bytes in
        /// arbitrary pieces never panic, never yield a payload over the limit, and decode the same
        /// however they are cut.
        #[test]
        fn arbitrary_bytes_decode_without_panic(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..8),
        ) {
            let limit = 64;
            let (pieces, pieces_failed) = decode_in_pieces(&data, &cuts, limit);
            let (whole, whole_failed) = decode_in_pieces(&data, &[], limit);
            proptest::prop_assert_eq!(&pieces, &whole);
            proptest::prop_assert_eq!(pieces_failed, whole_failed);
            for frame in &whole {
                proptest::prop_assert!(frame.payload.len() <= limit);
                let _ = codec::decode::<CallHeader>(&frame.payload, limit);
                let _ = codec::decode::<WireError>(&frame.payload, limit);
            }
        }
    }
}
