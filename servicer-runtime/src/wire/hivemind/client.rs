//! The client half of hivemind's wire: a new stream per call, negotiated for the handler's own
//! name. Never half-closes before the reply (a hivemind callee takes that as cancellation);
//! dropping the call closes the stream, which cancels the remote handler.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{AsyncWriteExt, Stream, StreamExt};
use libp2p::core::upgrade::NegotiationError;

use super::frames::{StreamFrame, read_frame, write_frame};
use super::server::encode;
use super::unary::{CallId, UnaryOutcome, UnaryReply, UnaryRequest, read_envelope, write_envelope};
use super::{Hivemind, HivemindWireError, decode_as, protocol};
use crate::wire::{AbortOnDrop, Call, Connector, Encode, Message};
use crate::{ResponseStream, RpcError};

/// Maps a wire error of a call to `name` to the caller's error: an `na` in the negotiation is an
/// unknown handler, an EOF before the reply is hivemind's silent refusal
/// (docs/hivemind-compat.md#w5).
fn call_error(err: HivemindWireError, name: &str) -> RpcError {
    if let HivemindWireError::Io(io) = &err
        && io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<NegotiationError>())
            .is_some()
    {
        return RpcError::UnknownHandler {
            name: name.to_owned(),
        };
    }
    match err {
        HivemindWireError::Eof => RpcError::ConnectionClosed(format!(
            "`{name}` closed the stream without a reply (unknown handler, over-size reply, or a \
             malformed request)"
        )),
        other => other.into(),
    }
}

/// What a caller gets when the callee does not serve `name`.
fn unknown(name: &str) -> RpcError {
    RpcError::UnknownHandler {
        name: name.to_owned(),
    }
}

/// One unary call: one envelope each way, within the call's deadline.
pub(super) async fn unary<C, Req, Resp>(call: Call<'_, C>, request: Req) -> Result<Resp, RpcError>
where
    C: Connector,
    Req: Encode<Hivemind>,
    Resp: Encode<Hivemind>,
{
    let connector = call.connector;
    let name = call.name;
    let limit = connector.settings().max_message_size;
    let data = encode(&request)?;
    let bytes = call
        .within(async {
            let _slot = connector.slot().await?;
            let (mut stream, _) = connector.open(protocol(name)?, unknown(name)).await?;
            let request = UnaryRequest {
                call_id: CallId::random(),
                // What hivemind's daemon sends: the callee's own id (the callee ignores it).
                peer: connector.peer().to_bytes(),
                proto: name.to_owned(),
                data,
            };
            write_envelope(&mut stream, &request.to_envelope(), limit)
                .await
                .map_err(|e| call_error(e, name))?;
            let envelope = read_envelope(&mut stream, limit)
                .await
                .map_err(|e| call_error(e, name))?;
            let reply = UnaryReply::from_envelope(envelope).map_err(|e| call_error(e, name))?;
            // The reply is in: closing now cancels nothing.
            let _ = stream.close().await;
            if reply.call_id != request.call_id {
                return Err(RpcError::Malformed(
                    "the reply carries another call id".into(),
                ));
            }
            match reply.outcome {
                UnaryOutcome::Response(bytes) => Ok(bytes),
                UnaryOutcome::Error(message) => Err(RpcError::Remote { message }),
            }
        })
        .await?;
    decode_as(&bytes, "the response")
}

/// A stream-unary call: the first response of a streaming call.
pub(super) async fn stream_unary<C, Req, Resp, S>(
    call: Call<'_, C>,
    requests: S,
) -> Result<Resp, RpcError>
where
    C: Connector,
    Req: Message<Hivemind>,
    Resp: Message<Hivemind>,
    S: Stream<Item = Req> + Send + 'static,
{
    let mut responses = stream_stream::<C, Req, Resp, S>(call, requests).await?;
    match responses.next().await {
        Some(result) => result,
        None => Err(RpcError::ConnectionClosed(
            "the stream ended without a response".into(),
        )),
    }
}

/// A streaming call: `requests` go out from a task, followed by `END_OF_STREAM` (and no
/// half-close); the returned stream yields the responses until the callee closes the stream. An
/// error frame is the last item, as [`RpcError::Remote`].
pub(super) async fn stream_stream<C, Req, Resp, S>(
    call: Call<'_, C>,
    requests: S,
) -> Result<ResponseStream<Resp>, RpcError>
where
    C: Connector,
    Req: Message<Hivemind>,
    Resp: Message<Hivemind>,
    S: Stream<Item = Req> + Send + 'static,
{
    let connector = call.connector;
    let name = call.name.to_owned();
    let settings = connector.settings();
    let (limit, idle) = (settings.max_message_size, settings.idle);
    let (slot, stream) = call
        .within(async {
            let slot = connector.slot().await?;
            let (stream, _) = connector.open(protocol(&name)?, unknown(&name)).await?;
            Ok((slot, stream))
        })
        .await?;
    let requests: BoxStream<'static, Result<Vec<u8>, RpcError>> =
        requests.map(|request| encode(&request)).boxed();
    let (reader, mut writer) = futures::AsyncReadExt::split(stream);
    let sender = tokio::spawn(async move {
        let mut requests = requests;
        while let Some(request) = requests.next().await {
            let frame = match request {
                Ok(bytes) => StreamFrame::Message(Bytes::from(bytes)),
                Err(err) => {
                    tracing::debug!(error = %err, "hivemind request not encoded");
                    return;
                }
            };
            if let Err(err) = write_frame(&mut writer, &frame, limit).await {
                tracing::debug!(error = %err, "hivemind request not sent");
                return;
            }
        }
        let _ = write_frame(&mut writer, &StreamFrame::end_of_stream(), limit).await;
        // Keep the write side open until the responses end: the callee's daemon closes
        // everything at our EOF. Holding `writer` in this task does that.
        futures::future::pending::<()>().await;
    });
    // The name rides in the state: it names the handler in an error, never needed otherwise.
    let state = Some((reader, AbortOnDrop::new(sender), slot, name));
    Ok(ResponseStream::new(futures::stream::unfold(
        state,
        move |state| async move {
            let (mut reader, sender, slot, name) = state?;
            let item = match tokio::time::timeout(idle, read_frame(&mut reader, limit)).await {
                Err(_) => Err(RpcError::DeadlineExceeded(idle)),
                Ok(Ok(Some(StreamFrame::Message(bytes)))) => Ok(Some(bytes)),
                Ok(Ok(Some(StreamFrame::Error(error)))) => Err(RpcError::Remote {
                    message: error.message.unwrap_or_default(),
                }),
                Ok(Ok(None)) => Ok(None),
                Ok(Err(err)) => Err(call_error(err, &name)),
            };
            match item.and_then(|bytes| {
                bytes
                    .map(|bytes| decode_as::<Resp>(&bytes, "a response"))
                    .transpose()
            }) {
                Ok(Some(response)) => Some((Ok(response), Some((reader, sender, slot, name)))),
                Ok(None) => None,
                Err(err) => Some((Err(err), None)),
            }
        },
    )))
}
