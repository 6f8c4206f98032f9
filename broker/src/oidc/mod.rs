//! The OpenID Provider front for gateways and portal subsystems. Follow the data:
//! `/oidc/authorize` (or `/oidc/par` first) checks the request against the client's
//! registration → [`crate::login::RpRequest`] → SSO session or sign-in → [`authorize::answer`]
//! stores a single-use code → `/oidc/token` redeems it for ID, access and refresh tokens →
//! `/oidc/userinfo`, `/oidc/introspect`, `/oidc/revoke` → `/oidc/logout` ends the session
//! and tells every client by back-channel.

pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod grants;
pub mod logout;
pub mod register;
pub mod token;
pub mod userinfo;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use fedhub_metadata::jwk::{self, Jwk};
use fedhub_metadata::keys::KeyAlg;
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Event, Outcome};
use crate::error::{Error, Result};
use crate::keys::{self, Purpose};
use crate::web::error::WebError;
use crate::web::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oidc/jwks", get(jwks))
        .route(
            "/oidc/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/oidc/par", post(authorize::par))
        .route("/oidc/token", post(token::token))
        .route(
            "/oidc/userinfo",
            get(userinfo::userinfo_get).post(userinfo::userinfo_post),
        )
        .route("/oidc/introspect", post(userinfo::introspect))
        .route("/oidc/revoke", post(userinfo::revoke))
        .route(
            "/oidc/logout",
            get(logout::logout_get).post(logout::logout_post),
        )
        .route("/oidc/register", post(register::register))
}

/// Form or query parameters as received; RFC 6749 3.1: none may appear twice.
pub fn parse_params(
    raw: &[u8],
) -> std::result::Result<std::collections::HashMap<String, String>, String> {
    let mut out = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("parameter {k} appears more than once"));
        }
    }
    Ok(out)
}

/// [`parse_params`] for the machine endpoints: a repeated parameter is `invalid_request`.
pub fn form_of(
    raw: &[u8],
) -> std::result::Result<std::collections::HashMap<String, String>, OAuthError> {
    parse_params(raw).map_err(OAuthError::invalid_request)
}

/// The issuer identifier: the hub's public URL (discovery lives under it).
pub fn issuer(state: &AppState) -> String {
    state.config.base_url()
}

/// An OAuth error for a machine (token, userinfo, introspection, PAR, registration
/// endpoints): JSON `{"error", "error_description"}`, never cached.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// `WWW-Authenticate` to send (401 answers).
    pub challenge: Option<String>,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            challenge: None,
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        OAuthError {
            challenge: Some("Basic realm=\"fedhub\"".into()),
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
        }
    }
    pub fn invalid_token(d: impl Into<String>) -> Self {
        let d = d.into();
        OAuthError {
            challenge: Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                d.replace('"', "'")
            )),
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_token", d)
        }
    }
}

impl From<Error> for OAuthError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { field, rule } => {
                OAuthError::invalid_request(format!("{field}: {rule}"))
            }
            Error::Unavailable(m) => {
                tracing::warn!(error = %m, "OIDC endpoint unavailable");
                OAuthError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "try again shortly",
                )
            }
            other => {
                tracing::error!(error = %other, "OIDC endpoint failed");
                OAuthError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the server could not answer; the request was not carried out",
                )
            }
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut res = (
            self.status,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body.to_string(),
        )
            .into_response();
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        res
    }
}

/// A JSON answer that must not be cached (tokens, userinfo).
pub fn no_store_json(value: &serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        value.to_string(),
    )
        .into_response()
}

/// Audits a refused OIDC request (bad client authentication, code reuse, ...).
pub async fn audit_refusal(
    state: &AppState,
    action: &'static str,
    target: String,
    detail: String,
    request_id: String,
) {
    let now = state.clock.now();
    let event = Event::new("anonymous", action)
        .target(target)
        .outcome(Outcome::Denied)
        .detail(detail)
        .request(Some(request_id));
    if let Err(e) = state
        .store
        .write_async(move |c| audit::record(c, &event, now))
        .await
    {
        tracing::error!(error = %e, "could not audit a refused OIDC request");
    }
}

#[derive(Debug, Serialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// The published OIDC keys as a JWK Set.
pub fn key_set(conn: &mut crate::store::Db, now: i64) -> Result<JwkSet> {
    let mut keys = Vec::new();
    for k in keys::published(conn, Purpose::Oidc, now)? {
        let alg = KeyAlg::parse(&k.alg)
            .ok_or_else(|| Error::internal(format!("unknown key algorithm {}", k.alg)))?;
        keys.push(jwk::from_certificate(&k.kid, alg, &k.public_der).map_err(Error::internal)?);
    }
    Ok(JwkSet { keys })
}

async fn jwks(State(state): State<AppState>) -> Result<Response, WebError> {
    let now = state.clock.now();
    let set = state.store.read_async(move |c| key_set(c, now)).await?;
    let body = serde_json::to_string(&set).map_err(Error::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response())
}

/// OpenID Provider metadata (OpenID Connect Discovery 1.0, RFC 8414).
pub fn discovery_document(state: &AppState) -> serde_json::Value {
    let iss = issuer(state);
    let algs: Vec<&str> = fedhub_metadata::jose::JwsAlg::ALL
        .iter()
        .map(|a| a.as_str())
        .collect();
    let claims: Vec<&str> = [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "acr",
        "amr",
        "sid",
    ]
    .into_iter()
    .chain(
        claims::SCOPE_CLAIMS
            .iter()
            .flat_map(|(_, c)| c.iter().copied()),
    )
    .chain([
        "SoDinhDanh",
        "HoVaTen",
        "SoDienThoai",
        "ThuDienTu",
        "LoaiTaiKhoan",
        "MaSoThue",
    ])
    .collect();
    json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oidc/authorize"),
        "pushed_authorization_request_endpoint": format!("{iss}/oidc/par"),
        "token_endpoint": format!("{iss}/oidc/token"),
        "userinfo_endpoint": format!("{iss}/oidc/userinfo"),
        "jwks_uri": format!("{iss}/oidc/jwks"),
        "introspection_endpoint": format!("{iss}/oidc/introspect"),
        "revocation_endpoint": format!("{iss}/oidc/revoke"),
        "end_session_endpoint": format!("{iss}/oidc/logout"),
        "registration_endpoint": format!("{iss}/oidc/register"),
        "scopes_supported": crate::rp::oidc::SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": algs,
        "userinfo_signing_alg_values_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": claims,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "ui_locales_supported": ["vi", "en"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "require_pushed_authorization_requests": false,
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
        "access_token_formats": ["jwt", "opaque"],
    })
}

async fn discovery(State(state): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        discovery_document(&state).to_string(),
    )
        .into_response()
}
