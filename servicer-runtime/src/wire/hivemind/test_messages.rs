//! Test-only messages with the field numbers of hivemind's `NodeInfo`, `PingRequest` and
//! `PingResponse` (`dht.proto`, without the `auth` fields), so the codec tests can use realistic
//! payloads without the runtime knowing the DHT.

#[derive(Clone, PartialEq, ::prost::Message)]
pub(crate) struct NodeInfo {
    #[prost(bytes = "vec", tag = "1")]
    pub node_id: Vec<u8>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub(crate) struct PingRequest {
    #[prost(message, optional, tag = "2")]
    pub peer: Option<NodeInfo>,
    #[prost(bool, tag = "3")]
    pub validate: bool,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub(crate) struct PingResponse {
    #[prost(message, optional, tag = "2")]
    pub peer: Option<NodeInfo>,
    #[prost(double, tag = "4")]
    pub dht_time: f64,
    #[prost(bool, tag = "5")]
    pub available: bool,
}

/// Bytes from hex digits, ignoring spaces and newlines, so test vectors can be laid out as
/// their fields are.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).unwrap_or("00");
            u8::from_str_radix(text, 16).unwrap_or(0)
        })
        .collect()
}
