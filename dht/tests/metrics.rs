//! The DHT's Prometheus metrics ([`DhtMetrics`]) over real connections on loopback: registered
//! beside the runtime's in one registry, read back from the text exposition.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use servicer_dht::messages::{StoreItem, StoreValue};
use servicer_dht::{
    DhtConfig, DhtId, DhtMetrics, DhtNode, Limits, Rejection, StoresRefused, get_dht_time,
};
use servicer_runtime::prometheus_client::encoding::text::encode;
use servicer_runtime::prometheus_client::registry::Registry;
use servicer_runtime::{Metrics, P2P, P2PConfig};

/// Default settings with an RPC deadline fit for a loaded 2-core machine: only failures wait it.
fn patient() -> DhtConfig {
    DhtConfig::default()
        .with_wait_timeout(Duration::from_secs(30))
        // No background refreshes: they would send requests of their own.
        .with_cache_refresh_before_expiry(None)
}

/// One sample of the exposition: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a text exposition (comments left out).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| parse_sample(line).unwrap_or_else(|| panic!("not a sample: {line:?}")))
        .collect()
}

/// `name{k="v",...} value`, with `\"`, `\\` and `\n` escapes in label values.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(mut body) = rest.strip_prefix('{') {
        rest = loop {
            if let Some(after) = body.strip_prefix('}') {
                break after;
            }
            body = body.strip_prefix(',').unwrap_or(body);
            let (key, quoted) = body.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    (_, other) => value.push(other),
                }
            };
            labels.insert(key.to_string(), value);
            body = &quoted[end + 1..];
        };
    }
    let value = rest.trim().split(' ').next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The value of the one sample named `name` with exactly `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && s.labels == wanted)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one sample {name}{labels:?}, found {found:?}"
    );
    found[0].value
}

fn exposition(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

/// Waits, generously, until `condition` holds.
async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn item(value: Vec<u8>, expiration_time: f64) -> StoreItem {
    StoreItem {
        key: DhtId::random(),
        value: StoreValue::Regular(value),
        expiration_time,
        in_cache: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_what_the_node_holds_refuses_and_sent() {
    let mut registry = Registry::default();
    let p2p = P2PConfig::default().with_metrics(Metrics::new(&mut registry));
    let watched = DhtNode::create(
        patient()
            .with_p2p(p2p)
            .with_limits(Limits::default().with_max_value_size(1024))
            .with_metrics(DhtMetrics::new(&mut registry)),
    )
    .await
    .unwrap();
    // No initial peers: bootstrapped once created.
    assert!(watched.is_bootstrapped());
    let writer = DhtNode::create(patient().with_initial_peers(watched.p2p().visible_maddrs()))
        .await
        .unwrap();
    assert!(writer.is_bootstrapped());
    let third = DhtNode::create(patient().with_initial_peers(watched.p2p().visible_maddrs()))
        .await
        .unwrap();

    // Three nodes and five replicas: every value lands on the watched node.
    const KEYS: usize = 4;
    let expiration = get_dht_time() + 600.0;
    for i in 0..KEYS {
        let stored = writer
            .store(format!("key {i}"), &format!("value {i}"), expiration, None)
            .await
            .unwrap();
        assert!(stored);
    }
    wait_for("the watched node stores every key", || {
        watched.stats().stored_keys == KEYS
    })
    .await;

    // Two stores the watched node refuses: an expired value, and one past its size limit.
    let peer = watched.p2p().peer_id();
    let results = writer
        .protocol()
        .call_store_detailed(
            peer,
            vec![
                item(vec![0xc3], get_dht_time() - 10.0),
                item(vec![0xc3; 4096], expiration),
            ],
        )
        .await
        .expect("the watched node answers");
    assert_eq!(
        results,
        vec![Err(Rejection::Expired), Err(Rejection::ValueTooLarge)]
    );

    let stats = watched.stats();
    assert!(stats.stores_refused.get(Rejection::Expired) >= 1);
    assert!(stats.stores_refused.get(Rejection::ValueTooLarge) >= 1);
    assert!(stats.stores_accepted >= KEYS as u64);
    assert_eq!(
        stats.stores_refused - stats.stores_refused,
        StoresRefused::default()
    );

    let text = exposition(&registry);
    let all = samples(&text);
    assert_eq!(
        value(&all, "servicer_dht_stored_keys", &[]),
        KEYS as f64,
        "{text}"
    );
    assert!(value(&all, "servicer_dht_stored_bytes", &[]) > 0.0);
    assert_eq!(value(&all, "servicer_dht_bootstrapped", &[]), 1.0);
    assert!(value(&all, "servicer_dht_routing_table_size", &[]) >= 1.0);
    assert!(value(&all, "servicer_dht_remote_records", &[]) >= KEYS as f64);
    for reason in ["expired", "value_too_large"] {
        assert!(
            value(
                &all,
                "servicer_dht_stores_refused_total",
                &[("reason", reason)]
            ) >= 1.0
        );
    }
    assert!(value(&all, "servicer_dht_stores_accepted_total", &[]) >= KEYS as f64);
    // One series per reason, whatever was refused.
    let reasons: HashSet<&str> = all
        .iter()
        .filter(|s| s.name == "servicer_dht_stores_refused_total")
        .map(|s| s.labels["reason"].as_str())
        .collect();
    let expected: HashSet<&str> = [
        "invalid",
        "outdated",
        "expired",
        "value_too_large",
        "too_many_subkeys",
        "peer_quota_exceeded",
        "storage_full",
        "expires_too_late",
        "protected",
        "refused",
    ]
    .into();
    assert_eq!(reasons, expected);
    // The watched node pinged and searched during its life (replication, the others' lookups).
    let sent: f64 = ["ping", "store", "find"]
        .iter()
        .map(|rpc| value(&all, "servicer_dht_requests_sent_total", &[("rpc", rpc)]))
        .sum();
    assert!(sent > 0.0, "{text}");
    // The rest is there, whatever its value.
    for name in [
        "servicer_dht_lookups_total",
        "servicer_dht_lookup_hops_total",
        "servicer_dht_cached_keys",
        "servicer_dht_cached_bytes",
    ] {
        value(&all, name, &[]);
    }

    // The runtime's metrics share the registry: its calls are there, and no name is declared
    // twice.
    assert!(
        all.iter()
            .any(|s| s.name == "servicer_rpc_calls_total" && s.value >= 1.0),
        "{text}"
    );
    let mut declared = HashSet::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(declared.insert(name), "{name} declared twice");
    }

    // Once the node is gone, the last figures read are reported, without a panic.
    for node in [&writer, &third, &watched] {
        node.shutdown().await;
    }
    drop(watched);
    let after = samples(&exposition(&registry));
    assert_eq!(value(&after, "servicer_dht_stored_keys", &[]), KEYS as f64);
    assert_eq!(value(&after, "servicer_dht_bootstrapped", &[]), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_no_initial_peer_answered_is_not_bootstrapped() {
    // An initial peer that is gone: its address refuses connections.
    let gone = P2P::create(P2PConfig::default()).await.unwrap();
    let addrs = gone.visible_maddrs();
    gone.shutdown().await;

    let mut registry = Registry::default();
    let node = DhtNode::create(
        DhtConfig::default()
            .with_wait_timeout(Duration::from_secs(5))
            .with_initial_peers(addrs)
            .with_ensure_bootstrap_success(false)
            .with_metrics(DhtMetrics::new(&mut registry)),
    )
    .await
    .unwrap();
    assert!(!node.is_bootstrapped());
    let all = samples(&exposition(&registry));
    assert_eq!(value(&all, "servicer_dht_bootstrapped", &[]), 0.0);
    assert_eq!(value(&all, "servicer_dht_routing_table_size", &[]), 0.0);
    node.shutdown().await;
}

#[test]
fn metrics_of_no_node_report_nothing() {
    let mut registry = Registry::default();
    let _metrics = DhtMetrics::new(&mut registry);
    let text = exposition(&registry);
    assert!(samples(&text).is_empty(), "{text}");
}
