//! A simulated SIM-PKI signing provider (the API of `connectors/SIMPKI.md`), for the demo and
//! the tests. It keeps everything in memory: a test root CA "SIM-PKI Test Root", made when the
//! simulator is, and one P-256 leaf certificate per subscriber (`CN=<name>`,
//! `UID=CCCD:<national id>`, clientAuth), made the first time that subscriber signs.
//!
//! What happens depends on the phone number:
//!
//! * ends in `0`: the person declines: `refused` once `delay` has passed;
//! * ends in `8`: the person never answers and the provider gives up: `expired` after `delay`;
//! * ends in `9`: the person never answers: `pending` for ever (the hub's timeout);
//! * otherwise, a subscriber added with [`Simulator::add_subscriber`]: `signed` once `delay`
//!   has passed (real time); anyone else: `404 unknown_subscriber` at once.
//!
//! The root publishes an empty CRL (revocations made with [`Simulator::revoke`] are listed) at
//! `{base}/crl/root.crl`, and the leaves carry that URL as their CRL distribution point, so the
//! hub checks revocation for real. `{base}` is the address [`serve`] listens on, unless
//! [`Simulator::set_public_url`] said otherwise before the first leaf was made.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fedhub_connectors::certificate::{sign_challenge, Challenge};
use fedhub_connectors::simpki::is_msisdn;
use http::{header, HeaderMap, StatusCode};
use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{
    X509Builder, X509CrlBuilder, X509Extension, X509NameBuilder, X509RevokedBuilder, X509,
};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The root CA's common name.
pub const ROOT_NAME: &str = "SIM-PKI Test Root";
const DAY: i64 = 86_400;

/// The simulated provider. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    delay: Duration,
    api_key: String,
    root_key: PKey<Private>,
    root: X509,
    root_pem: String,
    state: Mutex<SimState>,
}

#[derive(Default)]
struct SimState {
    public_url: Option<String>,
    subscribers: HashMap<String, Subscriber>,
    transactions: HashMap<String, Transaction>,
    /// Serial numbers listed in the root's CRL.
    revoked: Vec<u64>,
    next_serial: u64,
}

struct Subscriber {
    national_id: String,
    name: String,
    leaf: Option<Leaf>,
}

struct Leaf {
    serial: u64,
    key_pem: Vec<u8>,
    cert_pem: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Sign,
    Refuse,
    Expire,
    Never,
}

struct Transaction {
    msisdn: String,
    challenge: String,
    started: Instant,
    behaviour: Behaviour,
    /// The signed answer, once made (the same one on every later poll).
    answer: Option<Value>,
}

fn ossl(e: openssl::error::ErrorStack) -> Error {
    Error::internal(format!("SIM-PKI simulator: {e}"))
}

fn new_key() -> Result<PKey<Private>> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(ossl)?;
    PKey::from_ec_key(EcKey::generate(&group).map_err(ossl)?).map_err(ossl)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A DER TLV with a definite length.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn extension(oid: &str, der: &[u8]) -> Result<X509Extension> {
    X509Extension::new_from_der(
        &*(Asn1Object::from_str(oid).map_err(ossl)?),
        false,
        &*(Asn1OctetString::new_from_bytes(der).map_err(ossl)?),
    )
    .map_err(ossl)
}

fn serial(n: u64) -> Result<openssl::asn1::Asn1Integer> {
    BigNum::from_dec_str(&n.to_string())
        .and_then(|b| b.to_asn1_integer())
        .map_err(ossl)
}

impl Simulator {
    /// A simulator that answers `delay` after each sign request, for callers presenting
    /// `api_key` as a bearer token. Makes the root CA.
    pub fn new(delay: Duration, api_key: String) -> Result<Simulator> {
        if api_key.is_empty() {
            return Err(Error::invalid("api_key", "must not be empty"));
        }
        let root_key = new_key()?;
        let mut name = X509NameBuilder::new().map_err(ossl)?;
        name.append_entry_by_nid(Nid::COMMONNAME, ROOT_NAME)
            .map_err(ossl)?;
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "fedhub demo")
            .map_err(ossl)?;
        name.append_entry_by_nid(Nid::COUNTRYNAME, "VN")
            .map_err(ossl)?;
        let name = name.build();
        let now = unix_now();
        let mut b = X509Builder::new().map_err(ossl)?;
        b.set_version(2).map_err(ossl)?;
        b.set_serial_number(&*(serial(1)?)).map_err(ossl)?;
        b.set_subject_name(&name).map_err(ossl)?;
        b.set_issuer_name(&name).map_err(ossl)?;
        b.set_pubkey(&root_key).map_err(ossl)?;
        b.set_not_before(&*(Asn1Time::from_unix(now - DAY).map_err(ossl)?))
            .map_err(ossl)?;
        b.set_not_after(&*(Asn1Time::from_unix(now + 3650 * DAY).map_err(ossl)?))
            .map_err(ossl)?;
        b.append_extension(
            BasicConstraints::new()
                .critical()
                .ca()
                .build()
                .map_err(ossl)?,
        )
        .map_err(ossl)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .map_err(ossl)?,
        )
        .map_err(ossl)?;
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .map_err(ossl)?;
        b.append_extension(ski).map_err(ossl)?;
        b.sign(&root_key, MessageDigest::sha256()).map_err(ossl)?;
        let root = b.build();
        let root_pem = String::from_utf8(root.to_pem().map_err(ossl)?).map_err(Error::internal)?;
        Ok(Simulator {
            inner: Arc::new(Inner {
                delay,
                api_key,
                root_key,
                root,
                root_pem,
                state: Mutex::new(SimState {
                    next_serial: 2,
                    ..SimState::default()
                }),
            }),
        })
    }

    /// The root CA certificate in PEM: the connector's trust anchor.
    pub fn ca_pem(&self) -> String {
        self.inner.root_pem.clone()
    }

    /// Where the simulator is reached (`http://127.0.0.1:port`), used in the leaves' CRL
    /// distribution point. [`serve`] sets it from its listener unless already set.
    pub fn set_public_url(&self, url: &str) {
        self.inner.state.lock().public_url = Some(url.trim_end_matches('/').to_string());
    }

    /// The address set by [`set_public_url`](Self::set_public_url) or [`serve`].
    pub fn public_url(&self) -> Option<String> {
        self.inner.state.lock().public_url.clone()
    }

    /// Register a person who will confirm sign requests to `msisdn` (`+84` and 9 digits;
    /// `national_id` 12 digits, a CCCD number).
    pub fn add_subscriber(&self, msisdn: &str, national_id: &str, name: &str) -> Result<()> {
        if !is_msisdn(msisdn) {
            return Err(Error::invalid("msisdn", "must be +84 and 9 digits"));
        }
        if national_id.len() != 12 || !national_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid("national_id", "must be 12 digits (CCCD)"));
        }
        if name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        self.inner.state.lock().subscribers.insert(
            msisdn.to_string(),
            Subscriber {
                national_id: national_id.to_string(),
                name: name.to_string(),
                leaf: None,
            },
        );
        Ok(())
    }

    /// List the subscriber's certificate (made now if it was not yet) in the root's CRL.
    pub fn revoke(&self, msisdn: &str) -> Result<()> {
        let mut state = self.inner.state.lock();
        let (_, _, serial) = self.leaf_for(&mut state, msisdn)?;
        if !state.revoked.contains(&serial) {
            state.revoked.push(serial);
        }
        Ok(())
    }

    /// The root's current CRL (DER): v2, valid for a day from now, listing revoked leaves.
    pub fn crl_der(&self) -> Result<Vec<u8>> {
        let revoked = self.inner.state.lock().revoked.clone();
        let now = unix_now();
        let mut b = X509CrlBuilder::new().map_err(ossl)?;
        b.set_issuer_name(self.inner.root.subject_name())
            .map_err(ossl)?;
        b.set_last_update(&*(Asn1Time::from_unix(now - 60).map_err(ossl)?))
            .map_err(ossl)?;
        b.set_next_update(&*(Asn1Time::from_unix(now + DAY).map_err(ossl)?))
            .map_err(ossl)?;
        for n in revoked {
            let mut r = X509RevokedBuilder::new().map_err(ossl)?;
            r.set_serial_number(&*(serial(n)?)).map_err(ossl)?;
            r.set_revocation_date(&*(Asn1Time::from_unix(now - 60).map_err(ossl)?))
                .map_err(ossl)?;
            b.add_revoked(r.build()).map_err(ossl)?;
        }
        let key_id = self
            .inner
            .root
            .subject_key_id()
            .ok_or_else(|| Error::internal("SIM-PKI simulator: the root has no key id"))?
            .as_slice()
            .to_vec();
        // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] }
        b.append_extension(extension(
            "2.5.29.35",
            &der_tlv(0x30, &der_tlv(0x80, &key_id)),
        )?)
        .map_err(ossl)?;
        // CRLNumber: the time, so each CRL's number grows.
        let number = u64::try_from(now).unwrap_or(1).to_be_bytes();
        let start = number.iter().position(|b| *b != 0).unwrap_or(7);
        let mut content = Vec::new();
        if number.get(start).is_some_and(|b| b & 0x80 != 0) {
            content.push(0u8);
        }
        content.extend_from_slice(number.get(start..).unwrap_or(&[1]));
        b.append_extension(extension("2.5.29.20", &der_tlv(0x02, &content))?)
            .map_err(ossl)?;
        b.sign(&self.inner.root_key, MessageDigest::sha256())
            .map_err(ossl)?;
        b.build().and_then(|c| c.to_der()).map_err(ossl)
    }

    /// The router of the provider API (see `connectors/SIMPKI.md`).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/sign", post(sign))
            .route("/v1/sign/{transaction_id}", get(status))
            .route("/crl/root.crl", get(crl))
            .route("/ca.pem", get(ca))
            .with_state(self.clone())
    }

    /// The subscriber's leaf (key PEM, certificate PEM, serial), made on first use.
    fn leaf_for(&self, state: &mut SimState, msisdn: &str) -> Result<(Vec<u8>, Vec<u8>, u64)> {
        let crl_url = state
            .public_url
            .as_ref()
            .map(|base| format!("{base}/crl/root.crl"));
        let serial_no = state.next_serial;
        let sub = state
            .subscribers
            .get_mut(msisdn)
            .ok_or_else(|| Error::not_found("subscriber", msisdn))?;
        if let Some(leaf) = &sub.leaf {
            return Ok((leaf.key_pem.clone(), leaf.cert_pem.clone(), leaf.serial));
        }
        let leaf = self.issue_leaf(serial_no, &sub.name, &sub.national_id, crl_url.as_deref())?;
        let out = (leaf.key_pem.clone(), leaf.cert_pem.clone(), leaf.serial);
        sub.leaf = Some(leaf);
        state.next_serial += 1;
        Ok(out)
    }

    fn issue_leaf(
        &self,
        serial_no: u64,
        name: &str,
        national_id: &str,
        crl_url: Option<&str>,
    ) -> Result<Leaf> {
        let key = new_key()?;
        let mut subject = X509NameBuilder::new().map_err(ossl)?;
        subject
            .append_entry_by_nid(Nid::COMMONNAME, name)
            .map_err(ossl)?;
        subject
            .append_entry_by_nid(Nid::USERID, &format!("CCCD:{national_id}"))
            .map_err(ossl)?;
        let subject = subject.build();
        let now = unix_now();
        let root = &self.inner.root;
        let mut b = X509Builder::new().map_err(ossl)?;
        b.set_version(2).map_err(ossl)?;
        b.set_serial_number(&*(serial(serial_no)?)).map_err(ossl)?;
        b.set_subject_name(&subject).map_err(ossl)?;
        b.set_issuer_name(root.subject_name()).map_err(ossl)?;
        b.set_pubkey(&key).map_err(ossl)?;
        b.set_not_before(&*(Asn1Time::from_unix(now - 3600).map_err(ossl)?))
            .map_err(ossl)?;
        b.set_not_after(&*(Asn1Time::from_unix(now + 365 * DAY).map_err(ossl)?))
            .map_err(ossl)?;
        b.append_extension(BasicConstraints::new().critical().build().map_err(ossl)?)
            .map_err(ossl)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .non_repudiation()
                .build()
                .map_err(ossl)?,
        )
        .map_err(ossl)?;
        b.append_extension(
            ExtendedKeyUsage::new()
                .client_auth()
                .build()
                .map_err(ossl)?,
        )
        .map_err(ossl)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(root), None))
            .map_err(ossl)?;
        b.append_extension(aki).map_err(ossl)?;
        if let Some(url) = crl_url {
            // CRLDistributionPoints ::= SEQUENCE { DistributionPoint { [0] { fullName [0] { URI } } } }
            let uri = der_tlv(0x86, url.as_bytes());
            let der = der_tlv(0x30, &der_tlv(0x30, &der_tlv(0xa0, &der_tlv(0xa0, &uri))));
            b.append_extension(extension("2.5.29.31", &der)?)
                .map_err(ossl)?;
        }
        b.sign(&self.inner.root_key, MessageDigest::sha256())
            .map_err(ossl)?;
        let cert = b.build();
        Ok(Leaf {
            serial: serial_no,
            key_pem: key.private_key_to_pem_pkcs8().map_err(ossl)?,
            cert_pem: cert.to_pem().map_err(ossl)?,
        })
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let expected = format!("Bearer {}", self.inner.api_key);
        let given = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        given.len() == expected.len()
            && given
                .iter()
                .zip(expected.as_bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({ "error": code }))).into_response()
}

#[derive(Deserialize)]
struct SignRequest {
    msisdn: String,
    challenge: String,
    display_text: String,
}

async fn sign(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    if !sim.authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let Ok(req) = serde_json::from_slice::<SignRequest>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    if !is_msisdn(&req.msisdn)
        || Challenge::parse(&req.challenge).is_err()
        || req.display_text.trim().is_empty()
    {
        return error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let mut state = sim.inner.state.lock();
    let behaviour = match req.msisdn.as_bytes().last() {
        Some(b'0') => Behaviour::Refuse,
        Some(b'8') => Behaviour::Expire,
        Some(b'9') => Behaviour::Never,
        _ if state.subscribers.contains_key(&req.msisdn) => Behaviour::Sign,
        _ => return error(StatusCode::NOT_FOUND, "unknown_subscriber"),
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    tracing::info!(msisdn = %req.msisdn, transaction = %id, text = %req.display_text, "SIM-PKI simulator: sign request");
    state.transactions.insert(
        id.clone(),
        Transaction {
            msisdn: req.msisdn,
            challenge: req.challenge,
            started: Instant::now(),
            behaviour,
            answer: None,
        },
    );
    (StatusCode::ACCEPTED, Json(json!({ "transaction_id": id }))).into_response()
}

async fn status(
    State(sim): State<Simulator>,
    Path(transaction_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !sim.authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let mut state = sim.inner.state.lock();
    let Some(tx) = state.transactions.get(&transaction_id) else {
        return error(StatusCode::NOT_FOUND, "unknown_transaction");
    };
    if let Some(answer) = &tx.answer {
        return Json(answer.clone()).into_response();
    }
    if tx.behaviour == Behaviour::Never || tx.started.elapsed() < sim.inner.delay {
        return Json(json!({ "status": "pending" })).into_response();
    }
    let answer = match tx.behaviour {
        Behaviour::Refuse => json!({ "status": "refused" }),
        Behaviour::Expire | Behaviour::Never => json!({ "status": "expired" }),
        Behaviour::Sign => {
            let (msisdn, challenge) = (tx.msisdn.clone(), tx.challenge.clone());
            let signed = sim
                .leaf_for(&mut state, &msisdn)
                .map_err(|e| e.to_string())
                .and_then(|(key_pem, cert_pem, _)| {
                    sign_challenge(&challenge, &key_pem, &cert_pem).map_err(|e| e.to_string())
                });
            match signed {
                Ok(s) => json!({ "status": "signed", "signature": s.signature, "chain": s.chain }),
                Err(e) => {
                    tracing::error!(error = %e, "SIM-PKI simulator: signing failed");
                    return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
                }
            }
        }
    };
    if let Some(tx) = state.transactions.get_mut(&transaction_id) {
        tx.answer = Some(answer.clone());
    }
    Json(answer).into_response()
}

async fn crl(State(sim): State<Simulator>) -> Response {
    match sim.crl_der() {
        Ok(der) => ([(header::CONTENT_TYPE, "application/pkix-crl")], der).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "SIM-PKI simulator: CRL failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "server_error")
        }
    }
}

async fn ca(State(sim): State<Simulator>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        sim.ca_pem(),
    )
        .into_response()
}

/// Serve the simulator on `listener` until the task is dropped. Sets the public URL to
/// `http://<listener address>` unless it was set before.
pub async fn serve(listener: tokio::net::TcpListener, sim: Simulator) -> Result<()> {
    if sim.public_url().is_none() {
        let addr = listener.local_addr().map_err(Error::internal)?;
        sim.set_public_url(&format!("http://{addr}"));
    }
    axum::serve(listener, sim.router())
        .await
        .map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedhub_connectors::certificate::{verify, CertificateConfig};
    use fedhub_connectors::simpki::{self, PollResult, SimPkiProvider};
    use fedhub_connectors::ConnectorError;

    const KEY: &str = "sim-test-key";
    const HUB: &str = "https://sso.example.gov.vn";
    const T: Duration = Duration::from_secs(5);

    async fn start_sim(delay: Duration) -> (Simulator, SimPkiProvider) {
        let sim = Simulator::new(delay, KEY.into()).unwrap();
        sim.add_subscriber("+84912345671", "001204012345", "Nguyễn Văn An")
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(listener, sim.clone()));
        let provider = SimPkiProvider::new(&url, KEY.into()).unwrap();
        (sim, provider)
    }

    fn challenge() -> String {
        let config = CertificateConfig::new(vec!["x".into()]);
        Challenge::issue(&config, HUB, unix_now())
            .unwrap()
            .to_signing_string()
    }

    async fn poll_until_done(
        http: &reqwest::Client,
        provider: &SimPkiProvider,
        id: &str,
        challenge: &str,
    ) -> PollResult {
        for _ in 0..100 {
            match simpki::poll(http, provider, id, challenge, T)
                .await
                .unwrap()
            {
                PollResult::Pending => tokio::time::sleep(Duration::from_millis(20)).await,
                done => return done,
            }
        }
        panic!("still pending")
    }

    async fn fetch_crls(http: &reqwest::Client, urls: &[String]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for url in urls {
            let res = http.get(url).send().await.unwrap();
            assert_eq!(res.status(), 200);
            out.push(res.bytes().await.unwrap().to_vec());
        }
        out
    }

    #[tokio::test]
    async fn simpki_a_subscriber_signs_after_the_delay_and_the_hub_verifies_it() {
        let (sim, provider) = start_sim(Duration::from_millis(200)).await;
        let http = reqwest::Client::new();
        let c = challenge();
        let id = simpki::start(
            &http,
            &provider,
            "+84912345671",
            &c,
            "Đăng nhập Cổng DVC",
            T,
        )
        .await
        .unwrap();
        // Pending until the delay has passed.
        assert_eq!(
            simpki::poll(&http, &provider, &id, &c, T).await.unwrap(),
            PollResult::Pending
        );
        let PollResult::Signed(answer) = poll_until_done(&http, &provider, &id, &c).await else {
            panic!("not signed")
        };
        assert_eq!(answer.challenge, c);
        // The same answer on a later poll.
        assert_eq!(
            simpki::poll(&http, &provider, &id, &c, T).await.unwrap(),
            PollResult::Signed(answer.clone())
        );

        let config = CertificateConfig::new(vec![sim.ca_pem()]);
        let now = unix_now();
        let urls = fedhub_connectors::certificate::trusted_crl_urls(&config, &answer, now).unwrap();
        assert_eq!(urls, vec![format!("{}/crl/root.crl", provider.base_url)]);
        let crls = fetch_crls(&http, &urls).await;
        let id = verify(&config, &c, &answer, &crls, now, "simpki").unwrap();
        assert_eq!(id.attribute("national_id"), Some("001204012345"));
        assert_eq!(id.attribute("name"), Some("Nguyễn Văn An"));
        let id = simpki::as_simpki(id);
        assert_eq!(id.authn.acr.as_deref(), Some(simpki::ACR));
        assert_eq!(id.authn.amr, vec!["sim", "pki"]);

        // Without the CRL, the default policy fails closed.
        assert!(matches!(
            verify(&config, &c, &answer, &[], now, "simpki"),
            Err(ConnectorError::Refused(_))
        ));
        // Once revoked, the published CRL refuses it.
        sim.revoke("+84912345671").unwrap();
        let crls = fetch_crls(&http, &urls).await;
        let err = verify(&config, &c, &answer, &crls, now, "simpki").unwrap_err();
        assert!(err.to_string().contains("revoked"), "{err}");
        // Another CA does not vouch for it.
        let other = Simulator::new(Duration::ZERO, KEY.into()).unwrap();
        let config = CertificateConfig::new(vec![other.ca_pem()]);
        assert!(verify(&config, &c, &answer, &crls, now, "simpki").is_err());
    }

    #[tokio::test]
    async fn simpki_a_number_ending_in_0_is_refused_after_the_delay() {
        let (_sim, provider) = start_sim(Duration::from_millis(50)).await;
        let http = reqwest::Client::new();
        let c = challenge();
        let id = simpki::start(&http, &provider, "+84912345670", &c, "Đăng nhập", T)
            .await
            .unwrap();
        assert_eq!(
            poll_until_done(&http, &provider, &id, &c).await,
            PollResult::Refused
        );
    }

    #[tokio::test]
    async fn simpki_a_number_ending_in_8_expires() {
        let (_sim, provider) = start_sim(Duration::ZERO).await;
        let http = reqwest::Client::new();
        let c = challenge();
        let id = simpki::start(&http, &provider, "+84912345678", &c, "Đăng nhập", T)
            .await
            .unwrap();
        assert_eq!(
            poll_until_done(&http, &provider, &id, &c).await,
            PollResult::Expired
        );
    }

    #[tokio::test]
    async fn simpki_a_number_ending_in_9_stays_pending() {
        let (_sim, provider) = start_sim(Duration::ZERO).await;
        let http = reqwest::Client::new();
        let c = challenge();
        let id = simpki::start(&http, &provider, "+84912345679", &c, "Đăng nhập", T)
            .await
            .unwrap();
        for _ in 0..5 {
            assert_eq!(
                simpki::poll(&http, &provider, &id, &c, T).await.unwrap(),
                PollResult::Pending
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn simpki_unknown_numbers_keys_and_transactions_are_errors() {
        let (_sim, provider) = start_sim(Duration::ZERO).await;
        let http = reqwest::Client::new();
        let c = challenge();
        let err = simpki::start(&http, &provider, "+84912345672", &c, "Đăng nhập", T)
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Refused(ref m) if m.contains("unknown_subscriber")));

        let wrong = SimPkiProvider::new(&provider.base_url, "wrong-key".into()).unwrap();
        let err = simpki::start(&http, &wrong, "+84912345671", &c, "Đăng nhập", T)
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Config(_)), "{err:?}");
        let id = simpki::start(&http, &provider, "+84912345671", &c, "Đăng nhập", T)
            .await
            .unwrap();
        let err = simpki::poll(&http, &wrong, &id, &c, T).await.unwrap_err();
        assert!(matches!(err, ConnectorError::Config(_)), "{err:?}");

        let err = simpki::poll(&http, &provider, "no-such-transaction", &c, T)
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Invalid(_)), "{err:?}");
    }

    #[tokio::test]
    async fn simpki_the_simulator_refuses_malformed_requests() {
        let (_sim, provider) = start_sim(Duration::ZERO).await;
        let http = reqwest::Client::new();
        let url = format!("{}/v1/sign", provider.base_url);
        for body in [
            json!({"msisdn": "0912345671", "challenge": challenge(), "display_text": "x"}),
            json!({"msisdn": "+84912345671", "challenge": "sign my invoice", "display_text": "x"}),
            json!({"msisdn": "+84912345671"}),
        ] {
            let res = http
                .post(&url)
                .bearer_auth(KEY)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 400);
            let v: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
            assert_eq!(v["error"], "invalid_request");
        }
        let res = http.post(&url).body("{}").send().await.unwrap();
        assert_eq!(res.status(), 401);
        // The CA is published without a key.
        let pem = http
            .get(format!("{}/ca.pem", provider.base_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(pem.contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn simpki_subscribers_are_checked() {
        let sim = Simulator::new(Duration::ZERO, KEY.into()).unwrap();
        assert!(sim
            .add_subscriber("0912345671", "001204012345", "A")
            .is_err());
        assert!(sim.add_subscriber("+84912345671", "12345", "A").is_err());
        assert!(sim
            .add_subscriber("+84912345671", "001204012345", " ")
            .is_err());
        assert!(Simulator::new(Duration::ZERO, String::new()).is_err());
        let info = fedhub_connectors::certificate::crl_info(&sim.crl_der().unwrap()).unwrap();
        assert_eq!(info.revoked, 0);
        assert!(info.issuer_dn.contains(ROOT_NAME));
    }
}
