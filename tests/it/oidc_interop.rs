//! Interop with a certified third-party Relying Party: openid-client (npm, by panva),
//! driven by tests/interop/oidc/rp.mjs against the hub served on a loopback port. The script
//! plays the RP and the browser: discovery, code + PKCE, ID token validation, userinfo, SSO,
//! refresh with rotation and reuse detection, RP-initiated logout, back-channel logout.
//! Needs node >= 20 and npm (scripts/ensure-deps) and the npm registry on first use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use fedhub::clock::{Clock, SystemClock};
use fedhub::rp::oidc::{AuthMethod, OidcRegistration};
use serde_json::Value;

use crate::oidc_support::{default_registration, oidc_hub_at};
use crate::sso::CITIZEN;
use crate::support::{self, NOW};

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/oidc")
}

/// The node_modules directory (installed once per test binary).
fn node_modules() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| crate::support::setup_node("oidc"))
        .clone()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A key pair made by the RP side's own library (jose): (private JWK file, public JWK Set).
fn rp_key(dir: &Path, alg: &str) -> (PathBuf, Value) {
    let script = format!(
        r#"const jose = require('jose');
(async () => {{
  const {{ publicKey, privateKey }} = await jose.generateKeyPair('{alg}', {{ extractable: true }});
  const pub = await jose.exportJWK(publicKey);
  const priv = await jose.exportJWK(privateKey);
  pub.kid = priv.kid = 'rp-key-1'; pub.alg = priv.alg = '{alg}'; pub.use = 'sig';
  console.log(JSON.stringify({{ pub, priv }}));
}})();"#
    );
    let out = Command::new("node")
        .args(["-e", &script])
        .env("NODE_PATH", node_modules())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = dir.join("rp-private.jwk");
    std::fs::write(&file, v["priv"].to_string()).unwrap();
    (file, serde_json::json!({ "keys": [v["pub"]] }))
}

/// Runs the `full` scenario for one client configuration; returns the steps by name.
async fn run(alg: &str, auth: &str) -> std::collections::HashMap<String, Value> {
    let modules = node_modules();
    let port = free_port();
    let backchannel_port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let redirect = "http://127.0.0.1:9/cb";
    let bye = "http://127.0.0.1:9/signed-out";
    let tmp = tempfile::tempdir().unwrap();
    let mut reg: OidcRegistration = default_registration();
    reg.client_id = Some(format!("openid-client-{}", alg.to_lowercase()));
    reg.redirect_uris = vec![redirect.into()];
    reg.post_logout_redirect_uris = vec![bye.into()];
    reg.backchannel_logout_uri = Some(format!("http://127.0.0.1:{backchannel_port}/backchannel"));
    reg.signing_alg = Some(alg.into());
    let mut private_jwk = None;
    match auth {
        "private_key_jwt" => {
            let (file, jwks) = rp_key(tmp.path(), if alg == "EdDSA" { "EdDSA" } else { "ES256" });
            reg.token_endpoint_auth_method = Some(AuthMethod::PrivateKeyJwt);
            reg.jwks = Some(jwks);
            private_jwk = Some(file);
        }
        "post" => reg.token_endpoint_auth_method = Some(AuthMethod::ClientSecretPost),
        _ => reg.token_endpoint_auth_method = Some(AuthMethod::ClientSecretBasic),
    }
    let hub = oidc_hub_at(support::sqlite(), &issuer, reg);
    // openid-client checks iat/exp against real time.
    hub.clock.advance(SystemClock.now() - NOW);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(fedhub::web::serve_app(
        listener,
        hub.app.clone(),
        async {
            let _ = stopped.await;
        },
        std::time::Duration::from_secs(1),
    ));
    let mut cmd = Command::new("node");
    cmd.arg(interop_dir().join("rp.mjs"))
        .arg("full")
        .args(["--issuer", &issuer])
        .args(["--client-id", &hub.client_id])
        .args(["--auth", auth])
        .args(["--alg", alg])
        .args(["--redirect-uri", redirect])
        .args(["--post-logout-redirect-uri", bye])
        .args(["--national-id", CITIZEN])
        .args(["--backchannel-port", &backchannel_port.to_string()])
        .env("NODE_PATH", &modules);
    if let Some(secret) = &hub.secret {
        cmd.args(["--client-secret", secret]);
    }
    if let Some(file) = &private_jwk {
        cmd.arg("--private-jwk").arg(file);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let _ = stop.send(());
    let _ = server.await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "openid-client ({alg}, {auth}) failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: std::collections::HashMap<String, Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| (v["step"].as_str().unwrap_or("").to_string(), v))
        .collect();
    assert_eq!(steps["done"]["ok"], true, "{stdout}");
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_rs256_with_client_secret_basic() {
    let steps = run("RS256", "basic").await;
    let claims = &steps["token"];
    assert!(
        claims.to_string().contains(CITIZEN),
        "national_id released: {claims}"
    );
    assert_eq!(steps["refresh_reuse"]["ok"], true);
    assert_eq!(steps["backchannel"]["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_es256_with_private_key_jwt() {
    run("ES256", "private_key_jwt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_ps256_with_client_secret_post() {
    run("PS256", "post").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_eddsa_with_private_key_jwt() {
    run("EdDSA", "private_key_jwt").await;
}
