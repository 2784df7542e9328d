//! What `#[servicer]` understood of an impl block: the servicer and one entry per handler.

use proc_macro2::{Ident, TokenStream};
use quote::quote;
use syn::{Attribute, Path, Type};

/// A servicer: the type whose impl block carries `rpc_*` handlers.
pub(crate) struct Servicer {
    /// The implementing type's name, e.g. `Foo`.
    pub ident: Ident,
    /// The name in handle names (`Name.rpc_x`): the type's name unless the attribute sets one.
    pub name: String,
    /// The path emitted code uses for the runtime crate.
    pub runtime: Path,
    pub handlers: Vec<Handler>,
    /// The wire its handlers serve and its stub calls on.
    pub wire: Wire,
}

/// The runtime's wire types a servicer can be made for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// `wire = "native"` (the default): serde messages.
    Native,
    /// `wire = "hivemind"`: protobuf (`prost`) messages on hivemind's wire.
    Hivemind,
}

impl Wire {
    /// The runtime's type for this wire.
    pub(crate) fn path(self, runtime: &Path) -> TokenStream {
        match self {
            Wire::Native => quote! { #runtime::Native },
            Wire::Hivemind => quote! { #runtime::Hivemind },
        }
    }
}

/// One `async fn rpc_x(&self, request: R, ctx: RpcContext) -> Result<T, E>`.
pub(crate) struct Handler {
    pub ident: Ident,
    pub request: Payload,
    pub response: Payload,
    /// Its `#[cfg]`s: the stub method and the registration exist under the same conditions.
    pub cfgs: Vec<Attribute>,
    /// Its `#[doc]`, `#[deprecated]` and `#[allow]`s, which its stub method carries too.
    pub forwarded: Vec<Attribute>,
}

/// A message type, or a stream of them.
pub(crate) enum Payload {
    /// One message of this type.
    Message(Type),
    /// `RequestStream<T>` or `ResponseStream<T>`: a stream of `T`.
    Stream(Type),
}

impl Payload {
    pub(crate) fn item(&self) -> &Type {
        match self {
            Payload::Message(ty) | Payload::Stream(ty) => ty,
        }
    }

    pub(crate) fn is_stream(&self) -> bool {
        matches!(self, Payload::Stream(_))
    }
}

/// The four kinds, named as the runtime's `RpcKind` variants.
pub(crate) fn kind_name(handler: &Handler) -> &'static str {
    match (handler.request.is_stream(), handler.response.is_stream()) {
        (false, false) => "UnaryUnary",
        (true, false) => "StreamUnary",
        (false, true) => "UnaryStream",
        (true, true) => "StreamStream",
    }
}

/// The runtime's `Handler` constructor and `StubBase` method for a handler's kind (the same name).
pub(crate) fn runtime_fn(handler: &Handler) -> &'static str {
    match (handler.request.is_stream(), handler.response.is_stream()) {
        (false, false) => "unary",
        (true, false) => "stream_unary",
        (false, true) => "unary_stream",
        (true, true) => "stream_stream",
    }
}

/// Names the macro adds to the servicer's type; a user method with one of them would clash.
pub(crate) const GENERATED_NAMES: &[&str] = &[
    "SERVICER_NAME",
    "RPC_HANDLERS",
    "get_stub",
    "get_stub_in_namespace",
    "add_p2p_handlers",
    "add_p2p_handlers_with",
    "remove_p2p_handlers",
];
