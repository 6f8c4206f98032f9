//! The hub's own signing keys: generated here with a self-signed certificate (SAML metadata
//! publishes certificates), private half in DER for xmlsec and ring. ring cannot generate RSA
//! keys, so generation uses OpenSSL; signing never uses the `rsa` crate.

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509Builder, X509NameBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    /// RSA-2048 with SHA-256 (XML: rsa-sha256; JOSE: RS256). The default: every SP has it.
    Rsa2048,
    /// ECDSA P-256 with SHA-256 (XML: ecdsa-sha256; JOSE: ES256).
    EcP256,
}

impl KeyAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlg::Rsa2048 => "RS256",
            KeyAlg::EcP256 => "ES256",
        }
    }
    pub fn parse(s: &str) -> Option<KeyAlg> {
        match s {
            "RS256" | "rsa" => Some(KeyAlg::Rsa2048),
            "ES256" | "ec" => Some(KeyAlg::EcP256),
            _ => None,
        }
    }
    /// XML-DSig SignatureMethod.
    pub fn xml_signature_uri(self) -> &'static str {
        match self {
            KeyAlg::Rsa2048 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            KeyAlg::EcP256 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("key generation failed: {0}")]
pub struct KeyError(String);

fn err(e: impl std::fmt::Display) -> KeyError {
    KeyError(e.to_string())
}

/// A freshly generated key. `private_der` is secret: seal it before storing.
pub struct GeneratedKey {
    pub kid: String,
    pub alg: KeyAlg,
    pub private_der: Vec<u8>,
    pub cert_der: Vec<u8>,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Generates a key and a self-signed certificate for it, valid from `not_before` (Unix
/// seconds) for `valid_days`. The kid is derived from the public key, so it is stable.
pub fn generate(
    alg: KeyAlg,
    common_name: &str,
    not_before: i64,
    valid_days: u32,
) -> Result<GeneratedKey, KeyError> {
    let key: PKey<Private> = match alg {
        KeyAlg::Rsa2048 => PKey::from_rsa(Rsa::generate(2048).map_err(err)?).map_err(err)?,
        KeyAlg::EcP256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(err)?;
            PKey::from_ec_key(EcKey::generate(&group).map_err(err)?).map_err(err)?
        }
    };
    let mut name = X509NameBuilder::new().map_err(err)?;
    name.append_entry_by_text("CN", common_name).map_err(err)?;
    name.append_entry_by_text("C", "VN").map_err(err)?;
    let name = name.build();
    let mut cert = X509Builder::new().map_err(err)?;
    cert.set_version(2).map_err(err)?;
    let mut serial = BigNum::new().map_err(err)?;
    serial
        .rand(127, openssl::bn::MsbOption::MAYBE_ZERO, false)
        .map_err(err)?;
    let serial = serial.to_asn1_integer().map_err(err)?;
    cert.set_serial_number(&serial).map_err(err)?;
    cert.set_subject_name(&name).map_err(err)?;
    cert.set_issuer_name(&name).map_err(err)?;
    cert.set_pubkey(&key).map_err(err)?;
    let from = Asn1Time::from_unix(not_before).map_err(err)?;
    let until = Asn1Time::from_unix(not_before + i64::from(valid_days) * 86_400).map_err(err)?;
    cert.set_not_before(&from).map_err(err)?;
    cert.set_not_after(&until).map_err(err)?;
    cert.sign(&key, MessageDigest::sha256()).map_err(err)?;
    let cert_der = cert.build().to_der().map_err(err)?;
    let spki = key.public_key_to_der().map_err(err)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
    let kid = hex::encode(&digest.as_ref()[..12]);
    Ok(GeneratedKey {
        kid,
        alg,
        private_der: key.private_key_to_der().map_err(err)?,
        cert_der,
    })
}

/// Certificates from a file's bytes: one or more PEM blocks, or one DER certificate.
pub fn certificates_from_bytes(bytes: &[u8]) -> Result<Vec<Vec<u8>>, KeyError> {
    if bytes.starts_with(b"-----BEGIN") || bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let stack = openssl::x509::X509::stack_from_pem(bytes).map_err(err)?;
        if stack.is_empty() {
            return Err(KeyError("no certificate in the PEM file".into()));
        }
        return stack.iter().map(|c| c.to_der().map_err(err)).collect();
    }
    let cert = openssl::x509::X509::from_der(bytes)
        .map_err(|_| KeyError("neither PEM nor a DER certificate".into()))?;
    Ok(vec![cert.to_der().map_err(err)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_both_kinds_with_certificates() {
        for alg in [KeyAlg::Rsa2048, KeyAlg::EcP256] {
            let k = generate(alg, "fedhub test", 1_795_737_600, 3650).unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&k.cert_der).unwrap();
            assert_eq!(cert.validity().not_before.timestamp(), 1_795_737_600);
            assert_eq!(k.kid.len(), 24);
            assert!(!format!("{k:?}").contains("private_der"));
        }
        let a = generate(KeyAlg::EcP256, "a", 0, 1).unwrap();
        let b = generate(KeyAlg::EcP256, "a", 0, 1).unwrap();
        assert_ne!(a.kid, b.kid);
    }
}
