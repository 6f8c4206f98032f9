//! `/oidc/token`: authorization_code (single use, bound to client, redirect URI and PKCE) and
//! refresh_token (rotated at every use; a rotated token used again revokes its whole family).
//! Errors are RFC 6749 5.2 JSON; bad client authentication and code reuse are audited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fedhub_metadata::jose::{self, JwsAlg, JwsSigner};
use fedhub_metadata::AtRestKey;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::client_auth::{self, Client};
use super::grants::{self, CodeProblem, Grant, Kind, NewToken};
use super::{claims, OAuthError};
use crate::error::{Error, Result};
use crate::keys::{self, Purpose};
use crate::login::resolve;
use crate::rp::oidc::{AccessTokenFormat, OidcSettings};
use crate::store::Db;
use crate::tokens::random_secret;
use crate::web::{request_id_of, AppState};

/// Opened signing keys by (kid, alg). A kid names one immutable key, so an entry never goes
/// stale; which kid signs comes from the node's cache, which follows rotations on any node.
#[derive(Clone)]
pub struct SignerCache {
    opened: Arc<Mutex<SignerMap>>,
    node: crate::cache::NodeCache,
}

type SignerMap = HashMap<(String, &'static str), Arc<JwsSigner>>;

impl SignerCache {
    pub fn new(node: crate::cache::NodeCache) -> SignerCache {
        SignerCache {
            opened: Arc::default(),
            node,
        }
    }

    /// The current signer for `alg`.
    pub fn current(&self, conn: &mut Db, vault: &AtRestKey, alg: JwsAlg) -> Result<Arc<JwsSigner>> {
        let kid = self.node.current_kid(conn, Purpose::Oidc, alg.key_alg())?;
        let key = (kid.clone(), alg.as_str());
        if let Some(s) = self.opened.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(s);
        }
        let signer = keys::signer_for(conn, vault, Purpose::Oidc, alg.key_alg())?;
        let jws = Arc::new(
            JwsSigner::new(&signer.kid, alg, &signer.private_der).map_err(Error::internal)?,
        );
        if let Ok(mut m) = self.opened.lock() {
            m.insert(key, jws.clone());
        }
        Ok(jws)
    }
}

impl std::fmt::Debug for SignerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignerCache")
    }
}

pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match handle(&state, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> std::result::Result<Response, OAuthError> {
    client_auth::require_form(headers)?;
    let form = super::form_of(body)?;
    let client = client_auth::authenticate(state, headers, &form, "token").await?;
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => authorization_code(state, headers, client, &form).await,
        Some("refresh_token") => refresh(state, headers, client, &form).await,
        Some(other) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant_type {other} is not supported"),
        )),
        None => Err(OAuthError::invalid_request("grant_type is missing")),
    }
}

/// RFC 7636 4.6: BASE64URL(SHA256(verifier)) must equal the challenge.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed
        && URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            verifier.as_bytes(),
        )) == challenge
}

/// What a token request ended in, decided inside one transaction.
enum Outcome2 {
    Issued(Minted),
    Refused {
        error: OAuthError,
        audit: Option<String>,
    },
}

fn refused(d: impl Into<String>) -> Outcome2 {
    Outcome2::Refused {
        error: OAuthError::invalid_grant(d),
        audit: None,
    }
}

async fn authorization_code(
    state: &AppState,
    headers: &HeaderMap,
    client: Client,
    form: &HashMap<String, String>,
) -> std::result::Result<Response, OAuthError> {
    let code = form
        .get("code")
        .cloned()
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let redirect_uri = form
        .get("redirect_uri")
        .cloned()
        .ok_or_else(|| OAuthError::invalid_request("redirect_uri is missing"))?;
    let Some(verifier) = form.get("code_verifier").cloned() else {
        return Err(OAuthError::invalid_request(
            "code_verifier is missing (PKCE is required)",
        ));
    };
    let now = state.clock.now();
    let issuer = super::issuer(state);
    let vault = state.vault()?;
    let cfg = Lifetimes::of(state, &client.settings);
    let signers = state.oidc_signers.clone();
    let client_id = client.rp.entity_id.clone();
    let outcome = state
        .store
        .write_async(move |c| {
            let redeemed = match grants::redeem_code(c, &code, now)? {
                Ok(r) => r,
                Err(CodeProblem::Unknown) => return Ok(refused("the code is unknown")),
                Err(CodeProblem::Expired) => return Ok(refused("the code has expired")),
                Err(CodeProblem::Reused { revoked }) => {
                    return Ok(Outcome2::Refused {
                        error: OAuthError::invalid_grant("the code was already used"),
                        audit: Some(format!(
                            "authorization code reused; {revoked} token(s) it issued revoked"
                        )),
                    })
                }
            };
            // The code is spent whatever follows: a stolen code cannot be tried twice.
            if redeemed.grant.client_id != client_id {
                return Ok(Outcome2::Refused {
                    error: OAuthError::invalid_grant("the code was issued to another client"),
                    audit: Some("code presented by another client".into()),
                });
            }
            if redeemed.redirect_uri != redirect_uri {
                return Ok(refused(
                    "redirect_uri differs from the authorization request",
                ));
            }
            if !pkce_matches(&verifier, &redeemed.code_challenge) {
                return Ok(Outcome2::Refused {
                    error: OAuthError::invalid_grant("code_verifier does not match the challenge"),
                    audit: Some("PKCE verification failed".into()),
                });
            }
            let family = uuid::Uuid::new_v4().simple().to_string();
            let body = issue(
                c,
                &signers,
                &vault,
                &issuer,
                &cfg,
                &redeemed.grant,
                Some(&redeemed.code_hash),
                &family,
                true,
                now,
            )?;
            Ok(Outcome2::Issued(body))
        })
        .await?;
    finish(state, headers, &client, outcome).await
}

async fn finish(
    state: &AppState,
    headers: &HeaderMap,
    client: &Client,
    outcome: Outcome2,
) -> std::result::Result<Response, OAuthError> {
    match outcome {
        // The ID token is signed here, after the commit: the database's write turn is not
        // held during an RSA signature.
        Outcome2::Issued(minted) => Ok(super::no_store_json(&minted.signed()?)),
        Outcome2::Refused { error, audit } => {
            if let Some(detail) = audit {
                super::audit_refusal(
                    state,
                    "oidc.token",
                    client.rp.entity_id.clone(),
                    detail,
                    request_id_of(headers),
                )
                .await;
            }
            Err(error)
        }
    }
}

async fn refresh(
    state: &AppState,
    headers: &HeaderMap,
    client: Client,
    form: &HashMap<String, String>,
) -> std::result::Result<Response, OAuthError> {
    let presented = form
        .get("refresh_token")
        .cloned()
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let narrowed = form.get("scope").cloned();
    let now = state.clock.now();
    let issuer = super::issuer(state);
    let vault = state.vault()?;
    let cfg = Lifetimes::of(state, &client.settings);
    let signers = state.oidc_signers.clone();
    let settings = client.settings.clone();
    let rp = client.rp.clone();
    let outcome = state
        .store
        .write_async(move |c| {
            let Some(record) = grants::find_token(c, &presented)? else {
                return Ok(refused("the refresh token is unknown"));
            };
            if record.kind != Kind::Refresh || record.client_id != rp.entity_id {
                return Ok(refused("the refresh token was not issued to this client"));
            }
            if record.replaced_by.is_some() || record.revoked_at.is_some() {
                // Reuse of a rotated token: someone holds a copy. End the whole family.
                let n = grants::revoke_family(c, &record.family_id, now)?;
                return Ok(Outcome2::Refused {
                    error: OAuthError::invalid_grant("the refresh token was already used"),
                    audit: Some(format!(
                        "refresh token reused; family of {n} live token(s) revoked"
                    )),
                });
            }
            if record.expires_at <= now {
                return Ok(refused("the refresh token has expired"));
            }
            let mut grant = record.grant.clone();
            if let Some(scope) = narrowed {
                if scope
                    .split(' ')
                    .any(|s| !grant.scope.iter().any(|g| g == s))
                {
                    return Ok(Outcome2::Refused {
                        error: OAuthError::new(
                            StatusCode::BAD_REQUEST,
                            "invalid_scope",
                            "a refresh cannot widen the scope",
                        ),
                        audit: None,
                    });
                }
            }
            // The person may have lost access since: check again, and refresh the claims.
            let account = crate::directory::accounts::get(c, &grant.account_id)?;
            match resolve::for_rp(c, &vault, account, &rp)? {
                Ok(resolved) => {
                    grant.claims = claims::release(&resolved, &grant.scope, settings.claim_profile);
                }
                Err(refusal) => {
                    grants::revoke_family(c, &record.family_id, now)?;
                    return Ok(Outcome2::Refused {
                        error: OAuthError::invalid_grant(
                            "the person may no longer use this service",
                        ),
                        audit: Some(format!("refresh refused: {}", refusal.as_str())),
                    });
                }
            }
            grant.nonce = None;
            let body = issue(
                c,
                &signers,
                &vault,
                &issuer,
                &cfg,
                &grant,
                record.code_hash.as_deref(),
                &record.family_id,
                true,
                now,
            )?;
            let new_refresh = body
                .body
                .get("refresh_token")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            if !grants::mark_replaced(c, &record.token_hash, &new_refresh)? {
                // Another request rotated it at the same moment: treat as reuse.
                return Err(Error::Conflict {
                    field: "refresh_token".into(),
                    rule: "rotated concurrently".into(),
                });
            }
            Ok(Outcome2::Issued(body))
        })
        .await
        .map_err(|e| match e {
            Error::Conflict { .. } => {
                OAuthError::invalid_grant("the refresh token was already used")
            }
            other => other.into(),
        })?;
    finish(state, headers, &client, outcome).await
}

/// Token lifetimes for one client, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub access: i64,
    pub id: i64,
    pub refresh: i64,
    pub format: AccessTokenFormat,
    pub alg: JwsAlg,
}

impl Lifetimes {
    pub fn of(state: &AppState, s: &OidcSettings) -> Lifetimes {
        let t = &state.config.tokens;
        Lifetimes {
            access: s.access_token_ttl.unwrap_or(t.access_token_ttl.as_secs()) as i64,
            id: t.id_token_ttl.as_secs() as i64,
            refresh: s.refresh_token_ttl.unwrap_or(t.refresh_token_ttl.as_secs()) as i64,
            format: s.access_token_format,
            alg: JwsAlg::parse(&s.signing_alg).unwrap_or(JwsAlg::RS256),
        }
    }
}

/// A token response whose ID token is still to be signed: the ID token is not stored, so it
/// is signed after the transaction that stored the others commits.
pub struct Minted {
    body: Value,
    id_token: Option<Value>,
    signer: Arc<JwsSigner>,
}

impl Minted {
    /// The token response, its ID token signed.
    pub fn signed(mut self) -> Result<Value> {
        if let Some(claims) = self.id_token.take() {
            let jwt = self
                .signer
                .sign(Some("JWT"), &claims)
                .map_err(Error::internal)?;
            self.body["id_token"] = json!(jwt);
        }
        Ok(self.body)
    }
}

/// Mints the access token (JWT per RFC 9068 or opaque), a refresh token when the grant
/// includes offline_access, and the ID token's claims; stores the first two (hashed).
#[allow(clippy::too_many_arguments)]
pub fn issue(
    c: &mut Db,
    signers: &SignerCache,
    vault: &AtRestKey,
    issuer: &str,
    cfg: &Lifetimes,
    grant: &Grant,
    code_hash: Option<&str>,
    family: &str,
    with_id_token: bool,
    now: i64,
) -> Result<Minted> {
    let signer = signers.current(c, vault, cfg.alg)?;
    let scope = grant.scope.join(" ");
    let access = match cfg.format {
        AccessTokenFormat::Opaque => random_secret("fha_")?,
        AccessTokenFormat::Jwt => {
            let mut claims = json!({
                "iss": issuer,
                "sub": grant.sub,
                "aud": grant.client_id,
                "client_id": grant.client_id,
                "iat": now,
                "exp": now + cfg.access,
                "jti": uuid::Uuid::new_v4().simple().to_string(),
                "scope": scope,
                "auth_time": grant.auth_time,
                "sid": grant.sid,
            });
            if let Some(acr) = &grant.acr {
                claims["acr"] = json!(acr);
            }
            signer
                .sign(Some("at+jwt"), &claims)
                .map_err(Error::internal)?
        }
    };
    grants::store_token(
        c,
        NewToken {
            token: &access,
            kind: Kind::Access,
            grant,
            code_hash,
            family_id: family,
            ttl: cfg.access,
        },
        now,
    )?;
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": cfg.access,
        "scope": scope,
    });
    if grant.scope.iter().any(|s| s == "offline_access") {
        let refresh = random_secret("fhr_")?;
        grants::store_token(
            c,
            NewToken {
                token: &refresh,
                kind: Kind::Refresh,
                grant,
                code_hash,
                family_id: family,
                ttl: cfg.refresh,
            },
            now,
        )?;
        body["refresh_token"] = json!(refresh);
    }
    let mut id_token = None;
    if with_id_token {
        let mut id = json!({
            "iss": issuer,
            "sub": grant.sub,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + cfg.id,
            "auth_time": grant.auth_time,
            "sid": grant.sid,
            "at_hash": jose::half_hash(cfg.alg, &access),
        });
        if let Some(n) = &grant.nonce {
            id["nonce"] = json!(n);
        }
        if let Some(acr) = &grant.acr {
            id["acr"] = json!(acr);
        }
        if !grant.amr.is_empty() {
            id["amr"] = json!(grant.amr);
        }
        if let Some(obj) = id.as_object_mut() {
            for (k, v) in &grant.claims {
                obj.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        id_token = Some(id);
    }
    Ok(Minted {
        body,
        id_token,
        signer,
    })
}
