//! Dynamic client registration (RFC 7591) at `/oidc/register`, open only to holders of an
//! initial access token that a federation admin issued for one owner agency
//! (`fedhub rp registration-token`). The token registers one client; registration and the
//! token's use are one transaction, so a refused registration leaves the token usable.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use diesel::prelude::*;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::OAuthError;
use crate::audit::{self, Event};
use crate::error::{Error, Result};
use crate::rp::oidc::{self as rp_oidc, AuthMethod, OidcRegistration, SubjectType};
use crate::store::schema::agencies;
use crate::store::schema::oidc_registration_tokens::dsl as rt;
use crate::store::Db;
use crate::tokens::{random_secret, sha256_hex};
use crate::web::{request_id_of, AppState};

/// Issues an initial access token for `owner` (an agency code); returns it (shown once).
pub fn issue_token(c: &mut Db, owner: &str, actor: &str, ttl: i64, now: i64) -> Result<String> {
    let known = agencies::table.find(owner).count().get_result::<i64>(c)? > 0;
    if !known {
        return Err(Error::invalid(
            "owner",
            format!("agency {owner} is not registered"),
        ));
    }
    if ttl <= 0 {
        return Err(Error::invalid("valid_for", "must be longer than zero"));
    }
    let token = random_secret("fhi_")?;
    diesel::insert_into(rt::oidc_registration_tokens)
        .values((
            rt::token_hash.eq(sha256_hex(&token)),
            rt::owner_agency_code.eq(owner),
            rt::created_by.eq(actor),
            rt::created_at.eq(now),
            rt::expires_at.eq(now + ttl),
        ))
        .execute(c)?;
    Ok(token)
}

/// Client metadata (RFC 7591 2 and the OIDC registration fields fedhub supports). Other
/// members are ignored, as the RFC requires.
#[derive(Debug, Deserialize)]
struct Metadata {
    redirect_uris: Option<Vec<String>>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
    id_token_signed_response_alg: Option<String>,
    subject_type: Option<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    backchannel_logout_uri: Option<String>,
}

fn metadata_error(d: impl Into<String>) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_client_metadata", d)
}

fn to_registration(
    m: Metadata,
    owner: String,
) -> std::result::Result<OidcRegistration, OAuthError> {
    let Some(redirect_uris) = m.redirect_uris.filter(|r| !r.is_empty()) else {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            "redirect_uris is required",
        ));
    };
    if m.jwks_uri.is_some() {
        return Err(metadata_error(
            "jwks_uri is not supported; register the keys inline as jwks",
        ));
    }
    for g in m.grant_types.iter().flatten() {
        if g != "authorization_code" && g != "refresh_token" {
            return Err(metadata_error(format!("grant type {g} is not supported")));
        }
    }
    for r in m.response_types.iter().flatten() {
        if r != "code" {
            return Err(metadata_error(format!(
                "response type {r} is not supported"
            )));
        }
    }
    let method = match m.token_endpoint_auth_method.as_deref() {
        None => None,
        Some(s) => Some(AuthMethod::parse(s).ok_or_else(|| {
            metadata_error(format!("token_endpoint_auth_method {s} is not supported"))
        })?),
    };
    let subject_type = match m.subject_type.as_deref() {
        None => None,
        Some("pairwise") => Some(SubjectType::Pairwise),
        Some("public") => Some(SubjectType::Public),
        Some(s) => return Err(metadata_error(format!("subject_type {s} is not supported"))),
    };
    Ok(OidcRegistration {
        client_id: None,
        owner_agency_code: owner,
        display_name: m.client_name,
        redirect_uris,
        post_logout_redirect_uris: m.post_logout_redirect_uris,
        backchannel_logout_uri: m.backchannel_logout_uri,
        scopes: m.scope.map(|s| {
            s.split(' ')
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        }),
        signing_alg: m.id_token_signed_response_alg,
        subject_type,
        claim_profile: None,
        access_token_format: None,
        access_token_ttl: None,
        refresh_token_ttl: None,
        require_activated_membership: None,
        token_endpoint_auth_method: method,
        jwks: m.jwks,
    })
}

pub async fn register(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match inner(&state, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

enum Refusal {
    BadToken,
}

async fn inner(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> std::result::Result<Response, OAuthError> {
    let Some(token) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
    else {
        return Err(OAuthError::invalid_token(
            "registration needs an initial access token from a federation admin",
        ));
    };
    let now = state.clock.now();
    let default_alg = state.config.keys.oidc_algorithm.clone();
    let hash = sha256_hex(&token);
    let request_id = request_id_of(headers);
    // Checks before the transaction that need no database.
    let probe: Option<String> = state
        .store
        .read_async({
            let hash = hash.clone();
            move |c| {
                Ok(rt::oidc_registration_tokens
                    .find(&hash)
                    .filter(rt::used_at.is_null())
                    .filter(rt::expires_at.gt(now))
                    .select(rt::owner_agency_code)
                    .first(c)
                    .optional()?)
            }
        })
        .await?;
    let Some(owner) = probe else {
        super::audit_refusal(
            state,
            "oidc.register",
            "(registration)".into(),
            "unknown, expired or used initial access token".into(),
            request_id,
        )
        .await;
        return Err(OAuthError::invalid_token(
            "the initial access token is unknown, expired or already used",
        ));
    };
    // Only a holder of a good token hears what is wrong with the body (RFC 7591 3 / RFC 6750).
    let metadata: Metadata = serde_json::from_slice(body)
        .map_err(|e| metadata_error(format!("the body is not client metadata JSON: {e}")))?;
    let mut reg = to_registration(metadata, owner)?;
    if reg.signing_alg.is_none() {
        reg.signing_alg = Some(default_alg);
    }
    let outcome = state
        .store
        .write_async(move |c| {
            let n = diesel::update(
                rt::oidc_registration_tokens
                    .find(&hash)
                    .filter(rt::used_at.is_null())
                    .filter(rt::expires_at.gt(now)),
            )
            .set(rt::used_at.eq(Some(now)))
            .execute(c)?;
            if n != 1 {
                return Ok(Err(Refusal::BadToken));
            }
            // An error rolls the whole transaction back: the token stays usable for a
            // corrected request.
            let done = rp_oidc::add(c, &reg, now)?;
            diesel::update(rt::oidc_registration_tokens.find(&hash))
                .set(rt::used_for.eq(Some(&done.rp.entity_id)))
                .execute(c)?;
            let event = Event::new(
                format!("registration-token:{}", &hash[..12]),
                "rp.register_oidc",
            )
            .target(done.rp.entity_id.clone())
            .rp(done.rp.id.clone())
            .request(Some(request_id.clone()));
            audit::record(c, &event, now)?;
            let settings = rp_oidc::settings(&done.rp)?;
            Ok(Ok((done, settings)))
        })
        .await
        .map_err(|e| match e {
            Error::Invalid { field, rule } if field.contains("redirect_uri") => OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_redirect_uri",
                format!("{field}: {rule}"),
            ),
            Error::Invalid { field, rule } | Error::Conflict { field, rule } => {
                metadata_error(format!("{field}: {rule}"))
            }
            other => other.into(),
        })?;
    let (done, settings) = match outcome {
        Ok(x) => x,
        Err(Refusal::BadToken) => {
            return Err(OAuthError::invalid_token(
                "the initial access token was used meanwhile",
            ))
        }
    };
    let mut body = json!({
        "client_id": done.rp.entity_id,
        "client_id_issued_at": now,
        "client_name": done.rp.display_name,
        "redirect_uris": settings.redirect_uris,
        "post_logout_redirect_uris": settings.post_logout_redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": settings.scopes.join(" "),
        "token_endpoint_auth_method": settings.token_endpoint_auth_method.as_str(),
        "id_token_signed_response_alg": settings.signing_alg,
        "subject_type": match settings.subject_type { SubjectType::Pairwise => "pairwise", SubjectType::Public => "public" },
    });
    if let Some(uri) = &settings.backchannel_logout_uri {
        body["backchannel_logout_uri"] = json!(uri);
    }
    if let Some(secret) = &done.client_secret {
        body["client_secret"] = json!(secret);
        body["client_secret_expires_at"] = json!(0);
    }
    let mut res = super::no_store_json(&body);
    *res.status_mut() = StatusCode::CREATED;
    Ok(res)
}
