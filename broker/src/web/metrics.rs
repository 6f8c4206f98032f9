//! Prometheus metrics at `/metrics`: requests by route and status, and their latency;
//! requests shed under overload and refused by the per-address limit of failing requests.
//! Routes are the matched patterns, never raw paths, so the label set stays bounded.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::header;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::AppState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    reason: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    shed: Family<ShedLabels, Counter>,
    rate_limited: Counter,
    limited_addresses: Counter,
    in_flight: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(Counter::default())
    }
}

impl Metrics {
    /// `acquire_timeouts`: the store's count of requests that found no database connection
    /// in time ([`crate::store::Store::acquire_timeouts`]).
    pub fn new(acquire_timeouts: Counter) -> Metrics {
        let mut registry = Registry::with_prefix("fedhub");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
        });
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests",
            latency.clone(),
        );
        let shed = Family::<ShedLabels, Counter>::default();
        registry.register(
            "shed_requests",
            "Requests answered 503 at once because the node was over server.max_in_flight",
            shed.clone(),
        );
        registry.register(
            "database_acquire_timeouts",
            "Requests answered 503 because no database connection was free within database.acquire_timeout",
            acquire_timeouts,
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited_requests",
            "Requests answered 429 because their address sent too many failing requests",
            rate_limited.clone(),
        );
        let limited_addresses = Counter::default();
        registry.register(
            "rate_limited_addresses",
            "Times a client address spent its burst of failing requests and became limited",
            limited_addresses.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "Requests being handled now (health and metrics probes not counted)",
            in_flight.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            requests,
            latency,
            shed,
            rate_limited,
            limited_addresses,
            in_flight,
        }
    }

    /// A request refused because the node was over its in-flight bound.
    pub fn shed_in_flight(&self) {
        self.shed
            .get_or_create(&ShedLabels {
                reason: "in_flight",
            })
            .inc();
    }

    /// A request refused by the per-address limit of failing requests.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// An address that has just spent its burst of failing requests.
    pub fn address_limited(&self) {
        self.limited_addresses.inc();
    }

    /// The gauge of requests in flight.
    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics encoding failed");
        }
        out
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

async fn render(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: res.status().as_u16(),
        })
        .inc();
    res
}
