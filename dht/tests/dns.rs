//! Bootstrapping by DNS name on loopback: from `/dns4/localhost/tcp/PORT/p2p/ID`, and a bootstrap
//! failure that names DNS for a name under the reserved `.invalid`.

use std::time::Duration;

use servicer_dht::{DhtConfig, DhtError, DhtNode, DhtValue, ValueWithExpiration, get_dht_time};
use servicer_runtime::{Multiaddr, PeerId};

/// Default settings with an RPC deadline fit for a loaded 2-core machine: only failures wait it.
fn patient() -> DhtConfig {
    DhtConfig::default().with_wait_timeout(Duration::from_secs(30))
}

/// `node`'s first TCP address with `localhost` for its IP: `/dns4/localhost/tcp/PORT/p2p/ID`.
fn by_name(node: &DhtNode) -> Multiaddr {
    let text = node
        .p2p()
        .visible_maddrs()
        .into_iter()
        .map(|a| a.to_string())
        .find(|a| a.contains("/tcp/"))
        .expect("a TCP address");
    let (_, rest) = text.split_once("/tcp/").unwrap();
    format!("/dns4/localhost/tcp/{rest}").parse().unwrap()
}

#[tokio::test]
async fn a_dht_node_bootstraps_from_a_dns4_name() {
    let first = DhtNode::create(patient()).await.unwrap();
    let second = DhtNode::create(patient().with_initial_peers([by_name(&first)]))
        .await
        .unwrap();
    let expiration = get_dht_time() + 1200.0;
    assert!(
        second
            .store("by-name", &"stored", expiration, None)
            .await
            .unwrap()
    );
    let got = first.get::<String>("by-name", false).await.unwrap();
    assert_eq!(
        got,
        Some(ValueWithExpiration::new(
            DhtValue::Regular("stored".into()),
            expiration
        ))
    );
    second.shutdown().await;
    first.shutdown().await;
}

#[tokio::test]
async fn a_bootstrap_from_an_unresolvable_name_fails_naming_dns() {
    let peer = PeerId::random();
    let addr: Multiaddr = format!("/dns4/no-such-host.invalid/tcp/1/p2p/{peer}")
        .parse()
        .unwrap();
    // Generous; only rules out a hang.
    let created = DhtNode::create(patient().with_initial_peers([addr]));
    let err = tokio::time::timeout(Duration::from_secs(120), created)
        .await
        .expect("the bootstrap ends")
        .expect_err("the only initial peer cannot be resolved");
    let DhtError::Bootstrap { failures } = &err else {
        panic!("not a bootstrap failure: {err}");
    };
    assert_eq!(failures.len(), 1, "{err}");
    assert_eq!(failures[0].peer, peer, "{err}");
    assert!(
        failures[0]
            .reason
            .contains("DNS: cannot resolve no-such-host.invalid"),
        "{err}"
    );
}
