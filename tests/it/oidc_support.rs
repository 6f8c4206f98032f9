//! A hub with one registered OIDC client, the demo connector and one citizen, for the
//! OpenID Provider tests (in-process with `oneshot`, or served on a loopback port).

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use diesel::prelude::*;
use fedhub::clock::ManualClock;
use fedhub::rp::oidc::OidcRegistration;
use fedhub::store::schema;
use fedhub::web::AppState;
use http::{header, Request, StatusCode};

use crate::sso::{get, send, Reply, CITIZEN};
use crate::support::{self, TestStore, NOW};

pub const REDIRECT: &str = "https://gateway.quangninh.example/cb";
pub const CLIENT_ID: &str = "cong-dvc-quang-ninh";

pub struct OidcHub {
    pub app: Router,
    pub state: AppState,
    pub store: TestStore,
    pub clock: ManualClock,
    pub client_id: String,
    pub secret: Option<String>,
    pub rp_id: String,
    pub account_id: String,
}

/// The default registration: secret client, every scope, back-channel to nowhere.
pub fn default_registration() -> OidcRegistration {
    OidcRegistration {
        client_id: Some(CLIENT_ID.into()),
        owner_agency_code: "000.00.00.H49".into(),
        display_name: Some("Cổng DVC Quảng Ninh".into()),
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec!["https://gateway.quangninh.example/bye".into()],
        scopes: Some(
            fedhub::rp::oidc::SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        require_activated_membership: Some(false),
        ..Default::default()
    }
}

/// A hub on `store` whose public URL is `public_url`, with `reg` registered.
pub fn oidc_hub_at(store: TestStore, public_url: &str, reg: OidcRegistration) -> OidcHub {
    let clock = ManualClock::at(NOW);
    let mut config = support::test_config();
    config.server.public_url = public_url.into();
    let state = AppState::new(config, store.clone(), Arc::new(clock.clone())).unwrap();
    let vault = support::vault();
    for purpose in [fedhub::keys::Purpose::Saml, fedhub::keys::Purpose::Oidc] {
        store
            .write(|c| {
                fedhub::keys::ensure_all(
                    c,
                    &vault,
                    purpose,
                    fedhub_metadata::keys::KeyAlg::Rsa2048,
                    NOW,
                )
            })
            .unwrap();
    }
    store
        .write(|c| {
            fedhub::directory::agencies::import_csv(
                c,
                fedhub::directory::agencies::BUILTIN_CSV,
                NOW,
            )
        })
        .unwrap();
    let account = fedhub::directory::accounts::AccountInput {
        kind: "citizen".into(),
        display_name: "Nguyễn Văn An".into(),
        national_id: Some(CITIZEN.into()),
        tax_code: Some("0100109106".into()),
        phone: Some("0912345678".into()),
        email: Some("an@example.vn".into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let account = store
        .write(|c| fedhub::directory::accounts::add(c, &account, NOW))
        .unwrap();
    let people = serde_json::json!({ "people": [{ "national_id": CITIZEN, "name": "Nguyễn Văn An" }, { "national_id": "022195000123", "name": "Người Lạ" }] });
    store
        .write(|c| {
            use schema::connectors::dsl as k;
            diesel::insert_into(k::connectors)
                .values((
                    k::id.eq("dev"),
                    k::kind.eq("dev"),
                    k::display_name.eq("Demo"),
                    k::config.eq(people.to_string()),
                    k::enabled.eq(true),
                    k::created_at.eq(NOW),
                    k::updated_at.eq(NOW),
                ))
                .execute(c)?;
            Ok(())
        })
        .unwrap();
    let done = store
        .write(|c| fedhub::rp::oidc::add(c, &reg, NOW))
        .unwrap();
    OidcHub {
        app: fedhub::web::router(state.clone()),
        state,
        store,
        clock,
        client_id: done.rp.entity_id.clone(),
        secret: done.client_secret,
        rp_id: done.rp.id,
        account_id: account.id,
    }
}

pub fn oidc_hub(reg: OidcRegistration) -> OidcHub {
    oidc_hub_at(support::sqlite(), "http://127.0.0.1:8080", reg)
}

/// A PKCE pair (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let verifier = format!("v{}", uuid::Uuid::new_v4().simple()).repeat(2);
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    (verifier, challenge)
}

/// The query parameters of a URL.
pub fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    let u = url::Url::parse(location)
        .or_else(|_| url::Url::parse(&format!("http://x{location}")))
        .unwrap();
    u.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl OidcHub {
    /// `/oidc/authorize?…` with the usual parameters, `extra` appended raw.
    pub fn authorize_uri(&self, challenge: &str, extra: &str) -> String {
        format!(
            "/oidc/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20profile%20phone%20national_id%20agency%20roles%20offline_access&state=st-1&nonce=n-1&code_challenge={challenge}&code_challenge_method=S256{extra}",
            self.client_id,
            url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
        )
    }

    /// Follows a redirect to the login page and signs in as `national_id` with the demo
    /// connector; returns the reply to the form POST (the redirect to the client).
    pub async fn sign_in(&self, to_login: &Reply, national_id: &str) -> Reply {
        assert_eq!(to_login.status, StatusCode::SEE_OTHER, "{}", to_login.body);
        let login = to_login.location().to_string();
        assert!(login.starts_with("/login/"), "{login}");
        let path = login.split('?').next().unwrap().to_string();
        let bind = to_login.cookie("fedhub_login").expect("login cookie");
        let page = send(&self.app, get(&login, &[("fedhub_login", &bind)])).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let form = Request::post(format!("{path}/dev"))
            .header(header::COOKIE, format!("fedhub_login={bind}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("national_id={national_id}")))
            .unwrap();
        send(&self.app, form).await
    }

    /// A full login: authorize → sign in → code. Returns (code, verifier, SSO cookie).
    pub async fn code(&self) -> (String, String, String) {
        let (verifier, challenge) = pkce();
        let r = send(&self.app, get(&self.authorize_uri(&challenge, ""), &[])).await;
        let back = self.sign_in(&r, CITIZEN).await;
        assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
        assert!(back.location().starts_with(REDIRECT), "{}", back.location());
        let q = query_of(back.location());
        let sso = back.cookie("fedhub_sso").expect("SSO cookie");
        (q["code"].clone(), verifier, sso)
    }

    /// POST /oidc/token with HTTP Basic client authentication.
    pub async fn token(&self, form: &str) -> Reply {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        let basic = STANDARD.encode(format!(
            "{}:{}",
            self.client_id,
            self.secret.clone().unwrap_or_default()
        ));
        let req = Request::post("/oidc/token")
            .header(header::AUTHORIZATION, format!("Basic {basic}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .unwrap();
        send(&self.app, req).await
    }

    /// Redeems a code; returns the token response JSON.
    pub async fn redeem(&self, code: &str, verifier: &str) -> serde_json::Value {
        let r = self
            .token(&format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={verifier}",
                url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }
}

/// The JSON claims of a JWT (not verified: tests verify separately where it matters).
pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The hub's published JWK Set as JSON values.
pub async fn jwks(app: &Router) -> Vec<serde_json::Value> {
    let r = send(app, get("/oidc/jwks", &[])).await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    v["keys"].as_array().unwrap().clone()
}
