//! [`Encode`]: how a message type travels on a wire.

use bytes::BytesMut;

use crate::RpcError;

/// How a message type travels on wire `W`. Implemented once per wire for a whole family of types
/// (serde types on the native wire, prost types on hivemind's).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel on the {W} wire",
    note = "native messages implement serde's `Serialize + DeserializeOwned`; hivemind's implement `prost::Message + Default`"
)]
pub trait Encode<W>: Sized {
    /// Appends the encoding of `self` to `dst`; returns how many bytes it took.
    fn encode(&self, dst: &mut BytesMut) -> Result<usize, RpcError>;

    /// Decodes one message that fills `bytes` exactly; `bytes` is at most `limit` long.
    fn decode(bytes: &[u8], limit: usize) -> Result<Self, RpcError>;
}
