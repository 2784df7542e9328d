//! The client half of the native wire: a call leases an idle stream (or opens one), writes the
//! call header with its first requests in one write, and gives the stream back when the call ends
//! cleanly, so a call costs one round trip and no protocol negotiation.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use futures::stream::{SplitSink, SplitStream};
use futures::{FutureExt, SinkExt, Stream, StreamExt};
use libp2p::swarm::ConnectionId;
use tokio::sync::OwnedSemaphorePermit;

use super::frame::{self, Frame, FrameKind, Out, WireError};
use super::io::{Io, framed};
use super::pool::PooledStream;
use super::{Native, PROTOCOL, codec};
use crate::wire::{AbortOnDrop, Call, Connector, Encode, Message};
use crate::{ResponseStream, RpcError, RpcKind, Unreachable};

/// A stream in use by one call, with the slot it holds.
struct Lease {
    stream: PooledStream,
    pooled: bool,
    _permit: OwnedSemaphorePermit,
}

/// A newly negotiated native stream to the connector's peer.
async fn open<C: Connector>(connector: &C) -> Result<PooledStream, RpcError> {
    let refused = RpcError::PeerUnreachable {
        peer: connector.peer(),
        cause: Unreachable::ProtocolNotSupported,
        reason: format!("peer does not speak {PROTOCOL}"),
    };
    let (stream, connection) = connector.open(PROTOCOL, refused).await?;
    Ok(PooledStream {
        io: framed(
            stream,
            frame::CallFrameCodec::new(connector.settings().max_message_size),
        ),
        connection,
    })
}

async fn lease<C: Connector>(connector: &C) -> Result<Lease, RpcError> {
    let permit = connector.slot().await?;
    let (stream, pooled) = match connector.pool().take(&connector.peer()) {
        Some(stream) => (stream, true),
        None => (open(connector).await?, false),
    };
    Ok(Lease {
        stream,
        pooled,
        _permit: permit,
    })
}

/// Writes the opening of a call into `buffer`: its header, then `requests` until a write batch is
/// full, then the `End` of the requests if `ended` and all of them fit. Returns how many requests
/// it took and whether the `End` went out.
fn put_opening<Req: Encode<Native>>(
    buffer: &mut BytesMut,
    name: &str,
    kind: RpcKind,
    requests: &[Req],
    ended: bool,
    limit: usize,
) -> Result<(usize, bool), RpcError> {
    let start = buffer.len();
    frame::put_call(buffer, name, kind, limit)?;
    let mut taken = 0;
    for request in requests {
        frame::put_message(buffer, request, limit)?;
        taken += 1;
        if buffer.len() - start >= WRITE_BATCH {
            break;
        }
    }
    let end = ended && taken == requests.len();
    if end {
        frame::put_end(buffer);
    }
    Ok((taken, end))
}

/// Leases a stream and writes the opening of a call on it in one write (see [`put_opening`]).
/// The requests are owned here and only borrowed between awaits, so the call's future stays
/// `Send` for any `Send` request type. A pooled stream that fails here was closed while idle, so
/// the call is retried once on a fresh stream: nothing reached a handler yet. Returns the lease,
/// the requests, how many of them went out and whether the `End` did.
async fn start<C, Req, R>(
    call: &Call<'_, C>,
    kind: RpcKind,
    requests: R,
    ended: bool,
) -> Result<(Lease, R, usize, bool), RpcError>
where
    C: Connector,
    Req: Encode<Native>,
    R: AsRef<[Req]>,
{
    let connector = call.connector;
    let limit = connector.settings().max_message_size;
    let mut lease = lease(connector).await?;
    loop {
        let io = &mut lease.stream.io;
        let (taken, end) = put_opening(
            io.write_buffer_mut(),
            call.name,
            kind,
            requests.as_ref(),
            ended,
            limit,
        )?;
        match SinkExt::<Out<()>>::flush(io).await {
            Ok(()) => return Ok((lease, requests, taken, end)),
            Err(_) if lease.pooled => {
                lease.stream = open(connector).await?;
                lease.pooled = false;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Starts a streaming call within its deadline: the header goes out with the requests that are
/// ready at once. Returns the lease, the requests left to send, and whether they are over.
async fn start_streaming<C, Req, S>(
    call: &Call<'_, C>,
    kind: RpcKind,
    requests: S,
) -> Result<(Lease, impl Stream<Item = Req> + Send + 'static, bool), RpcError>
where
    C: Connector,
    Req: Message<Native>,
    S: Stream<Item = Req> + Send + 'static,
{
    let mut requests = Box::pin(requests.fuse());
    let (first, ended) = ready_requests(&mut requests);
    let (lease, mut first, taken, ended) = call.within(start(call, kind, first, ended)).await?;
    let left = first.split_off(taken);
    Ok((lease, futures::stream::iter(left).chain(requests), ended))
}

pub(super) async fn unary<C, Req, Resp>(call: Call<'_, C>, request: Req) -> Result<Resp, RpcError>
where
    C: Connector,
    Req: Encode<Native>,
    Resp: Encode<Native>,
{
    let connector = call.connector;
    call.within(async {
        let (mut lease, ..) = start(&call, RpcKind::UnaryUnary, [request], false).await?;
        let frame = lease.stream.io.next().await;
        let (result, reusable) = read_single::<Resp>(frame, connector.settings().max_message_size);
        if reusable {
            connector.pool().put(connector.peer(), lease.stream);
        }
        result
    })
    .await
}

pub(super) async fn stream_unary<C, Req, Resp, S>(
    call: Call<'_, C>,
    requests: S,
) -> Result<Resp, RpcError>
where
    C: Connector,
    Req: Message<Native>,
    Resp: Encode<Native>,
    S: Stream<Item = Req> + Send + 'static,
{
    let connector = call.connector;
    let (lease, requests, ended) = start_streaming(&call, RpcKind::StreamUnary, requests).await?;
    let Lease {
        stream: PooledStream { mut io, connection },
        _permit: permit,
        ..
    } = lease;
    let settings = connector.settings();
    let (limit, idle) = (settings.max_message_size, settings.idle);
    if ended {
        // Every request went out with the header: only the response is left.
        let result = match tokio::time::timeout(idle, io.next()).await {
            Ok(frame) => read_single::<Resp>(frame, limit).0,
            Err(_) => Err(RpcError::DeadlineExceeded(idle)),
        };
        if result.is_ok() && trailer_ready(&mut io) {
            recycle(connector, Some(io), connection);
        }
        drop(permit);
        return result;
    }
    let (mut writer, mut reader) = io.split::<Out<Req>>();
    let (result, sent_all) = {
        let send = send_requests(&mut writer, requests);
        let receive = async {
            match tokio::time::timeout(idle, reader.next()).await {
                Ok(frame) => read_single::<Resp>(frame, limit).0,
                Err(_) => Err(RpcError::DeadlineExceeded(idle)),
            }
        };
        futures::pin_mut!(send, receive);
        // The response may come before all requests are sent (an early answer or an error).
        match futures::future::select(send, receive).await {
            futures::future::Either::Left((Ok(()), receive)) => (receive.await, true),
            futures::future::Either::Left((Err(err), receive)) => {
                // The server may have answered with the reason it stopped reading.
                (receive.now_or_never().unwrap_or(Err(err)), false)
            }
            futures::future::Either::Right((result, _)) => (result, false),
        }
    };
    if result.is_ok() && sent_all && trailer_ready(&mut reader) {
        recycle(connector, reader.reunite(writer).ok(), connection);
    }
    drop(permit);
    result
}

pub(super) async fn unary_stream<C, Req, Resp>(
    call: Call<'_, C>,
    request: Req,
) -> Result<ResponseStream<Resp>, RpcError>
where
    C: Connector,
    Req: Message<Native>,
    Resp: Message<Native>,
{
    let (lease, ..) = call
        .within(start(&call, RpcKind::UnaryStream, [request], false))
        .await?;
    let open = OpenCall::<Req> {
        reader: CallReader::Whole(Box::new(lease.stream.io)),
        connection: lease.stream.connection,
        _permit: lease._permit,
    };
    Ok(responses(call.connector.clone(), open))
}

pub(super) async fn stream_stream<C, Req, Resp, S>(
    call: Call<'_, C>,
    requests: S,
) -> Result<ResponseStream<Resp>, RpcError>
where
    C: Connector,
    Req: Message<Native>,
    Resp: Message<Native>,
    S: Stream<Item = Req> + Send + 'static,
{
    let (lease, requests, ended) = start_streaming(&call, RpcKind::StreamStream, requests).await?;
    let (mut writer, reader) = lease.stream.io.split::<Out<Req>>();
    let sender = tokio::spawn(async move {
        if ended {
            return Some(writer);
        }
        // A failed send shows up on the read side as the server's error or a closed stream.
        send_requests(&mut writer, requests)
            .await
            .ok()
            .map(|()| writer)
    });
    let open = OpenCall {
        reader: CallReader::Split(reader, AbortOnDrop::new(sender)),
        connection: lease.stream.connection,
        _permit: lease._permit,
    };
    Ok(responses(call.connector.clone(), open))
}

/// Puts a stream that finished a call cleanly back in the pool.
fn recycle<C: Connector>(connector: &C, io: Option<Io>, connection: ConnectionId) {
    if let Some(io) = io {
        connector
            .pool()
            .put(connector.peer(), PooledStream { io, connection });
    }
}

/// Turns the read side of a call into the caller's response stream.
fn responses<C, Req, Resp>(connector: C, open: OpenCall<Req>) -> ResponseStream<Resp>
where
    C: Connector,
    Req: Message<Native>,
    Resp: Message<Native>,
{
    let settings = connector.settings();
    ResponseStream::new(Responses {
        call: Some(open),
        connector,
        limit: settings.max_message_size,
        idle: settings.idle,
        deadline: Box::pin(tokio::time::sleep(settings.idle)),
        waiting: false,
        _resp: PhantomData,
    })
}

/// The caller's side of a call's responses: decodes them as they come and enforces the idle
/// deadline with one timer per call, set again only when a response has to be waited for.
struct Responses<C, Req, Resp> {
    /// `None` once the responses ended (the stream went back to the pool or was closed).
    call: Option<OpenCall<Req>>,
    connector: C,
    limit: usize,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Whether `deadline` is set for the response being waited for.
    waiting: bool,
    _resp: PhantomData<fn() -> Resp>,
}

impl<C, Req, Resp> Stream for Responses<C, Req, Resp>
where
    C: Connector,
    Req: Message<Native>,
    Resp: Encode<Native>,
{
    type Item = Result<Resp, RpcError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(call) = this.call.as_mut() else {
            return Poll::Ready(None);
        };
        let item: Result<Option<Resp>, RpcError> = match call.reader.poll_next(cx) {
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let at = tokio::time::Instant::now() + this.idle;
                    this.deadline.as_mut().reset(at);
                }
                match this.deadline.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => Err(RpcError::DeadlineExceeded(this.idle)),
                }
            }
            Poll::Ready(None) => Err(RpcError::ConnectionClosed(
                "stream closed before the end of the responses".into(),
            )),
            Poll::Ready(Some(Err(err))) => Err(err),
            Poll::Ready(Some(Ok(frame))) => match frame.kind {
                FrameKind::Message => Resp::decode(&frame.payload, this.limit).map(Some),
                FrameKind::End => Ok(None),
                FrameKind::Error => Err(decode_error(&frame.payload, this.limit)),
                FrameKind::Call => Err(RpcError::Malformed("unexpected call frame".into())),
            },
        };
        this.waiting = false;
        match item {
            Ok(Some(response)) => Poll::Ready(Some(Ok(response))),
            Ok(None) => {
                if let Some(call) = this.call.take() {
                    let connection = call.connection;
                    recycle(&this.connector, call.into_reusable(), connection);
                }
                Poll::Ready(None)
            }
            // An error is always the last item.
            Err(err) => {
                this.call = None;
                Poll::Ready(Some(Err(err)))
            }
        }
    }
}

/// The read side of a streaming call in progress, with what it needs to be recycled.
struct OpenCall<Req> {
    reader: CallReader<Req>,
    connection: ConnectionId,
    _permit: OwnedSemaphorePermit,
}

enum CallReader<Req> {
    /// The whole stream: the call sends nothing after its request.
    Whole(Box<Io>),
    /// The read half, while a task sends the requests on the write half.
    Split(
        SplitStream<Io>,
        AbortOnDrop<Option<SplitSink<Io, Out<Req>>>>,
    ),
}

impl<Req: Encode<Native>> CallReader<Req> {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame, RpcError>>> {
        match self {
            CallReader::Whole(io) => io.poll_next_unpin(cx),
            CallReader::Split(reader, _) => reader.poll_next_unpin(cx),
        }
    }
}

impl<Req: Encode<Native>> OpenCall<Req> {
    /// The stream, if the server's trailer says it can carry another call and every request went
    /// out.
    fn into_reusable(self) -> Option<Io> {
        match self.reader {
            CallReader::Whole(mut io) => trailer_ready(&mut io).then_some(*io),
            CallReader::Split(mut reader, mut sender) => {
                if !trailer_ready(&mut reader) {
                    return None;
                }
                let mut task = sender.0.take()?;
                let done = (&mut task).now_or_never();
                if done.is_none() {
                    task.abort();
                }
                let writer = done?.ok()??;
                reader.reunite(writer).ok()
            }
        }
    }
}

/// Whether the server's trailer (a second `End`: the stream can carry another call) has already
/// arrived; never waits for it.
fn trailer_ready<R>(reader: &mut R) -> bool
where
    R: Stream<Item = Result<Frame, RpcError>> + Unpin,
{
    matches!(
        reader.next().now_or_never(),
        Some(Some(Ok(Frame {
            kind: FrameKind::End,
            ..
        })))
    )
}

/// The opening of a call takes ready requests until it is this long (tokio-util's backpressure
/// boundary, which the frames sent later through the sink observe too).
const WRITE_BATCH: usize = 8 << 10;

/// At most this many requests of a streaming call go out with its header, in one write.
const FIRST_REQUESTS: usize = 32;

/// The requests of a streaming call that are ready at once (at most [`FIRST_REQUESTS`]), to go
/// out with its header; `true` when the requests ended among them. `requests` must be fused: the
/// rest of them are read after this.
fn ready_requests<S: Stream + Unpin>(requests: &mut S) -> (Vec<S::Item>, bool) {
    let mut first = Vec::new();
    while first.len() < FIRST_REQUESTS {
        match requests.next().now_or_never() {
            Some(Some(request)) => first.push(request),
            Some(None) => return (first, true),
            None => break,
        }
    }
    (first, false)
}

/// Sends every request, flushing only when the caller's stream has nothing ready, then `End`.
async fn send_requests<W, Req, S>(writer: &mut W, requests: S) -> Result<(), RpcError>
where
    W: futures::Sink<Out<Req>, Error = RpcError> + Unpin,
    S: Stream<Item = Req>,
{
    futures::pin_mut!(requests);
    loop {
        let next = match requests.next().now_or_never() {
            Some(next) => next,
            None => {
                writer.flush().await?;
                requests.next().await
            }
        };
        match next {
            Some(request) => writer.feed(Out::Message(request)).await?,
            None => return writer.send(Out::End).await,
        }
    }
}

fn decode_error(payload: &[u8], limit: usize) -> RpcError {
    match codec::decode::<WireError>(payload, limit) {
        Ok(err) => err.into(),
        Err(err) => RpcError::Malformed(format!("undecodable error frame: {err}")),
    }
}

/// Reads the single response of a unary-output call; also says whether the stream is still in
/// sync and can be reused.
fn read_single<Resp: Encode<Native>>(
    frame: Option<Result<Frame, RpcError>>,
    limit: usize,
) -> (Result<Resp, RpcError>, bool) {
    match frame {
        Some(Ok(Frame {
            kind: FrameKind::Message,
            payload,
        })) => {
            let result = Resp::decode(&payload, limit);
            let ok = result.is_ok();
            (result, ok)
        }
        Some(Ok(Frame {
            kind: FrameKind::Error,
            payload,
        })) => {
            let err = decode_error(&payload, limit);
            let reusable = matches!(err, RpcError::Remote { .. });
            (Err(err), reusable)
        }
        Some(Ok(frame)) => (
            Err(RpcError::Malformed(format!(
                "expected a response, got a {:?} frame",
                frame.kind
            ))),
            false,
        ),
        Some(Err(err)) => (Err(err), false),
        None => (
            Err(RpcError::ConnectionClosed(
                "stream closed before the response".into(),
            )),
            false,
        ),
    }
}
