//! "Quản lý người dùng": the members of one relying party the admin may see, with filters,
//! paging and a result count, and the actions of the seed's list screen.

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::Router;
use http::HeaderMap;
use minijinja::context;

use super::support::{self, param, Answer, Form, Params, Section, Shell};
use super::ConsoleSession;
use crate::admin::memberships::{self as ms, ListQuery, Member};
use crate::error::{Error, Result};
use crate::store::Db;
use crate::web::{page_context, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/rp/{rp}/members", get(list))
        .route("/admin/rp/{rp}/members/{id}/{action}", post(act))
}

/// A membership of `rp_id` the admin may act on: the policy decides first (refusals are
/// `Forbidden`), then a membership of another relying party is not found here.
pub(crate) fn member_in(c: &mut Db, admin: &ms::Admin, rp_id: &str, id: &str) -> Result<Member> {
    let member = ms::get_for(c, admin, id)?;
    if member.rp_id != rp_id {
        return Err(Error::not_found("membership", id));
    }
    Ok(member)
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
    let q = ListQuery {
        q: param(&params, "q").map(String::from),
        status: param(&params, "status").map(String::from),
        unit: param(&params, "unit").map(String::from),
        page: param(&params, "page").and_then(|p| p.parse().ok()),
        per_page: None,
    };
    let done = param(&params, "done").map(String::from);
    let (rp2, q2) = (rp.clone(), q.clone());
    let (shell, page, units) = support::view(
        &state,
        &session,
        ("membership.list", rp.clone(), Some(rp.clone())),
        false,
        move |c, s| {
            let page = ms::list(c, &s.admin, &rp2, &q2)?;
            let shell = Shell::load(c, s, Some(&rp2), Section::Members, done.as_deref())?;
            let units = super::tree::Subtree::of(c, &s.admin, &rp2)?;
            Ok((shell, page, units))
        },
    )
    .await
    .map_err(|e| support::refuse(e, lang))?;
    let (text, status, unit) = (
        q.q.clone().unwrap_or_default(),
        q.status.clone().unwrap_or_default(),
        q.unit.clone().unwrap_or_default(),
    );
    let pager = support::pager(
        &format!("/admin/rp/{rp}/members"),
        &[
            ("q", text.clone()),
            ("status", status.clone()),
            ("unit", unit.clone()),
        ],
        page.total,
        page.page,
        page.per_page,
    );
    let html = state
        .pages
        .render(
            "admin_members.html",
            &page_context(&headers, &uri),
            context! {
                shell,
                rp_id => rp,
                page,
                pager,
                units => units.units(lang == crate::web::pages::Lang::En),
                q => text,
                status,
                unit,
            },
        )
        .map_err(|e| support::refuse(e, lang))?;
    Ok(Html(html).into_response())
}

/// Activate, lock, unlock, remove: a POST from the list (CSRF-checked), audited whatever
/// the outcome, back to the list with what was done.
async fn act(
    State(state): State<AppState>,
    session: ConsoleSession,
    headers: HeaderMap,
    uri: http::Uri,
    Path((rp, id, action)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Answer {
    let lang = support::lang_of(&headers, &uri);
    let form = Form::parse(&body);
    session
        .check_form(&state, &headers, form.get("csrf"))
        .map_err(IntoResponse::into_response)?;
    if !["activate", "unlock", "lock", "remove"].contains(&action.as_str()) {
        return Err(support::refuse(Error::not_found("action", action), lang));
    }
    let event = support::event(
        &session,
        &format!("membership.{action}"),
        format!("membership:{id}"),
    )
    .rp(rp.clone());
    let admin = session.admin.clone();
    let (rp2, act) = (rp.clone(), action.clone());
    let backchannel = support::change(&state, event, move |c, now| {
        member_in(c, &admin, &rp2, &id)?;
        match act.as_str() {
            "activate" => ms::activate(c, &admin, &id, now).map(|_| Vec::new()),
            "unlock" => ms::unlock(c, &admin, &id, now).map(|_| Vec::new()),
            "lock" => ms::lock(c, &admin, &id, now).map(|(_, e)| e.backchannel),
            _ => ms::remove(c, &admin, &id, now).map(|(_, e)| e.backchannel),
        }
    })
    .await
    .map_err(|e| support::refuse(e, lang))?;
    // After the commit: the person's OIDC relying parties hear that their sessions ended.
    crate::oidc::logout::send_backchannel(&state, backchannel).await;
    Ok(support::back(
        &format!("/admin/rp/{rp}/members"),
        &action,
        &[],
    ))
}
