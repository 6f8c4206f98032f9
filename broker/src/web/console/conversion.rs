//! "Chuyển đổi tài khoản" (seed III.3.4): pick the mode (a legacy account becomes a federated
//! one, or a federated account hands its place over to another), find the old account, find
//! the federated account (name, phone, email; the results show id, name, phone, email, unit),
//! "Chuyển đổi" shows the dry-run report, "Đồng ý" converts. The report stays retrievable at
//! `/admin/rp/{rp}/conversion/{id}`. Refusals say why and change nothing.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use diesel::prelude::*;
use http::HeaderMap;
use minijinja::context;
use serde::Serialize;

use super::support::{self, param, Answer, Form, Params, Section, Shell};
use super::ConsoleSession;
use crate::admin::memberships::{self as ms, ListQuery};
use crate::admin::policy::Action;
use crate::conversion::convert::{self, Report, Request, Source};
use crate::error::{Error, Result};
use crate::store::schema::memberships as m;
use crate::web::error::{status_of, ErrorPage};
use crate::web::pages::Lang;
use crate::web::{page_context, AppState};

/// At most this many matches are shown in each search.
const MAX_RESULTS: usize = 25;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/rp/{rp}/conversion", get(wizard).post(confirm))
        .route("/admin/rp/{rp}/conversion/preview", post(preview))
        .route("/admin/rp/{rp}/conversion/{id}", get(show))
}

/// The two modes of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Legacy,
    Handover,
}

impl Mode {
    fn parse(s: Option<&str>) -> Option<Mode> {
        match s? {
            "legacy" => Some(Mode::Legacy),
            "handover" => Some(Mode::Handover),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Mode::Legacy => "legacy",
            Mode::Handover => "handover",
        }
    }

    fn source(self, old: &str) -> Source {
        match self {
            Mode::Legacy => Source::Legacy {
                legacy_id: old.to_string(),
            },
            Mode::Handover => Source::Handover {
                account_id: old.to_string(),
            },
        }
    }
}

/// An old account as the results show it (a legacy account, or a member).
#[derive(Debug, Clone, Serialize)]
struct OldAccount {
    id: String,
    name: String,
    /// Username (legacy) or CCCD / tax code (member).
    identifier: String,
    unit: String,
    user_group: String,
    roles: Vec<String>,
    /// Already converted: cannot be picked.
    converted: bool,
}

/// A federated account as the results show it.
#[derive(Debug, Clone, Serialize)]
struct NewAccount {
    id: String,
    name: String,
    identifier: String,
    phone: String,
    email: String,
    /// Its unit in this relying party; empty when not a member.
    unit: String,
    user_group: String,
    member: bool,
    activated: bool,
}

fn legacy_matches(c: &mut crate::store::Db, rp_id: &str, q: &str) -> Result<Vec<OldAccount>> {
    let folded = crate::directory::fold_name(q);
    Ok(crate::conversion::legacy::list(c, rp_id)?
        .into_iter()
        .filter(|a| {
            a.username.to_lowercase().contains(&q.to_lowercase())
                || crate::directory::fold_name(&a.display_name).contains(&folded)
        })
        .take(MAX_RESULTS)
        .map(|a| OldAccount {
            converted: a.converted_to.is_some(),
            id: a.id,
            name: a.display_name,
            identifier: a.username,
            unit: a.unit_agency_code.unwrap_or_default(),
            user_group: a.user_group.unwrap_or_default(),
            roles: a.roles,
        })
        .collect())
}

fn member_matches(
    c: &mut crate::store::Db,
    admin: &ms::Admin,
    rp_id: &str,
    q: &str,
) -> Result<Vec<OldAccount>> {
    let page = ms::list(
        c,
        admin,
        rp_id,
        &ListQuery {
            q: Some(q.to_string()),
            status: None,
            unit: None,
            page: None,
            per_page: Some(MAX_RESULTS as i64),
        },
    )?;
    Ok(page
        .items
        .into_iter()
        .map(|m| OldAccount {
            id: m.account_id,
            name: m.display_name,
            identifier: m.national_id.or(m.tax_code).unwrap_or_default(),
            unit: m.unit_agency_code.unwrap_or_default(),
            user_group: m.user_group.unwrap_or_default(),
            roles: m.roles,
            converted: false,
        })
        .collect())
}

fn directory_matches(c: &mut crate::store::Db, rp_id: &str, q: &str) -> Result<Vec<NewAccount>> {
    let found = crate::directory::accounts::find(c, q, MAX_RESULTS as i64)?;
    let ids: Vec<&str> = found.iter().map(|a| a.id.as_str()).collect();
    let memberships: HashMap<String, (Option<String>, Option<String>, String)> = m::table
        .filter(m::rp_id.eq(rp_id))
        .filter(m::account_id.eq_any(&ids))
        .select((m::account_id, m::unit_agency_code, m::user_group, m::status))
        .load::<(String, Option<String>, Option<String>, String)>(c)?
        .into_iter()
        .map(|(a, u, g, s)| (a, (u, g, s)))
        .collect();
    Ok(found
        .into_iter()
        .map(|a| {
            let membership = memberships.get(&a.id);
            NewAccount {
                identifier: support::identifier_of(&a),
                member: membership.is_some(),
                activated: membership.is_some_and(|(_, _, s)| s == ms::ACTIVATED),
                unit: membership
                    .and_then(|(u, _, _)| u.clone())
                    .unwrap_or_default(),
                user_group: membership
                    .and_then(|(_, g, _)| g.clone())
                    .unwrap_or_default(),
                phone: a.phone.unwrap_or_default(),
                email: a.email.unwrap_or_default(),
                id: a.id,
                name: a.display_name,
            }
        })
        .collect())
}

/// A search too short to run says so instead of failing the page.
fn short<T>(found: Result<Vec<T>>, error: &mut Option<&'static str>) -> Result<Vec<T>> {
    match found {
        Ok(v) => Ok(v),
        Err(Error::Invalid { .. }) => {
            *error = Some("console.add.too_short");
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// The screen's steps, all on one page driven by its query: `mode`, `old_q` (search for the
/// old account), `old` (the one picked), `new_q`, `new`.
async fn wizard(
    State(state): State<AppState>,
    session: ConsoleSession,
    headers: HeaderMap,
    uri: http::Uri,
    Path(rp): Path<String>,
    Query(params): Query<Params>,
) -> Answer {
    let lang = support::lang_of(&headers, &uri);
    let mode = Mode::parse(param(&params, "mode"));
    let old_q = param(&params, "old_q").unwrap_or("").to_string();
    let old = param(&params, "old").unwrap_or("").to_string();
    let new_q = param(&params, "new_q").unwrap_or("").to_string();
    let new = param(&params, "new").unwrap_or("").to_string();
    let (rp2, oq, nq, old2, new2) = (
        rp.clone(),
        old_q.clone(),
        new_q.clone(),
        old.clone(),
        new.clone(),
    );
    type Loaded = (
        Shell,
        Vec<OldAccount>,
        Vec<NewAccount>,
        Option<&'static str>,
        Option<OldAccount>,
        Option<NewAccount>,
    );
    let (shell, old_results, new_results, search_error, old_picked, new_picked): Loaded =
        support::view(
            &state,
            &session,
            ("conversion.view", rp.clone(), Some(rp.clone())),
            false,
            move |c, s| {
                s.admin.check(&Action::ViewMembers { rp_id: &rp2 })?;
                let shell = Shell::load(c, s, Some(&rp2), Section::Members, None)?;
                let mut search_error = None;
                let old_results = match mode {
                    Some(_) if oq.chars().count() < 2 && !oq.is_empty() => {
                        short(Err(Error::invalid("query", "too short")), &mut search_error)?
                    }
                    Some(Mode::Legacy) if !oq.is_empty() => {
                        short(legacy_matches(c, &rp2, &oq), &mut search_error)?
                    }
                    Some(Mode::Handover) if !oq.is_empty() => {
                        short(member_matches(c, &s.admin, &rp2, &oq), &mut search_error)?
                    }
                    _ => Vec::new(),
                };
                // The old account picked: read again by id, so a tampered id shows nothing.
                let old_picked = match (mode, old2.is_empty()) {
                    (Some(Mode::Legacy), false) => crate::conversion::legacy::list(c, &rp2)?
                        .into_iter()
                        .find(|a| a.id == old2)
                        .map(|a| OldAccount {
                            converted: a.converted_to.is_some(),
                            id: a.id,
                            name: a.display_name,
                            identifier: a.username,
                            unit: a.unit_agency_code.unwrap_or_default(),
                            user_group: a.user_group.unwrap_or_default(),
                            roles: a.roles,
                        }),
                    (Some(Mode::Handover), false) => {
                        let row: Option<String> = m::table
                            .filter(m::rp_id.eq(&rp2))
                            .filter(m::account_id.eq(&old2))
                            .select(m::id)
                            .get_result(c)
                            .optional()?;
                        match row {
                            Some(mid) => {
                                let m = ms::get_for(c, &s.admin, &mid)?;
                                Some(OldAccount {
                                    id: m.account_id,
                                    name: m.display_name,
                                    identifier: m.national_id.or(m.tax_code).unwrap_or_default(),
                                    unit: m.unit_agency_code.unwrap_or_default(),
                                    user_group: m.user_group.unwrap_or_default(),
                                    roles: m.roles,
                                    converted: false,
                                })
                            }
                            None => None,
                        }
                    }
                    _ => None,
                };
                let new_results = if old_picked.is_some() && !nq.is_empty() {
                    short(directory_matches(c, &rp2, &nq), &mut search_error)?
                } else {
                    Vec::new()
                };
                let new_picked = if old_picked.is_some() && !new2.is_empty() {
                    match crate::directory::accounts::get(c, &new2) {
                        Ok(a) => directory_matches(c, &rp2, &a.id)?.into_iter().next(),
                        Err(Error::NotFound { .. }) => None,
                        Err(e) => return Err(e),
                    }
                } else {
                    None
                };
                Ok((
                    shell,
                    old_results,
                    new_results,
                    search_error,
                    old_picked,
                    new_picked,
                ))
            },
        )
        .await
        .map_err(|e| refuse(e, lang))?;
    let html = state
        .pages
        .render(
            "admin_conversion.html",
            &page_context(&headers, &uri),
            context! {
                shell => shell_of(&shell),
                rp_id => rp,
                mode => mode.map(Mode::as_str),
                old_q,
                old,
                new_q,
                new,
                old_results,
                new_results,
                search_error,
                old_picked,
                new_picked,
            },
        )
        .map_err(|e| refuse(e, lang))?;
    Ok(Html(html).into_response())
}

/// The layout's context with this screen's entry of the navigation current.
fn shell_of(shell: &Shell) -> serde_json::Value {
    let mut value = serde_json::to_value(shell).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("section".into(), "conversion".into());
        map.insert("rp_path".into(), "conversion".into());
    }
    value
}

/// What the "Chuyển đổi" and "Đồng ý" forms carry, checked.
fn request_of(rp: &str, form: &Form, dry_run: bool) -> Result<Request> {
    let mode = Mode::parse(form.get("mode"))
        .ok_or_else(|| Error::invalid("mode", "choose legacy or handover"))?;
    let old = form
        .get("old")
        .ok_or_else(|| Error::invalid("old", CHOOSE_OLD))?;
    let target = form
        .get("new")
        .ok_or_else(|| Error::invalid("new", CHOOSE_NEW))?;
    Ok(Request {
        rp_id: rp.to_string(),
        source: mode.source(old),
        target_account_id: target.to_string(),
        dry_run,
    })
}

fn event_of(session: &ConsoleSession, action: &str, req: &Request) -> crate::audit::Event {
    let source = match &req.source {
        Source::Legacy { legacy_id } => format!("legacy:{legacy_id}"),
        Source::Handover { account_id } => format!("account:{account_id}"),
    };
    support::event(
        session,
        action,
        format!("{source} -> account:{}", req.target_account_id),
    )
    .rp(req.rp_id.clone())
}

/// "Chuyển đổi": the dry run's report, with the "Đồng ý" form. Nothing changes.
async fn preview(
    State(state): State<AppState>,
    session: ConsoleSession,
    headers: HeaderMap,
    uri: http::Uri,
    Path(rp): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let lang = support::lang_of(&headers, &uri);
    let form = Form::parse(&body);
    session
        .check_form(&state, &headers, form.get("csrf"))
        .map_err(IntoResponse::into_response)?;
    let req = request_of(&rp, &form, true).map_err(|e| refuse(e, lang))?;
    let event = event_of(&session, "conversion.dry_run", &req);
    let admin = session.admin.clone();
    let info = support::SessionInfo::from(&session);
    let rp2 = rp.clone();
    let mode = form.get("mode").unwrap_or("").to_string();
    let (report, shell) = support::change(&state, event, move |c, now| {
        let (report, _) = convert::convert(c, &admin, &req, now)?;
        let shell = Shell::load(c, &info, Some(&rp2), Section::Members, None)?;
        Ok((report, shell))
    })
    .await
    .map_err(|e| refuse(e, lang))?;
    Ok(render_report(
        &state,
        &headers,
        &uri,
        &rp,
        &shell,
        &report,
        Some(mode),
        lang,
    ))
}

/// "Đồng ý": converts, then shows the stored report.
async fn confirm(
    State(state): State<AppState>,
    session: ConsoleSession,
    headers: HeaderMap,
    uri: http::Uri,
    Path(rp): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let lang = support::lang_of(&headers, &uri);
    let form = Form::parse(&body);
    session
        .check_form(&state, &headers, form.get("csrf"))
        .map_err(IntoResponse::into_response)?;
    let req = request_of(&rp, &form, false).map_err(|e| refuse(e, lang))?;
    let event = event_of(&session, "conversion.convert", &req);
    let admin = session.admin.clone();
    let (report, backchannel) = support::change(&state, event, move |c, now| {
        convert::convert(c, &admin, &req, now)
    })
    .await
    .map_err(|e| refuse(e, lang))?;
    // After the commit: the old account's OIDC sessions there end.
    crate::oidc::logout::send_backchannel(&state, backchannel).await;
    crate::conversion::webhook::kick(&state, report.id.clone());
    let id = report.id.unwrap_or_default();
    Ok(Redirect::to(&format!("/admin/rp/{rp}/conversion/{id}?done=converted")).into_response())
}

/// A conversion's stored report.
async fn show(
    State(state): State<AppState>,
    session: ConsoleSession,
    headers: HeaderMap,
    uri: http::Uri,
    Path((rp, id)): Path<(String, String)>,
) -> Answer {
    let lang = support::lang_of(&headers, &uri);
    let (rp2, id2) = (rp.clone(), id.clone());
    let (report, shell) = support::view(
        &state,
        &session,
        (
            "conversion.view",
            format!("conversion:{id}"),
            Some(rp.clone()),
        ),
        false,
        move |c, s| {
            let report = convert::report(c, &s.admin, &id2)?;
            if report.rp_id != rp2 {
                return Err(Error::not_found("conversion", id2));
            }
            let shell = Shell::load(c, s, Some(&rp2), Section::Members, None)?;
            Ok((report, shell))
        },
    )
    .await
    .map_err(|e| refuse(e, lang))?;
    Ok(render_report(
        &state, &headers, &uri, &rp, &shell, &report, None, lang,
    ))
}

#[allow(clippy::too_many_arguments)]
fn render_report(
    state: &AppState,
    headers: &HeaderMap,
    uri: &http::Uri,
    rp: &str,
    shell: &Shell,
    report: &Report,
    mode: Option<String>,
    lang: Lang,
) -> Response {
    let html = state.pages.render(
        "admin_conversion_report.html",
        &page_context(headers, uri),
        context! {
            shell => shell_of(shell),
            rp_id => rp,
            report,
            mode,
            created => support::local_time(report.created_at),
            done => uri.query().is_some_and(|q| q.split('&').any(|p| p == "done=converted")),
        },
    );
    match html {
        Ok(html) => Html(html).into_response(),
        Err(e) => refuse(e, lang),
    }
}

/// The screen's own rules.
const CHOOSE_OLD: &str = "choose the old account from the search results";
const CHOOSE_NEW: &str = "choose the federated account from the search results";

/// The conversion rules the domain gives, by how their text begins, with their message.
const RULES: &[(&str, &str)] = &[
    (
        "the accounts are in different units",
        "console.conversion.reason.units",
    ),
    (
        "the accounts are in different user groups",
        "console.conversion.reason.groups",
    ),
    (
        "activate the federated account",
        "console.conversion.reason.not_activated",
    ),
    (
        "add the federated account to this relying party first",
        "console.conversion.reason.not_member",
    ),
    (
        "an account cannot be converted into itself",
        "console.conversion.reason.itself",
    ),
    (
        "the old account is not a member of this relying party",
        "console.conversion.reason.old_gone",
    ),
    (
        "the legacy account was converted meanwhile",
        "console.conversion.reason.converted",
    ),
    (
        "the account has no unit in your agency subtree",
        "console.reason.no_unit",
    ),
    (CHOOSE_OLD, "console.conversion.reason.choose_old"),
    (CHOOSE_NEW, "console.conversion.reason.choose_new"),
];

/// Why a conversion was refused, in `lang`: the conversion's rules translated (with the
/// units or groups they name), the console's other reasons as the console says them.
pub(crate) fn explain(e: &Error, lang: Lang) -> String {
    let rule = match e {
        Error::Invalid { rule, .. } | Error::Conflict { rule, .. } => rule.as_str(),
        Error::Forbidden(reason) => reason.as_str(),
        _ => return support::explain(e, lang),
    };
    if rule.ends_with("has already been converted") {
        return support::text(lang, "console.conversion.reason.converted");
    }
    match RULES.iter().find(|(start, _)| rule.starts_with(start)) {
        Some((start, key)) => {
            let named = rule[start.len()..].trim();
            let named = named
                .strip_prefix('(')
                .and_then(|n| n.strip_suffix(')'))
                .filter(|n| !n.is_empty());
            let text = support::text(lang, key);
            match named {
                Some(n) if !n.contains("already converted") && !n.contains("same unit") => {
                    let and = support::text(lang, "console.conversion.and");
                    format!("{text} ({})", n.replace(" and ", &format!(" {and} ")))
                }
                _ => text,
            }
        }
        None => support::explain(e, lang),
    }
}

/// A refused conversion as the page the admin reads (nothing was changed).
fn refuse(e: Error, lang: Lang) -> Response {
    let keys = match &e {
        Error::Forbidden(_) => ("console.refused.title", "console.refused.message"),
        Error::Invalid { .. } | Error::Conflict { .. } => (
            "console.conversion.refused.title",
            "console.conversion.refused.message",
        ),
        _ => return support::refuse(e, lang),
    };
    tracing::info!(error = %e, "conversion refused");
    let mut res = status_of(&e).into_response();
    res.extensions_mut().insert(ErrorPage {
        detail: Some(explain(&e, lang)),
        keys: Some(keys),
    });
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_in_both_catalogues() {
        for lang in [Lang::Vi, Lang::En] {
            for (_, key) in RULES {
                assert_ne!(support::text(lang, key), *key, "{key} missing in {lang:?}");
            }
            for key in [
                "console.conversion.reason.converted",
                "console.conversion.and",
                "console.conversion.refused.title",
                "console.conversion.refused.message",
            ] {
                assert_ne!(support::text(lang, key), key, "{key} missing in {lang:?}");
            }
        }
    }

    #[test]
    fn units_are_named_in_the_reason() {
        let e = Error::invalid(
            "target_account_id",
            "the accounts are in different units (000.00.01.H49 and 000.00.02.H49)",
        );
        let vi = explain(&e, Lang::Vi);
        assert!(
            vi.contains("000.00.01.H49") && vi.contains("000.00.02.H49"),
            "{vi}"
        );
        assert!(!vi.contains("different units"), "{vi}");
        let e = Error::Conflict {
            field: "legacy_id".into(),
            rule: "legacy account nva has already been converted".into(),
        };
        assert_eq!(
            explain(&e, Lang::En),
            support::text(Lang::En, "console.conversion.reason.converted")
        );
    }
}
