//! The two stream types of the API: requests into a handler, responses out of one.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{BoxStream, Stream, StreamExt};
use tokio::sync::mpsc;

use crate::RpcError;

/// The stream of requests a stream-input handler receives.
///
/// Yields `Err` and then ends if the caller sent something undecodable, went silent for longer than
/// the idle deadline, or vanished.
pub struct RequestStream<T> {
    inner: BoxStream<'static, Result<T, RpcError>>,
}

impl<T: Send + 'static> RequestStream<T> {
    /// Wraps any stream; handy to call a handler directly in a unit test.
    pub fn new<S>(stream: S) -> Self
    where
        S: Stream<Item = Result<T, RpcError>> + Send + 'static,
    {
        RequestStream {
            inner: stream.boxed(),
        }
    }

    /// A stream of plain requests.
    pub fn from_items<S>(stream: S) -> Self
    where
        S: Stream<Item = T> + Send + 'static,
    {
        Self::new(stream.map(Ok))
    }
}

impl<T> Stream for RequestStream<T> {
    type Item = Result<T, RpcError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T> fmt::Debug for RequestStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestStream")
    }
}

/// A stream of responses: what a stream-output handler returns, and what a stub hands its caller.
///
/// On the server an `Err` item ends the call with that error at the caller. On the client, an `Err`
/// item (remote error, idle deadline, broken connection) is always the last one. Dropping it on the
/// client cancels the remote handler.
pub struct ResponseStream<T> {
    inner: BoxStream<'static, Result<T, RpcError>>,
}

impl<T: Send + 'static> ResponseStream<T> {
    /// Wraps a stream of results.
    pub fn new<S>(stream: S) -> Self
    where
        S: Stream<Item = Result<T, RpcError>> + Send + 'static,
    {
        ResponseStream {
            inner: stream.boxed(),
        }
    }

    /// A stream of plain responses.
    pub fn from_items<S>(stream: S) -> Self
    where
        S: Stream<Item = T> + Send + 'static,
    {
        Self::new(stream.map(Ok))
    }

    /// Responses from an iterator.
    pub fn iter<I>(items: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self::from_items(futures::stream::iter(items))
    }

    /// A bounded channel: the handler returns the stream and feeds it from a task.
    pub fn channel(buffer: usize) -> (ResponseSender<T>, Self) {
        let (tx, mut rx) = mpsc::channel(buffer.max(1));
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        (ResponseSender { tx }, Self::new(stream))
    }
}

impl<T> Stream for ResponseStream<T> {
    type Item = Result<T, RpcError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T> fmt::Debug for ResponseStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseStream")
    }
}

/// The sending half of [`ResponseStream::channel`].
#[derive(Debug, Clone)]
pub struct ResponseSender<T> {
    tx: mpsc::Sender<Result<T, RpcError>>,
}

impl<T> ResponseSender<T> {
    /// Sends one response; fails with [`RpcError::Cancelled`] once the call is gone.
    pub async fn send(&self, item: T) -> Result<(), RpcError> {
        self.tx
            .send(Ok(item))
            .await
            .map_err(|_| RpcError::Cancelled)
    }

    /// Ends the call with an error whose message reaches the caller.
    pub async fn fail(&self, message: impl fmt::Display) -> Result<(), RpcError> {
        self.tx
            .send(Err(RpcError::handler(message)))
            .await
            .map_err(|_| RpcError::Cancelled)
    }

    /// Resolves when the call is gone (the caller cancelled or the stream broke).
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}
