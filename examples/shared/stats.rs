//! Medians and percentiles of measurements, shared by the benchmarks.

use std::time::Duration;

/// The middle value (the upper one of an even count); panics on none.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The value at fraction `p` of `sorted` (zero when there is none).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}
