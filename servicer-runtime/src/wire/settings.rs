//! The limits of calls, as the wires see them.

use std::time::Duration;

/// Limits that apply to one call, on either side.
#[derive(Debug, Clone, Copy)]
pub struct CallSettings {
    /// The largest message sent or accepted.
    pub max_message_size: usize,
    /// How long a stream may go without a message.
    pub idle: Duration,
}

/// The limits of inbound calls.
#[derive(Debug, Clone, Copy)]
pub struct ServeSettings {
    /// Per call.
    pub call: CallSettings,
    /// How long a stream may wait for its next call.
    pub wait_for_call: Duration,
    /// How long a new stream's call header, and a unary-input call's request, may take to
    /// arrive; no slot is held until the request is in.
    pub request_timeout: Duration,
}
