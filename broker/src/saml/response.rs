//! Building and signing SAML Responses. Plain data in, signed XML out: no I/O, time passed in.

use fedhub_metadata::xml::dsig::{c14n_attr, c14n_text, XmlSigner};

use super::attributes::{saml_names, NAME_FORMAT_URI};
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::rp::saml::SignWhat;

pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const STATUS_REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
pub const STATUS_RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
pub const STATUS_AUTHN_FAILED: &str = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed";
pub const STATUS_REQUEST_DENIED: &str = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied";
pub const STATUS_NO_PASSIVE: &str = "urn:oasis:names:tc:SAML:2.0:status:NoPassive";

const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";

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

// Everything below is written in exclusive canonical form (see `dsig`): attributes in
// sorted order, namespaces declared on the element that first uses them, `<a></a>`.

fn attribute_statement(attributes: &[(String, Vec<String>)]) -> Result<String> {
    if attributes.iter().all(|(_, v)| v.is_empty()) {
        return Ok(String::new());
    }
    let mut out = String::from("<saml:AttributeStatement>");
    for (name, values) in attributes.iter().filter(|(_, v)| !v.is_empty()) {
        let (uri, friendly) = saml_names(name)
            .ok_or_else(|| Error::internal(format!("no SAML name for attribute {name}")))?;
        out.push_str(&format!(r#"<saml:Attribute FriendlyName="{friendly}" Name="{uri}" NameFormat="{NAME_FORMAT_URI}">"#));
        for v in values {
            out.push_str("<saml:AttributeValue>");
            out.push_str(&c14n_text(v));
            out.push_str("</saml:AttributeValue>");
        }
        out.push_str("</saml:Attribute>");
    }
    out.push_str("</saml:AttributeStatement>");
    Ok(out)
}

/// The Assertion element, signed when `signed` is true.
pub fn assertion(d: &AssertionData, signer: &XmlSigner, signed: bool) -> Result<String> {
    let id = new_id();
    let not_on_or_after = rfc3339(d.now + d.ttl);
    let in_response_to = d
        .in_response_to
        .as_deref()
        .map(|r| format!(r#" InResponseTo="{}""#, c14n_attr(r)))
        .unwrap_or_default();
    let issuer = format!("<saml:Issuer>{}</saml:Issuer>", c14n_text(&d.issuer));
    let head = format!(
        r#"<saml:Assertion xmlns:saml="{SAML}" ID="{id}" IssueInstant="{}" Version="2.0">{issuer}"#,
        rfc3339(d.now)
    );
    let xml = format!(
        concat!(
            "{head}",
            r#"<saml:Subject><saml:NameID Format="{nif}" NameQualifier="{issuer_attr}" SPNameQualifier="{audience_attr}">{name_id}</saml:NameID>"#,
            r#"<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">"#,
            r#"<saml:SubjectConfirmationData{irt} NotOnOrAfter="{noa}" Recipient="{acs}"></saml:SubjectConfirmationData></saml:SubjectConfirmation></saml:Subject>"#,
            r#"<saml:Conditions NotBefore="{nb}" NotOnOrAfter="{noa}"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>"#,
            r#"<saml:AuthnStatement AuthnInstant="{authn_instant}" SessionIndex="{session_index}"><saml:AuthnContext><saml:AuthnContextClassRef>{class}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"#,
            "{attributes}</saml:Assertion>"
        ),
        head = head,
        nif = c14n_attr(&d.name_id_format),
        issuer_attr = c14n_attr(&d.issuer),
        audience_attr = c14n_attr(&d.audience),
        name_id = c14n_text(&d.name_id),
        irt = in_response_to,
        noa = not_on_or_after,
        acs = c14n_attr(&d.acs_url),
        nb = rfc3339(d.now - 60),
        audience = c14n_text(&d.audience),
        authn_instant = rfc3339(d.authn_instant),
        session_index = c14n_attr(&d.session_index),
        class = c14n_text(&d.authn_context_class),
        attributes = attribute_statement(&d.attributes)?,
    );
    if signed {
        signer
            .sign_enveloped(&xml, &id, head.len())
            .map_err(Error::internal)
    } else {
        Ok(xml)
    }
}

fn status_xml(top: &str, second: Option<&str>, message: Option<&str>) -> String {
    let inner = second
        .map(|s| {
            format!(
                r#"<samlp:StatusCode Value="{}"></samlp:StatusCode>"#,
                c14n_attr(s)
            )
        })
        .unwrap_or_default();
    let msg = message
        .map(|m| {
            format!(
                "<samlp:StatusMessage>{}</samlp:StatusMessage>",
                c14n_text(m)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<samlp:Status><samlp:StatusCode Value="{}">{inner}</samlp:StatusCode>{msg}</samlp:Status>"#,
        c14n_attr(top)
    )
}

fn response_envelope(
    issuer: &str,
    destination: &str,
    in_response_to: Option<&str>,
    now: i64,
    status: &str,
    body: &str,
    signer: Option<&XmlSigner>,
) -> Result<String> {
    let id = new_id();
    let irt = in_response_to
        .map(|r| format!(r#" InResponseTo="{}""#, c14n_attr(r)))
        .unwrap_or_default();
    let head = format!(
        r#"<samlp:Response xmlns:samlp="{SAMLP}" Destination="{dest}" ID="{id}"{irt} IssueInstant="{now}" Version="2.0"><saml:Issuer xmlns:saml="{SAML}">{issuer}</saml:Issuer>"#,
        dest = c14n_attr(destination),
        now = rfc3339(now),
        issuer = c14n_text(issuer),
    );
    let xml = format!("{head}{status}{body}</samlp:Response>");
    match signer {
        Some(s) => s
            .sign_enveloped(&xml, &id, head.len())
            .map_err(Error::internal),
        None => Ok(xml),
    }
}

/// A successful Response carrying one assertion, signed as the SP asked.
///
/// The assertion is encrypted for `encrypt_for` (the SP's encryption certificate) when given.
pub fn success(
    d: &AssertionData,
    sign_what: SignWhat,
    signer: &XmlSigner,
    encrypt_for: Option<&[u8]>,
) -> Result<String> {
    let mut assertion = assertion(
        d,
        signer,
        matches!(sign_what, SignWhat::Assertion | SignWhat::Both),
    )?;
    if let Some(cert) = encrypt_for {
        assertion = fedhub_metadata::xml::encrypt::encrypt_assertion(&assertion, cert)
            .map_err(Error::internal)?;
    }
    let status = status_xml(STATUS_SUCCESS, None, None);
    let response_signer =
        matches!(sign_what, SignWhat::Response | SignWhat::Both).then_some(signer);
    response_envelope(
        &d.issuer,
        &d.acs_url,
        d.in_response_to.as_deref(),
        d.now,
        &status,
        &assertion,
        response_signer,
    )
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
    signer: &XmlSigner,
) -> Result<String> {
    let status = status_xml(top, second, message);
    response_envelope(
        issuer,
        acs_url,
        in_response_to,
        now,
        &status,
        "",
        Some(signer),
    )
}
