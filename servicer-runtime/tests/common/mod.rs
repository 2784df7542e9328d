//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use servicer_runtime::{Handler, Multiaddr, Native, P2P, P2PConfig};

/// A generous bound for anything that should happen "soon" on a loaded 2-core machine.
pub const SOON: Duration = Duration::from_secs(20);

pub fn tcp() -> Vec<Multiaddr> {
    vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]
}

pub fn quic() -> Vec<Multiaddr> {
    vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()]
}

pub fn memory() -> Vec<Multiaddr> {
    vec!["/memory/0".parse().unwrap()]
}

/// A server on `addrs` and a client that has it as initial peer.
pub async fn pair_on(addrs: Vec<Multiaddr>, client: P2PConfig) -> (P2P, P2P) {
    let server = P2P::create(P2PConfig::default().with_listen_addrs(addrs.clone()))
        .await
        .unwrap();
    let client = P2P::create(
        client
            .with_listen_addrs(addrs)
            .with_initial_peers(server.visible_maddrs())
            .with_require_initial_peers(true),
    )
    .await
    .unwrap();
    (server, client)
}

pub async fn pair() -> (P2P, P2P) {
    pair_on(tcp(), P2PConfig::default()).await
}

/// Waits until `cond` holds, polling; panics with `what` after [`SOON`].
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + SOON;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A unary handler that never answers.
pub fn hanging_handler() -> Handler {
    Handler::<Native>::unary(|_: (), _ctx| async move {
        std::future::pending::<()>().await;
        Ok::<(), String>(())
    })
}

/// Sets its flag when dropped: a handler holding one sees its own cancellation.
pub struct SetOnDrop(pub Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
