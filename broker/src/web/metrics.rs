//! Prometheus metrics at `/metrics`: requests by route and status, and their latency; logins
//! by protocol, relying party, connector and outcome, and their duration; requests shed under
//! overload and refused by the per-address limit of failing requests. Every label value comes
//! from a bounded set: routes are the matched patterns, never raw paths; relying parties and
//! connectors are registered ones (a login exists only for those); outcomes and reasons are
//! fixed names.

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
use crate::login::LoginResult;

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
struct LoginLabels {
    protocol: &'static str,
    rp: String,
    connector: String,
    outcome: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginDurationLabels {
    protocol: &'static str,
    rp: String,
    connector: String,
    outcome: &'static str,
}

/// Buckets of the login duration, in seconds: a login includes the person's own time at the
/// sign-in method, and the hub's clock counts whole seconds.
const LOGIN_BUCKETS: [f64; 11] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    reason: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    logins: Family<LoginLabels, Counter>,
    login_duration: Family<LoginDurationLabels, Histogram>,
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
        let logins = Family::<LoginLabels, Counter>::default();
        let login_duration = Family::<LoginDurationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(LOGIN_BUCKETS)
        });
        registry.register(
            "logins",
            "Logins through the sign-in page, by how they ended",
            logins.clone(),
        );
        registry.register(
            "login_duration_seconds",
            "Time from the start of a login (the auth session) to the answer",
            login_duration.clone(),
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
            logins,
            login_duration,
            shed,
            rate_limited,
            limited_addresses,
            in_flight,
        }
    }

    /// Counts one finished login and its duration.
    pub fn login(&self, result: &LoginResult) {
        let outcome = result.outcome.outcome();
        self.logins
            .get_or_create(&LoginLabels {
                protocol: result.protocol,
                rp: result.rp.clone(),
                connector: result.connector.clone(),
                outcome,
                reason: result.outcome.reason(),
            })
            .inc();
        self.login_duration
            .get_or_create(&LoginDurationLabels {
                protocol: result.protocol,
                rp: result.rp.clone(),
                connector: result.connector.clone(),
                outcome,
            })
            .observe(result.seconds.max(0) as f64);
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
