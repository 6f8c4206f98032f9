//! Public keys as JSON Web Keys (RFC 7517/7518), from the certificates the hub keeps for its
//! signing keys. What `/oidc/jwks` publishes.
//!
//! RSA keys carry no `alg`: one RSA key signs both RS256 and PS256, and relying-party
//! libraries refuse a key whose `alg` differs from the token's. EC keys say `ES256`, OKP keys
//! (Ed25519) `EdDSA`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;
use x509_parser::public_key::PublicKey;

use crate::keys::KeyAlg;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwk {
    pub kty: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub kid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("cannot publish key {kid}: {why}")]
pub struct JwkError {
    pub kid: String,
    pub why: String,
}

fn trim_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b
        .iter()
        .position(|x| *x != 0)
        .unwrap_or(b.len().saturating_sub(1));
    &b[first..]
}

/// The JWK of the key certified by `cert_der`.
pub fn from_certificate(kid: &str, alg: KeyAlg, cert_der: &[u8]) -> Result<Jwk, JwkError> {
    let err = |why: &str| JwkError {
        kid: kid.to_string(),
        why: why.to_string(),
    };
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|_| err("unreadable certificate"))?;
    let key = cert
        .tbs_certificate
        .subject_pki
        .parsed()
        .map_err(|_| err("unreadable public key"))?;
    let base = Jwk {
        kty: "",
        use_: "sig",
        kid: kid.to_string(),
        alg: None,
        n: None,
        e: None,
        crv: None,
        x: None,
        y: None,
    };
    match (alg, key) {
        (KeyAlg::Rsa2048, PublicKey::RSA(rsa)) => Ok(Jwk {
            kty: "RSA",
            n: Some(URL_SAFE_NO_PAD.encode(trim_leading_zeros(rsa.modulus))),
            e: Some(URL_SAFE_NO_PAD.encode(trim_leading_zeros(rsa.exponent))),
            ..base
        }),
        (KeyAlg::EcP256, PublicKey::EC(point)) => {
            let p = point.data();
            if p.len() != 65 || p[0] != 4 {
                return Err(err("not an uncompressed P-256 point"));
            }
            Ok(Jwk {
                kty: "EC",
                crv: Some("P-256"),
                alg: Some("ES256"),
                x: Some(URL_SAFE_NO_PAD.encode(&p[1..33])),
                y: Some(URL_SAFE_NO_PAD.encode(&p[33..])),
                ..base
            })
        }
        (KeyAlg::Ed25519, PublicKey::Unknown(raw))
            if cert.tbs_certificate.subject_pki.algorithm.algorithm
                == x509_parser::oid_registry::OID_SIG_ED25519 =>
        {
            if raw.len() != 32 {
                return Err(err("not a 32-byte Ed25519 public key"));
            }
            Ok(Jwk {
                kty: "OKP",
                crv: Some("Ed25519"),
                alg: Some("EdDSA"),
                x: Some(URL_SAFE_NO_PAD.encode(raw)),
                ..base
            })
        }
        _ => Err(err("the key does not match its algorithm")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_and_ec_keys_become_jwks_that_verify_signatures() {
        let k = crate::keys::generate(KeyAlg::Rsa2048, "jwk", 0, 1).unwrap();
        let jwk = from_certificate(&k.kid, KeyAlg::Rsa2048, &k.cert_der).unwrap();
        assert_eq!((jwk.kty, jwk.alg, jwk.use_), ("RSA", None, "sig"));
        let json = serde_json::to_value(&jwk).unwrap();
        assert!(
            json.get("alg").is_none(),
            "RSA keys serve RS256 and PS256: {json}"
        );
        let n = URL_SAFE_NO_PAD.decode(jwk.n.unwrap()).unwrap();
        let e = URL_SAFE_NO_PAD.decode(jwk.e.unwrap()).unwrap();
        assert_eq!(n.len(), 256, "2048-bit modulus without a leading zero");
        assert_eq!(e, vec![1, 0, 1]);
        // A signature by the private key verifies with the published n and e.
        let pair = ring::signature::RsaKeyPair::from_der(&k.private_der).unwrap();
        let mut sig = vec![0u8; pair.public().modulus_len()];
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            b"msg",
            &mut sig,
        )
        .unwrap();
        ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
            .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, b"msg", &sig)
            .unwrap();

        let k = crate::keys::generate(KeyAlg::EcP256, "jwk", 0, 1).unwrap();
        let jwk = from_certificate(&k.kid, KeyAlg::EcP256, &k.cert_der).unwrap();
        assert_eq!(
            (jwk.kty, jwk.crv, jwk.alg),
            ("EC", Some("P-256"), Some("ES256"))
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(jwk.x.unwrap()).unwrap().len(), 32);
        assert!(
            from_certificate(&k.kid, KeyAlg::Rsa2048, &k.cert_der).is_err(),
            "algorithm and key must agree"
        );
    }

    #[test]
    fn ed25519_keys_become_okp_jwks_that_verify_signatures() {
        let k = crate::keys::generate(KeyAlg::Ed25519, "jwk", 0, 1).unwrap();
        let jwk = from_certificate(&k.kid, KeyAlg::Ed25519, &k.cert_der).unwrap();
        assert_eq!(
            (jwk.kty, jwk.crv, jwk.alg, jwk.use_),
            ("OKP", Some("Ed25519"), Some("EdDSA"), "sig")
        );
        assert!(jwk.n.is_none() && jwk.e.is_none() && jwk.y.is_none());
        let x = URL_SAFE_NO_PAD.decode(jwk.x.unwrap()).unwrap();
        assert_eq!(x.len(), 32);
        let pair =
            ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&k.private_der).unwrap();
        let sig = pair.sign(b"msg");
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &x)
            .verify(b"msg", sig.as_ref())
            .unwrap();
        assert!(from_certificate(&k.kid, KeyAlg::EcP256, &k.cert_der).is_err());
        let ec = crate::keys::generate(KeyAlg::EcP256, "jwk", 0, 1).unwrap();
        assert!(from_certificate(&ec.kid, KeyAlg::Ed25519, &ec.cert_der).is_err());
    }
}
