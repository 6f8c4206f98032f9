//! The USB-token certificate connector: a person (or an organisation, or a state agency) signs a
//! one-time challenge with the private key on their token, and the hub checks the signature and
//! the certificate chain to the configured government trust anchors.
//!
//! Pure logic, like every connector: no HTTP, no storage. The caller passes the time, the CRLs it
//! has cached (fetched from [`crl_distribution_points`] / [`trusted_crl_urls`]) and the challenge
//! it stored in the auth session. `connectors/CERTIFICATE.md` documents the same exchange for
//! authors of signing tools.
//!
//! # The exchange
//!
//! 1. The hub issues a [`Challenge`] (nonce = 32 random bytes, base64url without padding;
//!    audience = the hub's public base URL; issued/expiry times in Unix seconds), stores its
//!    canonical string in the auth session and shows it to the login page.
//! 2. The login page hands the local signing tool a [`SignRequest`]:
//!    `{"challenge": "<canonical string>"}`.
//! 3. The tool checks that the string is a fedhub challenge (it must never sign anything else
//!    with the token's key), shows the audience to the person, signs the exact UTF-8 bytes of the
//!    string and answers a [`SignedChallenge`] in JSON:
//!    `{"challenge": "<the string signed>", "signature": "<base64>", "chain": ["<base64 DER>", ...]}`
//!    (leaf certificate first, then any intermediates it has; the root may be left out).
//! 4. The page posts the answer to the hub, which calls [`verify`].
//!
//! The canonical string is exactly five lines joined by a single LF (`\n`, 0x0A), no trailing
//! newline, UTF-8:
//!
//! ```text
//! fedhub-login-challenge
//! {audience}
//! {nonce}
//! {issued_at}
//! {expires_at}
//! ```
//!
//! * `audience`: 1..=512 bytes, no control characters (so no CR/LF);
//! * `nonce`: 43 characters of base64url (RFC 4648 §5) without padding, decoding to 32 bytes;
//! * `issued_at`, `expires_at`: decimal Unix seconds, ASCII digits only, no sign, no leading
//!   zero (except `0` itself), `issued_at <= expires_at`.
//!
//! Signatures (`signature`, standard base64 with padding, RFC 4648 §4) are over those bytes:
//! RSA keys (2048..=8192 bits) sign with RSASSA-PKCS1-v1_5 and SHA-256; EC keys sign with ECDSA,
//! SHA-256 on P-256 and SHA-384 on P-384, the signature DER-encoded (`Ecdsa-Sig-Value`). Each
//! `chain` entry is one DER certificate in standard base64.
//!
//! # What [`verify`] checks
//!
//! The answer signs exactly the expected challenge, which has not expired; the chain validates
//! with `rustls-webpki` from the leaf to a configured trust anchor (intermediates from the answer
//! and from the configuration) at `now`: validity periods, CA basic constraints and path length,
//! name constraints, chain signatures, EKU, and revocation of the leaf and of every intermediate
//! by CRL; then the key usages webpki leaves out (leaf: digitalSignature; intermediates:
//! keyCertSign, when the extension is present); then the signature with the leaf's key (`ring`).
//!
//! EKU: [`webpki::KeyUsage::client_auth`] is "required if present". A leaf with an EKU extension
//! must list clientAuth (1.3.6.1.5.5.7.3.2; anyExtendedKeyUsage is not enough); a leaf without
//! the extension is accepted, as RFC 5280 §4.2.1.12 says an absent EKU does not restrict the key.
//! An EKU extension that is present but empty is refused. Webpki applies the same rule to every
//! intermediate that carries an EKU extension. Government certificates list clientAuth.
//!
//! Revocation: every certificate of the path except the anchor needs a CRL from its issuer among
//! `crls` (webpki `RevocationCheckDepth::Chain`). With [`RevocationPolicy::Require`] a missing
//! CRL is "revocation status unknown" and a CRL past its nextUpdate is refused; with
//! [`RevocationPolicy::AllowUnknown`] both pass (a stale CRL is still used for what it lists).
//! Pass one CRL per issuer (the newest). Trust anchors are not checked for expiry or revocation.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Private};
use openssl::x509::X509;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};
use webpki::{
    BorrowedCertRevocationList, CertRevocationList, ExpirationPolicy, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::asn1_rs::{Any, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::X509Name;

use crate::{Authn, ConnectorError, UpstreamIdentity};

/// The `issuer` of every identity this connector vouches for.
pub const ISSUER: &str = "urn:fedhub:connector:certificate";
/// How a certificate sign-in is described to relying parties.
pub const ACR: &str = "urn:fedhub:acr:certificate";
/// Authentication methods (RFC 8176): a hardware-protected key, proof of a PKI certificate.
pub const AMR: [&str; 2] = ["hwk", "pki"];
/// The first line of every challenge: domain separation from anything else the token signs.
pub const CHALLENGE_PREFIX: &str = "fedhub-login-challenge";
/// Random bytes in a challenge nonce.
pub const NONCE_BYTES: usize = 32;
/// Default lifetime of a challenge.
pub const DEFAULT_CHALLENGE_TTL_SECS: u64 = 300;
/// At most this many certificates in an answer's chain (leaf included).
pub const MAX_CHAIN_LEN: usize = 8;
/// At most this many bytes per DER certificate.
pub const MAX_CERT_BYTES: usize = 16 * 1024;
/// At most this many bytes of signature (RSA-8192 is 1024 bytes).
pub const MAX_SIGNATURE_BYTES: usize = 1024;
/// At most this many bytes of answer JSON.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;
const MAX_AUDIENCE_BYTES: usize = 512;
const MIN_TTL_SECS: u64 = 10;
const MAX_TTL_SECS: u64 = 3600;

/// What to do when no CRL is known for an issuer in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RevocationPolicy {
    /// Fail closed: no current CRL for an issuer means "revocation status unknown" (refused),
    /// and a CRL past its nextUpdate is refused.
    #[default]
    Require,
    /// Accept a certificate whose issuer has no CRL in the cache (an unreachable CRL), and use
    /// stale CRLs. A CRL that is present still revokes.
    AllowUnknown,
}

/// The connector's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM text of the trusted roots (each entry may hold several certificates).
    pub trust_anchors_pem: Vec<String>,
    /// PEM text of intermediate CAs used to build paths when a signing tool leaves them out.
    /// They are not trusted by themselves: each must chain to an anchor.
    #[serde(default)]
    pub intermediates_pem: Vec<String>,
    #[serde(default)]
    pub revocation: RevocationPolicy,
    #[serde(default = "default_challenge_ttl")]
    pub challenge_ttl_secs: u64,
}

fn default_challenge_ttl() -> u64 {
    DEFAULT_CHALLENGE_TTL_SECS
}

impl CertificateConfig {
    /// A configuration with these roots and the defaults (CRLs required, 300 s challenges).
    pub fn new(trust_anchors_pem: Vec<String>) -> CertificateConfig {
        CertificateConfig {
            trust_anchors_pem,
            intermediates_pem: Vec::new(),
            revocation: RevocationPolicy::default(),
            challenge_ttl_secs: DEFAULT_CHALLENGE_TTL_SECS,
        }
    }

    /// Parse and [`check`](Self::check) a JSON configuration.
    pub fn parse(json: &str) -> Result<CertificateConfig, ConnectorError> {
        let config: CertificateConfig =
            serde_json::from_str(json).map_err(|e| ConnectorError::Config(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Every PEM entry holds at least one certificate usable as configured, there is at least
    /// one trust anchor, and the challenge lifetime is within 10..=3600 seconds.
    pub fn check(&self) -> Result<(), ConnectorError> {
        let anchors = self.anchors_der()?;
        if anchors.is_empty() {
            return Err(ConnectorError::Config(
                "at least one trust anchor is required".into(),
            ));
        }
        for der in &anchors {
            webpki::anchor_from_trusted_cert(der).map_err(|e| {
                ConnectorError::Config(format!("a trust anchor is not usable: {e:?}"))
            })?;
        }
        for der in self.intermediates_der()? {
            x509_parser::parse_x509_certificate(&der).map_err(|_| {
                ConnectorError::Config("an intermediate certificate could not be read".into())
            })?;
        }
        if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&self.challenge_ttl_secs) {
            return Err(ConnectorError::Config(format!(
                "challenge_ttl_secs must be within {MIN_TTL_SECS}..={MAX_TTL_SECS}"
            )));
        }
        Ok(())
    }

    /// CRL URLs of the configured intermediates, to warm the CRL cache at start-up.
    pub fn crl_distribution_points(&self) -> Result<Vec<String>, ConnectorError> {
        let mut urls = Vec::new();
        for der in self.intermediates_der()? {
            push_unique(&mut urls, crl_distribution_points(&der));
        }
        Ok(urls)
    }

    fn anchors_der(&self) -> Result<Vec<CertificateDer<'static>>, ConnectorError> {
        pem_certificates(&self.trust_anchors_pem, "trust anchor")
    }

    fn intermediates_der(&self) -> Result<Vec<CertificateDer<'static>>, ConnectorError> {
        pem_certificates(&self.intermediates_pem, "intermediate")
    }
}

fn pem_certificates(
    entries: &[String],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, ConnectorError> {
    let mut out = Vec::new();
    for (i, pem) in entries.iter().enumerate() {
        let before = out.len();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            out.push(cert.map_err(|e| {
                ConnectorError::Config(format!("{what} #{} is not valid PEM: {e:?}", i + 1))
            })?);
        }
        if out.len() == before {
            return Err(ConnectorError::Config(format!(
                "{what} #{} holds no CERTIFICATE block",
                i + 1
            )));
        }
    }
    Ok(out)
}

/// A one-time sign-in challenge. Its [canonical string](Challenge::to_signing_string) is what the
/// token signs; see the module documentation for the exact format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    /// 32 random bytes, base64url without padding.
    pub nonce: String,
    /// The hub's public base URL.
    pub audience: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

impl Challenge {
    /// A fresh challenge from the system's secure random generator, valid for the configured
    /// lifetime.
    pub fn issue(
        config: &CertificateConfig,
        audience: &str,
        now: i64,
    ) -> Result<Challenge, ConnectorError> {
        let mut nonce = [0u8; NONCE_BYTES];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| ConnectorError::Config("no secure random source".into()))?;
        Challenge::with_nonce(&nonce, audience, now, config.challenge_ttl_secs)
    }

    /// A challenge from given nonce bytes (for tests and replays of a stored challenge).
    pub fn with_nonce(
        nonce: &[u8; NONCE_BYTES],
        audience: &str,
        now: i64,
        ttl_secs: u64,
    ) -> Result<Challenge, ConnectorError> {
        check_audience(audience).map_err(ConnectorError::Config)?;
        let expires_at = i64::try_from(ttl_secs)
            .ok()
            .and_then(|ttl| now.checked_add(ttl))
            .filter(|_| now >= 0)
            .ok_or_else(|| ConnectorError::Config("challenge time out of range".into()))?;
        Ok(Challenge {
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            audience: audience.to_string(),
            issued_at: now,
            expires_at,
        })
    }

    /// The exact string (its UTF-8 bytes) the token signs.
    pub fn to_signing_string(&self) -> String {
        format!(
            "{CHALLENGE_PREFIX}\n{}\n{}\n{}\n{}",
            self.audience, self.nonce, self.issued_at, self.expires_at
        )
    }

    /// Parse a canonical string, strictly: anything that would not serialise back to the same
    /// bytes is refused.
    pub fn parse(s: &str) -> Result<Challenge, ConnectorError> {
        let invalid = |why: &str| ConnectorError::Invalid(format!("not a fedhub challenge: {why}"));
        let lines: Vec<&str> = s.split('\n').collect();
        let [prefix, audience, nonce, issued_at, expires_at] = lines.as_slice() else {
            return Err(invalid("expected five lines"));
        };
        if *prefix != CHALLENGE_PREFIX {
            return Err(invalid("wrong first line"));
        }
        check_audience(audience).map_err(|e| invalid(&e))?;
        let nonce_ok = nonce.len() == 43
            && URL_SAFE_NO_PAD
                .decode(nonce)
                .is_ok_and(|b| b.len() == NONCE_BYTES);
        if !nonce_ok {
            return Err(invalid("the nonce is not 32 bytes of base64url"));
        }
        let issued_at = parse_unix_seconds(issued_at).ok_or_else(|| invalid("bad issued_at"))?;
        let expires_at = parse_unix_seconds(expires_at).ok_or_else(|| invalid("bad expires_at"))?;
        if expires_at < issued_at {
            return Err(invalid("expires before it is issued"));
        }
        let challenge = Challenge {
            nonce: nonce.to_string(),
            audience: audience.to_string(),
            issued_at,
            expires_at,
        };
        if challenge.to_signing_string() != s {
            return Err(invalid("not in canonical form"));
        }
        Ok(challenge)
    }

    /// Expired once `now` is past `expires_at`.
    pub fn is_expired(&self, now: i64) -> bool {
        now > self.expires_at
    }
}

fn check_audience(audience: &str) -> Result<(), String> {
    if audience.is_empty() || audience.len() > MAX_AUDIENCE_BYTES {
        return Err(format!(
            "the audience must be 1..={MAX_AUDIENCE_BYTES} bytes"
        ));
    }
    if audience.chars().any(char::is_control) {
        return Err("the audience holds a control character".into());
    }
    Ok(())
}

fn parse_unix_seconds(s: &str) -> Option<i64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

/// What the login page hands the signing tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// The canonical challenge string.
    pub challenge: String,
}

/// The signing tool's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedChallenge {
    /// The string signed, exactly as received.
    pub challenge: String,
    /// Standard base64 of the signature over the challenge's UTF-8 bytes.
    pub signature: String,
    /// Standard base64 of DER certificates, leaf first.
    pub chain: Vec<String>,
}

impl SignedChallenge {
    /// Parse the tool's JSON answer (at most 256 KiB).
    pub fn from_json(json: &str) -> Result<SignedChallenge, ConnectorError> {
        if json.len() > MAX_ANSWER_BYTES {
            return Err(CertificateError::Malformed("the answer is too large".into()).into());
        }
        serde_json::from_str(json)
            .map_err(|e| CertificateError::Malformed(format!("not a signed challenge: {e}")).into())
    }

    pub fn to_json(&self) -> Result<String, ConnectorError> {
        serde_json::to_string(self).map_err(|e| ConnectorError::Invalid(e.to_string()))
    }

    /// The chain's DER certificates, leaf first (size and count limits applied).
    pub fn chain_der(&self) -> Result<Vec<Vec<u8>>, ConnectorError> {
        Ok(self
            .decode_chain()?
            .into_iter()
            .map(|c| c.as_ref().to_vec())
            .collect())
    }

    fn decode_chain(&self) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
        if self.chain.is_empty() {
            return Err(CertificateError::Malformed(
                "the answer carries no certificate".into(),
            ));
        }
        if self.chain.len() > MAX_CHAIN_LEN {
            return Err(CertificateError::Malformed(
                "the certificate chain is too long".into(),
            ));
        }
        self.chain
            .iter()
            .map(|b64| {
                if b64.len() > MAX_CERT_BYTES * 4 / 3 + 4 {
                    return Err(CertificateError::Malformed(
                        "a certificate is too large".into(),
                    ));
                }
                STANDARD.decode(b64).map(CertificateDer::from).map_err(|_| {
                    CertificateError::Malformed("a certificate is not valid base64".into())
                })
            })
            .collect()
    }

    fn decode_signature(&self) -> Result<Vec<u8>, CertificateError> {
        if self.signature.len() > MAX_SIGNATURE_BYTES * 4 / 3 + 4 {
            return Err(CertificateError::Malformed(
                "the signature is too large".into(),
            ));
        }
        STANDARD
            .decode(&self.signature)
            .map_err(|_| CertificateError::Malformed("the signature is not valid base64".into()))
    }
}

/// Why a certificate sign-in was refused; each message can be shown to the person.
/// Converts into [`ConnectorError`]: malformed answers become `Invalid`, the rest `Refused`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("the signed challenge is not the one this sign-in page issued")]
    ChallengeMismatch,
    #[error("the sign-in challenge has expired; reload the page and sign again")]
    ChallengeExpired,
    #[error("the answer from the signing tool is malformed: {0}")]
    Malformed(String),
    #[error("the certificate has expired")]
    Expired,
    #[error("the certificate is not valid yet")]
    NotYetValid,
    #[error("the certificate was revoked")]
    Revoked,
    #[error("revocation status unknown: no revocation list (CRL) from the issuing authority is available")]
    RevocationUnknown,
    #[error("the revocation list (CRL) of the issuing authority is out of date")]
    RevocationListExpired,
    #[error("a revocation list (CRL) could not be used: {0}")]
    RevocationListInvalid(String),
    #[error("the certificate is not issued by a trusted authority")]
    Untrusted,
    #[error("the certificate is not validly signed by its issuing authority")]
    BadChainSignature,
    #[error("the certificate chain breaks a certification authority constraint: {0}")]
    ChainConstraint(String),
    #[error("the certificate chain could not be validated: {0}")]
    ChainInvalid(String),
    #[error("the certificate may not be used for signing in (EKU)")]
    WrongEku,
    #[error("the certificate's key may not be used for signatures (key usage)")]
    WrongKeyUsage,
    #[error(
        "this is a certification authority certificate, not a personal or organisation certificate"
    )]
    CaAsLeaf,
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    #[error("the signature does not match the challenge")]
    BadSignature,
}

impl From<CertificateError> for ConnectorError {
    fn from(e: CertificateError) -> ConnectorError {
        match e {
            CertificateError::Malformed(_) | CertificateError::ChallengeMismatch => {
                ConnectorError::Invalid(e.to_string())
            }
            _ => ConnectorError::Refused(e.to_string()),
        }
    }
}

fn webpki_error(e: webpki::Error) -> CertificateError {
    use webpki::Error as E;
    match e {
        E::CertExpired { .. } => CertificateError::Expired,
        E::CertNotValidYet { .. } => CertificateError::NotYetValid,
        E::CertRevoked => CertificateError::Revoked,
        E::UnknownRevocationStatus => CertificateError::RevocationUnknown,
        E::CrlExpired { .. } => CertificateError::RevocationListExpired,
        E::UnknownIssuer | E::CertDistrusted => CertificateError::Untrusted,
        E::InvalidSignatureForPublicKey
        | E::SignatureAlgorithmMismatch
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            CertificateError::BadChainSignature
        }
        E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => CertificateError::WrongEku,
        E::CaUsedAsEndEntity => CertificateError::CaAsLeaf,
        E::EndEntityUsedAsCa => {
            CertificateError::ChainConstraint("a non-CA certificate issued another".into())
        }
        E::PathLenConstraintViolated => {
            CertificateError::ChainConstraint("path length constraint exceeded".into())
        }
        E::NameConstraintViolation => {
            CertificateError::ChainConstraint("name constraints violated".into())
        }
        E::IssuerNotCrlSigner
        | E::InvalidCrlSignatureForPublicKey
        | E::InvalidCrlNumber
        | E::UnsupportedCrlVersion
        | E::UnsupportedDeltaCrl
        | E::UnsupportedIndirectCrl
        | E::UnsupportedCrlIssuingDistributionPoint
        | E::UnsupportedRevocationReason
        | E::UnsupportedRevocationReasonsPartitioning
        | E::UnsupportedCrlSignatureAlgorithmContext(_)
        | E::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_) => {
            CertificateError::RevocationListInvalid(format!("{e:?}"))
        }
        E::BadDer | E::BadDerTime | E::TrailingData(_) | E::InvalidCertValidity => {
            CertificateError::Malformed("a certificate could not be read".into())
        }
        other => CertificateError::ChainInvalid(format!("{other:?}")),
    }
}

fn unix_time(now: i64) -> Result<UnixTime, ConnectorError> {
    u64::try_from(now)
        .map(|s| UnixTime::since_unix_epoch(Duration::from_secs(s)))
        .map_err(|_| ConnectorError::Config("the time is before 1970".into()))
}

/// Validate `chain` (leaf first) to a configured anchor. `crls = None` skips revocation (used
/// only to decide which CRLs to fetch). Returns the DER of the intermediates on the path.
fn verify_chain(
    config: &CertificateConfig,
    chain: &[CertificateDer<'static>],
    crls: Option<&[Vec<u8>]>,
    now: i64,
) -> Result<Vec<CertificateDer<'static>>, ConnectorError> {
    let Some((leaf, sent_intermediates)) = chain.split_first() else {
        return Err(CertificateError::Malformed("the answer carries no certificate".into()).into());
    };
    let anchors_der = config.anchors_der()?;
    let anchors = anchors_der
        .iter()
        .map(|der| {
            webpki::anchor_from_trusted_cert(der)
                .map_err(|e| ConnectorError::Config(format!("a trust anchor is not usable: {e:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if anchors.is_empty() {
        return Err(ConnectorError::Config(
            "at least one trust anchor is required".into(),
        ));
    }
    let mut intermediates = sent_intermediates.to_vec();
    intermediates.extend(config.intermediates_der()?);
    let time = unix_time(now)?;

    let parsed_crls = crls
        .unwrap_or_default()
        .iter()
        .map(|der| {
            BorrowedCertRevocationList::from_der(der)
                .map(CertRevocationList::from)
                .map_err(|e| CertificateError::RevocationListInvalid(format!("{e:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let crl_refs: Vec<&CertRevocationList<'_>> = parsed_crls.iter().collect();
    let revocation = match RevocationOptionsBuilder::new(&crl_refs) {
        Ok(builder) if crls.is_some() => Some(
            builder
                .with_depth(RevocationCheckDepth::Chain)
                .with_status_policy(match config.revocation {
                    RevocationPolicy::Require => UnknownStatusPolicy::Deny,
                    RevocationPolicy::AllowUnknown => UnknownStatusPolicy::Allow,
                })
                .with_expiration_policy(match config.revocation {
                    RevocationPolicy::Require => ExpirationPolicy::Enforce,
                    RevocationPolicy::AllowUnknown => ExpirationPolicy::Ignore,
                })
                .build(),
        ),
        // No CRL at all: webpki needs at least one; the policy is applied below.
        _ => None,
    };

    let end_entity = webpki::EndEntityCert::try_from(leaf)
        .map_err(|_| CertificateError::Malformed("the certificate could not be read".into()))?;
    let path = end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            time,
            webpki::KeyUsage::client_auth(),
            revocation,
            None,
        )
        .map_err(webpki_error)?;
    let used: Vec<CertificateDer<'static>> = path
        .intermediate_certificates()
        .map(|c| c.der().into_owned())
        .collect();

    // webpki ignores keyUsage on CA certificates; an intermediate that declares it must be
    // allowed to sign certificates.
    for der in &used {
        let (_, ca) = x509_parser::parse_x509_certificate(der)
            .map_err(|_| CertificateError::Malformed("a certificate could not be read".into()))?;
        if let Ok(Some(ku)) = ca.key_usage() {
            if !ku.value.key_cert_sign() {
                return Err(CertificateError::ChainConstraint(
                    "an intermediate authority may not issue certificates (key usage)".into(),
                )
                .into());
            }
        }
    }
    if crls.is_some() && crl_refs.is_empty() && config.revocation == RevocationPolicy::Require {
        return Err(CertificateError::RevocationUnknown.into());
    }
    Ok(used)
}

fn check_leaf_key_usage(leaf: &X509Certificate<'_>) -> Result<(), CertificateError> {
    match leaf.key_usage() {
        Ok(Some(ku)) if !ku.value.digital_signature() => Err(CertificateError::WrongKeyUsage),
        Ok(_) => Ok(()),
        Err(_) => Err(CertificateError::Malformed(
            "the certificate's key usage could not be read".into(),
        )),
    }
}

fn check_signature(
    leaf: &X509Certificate<'_>,
    message: &[u8],
    signature: &[u8],
) -> Result<(), CertificateError> {
    use ring::signature as sig;
    let spki = leaf.public_key();
    let algorithm: &'static dyn sig::VerificationAlgorithm = if spki.algorithm.algorithm
        == OID_PKCS1_RSAENCRYPTION
    {
        match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) if rsa.key_size() >= 2048 => &sig::RSA_PKCS1_2048_8192_SHA256,
            Ok(PublicKey::RSA(_)) => {
                return Err(CertificateError::UnsupportedKey(
                    "RSA keys must have at least 2048 bits".into(),
                ))
            }
            _ => {
                return Err(CertificateError::Malformed(
                    "the certificate's RSA key could not be read".into(),
                ))
            }
        }
    } else if spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 => &sig::ECDSA_P256_SHA256_ASN1,
            Some(c) if c == OID_NIST_EC_P384 => &sig::ECDSA_P384_SHA384_ASN1,
            _ => {
                return Err(CertificateError::UnsupportedKey(
                    "EC keys must be on P-256 or P-384".into(),
                ))
            }
        }
    } else {
        return Err(CertificateError::UnsupportedKey(format!(
            "key algorithm {}",
            spki.algorithm.algorithm
        )));
    };
    sig::UnparsedPublicKey::new(algorithm, &spki.subject_public_key.data)
        .verify(message, signature)
        .map_err(|_| CertificateError::BadSignature)
}

/// Check a signing tool's answer and turn it into the identity the certificate vouches for.
///
/// `expected_challenge` is the canonical string the hub issued for this auth session; `crls` the
/// DER CRLs currently cached (one per issuer); `now` Unix seconds.
pub fn verify(
    config: &CertificateConfig,
    expected_challenge: &str,
    answer: &SignedChallenge,
    crls: &[Vec<u8>],
    now: i64,
    connector_id: &str,
) -> Result<UpstreamIdentity, ConnectorError> {
    let expected = Challenge::parse(expected_challenge)
        .map_err(|e| ConnectorError::Config(format!("the stored challenge is not valid: {e}")))?;
    if answer.challenge != expected_challenge {
        return Err(CertificateError::ChallengeMismatch.into());
    }
    if expected.is_expired(now) {
        return Err(CertificateError::ChallengeExpired.into());
    }
    let chain = answer.decode_chain()?;
    let signature = answer.decode_signature()?;
    verify_chain(config, &chain, Some(crls), now)?;

    let leaf_der = chain
        .first()
        .ok_or_else(|| CertificateError::Malformed("the answer carries no certificate".into()))?;
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf_der)
        .map_err(|_| CertificateError::Malformed("the certificate could not be read".into()))?;
    check_leaf_key_usage(&leaf)?;
    check_signature(&leaf, expected_challenge.as_bytes(), &signature)?;

    let facts = read_certificate(leaf_der)?;
    Ok(UpstreamIdentity {
        connector: connector_id.to_string(),
        issuer: ISSUER.to_string(),
        subject: facts.subject,
        attributes: facts.attributes,
        authn: Authn {
            auth_time: now,
            acr: Some(ACR.to_string()),
            amr: AMR.iter().map(|s| s.to_string()).collect(),
        },
        session: None,
    })
}

/// A client certificate the person presented in a TLS handshake that a trusted proxy
/// terminated (the proxy forwards it; possession of the key was proven to the proxy, so there
/// is no challenge). Checked as in [`verify`] except for the challenge signature: chain to a
/// trust anchor, validity, EKU, key usage, revocation. `chain` is DER, leaf first.
pub fn verify_presented(
    config: &CertificateConfig,
    chain: &[Vec<u8>],
    crls: &[Vec<u8>],
    now: i64,
    connector_id: &str,
) -> Result<UpstreamIdentity, ConnectorError> {
    if chain.is_empty()
        || chain.len() > MAX_CHAIN_LEN
        || chain.iter().any(|c| c.len() > MAX_CERT_BYTES)
    {
        return Err(CertificateError::Malformed("no usable client certificate".into()).into());
    }
    let certs: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    verify_chain(config, &certs, Some(crls), now)?;
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0])
        .map_err(|_| CertificateError::Malformed("the certificate could not be read".into()))?;
    check_leaf_key_usage(&leaf)?;
    let facts = read_certificate(&chain[0])?;
    Ok(UpstreamIdentity {
        connector: connector_id.to_string(),
        issuer: ISSUER.to_string(),
        subject: facts.subject,
        attributes: facts.attributes,
        authn: Authn {
            auth_time: now,
            acr: Some(ACR.to_string()),
            amr: AMR.iter().map(|s| s.to_string()).collect(),
        },
        session: None,
    })
}

/// [`trusted_crl_urls`] for a presented chain (DER, leaf first).
pub fn trusted_crl_urls_of_chain(
    config: &CertificateConfig,
    chain: &[Vec<u8>],
    now: i64,
) -> Result<Vec<String>, ConnectorError> {
    let certs: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    let used = verify_chain(config, &certs, None, now)?;
    let mut urls = Vec::new();
    for der in certs.iter().take(1).chain(used.iter()) {
        push_unique(&mut urls, crl_distribution_points(der));
    }
    Ok(urls)
}

/// The CRL URLs to fetch before [`verify`] can decide this answer: those of the leaf and of the
/// intermediates on its path, once the chain is known to lead to a trust anchor (validated at
/// `now`, revocation aside). URLs from an untrusted chain are never returned, so a stranger's
/// certificate cannot make the hub fetch arbitrary addresses.
pub fn trusted_crl_urls(
    config: &CertificateConfig,
    answer: &SignedChallenge,
    now: i64,
) -> Result<Vec<String>, ConnectorError> {
    let chain = answer.decode_chain()?;
    let used = verify_chain(config, &chain, None, now)?;
    let mut urls = Vec::new();
    for der in chain.iter().take(1).chain(used.iter()) {
        push_unique(&mut urls, crl_distribution_points(der));
    }
    Ok(urls)
}

/// The http(s) URLs in a certificate's CRL Distribution Points (full names only), in order,
/// without duplicates. An unreadable certificate has none.
pub fn crl_distribution_points(cert_der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else {
        return Vec::new();
    };
    let mut urls = Vec::new();
    for ext in cert.extensions() {
        let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
            continue;
        };
        for point in points.iter() {
            let Some(DistributionPointName::FullName(names)) = &point.distribution_point else {
                continue;
            };
            for name in names {
                if let GeneralName::URI(uri) = name {
                    let lower = uri.to_ascii_lowercase();
                    if lower.starts_with("http://") || lower.starts_with("https://") {
                        push_unique(&mut urls, [uri.to_string()]);
                    }
                }
            }
        }
    }
    urls
}

fn push_unique(into: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !into.contains(&item) {
            into.push(item);
        }
    }
}

/// What a fetched CRL says about itself, to validate it before caching and to schedule the
/// next refresh. Its signature is checked only when [`verify`] uses it against its issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    /// The issuer's distinguished name, rendered as in [`CertificateFacts::issuer_dn`].
    pub issuer_dn: String,
    /// Unix seconds.
    pub this_update: i64,
    /// Unix seconds; refresh before then.
    pub next_update: Option<i64>,
    pub revoked: usize,
}

/// Read a DER CRL; refuse one that [`verify`] could not use (not v2, delta, indirect...).
pub fn crl_info(crl_der: &[u8]) -> Result<CrlInfo, ConnectorError> {
    BorrowedCertRevocationList::from_der(crl_der).map_err(|e| {
        ConnectorError::Invalid(format!("the revocation list is not usable: {e:?}"))
    })?;
    let (_, crl) = x509_parser::parse_x509_crl(crl_der)
        .map_err(|e| ConnectorError::Invalid(format!("the revocation list is not valid: {e}")))?;
    Ok(CrlInfo {
        issuer_dn: dn_string(crl.issuer()),
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().map(|t| t.timestamp()),
        revoked: crl.iter_revoked_certificates().count(),
    })
}

/// What a certificate says, independent of whether it is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Stable identifier: `{issuer DN};{serial hex}` (see [`read_certificate`]).
    pub subject: String,
    pub subject_dn: String,
    pub issuer_dn: String,
    /// Lower-case hex of the serial number, leading zero bytes removed.
    pub serial_hex: String,
    /// Lower-case hex SHA-256 of the DER certificate.
    pub sha256_hex: String,
    /// basicConstraints cA.
    pub is_ca: bool,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// Normalised attributes, as in [`UpstreamIdentity::attributes`].
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// Read a certificate's subject (trust is decided elsewhere, by [`verify`]).
///
/// Attributes: from subject UID (0.9.2342.19200300.100.1.1) values `CCCD:<12 digits>` and
/// `CMND:<9 or 12 digits>` → `national_id` (+ `national_id_type` `CCCD`/`CMND`); `MST:<10
/// digits>` or `MST:<10 digits>-<3 digits>` (a branch) → `tax_code`; `HC:<passport>` →
/// `passport`; every UID value raw → `uid`. CN → `name`, O → `organisation`, OU → `unit` (in
/// certificate order), L → `locality`, ST → `province`, C → `country`, emailAddress and
/// subjectAltName rfc822 names → `email`. Always: `certificate_sha256`, `certificate_serial`,
/// `certificate_issuer`, `certificate_subject`, `certificate_not_after`.
///
/// Distinguished names are rendered in certificate (DER) order, `TYPE=value` joined by `, `
/// (`+` inside a multi-valued RDN), values escaped as in RFC 4514 (`\,` `\+` `\\` ...), types as
/// short names (C, ST, L, O, OU, CN, UID, ...) or dotted OIDs. This rendering is fixed here, not
/// left to a library, because the `subject` built from it keys registered agency certificates.
pub fn read_certificate(cert_der: &[u8]) -> Result<CertificateFacts, ConnectorError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(|_| {
        ConnectorError::from(CertificateError::Malformed(
            "the certificate could not be read".into(),
        ))
    })?;
    if !rest.is_empty() {
        return Err(
            CertificateError::Malformed("trailing bytes after the certificate".into()).into(),
        );
    }
    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |key: &str, value: String| {
        let values = attributes.entry(key.to_string()).or_default();
        if !values.contains(&value) {
            values.push(value);
        }
    };
    for rdn in cert.subject().iter() {
        for attr in rdn.iter() {
            let Some(value) = any_to_string(attr.attr_value()) else {
                continue;
            };
            let value = value.trim().to_string();
            if value.is_empty() {
                continue;
            }
            match attr.attr_type().to_id_string().as_str() {
                OID_UID => {
                    if let Some((key, id, kind)) = classify_uid(&value) {
                        add(key, id);
                        if let Some(kind) = kind {
                            add("national_id_type", kind.to_string());
                        }
                    }
                    add("uid", value);
                }
                "2.5.4.3" => add("name", value),
                "2.5.4.10" => add("organisation", value),
                "2.5.4.11" => add("unit", value),
                "2.5.4.7" => add("locality", value),
                "2.5.4.8" => add("province", value),
                "2.5.4.6" => add("country", value),
                "1.2.840.113549.1.9.1" => add("email", value),
                _ => {}
            }
        }
    }
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::RFC822Name(email) = name {
                add("email", email.to_string());
            }
        }
    }

    let serial_hex = serial_hex(cert.raw_serial());
    let issuer_dn = dn_string(cert.issuer());
    let subject_dn = dn_string(cert.subject());
    let sha256_hex = hex::encode(ring::digest::digest(&ring::digest::SHA256, cert_der));
    let not_after = cert.validity().not_after.timestamp();
    add("certificate_sha256", sha256_hex.clone());
    add("certificate_serial", serial_hex.clone());
    add("certificate_issuer", issuer_dn.clone());
    add("certificate_subject", subject_dn.clone());
    add("certificate_not_after", not_after.to_string());
    Ok(CertificateFacts {
        subject: format!("{issuer_dn};{serial_hex}"),
        subject_dn,
        issuer_dn,
        serial_hex,
        sha256_hex,
        is_ca: cert.is_ca(),
        not_before: cert.validity().not_before.timestamp(),
        not_after,
        attributes,
    })
}

const OID_UID: &str = "0.9.2342.19200300.100.1.1";

/// `(attribute, value, national_id_type)` for a recognised UID value.
fn classify_uid(value: &str) -> Option<(&'static str, String, Option<&'static str>)> {
    let (kind, id) = value.split_once(':')?;
    let id = id.trim();
    let digits = |n: usize| id.len() == n && id.bytes().all(|b| b.is_ascii_digit());
    match kind.trim().to_ascii_uppercase().as_str() {
        "CCCD" if digits(12) => Some(("national_id", id.to_string(), Some("CCCD"))),
        // 9 digits for the old card; 12 for the 2012-2016 card, whose number carried over.
        "CMND" if digits(9) || digits(12) => Some(("national_id", id.to_string(), Some("CMND"))),
        "MST" if is_tax_code(id) => Some(("tax_code", id.to_string(), None)),
        "HC" if (6..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Some(("passport", id.to_ascii_uppercase(), None))
        }
        _ => None,
    }
}

/// 10 digits, or 10 digits, `-`, 3 digits (a dependent unit or branch).
fn is_tax_code(s: &str) -> bool {
    let all_digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('-') {
        None => all_digits(s, 10),
        Some((main, branch)) => all_digits(main, 10) && all_digits(branch, 3),
    }
}

fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode(raw.get(start..).unwrap_or(raw))
}

/// The string types a DN value may use. T61String is read as Latin-1 (what issuers mean in
/// practice); BMPString as UTF-16BE; UniversalString as UTF-32BE.
fn any_to_string(any: &Any<'_>) -> Option<String> {
    let data = any.data;
    match any.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(str::to_string),
        Tag::T61String => Some(data.iter().map(|b| char::from(*b)).collect()),
        Tag::BmpString => {
            let chunks = data.chunks_exact(2);
            if !chunks.remainder().is_empty() {
                return None;
            }
            let units: Vec<u16> = chunks.map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString => {
            let chunks = data.chunks_exact(4);
            if !chunks.remainder().is_empty() {
                return None;
            }
            chunks
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

fn attribute_short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.42" => "GN",
        OID_UID => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            out.push_str(&format!("\\{:02X}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

fn dn_string(name: &X509Name<'_>) -> String {
    name.iter()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    let key = attribute_short_name(&oid).map_or(oid.clone(), str::to_string);
                    let value = match any_to_string(attr.attr_value()) {
                        Some(v) => escape_dn_value(&v),
                        None => format!("#{}", hex::encode(attr.attr_value().as_bytes())),
                    };
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sign a challenge with a PEM private key (PKCS#8 or traditional) and a PEM chain (leaf first),
/// as the signing tool does. For tests, demos and agencies without the vendor plug-in.
pub fn sign_challenge(
    challenge: &str,
    key_pem: &[u8],
    chain_pem: &[u8],
) -> Result<SignedChallenge, ConnectorError> {
    let key = PKey::private_key_from_pem(key_pem)
        .map_err(|_| ConnectorError::Config("the private key could not be read".into()))?;
    let chain = X509::stack_from_pem(chain_pem)
        .map_err(|_| ConnectorError::Config("the certificate chain could not be read".into()))?;
    sign_with(challenge, &key, &chain)
}

/// Sign a challenge with the key and certificates in a PKCS#12 (.p12/.pfx) file.
pub fn sign_challenge_pkcs12(
    challenge: &str,
    p12_der: &[u8],
    password: &str,
) -> Result<SignedChallenge, ConnectorError> {
    let parsed = openssl::pkcs12::Pkcs12::from_der(p12_der)
        .and_then(|p| p.parse2(password))
        .map_err(|_| {
            ConnectorError::Config(
                "the PKCS#12 file could not be opened (wrong password or format)".into(),
            )
        })?;
    let key = parsed
        .pkey
        .ok_or_else(|| ConnectorError::Config("the PKCS#12 file holds no private key".into()))?;
    let leaf = parsed
        .cert
        .ok_or_else(|| ConnectorError::Config("the PKCS#12 file holds no certificate".into()))?;
    let mut chain = vec![leaf];
    for ca in parsed.ca.into_iter().flatten() {
        let same = match (ca.to_der(), chain[0].to_der()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same {
            chain.push(ca);
        }
    }
    sign_with(challenge, &key, &chain)
}

fn sign_with(
    challenge: &str,
    key: &PKeyRef<Private>,
    chain: &[X509],
) -> Result<SignedChallenge, ConnectorError> {
    Challenge::parse(challenge).map_err(|e| {
        ConnectorError::Invalid(format!(
            "refusing to sign something that is not a challenge: {e}"
        ))
    })?;
    let leaf = chain
        .first()
        .ok_or_else(|| ConnectorError::Config("the certificate chain is empty".into()))?;
    let matches = leaf
        .public_key()
        .map(|pk| pk.public_eq(key))
        .unwrap_or(false);
    if !matches {
        return Err(ConnectorError::Config(
            "the private key does not belong to the first certificate".into(),
        ));
    }
    let digest = match key.id() {
        Id::RSA if key.bits() >= 2048 => MessageDigest::sha256(),
        Id::RSA => {
            return Err(ConnectorError::Config(
                "RSA keys must have at least 2048 bits".into(),
            ))
        }
        Id::EC => {
            let curve = key.ec_key().ok().and_then(|ec| ec.group().curve_name());
            match curve {
                Some(Nid::X9_62_PRIME256V1) => MessageDigest::sha256(),
                Some(Nid::SECP384R1) => MessageDigest::sha384(),
                _ => {
                    return Err(ConnectorError::Config(
                        "EC keys must be on P-256 or P-384".into(),
                    ))
                }
            }
        }
        _ => {
            return Err(ConnectorError::Config(
                "only RSA and EC keys are supported".into(),
            ))
        }
    };
    let openssl_err = |e: openssl::error::ErrorStack| ConnectorError::Config(e.to_string());
    let mut signer = openssl::sign::Signer::new(digest, key).map_err(openssl_err)?;
    signer.update(challenge.as_bytes()).map_err(openssl_err)?;
    let signature = signer.sign_to_vec().map_err(openssl_err)?;
    let chain = chain
        .iter()
        .map(|c| c.to_der().map(|der| STANDARD.encode(der)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(openssl_err)?;
    Ok(SignedChallenge {
        challenge: challenge.to_string(),
        signature: STANDARD.encode(signature),
        chain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_challenge_round_trips_and_is_strict() {
        let c = Challenge::with_nonce(&[7u8; 32], "https://hub.example.vn", 1000, 300).unwrap();
        let s = c.to_signing_string();
        assert_eq!(
            s,
            "fedhub-login-challenge\nhttps://hub.example.vn\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc\n1000\n1300"
        );
        assert_eq!(Challenge::parse(&s).unwrap(), c);
        for bad in [
            format!("{s}\n"),
            s.replace("\n1000\n", "\n01000\n"),
            s.replace("\n1000\n", "\n+1000\n"),
            s.replace("fedhub-login-challenge", "fedhub-login"),
            s.replace("BwcH", "Bwc="),
            s.replace("\n1300", "\n999"),
            s.replace('\n', "\r\n"),
        ] {
            assert!(Challenge::parse(&bad).is_err(), "{bad:?}");
        }
        assert!(Challenge::with_nonce(&[0; 32], "a\nb", 1, 1).is_err());
    }

    #[test]
    fn uid_values() {
        assert_eq!(
            classify_uid("CCCD:001204012345"),
            Some(("national_id", "001204012345".into(), Some("CCCD")))
        );
        assert_eq!(
            classify_uid("CMND: 123456789"),
            Some(("national_id", "123456789".into(), Some("CMND")))
        );
        assert_eq!(
            classify_uid("MST:0301519977-029"),
            Some(("tax_code", "0301519977-029".into(), None))
        );
        assert_eq!(classify_uid("CCCD:12345"), None);
        assert_eq!(classify_uid("MST:0301519977-29"), None);
        assert_eq!(classify_uid("0301519977"), None);
    }

    #[test]
    fn serials_and_escaping() {
        assert_eq!(serial_hex(&[0x00, 0x8f, 0x01]), "8f01");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(escape_dn_value(" a,b+c "), "\\ a\\,b\\+c\\ ");
        assert_eq!(escape_dn_value("Bộ Tài chính"), "Bộ Tài chính");
    }
}
