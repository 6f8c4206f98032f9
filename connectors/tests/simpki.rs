//! The SIM-PKI connector's HTTP side against a tiny fake provider that answers what each test
//! scripts and records what it was sent. The real simulator (certificates, delays, refusals)
//! and the end-to-end sign-in with `certificate::verify` are tested in
//! `broker/src/simpki_simulator.rs`, as connectors cannot depend on the broker.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use fedhub_connectors::certificate::{Challenge, SignedChallenge};
use fedhub_connectors::simpki::{
    self, as_simpki, PollResult, SimPkiProvider, SimPkiSettings, ACR, AMR,
};
use fedhub_connectors::{Authn, ConnectorError, UpstreamIdentity};
use http::StatusCode;

const KEY: &str = "provider-key";
const T: Duration = Duration::from_secs(5);
const MSISDN: &str = "+84912345678";

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    body: String,
}

#[derive(Default)]
struct Script {
    answers: VecDeque<(u16, String, u64)>,
    seen: Vec<Seen>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Script>>);

impl Fake {
    fn answer(&self, status: u16, body: &str) -> &Self {
        self.answer_after(status, body, 0)
    }
    fn answer_after(&self, status: u16, body: &str, delay_ms: u64) -> &Self {
        self.0
            .lock()
            .unwrap()
            .answers
            .push_back((status, body.to_string(), delay_ms));
        self
    }
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().seen.clone()
    }
}

async fn handle(State(fake): State<Fake>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let (status, answer, delay) = {
        let mut script = fake.0.lock().unwrap();
        script.seen.push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            authorization: parts
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string()),
            body: String::from_utf8(body.to_vec()).unwrap(),
        });
        script.answers.pop_front().unwrap_or((500, "{}".into(), 0))
    };
    tokio::time::sleep(Duration::from_millis(delay)).await;
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        answer,
    )
        .into_response()
}

async fn fake() -> (Fake, SimPkiProvider) {
    let fake = Fake::default();
    let app = Router::new().fallback(handle).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/api/",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, SimPkiProvider::new(&url, KEY.into()).unwrap())
}

fn challenge() -> String {
    Challenge::with_nonce(&[7u8; 32], "https://sso.example.gov.vn", 1_790_000_000, 300)
        .unwrap()
        .to_signing_string()
}

async fn start(provider: &SimPkiProvider) -> Result<String, ConnectorError> {
    simpki::start(
        &reqwest::Client::new(),
        provider,
        MSISDN,
        &challenge(),
        "Đăng nhập Cổng DVC",
        T,
    )
    .await
}

async fn poll(provider: &SimPkiProvider) -> Result<PollResult, ConnectorError> {
    simpki::poll(&reqwest::Client::new(), provider, "tx-1", &challenge(), T).await
}

#[tokio::test]
async fn start_sends_the_documented_request_and_returns_the_transaction() {
    let (fake, provider) = fake().await;
    fake.answer(202, r#"{"transaction_id": "tx-1"}"#);
    assert_eq!(start(&provider).await.unwrap(), "tx-1");
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/api/v1/sign");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some("Bearer provider-key")
    );
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "msisdn": MSISDN,
            "challenge": challenge(),
            "display_text": "Đăng nhập Cổng DVC",
        })
    );
}

#[tokio::test]
async fn bad_arguments_are_refused_without_calling_the_provider() {
    let (fake, provider) = fake().await;
    let http = reqwest::Client::new();
    for msisdn in [
        "0912345678",
        "+8491234567",
        "+849123456789",
        "+84 912345678",
        "",
    ] {
        let err = simpki::start(&http, &provider, msisdn, &challenge(), "Đăng nhập", T)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ConnectorError::Invalid(_)),
            "{msisdn}: {err:?}"
        );
    }
    let err = simpki::start(
        &http,
        &provider,
        MSISDN,
        "sign this invoice",
        "Đăng nhập",
        T,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectorError::Config(_)), "{err:?}");
    for text in ["", "a\nb"] {
        assert!(
            simpki::start(&http, &provider, MSISDN, &challenge(), text, T)
                .await
                .is_err()
        );
    }
    let err = simpki::poll(&http, &provider, "../admin", &challenge(), T)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Invalid(_)), "{err:?}");
    assert!(fake.seen().is_empty());
}

#[tokio::test]
async fn provider_errors_map_to_connector_errors() {
    let (fake, provider) = fake().await;
    fake.answer(404, r#"{"error": "unknown_subscriber"}"#)
        .answer(400, r#"{"error": "invalid_request"}"#)
        .answer(401, r#"{"error": "unauthorized"}"#)
        .answer(503, "down for maintenance")
        .answer(202, "not json")
        .answer(202, r#"{"transaction_id": "a/b"}"#)
        .answer(202, r#"{"id": "tx-1"}"#);
    let e = start(&provider).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Refused(ref m) if m.contains("unknown_subscriber")));
    let e = start(&provider).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Invalid(ref m) if m.contains("invalid_request")));
    assert!(matches!(
        start(&provider).await,
        Err(ConnectorError::Config(_))
    ));
    assert!(matches!(
        start(&provider).await,
        Err(ConnectorError::Unavailable(_))
    ));
    for _ in 0..3 {
        let e = start(&provider).await.unwrap_err();
        assert!(matches!(e, ConnectorError::Invalid(_)), "{e:?}");
    }
}

#[tokio::test]
async fn an_unreachable_or_slow_provider_is_unavailable() {
    let (fake, provider) = fake().await;
    fake.answer_after(202, r#"{"transaction_id": "tx-1"}"#, 2_000);
    let err = simpki::start(
        &reqwest::Client::new(),
        &provider,
        MSISDN,
        &challenge(),
        "Đăng nhập",
        Duration::from_millis(100),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable(ref m) if m.contains("timed out")));

    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let gone = SimPkiProvider::new(&format!("http://127.0.0.1:{port}"), KEY.into()).unwrap();
    assert!(matches!(
        start(&gone).await,
        Err(ConnectorError::Unavailable(_))
    ));
    assert!(matches!(
        poll(&gone).await,
        Err(ConnectorError::Unavailable(_))
    ));
}

#[tokio::test]
async fn poll_reads_every_status() {
    let (fake, provider) = fake().await;
    fake.answer(200, r#"{"status": "pending"}"#)
        .answer(200, r#"{"status": "refused"}"#)
        .answer(200, r#"{"status": "expired"}"#)
        .answer(
            200,
            r#"{"status": "signed", "signature": "c2ln", "chain": ["bGVhZg==", "Y2E="]}"#,
        );
    assert_eq!(poll(&provider).await.unwrap(), PollResult::Pending);
    assert_eq!(poll(&provider).await.unwrap(), PollResult::Refused);
    assert_eq!(poll(&provider).await.unwrap(), PollResult::Expired);
    assert_eq!(
        poll(&provider).await.unwrap(),
        PollResult::Signed(SignedChallenge {
            challenge: challenge(),
            signature: "c2ln".into(),
            chain: vec!["bGVhZg==".into(), "Y2E=".into()],
        })
    );
    let seen = fake.seen();
    assert!(seen.iter().all(|s| s.method == "GET"
        && s.path == "/api/v1/sign/tx-1"
        && s.authorization.as_deref() == Some("Bearer provider-key")));
}

#[tokio::test]
async fn malformed_statuses_are_invalid() {
    let (fake, provider) = fake().await;
    for body in [
        r#"{"status": "signed", "chain": ["bGVhZg=="]}"#,
        r#"{"status": "signed", "signature": "c2ln"}"#,
        r#"{"status": "signed", "signature": "c2ln", "chain": []}"#,
        r#"{"status": "signed", "signature": "c2ln", "chain": ["not base64!"]}"#,
        r#"{"status": "signed", "signature": "c2ln", "chain": [1]}"#,
        r#"{"status": "done"}"#,
        r#"{}"#,
        r#"["pending"]"#,
    ] {
        fake.answer(200, body);
        let err = poll(&provider).await.unwrap_err();
        assert!(matches!(err, ConnectorError::Invalid(_)), "{body}: {err:?}");
    }
    fake.answer(404, r#"{"error": "unknown_transaction"}"#);
    assert!(matches!(
        poll(&provider).await,
        Err(ConnectorError::Invalid(_))
    ));
}

#[test]
fn settings_flatten_the_certificate_configuration() {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let json = serde_json::json!({
        "provider_url": "https://mobile-ca.example.vn/api",
        "trust_anchors_pem": [pem],
        "revocation": "allow_unknown",
    })
    .to_string();
    let settings: SimPkiSettings = serde_json::from_str(&json).unwrap();
    assert_eq!(settings.provider_url, "https://mobile-ca.example.vn/api");
    assert_eq!(
        settings.certificate.trust_anchors_pem,
        vec![pem.to_string()]
    );
    assert_eq!(settings.certificate.challenge_ttl_secs, 300);
    let back: SimPkiSettings =
        serde_json::from_str(&serde_json::to_string(&settings).unwrap()).unwrap();
    assert_eq!(back, settings);
    // A typo in a certificate field is still refused.
    let typo = json.replace("revocation", "revocaton");
    assert!(serde_json::from_str::<SimPkiSettings>(&typo).is_err());
    // The provider must be https.
    let http = json.replace("https://", "http://");
    assert!(matches!(
        SimPkiSettings::parse(&http),
        Err(ConnectorError::Config(_))
    ));
    let p = settings.provider("k".into()).unwrap();
    assert_eq!(p.base_url, "https://mobile-ca.example.vn/api");
}

#[test]
fn a_verified_identity_is_described_as_simpki() {
    let id = UpstreamIdentity {
        connector: "simpki".into(),
        issuer: "urn:fedhub:connector:certificate".into(),
        subject: "CN=Root;02".into(),
        attributes: Default::default(),
        authn: Authn {
            auth_time: 42,
            acr: Some("urn:fedhub:acr:certificate".into()),
            amr: vec!["hwk".into(), "pki".into()],
        },
        session: None,
    };
    let id = as_simpki(id);
    assert_eq!(id.authn.acr.as_deref(), Some(ACR));
    assert_eq!(id.authn.amr, AMR.to_vec());
    assert_eq!(id.authn.auth_time, 42);
    assert_eq!(id.subject, "CN=Root;02");
}
