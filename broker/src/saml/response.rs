//! Building and signing SAML Responses. Plain data in, signed XML out: no I/O, time passed in.

use fedhub_metadata::xml::sign::{escape, sign, template};

use super::attributes::{saml_names, NAME_FORMAT_URI};
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::keys::Signer;
use crate::rp::saml::SignWhat;

pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const STATUS_REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
pub const STATUS_RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
pub const STATUS_AUTHN_FAILED: &str = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed";
pub const STATUS_REQUEST_DENIED: &str = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied";
pub const STATUS_NO_PASSIVE: &str = "urn:oasis:names:tc:SAML:2.0:status:NoPassive";

const NS: &str = r#"xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion""#;

/// Everything an assertion says, already decided by the login flow.
#[derive(Debug, Clone)]
pub struct AssertionData {
    pub issuer: String,
    pub audience: String,
    pub acs_url: String,
    pub in_response_to: Option<String>,
    pub name_id: String,
    pub name_id_format: String,
    pub session_index: String,
    pub authn_instant: i64,
    pub authn_context_class: String,
    /// Internal attribute names (see `attributes`) with their values.
    pub attributes: Vec<(String, Vec<String>)>,
    pub now: i64,
    /// Seconds the assertion may be used for.
    pub ttl: i64,
}

/// A fresh XML ID (must not start with a digit).
pub fn new_id() -> String {
    format!("_fh{}", uuid::Uuid::new_v4().simple())
}

fn attribute_statement(attributes: &[(String, Vec<String>)]) -> Result<String> {
    if attributes.iter().all(|(_, v)| v.is_empty()) {
        return Ok(String::new());
    }
    let mut out = String::from("<saml:AttributeStatement>");
    for (name, values) in attributes.iter().filter(|(_, v)| !v.is_empty()) {
        let (uri, friendly) = saml_names(name).ok_or_else(|| Error::internal(format!("no SAML name for attribute {name}")))?;
        out.push_str(&format!(r#"<saml:Attribute Name="{uri}" NameFormat="{NAME_FORMAT_URI}" FriendlyName="{friendly}">"#));
        for v in values {
            out.push_str(&format!("<saml:AttributeValue>{}</saml:AttributeValue>", escape(v)));
        }
        out.push_str("</saml:Attribute>");
    }
    out.push_str("</saml:AttributeStatement>");
    Ok(out)
}

/// The Assertion element, signed when `sign` is true.
pub fn assertion(d: &AssertionData, signer: &Signer, signed: bool) -> Result<String> {
    let id = new_id();
    let now = rfc3339(d.now);
    let not_on_or_after = rfc3339(d.now + d.ttl);
    let not_before = rfc3339(d.now - 60);
    let in_response_to = d.in_response_to.as_deref().map(|r| format!(r#" InResponseTo="{}""#, escape(r))).unwrap_or_default();
    let signature = if signed { template(&id, signer.alg, &signer.cert_der) } else { String::new() };
    let xml = format!(
        concat!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{now}">"#,
            "<saml:Issuer>{issuer}</saml:Issuer>{signature}",
            r#"<saml:Subject><saml:NameID Format="{nif}" NameQualifier="{issuer}" SPNameQualifier="{audience}">{name_id}</saml:NameID>"#,
            r#"<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">"#,
            r#"<saml:SubjectConfirmationData NotOnOrAfter="{noa}" Recipient="{acs}"{irt}/></saml:SubjectConfirmation></saml:Subject>"#,
            r#"<saml:Conditions NotBefore="{nb}" NotOnOrAfter="{noa}"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>"#,
            r#"<saml:AuthnStatement AuthnInstant="{authn_instant}" SessionIndex="{session_index}"><saml:AuthnContext><saml:AuthnContextClassRef>{class}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"#,
            "{attributes}</saml:Assertion>"
        ),
        id = id,
        now = now,
        issuer = escape(&d.issuer),
        signature = signature,
        nif = escape(&d.name_id_format),
        audience = escape(&d.audience),
        name_id = escape(&d.name_id),
        noa = not_on_or_after,
        acs = escape(&d.acs_url),
        irt = in_response_to,
        nb = not_before,
        authn_instant = rfc3339(d.authn_instant),
        session_index = escape(&d.session_index),
        class = escape(&d.authn_context_class),
        attributes = attribute_statement(&d.attributes)?,
    );
    if signed {
        sign(&xml, &signer.private_der).map_err(Error::internal)
    } else {
        Ok(xml)
    }
}

fn status_xml(top: &str, second: Option<&str>, message: Option<&str>) -> String {
    let inner = second.map(|s| format!(r#"<samlp:StatusCode Value="{s}"/>"#)).unwrap_or_default();
    let msg = message.map(|m| format!("<samlp:StatusMessage>{}</samlp:StatusMessage>", escape(m))).unwrap_or_default();
    format!(r#"<samlp:Status><samlp:StatusCode Value="{top}">{inner}</samlp:StatusCode>{msg}</samlp:Status>"#)
}

fn response_envelope(
    issuer: &str,
    destination: &str,
    in_response_to: Option<&str>,
    now: i64,
    status: &str,
    body: &str,
    signer: Option<&Signer>,
) -> Result<String> {
    let id = new_id();
    let irt = in_response_to.map(|r| format!(r#" InResponseTo="{}""#, escape(r))).unwrap_or_default();
    let signature = signer.map(|s| template(&id, s.alg, &s.cert_der)).unwrap_or_default();
    let xml = format!(
        r#"<samlp:Response {NS} ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{dest}"{irt}><saml:Issuer>{issuer}</saml:Issuer>{signature}{status}{body}</samlp:Response>"#,
        now = rfc3339(now),
        dest = escape(destination),
        issuer = escape(issuer),
    );
    match signer {
        Some(s) => sign(&xml, &s.private_der).map_err(Error::internal),
        None => Ok(xml),
    }
}

/// A successful Response carrying one assertion, signed as the SP asked.
pub fn success(d: &AssertionData, sign_what: SignWhat, signer: &Signer) -> Result<String> {
    let assertion = assertion(d, signer, matches!(sign_what, SignWhat::Assertion | SignWhat::Both))?;
    let status = status_xml(STATUS_SUCCESS, None, None);
    let response_signer = matches!(sign_what, SignWhat::Response | SignWhat::Both).then_some(signer);
    response_envelope(&d.issuer, &d.acs_url, d.in_response_to.as_deref(), d.now, &status, &assertion, response_signer)
}

/// An error Response (always signed: an SP must be able to trust a refusal too).
#[allow(clippy::too_many_arguments)]
pub fn failure(
    issuer: &str,
    acs_url: &str,
    in_response_to: Option<&str>,
    top: &str,
    second: Option<&str>,
    message: Option<&str>,
    now: i64,
    signer: &Signer,
) -> Result<String> {
    let status = status_xml(top, second, message);
    response_envelope(issuer, acs_url, in_response_to, now, &status, "", Some(signer))
}
