//! Single-logout messages from a registered peer (a service provider, or an upstream IdP). Both kinds must be signed: an unsigned
//! LogoutRequest would let anyone sign people out, an unsigned LogoutResponse would let anyone
//! fake the end of a logout.

use samael::schema::{LogoutRequest, LogoutResponse};

use super::authn::{issuer_value, unverified_xml, verify_and_reduce};
use super::guard::{base64_decode, check_xml, parse_guarded, Limits};
use super::{redirect, Binding, Peer, XmlError};

#[derive(Debug, Clone)]
pub enum LogoutMessage {
    Request(Box<LogoutRequest>),
    Response(Box<LogoutResponse>),
}

#[derive(Debug, Clone)]
pub struct VerifiedLogout {
    pub message: LogoutMessage,
    pub relay_state: Option<String>,
}

/// The Issuer of a logout message, unverified, to find whose keys to verify it with.
pub fn peek_issuer(binding: &Binding<'_>, param: &str, limits: Limits) -> Result<String, XmlError> {
    let xml = unverified_xml(binding, param, limits)?;
    if param == "SAMLRequest" {
        issuer_value(parse_guarded::<LogoutRequest>(&xml)?.issuer)
    } else {
        issuer_value(parse_guarded::<LogoutResponse>(&xml)?.issuer)
    }
}

/// Decodes and verifies a LogoutRequest (`param = "SAMLRequest"`) or LogoutResponse
/// (`"SAMLResponse"`) from `sp`; the signature is required in both bindings.
pub fn decode<P: Peer + ?Sized>(
    binding: Binding<'_>,
    param: &str,
    sp: &P,
    limits: Limits,
) -> Result<VerifiedLogout, XmlError> {
    let (xml, relay_state) = match binding {
        Binding::Redirect { raw_query } => {
            let msg = redirect::parse(raw_query, param, limits)?;
            msg.signature
                .as_ref()
                .ok_or(XmlError::MissingSignature)?
                .verify(sp.signing_certs())?;
            (msg.xml, msg.relay_state)
        }
        Binding::Post {
            saml_request,
            relay_state,
        } => {
            let bytes = base64_decode(saml_request, limits)?;
            let xml = check_xml(&bytes, limits)?;
            if !xml.contains("SignatureValue") {
                return Err(XmlError::MissingSignature);
            }
            (verify_and_reduce(xml, sp)?, relay_state.map(String::from))
        }
    };
    let message = if param == "SAMLRequest" {
        let r = parse_guarded::<LogoutRequest>(&xml)?;
        check_issuer(r.issuer.as_ref().and_then(|i| i.value.as_deref()), sp)?;
        LogoutMessage::Request(Box::new(r))
    } else {
        let r = parse_guarded::<LogoutResponse>(&xml)?;
        check_issuer(r.issuer.as_ref().and_then(|i| i.value.as_deref()), sp)?;
        LogoutMessage::Response(Box::new(r))
    };
    Ok(VerifiedLogout {
        message,
        relay_state,
    })
}

fn check_issuer<P: Peer + ?Sized>(issuer: Option<&str>, peer: &P) -> Result<(), XmlError> {
    if issuer.map(str::trim) == Some(peer.entity_id()) {
        Ok(())
    } else {
        Err(XmlError::Invalid(format!(
            "the Issuer is not {}",
            peer.entity_id()
        )))
    }
}
