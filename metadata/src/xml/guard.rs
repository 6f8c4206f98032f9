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
