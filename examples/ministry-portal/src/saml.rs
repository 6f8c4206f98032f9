//! The SAML pieces the portal needs around samael: its signed metadata, the HTTP-Redirect
//! binding (signing what we send, verifying what the hub sends over the raw query bytes), and
//! the logout messages.

use std::io::{Read, Write};

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::sign::{Signer, Verifier};
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, CryptoProvider, XmlSec};

use crate::keys::SpKey;

pub const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const NAMEID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// Largest SAML message we read (decoded XML).
pub const MAX_XML: usize = 256 * 1024;

/// XML-DSig algorithms accepted from the hub: SHA-256 or stronger.
pub const ALLOWED: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// Escapes text and attribute values for XML (and HTML).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-11-27T20:16:22Z`.
pub fn instant(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub fn new_id() -> String {
    format!("_mp{}", uuid::Uuid::new_v4().simple())
}

/// Refuses what must never reach the XML libraries: DOCTYPE and ENTITY declarations, and
/// documents over [`MAX_XML`].
pub fn guard_xml(xml: &str) -> Result<()> {
    if xml.len() > MAX_XML {
        bail!("the message is larger than {} KiB", MAX_XML / 1024);
    }
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        bail!("DOCTYPE and ENTITY declarations are not allowed");
    }
    Ok(())
}

/// Runs an XML-library call so that a panic inside it becomes an error, not a crash.
pub fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(anyhow!("the XML library failed on this input")))
}

/// The portal's SP metadata, signed with its own key (enveloped, exclusive c14n, RSA-SHA256,
/// SHA-256 digest).
pub fn sp_metadata(
    entity_id: &str,
    acs_url: &str,
    slo_url: &str,
    key: &SpKey,
    now: time::OffsetDateTime,
) -> Result<String> {
    let id = new_id();
    let cert = STANDARD.encode(&key.cert_der);
    let valid_until = instant(now + time::Duration::days(7));
    let signature = format!(
        concat!(
            r#"<ds:Signature><ds:SignedInfo>"#,
            r#"<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#,
            r#"<ds:SignatureMethod Algorithm="{alg}"/><ds:Reference URI="{uri}"><ds:Transforms>"#,
            r#"<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>"#,
            r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>"#,
            r#"<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue>"#,
            r#"</ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue>"#,
            r#"<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"#
        ),
        alg = RSA_SHA256,
        uri = format_args!("#{id}"),
        cert = cert,
    );
    let xml = format!(
        concat!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" "#,
            r#"ID="{id}" entityID="{entity}" validUntil="{valid_until}" cacheDuration="PT3600S">{signature}"#,
            r#"<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" AuthnRequestsSigned="true" WantAssertionsSigned="true">"#,
            r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
            r#"<md:SingleLogoutService Binding="{redirect}" Location="{slo}"/>"#,
            r#"<md:NameIDFormat>{persistent}</md:NameIDFormat>"#,
            r#"<md:AssertionConsumerService Binding="{post}" Location="{acs}" index="0" isDefault="true"/>"#,
            r#"</md:SPSSODescriptor></md:EntityDescriptor>"#
        ),
        id = id,
        entity = escape(entity_id),
        valid_until = valid_until,
        signature = signature,
        cert = cert,
        redirect = BINDING_REDIRECT,
        slo = escape(slo_url),
        persistent = NAMEID_PERSISTENT,
        post = BINDING_POST,
        acs = escape(acs_url),
    );
    guarded(|| {
        XmlSec::sign_xml(&xml, &key.key_der).map_err(|e| anyhow!("signing the metadata: {e}"))
    })
}

/// A Redirect-binding URL to `endpoint` carrying `xml` as `param`, signed (RSA-SHA256) over
/// `param=…&RelayState=…&SigAlg=…` exactly as sent.
pub fn signed_redirect(
    endpoint: &str,
    param: &str,
    xml: &str,
    relay_state: Option<&str>,
    key: &SpKey,
) -> Result<String> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes())?;
    let deflated = enc.finish()?;
    let e = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut octets = format!("{param}={}", e(&STANDARD.encode(deflated)));
    if let Some(r) = relay_state {
        octets.push_str(&format!("&RelayState={}", e(r)));
    }
    octets.push_str(&format!("&SigAlg={}", e(RSA_SHA256)));
    let mut signer = Signer::new(MessageDigest::sha256(), &key.key)?;
    signer.update(octets.as_bytes())?;
    let signature = signer.sign_to_vec()?;
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{endpoint}{sep}{octets}&Signature={}",
        e(&STANDARD.encode(signature))
    ))
}

/// A Redirect-binding message from the hub, its signature verified.
#[derive(Debug, Clone)]
pub struct RedirectMessage {
    pub xml: String,
    pub relay_state: Option<String>,
}

fn decode_component(raw: &str) -> String {
    url::form_urlencoded::parse(format!("v={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Reads `param` from the raw query and verifies its signature with one of `certs`: the
/// signed octets are the raw (still encoded) parameters in the order the binding fixes.
pub fn verify_redirect(
    raw_query: &str,
    param: &str,
    certs: &[CertificateDer],
) -> Result<RedirectMessage> {
    if raw_query.len() > MAX_XML * 2 {
        bail!("the query is too long");
    }
    let mut found: Vec<(&str, &str)> = Vec::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if found.iter().any(|(seen, _)| *seen == k) {
            bail!("the parameter {k} is repeated");
        }
        found.push((k, v));
    }
    let raw = |k: &str| found.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let message = raw(param).ok_or_else(|| anyhow!("no {param} in the query"))?;
    let relay = raw("RelayState");
    let (Some(sig_alg), Some(signature)) = (raw("SigAlg"), raw("Signature")) else {
        bail!("the message is not signed (no SigAlg and Signature)");
    };
    let mut octets = format!("{param}={message}");
    if let Some(r) = relay {
        octets.push_str(&format!("&RelayState={r}"));
    }
    octets.push_str(&format!("&SigAlg={sig_alg}"));
    let digest = match decode_component(sig_alg).as_str() {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
        | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => MessageDigest::sha256(),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
        | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => MessageDigest::sha384(),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
        | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512" => MessageDigest::sha512(),
        other => bail!("signature algorithm not allowed: {other}"),
    };
    let signature = STANDARD
        .decode(decode_component(signature))
        .context("the Signature is not base64")?;
    let verified = certs.iter().any(|cert| {
        let check = || -> Result<bool> {
            let key = openssl::x509::X509::from_der(cert.der_data())?.public_key()?;
            let mut v = Verifier::new(digest, &key)?;
            v.update(octets.as_bytes())?;
            Ok(v.verify(&signature)?)
        };
        check().unwrap_or(false)
    });
    if !verified {
        bail!("the signature does not verify with the hub's keys");
    }
    let deflated = STANDARD
        .decode(decode_component(message))
        .with_context(|| format!("{param} is not base64"))?;
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .take(MAX_XML as u64 + 1)
        .read_to_string(&mut xml)
        .with_context(|| format!("{param} is not DEFLATE-compressed UTF-8 XML"))?;
    guard_xml(&xml)?;
    Ok(RedirectMessage {
        xml,
        relay_state: relay.map(decode_component),
    })
}

/// How the hub named the person, to name them again in a LogoutRequest.
#[derive(Debug, Clone)]
pub struct NameId {
    pub value: String,
    pub format: Option<String>,
}

/// A LogoutRequest from the portal (the Redirect binding signs it in the query).
pub fn logout_request(
    id: &str,
    issuer: &str,
    destination: &str,
    hub_entity_id: &str,
    name_id: &NameId,
    session_index: Option<&str>,
    now: time::OffsetDateTime,
) -> String {
    let format = name_id
        .format
        .as_deref()
        .map(|f| format!(r#" Format="{}""#, escape(f)))
        .unwrap_or_default();
    let index = session_index
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", escape(s)))
        .unwrap_or_default();
    format!(
        concat!(
            r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" "#,
            r#"ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{dest}">"#,
            r#"<saml:Issuer>{issuer}</saml:Issuer>"#,
            r#"<saml:NameID{format} NameQualifier="{hub}" SPNameQualifier="{issuer_attr}">{value}</saml:NameID>{index}"#,
            r#"</samlp:LogoutRequest>"#
        ),
        id = escape(id),
        now = instant(now),
        dest = escape(destination),
        issuer = escape(issuer),
        issuer_attr = escape(issuer),
        format = format,
        hub = escape(hub_entity_id),
        value = escape(&name_id.value),
        index = index,
    )
}

/// The portal's LogoutResponse to the hub's LogoutRequest.
pub fn logout_response(
    issuer: &str,
    destination: &str,
    in_response_to: &str,
    status: &str,
    now: time::OffsetDateTime,
) -> String {
    format!(
        concat!(
            r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" "#,
            r#"ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{dest}" InResponseTo="{irt}">"#,
            r#"<saml:Issuer>{issuer}</saml:Issuer>"#,
            r#"<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status>"#,
            r#"</samlp:LogoutResponse>"#
        ),
        id = new_id(),
        now = instant(now),
        dest = escape(destination),
        irt = escape(in_response_to),
        issuer = escape(issuer),
        status = escape(status),
    )
}

/// Every `StatusCode Value` in a (verified) message, top level first; samael keeps only the
/// top-level one.
pub fn status_codes(xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("StatusCode") {
        rest = &rest[i + "StatusCode".len()..];
        let Some(end) = rest.find('>') else { break };
        let tag = &rest[..end];
        if let Some(v) = tag
            .split("Value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
        {
            out.push(v.to_string());
        }
    }
    out
}

/// The text of the first `StatusMessage`, if any.
pub fn status_message(xml: &str) -> Option<String> {
    let start = xml.find("StatusMessage")?;
    let after = &xml[start..];
    let open_end = after.find('>')?;
    if after[..open_end].ends_with('/') {
        return None;
    }
    let body = &after[open_end + 1..];
    let close = body.find("</")?;
    Some(unescape(body[..close].trim()))
}

/// Undoes XML escaping in text.
pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The short name of a status URI (`urn:…:status:RequestDenied` → `RequestDenied`).
pub fn short_status(uri: &str) -> &str {
    uri.rsplit(':').next().unwrap_or(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_and_message_are_read() {
        let xml = r#"<samlp:Response><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:RequestDenied"/></samlp:StatusCode><samlp:StatusMessage>not allowed &amp; so</samlp:StatusMessage></samlp:Status></samlp:Response>"#;
        let codes = status_codes(xml);
        assert_eq!(codes.len(), 2);
        assert_eq!(short_status(&codes[1]), "RequestDenied");
        assert_eq!(status_message(xml).as_deref(), Some("not allowed & so"));
    }

    #[test]
    fn redirect_round_trip_verifies_and_tampering_fails() {
        let key = SpKey::ephemeral("test").unwrap();
        let url = signed_redirect(
            "http://127.0.0.1:1/saml/slo",
            "SAMLRequest",
            "<x/>",
            Some("/a b"),
            &key,
        )
        .unwrap();
        let query = url.split_once('?').unwrap().1;
        let certs = [CertificateDer::from(key.cert_der.clone())];
        let m = verify_redirect(query, "SAMLRequest", &certs).unwrap();
        assert_eq!(m.xml, "<x/>");
        assert_eq!(m.relay_state.as_deref(), Some("/a b"));
        let tampered = query.replace("RelayState=%2Fa", "RelayState=%2Fb");
        assert!(verify_redirect(&tampered, "SAMLRequest", &certs).is_err());
        let unsigned = query.split("&SigAlg").next().unwrap();
        assert!(verify_redirect(unsigned, "SAMLRequest", &certs).is_err());
    }

    #[test]
    fn doctype_is_refused() {
        assert!(guard_xml("<!DOCTYPE x><x/>").is_err());
    }
}
