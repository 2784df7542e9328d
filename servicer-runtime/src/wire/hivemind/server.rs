//! The server half of hivemind's wire: the stream was negotiated for the handler's own protocol
//! (`Class.rpc_x`), so the handler is known before a byte of the call arrives. A unary call is one
//! envelope each way; a streaming call is frames until `END_OF_STREAM` one way and until the end
//! of the stream the other.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Stream, StreamExt};
use libp2p::PeerId;
use tokio::sync::mpsc;

use super::HivemindWireError;
use super::frames::{StreamFrame, read_frame_charged};
use super::unary::{
    UnaryOutcome, UnaryReply, UnaryRequest, encode_delimited, read_envelope_charged,
};
use crate::memory::{Held, SPENT};
use crate::wire::{
    Admission, Dispatch, Encode, Message, REQUEST_PREFETCH, Route, caller_gone, unless_stalled,
};
use crate::{RequestStream, ResponseStream, RpcContext, RpcError};

/// A unary handler with its types erased: request bytes in, response bytes or the error text out.
pub(crate) type UnaryFn =
    dyn Fn(Bytes, RpcContext) -> BoxFuture<'static, Result<Vec<u8>, String>> + Send + Sync;

/// A streaming handler of any of the three streaming kinds, types erased: unary input takes the
/// first request, unary output is a stream of one.
pub(crate) type StreamFn = dyn Fn(
        RequestStream<Bytes>,
        RpcContext,
    ) -> BoxFuture<'static, Result<ResponseStream<Vec<u8>>, String>>
    + Send
    + Sync;

/// A handler of hivemind's wire: hivemind serves unary handlers and streaming ones differently.
#[derive(Clone)]
pub enum HivemindServe {
    /// Neither `stream_input` nor `stream_output`.
    Unary(Arc<UnaryFn>),
    /// Any of the streaming kinds.
    Stream(Arc<StreamFn>),
}

pub(super) fn erase_unary<Req, Resp, E, F, Fut>(f: F) -> HivemindServe
where
    Req: Message<super::Hivemind>,
    Resp: Message<super::Hivemind>,
    E: std::fmt::Display + Send + 'static,
    F: Fn(Req, RpcContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, E>> + Send + 'static,
{
    let f = Arc::new(f);
    HivemindServe::Unary(Arc::new(move |bytes: Bytes, ctx| {
        let f = f.clone();
        Box::pin(async move {
            let request = decode_request::<Req>(&bytes).map_err(text)?;
            match f(request, ctx).await {
                Ok(response) => encode(&response).map_err(|e| e.to_string()),
                Err(err) => Err(err.to_string()),
            }
        })
    }))
}

/// Erases a streaming handler that takes the raw request stream and returns encoded responses.
pub(super) fn erase_stream<F, Fut>(f: F) -> HivemindServe
where
    F: Fn(RequestStream<Bytes>, RpcContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ResponseStream<Vec<u8>>, String>> + Send + 'static,
{
    HivemindServe::Stream(Arc::new(move |requests, ctx| Box::pin(f(requests, ctx))))
}

/// One message as its bytes.
pub(super) fn encode<M: Encode<super::Hivemind>>(message: &M) -> Result<Vec<u8>, RpcError> {
    let mut bytes = bytes::BytesMut::new();
    message.encode(&mut bytes)?;
    Ok(Vec::from(bytes))
}

/// The raw request stream, decoded.
pub(super) fn decode_requests<Req>(requests: RequestStream<Bytes>) -> RequestStream<Req>
where
    Req: Message<super::Hivemind>,
{
    RequestStream::new(requests.map(|item| item.and_then(|bytes| decode_request(&bytes))))
}

fn decode_request<Req: Encode<super::Hivemind>>(bytes: &[u8]) -> Result<Req, RpcError> {
    super::decode_as(bytes, "request")
}

/// What the caller reads of an error: a decoding failure's own text, others as displayed.
fn text(err: RpcError) -> String {
    match err {
        RpcError::Malformed(message) => message,
        other => other.to_string(),
    }
}

/// The first request of a unary-input call made over a stream.
pub(super) async fn first_request<Req: Encode<super::Hivemind>>(
    mut requests: RequestStream<Bytes>,
) -> Result<Req, String> {
    match requests.next().await {
        Some(Ok(bytes)) => decode_request(&bytes).map_err(text),
        Some(Err(err)) => Err(err.to_string()),
        None => Err("the caller sent no request".into()),
    }
}

/// A handler's responses, encoded.
pub(super) fn encode_responses<Resp>(responses: ResponseStream<Resp>) -> ResponseStream<Vec<u8>>
where
    Resp: Message<super::Hivemind>,
{
    ResponseStream::new(responses.map(|item| item.and_then(|m| encode(&m))))
}

/// Serves the call on `stream`, negotiated for the handler `name`.
pub(super) async fn serve<D: Dispatch>(
    stream: libp2p::Stream,
    name: String,
    remote: PeerId,
    dispatch: Arc<D>,
) {
    let route = match dispatch.route::<super::Hivemind>(&name, None, remote) {
        Ok(route) => route,
        Err(err) => {
            // Removed between the negotiation and now: close, as hivemind does for unknown names
            // (docs/hivemind-compat.md#q14).
            tracing::debug!(%name, %remote, %err, "hivemind call to a handler that is gone");
            return;
        }
    };
    match route.serve.clone() {
        HivemindServe::Unary(f) => serve_unary(stream, f, route, &*dispatch).await,
        HivemindServe::Stream(f) => serve_streaming(stream, f, route, &*dispatch).await,
    }
}

/// The bytes a caller sends, one at a time: on hivemind's wire, a byte after the request, the end
/// of the caller's side or a broken stream all cancel the call (the Go daemon's
/// `notifyWhenClosed` treats a half-close the same way), which [`caller_gone`] waits for.
fn incoming<R: AsyncRead + Unpin>(reader: &mut R) -> impl Stream<Item = io::Result<u8>> + Unpin {
    futures::stream::poll_fn(move |cx| {
        let mut byte = [0u8; 1];
        Poll::Ready(
            match ready!(Pin::new(&mut *reader).poll_read(cx, &mut byte)) {
                Ok(0) => None,
                Ok(_) => Some(Ok(byte[0])),
                Err(err) => Some(Err(err)),
            },
        )
    })
}

async fn serve_unary<D: Dispatch>(
    mut stream: libp2p::Stream,
    f: Arc<UnaryFn>,
    route: Route<super::Hivemind>,
    dispatch: &D,
) {
    let serve = dispatch.settings();
    let limit = serve.call.max_message_size;
    let mut held = Held::of(dispatch.memory().clone());
    // No slot is held while the request arrives, and it must arrive soon.
    let request = match tokio::time::timeout(
        serve.request_timeout,
        read_envelope_charged(&mut stream, limit, &mut held),
    )
    .await
    {
        Ok(Ok(envelope)) => UnaryRequest::from_envelope(envelope),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(HivemindWireError::Eof),
    };
    let ctx = &route.ctx;
    let request = match request {
        Ok(request) => request,
        Err(err) => {
            // The Go daemon closes such streams without an answer; so do we.
            tracing::debug!(name = %ctx.handle_name(), error = %err, "bad hivemind unary request");
            let _ = stream.close().await;
            return;
        }
    };
    let outcome = match dispatch.admit(&route) {
        Err(err) => UnaryOutcome::Error(err.to_string()),
        Ok(admission) => {
            let result = {
                let mut from_caller = incoming(&mut stream);
                tokio::select! {
                    result = f(Bytes::from(request.data), ctx.clone()) => result,
                    _ = caller_gone(&mut from_caller) => {
                        tracing::debug!(name = %ctx.handle_name(), "hivemind caller went away; call cancelled");
                        admission.finish(false);
                        return;
                    }
                }
            };
            admission.finish(result.is_ok());
            match result {
                Ok(bytes) => UnaryOutcome::Response(bytes),
                Err(message) => UnaryOutcome::Error(message),
            }
        }
    };
    let mut reply = UnaryReply {
        call_id: request.call_id,
        outcome,
    };
    let bytes = match charged(encode_delimited(&reply.to_envelope(), limit), &mut held) {
        Ok(bytes) => bytes,
        Err(err) => {
            // Too large, or past the node's memory for messages: hivemind's Python never answers
            // here (docs/hivemind-compat.md#q5); an error is kinder to the caller.
            reply.outcome = UnaryOutcome::Error(RpcError::from(err).to_string());
            match encode_delimited(&reply.to_envelope(), limit) {
                Ok(bytes) => bytes,
                Err(_) => return,
            }
        }
    };
    if send_within(&mut stream, &bytes, serve.call.idle)
        .await
        .is_ok()
    {
        let _ = tokio::time::timeout(serve.call.idle, stream.close()).await;
    }
}

/// `encoded`, once `held` could be charged for it.
fn charged(
    encoded: Result<Vec<u8>, HivemindWireError>,
    held: &mut Held,
) -> Result<Vec<u8>, HivemindWireError> {
    let bytes = encoded?;
    if held.hold(bytes.len()) {
        Ok(bytes)
    } else {
        Err(HivemindWireError::Busy(SPENT))
    }
}

/// Writes `bytes` to `io` and flushes it, unless the caller does not make room for them within
/// `idle`: a caller that stops reading ends its call instead of holding a slot and a buffer.
async fn send_within<W: AsyncWrite + Unpin>(
    io: &mut W,
    bytes: &[u8],
    idle: Duration,
) -> Result<(), HivemindWireError> {
    let write = async {
        io.write_all(bytes).await?;
        io.flush().await?;
        Ok(())
    };
    unless_stalled(idle, write, || {
        HivemindWireError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            "the caller did not take its answer",
        ))
    })
    .await
}

/// One frame of a streaming call's answer, charged to `held`, sent within `idle`.
async fn send_frame<W: AsyncWrite + Unpin>(
    io: &mut W,
    frame: &StreamFrame,
    limit: usize,
    idle: Duration,
    held: &mut Held,
) -> Result<(), HivemindWireError> {
    let bytes = charged(frame.to_bytes(limit).map(Vec::from), held)?;
    send_within(io, &bytes, idle).await
}

async fn serve_streaming<D: Dispatch>(
    stream: libp2p::Stream,
    f: Arc<StreamFn>,
    route: Route<super::Hivemind>,
    dispatch: &D,
) {
    let settings = dispatch.settings().call;
    let (limit, idle) = (settings.max_message_size, settings.idle);
    let ctx = &route.ctx;
    let (mut reader, mut writer) = stream.split();
    let (mut held_in, mut held_out) = (
        Held::of(dispatch.memory().clone()),
        Held::of(dispatch.memory().clone()),
    );
    let admission = match dispatch.admit(&route) {
        Ok(admission) => admission,
        Err(err) => {
            let frame = StreamFrame::error(err.to_string());
            let _ = send_frame(&mut writer, &frame, limit, idle, &mut held_out).await;
            let _ = tokio::time::timeout(idle, writer.close()).await;
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, RpcError>>(REQUEST_PREFETCH);
    let requests = RequestStream::new(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    // Feeds requests to the handler until END_OF_STREAM; then waits for the caller to go away.
    let pump = async {
        let mut tx = Some(tx);
        loop {
            let next = if tx.is_some() {
                match tokio::time::timeout(
                    idle,
                    read_frame_charged(&mut reader, limit, &mut held_in),
                )
                .await
                {
                    Ok(next) => next,
                    Err(_) => Err(HivemindWireError::Eof),
                }
            } else {
                return caller_gone(&mut incoming(&mut reader)).await;
            };
            match next {
                Ok(Some(StreamFrame::Message(bytes))) => {
                    if let Some(sender) = &tx
                        && sender.send(Ok(bytes)).await.is_err()
                    {
                        // The handler stopped reading; keep draining until the end.
                    }
                }
                // END_OF_STREAM (hivemind's server ends the requests at any error frame:
                // docs/hivemind-compat.md#q15).
                Ok(Some(StreamFrame::Error(_))) => tx = None,
                Ok(None) => return,
                Err(err) => {
                    if let Some(sender) = tx.take() {
                        let _ = sender.try_send(Err(err.into()));
                    }
                    return caller_gone(&mut incoming(&mut reader)).await;
                }
            }
        }
    };
    let work = async {
        let mut responses = match f(requests, ctx.clone()).await {
            Ok(responses) => responses,
            Err(message) => {
                let frame = StreamFrame::error(message);
                let _ = send_frame(&mut writer, &frame, limit, idle, &mut held_out).await;
                return false;
            }
        };
        while let Some(item) = responses.next().await {
            let frame = match item {
                Ok(bytes) => StreamFrame::Message(Bytes::from(bytes)),
                Err(RpcError::Remote { message }) => StreamFrame::error(message),
                Err(other) => StreamFrame::error(other.to_string()),
            };
            let failed = matches!(frame, StreamFrame::Error(_));
            match send_frame(&mut writer, &frame, limit, idle, &mut held_out).await {
                Ok(()) if !failed => {}
                Ok(()) => return false,
                Err(err @ (HivemindWireError::TooLarge { .. } | HivemindWireError::Busy(_))) => {
                    let frame = StreamFrame::error(err.to_string());
                    let _ = send_frame(&mut writer, &frame, limit, idle, &mut held_out).await;
                    return false;
                }
                Err(_) => return false,
            }
        }
        true
    };
    let ok = tokio::select! {
        ok = work => ok,
        _ = pump => {
            tracing::debug!(name = %ctx.handle_name(), "hivemind caller went away; call cancelled");
            false
        }
    };
    admission.finish(ok);
    // The end of the responses is the end of the stream.
    let _ = tokio::time::timeout(idle, writer.close()).await;
}
