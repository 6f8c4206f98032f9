//! The OIDC connector (the hub as a relying party of the national identity provider), end to
//! end through the hub with a scripted provider on a loopback port. The scripted provider
//! lets each test forge what a real one never would: tokens for another audience, expired,
//! replayed, signed with another key or with alg none. (A real third-party provider, node
//! oidc-provider, is in upstream_interop.rs.)

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fedhub_metadata::jose::{JwsAlg, JwsSigner};
use fedhub_metadata::keys::{generate, KeyAlg};
use http::{header, Request, StatusCode};
use serde_json::{json, Value};

use crate::oidc_support::*;
use crate::sso::{get as get_req, send, Reply, CITIZEN};
use crate::support::NOW;

/// What the scripted provider puts in its ID token.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Good,
    OtherAudience,
    Expired,
    /// Issued this many seconds after the hub's now (the provider's clock is ahead).
    Ahead(i64),
    /// Expired this many seconds before the hub's now (the provider's clock is behind).
    ExpiredAgo(i64),
    WrongNonce,
    OtherIssuer,
    OtherKey,
    AlgNone,
    UnknownPerson,
    UserinfoForSomeoneElse,
}

struct Op {
    issuer: String,
    mode: Mode,
    nonce: String,
    signer: JwsSigner,
    other: JwsSigner,
    jwk: Value,
    token_calls: usize,
}

type Shared = Arc<Mutex<Op>>;

async fn discovery(State(op): State<Shared>) -> Json<Value> {
    let iss = op.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/auth"),
        "token_endpoint": format!("{iss}/token"),
        "userinfo_endpoint": format!("{iss}/me"),
        "jwks_uri": format!("{iss}/jwks"),
        "end_session_endpoint": format!("{iss}/logout"),
        "authorization_response_iss_parameter_supported": true,
    }))
}

async fn jwks(State(op): State<Shared>) -> Json<Value> {
    Json(json!({ "keys": [op.lock().unwrap().jwk.clone()] }))
}

async fn token(State(op): State<Shared>, headers: http::HeaderMap, body: String) -> Json<Value> {
    let mut op = op.lock().unwrap();
    op.token_calls += 1;
    assert!(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Basic ")),
        "the hub authenticates as a client"
    );
    assert!(body.contains("code_verifier="), "PKCE: {body}");
    let now = NOW;
    let mut claims = json!({
        "iss": op.issuer,
        "sub": "nidp-citizen-1",
        "aud": "fedhub-hub",
        "iat": now,
        "exp": now + 300,
        "nonce": op.nonce,
        "acr": "urn:vn:national-idp:level2",
        "amr": ["pwd", "otp"],
        "auth_time": now - 5,
    });
    match op.mode {
        Mode::OtherAudience => claims["aud"] = json!("someone-else"),
        Mode::Expired => claims["exp"] = json!(now - 3600),
        Mode::Ahead(s) => {
            claims["iat"] = json!(now + s);
            claims["exp"] = json!(now + s + 300);
        }
        Mode::ExpiredAgo(s) => {
            claims["iat"] = json!(now - s - 300);
            claims["exp"] = json!(now - s);
        }
        Mode::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
        Mode::OtherIssuer => claims["iss"] = json!("https://evil.example"),
        _ => {}
    }
    let id_token = match op.mode {
        Mode::OtherKey => op.other.sign(Some("JWT"), &claims).unwrap(),
        Mode::AlgNone => format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        ),
        _ => op.signer.sign(Some("JWT"), &claims).unwrap(),
    };
    Json(json!({"access_token": "upstream-at", "token_type": "Bearer", "id_token": id_token}))
}

async fn userinfo(State(op): State<Shared>) -> Json<Value> {
    let op = op.lock().unwrap();
    let (sub, nid) = match op.mode {
        Mode::UnknownPerson => ("nidp-citizen-1", "022195000999"),
        Mode::UserinfoForSomeoneElse => ("nidp-other", CITIZEN),
        _ => ("nidp-citizen-1", CITIZEN),
    };
    Json(json!({
        "sub": sub,
        "SoDinhDanh": nid,
        "HoVaTen": "Nguyễn Văn An",
        "SoDienThoai": "0912345678",
        "LoaiTaiKhoan": "1",
    }))
}

/// Starts the scripted provider; returns its shared state.
async fn start_op() -> Shared {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let key = generate(KeyAlg::Rsa2048, "op", NOW, 30).unwrap();
    let other = generate(KeyAlg::Rsa2048, "attacker", NOW, 30).unwrap();
    let jwk = serde_json::to_value(
        fedhub_metadata::jwk::from_certificate(&key.kid, KeyAlg::Rsa2048, &key.cert_der).unwrap(),
    )
    .unwrap();
    let op = Arc::new(Mutex::new(Op {
        issuer,
        mode: Mode::Good,
        nonce: String::new(),
        signer: JwsSigner::new(&key.kid, JwsAlg::RS256, &key.private_der).unwrap(),
        // The attacker's key claims the provider's kid.
        other: JwsSigner::new(&key.kid, JwsAlg::RS256, &other.private_der).unwrap(),
        jwk,
        token_calls: 0,
    }));
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .route("/me", get(userinfo))
        .with_state(op.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    op
}

/// A hub whose gateway offers only the national identity provider `natl`.
async fn hub_with_upstream(issuer: &str) -> OidcHub {
    hub_with_upstream_configured(issuer, |_| {}).await
}

async fn hub_with_upstream_configured(
    issuer: &str,
    configure: impl FnOnce(&mut fedhub::config::Config),
) -> OidcHub {
    let hub = oidc_hub_configured(
        crate::support::sqlite(),
        "http://127.0.0.1:8080",
        default_registration(),
        configure,
    );
    let reg = fedhub::upstream::OidcRegistration {
        id: "natl".into(),
        display_name: "Tài khoản định danh điện tử quốc gia".into(),
        issuer: issuer.into(),
        client_id: "fedhub-hub".into(),
        client_secret: "upstream-secret-1".into(),
        scopes: Some(vec!["openid".into(), "profile".into()]),
        claim_names: None,
    };
    let rp_id = hub.rp_id.clone();
    hub.store
        .write(|c| {
            fedhub::upstream::add_oidc(c, &crate::support::vault(), &reg, NOW)?;
            fedhub::upstream::allow_for_rp(c, &rp_id, &["natl".to_string()])
        })
        .unwrap();
    hub
}

/// The gateway's request → the chooser → the provider (scripted) → the hub's callback.
/// Returns the callback's reply, the gateway's PKCE verifier and the login binding.
async fn through_upstream(hub: &OidcHub, op: &Shared, mode: Mode) -> (Reply, String, String) {
    let (verifier, challenge) = pkce();
    let r = send(&hub.app, get_req(&hub.authorize_uri(&challenge, ""), &[])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let login = r.location().to_string();
    let handle = login.trim_start_matches("/login/").to_string();
    let bind = r.cookie("fedhub_login").unwrap();
    let page = send(&hub.app, get_req(&login, &[("fedhub_login", &bind)])).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Tài khoản định danh điện tử quốc gia"),
        "the chooser offers the provider"
    );
    assert!(
        !page.body.contains("Người Lạ"),
        "the demo connector is not offered"
    );
    let go = send(
        &hub.app,
        Request::post(format!("{login}/natl"))
            .header(header::COOKIE, format!("fedhub_login={bind}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(go.status, StatusCode::SEE_OTHER, "{}", go.body);
    let issuer = op.lock().unwrap().issuer.clone();
    assert!(go.location().starts_with(&format!("{issuer}/auth?")));
    assert_eq!(go.cookie("fedhub_last_connector").as_deref(), Some("natl"));
    let q = query_of(go.location());
    assert_eq!(q["state"], handle);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["client_id"], "fedhub-hub");
    assert_eq!(
        q["redirect_uri"],
        "http://127.0.0.1:8080/connectors/natl/callback"
    );
    {
        let mut op = op.lock().unwrap();
        op.mode = mode;
        op.nonce = q["nonce"].clone();
    }
    let cb = format!(
        "/connectors/natl/callback?code=c1&state={handle}&iss={}",
        enc(&issuer)
    );
    let back = send(&hub.app, get_req(&cb, &[("fedhub_login", &bind)])).await;
    let _ = handle;
    (back, verifier, bind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_signs_in_through_the_national_identity_provider() {
    let op = start_op().await;
    let issuer = op.lock().unwrap().issuer.clone();
    let hub = hub_with_upstream(&issuer).await;
    let (back, verifier, _) = through_upstream(&hub, &op, Mode::Good).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert!(back.location().starts_with(REDIRECT), "{}", back.location());
    assert!(
        back.cookie("fedhub_sso").is_some(),
        "an SSO session started"
    );
    // The gateway's ID token names the person the provider vouched for (matched by national
    // ID from the portal claim names), with the provider's acr and amr carried through.
    let code = query_of(back.location())["code"].clone();
    let tokens = hub.redeem(&code, &verifier).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["national_id"], CITIZEN);
    assert_eq!(id["acr"], "urn:vn:national-idp:level2");
    assert_eq!(id["amr"], json!(["pwd", "otp"]));
    assert_eq!(id["auth_time"], NOW - 5);
    let audit = hub.store.read(|c| fedhub::audit::tail(c, 20)).unwrap();
    assert!(
        audit.iter().any(|e| e.action == "login"
            && e.target.as_deref() == Some("natl")
            && e.outcome == "success"),
        "the sign-in is audited with its connector"
    );
}

/// The provider's clock differs from the hub's: its ID token is accepted within
/// `connectors.clock_skew` (issued "in the future", or just expired by the hub's clock) and
/// refused beyond it; the tolerance is configurable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_id_tokens_tolerate_the_configured_clock_skew_and_no_more() {
    let op = start_op().await;
    let issuer = op.lock().unwrap().issuer.clone();
    for (skew, within, beyond) in [(None, 59, 61), (Some(5), 4, 6)] {
        let hub = hub_with_upstream_configured(&issuer, |c| {
            if let Some(s) = skew {
                c.connectors.clock_skew = std::time::Duration::from_secs(s);
            }
        })
        .await;
        for (mode, accepted) in [
            (Mode::Ahead(within), true),
            (Mode::ExpiredAgo(within), true),
            (Mode::Ahead(beyond), false),
            (Mode::ExpiredAgo(beyond), false),
        ] {
            let (back, _, _) = through_upstream(&hub, &op, mode).await;
            let want = if accepted {
                StatusCode::SEE_OTHER
            } else {
                StatusCode::BAD_REQUEST
            };
            assert_eq!(back.status, want, "skew {skew:?}, {mode:?}: {}", back.body);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_stale_upstream_answers_get_a_page_and_no_session() {
    let op = start_op().await;
    let issuer = op.lock().unwrap().issuer.clone();
    let hub = hub_with_upstream(&issuer).await;
    for (mode, why) in [
        (Mode::OtherAudience, "another audience"),
        (Mode::Expired, "expired"),
        (Mode::WrongNonce, "nonce"),
        (Mode::OtherIssuer, "another issuer"),
        (Mode::OtherKey, "signature"),
        (Mode::AlgNone, "none"),
        (Mode::UserinfoForSomeoneElse, "another subject"),
    ] {
        let (back, _, _) = through_upstream(&hub, &op, mode).await;
        assert_eq!(
            back.status,
            StatusCode::BAD_REQUEST,
            "{mode:?}: {}",
            back.body
        );
        assert!(
            back.location().is_empty(),
            "{mode:?}: nothing goes to the gateway"
        );
        assert!(back.cookie("fedhub_sso").is_none(), "{mode:?}: no session");
        assert!(
            back.body
                .contains("Không đăng nhập được qua dịch vụ xác thực"),
            "{mode:?}: a page that says what happened"
        );
        let last = hub.store.read(|c| fedhub::audit::tail(c, 1)).unwrap();
        let entry = &last[0];
        assert_eq!(
            (entry.action.as_str(), entry.outcome.as_str()),
            ("login", "failure")
        );
        assert!(
            entry.detail.as_deref().unwrap_or("").contains(why),
            "{mode:?}: audited with the reason: {:?}",
            entry.detail
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_the_directory_does_not_hold_is_refused_with_a_page() {
    let op = start_op().await;
    let issuer = op.lock().unwrap().issuer.clone();
    let hub = hub_with_upstream(&issuer).await;
    let (back, _, _) = through_upstream(&hub, &op, Mode::UnknownPerson).await;
    assert_eq!(back.status, StatusCode::FORBIDDEN, "{}", back.body);
    assert!(back.cookie("fedhub_sso").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_saying_no_reaches_the_gateway_as_access_denied() {
    let op = start_op().await;
    let issuer = op.lock().unwrap().issuer.clone();
    let hub = hub_with_upstream(&issuer).await;
    let (_verifier, challenge) = pkce();
    let r = send(&hub.app, get_req(&hub.authorize_uri(&challenge, ""), &[])).await;
    let login = r.location().to_string();
    let handle = login.trim_start_matches("/login/").to_string();
    let bind = r.cookie("fedhub_login").unwrap();
    send(
        &hub.app,
        Request::post(format!("{login}/natl"))
            .header(header::COOKIE, format!("fedhub_login={bind}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    let cb = format!(
        "/connectors/natl/callback?error=access_denied&state={handle}&iss={}",
        enc(&issuer)
    );
    let back = send(&hub.app, get_req(&cb, &[("fedhub_login", &bind)])).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    let q = query_of(back.location());
    assert!(back.location().starts_with(REDIRECT));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st-1");
    assert_eq!(op.lock().unwrap().token_calls, 0, "no code was redeemed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_callback_or_another_browser_finds_the_login_used() {
    let op = start_op().await;
    let issuer = op.lock().unwrap().issuer.clone();
    let hub = hub_with_upstream(&issuer).await;
    let (back, _, bind) = through_upstream(&hub, &op, Mode::Good).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    let handle = bind.clone();
    let cb = format!(
        "/connectors/natl/callback?code=c1&state={handle}&iss={}",
        enc(&issuer)
    );
    let calls = op.lock().unwrap().token_calls;
    let again = send(&hub.app, get_req(&cb, &[("fedhub_login", &bind)])).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    assert!(again.cookie("fedhub_sso").is_none());
    assert_eq!(
        op.lock().unwrap().token_calls,
        calls,
        "nothing redeemed twice"
    );
    // A callback without the browser's binding cookie (login CSRF) is refused too.
    let stolen = send(&hub.app, get_req(&cb, &[])).await;
    assert_eq!(stolen.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_gets_a_page_and_the_login_can_go_on() {
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let hub = hub_with_upstream(&dead).await;
    let (_verifier, challenge) = pkce();
    let r = send(&hub.app, get_req(&hub.authorize_uri(&challenge, ""), &[])).await;
    let login = r.location().to_string();
    let bind = r.cookie("fedhub_login").unwrap();
    let go = send(
        &hub.app,
        Request::post(format!("{login}/natl"))
            .header(header::COOKIE, format!("fedhub_login={bind}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(go.status, StatusCode::SERVICE_UNAVAILABLE, "{}", go.body);
    assert!(go
        .body
        .contains("Không đăng nhập được qua dịch vụ xác thực"));
    // The login itself is still open: the chooser shows again.
    let page = send(&hub.app, get_req(&login, &[("fedhub_login", &bind)])).await;
    assert_eq!(page.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_may_name_the_provider_with_idp_hint() {
    let op = start_op().await;
    let issuer = op.lock().unwrap().issuer.clone();
    let hub = hub_with_upstream(&issuer).await;
    for (hint, straight) in [("natl", true), ("somewhere-else", false)] {
        let (_verifier, challenge) = pkce();
        let r = send(
            &hub.app,
            get_req(
                &hub.authorize_uri(&challenge, &format!("&idp_hint={hint}")),
                &[],
            ),
        )
        .await;
        let login = r.location().to_string();
        let bind = r.cookie("fedhub_login").unwrap();
        let page = send(&hub.app, get_req(&login, &[("fedhub_login", &bind)])).await;
        if straight {
            assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
            assert!(
                page.location().starts_with(&format!("{issuer}/auth?")),
                "no chooser: straight to the provider"
            );
        } else {
            assert_eq!(
                page.status,
                StatusCode::OK,
                "an unknown hint shows the chooser"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chooser_offers_the_last_choice_first() {
    let op = start_op().await;
    let issuer = op.lock().unwrap().issuer.clone();
    let hub = hub_with_upstream(&issuer).await;
    // Offer the demo people too, then come back with the provider remembered.
    let rp_id = hub.rp_id.clone();
    hub.store
        .write(|c| fedhub::upstream::allow_for_rp(c, &rp_id, &["natl".into(), "dev".into()]))
        .unwrap();
    let (_verifier, challenge) = pkce();
    let r = send(&hub.app, get_req(&hub.authorize_uri(&challenge, ""), &[])).await;
    let login = r.location().to_string();
    let bind = r.cookie("fedhub_login").unwrap();
    let fresh = send(&hub.app, get_req(&login, &[("fedhub_login", &bind)])).await;
    assert!(!fresh.body.contains("lần trước bạn đã dùng"));
    assert!(
        fresh.body.contains("Người Lạ"),
        "the demo people are offered"
    );
    let back = send(
        &hub.app,
        get_req(
            &login,
            &[("fedhub_login", &bind), ("fedhub_last_connector", "natl")],
        ),
    )
    .await;
    assert!(back.body.contains("lần trước bạn đã dùng"), "{}", back.body);
    let en = send(
        &hub.app,
        get_req(
            &format!("{login}?lang=en"),
            &[("fedhub_login", &bind), ("fedhub_last_connector", "natl")],
        ),
    )
    .await;
    assert!(en.body.contains("what you used last time"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_identity_presenting_another_national_id_is_refused() {
    let op = start_op().await;
    let issuer = op.lock().unwrap().issuer.clone();
    let hub = hub_with_upstream(&issuer).await;
    let (first, _, _) = through_upstream(&hub, &op, Mode::Good).await;
    assert_eq!(
        first.status,
        StatusCode::SEE_OTHER,
        "linked on first sign-in"
    );
    // Same upstream subject, another national ID.
    let (back, _, _) = through_upstream(&hub, &op, Mode::UnknownPerson).await;
    assert_eq!(back.status, StatusCode::FORBIDDEN, "{}", back.body);
    assert!(back.body.contains("Danh tính không khớp"), "{}", back.body);
    assert!(back.cookie("fedhub_sso").is_none());
    let last = hub.store.read(|c| fedhub::audit::tail(c, 1)).unwrap();
    assert_eq!(last[0].outcome, "denied");
    assert_eq!(last[0].detail.as_deref(), Some("identity_conflict"));
}

/// The whole chain to a ministry portal: the national identity provider (OIDC) upstream, the
/// hub, and a SAML service provider downstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_national_idp_signs_a_citizen_in_to_a_saml_portal() {
    let op = start_op().await;
    let issuer = op.lock().unwrap().issuer.clone();
    let store = crate::support::sqlite();
    let sp = crate::sp::default_sp();
    let (app, rp_id, _account) = crate::sso::hub_with(
        &store,
        &sp.metadata(),
        false,
        Arc::new(fedhub::clock::ManualClock::at(NOW)),
    );
    let reg = fedhub::upstream::OidcRegistration {
        id: "natl".into(),
        display_name: "Tài khoản định danh điện tử quốc gia".into(),
        issuer: issuer.clone(),
        client_id: "fedhub-hub".into(),
        client_secret: "upstream-secret-1".into(),
        scopes: None,
        claim_names: None,
    };
    store
        .write(|c| {
            fedhub::keys::ensure_all(
                c,
                &crate::support::vault(),
                fedhub::keys::Purpose::Oidc,
                KeyAlg::Rsa2048,
                NOW,
            )?;
            fedhub::upstream::add_oidc(c, &crate::support::vault(), &reg, NOW)?;
            fedhub::upstream::allow_for_rp(c, &rp_id, &["natl".to_string()])
        })
        .unwrap();
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_chain1" Version="2.0" IssueInstant="2026-11-27T00:00:00Z" Destination="http://127.0.0.1:8080/saml/sso"><saml:Issuer>{}</saml:Issuer></samlp:AuthnRequest>"#,
        sp.entity_id
    );
    let q = crate::sso::signed_query(&sp, "SAMLRequest", &xml, Some("rs-chain"));
    let r = send(&app, get_req(&format!("/saml/sso?{q}"), &[])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let login = r.location().to_string();
    let handle = login.trim_start_matches("/login/").to_string();
    let bind = r.cookie("fedhub_login").unwrap();
    let go = send(
        &app,
        Request::post(format!("{login}/natl"))
            .header(header::COOKIE, format!("fedhub_login={bind}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(go.status, StatusCode::SEE_OTHER, "{}", go.body);
    let nonce = query_of(go.location())["nonce"].clone();
    op.lock().unwrap().nonce = nonce;
    let cb = format!(
        "/connectors/natl/callback?code=c1&state={handle}&iss={}",
        enc(&issuer)
    );
    let back = send(&app, get_req(&cb, &[("fedhub_login", &bind)])).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    let response = back.saml_response();
    assert!(response.contains("StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\""));
    assert!(
        response.contains("urn:vn:national-idp:level2"),
        "the provider's acr becomes the AuthnContextClassRef"
    );
    assert!(response.contains("InResponseTo=\"_chain1\""));

    // A portal that names the provider in Scoping/IDPList skips the chooser.
    let scoped = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_chain2" Version="2.0" IssueInstant="2026-11-27T00:00:00Z" Destination="http://127.0.0.1:8080/saml/sso" ForceAuthn="true"><saml:Issuer>{}</saml:Issuer><samlp:Scoping><samlp:IDPList><samlp:IDPEntry ProviderID="{issuer}"/></samlp:IDPList></samlp:Scoping></samlp:AuthnRequest>"#,
        sp.entity_id
    );
    let q = crate::sso::signed_query(&sp, "SAMLRequest", &scoped, None);
    let r = send(&app, get_req(&format!("/saml/sso?{q}"), &[])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let login = r.location().to_string();
    let bind = r.cookie("fedhub_login").unwrap();
    let page = send(&app, get_req(&login, &[("fedhub_login", &bind)])).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(page.location().starts_with(&format!("{issuer}/auth?")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_at_the_hub_signs_out_at_the_national_identity_provider_too() {
    let op = start_op().await;
    let issuer = op.lock().unwrap().issuer.clone();
    let hub = hub_with_upstream(&issuer).await;
    let (back, _, _) = through_upstream(&hub, &op, Mode::Good).await;
    let sso = back.cookie("fedhub_sso").unwrap();
    let r = send(
        &hub.app,
        Request::post("/saml/logout")
            .header(header::COOKIE, format!("fedhub_sso={sso}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // RP-initiated logout at the provider, with the ID token it issued as the hint.
    assert!(
        r.location().starts_with(&format!("{issuer}/logout?")),
        "{}",
        r.location()
    );
    let q = query_of(r.location());
    assert_eq!(q["client_id"], "fedhub-hub");
    assert_eq!(
        q["post_logout_redirect_uri"],
        "http://127.0.0.1:8080/connectors/natl/logged-out"
    );
    let hint = jwt_claims(&q["id_token_hint"]);
    assert_eq!(hint["iss"], issuer.as_str());
    assert_eq!(hint["sub"], "nidp-citizen-1");
    // Coming back with another state is refused; with its own, the person sees the end.
    let wrong = send(
        &hub.app,
        get_req("/connectors/natl/logged-out?state=not-this-one", &[]),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    let done = send(
        &hub.app,
        get_req(
            &format!("/connectors/natl/logged-out?state={}", enc(&q["state"])),
            &[],
        ),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(
        done.body.contains("out-heading"),
        "the signed-out page: {}",
        done.body
    );
    // The hub session is over.
    let (_, challenge) = pkce();
    let again = send(
        &hub.app,
        get_req(
            &hub.authorize_uri(&challenge, "&prompt=none"),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_eq!(query_of(again.location())["error"], "login_required");
}
