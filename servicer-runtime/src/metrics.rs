//! [`Metrics`]: what a node counts for Prometheus (through `prometheus-client`): inbound calls by
//! handler and outcome, their latency, and libp2p's own swarm metrics (connections, identify,
//! ping, Kademlia) from `libp2p-metrics`.
//!
//! A node always counts; the figures are exported only when the [`Metrics`] it was given were
//! made with [`Metrics::new`] on a registry.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How an inbound call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Outcome {
    /// The handler answered.
    Ok,
    /// The handler failed, or the caller went away.
    Error,
    /// Refused by the node's limits (or because it is stopping).
    Busy,
    /// Refused by the servicer's interceptor.
    Refused,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Busy => "busy",
            Outcome::Refused => "refused",
        }
    }
}

/// A handle name as a label value, shared with the call's context (no copy per call).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct HandlerName(Arc<str>);

impl EncodeLabelValue for HandlerName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        encoder.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    handler: HandlerName,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HandlerLabels {
    handler: HandlerName,
}

fn latency_histogram() -> Histogram {
    // 50 us to about 13 s.
    Histogram::new(exponential_buckets(50e-6, 2.0, 19))
}

/// A node's metrics. Cheap to clone (the figures are shared); give them to a node with
/// [`P2PConfig::with_metrics`](crate::P2PConfig::with_metrics). Handler names are the label
/// values, so the number of series is bounded by the handlers a node registers, never by what
/// callers send.
///
/// ```
/// use servicer_runtime::prometheus_client::registry::Registry;
/// use servicer_runtime::{Metrics, P2PConfig};
///
/// let mut registry = Registry::default();
/// let config = P2PConfig::default().with_metrics(Metrics::new(&mut registry));
/// ```
#[derive(Clone)]
pub struct Metrics {
    calls: Family<CallLabels, Counter>,
    latency: Family<HandlerLabels, Histogram, fn() -> Histogram>,
    swarm: Option<Arc<libp2p::metrics::Metrics>>,
}

impl Default for Metrics {
    /// Metrics registered nowhere: counted, never exported.
    fn default() -> Self {
        Metrics {
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            swarm: None,
        }
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("swarm", &self.swarm.is_some())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics registered in `registry`: `servicer_rpc_calls` (counter, by `handler` and
    /// `outcome`: ok, error, busy, refused), `servicer_rpc_call_duration_seconds` (histogram,
    /// by `handler`, of calls admitted), and libp2p's under the `libp2p_` prefix.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Metrics {
            swarm: Some(Arc::new(libp2p::metrics::Metrics::new(registry))),
            ..Metrics::default()
        };
        let ours = registry.sub_registry_with_prefix("servicer");
        ours.register(
            "rpc_calls",
            "Inbound calls, by handler and how they ended",
            metrics.calls.clone(),
        );
        ours.register(
            "rpc_call_duration_seconds",
            "How long admitted inbound calls took, by handler",
            metrics.latency.clone(),
        );
        metrics
    }

    /// Counts an inbound call to `handler` that ended with `outcome` after `took` (`None`:
    /// refused before it ran).
    pub(crate) fn call(&self, handler: &Arc<str>, outcome: Outcome, took: Option<Duration>) {
        let handler = HandlerName(handler.clone());
        if let Some(took) = took {
            self.latency
                .get_or_create(&HandlerLabels {
                    handler: handler.clone(),
                })
                .observe(took.as_secs_f64());
        }
        self.calls
            .get_or_create(&CallLabels {
                handler,
                outcome: outcome.label(),
            })
            .inc();
    }

    /// libp2p's metrics, when registered.
    pub(crate) fn swarm(&self) -> Option<&libp2p::metrics::Metrics> {
        self.swarm.as_deref()
    }
}
