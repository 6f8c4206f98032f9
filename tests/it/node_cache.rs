//! Each node keeps copies of relying parties and signing keys (`fedhub::cache`). A change made
//! on one node (or by an operator's own SQL) reaches every other node through the database's
//! change counters within `database.cache_refresh`; until then a node may answer from its copy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use diesel::prelude::*;
use http::StatusCode;

use crate::sp::{default_sp, TestSp};
use crate::sso::{authn_request_uri, get, send, Reply};
use crate::support::{self, TestStore, NOW};

const DENIED: &str = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied";

on_both_engines!(
    a_relying_party_changed_by_sql_on_one_node_is_seen_by_another_within_the_refresh,
    a_node_answers_from_its_copy_until_the_refresh_is_due,
    a_key_rotated_on_one_node_signs_on_another_within_the_refresh,
    a_connector_disabled_by_sql_on_one_node_leaves_another_within_the_refresh,
);

struct Nodes {
    /// The node where changes are made (its own copies are not the point here).
    a: TestStore,
    sp: TestSp,
    rp_id: String,
    clock: fedhub::clock::SharedClock,
}

fn nodes(store: &TestStore) -> (Nodes, Router) {
    let sp = default_sp();
    let clock: fedhub::clock::SharedClock = Arc::new(fedhub::clock::ManualClock::at(NOW));
    let (app, rp_id, _) = crate::sso::hub_with(store, &sp.metadata(), false, clock.clone());
    let a = TestStore::unguarded(store.another_node(), store.url.clone());
    (
        Nodes {
            a,
            sp,
            rp_id,
            clock,
        },
        app,
    )
}

impl Nodes {
    /// Another node on the same database, trusting its copies for `refresh`.
    fn node(&self, refresh: Duration) -> Router {
        let mut config = support::test_config();
        config.database.cache_refresh = refresh;
        let state =
            fedhub::web::AppState::new(config, self.a.another_node(), self.clock.clone()).unwrap();
        fedhub::web::router(state)
    }

    /// The operator switches the relying party off with plain SQL on node A.
    fn disable_by_sql(&self) {
        use fedhub::store::schema::relying_parties::dsl as rp;
        let id = self.rp_id.clone();
        self.a
            .write(move |c| {
                diesel::update(rp::relying_parties.find(&id))
                    .set(rp::enabled.eq(false))
                    .execute(c)?;
                Ok(())
            })
            .unwrap();
    }
}

impl Nodes {
    /// The operator switches a connector off with plain SQL on node A.
    fn disable_connector_by_sql(&self, id: &str) {
        use fedhub::store::schema::connectors::dsl as k;
        let id = id.to_string();
        self.a
            .write(move |c| {
                diesel::update(k::connectors.find(&id))
                    .set(k::enabled.eq(false))
                    .execute(c)?;
                Ok(())
            })
            .unwrap();
    }
}

/// A login started on `node`: its sign-in page's address and binding cookie.
async fn open_login(node: &Router, sp: &TestSp, id: &str) -> (String, String) {
    let r = send(node, get(&authn_request_uri(sp, id), &[])).await;
    assert!(starts_login(&r), "{} {}", r.status, r.body);
    (
        r.location().to_string(),
        r.cookie("fedhub_login").expect("a login cookie"),
    )
}

/// The demo connector's form, posted for the test citizen.
fn demo_choice(login: &str, bind: &str) -> http::Request<axum::body::Body> {
    http::Request::post(format!("{login}/dev"))
        .header(http::header::COOKIE, format!("fedhub_login={bind}"))
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(axum::body::Body::from(format!(
            "national_id={}",
            crate::sso::CITIZEN
        )))
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Sends AuthnRequests to `node` until `done` holds for the answer, or `within` passes.
async fn until(
    node: &Router,
    sp: &TestSp,
    cookies: &[(&str, &str)],
    within: Duration,
    done: impl Fn(&Reply) -> bool,
) -> (Reply, Duration) {
    let started = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let r = send(
            node,
            get(&authn_request_uri(sp, &format!("_c{n}")), cookies),
        )
        .await;
        if done(&r) || started.elapsed() > within {
            return (r, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn starts_login(r: &Reply) -> bool {
    r.status == StatusCode::SEE_OTHER && r.location().starts_with("/login/")
}

fn denied(r: &Reply) -> bool {
    r.status == StatusCode::OK && r.saml_response().contains(DENIED)
}

fn a_relying_party_changed_by_sql_on_one_node_is_seen_by_another_within_the_refresh(
    store: &TestStore,
) {
    let (n, _) = nodes(store);
    let refresh = Duration::from_millis(300);
    let b = n.node(refresh);
    runtime().block_on(async {
        // Node B reads the SP once: from now on it holds a copy.
        let r = send(&b, get(&authn_request_uri(&n.sp, "_warm"), &[])).await;
        assert!(starts_login(&r), "{} {}", r.status, r.body);
        n.disable_by_sql();
        let (r, took) = until(&b, &n.sp, &[], refresh + Duration::from_secs(3), denied).await;
        assert!(
            denied(&r),
            "node B still lets people sign in to a disabled SP after {took:?}: {} {}",
            r.status,
            r.body
        );
    });
}

fn a_node_answers_from_its_copy_until_the_refresh_is_due(store: &TestStore) {
    let (n, _) = nodes(store);
    let patient = n.node(Duration::from_secs(3600));
    let eager = n.node(Duration::ZERO);
    runtime().block_on(async {
        for (i, node) in [&patient, &eager].into_iter().enumerate() {
            let r = send(node, get(&authn_request_uri(&n.sp, &format!("_w{i}")), &[])).await;
            assert!(starts_login(&r), "{} {}", r.status, r.body);
        }
        n.disable_by_sql();
        // refresh = 0: the node asks the database at every use and sees the change at once.
        let r = send(&eager, get(&authn_request_uri(&n.sp, "_e"), &[])).await;
        assert!(denied(&r), "{} {}", r.status, r.body);
        // An hour: the node keeps answering from the copy it holds.
        let r = send(&patient, get(&authn_request_uri(&n.sp, "_p"), &[])).await;
        assert!(starts_login(&r), "{} {}", r.status, r.body);
    });
}

/// The X.509 certificate the hub put in its Response's signature.
fn signing_cert(r: &Reply) -> String {
    let xml = r.saml_response();
    let start = xml
        .find("<ds:X509Certificate>")
        .expect("a signature with a certificate")
        + "<ds:X509Certificate>".len();
    let end = start + xml[start..].find("</ds:X509Certificate>").unwrap();
    xml[start..end].to_string()
}

fn a_key_rotated_on_one_node_signs_on_another_within_the_refresh(store: &TestStore) {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use fedhub::keys::{self, Purpose};

    let (n, a_app) = nodes(store);
    let refresh = Duration::from_millis(300);
    let b = n.node(refresh);
    let current = |s: &TestStore| {
        STANDARD.encode(
            s.read(|c| keys::signer(c, &support::vault(), Purpose::Saml))
                .unwrap()
                .cert_der,
        )
    };
    let before = current(&n.a);
    runtime().block_on(async {
        // A person signs in on node A; node B answers them by SSO with the current key.
        let (login, bind) = open_login(&a_app, &n.sp, "_1").await;
        let r = send(&a_app, demo_choice(&login, &bind)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let sso = r.cookie("fedhub_sso").expect("an SSO session");
        let cookies = [("fedhub_sso", sso.as_str())];
        let first = send(&b, get(&authn_request_uri(&n.sp, "_2"), &cookies)).await;
        assert_eq!(signing_cert(&first), before);

        let alg = support::test_config().saml_key_alg();
        n.a.write(|c| keys::rotate(c, &support::vault(), Purpose::Saml, alg, 86_400, NOW))
            .unwrap();
        let after = current(&n.a);
        assert_ne!(after, before);
        let (r, took) = until(&b, &n.sp, &cookies, refresh + Duration::from_secs(3), |r| {
            r.status == StatusCode::OK && signing_cert(r) == after
        })
        .await;
        assert_eq!(
            signing_cert(&r),
            after,
            "node B still signs with the replaced key after {took:?}"
        );
    });
}

/// The sign-in page and the connector a person picks come from the node's copies too: a
/// connector switched off on node A stops being offered, and stops being accepted, on node B
/// within the refresh.
fn a_connector_disabled_by_sql_on_one_node_leaves_another_within_the_refresh(store: &TestStore) {
    let (n, _) = nodes(store);
    let refresh = Duration::from_millis(300);
    let b = n.node(refresh);
    runtime().block_on(async {
        // Node B shows the page and takes the demo choice once: it now holds both copies.
        let (login, bind) = open_login(&b, &n.sp, "_warm").await;
        let page = send(&b, get(&login, &[("fedhub_login", &bind)])).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body.contains("national_id"),
            "the demo is offered: {}",
            page.body
        );
        let r = send(&b, demo_choice(&login, &bind)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.saml_response().contains("Success"), "{}", r.body);

        // A login opened before the change, to pick the demo after it.
        let (old_login, old_bind) = open_login(&b, &n.sp, "_old").await;
        n.disable_connector_by_sql("dev");
        let started = Instant::now();
        let mut k = 0;
        let page = loop {
            k += 1;
            let (login, bind) = open_login(&b, &n.sp, &format!("_p{k}")).await;
            let page = send(&b, get(&login, &[("fedhub_login", &bind)])).await;
            if page.status != StatusCode::OK || started.elapsed() > refresh * 10 {
                break page;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        assert_eq!(
            page.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "node B still offers a disabled connector after {:?}: {}",
            started.elapsed(),
            page.body
        );
        let r = send(&b, demo_choice(&old_login, &old_bind)).await;
        assert_ne!(
            r.status,
            StatusCode::OK,
            "a disabled connector signed someone in"
        );
        assert!(!r.body.contains("SAMLResponse"), "{}", r.body);
    });
}
