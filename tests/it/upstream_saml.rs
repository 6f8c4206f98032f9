//! The SAML connector (the hub as a service provider of an upstream SAML IdP), end to end
//! through the hub, with the test playing both the browser and a scripted IdP that signs
//! with its registered key. The scripted IdP forges what a real one never would: answers
//! signed by another key, wrapped, replayed, misaddressed, expired. (A real third-party IdP,
//! pysaml2, is in upstream_saml_interop.rs.)

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fedhub_metadata::keys::{generate, GeneratedKey, KeyAlg};
use fedhub_metadata::xml::dsig::{c14n_attr, c14n_text, XmlSigner};
use http::{header, Request, StatusCode};
use serde_json::json;

use crate::oidc_support::*;
use crate::sso::{get as get_req, send, Reply, CITIZEN};
use crate::support::NOW;

pub const IDP_ENTITY: &str = "https://idp.botuphap.example.gov.vn/idp";
const IDP_SSO: &str = "https://idp.botuphap.example.gov.vn/sso";
const IDP_SLO: &str = "https://idp.botuphap.example.gov.vn/slo";
const CONNECTOR: &str = "bo-tu-phap";
const SP_ENTITY: &str = "http://127.0.0.1:8080/connectors/bo-tu-phap/saml/metadata";
const ACS: &str = "http://127.0.0.1:8080/connectors/bo-tu-phap/saml/acs";
const ACR: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:X509";

pub struct Idp {
    pub key: GeneratedKey,
    pub attacker: GeneratedKey,
}

impl Idp {
    pub fn new() -> Idp {
        Idp {
            key: generate(KeyAlg::Rsa2048, "idp", NOW, 30).unwrap(),
            attacker: generate(KeyAlg::Rsa2048, "attacker", NOW, 30).unwrap(),
        }
    }

    pub fn metadata(&self) -> String {
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP_ENTITY}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="true"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{IDP_SLO}"/><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{IDP_SSO}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#,
            STANDARD.encode(&self.key.cert_der)
        )
    }

    fn signer(&self, key: &GeneratedKey) -> XmlSigner {
        XmlSigner::new(KeyAlg::Rsa2048, &key.private_der, &key.cert_der).unwrap()
    }
}

/// What the scripted IdP writes into its answer.
#[derive(Clone)]
pub struct Answer {
    pub in_response_to: String,
    pub issuer: String,
    pub audience: String,
    pub recipient: String,
    pub not_on_or_after: i64,
    pub national_id: String,
    pub name_id: String,
    pub session_index: String,
    pub status: Option<&'static str>,
    pub sign_assertion: bool,
    pub sign_response: bool,
    pub attacker_key: bool,
    pub encrypt_for: Option<Vec<u8>>,
}

impl Answer {
    pub fn to(request_id: &str) -> Answer {
        Answer {
            in_response_to: request_id.into(),
            issuer: IDP_ENTITY.into(),
            audience: SP_ENTITY.into(),
            recipient: ACS.into(),
            not_on_or_after: NOW + 300,
            national_id: CITIZEN.into(),
            name_id: "btp-7f3a9c".into(),
            session_index: "_sess-1".into(),
            status: None,
            sign_assertion: true,
            sign_response: false,
            attacker_key: false,
            encrypt_for: None,
        }
    }
}

fn t(s: i64) -> String {
    fedhub::clock::rfc3339(s)
}

/// The Assertion in exclusive canonical form, signed as asked.
pub fn assertion(idp: &Idp, a: &Answer, id: &str) -> String {
    let uri = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri";
    let xml = format!(
        concat!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" IssueInstant="{now}" Version="2.0"><saml:Issuer>{issuer}</saml:Issuer>"#,
            r#"<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" SPNameQualifier="{aud}">{name_id}</saml:NameID>"#,
            r#"<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="{irt}" NotOnOrAfter="{until}" Recipient="{recipient}"></saml:SubjectConfirmationData></saml:SubjectConfirmation></saml:Subject>"#,
            r#"<saml:Conditions NotBefore="{before}" NotOnOrAfter="{until}"><saml:AudienceRestriction><saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction></saml:Conditions>"#,
            r#"<saml:AuthnStatement AuthnInstant="{authn}" SessionIndex="{sidx}"><saml:AuthnContext><saml:AuthnContextClassRef>{acr}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"#,
            r#"<saml:AttributeStatement><saml:Attribute Name="urn:fedhub:attribute:national_id" NameFormat="{uri}"><saml:AttributeValue>{nid}</saml:AttributeValue></saml:Attribute>"#,
            r#"<saml:Attribute Name="urn:oid:2.16.840.1.113730.3.1.241" NameFormat="{uri}"><saml:AttributeValue>Nguyễn Văn An</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>"#
        ),
        id = id,
        now = t(NOW),
        issuer = c14n_text(&a.issuer),
        aud = c14n_attr(&a.audience),
        name_id = c14n_text(&a.name_id),
        irt = c14n_attr(&a.in_response_to),
        until = t(a.not_on_or_after),
        recipient = c14n_attr(&a.recipient),
        before = t(NOW - 60),
        authn = t(NOW - 5),
        sidx = c14n_attr(&a.session_index),
        acr = ACR,
        uri = uri,
        nid = c14n_text(&a.national_id),
    );
    if !a.sign_assertion {
        return xml;
    }
    let key = if a.attacker_key {
        &idp.attacker
    } else {
        &idp.key
    };
    let at = xml.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
    idp.signer(key).sign_enveloped(&xml, id, at).unwrap()
}

/// A Response around `inner` (an assertion, encrypted or not, or nothing).
pub fn response_around(idp: &Idp, a: &Answer, inner: &str) -> String {
    let id = "_resp-1";
    let status = a
        .status
        .unwrap_or("urn:oasis:names:tc:SAML:2.0:status:Success");
    let second = if a.status.is_some() {
        r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"></samlp:StatusCode>"#
    } else {
        ""
    };
    let xml = format!(
        concat!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" Destination="{acs}" ID="{id}" InResponseTo="{irt}" IssueInstant="{now}" Version="2.0">"#,
            r#"<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">{issuer}</saml:Issuer>"#,
            r#"<samlp:Status><samlp:StatusCode Value="{status}">{second}</samlp:StatusCode></samlp:Status>{inner}</samlp:Response>"#
        ),
        acs = c14n_attr(&a.recipient),
        id = id,
        irt = c14n_attr(&a.in_response_to),
        now = t(NOW),
        issuer = c14n_text(&a.issuer),
        status = status,
        second = second,
        inner = inner,
    );
    if !a.sign_response {
        return xml;
    }
    let key = if a.attacker_key {
        &idp.attacker
    } else {
        &idp.key
    };
    let at = xml.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
    idp.signer(key).sign_enveloped(&xml, id, at).unwrap()
}

/// The whole answer as the browser POSTs it (base64).
pub fn response(idp: &Idp, a: &Answer) -> String {
    let inner = if a.status.is_some() {
        String::new()
    } else {
        let signed = assertion(idp, a, "_assertion-1");
        match &a.encrypt_for {
            Some(cert) => fedhub_metadata::xml::encrypt::encrypt_assertion(&signed, cert).unwrap(),
            None => signed,
        }
    };
    STANDARD.encode(response_around(idp, a, &inner))
}

/// A hub whose gateway offers only the SAML IdP `bo-tu-phap`.
pub fn hub_with_saml_upstream(idp: &Idp) -> OidcHub {
    let hub = oidc_hub(default_registration());
    let reg = fedhub::upstream::SamlRegistration {
        id: CONNECTOR.into(),
        display_name: "Bộ Tư pháp (SAML)".into(),
        metadata_xml: idp.metadata(),
        name_id_format: None,
        attribute_map: None,
    };
    let rp_id = hub.rp_id.clone();
    hub.store
        .write(|c| {
            fedhub::upstream::add_saml(c, &reg, NOW)?;
            fedhub::upstream::allow_for_rp(c, &rp_id, &[CONNECTOR.to_string()])
        })
        .unwrap();
    hub
}

/// A login on its way to the IdP.
pub struct AtIdp {
    pub verifier: String,
    pub bind: String,
    pub handle: String,
    pub request_id: String,
    pub request_xml: String,
}

fn inflate(b64: &str) -> String {
    use std::io::Read;
    let raw = STANDARD.decode(b64).unwrap();
    let mut out = String::new();
    flate2::read::DeflateDecoder::new(&raw[..])
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// The gateway's request → the chooser → the hub's signed AuthnRequest to the IdP.
pub async fn to_idp(hub: &OidcHub, extra: &str) -> AtIdp {
    let (verifier, challenge) = pkce();
    let r = send(
        &hub.app,
        get_req(&hub.authorize_uri(&challenge, extra), &[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let login = r.location().to_string();
    let handle = login.trim_start_matches("/login/").to_string();
    let bind = r.cookie("fedhub_login").unwrap();
    let go = if extra.contains("idp_hint") {
        // The hint skips the chooser.
        send(&hub.app, get_req(&login, &[("fedhub_login", &bind)])).await
    } else {
        let page = send(&hub.app, get_req(&login, &[("fedhub_login", &bind)])).await;
        assert!(page.body.contains("Bộ Tư pháp (SAML)"), "{}", page.body);
        send(
            &hub.app,
            Request::post(format!("{login}/{CONNECTOR}"))
                .header(header::COOKIE, format!("fedhub_login={bind}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
    };
    assert_eq!(go.status, StatusCode::SEE_OTHER, "{}", go.body);
    assert!(go.location().starts_with(IDP_SSO), "{}", go.location());
    let q = query_of(go.location());
    assert_eq!(q["RelayState"], handle, "the login travels as RelayState");
    assert!(q.contains_key("Signature") && q.contains_key("SigAlg"));
    let request_xml = inflate(&q["SAMLRequest"]);
    let request_id = request_xml
        .split("ID=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    AtIdp {
        verifier,
        bind,
        handle,
        request_id,
        request_xml,
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

pub async fn post_acs(hub: &OidcHub, at: &AtIdp, saml_response: &str) -> Reply {
    send(
        &hub.app,
        Request::post("/connectors/bo-tu-phap/saml/acs")
            .header(header::COOKIE, format!("fedhub_login={}", at.bind))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(form(&[
                ("SAMLResponse", saml_response),
                ("RelayState", &at.handle),
            ])))
            .unwrap(),
    )
    .await
}

/// The hub's current SAML certificate (the SP's signing and encryption key).
fn hub_cert(hub: &OidcHub) -> Vec<u8> {
    hub.store
        .read(|c| fedhub::keys::published(c, fedhub::keys::Purpose::Saml, NOW))
        .unwrap()
        .into_iter()
        .find(|k| k.state == "current")
        .unwrap()
        .public_der
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_at_a_saml_idp_and_reaches_an_oidc_gateway() {
    let idp = Idp::new();
    let hub = hub_with_saml_upstream(&idp);
    let at = to_idp(&hub, "").await;
    // The AuthnRequest is signed with the hub's key, asks for the POST binding at the ACS.
    assert!(at
        .request_xml
        .contains(&format!(r#"AssertionConsumerServiceURL="{ACS}""#)));
    assert!(at
        .request_xml
        .contains(&format!(r#"Destination="{IDP_SSO}""#)));
    assert!(at.request_xml.contains(SP_ENTITY));
    let back = post_acs(&hub, &at, &response(&idp, &Answer::to(&at.request_id))).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert!(back.location().starts_with(REDIRECT), "{}", back.location());
    assert!(
        back.cookie("fedhub_sso").is_some(),
        "an SSO session started"
    );
    let code = query_of(back.location())["code"].clone();
    let tokens = hub.redeem(&code, &at.verifier).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        id["national_id"], CITIZEN,
        "matched by the national ID attribute"
    );
    assert_eq!(
        id["acr"], ACR,
        "the IdP's AuthnContextClassRef is carried through"
    );
    assert_eq!(id["auth_time"], NOW - 5);
    let audit = hub.store.read(|c| fedhub::audit::tail(c, 5)).unwrap();
    assert!(audit.iter().any(|e| e.action == "login"
        && e.target.as_deref() == Some(CONNECTOR)
        && e.outcome == "success"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_response_with_an_encrypted_assertion_is_opened_with_the_hubs_key() {
    let idp = Idp::new();
    let hub = hub_with_saml_upstream(&idp);
    let at = to_idp(&hub, "").await;
    let mut a = Answer::to(&at.request_id);
    a.sign_response = true;
    a.encrypt_for = Some(hub_cert(&hub));
    let back = post_acs(&hub, &at, &response(&idp, &a)).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert!(back.location().starts_with(REDIRECT), "{}", back.location());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_hint_naming_the_idps_entity_id_skips_the_chooser() {
    let idp = Idp::new();
    let hub = hub_with_saml_upstream(&idp);
    let at = to_idp(&hub, &format!("&idp_hint={}", enc(IDP_ENTITY))).await;
    assert!(!at.request_id.is_empty());
}

/// How an attacker (or a broken IdP) can get an answer wrong.
#[derive(Debug, Clone, Copy)]
enum Forgery {
    OtherKey,
    Unsigned,
    OtherAudience,
    Expired,
    OtherRecipient,
    OtherRequest,
    OtherIssuer,
    TamperedAfterSigning,
    WrappedExtraAssertion,
    WrappedSignedMovedAside,
    ThreeDes,
}

fn forge(idp: &Idp, hub: &OidcHub, request_id: &str, f: Forgery) -> String {
    let mut a = Answer::to(request_id);
    match f {
        Forgery::OtherKey => a.attacker_key = true,
        Forgery::Unsigned => a.sign_assertion = false,
        Forgery::OtherAudience => a.audience = "https://evil.example/sp".into(),
        Forgery::Expired => a.not_on_or_after = NOW - 3600,
        Forgery::OtherRecipient => a.recipient = "https://evil.example/acs".into(),
        Forgery::OtherRequest => a.in_response_to = "_some-other-login".into(),
        Forgery::OtherIssuer => a.issuer = "https://evil.example/idp".into(),
        _ => {}
    }
    let mut evil = a.clone();
    evil.national_id = "079099000001".into();
    evil.sign_assertion = false;
    let xml = match f {
        Forgery::TamperedAfterSigning => response_around(
            idp,
            &a,
            &assertion(idp, &a, "_a1").replace(CITIZEN, "079099000001"),
        ),
        // An unsigned assertion for someone else next to a genuine signed one.
        Forgery::WrappedExtraAssertion => response_around(
            idp,
            &a,
            &format!(
                "{}{}",
                assertion(idp, &evil, "_evil"),
                assertion(idp, &a, "_a1")
            ),
        ),
        // The genuine signed assertion hidden in Extensions, an evil one where it belongs.
        Forgery::WrappedSignedMovedAside => response_around(
            idp,
            &a,
            &format!(
                r#"<samlp:Extensions>{}</samlp:Extensions>{}"#,
                assertion(idp, &a, "_a1"),
                assertion(idp, &evil, "_evil")
            ),
        ),
        Forgery::ThreeDes => {
            let enc = fedhub_metadata::xml::encrypt::encrypt_assertion(
                &assertion(idp, &a, "_a1"),
                &hub_cert(hub),
            )
            .unwrap()
            .replace(
                "http://www.w3.org/2009/xmlenc11#aes256-gcm",
                "http://www.w3.org/2001/04/xmlenc#tripledes-cbc",
            );
            response_around(idp, &a, &enc)
        }
        _ => response_around(idp, &a, &assertion(idp, &a, "_a1")),
    };
    STANDARD.encode(xml)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_wrapped_or_misaddressed_answers_get_a_page_no_session_and_an_audit_entry() {
    let idp = Idp::new();
    let hub = hub_with_saml_upstream(&idp);
    for (f, why) in [
        (Forgery::OtherKey, "signature"),
        (Forgery::Unsigned, "must be signed"),
        (Forgery::OtherAudience, "Audience"),
        (Forgery::Expired, "expired"),
        (Forgery::OtherRecipient, "Recipient"),
        (Forgery::OtherRequest, "InResponseTo"),
        (Forgery::OtherIssuer, "Issuer"),
        (Forgery::TamperedAfterSigning, "signature"),
        (Forgery::WrappedExtraAssertion, "more than one assertion"),
        (Forgery::WrappedSignedMovedAside, "more than one assertion"),
        (Forgery::ThreeDes, "tripledes"),
    ] {
        let at = to_idp(&hub, "").await;
        let back = post_acs(&hub, &at, &forge(&idp, &hub, &at.request_id, f)).await;
        assert_eq!(back.status, StatusCode::BAD_REQUEST, "{f:?}: {}", back.body);
        assert!(
            back.location().is_empty(),
            "{f:?}: nothing reaches the gateway"
        );
        assert!(back.cookie("fedhub_sso").is_none(), "{f:?}: no session");
        assert!(
            back.body
                .contains("Không đăng nhập được qua dịch vụ xác thực"),
            "{f:?}: a page that says what happened"
        );
        let last = hub.store.read(|c| fedhub::audit::tail(c, 1)).unwrap();
        assert_eq!(
            (last[0].action.as_str(), last[0].outcome.as_str()),
            ("login", "failure"),
            "{f:?}"
        );
        assert!(
            last[0].detail.as_deref().unwrap_or("").contains(why),
            "{f:?}: audited with the reason: {:?}",
            last[0].detail
        );
    }
    let sessions = hub
        .store
        .read(|c| {
            use diesel::prelude::*;
            fedhub::store::schema::sso_sessions::table
                .count()
                .get_result::<i64>(c)
                .map_err(Into::into)
        })
        .unwrap();
    assert_eq!(sessions, 0, "no forged answer started a session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_response_finds_its_sign_in_over() {
    let idp = Idp::new();
    let hub = hub_with_saml_upstream(&idp);
    let at = to_idp(&hub, "").await;
    let answer = response(&idp, &Answer::to(&at.request_id));
    let first = post_acs(&hub, &at, &answer).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let again = post_acs(&hub, &at, &answer).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    assert!(again.cookie("fedhub_sso").is_none());
    let last = hub.store.read(|c| fedhub::audit::tail(c, 1)).unwrap();
    assert_eq!(last[0].action, "saml.acs");
    assert!(last[0].detail.as_deref().unwrap_or("").contains("replayed"));
    // The assertion ID is remembered until it expires, whatever happens to the login.
    let remembered = hub
        .store
        .read(|c| {
            use diesel::prelude::*;
            fedhub::store::schema::saml_replay::table
                .select(fedhub::store::schema::saml_replay::expires_at)
                .load::<i64>(c)
                .map_err(Into::into)
        })
        .unwrap();
    assert_eq!(remembered, vec![NOW + 300 + 60]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idp_saying_no_reaches_the_gateway_as_access_denied() {
    let idp = Idp::new();
    let hub = hub_with_saml_upstream(&idp);
    let at = to_idp(&hub, "").await;
    let mut a = Answer::to(&at.request_id);
    a.status = Some("urn:oasis:names:tc:SAML:2.0:status:Responder");
    a.sign_response = true;
    let back = post_acs(&hub, &at, &response(&idp, &a)).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    let q = query_of(back.location());
    assert!(back.location().starts_with(REDIRECT));
    assert_eq!(q["error"], "access_denied");
    assert!(back.cookie("fedhub_sso").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_post_without_the_login_cookie_is_posted_again_from_the_hub() {
    let idp = Idp::new();
    let hub = hub_with_saml_upstream(&idp);
    let at = to_idp(&hub, "").await;
    let answer = response(&idp, &Answer::to(&at.request_id));
    let body = form(&[("SAMLResponse", &answer), ("RelayState", &at.handle)]);
    let post = |uri: &str, cookie: Option<&str>| {
        let mut b =
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, format!("fedhub_login={c}"));
        }
        b.body(axum::body::Body::from(body.clone())).unwrap()
    };
    // SameSite=Lax keeps the cookie off the IdP's cross-site POST.
    let first = send(&hub.app, post("/connectors/bo-tu-phap/saml/acs", None)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert!(first.body.contains("again=1"), "{}", first.body);
    assert!(first.body.contains(r#"name="SAMLResponse""#));
    // From the hub's own page the browser sends it.
    let second = send(
        &hub.app,
        post("/connectors/bo-tu-phap/saml/acs?again=1", Some(&at.bind)),
    )
    .await;
    assert_eq!(second.status, StatusCode::SEE_OTHER, "{}", second.body);
    assert!(second.location().starts_with(REDIRECT));
    // Still no cookie the second time: another browser, refused.
    let at2 = to_idp(&hub, "").await;
    let answer2 = response(&idp, &Answer::to(&at2.request_id));
    let other = send(
        &hub.app,
        Request::post("/connectors/bo-tu-phap/saml/acs?again=1")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(form(&[
                ("SAMLResponse", &answer2),
                ("RelayState", &at2.handle),
            ])))
            .unwrap(),
    )
    .await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST, "{}", other.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hubs_sp_metadata_is_signed_and_lists_its_acs_and_keys() {
    let idp = Idp::new();
    let hub = hub_with_saml_upstream(&idp);
    let r = send(
        &hub.app,
        get_req("/connectors/bo-tu-phap/saml/metadata", &[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let cert = samael::crypto::CertificateDer::from(hub_cert(&hub));
    let (md, _) = fedhub_metadata::xml::sp::parse_signed(
        r.body.as_bytes(),
        &[cert],
        fedhub_metadata::xml::Limits::default(),
    )
    .expect("signed with the hub's SAML key");
    assert_eq!(md.entity_id, SP_ENTITY);
    assert_eq!(md.acs[0].location, ACS);
    assert!(md.authn_requests_signed && md.want_assertions_signed);
    assert_eq!(
        md.encryption_certs.len(),
        md.signing_certs.len(),
        "RSA keys encrypt too"
    );
    assert!(md
        .slo
        .iter()
        .any(|s| s.location == "http://127.0.0.1:8080/connectors/bo-tu-phap/saml/slo"));
    let missing = send(&hub.app, get_req("/connectors/nope/saml/metadata", &[])).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// Signs a Redirect-binding message as the IdP would.
fn idp_query(idp: &Idp, field: &str, xml: &str, relay: Option<&str>) -> String {
    let signer = idp.signer(&idp.key);
    let url =
        fedhub_metadata::xml::redirect::encode("http://x/", field, xml, relay, &signer).unwrap();
    url.split_once('?').unwrap().1.to_string()
}

/// Checks the hub's Redirect-binding message to the IdP and returns its XML.
fn from_hub(hub: &OidcHub, location: &str, field: &str) -> (String, Option<String>) {
    assert!(location.starts_with(IDP_SLO), "{location}");
    let query = location.split_once('?').unwrap().1;
    let msg = fedhub_metadata::xml::redirect::parse(
        query,
        field,
        fedhub_metadata::xml::Limits::default(),
    )
    .unwrap();
    msg.signature
        .as_ref()
        .expect("signed")
        .verify(&[samael::crypto::CertificateDer::from(hub_cert(hub))])
        .expect("with the hub's key");
    (msg.xml, msg.relay_state)
}

async fn signed_in(hub: &OidcHub, idp: &Idp) -> String {
    let at = to_idp(hub, "").await;
    let back = post_acs(hub, &at, &response(idp, &Answer::to(&at.request_id))).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    back.cookie("fedhub_sso").unwrap()
}

async fn still_signed_in(hub: &OidcHub, sso: &str) -> bool {
    let (_, challenge) = pkce();
    let r = send(
        &hub.app,
        get_req(
            &hub.authorize_uri(&challenge, "&prompt=none"),
            &[("fedhub_sso", sso)],
        ),
    )
    .await;
    query_of(r.location()).contains_key("code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idp_signing_the_person_out_ends_the_hub_session_and_gets_a_signed_answer() {
    let idp = Idp::new();
    let hub = hub_with_saml_upstream(&idp);
    let sso = signed_in(&hub, &idp).await;
    assert!(still_signed_in(&hub, &sso).await);
    let request = format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" Destination="http://127.0.0.1:8080/connectors/bo-tu-phap/saml/slo" ID="_lo-1" IssueInstant="{}" Version="2.0"><saml:Issuer>{IDP_ENTITY}</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">btp-7f3a9c</saml:NameID><samlp:SessionIndex>_sess-1</samlp:SessionIndex></samlp:LogoutRequest>"#,
        t(NOW)
    );
    // Unsigned: refused, nothing ends.
    let unsigned = {
        let q = idp_query(&idp, "SAMLRequest", &request, Some("rs-1"));
        q.split("&SigAlg").next().unwrap().to_string()
    };
    let r = send(
        &hub.app,
        get_req(&format!("/connectors/bo-tu-phap/saml/slo?{unsigned}"), &[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(still_signed_in(&hub, &sso).await);
    // Signed: the session ends (the IdP's browser may not carry the hub's cookie) and the
    // IdP gets a signed LogoutResponse with its RelayState.
    let q = idp_query(&idp, "SAMLRequest", &request, Some("rs-1"));
    let r = send(
        &hub.app,
        get_req(&format!("/connectors/bo-tu-phap/saml/slo?{q}"), &[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let (xml, relay) = from_hub(&hub, r.location(), "SAMLResponse");
    assert!(xml.contains(r#"InResponseTo="_lo-1""#), "{xml}");
    assert!(xml.contains("urn:oasis:names:tc:SAML:2.0:status:Success"));
    assert_eq!(relay.as_deref(), Some("rs-1"));
    assert!(
        !still_signed_in(&hub, &sso).await,
        "the SSO session is over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_at_the_hub_signs_out_at_the_idp_too() {
    let idp = Idp::new();
    let hub = hub_with_saml_upstream(&idp);
    let sso = signed_in(&hub, &idp).await;
    let r = send(
        &hub.app,
        Request::post("/saml/logout")
            .header(header::COOKIE, format!("fedhub_sso={sso}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let (xml, relay) = from_hub(&hub, r.location(), "SAMLRequest");
    // The NameID exactly as issued, with its SessionIndex.
    assert!(xml.contains(r#"Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent""#));
    assert!(
        xml.contains(&format!(
            r#"SPNameQualifier="{SP_ENTITY}">btp-7f3a9c</saml:NameID>"#
        )),
        "{xml}"
    );
    assert!(xml.contains("<samlp:SessionIndex>_sess-1</samlp:SessionIndex>"));
    let id = xml
        .split("ID=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let relay = relay.unwrap();
    let answer = |irt: &str| {
        format!(
            r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lr-1" InResponseTo="{irt}" IssueInstant="{}" Version="2.0"><saml:Issuer>{IDP_ENTITY}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#,
            t(NOW)
        )
    };
    // An answer to some other request is refused.
    let wrong = idp_query(&idp, "SAMLResponse", &answer("_other"), Some(&relay));
    let r = send(
        &hub.app,
        get_req(&format!("/connectors/bo-tu-phap/saml/slo?{wrong}"), &[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let right = idp_query(&idp, "SAMLResponse", &answer(id), Some(&relay));
    let r = send(
        &hub.app,
        get_req(&format!("/connectors/bo-tu-phap/saml/slo?{right}"), &[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!still_signed_in(&hub, &sso).await);
}

#[test]
fn registration_refuses_what_could_never_work() {
    let idp = Idp::new();
    let hub = hub_with_saml_upstream(&idp);
    let reg =
        |id: &str, xml: String, map: Option<(&str, &str)>| fedhub::upstream::SamlRegistration {
            id: id.into(),
            display_name: "X".into(),
            metadata_xml: xml,
            name_id_format: None,
            attribute_map: map.map(|(a, b)| [(a.to_string(), b.to_string())].into()),
        };
    let add = |r: fedhub::upstream::SamlRegistration| {
        hub.store
            .write(|c| fedhub::upstream::add_saml(c, &r, NOW))
            .unwrap_err()
            .to_string()
    };
    assert!(add(reg("dup", idp.metadata(), None)).contains("already registered"));
    let plain = idp
        .metadata()
        .replace("https://idp.", "http://idp.")
        .replace(IDP_ENTITY, "https://other/idp");
    assert!(add(reg("plain", plain, None)).contains("https"));
    let other = idp.metadata().replace(IDP_ENTITY, "https://other/idp");
    assert!(add(reg("map", other, Some(("urn:oid:2.5.4.42", "password")))).contains("password"));
    let _ = json!({});
}
