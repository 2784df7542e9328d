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
}
