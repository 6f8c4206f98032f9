//! A test service provider: its keys and metadata.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fedhub_metadata::keys::{generate, GeneratedKey, KeyAlg};

pub const ENTITY: &str = "https://dvc.bo-tai-chinh.example.gov.vn/saml";
pub const ACS: &str = "https://dvc.bo-tai-chinh.example.gov.vn/saml/acs";

pub struct TestSp {
    pub entity_id: String,
    pub acs: String,
    pub signing: GeneratedKey,
    pub encryption: Option<GeneratedKey>,
}

impl TestSp {
    pub fn new(entity_id: &str, acs: &str) -> TestSp {
        TestSp {
            entity_id: entity_id.into(),
            acs: acs.into(),
            signing: generate(
                KeyAlg::Rsa2048,
                "test sp",
                crate::support::NOW - 86_400,
                365,
            )
            .unwrap(),
            encryption: None,
        }
    }

    pub fn metadata(&self) -> String {
        let key = |usage: &str, k: &GeneratedKey| {
            format!(
                r#"<md:KeyDescriptor use="{usage}"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
                STANDARD.encode(&k.cert_der)
            )
        };
        let enc = self
            .encryption
            .as_ref()
            .map(|k| key("encryption", k))
            .unwrap_or_default();
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}"><md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{sign}{enc}<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{entity}/slo"/><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="0" isDefault="true"/></md:SPSSODescriptor></md:EntityDescriptor>"#,
            entity = self.entity_id,
            sign = key("signing", &self.signing),
            enc = enc,
            acs = self.acs,
        )
    }
}

pub fn default_sp() -> TestSp {
    TestSp::new(ENTITY, ACS)
}
