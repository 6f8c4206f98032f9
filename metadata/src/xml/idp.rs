//! An upstream identity provider's registered metadata, reduced to what the hub needs as a
//! service provider: where to send people (SSO and SLO endpoints) and the only keys its
//! Responses and logout messages are verified with.

use samael::crypto::CertificateDer;
use samael::metadata::EntityDescriptor;

use super::guard::{check_xml, guarded, Limits};
use super::sp::{acceptable_endpoint, certs, Slo, BINDING_POST, BINDING_REDIRECT};
use super::{Peer, XmlError};

/// A SingleSignOnService endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sso {
    pub binding: String,
    pub location: String,
}

#[derive(Debug, Clone)]
pub struct IdpMetadata {
    pub entity_id: String,
    /// HTTP-Redirect and HTTP-POST endpoints only.
    pub sso: Vec<Sso>,
    pub slo: Vec<Slo>,
    pub signing_certs: Vec<CertificateDer>,
    pub want_authn_requests_signed: bool,
    pub name_id_formats: Vec<String>,
    /// `validUntil` as Unix seconds.
    pub valid_until: Option<i64>,
}

impl Peer for IdpMetadata {
    fn entity_id(&self) -> &str {
        &self.entity_id
    }
    fn signing_certs(&self) -> &[CertificateDer] {
        &self.signing_certs
    }
}

impl IdpMetadata {
    /// Where AuthnRequests go: the Redirect endpoint (the request is small and signed in the
    /// query), else the POST one.
    pub fn sso_endpoint(&self) -> Option<&Sso> {
        self.sso
            .iter()
            .find(|e| e.binding == BINDING_REDIRECT)
            .or_else(|| self.sso.iter().find(|e| e.binding == BINDING_POST))
    }

    /// Where logout messages go (Redirect preferred); `None` when the IdP offers no SLO.
    pub fn slo_endpoint(&self) -> Option<&Slo> {
        self.slo
            .iter()
            .find(|e| e.binding == BINDING_REDIRECT)
            .or_else(|| self.slo.iter().find(|e| e.binding == BINDING_POST))
    }
}

/// Parses and checks IdP metadata. Refused: no entityID, not exactly one IDPSSODescriptor, no
/// SingleSignOnService with the Redirect or POST binding, an endpoint that is not https
/// (http only on loopback), and no signing key (a Response could then never be verified).
pub fn parse(xml: &[u8], limits: Limits) -> Result<IdpMetadata, XmlError> {
    let text = check_xml(xml, limits)?;
    let ed: EntityDescriptor = guarded(|| {
        text.parse::<EntityDescriptor>()
            .map_err(|e| XmlError::Parse(e.to_string()))
    })?;
    let entity_id = ed
        .entity_id
        .clone()
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .ok_or_else(|| XmlError::Invalid("EntityDescriptor has no entityID".into()))?;
    let idps = ed.idp_sso_descriptors.as_deref().unwrap_or_default();
    let [idp] = idps else {
        return Err(XmlError::Invalid(format!(
            "expected one IDPSSODescriptor, found {}",
            idps.len()
        )));
    };
    let usable = |b: &str| b == BINDING_POST || b == BINDING_REDIRECT;
    let sso: Vec<Sso> = idp
        .single_sign_on_services
        .iter()
        .filter(|e| usable(&e.binding))
        .map(|e| Sso {
            binding: e.binding.clone(),
            location: e.location.clone(),
        })
        .collect();
    if sso.is_empty() {
        return Err(XmlError::Invalid(
            "no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding".into(),
        ));
    }
    let slo: Vec<Slo> = idp
        .single_logout_services
        .iter()
        .filter(|e| usable(&e.binding))
        .map(|e| Slo {
            binding: e.binding.clone(),
            location: e.location.clone(),
            response_location: e.response_location.clone(),
        })
        .collect();
    for url in sso
        .iter()
        .map(|s| &s.location)
        .chain(slo.iter().map(|s| &s.location))
        .chain(slo.iter().filter_map(|s| s.response_location.as_ref()))
    {
        if !acceptable_endpoint(url) {
            return Err(XmlError::Invalid(format!(
                "endpoint {url} must be an https:// URL"
            )));
        }
    }
    let signing_certs = certs(&idp.key_descriptors, |u| u != Some("encryption"))?;
    if signing_certs.is_empty() {
        return Err(XmlError::NoSigningKey);
    }
    Ok(IdpMetadata {
        entity_id,
        sso,
        slo,
        signing_certs,
        want_authn_requests_signed: idp.want_authn_requests_signed.unwrap_or(false),
        name_id_formats: idp.name_id_formats.clone(),
        valid_until: ed.valid_until.map(|t| t.timestamp()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn metadata(cert: &str, sso: &str) -> String {
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example.gov.vn/idp">
<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="true">
<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.gov.vn/slo"/>
<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.example.gov.vn/sso/post"/>
<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}"/>
</md:IDPSSODescriptor></md:EntityDescriptor>"#
        )
    }

    fn cert() -> String {
        let k = crate::keys::generate(crate::keys::KeyAlg::EcP256, "idp", 0, 1).unwrap();
        base64::engine::general_purpose::STANDARD.encode(k.cert_der)
    }

    #[test]
    fn reads_endpoints_and_keys_preferring_redirect() {
        let md = parse(
            metadata(&cert(), "https://idp.example.gov.vn/sso").as_bytes(),
            Limits::default(),
        )
        .unwrap();
        assert_eq!(md.entity_id, "https://idp.example.gov.vn/idp");
        assert_eq!(md.signing_certs.len(), 1);
        assert!(md.want_authn_requests_signed);
        assert_eq!(
            md.sso_endpoint().unwrap().location,
            "https://idp.example.gov.vn/sso"
        );
        assert_eq!(
            md.slo_endpoint().unwrap().location,
            "https://idp.example.gov.vn/slo"
        );
    }

    #[test]
    fn refuses_plain_http_endpoints_and_missing_keys() {
        let err = parse(
            metadata(&cert(), "http://idp.example.gov.vn/sso").as_bytes(),
            Limits::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("https"), "{err}");
        let no_key = metadata(&cert(), "https://idp.example.gov.vn/sso")
            .replace("use=\"signing\"", "use=\"encryption\"");
        assert_eq!(
            parse(no_key.as_bytes(), Limits::default()).unwrap_err(),
            XmlError::NoSigningKey
        );
        let sp_only = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp/acs" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>"#;
        let err = parse(sp_only.as_bytes(), Limits::default()).unwrap_err();
        assert!(err.to_string().contains("IDPSSODescriptor"), "{err}");
    }
}
