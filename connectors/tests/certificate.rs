//! The USB-token certificate connector against a CA hierarchy built here with openssl
//! (root → intermediate → leaves), and the real government-CA certificates in
//! `data/certs` (copied from the shared fixtures) for subject parsing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::OnceLock;

use fedhub_connectors::certificate::{
    crl_distribution_points, crl_info, read_certificate, sign_challenge, sign_challenge_pkcs12,
    trusted_crl_urls, verify, CertificateConfig, CertificateError, Challenge, RevocationPolicy,
    SignRequest, SignedChallenge, ACR, ISSUER,
};
use fedhub_connectors::ConnectorError;
use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{
    X509Builder, X509CrlBuilder, X509Extension, X509NameBuilder, X509RevokedBuilder, X509,
};

/// 2026-09-20, inside every test certificate's validity unless said otherwise.
const NOW: i64 = 1_790_000_000;
const DAY: i64 = 86_400;
const HUB: &str = "https://sso.dichvucong.example.gov.vn";
const CITIZEN_CRL_URL: &str = "http://ca.example.gov.vn/crl/sub-ca.crl";
const ROOT_CRL_URL: &str = "http://ca.example.gov.vn/crl/root.crl";

#[derive(Clone, Copy)]
enum Alg {
    Rsa,
    P256,
    P384,
}

struct Issued {
    key: PKey<Private>,
    cert: X509,
}

impl Issued {
    fn pem(&self) -> String {
        String::from_utf8(self.cert.to_pem().unwrap()).unwrap()
    }
    fn der(&self) -> Vec<u8> {
        self.cert.to_der().unwrap()
    }
    fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().unwrap()
    }
}

struct Spec<'a> {
    subject: &'a [(Nid, &'a str)],
    serial: u32,
    ca: bool,
    key_usage: &'a [&'a str],
    eku: Option<&'a [&'a str]>,
    not_before: i64,
    not_after: i64,
    crl_url: Option<&'a str>,
    alg: Alg,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            subject: &[],
            serial: 1,
            ca: false,
            key_usage: &["digitalSignature", "nonRepudiation"],
            eku: Some(&["clientAuth", "emailProtection"]),
            not_before: NOW - 30 * DAY,
            not_after: NOW + 365 * DAY,
            crl_url: Some(CITIZEN_CRL_URL),
            alg: Alg::Rsa,
        }
    }
}

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

fn extension_from_der(oid: &str, der: &[u8]) -> X509Extension {
    X509Extension::new_from_der(
        &Asn1Object::from_str(oid).unwrap(),
        false,
        &Asn1OctetString::new_from_bytes(der).unwrap(),
    )
    .unwrap()
}

fn new_key(alg: Alg) -> PKey<Private> {
    match alg {
        Alg::Rsa => PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
        Alg::P256 | Alg::P384 => {
            let nid = if matches!(alg, Alg::P256) {
                Nid::X9_62_PRIME256V1
            } else {
                Nid::SECP384R1
            };
            let group = EcGroup::from_curve_name(nid).unwrap();
            PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
        }
    }
}

/// Issue a certificate; `issuer = None` makes it self-signed.
fn issue(spec: &Spec<'_>, issuer: Option<&Issued>) -> Issued {
    let key = new_key(spec.alg);
    let mut name = X509NameBuilder::new().unwrap();
    for (nid, value) in spec.subject {
        name.append_entry_by_nid(*nid, value).unwrap();
    }
    let name = name.build();

    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(
        &BigNum::from_u32(spec.serial)
            .unwrap()
            .to_asn1_integer()
            .unwrap(),
    )
    .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |i| i.cert.subject_name()))
        .unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(spec.not_before).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(spec.not_after).unwrap())
        .unwrap();

    let mut bc = BasicConstraints::new();
    bc.critical();
    if spec.ca {
        bc.ca();
    }
    b.append_extension(bc.build().unwrap()).unwrap();
    if !spec.key_usage.is_empty() {
        let mut ku = KeyUsage::new();
        ku.critical();
        for usage in spec.key_usage {
            match *usage {
                "digitalSignature" => ku.digital_signature(),
                "nonRepudiation" => ku.non_repudiation(),
                "keyEncipherment" => ku.key_encipherment(),
                "keyCertSign" => ku.key_cert_sign(),
                "cRLSign" => ku.crl_sign(),
                other => panic!("unknown key usage {other}"),
            };
        }
        b.append_extension(ku.build().unwrap()).unwrap();
    }
    if let Some(ekus) = spec.eku {
        let mut eku = ExtendedKeyUsage::new();
        for usage in ekus {
            match *usage {
                "clientAuth" => eku.client_auth(),
                "serverAuth" => eku.server_auth(),
                "emailProtection" => eku.email_protection(),
                other => panic!("unknown EKU {other}"),
            };
        }
        b.append_extension(eku.build().unwrap()).unwrap();
    }
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(ski).unwrap();
    if let Some(issuer) = issuer {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(&issuer.cert), None))
            .unwrap();
        b.append_extension(aki).unwrap();
    }
    if let Some(url) = spec.crl_url {
        // CRLDistributionPoints ::= SEQUENCE { DistributionPoint { [0] { fullName [0] { URI [6] } } } }
        let uri = der_tlv(0x86, url.as_bytes());
        let der = der_tlv(0x30, &der_tlv(0x30, &der_tlv(0xa0, &der_tlv(0xa0, &uri))));
        b.append_extension(extension_from_der("2.5.29.31", &der))
            .unwrap();
    }
    let signer = issuer.map_or(&key, |i| &i.key);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    Issued {
        cert: b.build(),
        key,
    }
}

/// A v2 CRL signed by `issuer`, revoking `serials`.
fn crl(issuer: &Issued, serials: &[u32], this_update: i64, next_update: i64) -> Vec<u8> {
    let mut b = X509CrlBuilder::new().unwrap();
    b.set_issuer_name(issuer.cert.subject_name()).unwrap();
    b.set_last_update(&Asn1Time::from_unix(this_update).unwrap())
        .unwrap();
    b.set_next_update(&Asn1Time::from_unix(next_update).unwrap())
        .unwrap();
    for serial in serials {
        let mut r = X509RevokedBuilder::new().unwrap();
        r.set_serial_number(
            &BigNum::from_u32(*serial)
                .unwrap()
                .to_asn1_integer()
                .unwrap(),
        )
        .unwrap();
        r.set_revocation_date(&Asn1Time::from_unix(this_update).unwrap())
            .unwrap();
        b.add_revoked(r.build()).unwrap();
    }
    let key_id = issuer.cert.subject_key_id().unwrap().as_slice().to_vec();
    b.append_extension(extension_from_der(
        "2.5.29.35",
        &der_tlv(0x30, &der_tlv(0x80, &key_id)),
    ))
    .unwrap();
    b.append_extension(extension_from_der("2.5.29.20", &der_tlv(0x02, &[0x01])))
        .unwrap();
    b.sign(&issuer.key, MessageDigest::sha256()).unwrap();
    b.build().unwrap().to_der().unwrap()
}

struct Pki {
    root: Issued,
    intermediate: Issued,
    citizen: Issued,
    expired: Issued,
    revoked: Issued,
    server_only: Issued,
    other_root: Issued,
    stranger: Issued,
    self_signed: Issued,
    organisation: Issued,
    ec_p256: Issued,
    ec_p384: Issued,
    no_eku: Issued,
    encipherment_only: Issued,
    cmnd: Issued,
    root_crl: Vec<u8>,
    intermediate_crl: Vec<u8>,
    stale_intermediate_crl: Vec<u8>,
}

const REVOKED_SERIAL: u32 = 0x1003;
const ROOT_DN: &[(Nid, &str)] = &[
    (Nid::COUNTRYNAME, "VN"),
    (Nid::ORGANIZATIONNAME, "Ban Cơ yếu Chính phủ (thử nghiệm)"),
    (Nid::COMMONNAME, "RootCA thử nghiệm G2"),
];
const SUB_CA_DN: &[(Nid, &str)] = &[
    (Nid::COUNTRYNAME, "VN"),
    (Nid::ORGANIZATIONNAME, "Ban Cơ yếu Chính phủ (thử nghiệm)"),
    (
        Nid::COMMONNAME,
        "CA phục vụ các cơ quan Nhà nước, thử nghiệm",
    ),
];

fn citizen_dn(cccd: &'static str) -> Vec<(Nid, &'static str)> {
    vec![
        (Nid::COUNTRYNAME, "VN"),
        (Nid::STATEORPROVINCENAME, "Hà Nội"),
        (Nid::COMMONNAME, "Nguyễn Văn An"),
        (Nid::USERID, cccd),
    ]
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca_usage: &[&str] = &["keyCertSign", "cRLSign"];
        let root = issue(
            &Spec {
                subject: ROOT_DN,
                ca: true,
                key_usage: ca_usage,
                eku: None,
                not_before: NOW - 3650 * DAY,
                not_after: NOW + 3650 * DAY,
                crl_url: None,
                ..Spec::default()
            },
            None,
        );
        let intermediate = issue(
            &Spec {
                subject: SUB_CA_DN,
                serial: 2,
                ca: true,
                key_usage: ca_usage,
                eku: None,
                not_before: NOW - 1000 * DAY,
                not_after: NOW + 1000 * DAY,
                crl_url: Some(ROOT_CRL_URL),
                ..Spec::default()
            },
            Some(&root),
        );
        let person = |serial: u32, subject: &[(Nid, &str)], tweak: &dyn Fn(&mut Spec<'_>)| {
            let mut spec = Spec {
                subject,
                serial,
                ..Spec::default()
            };
            tweak(&mut spec);
            issue(&spec, Some(&intermediate))
        };
        let citizen_subject = citizen_dn("CCCD:001204012345");
        let citizen = person(0x1001, &citizen_subject, &|_| {});
        let expired = person(0x1002, &citizen_subject, &|s| {
            s.not_before = NOW - 400 * DAY;
            s.not_after = NOW - DAY;
        });
        let revoked = person(REVOKED_SERIAL, &citizen_subject, &|_| {});
        let server_only = person(0x1004, &citizen_subject, &|s| s.eku = Some(&["serverAuth"]));
        let organisation = person(
            0x1005,
            &[
                (Nid::COUNTRYNAME, "VN"),
                (Nid::LOCALITYNAME, "Hà Nội"),
                (Nid::ORGANIZATIONNAME, "Công ty TNHH Phần mềm Sông Hồng"),
                (Nid::ORGANIZATIONALUNITNAME, "Phòng Kế toán"),
                (Nid::COMMONNAME, "Công ty TNHH Phần mềm Sông Hồng"),
                (Nid::USERID, "MST:0101234565"),
            ],
            &|_| {},
        );
        let ec_p256 = person(0x1006, &citizen_dn("CCCD:079190001122"), &|s| {
            s.alg = Alg::P256
        });
        let ec_p384 = person(0x1007, &citizen_dn("CCCD:079190003344"), &|s| {
            s.alg = Alg::P384
        });
        let no_eku = person(0x1008, &citizen_subject, &|s| s.eku = None);
        let encipherment_only = person(0x1009, &citizen_subject, &|s| {
            s.key_usage = &["keyEncipherment"]
        });
        let cmnd = person(
            0x100a,
            &[
                (Nid::COUNTRYNAME, "VN"),
                (Nid::COMMONNAME, "Trần Thị Bình"),
                (Nid::USERID, "CMND:012345678"),
            ],
            &|_| {},
        );
        let other_root = issue(
            &Spec {
                subject: &[(Nid::COUNTRYNAME, "VN"), (Nid::COMMONNAME, "Some Other CA")],
                ca: true,
                key_usage: &["keyCertSign", "cRLSign"],
                eku: None,
                crl_url: None,
                ..Spec::default()
            },
            None,
        );
        let stranger = issue(
            &Spec {
                subject: &citizen_subject,
                serial: 0x2001,
                ..Spec::default()
            },
            Some(&other_root),
        );
        let self_signed = issue(
            &Spec {
                subject: &citizen_subject,
                serial: 0x3001,
                ..Spec::default()
            },
            None,
        );
        let root_crl = crl(&root, &[], NOW - DAY, NOW + 30 * DAY);
        let intermediate_crl = crl(&intermediate, &[REVOKED_SERIAL], NOW - DAY, NOW + 7 * DAY);
        let stale_intermediate_crl = crl(
            &intermediate,
            &[REVOKED_SERIAL],
            NOW - 20 * DAY,
            NOW - 10 * DAY,
        );
        Pki {
            root,
            intermediate,
            citizen,
            expired,
            revoked,
            server_only,
            other_root,
            stranger,
            self_signed,
            organisation,
            ec_p256,
            ec_p384,
            no_eku,
            encipherment_only,
            cmnd,
            root_crl,
            intermediate_crl,
            stale_intermediate_crl,
        }
    })
}

fn config() -> CertificateConfig {
    CertificateConfig::new(vec![pki().root.pem()])
}

fn crls() -> Vec<Vec<u8>> {
    vec![pki().root_crl.clone(), pki().intermediate_crl.clone()]
}

fn challenge() -> String {
    Challenge::with_nonce(&[42u8; 32], HUB, NOW - 10, 300)
        .unwrap()
        .to_signing_string()
}

/// What the signing tool answers for `leaf` (chain: leaf + the intermediate).
fn answer(leaf: &Issued, challenge: &str) -> SignedChallenge {
    let chain = format!("{}{}", leaf.pem(), pki().intermediate.pem());
    sign_challenge(challenge, &leaf.key_pem(), chain.as_bytes()).unwrap()
}

fn refused(e: CertificateError) -> Result<(), ConnectorError> {
    Err(ConnectorError::from(e))
}

fn outcome(leaf: &Issued) -> Result<(), ConnectorError> {
    let c = challenge();
    verify(&config(), &c, &answer(leaf, &c), &crls(), NOW, "token").map(|_| ())
}

#[test]
fn a_good_citizen_certificate_signs_in_with_its_national_id() {
    let pki = pki();
    let c = challenge();
    let a = answer(&pki.citizen, &c);
    let id = verify(&config(), &c, &a, &crls(), NOW, "usb-token").unwrap();

    assert_eq!(id.connector, "usb-token");
    assert_eq!(id.issuer, ISSUER);
    assert_eq!(id.attribute("national_id"), Some("001204012345"));
    assert_eq!(id.attribute("national_id_type"), Some("CCCD"));
    assert_eq!(id.attribute("name"), Some("Nguyễn Văn An"));
    assert_eq!(id.attribute("province"), Some("Hà Nội"));
    assert_eq!(id.attribute("uid"), Some("CCCD:001204012345"));
    assert_eq!(id.attribute("tax_code"), None);
    let issuer_dn = "C=VN, O=Ban Cơ yếu Chính phủ (thử nghiệm), CN=CA phục vụ các cơ quan Nhà nước\\, thử nghiệm";
    assert_eq!(id.subject, format!("{issuer_dn};1001"));
    assert_eq!(id.attribute("certificate_issuer"), Some(issuer_dn));
    assert_eq!(id.attribute("certificate_serial"), Some("1001"));
    let sha = hex::encode(openssl::sha::sha256(&pki.citizen.der()));
    assert_eq!(id.attribute("certificate_sha256"), Some(sha.as_str()));
    assert_eq!(id.authn.auth_time, NOW);
    assert_eq!(id.authn.acr.as_deref(), Some(ACR));
    assert_eq!(id.authn.amr, vec!["hwk".to_string(), "pki".to_string()]);

    // The answer survives its JSON trip, and the signature is standard base64 of 256 bytes.
    let json = a.to_json().unwrap();
    assert_eq!(SignedChallenge::from_json(&json).unwrap(), a);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["chain"].as_array().unwrap().len(), 2);
    assert!(
        SignedChallenge::from_json(&json.replace("\"chain\"", "\"extra\":1,\"chain\"")).is_err()
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    assert_eq!(outcome(&pki().expired), refused(CertificateError::Expired));
    assert_eq!(
        ConnectorError::from(CertificateError::Expired).to_string(),
        "the upstream refused the sign-in: the certificate has expired"
    );
}

#[test]
fn a_revoked_certificate_is_refused() {
    assert_eq!(outcome(&pki().revoked), refused(CertificateError::Revoked));
}

#[test]
fn a_server_only_certificate_is_refused_for_its_eku() {
    assert_eq!(
        outcome(&pki().server_only),
        refused(CertificateError::WrongEku)
    );
}

#[test]
fn a_certificate_without_eku_is_accepted() {
    // rustls-webpki's KeyUsage::client_auth() requires clientAuth only when an EKU is present.
    assert_eq!(outcome(&pki().no_eku), Ok(()));
}

#[test]
fn a_key_usage_without_digital_signature_is_refused() {
    assert_eq!(
        outcome(&pki().encipherment_only),
        refused(CertificateError::WrongKeyUsage)
    );
}

#[test]
fn a_certificate_from_an_untrusted_ca_is_refused() {
    let pki = pki();
    let c = challenge();
    let chain = format!("{}{}", pki.stranger.pem(), pki.other_root.pem());
    let a = sign_challenge(&c, &pki.stranger.key_pem(), chain.as_bytes()).unwrap();
    assert_eq!(
        verify(&config(), &c, &a, &crls(), NOW, "token").map(|_| ()),
        refused(CertificateError::Untrusted)
    );
}

#[test]
fn a_self_signed_certificate_is_refused() {
    let pki = pki();
    let c = challenge();
    let a = sign_challenge(
        &c,
        &pki.self_signed.key_pem(),
        pki.self_signed.pem().as_bytes(),
    )
    .unwrap();
    assert_eq!(
        verify(&config(), &c, &a, &crls(), NOW, "token").map(|_| ()),
        refused(CertificateError::Untrusted)
    );
}

#[test]
fn a_signature_over_another_challenge_is_refused() {
    let c = challenge();
    let other = Challenge::with_nonce(&[43u8; 32], HUB, NOW - 10, 300)
        .unwrap()
        .to_signing_string();
    // The tool signed `other` but claims to answer `c`.
    let mut a = answer(&pki().citizen, &other);
    a.challenge = c.clone();
    assert_eq!(
        verify(&config(), &c, &a, &crls(), NOW, "token").map(|_| ()),
        refused(CertificateError::BadSignature)
    );
    // An honest answer to the other challenge is not an answer to this one.
    let a = answer(&pki().citizen, &other);
    assert_eq!(
        verify(&config(), &c, &a, &crls(), NOW, "token").map(|_| ()),
        refused(CertificateError::ChallengeMismatch)
    );
}

#[test]
fn an_expired_challenge_is_refused() {
    let c = challenge();
    let a = answer(&pki().citizen, &c);
    assert_eq!(
        verify(&config(), &c, &a, &crls(), NOW + 291, "token").map(|_| ()),
        refused(CertificateError::ChallengeExpired)
    );
}

#[test]
fn an_organisation_certificate_carries_its_tax_code() {
    let c = challenge();
    let id = verify(
        &config(),
        &c,
        &answer(&pki().organisation, &c),
        &crls(),
        NOW,
        "token",
    )
    .unwrap();
    assert_eq!(id.attribute("tax_code"), Some("0101234565"));
    assert_eq!(id.attribute("national_id"), None);
    assert_eq!(
        id.attribute("name"),
        Some("Công ty TNHH Phần mềm Sông Hồng")
    );
    assert_eq!(
        id.attribute("organisation"),
        Some("Công ty TNHH Phần mềm Sông Hồng")
    );
    assert_eq!(id.attribute("unit"), Some("Phòng Kế toán"));
    assert_eq!(id.attribute("locality"), Some("Hà Nội"));
}

#[test]
fn an_old_identity_card_number_is_read() {
    let c = challenge();
    let id = verify(
        &config(),
        &c,
        &answer(&pki().cmnd, &c),
        &crls(),
        NOW,
        "token",
    )
    .unwrap();
    assert_eq!(id.attribute("national_id"), Some("012345678"));
    assert_eq!(id.attribute("national_id_type"), Some("CMND"));
}

#[test]
fn ec_keys_sign_in() {
    let c = challenge();
    let id = verify(
        &config(),
        &c,
        &answer(&pki().ec_p256, &c),
        &crls(),
        NOW,
        "token",
    )
    .unwrap();
    assert_eq!(id.attribute("national_id"), Some("079190001122"));
    let id = verify(
        &config(),
        &c,
        &answer(&pki().ec_p384, &c),
        &crls(),
        NOW,
        "token",
    )
    .unwrap();
    assert_eq!(id.attribute("national_id"), Some("079190003344"));
}

#[test]
fn without_a_crl_require_refuses_and_allow_unknown_accepts() {
    let pki = pki();
    let c = challenge();
    let a = answer(&pki.citizen, &c);
    let mut cfg = config();
    assert_eq!(cfg.revocation, RevocationPolicy::Require);
    assert_eq!(
        verify(&cfg, &c, &a, &[], NOW, "token").map(|_| ()),
        refused(CertificateError::RevocationUnknown)
    );
    // The intermediate needs the root's CRL too (the whole chain is checked).
    assert_eq!(
        verify(
            &cfg,
            &c,
            &a,
            std::slice::from_ref(&pki.intermediate_crl),
            NOW,
            "token"
        )
        .map(|_| ()),
        refused(CertificateError::RevocationUnknown)
    );
    // A CRL past its nextUpdate does not count as known.
    let stale = vec![pki.root_crl.clone(), pki.stale_intermediate_crl.clone()];
    assert_eq!(
        verify(&cfg, &c, &a, &stale, NOW, "token").map(|_| ()),
        refused(CertificateError::RevocationListExpired)
    );

    cfg.revocation = RevocationPolicy::AllowUnknown;
    assert!(verify(&cfg, &c, &a, &[], NOW, "token").is_ok());
    assert!(verify(
        &cfg,
        &c,
        &a,
        std::slice::from_ref(&pki.intermediate_crl),
        NOW,
        "token"
    )
    .is_ok());
    assert!(verify(&cfg, &c, &a, &stale, NOW, "token").is_ok());
    // A CRL that is there still revokes.
    let r = answer(&pki.revoked, &c);
    assert_eq!(
        verify(&cfg, &c, &r, &stale, NOW, "token").map(|_| ()),
        refused(CertificateError::Revoked)
    );
    // The untrusted stay untrusted without CRLs (no misleading "revocation unknown").
    cfg.revocation = RevocationPolicy::Require;
    let s = sign_challenge(
        &c,
        &pki.self_signed.key_pem(),
        pki.self_signed.pem().as_bytes(),
    )
    .unwrap();
    assert_eq!(
        verify(&cfg, &c, &s, &[], NOW, "token").map(|_| ()),
        refused(CertificateError::Untrusted)
    );
}

#[test]
fn a_crl_signed_by_someone_else_is_not_used() {
    let pki = pki();
    let c = challenge();
    let a = answer(&pki.citizen, &c);
    // Same issuer name, wrong key: webpki checks the CRL signature.
    let forged_issuer = Issued {
        key: pki.other_root.key.clone(),
        cert: pki.intermediate.cert.clone(),
    };
    let forged = crl(&forged_issuer, &[], NOW - DAY, NOW + DAY);
    let result = verify(
        &config(),
        &c,
        &a,
        &[pki.root_crl.clone(), forged],
        NOW,
        "token",
    );
    assert_eq!(
        result.map(|_| ()),
        refused(CertificateError::RevocationListInvalid(
            "InvalidCrlSignatureForPublicKey".into()
        ))
    );
}

#[test]
fn a_forged_issuer_signature_and_a_non_signing_intermediate_are_refused() {
    let pki = pki();
    let c = challenge();
    let mut cfg = config();
    cfg.revocation = RevocationPolicy::AllowUnknown;
    // Claims the trusted intermediate as issuer, signed by another key.
    let impostor = Issued {
        key: pki.other_root.key.clone(),
        cert: pki.intermediate.cert.clone(),
    };
    let forged = issue(
        &Spec {
            subject: &citizen_dn("CCCD:001204012345"),
            serial: 0x4001,
            ..Spec::default()
        },
        Some(&impostor),
    );
    assert_eq!(
        verify(&cfg, &c, &answer(&forged, &c), &[], NOW, "token").map(|_| ()),
        refused(CertificateError::BadChainSignature)
    );
    // A CA whose key usage does not allow certificate signing (webpki does not look).
    let no_cert_sign = issue(
        &Spec {
            subject: &[
                (Nid::COUNTRYNAME, "VN"),
                (Nid::COMMONNAME, "Signing-only sub-CA"),
            ],
            serial: 0x4002,
            ca: true,
            key_usage: &["digitalSignature", "cRLSign"],
            eku: None,
            ..Spec::default()
        },
        Some(&pki.root),
    );
    let leaf = issue(
        &Spec {
            subject: &citizen_dn("CCCD:001204012345"),
            serial: 0x4003,
            ..Spec::default()
        },
        Some(&no_cert_sign),
    );
    let chain = format!("{}{}", leaf.pem(), no_cert_sign.pem());
    let a = sign_challenge(&c, &leaf.key_pem(), chain.as_bytes()).unwrap();
    let result = verify(&cfg, &c, &a, &[], NOW, "token");
    assert!(
        matches!(&result, Err(ConnectorError::Refused(m)) if m.contains("may not issue certificates")),
        "{result:?}"
    );
}

#[test]
fn intermediates_may_come_from_the_configuration() {
    let pki = pki();
    let c = challenge();
    let leaf_only =
        sign_challenge(&c, &pki.citizen.key_pem(), pki.citizen.pem().as_bytes()).unwrap();
    assert_eq!(leaf_only.chain.len(), 1);
    assert_eq!(
        verify(&config(), &c, &leaf_only, &crls(), NOW, "token").map(|_| ()),
        refused(CertificateError::Untrusted)
    );
    let mut cfg = config();
    cfg.intermediates_pem = vec![pki.intermediate.pem()];
    cfg.check().unwrap();
    assert!(verify(&cfg, &c, &leaf_only, &crls(), NOW, "token").is_ok());
    assert_eq!(cfg.crl_distribution_points().unwrap(), vec![ROOT_CRL_URL]);
}

#[test]
fn a_ca_certificate_cannot_sign_in() {
    let pki = pki();
    let c = challenge();
    let a = sign_challenge(
        &c,
        &pki.intermediate.key_pem(),
        pki.intermediate.pem().as_bytes(),
    )
    .unwrap();
    assert_eq!(
        verify(&config(), &c, &a, &crls(), NOW, "token").map(|_| ()),
        refused(CertificateError::CaAsLeaf)
    );
}

#[test]
fn malformed_answers_are_invalid() {
    let c = challenge();
    let mut a = answer(&pki().citizen, &c);
    a.signature = "***".into();
    assert!(matches!(
        verify(&config(), &c, &a, &crls(), NOW, "token"),
        Err(ConnectorError::Invalid(_))
    ));
    let mut a = answer(&pki().citizen, &c);
    a.chain = vec![];
    assert!(matches!(
        verify(&config(), &c, &a, &crls(), NOW, "token"),
        Err(ConnectorError::Invalid(_))
    ));
    let mut a = answer(&pki().citizen, &c);
    a.chain = vec![a.chain[0].clone(); 9];
    assert!(matches!(
        verify(&config(), &c, &a, &crls(), NOW, "token"),
        Err(ConnectorError::Invalid(_))
    ));
    assert!(SignedChallenge::from_json("{\"challenge\":\"x\"}").is_err());
}

#[test]
fn the_signer_refuses_what_is_not_a_challenge_or_not_its_key() {
    let pki = pki();
    let chain = pki.citizen.pem();
    assert!(matches!(
        sign_challenge(
            "please sign this invoice",
            &pki.citizen.key_pem(),
            chain.as_bytes()
        ),
        Err(ConnectorError::Invalid(_))
    ));
    assert!(matches!(
        sign_challenge(&challenge(), &pki.organisation.key_pem(), chain.as_bytes()),
        Err(ConnectorError::Config(_))
    ));
    let request: SignRequest =
        serde_json::from_str(&serde_json::json!({ "challenge": challenge() }).to_string()).unwrap();
    assert_eq!(request.challenge, challenge());
}

#[test]
fn pkcs12_files_sign_too() {
    let pki = pki();
    let mut ca = openssl::stack::Stack::new().unwrap();
    ca.push(pki.intermediate.cert.clone()).unwrap();
    let p12 = openssl::pkcs12::Pkcs12::builder()
        .name("token")
        .pkey(&pki.ec_p256.key)
        .cert(&pki.ec_p256.cert)
        .ca(ca)
        .build2("mật khẩu")
        .unwrap()
        .to_der()
        .unwrap();
    let c = challenge();
    assert!(matches!(
        sign_challenge_pkcs12(&c, &p12, "wrong"),
        Err(ConnectorError::Config(_))
    ));
    let a = sign_challenge_pkcs12(&c, &p12, "mật khẩu").unwrap();
    assert_eq!(a.chain.len(), 2);
    let id = verify(&config(), &c, &a, &crls(), NOW, "token").unwrap();
    assert_eq!(id.attribute("national_id"), Some("079190001122"));
}

#[test]
fn issued_challenges_are_fresh_and_canonical() {
    let cfg = config();
    let a = Challenge::issue(&cfg, HUB, NOW).unwrap();
    let b = Challenge::issue(&cfg, HUB, NOW).unwrap();
    assert_ne!(a.nonce, b.nonce);
    assert_eq!(a.nonce.len(), 43);
    assert_eq!(a.expires_at, NOW + 300);
    let s = a.to_signing_string();
    assert_eq!(
        s,
        format!(
            "fedhub-login-challenge\n{HUB}\n{}\n{NOW}\n{}",
            a.nonce,
            NOW + 300
        )
    );
    assert_eq!(Challenge::parse(&s).unwrap(), a);
}

#[test]
fn configuration_is_checked() {
    let pem = pki().root.pem();
    let json = serde_json::json!({ "trust_anchors_pem": [pem] }).to_string();
    let cfg = CertificateConfig::parse(&json).unwrap();
    assert_eq!(cfg.revocation, RevocationPolicy::Require);
    assert_eq!(cfg.challenge_ttl_secs, 300);
    let json = serde_json::json!({ "trust_anchors_pem": [pem], "revocation": "allow_unknown" });
    assert_eq!(
        CertificateConfig::parse(&json.to_string())
            .unwrap()
            .revocation,
        RevocationPolicy::AllowUnknown
    );
    for bad in [
        serde_json::json!({ "trust_anchors_pem": [] }),
        serde_json::json!({ "trust_anchors_pem": ["not pem"] }),
        serde_json::json!({ "trust_anchors_pem": [pem], "crl_urls": [] }),
        serde_json::json!({ "trust_anchors_pem": [pem], "challenge_ttl_secs": 86400 }),
    ] {
        assert!(matches!(
            CertificateConfig::parse(&bad.to_string()),
            Err(ConnectorError::Config(_))
        ));
    }
}

#[test]
fn crl_urls_come_from_the_leaf_and_intermediates_of_a_trusted_chain() {
    let pki = pki();
    assert_eq!(
        crl_distribution_points(&pki.citizen.der()),
        vec![CITIZEN_CRL_URL]
    );
    assert_eq!(
        crl_distribution_points(&pki.intermediate.der()),
        vec![ROOT_CRL_URL]
    );
    assert!(crl_distribution_points(&pki.root.der()).is_empty());
    assert!(crl_distribution_points(b"junk").is_empty());

    let c = challenge();
    assert_eq!(
        trusted_crl_urls(&config(), &answer(&pki.citizen, &c), NOW).unwrap(),
        vec![CITIZEN_CRL_URL, ROOT_CRL_URL]
    );
    let chain = format!("{}{}", pki.stranger.pem(), pki.other_root.pem());
    let a = sign_challenge(&c, &pki.stranger.key_pem(), chain.as_bytes()).unwrap();
    assert_eq!(
        trusted_crl_urls(&config(), &a, NOW),
        refused(CertificateError::Untrusted).map(|_| vec![])
    );

    let info = crl_info(&pki.intermediate_crl).unwrap();
    assert_eq!(info.revoked, 1);
    assert_eq!(info.next_update, Some(NOW + 7 * DAY));
    assert_eq!(info.this_update, NOW - DAY);
    assert!(info
        .issuer_dn
        .ends_with("CN=CA phục vụ các cơ quan Nhà nước\\, thử nghiệm"));
    assert!(crl_info(b"junk").is_err());
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../data/certs")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

#[test]
fn a_real_ministry_branch_certificate_is_read() {
    // Issued by "Co quan chung thuc so Bo Tai chinh" (G1): UID=MST:<tax code>-<branch> as a
    // UTF8String, two OU levels, Vietnamese UTF-8, an end-entity certificate.
    let der = fixture("gov-ca-org-branch-uid-mst.der");
    let facts = read_certificate(&der).unwrap();
    assert!(!facts.is_ca);
    let a = |k: &str| facts.attributes.get(k).cloned().unwrap_or_default();
    assert_eq!(a("tax_code"), vec!["0301519977-029"]);
    assert_eq!(a("uid"), vec!["MST:0301519977-029"]);
    assert!(a("national_id").is_empty());
    assert_eq!(
        a("name"),
        vec!["Chi cục thuế Khu vực Quận 12 - Huyện Hóc Môn"]
    );
    assert_eq!(a("organisation"), vec!["Bộ Tài chính"]);
    assert_eq!(
        a("unit"),
        vec!["Tổng Cục thuế", "Cục thuế Thành phố Hồ Chí Minh"]
    );
    assert_eq!(a("locality"), vec!["Hà Nội"]);
    assert_eq!(a("country"), vec!["VN"]);
    assert_eq!(a("email"), vec!["hc_q12_hmo.hcm@gdt.gov.vn"]);
    assert_eq!(
        facts.issuer_dn,
        "C=VN, O=Ban Co yeu Chinh phu, CN=Co quan chung thuc so Bo Tai chinh"
    );
    assert_eq!(facts.serial_hex, "6b6c55");
    assert_eq!(facts.subject, format!("{};6b6c55", facts.issuer_dn));
    assert_eq!(
        facts.subject_dn,
        "C=VN, O=Bộ Tài chính, OU=Tổng Cục thuế, OU=Cục thuế Thành phố Hồ Chí Minh, L=Hà Nội, \
         CN=Chi cục thuế Khu vực Quận 12 - Huyện Hóc Môn, UID=MST:0301519977-029"
    );
    assert_eq!(facts.sha256_hex, hex::encode(openssl::sha::sha256(&der)));
    assert_eq!(
        crl_distribution_points(&der),
        vec!["http://ca.gov.vn/pki/pub/crl/btc.crl"]
    );
    // Expired on 2025-09-14: webpki reads it and says so before looking for its issuer.
    let bogus = SignedChallenge {
        challenge: challenge(),
        signature: "AAAA".into(),
        chain: vec![base64_std(&der)],
    };
    assert_eq!(
        verify(&config(), &challenge(), &bogus, &crls(), NOW, "token").map(|_| ()),
        refused(CertificateError::Expired)
    );
}

#[test]
fn a_real_g2_agency_certificate_is_read() {
    // Issued by "CA phục vụ các cơ quan Nhà nước G2": no UID at all (a state agency, known by
    // its registered certificate), clientAuth in its EKU, an e-mail in subjectAltName.
    let der = fixture("gov-ca-g2-org.der");
    let facts = read_certificate(&der).unwrap();
    assert!(!facts.is_ca);
    let a = |k: &str| facts.attributes.get(k).cloned().unwrap_or_default();
    assert!(a("uid").is_empty() && a("tax_code").is_empty() && a("national_id").is_empty());
    assert_eq!(a("name"), vec!["TỔNG CỤC THUẾ"]);
    assert_eq!(a("organisation"), vec!["BỘ TÀI CHÍNH"]);
    assert_eq!(a("locality"), vec!["Hà Nội"]);
    assert_eq!(a("email"), vec!["cntt@gdt.gov.vn"]);
    assert_eq!(
        facts.issuer_dn,
        "C=VN, O=Ban Cơ yếu Chính phủ, CN=CA phục vụ các cơ quan Nhà nước G2"
    );
    assert_eq!(facts.serial_hex, "75580955fc81d6a7");
    assert_eq!(facts.not_after, 1_794_816_540); // 2026-11-16 08:09:00 UTC
    assert_eq!(
        crl_distribution_points(&der),
        vec!["http://ca.gov.vn/pki/pub/crl/cpcag2.crl"]
    );
    // Valid at NOW, but its issuer is not among our anchors.
    let bogus = SignedChallenge {
        challenge: challenge(),
        signature: "AAAA".into(),
        chain: vec![base64_std(&der)],
    };
    assert_eq!(
        verify(&config(), &challenge(), &bogus, &crls(), NOW, "token").map(|_| ()),
        refused(CertificateError::Untrusted)
    );
}

fn base64_std(der: &[u8]) -> String {
    openssl::base64::encode_block(der)
}
