//! [`IpLimits`]: at most so many inbound connections from one IP address (one /64 for IPv6), as
//! go-libp2p's resource manager keeps them. rust-libp2p's `connection-limits` counts per peer and in total,
//! and peer ids cost nothing to make, so without this one host could take every inbound slot.
//! Loopback addresses are not counted: they are this machine's own processes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// The behaviour: denies an inbound connection when its IP already has `max_per_ip` pending or
/// established.
pub(crate) struct IpLimits {
    max_per_ip: usize,
    /// Inbound connections per remote IP, and which IP each connection counts for.
    per_ip: HashMap<IpAddr, usize>,
    connections: HashMap<ConnectionId, IpAddr>,
}

/// An inbound connection refused by [`IpLimits`].
#[derive(Debug, thiserror::Error)]
#[error("{ip} already has {limit} inbound connections")]
pub(crate) struct TooManyFromIp {
    ip: IpAddr,
    limit: usize,
}

impl IpLimits {
    /// At most `max_per_ip` inbound connections from one (non-loopback) IP.
    pub(crate) fn new(max_per_ip: usize) -> Self {
        IpLimits {
            max_per_ip,
            per_ip: HashMap::new(),
            connections: HashMap::new(),
        }
    }

    fn release(&mut self, connection: ConnectionId) {
        let Some(ip) = self.connections.remove(&connection) else {
            return;
        };
        if let Some(count) = self.per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// What a remote address counts for: its IPv4 address, or the /64 of its IPv6 address (one
/// host's usual share, so that a host cannot pass the limit by changing its low 64 bits); none
/// for loopback addresses.
fn counted_ip(addr: &Multiaddr) -> Option<IpAddr> {
    let ip = match addr.iter().next()? {
        Protocol::Ip4(ip) => IpAddr::V4(ip),
        Protocol::Ip6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(ip) & !u128::from(u64::MAX)).into()),
        },
        _ => return None,
    };
    (!ip.is_loopback()).then_some(ip)
}

impl NetworkBehaviour for IpLimits {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = counted_ip(remote) else {
            return Ok(());
        };
        let count = self.per_ip.entry(ip).or_default();
        if *count >= self.max_per_ip {
            return Err(ConnectionDenied::new(TooManyFromIp {
                ip,
                limit: self.max_per_ip,
            }));
        }
        *count += 1;
        self.connections.insert(connection, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _connection: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(closed) => self.release(closed.connection_id),
            FromSwarm::ListenFailure(failure) => self.release(failure.connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_per_ip_and_releases() {
        let mut limits = IpLimits::new(2);
        let local = addr("/ip4/10.0.0.1/tcp/1");
        let from = addr("/ip4/203.0.113.7/tcp/4000");
        let (a, b, c) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
            ConnectionId::new_unchecked(3),
        );
        assert!(
            limits
                .handle_pending_inbound_connection(a, &local, &from)
                .is_ok()
        );
        assert!(
            limits
                .handle_pending_inbound_connection(b, &local, &from)
                .is_ok()
        );
        assert!(
            limits
                .handle_pending_inbound_connection(c, &local, &from)
                .is_err()
        );
        // Another IP, and loopback, are not affected.
        let other = addr("/ip4/203.0.113.8/tcp/4000");
        assert!(
            limits
                .handle_pending_inbound_connection(c, &local, &other)
                .is_ok()
        );
        let lo = addr("/ip4/127.0.0.1/tcp/4000");
        for i in 10..20 {
            let id = ConnectionId::new_unchecked(i);
            assert!(
                limits
                    .handle_pending_inbound_connection(id, &local, &lo)
                    .is_ok()
            );
        }
        // IPv6 counts by /64: another address in the same /64 is the same host.
        let v6 = addr("/ip6/2001:db8:1:2::1/tcp/4000");
        let same_64 = addr("/ip6/2001:db8:1:2:ffff::9/tcp/4000");
        let other_64 = addr("/ip6/2001:db8:1:3::1/tcp/4000");
        for (i, from) in [&v6, &same_64].into_iter().enumerate() {
            let id = ConnectionId::new_unchecked(30 + i);
            assert!(
                limits
                    .handle_pending_inbound_connection(id, &local, from)
                    .is_ok()
            );
        }
        let id = ConnectionId::new_unchecked(32);
        assert!(
            limits
                .handle_pending_inbound_connection(id, &local, &same_64)
                .is_err()
        );
        assert!(
            limits
                .handle_pending_inbound_connection(id, &local, &other_64)
                .is_ok()
        );
        limits.release(a);
        let d = ConnectionId::new_unchecked(4);
        assert!(
            limits
                .handle_pending_inbound_connection(d, &local, &from)
                .is_ok()
        );
    }
}
