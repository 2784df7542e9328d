//! A native stream as the wire's code sees it: a libp2p stream with the frame codec ([`Io`]),
//! read through [`StreamIo`].
//!
//! futures' `poll_read` takes an initialized slice, so tokio-util's `Compat` zero-fills the
//! caller's free buffer space before every read, and a frame decoder's buffer keeps the size of the
//! largest message its stream carried. [`StreamIo`] reads into memory it initialized once and copies
//! only the bytes that arrived, so a read costs what arrived, not what the buffer could hold.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::ReadBuf;
use tokio_util::codec::Framed;

use super::frame::CallFrameCodec;

/// A libp2p stream with the native framing.
pub(crate) type Io = Framed<StreamIo<libp2p::Stream>, CallFrameCodec>;

/// Initial capacity of the frame decoder's and encoder's buffers: enough for the small messages of
/// most calls (both grow for larger frames), and small because every pooled stream keeps them
/// (tokio-util's default is 8 KiB each).
const FRAME_BUFFER: usize = 2 << 10;

/// Buffers larger than this are given back once the call that grew them is over.
const KEEP_BUFFER: usize = 16 << 10;

/// `stream` with the native framing of `codec`.
pub(crate) fn framed(stream: libp2p::Stream, codec: CallFrameCodec) -> Io {
    Framed::with_capacity(StreamIo::new(stream), codec, FRAME_BUFFER)
}

/// Gives back what a large message made a stream's buffers grow to, so that an idle stream (one
/// of those pooled per peer, or a server waiting for the next call) keeps only small ones, and
/// what its frames held of the node's memory for messages.
pub(crate) fn shrink_buffers(io: &mut Io) {
    io.codec_mut().release();
    fn shrink(buffer: &mut BytesMut) {
        if buffer.capacity() > KEEP_BUFFER && buffer.is_empty() {
            *buffer = BytesMut::with_capacity(FRAME_BUFFER);
        }
    }
    shrink(io.read_buffer_mut());
    shrink(io.write_buffer_mut());
    io.get_mut().shrink(KEEP_BUFFER);
}

/// The most one read takes; the scratch buffer grows to the largest read, up to this.
const MAX_READ: usize = 64 << 10;

/// tokio's I/O traits over a futures I/O stream, reading through a reused initialized buffer.
pub struct StreamIo<S> {
    inner: S,
    /// Initialized once (when it grows); holds no data between reads.
    scratch: Vec<u8>,
}

impl<S> StreamIo<S> {
    pub(crate) fn new(inner: S) -> Self {
        StreamIo {
            inner,
            scratch: Vec::new(),
        }
    }

    /// Frees the scratch buffer if it grew past `keep` bytes.
    pub(crate) fn shrink(&mut self, keep: usize) {
        if self.scratch.len() > keep {
            self.scratch = Vec::new();
        }
    }
}

impl<S: futures::AsyncRead + Unpin> tokio::io::AsyncRead for StreamIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let want = buf.remaining().min(MAX_READ);
        if want == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.scratch.len() < want {
            this.scratch.resize(want, 0);
        }
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut this.scratch[..want]))?;
        buf.put_slice(&this.scratch[..n]);
        Poll::Ready(Ok(()))
    }
}

impl<S: futures::AsyncWrite + Unpin> tokio::io::AsyncWrite for StreamIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn reads_everything_in_pieces_of_any_size() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut io = StreamIo::new(Cursor::new(data.clone()));
        let mut out = Vec::new();
        let mut piece = vec![0u8; 3];
        // Small reads, then one larger than MAX_READ, then the rest.
        for _ in 0..10 {
            let n = io.read(&mut piece).await.expect("read");
            out.extend_from_slice(&piece[..n]);
        }
        let mut big = vec![0u8; MAX_READ * 2];
        let n = io.read(&mut big).await.expect("read");
        assert!(n <= MAX_READ, "one read takes at most MAX_READ, took {n}");
        out.extend_from_slice(&big[..n]);
        io.read_to_end(&mut out).await.expect("read to end");
        assert_eq!(out, data);
        assert!(io.scratch.len() <= MAX_READ);
        io.shrink(MAX_READ / 4);
        assert!(
            io.scratch.is_empty(),
            "a grown scratch buffer is given back"
        );
    }
}
