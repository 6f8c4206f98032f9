//! Upstream identity sources. Each connector turns an upstream answer into one normalised
//! [`UpstreamIdentity`]; it does no storage and no HTTP serving (time and the HTTP client are
//! passed in). The set is closed: [`ConnectorKind`] lists every kind the hub knows.

pub mod certificate;
pub mod dev;
pub mod oidc;
pub mod saml;
pub mod simpki;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The kinds of upstream the hub can broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorKind {
    /// The national identity provider, or any OpenID Provider.
    Oidc,
    /// A SAML 2.0 identity provider.
    Saml,
    /// A government digital certificate on a USB token.
    Certificate,
    /// A government digital certificate on a SIM-PKI card.
    Simpki,
    /// Demo only: a local upstream with fixed people.
    Dev,
}

impl ConnectorKind {
    pub const ALL: [ConnectorKind; 5] = [
        ConnectorKind::Oidc,
        ConnectorKind::Saml,
        ConnectorKind::Certificate,
        ConnectorKind::Simpki,
        ConnectorKind::Dev,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::Oidc => "oidc",
            ConnectorKind::Saml => "saml",
            ConnectorKind::Certificate => "certificate",
            ConnectorKind::Simpki => "simpki",
            ConnectorKind::Dev => "dev",
        }
    }

    pub fn parse(s: &str) -> Option<ConnectorKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How the person authenticated upstream, carried to the relying party (acr/amr,
/// AuthnContextClassRef).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Authn {
    /// Unix seconds.
    pub auth_time: i64,
    pub acr: Option<String>,
    pub amr: Vec<String>,
}

/// One person as an upstream vouches for them: the protocol-neutral record the broker
/// resolves to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamIdentity {
    pub connector: String,
    pub issuer: String,
    pub subject: String,
    /// Normalised attribute names (`national_id`, `name`, `phone`, `email`, `tax_code`, ...).
    pub attributes: BTreeMap<String, Vec<String>>,
    pub authn: Authn,
    /// Connector state kept with the SSO session (opaque to the broker): what logging out
    /// at the upstream needs, e.g. the SAML NameID and SessionIndex or the OIDC ID token.
    #[serde(default)]
    pub session: Option<String>,
}

impl UpstreamIdentity {
    /// The first value of an attribute.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

/// Why a connector could not complete a sign-in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// The upstream said no, or the person cancelled.
    #[error("the upstream refused the sign-in: {0}")]
    Refused(String),
    /// The upstream answered something we cannot accept.
    #[error("invalid answer from the upstream: {0}")]
    Invalid(String),
    /// The connector's own configuration is wrong.
    #[error("connector misconfigured: {0}")]
    Config(String),
    /// The upstream could not be reached in time.
    #[error("the upstream is unavailable: {0}")]
    Unavailable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in ConnectorKind::ALL {
            assert_eq!(ConnectorKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ConnectorKind::parse("ldap"), None);
    }

    #[test]
    fn first_attribute_value() {
        let mut attributes = BTreeMap::new();
        attributes.insert("national_id".to_string(), vec!["001204000123".to_string()]);
        let id = UpstreamIdentity {
            connector: "vneid".into(),
            issuer: "https://id.example".into(),
            subject: "abc".into(),
            attributes,
            authn: Authn::default(),
            session: None,
        };
        assert_eq!(id.attribute("national_id"), Some("001204000123"));
        assert_eq!(id.attribute("email"), None);
    }
}
