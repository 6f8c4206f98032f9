//! Decoding an AuthnRequest from either binding into something the IdP front may trust.

use samael::crypto::{CryptoProvider, ReduceMode, XmlSec};
use samael::schema::AuthnRequest;

use super::guard::{
    base64_decode, check_signature_profile, check_xml, guarded, parse_guarded, Limits,
};
use super::sp::SpMetadata;
use super::{redirect, Peer, XmlError, ALLOWED};

/// How the request arrived.
#[derive(Debug, Clone)]
pub enum Binding<'a> {
    /// HTTP-Redirect: the raw query string exactly as received (not re-encoded).
    Redirect { raw_query: &'a str },
    /// HTTP-POST: the `SAMLRequest` and `RelayState` form fields.
    Post {
        saml_request: &'a str,
        relay_state: Option<&'a str>,
    },
}

#[derive(Debug, Clone)]
pub struct VerifiedAuthnRequest {
    pub request: AuthnRequest,
    pub relay_state: Option<String>,
    /// Whether a signature was present and verified with the SP's registered key.
    pub signed: bool,
    /// `Scoping/IDPList/IDPEntry/@ProviderID`: the identity providers the SP asks the hub to
    /// use upstream (read from the same, verified, XML as the request).
    pub idp_list: Vec<String>,
}

/// The ProviderIDs of `Scoping/IDPList/IDPEntry` (at most 20); none when the XML has none.
fn scoping_provider_ids(xml: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == b"IDPEntry" => {
                for a in e.attributes().flatten() {
                    if a.key.local_name().as_ref() == b"ProviderID" {
                        if let Ok(v) = a.normalized_value(quick_xml::XmlVersion::Implicit1_0) {
                            out.push(v.trim().to_string());
                        }
                    }
                }
                if out.len() >= 20 {
                    break;
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
}

/// Maximum RelayState length (SAML Bindings §3.4.3: 80 bytes).
pub const MAX_RELAY_STATE: usize = 80;

/// The XML a binding carries as `param`, decoded and guarded but NOT verified: only for
/// reading the Issuer, to know whose keys to verify the message with.
pub fn unverified_xml(
    binding: &Binding<'_>,
    param: &str,
    limits: Limits,
) -> Result<String, XmlError> {
    Ok(match binding {
        Binding::Redirect { raw_query } => redirect::parse(raw_query, param, limits)?.xml,
        Binding::Post { saml_request, .. } => {
            check_xml(&base64_decode(saml_request, limits)?, limits)?.to_string()
        }
    })
}

/// A non-empty, trimmed Issuer value.
pub fn issuer_value(issuer: Option<samael::schema::Issuer>) -> Result<String, XmlError> {
    issuer
        .and_then(|i| i.value)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| XmlError::Invalid("the message has no Issuer".into()))
}

/// Reads the Issuer of an AuthnRequest without trusting anything else in it, to look up
/// which SP's metadata to verify it with.
pub fn peek_issuer(binding: &Binding<'_>, limits: Limits) -> Result<String, XmlError> {
    let xml = unverified_xml(binding, "SAMLRequest", limits)?;
    issuer_value(parse_request(&xml)?.issuer)
}

fn parse_request(xml: &str) -> Result<AuthnRequest, XmlError> {
    parse_guarded(xml)
}

/// Decodes and verifies an AuthnRequest from `sp`.
///
/// - Redirect: the query signature is checked over the raw bytes; a signature inside the
///   XML is ignored (the binding forbids it and it proves nothing here).
/// - POST: when the request carries an XML signature, or the SP's metadata says its requests
///   are signed, the document is verified with the SP's keys and reduced to the signed
///   element before parsing; what an unsigned wrapper says is never read.
/// - Either way an SP whose metadata says `AuthnRequestsSigned="true"` must sign.
pub fn decode_authn_request(
    binding: Binding<'_>,
    sp: &SpMetadata,
    limits: Limits,
) -> Result<VerifiedAuthnRequest, XmlError> {
    let (request, relay_state, signed, idp_list) = match binding {
        Binding::Redirect { raw_query } => {
            let msg = redirect::parse(raw_query, "SAMLRequest", limits)?;
            let signed = match &msg.signature {
                Some(sig) => {
                    sig.verify(&sp.signing_certs)?;
                    true
                }
                None if sp.authn_requests_signed => return Err(XmlError::MissingSignature),
                None => false,
            };
            let ids = scoping_provider_ids(&msg.xml);
            (parse_request(&msg.xml)?, msg.relay_state, signed, ids)
        }
        Binding::Post {
            saml_request,
            relay_state,
        } => {
            let bytes = base64_decode(saml_request, limits)?;
            let xml = check_xml(&bytes, limits)?;
            let carries_signature = xml.contains("SignatureValue");
            if carries_signature || sp.authn_requests_signed {
                if !carries_signature {
                    return Err(XmlError::MissingSignature);
                }
                let reduced = verify_and_reduce(xml, sp)?;
                let ids = scoping_provider_ids(&reduced);
                (
                    parse_request(&reduced)?,
                    relay_state.map(String::from),
                    true,
                    ids,
                )
            } else {
                let ids = scoping_provider_ids(xml);
                (
                    parse_request(xml)?,
                    relay_state.map(String::from),
                    false,
                    ids,
                )
            }
        }
    };
    if relay_state
        .as_ref()
        .is_some_and(|r| r.len() > MAX_RELAY_STATE)
    {
        return Err(XmlError::Invalid(format!(
            "RelayState longer than {MAX_RELAY_STATE} bytes"
        )));
    }
    let issuer = request
        .issuer
        .as_ref()
        .and_then(|i| i.value.as_deref())
        .map(str::trim);
    if issuer != Some(sp.entity_id.as_str()) {
        return Err(XmlError::Invalid(
            "the AuthnRequest Issuer is not this service provider".into(),
        ));
    }
    Ok(VerifiedAuthnRequest {
        request,
        relay_state,
        signed,
        idp_list,
    })
}

/// Verifies every signature with the peer's registered keys and the allowed algorithms, and
/// returns the document reduced to what the signatures cover.
pub fn verify_and_reduce<P: Peer + ?Sized>(xml: &str, peer: &P) -> Result<String, XmlError> {
    if peer.signing_certs().is_empty() {
        return Err(XmlError::NoSigningKey);
    }
    // Before libxmlsec sees it: it would fetch URLs, read files and run XPath the message names.
    check_signature_profile(xml)?;
    guarded(|| {
        XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
            xml,
            peer.signing_certs(),
            ReduceMode::ValidateAndMarkNoAncestors,
            Some(ALLOWED),
        )
        .map_err(|e| match e.to_string() {
            m if m.to_ascii_lowercase().contains("algorithm") => XmlError::Algorithm(m),
            _ => XmlError::BadSignature,
        })
    })
}
