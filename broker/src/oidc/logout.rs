//! `/oidc/logout` (OpenID Connect RP-Initiated Logout 1.0) and back-channel logout tokens
//! (OpenID Connect Back-Channel Logout 1.0). Ending a session is one path for every protocol
//! (`saml::slo`): the session ends, its access tokens are revoked, every OIDC client it served
//! gets a logout token, SAML SPs are told by front channel, and the browser goes to the
//! client's registered post_logout_redirect_uri, or sees the signed-out page.

use std::time::Duration;

use axum::extract::{RawForm, RawQuery, State};
use axum::response::{Html, IntoResponse, Response};
use diesel::prelude::*;
use fedhub_metadata::jose::{self, JwsAlg};
use http::HeaderMap;
use minijinja::context;
use serde_json::json;

use crate::error::{Error, Result};
use crate::rp::{self, oidc as rp_oidc};
use crate::saml::slo::{self, OidcEnd};
use crate::store::schema::oidc_tokens::dsl as ot;
use crate::store::schema::{sso_session_rps as sr, sso_sessions as ss};
use crate::store::Db;
use crate::web::error::WebError;
use crate::web::{page_context_for, AppState};

pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
const BACKCHANNEL_TIMEOUT: Duration = Duration::from_secs(5);

/// A client to tell that a session ended.
#[derive(Debug, Clone)]
pub struct Target {
    pub client_id: String,
    pub uri: String,
    pub sub: String,
    pub sid: Option<String>,
    pub alg: JwsAlg,
}

/// The live SSO session in which `rp_id` was given session id `sid`.
pub fn session_by_sid(c: &mut Db, rp_id: &str, sid: &str) -> Result<Vec<(String, String)>> {
    Ok(sr::table
        .inner_join(ss::table)
        .filter(sr::rp_id.eq(rp_id))
        .filter(sr::session_index.eq(sid))
        .filter(ss::ended_at.is_null())
        .select((ss::id, ss::account_id))
        .load(c)?)
}

/// The OIDC clients served in a session that registered a back-channel logout URI.
pub fn targets(c: &mut Db, session_id: &str) -> Result<Vec<Target>> {
    let served: Vec<(String, String, Option<String>)> = sr::table
        .filter(sr::sso_session_id.eq(session_id))
        .select((sr::rp_id, sr::subject, sr::session_index))
        .load(c)?;
    let mut out = Vec::new();
    for (rp_id, sub, sid) in served {
        let rp = rp::get(c, &rp_id)?;
        if rp.protocol != "oidc" {
            continue;
        }
        let settings = rp_oidc::settings(&rp)?;
        if let Some(uri) = settings.backchannel_logout_uri {
            out.push(Target {
                client_id: rp.entity_id,
                uri,
                sub,
                sid,
                alg: JwsAlg::parse(&settings.signing_alg).unwrap_or(JwsAlg::RS256),
            });
        }
    }
    Ok(out)
}

/// Access tokens die with the session; refresh tokens (granted only with offline_access)
/// outlive it by design.
pub fn end_session_tokens(c: &mut Db, session_id: &str, now: i64) -> Result<()> {
    diesel::update(
        ot::oidc_tokens
            .filter(ot::sso_session_id.eq(session_id))
            .filter(ot::kind.eq("access"))
            .filter(ot::revoked_at.is_null()),
    )
    .set(ot::revoked_at.eq(Some(now)))
    .execute(c)?;
    Ok(())
}

/// Signs and POSTs a logout token to each target, all at once, each bounded by a timeout.
/// A client that does not answer 200 is logged; the logout itself has already happened.
pub async fn send_backchannel(state: &AppState, targets: Vec<Target>) {
    if targets.is_empty() {
        return;
    }
    let now = state.clock.now();
    let issuer = super::issuer(state);
    let Ok(vault) = state.vault() else { return };
    let signers = state.oidc_signers.clone();
    let signed = state
        .store
        .read_async(move |c| {
            let mut out = Vec::new();
            for t in targets {
                let signer = signers.current(c, &vault, t.alg)?;
                let mut claims = json!({
                    "iss": issuer,
                    "sub": t.sub,
                    "aud": t.client_id,
                    "iat": now,
                    "exp": now + 120,
                    "jti": uuid::Uuid::new_v4().simple().to_string(),
                    "events": { BACKCHANNEL_EVENT: {} },
                });
                if let Some(sid) = &t.sid {
                    claims["sid"] = json!(sid);
                }
                let token = signer
                    .sign(Some("logout+jwt"), &claims)
                    .map_err(Error::internal)?;
                out.push((t, token));
            }
            Ok(out)
        })
        .await;
    let signed = match signed {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "back-channel logout tokens could not be signed");
            return;
        }
    };
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(BACKCHANNEL_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for back-channel logout");
            return;
        }
    };
    let sends = signed.into_iter().map(|(t, token)| {
        let client = client.clone();
        async move {
            if crate::fetch::check_url("backchannel_logout_uri", &t.uri).is_err() {
                return;
            }
            let res = client
                .post(&t.uri)
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(format!(
                    "logout_token={}",
                    url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
                ))
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(client = %t.client_id, "back-channel logout delivered");
                }
                Ok(r) => {
                    tracing::warn!(client = %t.client_id, status = %r.status(), "back-channel logout refused")
                }
                Err(e) => {
                    tracing::warn!(client = %t.client_id, error = %e, "back-channel logout failed")
                }
            }
        }
    });
    futures_join_all(sends).await;
}

/// Runs futures concurrently (small local helper instead of a dependency).
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futs: impl Iterator<Item = F>,
) {
    let mut set = tokio::task::JoinSet::new();
    for f in futs {
        set.spawn(f);
    }
    while set.join_next().await.is_some() {}
}

fn bad(detail: impl Into<String>) -> WebError {
    WebError::page_with(
        Error::invalid("logout request", detail.into()),
        "error.oidc_logout.title",
        "error.oidc_logout.message",
    )
}

pub async fn logout_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    logout(state, headers, q.unwrap_or_default().into_bytes(), false).await
}

pub async fn logout_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Result<Response, WebError> {
    logout(state, headers, body.to_vec(), true).await
}

/// What a verified id_token_hint says.
struct Hint {
    client_id: String,
    rp_id: String,
    sid: Option<String>,
}

async fn logout(
    state: AppState,
    headers: HeaderMap,
    raw: Vec<u8>,
    posted: bool,
) -> Result<Response, WebError> {
    let p = super::parse_params(&raw).map_err(bad)?;
    let now = state.clock.now();
    // The hint must be a token this hub signed (expired is fine: RP-Initiated Logout 2).
    let hint = match p.get("id_token_hint") {
        Some(token) => {
            let token = token.clone();
            let issuer = super::issuer(&state);
            let found = state
                .store
                .read_async(move |c| {
                    let set = super::key_set(c, now)?;
                    let keys: Vec<serde_json::Value> = set
                        .keys
                        .iter()
                        .filter_map(|k| serde_json::to_value(k).ok())
                        .collect();
                    let Ok(v) = jose::verify(&token, &keys, &JwsAlg::ALL) else {
                        return Ok(None);
                    };
                    if v.claims.get("iss").and_then(|i| i.as_str()) != Some(issuer.as_str()) {
                        return Ok(None);
                    }
                    let Some(aud) = v.claims.get("aud").and_then(|a| a.as_str()) else {
                        return Ok(None);
                    };
                    let Some(rp) = rp::by_entity_id(c, aud)?.filter(|r| r.protocol == "oidc")
                    else {
                        return Ok(None);
                    };
                    Ok(Some(Hint {
                        client_id: aud.to_string(),
                        rp_id: rp.id,
                        sid: v
                            .claims
                            .get("sid")
                            .and_then(|s| s.as_str())
                            .map(String::from),
                    }))
                })
                .await?;
            match found {
                Some(h) => Some(h),
                None => return Err(bad("id_token_hint is not an ID token this hub issued")),
            }
        }
        None => None,
    };
    let client_id = match (&hint, p.get("client_id")) {
        (Some(h), Some(c)) if *c != h.client_id => {
            return Err(bad("client_id does not match the id_token_hint"))
        }
        (Some(h), _) => Some(h.client_id.clone()),
        (None, c) => c.cloned(),
    };
    // post_logout_redirect_uri only when registered, exactly, for the identified client.
    let finish_at = match p.get("post_logout_redirect_uri") {
        Some(uri) => {
            let Some(cid) = client_id.clone() else {
                return Err(bad(
                    "post_logout_redirect_uri needs id_token_hint or client_id",
                ));
            };
            let rp = state
                .store
                .read_async(move |c| rp::by_entity_id(c, &cid))
                .await?
                .filter(|r| r.protocol == "oidc")
                .ok_or_else(|| bad("unknown client"))?;
            let settings = rp_oidc::settings(&rp)?;
            if !settings.post_logout_redirect_uris.iter().any(|u| u == uri) {
                return Err(bad(format!(
                    "post_logout_redirect_uri {uri} is not registered for this client"
                )));
            }
            let mut url = url::Url::parse(uri).map_err(|e| bad(e.to_string()))?;
            if let Some(st) = p.get("state") {
                url.query_pairs_mut().append_pair("state", st);
            }
            Some(url.to_string())
        }
        None => None,
    };
    // Without a hint anyone could link here: ask the person first (the form POSTs back).
    if hint.is_none() && !(posted && p.get("confirm").is_some_and(|v| v == "1")) {
        let page = page_context_for(&headers, "/oidc/logout");
        let html = state.pages.render(
            "logout.html",
            &page,
            context! {
                action => "/oidc/logout",
                fields => p.iter().filter(|(k, _)| k.as_str() != "confirm").map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>(),
            },
        )?;
        return Ok(Html(html).into_response());
    }
    let oidc = OidcEnd {
        sid: hint.and_then(|h| h.sid.map(|s| (h.rp_id, s))),
        finish_at,
    };
    slo::oidc_logout(state, headers, oidc).await
}
