//! The servicer model, the same on every wire: the kinds of call, handle names, what a handler
//! knows about its call, the streams of the API and interceptors. Nothing here touches the network.

mod context;
mod interceptor;
mod kind;
mod name;
mod stream;

pub use context::RpcContext;
pub use interceptor::Interceptor;
pub use kind::RpcKind;
pub(crate) use name::HandlePrefix;
pub use name::handle_name;
pub use stream::{RequestStream, ResponseSender, ResponseStream};
