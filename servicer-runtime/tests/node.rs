//! Creating nodes and connecting them over each transport.

mod common;

use common::*;
use servicer_runtime::{P2P, P2PConfig, RpcError, load_or_create_identity};

async fn connects_over(addrs: Vec<servicer_runtime::Multiaddr>) {
    let (server, client) = pair_on(addrs, P2PConfig::default()).await;
    assert!(
        client
            .connected_peers()
            .await
            .unwrap()
            .contains(&server.peer_id())
    );
    let maddr = &server.visible_maddrs()[0];
    assert!(
        maddr
            .to_string()
            .ends_with(&format!("/p2p/{}", server.peer_id()))
    );
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn two_nodes_connect_over_tcp() {
    connects_over(tcp()).await;
}

#[tokio::test]
async fn two_nodes_connect_over_quic() {
    connects_over(quic()).await;
}

#[tokio::test]
async fn two_nodes_connect_over_memory() {
    connects_over(memory()).await;
}

#[tokio::test]
async fn identity_file_round_trips() {
    let dir = std::env::temp_dir().join(format!("servicer-id-{}", std::process::id()));
    let path = dir.join("node.key");
    let _ = std::fs::remove_file(&path);
    let first = P2P::create(P2PConfig::default().with_identity_path(&path))
        .await
        .unwrap();
    let id = first.peer_id();
    first.shutdown().await;
    assert!(path.exists());
    let second = P2P::create(P2PConfig::default().with_identity_path(&path))
        .await
        .unwrap();
    assert_eq!(second.peer_id(), id);
    assert_eq!(
        load_or_create_identity(&path)
            .unwrap()
            .public()
            .to_peer_id(),
        id
    );
    second.shutdown().await;
    std::fs::write(&path, b"not a key").unwrap();
    assert!(matches!(
        P2P::create(P2PConfig::default().with_identity_path(&path)).await,
        Err(RpcError::Setup(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn unreachable_initial_peers_fail_create_only_when_required() {
    let ghost = P2P::create(P2PConfig::default()).await.unwrap();
    let addr = ghost.visible_maddrs()[0].clone();
    ghost.shutdown().await;
    let required = P2P::create(
        P2PConfig::default()
            .with_initial_peers([addr.clone()])
            .with_require_initial_peers(true),
    )
    .await;
    match required {
        Err(RpcError::Setup(msg)) => assert!(msg.contains("initial peers"), "{msg}"),
        other => panic!("expected a setup error, got {other:?}"),
    }
    let lenient = P2P::create(P2PConfig::default().with_initial_peers([addr]))
        .await
        .unwrap();
    lenient.shutdown().await;
}

#[tokio::test]
async fn bad_initial_peer_address_is_a_clear_error() {
    let err = P2P::create(
        P2PConfig::default().with_initial_peers(["/ip4/127.0.0.1/tcp/1".parse().unwrap()]),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("/p2p/"), "{err}");
}
