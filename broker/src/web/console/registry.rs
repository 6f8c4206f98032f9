//! The federation registry, for the federation operator only: the relying parties
//! (protocol, owner agency, enabled) and the connectors, which can be enabled and disabled.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::Router;
use diesel::prelude::*;
use http::HeaderMap;
use minijinja::context;
use serde::Serialize;

use super::support::{self, param, Answer, Form, Params, Section, Shell};
use super::ConsoleSession;
use crate::admin::policy::Action;
use crate::error::Error;
use crate::store::schema::agencies;
use crate::web::pages::Lang;
use crate::web::{page_context, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/registry", get(show)).route(
        "/admin/registry/connectors/{id}/{action}",
        post(set_enabled),
    )
}

#[derive(Debug, Serialize)]
struct RpRow {
    id: String,
    display_name: String,
    protocol: String,
    entity_id: String,
    owner: String,
    owner_name: String,
    requires_membership: bool,
    enabled: bool,
}

async fn show(
    State(state): State<AppState>,
    session: ConsoleSession,
    headers: HeaderMap,
    uri: http::Uri,
    Query(params): Query<Params>,
) -> Answer {
    let lang = support::lang_of(&headers, &uri);
    let done = param(&params, "done").map(String::from);
    let (shell, rps, connectors) = support::view(
        &state,
        &session,
        ("registry.view", "registry".into(), None),
        false,
        move |c, s| {
            s.admin.check(&Action::ManageRegistry)?;
            let shell = Shell::load(c, s, None, Section::Registry, done.as_deref())?;
            let list = crate::rp::list(c)?;
            let owners: Vec<String> = list.iter().map(|r| r.owner_agency_code.clone()).collect();
            let names: HashMap<String, (String, Option<String>)> = agencies::table
                .filter(agencies::code.eq_any(&owners))
                .select((agencies::code, agencies::name_vi, agencies::name_en))
                .load::<(String, String, Option<String>)>(c)?
                .into_iter()
                .map(|(code, vi, en)| (code, (vi, en)))
                .collect();
            let rps: Vec<RpRow> = list
                .into_iter()
                .map(|r| RpRow {
                    owner_name: names
                        .get(&r.owner_agency_code)
                        .map(|(vi, en)| match (en, lang) {
                            (Some(en), Lang::En) => en.clone(),
                            _ => vi.clone(),
                        })
                        .unwrap_or_default(),
                    id: r.id,
                    display_name: r.display_name,
                    protocol: r.protocol,
                    entity_id: r.entity_id,
                    owner: r.owner_agency_code,
                    requires_membership: r.requires_membership,
                    enabled: r.enabled,
                })
                .collect();
            let connectors = crate::upstream::list(c)?;
            Ok((shell, rps, connectors))
        },
    )
    .await
    .map_err(|e| support::refuse(e, lang))?;
    let html = state
        .pages
        .render(
            "admin_registry.html",
            &page_context(&headers, &uri),
            context! { shell, rps, connectors },
        )
        .map_err(|e| support::refuse(e, lang))?;
    Ok(Html(html).into_response())
}

/// Enables or disables a connector (audited `connector.enable` / `connector.disable`).
async fn set_enabled(
    State(state): State<AppState>,
    session: ConsoleSession,
    headers: HeaderMap,
    uri: http::Uri,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Answer {
    let lang = support::lang_of(&headers, &uri);
    let form = Form::parse(&body);
    session
        .check_form(&state, &headers, form.get("csrf"))
        .map_err(IntoResponse::into_response)?;
    let enabled = match action.as_str() {
        "enable" => true,
        "disable" => false,
        other => return Err(support::refuse(Error::not_found("action", other), lang)),
    };
    let event = support::event(&session, &format!("connector.{action}"), id.clone());
    let admin = session.admin.clone();
    support::change(&state, event, move |c, now| {
        admin.check(&Action::ManageRegistry)?;
        crate::upstream::set_enabled(c, &id, enabled, now)
    })
    .await
    .map_err(|e| support::refuse(e, lang))?;
    let done = if enabled {
        "connector_enabled"
    } else {
        "connector_disabled"
    };
    Ok(support::back("/admin/registry", done, &[]))
}
