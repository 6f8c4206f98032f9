//! Fast enveloped signatures over XML the hub writes itself (ECDSA with ring, RSA with
//! OpenSSL).
//!
//! The hub emits its Assertions and Responses already in exclusive canonical form (attributes
//! sorted, namespaces declared where first used, `<a></a>` for empty elements, c14n
//! escaping). The digest is then SHA-256 of the element as written and the signature covers
//! the canonical SignedInfo; no XML parser or libxmlsec runs on the hot path. xmlsec1 and
//! samael verify the output in the tests, which is what keeps this honest.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::EcdsaKeyPair;

use super::XmlError;
use crate::keys::KeyAlg;

const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

enum Pair {
    /// RSA signs through OpenSSL: twice ring's rate on this hardware class, and hardened
    /// against timing attacks (the `rsa` crate, RUSTSEC-2023-0071, is never used).
    Rsa(openssl::pkey::PKey<openssl::pkey::Private>),
    Ec(Box<EcdsaKeyPair>),
}

/// A private key ready to sign, with its certificate for KeyInfo. Build once, sign often.
pub struct XmlSigner {
    alg: KeyAlg,
    pair: Pair,
    cert_b64: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for XmlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmlSigner")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl XmlSigner {
    /// `private_der`: PKCS#1 for RSA, SEC1 for P-256 (as `keys::generate` produces). Ed25519
    /// keys are refused: they sign OIDC tokens only.
    pub fn new(alg: KeyAlg, private_der: &[u8], cert_der: &[u8]) -> Result<XmlSigner, XmlError> {
        let bad = |what: String| XmlError::Invalid(format!("signing key unusable: {what}"));
        let rng = SystemRandom::new();
        let pair = match alg {
            KeyAlg::Rsa2048 => Pair::Rsa(crate::keys::rsa_signing_key(private_der).map_err(bad)?),
            KeyAlg::EcP256 => Pair::Ec(Box::new(
                crate::keys::ec_p256_signing_pair(private_der, &rng).map_err(bad)?,
            )),
            KeyAlg::Ed25519 => {
                return Err(XmlError::Invalid(
                    "Ed25519 is for OIDC only; SAML signing keys are RSA or ECDSA P-256".into(),
                ))
            }
        };
        Ok(XmlSigner {
            alg,
            pair,
            cert_b64: STANDARD.encode(cert_der),
            rng,
        })
    }

    pub fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// Signs bytes as they are (the HTTP-Redirect binding signs the query string).
    pub fn sign_bytes(&self, data: &[u8]) -> Result<Vec<u8>, XmlError> {
        self.raw_sign(data)
    }

    fn raw_sign(&self, data: &[u8]) -> Result<Vec<u8>, XmlError> {
        let fail = |_| XmlError::Invalid("signing failed".into());
        match &self.pair {
            Pair::Rsa(k) => {
                let failed = |_| XmlError::Invalid("signing failed".into());
                let mut signer =
                    openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), k)
                        .map_err(failed)?;
                signer.sign_oneshot_to_vec(data).map_err(failed)
            }
            Pair::Ec(k) => Ok(k.sign(&self.rng, data).map_err(fail)?.as_ref().to_vec()),
        }
    }

    /// Signs the element `canonical` (its root carries `ID="{id}"`) and returns it with the
    /// `ds:Signature` inserted at byte offset `at` (just after the Issuer element).
    pub fn sign_enveloped(&self, canonical: &str, id: &str, at: usize) -> Result<String, XmlError> {
        if !canonical.is_char_boundary(at) || at > canonical.len() {
            return Err(XmlError::Invalid(
                "signature position is outside the element".into(),
            ));
        }
        let digest = STANDARD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ));
        let inner = format!(
            concat!(
                r#"<ds:CanonicalizationMethod Algorithm="{c14n}"></ds:CanonicalizationMethod>"#,
                r#"<ds:SignatureMethod Algorithm="{sig}"></ds:SignatureMethod>"#,
                r##"<ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="{env}"></ds:Transform>"##,
                r#"<ds:Transform Algorithm="{c14n}"></ds:Transform></ds:Transforms>"#,
                r#"<ds:DigestMethod Algorithm="{sha}"></ds:DigestMethod><ds:DigestValue>{digest}</ds:DigestValue></ds:Reference>"#
            ),
            c14n = EXC_C14N,
            sig = self.alg.xml_signature_uri(),
            id = id,
            env = ENVELOPED,
            sha = SHA256,
            digest = digest,
        );
        // Canonical SignedInfo as the apex of its own c14n: it declares ds itself.
        let signed_info = format!(r#"<ds:SignedInfo xmlns:ds="{DS}">{inner}</ds:SignedInfo>"#);
        let value = STANDARD.encode(self.raw_sign(signed_info.as_bytes())?);
        let signature = format!(
            r#"<ds:Signature xmlns:ds="{DS}"><ds:SignedInfo>{inner}</ds:SignedInfo><ds:SignatureValue>{value}</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"#,
            cert = self.cert_b64
        );
        let mut out = String::with_capacity(canonical.len() + signature.len());
        out.push_str(&canonical[..at]);
        out.push_str(&signature);
        out.push_str(&canonical[at..]);
        Ok(out)
    }
}

/// Text content escaped as exclusive c14n writes it.
pub fn c14n_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

/// An attribute value escaped as exclusive c14n writes it.
pub fn c14n_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}
