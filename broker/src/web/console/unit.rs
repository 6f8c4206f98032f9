//! "Thay đổi đơn vị": the unit a member works for in the relying party, picked from the
//! admin's agency subtree (nested lists with radio buttons, expandable without script).

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use http::HeaderMap;
use minijinja::context;

use super::members::member_in;
use super::support::{self, param, Answer, Form, Params, Section, Shell};
use super::tree::Subtree;
use super::ConsoleSession;
use crate::admin::memberships as ms;
use crate::error::Error;
use crate::web::pages::Lang;
use crate::web::{page_context, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/admin/rp/{rp}/members/{id}/unit",
        get(picker).post(change_unit),
    )
}

async fn picker(
    State(state): State<AppState>,
    session: ConsoleSession,
    headers: HeaderMap,
    uri: http::Uri,
    Path((rp, id)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Answer {
    let lang = support::lang_of(&headers, &uri);
    let chosen = param(&params, "unit").map(String::from);
    let (rp2, id2) = (rp.clone(), id.clone());
    let (shell, member, subtree) = support::view(
        &state,
        &session,
        (
            "membership.view",
            format!("membership:{id}"),
            Some(rp.clone()),
        ),
        false,
        move |c, s| {
            let member = member_in(c, &s.admin, &rp2, &id2)?;
            let shell = Shell::load(c, s, Some(&rp2), Section::Members, None)?;
            let subtree = Subtree::of(c, &s.admin, &rp2)?;
            Ok((shell, member, subtree))
        },
    )
    .await
    .map_err(|e| support::refuse(e, lang))?;
    let selected = chosen.or_else(|| member.unit_agency_code.clone());
    let tree = subtree.tree(selected.as_deref(), lang == Lang::En);
    let html = state
        .pages
        .render(
            "admin_member_unit.html",
            &page_context(&headers, &uri),
            context! {
                shell,
                rp_id => rp,
                member,
                tree,
                truncated => subtree.truncated,
            },
        )
        .map_err(|e| support::refuse(e, lang))?;
    Ok(Html(html).into_response())
}

async fn change_unit(
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
    let unit = form.get("unit").unwrap_or("").to_string();
    let event = support::event(
        &session,
        "membership.change_unit",
        format!("membership:{id}"),
    )
    .rp(rp.clone())
    .detail(unit.clone());
    let admin = session.admin.clone();
    let rp2 = rp.clone();
    support::change(&state, event, move |c, now| {
        member_in(c, &admin, &rp2, &id)?;
        if unit.is_empty() {
            return Err(Error::invalid("unit", support::CHOOSE_UNIT));
        }
        ms::change_unit(c, &admin, &id, &unit, now)
    })
    .await
    .map_err(|e| support::refuse(e, lang))?;
    Ok(support::back(
        &format!("/admin/rp/{rp}/members"),
        "unit",
        &[],
    ))
}
