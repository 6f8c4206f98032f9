//! The HTTP-Redirect binding (SAML Bindings §3.4): DEFLATE + base64 in the query, and a
//! signature over the query parameters exactly as they were sent.

use ring::signature;
use samael::crypto::CertificateDer;

use super::guard::{base64_decode, check_xml, inflate, Limits};
use super::XmlError;

/// A Redirect-binding message as received.
#[derive(Debug, Clone)]
pub struct RedirectMessage {
    pub xml: String,
    pub relay_state: Option<String>,
    /// Present when the query carried `SigAlg` and `Signature`.
    pub signature: Option<RedirectSignature>,
}

/// What the signer signed: the raw `SAMLRequest=…&RelayState=…&SigAlg=…` bytes.
#[derive(Debug, Clone)]
pub struct RedirectSignature {
    pub sig_alg: String,
    signature: Vec<u8>,
    signed_octets: Vec<u8>,
}

fn decode_component(raw: &str) -> Result<String, XmlError> {
    // Query values are form-encoded: '+' is a space, %XX a byte.
    let spaced = raw.replace('+', " ");
    url::form_urlencoded::parse(format!("v={spaced}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| XmlError::Decode("bad query encoding".into()))
}

/// Parses the raw query string of a Redirect request for `param` (`SAMLRequest` or
/// `SAMLResponse`). Repeated parameters are refused: with two `SAMLRequest`s the verifier and
/// the parser could each look at a different one.
pub fn parse(raw_query: &str, param: &str, limits: Limits) -> Result<RedirectMessage, XmlError> {
    let mut message = None;
    let mut relay = None;
    let mut sig_alg = None;
    let mut sig = None;
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            n if n == param => &mut message,
            "RelayState" => &mut relay,
            "SigAlg" => &mut sig_alg,
            "Signature" => &mut sig,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(XmlError::DuplicateParameter(name.to_string()));
        }
    }
    let raw_message = message.ok_or_else(|| XmlError::Decode(format!("no {param} parameter")))?;
    let compressed = base64_decode(&decode_component(raw_message)?, limits)?;
    let xml = check_xml(&inflate(&compressed, limits)?, limits)?.to_string();
    let relay_state = relay.map(decode_component).transpose()?;
    let signature = match (sig_alg, sig) {
        (None, None) => None,
        (Some(alg), Some(sig)) => {
            // Signed octets, in the order the spec fixes, from the raw (still encoded) values.
            let mut octets = format!("{param}={raw_message}");
            if let Some(r) = relay {
                octets.push_str(&format!("&RelayState={r}"));
            }
            octets.push_str(&format!("&SigAlg={alg}"));
            Some(RedirectSignature {
                sig_alg: decode_component(alg)?,
                signature: base64_decode(&decode_component(sig)?, limits)?,
                signed_octets: octets.into_bytes(),
            })
        }
        _ => {
            return Err(XmlError::Decode(
                "SigAlg and Signature must come together".into(),
            ))
        }
    };
    Ok(RedirectMessage {
        xml,
        relay_state,
        signature,
    })
}

fn algorithm(uri: &str) -> Result<&'static dyn signature::VerificationAlgorithm, XmlError> {
    Ok(match uri {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => {
            &signature::RSA_PKCS1_2048_8192_SHA384
        }
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => &signature::ECDSA_P256_SHA256_ASN1,
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => &signature::ECDSA_P384_SHA384_ASN1,
        other => return Err(XmlError::Algorithm(other.to_string())),
    })
}

/// The subjectPublicKey bits of a certificate, in the form ring verifies with.
pub fn public_key_of(cert: &CertificateDer) -> Result<Vec<u8>, XmlError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.der_data())
        .map_err(|_| XmlError::Invalid("a certificate in the metadata cannot be read".into()))?;
    Ok(parsed
        .tbs_certificate
        .subject_pki
        .subject_public_key
        .data
        .to_vec())
}

impl RedirectSignature {
    /// Verifies with any of the signing certificates from the sender's registered metadata.
    pub fn verify(&self, certs: &[CertificateDer]) -> Result<(), XmlError> {
        if certs.is_empty() {
            return Err(XmlError::NoSigningKey);
        }
        let alg = algorithm(&self.sig_alg)?;
        for cert in certs {
            let key = public_key_of(cert)?;
            if signature::UnparsedPublicKey::new(alg, &key)
                .verify(&self.signed_octets, &self.signature)
                .is_ok()
            {
                return Ok(());
            }
        }
        Err(XmlError::BadSignature)
    }
}

/// The URL that sends `xml` to `endpoint` with the HTTP-Redirect binding: DEFLATE + base64 in
/// `field` (`SAMLRequest` or `SAMLResponse`), then RelayState and SigAlg, signed over exactly
/// those encoded bytes (SAML Bindings §3.4.4.1).
pub fn encode(
    endpoint: &str,
    field: &str,
    xml: &str,
    relay_state: Option<&str>,
    signer: &super::dsig::XmlSigner,
) -> Result<String, XmlError> {
    use base64::Engine as _;
    use std::io::Write as _;
    let failed = |_| XmlError::Invalid("cannot compress the message".into());
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes()).map_err(failed)?;
    let deflated = base64::engine::general_purpose::STANDARD.encode(enc.finish().map_err(failed)?);
    let e = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut query = format!("{field}={}", e(&deflated));
    if let Some(r) = relay_state {
        query.push_str(&format!("&RelayState={}", e(r)));
    }
    query.push_str(&format!("&SigAlg={}", e(signer.alg().xml_signature_uri())));
    let signature = signer.sign_bytes(query.as_bytes())?;
    query.push_str(&format!(
        "&Signature={}",
        e(&base64::engine::general_purpose::STANDARD.encode(signature))
    ));
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    Ok(format!("{endpoint}{sep}{query}"))
}
