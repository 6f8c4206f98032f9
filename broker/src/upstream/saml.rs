//! SAML identity providers registered as connectors: their metadata (checked when stored),
//! the NameID format to ask for and attribute names beyond the defaults.

use std::collections::BTreeMap;

use fedhub_connectors::saml::{SamlUpstream, DEFAULT_ATTRIBUTE_NAMES};
use fedhub_connectors::ConnectorKind;
use fedhub_metadata::xml::{idp, Limits};
use serde::{Deserialize, Serialize};

use super::{check_id, insert, Connector};
use crate::error::{Error, Result};
use crate::store::Db;

/// Stored settings of a SAML connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlSettings {
    /// The IdP's entity ID (kept apart to match Scoping hints without parsing metadata).
    pub entity_id: String,
    /// The IdP's metadata as registered.
    pub metadata_xml: String,
    #[serde(default)]
    pub name_id_format: Option<String>,
    /// `SAML Name or FriendlyName → hub attribute`, before the built-in names.
    #[serde(default)]
    pub attribute_map: BTreeMap<String, String>,
}

impl SamlSettings {
    pub fn parse(config: &str) -> std::result::Result<SamlSettings, serde_json::Error> {
        serde_json::from_str(config)
    }
}

/// A request to register a SAML identity provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlRegistration {
    pub id: String,
    pub display_name: String,
    /// The IdP's SAML metadata (one EntityDescriptor with an IDPSSODescriptor).
    pub metadata_xml: String,
    #[serde(default)]
    pub name_id_format: Option<String>,
    #[serde(default)]
    pub attribute_map: Option<BTreeMap<String, String>>,
}

/// The hub attributes an upstream attribute may map to.
fn known_attribute(name: &str) -> bool {
    DEFAULT_ATTRIBUTE_NAMES.iter().any(|(_, n)| *n == name)
}

/// Registers a SAML IdP. Refused: metadata the XML layer will not accept, an IdP already
/// registered under another connector, a mapping to an attribute the hub does not know.
pub fn add_saml(conn: &mut Db, reg: &SamlRegistration, now: i64) -> Result<Connector> {
    check_id(&reg.id)?;
    if reg.display_name.trim().is_empty() {
        return Err(Error::invalid("display_name", "must not be empty"));
    }
    let md = idp::parse(reg.metadata_xml.as_bytes(), Limits::default())
        .map_err(|e| Error::invalid("metadata", e.to_string()))?;
    if md.valid_until.is_some_and(|t| t <= now) {
        return Err(Error::invalid(
            "metadata",
            "the metadata has expired (validUntil is in the past)",
        ));
    }
    let map = reg.attribute_map.clone().unwrap_or_default();
    if let Some((from, to)) = map.iter().find(|(_, to)| !known_attribute(to)) {
        let mut known: Vec<&str> = DEFAULT_ATTRIBUTE_NAMES.iter().map(|(_, n)| *n).collect();
        known.dedup();
        return Err(Error::invalid(
            "attribute_map",
            format!(
                "{from} maps to {to}, which is not an attribute the hub knows ({})",
                known.join(", ")
            ),
        ));
    }
    if let Some(other) = registered_as(conn, &md.entity_id)? {
        return Err(Error::Conflict {
            field: "metadata".into(),
            rule: format!(
                "{} is already registered as connector {other}",
                md.entity_id
            ),
        });
    }
    let settings = SamlSettings {
        entity_id: md.entity_id,
        metadata_xml: reg.metadata_xml.clone(),
        name_id_format: reg.name_id_format.clone().filter(|f| !f.trim().is_empty()),
        attribute_map: map,
    };
    let config = serde_json::to_string(&settings).map_err(Error::internal)?;
    insert(
        conn,
        &reg.id,
        ConnectorKind::Saml,
        reg.display_name.trim(),
        &config,
        now,
    )
}

/// The SAML connector already registered for `entity_id` (the index, not a scan).
pub(crate) fn registered_as(conn: &mut Db, entity_id: &str) -> Result<Option<String>> {
    use crate::store::schema::connectors as k;
    use diesel::prelude::*;
    Ok(k::table
        .filter(k::entity_id.eq(entity_id))
        .filter(k::kind.eq(ConnectorKind::Saml.as_str()))
        .select(k::id)
        .order(k::id.asc())
        .first(conn)
        .optional()?)
}

/// Where the hub's SP side of a SAML connector lives.
pub fn sp_urls(base_url: &str, connector_id: &str) -> (String, String, String) {
    let root = format!("{base_url}/connectors/{connector_id}/saml");
    (
        format!("{root}/metadata"),
        format!("{root}/acs"),
        format!("{root}/slo"),
    )
}

/// A SAML connector ready to use at `now`; metadata past its `validUntil` is not trusted.
pub fn saml_upstream(
    c: &Connector,
    base_url: &str,
    clock_skew: i64,
    now: i64,
) -> Result<SamlUpstream> {
    let s = SamlSettings::parse(&c.config)
        .map_err(|e| Error::Internal(format!("settings of connector {}: {e}", c.id)))?;
    let idp = idp::parse(s.metadata_xml.as_bytes(), Limits::default())
        .map_err(|e| Error::Internal(format!("metadata of connector {}: {e}", c.id)))?;
    if idp.valid_until.is_some_and(|t| t <= now) {
        return Err(Error::Unavailable(format!(
            "the metadata of connector {} has expired; register its current metadata",
            c.id
        )));
    }
    let (sp_entity_id, acs_url, slo_url) = sp_urls(base_url, &c.id);
    Ok(SamlUpstream {
        connector_id: c.id.clone(),
        idp,
        sp_entity_id,
        acs_url,
        slo_url,
        name_id_format: s.name_id_format,
        attribute_map: s.attribute_map,
        clock_skew,
    })
}
