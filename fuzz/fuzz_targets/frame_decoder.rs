//! Arbitrary bytes through the native frame decoder, as a stream delivers them: no panic, no
//! payload over the limit, and every payload tried as a call header and as an error.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use servicer_runtime::native::codec;
use servicer_runtime::native::frame::{CallHeader, CallFrameCodec, WireError};
use tokio_util::codec::Decoder;

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the stream is cut in two.
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let cut = cut as usize % (data.len() + 1);
    let mut decoder = CallFrameCodec::new(LIMIT);
    let mut buf = BytesMut::new();
    for piece in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.payload.len() <= LIMIT);
                    let _ = codec::decode::<CallHeader>(&frame.payload, LIMIT);
                    let _ = codec::decode::<WireError>(&frame.payload, LIMIT);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
