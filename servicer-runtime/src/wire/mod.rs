//! The wires: the seam between the servicer model and the bytes on the network.
//!
//! A [`Wire`] is a type with two implementations, [`Native`] (this project's wire) and
//! [`Hivemind`] (hivemind 1.1.12's). Each owns its protocol names, framing and message codec, and
//! both halves of the four kinds of call: the client half runs a call on streams a [`Connector`]
//! opens; the server half serves an inbound stream, asking a [`Dispatch`] for the handler and
//! for admission. Everything above this layer (handlers, the registry, the node, stubs) is
//! written once, generic over the wire.

mod abort;
mod connector;
mod dispatch;
mod encode;
mod gone;
pub(crate) mod hivemind;
mod message;
pub(crate) mod native;
mod seam;
mod settings;
mod stall;

pub(crate) use abort::AbortOnDrop;
pub(crate) use connector::{Call, Connector};
pub(crate) use dispatch::{Admission, Dispatch, Route, WireId};
pub(crate) use encode::Encode;
pub(crate) use gone::caller_gone;
pub use hivemind::Hivemind;
pub use message::Message;
pub use native::Native;
pub(crate) use native::{PROTOCOL, Pool};
pub(crate) use seam::WireImpl;
pub(crate) use settings::{CallSettings, ServeSettings};
pub(crate) use stall::unless_stalled;

/// How many decoded requests a stream-input handler may have waiting for it.
pub(crate) const REQUEST_PREFETCH: usize = 8;

/// A wire the runtime speaks: [`Native`] or [`Hivemind`]. Handlers ([`Handler`](crate::Handler))
/// and stubs ([`StubBase`](crate::StubBase)) are generic over it, so the four kinds of call read
/// the same on both; the wire only decides the bytes.
///
/// The trait is sealed: its machinery is internal to the runtime.
pub trait Wire: WireImpl + Copy + Default + std::fmt::Debug + Send + Sync + 'static {}

impl Wire for Native {}
impl Wire for Hivemind {}
