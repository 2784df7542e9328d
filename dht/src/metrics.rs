//! [`DhtMetrics`]: a DHT node's figures for Prometheus (through `prometheus-client`), the DHT's
//! counterpart of the runtime's `Metrics`.
//!
//! Nothing is counted for them: when the registry is encoded, a collector reads the node's
//! [`DhtStats`] (counters the node keeps anyway) and its bootstrap state, so a node's requests
//! cost no more with metrics than without.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use servicer_runtime::prometheus_client::collector::Collector;
use servicer_runtime::prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use servicer_runtime::prometheus_client::metrics::MetricType;
use servicer_runtime::prometheus_client::metrics::counter::ConstCounter;
use servicer_runtime::prometheus_client::metrics::gauge::ConstGauge;
use servicer_runtime::prometheus_client::registry::Registry;

use crate::stats::DhtStats;

/// What a node lets its metrics read at scrape time. The node implements it: this module sits
/// below the node and cannot name it.
pub(crate) trait StatsSource: Send + Sync {
    /// The node's [`DhtStats`], searches included.
    fn stats(&self) -> DhtStats;
    /// Whether the node's bootstrap has finished with an answering peer (or had none to ask).
    fn is_bootstrapped(&self) -> bool;
}

/// What the metrics and their collector share.
#[derive(Default)]
struct Shared {
    /// The node, once created; weak, so that metrics never keep a node alive.
    node: Option<Weak<dyn StatsSource>>,
    /// The figures of the last scrape, reported again once the node is gone.
    last: Option<(DhtStats, bool)>,
}

/// A DHT node's metrics. Cheap to clone (clones share the node they report); give them to a
/// node with [`DhtConfig::with_metrics`](crate::DhtConfig::with_metrics). They report one node:
/// a second node created with the same metrics takes them over, so give each node its own (in a
/// sub-registry with a label per node, when one registry serves several). Every label value is
/// fixed by this crate (an RPC's name, a [`Rejection`](crate::Rejection)'s
/// [`label`](crate::Rejection::label)), never by what peers send.
///
/// The figures are read from the node when the registry is encoded, and after the node is
/// dropped the last ones read are reported.
///
/// ```
/// use servicer_dht::{DhtConfig, DhtMetrics};
/// use servicer_runtime::prometheus_client::registry::Registry;
///
/// let mut registry = Registry::default();
/// let config = DhtConfig::default().with_metrics(DhtMetrics::new(&mut registry));
/// ```
#[derive(Clone, Default)]
pub struct DhtMetrics {
    shared: Arc<Mutex<Shared>>,
    registered: bool,
}

impl fmt::Debug for DhtMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attached = crate::lock(&self.shared).node.is_some();
        f.debug_struct("DhtMetrics")
            .field("registered", &self.registered)
            .field("attached", &attached)
            .finish()
    }
}

impl DhtMetrics {
    /// Metrics registered in `registry`, under the prefix `servicer_dht`:
    ///
    /// - gauges `routing_table_size`, `stored_keys`, `stored_bytes`, `cached_keys`,
    ///   `cached_bytes`, `remote_records` (see [`DhtStats`]), and `bootstrapped` (1 once the
    ///   node's bootstrap finished with an answering peer, or it had no initial peers; else 0);
    /// - counters `requests_sent_total` (by `rpc`: ping, store, find), `lookups_total`,
    ///   `lookup_hops_total`, `stores_accepted_total`, and `stores_refused_total` (by `reason`,
    ///   one series per [`Rejection`](crate::Rejection)).
    ///
    /// Until a node is created with them they report nothing.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = DhtMetrics {
            registered: true,
            ..DhtMetrics::default()
        };
        registry
            .sub_registry_with_prefix("servicer_dht")
            .register_collector(Box::new(DhtCollector(metrics.shared.clone())));
        metrics
    }

    /// Makes these metrics report `node` (replacing a node they reported before).
    pub(crate) fn attach(&self, node: Weak<dyn StatsSource>) {
        *crate::lock(&self.shared) = Shared {
            node: Some(node),
            last: None,
        };
    }
}

/// Reads the node on each scrape.
struct DhtCollector(Arc<Mutex<Shared>>);

impl fmt::Debug for DhtCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhtCollector").finish_non_exhaustive()
    }
}

impl DhtCollector {
    /// The node's figures now, or the last ones read if it is gone.
    fn read(&self) -> Option<(DhtStats, bool)> {
        let mut shared = crate::lock(&self.0);
        if let Some(node) = shared.node.as_ref().and_then(Weak::upgrade) {
            shared.last = Some((node.stats(), node.is_bootstrapped()));
        }
        shared.last
    }
}

// Help texts end with a period, as the registry writes those of registered metrics.
impl Collector for DhtCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some((stats, bootstrapped)) = self.read() else {
            return Ok(());
        };
        let gauges = [
            (
                "routing_table_size",
                "Nodes in the routing table (replacements not included).",
                stats.routing_table_size,
            ),
            (
                "stored_keys",
                "Unexpired keys in the storage (values this node is responsible for).",
                stats.stored_keys,
            ),
            (
                "stored_bytes",
                "Bytes of the values the storage holds.",
                stats.stored_bytes,
            ),
            (
                "cached_keys",
                "Unexpired keys in the cache (values copied from lookups).",
                stats.cached_keys,
            ),
            (
                "cached_bytes",
                "Bytes of the values the cache holds.",
                stats.cached_bytes,
            ),
            (
                "remote_records",
                "Records remote peers wrote that this node holds.",
                stats.remote_records,
            ),
            (
                "bootstrapped",
                "1 once bootstrap finished with an answering initial peer (or there were none).",
                usize::from(bootstrapped),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }

        let sent = stats.requests_sent;
        let mut family = encoder.encode_descriptor(
            "requests_sent",
            "Requests this node sent, by RPC, answered or not.",
            None,
            MetricType::Counter,
        )?;
        for (rpc, count) in [
            ("ping", sent.ping),
            ("store", sent.store),
            ("find", sent.find),
        ] {
            ConstCounter::new(count).encode(family.encode_family(&[("rpc", rpc)])?)?;
        }

        let counters = [
            ("lookups", "Beam searches run.", stats.lookups.searches),
            (
                "lookup_hops",
                "Hops of the beam searches, summed (divide by lookups for the mean).",
                stats.lookups.hops,
            ),
            (
                "stores_accepted",
                "Items of remote peers' store requests that were stored.",
                stats.stores_accepted,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }

        let mut family = encoder.encode_descriptor(
            "stores_refused",
            "Items of remote peers' store requests that were refused, by reason.",
            None,
            MetricType::Counter,
        )?;
        for (reason, count) in stats.stores_refused.iter() {
            ConstCounter::new(count)
                .encode(family.encode_family(&[("reason", reason.label())])?)?;
        }
        Ok(())
    }
}
