//! "Gán quyền": a member's roles in the relying party (the built-in ones, "Admin của Bộ",
//! "Admin của Tỉnh/thành phố", "Nhóm admin đơn vị", and the relying party's own) and user
//! group; "Lưu lại" replaces what they had.

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use diesel::prelude::*;
use http::HeaderMap;
use minijinja::context;
use serde::Serialize;

use super::members::member_in;
use super::support::{self, Answer, Form, Section, Shell};
use super::ConsoleSession;
use crate::admin::memberships::{self as ms, BUILTIN_ROLES};
use crate::error::Error;
use crate::store::schema::memberships as m;
use crate::web::{page_context, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/rp/{rp}/members/{id}/roles", get(form).post(assign))
}

#[derive(Debug, Serialize)]
struct RoleBox {
    name: String,
    builtin: bool,
    checked: bool,
}

async fn form(
    State(state): State<AppState>,
    session: ConsoleSession,
    headers: HeaderMap,
    uri: http::Uri,
    Path((rp, id)): Path<(String, String)>,
) -> Answer {
    let lang = support::lang_of(&headers, &uri);
    let (rp2, id2) = (rp.clone(), id.clone());
    let now = state.clock.now();
    // A write: the built-in roles are created on first use.
    let (shell, member, roles, groups) = support::view(
        &state,
        &session,
        (
            "membership.view",
            format!("membership:{id}"),
            Some(rp.clone()),
        ),
        true,
        move |c, s| {
            let member = member_in(c, &s.admin, &rp2, &id2)?;
            let roles: Vec<RoleBox> = ms::roles_of(c, &rp2, now)?
                .into_iter()
                .map(|name| RoleBox {
                    builtin: BUILTIN_ROLES.contains(&name.as_str()),
                    checked: member.roles.contains(&name),
                    name,
                })
                .collect();
            // The user groups already in use in this relying party, offered as suggestions.
            let mut groups: Vec<String> = m::table
                .filter(m::rp_id.eq(&rp2))
                .filter(m::user_group.is_not_null())
                .select(m::user_group.assume_not_null())
                .distinct()
                .order(m::user_group.asc())
                .limit(100)
                .load(c)?;
            if !groups.iter().any(|g| g == "Nhóm admin đơn vị") {
                groups.insert(0, "Nhóm admin đơn vị".to_string());
            }
            let shell = Shell::load(c, s, Some(&rp2), Section::Members, None)?;
            Ok((shell, member, roles, groups))
        },
    )
    .await
    .map_err(|e| support::refuse(e, lang))?;
    let html = state
        .pages
        .render(
            "admin_member_roles.html",
            &page_context(&headers, &uri),
            context! { shell, rp_id => rp, member, roles, groups },
        )
        .map_err(|e| support::refuse(e, lang))?;
    Ok(Html(html).into_response())
}

async fn assign(
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
    let roles = form.all("role");
    let group = form.get("user_group").map(String::from);
    if group.as_deref().is_some_and(|g| g.chars().count() > 200) {
        return Err(support::refuse(
            Error::invalid("user_group", "at most 200 characters"),
            lang,
        ));
    }
    let event = support::event(
        &session,
        "membership.assign_roles",
        format!("membership:{id}"),
    )
    .rp(rp.clone())
    .detail(roles.join(", "));
    let admin = session.admin.clone();
    let rp2 = rp.clone();
    support::change(&state, event, move |c, now| {
        member_in(c, &admin, &rp2, &id)?;
        ms::assign_roles(c, &admin, &id, &roles, group.as_deref(), now)
    })
    .await
    .map_err(|e| support::refuse(e, lang))?;
    Ok(support::back(
        &format!("/admin/rp/{rp}/members"),
        "roles",
        &[],
    ))
}
