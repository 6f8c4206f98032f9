//! Assertion encryption for SPs that publish an encryption key: the signed Assertion is
//! encrypted with a fresh AES-256-GCM key (ring), and that key with RSA-OAEP (MGF1-SHA1, the
//! XML Encryption default every SAML stack reads) under the SP's certificate. Output is
//! written in exclusive canonical form so the Response signature can cover it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use super::XmlError;

const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";

/// Whether [`encrypt_assertion`] can use this certificate (an RSA key of 2048 bits or more).
pub fn can_encrypt_for(cert_der: &[u8]) -> bool {
    openssl::x509::X509::from_der(cert_der)
        .and_then(|c| c.public_key())
        .and_then(|k| k.rsa())
        .is_ok_and(|r| r.size() >= 256)
}

/// `<saml:EncryptedAssertion>` holding `assertion` (an Assertion element) for the holder of
/// `cert_der`'s private key.
pub fn encrypt_assertion(assertion: &str, cert_der: &[u8]) -> Result<String, XmlError> {
    let fail = |what: &str| XmlError::Invalid(format!("assertion encryption failed: {what}"));
    let rng = SystemRandom::new();
    let mut key = [0u8; 32];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut key).map_err(|_| fail("random"))?;
    rng.fill(&mut nonce).map_err(|_| fail("random"))?;
    let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).map_err(|_| fail("key"))?);
    let mut data = assertion.as_bytes().to_vec();
    aead.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
        .map_err(|_| fail("seal"))?;
    // XML Encryption 1.1 AES-GCM: CipherValue = IV || ciphertext || tag.
    let mut cipher = nonce.to_vec();
    cipher.extend_from_slice(&data);

    let cert = openssl::x509::X509::from_der(cert_der)
        .map_err(|_| fail("the SP's encryption certificate cannot be read"))?;
    let rsa = cert
        .public_key()
        .and_then(|k| k.rsa())
        .map_err(|_| fail("the SP's encryption key is not RSA"))?;
    let mut wrapped = vec![0u8; rsa.size() as usize];
    let n = rsa
        .public_encrypt(&key, &mut wrapped, openssl::rsa::Padding::PKCS1_OAEP)
        .map_err(|_| fail("RSA-OAEP"))?;
    wrapped.truncate(n);

    Ok(format!(
        concat!(
            r#"<saml:EncryptedAssertion xmlns:saml="{saml}"><xenc:EncryptedData xmlns:xenc="{xenc}" Type="http://www.w3.org/2001/04/xmlenc#Element">"#,
            r#"<xenc:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"></xenc:EncryptionMethod>"#,
            r#"<ds:KeyInfo xmlns:ds="{ds}"><xenc:EncryptedKey>"#,
            r#"<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"><ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"></ds:DigestMethod></xenc:EncryptionMethod>"#,
            r#"<xenc:CipherData><xenc:CipherValue>{key}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>"#,
            r#"<xenc:CipherData><xenc:CipherValue>{data}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>"#
        ),
        saml = SAML,
        xenc = XENC,
        ds = DS,
        key = STANDARD.encode(wrapped),
        data = STANDARD.encode(cipher),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_of_the_private_key_can_open_it() {
        let k = crate::keys::generate(crate::keys::KeyAlg::Rsa2048, "sp enc", 0, 1).unwrap();
        let assertion = r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a"></saml:Assertion>"#;
        let xml = encrypt_assertion(assertion, &k.cert_der).unwrap();
        assert!(!xml.contains("_a\""), "the assertion is not readable");
        let value = |i: usize| {
            xml.split("<xenc:CipherValue>")
                .nth(i)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
                .to_string()
        };
        let wrapped = STANDARD.decode(value(1)).unwrap();
        let rsa = openssl::rsa::Rsa::private_key_from_der(&k.private_der).unwrap();
        let mut key = vec![0u8; rsa.size() as usize];
        let n = rsa
            .private_decrypt(&wrapped, &mut key, openssl::rsa::Padding::PKCS1_OAEP)
            .unwrap();
        let cipher = STANDARD.decode(value(2)).unwrap();
        let (nonce, body) = cipher.split_at(NONCE_LEN);
        let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key[..n]).unwrap());
        let mut body = body.to_vec();
        let plain = aead
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).unwrap(),
                Aad::empty(),
                &mut body,
            )
            .unwrap();
        assert_eq!(plain, assertion.as_bytes());
    }
}
