//! DHT time: f64 seconds since the Unix epoch, as hivemind's `get_dht_time()`.

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch; every value carries such an expiration time.
pub type DhtTime = f64;

/// How far apart two nodes' clocks may be (hivemind's `MAX_DHT_TIME_DISCREPANCY_SECONDS`).
pub const MAX_DHT_TIME_DISCREPANCY_SECONDS: f64 = 3.0;

/// The current DHT time.
pub fn get_dht_time() -> DhtTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A value and the time it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueWithExpiration<V> {
    /// The value.
    pub value: V,
    /// When it expires.
    pub expiration_time: DhtTime,
}

impl<V> ValueWithExpiration<V> {
    /// A value expiring at `expiration_time`.
    pub fn new(value: V, expiration_time: DhtTime) -> Self {
        ValueWithExpiration {
            value,
            expiration_time,
        }
    }
}
