//! hivemind 1.1.12's wire format: the pieces a node needs to call, and be called by, a hivemind
//! peer (a Python process behind learning-at-home's `p2pd` Go daemon).
//!
//! This is the `hivemind` wire mode (design §7, [`crate::WireMode::Hivemind`]): a node created
//! with it negotiates hivemind's protocol names through [`muxer`], serves handlers made with
//! `Handler::proto_*`, and calls them with `StubBase::proto_*` (which `#[servicer(wire = "hivemind")]`
//! generates). The facts come from `shared/reference/hivemind-wire.md`
//! and from hivemind's and the daemon's sources, cited in each module.
//!
//! - [`proto`]: the protobuf messages (hand-written `prost` derives): the unary envelope, the stream
//!   error frame and the DHT's messages.
//! - [`unary`]: one unary call = one libp2p stream carrying one varint-delimited
//!   `PersistentConnectionRequest` each way, with a 16-byte call id.
//! - [`frames`]: streaming calls: `marker | u64 big-endian length | protobuf` frames, and
//!   `END_OF_STREAM`.
//! - [`negotiate`]: the multistream-select 1.0 message codec, for any protocol name.
//! - [`muxer`]: how a node negotiates names without a leading `/` (`DHTProtocol.rpc_ping`),
//!   which rust-libp2p's own negotiation refuses: a stream-muxer wrapper that translates them.
//! - [`HivemindWireError`]: what all of them report; it converts into [`crate::RpcError`].
//!
//! Every decoder here takes untrusted bytes: lengths are checked against a limit
//! ([`MAX_MESSAGE_SIZE`] by default) before anything is buffered, and malformed input is an
//! error, never a panic.

pub(crate) mod client;
mod error;
pub mod frames;
pub mod muxer;
pub mod negotiate;
pub mod proto;
pub(crate) mod server;
#[cfg(test)]
mod test_messages;
pub mod unary;
mod varint;

pub use error::HivemindWireError;

/// hivemind's limit on one message: 4 MiB (`DEFAULT_MAX_MSG_SIZE`, `hivemind/p2p/p2p_daemon_bindings/control.py:36`;
/// the daemon's `-persistentConnMaxMsgSize=4194304`). Unary envelopes above it are refused by the
/// Go daemon; this module applies the same limit to stream frames by default.
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// The protobuf runtime the message types of this module derive from, for users who write their
/// own hivemind messages.
pub use prost;

/// Reads the `len` bytes of a message whose `header_len` header bytes were read already.
async fn read_payload<R: futures::AsyncRead + Unpin>(
    io: &mut R,
    len: usize,
    header_len: usize,
) -> Result<Vec<u8>, HivemindWireError> {
    use futures::AsyncReadExt;
    // The buffer grows as bytes arrive: an announced length is no allocation by itself.
    let mut payload = Vec::with_capacity(len.min(64 * 1024));
    (&mut *io)
        .take(len as u64)
        .read_to_end(&mut payload)
        .await?;
    if payload.len() < len {
        return Err(HivemindWireError::Truncated {
            buffered: header_len + payload.len(),
        });
    }
    Ok(payload)
}
