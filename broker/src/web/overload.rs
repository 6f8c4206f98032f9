//! Staying up under overload and abuse.
//!
//! - **The in-flight bound**: a node handles at most `server.max_in_flight` requests at once;
//!   one more is answered `503` with `Retry-After` at once, instead of queueing until every
//!   request times out. Waiting for a database connection is bounded too
//!   (`database.acquire_timeout`, in the store), and every `503` carries `Retry-After`.
//! - **Failing requests per address**: each client address has a token bucket of
//!   `server.bad_request_burst` failures, refilled at `server.bad_request_rate` per minute.
//!   Only failures (4xx answers) spend tokens; once the bucket is empty, every request from
//!   that address is answered `429` with `Retry-After` until a token is back, whether or not
//!   it would have failed (telling which would fail is the work being refused). Good requests
//!   never spend tokens, so people behind one busy NAT are not limited by signing in.
//!
//! The probes (`/healthz`, `/readyz`, `/metrics`) are exempt from both, so an overloaded node
//! is still seen as alive and its metrics still scraped. Refusals are written for their
//! reader: a themed page for people, problem+json for the admin API, an OAuth JSON error for
//! the OpenID Provider's machine endpoints.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ErrorPage;
use super::{client, AppState};
use crate::config::Config;

/// Addresses whose failures are tracked at once (under 70 bytes each, table included). Beyond it, addresses
/// whose bucket is full again are forgotten first, then any.
pub const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// A refused request's WARN line is written at most this often (a flood must not become a
/// flood of log lines); the count in between is in it, and every refusal is in `/metrics`.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// What the layers share, built from the configuration once per process.
pub struct Guards {
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    retry_after: u64,
    failures: Option<FailureLimit>,
    shed_report: parking_lot::Mutex<Report>,
}

#[derive(Default)]
struct Report {
    last: Option<Instant>,
    since: u64,
}

impl Guards {
    pub fn new(config: &Config) -> Guards {
        let max_in_flight = config.max_in_flight();
        Guards {
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            retry_after: config.retry_after_secs(),
            failures: (config.server.bad_request_rate > 0).then(|| {
                FailureLimit::new(
                    config.server.bad_request_rate,
                    config.server.bad_request_burst,
                    MAX_TRACKED_ADDRESSES,
                )
            }),
            shed_report: Default::default(),
        }
    }

    /// The bound in force (`server.max_in_flight`, or the one derived from the machine).
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Counts a shed request; `Some(n)` when a WARN line (covering `n`) is due.
    fn shed_report(&self, now: Instant) -> Option<u64> {
        let mut r = self.shed_report.lock();
        r.since += 1;
        if r.last
            .is_some_and(|t| now.saturating_duration_since(t) < LOG_EVERY)
        {
            return None;
        }
        r.last = Some(now);
        Some(std::mem::take(&mut r.since))
    }
}

/// Probes an orchestrator or load balancer must always get an answer from.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// The OpenID Provider's endpoints that machines call: they read OAuth JSON errors.
fn is_oauth_machine(path: &str) -> bool {
    matches!(
        path,
        "/oidc/token"
            | "/oidc/userinfo"
            | "/oidc/introspect"
            | "/oidc/revoke"
            | "/oidc/par"
            | "/oidc/register"
            | "/oidc/jwks"
            | "/.well-known/openid-configuration"
    )
}

/// A refusal (503 overloaded, 429 limited) in the form its reader expects, with
/// `Retry-After`. Pages are rendered by `finish_errors` (language, reference id).
fn refusal(path: &str, status: StatusCode, retry_after: u64) -> Response {
    let limited = status == StatusCode::TOO_MANY_REQUESTS;
    let mut res = if path.starts_with("/admin/api/") {
        let (kind, detail) = if limited {
            (
                "too-many-requests",
                "too many failed requests from this address; wait before trying again",
            )
        } else {
            ("unavailable", "the server is overloaded; try again shortly")
        };
        let body = json!({
            "type": format!("urn:fedhub:problem:{kind}"),
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "detail": detail,
        });
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    } else if is_oauth_machine(path) {
        let detail = if limited {
            "too many failed requests from this address; retry after the time given"
        } else {
            "the server is overloaded; retry after the time given"
        };
        let body = json!({"error": "temporarily_unavailable", "error_description": detail});
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    } else {
        let mut res = status.into_response();
        res.extensions_mut().insert(ErrorPage {
            detail: None,
            keys: None,
        });
        res
    };
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    res
}

/// A slot of the in-flight bound, and the gauge that counts it, given back on drop (also
/// when the request is cancelled).
struct Slot {
    _permit: OwnedSemaphorePermit,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The in-flight bound: beyond it, `503` with `Retry-After` at once.
pub async fn shed(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if is_probe(req.uri().path()) {
        return next.run(req).await;
    }
    let guards = &state.guards;
    let Ok(permit) = guards.in_flight.clone().try_acquire_owned() else {
        state.metrics.shed_in_flight();
        if let Some(n) = guards.shed_report(Instant::now()) {
            tracing::warn!(
                max_in_flight = guards.max_in_flight,
                shed = n,
                "over server.max_in_flight: answering 503 with Retry-After"
            );
        }
        return refusal(
            req.uri().path(),
            StatusCode::SERVICE_UNAVAILABLE,
            guards.retry_after,
        );
    };
    let gauge = state.metrics.in_flight().clone();
    gauge.inc();
    let _slot = Slot {
        _permit: permit,
        gauge,
    };
    next.run(req).await
}

/// The per-address limit of failing requests (see the module documentation).
pub async fn limit_failures(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(limit) = state.guards.failures.as_ref() else {
        return next.run(req).await;
    };
    if is_probe(req.uri().path()) {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let Some(addr) = client::address(&state.config, peer, req.headers()) else {
        return next.run(req).await;
    };
    if let Some(wait) = limit.check(addr, Instant::now()) {
        state.metrics.rate_limited();
        tracing::debug!(client = %addr, "failing too often: answering 429");
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return refusal(req.uri().path(), StatusCode::TOO_MANY_REQUESTS, secs.max(1));
    }
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    let status = res.status();
    if status.is_client_error()
        && status != StatusCode::TOO_MANY_REQUESTS
        && limit.fail(addr, Instant::now())
    {
        state.metrics.address_limited();
        tracing::warn!(
            client = %addr,
            path,
            status = status.as_u16(),
            "this address spent server.bad_request_burst failed requests: answering 429 until it slows down"
        );
    }
    res
}

/// Every `503` tells the client when to come back: overload, a database connection not
/// free in time, the database unreachable, a request timeout.
pub async fn retry_after(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    if res.status() == StatusCode::SERVICE_UNAVAILABLE
        && !res.headers().contains_key(header::RETRY_AFTER)
    {
        res.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(state.guards.retry_after),
        );
    }
    res
}

/// Token buckets of failures per client address, in memory on this node, bounded.
pub struct FailureLimit {
    per_second: f64,
    burst: f64,
    max_tracked: usize,
    tracked: parking_lot::Mutex<Tracked>,
}

#[derive(Default)]
struct Tracked {
    buckets: HashMap<IpAddr, Bucket>,
    swept: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, per_second: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(burst);
        self.at = now;
    }
}

/// One bucket per IPv4 address, and per IPv6 /64 (what one subscriber gets: a bucket per
/// IPv6 address would be a fresh bucket per request).
fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl FailureLimit {
    /// `per_minute` failures refill the bucket of `burst`; at most `max_tracked` addresses.
    pub fn new(per_minute: u32, burst: u32, max_tracked: usize) -> FailureLimit {
        FailureLimit {
            per_second: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            max_tracked: max_tracked.max(1),
            tracked: Default::default(),
        }
    }

    /// `Some(wait)` when `addr` is limited: how long until it may send again.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let mut t = self.tracked.lock();
        let b = t.buckets.get_mut(&key_of(addr))?;
        b.refill(now, self.per_second, self.burst);
        if b.tokens >= 1.0 {
            return None;
        }
        Some(Duration::from_secs_f64(
            (1.0 - b.tokens) / self.per_second.max(f64::MIN_POSITIVE),
        ))
    }

    /// Records a failed request from `addr`; `true` when it spent the last token (the
    /// address is limited from now on).
    pub fn fail(&self, addr: IpAddr, now: Instant) -> bool {
        let key = key_of(addr);
        let mut t = self.tracked.lock();
        if !t.buckets.contains_key(&key) && t.buckets.len() >= self.max_tracked {
            self.make_room(&mut t, now);
        }
        let b = t.buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.refill(now, self.per_second, self.burst);
        let had = b.tokens >= 1.0;
        b.tokens = (b.tokens - 1.0).max(0.0);
        had && b.tokens < 1.0
    }

    /// How many addresses are tracked now.
    pub fn tracked(&self) -> usize {
        self.tracked.lock().buckets.len()
    }

    /// Forgets addresses whose bucket is full again (they carry nothing a new bucket would
    /// not); that scan runs at most once a second. If every tracked address is still
    /// failing, one of them is forgotten.
    fn make_room(&self, t: &mut Tracked, now: Instant) {
        let due = t
            .swept
            .is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1));
        if due {
            t.swept = Some(now);
            let (per_second, burst) = (self.per_second, self.burst);
            t.buckets.retain(|_, b| {
                let mut b = *b;
                b.refill(now, per_second, burst);
                b.tokens < burst
            });
        }
        if t.buckets.len() >= self.max_tracked {
            if let Some(k) = t.buckets.keys().next().copied() {
                t.buckets.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn failures_spend_the_burst_then_the_rate_refills_it() {
        let limit = FailureLimit::new(60, 3, 10); // one a second
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        assert_eq!(
            limit.check(a, t0),
            None,
            "unknown addresses are not limited"
        );
        assert!(!limit.fail(a, t0));
        assert!(!limit.fail(a, t0));
        assert!(limit.fail(a, t0), "the third failure spends the burst");
        let wait = limit.check(a, t0).unwrap();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        assert_eq!(limit.check(ip("192.0.2.2"), t0), None, "others are not");
        let later = t0 + Duration::from_secs(1);
        assert_eq!(limit.check(a, later), None, "a token is back");
        assert!(limit.fail(a, later), "and spent again");
        assert!(limit.check(a, later).is_some());
    }

    #[test]
    fn an_ipv6_subscriber_is_one_address() {
        let limit = FailureLimit::new(60, 1, 10);
        let t0 = Instant::now();
        assert!(limit.fail(ip("2001:db8:1:2::1"), t0));
        assert!(limit.check(ip("2001:db8:1:2:ffff::9"), t0).is_some());
        assert!(limit.check(ip("2001:db8:1:3::1"), t0).is_none());
        assert!(limit.fail(ip("::ffff:192.0.2.7"), t0));
        assert!(limit.check(ip("192.0.2.7"), t0).is_some());
    }

    #[test]
    fn memory_is_bounded_and_recovered_addresses_go_first() {
        let limit = FailureLimit::new(60, 2, 3);
        let t0 = Instant::now();
        let bad = ip("192.0.2.66");
        limit.fail(bad, t0);
        limit.fail(bad, t0);
        limit.fail(ip("192.0.2.1"), t0);
        limit.fail(ip("192.0.2.2"), t0);
        // Three seconds on, every bucket is full again; the limited address fails on.
        let t1 = t0 + Duration::from_secs(3);
        limit.fail(bad, t1);
        limit.fail(bad, t1);
        assert!(limit.check(bad, t1).is_some());
        for i in 0..50 {
            limit.fail(ip(&format!("198.51.100.{i}")), t1);
            assert!(limit.tracked() <= 3);
        }
    }
}
