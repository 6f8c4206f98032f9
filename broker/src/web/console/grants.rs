//! Admin grants of one relying party: the live grants within the admin's subtree (holder,
//! level, scope, granted by), granting level 1, 2 or 3 below one's own level over a unit of
//! one's subtree to an account found in the directory, and revoking. The policy decides;
//! a refusal shows its reason.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::Router;
use diesel::prelude::*;
use fedhub_identifiers::AgencyCode;
use http::HeaderMap;
use minijinja::context;
use serde::Serialize;

use super::support::{self, param, Answer, Form, Params, Section, Shell};
use super::tree::Subtree;
use super::ConsoleSession;
use crate::admin::grants::{self, GrantRequest};
use crate::admin::memberships::Admin;
use crate::admin::policy::{Action, Level};
use crate::error::{Error, Result};
use crate::store::schema::{accounts, admin_grants as g, agencies};
use crate::store::Db;
use crate::web::pages::Lang;
use crate::web::{page_context, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/rp/{rp}/grants", get(list).post(grant))
        .route("/admin/rp/{rp}/grants/{id}/revoke", post(revoke))
}

/// A grant as the table shows it.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    holder: String,
    holder_identifier: String,
    level: String,
    scope: String,
    scope_name: String,
    /// The holder of the grant that allowed this one (none: the federation operator).
    granted_by: Option<String>,
    granted_by_level: Option<String>,
    granted_at: String,
    can_revoke: bool,
}

/// An account found to receive a grant.
#[derive(Debug, Serialize)]
struct Candidate {
    id: String,
    display_name: String,
    kind: String,
    identifier: String,
    me: bool,
}

/// The levels `admin` may grant in `rp_id`: strictly below the highest they hold there.
fn grantable(admin: &Admin, rp_id: &str) -> Vec<&'static str> {
    let held = if admin.is_operator() {
        Some(Level::Operator)
    } else {
        admin
            .grants
            .iter()
            .filter(|g| g.rp_id.as_deref() == Some(rp_id))
            .map(|g| g.level)
            .max()
    };
    [Level::L1, Level::L2, Level::L3]
        .into_iter()
        .filter(|l| held.is_some_and(|h| *l < h))
        .map(Level::as_str)
        .collect()
}

/// Names and identifiers of accounts, by id.
fn names(c: &mut Db, ids: &[String]) -> Result<HashMap<String, (String, String)>> {
    let rows: Vec<crate::directory::accounts::Account> = accounts::table
        .filter(accounts::id.eq_any(ids))
        .select(crate::directory::accounts::Account::as_select())
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(|a| {
            let identifier = support::identifier_of(&a);
            (a.id, (a.display_name, identifier))
        })
        .collect())
}

async fn list(
    State(state): State<AppState>,
    session: ConsoleSession,
    headers: HeaderMap,
    uri: http::Uri,
    Path(rp): Path<String>,
    Query(params): Query<Params>,
) -> Answer {
    let lang = support::lang_of(&headers, &uri);
    let en = lang == Lang::En;
    let who = param(&params, "who").unwrap_or("").to_string();
    let done = param(&params, "done").map(String::from);
    let (rp2, who2) = (rp.clone(), who.clone());
    let (shell, rows, candidates, search_error, subtree, levels, default_scope) = support::view(
        &state,
        &session,
        ("admin.list", rp.clone(), Some(rp.clone())),
        false,
        move |c, s| {
            let admin = &s.admin;
            let live = grants::of_rp(c, admin, &rp2)?;
            let shell = Shell::load(c, s, Some(&rp2), Section::Grants, done.as_deref())?;
            // `granted_by` is the grant that allowed this one: shown as its holder.
            let by: Vec<String> = live.iter().filter_map(|gr| gr.granted_by.clone()).collect();
            let granters: HashMap<String, (String, String)> = g::table
                .filter(g::id.eq_any(&by))
                .select((g::id, g::account_id, g::level))
                .load::<(String, String, String)>(c)?
                .into_iter()
                .map(|(id, account, level)| (id, (account, level)))
                .collect();
            let mut ids: Vec<String> = live.iter().map(|gr| gr.account_id.clone()).collect();
            ids.extend(granters.values().map(|(account, _)| account.clone()));
            let people = names(c, &ids)?;
            let scopes: Vec<String> = live
                .iter()
                .filter_map(|gr| gr.scope_agency_code.clone())
                .collect();
            let scope_names: HashMap<String, (String, Option<String>)> = agencies::table
                .filter(agencies::code.eq_any(&scopes))
                .select((agencies::code, agencies::name_vi, agencies::name_en))
                .load::<(String, String, Option<String>)>(c)?
                .into_iter()
                .map(|(code, vi, en)| (code, (vi, en)))
                .collect();
            let rows: Vec<Row> = live
                .into_iter()
                .map(|gr| {
                    let level = Level::parse(&gr.level);
                    let scope = gr.scope_agency_code.clone().unwrap_or_default();
                    let can_revoke = match (level, AgencyCode::parse(&scope)) {
                        (Some(level), Ok(code)) => admin
                            .check(&Action::Revoke {
                                rp_id: &rp2,
                                level,
                                scope: &code,
                                holder: &gr.account_id,
                            })
                            .is_ok(),
                        _ => admin.is_operator(),
                    };
                    let (holder, holder_identifier) = people
                        .get(&gr.account_id)
                        .cloned()
                        .unwrap_or_else(|| (gr.account_id.clone(), String::new()));
                    let (granted_by, granted_by_level) = match gr.granted_by.as_deref() {
                        Some(by) => match granters.get(by) {
                            Some((account, level)) => (
                                Some(
                                    people
                                        .get(account)
                                        .map(|(name, _)| name.clone())
                                        .unwrap_or_else(|| account.clone()),
                                ),
                                Some(level.clone()),
                            ),
                            None => (Some(by.to_string()), None),
                        },
                        None => (None, None),
                    };
                    let scope_name = scope_names
                        .get(&scope)
                        .map(|(vi, en_name)| match (en_name, en) {
                            (Some(n), true) => n.clone(),
                            _ => vi.clone(),
                        })
                        .unwrap_or_default();
                    Row {
                        id: gr.id,
                        holder,
                        holder_identifier,
                        level: gr.level,
                        scope,
                        scope_name,
                        granted_by,
                        granted_by_level,
                        granted_at: support::local_time(gr.created_at),
                        can_revoke,
                    }
                })
                .collect();
            let (candidates, search_error) = if who2.is_empty() {
                (Vec::new(), None)
            } else {
                match crate::directory::accounts::find(c, &who2, 25) {
                    Ok(found) => (
                        found
                            .into_iter()
                            .filter(|a| a.status == "active")
                            .map(|a| Candidate {
                                me: a.id == admin.account_id,
                                identifier: support::identifier_of(&a),
                                id: a.id,
                                display_name: a.display_name,
                                kind: a.kind,
                            })
                            .collect(),
                        None,
                    ),
                    Err(Error::Invalid { .. }) => (Vec::new(), Some("console.add.too_short")),
                    Err(e) => return Err(e),
                }
            };
            let subtree = Subtree::of(c, admin, &rp2)?;
            let levels = grantable(admin, &rp2);
            let default_scope = admin
                .scopes_in(&rp2)
                .first()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            Ok((
                shell,
                rows,
                candidates,
                search_error,
                subtree,
                levels,
                default_scope,
            ))
        },
    )
    .await
    .map_err(|e| support::refuse(e, lang))?;
    let html = state
        .pages
        .render(
            "admin_grants.html",
            &page_context(&headers, &uri),
            context! {
                shell,
                rp_id => rp,
                rows,
                who,
                candidates,
                search_error,
                units => subtree.units(en),
                levels,
                default_scope,
            },
        )
        .map_err(|e| support::refuse(e, lang))?;
    Ok(Html(html).into_response())
}

async fn grant(
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
    let req = GrantRequest {
        account_id: form.get("account_id").unwrap_or("").to_string(),
        rp_id: rp.clone(),
        level: form.get("level").unwrap_or("").to_string(),
        scope_agency_code: form.get("scope").unwrap_or("").to_string(),
    };
    let event = support::event(
        &session,
        "admin.grant",
        format!("account:{}", req.account_id),
    )
    .rp(rp.clone())
    .detail(format!("{} {}", req.level, req.scope_agency_code));
    let admin = session.admin.clone();
    support::change(&state, event, move |c, now| {
        if req.account_id.is_empty() {
            return Err(Error::invalid("account_id", support::CHOOSE_PERSON));
        }
        if req.scope_agency_code.is_empty() {
            return Err(Error::invalid("scope_agency_code", support::CHOOSE_UNIT));
        }
        grants::grant(c, &admin, &req, now)
    })
    .await
    .map_err(|e| support::refuse(e, lang))?;
    Ok(support::back(
        &format!("/admin/rp/{rp}/grants"),
        "granted",
        &[],
    ))
}

async fn revoke(
    State(state): State<AppState>,
    session: ConsoleSession,
    headers: HeaderMap,
    uri: http::Uri,
    Path((rp, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Answer {
    let lang = support::lang_of(&headers, &uri);
    let form = Form::parse(&body);
    session
        .check_form(&state, &headers, form.get("csrf"))
        .map_err(IntoResponse::into_response)?;
    let event = support::event(&session, "admin.revoke", id.clone()).rp(rp.clone());
    let admin = session.admin.clone();
    let rp2 = rp.clone();
    support::change(&state, event, move |c, now| {
        let of_rp: Option<Option<String>> = g::table
            .find(&id)
            .select(g::rp_id)
            .get_result(c)
            .optional()?;
        match of_rp {
            None => return Err(Error::not_found("admin grant", &id)),
            Some(Some(r)) if r == rp2 => {}
            Some(_) => return Err(Error::invalid("grant", support::NOT_HERE)),
        }
        grants::revoke(c, &admin, &id, now)
    })
    .await
    .map_err(|e| support::refuse(e, lang))?;
    Ok(support::back(
        &format!("/admin/rp/{rp}/grants"),
        "revoked",
        &[],
    ))
}
