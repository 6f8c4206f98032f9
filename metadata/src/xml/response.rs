//! Responses from an upstream identity provider (the hub as a service provider), HTTP-POST
//! binding. What comes out has been verified with the IdP's registered keys and reduced to
//! what the signature covers; the protocol checks (InResponseTo, audience, times) are the
//! connector's, on this verified content.
//!
//! Accepted: a signed Response (its Assertion signed or not), or an unsigned Response holding
//! a signed Assertion; either may be encrypted for the hub. Refused: no signature over the
//! Assertion, more than one Assertion (a wrapping attack hides a second one), a signature by
//! any key not in the IdP's metadata, any of the guard's refusals.

use openssl::pkey::{PKey, Private};
use quick_xml::events::Event;
use samael::schema::{Assertion, Response};

use super::authn::verify_and_reduce;
use super::guard::{base64_decode, check_xml, parse_guarded, Limits};
use super::idp::IdpMetadata;
use super::XmlError;

/// A NameID with its qualifiers, exactly as the IdP issued it: a LogoutRequest must repeat it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NameId {
    pub value: String,
    pub format: Option<String>,
    pub name_qualifier: Option<String>,
    pub sp_name_qualifier: Option<String>,
}

#[derive(Debug, Clone)]
pub struct VerifiedResponse {
    /// The envelope. `InResponseTo`, `Destination` and `Status` are the IdP's word only when
    /// `response_signed`.
    pub response: Response,
    pub response_signed: bool,
    /// The Assertion, covered by a verified signature (its own or the Response's); `None`
    /// when the Response carries none (a refusal).
    pub assertion: Option<Assertion>,
    /// The Subject's NameID with its qualifiers (samael drops them).
    pub name_id: Option<NameId>,
}

/// Local names of the elements of `xml`, in document order (stops at the first error).
fn element_names(xml: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                out.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned())
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
}

/// The first NameID (the Subject's) with its attributes.
fn subject_name_id(assertion_xml: &str) -> Option<NameId> {
    let mut reader = quick_xml::Reader::from_str(assertion_xml);
    let mut current: Option<NameId> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == b"NameID" => {
                let mut n = NameId::default();
                for a in e.attributes().flatten() {
                    let v = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .ok()
                        .map(|v| v.into_owned());
                    match a.key.as_ref() {
                        b"Format" => n.format = v,
                        b"NameQualifier" => n.name_qualifier = v,
                        b"SPNameQualifier" => n.sp_name_qualifier = v,
                        _ => {}
                    }
                }
                current = Some(n);
            }
            Ok(Event::Text(t)) => {
                if let Some(n) = current.as_mut() {
                    n.value.push_str(&t.xml10_content().ok()?);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some(n) = current.as_mut() {
                    match r.resolve_char_ref().ok().flatten() {
                        Some(c) => n.value.push(c),
                        None => {
                            let name = String::from_utf8_lossy(r.as_ref()).into_owned();
                            n.value.push_str(match name.as_str() {
                                "lt" => "<",
                                "gt" => ">",
                                "amp" => "&",
                                "quot" => "\"",
                                "apos" => "'",
                                _ => return None,
                            });
                        }
                    }
                }
            }
            Ok(Event::End(e)) if e.local_name().as_ref() == b"NameID" => {
                return current.map(|mut n| {
                    n.value = n.value.trim().to_string();
                    n
                });
            }
            Ok(Event::Eof) | Err(_) => return None,
            _ => {}
        }
    }
}

/// The element `name` (local name) of `xml` as text, the first one.
fn element_text<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0usize;
    let mut start = None;
    loop {
        let before = reader.buffer_position() as usize;
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                if start.is_none() && e.local_name().as_ref() == name.as_bytes() {
                    start = Some(before);
                    depth = 0;
                }
                if start.is_some() {
                    depth += 1;
                }
            }
            Ok(Event::Empty(e))
                if start.is_none() && e.local_name().as_ref() == name.as_bytes() =>
            {
                return xml.get(before..reader.buffer_position() as usize);
            }
            Ok(Event::End(_)) if start.is_some() => {
                depth -= 1;
                if depth == 0 {
                    return xml.get(start?..reader.buffer_position() as usize);
                }
            }
            Ok(Event::Eof) | Err(_) => return None,
            _ => {}
        }
    }
}

/// Decodes and verifies `SAMLResponse` (the POSTed base64) from `idp`. `decryption_keys` are
/// the hub's RSA keys an EncryptedAssertion may be addressed to.
pub fn decode_response(
    saml_response: &str,
    idp: &IdpMetadata,
    decryption_keys: &[PKey<Private>],
    limits: Limits,
) -> Result<VerifiedResponse, XmlError> {
    let bytes = base64_decode(saml_response, limits)?;
    let xml = check_xml(&bytes, limits)?;
    let names = element_names(xml);
    if names.first().map(String::as_str) != Some("Response") {
        return Err(XmlError::Invalid("not a SAML Response".into()));
    }
    let assertions = names
        .iter()
        .filter(|n| *n == "Assertion" || *n == "EncryptedAssertion")
        .count();
    if assertions > 1 {
        return Err(XmlError::Invalid(
            "the Response carries more than one assertion".into(),
        ));
    }
    let encrypted = names.iter().any(|n| n == "EncryptedAssertion");
    // The envelope as verified when the Response is signed (a signature only inside an
    // encrypted assertion is not visible yet).
    let signed_envelope = if xml.contains("SignatureValue") {
        let reduced = verify_and_reduce(xml, idp)?;
        match element_names(&reduced).first().map(String::as_str) {
            Some("Response") => Some(reduced),
            Some("Assertion") if !encrypted => None,
            _ => {
                return Err(XmlError::Invalid(
                    "the signature covers neither the Response nor its Assertion".into(),
                ))
            }
        }
    } else {
        None
    };
    let response_signed = signed_envelope.is_some();
    let envelope_xml = signed_envelope.as_deref().unwrap_or(xml);
    let response: Response = parse_guarded(envelope_xml)?;

    // The Assertion, and whether a verified signature covers it already.
    let (assertion_xml, covered) = if encrypted {
        let opened = super::decrypt::decrypt_assertion(envelope_xml, decryption_keys, limits)?;
        (opened, response_signed)
    } else if assertions == 1 {
        let text = element_text(envelope_xml, "Assertion")
            .ok_or_else(|| XmlError::Parse("unreadable Assertion".into()))?
            .to_string();
        (text, response_signed)
    } else {
        return Ok(VerifiedResponse {
            response,
            response_signed,
            assertion: None,
            name_id: None,
        });
    };
    let assertion_xml = if assertion_xml.contains("SignatureValue") {
        // A standalone document from here on: what its own signature covers.
        verify_and_reduce(&assertion_xml, idp)?
    } else if covered {
        assertion_xml
    } else {
        return Err(XmlError::MissingSignature);
    };
    if element_names(&assertion_xml).first().map(String::as_str) != Some("Assertion") {
        return Err(XmlError::Invalid(
            "the signature does not cover the Assertion".into(),
        ));
    }
    let assertion: Assertion = parse_guarded(&assertion_xml)?;
    Ok(VerifiedResponse {
        response,
        response_signed,
        name_id: subject_name_id(&assertion_xml),
        assertion: Some(assertion),
    })
}
