//! Client authentication at the token, introspection, revocation and PAR endpoints:
//! `client_secret_basic`, `client_secret_post` (secret clients may use either) and
//! `private_key_jwt` (RFC 7523; a client registered for it has no secret at all). Every
//! failure is the same `invalid_client` to the caller and an audit entry for operators.

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use fedhub_metadata::jose::{self, JwsAlg};
use http::HeaderMap;

use super::OAuthError;
use crate::rp::oidc::{self as settings_mod, AuthMethod};
use crate::web::{request_id_of, AppState};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest client assertion lifetime accepted (its jti is remembered that long).
const MAX_ASSERTION_LIFETIME: i64 = 600;

/// An authenticated client (this node's parsed copy of its registration).
pub type Client = std::sync::Arc<crate::cache::OidcClient>;

enum Presented {
    Secret { id: String, secret: String },
    Assertion { id: Option<String>, jwt: String },
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn presented(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> std::result::Result<Presented, String> {
    let basic = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let has_secret = form.contains_key("client_secret");
    let has_assertion = form.contains_key("client_assertion");
    let methods =
        usize::from(basic.is_some()) + usize::from(has_secret) + usize::from(has_assertion);
    if methods > 1 {
        return Err("use exactly one client authentication method".into());
    }
    if let Some(b64) = basic {
        let raw = STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("malformed Basic credentials")?;
        let (id, secret) = raw.split_once(':').ok_or("malformed Basic credentials")?;
        // RFC 6749 2.3.1: both parts are form-urlencoded before Basic encoding.
        let id = form_decode(id);
        if form.get("client_id").is_some_and(|f| *f != id) {
            return Err("client_id in the body differs from the authenticated client".into());
        }
        return Ok(Presented::Secret {
            id,
            secret: form_decode(secret),
        });
    }
    if let Some(secret) = form.get("client_secret") {
        let id = form.get("client_id").ok_or("client_id is missing")?;
        return Ok(Presented::Secret {
            id: id.clone(),
            secret: secret.clone(),
        });
    }
    if let Some(jwt) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            return Err(format!("client_assertion_type must be {JWT_BEARER}"));
        }
        return Ok(Presented::Assertion {
            id: form.get("client_id").cloned(),
            jwt: jwt.clone(),
        });
    }
    Err("no client authentication".into())
}

/// Whether the request says its body is a form (`application/x-www-form-urlencoded`).
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The token, introspection, revocation and PAR endpoints take forms only (RFC 6749 3.2);
/// anything else is an `invalid_request` in JSON like every other error there, not a page.
pub fn require_form(headers: &HeaderMap) -> std::result::Result<(), OAuthError> {
    if is_form(headers) {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ))
    }
}

/// The unverified `iss` of a JWT, only to find which client's keys to verify it with.
fn unverified_issuer(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(String::from)
}

/// The client by client_id: this node's copy when fresh, else through the database.
pub(crate) async fn load_client(
    state: &AppState,
    id: &str,
) -> crate::error::Result<Option<Client>> {
    if let Some(rp) = state.cache.peek_rp_by_entity_id(id) {
        if let Some(client) = state.cache.peek_oidc_client(&rp.id) {
            return Ok(Some(client));
        }
    }
    let (cache, id) = (state.cache.clone(), id.to_string());
    state
        .store
        .read_async(move |c| cache.oidc_client(c, &id))
        .await
}

/// Authenticates the calling client, or answers `invalid_client` (audited).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    endpoint: &'static str,
) -> std::result::Result<Client, OAuthError> {
    let request_id = request_id_of(headers);
    let outcome = check(state, headers, form).await;
    match outcome {
        Ok(Ok(client)) => Ok(client),
        Ok(Err((who, why))) => {
            super::audit_refusal(
                state,
                "oidc.client_auth",
                who,
                format!("{endpoint}: {why}"),
                request_id,
            )
            .await;
            Err(OAuthError::invalid_client("client authentication failed"))
        }
        Err(e) => Err(e.into()),
    }
}

type Checked = std::result::Result<Client, (String, String)>;

async fn check(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> crate::error::Result<Checked> {
    let presented = match presented(headers, form) {
        Ok(p) => p,
        Err(why) => {
            let who = form.get("client_id").cloned().unwrap_or_default();
            return Ok(Err((who, why)));
        }
    };
    match presented {
        Presented::Secret { id, secret } => {
            let client = load_client(state, &id).await?;
            let Some(client) = client else {
                return Ok(Err((id, "unknown client".into())));
            };
            if client.settings.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt {
                return Ok(Err((
                    id,
                    "this client must authenticate with private_key_jwt".into(),
                )));
            }
            if !settings_mod::secret_matches(&client.settings, &secret) {
                return Ok(Err((id, "wrong client secret".into())));
            }
            if !client.rp.enabled {
                return Ok(Err((id, "client is disabled".into())));
            }
            Ok(Ok(client))
        }
        Presented::Assertion { id, jwt } => {
            let iss = unverified_issuer(&jwt);
            let Some(id) = id.or(iss.clone()) else {
                return Ok(Err((
                    String::new(),
                    "client assertion has no issuer".into(),
                )));
            };
            let client = load_client(state, &id).await?;
            let Some(client) = client else {
                return Ok(Err((id, "unknown client".into())));
            };
            if client.settings.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt {
                return Ok(Err((
                    id,
                    "this client is not registered for private_key_jwt".into(),
                )));
            }
            let keys: Vec<serde_json::Value> = client
                .settings
                .jwks
                .as_ref()
                .and_then(|s| s.get("keys"))
                .and_then(|k| k.as_array())
                .cloned()
                .unwrap_or_default();
            let verified = match jose::verify(&jwt, &keys, &JwsAlg::ALL) {
                Ok(v) => v,
                Err(e) => return Ok(Err((id, format!("client assertion: {e}")))),
            };
            let now = state.clock.now();
            // The client's clock may be behind ours by this much (`connectors.clock_skew`).
            let skew = i64::try_from(state.config.connectors.clock_skew.as_secs()).unwrap_or(0);
            let c = &verified.claims;
            let s = |k: &str| c.get(k).and_then(|v| v.as_str());
            let iss_url = super::issuer(state);
            let token_url = format!("{iss_url}/oidc/token");
            let aud_ok = match c.get("aud") {
                Some(serde_json::Value::String(a)) => {
                    *a == iss_url || a.starts_with(&format!("{iss_url}/oidc/"))
                }
                Some(serde_json::Value::Array(list)) => list.iter().any(|a| {
                    a.as_str().is_some_and(|a| {
                        a == iss_url || a == token_url || a.starts_with(&format!("{iss_url}/oidc/"))
                    })
                }),
                _ => false,
            };
            let exp = c.get("exp").and_then(|v| v.as_i64());
            let problem = if s("iss") != Some(&id) || s("sub") != Some(&id) {
                Some("iss and sub must both be the client_id")
            } else if !aud_ok {
                Some("aud must be the issuer or the endpoint")
            } else if exp.is_none_or(|e| e.saturating_add(skew) <= now) {
                Some("client assertion expired")
            } else if exp.is_some_and(|e| e > now + MAX_ASSERTION_LIFETIME) {
                Some("client assertion lives too long (at most 10 minutes)")
            } else if s("jti").is_none() {
                Some("client assertion has no jti")
            } else {
                None
            };
            if let Some(p) = problem {
                return Ok(Err((id, p.into())));
            }
            // A client assertion is accepted once (RFC 7523 3, item 7).
            let key = format!("jwt!{id}!{}", s("jti").unwrap_or_default());
            let until = exp.unwrap_or(now).saturating_add(skew);
            let fresh = state
                .store
                .write_async(move |c| crate::store::replay::remember_once(c, &key, until, now))
                .await?;
            if !fresh {
                return Ok(Err((
                    id,
                    "client assertion replayed (jti seen before)".into(),
                )));
            }
            if !client.rp.enabled {
                return Ok(Err((id, "client is disabled".into())));
            }
            Ok(Ok(client))
        }
    }
}
