//! A stream-muxer wrapper that lets rust-libp2p negotiate hivemind's protocol names, which have
//! no leading `/` (`DHTProtocol.rpc_ping`).
//!
//! # Why this exists, and why here
//!
//! rust-libp2p 0.57 refuses such names in its multistream-select (0.14): `Protocol::try_from`
//! requires a `/`, so its dialer fails before sending anything, its listener drops them from the
//! names it supports, and a received line without `/` is not even read as a protocol (its
//! `protocol.rs`, `dialer_select.rs` and `listener_select.rs`; docs/hivemind-compat.md#w2). Every
//! substream a `ConnectionHandler` sees has already been through that negotiation (libp2p-swarm's
//! `connection.rs` wraps each muxer substream in a `StreamUpgrade` before the handler gets it), so
//! no behaviour can opt out. Patching `multistream-select` works, but `[patch]` only applies in the
//! top-level workspace: a library cannot impose it on its users, and we do not vendor crates.
//!
//! The one place where a library sees a substream *before* rust's negotiation is the stream
//! muxer: a transport yields `(PeerId, impl StreamMuxer)`, `Transport::map` can wrap that muxer,
//! and the swarm builder's `with_other_transport` takes any such transport. [`TranslatingMuxer`]
//! wraps yamux this way, and each of its substreams ([`Translated`]) **rewrites names during the
//! negotiation and is transparent afterwards**:
//!
//! - outbound: the runtime's handler proposes `PREFIX ++ name` (a valid `StreamProtocol`, e.g.
//!   `/servicer/hivemind/DHTProtocol.rpc_ping`); the wrapper sends `name` on the wire and turns
//!   the remote's echo `name` back into `PREFIX ++ name` (`na` passes unchanged);
//! - inbound: a proposal without `/` is handed to rust's listener as `PREFIX ++ name`; the
//!   handler's `listen_protocol` lists `PREFIX ++ name` for every registered handler, so rust
//!   accepts known names and answers `na` to unknown ones itself; an accepting echo is turned back
//!   into `name`. The next proposal is parsed only after the listener's answer (after an echo,
//!   everything is data: a lazy go dialer sends its request right behind the proposal).
//! - names with a `/` pass untouched, so identify, ping and the native protocol are unaffected;
//!   anything unexpected switches the substream to plain pass-through and leaves the verdict to
//!   rust's own negotiation.
//!
//! This keeps hivemind streams inside the ordinary `ConnectionHandler` machinery (keep-alive,
//! negotiation timeouts, inbound stream limits) with no side channels. The price: identify
//! advertises the prefixed names rather than hivemind's (the swarm drops names without `/` from
//! `ProtocolsChange`), so go dialers negotiate with a full round trip instead of lazily.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};

use crate::wire::hivemind::negotiate::{self, NegotiationMessage};
use crate::wire::hivemind::{PREFIX, varint};

/// The largest negotiation message the translator parses; anything longer is passed through to
/// rust's multistream-select, which rejects it.
const MAX_PARSED: usize = 64 * 1024;

/// Bytes read from the inner substream at a time while negotiating.
const READ_CHUNK: usize = 1024;

/// Wraps a stream muxer so that its substreams translate hivemind protocol names (module docs).
#[derive(Debug)]
pub(crate) struct TranslatingMuxer<M> {
    inner: M,
}

impl<M> TranslatingMuxer<M> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: M) -> Self {
        TranslatingMuxer { inner }
    }
}

impl<M> StreamMuxer for TranslatingMuxer<M>
where
    M: StreamMuxer + Unpin,
    M::Substream: Unpin,
{
    type Substream = Translated<M::Substream>;
    type Error = M::Error;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let stream = ready!(Pin::new(&mut self.inner).poll_inbound(cx))?;
        Poll::Ready(Ok(Translated::new(stream, Role::Listener)))
    }

    fn poll_outbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let stream = ready!(Pin::new(&mut self.inner).poll_outbound(cx))?;
        Poll::Ready(Ok(Translated::new(stream, Role::Dialer)))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// We opened the substream: rust's dialer writes, the remote listener answers.
    Dialer,
    /// The remote opened it: the remote dialer proposes, rust's listener answers.
    Listener,
}

/// Where the parse of one direction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Expecting the `/multistream/1.0.0` header.
    Header,
    /// Expecting proposals (dialer's side) or answers (listener's side).
    Lines,
    /// (Listener, read side) a proposal went up; wait for rust's answer before parsing more.
    AwaitAnswer,
    /// Negotiation over: bytes pass unchanged.
    Through,
}

/// One negotiation message as it arrived: its bytes, and what it says if it is a single line.
struct Raw {
    bytes: Vec<u8>,
    line: Option<NegotiationMessage>,
}

enum Parsed {
    NegotiationMessage(Raw),
    NeedMore,
    /// Not a negotiation message we understand: give up translating.
    Foreign,
}

fn parse(buf: &mut Vec<u8>) -> Parsed {
    let (len, prefix) = match varint::decode(buf) {
        Ok(Some(v)) => v,
        Ok(None) => return Parsed::NeedMore,
        Err(_) => return Parsed::Foreign,
    };
    if len > MAX_PARSED as u64 {
        return Parsed::Foreign;
    }
    let end = prefix + len as usize;
    if buf.len() < end {
        return Parsed::NeedMore;
    }
    let bytes: Vec<u8> = buf.drain(..end).collect();
    let line = match negotiate::decode_message(&bytes) {
        Ok(Some((message, used))) if used == bytes.len() => Some(message),
        _ => None,
    };
    Parsed::NegotiationMessage(Raw { bytes, line })
}

fn encode(line: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + 3);
    varint::encode(line.len() as u64 + 1, &mut out);
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
    out
}

/// A substream that translates hivemind names during multistream-select (module docs).
#[derive(Debug)]
pub(crate) struct Translated<S> {
    inner: S,
    role: Role,
    /// Raw bytes from `inner` not yet parsed.
    read_in: Vec<u8>,
    /// Bytes ready for the reader above, from `read_pos`.
    read_out: Vec<u8>,
    read_pos: usize,
    read_phase: Phase,
    read_waker: Option<Waker>,
    /// Bytes from the writer above not yet parsed.
    write_in: Vec<u8>,
    /// Bytes to send to `inner`, from `write_pos`.
    write_out: Vec<u8>,
    write_pos: usize,
    write_phase: Phase,
    /// The hivemind name this substream negotiates, once a proposal was rewritten.
    name: Option<String>,
}

impl<S> Translated<S> {
    fn new(inner: S, role: Role) -> Self {
        Translated {
            inner,
            role,
            read_in: Vec::new(),
            read_out: Vec::new(),
            read_pos: 0,
            read_phase: Phase::Header,
            read_waker: None,
            write_in: Vec::new(),
            write_out: Vec::new(),
            write_pos: 0,
            write_phase: Phase::Header,
            name: None,
        }
    }

    fn set_read_phase(&mut self, phase: Phase) {
        self.read_phase = phase;
        if let Some(waker) = self.read_waker.take() {
            waker.wake();
        }
    }

    /// Parses what it can of `read_in` into `read_out`; false when more bytes are needed.
    fn step_read(&mut self) -> bool {
        match self.read_phase {
            Phase::Through => {
                self.read_out.append(&mut self.read_in);
                return true;
            }
            Phase::AwaitAnswer => return false,
            Phase::Header | Phase::Lines => {}
        }
        let raw = match parse(&mut self.read_in) {
            Parsed::NeedMore => return false,
            Parsed::Foreign => {
                self.read_phase = Phase::Through;
                return true;
            }
            Parsed::NegotiationMessage(raw) => raw,
        };
        let mut out = raw.bytes;
        match (self.role, self.read_phase, raw.line) {
            (_, Phase::Header, Some(NegotiationMessage::Header)) => self.read_phase = Phase::Lines,
            // The remote listener's answers to our proposal.
            (Role::Dialer, _, Some(NegotiationMessage::NotAvailable)) => {}
            (Role::Dialer, _, Some(NegotiationMessage::Protocol(echo))) => {
                if self.name.as_deref() == Some(echo.as_str()) {
                    out = encode(&format!("{PREFIX}{echo}"));
                }
                self.read_phase = Phase::Through;
            }
            // The remote dialer's proposals.
            (Role::Listener, _, Some(NegotiationMessage::Protocol(proposal))) => {
                if !proposal.starts_with('/') {
                    out = encode(&format!("{PREFIX}{proposal}"));
                    self.name = Some(proposal);
                }
                self.read_phase = Phase::AwaitAnswer;
            }
            (Role::Listener, _, Some(NegotiationMessage::ListProtocols)) => {
                self.read_phase = Phase::AwaitAnswer;
            }
            _ => self.read_phase = Phase::Through,
        }
        self.read_out.extend_from_slice(&out);
        true
    }

    /// Parses what it can of `write_in` into `write_out`; false when more bytes are needed.
    fn step_write(&mut self) -> bool {
        if self.write_phase == Phase::Through {
            self.write_out.append(&mut self.write_in);
            return false;
        }
        let raw = match parse(&mut self.write_in) {
            Parsed::NeedMore => return false,
            Parsed::Foreign => {
                self.write_phase = Phase::Through;
                return true;
            }
            Parsed::NegotiationMessage(raw) => raw,
        };
        let mut out = raw.bytes;
        match (self.role, self.write_phase, raw.line) {
            (_, Phase::Header, Some(NegotiationMessage::Header)) => self.write_phase = Phase::Lines,
            // rust's dialer: its (only) proposal. Anything after it is data (V1Lazy).
            (Role::Dialer, _, Some(NegotiationMessage::Protocol(proposal))) => {
                if let Some(name) = proposal.strip_prefix(PREFIX) {
                    out = encode(name);
                    self.name = Some(name.to_owned());
                }
                self.write_phase = Phase::Through;
            }
            // rust's listener: its answers.
            (Role::Listener, _, Some(NegotiationMessage::Protocol(echo))) => {
                if let Some(name) = &self.name
                    && echo.strip_prefix(PREFIX) == Some(name.as_str())
                {
                    out = encode(name);
                }
                self.write_phase = Phase::Through;
                self.set_read_phase(Phase::Through);
            }
            (Role::Listener, Phase::Lines, _) => {
                // `na`, or an `ls` answer: the remote may propose again.
                self.name = None;
                self.set_read_phase(Phase::Lines);
            }
            _ => {
                self.write_phase = Phase::Through;
                if self.role == Role::Listener {
                    self.set_read_phase(Phase::Through);
                }
            }
        }
        self.write_out.extend_from_slice(&out);
        true
    }
}

impl<S: AsyncWrite + Unpin> Translated<S> {
    /// Writes `write_out` to the inner substream.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.write_pos < self.write_out.len() {
            let n = ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.write_out[self.write_pos..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write_pos += n;
        }
        self.write_out.clear();
        self.write_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Translated<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if this.read_pos < this.read_out.len() {
                let n = buf.len().min(this.read_out.len() - this.read_pos);
                buf[..n].copy_from_slice(&this.read_out[this.read_pos..this.read_pos + n]);
                this.read_pos += n;
                return Poll::Ready(Ok(n));
            }
            this.read_out.clear();
            this.read_pos = 0;
            if this.read_phase == Phase::Through && this.read_in.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if this.step_read() {
                continue;
            }
            if this.read_phase == Phase::AwaitAnswer {
                // Woken by the write side when rust's listener answers.
                this.read_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let mut chunk = [0u8; READ_CHUNK];
            let n = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk))?;
            if n == 0 {
                // EOF inside the negotiation: hand up what there is; rust reports the error.
                this.read_phase = Phase::Through;
                if this.read_in.is_empty() {
                    return Poll::Ready(Ok(0));
                }
                continue;
            }
            this.read_in.extend_from_slice(&chunk[..n]);
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Translated<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if this.write_phase == Phase::Through && this.write_in.is_empty() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        this.write_in.extend_from_slice(buf);
        while this.step_write() {}
        // Start sending now; what does not fit goes out on the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_in.is_empty() {
            // An unfinished negotiation message: send it as it is.
            let rest = std::mem::take(&mut this.write_in);
            this.write_out.extend_from_slice(&rest);
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{AsyncReadExt, AsyncWriteExt};
    use libp2p::core::upgrade::Version;
    use multistream_select::{dialer_select_proto, listener_select_proto};
    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

    type Pipe = Compat<tokio::io::DuplexStream>;

    fn pipe() -> (Pipe, Pipe) {
        let (a, b) = tokio::io::duplex(4096);
        (a.compat(), b.compat())
    }

    /// Hands out at most `max` bytes per read and per write, so that the translator sees every
    /// negotiation message cut into pieces.
    struct Trickle<S> {
        inner: S,
        max: usize,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Trickle<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.max);
            Pin::new(&mut self.inner).poll_read(cx, &mut buf[..n])
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Trickle<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.max);
            Pin::new(&mut self.inner).poll_write(cx, &buf[..n])
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_close(cx)
        }
    }

    fn lines(ls: &[&str]) -> Vec<u8> {
        ls.iter().flat_map(|l| encode(l)).collect()
    }

    async fn read_n<R: AsyncRead + Unpin>(io: &mut R, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        io.read_exact(&mut buf).await.expect("read");
        buf
    }

    /// rust's dialer (V1Lazy, as the runtime configures it) through the wrapper, against a
    /// scripted go listener: the wire carries the bare name, rust sees its prefixed one.
    #[tokio::test]
    async fn outbound_rewrites_proposal_and_echo() {
        let (a, mut remote) = pipe();
        let ours = Translated::new(a, Role::Dialer);
        let proposal = format!("{PREFIX}DHTProtocol.rpc_ping");
        let dialer = async {
            let (p, mut io) =
                dialer_select_proto(ours, [proposal.as_str()], Version::V1Lazy).await?;
            io.write_all(b"request").await?;
            io.flush().await?;
            let reply = read_n(&mut io, 5).await;
            Ok::<_, io::Error>((p.to_owned(), reply))
        };
        let script = async {
            let expected = lines(&["/multistream/1.0.0", "DHTProtocol.rpc_ping"]);
            assert_eq!(read_n(&mut remote, expected.len()).await, expected);
            assert_eq!(read_n(&mut remote, 7).await, b"request");
            let mut answer = lines(&["/multistream/1.0.0", "DHTProtocol.rpc_ping"]);
            answer.extend_from_slice(b"reply");
            remote.write_all(&answer).await.expect("write");
            remote.flush().await.expect("flush");
        };
        let (d, ()) = tokio::join!(dialer, script);
        let (p, reply) = d.expect("dialer");
        assert_eq!(p, proposal);
        assert_eq!(reply, b"reply");
    }

    /// An `na` from the remote is rust's negotiation failure, as for any other protocol.
    #[tokio::test]
    async fn outbound_refusal_is_a_negotiation_failure() {
        let (a, mut remote) = pipe();
        let ours = Translated::new(a, Role::Dialer);
        let proposal = format!("{PREFIX}Nope.rpc_x");
        let dialer = async {
            let (_, mut io) = dialer_select_proto(ours, [proposal.as_str()], Version::V1).await?;
            io.write_all(b"x").await
        };
        let script = async {
            let expected = lines(&["/multistream/1.0.0", "Nope.rpc_x"]);
            assert_eq!(read_n(&mut remote, expected.len()).await, expected);
            remote
                .write_all(&lines(&["/multistream/1.0.0", "na"]))
                .await
                .expect("write");
        };
        let (d, ()) = tokio::join!(dialer, script);
        assert!(d.is_err());
    }

    /// A go dialer (lazy: its request right behind the proposal) against rust's listener through
    /// the wrapper: an unknown name gets `na`, a known one its bare echo, and the data is intact.
    #[tokio::test]
    async fn inbound_rewrites_proposals_and_answers() {
        let (a, mut remote) = pipe();
        let ours = Translated::new(a, Role::Listener);
        let known = format!("{PREFIX}DHTProtocol.rpc_find");
        let listener = async {
            let (p, mut io) =
                listener_select_proto(ours, [known.as_str(), "/ipfs/id/1.0.0"]).await?;
            let data = read_n(&mut io, 4).await;
            io.write_all(b"done").await?;
            io.flush().await?;
            Ok::<_, io::Error>((p.to_owned(), data))
        };
        let script = async {
            remote
                .write_all(&lines(&["/multistream/1.0.0", "Unknown.rpc_x"]))
                .await
                .expect("write");
            let expected = lines(&["/multistream/1.0.0", "na"]);
            assert_eq!(read_n(&mut remote, expected.len()).await, expected);
            let mut lazy = lines(&["DHTProtocol.rpc_find"]);
            lazy.extend_from_slice(b"DATA");
            remote.write_all(&lazy).await.expect("write");
            let echo = lines(&["DHTProtocol.rpc_find"]);
            assert_eq!(read_n(&mut remote, echo.len()).await, echo);
            assert_eq!(read_n(&mut remote, 4).await, b"done");
        };
        let (l, ()) = tokio::join!(listener, script);
        let (p, data) = l.expect("listener");
        assert_eq!(p, known);
        assert_eq!(data, b"DATA");
    }

    /// Slash names pass untouched both ways: rust dialer and rust listener, both wrapped.
    #[tokio::test]
    async fn slash_names_pass_through() {
        let (a, b) = pipe();
        let (d, l) = (
            Translated::new(a, Role::Dialer),
            Translated::new(b, Role::Listener),
        );
        let dialer = async {
            let (p, mut io) = dialer_select_proto(d, ["/ipfs/ping/1.0.0"], Version::V1Lazy).await?;
            io.write_all(b"ping").await?;
            io.flush().await?;
            Ok::<_, io::Error>((p, read_n(&mut io, 4).await))
        };
        let listener = async {
            let (p, mut io) = listener_select_proto(l, ["/ipfs/ping/1.0.0"]).await?;
            let got = read_n(&mut io, 4).await;
            io.write_all(b"pong").await?;
            io.flush().await?;
            Ok::<_, io::Error>((p, got))
        };
        let (d, l) = tokio::join!(dialer, listener);
        assert_eq!(d.expect("dialer"), ("/ipfs/ping/1.0.0", b"pong".to_vec()));
        assert_eq!(l.expect("listener"), ("/ipfs/ping/1.0.0", b"ping".to_vec()));
    }

    /// Both ends ours: rust dialer and listener, each through the wrapper, with a hivemind name;
    /// with reads and writes cut to 1, 2, 3, 7 and 4096 bytes, so messages arrive in every split.
    #[tokio::test]
    async fn wrapped_to_wrapped() {
        for max in [1, 2, 3, 7, 4096] {
            wrapped_to_wrapped_cut(max).await;
        }
    }

    async fn wrapped_to_wrapped_cut(max: usize) {
        let (a, b) = pipe();
        let (d, l) = (
            Translated::new(Trickle { inner: a, max }, Role::Dialer),
            Translated::new(Trickle { inner: b, max }, Role::Listener),
        );
        let name = format!("{PREFIX}ns::Calc.rpc_square");
        let dialer = async {
            let (_, mut io) = dialer_select_proto(d, [name.as_str()], Version::V1Lazy).await?;
            io.write_all(b"12").await?;
            io.flush().await?;
            Ok::<_, io::Error>(read_n(&mut io, 3).await)
        };
        let listener = async {
            let (p, mut io) = listener_select_proto(l, [name.as_str()]).await?;
            let got = read_n(&mut io, 2).await;
            io.write_all(b"144").await?;
            io.flush().await?;
            Ok::<_, io::Error>((p.to_owned(), got))
        };
        let (d, l) = tokio::join!(dialer, listener);
        assert_eq!(d.expect("dialer"), b"144");
        assert_eq!(l.expect("listener"), (name.clone(), b"12".to_vec()));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use futures::{AsyncReadExt, AsyncWriteExt};

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Arbitrary bytes from the remote, in either role, never panic the translator, on the
        /// way in or (echoed back by the layer above) on the way out.
        #[test]
        fn arbitrary_remote_bytes(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
                                  listener in proptest::prelude::any::<bool>()) {
            let role = if listener { Role::Listener } else { Role::Dialer };
            let mut stream = Translated::new(futures::io::Cursor::new(data), role);
            let mut out = Vec::new();
            futures::executor::block_on(async {
                // A listener waiting for an answer would wait forever: poll it once at most.
                futures::future::select(
                    Box::pin(stream.read_to_end(&mut out)),
                    Box::pin(futures::future::ready(())),
                )
                .await;
            });
            // And writes of arbitrary bytes go somewhere without panicking.
            let mut sink = Translated::new(futures::io::Cursor::new(Vec::new()), role);
            let _ = futures::executor::block_on(sink.write_all(&out));
            let _ = futures::executor::block_on(sink.close());
        }
    }
}
