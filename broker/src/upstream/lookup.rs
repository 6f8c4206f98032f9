//! Indexed lookups of a relying party's connectors: the one a hint names (entity ID, issuer
//! or id), the one a sign-in picked, and what the sign-in page offers. Each is a bounded
//! number of index reads, however many identity providers a federation's aggregate brought
//! (`for_rp` reads them all; it stays for the admin views).

use diesel::dsl::exists;
use diesel::prelude::*;
use fedhub_connectors::ConnectorKind;

use super::Connector;
use crate::error::Result;
use crate::store::schema::{connectors as k, rp_connectors as rc};
use crate::store::Db;

/// What the sign-in page matches a search against: the display name (lower case, accents
/// folded), the entity ID or issuer, and the organisation's domains.
pub fn search_name(display_name: &str, entity_id: Option<&str>, scopes: &[String]) -> String {
    let mut out = crate::directory::fold_name(display_name);
    for extra in entity_id
        .into_iter()
        .chain(scopes.iter().map(String::as_str))
    {
        out.push(' ');
        out.push_str(&extra.to_lowercase());
    }
    out
}

/// The entity ID (SAML) or issuer (OIDC) a stored configuration answers to, for the index.
pub fn entity_id_of(kind: ConnectorKind, config: &str) -> Option<String> {
    match kind {
        ConnectorKind::Saml => super::saml::SamlSettings::parse(config)
            .ok()
            .map(|s| s.entity_id),
        ConnectorKind::Oidc => serde_json::from_str::<super::OidcSettings>(config)
            .ok()
            .map(|s| s.issuer),
        _ => None,
    }
}

/// Whether the relying party lists its connectors (otherwise it offers every enabled one).
fn lists_connectors(conn: &mut Db, rp_id: &str) -> Result<bool> {
    Ok(diesel::select(exists(rc::table.filter(rc::rp_id.eq(rp_id)))).get_result(conn)?)
}

fn listed(conn: &mut Db, rp_id: &str, connector_id: &str) -> Result<bool> {
    Ok(diesel::select(exists(
        rc::table
            .filter(rc::rp_id.eq(rp_id))
            .filter(rc::connector_id.eq(connector_id)),
    ))
    .get_result(conn)?)
}

/// The enabled connector `id` if the relying party offers it.
pub fn allowed(conn: &mut Db, rp_id: &str, id: &str) -> Result<Option<Connector>> {
    let found = k::table
        .find(id)
        .filter(k::enabled.eq(true))
        .select(Connector::as_select())
        .get_result(conn)
        .optional()?;
    match found {
        Some(c) if !lists_connectors(conn, rp_id)? || listed(conn, rp_id, id)? => Ok(Some(c)),
        _ => Ok(None),
    }
}

/// The connector a relying party's hint names ([`Connector::answers_to`]: its id, or the
/// entity ID or issuer it registered), among those the relying party offers; the demo
/// connector is never hinted at.
pub fn by_hint(conn: &mut Db, rp_id: &str, hint: &str) -> Result<Option<Connector>> {
    let named: Vec<Connector> = k::table
        .filter(k::id.eq(hint).or(k::entity_id.eq(hint)))
        .filter(k::enabled.eq(true))
        .filter(k::kind.ne(ConnectorKind::Dev.as_str()))
        .select(Connector::as_select())
        .order(k::id.asc())
        .limit(20)
        .load(conn)?;
    if named.is_empty() || !lists_connectors(conn, rp_id)? {
        return Ok(named.into_iter().next());
    }
    for c in named {
        if listed(conn, rp_id, &c.id)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// What the sign-in page offers a relying party's users.
#[derive(Debug, Clone, Default)]
pub struct Offer {
    /// Every offered connector but SAML identity providers (national IdP, USB token,
    /// SIM-PKI, demo), by id.
    pub others: Vec<Connector>,
    /// Whether more than `few` SAML identity providers are offered.
    pub many: bool,
    /// All of them when there are at most `few`; otherwise the first `limit` + 1 that match
    /// the search (none without one), by display name.
    pub saml: Vec<Connector>,
}

/// The connectors the sign-in page shows: see [`Offer`]. Each query walks an index and stops
/// after a page: the relying party's list is probed per candidate (`EXISTS` on its primary
/// key), never read whole, so the cost does not grow with the federation.
pub fn offer(
    conn: &mut Db,
    rp_id: &str,
    search: Option<&str>,
    few: i64,
    limit: i64,
) -> Result<Offer> {
    let restricted = lists_connectors(conn, rp_id)?;
    let rp = rp_id.to_string();
    let base = || {
        let mut q = k::table.filter(k::enabled.eq(true)).into_boxed();
        if restricted {
            q = q.filter(exists(
                rc::table
                    .filter(rc::rp_id.eq(rp.clone()))
                    .filter(rc::connector_id.eq(k::id)),
            ));
        }
        q
    };
    let saml = ConnectorKind::Saml.as_str();
    // Listed, not `!= saml`: an index range per kind, never a walk past the SAML IdPs.
    let other_kinds: Vec<&str> = ConnectorKind::ALL
        .iter()
        .filter(|k| **k != ConnectorKind::Saml)
        .map(|k| k.as_str())
        .collect();
    let others: Vec<Connector> = base()
        .filter(k::kind.eq_any(other_kinds))
        .select(Connector::as_select())
        .order(k::id.asc())
        .load(conn)?;
    let first: Vec<String> = base()
        .filter(k::kind.eq(saml))
        .select(k::id)
        .order((k::display_name.asc(), k::id.asc()))
        .limit(few + 1)
        .load(conn)?;
    let many = first.len() as i64 > few;
    let folded = search
        .map(crate::directory::fold_name)
        .filter(|s| !s.is_empty());
    let shown: Vec<Connector> = if !many {
        base()
            .filter(k::kind.eq(saml))
            .select(Connector::as_select())
            .order(k::id.asc())
            .load(conn)?
    } else if let Some(text) = folded {
        let pattern = format!("%{}%", escape_like(&text));
        base()
            .filter(k::kind.eq(saml))
            .filter(k::search_name.like(pattern).escape('\\'))
            .select(Connector::as_select())
            .order((k::display_name.asc(), k::id.asc()))
            .limit(limit + 1)
            .load(conn)?
    } else {
        Vec::new()
    };
    Ok(Offer {
        others,
        many,
        saml: shown,
    })
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
