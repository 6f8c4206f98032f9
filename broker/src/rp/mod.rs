//! Relying parties: the systems that sign people in through the hub. A ministry portal is a
//! SAML SP registered from its metadata; a gateway is an OIDC client (a later issue).

pub mod oidc;
pub mod refresh;
pub mod saml;

use diesel::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::schema::relying_parties::dsl as rp;
use crate::store::Db;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = crate::store::schema::relying_parties)]
pub struct RelyingParty {
    pub id: String,
    pub protocol: String,
    pub entity_id: String,
    pub display_name: String,
    pub owner_agency_code: String,
    /// Protocol settings as JSON (for SAML: [`saml::SamlSettings`]).
    #[serde(skip)]
    pub config: String,
    pub requires_membership: bool,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

pub fn get(conn: &mut Db, id: &str) -> Result<RelyingParty> {
    rp::relying_parties
        .find(id)
        .select(RelyingParty::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| Error::not_found("relying party", id))
}

/// By SAML entityID or OIDC client_id.
pub fn by_entity_id(conn: &mut Db, entity_id: &str) -> Result<Option<RelyingParty>> {
    Ok(rp::relying_parties
        .filter(rp::entity_id.eq(entity_id))
        .select(RelyingParty::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(conn: &mut Db) -> Result<Vec<RelyingParty>> {
    Ok(rp::relying_parties
        .select(RelyingParty::as_select())
        .order(rp::display_name.asc())
        .load(conn)?)
}
