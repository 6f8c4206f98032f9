//! Agencies: the tree of state bodies, keyed by agency identifier code. A code's level and
//! parent come from the code itself; a child is stored only when its parent already is.

use std::collections::BTreeMap;

use diesel::prelude::*;
use fedhub_identifiers::AgencyCode;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::schema::agencies::dsl as a;
use crate::store::{counters, Db};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = crate::store::schema::agencies)]
pub struct Agency {
    pub code: String,
    pub parent_code: Option<String>,
    pub level: i32,
    pub name_vi: String,
    pub name_en: Option<String>,
    pub kind: String,
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What kind of body an agency is.
pub const KINDS: &[&str] = &["ministry", "government_agency", "province", "unit", "other"];
/// How sure we are of the code: `official` (an official text), `observed` (live use),
/// `secondary` (a secondary list), `derived` (reconstructed), `local` (registered here).
pub const SOURCES: &[&str] = &["official", "observed", "secondary", "derived", "local"];

/// An agency as given by a person or a file, not yet checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyInput {
    pub code: String,
    pub name_vi: String,
    #[serde(default)]
    pub name_en: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    /// Free text for people reading the file (e.g. why a code is uncertain); not stored.
    #[serde(default)]
    pub note: Option<String>,
}

/// Columns an agency CSV may have.
pub const CSV_COLUMNS: &[&str] = &["code", "name_vi", "name_en", "kind", "source", "note"];

/// An agency whose fields all passed their rules (the parent is checked against the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAgency {
    pub code: AgencyCode,
    pub name_vi: String,
    pub name_en: Option<String>,
    pub kind: String,
    pub source: String,
}

impl AgencyInput {
    pub fn validate(&self) -> Result<ValidAgency> {
        let code = AgencyCode::parse(&self.code)?;
        let name_vi = self.name_vi.trim();
        if name_vi.is_empty() {
            return Err(Error::invalid("name_vi", "the Vietnamese name is required"));
        }
        if name_vi.chars().count() > 300 {
            return Err(Error::invalid("name_vi", "at most 300 characters"));
        }
        let kind = pick("kind", self.kind.as_deref(), KINDS, default_kind(&code))?;
        let source = pick("source", self.source.as_deref(), SOURCES, "local")?;
        let name_en = self
            .name_en
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from);
        Ok(ValidAgency {
            code,
            name_vi: name_vi.to_string(),
            name_en,
            kind,
            source,
        })
    }
}

fn default_kind(code: &AgencyCode) -> &'static str {
    match (code.level(), code.level1().chars().next()) {
        (1, Some('G')) => "ministry",
        (1, Some('H')) => "province",
        (1, _) => "other",
        _ => "unit",
    }
}

fn pick(field: &str, value: Option<&str>, allowed: &[&str], default: &str) -> Result<String> {
    match value.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default.to_string()),
        Some(v) if allowed.contains(&v) => Ok(v.to_string()),
        Some(v) => Err(Error::invalid(
            field,
            format!("{v:?} is not one of: {}", allowed.join(", ")),
        )),
    }
}

pub fn get(conn: &mut Db, code: &AgencyCode) -> Result<Agency> {
    find(conn, code)?.ok_or_else(|| Error::not_found("agency", code.as_str()))
}

pub fn find(conn: &mut Db, code: &AgencyCode) -> Result<Option<Agency>> {
    Ok(a::agencies
        .find(code.as_str())
        .select(Agency::as_select())
        .first(conn)
        .optional()?)
}

/// Agencies directly under `parent`, or the level-1 agencies when `parent` is `None`.
pub fn list(conn: &mut Db, parent: Option<&AgencyCode>) -> Result<Vec<Agency>> {
    let query = a::agencies
        .select(Agency::as_select())
        .order(a::code.asc())
        .into_boxed();
    let query = match parent {
        Some(p) => query.filter(a::parent_code.eq(p.as_str().to_string())),
        None => query.filter(a::parent_code.is_null()),
    };
    Ok(query.load(conn)?)
}

pub fn count(conn: &mut Db) -> Result<i64> {
    Ok(a::agencies.count().get_result(conn)?)
}

/// Registers one agency. Its parent must already be registered.
pub fn add(conn: &mut Db, agency: &ValidAgency, now: i64) -> Result<Agency> {
    if find(conn, &agency.code)?.is_some() {
        return Err(Error::conflict(
            "agency_code",
            format!("{} is already registered", agency.code),
        ));
    }
    insert(conn, agency, now)?;
    counters::bump(conn, counters::AGENCIES)?;
    get(conn, &agency.code)
}

fn insert(conn: &mut Db, agency: &ValidAgency, now: i64) -> Result<()> {
    let parent = agency.code.parent();
    if let Some(p) = &parent {
        if find(conn, p)?.is_none() {
            return Err(Error::invalid(
                "agency_code",
                format!(
                    "parent agency {p} of {} is not registered; register or import it first",
                    agency.code
                ),
            ));
        }
    }
    diesel::insert_into(a::agencies)
        .values((
            a::code.eq(agency.code.as_str()),
            a::parent_code.eq(parent.as_ref().map(|p| p.as_str().to_string())),
            a::level.eq(i32::from(agency.code.level())),
            a::name_vi.eq(&agency.name_vi),
            a::name_en.eq(&agency.name_en),
            a::kind.eq(&agency.kind),
            a::source.eq(&agency.source),
            a::created_at.eq(now),
            a::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// Imports agencies from CSV (header `code,name_vi[,name_en,kind,source,note]`). Every row
/// is checked first; any bad row refuses the whole file with each problem and its line, so
/// nothing is half-imported. Rows already present are updated in place. Parents may come
/// later in the file than their children. Run inside one write transaction.
pub fn import_csv(conn: &mut Db, csv_text: &str, now: i64) -> Result<ImportReport> {
    let rows = parse_csv(csv_text)?;
    let mut problems = Vec::new();
    let mut by_code: BTreeMap<AgencyCode, (usize, ValidAgency)> = BTreeMap::new();
    for (line, input) in rows {
        match input.validate() {
            Ok(v) => {
                if let Some((first, _)) = by_code.get(&v.code) {
                    problems.push(format!(
                        "line {line}: agency_code {} repeats line {first}",
                        v.code
                    ));
                } else {
                    by_code.insert(v.code.clone(), (line, v));
                }
            }
            Err(e) => problems.push(format!("line {line}: {e}")),
        }
    }
    // Parents are inserted before children: sort by level.
    let mut ordered: Vec<_> = by_code.values().collect();
    ordered.sort_by_key(|(_, v)| (v.code.level(), v.code.clone()));
    for (line, v) in &ordered {
        if let Some(p) = v.code.parent() {
            if !by_code.contains_key(&p) && find(conn, &p)?.is_none() {
                problems.push(format!("line {line}: agency_code {}: parent agency {p} is neither registered nor in the file", v.code));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::invalid("file", summarise(&problems)));
    }
    let mut report = ImportReport::default();
    for (_, v) in ordered {
        match find(conn, &v.code)? {
            None => {
                insert(conn, v, now)?;
                report.added += 1;
            }
            Some(old) if same(&old, v) => report.unchanged += 1,
            Some(_) => {
                diesel::update(a::agencies.find(v.code.as_str()))
                    .set((
                        a::name_vi.eq(&v.name_vi),
                        a::name_en.eq(&v.name_en),
                        a::kind.eq(&v.kind),
                        a::source.eq(&v.source),
                        a::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                report.updated += 1;
            }
        }
    }
    if report.added + report.updated > 0 {
        counters::bump(conn, counters::AGENCIES)?;
    }
    Ok(report)
}

fn same(old: &Agency, new: &ValidAgency) -> bool {
    old.name_vi == new.name_vi
        && old.name_en == new.name_en
        && old.kind == new.kind
        && old.source == new.source
}

fn summarise(problems: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut text = format!("{} problem(s), nothing imported: ", problems.len());
    text.push_str(
        &problems
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("; "),
    );
    if problems.len() > SHOWN {
        text.push_str(&format!("; and {} more", problems.len() - SHOWN));
    }
    text
}

/// Rows with the file line each starts on (the header is line 1). Unknown columns are
/// refused: a typo in a header would otherwise drop a column silently.
fn parse_csv(text: &str) -> Result<Vec<(usize, AgencyInput)>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| Error::invalid("file", format!("cannot read the CSV header: {e}")))?
        .clone();
    for column in headers.iter() {
        if !CSV_COLUMNS.contains(&column) {
            return Err(Error::invalid(
                "file",
                format!(
                    "unknown column `{column}` in the header; columns are: {}",
                    CSV_COLUMNS.join(", ")
                ),
            ));
        }
    }
    for required in ["code", "name_vi"] {
        if !headers.iter().any(|h| h == required) {
            return Err(Error::invalid(
                "file",
                format!("the CSV header must have a `{required}` column"),
            ));
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::invalid("file", e.to_string()))?;
        let line = line_of(text, record.position().map_or(0, |p| p.byte()));
        let row: AgencyInput = record
            .deserialize(Some(&headers))
            .map_err(|e| Error::invalid("file", format!("line {line}: {e}")))?;
        rows.push((line, row));
    }
    if rows.is_empty() {
        return Err(Error::invalid("file", "the CSV has no rows"));
    }
    Ok(rows)
}

/// The file line a record starts on. The reader reports where it began looking, before any
/// blank lines it skipped, so step over those first.
fn line_of(text: &str, offset: u64) -> usize {
    let bytes = text.as_bytes();
    let mut at = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    while at < bytes.len() && (bytes[at] == b'\n' || bytes[at] == b'\r') {
        at += 1;
    }
    1 + bytes[..at].iter().filter(|b| **b == b'\n').count()
}

/// The level-1 agencies shipped with fedhub (`data/agencies.csv`): ministries and the 34
/// provinces after 1 July 2025, each marked with how sure its code is.
pub const BUILTIN_CSV: &str = include_str!("../../../data/agencies.csv");
