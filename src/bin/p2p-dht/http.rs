//! The operator's HTTP endpoint (axum): `/metrics` in OpenMetrics text, and `/healthz`, 200 once
//! the node has joined the DHT ([`DhtNode::is_bootstrapped`]) and 503 before and while it stops.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use p2p_servicer::dht::DhtNode;
use p2p_servicer::runtime::prometheus_client::encoding::text::encode;
use p2p_servicer::runtime::prometheus_client::registry::Registry;

use crate::error::CliError;

/// Whether the node is ready: set once it is created, cleared when it starts stopping.
#[derive(Default)]
pub struct Health {
    node: OnceLock<DhtNode>,
    stopping: AtomicBool,
}

impl Health {
    /// The node has been created.
    pub fn running(&self, node: DhtNode) {
        let _ = self.node.set(node);
    }

    /// The node is stopping: not ready any more.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Created, bootstrapped and not stopping.
    fn ready(&self) -> bool {
        !self.stopping.load(Ordering::Acquire)
            && self.node.get().is_some_and(DhtNode::is_bootstrapped)
    }
}

/// What the endpoint serves.
#[derive(Clone)]
struct Served {
    registry: Arc<Registry>,
    health: Arc<Health>,
}

async fn metrics(State(served): State<Served>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &served.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode the metrics: {err}\n"),
        ),
    }
}

async fn healthz(State(served): State<Served>) -> (StatusCode, &'static str) {
    if served.health.ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "joining the DHT\n")
    }
}

/// Binds `addr` and serves in the background until the runtime stops; returns the bound
/// address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    health: Arc<Health>,
) -> Result<SocketAddr, CliError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Metrics { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| CliError::Metrics { addr, source })?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Served { registry, health });
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(%err, "the metrics server stopped");
        }
    });
    Ok(bound)
}
