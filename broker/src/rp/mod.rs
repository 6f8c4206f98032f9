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
    /// Whether its people may claim their legacy accounts themselves at `/claim/{id}`.
    pub claim_enabled: bool,
    /// Where conversions are POSTed, signed (none: the conversion feed only).
    pub webhook_url: Option<String>,
}

/// What every registration stores, whatever the protocol.
pub struct NewRelyingParty<'a> {
    pub protocol: &'static str,
    /// SAML entityID or OIDC client_id; `id_field` names it in errors.
    pub entity_id: &'a str,
    pub id_field: &'static str,
    pub display_name: Option<&'a str>,
    pub owner: &'a fedhub_identifiers::AgencyCode,
    /// Protocol settings, already serialised.
    pub config: String,
    pub requires_membership: bool,
}

/// Stores a relying party after the checks every protocol shares: the owner agency is
/// registered and the entityID / client_id is new.
pub fn insert(conn: &mut Db, new: NewRelyingParty<'_>, now: i64) -> Result<RelyingParty> {
    if crate::directory::agencies::find(conn, new.owner)?.is_none() {
        return Err(Error::invalid(
            "owner_agency_code",
            format!("agency {} is not registered in the directory", new.owner),
        ));
    }
    if by_entity_id(conn, new.entity_id)?.is_some() {
        return Err(Error::conflict(
            new.id_field,
            format!("{} is already registered", new.entity_id),
        ));
    }
    let id = crate::store::new_id();
    let display_name = new
        .display_name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(new.entity_id);
    diesel::insert_into(rp::relying_parties)
        .values((
            rp::id.eq(&id),
            rp::protocol.eq(new.protocol),
            rp::entity_id.eq(new.entity_id),
            rp::display_name.eq(display_name),
            rp::owner_agency_code.eq(new.owner.as_str()),
            rp::config.eq(&new.config),
            rp::requires_membership.eq(new.requires_membership),
            rp::enabled.eq(true),
            rp::created_at.eq(now),
            rp::updated_at.eq(now),
        ))
        .execute(conn)?;
    get(conn, &id)
}

pub fn get(conn: &mut Db, id: &str) -> Result<RelyingParty> {
    rp::relying_parties
        .find(id)
        .select(RelyingParty::as_select())
        .get_result(conn)
        .optional()?
        .ok_or_else(|| Error::not_found("relying party", id))
}

/// By SAML entityID or OIDC client_id.
pub fn by_entity_id(conn: &mut Db, entity_id: &str) -> Result<Option<RelyingParty>> {
    Ok(rp::relying_parties
        .filter(rp::entity_id.eq(entity_id))
        .select(RelyingParty::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn list(conn: &mut Db) -> Result<Vec<RelyingParty>> {
    Ok(rp::relying_parties
        .select(RelyingParty::as_select())
        .order(rp::display_name.asc())
        .load(conn)?)
}

/// Turns the self-service claim of legacy accounts (`/claim/{id}`) on or off.
pub fn set_claim_enabled(conn: &mut Db, id: &str, on: bool, now: i64) -> Result<RelyingParty> {
    let n = diesel::update(rp::relying_parties.find(id))
        .set((rp::claim_enabled.eq(on), rp::updated_at.eq(now)))
        .execute(conn)?;
    if n != 1 {
        return Err(Error::not_found("relying party", id));
    }
    get(conn, id)
}

/// By id, or else by SAML entityID / OIDC client_id (what the CLI accepts).
pub fn by_id_or_entity_id(conn: &mut Db, name: &str) -> Result<RelyingParty> {
    match get(conn, name) {
        Err(Error::NotFound { .. }) => {
            by_entity_id(conn, name)?.ok_or_else(|| Error::not_found("relying party", name))
        }
        other => other,
    }
}
