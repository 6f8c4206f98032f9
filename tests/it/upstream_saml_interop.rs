//! Interop with a real third-party SAML IdP upstream: pysaml2 (PyPI) as the IdP, driven by
//! tests/interop/pysaml2_idp.py, the hub as its SP. Chains: pysaml2 IdP → hub → pysaml2 SP
//! (SAML→SAML) and pysaml2 IdP → hub → OIDC gateway (SAML→OIDC); logout both ways.
//! pysaml2 checks times against the real clock, so the hubs here run on it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use http::{header, Request, StatusCode};
use serde_json::Value;

use crate::interop::{base64_of, interop_dir, local, python, Sp};
use crate::oidc_support::*;
use crate::sso::{get, hub_with, send, Reply, CITIZEN};
use crate::support::NOW;

const IDP_BASE: &str = "https://pysaml2-idp.example/idp";
const IDP_ENTITY: &str = "https://pysaml2-idp.example/idp/metadata";
const CONNECTOR: &str = "pysaml2";

struct Idp {
    python: PathBuf,
    dir: tempfile::TempDir,
}

impl Idp {
    fn try_run(&self, args: &[&str]) -> Result<Value, String> {
        let out = Command::new(&self.python)
            .arg(interop_dir().join("pysaml2_idp.py"))
            .args(args)
            .args(["--dir", self.dir.path().to_str().unwrap()])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
    fn run(&self, args: &[&str]) -> Value {
        self.try_run(args)
            .unwrap_or_else(|e| panic!("pysaml2 IdP {:?} failed: {e}", args.first()))
    }
    /// (Re)writes the IdP's metadata for the hub's SP metadata; returns the IdP metadata.
    fn init(&self, sp_metadata: &str) -> String {
        let file = self.dir.path().join("hub-sp.xml");
        std::fs::write(&file, sp_metadata).unwrap();
        let out = self.run(&[
            "init",
            "--entity-id",
            IDP_ENTITY,
            "--base",
            IDP_BASE,
            "--sp-metadata",
            file.to_str().unwrap(),
        ]);
        std::fs::read_to_string(out["metadata"].as_str().unwrap()).unwrap()
    }
}

/// An SP metadata good enough for the IdP's first `init` (its key must exist before the hub
/// can register it; the hub's own SP metadata replaces this at once).
fn placeholder_sp() -> String {
    let k = fedhub_metadata::keys::generate(fedhub_metadata::keys::KeyAlg::Rsa2048, "p", NOW, 1)
        .unwrap();
    use base64::Engine as _;
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://placeholder.example/sp"><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://placeholder.example/acs" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>"#,
        base64::engine::general_purpose::STANDARD.encode(k.cert_der)
    )
}

/// Registers pysaml2 as connector `pysaml2` for `rp_id`, and gives pysaml2 the hub's SP
/// metadata.
async fn connect(app: &axum::Router, store: &fedhub::store::Store, rp_id: &str) -> Idp {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let idp = Idp {
        python,
        dir: tempfile::tempdir().unwrap(),
    };
    let first = idp.init(&placeholder_sp());
    let reg = fedhub::upstream::SamlRegistration {
        id: CONNECTOR.into(),
        display_name: "IdP pysaml2".into(),
        metadata_xml: first,
        name_id_format: None,
        attribute_map: None,
    };
    store
        .write(|c| {
            fedhub::upstream::add_saml(c, &reg, NOW)?;
            fedhub::upstream::allow_for_rp(c, rp_id, &[CONNECTOR.to_string()])
        })
        .unwrap();
    let sp_md = send(app, get("/connectors/pysaml2/saml/metadata", &[])).await;
    assert_eq!(sp_md.status, StatusCode::OK, "{}", sp_md.body);
    idp.init(&sp_md.body);
    idp
}

fn user() -> String {
    serde_json::json!({
        "name_id": "pysaml2-user-42",
        "attributes": {
            "urn:fedhub:attribute:national_id": [CITIZEN],
            "urn:oid:2.16.840.1.113730.3.1.241": ["Nguyễn Văn An"],
            "urn:oid:0.9.2342.19200300.100.1.3": ["an@example.vn"]
        }
    })
    .to_string()
}

/// From the hub's login page through the chooser to pysaml2 and back to the hub's ACS.
async fn through_pysaml2(
    app: &axum::Router,
    idp: &Idp,
    start: Reply,
    sso_args: &[&str],
) -> (Reply, Value) {
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let login = start.location().to_string();
    let bind = start.cookie("fedhub_login").unwrap();
    let go = send(
        app,
        Request::post(format!("{login}/{CONNECTOR}"))
            .header(header::COOKIE, format!("fedhub_login={bind}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(go.status, StatusCode::SEE_OTHER, "{}", go.body);
    assert!(go.location().starts_with(IDP_BASE), "{}", go.location());
    let u = user();
    let mut args = vec!["sso", "--query", go.location(), "--user", &u];
    args.extend_from_slice(sso_args);
    let answer = idp.run(&args);
    assert_eq!(
        answer["acs"], "http://127.0.0.1:8080/connectors/pysaml2/saml/acs",
        "pysaml2 answers at the ACS of the hub's metadata"
    );
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", answer["saml_response"].as_str().unwrap())
        .append_pair("RelayState", answer["relay_state"].as_str().unwrap())
        .finish();
    let back = send(
        app,
        Request::post(local(answer["acs"].as_str().unwrap()))
            .header(header::COOKIE, format!("fedhub_login={bind}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body))
            .unwrap(),
    )
    .await;
    (back, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_idp_to_the_hub_to_a_pysaml2_sp_and_single_logout_both_ways() {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let sp = {
        let mut sp = Sp {
            python,
            dir: tempfile::tempdir().unwrap(),
            idp_metadata: PathBuf::new(),
        };
        sp.idp_metadata = sp.dir.path().join("hub-idp.xml");
        sp
    };
    let init = sp.run(&[
        "init",
        "--entity-id",
        "https://pysaml2-sp.example/sp",
        "--acs",
        "https://pysaml2-sp.example/acs",
        "--slo",
        "https://pysaml2-sp.example/slo",
    ]);
    let sp_metadata = std::fs::read_to_string(init["metadata"].as_str().unwrap()).unwrap();
    let store = crate::support::sqlite();
    let (app, rp_id, _) = hub_with(
        &store,
        &sp_metadata,
        false,
        Arc::new(fedhub::clock::SystemClock),
    );
    std::fs::write(
        &sp.idp_metadata,
        send(&app, get("/saml/metadata", &[])).await.body,
    )
    .unwrap();
    let idp = connect(&app, &store, &rp_id).await;

    // SAML → SAML: the assertion pysaml2 signed (AES-256-GCM encrypted for the hub) signs the
    // person in; the hub answers the pysaml2 SP with its own assertion.
    let authn = sp.with_idp("authn", &[]);
    let start = send(&app, get(&local(authn["url"].as_str().unwrap()), &[])).await;
    let (back, answer) = through_pysaml2(
        &app,
        &idp,
        start,
        &[
            "--encrypt-assertion",
            "--encryption-alg",
            "aes256-gcm",
            "--sign-response",
        ],
    )
    .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    let sso = back.cookie("fedhub_sso").unwrap();
    let acs = sp.with_idp(
        "acs",
        &["--saml-response", &base64_of(&back.saml_response())],
    );
    assert_eq!(acs["status"], "success", "{acs}");
    let attrs = acs["attributes"].to_string();
    assert!(
        attrs.contains(CITIZEN) && attrs.contains("Nguyễn Văn An"),
        "{attrs}"
    );

    // The pysaml2 SP signs out: the hub tells pysaml2 IdP (a signed LogoutRequest naming the
    // NameID and SessionIndex it issued), pysaml2 answers, the hub answers the SP.
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
    assert!(r.location().starts_with(IDP_BASE), "{}", r.location());
    let slo = idp.run(&["slo", "--query", r.location()]);
    assert_eq!(
        slo["status"], "urn:oasis:names:tc:SAML:2.0:status:Success",
        "{slo}"
    );
    assert_eq!(slo["name_id"], "pysaml2-user-42");
    assert_eq!(slo["session_index"], answer["session_index"]);
    let r = send(&app, get(&local(slo["url"].as_str().unwrap()), &[])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with("https://pysaml2-sp.example/slo"));
    let lr = sp.with_idp("logout-response", &["--query", r.location()]);
    assert_eq!(
        lr["status"], "urn:oasis:names:tc:SAML:2.0:status:Success",
        "{lr}"
    );

    // Sign in again (AES-128-CBC this time), then pysaml2 IdP signs the person out: the hub
    // ends the session, tells the pysaml2 SP, and answers pysaml2 with a signed response.
    let authn = sp.with_idp("authn", &[]);
    let start = send(&app, get(&local(authn["url"].as_str().unwrap()), &[])).await;
    let (back, _) = through_pysaml2(
        &app,
        &idp,
        start,
        &["--encrypt-assertion", "--encryption-alg", "aes128-cbc"],
    )
    .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    sp.with_idp(
        "acs",
        &["--saml-response", &base64_of(&back.saml_response())],
    );
    let idp_logout = idp.run(&["logout", "--relay-state", "rs-9"]);
    let r = send(&app, get(&local(idp_logout["url"].as_str().unwrap()), &[])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(
        r.location().starts_with("https://pysaml2-sp.example/slo"),
        "{}",
        r.location()
    );
    let told = sp.with_idp("idp-logout-request", &["--query", r.location()]);
    assert_eq!(
        told["status"], "urn:oasis:names:tc:SAML:2.0:status:Success",
        "{told}"
    );
    let r = send(
        &app,
        get(&local(told["response_url"].as_str().unwrap()), &[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with(IDP_BASE), "{}", r.location());
    let done = idp.run(&["logout-response", "--query", r.location()]);
    assert_eq!(
        done["status"], "urn:oasis:names:tc:SAML:2.0:status:Success",
        "{done}"
    );
    assert_eq!(done["in_response_to"], idp_logout["request_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_idp_to_an_oidc_gateway_and_what_the_hub_refuses_from_it() {
    let hub = oidc_hub(default_registration());
    // pysaml2 stamps the real time on its assertions.
    let real_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    hub.clock.advance(real_now - NOW);
    let idp = connect(&hub.app, &hub.store, &hub.rp_id).await;

    // SAML → OIDC, assertion signed, in clear.
    let (verifier, challenge) = pkce();
    let start = send(&hub.app, get(&hub.authorize_uri(&challenge, ""), &[])).await;
    let (back, _) = through_pysaml2(&hub.app, &idp, start, &[]).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert!(back.location().starts_with(REDIRECT), "{}", back.location());
    let tokens = hub
        .redeem(&query_of(back.location())["code"], &verifier)
        .await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["national_id"], CITIZEN);
    assert_eq!(
        id["acr"],
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    );

    // Refused, each with a page saying why: an unsigned assertion, an expired one, pysaml2's
    // default 3DES encryption; and the IdP's refusal reaches the gateway as access_denied.
    for (args, why) in [
        (vec!["--no-sign-assertion"], "must be signed"),
        (vec!["--lifetime", "-300"], "expired"),
        (vec!["--encrypt-assertion"], "tripledes"),
    ] {
        let (_, challenge) = pkce();
        let start = send(&hub.app, get(&hub.authorize_uri(&challenge, ""), &[])).await;
        let (back, _) = through_pysaml2(&hub.app, &idp, start, &args).await;
        assert_eq!(
            back.status,
            StatusCode::BAD_REQUEST,
            "{args:?}: {}",
            back.body
        );
        assert!(back.cookie("fedhub_sso").is_none());
        let last = hub.store.read(|c| fedhub::audit::tail(c, 1)).unwrap();
        assert!(
            last[0].detail.as_deref().unwrap_or("").contains(why),
            "{args:?}: {:?}",
            last[0].detail
        );
    }
    let (_, challenge) = pkce();
    let start = send(&hub.app, get(&hub.authorize_uri(&challenge, ""), &[])).await;
    let (back, _) = through_pysaml2(&hub.app, &idp, start, &["--status-error"]).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert_eq!(query_of(back.location())["error"], "access_denied");
}
