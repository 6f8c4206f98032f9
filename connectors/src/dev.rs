//! The demo upstream: a fixed list of people to sign in as, with no credentials. It exists so
//! the demo and the tests can walk a full login; never enable it on a real deployment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Authn, ConnectorError, UpstreamIdentity};

pub const ISSUER: &str = "urn:fedhub:connector:dev";
/// How a dev sign-in is described to relying parties.
pub const ACR: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevPerson {
    pub national_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DevConfig {
    pub people: Vec<DevPerson>,
}

impl DevConfig {
    pub fn parse(json: &str) -> Result<DevConfig, ConnectorError> {
        serde_json::from_str(json).map_err(|e| ConnectorError::Config(e.to_string()))
    }
}

/// The person chosen on the dev page, as an upstream would vouch for them.
pub fn complete(
    config: &DevConfig,
    connector_id: &str,
    chosen_national_id: &str,
    now: i64,
) -> Result<UpstreamIdentity, ConnectorError> {
    let person = config
        .people
        .iter()
        .find(|p| p.national_id == chosen_national_id)
        .ok_or_else(|| ConnectorError::Refused("not one of the demo people".into()))?;
    let mut attributes = BTreeMap::new();
    attributes.insert("national_id".to_string(), vec![person.national_id.clone()]);
    attributes.insert("name".to_string(), vec![person.name.clone()]);
    Ok(UpstreamIdentity {
        connector: connector_id.to_string(),
        issuer: ISSUER.to_string(),
        subject: person.national_id.clone(),
        attributes,
        authn: Authn {
            auth_time: now,
            acr: Some(ACR.to_string()),
            amr: vec!["dev".to_string()],
        },
        session: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_people_sign_in() {
        let cfg = DevConfig {
            people: vec![DevPerson {
                national_id: "001204012345".into(),
                name: "Nguyễn Văn An".into(),
            }],
        };
        let id = complete(&cfg, "dev", "001204012345", 42).unwrap();
        assert_eq!(id.attribute("name"), Some("Nguyễn Văn An"));
        assert_eq!(id.authn.auth_time, 42);
        assert!(matches!(
            complete(&cfg, "dev", "999999999999", 42),
            Err(ConnectorError::Refused(_))
        ));
        assert!(DevConfig::parse(r#"{"people": [], "password": "x"}"#).is_err());
    }
}
