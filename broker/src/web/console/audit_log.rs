//! The audit log viewer `/admin/audit` and its CSV export `/admin/audit.csv`: filters by
//! actor, action, outcome, relying party and dates (Vietnam time), newest first, paged.
//! An admin of relying parties reads only their entries; the federation operator all.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use diesel::prelude::*;
use http::{header, HeaderMap, HeaderValue};
use minijinja::context;
use serde::Serialize;

use super::support::{self, param, Answer, Params, Section, Shell};
use super::ConsoleSession;
use crate::admin::memberships::Admin;
use crate::admin::policy::Action;
use crate::audit::{self, Entry, Event};
use crate::error::{Error, Result};
use crate::store::schema::{accounts, audit_log as al};
use crate::store::Db;
use crate::web::{page_context, AppState};

const PER_PAGE: i64 = 50;
/// At most this many entries in one export.
const MAX_EXPORT: i64 = 100_000;
const OUTCOMES: &[&str] = &["success", "failure", "denied"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/audit", get(show))
        .route("/admin/audit.csv", get(export))
}

/// The filters, as given.
#[derive(Debug, Clone, Default, Serialize)]
struct Filters {
    actor: String,
    action: String,
    outcome: String,
    rp: String,
    from: String,
    to: String,
}

impl Filters {
    fn of(params: &Params) -> Filters {
        let get = |k: &str| param(params, k).unwrap_or("").to_string();
        Filters {
            actor: get("actor"),
            action: get("action"),
            outcome: get("outcome"),
            rp: get("rp"),
            from: get("from"),
            to: get("to"),
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("actor", self.actor.clone()),
            ("action", self.action.clone()),
            ("outcome", self.outcome.clone()),
            ("rp", self.rp.clone()),
            ("from", self.from.clone()),
            ("to", self.to.clone()),
        ]
    }
}

/// Midnight starting `date` (YYYY-MM-DD) in Vietnam time.
fn day_start(field: &str, date: &str) -> Result<i64> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(date, &fmt)
        .map(|d| {
            d.midnight()
                .assume_offset(support::VIETNAM)
                .unix_timestamp()
        })
        .map_err(|_| Error::invalid(field, support::BAD_DATE))
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The relying parties whose entries `admin` may read; `None`: all of the log (operator).
fn readable(admin: &Admin) -> Option<Vec<String>> {
    if admin.is_operator() {
        return None;
    }
    let mut rps: Vec<String> = admin
        .grants
        .iter()
        .filter_map(|g| g.rp_id.clone())
        .filter(|rp| admin.check(&Action::ViewAudit { rp_id: Some(rp) }).is_ok())
        .collect();
    rps.sort();
    rps.dedup();
    Some(rps)
}

type Boxed<'a> = al::BoxedQuery<'a, <Db as diesel::Connection>::Backend>;

/// The query of the entries `admin` may read that pass `f`.
fn query<'a>(c: &mut Db, admin: &Admin, f: &Filters) -> Result<impl Fn() -> Boxed<'a>> {
    let scope = readable(admin);
    if let Some(rps) = &scope {
        if rps.is_empty() {
            return Err(Error::Forbidden(
                "no admin grant for this relying party".into(),
            ));
        }
    }
    if !f.rp.is_empty() {
        admin.check(&Action::ViewAudit { rp_id: Some(&f.rp) })?;
    }
    if !f.outcome.is_empty() && !OUTCOMES.contains(&f.outcome.as_str()) {
        return Err(Error::invalid("outcome", "one of success, failure, denied"));
    }
    let from = (!f.from.is_empty())
        .then(|| day_start("from", &f.from))
        .transpose()?;
    let to = (!f.to.is_empty())
        .then(|| day_start("to", &f.to).map(|t| t + 86_400))
        .transpose()?;
    // An actor is matched by what is written (`account:…`, `cli:…`) or by the account's name.
    let actors: Vec<String> = if f.actor.is_empty() {
        Vec::new()
    } else {
        let folded = format!("%{}%", escape_like(&crate::directory::fold_name(&f.actor)));
        accounts::table
            .filter(accounts::search_name.like(folded).escape('\\'))
            .select(accounts::id)
            .limit(500)
            .load::<String>(c)?
            .into_iter()
            .map(|id| format!("account:{id}"))
            .collect()
    };
    let f = f.clone();
    Ok(move || {
        let mut q = al::table.into_boxed();
        if let Some(rps) = &scope {
            q = q.filter(al::rp_id.eq_any(rps.clone()));
        }
        if !f.rp.is_empty() {
            q = q.filter(al::rp_id.eq(f.rp.clone()));
        }
        if !f.actor.is_empty() {
            let pattern = format!("%{}%", escape_like(&f.actor));
            q = q.filter(
                al::actor
                    .like(pattern)
                    .escape('\\')
                    .or(al::actor.eq_any(actors.clone())),
            );
        }
        if !f.action.is_empty() {
            q = q.filter(
                al::action
                    .like(format!("{}%", escape_like(&f.action)))
                    .escape('\\'),
            );
        }
        if !f.outcome.is_empty() {
            q = q.filter(al::outcome.eq(f.outcome.clone()));
        }
        if let Some(from) = from {
            q = q.filter(al::at.ge(from));
        }
        if let Some(to) = to {
            q = q.filter(al::at.lt(to));
        }
        q
    })
}

/// An entry as the table shows it.
#[derive(Debug, Serialize)]
struct Row {
    at: String,
    actor: String,
    actor_name: Option<String>,
    action: String,
    target: String,
    rp: String,
    outcome: String,
    detail: String,
}

async fn show(
    State(state): State<AppState>,
    session: ConsoleSession,
    headers: HeaderMap,
    uri: http::Uri,
    Query(params): Query<Params>,
) -> Answer {
    let lang = support::lang_of(&headers, &uri);
    let filters = Filters::of(&params);
    let page = param(&params, "page")
        .and_then(|p| p.parse::<i64>().ok())
        .unwrap_or(1)
        .max(1);
    let f = filters.clone();
    let (shell, total, rows) = support::view(
        &state,
        &session,
        (
            "audit.view",
            "audit".into(),
            (!f.rp.is_empty()).then(|| f.rp.clone()),
        ),
        false,
        move |c, s| {
            let build = query(c, &s.admin, &f)?;
            let total: i64 = build().count().get_result(c)?;
            let entries: Vec<Entry> = build()
                .select(Entry::as_select())
                .order(al::id.desc())
                .limit(PER_PAGE)
                .offset((page - 1) * PER_PAGE)
                .load(c)?;
            let shell = Shell::load(c, s, None, Section::Audit, None)?;
            let ids: Vec<String> = entries
                .iter()
                .filter_map(|e| e.actor.strip_prefix("account:").map(String::from))
                .collect();
            let names: HashMap<String, String> = accounts::table
                .filter(accounts::id.eq_any(&ids))
                .select((accounts::id, accounts::display_name))
                .load::<(String, String)>(c)?
                .into_iter()
                .collect();
            let rp_names: HashMap<String, String> = crate::rp::list(c)?
                .into_iter()
                .map(|r| (r.id, r.display_name))
                .collect();
            let rows = entries
                .into_iter()
                .map(|e| Row {
                    at: support::local_time(e.at),
                    actor_name: e
                        .actor
                        .strip_prefix("account:")
                        .and_then(|id| names.get(id).cloned()),
                    actor: e.actor,
                    action: e.action,
                    target: e.target.unwrap_or_default(),
                    rp: e
                        .rp_id
                        .map(|id| rp_names.get(&id).cloned().unwrap_or(id))
                        .unwrap_or_default(),
                    outcome: e.outcome,
                    detail: support::detail_text(&e.detail.unwrap_or_default(), lang),
                })
                .collect::<Vec<_>>();
            Ok((shell, total, rows))
        },
    )
    .await
    .map_err(|e| support::refuse(e, lang))?;
    let pairs = filters.pairs();
    let pager = support::pager("/admin/audit", &pairs, total, page, PER_PAGE);
    let csv_href = support::link("/admin/audit.csv", &pairs);
    let html = state
        .pages
        .render(
            "admin_audit.html",
            &page_context(&headers, &uri),
            context! {
                shell,
                filters,
                outcomes => OUTCOMES,
                total,
                rows,
                pager,
                csv_href,
            },
        )
        .map_err(|e| support::refuse(e, lang))?;
    Ok(Html(html).into_response())
}

/// A cell a spreadsheet would not run as a formula: text starting with `=`, `+`, `-`, `@`,
/// a tab or a carriage return gets a leading apostrophe (the log holds text people typed).
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// The entries as CSV with a header (the columns of `fedhub audit export`), times in
/// RFC 3339 UTC, every field quoted as needed.
fn csv_of(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
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
        let opt = |v: &Option<String>| cell(v.as_deref().unwrap_or(""));
        w.write_record([
            e.id.to_string(),
            crate::clock::rfc3339(e.at),
            cell(&e.actor),
            cell(&e.action),
            opt(&e.target),
            opt(&e.rp_id),
            cell(&e.outcome),
            opt(&e.request_id),
            opt(&e.detail),
        ])
        .map_err(Error::internal)?;
    }
    w.into_inner().map_err(Error::internal)
}

/// The same entries as CSV (oldest first), for the security team. The export is audited.
async fn export(
    State(state): State<AppState>,
    session: ConsoleSession,
    headers: HeaderMap,
    uri: http::Uri,
    Query(params): Query<Params>,
) -> Answer {
    let lang = support::lang_of(&headers, &uri);
    let filters = Filters::of(&params);
    let f = filters.clone();
    let entries = support::view(
        &state,
        &session,
        (
            "audit.export",
            "audit".into(),
            (!f.rp.is_empty()).then(|| f.rp.clone()),
        ),
        false,
        move |c, s| {
            let build = query(c, &s.admin, &f)?;
            Ok(build()
                .select(Entry::as_select())
                .order(al::id.asc())
                .limit(MAX_EXPORT)
                .load::<Entry>(c)?)
        },
    )
    .await
    .map_err(|e| support::refuse(e, lang))?;
    let body = csv_of(&entries).map_err(|e| support::refuse(e, lang))?;
    let now = state.clock.now();
    let summary: Vec<String> = filters
        .pairs()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut event = Event::new(&session.admin.actor, "audit.export")
        .target(format!("{} entries", entries.len()))
        .request(Some(session.request_id.clone()))
        .detail(summary.join(" "));
    event.rp_id = (!filters.rp.is_empty()).then(|| filters.rp.clone());
    state
        .store
        .write_async(move |c| audit::record(c, &event, now))
        .await
        .map_err(|e| support::refuse(e, lang))?;
    let day = support::local_time(now)
        .get(..10)
        .unwrap_or("")
        .replace('-', "");
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename=\"fedhub-audit-{day}.csv\""))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_fields_and_defuses_formulas() {
        let entry = Entry {
            id: 7,
            at: 1_795_737_600,
            actor: "account:1".into(),
            action: "membership.assign_roles".into(),
            target: Some("membership:2".into()),
            rp_id: Some("rp".into()),
            outcome: "success".into(),
            request_id: None,
            detail: Some("=HYPERLINK(\"x\"), Cán bộ \"một cửa\"\nhai".into()),
        };
        let out = String::from_utf8(csv_of(&[entry]).unwrap()).unwrap();
        assert_eq!(
            out,
            "id,at,actor,action,target,rp_id,outcome,request_id,detail\n\
             7,2026-11-27T00:00:00Z,account:1,membership.assign_roles,membership:2,rp,success,,\
             \"'=HYPERLINK(\"\"x\"\"), Cán bộ \"\"một cửa\"\"\nhai\"\n"
        );
    }

    #[test]
    fn days_start_at_midnight_in_vietnam() {
        assert_eq!(
            day_start("from", "2026-11-27").unwrap(),
            1_795_737_600 - 7 * 3600
        );
        assert!(day_start("from", "27/11/2026").is_err());
    }
}
