//! The HTTP edge through `Router::oneshot`: pages, problem+json, limits, headers, panics.

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use fedhub::web::{self, AppState};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::support::{self, NOW};

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn send(app: Router, req: Request<Body>) -> Reply {
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn app(store: &fedhub::store::Store) -> (Router, AppState) {
    let (state, _clock) = support::app_state(store);
    (web::router(state.clone()), state)
}

fn api_token(state: &AppState) -> String {
    state
        .store
        .write(|c| fedhub::tokens::create_api_token(c, "test", NOW))
        .unwrap()
}

#[tokio::test]
async fn the_language_picked_with_the_switch_stays_on_the_next_pages() {
    let store = support::sqlite();
    let (app, _) = app(&store);
    let r = send(app.clone(), get_req("/?lang=en")).await;
    let cookie = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("fedhub_lang="))
        .expect("the choice is remembered")
        .to_string();
    assert!(cookie.starts_with("fedhub_lang=en;") && cookie.contains("SameSite=Lax"));
    // A later page without ?lang= (a Vietnamese browser) stays in English.
    let r = send(
        app.clone(),
        Request::get("/khong-ton-tai")
            .header("accept-language", "vi-VN,vi")
            .header("cookie", "fedhub_lang=en")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(r.body.contains("Page not found"), "{}", r.body);
    // Switching back is remembered the same way.
    let r = send(app, get_req("/?lang=vi")).await;
    assert!(r
        .headers
        .get_all("set-cookie")
        .iter()
        .any(|v| v.to_str().unwrap_or("").starts_with("fedhub_lang=vi;")));
}

#[tokio::test]
async fn health_and_readiness() {
    let store = support::sqlite();
    let (app, _) = app(&store);
    let r = send(app.clone(), get_req("/healthz")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "ok");
    let r = send(app, get_req("/readyz")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn not_ready_while_migrations_are_pending() {
    let store = support::sqlite_unmigrated();
    let (app, _) = app(&store);
    let r = send(app.clone(), get_req("/readyz")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.json()["status"],
        "unavailable",
        "probes get JSON, not the HTML page"
    );
    assert_eq!(
        send(app, get_req("/healthz")).await.status,
        StatusCode::OK,
        "alive but not ready"
    );
}

#[tokio::test]
async fn unknown_page_is_a_themed_page_in_vietnamese_with_its_reference() {
    let store = support::sqlite();
    let (app, _) = app(&store);
    let r = send(app.clone(), get_req("/khong-ton-tai")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.header("content-type").starts_with("text/html"));
    assert!(r.body.contains("lang=\"vi\""));
    assert!(r.body.contains("Không tìm thấy trang"), "{}", r.body);
    let reference = r.header("x-request-id").to_string();
    assert!(!reference.is_empty());
    assert!(
        r.body.contains(&reference),
        "the page shows the reference id of the request"
    );

    let r = send(app.clone(), get_req("/khong-ton-tai?lang=en")).await;
    assert!(
        r.body.contains("lang=\"en\"") && r.body.contains("Page not found"),
        "{}",
        r.body
    );
    let r = send(
        app,
        Request::get("/nope")
            .header("accept-language", "en-GB,en;q=0.9")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(r.body.contains("Page not found"));
}

#[tokio::test]
async fn home_page_and_stylesheet() {
    let store = support::sqlite();
    let (app, _) = app(&store);
    let r = send(app.clone(), get_req("/")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Nền tảng trao đổi định danh điện tử"));
    assert!(r.body.contains("/static/fedhub.css"));
    let css = send(app, get_req("/static/fedhub.css")).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.header("content-type").starts_with("text/css"));
}

#[tokio::test]
async fn security_headers_on_every_answer() {
    let store = support::sqlite();
    let (app, _) = app(&store);
    for path in ["/", "/healthz", "/nope"] {
        let r = send(app.clone(), get_req(path)).await;
        assert_eq!(r.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(r.header("x-frame-options"), "DENY", "{path}");
        assert!(
            r.header("content-security-policy")
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(r.header("referrer-policy"), "no-referrer", "{path}");
    }
}

/// Forms on the hub's pages post to the hub only, except where the hub's answer to the form is
/// a redirect to another site (sign-in: the upstream IdP or the portal's callback; sign-out:
/// the portals' logout endpoints). Browsers apply `form-action` to those redirects too, so
/// those pages go without it (the tour in headless Chromium signs out through them).
#[tokio::test]
async fn forms_post_to_the_hub_only_except_where_they_lead_away() {
    let store = support::sqlite();
    let (app, _) = app(&store);
    for path in ["/", "/admin", "/nope", "/claim/x"] {
        let r = send(app.clone(), get_req(path)).await;
        assert!(
            r.header("content-security-policy")
                .contains("form-action 'self'"),
            "{path}: {}",
            r.header("content-security-policy")
        );
    }
    for path in ["/saml/logout", "/login/unknown-handle", "/oidc/logout"] {
        let r = send(app.clone(), get_req(path)).await;
        let csp = r.header("content-security-policy");
        assert!(!csp.contains("form-action"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    }
}

#[tokio::test]
async fn request_ids_are_ours_not_the_clients() {
    let store = support::sqlite();
    let (app, _) = app(&store);
    let r = send(
        app,
        Request::get("/healthz")
            .header("x-request-id", "forged-by-client")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let id = r.header("x-request-id");
    assert_ne!(id, "forged-by-client");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn oversized_body_is_refused_with_a_page() {
    let store = support::sqlite();
    let (app, state) = app(&store);
    let big = vec![b'x'; state.config.server.max_body_bytes + 1];
    let req = Request::post("/admin/api/v1/accounts")
        .header("content-type", "application/json")
        .header("content-length", big.len())
        .body(Body::from(big))
        .unwrap();
    let r = send(app.clone(), req).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.header("content-type"), "application/problem+json");
    let big = vec![b'x'; state.config.server.max_body_bytes + 1];
    let req = Request::post("/")
        .header("content-length", big.len())
        .body(Body::from(big))
        .unwrap();
    let r = send(app, req).await;
    assert!(
        r.status == StatusCode::PAYLOAD_TOO_LARGE || r.status == StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        r.status
    );
    assert!(r.header("content-type").starts_with("text/html"));
}

#[tokio::test]
async fn wrong_method_is_a_page_that_says_which_are_allowed() {
    let store = support::sqlite();
    let (app, _) = app(&store);
    let r = send(
        app,
        Request::delete("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.header("content-type").starts_with("text/html"));
    assert!(r.header("allow").contains("GET"), "{:?}", r.headers);
}

#[tokio::test]
async fn a_panic_is_a_500_page_with_a_reference_not_a_dropped_connection() {
    let store = support::sqlite();
    let (state, _) = support::app_state(&store);
    async fn boom() -> &'static str {
        panic!("secret internal detail")
    }
    let extra = Router::new().route("/boom", get(boom));
    let app = web::router_with(state, extra);
    let r = send(app, get_req("/boom")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body.contains(r.header("x-request-id")), "reference shown");
    assert!(
        !r.body.contains("secret internal detail"),
        "internals stay in the log"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let store = support::sqlite();
    let (app, _) = app(&store);
    send(app.clone(), get_req("/healthz")).await;
    send(app.clone(), get_req("/no/such/page/123")).await;
    let r = send(app, get_req("/metrics")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains(
            "fedhub_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
        ),
        "{}",
        r.body
    );
    assert!(
        !r.body.contains("/no/such/page/123"),
        "raw paths never become labels"
    );
    assert!(r
        .body
        .contains("fedhub_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn admin_api_requires_a_valid_token() {
    let store = support::sqlite();
    let (app, state) = app(&store);
    let r = send(app.clone(), get_req("/admin/api/v1/agencies")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("content-type"), "application/problem+json");
    assert!(r.header("www-authenticate").starts_with("Bearer"));
    assert_eq!(r.json()["type"], "urn:fedhub:problem:unauthorized");
    assert!(r.json()["request_id"].is_string());
    let r = send(
        app.clone(),
        Request::get("/admin/api/v1/agencies")
            .header("authorization", "Bearer fhk_wrong")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let log = state.store.read(|c| fedhub::audit::tail(c, 10)).unwrap();
    let refused = log
        .iter()
        .find(|e| e.action == "api.authenticate")
        .expect("a wrong token is audited");
    assert_eq!(refused.outcome, "denied");
    let logged = format!("{:?} {:?}", refused.target, refused.detail);
    assert!(
        !logged.contains("fhk_wrong"),
        "the token itself is never logged"
    );
    let token = api_token(&state);
    let r = send(
        app,
        Request::get("/admin/api/v1/agencies")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), serde_json::json!([]));
}

fn post_json(uri: &str, token: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn admin_api_creates_and_refuses_with_problem_json() {
    let store = support::sqlite();
    let (app, state) = app(&store);
    let token = api_token(&state);

    let r = send(
        app.clone(),
        post_json(
            "/admin/api/v1/agencies",
            &token,
            r#"{"code":"000.00.00.H49","name_vi":"UBND tỉnh Quảng Ninh"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["level"], 1);

    let r = send(
        app.clone(),
        post_json(
            "/admin/api/v1/agencies",
            &token,
            r#"{"code":"000.00.00.H49","name_vi":"again"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["field"], "agency_code");

    let r = send(
        app.clone(),
        post_json(
            "/admin/api/v1/agencies",
            &token,
            r#"{"code":"000.00.00.Z1","name_vi":"x"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["field"], "agency_code");

    let r = send(app.clone(), post_json("/admin/api/v1/accounts", &token, r#"{"kind":"citizen","display_name":"Lê Văn C","national_id":"001204012346","phone":"12345"}"#)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["field"], "phone");

    let r = send(
        app.clone(),
        post_json(
            "/admin/api/v1/accounts",
            &token,
            r#"{"kind":"citizen","display_name":"Lê Văn C""#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["field"], "body");

    let r = send(app.clone(), post_json("/admin/api/v1/accounts", &token, r#"{"kind":"citizen","display_name":"Lê Văn C","national_id":"001204012346","role":"admin"}"#)).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused"
    );

    let req = Request::post("/admin/api/v1/accounts")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from("{}"))
        .unwrap();
    let r = send(app.clone(), req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["field"], "content-type");

    let r = send(app.clone(), post_json("/admin/api/v1/accounts", &token, r#"{"kind":"citizen","display_name":"Lê Văn C","national_id":"001204012346","phone":"0912 000 111"}"#)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["phone"], "+84912000111");

    let r = send(
        app.clone(),
        Request::get(format!("/admin/api/v1/accounts/{id}"))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["display_name"], "Lê Văn C");
    let r = send(
        app.clone(),
        Request::get("/admin/api/v1/accounts?q=le%20van")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);

    let r = send(
        app.clone(),
        Request::get("/admin/api/v1/nothing-here")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("content-type"), "application/problem+json");

    // Every change and every refusal is in the audit log, with the request id.
    let entries = state.store.read(|c| fedhub::audit::tail(c, 100)).unwrap();
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .collect();
    assert!(actions.contains(&("agency.add", "success")));
    assert!(actions.contains(&("agency.add", "failure")), "{actions:?}");
    assert!(actions.contains(&("account.add", "success")));
    assert!(entries
        .iter()
        .all(|e| e.actor == "api-token:test" && e.request_id.is_some()));
    assert!(
        entries.iter().any(|e| e.action == "account.add"
            && e.outcome == "failure"
            && e.target.as_deref() == Some("001204012346")),
        "refused input is audited with what it named"
    );
}

#[tokio::test]
async fn admin_api_answers_503_problem_json_when_the_database_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("busy.db").display());
    let opts = fedhub::store::StoreOptions {
        pool_size: 1,
        connect_timeout: std::time::Duration::from_millis(300),
        acquire_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let store = fedhub::store::Store::connect(&url, &opts).unwrap();
    store.migrate().unwrap();
    let (app, state) = app(&store);
    let token = api_token(&state);
    // Every connection is taken: the database is as good as unreachable for this node.
    let held = store.conn().unwrap();
    let r = send(
        app.clone(),
        Request::get("/admin/api/v1/agencies")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("content-type"), "application/problem+json");
    assert_eq!(r.json()["type"], "urn:fedhub:problem:unavailable");
    // Busy, not broken: the node stays ready (it sheds load itself).
    let r = send(app.clone(), get_req("/readyz")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["database"], "busy");
    drop(held);
}

/// A full pool that has handed out nothing for 10 s is not "busy": its connections are stuck
/// (a database that hangs), and `/readyz` says 503 after `acquire_timeout`.
#[tokio::test]
async fn readyz_is_503_when_the_full_pool_has_handed_out_nothing_for_a_while() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("stuck.db").display());
    let opts = fedhub::store::StoreOptions {
        pool_size: 1,
        acquire_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let store = fedhub::store::Store::connect(&url, &opts).unwrap();
    store.migrate().unwrap();
    let (app, _) = app(&store);
    let held = store.conn().unwrap();
    let r = send(app.clone(), get_req("/readyz")).await;
    assert_eq!(r.json()["database"], "busy");
    tokio::time::sleep(std::time::Duration::from_millis(10_500)).await;
    let r = send(app, get_req("/readyz")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    drop(held);
}

#[tokio::test]
async fn admin_api_registers_connectors_and_never_returns_their_secrets() {
    let store = support::sqlite();
    let (app, state) = app(&store);
    let token = api_token(&state);
    let bad = send(
        app.clone(),
        post_json(
            "/admin/api/v1/connectors/oidc",
            &token,
            r#"{"id": "vneid", "display_name": "VNeID", "issuer": "http://id.example.vn", "client_id": "fedhub", "client_secret": "upstream-secret-1"}"#,
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad
        .header("content-type")
        .starts_with("application/problem+json"));
    assert_eq!(bad.json()["field"], "issuer");
    let ok = send(
        app.clone(),
        post_json(
            "/admin/api/v1/connectors/oidc",
            &token,
            r#"{"id": "vneid", "display_name": "VNeID", "issuer": "https://id.example.vn", "client_id": "fedhub", "client_secret": "upstream-secret-1"}"#,
        ),
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    let cert = send(
        app.clone(),
        post_json(
            "/admin/api/v1/connectors/certificate",
            &token,
            r#"{"id": "usb", "display_name": "USB ký số", "trust_anchors_pem": ["not pem"]}"#,
        ),
    )
    .await;
    assert_eq!(cert.status, StatusCode::BAD_REQUEST, "{}", cert.body);
    let list = send(
        app.clone(),
        Request::get("/admin/api/v1/connectors")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.body.contains("upstream-secret-1") && !ok.body.contains("upstream-secret-1"));
    assert_eq!(
        list.json().as_array().unwrap().len(),
        1,
        "the refused one left nothing"
    );
    let off = send(
        app,
        Request::put("/admin/api/v1/connectors/vneid/enabled")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(r#"{"enabled": false}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    assert_eq!(off.json()["enabled"], false);
}

#[tokio::test]
async fn admin_api_registers_a_saml_connector_and_publishes_its_sp_metadata() {
    const IDP: &str = "https://idp.botuphap.example.gov.vn/idp";
    let store = support::sqlite();
    // SAML keys exist, as after the first `fedhub serve`: the SP metadata is signed with them.
    let (state, _clock) = support::saml_state(&store);
    let app = web::router(state.clone());
    let token = api_token(&state);
    let good_xml = crate::cli::idp_metadata(
        &crate::cli::idp_cert(),
        IDP,
        "https://idp.botuphap.example.gov.vn/sso",
    );
    let add = |body: serde_json::Value| {
        post_json("/admin/api/v1/connectors/saml", &token, &body.to_string())
    };

    let anonymous = send(
        app.clone(),
        Request::post("/admin/api/v1/connectors/saml")
            .header("content-type", "application/json")
            .body(Body::from(
                serde_json::json!({"id": "bo-tu-phap", "display_name": "Bộ Tư pháp", "metadata_xml": good_xml})
                    .to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // Bad metadata: 400 problem+json naming the field.
    for (metadata_xml, says) in [
        ("<md:EntityDescriptor".to_string(), ""),
        (
            crate::cli::idp_metadata(
                &crate::cli::idp_cert(),
                IDP,
                "http://idp.botuphap.example.gov.vn/sso",
            ),
            "https://",
        ),
    ] {
        let r = send(
            app.clone(),
            add(serde_json::json!({"id": "bo-tu-phap", "display_name": "Bộ Tư pháp", "metadata_xml": metadata_xml})),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.header("content-type"), "application/problem+json");
        assert_eq!(r.json()["type"], "urn:fedhub:problem:invalid");
        assert_eq!(r.json()["field"], "metadata", "{}", r.body);
        assert!(
            r.json()["rule"].as_str().unwrap().contains(says),
            "{}",
            r.body
        );
    }
    let r = send(
        app.clone(),
        add(serde_json::json!({"id": "bo-tu-phap", "display_name": "Bộ Tư pháp", "metadata_xml": good_xml, "attribute_map": {"x": "password"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.json()["field"], "attribute_map");

    let ok = send(
        app.clone(),
        add(serde_json::json!({
            "id": "bo-tu-phap",
            "display_name": "Bộ Tư pháp",
            "metadata_xml": good_xml,
            "name_id_format": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            "attribute_map": {"urn:oid:2.5.4.42": "name"},
        })),
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert!(ok.header("content-type").starts_with("application/json"));
    let c = ok.json();
    assert_eq!(c["id"], "bo-tu-phap");
    assert_eq!(c["kind"], "saml");
    assert_eq!(c["display_name"], "Bộ Tư pháp");
    assert_eq!(c["enabled"], true);
    assert!(c.get("config").is_none(), "settings are not echoed: {c}");

    // The same id again, or the same IdP under another id: 409.
    let again = send(
        app.clone(),
        add(serde_json::json!({"id": "bo-tu-phap", "display_name": "Khác", "metadata_xml": crate::cli::idp_metadata(&crate::cli::idp_cert(), "https://idp.other.example.gov.vn/idp", "https://idp.other.example.gov.vn/sso")})),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.header("content-type"), "application/problem+json");
    assert_eq!(again.json()["type"], "urn:fedhub:problem:conflict");
    assert_eq!(again.json()["field"], "id");
    let same_idp = send(
        app.clone(),
        add(serde_json::json!({"id": "bo-tu-phap-2", "display_name": "Khác", "metadata_xml": good_xml})),
    )
    .await;
    assert_eq!(same_idp.status, StatusCode::CONFLICT, "{}", same_idp.body);
    assert_eq!(same_idp.json()["field"], "metadata");

    let list = send(
        app.clone(),
        Request::get("/admin/api/v1/connectors")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(
        list.json().as_array().unwrap().len(),
        1,
        "refusals left nothing: {}",
        list.body
    );

    let entries = state.store.read(|c| fedhub::audit::tail(c, 100)).unwrap();
    let added: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "connector.add_saml" && e.outcome == "success")
        .collect();
    assert_eq!(added.len(), 1, "{entries:?}");
    assert_eq!(added[0].target.as_deref(), Some("bo-tu-phap"));
    assert_eq!(added[0].actor, "api-token:test");
    assert!(added[0].request_id.is_some());
    assert!(entries
        .iter()
        .any(|e| e.action == "connector.add_saml" && e.outcome == "failure"));

    // The hub's SP metadata for this IdP: public, no token.
    let md = send(app.clone(), get_req("/connectors/bo-tu-phap/saml/metadata")).await;
    assert_eq!(md.status, StatusCode::OK, "{}", md.body);
    assert_eq!(md.header("content-type"), "application/samlmetadata+xml");
    let entity = "http://127.0.0.1:8080/connectors/bo-tu-phap/saml/metadata";
    let parsed: samael::metadata::EntityDescriptor = md.body.parse().unwrap();
    assert_eq!(parsed.entity_id.as_deref(), Some(entity));
    let sp = &parsed.sp_sso_descriptors.as_ref().unwrap()[0];
    assert_eq!(
        sp.assertion_consumer_services[0].location,
        "http://127.0.0.1:8080/connectors/bo-tu-phap/saml/acs"
    );
    assert!(md.body.contains("nameid-format:persistent"), "{}", md.body);
    let hub_cert = store
        .read(|c| fedhub::keys::signer(c, &support::vault(), fedhub::keys::Purpose::Saml))
        .unwrap()
        .cert_der;
    assert!(
        crate::saml::xmlsec1_verifies(
            &md.body,
            &hub_cert,
            "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor"
        ),
        "signed with the hub's SAML key"
    );
    let none = send(app, get_req("/connectors/nope/saml/metadata")).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
}

fn template(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../templates")
        .join(name);
    std::fs::read_to_string(&path).unwrap()
}

/// The SIM-PKI waiting page works without script (the CSP forbids it): it reloads itself, a
/// link does the same for browsers that do not follow refreshes, and the wait is a status
/// that screen readers announce, also in the page title. (`upstream_simpki` renders it.)
#[test]
fn the_sim_pki_waiting_page_needs_no_script_and_announces_the_wait() {
    let page = template("login_simpki.html");
    assert!(!page.contains("<script"), "{page}");
    let waiting = &page[page.find("{%- if waiting %}").unwrap()..page.find("{%- else %}").unwrap()];
    assert!(
        waiting.contains(r#"role="status" aria-live="polite" aria-atomic="true""#),
        "{waiting}"
    );
    assert!(waiting.contains(r#"t("login.sim.check_now")"#), "{waiting}");
    assert!(page.contains(r#"{% if waiting %}{{ t("login.sim.waiting_title") }}"#));
    assert!(page.contains(r#"<meta http-equiv="refresh" content="2">"#));
    let form = &page[page.find("{%- else %}").unwrap()..];
    assert!(form.contains(r#"<label for="msisdn">"#), "{form}");
    assert!(form.contains(r#"aria-describedby="msisdn-hint""#), "{form}");
    assert!(
        !form.contains("placeholder"),
        "a hint, not a placeholder: {form}"
    );
}

/// Data tables scroll sideways inside a labelled region that the keyboard can reach, and the
/// stylesheet gives every focused control a visible ring.
#[test]
fn tables_scroll_in_a_labelled_region_and_focus_is_visible() {
    for name in [
        "admin_audit.html",
        "admin_conversion.html",
        "admin_conversion_report.html",
        "admin_grants.html",
        "admin_member_new.html",
        "admin_members.html",
        "admin_registry.html",
    ] {
        let text = template(name);
        let wraps = text.matches(r#"<div class="table-wrap""#).count();
        assert!(wraps > 0, "{name}");
        let labelled = text
            .matches(r#"<div class="table-wrap" role="region" aria-labelledby=""#)
            .count();
        assert_eq!(
            labelled, wraps,
            "{name}: every table-wrap is a labelled region"
        );
        assert_eq!(
            text.matches(r#"tabindex="0""#).count(),
            wraps,
            "{name}: reachable with the keyboard"
        );
    }
    let css = fedhub::web::pages::STYLESHEET;
    assert!(css.contains(":focus-visible { outline: 3px solid var(--navy); outline-offset: 2px; }"));
    assert!(css.contains(".site-header :focus-visible { outline-color: var(--gold); }"));
}
