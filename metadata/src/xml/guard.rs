//! Checks every byte string passes before an XML parser sees it.

use std::io::Read;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::XmlError;

/// Size limits. Defaults fit real AuthnRequests and SP metadata with room to spare.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest XML document (after base64 decoding and inflating).
    pub max_xml_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_xml_bytes: 128 * 1024,
        }
    }
}

/// The document as text, if it is within limits, UTF-8, and declares no DOCTYPE or ENTITY
/// (XXE and billion-laughs live there; SAML never needs them).
pub fn check_xml(xml: &[u8], limits: Limits) -> Result<&str, XmlError> {
    if xml.len() > limits.max_xml_bytes {
        return Err(XmlError::TooLarge {
            limit: limits.max_xml_bytes,
        });
    }
    let text = std::str::from_utf8(xml).map_err(|_| XmlError::Decode("not UTF-8".into()))?;
    let has = |needle: &[u8]| {
        xml.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    if has(b"<!DOCTYPE") || has(b"<!ENTITY") {
        return Err(XmlError::Doctype);
    }
    Ok(text)
}

/// Base64 (whitespace tolerated, as some SPs wrap lines), capped before decoding.
pub fn base64_decode(text: &str, limits: Limits) -> Result<Vec<u8>, XmlError> {
    // 4 base64 characters carry 3 bytes: refuse early what cannot fit.
    if text.len() > limits.max_xml_bytes.saturating_mul(4) / 3 + 1024 {
        return Err(XmlError::TooLarge {
            limit: limits.max_xml_bytes,
        });
    }
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| XmlError::Decode("invalid base64".into()))
}

/// Raw DEFLATE (the Redirect binding), stopping at the size limit so a small bomb cannot
/// expand into memory.
pub fn inflate(compressed: &[u8], limits: Limits) -> Result<Vec<u8>, XmlError> {
    let cap = limits.max_xml_bytes;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(compressed)
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| XmlError::Decode("invalid DEFLATE data".into()))?;
    if out.len() > cap {
        return Err(XmlError::TooLarge { limit: cap });
    }
    Ok(out)
}

/// Algorithm URIs that may appear in a signed document: canonicalization, the
/// enveloped-signature transform, RSA/ECDSA/digest methods (whose strength `ALLOWED` checks
/// afterwards), and the XML Encryption methods of an EncryptedAssertion or of metadata's
/// `EncryptionMethod` (never run as part of a signature check; the decryption layer has its
/// own, stricter, list). Anything else (XPath, XPath Filter 2.0, XPointer, XSLT, base64, ...)
/// is refused: SAML's signature profile (SAML Core §5.4.4) needs none.
const PROCESSABLE_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    "http://www.w3.org/2006/12/xml-c14n11",
    "http://www.w3.org/2006/12/xml-c14n11#WithComments",
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha224",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha224",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    "http://www.w3.org/2000/09/xmldsig#sha1",
    "http://www.w3.org/2001/04/xmldsig-more#sha224",
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2009/xmlenc11#aes192-gcm",
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2001/04/xmlenc#tripledes-cbc",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    "http://www.w3.org/2001/04/xmlenc#rsa-1_5",
    "http://www.w3.org/2009/xmlenc11#mgf1sha1",
    "http://www.w3.org/2009/xmlenc11#mgf1sha224",
    "http://www.w3.org/2009/xmlenc11#mgf1sha256",
    "http://www.w3.org/2009/xmlenc11#mgf1sha384",
    "http://www.w3.org/2009/xmlenc11#mgf1sha512",
];

/// Checks the value of every attribute whose local name is `name`, as the XML parser will see
/// it, with `ok`; stops at the first refused one (so a crafted document costs linear time).
/// Fail-closed: every place in the raw text where `name` stands like an attribute name is
/// checked, including ones inside comments or text; anything not cleanly decodable is refused.
fn check_attributes(
    xml: &str,
    name: &str,
    ok: impl Fn(&str) -> bool,
    refused: impl Fn() -> XmlError,
) -> Result<(), XmlError> {
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let bytes = xml.as_bytes();
    for (at, _) in xml.match_indices(name) {
        // Attribute names follow whitespace, or a prefix's ':'.
        if at == 0 || !(is_space(bytes[at - 1]) || bytes[at - 1] == b':') {
            continue;
        }
        let mut i = at + name.len();
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        let quote = match bytes.get(i) {
            Some(q @ (b'"' | b'\'')) => *q,
            _ => return Err(refused()),
        };
        let start = i + 1;
        let len = bytes[start..]
            .iter()
            .position(|&b| b == quote)
            .ok_or_else(&refused)?;
        match decode_attribute(&xml[start..start + len]) {
            Some(value) if ok(&value) => {}
            _ => return Err(refused()),
        }
    }
    Ok(())
}

/// An attribute value with entity and character references resolved and whitespace
/// normalised (no DTD can declare other entities: `check_xml` refuses DOCTYPE).
fn decode_attribute(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..].find(';')? + amp;
        let c = match &rest[amp + 1..semi] {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            r => {
                let n = match r.strip_prefix("#x") {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => r.strip_prefix('#')?.parse().ok()?,
                };
                char::from_u32(n)?
            }
        };
        out.push(c);
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    Some(out.replace(['\t', '\r', '\n'], " "))
}

/// Refuses a signed document that would make libxmlsec do more than hash parts of the
/// document itself before the signature is checked: libxmlsec dereferences every
/// `Reference URI` (fetching `http://` and `file://` URIs, evaluating `#xpointer(...)` XPath)
/// and runs every listed transform before it knows whether the signature is genuine. Only
/// same-document references (`URI=""` or `URI="#id"`) and the algorithms above pass.
pub fn check_signature_profile(xml: &str) -> Result<(), XmlError> {
    let same_document = |uri: &str| {
        uri.is_empty()
            || uri.strip_prefix('#').is_some_and(|id| {
                id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            })
    };
    check_attributes(xml, "URI", same_document, || {
        XmlError::Invalid("signature references must point into the message (URI=\"#ID\")".into())
    })?;
    check_attributes(
        xml,
        "Algorithm",
        |a| PROCESSABLE_ALGORITHMS.contains(&a),
        || XmlError::Algorithm("a transform or method outside the SAML signature profile".into()),
    )?;
    Ok(())
}

/// Parses a SAML type with samael, contained: a parse error or a panic becomes an error.
pub fn parse_guarded<T>(xml: &str) -> Result<T, XmlError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    guarded(|| xml.parse::<T>().map_err(|e| XmlError::Parse(e.to_string())))
}

/// Runs library code that may panic on hostile input; a panic becomes an error.
pub fn guarded<T>(f: impl FnOnce() -> Result<T, XmlError>) -> Result<T, XmlError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(Err(XmlError::Panicked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn small() -> Limits {
        Limits {
            max_xml_bytes: 1024,
        }
    }

    #[test]
    fn refuses_doctype_and_entities_in_any_case() {
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
        assert_eq!(check_xml(xxe, small()), Err(XmlError::Doctype));
        assert_eq!(
            check_xml(b"<!doctype r><r/>", small()),
            Err(XmlError::Doctype)
        );
        assert_eq!(check_xml(b"<r/>", small()), Ok("<r/>"));
    }

    #[test]
    fn caps_size_before_and_after_inflating() {
        assert_eq!(
            check_xml(&[b' '; 1025], small()),
            Err(XmlError::TooLarge { limit: 1024 })
        );
        // 1 MiB of spaces deflates to about a kilobyte: a bomb for a careless decoder.
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b' '; 1 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 4096);
        assert_eq!(
            inflate(&bomb, small()),
            Err(XmlError::TooLarge { limit: 1024 })
        );
        assert_eq!(
            inflate(b"not deflate at all", small()),
            Err(XmlError::Decode("invalid DEFLATE data".into()))
        );
        let too_long = "A".repeat(4096);
        assert_eq!(
            base64_decode(&too_long, small()),
            Err(XmlError::TooLarge { limit: 1024 })
        );
    }

    #[test]
    fn panics_become_errors() {
        #[allow(clippy::panic)]
        let r: Result<(), XmlError> = guarded(|| panic!("library bug"));
        assert_eq!(r, Err(XmlError::Panicked));
    }
}
