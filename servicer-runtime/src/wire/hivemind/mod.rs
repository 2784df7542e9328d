//! hivemind 1.1.12's wire: the pieces a node needs to call, and be called by, a hivemind peer (a
//! Python process behind learning-at-home's `p2pd` Go daemon). `docs/hivemind-compat.md` has the
//! facts this module relies on.
//!
//! A node created with [`WireMode::Hivemind`](crate::WireMode::Hivemind) negotiates hivemind's
//! protocol names (through the transport's translating muxer), serves `Handler<Hivemind>`s and
//! calls them with `StubBase<Hivemind>` (which `#[servicer(wire = "hivemind")]` generates).
//!
//! - [`proto`]: the protobuf messages (hand-written `prost` derives): the unary envelope and the
//!   stream error frame.
//! - [`unary`]: one unary call = one libp2p stream carrying one varint-delimited
//!   `PersistentConnectionRequest` each way, with a 16-byte call id.
//! - [`frames`]: streaming calls: `marker | u64 big-endian length | protobuf` frames, and
//!   `END_OF_STREAM`.
//! - [`negotiate`]: the multistream-select 1.0 message codec, for any protocol name.
//! - [`HivemindWireError`]: what all of them report; it converts into [`crate::RpcError`].
//!
//! Every decoder here takes untrusted bytes: lengths are checked against a limit
//! ([`DEFAULT_MAX_MESSAGE_SIZE`](crate::DEFAULT_MAX_MESSAGE_SIZE), hivemind's own, by default)
//! before anything is buffered, and malformed input is an error, never a panic.

mod client;
mod error;
pub mod frames;
pub mod negotiate;
pub mod proto;
mod server;
#[cfg(test)]
mod test_messages;
pub mod unary;
pub(crate) mod varint;

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use bytes::BytesMut;
use futures::Stream;
use libp2p::{PeerId, StreamProtocol};

pub use error::HivemindWireError;

use super::{Call, Connector, Dispatch, Encode, Message, WireId, WireImpl};
use crate::memory::{Held, SPENT};
use crate::{RequestStream, ResponseStream, RpcContext, RpcError};

/// hivemind 1.1.12's wire: each handler is a libp2p protocol named `Class.rpc_x` (no leading
/// `/`), a unary call is one stream with one envelope each way, streaming calls are frames, and
/// messages are protobuf (`prost`). Nodes created with
/// [`WireMode::Hivemind`](crate::WireMode::Hivemind) speak it (and the native wire too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Hivemind;

/// What the runtime puts in front of a hivemind name to make it a valid rust-libp2p protocol; the
/// transport's translating muxer maps `PREFIX ++ name` to and from the bare name on the wire.
pub(crate) const PREFIX: &str = "/servicer/hivemind/";

/// The rust-libp2p protocol that stands for the hivemind handler `name` inside this node.
pub(crate) fn protocol(name: &str) -> Result<StreamProtocol, RpcError> {
    if name.is_empty() || name.contains('\n') {
        return Err(RpcError::Malformed(format!(
            "invalid handler name {name:?}"
        )));
    }
    StreamProtocol::try_from_owned(format!("{PREFIX}{name}"))
        .map_err(|e| RpcError::Malformed(format!("invalid handler name {name:?}: {e}")))
}

/// A message decoded from `bytes`; a failure says what it was (`what`: "request", "a response").
fn decode_as<M: Encode<Hivemind>>(bytes: &[u8], what: &str) -> Result<M, RpcError> {
    M::decode(bytes, bytes.len()).map_err(|err| match err {
        RpcError::Malformed(message) => {
            RpcError::Malformed(format!("cannot decode {what}: {message}"))
        }
        other => other,
    })
}

impl<T: prost::Message + Default> Encode<Hivemind> for T {
    fn encode(&self, dst: &mut BytesMut) -> Result<usize, RpcError> {
        let len = self.encoded_len();
        dst.reserve(len);
        prost::Message::encode(self, dst)
            .map_err(|e| RpcError::Malformed(format!("cannot encode message: {e}")))?;
        Ok(len)
    }

    fn decode(bytes: &[u8], limit: usize) -> Result<Self, RpcError> {
        if bytes.len() > limit {
            return Err(RpcError::MessageTooLarge {
                size: bytes.len(),
                limit,
            });
        }
        T::decode(bytes).map_err(|e| RpcError::Malformed(e.to_string()))
    }
}

impl WireId for Hivemind {
    const NAME: &'static str = "hivemind";

    type Serve = server::HivemindServe;
}

impl WireImpl for Hivemind {
    fn serve_unary<Req, Resp, E, F, Fut>(f: F) -> Self::Serve
    where
        Req: Message<Self>,
        Resp: Message<Self>,
        E: Display + Send + 'static,
        F: Fn(Req, RpcContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    {
        server::erase_unary(f)
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
        server::erase_stream(move |requests, ctx| {
            let f = f.clone();
            async move {
                let response = f(server::decode_requests(requests), ctx)
                    .await
                    .map_err(|e| e.to_string())?;
                let bytes = server::encode(&response).map_err(|e| e.to_string())?;
                Ok(ResponseStream::iter([bytes]))
            }
        })
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
        server::erase_stream(move |requests, ctx| {
            let f = f.clone();
            async move {
                let request = server::first_request::<Req>(requests).await?;
                let responses = f(request, ctx).await.map_err(|e| e.to_string())?;
                Ok(server::encode_responses(responses))
            }
        })
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
        server::erase_stream(move |requests, ctx| {
            let f = f.clone();
            async move {
                let responses = f(server::decode_requests(requests), ctx)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(server::encode_responses(responses))
            }
        })
    }

    fn handler_protocol(name: &str) -> Result<Option<StreamProtocol>, RpcError> {
        protocol(name).map(Some)
    }

    fn accepts(protocol: &StreamProtocol) -> bool {
        protocol.as_ref().starts_with(PREFIX)
    }

    fn serve_inbound<D: Dispatch>(
        stream: libp2p::Stream,
        protocol: &StreamProtocol,
        remote: PeerId,
        dispatch: Arc<D>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let name = protocol.as_ref().strip_prefix(PREFIX).unwrap_or_default();
        server::serve(stream, name.to_owned(), remote, dispatch)
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
        client::stream_stream(call, futures::stream::iter([request]))
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

/// Reads the `len` bytes of a message whose `header_len` header bytes were read already.
async fn read_payload<R: futures::AsyncRead + Unpin>(
    io: &mut R,
    len: usize,
    header_len: usize,
    held: &mut Held,
) -> Result<Vec<u8>, HivemindWireError> {
    use futures::AsyncReadExt;
    // A large payload is charged before it is buffered, until its call ends.
    if !held.hold_at_least(header_len + len) {
        return Err(HivemindWireError::Busy(SPENT));
    }
    // The buffer grows as bytes arrive: an announced length is no allocation by itself.
    let mut payload = Vec::with_capacity(len.min(64 * 1024));
    (&mut *io)
        .take(len as u64)
        .read_to_end(&mut payload)
        .await?;
    if payload.len() < len {
        return Err(HivemindWireError::Truncated {
            buffered: header_len + payload.len(),
        });
    }
    Ok(payload)
}
