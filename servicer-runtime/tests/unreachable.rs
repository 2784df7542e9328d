//! Why a peer could not be reached, as [`Unreachable`] says it, over real TCP on loopback.

use std::time::Duration;

use servicer_runtime::{Multiaddr, P2P, P2PConfig, PeerId, RpcError, Unreachable};

fn cause(err: RpcError) -> Unreachable {
    match err {
        RpcError::PeerUnreachable { cause, .. } => cause,
        other => panic!("expected PeerUnreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn refused_wrong_peer_id_and_silence_are_told_apart() {
    let client = P2P::create(P2PConfig::default().with_connect_timeout(Duration::from_secs(3)))
        .await
        .unwrap();

    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", PeerId::random())
        .parse()
        .unwrap();
    let err = client.connect(addr).await.unwrap_err();
    assert_eq!(cause(err.clone()), Unreachable::Refused, "{err}");

    // A live node under another peer id.
    let other = P2P::create(P2PConfig::default()).await.unwrap();
    let listening = other.visible_maddrs()[0].to_string();
    let (transport, _) = listening.rsplit_once("/p2p/").unwrap();
    let addr: Multiaddr = format!("{transport}/p2p/{}", PeerId::random())
        .parse()
        .unwrap();
    let err = client.connect(addr).await.unwrap_err();
    assert_eq!(cause(err.clone()), Unreachable::WrongPeerId, "{err}");

    // A port that accepts and then says nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", PeerId::random())
        .parse()
        .unwrap();
    let err = client.connect(addr).await.unwrap_err();
    assert!(
        matches!(
            cause(err.clone()),
            Unreachable::Timeout | Unreachable::Handshake
        ),
        "{err}"
    );
    held.abort();
    other.shutdown().await;
    client.shutdown().await;
}
