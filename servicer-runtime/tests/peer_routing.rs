//! Peer routing on the hivemind wire over real libp2p connections on 127.0.0.1: a node calls a
//! peer it knows only by its id, found through kad (`/ipfs/kad/1.0.0`) as Go daemons do.

mod common;

use std::time::Duration;

use servicer_runtime::{Handler, Hivemind, P2P, P2PConfig, PeerId, RpcError, StubBase, WireMode};

use common::{SOON, tcp};

#[derive(Clone, PartialEq, prost::Message)]
struct Echo {
    #[prost(bytes = "vec", tag = "1")]
    data: Vec<u8>,
}

fn config() -> P2PConfig {
    P2PConfig::default()
        .with_wire_mode(WireMode::Hivemind)
        .with_listen_addrs(tcp())
        .with_unary_deadline(SOON)
}

async fn node_with_peer(peer: &P2P) -> P2P {
    P2P::create(
        config()
            .with_initial_peers(peer.visible_maddrs())
            .with_require_initial_peers(true),
    )
    .await
    .expect("node")
}

/// Serves `Test.rpc_echo`, answering with the node's own peer id after the request's bytes.
fn serve_echo(node: &P2P) {
    let me = node.peer_id().to_bytes();
    node.add_handlers(
        [(
            "Test.rpc_echo".into(),
            Handler::<Hivemind>::unary(move |req: Echo, _ctx| {
                let me = me.clone();
                async move {
                    let mut data = req.data;
                    data.extend_from_slice(&me);
                    Ok::<_, String>(Echo { data })
                }
            }),
        )],
        None,
    )
    .expect("register");
}

fn echo_of(node: &P2P, data: &[u8]) -> Echo {
    let mut data = data.to_vec();
    data.extend_from_slice(&node.peer_id().to_bytes());
    Echo { data }
}

/// Waits until `node` knows an address of `peer` (for a peer that dialled `node`, only identify
/// tells it one, and the same event hands it to kad).
async fn wait_for_address(node: &P2P, peer: PeerId) {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let addrs = node.addresses_of(vec![peer]).await.expect("addresses_of");
        if addrs.iter().any(|a| !a.is_empty()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never learnt an address of {peer}",
            node.peer_id()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_peer_known_only_by_id_is_found_through_kad() {
    let b = P2P::create(config()).await.expect("b");
    let a = node_with_peer(&b).await;
    let c = node_with_peer(&b).await;
    serve_echo(&c);
    // B must be able to answer A's FIND_NODE with C's address. C dialled B, so B's kad has no
    // address of C of its own: it gets C's listen addresses from identify, and only because C's
    // identify lists `/ipfs/kad/1.0.0` (what Go daemons check too before they route to a peer).
    wait_for_address(&b, c.peer_id()).await;

    // A was given no address of C (kad may already have learnt one in the background, through
    // its own bootstrap queries; otherwise the call's dial fails with no address and a kad
    // lookup through B finds C).
    let stub = StubBase::<Hivemind>::new(&a, c.peer_id(), "Test", None);
    let reply: Echo = stub
        .unary(
            "rpc_echo",
            Echo {
                data: b"hi".to_vec(),
            },
        )
        .await
        .expect("call to a peer known only by its id");
    assert_eq!(reply, echo_of(&c, b"hi"));

    // A now knows where C is, and says so.
    let addrs = a
        .addresses_of(vec![c.peer_id()])
        .await
        .expect("addresses_of");
    assert!(!addrs[0].is_empty(), "A kept no address of C");
    assert!(
        a.connected_peers()
            .await
            .expect("peers")
            .contains(&c.peer_id())
    );

    // And C, which never dialled A, can call A back by id alone (the connection is there now).
    serve_echo(&a);
    let back: Echo = StubBase::<Hivemind>::new(&c, a.peer_id(), "Test", None)
        .unary(
            "rpc_echo",
            Echo {
                data: b"back".to_vec(),
            },
        )
        .await
        .expect("call back");
    assert_eq!(back, echo_of(&a, b"back"));

    for node in [a, b, c] {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn a_peer_nobody_knows_fails_in_time_and_the_node_keeps_serving() {
    let b = P2P::create(config()).await.expect("b");
    let a = node_with_peer(&b).await;
    serve_echo(&a);
    serve_echo(&b);

    let nobody = PeerId::random();
    let deadline = Duration::from_secs(15);
    let started = tokio::time::Instant::now();
    let err = StubBase::<Hivemind>::new(&a, nobody, "Test", None)
        .with_deadline(deadline)
        .unary::<_, Echo>("rpc_echo", Echo { data: vec![1] })
        .await
        .expect_err("nobody knows this peer");
    assert!(
        matches!(&err, RpcError::PeerUnreachable { peer, .. } if *peer == nobody),
        "unexpected error: {err:?}"
    );
    assert!(started.elapsed() < deadline, "took {:?}", started.elapsed());

    // Both directions still work.
    let reply: Echo = StubBase::<Hivemind>::new(&a, b.peer_id(), "Test", None)
        .unary("rpc_echo", Echo { data: vec![2] })
        .await
        .expect("A calls B");
    assert_eq!(reply, echo_of(&b, &[2]));
    let reply: Echo = StubBase::<Hivemind>::new(&b, a.peer_id(), "Test", None)
        .unary("rpc_echo", Echo { data: vec![3] })
        .await
        .expect("B calls A");
    assert_eq!(reply, echo_of(&a, &[3]));

    for node in [a, b] {
        node.shutdown().await;
    }
}
