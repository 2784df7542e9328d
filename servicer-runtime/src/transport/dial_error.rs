//! [`dial_failure`]: what a failed dial means, as [`Unreachable`] and a sentence.
//!
//! libp2p reports a failed dial as one [`DialError`] whose transport errors are boxed several
//! times over (transport, upgrade, timeout); the cause is found by walking their sources.

use std::error::Error;
use std::io;

use libp2p::TransportError;
use libp2p::swarm::DialError;

use crate::Unreachable;

/// The cause of `err`, and the transport's own words for it.
pub(crate) fn dial_failure(err: &DialError) -> (Unreachable, String) {
    let cause = match err {
        DialError::LocalPeerId { .. } => Unreachable::LocalPeer,
        DialError::NoAddresses => Unreachable::NoAddress,
        DialError::WrongPeerId { .. } => Unreachable::WrongPeerId,
        DialError::Denied { .. } => Unreachable::Denied,
        DialError::Transport(attempts) => attempts
            .iter()
            .map(|(_, err)| match err {
                TransportError::MultiaddrNotSupported(_) => Unreachable::UnsupportedAddress,
                TransportError::Other(err) => of_io(err),
            })
            // Of several addresses, the most telling failure.
            .min_by_key(|cause| rank(*cause))
            .unwrap_or(Unreachable::NoAddress),
        DialError::Aborted | DialError::DialPeerConditionFalse(_) => Unreachable::Other,
    };
    (cause, err.to_string())
}

/// Lower is more telling: a refused port says more than an address this node cannot dial.
fn rank(cause: Unreachable) -> u8 {
    match cause {
        Unreachable::WrongPeerId => 0,
        Unreachable::Refused => 1,
        Unreachable::Handshake => 2,
        Unreachable::Dns => 3,
        Unreachable::Timeout => 4,
        Unreachable::UnsupportedAddress => 6,
        _ => 5,
    }
}

/// The cause of one transport's error: the first I/O error kind in its chain that says
/// something, else what its text names.
fn of_io(err: &io::Error) -> Unreachable {
    let mut next: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {
                    return Unreachable::Refused;
                }
                io::ErrorKind::TimedOut => return Unreachable::Timeout,
                _ => {}
            }
        }
        next = err.source();
    }
    let text = chain_text(err).to_lowercase();
    if text.contains("dns") || text.contains("resolve") || text.contains("lookup") {
        Unreachable::Dns
    } else if text.contains("refused") {
        Unreachable::Refused
    } else if text.contains("timed out") || text.contains("timeout") {
        Unreachable::Timeout
    } else if text.contains("handshake")
        || text.contains("noise")
        || text.contains("multistream")
        || text.contains("negotiat")
    {
        Unreachable::Handshake
    } else {
        Unreachable::Other
    }
}

fn chain_text(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(err) = next {
        text.push_str(": ");
        text.push_str(&err.to_string());
        next = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(err: io::Error) -> DialError {
        DialError::Transport(vec![(
            "/ip4/192.0.2.1/tcp/1".parse().unwrap(),
            TransportError::Other(err),
        )])
    }

    #[test]
    fn causes_are_found_under_the_wrapping() {
        let refused = io::Error::other(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(dial_failure(&transport(refused)).0, Unreachable::Refused);
        let timeout = io::Error::other(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(dial_failure(&transport(timeout)).0, Unreachable::Timeout);
        let noise = io::Error::other("noise: handshake failed: invalid payload");
        assert_eq!(dial_failure(&transport(noise)).0, Unreachable::Handshake);
        let unsupported = DialError::Transport(vec![(
            "/dns4/example.invalid/tcp/1".parse().unwrap(),
            TransportError::MultiaddrNotSupported("/dns4/example.invalid/tcp/1".parse().unwrap()),
        )]);
        assert_eq!(
            dial_failure(&unsupported).0,
            Unreachable::UnsupportedAddress
        );
        assert_eq!(
            dial_failure(&DialError::NoAddresses).0,
            Unreachable::NoAddress
        );
    }
}
