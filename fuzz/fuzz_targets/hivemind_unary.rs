//! Arbitrary bytes as a stream of hivemind unary envelopes (`uvarint(len) ++
//! PersistentConnectionRequest`), read three ways under a limit taken from the first byte:
//! `read_envelope` on an async reader, `decode_delimited` on the buffer, and `EnvelopeCodec` fed in
//! two pieces (cut where the second byte says). Asserts: no panic, the three read the same
//! envelopes, every envelope re-encodes (`encode_delimited`, the codec's encoder) and decodes to
//! itself, and an envelope that reads as a `UnaryRequest` / `UnaryReply` comes back from
//! `to_envelope` as the same request / reply.
#![no_main]

use bytes::BytesMut;
use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use servicer_runtime::hivemind::proto::PersistentConnectionRequest;
use servicer_runtime::hivemind::unary::{self, EnvelopeCodec, UnaryReply, UnaryRequest};
use tokio_util::codec::{Decoder, Encoder};

/// Every envelope `read_envelope` reads off `data`, until the first error (EOF included).
fn read_all(data: &[u8], limit: usize) -> Vec<PersistentConnectionRequest> {
    let mut io = futures::io::Cursor::new(data);
    let mut out = Vec::new();
    block_on(async {
        while let Ok(envelope) = unary::read_envelope(&mut io, limit).await {
            out.push(envelope);
        }
    });
    out
}

/// Every envelope `decode_delimited` finds at the start of `data`, one after the other.
fn decode_all(mut data: &[u8], limit: usize) -> Vec<PersistentConnectionRequest> {
    let mut out = Vec::new();
    while let Ok(Some((envelope, used))) = unary::decode_delimited(data, limit) {
        assert!(used > 0 && used <= data.len());
        data = &data[used..];
        out.push(envelope);
    }
    out
}

/// Every envelope the codec decodes from `data` delivered in two pieces, then at EOF.
fn codec_all(data: &[u8], cut: usize, limit: usize) -> Vec<PersistentConnectionRequest> {
    let mut codec = EnvelopeCodec::new(limit);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(envelope)) => out.push(envelope),
                Ok(None) => break,
                Err(_) => return out,
            }
        }
    }
    match codec.decode_eof(&mut buf) {
        // Everything decodable was taken by `decode` already.
        Ok(Some(_)) => panic!("decode_eof found an envelope decode missed"),
        Ok(None) => assert!(buf.is_empty()),
        Err(_) => assert!(!buf.is_empty()),
    }
    out
}

/// `envelope` on the wire and back, with no limit in the way.
fn round_trip(envelope: &PersistentConnectionRequest) -> PersistentConnectionRequest {
    let bytes = unary::encode_delimited(envelope, usize::MAX).expect("an envelope encodes");
    let mut via_codec = BytesMut::new();
    EnvelopeCodec::new(usize::MAX)
        .encode(envelope, &mut via_codec)
        .expect("the codec encodes an envelope");
    assert_eq!(via_codec.as_ref(), bytes.as_slice());
    let (again, used) = unary::decode_delimited(&bytes, usize::MAX)
        .expect("an encoded envelope decodes")
        .expect("an encoded envelope is complete");
    assert_eq!(used, bytes.len());
    again
}

fuzz_target!(|data: &[u8]| {
    let [pick, cut, data @ ..] = data else {
        return;
    };
    let limit = 1usize << (pick % 13); // 1 B to 4 KiB
    let cut = *cut as usize % (data.len() + 1);

    let read = read_all(data, limit);
    assert_eq!(decode_all(data, limit), read);
    assert_eq!(codec_all(data, cut, limit), read);

    for envelope in read {
        // Re-encoding may add required fields the input left out, so only the rule is checked
        // at the decoding limit.
        assert_eq!(
            unary::encode_delimited(&envelope, limit).is_ok(),
            envelope.encoded_len() <= limit
        );
        let again = round_trip(&envelope);
        assert_eq!(again, envelope);

        if let Ok(request) = UnaryRequest::from_envelope(envelope.clone()) {
            let back = request.to_envelope();
            assert_eq!(back, envelope);
            let request_again = UnaryRequest::from_envelope(round_trip(&back))
                .expect("a request's envelope reads as a request");
            assert_eq!(request_again, request);
        }
        if let Ok(reply) = UnaryReply::from_envelope(envelope) {
            let reply_again = UnaryReply::from_envelope(round_trip(&reply.to_envelope()))
                .expect("a reply's envelope reads as a reply");
            assert_eq!(reply_again, reply);
        }
    }
});
