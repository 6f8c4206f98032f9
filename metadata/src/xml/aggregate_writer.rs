//! Writes a signed metadata aggregate, as a federation operator publishes one: for the load
//! generator and the tests (the hub itself only imports aggregates). Everything is written
//! in exclusive canonical form, so [`XmlSigner::sign_enveloped`] signs the root as written;
//! libxmlsec, through [`super::aggregate::verify`], is what checks the result.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::aggregate::format_date_time;
use super::dsig::{c14n_attr, c14n_text, XmlSigner};
use super::XmlError;

const MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const MDUI: &str = "urn:oasis:names:tc:SAML:metadata:ui";
const SHIBMD: &str = "urn:mace:shibboleth:metadata:1.0";
const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// One entity of an aggregate.
#[derive(Debug, Clone)]
pub struct EntitySpec {
    pub entity_id: String,
    pub display_name: String,
    /// The organisation's domain (shibmd:Scope).
    pub scope: String,
    /// An identity provider (SSO at `endpoint`) or a service provider (ACS at `endpoint`).
    pub idp: bool,
    pub endpoint: String,
    /// The signing certificate (DER).
    pub cert_der: Vec<u8>,
}

/// The entity as a canonical `md:EntityDescriptor` (the `md` prefix declared by the root).
pub fn entity_xml(e: &EntitySpec) -> String {
    let cert = STANDARD.encode(&e.cert_der);
    let key = format!(
        r#"<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="{DS}"><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#
    );
    let ui = format!(
        r#"<md:Extensions><mdui:UIInfo xmlns:mdui="{MDUI}"><mdui:DisplayName xml:lang="vi">{name}</mdui:DisplayName></mdui:UIInfo><shibmd:Scope xmlns:shibmd="{SHIBMD}" regexp="false">{scope}</shibmd:Scope></md:Extensions>"#,
        name = c14n_text(&e.display_name),
        scope = c14n_text(&e.scope),
    );
    let role = if e.idp {
        format!(
            r#"<md:IDPSSODescriptor protocolSupportEnumeration="{PROTOCOL}">{ui}{key}<md:SingleSignOnService Binding="{REDIRECT}" Location="{loc}"></md:SingleSignOnService></md:IDPSSODescriptor>"#,
            loc = c14n_attr(&e.endpoint)
        )
    } else {
        format!(
            r#"<md:SPSSODescriptor protocolSupportEnumeration="{PROTOCOL}">{key}<md:AssertionConsumerService Binding="{POST}" Location="{loc}" index="0"></md:AssertionConsumerService></md:SPSSODescriptor>"#,
            loc = c14n_attr(&e.endpoint)
        )
    };
    format!(
        "<md:EntityDescriptor entityID=\"{id}\">{role}<md:Organization><md:OrganizationName xml:lang=\"vi\">{name}</md:OrganizationName><md:OrganizationDisplayName xml:lang=\"vi\">{name}</md:OrganizationDisplayName><md:OrganizationURL xml:lang=\"vi\">https://{scope}/</md:OrganizationURL></md:Organization></md:EntityDescriptor>\n",
        id = c14n_attr(&e.entity_id),
        name = c14n_text(&e.display_name),
        scope = c14n_text(&e.scope),
    )
}

/// The aggregate around `entities` (each from [`entity_xml`]), unsigned and canonical, with
/// the byte offset where its signature belongs (first child of the root).
pub fn unsigned_aggregate(
    id: &str,
    name: &str,
    valid_until: i64,
    entities: &[String],
) -> (String, usize) {
    let start = format!(
        "<md:EntitiesDescriptor xmlns:md=\"{MD}\" ID=\"{id}\" Name=\"{name}\" validUntil=\"{until}\">",
        id = c14n_attr(id),
        name = c14n_attr(name),
        until = format_date_time(valid_until),
    );
    let total = start.len() + entities.iter().map(String::len).sum::<usize>() + 32;
    let mut out = String::with_capacity(total);
    out.push_str(&start);
    out.push('\n');
    for e in entities {
        out.push_str(e);
    }
    out.push_str("</md:EntitiesDescriptor>");
    (out, start.len())
}

/// A signed aggregate: [`unsigned_aggregate`] with an enveloped signature over its root.
pub fn signed_aggregate(
    signer: &XmlSigner,
    id: &str,
    name: &str,
    valid_until: i64,
    entities: &[String],
) -> Result<String, XmlError> {
    let (xml, at) = unsigned_aggregate(id, name, valid_until, entities);
    signer.sign_enveloped(&xml, id, at)
}
