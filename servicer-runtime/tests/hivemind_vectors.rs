//! Byte-exact vectors captured from a real hivemind 1.1.12 (`tests/data/hivemind-vectors.txt`,
//! made by `scripts/capture-hivemind-vectors.py` with hivemind's own protobuf classes and writers):
//! each one decodes into our types with the values the script put in, and re-encodes to the
//! same bytes. No Python is needed to run these. The DHT messages' own vectors are checked in
//! `dht/tests/hivemind_vectors.rs`; here they are only the payloads of envelopes and frames.

use std::collections::HashMap;

use bytes::BytesMut;
use prost::Message;
use servicer_runtime::DEFAULT_MAX_MESSAGE_SIZE;
use servicer_runtime::hivemind::frames::{END_OF_STREAM, StreamFrame, StreamFrameCodec};
use servicer_runtime::hivemind::unary::{
    CallId, UnaryOutcome, UnaryReply, UnaryRequest, decode_delimited, encode_delimited,
};
use tokio_util::codec::{Decoder, Encoder};

const VECTORS: &str = include_str!("data/hivemind-vectors.txt");

/// The script's fixed inputs.
const CALL_ID: [u8; 16] = [
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
];
fn vectors() -> HashMap<&'static str, Vec<u8>> {
    VECTORS
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (name, hex) = line.split_once(' ').unwrap_or((line, ""));
            (name, unhex(hex.trim()))
        })
        .collect()
}

/// The bytes of a vector's hex text.
fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("vector is hex")
}

fn vector(name: &str) -> Vec<u8> {
    vectors()
        .remove(name)
        .unwrap_or_else(|| panic!("no vector {name}"))
}

#[test]
fn every_vector_is_covered() {
    let names: Vec<&str> = {
        let mut n: Vec<_> = vectors().into_keys().collect();
        n.sort_unstable();
        n
    };
    assert_eq!(
        names,
        [
            "dht.find_request",
            "dht.find_response",
            "dht.find_response_dictionary",
            "dht.ping_request",
            "dht.ping_request_client",
            "dht.ping_response",
            "dht.store_request",
            "dht.store_request_dictionary",
            "dht.store_response",
            "stream.end_of_stream",
            "stream.error",
            "stream.message",
            "stream.message_empty",
            "unary.error",
            "unary.request",
            "unary.response",
            "unary.response_empty",
        ]
    );
}

#[test]
fn unary_request_envelope() {
    let bytes = vector("unary.request");
    let (envelope, used) = decode_delimited(&bytes, DEFAULT_MAX_MESSAGE_SIZE)
        .expect("decodes")
        .expect("complete");
    assert_eq!(used, bytes.len());
    let request = UnaryRequest::from_envelope(envelope).expect("a callUnary");
    assert_eq!(request.call_id, CallId(CALL_ID));
    assert_eq!(request.proto, "DHTProtocol.rpc_ping");
    assert!(servicer_runtime::PeerId::from_bytes(&request.peer).is_ok());
    assert_eq!(request.data, vector("dht.ping_request"));
    let again =
        encode_delimited(&request.to_envelope(), DEFAULT_MAX_MESSAGE_SIZE).expect("encodes");
    assert_eq!(again, bytes);
}

#[test]
fn unary_reply_envelopes() {
    for (name, expected) in [
        (
            "unary.response",
            UnaryOutcome::Response(vector("dht.ping_response")),
        ),
        ("unary.response_empty", UnaryOutcome::Response(Vec::new())),
        (
            "unary.error",
            UnaryOutcome::Error("ValueError('boom')".into()),
        ),
    ] {
        let bytes = vector(name);
        let (envelope, used) = decode_delimited(&bytes, DEFAULT_MAX_MESSAGE_SIZE)
            .expect("decodes")
            .expect("complete");
        assert_eq!(used, bytes.len(), "{name}");
        let reply = UnaryReply::from_envelope(envelope).expect("an unaryResponse");
        assert_eq!(reply.call_id, CallId(CALL_ID), "{name}");
        assert_eq!(reply.outcome, expected, "{name}");
        let again =
            encode_delimited(&reply.to_envelope(), DEFAULT_MAX_MESSAGE_SIZE).expect("encodes");
        assert_eq!(again, bytes, "{name}");
        // Every prefix is incomplete, never an error.
        for cut in 0..bytes.len() {
            assert!(matches!(
                decode_delimited(&bytes[..cut], DEFAULT_MAX_MESSAGE_SIZE),
                Ok(None)
            ));
        }
    }
}

#[test]
fn stream_frames() {
    let mut codec = StreamFrameCodec::default();
    let cases = [
        (
            "stream.message",
            StreamFrame::Message(vector("dht.ping_response").into()),
        ),
        (
            "stream.message_empty",
            StreamFrame::Message(Vec::new().into()),
        ),
        ("stream.error", StreamFrame::error("stream boom")),
        ("stream.end_of_stream", StreamFrame::end_of_stream()),
    ];
    for (name, expected) in cases {
        let bytes = vector(name);
        let mut buf = BytesMut::from(bytes.as_slice());
        let frame = codec
            .decode_eof(&mut buf)
            .expect("decodes")
            .expect("complete");
        assert!(buf.is_empty(), "{name} left bytes");
        assert_eq!(frame, expected, "{name}");
        let mut out = BytesMut::new();
        codec.encode(frame, &mut out).expect("encodes");
        assert_eq!(out.as_ref(), bytes.as_slice(), "{name}");
    }
    assert_eq!(vector("stream.end_of_stream"), END_OF_STREAM);
    assert!(
        StreamFrame::Error(
            servicer_runtime::hivemind::proto::StreamError::decode(&[][..]).unwrap_or_default()
        )
        .is_end_of_stream()
    );
}
