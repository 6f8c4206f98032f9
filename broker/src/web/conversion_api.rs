//! Account conversion in the admin API: convert (or dry-run), the stored report, and the
//! conversion feed relying parties read to re-key their records (old subject → new subject).

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;

use super::api::{audited_api, ApiCaller, ApiJson, ApiResult};
use super::error::WebError;
use super::AppState;
use crate::audit::Event;
use crate::conversion::convert::{self, FeedEntry, Report, RequestBody, Source};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/conversions", post(create).get(feed))
        .route("/conversions/{id}", get(show))
}

/// Converts, or with `"dry_run": true` answers 200 with the same report and changes nothing.
async fn create(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(body): ApiJson<RequestBody>,
) -> ApiResult<(StatusCode, Json<Report>)> {
    let now = state.clock.now();
    let req = body.into_request().map_err(WebError::api)?;
    let source = match &req.source {
        Source::Legacy { legacy_id } => format!("legacy:{legacy_id}"),
        Source::Handover { account_id } => format!("account:{account_id}"),
    };
    let action = if req.dry_run {
        "conversion.dry_run"
    } else {
        "conversion.convert"
    };
    let event = Event::new(&caller.name, action)
        .target(format!("{source} -> account:{}", req.target_account_id))
        .rp(req.rp_id.clone())
        .request(Some(caller.request_id));
    let admin = caller.admin;
    let dry = req.dry_run;
    let (report, backchannel) = audited_api(&state, event, move |c| {
        convert::convert(c, &admin, &req, now)
    })
    .await?;
    crate::oidc::logout::send_backchannel(&state, backchannel).await;
    crate::conversion::webhook::kick(&state, report.id.clone());
    let status = if dry {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(report)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedQuery {
    rp: String,
    #[serde(default)]
    since: i64,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /conversions?rp=ID&since=SEQ`: what the relying party must re-key, oldest first; the
/// next call passes the last `seq` seen.
async fn feed(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<FeedQuery>,
) -> ApiResult<Json<Vec<FeedEntry>>> {
    let admin = caller.admin.clone();
    state
        .store
        .read_async(move |c| convert::feed(c, &admin, &q.rp, q.since, q.limit.unwrap_or(100)))
        .await
        .map(Json)
        .map_err(WebError::api)
}

async fn show(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Report>> {
    let admin = caller.admin.clone();
    state
        .store
        .read_async(move |c| convert::report(c, &admin, &id))
        .await
        .map(Json)
        .map_err(WebError::api)
}
