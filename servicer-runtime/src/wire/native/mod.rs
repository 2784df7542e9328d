//! The native wire: every call runs on a libp2p stream of one protocol, [`PROTOCOL`], as frames
//! `kind | u32 length | payload` (see [`frame`]) whose messages the [`codec`] encodes (bincode,
//! serde types). A call is a call header, messages, and an end or an error frame; streams of
//! finished calls are pooled and reused, so a call costs one round trip and no negotiation.

mod client;
pub mod codec;
pub mod frame;
mod io;
mod pool;
mod server;

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use bytes::BytesMut;
use futures::Stream;
use libp2p::{PeerId, StreamProtocol};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use pool::Pool;
use server::ServeFn;

use super::{Call, Connector, Dispatch, Encode, Message, WireId, WireImpl};
use crate::{RequestStream, ResponseStream, RpcContext, RpcError};

/// The one protocol of the native wire; the handler's name travels in each call's header.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/servicer/rpc/1.0.0");

/// This project's own wire: one protocol, [`frame`]s, serde messages encoded by the [`codec`],
/// reused streams. Every node speaks it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Native;

impl<T: Serialize + DeserializeOwned> Encode<Native> for T {
    #[inline]
    fn encode(&self, dst: &mut BytesMut) -> Result<usize, RpcError> {
        codec::encode_into(self, dst)
    }

    #[inline]
    fn decode(bytes: &[u8], limit: usize) -> Result<Self, RpcError> {
        codec::decode(bytes, limit)
    }
}

impl WireId for Native {
    const NAME: &'static str = "native";

    type Serve = Arc<ServeFn>;
}

impl WireImpl for Native {
    fn serve_unary<Req, Resp, E, F, Fut>(f: F) -> Self::Serve
    where
        Req: Message<Self>,
        Resp: Message<Self>,
        E: Display + Send + 'static,
        F: Fn(Req, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        Arc::new(move |call| Box::pin(server::serve_unary(f.clone(), call)))
    }

    fn serve_stream_unary<Req, Resp, E, F, Fut>(f: F) -> Self::Serve
    where
        Req: Message<Self>,
        Resp: Message<Self>,
        E: Display + Send + 'static,
        F: Fn(RequestStream<Req>, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        Arc::new(move |call| Box::pin(server::serve_stream_unary(f.clone(), call)))
    }

    fn serve_unary_stream<Req, Resp, E, F, Fut>(f: F) -> Self::Serve
    where
        Req: Message<Self>,
        Resp: Message<Self>,
        E: Display + Send + 'static,
        F: Fn(Req, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResponseStream<Resp>, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        Arc::new(move |call| Box::pin(server::serve_unary_stream(f.clone(), call)))
    }

    fn serve_stream_stream<Req, Resp, E, F, Fut>(f: F) -> Self::Serve
    where
        Req: Message<Self>,
        Resp: Message<Self>,
        E: Display + Send + 'static,
        F: Fn(RequestStream<Req>, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResponseStream<Resp>, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        Arc::new(move |call| Box::pin(server::serve_stream_stream(f.clone(), call)))
    }

    fn handler_protocol(_name: &str) -> Result<Option<StreamProtocol>, RpcError> {
        Ok(None)
    }

    fn accepts(protocol: &StreamProtocol) -> bool {
        *protocol == PROTOCOL
    }

    fn serve_inbound<D: Dispatch>(
        stream: libp2p::Stream,
        _protocol: &StreamProtocol,
        remote: PeerId,
        dispatch: Arc<D>,
    ) -> impl Future<Output = ()> + Send + 'static {
        server::serve_stream(stream, remote, dispatch)
    }

    fn unary<C, Req, Resp>(
        call: Call<'_, C>,
        request: Req,
    ) -> impl Future<Output = Result<Resp, RpcError>> + Send
    where
        C: Connector,
        Req: Message<Self>,
        Resp: Message<Self>,
    {
        client::unary(call, request)
    }

    fn stream_unary<C, Req, Resp, S>(
        call: Call<'_, C>,
        requests: S,
    ) -> impl Future<Output = Result<Resp, RpcError>> + Send
    where
        C: Connector,
        Req: Message<Self>,
        Resp: Message<Self>,
        S: Stream<Item = Req> + Send + 'static,
    {
        client::stream_unary(call, requests)
    }

    fn unary_stream<C, Req, Resp>(
        call: Call<'_, C>,
        request: Req,
    ) -> impl Future<Output = Result<ResponseStream<Resp>, RpcError>> + Send
    where
        C: Connector,
        Req: Message<Self>,
        Resp: Message<Self>,
    {
        client::unary_stream(call, request)
    }

    fn stream_stream<C, Req, Resp, S>(
        call: Call<'_, C>,
        requests: S,
    ) -> impl Future<Output = Result<ResponseStream<Resp>, RpcError>> + Send
    where
        C: Connector,
        Req: Message<Self>,
        Resp: Message<Self>,
        S: Stream<Item = Req> + Send + 'static,
    {
        client::stream_stream(call, requests)
    }
}
