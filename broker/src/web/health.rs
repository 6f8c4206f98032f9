//! Liveness and readiness for load balancers and orchestrators.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use serde_json::json;

use super::AppState;
use crate::store::Readiness;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can serve: the database answers and is fully migrated, or every connection
/// is busy serving (a full node stays in the load balancer: it sheds what it cannot take
/// with 503 itself, and pulling it would only overload the others).
async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let result = tokio::task::spawn_blocking(move || store.readiness()).await;
    match result {
        Ok(Ok(Readiness::Ready)) => {
            Json(json!({ "status": "ready", "database": "ok" })).into_response()
        }
        Ok(Ok(Readiness::Busy)) => {
            Json(json!({ "status": "ready", "database": "busy" })).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": e.kind() })),
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable" })),
        )
            .into_response(),
    }
}
