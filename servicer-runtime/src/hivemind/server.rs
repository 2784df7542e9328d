//! Serving one inbound call on hivemind's wire: the stream was negotiated for the handler's own
//! protocol (`Class.rpc_x`), so the handler is known before a byte of the call arrives.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use tokio::sync::mpsc;

use super::HivemindWireError;
use super::frames::{StreamFrame, read_frame, write_frame};
use super::unary::{UnaryOutcome, UnaryReply, UnaryRequest, read_envelope, write_envelope};
use crate::handler::{Entry, ProtoStreamFn, ProtoUnaryFn, Serve};
use crate::p2p::Shared;
use crate::{RequestStream, RpcContext, RpcError};

/// Requests decoded ahead of a stream-input handler (hivemind's server prefetches 5).
const REQUEST_PREFETCH: usize = 5;

/// Serves the call on `stream`, negotiated for the handler `name`.
pub(crate) async fn serve(
    stream: libp2p::Stream,
    name: String,
    remote: PeerId,
    shared: Arc<Shared>,
) {
    let Some(entry) = shared.registry.get(&name) else {
        // Removed between the negotiation and now: close, as hivemind does for unknown names.
        tracing::debug!(%name, %remote, "hivemind call to a handler that is gone");
        return;
    };
    let ctx = RpcContext::new(entry.name.clone(), shared.local_peer, remote);
    match entry.handler.serve_kind().clone() {
        Serve::ProtoUnary(f) => serve_unary(stream, f, ctx, &entry, &shared).await,
        Serve::ProtoStream(f) => serve_streaming(stream, f, ctx, &entry, &shared).await,
        // Native handlers are not listed among the hivemind protocols.
        Serve::Native(_) => {}
    }
}

/// Why a call may not run: the limits and the interceptor. The text goes to the caller.
fn admit(
    entry: &Entry,
    ctx: &RpcContext,
    shared: &Shared,
) -> Result<crate::limits::InboundPermits, String> {
    let permits = shared
        .limits
        .try_acquire_inbound(ctx.remote_peer())
        .ok_or_else(|| RpcError::Busy {
            reason: "too many concurrent calls; retry later".into(),
        })
        .map_err(|e| e.to_string())?;
    if let Some(interceptor) = &entry.interceptor {
        interceptor
            .before(ctx)
            .map_err(|message| RpcError::Refused { message }.to_string())?;
    }
    Ok(permits)
}

/// Resolves when the caller sends anything after its request, or closes its write side, or the
/// stream breaks: on hivemind's wire all of these cancel the call (the Go daemon's
/// `notifyWhenClosed` treats a half-close the same way).
async fn caller_gone<R: futures::AsyncRead + Unpin>(reader: &mut R) {
    let mut byte = [0u8; 1];
    let _ = reader.read(&mut byte).await;
}

async fn serve_unary(
    mut stream: libp2p::Stream,
    f: Arc<ProtoUnaryFn>,
    ctx: RpcContext,
    entry: &Entry,
    shared: &Shared,
) {
    let limit = shared.config.max_message_size;
    let idle = shared.config.stream_idle_deadline;
    let request = match tokio::time::timeout(idle, read_envelope(&mut stream, limit)).await {
        Ok(Ok(envelope)) => UnaryRequest::from_envelope(envelope),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(HivemindWireError::Eof),
    };
    let request = match request {
        Ok(request) => request,
        Err(err) => {
            // The Go daemon closes such streams without an answer; so do we.
            tracing::debug!(name = %ctx.handle_name(), error = %err, "bad hivemind unary request");
            let _ = stream.close().await;
            return;
        }
    };
    let started = Instant::now();
    let outcome = match admit(entry, &ctx, shared) {
        Err(message) => UnaryOutcome::Error(message),
        Ok(permits) => {
            let result = tokio::select! {
                result = f(Bytes::from(request.data), ctx.clone()) => result,
                _ = caller_gone(&mut stream) => {
                    tracing::debug!(name = %ctx.handle_name(), "hivemind caller went away; call cancelled");
                    if let Some(interceptor) = &entry.interceptor {
                        interceptor.after(&ctx, false, started.elapsed());
                    }
                    return;
                }
            };
            drop(permits);
            if let Some(interceptor) = &entry.interceptor {
                interceptor.after(&ctx, result.is_ok(), started.elapsed());
            }
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
    if let Err(HivemindWireError::TooLarge { size, limit }) =
        write_envelope(&mut stream, &reply.to_envelope(), limit).await
    {
        // hivemind's Python never answers here; an error is kinder to the caller.
        reply.outcome = UnaryOutcome::Error(
            RpcError::MessageTooLarge {
                size: size as usize,
                limit,
            }
            .to_string(),
        );
        let _ = write_envelope(&mut stream, &reply.to_envelope(), limit).await;
    }
    let _ = stream.close().await;
}

async fn serve_streaming(
    stream: libp2p::Stream,
    f: Arc<ProtoStreamFn>,
    ctx: RpcContext,
    entry: &Entry,
    shared: &Shared,
) {
    let limit = shared.config.max_message_size;
    let idle = shared.config.stream_idle_deadline;
    let (mut reader, mut writer) = stream.split();
    let permits = match admit(entry, &ctx, shared) {
        Ok(permits) => permits,
        Err(message) => {
            let _ = write_frame(&mut writer, &StreamFrame::error(message), limit).await;
            let _ = writer.close().await;
            return;
        }
    };
    let started = Instant::now();
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, RpcError>>(REQUEST_PREFETCH);
    let requests = RequestStream::new(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    // Feeds requests to the handler until END_OF_STREAM; then waits for the caller to go away.
    let pump = async {
        let mut tx = Some(tx);
        loop {
            let next = if tx.is_some() {
                match tokio::time::timeout(idle, read_frame(&mut reader, limit)).await {
                    Ok(next) => next,
                    Err(_) => Err(HivemindWireError::Eof),
                }
            } else {
                return caller_gone(&mut reader).await;
            };
            match next {
                Ok(Some(StreamFrame::Message(bytes))) => {
                    if let Some(sender) = &tx
                        && sender.send(Ok(bytes)).await.is_err()
                    {
                        // The handler stopped reading; keep draining until the end.
                    }
                }
                // END_OF_STREAM (hivemind's server ends the requests at any error frame).
                Ok(Some(StreamFrame::Error(_))) => tx = None,
                Ok(None) => return,
                Err(err) => {
                    if let Some(sender) = tx.take() {
                        let _ = sender.try_send(Err(err.into()));
                    }
                    return caller_gone(&mut reader).await;
                }
            }
        }
    };
    let work = async {
        let mut responses = match f(requests, ctx.clone()).await {
            Ok(responses) => responses,
            Err(message) => {
                let _ = write_frame(&mut writer, &StreamFrame::error(message), limit).await;
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
            match write_frame(&mut writer, &frame, limit).await {
                Ok(()) if !failed => {}
                Ok(()) => return false,
                Err(err @ HivemindWireError::TooLarge { .. }) => {
                    let _ =
                        write_frame(&mut writer, &StreamFrame::error(err.to_string()), limit).await;
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
    drop(permits);
    if let Some(interceptor) = &entry.interceptor {
        interceptor.after(&ctx, ok, started.elapsed());
    }
    // The end of the responses is the end of the stream.
    let _ = writer.close().await;
}
