//! The OpenID Provider end to end (in-process): discovery, code + PKCE, tokens, userinfo,
//! refresh rotation, and the refusals RFC 9700 asks for. Each test asserts what a client or
//! a person would notice.

use axum::body::Body;
use fedhub_metadata::jose::{self, JwsAlg, JwsSigner};
use http::{header, Request, StatusCode};
use serde_json::{json, Value};

use crate::oidc_support::*;
use crate::sso::{get, send, Reply, CITIZEN};
use crate::support::{self, NOW};

const BYE: &str = "https://gateway.quangninh.example/bye";
const DEV_ACR: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified";

/// A page for the person (400), never a redirect to the client.
fn assert_page(r: &Reply, what: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
    assert!(
        r.headers.get(header::LOCATION).is_none(),
        "{what}: redirected to {}",
        r.location()
    );
    assert!(
        r.header(header::CONTENT_TYPE)
            .is_some_and(|c| c.starts_with("text/html")),
        "{what}: an HTML page"
    );
}

/// An RFC 6749 4.1.2.1 error at the client's redirect URI, with state and iss (RFC 9207).
fn assert_error_redirect(r: &Reply, redirect: &str, error: &str) {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{error}: {}", r.body);
    assert!(
        r.location().starts_with(&format!("{redirect}?")),
        "{error}: {}",
        r.location()
    );
    let q = query_of(r.location());
    assert_eq!(
        q.get("error").map(String::as_str),
        Some(error),
        "{}",
        r.location()
    );
    assert_eq!(
        q.get("state").map(String::as_str),
        Some("st-1"),
        "{}",
        r.location()
    );
    assert_eq!(
        q.get("iss").map(String::as_str),
        Some(ISSUER),
        "{}",
        r.location()
    );
    assert!(!q.contains_key("code"));
}

/// An RFC 6749 5.2 JSON error, never cached.
fn assert_oauth_error(r: &Reply, status: StatusCode, error: &str) {
    assert_eq!(r.status, status, "{error}: {}", r.body);
    assert!(
        r.header(header::CONTENT_TYPE)
            .is_some_and(|c| c.starts_with("application/json")),
        "{error}: JSON"
    );
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"), "{error}");
    assert_eq!(r.json()["error"], error, "{}", r.body);
}

fn assert_login_page(r: &Reply, what: &str) {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{what}: {}", r.body);
    assert!(
        r.location().starts_with("/login/"),
        "{what}: expected the login page, got {}",
        r.location()
    );
}

/// The default authorization parameters for the default client.
fn params(challenge: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", CLIENT_ID.into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "openid profile".into()),
        ("state", "st-1".into()),
        ("nonce", "n-1".into()),
        ("code_challenge", challenge.into()),
        ("code_challenge_method", "S256".into()),
    ]
}

fn with(
    mut p: Vec<(&'static str, String)>,
    key: &'static str,
    value: Option<&str>,
) -> Vec<(&'static str, String)> {
    p.retain(|(k, _)| *k != key);
    if let Some(v) = value {
        p.push((key, v.into()));
    }
    p
}

fn authorize_uri(p: &[(&'static str, String)]) -> String {
    let q: Vec<String> = p.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    format!("/oidc/authorize?{}", q.join("&"))
}

fn json_request(path: &str, body: &Value, bearer: Option<&str>) -> Request<Body> {
    let mut b = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn sso_cleared(r: &Reply) -> bool {
    r.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("fedhub_sso=;"))
}

// ---------------------------------------------------------------------------------------
// The happy path, on both engines.

#[tokio::test]
async fn a_gateway_signs_in_with_code_and_pkce_and_reads_userinfo() {
    sign_in_with_code_and_pkce(oidc_hub(default_registration())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sign_in_with_code_and_pkce() {
    let hub = tokio::task::spawn_blocking(|| {
        oidc_hub_at(support::postgres(), ISSUER, default_registration())
    })
    .await
    .unwrap();
    sign_in_with_code_and_pkce(hub).await;
}

async fn sign_in_with_code_and_pkce(hub: OidcHub) {
    let d = send(&hub.app, get("/.well-known/openid-configuration", &[])).await;
    assert_eq!(d.status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&d.body).unwrap();
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));

    let (code, verifier, _sso) = hub.code().await;
    let tokens = hub.redeem(&code, &verifier).await;
    let id = tokens["id_token"].as_str().unwrap();
    let keys = jwks(&hub.app).await;
    let verified = jose::verify(id, &keys, &[JwsAlg::RS256]).unwrap();
    let c = verified.claims;
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["aud"], CLIENT_ID);
    assert_eq!(c["nonce"], "n-1");
    assert_eq!(c["national_id"], CITIZEN);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(c["at_hash"], jose::half_hash(JwsAlg::RS256, access));
    let u = hub.userinfo(access).await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.body);
    assert_eq!(u.header(header::CACHE_CONTROL), Some("no-store"));
    let info = u.json();
    assert_eq!(info["sub"], c["sub"]);
    assert_eq!(info["name"], "Nguyễn Văn An");
    assert_eq!(info["phone_number"], "+84912345678");
}

// ---------------------------------------------------------------------------------------
// 1. /oidc/authorize: until client and redirect URI are known, a page; after, a redirect.

#[tokio::test]
async fn a_redirect_uri_not_registered_exactly_gets_a_page_and_no_redirect() {
    let hub = oidc_hub(default_registration());
    let (_, challenge) = pkce();
    for bad in [
        "https://gateway.quangninh.example/cb/extra",
        "https://gateway.quangninh.example/cbx",
        "https://gateway.quangninh.example/c",
        "https://gateway.quangninh.example:8443/cb",
        "https://gateway.quangninh.example:443/cb",
        "https://Gateway.quangninh.example/cb",
        "https://GATEWAY.QUANGNINH.EXAMPLE/cb",
        "https://gateway.quangninh.example/CB",
        "https://gateway.quangninh.example/cb?x=1",
        "https://gateway.quangninh.example/cb?",
        "https://gateway.quangninh.example/cb/",
        "https://gateway.quangninh.example/cb#f",
        "https://gateway.quangninh.example/cb/../cb",
        "http://gateway.quangninh.example/cb",
        "https://gateway.quangninh.example.evil.example/cb",
        "https://gateway.quangninh.example@evil.example/cb",
        "https://evil.example/cb",
    ] {
        let r = send(
            &hub.app,
            get(
                &authorize_uri(&with(params(&challenge), "redirect_uri", Some(bad))),
                &[],
            ),
        )
        .await;
        assert_page(&r, bad);
        // Not even a broken request is bounced to it.
        let broken = with(
            with(params(&challenge), "redirect_uri", Some(bad)),
            "code_challenge",
            None,
        );
        let r = send(&hub.app, get(&authorize_uri(&broken), &[])).await;
        assert_page(&r, &format!("{bad} without PKCE"));
    }
    let r = send(
        &hub.app,
        get(
            &authorize_uri(&with(params(&challenge), "redirect_uri", None)),
            &[],
        ),
    )
    .await;
    assert_page(&r, "redirect_uri missing");
    // The exact registered URI is fine.
    let ok = send(&hub.app, get(&authorize_uri(&params(&challenge)), &[])).await;
    assert_login_page(&ok, "exact redirect_uri");
}

#[tokio::test]
async fn an_unknown_or_missing_client_gets_a_page() {
    let hub = oidc_hub(default_registration());
    let (_, challenge) = pkce();
    for (what, p) in [
        (
            "unknown client",
            with(
                params(&challenge),
                "client_id",
                Some("nobody-registered-this"),
            ),
        ),
        (
            "missing client_id",
            with(params(&challenge), "client_id", None),
        ),
        (
            "client_id of another case",
            with(
                params(&challenge),
                "client_id",
                Some(&CLIENT_ID.to_uppercase()),
            ),
        ),
    ] {
        let r = send(&hub.app, get(&authorize_uri(&p), &[])).await;
        assert_page(&r, what);
    }
    let refused = hub
        .audit()
        .into_iter()
        .filter(|e| e.action == "oidc.authorize" && e.outcome == "denied")
        .count();
    assert!(refused >= 3, "refusals are audited: {refused}");
}

#[tokio::test]
async fn a_repeated_parameter_gets_a_page() {
    let hub = oidc_hub(default_registration());
    let (_, challenge) = pkce();
    for (k, v) in [
        ("state", "st-2"),
        ("redirect_uri", "https://evil.example/cb"),
        ("client_id", CLIENT_ID),
        ("code_challenge", "x"),
    ] {
        let uri = format!("{}&{k}={}", authorize_uri(&params(&challenge)), enc(v));
        let r = send(&hub.app, get(&uri, &[])).await;
        assert_page(&r, &format!("{k} twice"));
    }
}

#[tokio::test]
async fn request_errors_go_back_to_the_client_with_state_and_iss() {
    let hub = oidc_hub(default_registration());
    let (_, challenge) = pkce();
    let cases = [
        (
            "no PKCE",
            with(params(&challenge), "code_challenge", None),
            "invalid_request",
        ),
        (
            "plain PKCE",
            with(params(&challenge), "code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (
            "PKCE method missing",
            with(params(&challenge), "code_challenge_method", None),
            "invalid_request",
        ),
        (
            "implicit flow",
            with(params(&challenge), "response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            "hybrid flow",
            with(params(&challenge), "response_type", Some("code id_token")),
            "unsupported_response_type",
        ),
        (
            "no response_type",
            with(params(&challenge), "response_type", None),
            "invalid_request",
        ),
        (
            "no openid",
            with(params(&challenge), "scope", Some("profile email")),
            "invalid_scope",
        ),
        (
            "no scope",
            with(params(&challenge), "scope", None),
            "invalid_scope",
        ),
        (
            "prompt=none without SSO",
            with(params(&challenge), "prompt", Some("none")),
            "login_required",
        ),
    ];
    for (what, p, error) in cases {
        let r = send(&hub.app, get(&authorize_uri(&p), &[])).await;
        assert_error_redirect(&r, REDIRECT, error);
        assert!(
            r.headers.get(header::SET_COOKIE).is_none(),
            "{what}: no login was started"
        );
    }
    // iss on the success redirect too.
    let login = hub.login(&hub.client(), "openid", "").await;
    assert!(!login.code.is_empty());
}

#[tokio::test]
async fn a_registered_query_is_kept_and_state_comes_back_intact() {
    let hub = oidc_hub(default_registration());
    let c = hub.add_client(registration(
        "gw-query",
        "https://query.example/cb?tenant=qn&x=1",
    ));
    let (verifier, challenge) = pkce();
    let st = "a b&c=d/é?#";
    let uri = hub
        .authorize_for(&c, "openid", &challenge, "")
        .replace("state=st-1", &format!("state={}", enc(st)));
    let r = send(&hub.app, get(&uri, &[])).await;
    let back = hub.sign_in(&r, CITIZEN).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert!(
        back.location()
            .starts_with("https://query.example/cb?tenant=qn&x=1&"),
        "{}",
        back.location()
    );
    let q = query_of(back.location());
    assert_eq!(q["tenant"], "qn");
    assert_eq!(q["state"], st);
    assert_eq!(q["iss"], ISSUER);
    let login = Login {
        code: q["code"].clone(),
        verifier,
        sso: None,
    };
    hub.redeem_as(&c, &login).await;
}

#[tokio::test]
async fn authorize_by_post_follows_the_same_rules() {
    let hub = oidc_hub(default_registration());
    let (_, challenge) = pkce();
    let post = |p: &[(&'static str, String)]| {
        let body: Vec<String> = p.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
        form_request("/oidc/authorize", &body.join("&"), None)
    };
    let r = send(&hub.app, post(&params(&challenge))).await;
    assert_login_page(&r, "POST");
    let r = send(
        &hub.app,
        post(&with(
            params(&challenge),
            "redirect_uri",
            Some("https://evil.example/cb"),
        )),
    )
    .await;
    assert_page(&r, "POST with a foreign redirect_uri");
    let r = send(
        &hub.app,
        post(&with(
            params(&challenge),
            "code_challenge_method",
            Some("plain"),
        )),
    )
    .await;
    assert_error_redirect(&r, REDIRECT, "invalid_request");
}

// ---------------------------------------------------------------------------------------
// 2. /oidc/token: codes are single-use and bound; clients authenticate.

#[tokio::test]
async fn a_reused_code_is_refused_and_revokes_what_it_issued() {
    code_reuse(oidc_hub(default_registration())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_code_reuse() {
    let hub = tokio::task::spawn_blocking(|| {
        oidc_hub_at(support::postgres(), ISSUER, default_registration())
    })
    .await
    .unwrap();
    code_reuse(hub).await;
}

async fn code_reuse(hub: OidcHub) {
    let c = hub.client();
    let login = hub.login(&c, "openid profile offline_access", "").await;
    let first = hub.redeem_as(&c, &login).await;
    let access = first["access_token"].as_str().unwrap().to_string();
    let refresh = first["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(hub.userinfo(&access).await.status, StatusCode::OK);

    let again = hub
        .post_as(&c, "/oidc/token", &hub.code_form(&c, &login))
        .await;
    assert_oauth_error(&again, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(again.json().get("access_token").is_none());

    // Everything the first redemption issued is dead now.
    let u = hub.userinfo(&access).await;
    assert_eq!(u.status, StatusCode::UNAUTHORIZED, "{}", u.body);
    assert_eq!(
        hub.introspect_as(&c, &access).await,
        json!({"active": false})
    );
    assert_eq!(
        hub.introspect_as(&c, &refresh).await,
        json!({"active": false})
    );
    let r = hub.refresh_as(&c, &refresh).await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(
        hub.audit().iter().any(|e| e.action == "oidc.token"
            && e.outcome == "denied"
            && e.detail.as_deref().unwrap_or("").contains("reused")),
        "code reuse is audited"
    );
}

#[tokio::test]
async fn the_code_is_bound_to_its_pkce_verifier() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let first = hub.login(&c, "openid", "").await;
    let sso = first.sso.clone().unwrap();

    // Wrong verifier: refused, and the code cannot be tried again.
    let (other_verifier, _) = pkce();
    let wrong = Login {
        verifier: other_verifier,
        ..hub.sso_login(&c, "openid", "", &sso).await
    };
    let r = hub
        .post_as(&c, "/oidc/token", &hub.code_form(&c, &wrong))
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");

    // Missing verifier: invalid_request.
    let login = hub.sso_login(&c, "openid", "", &sso).await;
    let form = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}",
        enc(&login.code),
        enc(REDIRECT)
    );
    let r = hub.post_as(&c, "/oidc/token", &form).await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request");

    // A verifier too short to be one (its challenge would still have to match).
    let login = hub.sso_login(&c, "openid", "", &sso).await;
    let short = Login {
        verifier: "abc".into(),
        ..login
    };
    let r = hub
        .post_as(&c, "/oidc/token", &hub.code_form(&c, &short))
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");

    // The right verifier works.
    let login = hub.sso_login(&c, "openid", "", &sso).await;
    hub.redeem_as(&c, &login).await;
}

#[tokio::test]
async fn a_code_spent_on_a_wrong_verifier_is_dead_for_the_right_one_too() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let login = hub.login(&c, "openid", "").await;
    let wrong = Login {
        code: login.code.clone(),
        verifier: pkce().0,
        sso: None,
    };
    let r = hub
        .post_as(&c, "/oidc/token", &hub.code_form(&c, &wrong))
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    let r = hub
        .post_as(&c, "/oidc/token", &hub.code_form(&c, &login))
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn the_code_is_bound_to_its_redirect_uri_and_client() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let other = hub.add_client(registration("gw-other", "https://other.example/cb"));
    let first = hub.login(&c, "openid", "").await;
    let sso = first.sso.clone().unwrap();

    let login = hub.sso_login(&c, "openid", "", &sso).await;
    let form = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
        enc(&login.code),
        enc("https://gateway.quangninh.example/cb/"),
        enc(&login.verifier)
    );
    let r = hub.post_as(&c, "/oidc/token", &form).await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");

    let form = format!(
        "grant_type=authorization_code&code={}&code_verifier={}",
        enc(&hub.sso_login(&c, "openid", "", &sso).await.code),
        enc(&login.verifier)
    );
    let r = hub.post_as(&c, "/oidc/token", &form).await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request");

    // Another registered client, with its own valid credentials, holding this client's code.
    let login = hub.sso_login(&c, "openid", "", &sso).await;
    let r = hub
        .post_as(&other, "/oidc/token", &hub.code_form(&c, &login))
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(r.json().get("id_token").is_none());
    assert!(hub.audit().iter().any(|e| e.action == "oidc.token"
        && e.target.as_deref() == Some("gw-other")
        && e.outcome == "denied"));

    let unknown = Login {
        code: "not-a-code".into(),
        ..hub.sso_login(&c, "openid", "", &sso).await
    };
    let r = hub
        .post_as(&c, "/oidc/token", &hub.code_form(&c, &unknown))
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let login = hub.login(&c, "openid", "").await;
    let ttl = hub.state.config.tokens.authorization_code_ttl.as_secs() as i64;
    hub.clock.advance(ttl + 1);
    let r = hub
        .post_as(&c, "/oidc/token", &hub.code_form(&c, &login))
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");

    // Just inside the lifetime it works.
    let login = hub
        .sso_login(&c, "openid", "", login.sso.as_deref().unwrap())
        .await;
    hub.clock.advance(ttl - 1);
    hub.redeem_as(&c, &login).await;
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_with_a_challenge_and_audited() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let login = hub.login(&c, "openid", "").await;
    let wrong = TestClient {
        secret: Some("fhs_not-the-secret-at-all".into()),
        ..c.clone()
    };
    let r = hub
        .post_as(&wrong, "/oidc/token", &hub.code_form(&c, &login))
        .await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(
        r.header(header::WWW_AUTHENTICATE)
            .is_some_and(|w| w.starts_with("Basic")),
        "{:?}",
        r.headers
    );
    let entry = hub
        .audit()
        .into_iter()
        .find(|e| e.action == "oidc.client_auth")
        .expect("an audit entry for the failed client authentication");
    assert_eq!(entry.outcome, "denied");
    assert_eq!(entry.target.as_deref(), Some(CLIENT_ID));
    assert!(
        !entry
            .detail
            .unwrap_or_default()
            .contains("fhs_not-the-secret"),
        "the presented secret is not logged"
    );
    // Unknown clients and empty secrets the same.
    let nobody = TestClient {
        id: "nobody".into(),
        ..c.clone()
    };
    let r = hub
        .post_as(&nobody, "/oidc/token", &hub.code_form(&c, &login))
        .await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let empty = TestClient {
        secret: Some(String::new()),
        ..c.clone()
    };
    let r = hub
        .post_as(&empty, "/oidc/token", &hub.code_form(&c, &login))
        .await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let r = send(
        &hub.app,
        form_request("/oidc/token", &hub.code_form(&c, &login), None),
    )
    .await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    // The code was never touched: the real client still redeems it.
    hub.redeem_as(&c, &login).await;
}

#[tokio::test]
async fn client_secret_post_works_but_two_methods_at_once_do_not() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let secret = c.secret.clone().unwrap();
    let login = hub.login(&c, "openid", "").await;
    let both = send(
        &hub.app,
        form_request(
            "/oidc/token",
            &format!(
                "{}&client_id={}&client_secret={}",
                hub.code_form(&c, &login),
                enc(&c.id),
                enc(&secret)
            ),
            Some((&c.id, &secret)),
        ),
    )
    .await;
    assert_oauth_error(&both, StatusCode::UNAUTHORIZED, "invalid_client");
    // Basic for this client, another client_id in the body.
    let other = hub.add_client(registration("gw-other", "https://other.example/cb"));
    let mixed = send(
        &hub.app,
        form_request(
            "/oidc/token",
            &format!("{}&client_id={}", hub.code_form(&c, &login), enc(&other.id)),
            Some((&c.id, &secret)),
        ),
    )
    .await;
    assert_oauth_error(&mixed, StatusCode::UNAUTHORIZED, "invalid_client");

    let post = send(
        &hub.app,
        form_request(
            "/oidc/token",
            &format!(
                "{}&client_id={}&client_secret={}",
                hub.code_form(&c, &login),
                enc(&c.id),
                enc(&secret)
            ),
            None,
        ),
    )
    .await;
    assert_eq!(post.status, StatusCode::OK, "{}", post.body);
    assert_eq!(post.header(header::CACHE_CONTROL), Some("no-store"));
    assert!(post.json()["id_token"].is_string());
}

#[tokio::test]
async fn unsupported_grant_types_are_named_as_such() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    for g in [
        "password",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",
        "implicit",
    ] {
        let r = hub
            .post_as(
                &c,
                "/oidc/token",
                &format!("grant_type={}&username=a&password=b", enc(g)),
            )
            .await;
        assert_oauth_error(&r, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let r = hub.post_as(&c, "/oidc/token", "code=x").await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    let r = hub
        .post_as(
            &c,
            "/oidc/token",
            "grant_type=authorization_code&grant_type=refresh_token",
        )
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn machine_endpoints_answer_a_body_that_is_not_a_form_in_json() {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let basic = STANDARD.encode(format!("{}:{}", c.id, c.secret.clone().unwrap()));
    for path in [
        "/oidc/token",
        "/oidc/introspect",
        "/oidc/revoke",
        "/oidc/par",
    ] {
        for content_type in [Some("application/json"), Some("text/plain"), None] {
            let mut b = Request::post(path).header(header::AUTHORIZATION, format!("Basic {basic}"));
            if let Some(ct) = content_type {
                b = b.header(header::CONTENT_TYPE, ct);
            }
            let r = send(
                &hub.app,
                b.body(Body::from(r#"{"grant_type":"refresh_token","token":"x"}"#))
                    .unwrap(),
            )
            .await;
            assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. private_key_jwt (RFC 7523).

struct KeyClient {
    client: TestClient,
    key: fedhub_metadata::keys::GeneratedKey,
    jwk: Value,
}

fn key_client(hub: &OidcHub) -> KeyClient {
    use fedhub_metadata::keys::KeyAlg;
    let key = fedhub_metadata::keys::generate(KeyAlg::Rsa2048, "gw-pkjwt", NOW - 60, 365).unwrap();
    let jwk = serde_json::to_value(
        fedhub_metadata::jwk::from_certificate(&key.kid, KeyAlg::Rsa2048, &key.cert_der).unwrap(),
    )
    .unwrap();
    let client = hub.add_client(fedhub::rp::oidc::OidcRegistration {
        token_endpoint_auth_method: Some(fedhub::rp::oidc::AuthMethod::PrivateKeyJwt),
        jwks: Some(json!({ "keys": [jwk.clone()] })),
        ..registration("gw-pkjwt", "https://pkjwt.example/cb")
    });
    assert!(
        client.secret.is_none(),
        "a private_key_jwt client has no secret"
    );
    KeyClient { client, key, jwk }
}

impl KeyClient {
    fn claims(&self, jti: &str) -> Value {
        json!({
            "iss": self.client.id,
            "sub": self.client.id,
            "aud": format!("{ISSUER}/oidc/token"),
            "iat": NOW,
            "exp": NOW + 60,
            "jti": jti,
        })
    }
    fn sign(&self, claims: &Value) -> String {
        JwsSigner::new(&self.key.kid, JwsAlg::RS256, &self.key.private_der)
            .unwrap()
            .sign(Some("JWT"), claims)
            .unwrap()
    }
}

/// A compact JWS with this header and claims and an HMAC-SHA256 "signature" keyed by `key`.
fn hmac_jwt(header: &Value, claims: &Value, key: &[u8]) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
        input.as_bytes(),
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn unsigned_jwt(header: &Value, claims: &Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

async fn token_with_assertion(hub: &OidcHub, form: &str, assertion: &str) -> Reply {
    send(
        &hub.app,
        form_request(
            "/oidc/token",
            &format!(
                "{form}&client_assertion_type={}&client_assertion={}",
                enc(fedhub::oidc::client_auth::JWT_BEARER),
                enc(assertion)
            ),
            None,
        ),
    )
    .await
}

#[tokio::test]
async fn a_private_key_jwt_client_authenticates_with_an_assertion_used_once() {
    let hub = oidc_hub(default_registration());
    let kc = key_client(&hub);
    let c = kc.client.clone();
    let login = hub.login(&c, "openid profile", "").await;
    let assertion = kc.sign(&kc.claims("jti-1"));
    let r = token_with_assertion(&hub, &hub.code_form(&c, &login), &assertion).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let tokens = r.json();
    let id = jose::verify(
        tokens["id_token"].as_str().unwrap(),
        &jwks(&hub.app).await,
        &[JwsAlg::RS256],
    )
    .unwrap();
    assert_eq!(id.claims["aud"], "gw-pkjwt");

    // The same assertion again (a new code): replay.
    let login2 = hub
        .sso_login(&c, "openid", "", login.sso.as_deref().unwrap())
        .await;
    let r = token_with_assertion(&hub, &hub.code_form(&c, &login2), &assertion).await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    // Also at introspection: the jti is spent hub-wide.
    let r = send(
        &hub.app,
        form_request(
            "/oidc/introspect",
            &format!(
                "token={}&client_assertion_type={}&client_assertion={}",
                enc(tokens["access_token"].as_str().unwrap()),
                enc(fedhub::oidc::client_auth::JWT_BEARER),
                enc(&assertion)
            ),
            None,
        ),
    )
    .await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    // A fresh assertion: fine.
    let r = token_with_assertion(
        &hub,
        &hub.code_form(&c, &login2),
        &kc.sign(&kc.claims("jti-2")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Without any authentication, or with a made-up secret: no.
    let r = send(
        &hub.app,
        form_request("/oidc/token", &hub.code_form(&c, &login2), None),
    )
    .await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let r = send(
        &hub.app,
        form_request(
            "/oidc/token",
            &hub.code_form(&c, &login2),
            Some((&c.id, "")),
        ),
    )
    .await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
}

/// A client whose clock differs from the hub's: within `connectors.clock_skew` its assertion
/// is accepted (issued "in the future", or just expired by the hub's clock), beyond it refused.
/// The tolerance is configurable.
#[tokio::test]
async fn client_assertions_tolerate_the_configured_clock_skew_and_no_more() {
    for (skew, within, beyond) in [(None, 59, 61), (Some(5), 4, 6)] {
        let hub = oidc_hub_configured(
            support::sqlite(),
            "http://127.0.0.1:8080",
            default_registration(),
            |c| {
                if let Some(s) = skew {
                    c.connectors.clock_skew = std::time::Duration::from_secs(s);
                }
            },
        );
        let kc = key_client(&hub);
        let c = kc.client.clone();
        let login = hub.login(&c, "openid", "").await;
        let sso = login.sso.clone().unwrap();

        // The client's clock is ahead: issued "later" than the hub's now.
        let mut ahead = kc.claims("skew-ahead");
        ahead["iat"] = json!(NOW + within);
        ahead["exp"] = json!(NOW + within + 60);
        let r = token_with_assertion(&hub, &hub.code_form(&c, &login), &kc.sign(&ahead)).await;
        assert_eq!(r.status, StatusCode::OK, "skew {skew:?}, ahead: {}", r.body);

        // The client's clock is behind: expired by the hub's clock, within the tolerance.
        let login2 = hub.sso_login(&c, "openid", "", &sso).await;
        let mut behind = kc.claims("skew-behind");
        behind["iat"] = json!(NOW - within - 30);
        behind["exp"] = json!(NOW - within);
        let r = token_with_assertion(&hub, &hub.code_form(&c, &login2), &kc.sign(&behind)).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "skew {skew:?}, behind: {}",
            r.body
        );

        // Beyond the tolerance: expired.
        let login3 = hub.sso_login(&c, "openid", "", &sso).await;
        let mut late = kc.claims("skew-late");
        late["iat"] = json!(NOW - beyond - 30);
        late["exp"] = json!(NOW - beyond);
        let r = token_with_assertion(&hub, &hub.code_form(&c, &login3), &kc.sign(&late)).await;
        assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    }
}

#[tokio::test]
async fn forged_client_assertions_are_refused() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use fedhub_metadata::keys::KeyAlg;
    let hub = oidc_hub(default_registration());
    let kc = key_client(&hub);
    let c = kc.client.clone();
    let login = hub.login(&c, "openid", "").await;
    let form = hub.code_form(&c, &login);
    let kid = kc.key.kid.clone();

    let stranger =
        fedhub_metadata::keys::generate(KeyAlg::Rsa2048, "stranger", NOW - 60, 365).unwrap();
    let n = URL_SAFE_NO_PAD
        .decode(kc.jwk["n"].as_str().unwrap())
        .unwrap();
    let mut cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            unsigned_jwt(&json!({"alg": "none", "typ": "JWT"}), &kc.claims("f-1")),
        ),
        (
            "alg None with kid",
            unsigned_jwt(&json!({"alg": "None", "kid": kid}), &kc.claims("f-2")),
        ),
        (
            "HS256 keyed with the JWK",
            hmac_jwt(
                &json!({"alg": "HS256", "kid": kid}),
                &kc.claims("f-3"),
                kc.jwk.to_string().as_bytes(),
            ),
        ),
        (
            "HS256 keyed with the modulus",
            hmac_jwt(&json!({"alg": "HS256", "kid": kid}), &kc.claims("f-4"), &n),
        ),
        (
            "HS256 keyed with the certificate",
            hmac_jwt(
                &json!({"alg": "HS256"}),
                &kc.claims("f-5"),
                &kc.key.cert_der,
            ),
        ),
        (
            "another key, the registered kid",
            JwsSigner::new(&kid, JwsAlg::RS256, &stranger.private_der)
                .unwrap()
                .sign(Some("JWT"), &kc.claims("f-6"))
                .unwrap(),
        ),
        (
            "another key, its own kid",
            JwsSigner::new(&stranger.kid, JwsAlg::RS256, &stranger.private_der)
                .unwrap()
                .sign(Some("JWT"), &kc.claims("f-7"))
                .unwrap(),
        ),
        ("expired", {
            let mut cl = kc.claims("f-8");
            cl["iat"] = json!(NOW - 600);
            cl["exp"] = json!(NOW - 120);
            kc.sign(&cl)
        }),
        ("no exp", {
            let mut cl = kc.claims("f-9");
            cl.as_object_mut().unwrap().remove("exp");
            kc.sign(&cl)
        }),
        ("valid for a day", {
            let mut cl = kc.claims("f-10");
            cl["exp"] = json!(NOW + 86_400);
            kc.sign(&cl)
        }),
        ("audience elsewhere", {
            let mut cl = kc.claims("f-11");
            cl["aud"] = json!("https://other-idp.example/token");
            kc.sign(&cl)
        }),
        ("audience look-alike", {
            let mut cl = kc.claims("f-12");
            cl["aud"] = json!(format!("{ISSUER}.evil.example/oidc/token"));
            kc.sign(&cl)
        }),
        ("no audience", {
            let mut cl = kc.claims("f-13");
            cl.as_object_mut().unwrap().remove("aud");
            kc.sign(&cl)
        }),
        ("sub is someone else", {
            let mut cl = kc.claims("f-14");
            cl["sub"] = json!(CLIENT_ID);
            kc.sign(&cl)
        }),
        ("no jti", {
            let mut cl = kc.claims("x");
            cl.as_object_mut().unwrap().remove("jti");
            kc.sign(&cl)
        }),
        ("tampered after signing", {
            let good = kc.sign(&kc.claims("f-15"));
            let parts: Vec<&str> = good.split('.').collect();
            let mut cl = kc.claims("f-15");
            cl["exp"] = json!(NOW + 300);
            format!(
                "{}.{}.{}",
                parts[0],
                URL_SAFE_NO_PAD.encode(cl.to_string()),
                parts[2]
            )
        }),
    ];
    // The same token posing as another client (iss/sub say gw-pkjwt, client_id another).
    cases.push(("client_id differs", kc.sign(&kc.claims("f-16"))));
    for (what, assertion) in cases {
        let body = if what == "client_id differs" {
            format!("{form}&client_id={}", enc(CLIENT_ID))
        } else {
            form.clone()
        };
        let r = token_with_assertion(&hub, &body, &assertion).await;
        assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(
            r.header(header::WWW_AUTHENTICATE).is_some(),
            "{what}: a challenge"
        );
    }
    // A secret client cannot use an assertion either (the hub has no key for it).
    let r = token_with_assertion(
        &hub,
        &form,
        &hmac_jwt(
            &json!({"alg": "HS256"}),
            &json!({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": ISSUER, "exp": NOW + 60, "jti": "s-1"}),
            hub.secret.clone().unwrap().as_bytes(),
        ),
    )
    .await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    // None of that touched the code: a proper assertion still redeems it.
    let r = token_with_assertion(&hub, &form, &kc.sign(&kc.claims("good-1"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

// ---------------------------------------------------------------------------------------
// 4. ID tokens.

#[tokio::test]
async fn the_id_token_verifies_against_the_jwks_and_carries_the_sign_in_facts() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let login = hub.login(&c, "openid profile", "").await;
    let tokens = hub.redeem_as(&c, &login).await;
    let id = tokens["id_token"].as_str().unwrap();
    let keys = jwks(&hub.app).await;
    let v = jose::verify(id, &keys, &[JwsAlg::RS256]).unwrap();
    let kid = v.kid.clone().expect("a kid");
    assert!(keys.iter().any(|k| k["kid"] == kid.as_str()));
    assert_eq!(jwt_header(id)["typ"], "JWT");
    let cl = v.claims;
    assert_eq!(cl["iss"], ISSUER);
    assert_eq!(cl["aud"], CLIENT_ID);
    assert_eq!(cl["nonce"], "n-1");
    assert_eq!(cl["auth_time"], NOW, "signed in now");
    assert_eq!(cl["iat"], NOW);
    assert_eq!(
        cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap(),
        hub.state.config.tokens.id_token_ttl.as_secs() as i64
    );
    assert!(cl["sid"].as_str().is_some_and(|s| !s.is_empty()), "{cl:?}");
    assert!(cl["sub"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(cl["acr"], DEV_ACR);
    assert_eq!(cl["amr"], json!(["dev"]));
    assert_eq!(
        cl["at_hash"],
        jose::half_hash(JwsAlg::RS256, tokens["access_token"].as_str().unwrap())
    );
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid profile");
    // A later answer from the same session keeps auth_time and sid; its nonce is its own.
    hub.clock.advance(30);
    let again = hub
        .sso_login(&c, "openid", "", login.sso.as_deref().unwrap())
        .await;
    let t2 = hub.redeem_as(&c, &again).await;
    let c2 = jose::verify(t2["id_token"].as_str().unwrap(), &keys, &[JwsAlg::RS256])
        .unwrap()
        .claims;
    assert_eq!(c2["auth_time"], NOW);
    assert_eq!(c2["iat"], NOW + 30);
    assert_eq!(c2["sid"], cl["sid"]);
    assert_eq!(c2["sub"], cl["sub"]);
    // Without a nonce in the request, none in the token.
    let (verifier, challenge) = pkce();
    let uri = hub
        .authorize_for(&c, "openid", &challenge, "")
        .replace("&nonce=n-1", "");
    let r = send(
        &hub.app,
        get(&uri, &[("fedhub_sso", login.sso.as_deref().unwrap())]),
    )
    .await;
    let no_nonce = Login {
        code: code_of(&r, &c),
        verifier,
        sso: None,
    };
    let t3 = hub.redeem_as(&c, &no_nonce).await;
    assert!(jwt_claims(t3["id_token"].as_str().unwrap())
        .get("nonce")
        .is_none());
}

#[tokio::test]
async fn each_client_gets_id_tokens_in_its_registered_algorithm() {
    let hub = oidc_hub(default_registration());
    let sso = hub.login(&hub.client(), "openid", "").await.sso.unwrap();
    let keys = jwks(&hub.app).await;
    for (alg, id) in [
        (JwsAlg::ES256, "gw-es256"),
        (JwsAlg::EdDSA, "gw-eddsa"),
        (JwsAlg::PS256, "gw-ps256"),
        (JwsAlg::RS256, "gw-rs256"),
    ] {
        let c = hub.add_client(fedhub::rp::oidc::OidcRegistration {
            signing_alg: Some(alg.as_str().into()),
            ..registration(id, &format!("https://{id}.example/cb"))
        });
        let login = hub.sso_login(&c, "openid", "", &sso).await;
        let tokens = hub.redeem_as(&c, &login).await;
        let token = tokens["id_token"].as_str().unwrap();
        let header = jwt_header(token);
        assert_eq!(header["alg"], alg.as_str(), "{id}");
        let kid = header["kid"].as_str().expect("a kid");
        let jwk = keys
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap_or_else(|| panic!("{id}: kid {kid} is in the JWKS"));
        let kty = match alg {
            JwsAlg::RS256 | JwsAlg::PS256 => "RSA",
            JwsAlg::ES256 => "EC",
            JwsAlg::EdDSA => "OKP",
        };
        assert_eq!(jwk["kty"], kty, "{id}");
        let v = jose::verify(token, &keys, &[alg]).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(v.claims["aud"], id);
        assert_eq!(
            v.claims["at_hash"],
            jose::half_hash(alg, tokens["access_token"].as_str().unwrap()),
            "{id}"
        );
        let others: Vec<JwsAlg> = JwsAlg::ALL.into_iter().filter(|a| *a != alg).collect();
        assert!(jose::verify(token, &keys, &others).is_err(), "{id}");
        // The JWT access token is signed the same way.
        let at = tokens["access_token"].as_str().unwrap();
        assert_eq!(jwt_header(at)["alg"], alg.as_str());
        jose::verify(at, &keys, &[alg]).unwrap();
    }
}

#[tokio::test]
async fn the_jwks_publishes_rsa_without_alg_and_ec_and_okp_with_theirs() {
    let hub = oidc_hub(default_registration());
    let r = send(&hub.app, get("/oidc/jwks", &[])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header(header::CONTENT_TYPE)
        .is_some_and(|c| c.starts_with("application/json")));
    let keys = r.json()["keys"].as_array().unwrap().clone();
    let mut seen = std::collections::BTreeSet::new();
    for k in &keys {
        assert_eq!(k["use"], "sig", "{k}");
        assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()));
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(k.get(private).is_none(), "{k} publishes {private}");
        }
        match k["kty"].as_str().unwrap() {
            "RSA" => {
                assert!(
                    k.get("alg").is_none(),
                    "an RSA key serves RS256 and PS256: {k}"
                );
                assert!(k["n"].is_string() && k["e"].is_string());
            }
            "EC" => {
                assert_eq!(k["alg"], "ES256");
                assert_eq!(k["crv"], "P-256");
            }
            "OKP" => {
                assert_eq!(k["alg"], "EdDSA");
                assert_eq!(k["crv"], "Ed25519");
            }
            other => panic!("unexpected kty {other}"),
        }
        seen.insert(k["kty"].as_str().unwrap().to_string());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["EC", "OKP", "RSA"]
    );
    let kids: std::collections::BTreeSet<_> = keys.iter().map(|k| k["kid"].to_string()).collect();
    assert_eq!(kids.len(), keys.len(), "kids are unique");
}

#[tokio::test]
async fn pairwise_subjects_differ_between_clients_and_public_ones_are_the_account_id() {
    let hub = oidc_hub(default_registration());
    let a = hub.client();
    let b = hub.add_client(registration("gw-b", "https://b.example/cb"));
    let p = hub.add_client(fedhub::rp::oidc::OidcRegistration {
        subject_type: Some(fedhub::rp::oidc::SubjectType::Public),
        ..registration("gw-public", "https://public.example/cb")
    });
    let first = hub.login(&a, "openid", "").await;
    let sso = first.sso.clone().unwrap();
    let sub = |t: &Value| jwt_claims(t["id_token"].as_str().unwrap())["sub"].clone();
    let sub_a = sub(&hub.redeem_as(&a, &first).await);
    let sub_a2 = sub(&hub
        .redeem_as(&a, &hub.sso_login(&a, "openid", "", &sso).await)
        .await);
    let sub_b = sub(&hub
        .redeem_as(&b, &hub.sso_login(&b, "openid", "", &sso).await)
        .await);
    let sub_p = sub(&hub
        .redeem_as(&p, &hub.sso_login(&p, "openid", "", &sso).await)
        .await);
    assert_eq!(sub_a, sub_a2, "stable for one client");
    assert_ne!(sub_a, sub_b, "pairwise: not correlatable across clients");
    assert_ne!(sub_a, json!(hub.account_id));
    assert_ne!(sub_a, json!(CITIZEN));
    assert_eq!(sub_p, json!(hub.account_id), "public: the account id");
}

#[tokio::test]
async fn claims_are_released_by_granted_scope_only() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let first = hub.login(&c, "openid", "").await;
    let sso = first.sso.clone().unwrap();
    let t = hub.redeem_as(&c, &first).await;
    assert_eq!(t["scope"], "openid");
    let info = hub
        .userinfo(t["access_token"].as_str().unwrap())
        .await
        .json();
    assert_eq!(
        info.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["sub"],
        "openid alone releases only sub: {info}"
    );
    let id = jwt_claims(t["id_token"].as_str().unwrap());
    for claim in ["name", "phone_number", "national_id", "email", "tax_code"] {
        assert!(id.get(claim).is_none(), "{claim} in {id}");
    }

    // A client allowed only openid+profile asking for phone and email too.
    let narrow = hub.add_client(fedhub::rp::oidc::OidcRegistration {
        scopes: Some(vec!["openid".into(), "profile".into()]),
        ..registration("gw-narrow", "https://narrow.example/cb")
    });
    let login = hub
        .sso_login(&narrow, "openid profile phone email national_id", "", &sso)
        .await;
    let t = hub.redeem_as(&narrow, &login).await;
    assert_eq!(t["scope"], "openid profile");
    let info = hub
        .userinfo(t["access_token"].as_str().unwrap())
        .await
        .json();
    assert_eq!(info["name"], "Nguyễn Văn An");
    for claim in ["phone_number", "email", "national_id", "tax_code"] {
        assert!(info.get(claim).is_none(), "{claim} in {info}");
    }
    let id = jwt_claims(t["id_token"].as_str().unwrap());
    assert!(id.get("phone_number").is_none());

    // The default client, asking for phone and email: released.
    let login = hub.sso_login(&c, "openid phone email", "", &sso).await;
    let t = hub.redeem_as(&c, &login).await;
    let info = hub
        .userinfo(t["access_token"].as_str().unwrap())
        .await
        .json();
    assert_eq!(info["phone_number"], "+84912345678");
    assert_eq!(info["email"], "an@example.vn");
    assert!(info.get("name").is_none(), "profile was not asked for");
}

#[tokio::test]
async fn the_portal_claim_profile_adds_the_portal_names() {
    let hub = oidc_hub(fedhub::rp::oidc::OidcRegistration {
        claim_profile: Some(fedhub::rp::oidc::ClaimProfile::Portal),
        ..default_registration()
    });
    let c = hub.client();
    let login = hub
        .login(&c, "openid profile phone national_id email", "")
        .await;
    let t = hub.redeem_as(&c, &login).await;
    let info = hub
        .userinfo(t["access_token"].as_str().unwrap())
        .await
        .json();
    assert_eq!(info["SoDinhDanh"], CITIZEN);
    assert_eq!(info["HoVaTen"], "Nguyễn Văn An");
    assert_eq!(info["SoDienThoai"], "+84912345678");
    assert_eq!(info["LoaiTaiKhoan"], "1", "a citizen");
    assert_eq!(info["MaSoThue"], "0100109106");
    assert_eq!(info["ThuDienTu"], "an@example.vn");
    // The standard names stay.
    assert_eq!(info["national_id"], CITIZEN);
    assert_eq!(info["name"], "Nguyễn Văn An");
    let id = jwt_claims(t["id_token"].as_str().unwrap());
    assert_eq!(id["SoDinhDanh"], CITIZEN);
    // Portal names follow scopes too.
    let login = hub
        .sso_login(&c, "openid profile", "", login.sso.as_deref().unwrap())
        .await;
    let t = hub.redeem_as(&c, &login).await;
    let info = hub
        .userinfo(t["access_token"].as_str().unwrap())
        .await
        .json();
    assert_eq!(info["HoVaTen"], "Nguyễn Văn An");
    for claim in ["SoDinhDanh", "SoDienThoai", "MaSoThue"] {
        assert!(info.get(claim).is_none(), "{claim} in {info}");
    }
}

// ---------------------------------------------------------------------------------------
// 5. Refresh tokens and access token formats.

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_ends_the_whole_family() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let login = hub.login(&c, "openid profile offline_access", "").await;
    let t1 = hub.redeem_as(&c, &login).await;
    let (a1, r1) = (
        t1["access_token"].as_str().unwrap().to_string(),
        t1["refresh_token"].as_str().unwrap().to_string(),
    );
    hub.clock.advance(100);
    let r = hub.refresh_as(&c, &r1).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    let t2 = r.json();
    // OIDC Core 12.2: same iss, sub and aud; auth_time of the sign-in; new iat; no nonce.
    let keys = jwks(&hub.app).await;
    let id1 = jose::verify(t1["id_token"].as_str().unwrap(), &keys, &[JwsAlg::RS256])
        .unwrap()
        .claims;
    let id2 = jose::verify(t2["id_token"].as_str().unwrap(), &keys, &[JwsAlg::RS256])
        .unwrap()
        .claims;
    for claim in ["iss", "sub", "aud", "auth_time", "sid"] {
        assert_eq!(id2[claim], id1[claim], "{claim}");
    }
    assert_eq!(id2["auth_time"], NOW);
    assert_eq!(id2["iat"], NOW + 100);
    assert!(id2.get("nonce").is_none(), "{id2:?}");
    let (a2, r2) = (
        t2["access_token"].as_str().unwrap().to_string(),
        t2["refresh_token"].as_str().unwrap().to_string(),
    );
    assert_ne!(r1, r2, "rotated");
    assert_ne!(a1, a2);
    assert_eq!(hub.userinfo(&a2).await.status, StatusCode::OK);
    assert_eq!(
        hub.introspect_as(&c, &r1).await["active"],
        false,
        "the old one is spent"
    );
    assert_eq!(hub.introspect_as(&c, &r2).await["active"], true);

    // The old refresh token again: someone holds a copy. Everything ends.
    let reuse = hub.refresh_as(&c, &r1).await;
    assert_oauth_error(&reuse, StatusCode::BAD_REQUEST, "invalid_grant");
    let r = hub.refresh_as(&c, &r2).await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    for a in [&a1, &a2] {
        assert_eq!(hub.userinfo(a).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(hub.introspect_as(&c, a).await, json!({"active": false}));
    }
    assert!(hub.audit().iter().any(|e| e.action == "oidc.token"
        && e.outcome == "denied"
        && e.detail
            .as_deref()
            .unwrap_or("")
            .contains("refresh token reused")));
    // A new sign-in is unaffected.
    let fresh = hub
        .sso_login(
            &c,
            "openid offline_access",
            "",
            login.sso.as_deref().unwrap(),
        )
        .await;
    let t = hub.redeem_as(&c, &fresh).await;
    assert_eq!(
        hub.refresh_as(&c, t["refresh_token"].as_str().unwrap())
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_refresh_token_works_only_for_its_own_client() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let other = hub.add_client(registration("gw-other", "https://other.example/cb"));
    let login = hub.login(&c, "openid offline_access", "").await;
    let t = hub.redeem_as(&c, &login).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let r = hub.refresh_as(&other, rt).await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(r.json().get("access_token").is_none());
    // An access token is not a refresh token.
    let r = hub
        .refresh_as(&c, t["access_token"].as_str().unwrap())
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    // A refresh cannot widen the scope.
    let r = hub
        .post_as(
            &c,
            "/oidc/token",
            &format!(
                "grant_type=refresh_token&refresh_token={}&scope={}",
                enc(rt),
                enc("openid phone")
            ),
        )
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");
    // An expired refresh token.
    let ttl = hub.state.config.tokens.refresh_token_ttl.as_secs() as i64;
    hub.clock.advance(ttl + 1);
    let r = hub.refresh_as(&c, rt).await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn a_refresh_is_refused_once_the_person_loses_access() {
    let hub = oidc_hub(default_registration());
    let members_only = hub.add_client(fedhub::rp::oidc::OidcRegistration {
        require_activated_membership: Some(true),
        ..registration("gw-members", "https://members.example/cb")
    });
    hub.member(&members_only, "activated");
    let login = hub.login(&members_only, "openid offline_access", "").await;
    let t = hub.redeem_as(&members_only, &login).await;
    let (at, rt) = (
        t["access_token"].as_str().unwrap(),
        t["refresh_token"].as_str().unwrap(),
    );
    hub.store
        .write(|c| {
            use diesel::prelude::*;
            use fedhub::store::schema::memberships as m;
            Ok(diesel::update(m::table)
                .set(m::status.eq("locked"))
                .execute(c)?)
        })
        .unwrap();
    let r = hub.refresh_as(&members_only, rt).await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(
        hub.userinfo(at).await.status,
        StatusCode::UNAUTHORIZED,
        "the grant ended"
    );
    // Unlocking later does not revive the revoked grant.
    hub.store
        .write(|c| {
            use diesel::prelude::*;
            use fedhub::store::schema::memberships as m;
            Ok(diesel::update(m::table)
                .set(m::status.eq("activated"))
                .execute(c)?)
        })
        .unwrap();
    let r = hub.refresh_as(&members_only, rt).await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn no_refresh_token_without_offline_access() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let login = hub.login(&c, "openid profile", "").await;
    let t = hub.redeem_as(&c, &login).await;
    assert!(t.get("refresh_token").is_none(), "{t}");
    // A client not allowed offline_access asking for it gets none either.
    let no_offline = hub.add_client(fedhub::rp::oidc::OidcRegistration {
        scopes: Some(vec!["openid".into(), "profile".into()]),
        ..registration("gw-online", "https://online.example/cb")
    });
    let login = hub
        .sso_login(
            &no_offline,
            "openid offline_access",
            "",
            login.sso.as_deref().unwrap(),
        )
        .await;
    let t = hub.redeem_as(&no_offline, &login).await;
    assert!(t.get("refresh_token").is_none(), "{t}");
    assert_eq!(t["scope"], "openid");
}

#[tokio::test]
async fn opaque_access_tokens_work_with_userinfo_and_introspection() {
    let hub = oidc_hub(fedhub::rp::oidc::OidcRegistration {
        access_token_format: Some(fedhub::rp::oidc::AccessTokenFormat::Opaque),
        ..default_registration()
    });
    let c = hub.client();
    let login = hub.login(&c, "openid profile", "").await;
    let t = hub.redeem_as(&c, &login).await;
    let at = t["access_token"].as_str().unwrap();
    assert_ne!(at.split('.').count(), 3, "not a JWT: {at}");
    let u = hub.userinfo(at).await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.body);
    assert_eq!(u.json()["name"], "Nguyễn Văn An");
    let i = hub.introspect_as(&c, at).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], CLIENT_ID);
    assert_eq!(i["scope"], "openid profile");
    assert_eq!(i["sub"], jwt_claims(t["id_token"].as_str().unwrap())["sub"]);
    // at_hash still binds it.
    assert_eq!(
        jwt_claims(t["id_token"].as_str().unwrap())["at_hash"],
        jose::half_hash(JwsAlg::RS256, at)
    );
    // It expires with its lifetime.
    hub.clock
        .advance(hub.state.config.tokens.access_token_ttl.as_secs() as i64 + 1);
    assert_eq!(hub.userinfo(at).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(hub.introspect_as(&c, at).await, json!({"active": false}));
}

#[tokio::test]
async fn jwt_access_tokens_follow_rfc_9068() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let login = hub.login(&c, "openid profile", "").await;
    let t = hub.redeem_as(&c, &login).await;
    let at = t["access_token"].as_str().unwrap();
    let header = jwt_header(at);
    assert_eq!(header["typ"], "at+jwt");
    let v = jose::verify(at, &jwks(&hub.app).await, &[JwsAlg::RS256]).unwrap();
    let cl = v.claims;
    assert_eq!(cl["iss"], ISSUER);
    assert_eq!(cl["client_id"], CLIENT_ID);
    assert_eq!(cl["aud"], CLIENT_ID);
    assert_eq!(cl["scope"], "openid profile");
    assert!(cl["jti"].is_string());
    assert_eq!(cl["iat"], NOW);
    assert_eq!(
        cl["exp"],
        NOW + hub.state.config.tokens.access_token_ttl.as_secs() as i64
    );
    assert_eq!(
        t["expires_in"],
        hub.state.config.tokens.access_token_ttl.as_secs()
    );
    assert_eq!(
        cl["sub"],
        jwt_claims(t["id_token"].as_str().unwrap())["sub"]
    );
    // An ID token is not an access token.
    let u = hub.userinfo(t["id_token"].as_str().unwrap()).await;
    assert_eq!(u.status, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------
// 6. userinfo, introspection, revocation.

#[tokio::test]
async fn userinfo_takes_the_token_by_header_or_form_and_challenges_without_one() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let login = hub.login(&c, "openid profile", "").await;
    let t = hub.redeem_as(&c, &login).await;
    let at = t["access_token"].as_str().unwrap();
    let got = hub.userinfo(at).await;
    assert_eq!(got.status, StatusCode::OK);
    let posted = send(
        &hub.app,
        form_request("/oidc/userinfo", &format!("access_token={}", enc(at)), None),
    )
    .await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
    assert_eq!(posted.json(), got.json());
    let posted_header = send(
        &hub.app,
        Request::post("/oidc/userinfo")
            .header(header::AUTHORIZATION, format!("Bearer {at}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(posted_header.status, StatusCode::OK);

    for r in [
        send(&hub.app, get("/oidc/userinfo", &[])).await,
        send(&hub.app, form_request("/oidc/userinfo", "", None)).await,
    ] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert!(
            r.header(header::WWW_AUTHENTICATE)
                .is_some_and(|w| w.starts_with("Bearer")),
            "{:?}",
            r.headers
        );
    }
    let bogus = hub.userinfo("fha_made-up").await;
    assert_eq!(bogus.status, StatusCode::UNAUTHORIZED);
    assert!(bogus
        .header(header::WWW_AUTHENTICATE)
        .is_some_and(|w| w.starts_with("Bearer") && w.contains("invalid_token")));
    // A forged JWT with the right shape is not a token either.
    let mut cl = jwt_claims(at);
    cl["scope"] = json!("openid profile phone");
    let forged = format!(
        "{}.{}.{}",
        at.split('.').next().unwrap(),
        {
            use base64::engine::general_purpose::URL_SAFE_NO_PAD;
            use base64::Engine as _;
            URL_SAFE_NO_PAD.encode(cl.to_string())
        },
        at.split('.').nth(2).unwrap()
    );
    assert_eq!(hub.userinfo(&forged).await.status, StatusCode::UNAUTHORIZED);
    // Both header and form: refused.
    let both = send(
        &hub.app,
        Request::post("/oidc/userinfo")
            .header(header::AUTHORIZATION, format!("Bearer {at}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("access_token={}", enc(at))))
            .unwrap(),
    )
    .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn introspection_tells_a_client_only_about_its_own_tokens() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let other = hub.add_client(registration("gw-other", "https://other.example/cb"));
    let login = hub.login(&c, "openid profile offline_access", "").await;
    let t = hub.redeem_as(&c, &login).await;
    let at = t["access_token"].as_str().unwrap();
    let sub = jwt_claims(t["id_token"].as_str().unwrap())["sub"].clone();
    let i = hub.introspect_as(&c, at).await;
    assert_eq!(i["active"], true);
    let mut scope: Vec<&str> = i["scope"].as_str().unwrap().split(' ').collect();
    scope.sort_unstable();
    assert_eq!(scope, ["offline_access", "openid", "profile"]);
    assert_eq!(i["sub"], sub);
    assert_eq!(i["client_id"], CLIENT_ID);
    assert_eq!(
        i["exp"],
        NOW + hub.state.config.tokens.access_token_ttl.as_secs() as i64
    );
    let ri = hub
        .introspect_as(&c, t["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(ri["active"], true);

    assert_eq!(
        hub.introspect_as(&other, at).await,
        json!({"active": false})
    );
    assert_eq!(
        hub.introspect_as(&c, "fha_unknown").await,
        json!({"active": false})
    );
    let r = send(
        &hub.app,
        form_request("/oidc/introspect", &format!("token={}", enc(at)), None),
    )
    .await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_the_grant_and_unknown_tokens_are_fine() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let other = hub.add_client(registration("gw-other", "https://other.example/cb"));
    let login = hub.login(&c, "openid offline_access", "").await;
    let t = hub.redeem_as(&c, &login).await;
    let (at, rt) = (
        t["access_token"].as_str().unwrap().to_string(),
        t["refresh_token"].as_str().unwrap().to_string(),
    );
    // Another client cannot revoke it.
    let r = hub.revoke_as(&other, &rt).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(hub.introspect_as(&c, &rt).await["active"], true);
    assert_eq!(hub.userinfo(&at).await.status, StatusCode::OK);

    let r = hub.revoke_as(&c, &rt).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let refreshed = hub.refresh_as(&c, &rt).await;
    assert_oauth_error(&refreshed, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(
        hub.userinfo(&at).await.status,
        StatusCode::UNAUTHORIZED,
        "the family's access token too"
    );

    let r = hub.revoke_as(&c, "fhr_never-issued").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "RFC 7009: unknown tokens are fine"
    );
    let r = hub.revoke_as(&c, &rt).await;
    assert_eq!(r.status, StatusCode::OK, "revoking twice is fine");

    // Revoking an access token alone leaves the refresh token.
    let login = hub
        .sso_login(
            &c,
            "openid offline_access",
            "",
            login.sso.as_deref().unwrap(),
        )
        .await;
    let t = hub.redeem_as(&c, &login).await;
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(hub.revoke_as(&c, at).await.status, StatusCode::OK);
    assert_eq!(hub.userinfo(at).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        hub.refresh_as(&c, t["refresh_token"].as_str().unwrap())
            .await
            .status,
        StatusCode::OK
    );
    let r = send(
        &hub.app,
        form_request("/oidc/revoke", &format!("token={}", enc(at)), None),
    )
    .await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
}

// ---------------------------------------------------------------------------------------
// 7. Pushed authorization requests (RFC 9126).

fn par_body(challenge: &str, redirect: &str) -> String {
    format!(
        "response_type=code&redirect_uri={}&scope={}&state=st-1&nonce=n-par&code_challenge={challenge}&code_challenge_method=S256",
        enc(redirect),
        enc("openid profile"),
    )
}

#[tokio::test]
async fn a_pushed_request_is_used_once_by_its_own_client() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let other = hub.add_client(registration("gw-other", "https://other.example/cb"));
    let (verifier, challenge) = pkce();
    let r = hub
        .post_as(&c, "/oidc/par", &par_body(&challenge, REDIRECT))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    let pushed = r.json();
    let request_uri = pushed["request_uri"].as_str().unwrap().to_string();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    assert!(pushed["expires_in"].as_i64().unwrap() > 0);
    let uri = |client: &str, request_uri: &str| {
        format!(
            "/oidc/authorize?client_id={}&request_uri={}",
            enc(client),
            enc(request_uri)
        )
    };
    // Another client presenting it: refused, and not spent.
    let r = send(&hub.app, get(&uri(&other.id, &request_uri), &[])).await;
    assert_page(&r, "request_uri of another client");

    let r = send(&hub.app, get(&uri(&c.id, &request_uri), &[])).await;
    let back = hub.sign_in(&r, CITIZEN).await;
    let login = Login {
        code: code_of(&back, &c),
        verifier,
        sso: None,
    };
    let t = hub.redeem_as(&c, &login).await;
    assert_eq!(
        jwt_claims(t["id_token"].as_str().unwrap())["nonce"],
        "n-par"
    );
    assert_eq!(t["scope"], "openid profile");

    let again = send(&hub.app, get(&uri(&c.id, &request_uri), &[])).await;
    assert_page(&again, "request_uri used twice");
    let made_up = send(
        &hub.app,
        get(
            &uri(&c.id, "urn:ietf:params:oauth:request_uri:made-up"),
            &[],
        ),
    )
    .await;
    assert_page(&made_up, "request_uri never issued");
    // Pushed parameters cannot be overridden by query parameters (RFC 9126 4).
    let (_, challenge) = pkce();
    let r = hub
        .post_as(&c, "/oidc/par", &par_body(&challenge, REDIRECT))
        .await;
    let request_uri = r.json()["request_uri"].as_str().unwrap().to_string();
    let r = send(
        &hub.app,
        get(
            &format!(
                "{}&redirect_uri={}",
                uri(&c.id, &request_uri),
                enc("https://evil.example/cb")
            ),
            &[("fedhub_sso", back.cookie("fedhub_sso").unwrap().as_str())],
        ),
    )
    .await;
    assert!(
        !r.location().starts_with("https://evil.example"),
        "{}",
        r.location()
    );
    // It expires.
    let (_, challenge) = pkce();
    let r = hub
        .post_as(&c, "/oidc/par", &par_body(&challenge, REDIRECT))
        .await;
    let pushed = r.json();
    hub.clock
        .advance(pushed["expires_in"].as_i64().unwrap() + 1);
    let r = send(
        &hub.app,
        get(&uri(&c.id, pushed["request_uri"].as_str().unwrap()), &[]),
    )
    .await;
    assert_page(&r, "expired request_uri");
}

#[tokio::test]
async fn par_refuses_bad_requests_to_the_client_itself() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let (_, challenge) = pkce();
    let r = hub
        .post_as(
            &c,
            "/oidc/par",
            &par_body(&challenge, "https://evil.example/cb"),
        )
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    let r = hub
        .post_as(
            &c,
            "/oidc/par",
            &par_body(&challenge, REDIRECT).replace(
                "&code_challenge_method=S256",
                "&code_challenge_method=plain",
            ),
        )
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    let r = hub
        .post_as(
            &c,
            "/oidc/par",
            &par_body(&challenge, REDIRECT).replace("response_type=code", "response_type=token"),
        )
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "unsupported_response_type");
    let r = send(
        &hub.app,
        form_request("/oidc/par", &par_body(&challenge, REDIRECT), None),
    )
    .await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let r = hub
        .post_as(
            &c,
            "/oidc/par",
            &format!("{}&request_uri=urn%3Ax", par_body(&challenge, REDIRECT)),
        )
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
}

// ---------------------------------------------------------------------------------------
// 8. prompt and max_age with single sign-on.

#[tokio::test]
async fn with_sso_the_code_comes_without_a_login_page_unless_prompt_login() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let sso = hub.login(&c, "openid", "").await.sso.unwrap();
    let login = hub.sso_login(&c, "openid", "", &sso).await;
    hub.redeem_as(&c, &login).await;
    let login = hub.sso_login(&c, "openid", "&prompt=none", &sso).await;
    hub.redeem_as(&c, &login).await;

    let (_, challenge) = pkce();
    let r = send(
        &hub.app,
        get(
            &hub.authorize_for(&c, "openid", &challenge, "&prompt=login"),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_login_page(&r, "prompt=login");
    // prompt=none cannot be combined with login.
    let r = send(
        &hub.app,
        get(
            &hub.authorize_for(&c, "openid", &challenge, "&prompt=none%20login"),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_error_redirect(&r, REDIRECT, "invalid_request");
    // A made-up session cookie is no session.
    let r = send(
        &hub.app,
        get(
            &hub.authorize_for(&c, "openid", &challenge, ""),
            &[("fedhub_sso", "made-up")],
        ),
    )
    .await;
    assert_login_page(&r, "unknown SSO cookie");
}

#[tokio::test]
async fn a_sign_in_older_than_max_age_asks_again() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let sso = hub.login(&c, "openid", "").await.sso.unwrap();
    hub.clock.advance(120);
    let (_, challenge) = pkce();
    let r = send(
        &hub.app,
        get(
            &hub.authorize_for(&c, "openid", &challenge, "&max_age=60"),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_login_page(&r, "max_age=60 after 120 s");
    let r = send(
        &hub.app,
        get(
            &hub.authorize_for(&c, "openid", &challenge, "&max_age=0"),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_login_page(&r, "max_age=0");
    let r = send(
        &hub.app,
        get(
            &hub.authorize_for(&c, "openid", &challenge, "&max_age=60&prompt=none"),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_error_redirect(&r, REDIRECT, "login_required");
    // Recent enough: answered at once, auth_time says when the person signed in.
    let login = hub.sso_login(&c, "openid", "&max_age=600", &sso).await;
    let t = hub.redeem_as(&c, &login).await;
    assert_eq!(
        jwt_claims(t["id_token"].as_str().unwrap())["auth_time"],
        NOW
    );
    let r = send(
        &hub.app,
        get(
            &hub.authorize_for(&c, "openid", &challenge, "&max_age=-1"),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_error_redirect(&r, REDIRECT, "invalid_request");
}

// ---------------------------------------------------------------------------------------
// 9. Dynamic client registration (RFC 7591).

fn issue_registration_token(hub: &OidcHub) -> String {
    hub.store
        .write(|c| fedhub::oidc::register::issue_token(c, "000.00.00.H49", "admin:test", 3600, NOW))
        .unwrap()
}

#[tokio::test]
async fn dynamic_registration_needs_a_single_use_initial_access_token() {
    let hub = oidc_hub(default_registration());
    let metadata = json!({
        "redirect_uris": ["https://dangky.example/cb"],
        "client_name": "Cổng đăng ký động",
        "scope": "openid profile offline_access",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    });
    let r = send(&hub.app, json_request("/oidc/register", &metadata, None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(r
        .header(header::WWW_AUTHENTICATE)
        .is_some_and(|w| w.starts_with("Bearer")));
    let r = send(
        &hub.app,
        json_request("/oidc/register", &metadata, Some("fhi_made-up")),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    // Without a good token, the body is not even looked at.
    let r = send(
        &hub.app,
        Request::post("/oidc/register")
            .header(header::AUTHORIZATION, "Bearer fhi_made-up")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{not json"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let clients_before = hub.store.read(fedhub::rp::list).unwrap().len();

    let token = issue_registration_token(&hub);
    let r = send(
        &hub.app,
        json_request("/oidc/register", &metadata, Some(&token)),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    let reg = r.json();
    let client_id = reg["client_id"].as_str().unwrap().to_string();
    let secret = reg["client_secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("fhs_"));
    assert_eq!(reg["redirect_uris"], json!(["https://dangky.example/cb"]));
    assert_eq!(reg["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(
        hub.store.read(fedhub::rp::list).unwrap().len(),
        clients_before + 1
    );

    // The token registers one client only.
    let r = send(
        &hub.app,
        json_request("/oidc/register", &metadata, Some(&token)),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(
        hub.store.read(fedhub::rp::list).unwrap().len(),
        clients_before + 1
    );

    // The new client can sign people in (membership is required by default).
    let rp_id = hub
        .store
        .read(|c| fedhub::rp::by_entity_id(c, &client_id))
        .unwrap()
        .unwrap()
        .id;
    let client = TestClient {
        id: client_id,
        secret: Some(secret),
        redirect: "https://dangky.example/cb".into(),
        rp_id,
    };
    hub.member(&client, "activated");
    let login = hub.login(&client, "openid profile", "").await;
    let t = hub.redeem_as(&client, &login).await;
    let info = hub
        .userinfo(t["access_token"].as_str().unwrap())
        .await
        .json();
    assert_eq!(info["name"], "Nguyễn Văn An");
    assert!(hub
        .audit()
        .iter()
        .any(|e| e.action == "rp.register_oidc" && e.outcome == "success"));
}

#[tokio::test]
async fn refused_registrations_write_nothing_and_keep_the_token_usable() {
    let hub = oidc_hub(default_registration());
    let token = issue_registration_token(&hub);
    let clients_before = hub.store.read(fedhub::rp::list).unwrap().len();
    for (what, expected, metadata) in [
        (
            "http redirect",
            "invalid_redirect_uri",
            json!({"redirect_uris": ["http://evil.example/cb"]}),
        ),
        (
            "wildcard redirect",
            "invalid_redirect_uri",
            json!({"redirect_uris": ["https://*.evil.example/cb"]}),
        ),
        (
            "no redirect",
            "invalid_redirect_uri",
            json!({"client_name": "x"}),
        ),
        (
            "implicit grant",
            "invalid_client_metadata",
            json!({"redirect_uris": ["https://ok.example/cb"], "grant_types": ["implicit"]}),
        ),
        (
            "unknown scope",
            "invalid_client_metadata",
            json!({"redirect_uris": ["https://ok.example/cb"], "scope": "openid admin"}),
        ),
        (
            "alg none",
            "invalid_client_metadata",
            json!({"redirect_uris": ["https://ok.example/cb"], "id_token_signed_response_alg": "none"}),
        ),
        (
            "private_key_jwt without keys",
            "invalid_client_metadata",
            json!({"redirect_uris": ["https://ok.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
        ),
        (
            "a symmetric key",
            "invalid_client_metadata",
            json!({"redirect_uris": ["https://ok.example/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
        ),
    ] {
        let r = send(
            &hub.app,
            json_request("/oidc/register", &metadata, Some(&token)),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert_eq!(error, expected, "{what}: {}", r.body);
        assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    }
    assert_eq!(
        hub.store.read(fedhub::rp::list).unwrap().len(),
        clients_before,
        "nothing half-written"
    );
    let r = send(
        &hub.app,
        json_request(
            "/oidc/register",
            &json!({"redirect_uris": ["https://ok.example/cb"]}),
            Some(&token),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "the token is still good: {}",
        r.body
    );
}

// ---------------------------------------------------------------------------------------
// 10. Logout.

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_and_returns_to_the_client() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let login = hub.login(&c, "openid profile", "").await;
    let sso = login.sso.clone().unwrap();
    let t = hub.redeem_as(&c, &login).await;
    let id = t["id_token"].as_str().unwrap();
    let at = t["access_token"].as_str().unwrap();
    let r = send(
        &hub.app,
        get(
            &format!(
                "/oidc/logout?id_token_hint={}&post_logout_redirect_uri={}&state=s-9",
                enc(id),
                enc(BYE)
            ),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert!(r.status.is_redirection(), "{} {}", r.status, r.body);
    assert_eq!(r.location(), format!("{BYE}?state=s-9"));
    assert!(sso_cleared(&r), "the SSO cookie is cleared");
    assert_eq!(
        hub.userinfo(at).await.status,
        StatusCode::UNAUTHORIZED,
        "the session's access tokens end"
    );
    let (_, challenge) = pkce();
    let next = send(
        &hub.app,
        get(
            &hub.authorize_for(&c, "openid", &challenge, ""),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_login_page(&next, "after logout");
    assert!(hub.audit().iter().any(|e| e.action == "logout"));
}

#[tokio::test]
async fn a_hint_alone_ends_the_session_it_names_without_the_cookie() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let login = hub.login(&c, "openid", "").await;
    let sso = login.sso.clone().unwrap();
    let t = hub.redeem_as(&c, &login).await;
    let r = send(
        &hub.app,
        get(
            &format!(
                "/oidc/logout?id_token_hint={}",
                enc(t["id_token"].as_str().unwrap())
            ),
            &[],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "the signed-out page: {}", r.body);
    assert_eq!(
        hub.userinfo(t["access_token"].as_str().unwrap())
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let (_, challenge) = pkce();
    let next = send(
        &hub.app,
        get(
            &hub.authorize_for(&c, "openid", &challenge, ""),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_login_page(&next, "the named session is over");
}

#[tokio::test]
async fn a_hint_for_another_session_does_not_end_the_browsers_own() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let first = hub.login(&c, "openid", "").await;
    let tokens = hub.redeem_as(&c, &first).await;
    let second = hub.login(&c, "openid", "").await;
    let browser_b = second.sso.clone().unwrap();
    let r = send(
        &hub.app,
        get(
            &format!(
                "/oidc/logout?id_token_hint={}",
                enc(tokens["id_token"].as_str().unwrap())
            ),
            &[("fedhub_sso", &browser_b)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        hub.userinfo(tokens["access_token"].as_str().unwrap())
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "the session the hint names is over"
    );
    let (_, challenge) = pkce();
    let again = send(
        &hub.app,
        get(
            &hub.authorize_for(&c, "openid", &challenge, ""),
            &[("fedhub_sso", &browser_b)],
        ),
    )
    .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert!(
        again.location().starts_with(REDIRECT),
        "the other session still answers without a login: {}",
        again.location()
    );
}

#[tokio::test]
async fn logout_refuses_unregistered_return_addresses_and_foreign_hints() {
    use fedhub_metadata::keys::KeyAlg;
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let other = hub.add_client(registration("gw-other", "https://other.example/cb"));
    let login = hub.login(&c, "openid", "").await;
    let sso = login.sso.clone().unwrap();
    let t = hub.redeem_as(&c, &login).await;
    let id = t["id_token"].as_str().unwrap().to_string();
    let at = t["access_token"].as_str().unwrap().to_string();
    let other_id = hub
        .redeem_as(&other, &hub.sso_login(&other, "openid", "", &sso).await)
        .await["id_token"]
        .as_str()
        .unwrap()
        .to_string();

    // A forged hint: the hub's kid, someone else's key.
    let stranger =
        fedhub_metadata::keys::generate(KeyAlg::Rsa2048, "stranger", NOW - 60, 365).unwrap();
    let forged = JwsSigner::new(
        jwt_header(&id)["kid"].as_str().unwrap(),
        JwsAlg::RS256,
        &stranger.private_der,
    )
    .unwrap()
    .sign(Some("JWT"), &jwt_claims(&id))
    .unwrap();
    let cases = [
        (
            "unregistered post_logout_redirect_uri",
            format!(
                "id_token_hint={}&post_logout_redirect_uri={}&state=s",
                enc(&id),
                enc("https://evil.example/bye")
            ),
        ),
        (
            "a prefix of the registered one",
            format!(
                "id_token_hint={}&post_logout_redirect_uri={}",
                enc(&id),
                enc(&format!("{BYE}/x"))
            ),
        ),
        (
            "registered for another client",
            format!(
                "id_token_hint={}&post_logout_redirect_uri={}",
                enc(&other_id),
                enc(BYE)
            ),
        ),
        (
            "post_logout_redirect_uri without a client",
            format!("post_logout_redirect_uri={}", enc(BYE)),
        ),
        (
            "hint signed by another key",
            format!(
                "id_token_hint={}&post_logout_redirect_uri={}",
                enc(&forged),
                enc(BYE)
            ),
        ),
        (
            "hint and client_id disagree",
            format!("id_token_hint={}&client_id=gw-other", enc(&id)),
        ),
        ("not a token", "id_token_hint=abc.def.ghi".to_string()),
    ];
    for (what, q) in cases {
        let r = send(
            &hub.app,
            get(&format!("/oidc/logout?{q}"), &[("fedhub_sso", &sso)]),
        )
        .await;
        assert_page(&r, what);
        assert!(!sso_cleared(&r), "{what}: the session stays");
    }
    // Nothing ended.
    assert_eq!(hub.userinfo(&at).await.status, StatusCode::OK);
    hub.sso_login(&c, "openid", "", &sso).await;
}

#[tokio::test]
async fn logout_without_a_hint_asks_first_and_ends_nothing() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let login = hub.login(&c, "openid", "").await;
    let sso = login.sso.clone().unwrap();
    let t = hub.redeem_as(&c, &login).await;
    let at = t["access_token"].as_str().unwrap();
    let r = send(
        &hub.app,
        get(
            &format!(
                "/oidc/logout?client_id={}&post_logout_redirect_uri={}&state=s-1",
                enc(CLIENT_ID),
                enc(BYE)
            ),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r
        .header(header::CONTENT_TYPE)
        .is_some_and(|c| c.starts_with("text/html")));
    assert!(
        r.body.contains("<form") && r.body.contains(r#"method="post""#),
        "{}",
        r.body
    );
    assert!(r.headers.get(header::LOCATION).is_none());
    assert!(!sso_cleared(&r));
    assert_eq!(
        hub.userinfo(at).await.status,
        StatusCode::OK,
        "nothing ended"
    );
    hub.sso_login(&c, "openid", "", &sso).await;

    // Confirmed (the form's POST): the session ends and the client gets the browser back.
    let r = send(
        &hub.app,
        Request::post("/oidc/logout")
            .header(header::COOKIE, format!("fedhub_sso={sso}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "client_id={}&post_logout_redirect_uri={}&state=s-1&confirm=1",
                enc(CLIENT_ID),
                enc(BYE)
            )))
            .unwrap(),
    )
    .await;
    assert!(r.status.is_redirection(), "{} {}", r.status, r.body);
    assert_eq!(r.location(), format!("{BYE}?state=s-1"));
    assert!(sso_cleared(&r));
    assert_eq!(hub.userinfo(at).await.status, StatusCode::UNAUTHORIZED);
}

/// The confirmation page must send the person back to /oidc/logout with the client's
/// parameters and confirm=1, or the client never gets its post_logout_redirect_uri.
#[tokio::test]
async fn the_logout_confirmation_form_posts_back_to_the_oidc_endpoint() {
    let hub = oidc_hub(default_registration());
    let r = send(
        &hub.app,
        get(
            &format!(
                "/oidc/logout?client_id={}&post_logout_redirect_uri={}&state=s-1",
                enc(CLIENT_ID),
                enc(BYE)
            ),
            &[],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.body.replace("&#x2f;", "/");
    assert!(body.contains(r#"action="/oidc/logout""#), "{body}");
    assert!(
        body.contains(r#"name="post_logout_redirect_uri""#),
        "{body}"
    );
    assert!(body.contains(r#"name="confirm""#), "{body}");
}

/// A loopback server that hands every POSTed body to the test.
async fn backchannel_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app = axum::Router::new().route(
        "/bc",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://127.0.0.1:{port}/bc"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_logout_tells_the_clients_of_the_session() {
    let (uri, mut rx) = backchannel_receiver().await;
    let hub = oidc_hub(default_registration());
    let bc = hub.add_client(fedhub::rp::oidc::OidcRegistration {
        backchannel_logout_uri: Some(uri),
        ..registration("gw-bc", "https://bc.example/cb")
    });
    let login = hub.login(&bc, "openid", "").await;
    let sso = login.sso.clone().unwrap();
    let t = hub.redeem_as(&bc, &login).await;
    let id = jwt_claims(t["id_token"].as_str().unwrap());
    // The default client (no back-channel URI) logs the person out.
    let c = hub.client();
    let t2 = hub
        .redeem_as(&c, &hub.sso_login(&c, "openid", "", &sso).await)
        .await;
    let r = send(
        &hub.app,
        get(
            &format!(
                "/oidc/logout?id_token_hint={}&post_logout_redirect_uri={}",
                enc(t2["id_token"].as_str().unwrap()),
                enc(BYE)
            ),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert!(r.status.is_redirection(), "{} {}", r.status, r.body);
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("a logout token arrives")
        .unwrap();
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
    let token = form.get("logout_token").expect("logout_token");
    assert_eq!(jwt_header(token)["typ"], "logout+jwt");
    let v = jose::verify(token, &jwks(&hub.app).await, &[JwsAlg::RS256]).unwrap();
    let cl = v.claims;
    assert_eq!(cl["iss"], ISSUER);
    assert_eq!(cl["aud"], "gw-bc");
    assert_eq!(cl["sub"], id["sub"]);
    assert_eq!(cl["sid"], id["sid"], "the sid the client was given");
    assert!(
        cl["events"][fedhub::oidc::logout::BACKCHANNEL_EVENT].is_object(),
        "{cl:?}"
    );
    assert!(cl.get("nonce").is_none(), "a logout token has no nonce");
    assert!(cl["jti"].is_string() && cl["iat"].is_i64() && cl["exp"].is_i64());
    // Only the client with a back-channel URI is told, once.
    assert!(rx.try_recv().is_err());
}

// ---------------------------------------------------------------------------------------
// 11. Refusals after sign-in.

#[tokio::test]
async fn an_upstream_refusal_sends_access_denied_to_the_client() {
    let hub = oidc_hub(default_registration());
    let c = hub.client();
    let (_, challenge) = pkce();
    let r = send(
        &hub.app,
        get(&hub.authorize_for(&c, "openid", &challenge, ""), &[]),
    )
    .await;
    let back = hub.sign_in(&r, "999999999999").await;
    assert_error_redirect(&back, REDIRECT, "access_denied");
    assert!(back.cookie("fedhub_sso").is_none(), "no session");
}

#[tokio::test]
async fn a_person_refused_by_membership_rules_sees_a_page_or_the_client_hears_access_denied() {
    let hub = oidc_hub(default_registration());
    let members_only = hub.add_client(fedhub::rp::oidc::OidcRegistration {
        require_activated_membership: Some(true),
        ..registration("gw-members", "https://members.example/cb")
    });
    let (_, challenge) = pkce();
    let r = send(
        &hub.app,
        get(
            &hub.authorize_for(&members_only, "openid", &challenge, ""),
            &[],
        ),
    )
    .await;
    let back = hub.sign_in(&r, CITIZEN).await;
    assert_eq!(back.status, StatusCode::FORBIDDEN, "{}", back.body);
    assert!(back.headers.get(header::LOCATION).is_none());
    assert!(back
        .header(header::CONTENT_TYPE)
        .is_some_and(|c| c.starts_with("text/html")));

    // Signed in elsewhere; this client is still refused.
    let sso = hub.login(&hub.client(), "openid", "").await.sso.unwrap();
    let r = send(
        &hub.app,
        get(
            &hub.authorize_for(&members_only, "openid", &challenge, ""),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.headers.get(header::LOCATION).is_none());
    let r = send(
        &hub.app,
        get(
            &hub.authorize_for(&members_only, "openid", &challenge, "&prompt=none"),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_error_redirect(&r, &members_only.redirect, "access_denied");
    assert!(hub.audit().iter().any(|e| e.action == "oidc.authorize"
        && e.outcome == "denied"
        && e.detail.as_deref() == Some("not_member")));

    // A locked membership is no better; an activated one lets the person in.
    hub.member(&members_only, "locked");
    let r = send(
        &hub.app,
        get(
            &hub.authorize_for(&members_only, "openid", &challenge, ""),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    hub.store
        .write(|c| {
            use diesel::prelude::*;
            use fedhub::store::schema::memberships as m;
            Ok(diesel::update(m::table)
                .set(m::status.eq("activated"))
                .execute(c)?)
        })
        .unwrap();
    let login = hub.sso_login(&members_only, "openid", "", &sso).await;
    let t = hub.redeem_as(&members_only, &login).await;
    assert_eq!(
        jwt_claims(t["id_token"].as_str().unwrap())["sub"],
        format!("member-of-{}", members_only.rp_id),
        "the membership's subject"
    );
}
