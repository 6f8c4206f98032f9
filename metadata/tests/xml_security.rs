//! The XML security rules, each with an attack that must fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fedhub_metadata::xml::{self, decode_authn_request, Binding, Limits, XmlError};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509Builder, X509NameBuilder};
use samael::crypto::{CryptoProvider, XmlSec};

const SP: &str = "https://dvc.bo-tai-chinh.example.gov.vn/saml";
const ACS: &str = "https://dvc.bo-tai-chinh.example.gov.vn/saml/acs";
const ATTACKER: &str = "https://attacker.example/steal";

struct Keys {
    key: PKey<Private>,
    cert_der: Vec<u8>,
}

fn keys(cn: &str) -> Keys {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    Keys {
        cert_der: b.build().to_der().unwrap(),
        key,
    }
}

fn sp_metadata_xml(cert_der: Option<&[u8]>, signed_requests: bool, acs: &str) -> String {
    let key = cert_der
        .map(|c| format!(r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#, STANDARD.encode(c)))
        .unwrap_or_default();
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{SP}">
<md:SPSSODescriptor AuthnRequestsSigned="{signed_requests}" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
{key}
<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://dvc.bo-tai-chinh.example.gov.vn/saml/slo"/>
<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="1" isDefault="true"/>
<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}/2" index="2"/>
</md:SPSSODescriptor></md:EntityDescriptor>"#
    )
}

fn sp(keys: &Keys, signed_requests: bool) -> xml::SpMetadata {
    xml::sp::parse(
        sp_metadata_xml(Some(&keys.cert_der), signed_requests, ACS).as_bytes(),
        Limits::default(),
    )
    .unwrap()
}

/// An AuthnRequest with a signature template over `#id`, using `sig`/`digest` algorithm URIs.
fn request_template(id: &str, acs: &str, sig: &str, digest: &str) -> String {
    format!(
        r##"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="2026-11-27T08:00:00Z" Destination="https://sso.example.gov.vn/saml/sso" AssertionConsumerServiceURL="{acs}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>{SP}</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{sig}"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature></samlp:AuthnRequest>"##
    )
}

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

fn signed_request(keys: &Keys, id: &str, acs: &str) -> String {
    XmlSec::sign_xml(
        request_template(id, acs, RSA_SHA256, SHA256),
        &keys.key.private_key_to_der().unwrap(),
    )
    .unwrap()
}

fn post(xml: &str) -> String {
    STANDARD.encode(xml)
}

fn decode_post(
    xml: &str,
    sp: &xml::SpMetadata,
    relay: Option<&str>,
) -> Result<xml::VerifiedAuthnRequest, XmlError> {
    let b64 = post(xml);
    decode_authn_request(
        Binding::Post {
            saml_request: &b64,
            relay_state: relay,
        },
        sp,
        Limits::default(),
    )
}

#[test]
fn metadata_gives_endpoints_and_keys() {
    let k = keys("sp");
    let md = sp(&k, true);
    assert_eq!(md.entity_id, SP);
    assert_eq!(md.acs.len(), 2);
    assert!(md.authn_requests_signed);
    assert_eq!(md.signing_certs.len(), 1);
    assert_eq!(md.choose_acs(None, None).unwrap().location, ACS);
    assert_eq!(
        md.choose_acs(Some(2), None).unwrap().location,
        format!("{ACS}/2")
    );
    assert_eq!(md.choose_acs(None, Some(ACS)).unwrap().index, 1);
    assert!(
        md.choose_acs(None, Some(ATTACKER)).is_err(),
        "an ACS URL not in metadata is never used"
    );
    assert!(md.choose_acs(Some(9), None).is_err());
}

#[test]
fn metadata_without_a_signing_key_is_refused() {
    let err = xml::sp::parse(
        sp_metadata_xml(None, false, ACS).as_bytes(),
        Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err, XmlError::NoSigningKey);
}

#[test]
fn metadata_with_plain_http_endpoints_or_a_doctype_is_refused() {
    let k = keys("sp");
    let plain = sp_metadata_xml(Some(&k.cert_der), false, "http://dvc.example.gov.vn/acs");
    assert!(matches!(
        xml::sp::parse(plain.as_bytes(), Limits::default()),
        Err(XmlError::Invalid(_))
    ));
    let doctype = format!(
        "<!DOCTYPE x [<!ENTITY a \"b\">]>{}",
        sp_metadata_xml(Some(&k.cert_der), false, ACS)
    );
    assert_eq!(
        xml::sp::parse(doctype.as_bytes(), Limits::default()).unwrap_err(),
        XmlError::Doctype
    );
    assert!(matches!(
        xml::sp::parse(b"<not-metadata/>", Limits::default()),
        Err(XmlError::Parse(_) | XmlError::Invalid(_))
    ));
}

#[test]
fn a_signed_post_request_verifies_with_the_registered_key() {
    let k = keys("sp");
    let req = decode_post(
        &signed_request(&k, "_r1", ACS),
        &sp(&k, true),
        Some("state-1"),
    )
    .unwrap();
    assert!(req.signed);
    assert_eq!(req.request.id, "_r1");
    assert_eq!(
        req.request.assertion_consumer_service_url.as_deref(),
        Some(ACS)
    );
    assert_eq!(req.relay_state.as_deref(), Some("state-1"));
}

#[test]
fn a_request_signed_with_another_key_is_refused_even_if_it_carries_that_key() {
    let sp_keys = keys("sp");
    let attacker = keys("attacker");
    // The attacker signs and puts their own certificate in KeyInfo: keys come only from metadata.
    let signed = signed_request(&attacker, "_r1", ACS);
    let with_cert = signed.replace(
        "</ds:SignatureValue>",
        &format!("</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>", STANDARD.encode(&attacker.cert_der)),
    );
    assert_eq!(
        decode_post(&with_cert, &sp(&sp_keys, true), None).unwrap_err(),
        XmlError::BadSignature
    );
}

#[test]
fn an_unsigned_request_is_refused_when_metadata_requires_signing() {
    let k = keys("sp");
    let unsigned = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_u" Version="2.0" IssueInstant="2026-11-27T08:00:00Z"><saml:Issuer>{SP}</saml:Issuer></samlp:AuthnRequest>"#
    );
    assert_eq!(
        decode_post(&unsigned, &sp(&k, true), None).unwrap_err(),
        XmlError::MissingSignature
    );
    // The same SP with AuthnRequestsSigned="false" may send it unsigned.
    let req = decode_post(&unsigned, &sp(&k, false), None).unwrap();
    assert!(!req.signed);
}

#[test]
fn a_tampered_signed_request_is_refused() {
    let k = keys("sp");
    let tampered = signed_request(&k, "_r1", ACS).replace(ACS, ATTACKER);
    assert_eq!(
        decode_post(&tampered, &sp(&k, false), None).unwrap_err(),
        XmlError::BadSignature
    );
}

#[test]
fn signature_wrapping_cannot_change_the_acs() {
    let k = keys("sp");
    let signed = signed_request(&k, "_r1", ACS);
    let inner = signed.trim_start_matches(|c| c != '<');
    let inner = inner
        .strip_prefix("<?xml version=\"1.0\"?>")
        .unwrap_or(inner)
        .trim();
    // XSW: a new unsigned root with the attacker's ACS, the genuine signed request tucked inside.
    let wrapped = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_evil" Version="2.0" IssueInstant="2026-11-27T08:00:00Z" AssertionConsumerServiceURL="{ATTACKER}"><saml:Issuer>{SP}</saml:Issuer><samlp:Extensions>{inner}</samlp:Extensions></samlp:AuthnRequest>"#
    );
    // A verifier that checks the signature and then parses the whole document is fooled:
    let cert = samael::crypto::CertificateDer::from(k.cert_der.clone());
    assert!(
        XmlSec::verify_signed_xml(&wrapped, &cert, Some("ID")).is_ok(),
        "the genuine signature still verifies"
    );
    // ours reads only what the signature covers.
    let req = decode_post(&wrapped, &sp(&k, true), None).unwrap();
    assert_eq!(
        req.request.assertion_consumer_service_url.as_deref(),
        Some(ACS),
        "only signed content is read"
    );
    assert_eq!(req.request.id, "_r1");
}

#[test]
fn sha1_signatures_are_refused() {
    let k = keys("sp");
    let template = request_template(
        "_r1",
        ACS,
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        "http://www.w3.org/2000/09/xmldsig#sha1",
    );
    let signed = XmlSec::sign_xml(template, &k.key.private_key_to_der().unwrap()).unwrap();
    // The signature itself is genuine: without an algorithm allow-list it verifies.
    let cert = samael::crypto::CertificateDer::from(k.cert_der.clone());
    let unrestricted = XmlSec::reduce_xml_to_signed(
        &signed,
        &[cert],
        samael::crypto::ReduceMode::ValidateAndMarkNoAncestors,
    );
    assert!(unrestricted.is_ok(), "{unrestricted:?}");
    assert_eq!(
        decode_post(&signed, &sp(&k, true), None).unwrap_err(),
        XmlError::BadSignature,
        "SHA-1 must not verify"
    );
}

#[test]
fn issuer_must_be_the_registered_sp_and_relay_state_is_capped() {
    let k = keys("sp");
    let other = signed_request(&k, "_r1", ACS).replace(SP, "https://other-sp.example");
    assert!(decode_post(&other, &sp(&k, false), None).is_err());
    let long = "x".repeat(81);
    assert!(matches!(
        decode_post(&signed_request(&k, "_r2", ACS), &sp(&k, true), Some(&long)),
        Err(XmlError::Invalid(_))
    ));
}

#[test]
fn doctype_and_oversized_posts_are_refused_before_parsing() {
    let k = keys("sp");
    let xxe = format!(
        r#"<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>{}"#,
        signed_request(&k, "_r1", ACS)
    );
    assert_eq!(
        decode_post(&xxe, &sp(&k, true), None).unwrap_err(),
        XmlError::Doctype
    );
    let big = post(&"<a/>".repeat(100_000));
    let err = decode_authn_request(
        Binding::Post {
            saml_request: &big,
            relay_state: None,
        },
        &sp(&k, true),
        Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, XmlError::TooLarge { .. }));
    let garbage = decode_authn_request(
        Binding::Post {
            saml_request: "%%%not base64",
            relay_state: None,
        },
        &sp(&k, true),
        Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(garbage, XmlError::Decode(_)));
}

// ---- HTTP-Redirect ----

fn deflate_b64(xml: &str) -> String {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes()).unwrap();
    STANDARD.encode(enc.finish().unwrap())
}

/// Percent-encodes like many SP stacks do; `lower` uses lowercase hex, as some do.
fn encode(s: &str, lower: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else if lower {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unsigned_xml(id: &str) -> String {
    format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="2026-11-27T08:00:00Z" AssertionConsumerServiceIndex="2"><saml:Issuer>{SP}</saml:Issuer></samlp:AuthnRequest>"#
    )
}

fn signed_query(
    k: &Keys,
    xml: &str,
    relay: &str,
    sig_alg: &str,
    digest: MessageDigest,
    lower: bool,
) -> String {
    let octets = format!(
        "SAMLRequest={}&RelayState={}&SigAlg={}",
        encode(&deflate_b64(xml), lower),
        encode(relay, lower),
        encode(sig_alg, lower)
    );
    let mut signer = openssl::sign::Signer::new(digest, &k.key).unwrap();
    signer.update(octets.as_bytes()).unwrap();
    let sig = STANDARD.encode(signer.sign_to_vec().unwrap());
    format!("{octets}&Signature={}", encode(&sig, lower))
}

fn decode_redirect(
    query: &str,
    sp: &xml::SpMetadata,
) -> Result<xml::VerifiedAuthnRequest, XmlError> {
    decode_authn_request(
        Binding::Redirect { raw_query: query },
        sp,
        Limits::default(),
    )
}

#[test]
fn redirect_signature_is_checked_over_the_raw_query_bytes() {
    let k = keys("sp");
    // Lowercase percent-encoding: re-encoding the parsed values would change the bytes and
    // break a genuine signature.
    let q = signed_query(
        &k,
        &unsigned_xml("_q1"),
        "relay/1 2",
        RSA_SHA256,
        MessageDigest::sha256(),
        true,
    );
    let req = decode_redirect(&q, &sp(&k, true)).unwrap();
    assert!(req.signed);
    assert_eq!(req.relay_state.as_deref(), Some("relay/1 2"));
    assert_eq!(req.request.assertion_consumer_service_index, Some(2));
    let changed = q.replace("RelayState=relay", "RelayState=other");
    assert_eq!(
        decode_redirect(&changed, &sp(&k, true)).unwrap_err(),
        XmlError::BadSignature
    );
    let other = keys("attacker");
    let forged = signed_query(
        &other,
        &unsigned_xml("_q1"),
        "r",
        RSA_SHA256,
        MessageDigest::sha256(),
        false,
    );
    assert_eq!(
        decode_redirect(&forged, &sp(&k, true)).unwrap_err(),
        XmlError::BadSignature
    );
}

#[test]
fn redirect_refuses_sha1_duplicates_and_missing_signatures() {
    let k = keys("sp");
    let sha1 = signed_query(
        &k,
        &unsigned_xml("_q1"),
        "r",
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        MessageDigest::sha1(),
        false,
    );
    assert!(matches!(
        decode_redirect(&sha1, &sp(&k, true)),
        Err(XmlError::Algorithm(_))
    ));
    let q = signed_query(
        &k,
        &unsigned_xml("_q1"),
        "r",
        RSA_SHA256,
        MessageDigest::sha256(),
        false,
    );
    let polluted = format!(
        "{q}&SAMLRequest={}",
        encode(&deflate_b64(&unsigned_xml("_evil")), false)
    );
    assert_eq!(
        decode_redirect(&polluted, &sp(&k, true)).unwrap_err(),
        XmlError::DuplicateParameter("SAMLRequest".into())
    );
    let unsigned = format!(
        "SAMLRequest={}",
        encode(&deflate_b64(&unsigned_xml("_q2")), false)
    );
    assert_eq!(
        decode_redirect(&unsigned, &sp(&k, true)).unwrap_err(),
        XmlError::MissingSignature
    );
    assert!(!decode_redirect(&unsigned, &sp(&k, false)).unwrap().signed);
}
