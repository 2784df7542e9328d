//! Serving: handlers, the registry they are kept in, admission of inbound calls, and the
//! dispatch of an inbound stream to the wire it speaks. Written once for every wire.

mod admission;
mod dispatch;
mod handler;
mod registry;

pub(crate) use dispatch::Server;
pub use handler::Handler;
