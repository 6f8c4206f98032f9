//! A minimal OpenID provider on loopback, inside the load tool, standing in for the national
//! identity provider when the load runs with `--upstream oidc`: discovery, JWKS, an authorize
//! endpoint that sends the browser straight back (the person is already signed in at the
//! provider: the load tool's browser carries [`SESSION_COOKIE`] naming who), a token endpoint
//! that checks what a real provider checks (client authentication, the code once, its
//! redirect URI and PKCE) and answers with an RS256 ID token, and userinfo with the national
//! portal's claim names.
//!
//! It runs on a thread of its own with its own single-threaded runtime, so that its CPU time
//! (`/proc/self/task/<tid>/stat`) is reported apart from the load generator's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use fedhub_metadata::jose::{JwsAlg, JwsSigner};
use fedhub_metadata::keys::{generate, KeyAlg};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};
use url::form_urlencoded;

/// The hub's client at the provider.
pub const CLIENT_ID: &str = "fedhub-hub";
pub const CLIENT_SECRET: &str = "fedhub-load-upstream-secret";
/// The cookie of a browser signed in at the provider: the index of the person in the pool.
pub const SESSION_COOKIE: &str = "op_session";
/// How long a code and an access token are valid.
const CODE_TTL: i64 = 60;
const ACCESS_TTL: i64 = 300;
/// Above this many outstanding codes or tokens, expired ones are swept out.
const SWEEP_AT: usize = 10_000;

/// A person who can sign in at the provider (each one has an account in the hub's
/// directory, registered at setup).
#[derive(Debug, Clone)]
pub struct Person {
    pub national_id: String,
    pub name: String,
    pub phone: Option<String>,
}

impl Person {
    /// The provider's subject for the person at `index`: stable, and not the CCCD.
    fn subject(index: usize) -> String {
        format!("nidp-{index:06}")
    }
}

/// What the provider keeps between authorize and token.
struct Grant {
    person: usize,
    redirect_uri: String,
    nonce: String,
    code_challenge: Option<String>,
    issued_at: i64,
}

struct Op {
    issuer: String,
    /// The only redirect URI registered for the hub.
    redirect_uri: String,
    people: Vec<Person>,
    signer: JwsSigner,
    discovery: Value,
    jwks: Value,
    rng: SystemRandom,
    codes: Mutex<HashMap<String, Grant>>,
    /// Access token → (person, issued at).
    tokens: Mutex<HashMap<String, (usize, i64)>>,
}

type Shared = Arc<Op>;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Op {
    fn random(&self) -> Result<String, StatusCode> {
        let mut bytes = [0u8; 24];
        self.rng
            .fill(&mut bytes)
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }
}

/// The provider on its own thread; stopped when dropped.
pub struct MockOp {
    pub issuer: String,
    /// `self/task/<tid>`: the thread's entry under `/proc`.
    task: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockOp {
    /// Starts the provider on a free loopback port, with a fresh RSA-2048 signing key, for a
    /// hub whose callback is `redirect_uri`.
    pub fn start(people: Vec<Person>, redirect_uri: String) -> Result<MockOp> {
        if people.is_empty() {
            bail!("the provider needs at least one person");
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .context("binding the mock OpenID provider")?;
        listener.set_nonblocking(true)?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let key = generate(KeyAlg::Rsa2048, "fedhub-load mock OP", now() - 86_400, 30)
            .map_err(|e| anyhow!("the mock provider's key: {e}"))?;
        let jwk = fedhub_metadata::jwk::from_certificate(&key.kid, KeyAlg::Rsa2048, &key.cert_der)
            .map_err(|e| anyhow!("the mock provider's JWK: {e}"))?;
        let signer = JwsSigner::new(&key.kid, JwsAlg::RS256, &key.private_der)
            .map_err(|e| anyhow!("the mock provider's signer: {e}"))?;
        let op = Arc::new(Op {
            discovery: json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "userinfo_endpoint": format!("{issuer}/userinfo"),
                "jwks_uri": format!("{issuer}/jwks"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "authorization_response_iss_parameter_supported": true,
            }),
            jwks: json!({ "keys": [serde_json::to_value(jwk)?] }),
            issuer: issuer.clone(),
            redirect_uri,
            people,
            signer,
            rng: SystemRandom::new(),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(op);

        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (started, is_started) = std::sync::mpsc::channel::<Result<String>>();
        let thread = std::thread::Builder::new()
            .name("mock-op".into())
            .spawn(move || {
                // `/proc/thread-self` links to `<pid>/task/<tid>`.
                let task = std::fs::read_link("/proc/thread-self")
                    .ok()
                    .and_then(|p| {
                        let (_, tid) = p.to_str()?.split_once("/task/")?;
                        Some(format!("self/task/{tid}"))
                    })
                    .ok_or_else(|| anyhow!("cannot read /proc/thread-self"));
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let (task, runtime) = match (task, runtime) {
                    (Ok(task), Ok(runtime)) => (task, runtime),
                    (Err(e), _) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                    (_, Err(e)) => {
                        let _ = started.send(Err(e.into()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = started.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = started.send(Ok(task));
                    // Ends with the load: the hub's kept-alive connections are simply dropped.
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
            })
            .context("starting the mock provider's thread")?;
        let task = is_started
            .recv()
            .map_err(|_| anyhow!("the mock provider's thread died"))??;
        Ok(MockOp {
            issuer,
            task,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// CPU seconds the provider's thread used so far.
    pub fn cpu_seconds(&self, ticks: f64) -> Result<f64> {
        crate::procstat::cpu_seconds(&self.task, ticks)
    }
}

impl Drop for MockOp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn discovery(State(op): State<Shared>) -> Json<Value> {
    Json(op.discovery.clone())
}

async fn jwks(State(op): State<Shared>) -> Json<Value> {
    Json(op.jwks.clone())
}

fn bad_request(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, why.to_string()).into_response()
}

/// The person the browser is signed in as at the provider, from its cookie.
fn signed_in(op: &Op, headers: &HeaderMap) -> Option<usize> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .filter(|i| *i < op.people.len())
}

/// OIDC Core 3.1.2: the client and its redirect URI are checked before anything is sent
/// back to that URI; then the request itself; then the person (already signed in) is sent
/// back with a code.
async fn authorize(
    State(op): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let param = |k: &str| q.get(k).map(String::as_str);
    if param("client_id") != Some(CLIENT_ID) {
        return bad_request("unknown client_id");
    }
    if param("redirect_uri") != Some(op.redirect_uri.as_str()) {
        return bad_request("redirect_uri is not registered for this client");
    }
    let back = |pairs: &[(&str, &str)]| {
        let mut url = op.redirect_uri.clone();
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
        if let Some(state) = param("state") {
            query.append_pair("state", state);
        }
        query.append_pair("iss", &op.issuer);
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&query.finish());
        Redirect::to(&url).into_response()
    };
    let error = |why: &str| back(&[("error", "invalid_request"), ("error_description", why)]);
    if param("response_type") != Some("code") {
        return back(&[("error", "unsupported_response_type")]);
    }
    if !param("scope").is_some_and(|s| s.split(' ').any(|s| s == "openid")) {
        return error("scope must include openid");
    }
    let Some(nonce) = param("nonce").filter(|n| !n.is_empty()) else {
        return error("nonce is required");
    };
    let code_challenge = match (param("code_challenge"), param("code_challenge_method")) {
        (Some(c), Some("S256")) => Some(c.to_string()),
        (Some(_), _) => return error("only the S256 code challenge method"),
        (None, _) => None,
    };
    let Some(person) = signed_in(&op, &headers) else {
        // A real provider would show its sign-in page; this one only serves the load tool.
        return bad_request("no one is signed in at the provider");
    };
    let Ok(code) = op.random() else {
        return back(&[("error", "server_error")]);
    };
    let issued_at = now();
    if let Ok(mut codes) = op.codes.lock() {
        if codes.len() >= SWEEP_AT {
            codes.retain(|_, g| g.issued_at + CODE_TTL > issued_at);
        }
        codes.insert(
            code.clone(),
            Grant {
                person,
                redirect_uri: op.redirect_uri.clone(),
                nonce: nonce.to_string(),
                code_challenge,
                issued_at,
            },
        );
    }
    back(&[("code", &code)])
}

fn token_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// RFC 6749 §2.3.1: client_secret_basic, with both parts form-encoded.
fn client_authenticated(headers: &HeaderMap) -> bool {
    let Some(b64) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Some(pair) = STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return false;
    };
    let decode = |s: &str| -> String {
        form_urlencoded::parse(s.as_bytes())
            .next()
            .map(|(k, _)| k.into_owned())
            .unwrap_or_default()
    };
    match pair.split_once(':') {
        Some((id, secret)) => decode(id) == CLIENT_ID && decode(secret) == CLIENT_SECRET,
        None => false,
    }
}

/// The code for tokens: the client, then the code (used up whatever follows), its age, its
/// redirect URI and the PKCE verifier.
async fn token(State(op): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if !client_authenticated(&headers) {
        return token_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let field = |k: &str| form.get(k).map(String::as_str);
    if field("grant_type") != Some("authorization_code") {
        return token_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let grant = field("code").and_then(|code| op.codes.lock().ok()?.remove(code));
    let Some(grant) = grant else {
        return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let now = now();
    let pkce_ok = match (&grant.code_challenge, field("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            URL_SAFE_NO_PAD.encode(ring::digest::digest(
                &ring::digest::SHA256,
                verifier.as_bytes(),
            )) == *challenge
        }
        (Some(_), None) => false,
        (None, _) => true,
    };
    if grant.issued_at + CODE_TTL <= now
        || field("redirect_uri") != Some(grant.redirect_uri.as_str())
        || !pkce_ok
    {
        return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let claims = json!({
        "iss": op.issuer,
        "sub": Person::subject(grant.person),
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + ACCESS_TTL,
        "auth_time": grant.issued_at,
        "nonce": grant.nonce,
        "acr": "urn:vn:national-idp:level2",
        "amr": ["pwd", "otp"],
    });
    let (Ok(id_token), Ok(access_token)) = (op.signer.sign(Some("JWT"), &claims), op.random())
    else {
        return token_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    };
    if let Ok(mut tokens) = op.tokens.lock() {
        if tokens.len() >= SWEEP_AT {
            tokens.retain(|_, (_, at)| *at + ACCESS_TTL > now);
        }
        tokens.insert(access_token.clone(), (grant.person, now));
    }
    let mut res = Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL,
        "id_token": id_token,
    }))
    .into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

/// Who the access token is about, with the national portal's claim names.
async fn userinfo(State(op): State<Shared>, headers: HeaderMap) -> Response {
    let person = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| op.tokens.lock().ok()?.get(t.trim()).copied())
        .filter(|(_, at)| *at + ACCESS_TTL > now())
        .and_then(|(i, _)| Some((i, op.people.get(i)?)));
    let Some((index, person)) = person else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        )
            .into_response();
    };
    let mut claims = json!({
        "sub": Person::subject(index),
        "SoDinhDanh": person.national_id,
        "HoVaTen": person.name,
        "LoaiTaiKhoan": "1",
    });
    if let Some(phone) = &person.phone {
        claims["SoDienThoai"] = json!(phone);
    }
    Json(claims).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people() -> Vec<Person> {
        vec![Person {
            national_id: "001204012345".into(),
            name: "Nguyễn Văn An".into(),
            phone: Some("0912345678".into()),
        }]
    }

    /// The provider as the hub's connector sees it: discovery names the issuer, authorize
    /// sends the signed-in person back with a code, the code is redeemed once with client
    /// authentication and PKCE, the ID token verifies with the published keys and carries
    /// the nonce, and userinfo tells who it is.
    #[tokio::test]
    async fn a_code_flow_through_the_mock_provider() {
        let redirect = "http://127.0.0.1:9/connectors/vneid/callback".to_string();
        let op = MockOp::start(people(), redirect.clone()).unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let meta: Value = http
            .get(format!("{}/.well-known/openid-configuration", op.issuer))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
            .unwrap();
        assert_eq!(meta["issuer"], op.issuer.as_str());
        let keys: Value = http
            .get(meta["jwks_uri"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
            .unwrap();

        let verifier = "v".repeat(43);
        let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            verifier.as_bytes(),
        ));
        let mut authorize =
            url::Url::parse(meta["authorization_endpoint"].as_str().unwrap()).unwrap();
        authorize
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", &redirect)
            .append_pair("scope", "openid profile")
            .append_pair("state", "st")
            .append_pair("nonce", "n-1")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let anonymous = http.get(authorize.clone()).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::BAD_REQUEST);
        let r = http
            .get(authorize.clone())
            .header(header::COOKIE, format!("{SESSION_COOKIE}=0"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let back = url::Url::parse(r.headers()[header::LOCATION].to_str().unwrap()).unwrap();
        assert!(back.as_str().starts_with(&redirect), "{back}");
        let q: HashMap<String, String> = back.query_pairs().into_owned().collect();
        assert_eq!(
            (q["state"].as_str(), q["iss"].as_str()),
            ("st", &*op.issuer)
        );

        let redeem = |verifier: &str, secret: &str| {
            http.post(meta["token_endpoint"].as_str().unwrap())
                .basic_auth(CLIENT_ID, Some(secret))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", q["code"].as_str()),
                    ("redirect_uri", redirect.as_str()),
                    ("code_verifier", verifier),
                ])
                .send()
        };
        assert_eq!(
            redeem(&verifier, "wrong-secret").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        let tokens: Value = redeem(&verifier, CLIENT_SECRET)
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap();
        let id_token = tokens["id_token"].as_str().unwrap();
        let keys = keys["keys"].as_array().unwrap();
        let claims = fedhub_metadata::jose::verify(id_token, keys, &[JwsAlg::RS256])
            .unwrap()
            .claims;
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["aud"], CLIENT_ID);
        assert_eq!(claims["iss"], op.issuer.as_str());
        assert!(claims["exp"].as_i64().unwrap() > now());
        // The code is used up.
        assert_eq!(
            redeem(&verifier, CLIENT_SECRET).await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );

        let info: Value = http
            .get(meta["userinfo_endpoint"].as_str().unwrap())
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
            .unwrap();
        assert_eq!(info["sub"], claims["sub"]);
        assert_eq!(info["SoDinhDanh"], "001204012345");
        assert!(op.cpu_seconds(crate::procstat::clock_ticks()).unwrap() >= 0.0);
    }

    #[tokio::test]
    async fn a_wrong_pkce_verifier_is_refused() {
        let redirect = "http://127.0.0.1:9/cb".to_string();
        let op = MockOp::start(people(), redirect.clone()).unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = http
            .get(format!("{}/authorize", op.issuer))
            .query(&[
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", redirect.as_str()),
                ("scope", "openid"),
                ("nonce", "n"),
                ("code_challenge", "abc"),
                ("code_challenge_method", "S256"),
            ])
            .header(header::COOKIE, format!("{SESSION_COOKIE}=0"))
            .send()
            .await
            .unwrap();
        let back = url::Url::parse(r.headers()[header::LOCATION].to_str().unwrap()).unwrap();
        let code = back
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let r = http
            .post(format!("{}/token", op.issuer))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect.as_str()),
                ("code_verifier", "not-the-verifier"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
}
