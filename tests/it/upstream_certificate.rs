//! Signing in with a government digital certificate (USB token) through the hub: a test CA
//! made here (root, citizen and organisation certificates, a CRL served on loopback), the
//! hub's challenge page, the signing tool (the same signer `fedhub sign-challenge` uses), and
//! every refusal a person can meet: revoked, expired, untrusted, unknown revocation status,
//! a signature over another challenge, a replayed answer.

use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use fedhub_connectors::certificate::{sign_challenge, CertificateConfig, SignRequest};
use http::{header, Request, StatusCode};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509Builder, X509NameBuilder, X509};

use crate::oidc_support::*;
use crate::sso::{get as get_req, send, Reply, CITIZEN};
use crate::support::NOW;

fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

pub(crate) struct Ca {
    key: PKey<Private>,
    cert: X509,
    crl_url: String,
}

impl Ca {
    /// The root, as an operator registers it (`--ca FILE.pem`).
    pub(crate) fn cert_pem(&self) -> String {
        String::from_utf8(self.cert.to_pem().unwrap()).unwrap()
    }
}

fn name(cn: &str, uid: Option<&str>) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("C", "VN").unwrap();
    n.append_entry_by_text("O", "Ban Cơ yếu Chính phủ (thử nghiệm)")
        .unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    if let Some(uid) = uid {
        n.append_entry_by_nid(Nid::USERID, uid).unwrap();
    }
    n.build()
}

pub(crate) fn ca(crl_url: &str) -> Ca {
    ca_named(crl_url, "Test Root CA G2")
}

/// A root CA whose common name is `cn`.
fn ca_named(crl_url: &str, cn: &str) -> Ca {
    let key = key();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(1).unwrap()).unwrap())
        .unwrap();
    let n = name(cn, None);
    b.set_subject_name(&n).unwrap();
    b.set_issuer_name(&n).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(NOW - 86_400 * 365).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(NOW + 86_400 * 3650).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    Ca {
        key,
        cert: b.build(),
        crl_url: crl_url.to_string(),
    }
}

/// A leaf for signing in; returns (key PEM, chain PEM).
pub(crate) fn leaf(ca: &Ca, serial: u32, uid: &str, not_after: i64) -> (Vec<u8>, Vec<u8>) {
    let key = key();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(serial).unwrap()).unwrap())
        .unwrap();
    b.set_subject_name(&name("Nguyễn Văn An", Some(uid)))
        .unwrap();
    b.set_issuer_name(ca.cert.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(NOW - 86_400 * 30).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(not_after).unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .non_repudiation()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap())
        .unwrap();
    let ctx = b.x509v3_context(Some(&ca.cert), None);
    #[allow(deprecated)]
    let cdp = openssl::x509::X509Extension::new_nid(
        None,
        Some(&ctx),
        Nid::CRL_DISTRIBUTION_POINTS,
        &format!("URI:{}", ca.crl_url),
    )
    .unwrap();
    b.append_extension(cdp).unwrap();
    b.sign(&ca.key, MessageDigest::sha256()).unwrap();
    let cert = b.build();
    let mut chain = cert.to_pem().unwrap();
    chain.extend(ca.cert.to_pem().unwrap());
    (key.private_key_to_pem_pkcs8().unwrap(), chain)
}

/// A CRL of `ca` listing `revoked` serials, PEM.
pub(crate) fn crl(ca: &Ca, revoked: &[u32]) -> Vec<u8> {
    // Built with the openssl command line: the crate has no CRL builder.
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f);
    std::fs::write(p("ca.pem"), ca.cert.to_pem().unwrap()).unwrap();
    std::fs::write(p("ca.key"), ca.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let mut index = String::new();
    for s in revoked {
        index.push_str(&format!(
            "R\t491231235959Z\t260101000000Z\t{s:02X}\tunknown\t/CN=x\n"
        ));
    }
    std::fs::write(p("index.txt"), index).unwrap();
    std::fs::write(p("crlnumber"), "01\n").unwrap();
    std::fs::write(
        p("ca.cnf"),
        format!(
            "[ca]\ndefault_ca=t\n[t]\ndatabase={}\ncrlnumber={}\ndefault_md=sha256\ndefault_crl_days=30\n",
            p("index.txt").display(),
            p("crlnumber").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new("openssl")
        .args(["ca", "-gencrl", "-batch", "-config"])
        .arg(p("ca.cnf"))
        .arg("-cert")
        .arg(p("ca.pem"))
        .arg("-keyfile")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("crl.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Served as PEM, as some CAs publish it: the hub reads both forms.
    std::fs::read(p("crl.pem")).unwrap()
}

/// Serves the CRL currently in `body` at `/root.crl`; returns its URL.
pub(crate) async fn crl_server(body: Arc<Mutex<Option<Vec<u8>>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/root.crl", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/root.crl",
        get(move || {
            let body = body.clone();
            async move {
                match body.lock().unwrap().clone() {
                    Some(b) => (StatusCode::OK, b),
                    None => (StatusCode::NOT_FOUND, Vec::new()),
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

struct Setup {
    hub: OidcHub,
    ca: Ca,
    crl: Arc<Mutex<Option<Vec<u8>>>>,
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

async fn setup_with(configure: impl FnOnce(&mut fedhub::config::Config)) -> Setup {
    let served = Arc::new(Mutex::new(None));
    let url = crl_server(served.clone()).await;
    let ca = ca(&url);
    *served.lock().unwrap() = Some(crl(&ca, &[66]));
    let hub = oidc_hub_configured(
        crate::support::sqlite(),
        "http://127.0.0.1:8080",
        default_registration(),
        configure,
    );
    add_usb_connector(&hub.store, &ca, &hub.rp_id);
    Setup {
        hub,
        ca,
        crl: served,
    }
}

/// Registers the certificate connector `usb` trusting `ca`, the only one `rp_id` offers.
fn add_usb_connector(store: &fedhub::store::Store, ca: &Ca, rp_id: &str) {
    let reg = fedhub::upstream::CertificateRegistration {
        id: "usb".into(),
        display_name: "USB ký số".into(),
        config: CertificateConfig::new(vec![String::from_utf8(ca.cert.to_pem().unwrap()).unwrap()]),
    };
    store
        .write(|c| {
            fedhub::upstream::add_certificate(c, &reg, NOW)?;
            fedhub::upstream::allow_for_rp(c, rp_id, &["usb".to_string()])
        })
        .unwrap();
}

/// Gateway request → chooser → the challenge page. Returns (challenge, answer action,
/// binding cookie, PKCE verifier).
async fn challenge_page(hub: &OidcHub) -> (String, String, String, String) {
    let (verifier, challenge) = pkce();
    let r = send(&hub.app, get_req(&hub.authorize_uri(&challenge, ""), &[])).await;
    let login = r.location().to_string();
    let bind = r.cookie("fedhub_login").unwrap();
    let (challenge, action) = usb_challenge(&hub.app, &login, &bind).await;
    (challenge, action, bind, verifier)
}

/// The login's chooser → the USB token's challenge page. Returns (challenge, answer action).
async fn usb_challenge(app: &Router, login: &str, bind: &str) -> (String, String) {
    let page = send(
        app,
        Request::post(format!("{login}/usb"))
            .header(header::COOKIE, format!("fedhub_login={bind}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("USB ký số"));
    // The sign request as the page shows it (HTML-escaped JSON in a read-only textarea).
    let start = page.body.find("data-sign-request>").unwrap() + "data-sign-request>".len();
    let end = page.body[start..].find("</textarea>").unwrap() + start;
    let json = html_unescape(&page.body[start..end]);
    let req: SignRequest = serde_json::from_str(&json).unwrap();
    let action_at = page.body.find("action=\"").unwrap() + 8;
    let action_end = page.body[action_at..].find('"').unwrap() + action_at;
    let action = html_unescape(&page.body[action_at..action_end]);
    (req.challenge, action)
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

async fn answer(hub: &OidcHub, action: &str, bind: &str, answer_json: &str) -> Reply {
    answer_on(&hub.app, action, bind, answer_json).await
}

async fn answer_on(app: &Router, action: &str, bind: &str, answer_json: &str) -> Reply {
    answer_in(app, "vi", action, bind, answer_json).await
}

/// The answer sent by a browser asking for pages in `lang` (Accept-Language).
async fn answer_in(app: &Router, lang: &str, action: &str, bind: &str, answer_json: &str) -> Reply {
    let body = format!(
        "answer={}",
        url::form_urlencoded::byte_serialize(answer_json.as_bytes()).collect::<String>()
    );
    send(
        app,
        Request::post(action)
            .header(header::COOKIE, format!("fedhub_login={bind}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT_LANGUAGE, lang)
            .body(axum::body::Body::from(body))
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_signs_in_with_a_usb_token() {
    let s = setup().await;
    let (challenge, action, bind, verifier) = challenge_page(&s.hub).await;
    let (key, chain) = leaf(&s.ca, 10, &format!("CCCD:{CITIZEN}"), NOW + 86_400 * 365);
    let signed = sign_challenge(&challenge, &key, &chain).unwrap();
    let back = answer(&s.hub, &action, &bind, &signed.to_json().unwrap()).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert!(back.location().starts_with(REDIRECT));
    let code = query_of(back.location())["code"].clone();
    let tokens = s.hub.redeem(&code, &verifier).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["national_id"], CITIZEN, "matched by UID=CCCD:");
    assert_eq!(id["acr"], "urn:fedhub:acr:certificate");
    // The same answer again finds the login used.
    let again = answer(&s.hub, &action, &bind, &signed.to_json().unwrap()).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.cookie("fedhub_sso").is_none());
}

/// Makes the signing tool's answer for a challenge.
type Answerer<'a> = Box<dyn Fn(&str) -> String + 'a>;

/// The reason a Vietnamese page gives for a refused certificate, after "Chi tiết:".
const VI_REVOKED: &str = "Chi tiết:</span> Chứng thư số đã bị thu hồi";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificates_and_signatures_get_a_page_saying_why() {
    let s = setup().await;
    // Same name as the trusted root, another key: the issuer's signature does not verify.
    let other_ca = ca("http://127.0.0.1:9/none.crl");
    // A root the connector does not know.
    let unknown_ca = ca_named("http://127.0.0.1:9/none.crl", "Unknown Root CA");
    // (the reason kept in the audit log, in English; what the Vietnamese page says, when the
    // reason is a known one: otherwise the page shows the audit's text)
    let cases: Vec<(&str, Option<&str>, Answerer)> = vec![
        (
            "revoked",
            Some(VI_REVOKED),
            Box::new(|c: &str| {
                let (k, ch) = leaf(&s.ca, 66, &format!("CCCD:{CITIZEN}"), NOW + 86_400);
                sign_challenge(c, &k, &ch).unwrap().to_json().unwrap()
            }),
        ),
        (
            "expired",
            Some("Chi tiết:</span> Chứng thư số đã hết hạn sử dụng."),
            Box::new(|c: &str| {
                let (k, ch) = leaf(&s.ca, 11, &format!("CCCD:{CITIZEN}"), NOW - 60);
                sign_challenge(c, &k, &ch).unwrap().to_json().unwrap()
            }),
        ),
        (
            "not validly signed by its issuing authority",
            Some("Chi tiết:</span> Chữ ký của tổ chức cấp trên chứng thư số không hợp lệ."),
            Box::new(|c: &str| {
                let (k, ch) = leaf(&other_ca, 12, &format!("CCCD:{CITIZEN}"), NOW + 86_400);
                sign_challenge(c, &k, &ch).unwrap().to_json().unwrap()
            }),
        ),
        (
            "not issued by a trusted authority",
            Some("Chi tiết:</span> Chứng thư số không do tổ chức chứng thực được nền tảng tin cậy cấp."),
            Box::new(|c: &str| {
                let (k, ch) = leaf(&unknown_ca, 14, &format!("CCCD:{CITIZEN}"), NOW + 86_400);
                sign_challenge(c, &k, &ch).unwrap().to_json().unwrap()
            }),
        ),
        (
            "signature",
            Some("Chi tiết:</span> Chữ ký không khớp với yêu cầu ký của trang đăng nhập này."),
            Box::new(|c: &str| {
                let (k, ch) = leaf(&s.ca, 13, &format!("CCCD:{CITIZEN}"), NOW + 86_400);
                let mut signed = sign_challenge(c, &k, &ch).unwrap();
                // Signed over a different challenge, presented as this one.
                let different = {
                    let mut parts: Vec<&str> = c.split('\n').collect();
                    let nonce = "A".repeat(43);
                    parts[2] = &nonce;
                    sign_challenge(&parts.join("\n"), &k, &ch)
                        .unwrap()
                        .signature
                };
                signed.signature = different;
                signed.to_json().unwrap()
            }),
        ),
        (
            "not a signed challenge",
            None,
            Box::new(|_: &str| "{}".to_string()),
        ),
    ];
    for (why, vietnamese, make) in cases {
        let (challenge, action, bind, _) = challenge_page(&s.hub).await;
        let back = answer(&s.hub, &action, &bind, &make(&challenge)).await;
        assert_eq!(back.status, StatusCode::BAD_REQUEST, "{why}: {}", back.body);
        assert!(back.cookie("fedhub_sso").is_none(), "{why}: no session");
        match vietnamese {
            // A known reason: said in Vietnamese, on the certificate page, not in English.
            Some(text) => {
                assert!(
                    back.body.contains(text),
                    "{why}: the page says why: {}",
                    back.body
                );
                assert!(
                    back.body.contains("Chứng thư số không được chấp nhận"),
                    "{why}: the certificate page: {}",
                    back.body
                );
                assert!(
                    !back.body.to_lowercase().contains(why),
                    "{why}: no English reason on the Vietnamese page: {}",
                    back.body
                );
            }
            None => assert!(
                back.body.to_lowercase().contains(why),
                "{why}: the page says why: {}",
                back.body
            ),
        }
        // The audit log keeps the machine-readable reason as it was.
        let last = s.hub.store.read(|c| fedhub::audit::tail(c, 1)).unwrap();
        assert_eq!(
            (last[0].action.as_str(), last[0].outcome.as_str()),
            ("login", "failure"),
            "{why}: audited"
        );
        let detail = last[0].detail.clone().unwrap_or_default();
        assert!(detail.contains(why), "{why}: the audited reason: {detail}");
    }
}

/// The reason of a refused certificate in English for a browser that asks for English.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_certificate_is_explained_in_english_too() {
    let s = setup().await;
    let (challenge, action, bind, _) = challenge_page(&s.hub).await;
    let (key, chain) = leaf(&s.ca, 66, &format!("CCCD:{CITIZEN}"), NOW + 86_400);
    let signed = sign_challenge(&challenge, &key, &chain).unwrap();
    let back = answer_in(&s.hub.app, "en", &action, &bind, &signed.to_json().unwrap()).await;
    assert_eq!(back.status, StatusCode::BAD_REQUEST, "{}", back.body);
    assert!(back.body.contains(r#"<html lang="en">"#), "{}", back.body);
    assert!(
        back.body.contains("Digital certificate not accepted")
            && back
                .body
                .contains("Details:</span> The certificate was revoked (it is on its issuer"),
        "{}",
        back.body
    );
    assert!(!back.body.contains(VI_REVOKED), "{}", back.body);
    let last = s.hub.store.read(|c| fedhub::audit::tail(c, 1)).unwrap();
    assert!(
        last[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.ends_with("the certificate was revoked")),
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_crl_fails_closed() {
    let s = setup().await;
    *s.crl.lock().unwrap() = None;
    let (challenge, action, bind, _) = challenge_page(&s.hub).await;
    let (key, chain) = leaf(&s.ca, 20, &format!("CCCD:{CITIZEN}"), NOW + 86_400);
    let signed = sign_challenge(&challenge, &key, &chain).unwrap();
    let back = answer(&s.hub, &action, &bind, &signed.to_json().unwrap()).await;
    assert_eq!(back.status, StatusCode::BAD_REQUEST, "{}", back.body);
    assert!(
        back.body
            .contains("Chưa xác định được tình trạng thu hồi của chứng thư số"),
        "{}",
        back.body
    );
    let last = s.hub.store.read(|c| fedhub::audit::tail(c, 1)).unwrap();
    assert!(
        last[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("revocation status unknown")),
        "{last:?}"
    );
}

/// A state agency's certificate carries no personal ID: it signs in once the operator has
/// registered it to the agency's account, and the agency's top-admin grant reaches the
/// relying party.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_agency_certificate_signs_in_as_the_agency_with_its_grant() {
    use fedhub::directory::{accounts, admin_grants};
    let s = setup().await;
    let agency = accounts::AccountInput {
        kind: "agency".into(),
        display_name: "Sở Tài chính tỉnh Quảng Ninh".into(),
        agency_code: Some("000.00.00.H49".into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let agency = s
        .hub
        .store
        .write(|c| accounts::add(c, &agency, NOW))
        .unwrap();
    let (key, chain) = leaf(&s.ca, 30, "CQNN:000.00.00.H49", NOW + 86_400);
    let leaf_der = X509::stack_from_pem(&chain).unwrap()[0].to_der().unwrap();

    // Before registration: nobody.
    let (challenge, action, bind, _) = challenge_page(&s.hub).await;
    let signed = sign_challenge(&challenge, &key, &chain).unwrap();
    let refused = answer(&s.hub, &action, &bind, &signed.to_json().unwrap()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    s.hub
        .store
        .write(|c| fedhub::upstream::link_certificate(c, &agency.id, "usb", &leaf_der, NOW))
        .unwrap();
    // The same certificate cannot be registered to someone else.
    let other = s.hub.account_id.clone();
    let conflict = s
        .hub
        .store
        .write(|c| fedhub::upstream::link_certificate(c, &other, "usb", &leaf_der, NOW))
        .unwrap_err();
    assert!(
        matches!(conflict, fedhub::Error::Conflict { .. }),
        "{conflict:?}"
    );

    // The operator grants top admin: only to an agency account, once per province.
    let rp_id = s.hub.rp_id.clone();
    let grant = |account: &str, delegated: Option<&str>| admin_grants::TopGrant {
        account_id: account.to_string(),
        rp_id: rp_id.clone(),
        scope_agency_code: "000.00.00.H49".into(),
        delegated_office_code: delegated.map(String::from),
    };
    let citizen = s.hub.account_id.clone();
    let not_agency = s
        .hub
        .store
        .write(|c| admin_grants::grant_top(c, &grant(&citizen, None), NOW))
        .unwrap_err();
    assert!(matches!(&not_agency, fedhub::Error::Invalid { field, .. } if field == "account_id"));
    let outside = s
        .hub
        .store
        .write(|c| admin_grants::grant_top(c, &grant(&agency.id, Some("000.00.00.G01")), NOW))
        .unwrap_err();
    assert!(
        matches!(&outside, fedhub::Error::Invalid { field, .. } if field == "delegated_office_code"),
        "{outside:?}"
    );
    s.hub
        .store
        .write(|c| admin_grants::grant_top(c, &grant(&agency.id, None), NOW))
        .unwrap();
    let twice = s
        .hub
        .store
        .write(|c| admin_grants::grant_top(c, &grant(&agency.id, None), NOW))
        .unwrap_err();
    assert!(matches!(twice, fedhub::Error::Conflict { .. }));

    let (challenge, action, bind, verifier) = challenge_page(&s.hub).await;
    let signed = sign_challenge(&challenge, &key, &chain).unwrap();
    let back = answer(&s.hub, &action, &bind, &signed.to_json().unwrap()).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    let code = query_of(back.location())["code"].clone();
    let tokens = s.hub.redeem(&code, &verifier).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["admin_level"], "top");
    assert_eq!(id["agency_code"], "000.00.00.H49");
    assert_eq!(id["account_type"], "agency");
}

/// Behind a TLS-terminating proxy the browser's client certificate arrives in a header; the
/// hub believes it only when the request comes from that proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_forwarded_by_the_trusted_proxy_signs_in() {
    let s = setup_with(|c| c.connectors.trusted_proxies = vec!["10.0.0.5".parse().unwrap()]).await;
    let (_key, chain) = leaf(&s.ca, 40, &format!("CCCD:{CITIZEN}"), NOW + 86_400);
    let leaf_pem = X509::stack_from_pem(&chain).unwrap()[0].to_pem().unwrap();
    // As nginx's $ssl_client_escaped_cert writes it.
    let forwarded: String = String::from_utf8(leaf_pem)
        .unwrap()
        .replace('%', "%25")
        .replace(' ', "%20")
        .replace('\n', "%0A")
        .replace('+', "%2B")
        .replace('=', "%3D")
        .replace('/', "%2F");
    for (peer, expect) in [
        (Some("10.0.0.9:443"), StatusCode::BAD_REQUEST),
        (None, StatusCode::BAD_REQUEST),
        (Some("10.0.0.5:443"), StatusCode::SEE_OTHER),
    ] {
        let (_challenge, action, bind, _) = challenge_page(&s.hub).await;
        let tls = action.replace("/answer", "/tls");
        let mut req = Request::post(&tls)
            .header(header::COOKIE, format!("fedhub_login={bind}"))
            .header("x-ssl-client-cert", forwarded.clone())
            .body(axum::body::Body::empty())
            .unwrap();
        if let Some(addr) = peer {
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(addr));
        }
        let r = send(&s.hub.app, req).await;
        assert_eq!(r.status, expect, "{peer:?}: {}", r.body);
        if expect == StatusCode::BAD_REQUEST {
            assert!(r.body.contains("only from the hub"), "{peer:?}: {}", r.body);
            assert!(r.cookie("fedhub_sso").is_none());
        } else {
            assert!(r.location().starts_with(REDIRECT));
        }
    }
}

/// A hub whose relying party is a SAML service provider (the test SP, signing its requests)
/// and whose only sign-in method for it is the USB token.
struct SamlSetup {
    app: Router,
    store: crate::support::TestStore,
    sp: crate::sp::TestSp,
    ca: Ca,
    _crl: Arc<Mutex<Option<Vec<u8>>>>,
}

async fn saml_setup() -> SamlSetup {
    let served = Arc::new(Mutex::new(None));
    let url = crl_server(served.clone()).await;
    let ca = ca(&url);
    *served.lock().unwrap() = Some(crl(&ca, &[66]));
    let store = crate::support::sqlite();
    let sp = crate::sp::default_sp();
    let (app, rp_id, _) = crate::sso::hub_with(
        &store,
        &sp.metadata(),
        false,
        Arc::new(fedhub::clock::ManualClock::at(NOW)),
    );
    add_usb_connector(&store, &ca, &rp_id);
    SamlSetup {
        app,
        store,
        sp,
        ca,
        _crl: served,
    }
}

impl SamlSetup {
    /// The SP's signed AuthnRequest → the chooser → the challenge page. Returns (challenge,
    /// answer action, binding cookie).
    async fn challenge_page(&self, request_id: &str) -> (String, String, String) {
        let xml = format!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{request_id}" Version="2.0" IssueInstant="2026-11-27T00:00:00Z" Destination="http://127.0.0.1:8080/saml/sso"><saml:Issuer>{}</saml:Issuer></samlp:AuthnRequest>"#,
            self.sp.entity_id
        );
        let query = crate::sso::signed_query(&self.sp, "SAMLRequest", &xml, Some("rs-usb"));
        let r = send(&self.app, get_req(&format!("/saml/sso?{query}"), &[])).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let login = r.location().to_string();
        let bind = r
            .cookie("fedhub_login")
            .expect("login bound to this browser");
        // The chooser offers the USB token only: the demo connector is not allowed here.
        let chooser = send(&self.app, get_req(&login, &[("fedhub_login", &bind)])).await;
        assert_eq!(chooser.status, StatusCode::OK, "{}", chooser.body);
        assert!(
            chooser.body.contains("USB ký số") && !chooser.body.contains(CITIZEN),
            "{}",
            chooser.body
        );
        let (challenge, action) = usb_challenge(&self.app, &login, &bind).await;
        (challenge, action, bind)
    }

    /// The signing certificates the hub's IdP metadata publishes (DER).
    async fn idp_signing_certs(&self) -> Vec<Vec<u8>> {
        use base64::Engine as _;
        let md = send(&self.app, get_req("/saml/metadata", &[])).await;
        assert_eq!(md.status, StatusCode::OK, "{}", md.body);
        let md: samael::metadata::EntityDescriptor = md.body.parse().unwrap();
        let certs: Vec<Vec<u8>> = md.idp_sso_descriptors.unwrap()[0]
            .key_descriptors
            .iter()
            .filter(|k| k.key_use.as_deref().unwrap_or("signing") == "signing")
            .flat_map(|k| k.key_info.x509_data.iter().flat_map(|d| &d.certificates))
            .map(|b64| {
                let clean: String = b64.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD
                    .decode(clean)
                    .unwrap()
            })
            .collect();
        assert!(
            !certs.is_empty(),
            "the IdP metadata publishes a signing key"
        );
        certs
    }
}

/// The Assertion element of a Response, alone (as an SP checks it).
fn assertion_of(response: &str) -> String {
    let start = response.find("<saml:Assertion").expect("an assertion");
    let end = response.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
    response[start..end].to_string()
}

/// Certificate → SAML: a citizen signs in with a USB token for a SAML portal; the portal gets
/// a signed assertion naming the person, saying how they signed in. A revoked certificate gets
/// the page saying why, and the portal nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saml_portal_gets_a_signed_assertion_for_a_usb_token_sign_in() {
    let s = saml_setup().await;
    let trusted = s.idp_signing_certs().await;
    let verifies = |xml: &str, id_attr: &str| {
        trusted
            .iter()
            .any(|cert| crate::saml::xmlsec1_verifies(xml, cert, id_attr))
    };
    const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion";
    const RESPONSE: &str = "urn:oasis:names:tc:SAML:2.0:protocol:Response";

    // Revoked: the person sees why; nothing is posted to the portal, no session starts.
    let (challenge, action, bind) = s.challenge_page("_usb-revoked").await;
    let (key, chain) = leaf(&s.ca, 66, &format!("CCCD:{CITIZEN}"), NOW + 86_400);
    let signed = sign_challenge(&challenge, &key, &chain).unwrap();
    let refused = answer_on(&s.app, &action, &bind, &signed.to_json().unwrap()).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body.contains(VI_REVOKED), "{}", refused.body);
    assert!(!refused.body.contains("SAMLResponse"), "{}", refused.body);
    assert!(!refused
        .body
        .contains(crate::sp::ACS.split('/').nth(2).unwrap()));
    assert!(refused.cookie("fedhub_sso").is_none());
    let audit = s.store.read(|c| fedhub::audit::tail(c, 100)).unwrap();
    assert!(
        !audit.iter().any(|e| e.action == "saml.sso"),
        "no answer went to the portal: {audit:?}"
    );
    assert!(audit
        .iter()
        .any(|e| e.action == "login" && e.outcome == "failure"));

    // A good certificate: a signed Response for the portal's request.
    let (challenge, action, bind) = s.challenge_page("_usb-1").await;
    let (key, chain) = leaf(&s.ca, 10, &format!("CCCD:{CITIZEN}"), NOW + 86_400 * 365);
    let signed = sign_challenge(&challenge, &key, &chain).unwrap();
    let back = answer_on(&s.app, &action, &bind, &signed.to_json().unwrap()).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    assert!(back.cookie("fedhub_sso").is_some(), "an SSO session starts");
    assert!(
        back.body.contains(crate::sp::ACS)
            || back.body.contains(&crate::sp::ACS.replace('/', "&#x2f;")),
        "posted to the portal's ACS: {}",
        back.body
    );
    assert!(back.body.contains(r#"name="RelayState" value="rs-usb""#));
    let xml = back.saml_response();
    let resp: samael::schema::Response = xml.parse().unwrap();
    assert_eq!(resp.in_response_to.as_deref(), Some("_usb-1"));
    assert_eq!(resp.destination.as_deref(), Some(crate::sp::ACS));
    assert!(xml.contains("status:Success"), "{xml}");
    let assertion = resp.assertion.unwrap();
    assert_eq!(
        assertion.issuer.value.as_deref(),
        Some("http://127.0.0.1:8080/saml/metadata")
    );
    let name_id = assertion.subject.unwrap().name_id.unwrap();
    assert_eq!(
        name_id.format.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
    );
    assert_ne!(
        name_id.value, CITIZEN,
        "the NameID is pairwise, not the CCCD"
    );
    let national_id: Vec<String> = assertion
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|st| &st.attributes)
        .filter(|a| a.name.as_deref() == Some("urn:fedhub:attribute:national_id"))
        .flat_map(|a| a.values.iter().filter_map(|v| v.value.clone()))
        .collect();
    assert_eq!(national_id, vec![CITIZEN.to_string()], "{xml}");
    let class: Vec<String> = assertion
        .authn_statements
        .iter()
        .flatten()
        .filter_map(|st| st.authn_context.as_ref()?.value.as_ref()?.value.clone())
        .collect();
    assert_eq!(
        class,
        vec!["urn:fedhub:acr:certificate".to_string()],
        "the portal sees the sign-in was by certificate"
    );

    // Both signatures verify with the keys the hub's IdP metadata publishes, and only the
    // document as signed does.
    assert!(verifies(&xml, RESPONSE), "response signature: {xml}");
    let alone = assertion_of(&xml);
    assert!(verifies(&alone, ASSERTION), "assertion signature: {alone}");
    let forged = alone.replace(CITIZEN, "001204099999");
    assert_ne!(forged, alone);
    assert!(!verifies(&forged, ASSERTION), "a changed assertion fails");

    let audit = s.store.read(|c| fedhub::audit::tail(c, 100)).unwrap();
    assert!(audit.iter().any(|e| e.action == "login"
        && e.outcome == "success"
        && e.target.as_deref() == Some("usb")));
    assert!(audit
        .iter()
        .any(|e| e.action == "saml.sso" && e.outcome == "success"));
}
