//! Calling a handler on hivemind's wire: a new stream per call, negotiated for the handler's own
//! name. Never half-closes before the reply (a hivemind callee takes that as cancellation);
//! dropping the call closes the stream, which cancels the remote handler.

use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use libp2p::core::upgrade::NegotiationError;

use super::HivemindWireError;
use super::frames::{StreamFrame, read_frame, write_frame};
use super::unary::{CallId, UnaryOutcome, UnaryReply, UnaryRequest, read_envelope, write_envelope};
use crate::{P2P, ResponseStream, RpcError};

/// Maps a wire error of a call to `name` to the caller's error: an `na` in the negotiation is an
/// unknown handler, an EOF before the reply is hivemind's silent refusal.
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

/// One unary call: request bytes in, response bytes out, within `deadline`.
pub(crate) async fn unary(
    p2p: &P2P,
    peer: PeerId,
    name: &str,
    data: Vec<u8>,
    deadline: Duration,
) -> Result<Vec<u8>, RpcError> {
    let limit = p2p.config().max_message_size();
    let call = async {
        let mut stream = p2p.open_hivemind_stream(peer, name).await?;
        let request = UnaryRequest {
            call_id: CallId::random(),
            // What hivemind's daemon sends: the callee's own id (the callee ignores it).
            peer: peer.to_bytes(),
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
    };
    tokio::time::timeout(deadline, call)
        .await
        .unwrap_or(Err(RpcError::DeadlineExceeded(deadline)))
}

/// Aborts the request-sending task when the response stream is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A streaming call: `requests` go out from a task, followed by `END_OF_STREAM` (and no
/// half-close); the returned stream yields the responses until the callee closes the stream. An
/// error frame is the last item, as [`RpcError::Remote`].
pub(crate) async fn streaming(
    p2p: &P2P,
    peer: PeerId,
    name: &str,
    requests: BoxStream<'static, Vec<u8>>,
    open_deadline: Duration,
    idle: Duration,
) -> Result<ResponseStream<Bytes>, RpcError> {
    let limit = p2p.config().max_message_size();
    let stream = tokio::time::timeout(open_deadline, p2p.open_hivemind_stream(peer, name))
        .await
        .unwrap_or(Err(RpcError::DeadlineExceeded(open_deadline)))?;
    let (reader, mut writer) = futures::AsyncReadExt::split(stream);
    let sender = tokio::spawn(async move {
        let mut requests = requests;
        while let Some(request) = requests.next().await {
            let frame = StreamFrame::Message(Bytes::from(request));
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
    let name = name.to_owned();
    let state = Some((reader, AbortOnDrop(sender)));
    Ok(ResponseStream::new(futures::stream::unfold(
        state,
        move |state| {
            let name = name.clone();
            async move {
                let (mut reader, sender) = state?;
                let item = match tokio::time::timeout(idle, read_frame(&mut reader, limit)).await {
                    Err(_) => Err(RpcError::DeadlineExceeded(idle)),
                    Ok(Ok(Some(StreamFrame::Message(bytes)))) => Ok(Some(bytes)),
                    Ok(Ok(Some(StreamFrame::Error(error)))) => Err(RpcError::Remote {
                        message: error.message.unwrap_or_default(),
                    }),
                    Ok(Ok(None)) => Ok(None),
                    Ok(Err(err)) => Err(call_error(err, &name)),
                };
                match item {
                    Ok(Some(bytes)) => Some((Ok(bytes), Some((reader, sender)))),
                    Ok(None) => None,
                    Err(err) => Some((Err(err), None)),
                }
            }
        },
    )))
}
