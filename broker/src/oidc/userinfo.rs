//! `/oidc/userinfo` (GET and POST, RFC 6750 bearer), `/oidc/introspect` (RFC 7662) and
//! `/oidc/revoke` (RFC 7009). A token is good only while its database row is live, so
//! revocation and code-reuse revocation take effect at once, JWT access tokens included.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde_json::{json, Value};

use super::client_auth;
use super::grants::{self, Kind, TokenRecord};
use super::OAuthError;
use crate::web::AppState;

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
}

async fn live_access_token(
    state: &AppState,
    token: String,
) -> std::result::Result<TokenRecord, OAuthError> {
    let now = state.clock.now();
    let record = state
        .store
        .read_async(move |c| grants::find_token(c, &token))
        .await?;
    match record {
        Some(r) if r.kind == Kind::Access && r.active(now) => Ok(r),
        _ => Err(OAuthError::invalid_token(
            "the access token is unknown, expired or revoked",
        )),
    }
}

fn userinfo_body(r: &TokenRecord) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("sub".into(), json!(r.grant.sub));
    for (k, v) in &r.grant.claims {
        out.insert(k.clone(), v.clone());
    }
    Value::Object(out)
}

pub async fn userinfo_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        return missing_token();
    };
    match live_access_token(&state, token).await {
        Ok(r) => super::no_store_json(&userinfo_body(&r)),
        Err(e) => e.into_response(),
    }
}

fn missing_token() -> Response {
    let mut e = OAuthError::invalid_request("an access token is required (Authorization: Bearer)");
    e.status = http::StatusCode::UNAUTHORIZED;
    e.challenge = Some("Bearer realm=\"fedhub\"".into());
    e.into_response()
}

/// POST: the token in the Authorization header or as the `access_token` form field
/// (RFC 6750 2.2), never both. With the header, the body may be empty and untyped (OIDC
/// Core 5.3.1 lets a client POST exactly like it GETs).
pub async fn userinfo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !client_auth::is_form(&headers) && !body.is_empty() {
        return OAuthError::invalid_request("the body must be application/x-www-form-urlencoded")
            .into_response();
    }
    let form = match super::form_of(&body) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let token = match (bearer(&headers), form.get("access_token")) {
        (Some(_), Some(_)) => {
            return OAuthError::invalid_request("send the access token once").into_response()
        }
        (Some(t), None) => t,
        (None, Some(t)) => t.clone(),
        (None, None) => return missing_token(),
    };
    match live_access_token(&state, token).await {
        Ok(r) => super::no_store_json(&userinfo_body(&r)),
        Err(e) => e.into_response(),
    }
}

pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match introspect_inner(&state, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn introspect_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> std::result::Result<Response, OAuthError> {
    client_auth::require_form(headers)?;
    let form = super::form_of(body)?;
    let client = client_auth::authenticate(state, headers, &form, "introspect").await?;
    let token = form
        .get("token")
        .cloned()
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let now = state.clock.now();
    let record = state
        .store
        .read_async(move |c| grants::find_token(c, &token))
        .await?;
    // A client learns only about its own tokens; anything else is simply inactive.
    let body = match record {
        Some(r) if r.active(now) && r.client_id == client.rp.entity_id => json!({
            "active": true,
            "scope": r.grant.scope.join(" "),
            "client_id": r.client_id,
            "sub": r.grant.sub,
            "aud": r.client_id,
            "iss": super::issuer(state),
            "exp": r.expires_at,
            "iat": r.created_at,
            "sid": r.grant.sid,
            "auth_time": r.grant.auth_time,
            "token_type": match r.kind { Kind::Access => "Bearer", Kind::Refresh => "refresh_token" },
        }),
        _ => json!({"active": false}),
    };
    Ok(super::no_store_json(&body))
}

pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match revoke_inner(&state, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn revoke_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> std::result::Result<Response, OAuthError> {
    client_auth::require_form(headers)?;
    let form = super::form_of(body)?;
    let client = client_auth::authenticate(state, headers, &form, "revoke").await?;
    let token = form
        .get("token")
        .cloned()
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let now = state.clock.now();
    let client_id = client.rp.entity_id.clone();
    state
        .store
        .write_async(move |c| {
            if let Some(r) = grants::find_token(c, &token)? {
                if r.client_id == client_id {
                    match r.kind {
                        // Revoking a refresh token ends the grant, access tokens included.
                        Kind::Refresh => {
                            grants::revoke_family(c, &r.family_id, now)?;
                        }
                        Kind::Access => grants::revoke_token(c, &r.token_hash, now)?,
                    }
                }
            }
            Ok(())
        })
        .await?;
    // RFC 7009 2.2: 200 whether or not the token was known.
    Ok(super::no_store_json(&json!({})))
}
