//! Arbitrary bytes decoded as every message that crosses the wire; what decodes must encode
//! again.
#![no_main]

use servicer_dht::messages::{
    FindRequest, FindResponse, PingRequest, PingResponse, StoreRequest, StoreResponse,
};
use libfuzzer_sys::fuzz_target;
use servicer_runtime::native::codec;
use servicer_runtime::native::frame::{CallHeader, WireError};

const LIMIT: usize = 1 << 16;

fn check<T: serde::Serialize + serde::de::DeserializeOwned>(data: &[u8]) {
    if let Ok(value) = codec::decode::<T>(data, LIMIT) {
        codec::encode(&value).expect("a decoded message encodes");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => check::<CallHeader>(data),
        1 => check::<WireError>(data),
        2 => check::<PingRequest>(data),
        3 => check::<PingResponse>(data),
        4 => check::<StoreRequest>(data),
        5 => check::<StoreResponse>(data),
        6 => check::<FindRequest>(data),
        _ => check::<FindResponse>(data),
    }
});
