//! A federation's identity providers, registered from its signed metadata aggregate: each
//! IdP becomes (or updates) a SAML connector whose id is derived from its entity ID, all in
//! the caller's one transaction. IdPs the federation no longer lists are disabled, not
//! deleted (their account links stay), and enabled again if they come back; an IdP an
//! operator disabled stays disabled whatever the aggregate says. The aggregate is verified before it gets here
//! ([`fedhub_metadata::xml::aggregate::verify`]).

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use fedhub_connectors::ConnectorKind;
use fedhub_metadata::xml::aggregate::{Aggregate, AggregateIdp, SkippedEntity};
use serde::Serialize;

use super::lookup::search_name;
use super::saml::SamlSettings;
use super::{check_id, Connector};
use crate::error::{Error, Result};
use crate::store::schema::{connectors as k, relying_parties, rp_connectors as rc};
use crate::store::Db;

/// Rows per multi-row INSERT (well under SQLite's bound-parameter limit).
const BATCH: usize = 500;

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub federation: String,
    pub added: Vec<String>,
    /// Changed metadata or name, or back in the aggregate after being disabled.
    pub updated: Vec<String>,
    pub unchanged: usize,
    /// In an earlier import of this federation, no longer in its aggregate.
    pub disabled: Vec<String>,
    /// In the aggregate, but disabled by an operator: kept disabled (metadata still updated).
    pub kept_disabled: Vec<String>,
    /// IdPs left out, with the reason (their own checks, or a clash with another connector).
    pub skipped: Vec<Skipped>,
    /// Entities that are not identity providers.
    pub other_entities: usize,
    /// Per relying party given: how many of the federation's connectors were newly allowed.
    pub allowed: Vec<(String, usize)>,
    /// Relying parties given that list no connectors: they offer every enabled one already.
    pub already_open: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub entity_id: String,
    pub reason: String,
}

impl From<SkippedEntity> for Skipped {
    fn from(s: SkippedEntity) -> Self {
        Skipped {
            entity_id: s.entity_id,
            reason: s.reason,
        }
    }
}

impl ImportReport {
    /// One line for the audit log.
    pub fn summary(&self) -> String {
        format!(
            "federation {}: {} added, {} updated, {} unchanged, {} disabled, {} kept disabled, {} skipped, {} other entities",
            self.federation,
            self.added.len(),
            self.updated.len(),
            self.unchanged,
            self.disabled.len(),
            self.kept_disabled.len(),
            self.skipped.len(),
            self.other_entities
        )
    }
}

/// The connector id of an entity: a readable slug of its host and a hash of the whole entity
/// ID, so it is the same at every import and two entities on one host differ.
pub fn connector_id_for(entity_id: &str) -> String {
    let host = url::Url::parse(entity_id)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| entity_id.to_string());
    let mut slug = String::new();
    for c in host.to_ascii_lowercase().chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && (slug.is_empty() || slug.ends_with('-'))) {
            slug.push(c);
        }
    }
    slug.truncate(29);
    let slug = slug.trim_end_matches('-');
    let digest = ring::digest::digest(&ring::digest::SHA256, entity_id.as_bytes());
    let hash = hex::encode(&digest.as_ref()[..5]);
    if slug.is_empty() {
        format!("saml-{hash}")
    } else {
        format!("{slug}-{hash}")
    }
}

/// What is known of a connector before the import.
#[derive(Queryable)]
struct Existing {
    id: String,
    entity_id: Option<String>,
    federation: Option<String>,
}

/// The stored settings of `idp`, keeping what the operator set on an earlier import.
fn settings_for(idp: &AggregateIdp, before: Option<&SamlSettings>) -> SamlSettings {
    SamlSettings {
        entity_id: idp.entity_id.clone(),
        metadata_xml: idp.metadata_xml.clone(),
        name_id_format: before.and_then(|s| s.name_id_format.clone()),
        attribute_map: before.map(|s| s.attribute_map.clone()).unwrap_or_default(),
    }
}

/// Registers or updates the aggregate's IdPs as connectors of `federation`, disables the
/// federation's connectors it no longer lists, and allows the federation's connectors to
/// `allow_rps`. Run it inside one write transaction: all of it, or nothing.
pub fn import(
    conn: &mut Db,
    federation: &str,
    agg: Aggregate,
    allow_rps: &[String],
    now: i64,
) -> Result<ImportReport> {
    check_id(federation).map_err(|_| {
        Error::invalid(
            "federation",
            "1-40 lowercase letters, digits or '-' (a short name for the federation)",
        )
    })?;
    for rp in allow_rps {
        let known = relying_parties::table
            .find(rp)
            .count()
            .get_result::<i64>(conn)?
            > 0;
        if !known {
            return Err(Error::not_found("relying party", rp));
        }
    }
    let mut report = ImportReport {
        federation: federation.to_string(),
        other_entities: agg.other_entities,
        skipped: agg.skipped.into_iter().map(Skipped::from).collect(),
        ..ImportReport::default()
    };
    // Every connector's id, entity ID and federation: a few short columns, read once.
    let known: Vec<Existing> = k::table
        .select((k::id, k::entity_id, k::federation))
        .load(conn)?;
    let by_id: HashMap<&str, &Existing> = known.iter().map(|e| (e.id.as_str(), e)).collect();
    let by_entity: HashMap<&str, &Existing> = known
        .iter()
        .filter_map(|e| e.entity_id.as_deref().map(|id| (id, e)))
        .collect();
    let ours: HashMap<String, Connector> = k::table
        .filter(k::federation.eq(federation))
        .select(Connector::as_select())
        .load(conn)?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    // Which of them an earlier import disabled for leaving the aggregate.
    let left: HashSet<String> = k::table
        .filter(k::federation.eq(federation))
        .filter(k::left_federation_at.is_not_null())
        .select(k::id)
        .load(conn)?
        .into_iter()
        .collect();

    let mut seen: HashSet<String> = HashSet::new();
    let mut fresh = Vec::new();
    let mut changed = Vec::new();
    for idp in &agg.idps {
        let id = connector_id_for(&idp.entity_id);
        let skip = |reason: String| Skipped {
            entity_id: idp.entity_id.clone(),
            reason,
        };
        if !seen.insert(idp.entity_id.clone()) {
            report
                .skipped
                .push(skip("listed twice in the aggregate".into()));
            continue;
        }
        if let Some(other) = by_entity.get(idp.entity_id.as_str()) {
            if other.federation.as_deref() != Some(federation) {
                let how = match &other.federation {
                    Some(f) => format!("by federation {f}"),
                    None => "on its own".into(),
                };
                report.skipped.push(skip(format!(
                    "already registered {how} as connector {}",
                    other.id
                )));
                continue;
            }
        }
        if let Some(other) = by_id.get(id.as_str()) {
            if other.entity_id.as_deref() != Some(idp.entity_id.as_str()) {
                report.skipped.push(skip(format!(
                    "its connector id {id} is taken by another connector"
                )));
                continue;
            }
        }
        let search = search_name(&idp.display_name, Some(&idp.entity_id), &idp.scopes);
        match ours.get(&id) {
            Some(before) => {
                // Disabled, and not by an import: an operator took it out of use.
                let by_operator = !before.enabled && !left.contains(&id);
                if by_operator {
                    report.kept_disabled.push(id.clone());
                }
                let previous = SamlSettings::parse(&before.config).ok();
                let settings = settings_for(idp, previous.as_ref());
                if previous.as_ref() == Some(&settings)
                    && before.display_name == idp.display_name
                    && (before.enabled || by_operator)
                {
                    report.unchanged += 1;
                    continue;
                }
                let config = serde_json::to_string(&settings).map_err(Error::internal)?;
                changed.push((id, idp.display_name.clone(), config, search, !by_operator));
            }
            None => {
                let config =
                    serde_json::to_string(&settings_for(idp, None)).map_err(Error::internal)?;
                fresh.push((
                    id,
                    idp.display_name.clone(),
                    config,
                    search,
                    idp.entity_id.clone(),
                ));
            }
        }
    }

    for chunk in fresh.chunks(BATCH) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(id, name, config, search, entity_id)| {
                (
                    k::id.eq(id),
                    k::kind.eq(ConnectorKind::Saml.as_str()),
                    k::display_name.eq(name),
                    k::config.eq(config),
                    k::enabled.eq(true),
                    k::created_at.eq(now),
                    k::updated_at.eq(now),
                    k::entity_id.eq(Some(entity_id)),
                    k::search_name.eq(search),
                    k::federation.eq(Some(federation)),
                )
            })
            .collect();
        // Many rows per statement: `MultiConnection` has no batch insert, each engine does.
        match conn {
            Db::Sqlite(c) => diesel::insert_into(k::table).values(rows).execute(c)?,
            Db::Postgres(c) => diesel::insert_into(k::table).values(rows).execute(c)?,
        };
    }
    report.added = fresh.into_iter().map(|(id, ..)| id).collect();
    for (id, name, config, search, enable) in &changed {
        diesel::update(k::table.find(id))
            .set((
                k::display_name.eq(name),
                k::config.eq(config),
                k::search_name.eq(search),
                k::enabled.eq(*enable),
                k::left_federation_at.eq(None::<i64>),
                k::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    report.updated = changed.into_iter().map(|(id, ..)| id).collect();

    let listed: HashSet<String> = agg
        .idps
        .iter()
        .map(|i| connector_id_for(&i.entity_id))
        .collect();
    let mut gone: Vec<String> = ours
        .values()
        .filter(|c| c.enabled && !listed.contains(&c.id))
        .map(|c| c.id.clone())
        .collect();
    gone.sort();
    for chunk in gone.chunks(BATCH) {
        diesel::update(k::table.filter(k::id.eq_any(chunk)))
            .set((
                k::enabled.eq(false),
                k::left_federation_at.eq(Some(now)),
                k::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    report.disabled = gone;

    if !allow_rps.is_empty() {
        let mut members: Vec<String> = report
            .added
            .iter()
            .chain(report.updated.iter())
            .cloned()
            .collect();
        members.extend(
            ours.values()
                .filter(|c| c.enabled && listed.contains(&c.id))
                .map(|c| c.id.clone()),
        );
        members.sort();
        members.dedup();
        for rp in allow_rps {
            allow(conn, rp, &members, &mut report)?;
        }
    }
    crate::store::counters::bump(conn, crate::store::counters::CONNECTORS)?;
    report.added.sort();
    report.updated.sort();
    report.kept_disabled.sort();
    Ok(report)
}

/// Adds `members` to what `rp` offers, unless it offers every enabled connector already.
fn allow(conn: &mut Db, rp: &str, members: &[String], report: &mut ImportReport) -> Result<()> {
    let already: HashSet<String> = rc::table
        .filter(rc::rp_id.eq(rp))
        .select(rc::connector_id)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    if already.is_empty() {
        report.already_open.push(rp.to_string());
        return Ok(());
    }
    let missing: Vec<&String> = members.iter().filter(|m| !already.contains(*m)).collect();
    for chunk in missing.chunks(BATCH) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|id| (rc::rp_id.eq(rp), rc::connector_id.eq(*id)))
            .collect();
        match conn {
            Db::Sqlite(c) => diesel::insert_into(rc::table).values(rows).execute(c)?,
            Db::Postgres(c) => diesel::insert_into(rc::table).values(rows).execute(c)?,
        };
    }
    report.allowed.push((rp.to_string(), missing.len()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::connector_id_for;

    #[test]
    fn connector_ids_are_stable_readable_and_valid() {
        let a = connector_id_for("https://idp.dai-hoc.edu.vn/idp/shibboleth");
        assert_eq!(
            a,
            connector_id_for("https://idp.dai-hoc.edu.vn/idp/shibboleth")
        );
        assert!(a.starts_with("idp-dai-hoc-edu-vn-"), "{a}");
        assert_ne!(a, connector_id_for("https://idp.dai-hoc.edu.vn/idp2"));
        let long = connector_id_for(&format!("https://{}.example.vn/x", "a".repeat(80)));
        for id in [a, long, connector_id_for("urn:mace:example:idp")] {
            assert!(super::check_id(&id).is_ok(), "{id}");
        }
    }
}
