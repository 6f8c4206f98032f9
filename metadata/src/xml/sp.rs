//! A service provider's registered metadata, reduced to what the IdP front needs: where
//! answers may go (the only places they ever go) and which keys the SP signs with.

use samael::crypto::CertificateDer;
use samael::metadata::EntityDescriptor;

use super::guard::{base64_decode, check_xml, guarded, Limits};
use super::XmlError;

pub const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
pub const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

/// An AssertionConsumerService endpoint from metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acs {
    pub index: usize,
    pub binding: String,
    pub location: String,
    pub is_default: bool,
}

/// A SingleLogoutService endpoint from metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slo {
    pub binding: String,
    pub location: String,
    pub response_location: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SpMetadata {
    pub entity_id: String,
    /// HTTP-POST ACS endpoints only: the hub answers by auto-POST.
    pub acs: Vec<Acs>,
    pub slo: Vec<Slo>,
    pub signing_certs: Vec<CertificateDer>,
    pub encryption_certs: Vec<CertificateDer>,
    pub authn_requests_signed: bool,
    pub want_assertions_signed: bool,
    pub name_id_formats: Vec<String>,
    /// `validUntil` as Unix seconds.
    pub valid_until: Option<i64>,
    pub cache_duration: Option<String>,
}

/// The certificates of the KeyDescriptors whose `use` passes `usable`, each checked readable.
pub(crate) fn certs<'a>(
    key_descriptors: impl IntoIterator<Item = &'a samael::metadata::KeyDescriptor>,
    usable: impl Fn(Option<&str>) -> bool,
) -> Result<Vec<CertificateDer>, XmlError> {
    let mut out = Vec::new();
    for kd in key_descriptors {
        if !usable(kd.key_use.as_deref()) {
            continue;
        }
        for b64 in kd
            .key_info
            .x509_data
            .iter()
            .flat_map(|d| d.certificates.iter())
        {
            let der = base64_decode(b64, Limits::default())?;
            x509_parser::parse_x509_certificate(&der).map_err(|_| {
                XmlError::Invalid("a KeyDescriptor holds an unreadable certificate".into())
            })?;
            out.push(CertificateDer::from(der));
        }
    }
    Ok(out)
}

/// Whether a URL points at this machine (plain http is tolerated there, for tests and demos).
pub fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// URLs the hub will send people to must be https (http only on loopback, for tests/demo).
pub(crate) fn acceptable_endpoint(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    match u.scheme() {
        "https" => u.host().is_some(),
        "http" => is_loopback(&u),
        _ => false,
    }
}

/// Parses and checks SP metadata. Refused: no entityID, not exactly one SPSSODescriptor, no
/// HTTP-POST ACS, an endpoint that is not https, and metadata without a signing key (the
/// hub verifies signed requests and logout messages only with registered keys).
pub fn parse(xml: &[u8], limits: Limits) -> Result<SpMetadata, XmlError> {
    let text = check_xml(xml, limits)?;
    let ed: EntityDescriptor = guarded(|| {
        text.parse::<EntityDescriptor>()
            .map_err(|e| XmlError::Parse(e.to_string()))
    })?;
    let entity_id = ed
        .entity_id
        .clone()
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| XmlError::Invalid("EntityDescriptor has no entityID".into()))?;
    let sps = ed.sp_sso_descriptors.as_deref().unwrap_or_default();
    let [sp] = sps else {
        return Err(XmlError::Invalid(format!(
            "expected one SPSSODescriptor, found {}",
            sps.len()
        )));
    };
    let mut acs: Vec<Acs> = sp
        .assertion_consumer_services
        .iter()
        .filter(|e| e.binding == BINDING_POST)
        .map(|e| Acs {
            index: e.index,
            binding: e.binding.clone(),
            location: e.location.clone(),
            is_default: e.is_default.unwrap_or(false),
        })
        .collect();
    if acs.is_empty() {
        return Err(XmlError::Invalid(
            "no AssertionConsumerService with the HTTP-POST binding".into(),
        ));
    }
    acs.sort_by_key(|a| a.index);
    let slo: Vec<Slo> = sp
        .single_logout_services
        .iter()
        .flatten()
        .filter(|e| e.binding == BINDING_POST || e.binding == BINDING_REDIRECT)
        .map(|e| Slo {
            binding: e.binding.clone(),
            location: e.location.clone(),
            response_location: e.response_location.clone(),
        })
        .collect();
    for url in acs
        .iter()
        .map(|a| &a.location)
        .chain(slo.iter().map(|s| &s.location))
        .chain(slo.iter().filter_map(|s| s.response_location.as_ref()))
    {
        if !acceptable_endpoint(url) {
            return Err(XmlError::Invalid(format!(
                "endpoint {url} must be an https:// URL"
            )));
        }
    }
    let signing_certs = certs(sp.key_descriptors.iter().flatten(), |u| {
        u != Some("encryption")
    })?;
    if signing_certs.is_empty() {
        return Err(XmlError::NoSigningKey);
    }
    let encryption_certs = certs(sp.key_descriptors.iter().flatten(), |u| {
        u != Some("signing")
    })?;
    Ok(SpMetadata {
        entity_id,
        acs,
        slo,
        signing_certs,
        encryption_certs,
        authn_requests_signed: sp.authn_requests_signed.unwrap_or(false),
        want_assertions_signed: sp.want_assertions_signed.unwrap_or(false),
        name_id_formats: sp.name_id_formats.clone().unwrap_or_default(),
        valid_until: ed.valid_until.map(|t| t.timestamp()),
        cache_duration: ed.cache_duration.clone(),
    })
}

/// Like [`parse`], for a federation whose operator signs SP metadata: the document must carry
/// a valid signature by one of `federation_certs` (allowed algorithms only), and only the
/// signed element is read, so nothing can be added around it. Returns the reduced document
/// too: store that, never the original, or a later parse would read the unsigned parts.
pub fn parse_signed(
    xml: &[u8],
    federation_certs: &[CertificateDer],
    limits: Limits,
) -> Result<(SpMetadata, String), XmlError> {
    use samael::crypto::{CryptoProvider, ReduceMode, XmlSec};
    let text = check_xml(xml, limits)?;
    if federation_certs.is_empty() {
        return Err(XmlError::NoSigningKey);
    }
    if !text.contains("SignatureValue") {
        return Err(XmlError::MissingSignature);
    }
    // No external references or exotic transforms reach libxmlsec (see guard).
    super::guard::check_signature_profile(text)?;
    let reduced = guarded(|| {
        XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
            text,
            federation_certs,
            ReduceMode::ValidateAndMarkNoAncestors,
            Some(super::ALLOWED),
        )
        .map_err(|_| XmlError::BadSignature)
    })?;
    let md = parse(reduced.as_bytes(), limits)?;
    Ok((md, reduced))
}

impl SpMetadata {
    /// The ACS an answer goes to. A request may pick one by index or by URL, but only among
    /// those in metadata: an unknown URL is refused, never used.
    pub fn choose_acs(&self, index: Option<usize>, url: Option<&str>) -> Result<&Acs, XmlError> {
        match (index, url) {
            (Some(_), Some(_)) => Err(XmlError::Invalid("AssertionConsumerServiceIndex and AssertionConsumerServiceURL are mutually exclusive".into())),
            (Some(i), None) => self.acs.iter().find(|a| a.index == i).ok_or_else(|| XmlError::Invalid(format!("no AssertionConsumerService with index {i} in the metadata"))),
            (None, Some(u)) => self.acs.iter().find(|a| a.location == u).ok_or_else(|| XmlError::Invalid("AssertionConsumerServiceURL is not in the registered metadata".into())),
            (None, None) => self
                .acs
                .iter()
                .find(|a| a.is_default)
                .or_else(|| self.acs.first())
                .ok_or_else(|| XmlError::Invalid("no AssertionConsumerService".into())),
        }
    }
}
