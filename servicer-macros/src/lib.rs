//! `#[servicer]`: turns an impl block of `async fn rpc_*` handlers into a typed client stub and
//! server registration over `servicer-runtime`, at compile time.
//!
//! The crate is laid out as a pipeline: `parse` reads syn's impl block into the `model`,
//! collecting every error with its span, and `emit` writes the generated items.

#![warn(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::parse::Parser;
use syn::spanned::Spanned;

mod emit;
mod model;
mod parse;

/// Makes a servicer of an inherent impl block.
///
/// Every `async fn rpc_x(&self, request: R, ctx: RpcContext) -> Result<T, E>` is a handler. `R` is
/// a message type (serde, `Send + 'static`) or `RequestStream<M>`; `T` is a message type or
/// `ResponseStream<M>`; `E` is any `Display` type, whose text reaches the caller as
/// `RpcError::Remote`. Other methods are left as they are.
///
/// For `impl Foo` it emits `FooStub` (one method per handler, same names), `Foo::get_stub`,
/// `Foo::get_stub_in_namespace`, `Foo::add_p2p_handlers`, `Foo::add_p2p_handlers_with` (with an
/// interceptor), `Foo::remove_p2p_handlers`, and the consts `Foo::SERVICER_NAME` and
/// `Foo::RPC_HANDLERS`. Handle names are `Foo.rpc_x`, or `ns::Foo.rpc_x` in a namespace, as in
/// hivemind.
///
/// The runtime crate is found through the caller's dependencies (`servicer-runtime`, or the
/// `servicer` facade); `#[servicer(crate = "path::to::runtime")]` names it explicitly.
/// `#[servicer(name = "Name")]` sets the servicer's name in handle names (e.g. to match a Python
/// class such as hivemind's `DHTProtocol`). `#[servicer(wire = "hivemind")]` makes a servicer for
/// hivemind's wire: its messages are protobuf (`prost::Message + Default`) instead of serde, its
/// handlers are `Handler<Hivemind>`s and its stub a `StubBase<Hivemind>`, so it needs a node
/// created with `WireMode::Hivemind`.
///
/// A handler's `#[cfg]`s apply to its stub method and its registration too, and its `#[doc]`,
/// `#[deprecated]` and `#[allow]` attributes are copied onto its stub method.
#[proc_macro_attribute]
pub fn servicer(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item2: proc_macro2::TokenStream = item.clone().into();
    match expand(attr.into(), item2.clone()) {
        Ok(tokens) => tokens.into(),
        Err(err) => {
            // Keep the user's items so that one mistake does not cascade into unrelated errors.
            let errors = err.to_compile_error();
            quote!(#errors #item2).into()
        }
    }
}

fn expand(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let args = Args::parse(attr)?;
    let runtime = runtime_path(args.runtime)?;
    let item_impl: syn::ItemImpl = match syn::parse2::<syn::Item>(item)? {
        syn::Item::Impl(item_impl) => item_impl,
        other => {
            return Err(syn::Error::new(
                other.span(),
                "#[servicer] goes on an impl block: `#[servicer] impl Foo { async fn rpc_x(..) }`",
            ));
        }
    };
    let mut model = parse::servicer(&item_impl, runtime)?;
    if let Some(name) = args.name {
        model.name = name;
    }
    model.wire = args.wire;
    let generated = emit::servicer(&model);
    Ok(quote! {
        #item_impl
        #generated
    })
}

/// The attribute's arguments.
struct Args {
    /// `crate = "path::to::runtime"`.
    runtime: Option<syn::Path>,
    /// `name = "Name"`: the servicer's name in handle names (default: the type's name).
    name: Option<String>,
    /// `wire = "hivemind"` (protobuf messages on hivemind's wire) or `wire = "native"`.
    wire: model::Wire,
}

impl Args {
    fn parse(attr: proc_macro2::TokenStream) -> syn::Result<Args> {
        let mut args = Args {
            runtime: None,
            name: None,
            wire: model::Wire::Native,
        };
        if attr.is_empty() {
            return Ok(args);
        }
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                let value: syn::LitStr = meta.value()?.parse()?;
                args.runtime = Some(value.parse::<syn::Path>()?);
                Ok(())
            } else if meta.path.is_ident("name") {
                let value: syn::LitStr = meta.value()?.parse()?;
                let name = value.value();
                if name.is_empty() || name.contains(['.', '/']) || name.contains("::") {
                    return Err(syn::Error::new(
                        value.span(),
                        "a servicer name must be non-empty and contain no `.`, `/` or `::`",
                    ));
                }
                args.name = Some(name);
                Ok(())
            } else if meta.path.is_ident("wire") {
                let value: syn::LitStr = meta.value()?.parse()?;
                args.wire = match value.value().as_str() {
                    "native" => model::Wire::Native,
                    "hivemind" => model::Wire::Hivemind,
                    _ => {
                        return Err(syn::Error::new(
                            value.span(),
                            "the wire is `\"native\"` (serde messages, the default) or `\"hivemind\"` (protobuf messages)",
                        ));
                    }
                };
                Ok(())
            } else {
                Err(meta.error(
                    "unknown argument; expected `crate = \"path::to::runtime\"`, `name = \"Name\"` or `wire = \"hivemind\"`",
                ))
            }
        });
        parser.parse2(attr)?;
        Ok(args)
    }
}

/// The explicit runtime path if given, else the runtime as the calling crate depends on it.
fn runtime_path(explicit: Option<syn::Path>) -> syn::Result<syn::Path> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    use proc_macro_crate::{FoundCrate, crate_name};
    let found = match crate_name("servicer-runtime") {
        Ok(FoundCrate::Name(name)) => format!("::{name}"),
        Ok(FoundCrate::Itself) => "crate".to_string(),
        Err(_) => match crate_name("p2p-servicer") {
            Ok(FoundCrate::Name(name)) => format!("::{name}::runtime"),
            Ok(FoundCrate::Itself) => "crate::runtime".to_string(),
            Err(_) => "::servicer_runtime".to_string(),
        },
    };
    syn::parse_str(&found).map_err(|e| syn::Error::new(Span::call_site(), e))
}
