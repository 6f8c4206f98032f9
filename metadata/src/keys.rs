//! The hub's own signing keys: generated here with a self-signed certificate (SAML metadata
//! publishes certificates), private half in DER for xmlsec, OpenSSL and ring. ring cannot
//! generate RSA keys, so generation uses OpenSSL; signing never uses the `rsa` crate.

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509Builder, X509NameBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlg {
    /// RSA-2048 with SHA-256 (XML: rsa-sha256; JOSE: RS256). The default: every SP has it.
    Rsa2048,
    /// ECDSA P-256 with SHA-256 (XML: ecdsa-sha256; JOSE: ES256).
    EcP256,
    /// Ed25519 (JOSE: EdDSA). OIDC only: SAML signing refuses it (few SPs can verify it).
    Ed25519,
}

impl KeyAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlg::Rsa2048 => "RS256",
            KeyAlg::EcP256 => "ES256",
            KeyAlg::Ed25519 => "EdDSA",
        }
    }
    pub fn parse(s: &str) -> Option<KeyAlg> {
        match s {
            "RS256" | "rsa" => Some(KeyAlg::Rsa2048),
            "ES256" | "ec" => Some(KeyAlg::EcP256),
            "EdDSA" | "ed25519" => Some(KeyAlg::Ed25519),
            _ => None,
        }
    }
    /// XML-DSig SignatureMethod. Ed25519 has one (RFC 9231), but the hub's XML signer
    /// refuses Ed25519 keys.
    pub fn xml_signature_uri(self) -> &'static str {
        match self {
            KeyAlg::Rsa2048 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            KeyAlg::EcP256 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
            KeyAlg::Ed25519 => "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed25519",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("key generation failed: {0}")]
pub struct KeyError(String);

fn err(e: impl std::fmt::Display) -> KeyError {
    KeyError(e.to_string())
}

/// A freshly generated key. `private_der` is secret: seal it before storing. Its form is
/// OpenSSL's `private_key_to_der`: PKCS#1 RSAPrivateKey for RSA, SEC1 ECPrivateKey for P-256,
/// PKCS#8 (v1) for Ed25519.
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
        KeyAlg::Ed25519 => PKey::generate_ed25519().map_err(err)?,
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
    // Ed25519 signs the message itself (no separate digest): OpenSSL wants the null digest.
    let digest = match alg {
        KeyAlg::Ed25519 => MessageDigest::null(),
        KeyAlg::Rsa2048 | KeyAlg::EcP256 => MessageDigest::sha256(),
    };
    cert.sign(&key, digest).map_err(err)?;
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

/// An RSA private key (PKCS#1 DER) loaded for OpenSSL signing, after ring has validated it
/// (ring checks the key's consistency and size, 2048 to 4096 bits, on load).
pub(crate) fn rsa_signing_key(private_der: &[u8]) -> Result<PKey<Private>, String> {
    ring::signature::RsaKeyPair::from_der(private_der).map_err(|e| e.to_string())?;
    let rsa = Rsa::private_key_from_der(private_der).map_err(|e| e.to_string())?;
    PKey::from_rsa(rsa).map_err(|e| e.to_string())
}

/// A P-256 private key (SEC1 DER) as a ring signing pair producing fixed-size r||s signatures.
pub(crate) fn ec_p256_signing_pair(
    private_der: &[u8],
    rng: &ring::rand::SystemRandom,
) -> Result<ring::signature::EcdsaKeyPair, String> {
    let ec = EcKey::private_key_from_der(private_der).map_err(|e| e.to_string())?;
    if ec.group().curve_name() != Some(Nid::X9_62_PRIME256V1) {
        return Err("not a P-256 key".into());
    }
    let mut ctx = openssl::bn::BigNumContext::new().map_err(|e| e.to_string())?;
    let public = ec
        .public_key()
        .to_bytes(
            ec.group(),
            openssl::ec::PointConversionForm::UNCOMPRESSED,
            &mut ctx,
        )
        .map_err(|e| e.to_string())?;
    let private = ec
        .private_key()
        .to_vec_padded(32)
        .map_err(|e| e.to_string())?;
    ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &private,
        &public,
        rng,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_every_kind_with_certificates() {
        for alg in [KeyAlg::Rsa2048, KeyAlg::EcP256, KeyAlg::Ed25519] {
            let k = generate(alg, "fedhub test", 1_795_737_600, 3650).unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&k.cert_der).unwrap();
            assert_eq!(cert.validity().not_before.timestamp(), 1_795_737_600);
            assert_eq!(k.kid.len(), 24);
            assert!(!format!("{k:?}").contains("private_der"));
        }
        let k = generate(KeyAlg::Ed25519, "ed", 0, 1).unwrap();
        ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&k.private_der)
            .expect("PKCS#8 that ring reads");
        let cert = openssl::x509::X509::from_der(&k.cert_der).unwrap();
        assert!(
            cert.verify(&cert.public_key().unwrap()).unwrap(),
            "self-signed"
        );
        let a = generate(KeyAlg::EcP256, "a", 0, 1).unwrap();
        let b = generate(KeyAlg::EcP256, "a", 0, 1).unwrap();
        assert_ne!(a.kid, b.kid);
    }

    #[test]
    fn names_round_trip() {
        for alg in [KeyAlg::Rsa2048, KeyAlg::EcP256, KeyAlg::Ed25519] {
            assert_eq!(KeyAlg::parse(alg.as_str()), Some(alg));
        }
        assert_eq!(KeyAlg::parse("ed25519"), Some(KeyAlg::Ed25519));
        assert_eq!(KeyAlg::parse("eddsa"), None);
    }
}
