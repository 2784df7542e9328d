//! Arbitrary bytes as hivemind stream frames (`marker | u64 big-endian length | payload`), cut in
//! two at a position taken from the first byte, through `StreamFrameCodec`, then read again from
//! the whole input by the async `read_frame`. Asserts: no panic, no payload over the limit, both
//! readers see the same frames, a message frame re-encodes to exactly the bytes it was read from,
//! and an error frame re-encodes to bytes that decode to the same frame.
#![no_main]

use bytes::BytesMut;
use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use servicer_runtime::hivemind::frames::{
    self, STREAM_FRAME_HEADER_LEN, StreamFrame, StreamFrameCodec,
};
use tokio_util::codec::{Decoder, Encoder};

const LIMIT: usize = 4096;

/// The one frame in `bytes`, which must hold exactly one.
fn decode_one(bytes: &[u8]) -> StreamFrame {
    let mut buf = BytesMut::from(bytes);
    let frame = StreamFrameCodec::new(usize::MAX)
        .decode_eof(&mut buf)
        .expect("an encoded frame decodes")
        .expect("an encoded frame is complete");
    assert!(buf.is_empty(), "an encoded frame is one frame");
    frame
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the stream is cut in two.
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let cut = cut as usize % (data.len() + 1);
    let mut decoder = StreamFrameCodec::new(LIMIT);
    let mut buf = BytesMut::new();
    // How many bytes of `data` the decoder has taken, and the frames with the bytes they came from.
    let mut taken = 0;
    let mut decoded: Vec<(StreamFrame, &[u8])> = Vec::new();
    let mut failed = false;
    'pieces: for piece in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    let used = before - buf.len();
                    decoded.push((frame, &data[taken..taken + used]));
                    taken += used;
                }
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break 'pieces;
                }
            }
        }
    }
    if !failed {
        match decoder.decode_eof(&mut buf) {
            Ok(Some(_)) => panic!("decode_eof found a frame decode missed"),
            Ok(None) => assert!(buf.is_empty()),
            Err(_) => assert!(!buf.is_empty()),
        }
    }

    // The async reader, on the whole input at once, reads the same frames.
    let mut io = futures::io::Cursor::new(data);
    let mut read = Vec::new();
    block_on(async {
        while let Ok(Some(frame)) = frames::read_frame(&mut io, LIMIT).await {
            read.push(frame);
        }
    });
    assert_eq!(read.len(), decoded.len());

    for ((frame, bytes), frame_read) in decoded.iter().zip(&read) {
        assert_eq!(frame, frame_read);
        assert!(bytes.len() >= STREAM_FRAME_HEADER_LEN);
        assert!(bytes.len() - STREAM_FRAME_HEADER_LEN <= LIMIT);
        let encoded = frame.to_bytes(usize::MAX).expect("a decoded frame encodes");
        let mut via_codec = BytesMut::new();
        StreamFrameCodec::new(usize::MAX)
            .encode(frame.clone(), &mut via_codec)
            .expect("the codec encodes a decoded frame");
        assert_eq!(via_codec.as_ref(), encoded.as_ref());
        match frame {
            StreamFrame::Message(payload) => {
                assert!(payload.len() <= LIMIT);
                assert_eq!(encoded.as_ref(), *bytes);
            }
            StreamFrame::Error(_) => {
                assert_eq!(
                    frame.is_end_of_stream(),
                    encoded.as_ref() == frames::END_OF_STREAM
                );
            }
        }
        assert_eq!(&decode_one(&encoded), frame);
    }
});
