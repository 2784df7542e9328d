//! The `Dht` handle from plain (non-async) code, as hivemind's `tests/test_dht.py` uses `DHT`.

use std::time::Duration;

use servicer_dht::{Dht, DhtConfig, DhtError, DhtValue, get_dht_time};

/// Default settings with an RPC deadline fit for a loaded 2-core machine: only failures wait it.
fn patient() -> DhtConfig {
    DhtConfig::default().with_wait_timeout(std::time::Duration::from_secs(30))
}

#[test]
fn dht_handle_from_blocking_code() {
    let first = Dht::start(patient()).unwrap();
    let second = Dht::spawn(patient().with_initial_peers(first.visible_maddrs().unwrap())).unwrap();
    second
        .wait_until_ready(Some(Duration::from_secs(30)))
        .unwrap();
    assert_ne!(first.peer_id().unwrap(), second.peer_id().unwrap());

    let exp = get_dht_time() + 60.0;
    assert!(first.store("key", &"value", exp, None).unwrap());
    let got = second.get::<String>("key", true).unwrap().unwrap();
    assert_eq!(got.value, DhtValue::Regular("value".to_string()));
    assert_eq!(got.expiration_time, exp);
    assert!(second.get::<String>("missing", false).unwrap().is_none());

    // run: any closure against the node.
    let table_size = second
        .run(|node| async move { node.stats().routing_table_size })
        .unwrap();
    assert!(table_size >= 1);

    second.shutdown();
    second.shutdown();
    assert!(matches!(
        second.get::<String>("key", false),
        Err(DhtError::Stopped(_))
    ));
    assert!(matches!(second.peer_id(), Err(DhtError::Stopped(_))));
    first.shutdown();
}

#[tokio::test]
async fn dht_handle_from_async_code() {
    let dht = Dht::start(patient()).unwrap();
    let exp = get_dht_time() + 60.0;
    assert!(
        dht.store_async("k", &42u32, exp, Some("sub".into()))
            .await
            .unwrap()
    );
    let got = dht.get_async::<u32>("k", false).await.unwrap().unwrap();
    let DhtValue::Dictionary(dict) = got.value else {
        panic!("expected a dictionary")
    };
    assert_eq!(dict[&servicer_dht::Key::from("sub").to_msgpack()].value, 42);
    dht.shutdown();
}

#[test]
fn start_failure_is_an_error_not_a_panic() {
    let bad = patient().with_p2p(
        servicer_runtime::P2PConfig::default()
            .with_listen_addrs(["/ip4/203.0.113.1/tcp/1".parse().unwrap()]),
    );
    let err = Dht::start(bad).unwrap_err();
    assert!(err.to_string().contains("listen"), "{err}");
}
