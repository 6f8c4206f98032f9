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

/// `xml` without its `Signature` and `EncryptedAssertion` elements, for samael: once verified
/// (or opened) they say nothing more, and samael parses them only under the `ds:` prefix
/// (pysaml2 writes `ns2:`, Keycloak `dsig:`).
fn without_signatures(xml: &str) -> String {
    let skip = |name: &[u8]| name == b"Signature" || name == b"EncryptedAssertion";
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = String::with_capacity(xml.len());
    let mut copied = 0usize;
    let mut skipping: Option<(usize, usize)> = None; // (start offset, depth)
    loop {
        let before = reader.buffer_position() as usize;
        match reader.read_event() {
            Ok(Event::Start(e)) => match skipping.as_mut() {
                Some((_, depth)) => *depth += 1,
                None if skip(e.local_name().as_ref()) => skipping = Some((before, 1)),
                None => {}
            },
            Ok(Event::Empty(e)) if skipping.is_none() && skip(e.local_name().as_ref()) => {
                out.push_str(&xml[copied..before]);
                copied = reader.buffer_position() as usize;
            }
            Ok(Event::End(_)) => {
                if let Some((start, depth)) = skipping.as_mut() {
                    *depth -= 1;
                    if *depth == 0 {
                        out.push_str(&xml[copied..*start]);
                        copied = reader.buffer_position() as usize;
                        skipping = None;
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out.push_str(&xml[copied..]);
    out
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
    // What the visible signature covers: the whole Response, or (unencrypted) the Assertion.
    // A signature inside an encrypted assertion is not visible yet.
    let (signed_envelope, signed_assertion) = if xml.contains("SignatureValue") {
        let reduced = verify_and_reduce(xml, idp)?;
        match element_names(&reduced).first().map(String::as_str) {
            Some("Response") => (Some(reduced), None),
            Some("Assertion") if !encrypted => (None, Some(reduced)),
            _ => {
                return Err(XmlError::Invalid(
                    "the signature covers neither the Response nor its Assertion".into(),
                ))
            }
        }
    } else {
        (None, None)
    };
    let response_signed = signed_envelope.is_some();
    let envelope_xml = signed_envelope.as_deref().unwrap_or(xml);
    let response: Response = parse_guarded(&without_signatures(envelope_xml))?;

    // The Assertion as XML a verified signature covers.
    let assertion_xml = if encrypted {
        let opened = super::decrypt::decrypt_assertion(envelope_xml, decryption_keys, limits)?;
        if opened.contains("SignatureValue") {
            // Standalone from here on: what its own signature covers.
            verify_and_reduce(&opened, idp)?
        } else if response_signed {
            opened
        } else {
            return Err(XmlError::MissingSignature);
        }
    } else if let Some(reduced) = signed_assertion {
        reduced
    } else if response_signed && assertions == 1 {
        // Covered by the Response's signature; read from the verified envelope.
        envelope_xml.to_string()
    } else if assertions == 1 {
        return Err(XmlError::MissingSignature);
    } else {
        return Ok(VerifiedResponse {
            response,
            response_signed,
            assertion: None,
            name_id: None,
        });
    };
    let assertion: Assertion = match element_names(&assertion_xml).first().map(String::as_str) {
        Some("Assertion") => parse_guarded(&without_signatures(&assertion_xml))?,
        // A verified Response: samael parsed its one Assertion with it.
        Some("Response") => response
            .assertion
            .clone()
            .ok_or_else(|| XmlError::Parse("unreadable Assertion".into()))?,
        _ => {
            return Err(XmlError::Invalid(
                "the signature does not cover the Assertion".into(),
            ))
        }
    };
    Ok(VerifiedResponse {
        response,
        response_signed,
        name_id: subject_name_id(&assertion_xml),
        assertion: Some(assertion),
    })
}
