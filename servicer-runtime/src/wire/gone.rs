//! [`caller_gone`]: how a server half notices that its caller went away.

use futures::{Stream, StreamExt};

/// Resolves when the caller went away or broke protocol while a call whose requests are all in
/// runs: the caller sends nothing more, so anything at all (a frame, bytes, the end of the
/// stream or an error) means the call is over.
pub async fn caller_gone<S: Stream + Unpin>(incoming: &mut S) {
    let _ = incoming.next().await;
}
