//! JOSE for the OpenID Provider: compact JWS signing (ID tokens, access tokens, logout
//! tokens) and verification against a client's JWK Set (`private_key_jwt` client assertions,
//! `id_token_hint`).
//!
//! Rules (each has a test in `tests/jose.rs` that fails without it):
//! - only RS256, PS256, ES256 and EdDSA exist here: `none` and every HMAC algorithm are
//!   refused by name, so a public key can never be used as an HMAC secret;
//! - the caller says which algorithms a token may use, and the key must fit the algorithm
//!   (RSA for RS/PS, EC P-256 for ES256, OKP Ed25519 for EdDSA), carry no other `alg` and no
//!   `use` but `sig`;
//! - a token naming a kid is checked with that key only; without a kid, only when exactly one
//!   key fits;
//! - a `crit` header is refused (no extension is understood), as is any token over 16 KiB;
//! - claims are returned only after the signature verifies, and no claim is checked here.
//!
//! RSA signs through OpenSSL (twice ring's rate here, and no `rsa` crate); ECDSA and Ed25519
//! sign with ring; every verification runs in ring.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair};
use serde_json::{Map, Value};

use crate::keys::KeyAlg;

/// The largest compact JWS [`verify`] reads, in bytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The JWS algorithms the hub signs and verifies with.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.
    PS256,
    /// ECDSA P-256 with SHA-256, signature as fixed-size r||s.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl JwsAlg {
    pub const ALL: [JwsAlg; 4] = [JwsAlg::RS256, JwsAlg::PS256, JwsAlg::ES256, JwsAlg::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlg::RS256 => "RS256",
            JwsAlg::PS256 => "PS256",
            JwsAlg::ES256 => "ES256",
            JwsAlg::EdDSA => "EdDSA",
        }
    }

    /// The algorithm with exactly this JOSE name; `none`, HMAC and anything else is `None`.
    pub fn parse(s: &str) -> Option<JwsAlg> {
        JwsAlg::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The kind of key that signs with this algorithm.
    pub fn key_alg(self) -> KeyAlg {
        match self {
            JwsAlg::RS256 | JwsAlg::PS256 => KeyAlg::Rsa2048,
            JwsAlg::ES256 => KeyAlg::EcP256,
            JwsAlg::EdDSA => KeyAlg::Ed25519,
        }
    }
}

impl fmt::Display for JwsAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token was refused or could not be made. Values taken from a token (alg, kid) are
/// shortened and stripped of control characters before they appear here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    #[error("alg none is refused")]
    AlgNone,
    #[error("{0} is refused: symmetric algorithms are not accepted")]
    Symmetric(String),
    #[error("alg {0} is not supported")]
    UnsupportedAlg(String),
    #[error("alg {0} is not allowed here")]
    NotAllowed(JwsAlg),
    #[error("crit header not understood")]
    Crit,
    #[error("token too large (over {MAX_TOKEN_LEN} bytes)")]
    TooLarge,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("no key with kid {0}")]
    NoKey(String),
    #[error("the token names no kid and no key fits alg {0}")]
    NoKeyForAlg(JwsAlg),
    #[error("the token names no kid and several keys fit alg {0}")]
    AmbiguousKey(JwsAlg),
    #[error("several keys with kid {0} fit the token")]
    DuplicateKid(String),
    #[error("key {kid} cannot verify {alg}: {why}")]
    KeyUnfit {
        kid: String,
        alg: JwsAlg,
        why: String,
    },
    #[error("unusable JWK {kid}: {why}")]
    BadJwk { kid: String, why: &'static str },
    #[error("signature does not verify")]
    BadSignature,
    #[error("claims are not a JSON object")]
    NotObject,
    #[error("signing key unusable: {0}")]
    Key(String),
    #[error("signing failed")]
    Signing,
}

/// A value from a token, safe to put in an error message.
fn shown(s: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

enum SigningKey {
    /// RS256 or PS256 (the padding is chosen per signature from `alg`).
    Rsa(openssl::pkey::PKey<openssl::pkey::Private>),
    Ec(Box<EcdsaKeyPair>),
    Ed(Box<Ed25519KeyPair>),
}

/// A private key ready to sign compact JWS. Build once, sign often. Debug prints the kid and
/// algorithm only.
pub struct JwsSigner {
    kid: String,
    alg: JwsAlg,
    key: SigningKey,
    rng: SystemRandom,
}

impl fmt::Debug for JwsSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwsSigner")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    typ: Option<&'a str>,
}

impl JwsSigner {
    /// `private_der` as `keys::generate` produces it for `alg.key_alg()`: PKCS#1 for RSA,
    /// SEC1 for P-256, PKCS#8 for Ed25519.
    pub fn new(kid: &str, alg: JwsAlg, private_der: &[u8]) -> Result<JwsSigner, JoseError> {
        if kid.is_empty() {
            return Err(JoseError::Key("the kid is empty".into()));
        }
        let rng = SystemRandom::new();
        let key = match alg {
            JwsAlg::RS256 | JwsAlg::PS256 => {
                SigningKey::Rsa(crate::keys::rsa_signing_key(private_der).map_err(JoseError::Key)?)
            }
            JwsAlg::ES256 => SigningKey::Ec(Box::new(
                crate::keys::ec_p256_signing_pair(private_der, &rng).map_err(JoseError::Key)?,
            )),
            JwsAlg::EdDSA => SigningKey::Ed(Box::new(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(private_der)
                    .map_err(|e| JoseError::Key(e.to_string()))?,
            )),
        };
        Ok(JwsSigner {
            kid: kid.to_string(),
            alg,
            key,
            rng,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> JwsAlg {
        self.alg
    }

    /// Compact JWS over the JSON claims (which must be an object), header
    /// `{"alg","kid","typ"?}`.
    pub fn sign(&self, typ: Option<&str>, claims: &Value) -> Result<String, JoseError> {
        if !claims.is_object() {
            return Err(JoseError::NotObject);
        }
        let header = serde_json::to_vec(&Header {
            alg: self.alg.as_str(),
            kid: &self.kid,
            typ,
        })
        .map_err(|_| JoseError::Signing)?;
        let payload = serde_json::to_vec(claims).map_err(|_| JoseError::Signing)?;
        let mut out = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 360);
        URL_SAFE_NO_PAD.encode_string(&header, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        let sig = self.raw_sign(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&sig, &mut out);
        Ok(out)
    }

    fn raw_sign(&self, data: &[u8]) -> Result<Vec<u8>, JoseError> {
        match &self.key {
            SigningKey::Rsa(k) => {
                use openssl::hash::MessageDigest;
                let failed = |_| JoseError::Signing;
                let mut signer =
                    openssl::sign::Signer::new(MessageDigest::sha256(), k).map_err(failed)?;
                if self.alg == JwsAlg::PS256 {
                    signer
                        .set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS)
                        .map_err(failed)?;
                    signer
                        .set_rsa_mgf1_md(MessageDigest::sha256())
                        .map_err(failed)?;
                    signer
                        .set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)
                        .map_err(failed)?;
                }
                signer.sign_oneshot_to_vec(data).map_err(failed)
            }
            SigningKey::Ec(k) => Ok(k
                .sign(&self.rng, data)
                .map_err(|_| JoseError::Signing)?
                .as_ref()
                .to_vec()),
            SigningKey::Ed(k) => Ok(k.sign(data).as_ref().to_vec()),
        }
    }
}

/// `at_hash` / `c_hash` (OIDC Core 3.1.3.6): base64url of the left half of the hash of the
/// ASCII value, SHA-256 for RS256/PS256/ES256 and SHA-512 for EdDSA (Ed25519).
pub fn half_hash(alg: JwsAlg, value: &str) -> String {
    let algorithm = match alg {
        JwsAlg::RS256 | JwsAlg::PS256 | JwsAlg::ES256 => &ring::digest::SHA256,
        JwsAlg::EdDSA => &ring::digest::SHA512,
    };
    let digest = ring::digest::digest(algorithm, value.as_bytes());
    let bytes = digest.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

/// A token whose signature verified. Nothing in `claims` has been checked.
#[derive(Debug, Clone)]
pub struct Verified {
    pub alg: JwsAlg,
    /// The header's kid, when it has one.
    pub kid: Option<String>,
    pub header: Value,
    pub claims: Map<String, Value>,
}

fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, JoseError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JoseError::Malformed(what))
}

/// Verifies a compact JWS against a JWK Set (`jwks` are JWK JSON objects, public only) and
/// returns its claims. Refuses `none`, HMAC and unknown algorithms, algorithms not in
/// `allowed`, a `crit` header, tokens over [`MAX_TOKEN_LEN`], an unknown kid, keys that do
/// not fit the algorithm (type, curve, `alg`, `use`) and claims that are not a JSON object.
/// Checks no claim: `exp`, `aud`, `iss` and the rest are the caller's job.
pub fn verify(token: &str, jwks: &[Value], allowed: &[JwsAlg]) -> Result<Verified, JoseError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JoseError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::Malformed("not three dot-separated parts"));
    };
    let header: Value = serde_json::from_slice(&b64(h, "header is not base64url")?)
        .map_err(|_| JoseError::Malformed("header is not JSON"))?;
    let fields = header
        .as_object()
        .ok_or(JoseError::Malformed("header is not a JSON object"))?;
    let alg_name = match fields.get("alg") {
        Some(Value::String(a)) => a.as_str(),
        Some(_) => return Err(JoseError::Malformed("alg is not a string")),
        None => return Err(JoseError::Malformed("header has no alg")),
    };
    let alg = match JwsAlg::parse(alg_name) {
        Some(alg) => alg,
        None if alg_name.eq_ignore_ascii_case("none") => return Err(JoseError::AlgNone),
        None if alg_name
            .get(..2)
            .is_some_and(|p| p.eq_ignore_ascii_case("HS")) =>
        {
            return Err(JoseError::Symmetric(shown(alg_name)))
        }
        None => return Err(JoseError::UnsupportedAlg(shown(alg_name))),
    };
    if !allowed.contains(&alg) {
        return Err(JoseError::NotAllowed(alg));
    }
    if fields.contains_key("crit") {
        return Err(JoseError::Crit);
    }
    let kid = match fields.get("kid") {
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(JoseError::Malformed("kid is not a string")),
        None => None,
    };
    let sig = b64(s, "signature is not base64url")?;
    let key = select_key(jwks, alg, kid.as_deref())?;
    // The signing input is the header and payload exactly as received.
    let signed = &token[..h.len() + 1 + p.len()];
    key.verify(alg, signed.as_bytes(), &sig)?;
    let claims: Value = serde_json::from_slice(&b64(p, "payload is not base64url")?)
        .map_err(|_| JoseError::Malformed("payload is not JSON"))?;
    let Value::Object(claims) = claims else {
        return Err(JoseError::NotObject);
    };
    Ok(Verified {
        alg,
        kid,
        header,
        claims,
    })
}

/// A public key from a JWK, decoded for ring.
enum PublicKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed P-256 point (0x04 || x || y).
    Ec(Vec<u8>),
    Ed(Vec<u8>),
}

impl PublicKey {
    fn verify(&self, alg: JwsAlg, msg: &[u8], sig: &[u8]) -> Result<(), JoseError> {
        let ok = match (self, alg) {
            (PublicKey::Rsa { n, e }, JwsAlg::RS256) => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig),
            (PublicKey::Rsa { n, e }, JwsAlg::PS256) => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PSS_2048_8192_SHA256, msg, sig),
            (PublicKey::Ec(point), JwsAlg::ES256) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, sig)
            }
            (PublicKey::Ed(x), JwsAlg::EdDSA) => {
                signature::UnparsedPublicKey::new(&signature::ED25519, x).verify(msg, sig)
            }
            // select_key only returns keys that fit; never verify across kinds anyway.
            _ => return Err(JoseError::BadSignature),
        };
        ok.map_err(|_| JoseError::BadSignature)
    }
}

fn str_member<'a>(jwk: &'a Value, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(Value::as_str)
}

/// Why `jwk` cannot verify `alg`, or `None` when it can (type and curve, `use`, `alg`).
fn unfit(jwk: &Value, alg: JwsAlg) -> Option<String> {
    let kty = str_member(jwk, "kty").unwrap_or("");
    let crv = str_member(jwk, "crv");
    let kind_fits = match alg {
        JwsAlg::RS256 | JwsAlg::PS256 => kty == "RSA",
        JwsAlg::ES256 => kty == "EC" && crv == Some("P-256"),
        JwsAlg::EdDSA => kty == "OKP" && crv == Some("Ed25519"),
    };
    if !kind_fits {
        let what = match crv {
            Some(crv) => format!("kty {} crv {}", shown(kty), shown(crv)),
            None => format!("kty {}", shown(kty)),
        };
        return Some(format!("a {what} key does not fit {alg}"));
    }
    match jwk.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(Value::String(u)) => return Some(format!("its use is {}, not sig", shown(u))),
        Some(_) => return Some("its use is not a string".into()),
    }
    match jwk.get("alg") {
        None => {}
        Some(Value::String(a)) if a == alg.as_str() => {}
        Some(Value::String(a)) => return Some(format!("it is for alg {}", shown(a))),
        Some(_) => return Some("its alg is not a string".into()),
    }
    None
}

fn select_key(jwks: &[Value], alg: JwsAlg, kid: Option<&str>) -> Result<PublicKey, JoseError> {
    let chosen = match kid {
        Some(kid) => {
            let named: Vec<&Value> = jwks
                .iter()
                .filter(|k| str_member(k, "kid") == Some(kid))
                .collect();
            let Some(first) = named.first() else {
                return Err(JoseError::NoKey(shown(kid)));
            };
            let fitting: Vec<&Value> = named
                .iter()
                .copied()
                .filter(|k| unfit(k, alg).is_none())
                .collect();
            match fitting.as_slice() {
                [one] => *one,
                [] => {
                    return Err(JoseError::KeyUnfit {
                        kid: shown(kid),
                        alg,
                        why: unfit(first, alg).unwrap_or_default(),
                    })
                }
                _ => return Err(JoseError::DuplicateKid(shown(kid))),
            }
        }
        None => {
            let fitting: Vec<&Value> = jwks.iter().filter(|k| unfit(k, alg).is_none()).collect();
            match fitting.as_slice() {
                [one] => *one,
                [] => return Err(JoseError::NoKeyForAlg(alg)),
                _ => return Err(JoseError::AmbiguousKey(alg)),
            }
        }
    };
    decode_key(chosen, alg)
}

fn decode_key(jwk: &Value, alg: JwsAlg) -> Result<PublicKey, JoseError> {
    let kid = str_member(jwk, "kid").map(shown).unwrap_or_default();
    let bad = |why: &'static str| JoseError::BadJwk {
        kid: kid.clone(),
        why,
    };
    let member = |name: &str, why: &'static str| {
        str_member(jwk, name)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .ok_or_else(|| bad(why))
    };
    match alg {
        JwsAlg::RS256 | JwsAlg::PS256 => {
            let n = member("n", "n is missing or not base64url")?;
            let e = member("e", "e is missing or not base64url")?;
            // RFC 7518 forbids leading zeros; some publishers add one anyway, and ring wants
            // minimal integers.
            let trim = |v: Vec<u8>| {
                let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
                v[first..].to_vec()
            };
            Ok(PublicKey::Rsa {
                n: trim(n),
                e: trim(e),
            })
        }
        JwsAlg::ES256 => {
            let x = member("x", "x is missing or not base64url")?;
            let y = member("y", "y is missing or not base64url")?;
            if x.len() != 32 || y.len() != 32 {
                return Err(bad("x and y must be 32 bytes each"));
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Ok(PublicKey::Ec(point))
        }
        JwsAlg::EdDSA => {
            let x = member("x", "x is missing or not base64url")?;
            if x.len() != 32 {
                return Err(bad("x must be 32 bytes"));
            }
            Ok(PublicKey::Ed(x))
        }
    }
}
