//! [`unless_stalled`]: how a server half bounds a write to a caller that stopped reading.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

/// `write`, or `stalled` when it does not complete within `idle`: a caller that stops reading
/// ends its call instead of holding a slot and a buffer. A write that completes at once (the
/// common case: the stream has room) sets no timer.
pub(crate) async fn unless_stalled<T, E>(
    idle: Duration,
    write: impl Future<Output = Result<T, E>>,
    stalled: impl FnOnce() -> E,
) -> Result<T, E> {
    let mut write = pin!(write);
    if let Poll::Ready(done) = futures::poll!(write.as_mut()) {
        return done;
    }
    tokio::time::timeout(idle, write)
        .await
        .unwrap_or_else(|_| Err(stalled()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_that_never_completes_is_cut_off() {
        let idle = Duration::from_millis(50);
        let done = unless_stalled(
            idle,
            std::future::pending::<Result<(), &str>>(),
            || "stalled",
        );
        assert_eq!(done.await, Err("stalled"));
        let ready = unless_stalled(idle, async { Ok::<_, &str>(7) }, || "stalled");
        assert_eq!(ready.await, Ok(7));
    }
}
