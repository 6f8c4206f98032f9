//! A hub with one registered OIDC client, the demo connector and one citizen, for the
//! OpenID Provider tests (in-process with `oneshot`, or served on a loopback port).

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use fedhub::clock::ManualClock;
use fedhub::rp::oidc::OidcRegistration;
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
    oidc_hub_configured(store, public_url, reg, |_| {})
}

/// [`oidc_hub_at`] with the configuration adjusted by `configure`.
pub fn oidc_hub_configured(
    store: TestStore,
    public_url: &str,
    reg: OidcRegistration,
    configure: impl FnOnce(&mut fedhub::config::Config),
) -> OidcHub {
    let clock = ManualClock::at(NOW);
    let mut config = support::test_config();
    config.server.public_url = public_url.into();
    configure(&mut config);
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
    support::add_dev_connector(&store, NOW);
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

/// The hub's issuer in these tests.
pub const ISSUER: &str = "http://127.0.0.1:8080";

/// Form/query encoding of one value.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The JSON header of a JWT (not verified).
pub fn jwt_header(jwt: &str) -> serde_json::Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let part = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client registered on a test hub, as the client itself knows it.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
    pub redirect: String,
    pub rp_id: String,
}

/// A registration like the default one for another client id and redirect URI.
pub fn registration(client_id: &str, redirect: &str) -> OidcRegistration {
    OidcRegistration {
        client_id: Some(client_id.into()),
        redirect_uris: vec![redirect.into()],
        post_logout_redirect_uris: vec![],
        ..default_registration()
    }
}

/// What a completed login left the client and the browser with.
#[derive(Debug)]
pub struct Login {
    pub code: String,
    pub verifier: String,
    /// The SSO cookie value, when this login set one.
    pub sso: Option<String>,
}

/// A request with a form body, and optionally HTTP Basic client credentials.
pub fn form_request(path: &str, body: &str, basic: Option<(&str, &str)>) -> Request<Body> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    let mut b =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        b = b.header(
            header::AUTHORIZATION,
            format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
            ),
        );
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// GET `path` with a bearer token.
pub fn bearer_get(path: &str, token: &str) -> Request<Body> {
    Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

impl OidcHub {
    /// The client `oidc_hub` registered.
    pub fn client(&self) -> TestClient {
        TestClient {
            id: self.client_id.clone(),
            secret: self.secret.clone(),
            redirect: REDIRECT.into(),
            rp_id: self.rp_id.clone(),
        }
    }

    /// Registers another client on this hub.
    pub fn add_client(&self, reg: OidcRegistration) -> TestClient {
        let redirect = reg.redirect_uris[0].clone();
        let done = self
            .store
            .write(|c| fedhub::rp::oidc::add(c, &reg, NOW))
            .unwrap();
        TestClient {
            id: done.rp.entity_id.clone(),
            secret: done.client_secret,
            redirect,
            rp_id: done.rp.id,
        }
    }

    /// `/oidc/authorize?…` for `client` with `scope`, state `st-1`, nonce `n-1` and the PKCE
    /// challenge; `extra` appended raw.
    pub fn authorize_for(
        &self,
        client: &TestClient,
        scope: &str,
        challenge: &str,
        extra: &str,
    ) -> String {
        format!(
            "/oidc/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state=st-1&nonce=n-1&code_challenge={challenge}&code_challenge_method=S256{extra}",
            enc(&client.id),
            enc(&client.redirect),
            enc(scope),
        )
    }

    /// A full login for `client` (authorize → login page → demo sign-in as the citizen).
    pub async fn login(&self, client: &TestClient, scope: &str, extra: &str) -> Login {
        let (verifier, challenge) = pkce();
        let r = send(
            &self.app,
            get(&self.authorize_for(client, scope, &challenge, extra), &[]),
        )
        .await;
        let back = self.sign_in(&r, CITIZEN).await;
        let code = code_of(&back, client);
        Login {
            code,
            verifier,
            sso: back.cookie("fedhub_sso"),
        }
    }

    /// An authorization answered from the SSO session `sso` (no login page).
    pub async fn sso_login(
        &self,
        client: &TestClient,
        scope: &str,
        extra: &str,
        sso: &str,
    ) -> Login {
        let (verifier, challenge) = pkce();
        let r = send(
            &self.app,
            get(
                &self.authorize_for(client, scope, &challenge, extra),
                &[("fedhub_sso", sso)],
            ),
        )
        .await;
        let code = code_of(&r, client);
        Login {
            code,
            verifier,
            sso: Some(sso.to_string()),
        }
    }

    /// POST a form to `path` with `client`'s secret in HTTP Basic.
    pub async fn post_as(&self, client: &TestClient, path: &str, body: &str) -> Reply {
        let secret = client.secret.clone().unwrap_or_default();
        send(
            &self.app,
            form_request(path, body, Some((&client.id, &secret))),
        )
        .await
    }

    /// The authorization_code form for a login.
    pub fn code_form(&self, client: &TestClient, login: &Login) -> String {
        format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
            enc(&login.code),
            enc(&client.redirect),
            enc(&login.verifier)
        )
    }

    /// Redeems a login's code as `client`; the token response JSON (must be 200).
    pub async fn redeem_as(&self, client: &TestClient, login: &Login) -> serde_json::Value {
        let r = self
            .post_as(client, "/oidc/token", &self.code_form(client, login))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.json()
    }

    pub async fn refresh_as(&self, client: &TestClient, refresh_token: &str) -> Reply {
        self.post_as(
            client,
            "/oidc/token",
            &format!(
                "grant_type=refresh_token&refresh_token={}",
                enc(refresh_token)
            ),
        )
        .await
    }

    pub async fn userinfo(&self, access_token: &str) -> Reply {
        send(&self.app, bearer_get("/oidc/userinfo", access_token)).await
    }

    pub async fn introspect_as(&self, client: &TestClient, token: &str) -> serde_json::Value {
        let r = self
            .post_as(client, "/oidc/introspect", &format!("token={}", enc(token)))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.json()
    }

    pub async fn revoke_as(&self, client: &TestClient, token: &str) -> Reply {
        self.post_as(client, "/oidc/revoke", &format!("token={}", enc(token)))
            .await
    }

    /// The newest audit entries, oldest first.
    pub fn audit(&self) -> Vec<fedhub::audit::Entry> {
        self.store.read(|c| fedhub::audit::tail(c, 200)).unwrap()
    }

    /// Gives the citizen a membership of `client` with `status`.
    pub fn member(&self, client: &TestClient, status: &str) {
        let (acc, rp) = (self.account_id.clone(), client.rp_id.clone());
        let status = status.to_string();
        self.store
            .write(move |c| {
                crate::support::insert_member(
                    c,
                    crate::support::MemberRow {
                        id: &format!("m-{rp}"),
                        account_id: &acc,
                        rp_id: &rp,
                        unit: None,
                        status: &status,
                        user_group: None,
                        subject: &format!("member-of-{rp}"),
                    },
                )
            })
            .unwrap();
    }
}

/// The code in a redirect to `client` (asserting it is one, with state and iss).
pub fn code_of(r: &Reply, client: &TestClient) -> String {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(
        r.location().starts_with(&format!("{}?", client.redirect)),
        "{}",
        r.location()
    );
    let q = query_of(r.location());
    assert_eq!(q.get("state").map(String::as_str), Some("st-1"));
    assert_eq!(
        q.get("iss").map(String::as_str),
        Some(ISSUER),
        "RFC 9207 iss"
    );
    q.get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code in {}", r.location()))
}
