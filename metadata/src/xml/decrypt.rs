//! Opening an `EncryptedAssertion` an upstream IdP encrypted for the hub (XML Encryption 1.1):
//! the content key is wrapped with RSA-OAEP under one of the hub's RSA keys, the Assertion
//! encrypted with AES-GCM or AES-CBC. RSA PKCS#1 v1.5 key transport is refused (Bleichenbacher
//! oracles), as are algorithms outside this list. Decryption proves nothing about the sender:
//! the Assertion inside must still verify with the IdP's registered keys.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use openssl::pkey::{PKey, Private};
use quick_xml::events::Event;

use super::guard::{check_xml, Limits};
use super::XmlError;

const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
const RSA_OAEP: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";

/// What the `EncryptedAssertion` says, read without trusting it.
#[derive(Debug, Default)]
struct Parts {
    data_alg: Option<String>,
    key_alg: Option<String>,
    oaep_digest: Option<String>,
    mgf: Option<String>,
    wrapped_key: Option<String>,
    cipher: Option<String>,
    /// `xmlns:*` declarations in scope around the EncryptedAssertion.
    namespaces: Vec<(String, String)>,
}

fn local(name: &[u8]) -> &[u8] {
    name.rsplit(|&b| b == b':').next().unwrap_or(name)
}

fn read_parts(xml: &str) -> Result<Parts, XmlError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut parts = Parts::default();
    let mut inside = false;
    let bad = |m: &str| XmlError::Parse(format!("EncryptedAssertion: {m}"));
    loop {
        let event = reader.read_event().map_err(|e| bad(&e.to_string()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = local(e.name().as_ref()).to_vec();
                let parent = stack.last().map(Vec::as_slice);
                let attr = |key: &[u8]| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == key)
                        .and_then(|a| {
                            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .ok()
                                .map(|v| v.into_owned())
                        })
                };
                if !inside {
                    for a in e.attributes().flatten() {
                        if let Some(prefix) = a.key.as_ref().strip_prefix(b"xmlns:") {
                            if let Ok(v) = a.normalized_value(quick_xml::XmlVersion::Implicit1_0) {
                                parts.namespaces.push((
                                    String::from_utf8_lossy(prefix).into_owned(),
                                    v.into_owned(),
                                ));
                            }
                        }
                    }
                }
                if name == b"EncryptedAssertion" {
                    inside = true;
                }
                if inside {
                    match (name.as_slice(), parent) {
                        (b"EncryptionMethod", Some(b"EncryptedData")) => {
                            parts.data_alg = attr(b"Algorithm")
                        }
                        (b"EncryptionMethod", Some(b"EncryptedKey")) => {
                            parts.key_alg = attr(b"Algorithm")
                        }
                        (b"DigestMethod", Some(b"EncryptionMethod")) => {
                            parts.oaep_digest = attr(b"Algorithm")
                        }
                        (b"MGF", Some(b"EncryptionMethod")) => parts.mgf = attr(b"Algorithm"),
                        _ => {}
                    }
                }
                if matches!(event, Event::Start(_)) {
                    stack.push(name);
                }
            }
            Event::Text(t) if inside && stack.last().map(Vec::as_slice) == Some(b"CipherValue") => {
                let text = t.xml10_content().map_err(|e| bad(&e.to_string()))?;
                let grand = stack.len().checked_sub(3).and_then(|i| stack.get(i));
                let slot = match grand.map(Vec::as_slice) {
                    Some(b"EncryptedKey") => &mut parts.wrapped_key,
                    Some(b"EncryptedData") => &mut parts.cipher,
                    _ => continue,
                };
                slot.get_or_insert_with(String::new).push_str(&text);
            }
            Event::End(_) if stack.pop().as_deref() == Some(b"EncryptedAssertion") => break,
            Event::Eof => break,
            _ => {}
        }
    }
    if !inside {
        return Err(bad("not found"));
    }
    Ok(parts)
}

fn digest(uri: Option<&str>) -> Result<openssl::hash::MessageDigest, XmlError> {
    use openssl::hash::MessageDigest;
    Ok(match uri {
        None | Some("http://www.w3.org/2000/09/xmldsig#sha1") => MessageDigest::sha1(),
        Some("http://www.w3.org/2001/04/xmlenc#sha256") => MessageDigest::sha256(),
        Some("http://www.w3.org/2001/04/xmldsig-more#sha384") => MessageDigest::sha384(),
        Some("http://www.w3.org/2001/04/xmlenc#sha512") => MessageDigest::sha512(),
        Some(other) => return Err(XmlError::Algorithm(other.to_string())),
    })
}

fn mgf_digest(uri: Option<&str>) -> Result<openssl::hash::MessageDigest, XmlError> {
    use openssl::hash::MessageDigest;
    Ok(match uri {
        None | Some("http://www.w3.org/2009/xmlenc11#mgf1sha1") => MessageDigest::sha1(),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha256") => MessageDigest::sha256(),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha384") => MessageDigest::sha384(),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha512") => MessageDigest::sha512(),
        Some(other) => return Err(XmlError::Algorithm(other.to_string())),
    })
}

fn unwrap_key(parts: &Parts, keys: &[PKey<Private>]) -> Result<Vec<u8>, XmlError> {
    let (md, mgf) = match parts.key_alg.as_deref() {
        // rsa-oaep-mgf1p fixes MGF1 with SHA-1; the OAEP digest may be named.
        Some(RSA_OAEP_MGF1P) => (digest(parts.oaep_digest.as_deref())?, mgf_digest(None)?),
        Some(RSA_OAEP) => (
            digest(parts.oaep_digest.as_deref())?,
            mgf_digest(parts.mgf.as_deref())?,
        ),
        Some(other) => return Err(XmlError::Algorithm(format!("key transport {other}"))),
        None => {
            return Err(XmlError::Invalid(
                "EncryptedAssertion has no EncryptedKey".into(),
            ))
        }
    };
    let wrapped = decode(parts.wrapped_key.as_deref())?;
    for key in keys {
        let attempt = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
            let mut ctx = openssl::pkey_ctx::PkeyCtx::new(key)?;
            ctx.decrypt_init()?;
            ctx.set_rsa_padding(openssl::rsa::Padding::PKCS1_OAEP)?;
            ctx.set_rsa_oaep_md(
                openssl::md::Md::from_nid(md.type_()).unwrap_or(openssl::md::Md::sha1()),
            )?;
            ctx.set_rsa_mgf1_md(
                openssl::md::Md::from_nid(mgf.type_()).unwrap_or(openssl::md::Md::sha1()),
            )?;
            let mut out = Vec::new();
            ctx.decrypt_to_vec(&wrapped, &mut out)?;
            Ok(out)
        };
        if let Ok(k) = attempt() {
            return Ok(k);
        }
    }
    Err(XmlError::Invalid(
        "the assertion is not encrypted for any of the hub's keys".into(),
    ))
}

fn decode(b64: Option<&str>) -> Result<Vec<u8>, XmlError> {
    let compact: String = b64
        .ok_or_else(|| XmlError::Invalid("EncryptedAssertion has no CipherValue".into()))?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(compact)
        .map_err(|_| XmlError::Decode("invalid base64 in CipherValue".into()))
}

fn decrypt_data(alg: Option<&str>, key: &[u8], cipher: &[u8]) -> Result<Vec<u8>, XmlError> {
    use openssl::symm::Cipher;
    let failed = || XmlError::Invalid("the encrypted assertion cannot be decrypted".into());
    let (c, gcm) = match alg {
        Some("http://www.w3.org/2009/xmlenc11#aes128-gcm") => (Cipher::aes_128_gcm(), true),
        Some("http://www.w3.org/2009/xmlenc11#aes192-gcm") => (Cipher::aes_192_gcm(), true),
        Some("http://www.w3.org/2009/xmlenc11#aes256-gcm") => (Cipher::aes_256_gcm(), true),
        Some("http://www.w3.org/2001/04/xmlenc#aes128-cbc") => (Cipher::aes_128_cbc(), false),
        Some("http://www.w3.org/2001/04/xmlenc#aes192-cbc") => (Cipher::aes_192_cbc(), false),
        Some("http://www.w3.org/2001/04/xmlenc#aes256-cbc") => (Cipher::aes_256_cbc(), false),
        Some(other) => return Err(XmlError::Algorithm(format!("content encryption {other}"))),
        None => {
            return Err(XmlError::Invalid(
                "EncryptedData has no EncryptionMethod".into(),
            ))
        }
    };
    if key.len() != c.key_len() {
        return Err(failed());
    }
    if gcm {
        // IV (12) || ciphertext || tag (16).
        if cipher.len() < 28 {
            return Err(failed());
        }
        let (iv, rest) = cipher.split_at(12);
        let (body, tag) = rest.split_at(rest.len() - 16);
        openssl::symm::decrypt_aead(c, key, Some(iv), &[], body, tag).map_err(|_| failed())
    } else {
        // IV (16) || ciphertext; XML Encryption padding: the last byte counts the pad bytes.
        if cipher.len() < 32 || !cipher.len().is_multiple_of(16) {
            return Err(failed());
        }
        let (iv, body) = cipher.split_at(16);
        let mut crypter =
            openssl::symm::Crypter::new(c, openssl::symm::Mode::Decrypt, key, Some(iv))
                .map_err(|_| failed())?;
        crypter.pad(false);
        let mut out = vec![0u8; body.len() + 16];
        let mut n = crypter.update(body, &mut out).map_err(|_| failed())?;
        n += crypter.finalize(&mut out[n..]).map_err(|_| failed())?;
        out.truncate(n);
        let pad = usize::from(*out.last().ok_or_else(failed)?);
        if pad == 0 || pad > 16 || pad > out.len() {
            return Err(failed());
        }
        out.truncate(out.len() - pad);
        Ok(out)
    }
}

/// The Assertion inside the first `EncryptedAssertion` of `xml`, as XML text with the
/// namespace prefixes it borrows from the envelope declared on it (so it parses alone).
pub fn decrypt_assertion(
    xml: &str,
    keys: &[PKey<Private>],
    limits: Limits,
) -> Result<String, XmlError> {
    let parts = read_parts(xml)?;
    let key = unwrap_key(&parts, keys)?;
    let plain = decrypt_data(
        parts.data_alg.as_deref(),
        &key,
        &decode(parts.cipher.as_deref())?,
    )?;
    let text = check_xml(&plain, limits)?.trim_start();
    let text = super::sign::strip_declaration(text);
    // Declare on the Assertion element the envelope's prefixes it does not declare itself.
    let end_of_name = text
        .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
        .ok_or_else(|| XmlError::Parse("the decrypted content is not an element".into()))?;
    let name = text.get(1..end_of_name).unwrap_or_default();
    if !text.starts_with('<') || local(name.as_bytes()) != b"Assertion" {
        return Err(XmlError::Invalid(
            "the encrypted content is not an Assertion".into(),
        ));
    }
    let start_tag = text.split('>').next().unwrap_or_default();
    let mut extra = String::new();
    for (prefix, uri) in &parts.namespaces {
        if !start_tag.contains(&format!("xmlns:{prefix}="))
            && !extra.contains(&format!("xmlns:{prefix}="))
        {
            extra.push_str(&format!(
                " xmlns:{prefix}=\"{}\"",
                super::dsig::c14n_attr(uri)
            ));
        }
    }
    Ok(format!(
        "{}{extra}{}",
        &text[..end_of_name],
        &text[end_of_name..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa() -> (crate::keys::GeneratedKey, PKey<Private>) {
        let k = crate::keys::generate(crate::keys::KeyAlg::Rsa2048, "hub", 0, 1).unwrap();
        let p = PKey::from_rsa(openssl::rsa::Rsa::private_key_from_der(&k.private_der).unwrap())
            .unwrap();
        (k, p)
    }

    #[test]
    fn opens_what_the_hubs_own_encryption_writes_and_only_with_the_right_key() {
        let (k, p) = rsa();
        let (_, other) = rsa();
        let assertion = r#"<saml:Assertion ID="_a" Version="2.0"><saml:Issuer>x</saml:Issuer></saml:Assertion>"#;
        let enc = super::super::encrypt::encrypt_assertion(assertion, &k.cert_der).unwrap();
        let envelope = format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">{enc}</samlp:Response>"#
        );
        let out = decrypt_assertion(&envelope, &[other.clone(), p], Limits::default()).unwrap();
        assert!(out.starts_with("<saml:Assertion xmlns:samlp="), "{out}");
        assert!(out.contains("xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\""));
        assert!(out.ends_with("</saml:Assertion>"));
        assert!(decrypt_assertion(&envelope, &[other], Limits::default()).is_err());
    }

    #[test]
    fn refuses_pkcs1_v15_key_transport() {
        let (k, p) = rsa();
        let enc = super::super::encrypt::encrypt_assertion("<saml:Assertion/>", &k.cert_der)
            .unwrap()
            .replace(RSA_OAEP_MGF1P, "http://www.w3.org/2001/04/xmlenc#rsa-1_5");
        assert!(matches!(
            decrypt_assertion(&enc, &[p], Limits::default()),
            Err(XmlError::Algorithm(_))
        ));
    }
}
