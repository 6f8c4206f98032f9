//! Bulk conversion from a CSV of pairs, with a dry run and per-row results; the operator
//! chooses explicitly between all-or-nothing (one transaction: one bad row converts nothing)
//! and per-row (each row its own savepoint: good rows convert, bad rows say why).

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::convert::{self, Report, Request, Source};
use crate::admin::memberships::Admin;
use crate::error::{Error, Result};
use crate::oidc::logout::Target;
use crate::store::schema::{accounts, legacy_accounts as la};
use crate::store::Db;

/// How a bulk conversion commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Commit {
    AllOrNothing,
    PerRow,
}

/// One row's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    /// 1-based, the header not counted.
    pub row: usize,
    pub source: String,
    pub target: String,
    pub ok: bool,
    pub error: Option<String>,
    pub report: Option<Report>,
}

/// An account named by its id, CCCD/CMND, tax code or agency code.
fn account_named(c: &mut Db, name: &str) -> Result<String> {
    let name = name.trim();
    let found: Option<String> = accounts::table
        .filter(
            accounts::id
                .eq(name)
                .or(accounts::national_id.eq(name))
                .or(accounts::tax_code.eq(name))
                .or(accounts::agency_code.eq(name)),
        )
        .select(accounts::id)
        .first(c)
        .optional()?;
    found.ok_or_else(|| Error::not_found("account", name))
}

/// `legacy:USERNAME` (a legacy account of the relying party) or an account (id, CCCD, ...).
fn source_named(c: &mut Db, rp_id: &str, name: &str) -> Result<Source> {
    match name.trim().strip_prefix("legacy:") {
        Some(username) => {
            let id: Option<String> = la::table
                .filter(la::rp_id.eq(rp_id))
                .filter(la::username.eq(username.trim()))
                .select(la::id)
                .get_result(c)
                .optional()?;
            Ok(Source::Legacy {
                legacy_id: id.ok_or_else(|| Error::not_found("legacy account", username))?,
            })
        }
        None => Ok(Source::Handover {
            account_id: account_named(c, name)?,
        }),
    }
}

/// Parses `source,target` rows (a header line `source,target` is required).
pub fn parse_pairs(csv_text: &str) -> Result<Vec<(String, String)>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(csv_text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| Error::invalid("file", e.to_string()))?
        .clone();
    if headers.iter().collect::<Vec<_>>() != ["source", "target"] {
        return Err(Error::invalid(
            "file",
            "the first line must be the header `source,target`",
        ));
    }
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Error::invalid("file", format!("row {}: {e}", i + 1)))?;
        match (record.get(0), record.get(1), record.len()) {
            (Some(s), Some(t), 2) if !s.is_empty() && !t.is_empty() => {
                out.push((s.to_string(), t.to_string()))
            }
            _ => {
                return Err(Error::invalid(
                    "file",
                    format!("row {}: expected two values, source and target", i + 1),
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(Error::invalid("file", "no rows"));
    }
    Ok(out)
}

fn one(
    c: &mut Db,
    admin: &Admin,
    rp_id: &str,
    source: &str,
    target: &str,
    dry_run: bool,
    now: i64,
) -> Result<(Report, Vec<Target>)> {
    let req = Request {
        rp_id: rp_id.to_string(),
        source: source_named(c, rp_id, source)?,
        target_account_id: account_named(c, target)?,
        dry_run,
    };
    convert::convert(c, admin, &req, now)
}

/// Converts every pair. All-or-nothing: the first failure rolls everything back (and the
/// results say which row failed and why). Per-row: each row commits or fails alone.
pub fn bulk(
    c: &mut Db,
    admin: &Admin,
    rp_id: &str,
    pairs: &[(String, String)],
    commit: Commit,
    dry_run: bool,
    now: i64,
) -> Result<(Vec<RowResult>, Vec<Target>)> {
    crate::rp::get(c, rp_id)?;
    let mut results = Vec::new();
    let mut backchannel = Vec::new();
    let mut failed = false;
    let run = |c: &mut Db,
               results: &mut Vec<RowResult>,
               backchannel: &mut Vec<Target>,
               failed: &mut bool| {
        for (i, (source, target)) in pairs.iter().enumerate() {
            // Each row in its own savepoint, so a failed row leaves nothing behind.
            let outcome = c.transaction(|c| one(c, admin, rp_id, source, target, dry_run, now));
            match outcome {
                Ok((report, targets)) => {
                    backchannel.extend(targets);
                    results.push(RowResult {
                        row: i + 1,
                        source: source.clone(),
                        target: target.clone(),
                        ok: true,
                        error: None,
                        report: Some(report),
                    });
                }
                Err(e) => {
                    *failed = true;
                    results.push(RowResult {
                        row: i + 1,
                        source: source.clone(),
                        target: target.clone(),
                        ok: false,
                        error: Some(e.to_string()),
                        report: None,
                    });
                    if commit == Commit::AllOrNothing {
                        break;
                    }
                }
            }
        }
    };
    match commit {
        Commit::PerRow => run(c, &mut results, &mut backchannel, &mut failed),
        Commit::AllOrNothing => {
            let r = c.transaction::<(), Error, _>(|c| {
                run(c, &mut results, &mut backchannel, &mut failed);
                if failed {
                    Err(Error::invalid(
                        "file",
                        "a row failed: nothing was converted",
                    ))
                } else {
                    Ok(())
                }
            });
            if r.is_err() {
                // Rolled back: the rows that had succeeded did not happen.
                backchannel.clear();
                for row in results.iter_mut().filter(|r| r.ok) {
                    row.ok = false;
                    row.error = Some("not converted: another row failed (all or nothing)".into());
                    row.report = None;
                }
            }
        }
    }
    Ok((results, backchannel))
}
