//! Interop with a real third-party SAML SP: pysaml2 (PyPI), driven by
//! tests/interop/pysaml2_sp.py. The test plays the browser between pysaml2 and the hub.
//! Needs python3 and xmlsec1 (scripts/ensure-deps) and PyPI for the first venv build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use axum::body::Body;
use http::{header, Request, StatusCode};
use serde_json::Value;

use crate::sso::{get, hub_with, send, Reply, CITIZEN};

const ENTITY: &str = "https://pysaml2-sp.example/sp";
const ACS: &str = "https://pysaml2-sp.example/acs";
const SLO: &str = "https://pysaml2-sp.example/slo";

pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// The venv's python (built on first use).
pub fn python() -> PathBuf {
    let out = Command::new(interop_dir().join("setup-venv"))
        .output()
        .expect("run tests/interop/setup-venv");
    assert!(
        out.status.success(),
        "setup-venv failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(stdout.lines().last().unwrap().trim())
}

pub struct Sp {
    pub python: PathBuf,
    pub dir: tempfile::TempDir,
    pub idp_metadata: PathBuf,
}

impl Sp {
    pub fn run(&self, args: &[&str]) -> Value {
        let out = Command::new(&self.python)
            .arg(interop_dir().join("pysaml2_sp.py"))
            .args(args)
            .args(["--dir", self.dir.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pysaml2 {:?} failed: {}",
            args.first(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
    pub fn with_idp(&self, cmd: &str, extra: &[&str]) -> Value {
        let mut args = vec![cmd, "--idp-metadata", self.idp_metadata.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

/// Path and query of a URL pointing at the hub.
pub fn local(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

async fn login(app: &axum::Router, start: Reply) -> Reply {
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let page = start.location().to_string();
    let bind = start.cookie("fedhub_login").unwrap();
    let form = Request::post(format!("{page}/dev"))
        .header(header::COOKIE, format!("fedhub_login={bind}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("national_id={CITIZEN}")))
        .unwrap();
    send(app, form).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_signs_in_and_out_through_the_hub() {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut sp = Sp {
        python,
        dir,
        idp_metadata: PathBuf::new(),
    };
    let init = sp.run(&["init", "--entity-id", ENTITY, "--acs", ACS, "--slo", SLO]);
    let sp_metadata = std::fs::read_to_string(init["metadata"].as_str().unwrap()).unwrap();

    // pysaml2 checks times against the real clock: the hub runs on it too.
    let store = crate::support::sqlite();
    let (app, _, _) = hub_with(
        &store,
        &sp_metadata,
        false,
        Arc::new(fedhub::clock::SystemClock),
    );
    let md = send(&app, get("/saml/metadata", &[])).await;
    assert_eq!(md.status, StatusCode::OK);
    sp.idp_metadata = sp.dir.path().join("idp-metadata.xml");
    std::fs::write(&sp.idp_metadata, &md.body).unwrap();

    // SP-initiated sign-in, HTTP-Redirect with a signed request.
    let authn = sp.with_idp("authn", &["--relay-state", "/home"]);
    let start = send(&app, get(&local(authn["url"].as_str().unwrap()), &[])).await;
    let done = login(&app, start).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    // pysaml2 publishes an encryption key: the assertion travels encrypted.
    assert!(
        done.saml_response().contains("<saml:EncryptedAssertion")
            && !done.saml_response().contains(CITIZEN)
    );
    let sso = done.cookie("fedhub_sso").unwrap();
    let acs = sp.with_idp(
        "acs",
        &[
            "--saml-response",
            &base64_of(&done.saml_response()),
            "--relay-state",
            "/home",
        ],
    );
    assert_eq!(acs["status"], "success", "{acs}");
    assert_eq!(
        acs["name_id_format"],
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    );
    let attrs = acs["attributes"].to_string();
    assert!(
        attrs.contains(CITIZEN) && attrs.contains("Nguyễn Văn An") && attrs.contains("citizen"),
        "{attrs}"
    );

    // A second request rides the SSO session.
    let again = sp.with_idp("authn", &[]);
    let answered = send(
        &app,
        get(
            &local(again["url"].as_str().unwrap()),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_eq!(answered.status, StatusCode::OK);
    assert_eq!(
        sp.with_idp(
            "acs",
            &["--saml-response", &base64_of(&answered.saml_response())]
        )["status"],
        "success"
    );

    // SP-initiated logout: pysaml2 verifies the hub's signed LogoutResponse.
    let logout = sp.with_idp("logout", &[]);
    let r = send(
        &app,
        get(
            &local(logout["url"].as_str().unwrap()),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with(SLO));
    let lr = sp.with_idp("logout-response", &["--query", r.location()]);
    assert_eq!(
        lr["status"], "urn:oasis:names:tc:SAML:2.0:status:Success",
        "{lr}"
    );

    // IsPassive without a session: pysaml2 reads a NoPassive refusal.
    let passive = sp.with_idp("authn", &["--passive"]);
    let refused = send(&app, get(&local(passive["url"].as_str().unwrap()), &[])).await;
    let status = sp.with_idp(
        "acs",
        &["--saml-response", &base64_of(&refused.saml_response())],
    );
    assert_eq!(
        status["second_status"], "urn:oasis:names:tc:SAML:2.0:status:NoPassive",
        "{status}"
    );

    // Sign in again, then sign out everywhere from the hub: pysaml2 accepts the hub's
    // LogoutRequest and answers; the hub confirms.
    let authn = sp.with_idp("authn", &[]);
    let done = login(
        &app,
        send(&app, get(&local(authn["url"].as_str().unwrap()), &[])).await,
    )
    .await;
    let sso = done.cookie("fedhub_sso").unwrap();
    assert_eq!(
        sp.with_idp(
            "acs",
            &["--saml-response", &base64_of(&done.saml_response())]
        )["status"],
        "success"
    );
    let out = send(
        &app,
        Request::post("/saml/logout")
            .header(header::COOKIE, format!("fedhub_sso={sso}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let answer = sp.with_idp("idp-logout-request", &["--query", out.location()]);
    assert_eq!(
        answer["status"], "urn:oasis:names:tc:SAML:2.0:status:Success",
        "{answer}"
    );
    let finished = send(
        &app,
        get(&local(answer["response_url"].as_str().unwrap()), &[]),
    )
    .await;
    assert_eq!(finished.status, StatusCode::OK, "{}", finished.body);
    assert!(finished.body.contains("Đã đăng xuất"));
}

pub fn base64_of(xml: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(xml)
}
