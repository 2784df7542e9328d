//! [`StubBase`]: the client side of calls, wrapped by every generated stub.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{FutureExt, SinkExt, Stream, StreamExt};
use libp2p::PeerId;
use tokio::sync::OwnedSemaphorePermit;

use crate::frame::{self, Frame, FrameKind, Out, WireError};
use crate::pool::PooledStream;
use crate::server::Io;
use crate::{Message, P2P, ProtoMessage, ResponseStream, RpcError, RpcKind, codec, hivemind};
use futures::stream::{SplitSink, SplitStream};
use libp2p::swarm::ConnectionId;

/// Calls handlers of one servicer on one remote peer. Cheap to clone.
///
/// Generated stubs wrap it; it can also be used directly with a method name:
///
/// ```no_run
/// # async fn demo(p2p: servicer_runtime::P2P, peer: servicer_runtime::PeerId) -> Result<(), servicer_runtime::RpcError> {
/// use servicer_runtime::StubBase;
///
/// let stub = StubBase::new(&p2p, peer, "Calculator", None);
/// let square: i64 = stub.unary("rpc_square", 12i64).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StubBase {
    p2p: P2P,
    peer: PeerId,
    prefix: Arc<str>,
    deadline: Option<Duration>,
}

impl std::fmt::Debug for StubBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubBase")
            .field("peer", &self.peer)
            .field("prefix", &self.prefix)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// A stream in use by one call, with the slot it holds.
struct Lease {
    stream: PooledStream,
    pooled: bool,
    _permit: OwnedSemaphorePermit,
}

impl StubBase {
    /// A stub for `servicer`'s handlers (optionally in `namespace`) on `peer`.
    pub fn new(p2p: &P2P, peer: PeerId, servicer: &'static str, namespace: Option<&str>) -> Self {
        let prefix = match namespace {
            Some(ns) => format!("{ns}::{servicer}."),
            None => format!("{servicer}."),
        };
        StubBase {
            p2p: p2p.clone(),
            peer,
            prefix: prefix.into(),
            deadline: None,
        }
    }

    /// A copy whose unary calls use this deadline instead of the node's default.
    pub fn with_deadline(&self, deadline: Duration) -> StubBase {
        StubBase {
            deadline: Some(deadline),
            ..self.clone()
        }
    }

    /// The peer this stub calls.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The node this stub calls through.
    pub fn p2p(&self) -> &P2P {
        &self.p2p
    }

    /// The handle name of `method`: `Class.rpc_x` or `NS::Class.rpc_x`.
    fn handle(&self, method: &str) -> String {
        format!("{}{method}", self.prefix)
    }

    /// The deadline of a unary call, also used to open streams of streaming calls.
    fn deadline(&self) -> Duration {
        self.deadline
            .unwrap_or(self.p2p.shared().config.unary_deadline)
    }

    fn max_message_size(&self) -> usize {
        self.p2p.shared().config.max_message_size
    }

    async fn with_deadline_of<T>(
        &self,
        fut: impl Future<Output = Result<T, RpcError>>,
    ) -> Result<T, RpcError> {
        let deadline = self.deadline();
        tokio::time::timeout(deadline, fut)
            .await
            .unwrap_or(Err(RpcError::DeadlineExceeded(deadline)))
    }

    async fn lease(&self) -> Result<Lease, RpcError> {
        if self.p2p.is_shut_down() {
            return Err(RpcError::Shutdown);
        }
        let permit = self.p2p.shared().limits.acquire_outbound(self.peer).await?;
        let (stream, pooled) = self.p2p.stream(self.peer).await?;
        Ok(Lease {
            stream,
            pooled,
            _permit: permit,
        })
    }

    /// Writes the call header and the first requests (`end`: then the `End` of the requests) in
    /// one write. A pooled stream that fails here was closed while idle, so the call is retried
    /// once on a fresh stream: nothing reached a handler yet.
    async fn start<Req: Message>(
        &self,
        method: &str,
        kind: RpcKind,
        first: &[Req],
        end: bool,
    ) -> Result<Lease, RpcError> {
        let name = self.handle(method);
        let limit = self.max_message_size();
        let mut lease = self.lease().await?;
        loop {
            let io = &mut lease.stream.io;
            let mut sent = frame::put_call(io.write_buffer_mut(), &name, kind, limit);
            for request in first {
                if sent.is_err() {
                    break;
                }
                sent = io.feed(Out::Message(request)).await;
            }
            if sent.is_ok() && end {
                sent = io.feed(Out::<&Req>::End).await;
            }
            if sent.is_ok() {
                sent = SinkExt::<Out<&Req>>::flush(io).await;
            }
            match sent {
                Ok(()) => return Ok(lease),
                Err(err @ (RpcError::MessageTooLarge { .. } | RpcError::Malformed(_))) => {
                    return Err(err);
                }
                Err(_) if lease.pooled => {
                    lease.stream = self.p2p.open_stream(self.peer).await?;
                    lease.pooled = false;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Calls a unary-unary handler.
    pub async fn unary<Req: Message, Resp: Message>(
        &self,
        method: &'static str,
        request: Req,
    ) -> Result<Resp, RpcError> {
        self.with_deadline_of(async {
            let mut lease = self
                .start(
                    method,
                    RpcKind::UnaryUnary,
                    std::slice::from_ref(&request),
                    false,
                )
                .await?;
            let frame = lease.stream.io.next().await;
            let (result, reusable) = read_single::<Resp>(frame, self.max_message_size());
            if reusable {
                self.p2p.shared().pool.put(self.peer, lease.stream);
            }
            result
        })
        .await
    }

    /// Calls a stream-unary handler with every item of `requests`.
    pub async fn stream_unary<Req, Resp, S>(
        &self,
        method: &'static str,
        requests: S,
    ) -> Result<Resp, RpcError>
    where
        Req: Message,
        Resp: Message,
        S: Stream<Item = Req> + Send + 'static,
    {
        let requests = requests.fuse();
        futures::pin_mut!(requests);
        let (first, ended) = ready_requests(&mut requests);
        let lease = self
            .with_deadline_of(self.start(method, RpcKind::StreamUnary, &first, ended))
            .await?;
        drop(first);
        let Lease {
            stream: PooledStream { mut io, connection },
            _permit: permit,
            ..
        } = lease;
        let limit = self.max_message_size();
        let idle = self.p2p.shared().config.stream_idle_deadline;
        if ended {
            // Every request went out with the header: only the response is left.
            let result = match tokio::time::timeout(idle, io.next()).await {
                Ok(frame) => read_single::<Resp>(frame, limit).0,
                Err(_) => Err(RpcError::DeadlineExceeded(idle)),
            };
            if result.is_ok() && trailer_ready(&mut io) {
                self.recycle(Some(io), connection);
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
            self.recycle(reader.reunite(writer).ok(), connection);
        }
        drop(permit);
        result
    }

    /// Calls a unary-stream handler; the returned stream yields the responses.
    pub async fn unary_stream<Req: Message, Resp: Message>(
        &self,
        method: &'static str,
        request: Req,
    ) -> Result<ResponseStream<Resp>, RpcError> {
        let lease = self
            .with_deadline_of(self.start(
                method,
                RpcKind::UnaryStream,
                std::slice::from_ref(&request),
                false,
            ))
            .await?;
        let call = OpenCall::<Req> {
            reader: CallReader::Whole(Box::new(lease.stream.io)),
            connection: lease.stream.connection,
            _permit: lease._permit,
        };
        Ok(self.responses(call))
    }

    /// Calls a stream-stream handler: `requests` are sent from a task while the returned stream
    /// yields responses; dropping the returned stream stops both and cancels the remote handler.
    pub async fn stream_stream<Req, Resp, S>(
        &self,
        method: &'static str,
        requests: S,
    ) -> Result<ResponseStream<Resp>, RpcError>
    where
        Req: Message,
        Resp: Message,
        S: Stream<Item = Req> + Send + 'static,
    {
        let mut requests = Box::pin(requests.fuse());
        let (first, ended) = ready_requests(&mut requests);
        let lease = self
            .with_deadline_of(self.start(method, RpcKind::StreamStream, &first, ended))
            .await?;
        drop(first);
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
        let call = OpenCall {
            reader: CallReader::Split(reader, AbortOnDrop(Some(sender))),
            connection: lease.stream.connection,
            _permit: lease._permit,
        };
        Ok(self.responses(call))
    }

    /// Calls a unary handler on hivemind's wire (the node needs
    /// [`WireMode::Hivemind`](crate::WireMode)): one stream per call carrying a
    /// `PersistentConnectionRequest` each way; a Python handler's exception arrives as
    /// [`RpcError::Remote`] with its `repr`.
    pub async fn proto_unary<Req: ProtoMessage, Resp: ProtoMessage>(
        &self,
        method: &'static str,
        request: Req,
    ) -> Result<Resp, RpcError> {
        let name = self.handle(method);
        let bytes = hivemind::client::unary(
            &self.p2p,
            self.peer,
            &name,
            request.encode_to_vec(),
            self.deadline(),
        )
        .await?;
        Resp::decode(bytes.as_slice())
            .map_err(|e| RpcError::Malformed(format!("cannot decode the response: {e}")))
    }

    /// Calls a stream-unary handler on hivemind's wire with every item of `requests`.
    pub async fn proto_stream_unary<Req, Resp, S>(
        &self,
        method: &'static str,
        requests: S,
    ) -> Result<Resp, RpcError>
    where
        Req: ProtoMessage,
        Resp: ProtoMessage,
        S: Stream<Item = Req> + Send + 'static,
    {
        let mut responses = self
            .proto_stream_stream::<Req, Resp, S>(method, requests)
            .await?;
        match responses.next().await {
            Some(result) => result,
            None => Err(RpcError::ConnectionClosed(
                "the stream ended without a response".into(),
            )),
        }
    }

    /// Calls a unary-stream handler on hivemind's wire.
    pub async fn proto_unary_stream<Req: ProtoMessage, Resp: ProtoMessage>(
        &self,
        method: &'static str,
        request: Req,
    ) -> Result<ResponseStream<Resp>, RpcError> {
        self.proto_stream_stream(method, futures::stream::iter([request]))
            .await
    }

    /// Calls a stream-stream handler on hivemind's wire: `requests` go out from a task (then
    /// `END_OF_STREAM`) while the returned stream yields the responses; dropping it closes the
    /// stream, which cancels the remote handler.
    pub async fn proto_stream_stream<Req, Resp, S>(
        &self,
        method: &'static str,
        requests: S,
    ) -> Result<ResponseStream<Resp>, RpcError>
    where
        Req: ProtoMessage,
        Resp: ProtoMessage,
        S: Stream<Item = Req> + Send + 'static,
    {
        let name = self.handle(method);
        let requests = requests.map(|r| r.encode_to_vec()).boxed();
        let idle = self.p2p.shared().config.stream_idle_deadline;
        let responses = hivemind::client::streaming(
            &self.p2p,
            self.peer,
            &name,
            requests,
            self.deadline(),
            idle,
        )
        .await?;
        Ok(ResponseStream::new(responses.map(|item| {
            item.and_then(|bytes| {
                Resp::decode(bytes)
                    .map_err(|e| RpcError::Malformed(format!("cannot decode a response: {e}")))
            })
        })))
    }

    /// Puts a stream that finished a call cleanly back in the pool.
    fn recycle(&self, io: Option<Io>, connection: ConnectionId) {
        if let Some(io) = io {
            self.p2p
                .shared()
                .pool
                .put(self.peer, PooledStream { io, connection });
        }
    }

    /// Turns the read side of a call into the caller's response stream.
    fn responses<Req, Resp>(&self, call: OpenCall<Req>) -> ResponseStream<Resp>
    where
        Req: Message,
        Resp: Message,
    {
        let shared = self.p2p.shared();
        let idle = shared.config.stream_idle_deadline;
        ResponseStream::new(Responses {
            call: Some(call),
            stub: self.clone(),
            limit: shared.config.max_message_size,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            _resp: PhantomData,
        })
    }
}

/// The caller's side of a call's responses: decodes them as they come and enforces the idle
/// deadline with one timer per call, set again only when a response has to be waited for.
struct Responses<Req, Resp> {
    /// `None` once the responses ended (the stream went back to the pool or was closed).
    call: Option<OpenCall<Req>>,
    stub: StubBase,
    limit: usize,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Whether `deadline` is set for the response being waited for.
    waiting: bool,
    _resp: PhantomData<fn() -> Resp>,
}

impl<Req: Message, Resp: Message> Stream for Responses<Req, Resp> {
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
                FrameKind::Message => codec::decode(&frame.payload, this.limit).map(Some),
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
                    this.stub.recycle(call.into_reusable(), connection);
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

impl<Req: Message> CallReader<Req> {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame, RpcError>>> {
        match self {
            CallReader::Whole(io) => io.poll_next_unpin(cx),
            CallReader::Split(reader, _) => reader.poll_next_unpin(cx),
        }
    }
}

impl<Req: Message> OpenCall<Req> {
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

/// Aborts the request-sending task when the call is dropped.
struct AbortOnDrop<T>(Option<tokio::task::JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

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
fn read_single<Resp: Message>(
    frame: Option<Result<Frame, RpcError>>,
    limit: usize,
) -> (Result<Resp, RpcError>, bool) {
    match frame {
        Some(Ok(Frame {
            kind: FrameKind::Message,
            payload,
        })) => {
            let result = codec::decode(&payload, limit);
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
