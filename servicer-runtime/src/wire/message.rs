//! [`Message`]: what a request or response must be to travel on a wire.

use super::{Encode, Wire};

/// A type that can travel as a request or response on wire `W`: on [`Native`](crate::Native),
/// any serde type (`Serialize + DeserializeOwned`); on [`Hivemind`](crate::Hivemind), any
/// protobuf message (`prost::Message + Default`), such as hivemind's own.
pub trait Message<W: Wire>: Encode<W> + Send + 'static {}

impl<W: Wire, T: Encode<W> + Send + 'static> Message<W> for T {}
