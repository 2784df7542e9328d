//! [`Message`]: what a request or response must be to travel on a wire.

use super::Encode;

/// A type that can travel as a request or response on wire `W`: on [`Native`](crate::Native),
/// any serde type (`Serialize + DeserializeOwned`); on [`Hivemind`](crate::Hivemind), any
/// protobuf message (`prost::Message + Default`), such as hivemind's own.
pub trait Message<W>: Encode<W> + Send + 'static {}

impl<W, T: Encode<W> + Send + 'static> Message<W> for T {}
