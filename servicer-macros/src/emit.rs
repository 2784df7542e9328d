//! From the [`Servicer`] model to the stub type and the registration code.
//!
//! Every path is fully qualified so the output compiles under `#![no_implicit_prelude]` and next to
//! user types named `Result`, `Option` or `Arc`. A handler's `#[cfg]`s go on everything generated
//! for it, so a handler compiled out leaves no trace on either side.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::model::{Handler, Servicer, kind_name, runtime_fn};

pub(crate) fn servicer(model: &Servicer) -> TokenStream {
    let ident = &model.ident;
    let rt = &model.runtime;
    let name = &model.name;
    let wire = model.wire.path(rt);
    let stub = format_ident!("{}Stub", ident);
    let stub_doc = format!(
        "Client stub for [`{ident}`]: each method calls the same-named handler on a remote peer."
    );
    let stub_methods = model.handlers.iter().map(|h| stub_method(model, h));
    let kinds = model.handlers.iter().map(|h| {
        let cfgs = &h.cfgs;
        let method = h.ident.to_string();
        let kind = format_ident!("{}", kind_name(h));
        quote! { #(#cfgs)* (#method, #rt::RpcKind::#kind) }
    });
    let registrations = model.handlers.iter().map(|h| registration(model, h));
    let names = model.handlers.iter().map(|h| {
        let cfgs = &h.cfgs;
        let method = h.ident.to_string();
        quote! { #(#cfgs)* names.push(#rt::handle_name(namespace, #name, #method)); }
    });
    quote! {
        #[doc = #stub_doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        pub struct #stub {
            base: #rt::StubBase<#wire>,
        }

        impl #stub {
            /// Wraps a stub base (see `get_stub` for the usual way in).
            pub fn from_base(base: #rt::StubBase<#wire>) -> Self {
                Self { base }
            }

            /// A copy whose unary calls use this deadline.
            pub fn with_deadline(&self, deadline: ::core::time::Duration) -> Self {
                Self { base: self.base.with_deadline(deadline) }
            }

            /// The peer this stub calls.
            pub fn peer(&self) -> #rt::PeerId {
                self.base.peer()
            }

            /// The untyped stub underneath.
            pub fn base(&self) -> &#rt::StubBase<#wire> {
                &self.base
            }

            #(#stub_methods)*
        }

        impl #ident {
            /// The servicer's name in handle names (`Name.rpc_x`).
            pub const SERVICER_NAME: &'static str = #name;

            /// Every handler's method name and kind, in declaration order.
            pub const RPC_HANDLERS: &'static [(&'static str, #rt::RpcKind)] = &[#(#kinds),*];

            /// A stub that calls this servicer's handlers on `peer`.
            pub fn get_stub(p2p: &#rt::P2P, peer: #rt::PeerId) -> #stub {
                #stub { base: #rt::StubBase::<#wire>::new(p2p, peer, #name, ::core::option::Option::None) }
            }

            /// A stub for the instance registered under `namespace` on `peer`.
            pub fn get_stub_in_namespace(p2p: &#rt::P2P, peer: #rt::PeerId, namespace: &str) -> #stub {
                #stub {
                    base: #rt::StubBase::<#wire>::new(p2p, peer, #name, ::core::option::Option::Some(namespace)),
                }
            }

            /// Serves every handler of this instance on `p2p` (all or none), optionally under a
            /// namespace.
            pub fn add_p2p_handlers(
                self: ::std::sync::Arc<Self>,
                p2p: &#rt::P2P,
                namespace: ::core::option::Option<&str>,
            ) -> ::core::result::Result<(), #rt::RpcError> {
                Self::__servicer_register(self, p2p, namespace, ::core::option::Option::None)
            }

            /// Like `add_p2p_handlers`, with an interceptor that sees (and may refuse) every call.
            pub fn add_p2p_handlers_with(
                self: ::std::sync::Arc<Self>,
                p2p: &#rt::P2P,
                namespace: ::core::option::Option<&str>,
                interceptor: ::std::sync::Arc<dyn #rt::Interceptor>,
            ) -> ::core::result::Result<(), #rt::RpcError> {
                Self::__servicer_register(self, p2p, namespace, ::core::option::Option::Some(interceptor))
            }

            /// Stops serving this servicer's handlers (under `namespace`) on `p2p`.
            pub fn remove_p2p_handlers(
                p2p: &#rt::P2P,
                namespace: ::core::option::Option<&str>,
            ) -> ::core::result::Result<(), #rt::RpcError> {
                #[allow(unused_mut)]
                let mut names: ::std::vec::Vec<::std::string::String> = ::std::vec::Vec::new();
                #(#names)*
                p2p.remove_handlers(names)
            }

            // Registering a deprecated handler is not a use of it; a servicer may have no handlers.
            #[allow(deprecated, unused_mut, unused_variables)]
            fn __servicer_register(
                this: ::std::sync::Arc<Self>,
                p2p: &#rt::P2P,
                namespace: ::core::option::Option<&str>,
                interceptor: ::core::option::Option<::std::sync::Arc<dyn #rt::Interceptor>>,
            ) -> ::core::result::Result<(), #rt::RpcError> {
                let mut handlers: ::std::vec::Vec<(::std::string::String, #rt::Handler<#wire>)> =
                    ::std::vec::Vec::new();
                #(#registrations)*
                p2p.add_handlers(handlers, interceptor)
            }
        }
    }
}

fn stub_method(model: &Servicer, handler: &Handler) -> TokenStream {
    let rt = &model.runtime;
    let method = &handler.ident;
    let method_name = method.to_string();
    let req = handler.request.item();
    let resp = handler.response.item();
    let cfgs = &handler.cfgs;
    let forwarded = &handler.forwarded;
    let has_doc = forwarded.iter().any(|a| a.path().is_ident("doc"));
    let doc = (!has_doc).then(|| {
        let doc = format!("Calls `{}.{method_name}` on the remote peer.", model.name);
        quote! { #[doc = #doc] }
    });
    let output = if handler.response.is_stream() {
        quote! { #rt::ResponseStream<#resp> }
    } else {
        quote! { #resp }
    };
    let call = format_ident!("{}", runtime_fn(handler));
    if handler.request.is_stream() {
        quote! {
            #(#cfgs)*
            #(#forwarded)*
            #doc
            pub async fn #method<S>(&self, requests: S)
                -> ::core::result::Result<#output, #rt::RpcError>
            where
                S: #rt::__private::Stream<Item = #req> + ::core::marker::Send + 'static,
            {
                self.base.#call::<#req, #resp, S>(#method_name, requests).await
            }
        }
    } else {
        quote! {
            #(#cfgs)*
            #(#forwarded)*
            #doc
            pub async fn #method(&self, request: #req)
                -> ::core::result::Result<#output, #rt::RpcError>
            {
                self.base.#call::<#req, #resp>(#method_name, request).await
            }
        }
    }
}

fn registration(model: &Servicer, handler: &Handler) -> TokenStream {
    let rt = &model.runtime;
    let name = &model.name;
    let wire = model.wire.path(rt);
    let method = &handler.ident;
    let method_name = method.to_string();
    let cfgs = &handler.cfgs;
    let constructor = format_ident!("{}", runtime_fn(handler));
    let item = handler.request.item();
    let req = if handler.request.is_stream() {
        quote! { #rt::RequestStream<#item> }
    } else {
        quote! { #item }
    };
    quote! {
        #(#cfgs)*
        handlers.push((
            #rt::handle_name(namespace, #name, #method_name),
            {
                let this = <::std::sync::Arc<Self> as ::core::clone::Clone>::clone(&this);
                #rt::Handler::<#wire>::#constructor(move |request: #req, ctx: #rt::RpcContext| {
                    let this = <::std::sync::Arc<Self> as ::core::clone::Clone>::clone(&this);
                    async move { this.#method(request, ctx).await }
                })
            },
        ));
    }
}
