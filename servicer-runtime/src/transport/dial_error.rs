//! [`dial_failure`]: what a failed dial means, as [`Unreachable`] and a sentence.
//!
//! libp2p reports a failed dial as one [`DialError`] whose transport errors are boxed several
//! times over (transport, upgrade, timeout); the cause is found by walking their sources.

use std::error::Error;
use std::io;

use libp2p::dns::ResolveError;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::DialError;
use libp2p::{Multiaddr, TransportError};

use crate::Unreachable;

/// The cause of `err`, and the transport's own words for it; for a name that did not resolve,
/// "DNS: cannot resolve <name>" and the resolver's words only.
pub(crate) fn dial_failure(err: &DialError) -> (Unreachable, String) {
    let (cause, attempt) = match err {
        DialError::LocalPeerId { .. } => (Unreachable::LocalPeer, None),
        DialError::NoAddresses => (Unreachable::NoAddress, None),
        DialError::WrongPeerId { .. } => (Unreachable::WrongPeerId, None),
        DialError::Denied { .. } => (Unreachable::Denied, None),
        DialError::Transport(attempts) => attempts
            .iter()
            .map(|attempt| {
                let cause = match &attempt.1 {
                    TransportError::MultiaddrNotSupported(_) => Unreachable::UnsupportedAddress,
                    TransportError::Other(err) => of_io(err),
                };
                (cause, Some(attempt))
            })
            // Of several addresses, the most telling failure.
            .min_by_key(|(cause, _)| rank(*cause))
            .unwrap_or((Unreachable::NoAddress, None)),
        DialError::Aborted | DialError::DialPeerConditionFalse(_) => (Unreachable::Other, None),
    };
    let reason = match attempt {
        Some((addr, err)) if cause == Unreachable::Dns => unresolved(addr, err),
        _ => None,
    };
    (cause, reason.unwrap_or_else(|| one_line(&err.to_string())))
}

/// `text` on one line: the DNS transport lists its errors one per line ("Multiple dial errors
/// occurred:\n - ..."), which would split a log line and the bootstrap error of `p2p-dht`.
fn one_line(text: &str) -> String {
    text.replace(":\n - ", ": ")
        .replace("\n - ", "; ")
        .replace('\n', " ")
}

/// "DNS: cannot resolve <name>" for a dial of `addr` that failed with `err`, with the resolver's
/// words when it gave some (the dial error's own text repeats them at every level it passed).
fn unresolved(addr: &Multiaddr, err: &TransportError<io::Error>) -> Option<String> {
    let name = addr.iter().find_map(|p| match p {
        Protocol::Dns(name)
        | Protocol::Dns4(name)
        | Protocol::Dns6(name)
        | Protocol::Dnsaddr(name) => Some(name),
        _ => None,
    })?;
    let said = match err {
        TransportError::Other(err) => {
            let mut next: Option<&(dyn Error + 'static)> = Some(err);
            std::iter::from_fn(|| {
                let err = next?;
                next = err.source();
                Some(err)
            })
            .find(|e| e.is::<ResolveError>())
            .map(|e| one_line(&e.to_string()))
        }
        TransportError::MultiaddrNotSupported(_) => None,
    };
    Some(match said {
        Some(said) => format!("DNS: cannot resolve {name} in {addr}: {said}"),
        None => format!("DNS: cannot resolve {name} in {addr}"),
    })
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
/// something, or the resolver's error, else what its text names.
///
/// Every dial goes through the DNS transport (see [`super::dns`]), which reports even an address
/// without a name as its own error: "Unsupported resolved address" for a transport this node
/// lacks, the resolver's error under it for a name that did not resolve.
fn of_io(err: &io::Error) -> Unreachable {
    let mut next: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(err) = next {
        if err.is::<ResolveError>() {
            return Unreachable::Dns;
        }
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
    if text.contains("unsupported resolved address") {
        Unreachable::UnsupportedAddress
    } else if text.contains("dns") || text.contains("resolve") || text.contains("lookup") {
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

    /// A dial as the DNS transport fails it, boxed as the swarm boxes it.
    fn through_dns(addr: &str, err: libp2p::dns::Error<io::Error>) -> DialError {
        DialError::Transport(vec![(
            addr.parse().unwrap(),
            TransportError::Other(io::Error::other(libp2p::dns::Error::Dial(vec![err]))),
        )])
    }

    #[test]
    fn a_name_that_does_not_resolve_is_dns_and_named() {
        let addr = "/dns4/no-such-host.invalid/tcp/1";
        let unresolved = libp2p::dns::Error::ResolveError(ResolveError::from("no record found"));
        let (cause, reason) = dial_failure(&through_dns(addr, unresolved));
        assert_eq!(cause, Unreachable::Dns);
        assert!(
            reason.starts_with("DNS: cannot resolve no-such-host.invalid"),
            "{reason}"
        );
    }

    #[test]
    fn the_dns_transport_keeps_the_other_causes() {
        let refused =
            libp2p::dns::Error::Transport(io::Error::from(io::ErrorKind::ConnectionRefused));
        let (cause, reason) = dial_failure(&through_dns("/dns4/localhost/tcp/1", refused));
        assert_eq!(cause, Unreachable::Refused);
        assert!(!reason.starts_with("DNS"), "{reason}");
        assert!(!reason.contains('\n'), "{reason}");
        let udp: Multiaddr = "/ip4/127.0.0.1/udp/1".parse().unwrap();
        let unsupported = libp2p::dns::Error::MultiaddrNotSupported(udp);
        assert_eq!(
            dial_failure(&through_dns("/ip4/127.0.0.1/udp/1", unsupported)).0,
            Unreachable::UnsupportedAddress
        );
    }
}
