//! The OpenID Provider front for gateways. This release publishes its signing keys at
//! `/oidc/jwks` (current, next and previous, so clients can verify across a rotation); the
//! authorization and token endpoints are the next step.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use fedhub_metadata::jwk::{self, Jwk};
use fedhub_metadata::keys::KeyAlg;
use http::header;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::keys::{self, Purpose};
use crate::web::error::WebError;
use crate::web::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/oidc/jwks", get(jwks))
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
