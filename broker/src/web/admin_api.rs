//! Delegated administration in the admin API: memberships, roles and admin grants of each
//! relying party, for any token holder the policy allows (personal tokens act with their
//! account's grants). Every change and every refusal is audited.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;

use super::api::{audited_api, revoke_admin_grant, ApiCaller, ApiJson, ApiResult};
use super::error::WebError;
use super::AppState;
use crate::admin::grants::{self, GrantRequest};
use crate::admin::memberships::{self as ms, Admin, Member, Page};
use crate::audit::Event;
use crate::directory::admin_grants::Grant;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route(
            "/relying-parties/{rp}/members",
            get(list_members).post(add_member),
        )
        .route(
            "/relying-parties/{rp}/roles",
            get(list_roles).post(add_role),
        )
        .route("/relying-parties/{rp}/admin-grants", get(list_grants))
        .route("/memberships/{id}", get(show_member).delete(remove_member))
        .route("/memberships/{id}/activate", post(activate))
        .route("/memberships/{id}/lock", post(lock))
        .route("/memberships/{id}/unlock", post(unlock))
        .route("/memberships/{id}/unit", axum::routing::put(change_unit))
        .route("/memberships/{id}/roles", axum::routing::put(assign_roles))
        .route("/admin-grants", post(grant))
        .route("/admin-grants/{id}/revoke", post(revoke_admin_grant))
        .route("/openapi.json", get(openapi))
}

#[derive(Debug, serde::Serialize)]
struct Me {
    actor: String,
    operator: bool,
    grants: Vec<serde_json::Value>,
}

/// Who the token speaks for and what it may do.
async fn me(caller: ApiCaller) -> Json<Me> {
    let grants = caller
        .admin
        .grants
        .iter()
        .map(|g| {
            serde_json::json!({
                "level": g.level,
                "rp_id": g.rp_id,
                "scope_agency_code": g.scope.as_ref().map(|s| s.as_str().to_string()),
            })
        })
        .collect();
    Json(Me {
        actor: caller.name.clone(),
        operator: caller.admin.is_operator(),
        grants,
    })
}

/// A read that the policy may refuse: refusals are audited like changes.
async fn read<T: Send + 'static>(
    state: &AppState,
    caller: &ApiCaller,
    action: &str,
    target: String,
    f: impl FnOnce(&mut crate::store::Db, &Admin) -> crate::error::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let admin = caller.admin.clone();
    let result = state.store.read_async(move |c| f(c, &admin)).await;
    if let Err(e @ crate::error::Error::Forbidden(_)) = &result {
        let now = state.clock.now();
        let event = Event::new(&caller.name, action.to_string())
            .target(target)
            .outcome(crate::audit::Outcome::Denied)
            .detail(e.to_string())
            .request(Some(caller.request_id.clone()));
        state
            .store
            .write_async(move |c| crate::audit::record(c, &event, now))
            .await
            .map_err(WebError::api)?;
    }
    result.map_err(WebError::api)
}

async fn list_members(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(rp): Path<String>,
    Query(q): Query<ms::ListQuery>,
) -> ApiResult<Json<Page>> {
    let rp2 = rp.clone();
    read(&state, &caller, "membership.list", rp, move |c, a| {
        ms::list(c, a, &rp2, &q)
    })
    .await
    .map(Json)
}

async fn show_member(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Member>> {
    let id2 = id.clone();
    read(&state, &caller, "membership.show", id, move |c, a| {
        ms::get_for(c, a, &id2)
    })
    .await
    .map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    account_id: String,
    #[serde(default)]
    unit: Option<String>,
}

async fn add_member(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(rp): Path<String>,
    ApiJson(body): ApiJson<NewMember>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    let now = state.clock.now();
    let vault = state.vault().map_err(WebError::api)?;
    let event = Event::new(&caller.name, "membership.add")
        .target(format!("account:{}", body.account_id))
        .rp(rp.clone())
        .detail(body.unit.clone().unwrap_or_default())
        .request(Some(caller.request_id));
    let admin = caller.admin;
    let m = audited_api(&state, event, move |c| {
        ms::add(
            c,
            &vault,
            &admin,
            &rp,
            &body.account_id,
            body.unit.as_deref(),
            now,
        )
    })
    .await?;
    Ok((StatusCode::CREATED, Json(m)))
}

/// The audit event of a change to membership `id`, with its relying party (so that
/// party's admins find it in their audit log).
async fn member_event(state: &AppState, caller: &ApiCaller, action: &str, id: &str) -> Event {
    let lookup = id.to_string();
    let rp: Option<String> = state
        .store
        .read_async(move |c| {
            use crate::store::schema::memberships as m;
            use diesel::prelude::*;
            Ok(m::table
                .find(&lookup)
                .select(m::rp_id)
                .get_result(c)
                .optional()?)
        })
        .await
        .ok()
        .flatten();
    let event = Event::new(&caller.name, action.to_string())
        .target(format!("membership:{id}"))
        .request(Some(caller.request_id.clone()));
    match rp {
        Some(rp) => event.rp(rp),
        None => event,
    }
}

async fn activate(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Member>> {
    let now = state.clock.now();
    let event = member_event(&state, &caller, "membership.activate", &id).await;
    let admin = caller.admin;
    audited_api(&state, event, move |c| ms::activate(c, &admin, &id, now))
        .await
        .map(Json)
}

async fn unlock(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Member>> {
    let now = state.clock.now();
    let event = member_event(&state, &caller, "membership.unlock", &id).await;
    let admin = caller.admin;
    audited_api(&state, event, move |c| ms::unlock(c, &admin, &id, now))
        .await
        .map(Json)
}

async fn lock(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Member>> {
    let now = state.clock.now();
    let event = member_event(&state, &caller, "membership.lock", &id).await;
    let admin = caller.admin;
    let (m, ended) = audited_api(&state, event, move |c| ms::lock(c, &admin, &id, now)).await?;
    // The person's relying parties hear it now (OIDC back-channel logout).
    crate::oidc::logout::send_backchannel(&state, ended.backchannel).await;
    Ok(Json(m))
}

async fn remove_member(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let now = state.clock.now();
    let event = member_event(&state, &caller, "membership.remove", &id).await;
    let admin = caller.admin;
    let (_, ended) = audited_api(&state, event, move |c| ms::remove(c, &admin, &id, now)).await?;
    crate::oidc::logout::send_backchannel(&state, ended.backchannel).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Unit {
    unit: String,
}

async fn change_unit(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Unit>,
) -> ApiResult<Json<Member>> {
    let now = state.clock.now();
    let event = member_event(&state, &caller, "membership.change_unit", &id)
        .await
        .detail(body.unit.clone());
    let admin = caller.admin;
    audited_api(&state, event, move |c| {
        ms::change_unit(c, &admin, &id, &body.unit, now)
    })
    .await
    .map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Roles {
    roles: Vec<String>,
    #[serde(default)]
    user_group: Option<String>,
}

async fn assign_roles(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Roles>,
) -> ApiResult<Json<Member>> {
    let now = state.clock.now();
    let event = member_event(&state, &caller, "membership.assign_roles", &id)
        .await
        .detail(body.roles.join(", "));
    let admin = caller.admin;
    audited_api(&state, event, move |c| {
        ms::assign_roles(c, &admin, &id, &body.roles, body.user_group.as_deref(), now)
    })
    .await
    .map(Json)
}

async fn list_roles(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(rp): Path<String>,
) -> ApiResult<Json<Vec<String>>> {
    let now = state.clock.now();
    let rp2 = rp.clone();
    let rp3 = rp.clone();
    read(&state, &caller, "role.list", rp.clone(), move |_, a| {
        a.check(&crate::admin::policy::Action::ViewMembers { rp_id: &rp3 })
    })
    .await?;
    // Writes the built-in roles on first use.
    state
        .store
        .write_async(move |c| ms::roles_of(c, &rp2, now))
        .await
        .map(Json)
        .map_err(WebError::api)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRole {
    name: String,
}

async fn add_role(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(rp): Path<String>,
    ApiJson(body): ApiJson<NewRole>,
) -> ApiResult<StatusCode> {
    let now = state.clock.now();
    let event = Event::new(&caller.name, "role.add")
        .target(body.name.clone())
        .rp(rp.clone())
        .request(Some(caller.request_id));
    let admin = caller.admin;
    audited_api(&state, event, move |c| {
        ms::add_role(c, &admin, &rp, &body.name, now)
    })
    .await?;
    Ok(StatusCode::CREATED)
}

async fn list_grants(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(rp): Path<String>,
) -> ApiResult<Json<Vec<Grant>>> {
    let rp2 = rp.clone();
    read(&state, &caller, "admin.list", rp, move |c, a| {
        grants::of_rp(c, a, &rp2)
    })
    .await
    .map(Json)
}

async fn grant(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(req): ApiJson<GrantRequest>,
) -> ApiResult<(StatusCode, Json<Grant>)> {
    let now = state.clock.now();
    let event = Event::new(&caller.name, "admin.grant")
        .target(format!("account:{}", req.account_id))
        .rp(req.rp_id.clone())
        .detail(format!("{} {}", req.level, req.scope_agency_code))
        .request(Some(caller.request_id));
    let admin = caller.admin;
    let g = audited_api(&state, event, move |c| grants::grant(c, &admin, &req, now)).await?;
    Ok((StatusCode::CREATED, Json(g)))
}

/// The OpenAPI 3.1 description of this API (public: it holds no data).
async fn openapi() -> ([(http::HeaderName, &'static str); 1], &'static str) {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}
