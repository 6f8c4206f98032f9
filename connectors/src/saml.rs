//! SAML 2.0 identity providers upstream: the hub as a service provider (Web Browser SSO
//! profile, SAML Profiles §4.1). The hub sends a signed AuthnRequest, and accepts only a
//! Response that the `fedhub-metadata` XML layer verified with the IdP's registered keys;
//! here the protocol checks run on that verified content: InResponseTo bound to this login,
//! Destination/Recipient the hub's ACS, audience the hub, time windows, one bearer assertion.
//! The assertion ID and its expiry are returned for the caller's replay cache.

use std::collections::BTreeMap;

use fedhub_metadata::xml::dsig::{c14n_attr, c14n_text, XmlSigner};
use fedhub_metadata::xml::idp::IdpMetadata;
use fedhub_metadata::xml::response::{NameId, VerifiedResponse};
use fedhub_metadata::xml::sp::{BINDING_POST, BINDING_REDIRECT};
use serde::{Deserialize, Serialize};

use crate::{Authn, ConnectorError, UpstreamIdentity};

pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
pub const NAMEID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";

/// Attribute names (SAML Name or FriendlyName) the hub understands without configuration:
/// its own names, the directory OIDs, and the national portal's names.
pub const DEFAULT_ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("urn:fedhub:attribute:national_id", "national_id"),
    ("nationalId", "national_id"),
    ("SoDinhDanh", "national_id"),
    ("urn:oid:2.16.840.1.113730.3.1.241", "name"),
    ("displayName", "name"),
    ("urn:oid:2.5.4.3", "name"),
    ("cn", "name"),
    ("HoVaTen", "name"),
    ("urn:oid:2.5.4.20", "phone"),
    ("telephoneNumber", "phone"),
    ("urn:oid:0.9.2342.19200300.100.1.41", "phone"),
    ("mobile", "phone"),
    ("SoDienThoai", "phone"),
    ("urn:oid:0.9.2342.19200300.100.1.3", "email"),
    ("mail", "email"),
    ("ThuDienTu", "email"),
    ("urn:fedhub:attribute:account_type", "account_type"),
    ("accountType", "account_type"),
    ("LoaiTaiKhoan", "account_type"),
    ("urn:fedhub:attribute:tax_code", "tax_code"),
    ("MaSoThue", "tax_code"),
];

/// Everything a sign-in through one SAML IdP needs.
#[derive(Debug, Clone)]
pub struct SamlUpstream {
    pub connector_id: String,
    pub idp: IdpMetadata,
    /// The hub's entity ID towards this IdP (its SP metadata URL).
    pub sp_entity_id: String,
    pub acs_url: String,
    pub slo_url: String,
    /// Asked for in NameIDPolicy (none: the IdP decides).
    pub name_id_format: Option<String>,
    /// Extra `SAML Name or FriendlyName → hub attribute` pairs, taking precedence over the
    /// defaults.
    pub attribute_map: BTreeMap<String, String>,
    /// Seconds of clock difference tolerated on every time check.
    pub clock_skew: i64,
}

/// Kept with the login while the person is at the IdP.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub request_id: String,
    pub issued_at: i64,
}

/// Kept with the SSO session: what a LogoutRequest to the IdP must name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UpstreamSession {
    pub name_id: NameId,
    pub session_index: Option<String>,
}

/// How a message leaves the hub for the IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// HTTP-Redirect: the whole signed URL.
    Redirect(String),
    /// HTTP-POST: an auto-submitted form with `field` carrying `xml` (enveloped signature).
    Post {
        url: String,
        field: &'static str,
        xml: String,
        relay_state: Option<String>,
    },
}

fn rfc3339(t: i64) -> String {
    // The same second-precision UTC form every SAML stack reads.
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A fresh message ID (xsd:ID: must not start with a digit).
pub fn new_id() -> Result<String, ConnectorError> {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 20];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| ConnectorError::Config("no randomness".into()))?;
    Ok(format!("_{}", hex::encode(b)))
}

fn sign_err(e: fedhub_metadata::xml::XmlError) -> ConnectorError {
    ConnectorError::Config(format!("cannot sign: {e}"))
}

/// Sends `xml` (root ID `id`, Issuer first) by the binding the endpoint wants, signed.
fn outgoing(
    endpoint: &str,
    binding: &str,
    field: &'static str,
    xml: &str,
    id: &str,
    relay_state: Option<&str>,
    signer: &XmlSigner,
) -> Result<Outgoing, ConnectorError> {
    if binding == BINDING_POST {
        let at = xml
            .find("</saml:Issuer>")
            .map(|i| i + "</saml:Issuer>".len())
            .ok_or_else(|| ConnectorError::Config("message without Issuer".into()))?;
        let signed = signer.sign_enveloped(xml, id, at).map_err(sign_err)?;
        return Ok(Outgoing::Post {
            url: endpoint.to_string(),
            field,
            xml: signed,
            relay_state: relay_state.map(String::from),
        });
    }
    fedhub_metadata::xml::redirect::encode(endpoint, field, xml, relay_state, signer)
        .map(Outgoing::Redirect)
        .map_err(sign_err)
}

/// The signed AuthnRequest that sends the person to the IdP; `relay_state` brings them back
/// to this login.
pub fn begin(
    up: &SamlUpstream,
    signer: &XmlSigner,
    relay_state: &str,
    force_authn: bool,
    now: i64,
) -> Result<(Outgoing, PendingLogin), ConnectorError> {
    let sso = up.idp.sso_endpoint().ok_or_else(|| {
        ConnectorError::Config("the IdP metadata has no usable SingleSignOnService".into())
    })?;
    let id = new_id()?;
    let policy = match &up.name_id_format {
        Some(f) => format!(
            r#"<samlp:NameIDPolicy AllowCreate="true" Format="{}"></samlp:NameIDPolicy>"#,
            c14n_attr(f)
        ),
        None => r#"<samlp:NameIDPolicy AllowCreate="true"></samlp:NameIDPolicy>"#.to_string(),
    };
    let xml = format!(
        concat!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" AssertionConsumerServiceURL="{acs}" Destination="{dest}"{force} ID="{id}" IssueInstant="{now}" ProtocolBinding="{post}" Version="2.0">"#,
            r#"<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">{issuer}</saml:Issuer>{policy}</samlp:AuthnRequest>"#
        ),
        acs = c14n_attr(&up.acs_url),
        dest = c14n_attr(&sso.location),
        force = if force_authn {
            r#" ForceAuthn="true""#
        } else {
            ""
        },
        id = id,
        now = rfc3339(now),
        post = BINDING_POST,
        issuer = c14n_text(&up.sp_entity_id),
        policy = policy,
    );
    let out = outgoing(
        &sso.location,
        &sso.binding,
        "SAMLRequest",
        &xml,
        &id,
        Some(relay_state),
        signer,
    )?;
    Ok((
        out,
        PendingLogin {
            request_id: id,
            issued_at: now,
        },
    ))
}

/// A verified sign-in: the identity, and the assertion ID with the time until which it must
/// be remembered as used.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub identity: UpstreamIdentity,
    pub assertion_id: String,
    pub remember_until: i64,
}

fn invalid(m: impl Into<String>) -> ConnectorError {
    ConnectorError::Invalid(m.into())
}

/// The protocol checks on a verified Response answering `pending`.
pub fn identity(
    up: &SamlUpstream,
    verified: &VerifiedResponse,
    pending: &PendingLogin,
    now: i64,
) -> Result<SignedIn, ConnectorError> {
    let skew = up.clock_skew;
    let r = &verified.response;
    if verified.response_signed {
        if let Some(issuer) = r.issuer.as_ref().and_then(|i| i.value.as_deref()) {
            if issuer.trim() != up.idp.entity_id {
                return Err(invalid("the Response Issuer is not this identity provider"));
            }
        }
        if r.in_response_to.as_deref() != Some(pending.request_id.as_str()) {
            return Err(invalid(
                "the Response does not answer this sign-in (InResponseTo)",
            ));
        }
        if r.destination.as_deref().is_some_and(|d| d != up.acs_url) {
            return Err(invalid(
                "the Response was sent to another service (Destination)",
            ));
        }
    }
    let status = r
        .status
        .as_ref()
        .and_then(|s| s.status_code.value.as_deref())
        .unwrap_or_default();
    if status != STATUS_SUCCESS {
        let message = r
            .status
            .as_ref()
            .and_then(|s| s.status_message.as_ref())
            .and_then(|m| m.value.clone())
            .unwrap_or_else(|| status.rsplit(':').next().unwrap_or("no status").to_string());
        return Err(ConnectorError::Refused(message));
    }
    let a = verified
        .assertion
        .as_ref()
        .ok_or_else(|| invalid("a successful Response without an assertion"))?;
    if a.issuer.value.as_deref().map(str::trim) != Some(up.idp.entity_id.as_str()) {
        return Err(invalid(
            "the Assertion Issuer is not this identity provider",
        ));
    }
    let name_id = verified
        .name_id
        .clone()
        .filter(|n| !n.value.is_empty())
        .ok_or_else(|| invalid("the Assertion has no Subject NameID"))?;
    // A bearer confirmation for this request, at the hub's ACS, still valid.
    let confirmations = a
        .subject
        .as_ref()
        .and_then(|s| s.subject_confirmations.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut remember_until = None;
    let mut why = "the Assertion has no bearer SubjectConfirmation";
    for c in confirmations {
        if c.method.as_deref() != Some(BEARER) {
            continue;
        }
        let Some(d) = c.subject_confirmation_data.as_ref() else {
            why = "SubjectConfirmationData missing";
            continue;
        };
        if d.recipient.as_deref() != Some(up.acs_url.as_str()) {
            why = "the assertion is for another service (Recipient)";
            continue;
        }
        if d.in_response_to.as_deref() != Some(pending.request_id.as_str()) {
            why = "the assertion does not answer this sign-in (InResponseTo)";
            continue;
        }
        let Some(until) = d.not_on_or_after.map(|t| t.timestamp()) else {
            why = "SubjectConfirmationData without NotOnOrAfter";
            continue;
        };
        if now >= until + skew {
            why = "the assertion has expired";
            continue;
        }
        if d.not_before.is_some_and(|t| t.timestamp() > now + skew) {
            why = "the assertion is not valid yet";
            continue;
        }
        remember_until = Some(until);
        break;
    }
    let mut remember_until = remember_until.ok_or_else(|| invalid(why))?;
    let conditions = a
        .conditions
        .as_ref()
        .ok_or_else(|| invalid("the Assertion has no Conditions"))?;
    if conditions
        .not_before
        .is_some_and(|t| t.timestamp() > now + skew)
    {
        return Err(invalid("the assertion is not valid yet"));
    }
    if let Some(t) = conditions.not_on_or_after.map(|t| t.timestamp()) {
        if now >= t + skew {
            return Err(invalid("the assertion has expired"));
        }
        remember_until = remember_until.max(t);
    }
    let restrictions = conditions
        .audience_restrictions
        .as_deref()
        .unwrap_or_default();
    // Every AudienceRestriction must name the hub (SAML Core §2.5.1.4); at least one must exist.
    if restrictions.is_empty()
        || !restrictions
            .iter()
            .all(|r| r.audience.iter().any(|x| x.trim() == up.sp_entity_id))
    {
        return Err(invalid(
            "the assertion is meant for another service (Audience)",
        ));
    }
    let statement = a
        .authn_statements
        .as_ref()
        .and_then(|s| s.first())
        .ok_or_else(|| invalid("the Assertion has no AuthnStatement"))?;
    if statement
        .session_not_on_or_after
        .is_some_and(|t| now >= t.timestamp() + skew)
    {
        return Err(invalid("the IdP session has already ended"));
    }
    let authn = Authn {
        auth_time: statement
            .authn_instant
            .map(|t| t.timestamp())
            .unwrap_or(now),
        acr: statement
            .authn_context
            .as_ref()
            .and_then(|c| c.value.as_ref())
            .and_then(|c| c.value.clone()),
        amr: Vec::new(),
    };
    let session = UpstreamSession {
        name_id: name_id.clone(),
        session_index: statement.session_index.clone(),
    };
    let identity = UpstreamIdentity {
        connector: up.connector_id.clone(),
        issuer: up.idp.entity_id.clone(),
        subject: name_id.value,
        attributes: map_attributes(up, a),
        authn,
        session: serde_json::to_string(&session).ok(),
    };
    Ok(SignedIn {
        identity,
        assertion_id: a.id.clone(),
        remember_until,
    })
}

/// The hub's attribute names from the assertion's: the connector's map first, then the
/// defaults, by Name and then FriendlyName. Unknown attributes are dropped.
fn map_attributes(
    up: &SamlUpstream,
    a: &samael::schema::Assertion,
) -> BTreeMap<String, Vec<String>> {
    let lookup = |name: &str| -> Option<String> {
        up.attribute_map.get(name).cloned().or_else(|| {
            DEFAULT_ATTRIBUTE_NAMES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, internal)| internal.to_string())
        })
    };
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for attr in a
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| &s.attributes)
    {
        let internal = attr
            .name
            .as_deref()
            .and_then(lookup)
            .or_else(|| attr.friendly_name.as_deref().and_then(lookup));
        let Some(internal) = internal else { continue };
        let values: Vec<String> = attr
            .values
            .iter()
            .filter_map(|v| v.value.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| match (internal.as_str(), v) {
                // The portal's account type codes.
                ("account_type", "1") => "citizen".to_string(),
                ("account_type", "2") => "organisation".to_string(),
                ("account_type", "3") => "agency".to_string(),
                _ => v.to_string(),
            })
            .collect();
        if !values.is_empty() {
            out.entry(internal).or_default().extend(values);
        }
    }
    out
}

/// A LogoutRequest to the IdP for a session that started there; `None` when the IdP offers
/// no single logout. Returns the message and its ID (the LogoutResponse must answer it).
pub fn logout_request(
    up: &SamlUpstream,
    session: &UpstreamSession,
    relay_state: &str,
    signer: &XmlSigner,
    now: i64,
) -> Result<Option<(Outgoing, String)>, ConnectorError> {
    let Some(slo) = up.idp.slo_endpoint() else {
        return Ok(None);
    };
    let id = new_id()?;
    let n = &session.name_id;
    let mut name_attrs = String::new();
    for (k, v) in [
        ("Format", &n.format),
        ("NameQualifier", &n.name_qualifier),
        ("SPNameQualifier", &n.sp_name_qualifier),
    ] {
        if let Some(v) = v {
            name_attrs.push_str(&format!(r#" {k}="{}""#, c14n_attr(v)));
        }
    }
    let index = session
        .session_index
        .as_deref()
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", c14n_text(s)))
        .unwrap_or_default();
    let xml = format!(
        concat!(
            r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" Destination="{dest}" ID="{id}" IssueInstant="{now}" NotOnOrAfter="{until}" Version="2.0">"#,
            r#"<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">{issuer}</saml:Issuer>"#,
            r#"<saml:NameID xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"{name_attrs}>{name}</saml:NameID>{index}</samlp:LogoutRequest>"#
        ),
        dest = c14n_attr(&slo.location),
        id = id,
        now = rfc3339(now),
        until = rfc3339(now + 300),
        issuer = c14n_text(&up.sp_entity_id),
        name_attrs = name_attrs,
        name = c14n_text(&n.value),
        index = index,
    );
    let out = outgoing(
        &slo.location,
        &slo.binding,
        "SAMLRequest",
        &xml,
        &id,
        Some(relay_state),
        signer,
    )?;
    Ok(Some((out, id)))
}

/// The hub's LogoutResponse to an IdP-initiated LogoutRequest.
pub fn logout_response(
    up: &SamlUpstream,
    in_response_to: &str,
    status: &str,
    relay_state: Option<&str>,
    signer: &XmlSigner,
    now: i64,
) -> Result<Option<Outgoing>, ConnectorError> {
    let Some(slo) = up.idp.slo_endpoint() else {
        return Ok(None);
    };
    let endpoint = slo.response_location.as_deref().unwrap_or(&slo.location);
    let id = new_id()?;
    let xml = format!(
        concat!(
            r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" Destination="{dest}" ID="{id}" InResponseTo="{irt}" IssueInstant="{now}" Version="2.0">"#,
            r#"<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">{issuer}</saml:Issuer>"#,
            r#"<samlp:Status><samlp:StatusCode Value="{status}"></samlp:StatusCode></samlp:Status></samlp:LogoutResponse>"#
        ),
        dest = c14n_attr(endpoint),
        id = id,
        irt = c14n_attr(in_response_to),
        now = rfc3339(now),
        issuer = c14n_text(&up.sp_entity_id),
        status = c14n_attr(status),
    );
    outgoing(
        endpoint,
        &slo.binding,
        "SAMLResponse",
        &xml,
        &id,
        relay_state,
        signer,
    )
    .map(Some)
}

/// Whether an IdP's LogoutRequest (NameID value, SessionIndex if it names one) is about a
/// session that started with `session`.
pub fn names_session(
    session: &UpstreamSession,
    name_id: &str,
    session_index: Option<&str>,
) -> bool {
    session.name_id.value == name_id.trim()
        && session_index.is_none_or(|i| session.session_index.as_deref() == Some(i.trim()))
}

/// Whether a binding is one the hub can send with.
pub fn sendable(binding: &str) -> bool {
    binding == BINDING_POST || binding == BINDING_REDIRECT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_saml_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_737_600), "2026-11-27T00:00:00Z");
        assert_eq!(rfc3339(951_825_599), "2000-02-29T11:59:59Z");
    }

    #[test]
    fn sessions_match_on_name_id_and_index() {
        let s = UpstreamSession {
            name_id: NameId {
                value: "abc".into(),
                ..NameId::default()
            },
            session_index: Some("s1".into()),
        };
        assert!(names_session(&s, "abc", None));
        assert!(names_session(&s, "abc", Some("s1")));
        assert!(!names_session(&s, "abc", Some("s2")));
        assert!(!names_session(&s, "abd", None));
    }
}
