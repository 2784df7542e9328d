//! The server half of the native wire: one task per inbound stream, which serves calls on it one
//! after another.
//!
//! A stream that ends a call cleanly goes back to waiting for the next call header, which is what
//! lets callers reuse streams and skip a protocol negotiation per call.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{SplitSink, SplitStream};
use futures::{FutureExt, SinkExt, Stream, StreamExt};
use libp2p::PeerId;
use tokio::sync::mpsc;

use super::codec;
use super::frame::{CallFrameCodec, CallHeader, Frame, FrameKind, Out, WireError};
use super::io::{Io, framed, shrink_buffers};
use crate::wire::{
    Admission, CallSettings, Dispatch, Encode, Message, REQUEST_PREFETCH, caller_gone,
    unless_stalled,
};
use crate::{RequestStream, ResponseStream, RpcContext, RpcError};

/// A native handler with its types erased.
pub type ServeFn = dyn Fn(ServerCall) -> BoxFuture<'static, CallOutcome> + Send + Sync;

/// One inbound call handed to a handler's serve function.
pub struct ServerCall {
    pub io: Io,
    pub ctx: RpcContext,
    pub settings: CallSettings,
    /// The request of a call with one request, read before the call was admitted.
    pub request: Option<Bytes>,
}

/// How a call ended; `io` comes back when the stream can carry another call.
pub struct CallOutcome {
    pub io: Option<Io>,
    pub ok: bool,
}

impl CallOutcome {
    fn closed(ok: bool) -> Self {
        CallOutcome { io: None, ok }
    }
}

/// Serves every call that arrives on one inbound stream.
pub(super) async fn serve_stream<D: Dispatch>(
    stream: libp2p::Stream,
    remote: PeerId,
    dispatch: Arc<D>,
) {
    let serve = dispatch.settings();
    let settings = serve.call;
    let mut io = framed(
        stream,
        CallFrameCodec::charged(settings.max_message_size, dispatch.memory()),
    );
    // A new stream's first call must come soon; a reused stream may idle between calls.
    let mut wait_for_call = serve.request_timeout;
    loop {
        let frame = match tokio::time::timeout(wait_for_call, io.next()).await {
            Err(_) | Ok(None) => return,
            Ok(Some(Err(err))) => return reject(io, err).await,
            Ok(Some(Ok(frame))) => frame,
        };
        wait_for_call = serve.wait_for_call;
        let header: CallHeader = match expect_frame(frame, FrameKind::Call)
            .and_then(|payload| codec::decode(&payload, settings.max_message_size))
        {
            Ok(header) => header,
            Err(err) => return reject(io, err).await,
        };
        let route = match dispatch.route::<super::Native>(&header.name, Some(header.kind), remote) {
            Ok(route) => route,
            Err(err) => {
                tracing::debug!(name = %header.name, %remote, %err, "call refused");
                return reject(io, err).await;
            }
        };
        // A call with one request takes a slot only once that request is in.
        let request = if header.kind.stream_input() {
            None
        } else {
            match tokio::time::timeout(serve.request_timeout, io.next()).await {
                Err(_) => {
                    return reject(io, RpcError::DeadlineExceeded(serve.request_timeout)).await;
                }
                Ok(None) => return,
                Ok(Some(Err(err))) => return reject(io, err).await,
                Ok(Some(Ok(frame))) => match expect_frame(frame, FrameKind::Message) {
                    Ok(payload) => Some(payload),
                    Err(err) => return reject(io, err).await,
                },
            }
        };
        let admission = match dispatch.admit(&route) {
            Ok(admission) => admission,
            Err(err) => return reject(io, err).await,
        };
        let outcome = (route.serve)(ServerCall {
            io,
            ctx: route.ctx,
            settings,
            request,
        })
        .await;
        admission.finish(outcome.ok);
        match outcome.io {
            Some(back) => {
                io = back;
                shrink_buffers(&mut io);
            }
            None => return,
        }
    }
}

/// Answers with an error frame and closes the stream: after an error the two sides may disagree
/// about where the next frame starts.
async fn reject(mut io: Io, err: RpcError) {
    let _ = io.send(Out::<()>::Error(WireError::from_local(&err))).await;
    let _ = SinkExt::<Out<()>>::close(&mut io).await;
}

/// [`reject`], as the outcome of a call that failed before its handler ran.
async fn rejected(io: Io, err: RpcError) -> CallOutcome {
    reject(io, err).await;
    CallOutcome::closed(false)
}

fn expect_frame(frame: Frame, kind: FrameKind) -> Result<Bytes, RpcError> {
    if frame.kind == kind {
        Ok(frame.payload)
    } else {
        Err(RpcError::Malformed(format!(
            "expected a {kind:?} frame, got {:?}",
            frame.kind
        )))
    }
}

/// Decodes the one request of a unary-input call, read before the call was admitted.
fn decode_request<Req: Encode<super::Native>>(
    request: Option<Bytes>,
    settings: CallSettings,
) -> Result<Req, RpcError> {
    let bytes = request.ok_or_else(|| RpcError::Malformed("a call without its request".into()))?;
    Req::decode(&bytes, settings.max_message_size)
}

/// Feeds request frames to a stream-input handler and sets `ended` at the caller's `End`;
/// resolves only when the caller went away or broke protocol (which cancels the call).
async fn pump_requests<S>(
    reader: &mut S,
    tx: mpsc::Sender<Result<Bytes, RpcError>>,
    idle: Duration,
    ended: &mut bool,
) where
    S: Stream<Item = Result<Frame, RpcError>> + Unpin,
{
    let mut tx = Some(tx);
    // One timer for the whole call, set again only when a request has to be waited for.
    let deadline = tokio::time::sleep(idle);
    futures::pin_mut!(deadline);
    loop {
        let next = if *ended {
            // After the requests ended, anything at all means the caller is gone.
            return caller_gone(reader).await;
        } else if let Some(sender) = &tx {
            match reader.next().now_or_never() {
                Some(next) => next,
                None => {
                    deadline.as_mut().reset(tokio::time::Instant::now() + idle);
                    tokio::select! {
                        next = reader.next() => next,
                        () = &mut deadline => {
                            let _ = sender.send(Err(RpcError::DeadlineExceeded(idle))).await;
                            tx = None;
                            continue;
                        }
                    }
                }
            }
        } else {
            // The handler stopped reading: wait for the caller's `End` or departure.
            reader.next().await
        };
        match next {
            Some(Ok(Frame {
                kind: FrameKind::Message,
                payload,
            })) => {
                if let Some(sender) = &tx
                    && sender.send(Ok(payload)).await.is_err()
                {
                    tx = None;
                }
            }
            Some(Ok(Frame {
                kind: FrameKind::End,
                ..
            })) => {
                *ended = true;
                tx = None;
            }
            Some(Ok(frame)) => {
                let err = RpcError::Malformed(format!("unexpected {:?} frame", frame.kind));
                if let Some(sender) = tx.take() {
                    let _ = sender.try_send(Err(err));
                }
                return;
            }
            Some(Err(err)) => {
                if let Some(sender) = tx.take() {
                    let _ = sender.try_send(Err(err));
                }
                return;
            }
            None => return,
        }
    }
}

fn request_stream<Req: Message<super::Native>>(
    rx: mpsc::Receiver<Result<Bytes, RpcError>>,
    limit: usize,
) -> RequestStream<Req> {
    let items = futures::stream::unfold(rx, move |mut rx| async move {
        let item = rx.recv().await?;
        Some((item.and_then(|bytes| Req::decode(&bytes, limit)), rx))
    });
    RequestStream::new(items)
}

/// `write`, or [`RpcError::DeadlineExceeded`] when the caller does not make room for it within
/// `idle`.
async fn within<T>(
    idle: Duration,
    write: impl Future<Output = Result<T, RpcError>>,
) -> Result<T, RpcError> {
    unless_stalled(idle, write, || RpcError::DeadlineExceeded(idle)).await
}

/// Queues `item` on `writer` once it has room: at once when it has (no timer, no future per
/// message: the path of every response of a stream), within `idle` otherwise.
async fn feed<W, T>(writer: &mut W, item: T, idle: Duration) -> Result<(), RpcError>
where
    W: futures::Sink<T, Error = RpcError> + Unpin,
{
    let mut ready = futures::future::poll_fn(|cx| writer.poll_ready_unpin(cx));
    match (&mut ready).now_or_never() {
        Some(room) => room?,
        None => within(idle, ready).await?,
    }
    writer.start_send_unpin(item)
}

/// Whether a message failed to encode in a way that left the stream in sync (nothing of it was
/// written), so that an error frame can take its place.
fn refused_message(err: &RpcError) -> bool {
    matches!(
        err,
        RpcError::MessageTooLarge { .. } | RpcError::Busy { .. }
    )
}

/// Queues a handler's single result (the caller flushes); true when it was a response.
async fn feed_result<W, Resp, E>(writer: &mut W, result: Result<Resp, E>, idle: Duration) -> bool
where
    W: futures::Sink<Out<Resp>, Error = RpcError> + Unpin,
    Resp: Encode<super::Native>,
    E: Display,
{
    let fed = match result {
        Ok(resp) => match within(idle, writer.feed(Out::Message(resp))).await {
            Err(err) if refused_message(&err) => within(
                idle,
                writer.feed(Out::<Resp>::Error(WireError::from_local(&err))),
            )
            .await
            .map(|_| false),
            other => other.map(|_| true),
        },
        Err(err) => within(
            idle,
            writer.feed(Out::<Resp>::Error(WireError::Remote(err.to_string()))),
        )
        .await
        .map(|_| false),
    };
    fed.unwrap_or(false)
}

/// Forwards a handler's responses, flushing only when the handler has nothing ready, and queues
/// `End`; true when every response went out.
async fn forward_responses<W, Resp>(
    writer: &mut W,
    mut responses: ResponseStream<Resp>,
    idle: Duration,
) -> bool
where
    W: futures::Sink<Out<Resp>, Error = RpcError> + Unpin,
    Resp: Encode<super::Native>,
{
    loop {
        let next = match responses.next().now_or_never() {
            Some(next) => next,
            None => {
                if within(idle, SinkExt::<Out<Resp>>::flush(writer))
                    .await
                    .is_err()
                {
                    return false;
                }
                responses.next().await
            }
        };
        let fed = match next {
            Some(Ok(item)) => feed(writer, Out::Message(item), idle).await,
            Some(Err(err)) => {
                let wire = match err {
                    RpcError::Remote { message } => WireError::Remote(message),
                    other => WireError::Remote(other.to_string()),
                };
                let _ = within(idle, writer.feed(Out::<Resp>::Error(wire))).await;
                return false;
            }
            None => return within(idle, writer.feed(Out::<Resp>::End)).await.is_ok(),
        };
        if let Err(err) = fed {
            if refused_message(&err) {
                let _ = within(
                    idle,
                    writer.feed(Out::<Resp>::Error(WireError::from_local(&err))),
                )
                .await;
            }
            return false;
        }
    }
}

/// Ends a streaming call. When both sides finished cleanly, an extra `End` (the trailer) tells the
/// caller the stream can carry another call, and the stream goes back to waiting for one;
/// otherwise it is closed.
async fn finish_streaming<Resp: Encode<super::Native>>(
    mut writer: SplitSink<Io, Out<Resp>>,
    reader: SplitStream<Io>,
    clean: bool,
    idle: Duration,
) -> CallOutcome {
    if clean && within(idle, writer.send(Out::<Resp>::End)).await.is_ok() {
        return CallOutcome {
            io: reader.reunite(writer).ok(),
            ok: true,
        };
    }
    let _ = writer.close().await;
    CallOutcome::closed(clean)
}

pub(super) async fn serve_unary<Req, Resp, E, F, Fut>(f: Arc<F>, call: ServerCall) -> CallOutcome
where
    Req: Message<super::Native>,
    Resp: Encode<super::Native>,
    E: Display,
    F: Fn(Req, RpcContext) -> Fut,
    Fut: Future<Output = Result<Resp, E>>,
{
    let ServerCall {
        mut io,
        ctx,
        settings,
        request,
    } = call;
    let request = match decode_request::<Req>(request, settings) {
        Ok(request) => request,
        Err(err) => return rejected(io, err).await,
    };
    let result = tokio::select! {
        result = f(request, ctx) => result,
        _ = caller_gone(&mut io) => return CallOutcome::closed(false),
    };
    let is_ok = result.is_ok();
    let answered = feed_result(&mut io, result, settings.idle).await;
    if within(settings.idle, SinkExt::<Out<Resp>>::flush(&mut io))
        .await
        .is_err()
    {
        return CallOutcome::closed(false);
    }
    // A response or a handler error leaves the stream in sync: the caller reads exactly one frame.
    if answered || !is_ok {
        CallOutcome {
            io: Some(io),
            ok: is_ok,
        }
    } else {
        let _ = SinkExt::<Out<Resp>>::close(&mut io).await;
        CallOutcome::closed(false)
    }
}

pub(super) async fn serve_stream_unary<Req, Resp, E, F, Fut>(
    f: Arc<F>,
    call: ServerCall,
) -> CallOutcome
where
    Req: Message<super::Native>,
    Resp: Encode<super::Native>,
    E: Display,
    F: Fn(RequestStream<Req>, RpcContext) -> Fut,
    Fut: Future<Output = Result<Resp, E>>,
{
    let ServerCall {
        io, ctx, settings, ..
    } = call;
    let (mut writer, mut reader) = io.split::<Out<Resp>>();
    let (tx, rx) = mpsc::channel(REQUEST_PREFETCH);
    let requests = request_stream(rx, settings.max_message_size);
    let mut requests_ended = false;
    let answered = tokio::select! {
        result = f(requests, ctx) => feed_result(&mut writer, result, settings.idle).await,
        _ = pump_requests(&mut reader, tx, settings.idle, &mut requests_ended) => return CallOutcome::closed(false),
    };
    finish_streaming(writer, reader, answered && requests_ended, settings.idle).await
}

pub(super) async fn serve_unary_stream<Req, Resp, E, F, Fut>(
    f: Arc<F>,
    call: ServerCall,
) -> CallOutcome
where
    Req: Message<super::Native>,
    Resp: Encode<super::Native>,
    E: Display,
    F: Fn(Req, RpcContext) -> Fut,
    Fut: Future<Output = Result<ResponseStream<Resp>, E>>,
{
    let ServerCall {
        io,
        ctx,
        settings,
        request,
    } = call;
    let request = match decode_request::<Req>(request, settings) {
        Ok(request) => request,
        Err(err) => return rejected(io, err).await,
    };
    let (mut writer, mut reader) = io.split::<Out<Resp>>();
    let work = async {
        match f(request, ctx).await {
            Ok(responses) => forward_responses(&mut writer, responses, settings.idle).await,
            Err(err) => feed_result::<_, Resp, E>(&mut writer, Err(err), settings.idle).await,
        }
    };
    let clean = tokio::select! {
        clean = work => clean,
        _ = caller_gone(&mut reader) => return CallOutcome::closed(false),
    };
    finish_streaming(writer, reader, clean, settings.idle).await
}

pub(super) async fn serve_stream_stream<Req, Resp, E, F, Fut>(
    f: Arc<F>,
    call: ServerCall,
) -> CallOutcome
where
    Req: Message<super::Native>,
    Resp: Encode<super::Native>,
    E: Display,
    F: Fn(RequestStream<Req>, RpcContext) -> Fut,
    Fut: Future<Output = Result<ResponseStream<Resp>, E>>,
{
    let ServerCall {
        io, ctx, settings, ..
    } = call;
    let (mut writer, mut reader) = io.split::<Out<Resp>>();
    let (tx, rx) = mpsc::channel(REQUEST_PREFETCH);
    let requests = request_stream(rx, settings.max_message_size);
    let mut requests_ended = false;
    let work = async {
        match f(requests, ctx).await {
            Ok(responses) => forward_responses(&mut writer, responses, settings.idle).await,
            Err(err) => feed_result::<_, Resp, E>(&mut writer, Err(err), settings.idle).await,
        }
    };
    let clean = tokio::select! {
        clean = work => clean,
        _ = pump_requests(&mut reader, tx, settings.idle, &mut requests_ended) => return CallOutcome::closed(false),
    };
    finish_streaming(writer, reader, clean && requests_ended, settings.idle).await
}
