//! [`RpcHandler`]: one connection's side of the RPC behaviour. It opens the outbound streams the
//! behaviour asks for and hands every negotiated inbound stream to the [`Inbound`].

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade, UpgradeInfo};
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionHandler, ConnectionHandlerEvent, ConnectionId, StreamUpgradeError, SubstreamProtocol,
};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::oneshot;

use super::Inbound;
use crate::RpcError;

/// Where an opened outbound stream (or the reason it failed) is sent.
pub(crate) type StreamReply = oneshot::Sender<Result<(libp2p::Stream, ConnectionId), RpcError>>;

/// Asks a connection to open an outbound stream of `protocol`.
#[derive(Debug)]
pub(crate) struct OpenStream {
    pub protocol: StreamProtocol,
    /// What the caller gets if the remote does not support `protocol`.
    pub refused: RpcError,
    pub reply: StreamReply,
}

/// The protocols of one side of a negotiation, handing the stream and the chosen protocol to the
/// handler.
#[derive(Debug, Clone)]
pub(crate) struct Protocols(Arc<Vec<StreamProtocol>>);

impl UpgradeInfo for Protocols {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        Vec::clone(&self.0).into_iter()
    }
}

impl InboundUpgrade<libp2p::Stream> for Protocols {
    type Output = (libp2p::Stream, StreamProtocol);
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Output, Infallible>>;

    fn upgrade_inbound(self, stream: libp2p::Stream, info: StreamProtocol) -> Self::Future {
        std::future::ready(Ok((stream, info)))
    }
}

impl OutboundUpgrade<libp2p::Stream> for Protocols {
    type Output = (libp2p::Stream, StreamProtocol);
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Output, Infallible>>;

    fn upgrade_outbound(self, stream: libp2p::Stream, info: StreamProtocol) -> Self::Future {
        std::future::ready(Ok((stream, info)))
    }
}

/// What an outbound stream being negotiated carries: where it goes, and the error if refused.
type OpenInfo = (RpcError, StreamReply);

/// One connection's side of the protocol.
pub(crate) struct RpcHandler {
    inbound: Arc<dyn Inbound>,
    remote: PeerId,
    connection: ConnectionId,
    negotiation_timeout: Duration,
    to_open: VecDeque<OpenStream>,
}

impl RpcHandler {
    pub(crate) fn new(
        inbound: Arc<dyn Inbound>,
        remote: PeerId,
        connection: ConnectionId,
        negotiation_timeout: Duration,
    ) -> Self {
        RpcHandler {
            inbound,
            remote,
            connection,
            negotiation_timeout,
            to_open: VecDeque::new(),
        }
    }
}

impl ConnectionHandler for RpcHandler {
    type FromBehaviour = OpenStream;
    type ToBehaviour = Infallible;
    type InboundProtocol = Protocols;
    type OutboundProtocol = Protocols;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = OpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, ()> {
        SubstreamProtocol::new(Protocols(self.inbound.protocols()), ())
            .with_timeout(self.negotiation_timeout)
    }

    fn poll(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, OpenInfo, Infallible>> {
        while let Some(open) = self.to_open.pop_front() {
            // The caller gave up (deadline, drop): don't open a stream nobody reads.
            if open.reply.is_closed() {
                continue;
            }
            let upgrade = Protocols(Arc::new(vec![open.protocol]));
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(upgrade, (open.refused, open.reply))
                    .with_timeout(self.negotiation_timeout),
            });
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, open: OpenStream) {
        self.to_open.push_back(open);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol, (), OpenInfo>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (stream, protocol),
                ..
            }) => self.inbound.accept(stream, protocol, self.remote),
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: (stream, _),
                info: (_, reply),
            }) => {
                let _ = reply.send(Ok((stream, self.connection)));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError {
                info: (refused, reply),
                error,
            }) => {
                let err = match error {
                    StreamUpgradeError::Timeout => {
                        RpcError::DeadlineExceeded(self.negotiation_timeout)
                    }
                    StreamUpgradeError::NegotiationFailed => refused,
                    StreamUpgradeError::Io(e) => RpcError::ConnectionClosed(e.to_string()),
                    StreamUpgradeError::Apply(never) => match never {},
                };
                let _ = reply.send(Err(err));
            }
            _ => {}
        }
    }
}
