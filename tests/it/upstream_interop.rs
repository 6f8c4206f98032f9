//! The OIDC connector against a real, certified third-party OpenID Provider: node
//! `oidc-provider` (npm, by panva) as the national identity provider, with automated
//! interactions (tests/interop/national-idp). The test plays the browser between the
//! gateway (the hub's OIDC client), the hub and the provider.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use fedhub::clock::{Clock, SystemClock};
use http::StatusCode;

use crate::oidc_support::*;
use crate::sso::{get as get_req, send, CITIZEN};
use crate::support::NOW;

fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/national-idp")
}

fn node_modules() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| crate::support::setup_node("national-idp"))
        .clone()
}

/// The provider process; killed when dropped.
struct Provider {
    child: Child,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_provider(redirect_uri: &str) -> Provider {
    let log = std::env::temp_dir().join(format!("national-idp-{}.log", uuid::Uuid::new_v4()));
    let mut child = Command::new("node")
        .arg(idp_dir().join("op.mjs"))
        .args(["--port", "0", "--client-id", "fedhub-hub"])
        .args(["--client-secret", "national-idp-secret-1"])
        .args(["--redirect-uri", redirect_uri])
        // The provider exits with the test even if the test dies first.
        .arg("--exit-on-stdin-close")
        .env("NODE_PATH", node_modules())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start node op.mjs");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    // Bounded: a provider that never gets ready fails the test with its log.
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_default();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!(
            "the provider did not start: {line:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    });
    assert_eq!(ready["ready"], true);
    Provider {
        child,
        issuer: ready["issuer"].as_str().unwrap().to_string(),
    }
}

/// A browser toward the provider: no redirects followed, cookies kept (paths ignored: one
/// host).
struct Browser {
    http: reqwest::Client,
    jar: HashMap<String, String>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: HashMap::new(),
        }
    }
    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
    fn keep(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all(http::header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            if let Some((k, val)) = pair.split_once('=') {
                self.jar.insert(k.trim().to_string(), val.to_string());
            }
        }
    }
    async fn get(&mut self, url: &str) -> reqwest::Response {
        let res = self
            .http
            .get(url)
            .header(http::header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&res);
        res
    }
    async fn post_form(&mut self, url: &str, body: &str) -> reqwest::Response {
        let res = self
            .http
            .post(url)
            .header(http::header::COOKIE, self.cookie_header())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        self.keep(&res);
        res
    }
}

fn location(res: &reqwest::Response, base: &str) -> String {
    let l = res
        .headers()
        .get(http::header::LOCATION)
        .unwrap_or_else(|| panic!("no redirect ({})", res.status()))
        .to_str()
        .unwrap()
        .to_string();
    if l.starts_with('/') {
        format!("{base}{l}")
    } else {
        l
    }
}

/// At the provider: follow its redirects to the interaction, sign in as `account`, follow
/// until it sends the browser back to the hub; returns that callback URL.
async fn at_provider(
    browser: &mut Browser,
    issuer: &str,
    authorize: &str,
    account: &str,
) -> String {
    let mut url = authorize.to_string();
    let mut posted = false;
    for _ in 0..10 {
        if url.contains("/connectors/natl/callback") {
            return url;
        }
        if !posted && url.contains("/interaction/") {
            let page = browser.get(&url).await;
            assert_eq!(page.status(), StatusCode::OK);
            let res = browser
                .post_form(&format!("{url}/login"), &format!("account={account}"))
                .await;
            posted = true;
            url = location(&res, issuer);
            continue;
        }
        let res = browser.get(&url).await;
        url = location(&res, issuer);
    }
    panic!("the provider never sent the browser back: {url}");
}

async fn hub_for(provider_issuer: &str) -> OidcHub {
    let hub = oidc_hub(default_registration());
    // oidc-provider signs with the real time.
    hub.clock.advance(SystemClock.now() - NOW);
    let reg = fedhub::upstream::OidcRegistration {
        id: "natl".into(),
        display_name: "Tài khoản định danh điện tử quốc gia".into(),
        issuer: provider_issuer.into(),
        client_id: "fedhub-hub".into(),
        client_secret: "national-idp-secret-1".into(),
        scopes: Some(vec![
            "openid".into(),
            "profile".into(),
            "national_id".into(),
        ]),
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

/// Gateway → hub → provider (signed in as `account`) → hub callback. Returns the hub's reply
/// and the gateway's PKCE verifier.
async fn sign_in(hub: &OidcHub, provider: &Provider, account: &str) -> (crate::sso::Reply, String) {
    let (verifier, challenge) = pkce();
    let r = send(&hub.app, get_req(&hub.authorize_uri(&challenge, ""), &[])).await;
    let login = r.location().to_string();
    let bind = r.cookie("fedhub_login").unwrap();
    let go = send(
        &hub.app,
        http::Request::post(format!("{login}/natl"))
            .header(http::header::COOKIE, format!("fedhub_login={bind}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(go.status, StatusCode::SEE_OTHER, "{}", go.body);
    let mut browser = Browser::new();
    let back = at_provider(&mut browser, &provider.issuer, go.location(), account).await;
    let path = back.trim_start_matches("http://127.0.0.1:8080");
    let reply = send(&hub.app, get_req(path, &[("fedhub_login", &bind)])).await;
    (reply, verifier)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_as_the_national_idp_signs_a_citizen_in_to_a_gateway() {
    let provider = start_provider("http://127.0.0.1:8080/connectors/natl/callback");
    let hub = hub_for(&provider.issuer).await;
    let (reply, verifier) = sign_in(&hub, &provider, "citizen").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert!(
        reply.location().starts_with(REDIRECT),
        "{}",
        reply.location()
    );
    let code = query_of(reply.location())["code"].clone();
    let tokens = hub.redeem(&code, &verifier).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        id["national_id"], CITIZEN,
        "SoDinhDanh from the provider found the account"
    );
    assert_eq!(
        id["acr"], "urn:vn:national-idp:level2",
        "the provider's acr is carried"
    );
    assert_eq!(id["name"], "Nguyễn Văn An");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_the_provider_knows_but_the_directory_does_not_is_refused() {
    let provider = start_provider("http://127.0.0.1:8080/connectors/natl/callback");
    let hub = hub_for(&provider.issuer).await;
    let (reply, _) = sign_in(&hub, &provider, "stranger").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert!(reply.cookie("fedhub_sso").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_refusing_reaches_the_gateway_as_access_denied() {
    let provider = start_provider("http://127.0.0.1:8080/connectors/natl/callback");
    let hub = hub_for(&provider.issuer).await;
    let (reply, _) = sign_in(&hub, &provider, "refuse").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(query_of(reply.location())["error"], "access_denied");
}
