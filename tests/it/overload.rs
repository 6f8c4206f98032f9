//! Overload and floods, over loopback TCP: beyond `server.max_in_flight` (here held busy by a
//! provider that never answers) requests get 503 with Retry-After at once while the probes
//! answer; an address flooding failing requests gets 429 while other addresses, and clients
//! forwarded by a trusted proxy, are served; a node whose database connections are all taken
//! answers 503 with Retry-After, not 500.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use fedhub::store::StoreOptions;
use fedhub::web::AppState;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::oidc_support::*;
use crate::sso::{get as get_req, send};
use crate::support::{self, NOW};

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(30);

/// Serves `app` on a loopback port with peer addresses, as `fedhub serve` does.
async fn serve(app: axum::Router) -> SocketAddr {
    let listener = fedhub::web::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(fedhub::web::serve_app(
        listener,
        app,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    addr
}

/// A client whose requests come from `from` (any 127.x.y.z is loopback on Linux).
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(BOUND)
        .build()
        .unwrap()
}

struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let res = req.send().await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let retry_after = header("retry-after").map(|v| v.parse().unwrap());
    let content_type = header("content-type").unwrap_or_default();
    Answer {
        status: res.status(),
        retry_after,
        content_type,
        body: res.text().await.unwrap(),
    }
}

/// An OpenID Provider that accepts connections, reads the request and never answers until
/// released: the slow or dead upstream of a real outage.
struct Hanging {
    url: String,
    seen: tokio::sync::watch::Receiver<usize>,
    release: tokio::sync::watch::Sender<bool>,
}

impl Hanging {
    async fn start() -> Hanging {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (count, seen) = tokio::sync::watch::channel(0usize);
        let (release, released) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let count = count.clone();
                let mut released = released.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    count.send_modify(|n| *n += 1);
                    let _ = released.wait_for(|r| *r).await;
                    drop(socket); // the hub sees the connection close without an answer
                });
            }
        });
        Hanging { url, seen, release }
    }

    /// Waits until `n` requests are being held.
    async fn holding(&mut self, n: usize) {
        tokio::time::timeout(BOUND, self.seen.wait_for(|seen| *seen >= n))
            .await
            .expect("the hub called the provider")
            .unwrap();
    }

    fn release(&self) {
        self.release.send(true).unwrap();
    }
}

/// A gateway's login (started in process) waiting at the chooser: its path and the
/// browser-binding cookie.
async fn login_at_chooser(hub: &OidcHub) -> (String, String) {
    let (_verifier, challenge) = pkce();
    let r = send(&hub.app, get_req(&hub.authorize_uri(&challenge, ""), &[])).await;
    assert_eq!(r.status, http::StatusCode::SEE_OTHER, "{}", r.body);
    (r.location().to_string(), r.cookie("fedhub_login").unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_in_flight_requests_get_503_with_retry_after_and_the_probes_still_answer() {
    let mut provider = Hanging::start().await;
    let hub = oidc_hub_configured(
        support::sqlite(),
        "http://127.0.0.1:8080",
        default_registration(),
        |c| {
            c.server.max_in_flight = 2;
            c.server.retry_after = Duration::from_secs(7);
        },
    );
    let reg = fedhub::upstream::OidcRegistration {
        id: "slow".into(),
        display_name: "Nhà cung cấp chậm".into(),
        issuer: provider.url.clone(),
        client_id: "fedhub-hub".into(),
        client_secret: "upstream-secret-1".into(),
        scopes: None,
        claim_names: None,
    };
    let rp_id = hub.rp_id.clone();
    hub.store
        .write(|c| {
            fedhub::upstream::add_oidc(c, &support::vault(), &reg, NOW)?;
            fedhub::upstream::allow_for_rp(c, &rp_id, &["slow".to_string(), "dev".to_string()])
        })
        .unwrap();
    let addr = serve(hub.app.clone()).await;
    let (login, bind) = login_at_chooser(&hub).await;
    let browser = client_from("127.0.0.1");
    let cookie = format!("fedhub_login={bind}");

    // Two people pick the provider that does not answer: both requests are held.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let req = browser
                .post(format!("http://{addr}{login}/slow"))
                .header("cookie", &cookie);
            tokio::spawn(answer(req))
        })
        .collect();
    provider.holding(2).await;

    // A third request, whoever reads it, is refused at once, in its reader's form.
    let page = answer(
        browser
            .get(format!("http://{addr}{login}"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert_eq!(page.retry_after, Some(7));
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert!(
        page.body.contains("Hệ thống tạm thời gián đoạn") && page.body.contains("fedhub.css"),
        "a themed page: {}",
        page.body
    );
    let token = answer(
        browser
            .post(format!("http://{addr}/oidc/token"))
            .basic_auth(&hub.client_id, hub.secret.as_deref())
            .form(&[("grant_type", "authorization_code"), ("code", "x")]),
    )
    .await;
    assert_eq!(token.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(token.retry_after, Some(7));
    assert_eq!(token.json()["error"], "temporarily_unavailable");
    let api = answer(browser.get(format!("http://{addr}/admin/api/v1/agencies"))).await;
    assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.retry_after, Some(7));
    assert_eq!(api.content_type, "application/problem+json");
    assert_eq!(api.json()["type"], "urn:fedhub:problem:unavailable");
    assert!(api.json()["request_id"].is_string(), "{}", api.body);

    // The probes are never shed.
    for probe in ["/healthz", "/readyz"] {
        let r = answer(browser.get(format!("http://{addr}{probe}"))).await;
        assert_eq!(r.status, StatusCode::OK, "{probe}: {}", r.body);
    }
    let metrics = answer(browser.get(format!("http://{addr}/metrics"))).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .body
            .contains("fedhub_shed_requests_total{reason=\"in_flight\"} 3"),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("fedhub_requests_in_flight 2"),
        "{}",
        metrics.body
    );

    // The provider goes away: the held requests end with the upstream page, the slots are
    // free again and the same login goes on.
    provider.release();
    for h in held {
        let r = tokio::time::timeout(BOUND, h).await.unwrap().unwrap();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
        assert!(
            r.body.contains("Không đăng nhập được qua dịch vụ xác thực"),
            "{}",
            r.body
        );
        assert_eq!(r.retry_after, Some(7), "every 503 says when to come back");
    }
    let page = answer(
        browser
            .get(format!("http://{addr}{login}"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
}

/// The hub for the flood test: 20 failures in a row, then one a minute; 127.0.0.5 is the
/// hub's TLS proxy.
async fn flood_hub() -> (SocketAddr, support::TestStore) {
    let store = support::sqlite();
    let mut config = support::test_config();
    config.server.bad_request_rate = 1;
    config.server.bad_request_burst = 20;
    config.connectors.trusted_proxies = vec!["127.0.0.5".parse().unwrap()];
    let state = AppState::new(
        config,
        store.store.clone(),
        Arc::new(fedhub::clock::ManualClock::at(NOW)),
    )
    .unwrap();
    (serve(fedhub::web::router(state)).await, store)
}

/// A failing request of one of three kinds: an unknown page, a broken SAML request, a token
/// request with a wrong client secret.
fn bad(client: &reqwest::Client, addr: SocketAddr, i: usize) -> reqwest::RequestBuilder {
    match i % 3 {
        0 => client.get(format!("http://{addr}/khong-ton-tai-{i}")),
        1 => client.get(format!("http://{addr}/saml/sso?SAMLRequest=not-saml-{i}")),
        _ => client
            .post(format!("http://{addr}/oidc/token"))
            .basic_auth("no-such-client", Some("wrong"))
            .form(&[("grant_type", "authorization_code"), ("code", "x")]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_failing_requests_from_one_address_is_limited_without_hurting_others() {
    let (addr, _store) = flood_hub().await;
    let a = client_from("127.0.0.1");
    let b = client_from("127.0.0.2");

    let mut statuses = Vec::new();
    let mut limited = None;
    for i in 0..200 {
        let r = answer(bad(&a, addr, i)).await;
        statuses.push(r.status);
        if r.status == StatusCode::TOO_MANY_REQUESTS && limited.is_none() {
            limited = Some(r);
        } else {
            assert!(r.status.is_client_error(), "{i}: {} {}", r.status, r.body);
        }
    }
    assert!(
        statuses[..20]
            .iter()
            .all(|s| *s != StatusCode::TOO_MANY_REQUESTS),
        "the burst is answered normally: {statuses:?}"
    );
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(refused >= 170, "then 429: {statuses:?}");
    assert_eq!(statuses[199], StatusCode::TOO_MANY_REQUESTS);
    let limited = limited.unwrap();
    assert!(limited.retry_after.is_some_and(|s| (1..=60).contains(&s)));

    // Once limited, the address is limited, good requests included, in each reader's form;
    // the liveness probe still answers it.
    let r = answer(a.get(format!("http://{addr}/"))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("Quá nhiều yêu cầu"), "{}", r.body);
    assert!(r.retry_after.is_some());
    let r = answer(a.get(format!("http://{addr}/admin/api/v1/agencies"))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.json()["type"], "urn:fedhub:problem:too-many-requests");
    let r = answer(bad(&a, addr, 2)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    let r = answer(a.get(format!("http://{addr}/healthz"))).await;
    assert_eq!(r.status, StatusCode::OK);

    // Another address is not hurt: its failures are its own, its good requests served.
    let r = answer(bad(&b, addr, 0)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = answer(bad(&b, addr, 2)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "invalid_client");
    let r = answer(b.get(format!("http://{addr}/"))).await;
    assert_eq!(r.status, StatusCode::OK);

    // X-Forwarded-For is believed only from the trusted proxy: a client forging it is
    // limited as itself, and the address it named is not.
    let forger = client_from("127.0.0.3");
    for i in 0..21 {
        let _ = answer(bad(&forger, addr, i).header("x-forwarded-for", "198.51.100.7")).await;
    }
    let r = answer(bad(&forger, addr, 0).header("x-forwarded-for", "198.51.100.8")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let proxy = client_from("127.0.0.5");
    let via = |who: &'static str, i: usize| bad(&proxy, addr, i).header("x-forwarded-for", who);
    let r = answer(via("198.51.100.7", 0)).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "the forged address is not limited"
    );
    // Clients behind the proxy are limited one by one, never the proxy as a whole.
    for i in 0..21 {
        let _ = answer(via("198.51.100.8", i)).await;
    }
    let r = answer(via("198.51.100.8", 0)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = answer(via("198.51.100.9", 0)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = answer(
        proxy
            .get(format!("http://{addr}/"))
            .header("x-forwarded-for", "198.51.100.9"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    let metrics = answer(b.get(format!("http://{addr}/metrics"))).await.body;
    let count = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(
        count("fedhub_rate_limited_requests_total") >= 175,
        "{metrics}"
    );
    assert_eq!(count("fedhub_rate_limited_addresses_total"), 3, "{metrics}");
}

/// Every database connection of the node is taken (here: held by the test): requests that
/// need one wait `database.acquire_timeout` and get 503 with Retry-After, never a 500.
async fn pool_exhaustion_is_503_with_retry_after(store: support::TestStore) {
    let hub = oidc_hub_at(store, "http://127.0.0.1:8080", default_registration());
    let addr = serve(hub.app.clone()).await;
    let held: Vec<_> = (0..small_pool().pool_size)
        .map(|_| hub.store.conn().unwrap())
        .collect();
    let client = client_from("127.0.0.1");

    let api = answer(
        client
            .get(format!("http://{addr}/admin/api/v1/agencies"))
            .bearer_auth("fhk_not-a-real-token"),
    )
    .await;
    assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE, "{}", api.body);
    assert_eq!(api.retry_after, Some(5), "the default server.retry_after");
    assert_eq!(api.content_type, "application/problem+json");
    assert_eq!(api.json()["type"], "urn:fedhub:problem:unavailable");

    let token = answer(
        client
            .post(format!("http://{addr}/oidc/token"))
            .basic_auth(&hub.client_id, hub.secret.as_deref())
            .form(&[("grant_type", "authorization_code"), ("code", "x")]),
    )
    .await;
    assert_eq!(
        token.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        token.body
    );
    assert_eq!(token.retry_after, Some(5));
    assert_eq!(token.json()["error"], "temporarily_unavailable");

    let (_verifier, challenge) = pkce();
    let page = answer(client.get(format!(
        "http://{addr}{}",
        hub.authorize_uri(&challenge, "")
    )))
    .await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert_eq!(page.retry_after, Some(5));
    assert!(page.content_type.starts_with("text/html"));
    assert!(
        page.body.contains("Hệ thống tạm thời gián đoạn"),
        "{}",
        page.body
    );

    let metrics = answer(client.get(format!("http://{addr}/metrics")))
        .await
        .body;
    assert!(
        metrics
            .lines()
            .filter_map(|l| l.strip_prefix("fedhub_database_acquire_timeouts_total "))
            .any(|n| n.trim().parse::<u64>().unwrap() >= 3),
        "{metrics}"
    );

    // The node is full, not broken: it stays ready (a load balancer keeps sending it its
    // share, which it sheds itself), and says so at once instead of waiting for a connection.
    let r = answer(client.get(format!("http://{addr}/readyz"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["database"], "busy", "{}", r.body);

    drop(held);
    let r = answer(client.get(format!("http://{addr}/readyz"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["database"], "ok", "{}", r.body);
}

fn small_pool() -> StoreOptions {
    StoreOptions {
        pool_size: 2,
        acquire_timeout: Duration::from_millis(300),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_is_503_with_retry_after_not_500_sqlite() {
    pool_exhaustion_is_503_with_retry_after(support::sqlite_with(&small_pool())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_is_503_with_retry_after_not_500_postgres() {
    pool_exhaustion_is_503_with_retry_after(support::postgres_with(&small_pool())).await;
}

/// Registers `provider` as connector `dead` and offers it, with the demo, to the hub's client.
fn offer_dead_provider(hub: &OidcHub, provider: &Hanging) {
    let reg = fedhub::upstream::OidcRegistration {
        id: "dead".into(),
        display_name: "Nhà cung cấp không trả lời".into(),
        issuer: provider.url.clone(),
        client_id: "fedhub-hub".into(),
        client_secret: "upstream-secret-1".into(),
        scopes: None,
        claim_names: None,
    };
    let rp_id = hub.rp_id.clone();
    hub.store
        .write(|c| {
            fedhub::upstream::add_oidc(c, &support::vault(), &reg, NOW)?;
            fedhub::upstream::allow_for_rp(c, &rp_id, &["dead".to_string(), "dev".to_string()])
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_provider_times_out_with_a_page_while_the_chooser_and_other_connectors_work() {
    let mut provider = Hanging::start().await;
    let hub = oidc_hub_configured(
        support::sqlite(),
        "http://127.0.0.1:8080",
        default_registration(),
        |c| c.connectors.upstream_timeout = Duration::from_secs(1),
    );
    offer_dead_provider(&hub, &provider);
    let addr = serve(hub.app.clone()).await;
    let browser = client_from("127.0.0.1");

    // Someone picks the provider that never answers.
    let (stuck_login, stuck_bind) = login_at_chooser(&hub).await;
    let stuck = tokio::spawn(answer(
        browser
            .post(format!("http://{addr}{stuck_login}/dead"))
            .header("cookie", format!("fedhub_login={stuck_bind}")),
    ));
    provider.holding(1).await;

    // Meanwhile another person gets the chooser and signs in with another connector.
    let (login, bind) = login_at_chooser(&hub).await;
    let cookie = format!("fedhub_login={bind}");
    let page = answer(
        browser
            .get(format!("http://{addr}{login}"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("Nhà cung cấp không trả lời"),
        "{}",
        page.body
    );
    let res = browser
        .post(format!("http://{addr}{login}/dev"))
        .header("cookie", &cookie)
        .form(&[("national_id", crate::sso::CITIZEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = res.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with(REDIRECT) && to.contains("code="), "{to}");

    // The stuck sign-in ends after connectors.upstream_timeout with a page, not a hang, and
    // that person can choose again.
    let r = tokio::time::timeout(BOUND, stuck).await.unwrap().unwrap();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(
        r.body.contains("Không đăng nhập được qua dịch vụ xác thực"),
        "{}",
        r.body
    );
    assert!(r.retry_after.is_some());
    let again = answer(
        browser
            .get(format!("http://{addr}{stuck_login}"))
            .header("cookie", format!("fedhub_login={stuck_bind}")),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    provider.release();
}

/// A provider that did not answer is remembered as down for `connectors.upstream_down_for`:
/// the next people who pick it get the page at once and the provider is not called; after
/// that time the hub asks it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_did_not_answer_is_not_asked_again_for_a_while() {
    let mut provider = Hanging::start().await;
    let hub = oidc_hub_configured(
        support::sqlite(),
        "http://127.0.0.1:8080",
        default_registration(),
        |c| {
            c.connectors.upstream_timeout = Duration::from_secs(1);
            c.connectors.upstream_down_for = Duration::from_secs(60);
        },
    );
    offer_dead_provider(&hub, &provider);
    let addr = serve(hub.app.clone()).await;
    let browser = client_from("127.0.0.1");
    let pick = |login: String, bind: String| {
        answer(
            browser
                .post(format!("http://{addr}{login}/dead"))
                .header("cookie", format!("fedhub_login={bind}")),
        )
    };
    let calls = |p: &Hanging| *p.seen.borrow();

    // The first person waits for the timeout, and the provider was called.
    let (login, bind) = login_at_chooser(&hub).await;
    let first = pick(login, bind).await;
    assert_eq!(
        first.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        first.body
    );
    assert_eq!(calls(&provider), 1);

    // The next ones get the same page, and the provider is left alone.
    for _ in 0..3 {
        let (login, bind) = login_at_chooser(&hub).await;
        let r = pick(login, bind).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
        assert!(
            r.body.contains("Không đăng nhập được qua dịch vụ xác thực"),
            "{}",
            r.body
        );
        assert!(r.retry_after.is_some());
    }
    assert_eq!(
        calls(&provider),
        1,
        "the hub called a provider it knew was down"
    );

    // After upstream_down_for the hub tries it again.
    hub.clock.advance(61);
    let (login, bind) = login_at_chooser(&hub).await;
    let again = tokio::spawn(pick(login, bind));
    provider.holding(2).await;
    let r = tokio::time::timeout(BOUND, again).await.unwrap().unwrap();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    provider.release();
}
