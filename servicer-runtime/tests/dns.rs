//! Dialling by DNS name over real TCP on loopback: `/dns4/localhost` (which the resolver answers
//! itself, as /etc/hosts does) bootstraps a node and carries calls, and a name under the reserved
//! `.invalid` fails as [`Unreachable::Dns`] without a hang.

mod common;

use std::time::Duration;

use common::*;
use servicer_runtime::{
    Handler, Multiaddr, Native, P2P, P2PConfig, PeerId, RpcError, StubBase, Unreachable, WireMode,
};

/// `node`'s first TCP address with `localhost` for its IP: `/dns4/localhost/tcp/PORT/p2p/ID`.
/// A node on loopback TCP whose dials give up after [`SOON`].
fn impatient() -> P2PConfig {
    P2PConfig::default()
        .with_listen_addrs(tcp())
        .with_connect_timeout(SOON)
}

fn by_name(node: &P2P) -> Multiaddr {
    by_name_as(node, "dns4")
}

/// `node`'s first TCP address as `/<protocol>/localhost/tcp/PORT/p2p/ID`.
fn by_name_as(node: &P2P, protocol: &str) -> Multiaddr {
    let tcp = node
        .visible_maddrs()
        .into_iter()
        .find(|a| a.to_string().contains("/tcp/"))
        .expect("a TCP address");
    let text = tcp.to_string();
    let (_, rest) = text.split_once("/tcp/").unwrap();
    format!("/{protocol}/localhost/tcp/{rest}").parse().unwrap()
}

fn add_square(server: &P2P) {
    server
        .add_handlers(
            vec![(
                "Test.rpc_square".into(),
                Handler::<Native>::unary(|x: i64, _ctx| async move { Ok::<_, String>(x * x) }),
            )],
            None,
        )
        .unwrap();
}

#[tokio::test]
async fn a_node_bootstraps_from_a_dns4_name_and_calls_through_it() {
    let server = P2P::create(P2PConfig::default().with_listen_addrs(tcp()))
        .await
        .unwrap();
    add_square(&server);
    let addr = by_name(&server);
    let client = P2P::create(
        impatient()
            .with_initial_peers([addr])
            .with_require_initial_peers(true),
    )
    .await
    .unwrap();
    let stub = StubBase::<Native>::new(&client, server.peer_id(), "Test", None);
    let square: i64 = stub.unary("rpc_square", 12i64).await.unwrap();
    assert_eq!(square, 144);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn connect_dials_dns_names_in_both_wire_modes() {
    for mode in [WireMode::Native, WireMode::Hivemind] {
        let config = || {
            P2PConfig::default()
                .with_wire_mode(mode)
                .with_listen_addrs(tcp())
                .with_connect_timeout(SOON)
        };
        let server = P2P::create(config()).await.unwrap();
        let client = P2P::create(config()).await.unwrap();
        let peer = client.connect(by_name(&server)).await.unwrap();
        assert_eq!(peer, server.peer_id(), "{mode:?}");
        client.shutdown().await;
        server.shutdown().await;
    }
}

#[tokio::test]
async fn dns_names_resolve_to_any_family_and_dns6_fails_on_an_ipv4_only_node() {
    let server = P2P::create(P2PConfig::default().with_listen_addrs(tcp()))
        .await
        .unwrap();
    let client = P2P::create(impatient()).await.unwrap();
    // `/dns` resolves to 127.0.0.1 and ::1; the server listens on the first only.
    let peer = client.connect(by_name_as(&server, "dns")).await.unwrap();
    assert_eq!(peer, server.peer_id());
    // `/dns6` resolves to ::1 only, where nothing listens: a transport failure, not a DNS one.
    let other = P2P::create(P2PConfig::default().with_listen_addrs(tcp()))
        .await
        .unwrap();
    let err = client
        .connect(by_name_as(&other, "dns6"))
        .await
        .unwrap_err();
    match &err {
        RpcError::PeerUnreachable { cause, .. } => assert_ne!(*cause, Unreachable::Dns, "{err}"),
        other => panic!("expected PeerUnreachable, got {other:?}"),
    }
    for node in [client, server, other] {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn an_unresolvable_name_is_a_dns_error_that_names_it() {
    let client = P2P::create(impatient()).await.unwrap();
    let addr: Multiaddr = format!("/dns4/no-such-host.invalid/tcp/1/p2p/{}", PeerId::random())
        .parse()
        .unwrap();
    // Generous: the connect timeout would report Timeout, not Dns, so this only rules out a hang.
    let err = tokio::time::timeout(SOON + Duration::from_secs(10), client.connect(addr))
        .await
        .expect("the dial ends")
        .unwrap_err();
    match &err {
        RpcError::PeerUnreachable { cause, reason, .. } => {
            assert_eq!(*cause, Unreachable::Dns, "{err}");
            assert!(
                reason.contains("DNS: cannot resolve no-such-host.invalid"),
                "{err}"
            );
        }
        other => panic!("expected PeerUnreachable, got {other:?}"),
    }
    client.shutdown().await;
}

#[tokio::test]
async fn a_required_initial_peer_that_does_not_resolve_fails_setup_naming_dns() {
    let addr: Multiaddr = format!("/dns4/no-such-host.invalid/tcp/1/p2p/{}", PeerId::random())
        .parse()
        .unwrap();
    let created = P2P::create(
        impatient()
            .with_initial_peers([addr])
            .with_require_initial_peers(true),
    );
    let err = tokio::time::timeout(SOON + Duration::from_secs(10), created)
        .await
        .expect("creating the node ends")
        .expect_err("no initial peer answered");
    let text = err.to_string();
    assert!(matches!(err, RpcError::Setup(_)), "{text}");
    assert!(
        text.contains("DNS: cannot resolve no-such-host.invalid"),
        "{text}"
    );
}
