//! The audit log: every admin action and every login outcome, append-only (the database
//! refuses UPDATE and DELETE on it), exported for the security team.

use diesel::prelude::*;
use serde::Serialize;

use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::store::schema::audit_log::dsl as al;
use crate::store::{Db, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// One thing that happened, before it is written.
#[derive(Debug, Clone)]
pub struct Event {
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub rp_id: Option<String>,
    pub outcome: Outcome,
    pub request_id: Option<String>,
    pub detail: Option<String>,
}

impl Event {
    pub fn new(actor: impl Into<String>, action: impl Into<String>) -> Self {
        Event {
            actor: actor.into(),
            action: action.into(),
            target: None,
            rp_id: None,
            outcome: Outcome::Success,
            request_id: None,
            detail: None,
        }
    }
    pub fn target(mut self, t: impl Into<String>) -> Self {
        self.target = Some(t.into());
        self
    }
    pub fn rp(mut self, rp: impl Into<String>) -> Self {
        self.rp_id = Some(rp.into());
        self
    }
    pub fn request(mut self, id: Option<String>) -> Self {
        self.request_id = id;
        self
    }
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
    pub fn outcome(mut self, o: Outcome) -> Self {
        self.outcome = o;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = crate::store::schema::audit_log)]
pub struct Entry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub rp_id: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub detail: Option<String>,
}

/// Appends an entry; call inside the transaction of the action it records.
pub fn record(conn: &mut Db, event: &Event, now: i64) -> Result<()> {
    diesel::insert_into(al::audit_log)
        .values((
            al::at.eq(now),
            al::actor.eq(&event.actor),
            al::action.eq(&event.action),
            al::target.eq(&event.target),
            al::rp_id.eq(&event.rp_id),
            al::outcome.eq(event.outcome.as_str()),
            al::request_id.eq(&event.request_id),
            al::detail.eq(&event.detail),
        ))
        .execute(conn)?;
    Ok(())
}

/// Runs `action` in a write transaction with its success entry; when it fails, the
/// transaction is rolled back and a failure entry (with the reason) is written on its own.
pub fn audited<T>(
    store: &Store,
    event: Event,
    now: i64,
    action: impl FnOnce(&mut Db) -> Result<T>,
) -> Result<T> {
    let result = store.write(|conn| {
        let value = action(conn)?;
        record(conn, &event, now)?;
        Ok(value)
    });
    if let Err(e) = &result {
        if !matches!(e, Error::Unavailable(_)) {
            let outcome = if matches!(e, Error::Forbidden(_) | Error::Unauthorized(_)) {
                Outcome::Denied
            } else {
                Outcome::Failure
            };
            let failed = event.clone().outcome(outcome).detail(e.to_string());
            if let Err(log_err) = store.write(|conn| record(conn, &failed, now)) {
                tracing::error!(error = %log_err, "could not write the audit entry for a failed action");
            }
        }
    }
    result
}

/// The newest `n` entries, oldest first.
pub fn tail(conn: &mut Db, n: i64) -> Result<Vec<Entry>> {
    let mut rows: Vec<Entry> = al::audit_log
        .select(Entry::as_select())
        .order(al::id.desc())
        .limit(n.max(1))
        .load(conn)?;
    rows.reverse();
    Ok(rows)
}

/// Entries at or after `since`, oldest first, at most `limit`.
pub fn since(conn: &mut Db, since: i64, limit: i64) -> Result<Vec<Entry>> {
    Ok(al::audit_log
        .select(Entry::as_select())
        .filter(al::at.ge(since))
        .order(al::id.asc())
        .limit(limit.max(1))
        .load(conn)?)
}

/// CSV with a header, times in RFC 3339.
pub fn write_csv(entries: &[Entry], out: impl std::io::Write) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "id",
        "at",
        "actor",
        "action",
        "target",
        "rp_id",
        "outcome",
        "request_id",
        "detail",
    ])
    .map_err(Error::internal)?;
    for e in entries {
        w.write_record([
            e.id.to_string(),
            rfc3339(e.at),
            e.actor.clone(),
            e.action.clone(),
            e.target.clone().unwrap_or_default(),
            e.rp_id.clone().unwrap_or_default(),
            e.outcome.clone(),
            e.request_id.clone().unwrap_or_default(),
            e.detail.clone().unwrap_or_default(),
        ])
        .map_err(Error::internal)?;
    }
    w.flush().map_err(Error::internal)?;
    Ok(())
}

/// One JSON object per line.
pub fn write_jsonl(entries: &[Entry], mut out: impl std::io::Write) -> Result<()> {
    for e in entries {
        let mut value = serde_json::to_value(e).map_err(Error::internal)?;
        value["at"] = serde_json::Value::String(rfc3339(e.at));
        writeln!(out, "{value}").map_err(Error::internal)?;
    }
    Ok(())
}
