//! "Thêm mới": search the hub's directory (people by CCCD/CMND, phone or name; organisations
//! by agency code or tax code) and "Lưu vào hệ thống" — the account joins the relying party
//! as "Chưa kích hoạt", in a unit of the admin's subtree.

use std::collections::HashSet;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use diesel::prelude::*;
use http::HeaderMap;
use minijinja::context;
use serde::Serialize;

use super::support::{self, param, Answer, Form, Params, Section, Shell};
use super::tree::Subtree;
use super::ConsoleSession;
use crate::admin::memberships as ms;
use crate::error::Error;
use crate::store::schema::memberships as m;
use crate::web::pages::Lang;
use crate::web::{page_context, AppState};

/// At most this many directory matches are shown.
const MAX_RESULTS: i64 = 25;
/// Above this many units, the rows share one suggestion list instead of a select each.
const SELECT_LIMIT: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/rp/{rp}/members/new", get(search).post(save))
}

/// A directory match as the results table shows it.
#[derive(Debug, Serialize)]
struct Found {
    id: String,
    display_name: String,
    kind: String,
    identifier: String,
    phone: String,
    email: String,
    /// Already in this relying party.
    member: bool,
    /// Disabled in the directory: cannot be added.
    disabled: bool,
}

async fn search(
    State(state): State<AppState>,
    session: ConsoleSession,
    headers: HeaderMap,
    uri: http::Uri,
    Path(rp): Path<String>,
    Query(params): Query<Params>,
) -> Answer {
    let lang = support::lang_of(&headers, &uri);
    let query = param(&params, "q").unwrap_or("").to_string();
    let (rp2, q2) = (rp.clone(), query.clone());
    let (shell, results, search_error, subtree, default_unit) = support::view(
        &state,
        &session,
        ("membership.search", rp.clone(), Some(rp.clone())),
        false,
        move |c, s| {
            s.admin
                .check(&crate::admin::policy::Action::ViewMembers { rp_id: &rp2 })?;
            let shell = Shell::load(c, s, Some(&rp2), Section::Add, None)?;
            let subtree = Subtree::of(c, &s.admin, &rp2)?;
            let default_unit = match s.admin.scopes_in(&rp2).first() {
                Some(scope) => scope.as_str().to_string(),
                None => crate::rp::get(c, &rp2)?.owner_agency_code,
            };
            let (results, search_error) = if q2.is_empty() {
                (Vec::new(), None)
            } else {
                match crate::directory::accounts::find(c, &q2, MAX_RESULTS) {
                    Ok(found) => {
                        let ids: Vec<&str> = found.iter().map(|a| a.id.as_str()).collect();
                        let members: HashSet<String> = m::table
                            .filter(m::rp_id.eq(&rp2))
                            .filter(m::account_id.eq_any(&ids))
                            .select(m::account_id)
                            .load::<String>(c)?
                            .into_iter()
                            .collect();
                        let rows = found
                            .into_iter()
                            .map(|a| Found {
                                member: members.contains(&a.id),
                                disabled: a.status != "active",
                                identifier: support::identifier_of(&a),
                                phone: a.phone.unwrap_or_default(),
                                email: a.email.unwrap_or_default(),
                                id: a.id,
                                display_name: a.display_name,
                                kind: a.kind,
                            })
                            .collect();
                        (rows, None)
                    }
                    Err(Error::Invalid { .. }) => (Vec::new(), Some("console.add.too_short")),
                    Err(e) => return Err(e),
                }
            };
            Ok((shell, results, search_error, subtree, default_unit))
        },
    )
    .await
    .map_err(|e| support::refuse(e, lang))?;
    let units = subtree.units(lang == Lang::En);
    let html = state
        .pages
        .render(
            "admin_member_new.html",
            &page_context(&headers, &uri),
            context! {
                shell,
                rp_id => rp,
                q => query,
                results,
                search_error,
                select => units.len() <= SELECT_LIMIT,
                units,
                default_unit,
            },
        )
        .map_err(|e| support::refuse(e, lang))?;
    Ok(Html(html).into_response())
}

/// "Lưu vào hệ thống": the account joins as "Chưa kích hoạt"; back to the list, which shows
/// the person.
async fn save(
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
    let account_id = form.get("account_id").unwrap_or("").to_string();
    let unit = form.get("unit").map(String::from);
    let event = support::event(&session, "membership.add", format!("account:{account_id}"))
        .rp(rp.clone())
        .detail(unit.clone().unwrap_or_default());
    let admin = session.admin.clone();
    let vault = state.vault().map_err(|e| support::refuse(e, lang))?;
    let rp2 = rp.clone();
    let member = support::change(&state, event, move |c, now| {
        if account_id.is_empty() {
            return Err(Error::invalid("account_id", support::CHOOSE_PERSON));
        }
        ms::add(c, &vault, &admin, &rp2, &account_id, unit.as_deref(), now)
    })
    .await
    .map_err(|e| support::refuse(e, lang))?;
    let shown = member
        .national_id
        .or(member.tax_code)
        .unwrap_or(member.display_name);
    Ok(support::back(
        &format!("/admin/rp/{rp}/members"),
        "added",
        &[("q", &shown)],
    ))
}
