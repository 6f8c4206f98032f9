//! Enveloped XML signatures for what the hub issues (metadata, Responses, Assertions).

use samael::crypto::{CryptoProvider, XmlSec};

use super::guard::guarded;
use super::XmlError;
use crate::keys::KeyAlg;

/// A `ds:Signature` template over the element with `ID="{id}"`; insert it where the schema
/// wants it (after `Issuer` in SAML messages, first in metadata), then call [`sign`].
pub fn template(id: &str, alg: KeyAlg, cert_der: &[u8]) -> String {
    use base64::Engine as _;
    let cert = base64::engine::general_purpose::STANDARD.encode(cert_der);
    format!(
        concat!(
            r#"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>"#,
            r#"<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#,
            r##"<ds:SignatureMethod Algorithm="{sig}"/><ds:Reference URI="#{id}"><ds:Transforms>"##,
            r#"<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>"#,
            r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>"#,
            r#"<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue>"#,
            r#"</ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue>"#,
            r#"<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"#
        ),
        sig = alg.xml_signature_uri(),
        id = id,
        cert = cert
    )
}

/// Fills in the signature template(s) of `xml` with `private_der`. Returns the document
/// without an XML declaration so it can be embedded in another.
pub fn sign(xml: &str, private_der: &[u8]) -> Result<String, XmlError> {
    let signed = guarded(|| {
        XmlSec::sign_xml(xml, private_der)
            .map_err(|e| XmlError::Invalid(format!("signing failed: {e}")))
    })?;
    Ok(strip_declaration(&signed).to_string())
}

/// `<?xml …?>` removed, for embedding.
pub fn strip_declaration(xml: &str) -> &str {
    let t = xml.trim_start();
    match t.strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map(|(_, r)| r.trim_start())
            .unwrap_or(t),
        None => t,
    }
}

/// Escapes text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
