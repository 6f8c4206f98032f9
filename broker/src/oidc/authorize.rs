//! `/oidc/authorize` (GET and POST) and `/oidc/par` (RFC 9126). Follow the data: parameters
//! (or a pushed request) → client and exact redirect URI (until both are known, errors are
//! pages, never redirects: RFC 6749 4.1.2.1) → PKCE S256, scopes, prompt, max_age →
//! RpRequest → SSO session ? code : sign-in → [`answer`] redirects with a single-use code.

use std::collections::HashMap;

use axum::extract::{RawForm, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::json;

use super::grants::{self, Grant, NewCode};
use super::{claims, client_auth, parse_params, OAuthError};
use crate::audit::{self, Event, Outcome};
use crate::error::Error;
use crate::login::resolve::{self, Refusal};
use crate::login::sso::{self, SsoSession};
use crate::login::{auth_session, Answer, RpRequest};
use crate::rp::oidc::OidcSettings;
use crate::rp::RelyingParty;
use crate::tokens::random_secret;
use crate::web::error::WebError;
use crate::web::{cookies, request_id_of, AppState};

/// Longest `state` / `nonce` kept (they are stored with the login).
const MAX_STATE: usize = 1024;
/// RFC 9126: a pushed request lives briefly.
const PAR_TTL: i64 = 90;
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

pub async fn authorize_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    authorize(state, headers, q.unwrap_or_default().into_bytes()).await
}

pub async fn authorize_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Result<Response, WebError> {
    authorize(state, headers, body.to_vec()).await
}

/// A request the client cannot be answered for: shown to the person, never redirected.
fn bad_request_page(detail: impl Into<String>) -> WebError {
    WebError::page_with(
        Error::invalid("authorization request", detail.into()),
        "error.oidc_request.title",
        "error.oidc_request.message",
    )
}

/// The authorization response URL: `redirect_uri` with `params`, `state` and `iss` (RFC 9207)
/// added to its query.
pub fn redirect_with(
    redirect_uri: &str,
    params: &[(&str, &str)],
    st: Option<&str>,
    iss: &str,
) -> std::result::Result<String, Error> {
    let mut url = url::Url::parse(redirect_uri).map_err(Error::internal)?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = st {
            q.append_pair("state", s);
        }
        q.append_pair("iss", iss);
    }
    Ok(url.to_string())
}

fn see_other(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// An error sent back to a client whose redirect URI is registered (RFC 6749 4.1.2.1).
pub fn error_redirect(
    state: &AppState,
    redirect_uri: &str,
    error: &str,
    description: &str,
    st: Option<&str>,
) -> Result<Response, WebError> {
    let url = redirect_with(
        redirect_uri,
        &[("error", error), ("error_description", description)],
        st,
        &super::issuer(state),
    )?;
    Ok(see_other(&url))
}

/// A checked authorization request.
struct Checked {
    client: std::sync::Arc<crate::cache::OidcClient>,
    request: RpRequest,
}

/// What went wrong, and whether the client may hear it.
enum Refused {
    Page(String),
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

fn check_pkce_challenge(c: &str) -> bool {
    (43..=128).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Checks the parameters against the client's registration.
fn check(
    conn: &mut crate::store::Db,
    cache: &crate::cache::NodeCache,
    mut p: HashMap<String, String>,
    now: i64,
) -> crate::error::Result<std::result::Result<Checked, Refused>> {
    let Some(client_id) = p.get("client_id").cloned() else {
        return Ok(Err(Refused::Page("client_id is missing".into())));
    };
    // A pushed request replaces every other parameter (RFC 9126 4).
    if let Some(uri) = p.get("request_uri").cloned() {
        if !uri.starts_with(REQUEST_URI_PREFIX) {
            return Ok(Err(Refused::Page(
                "request_uri is not one this server issued".into(),
            )));
        }
        let Some(json) = grants::take_pushed(conn, &uri, &client_id, now)? else {
            return Ok(Err(Refused::Page(
                "request_uri is unknown, expired or already used".into(),
            )));
        };
        p = serde_json::from_str(&json).map_err(Error::internal)?;
        p.insert("client_id".into(), client_id.clone());
    }
    let Some(client) = cache.oidc_client(conn, &client_id)? else {
        return Ok(Err(Refused::Page(format!(
            "{client_id} is not a registered client"
        ))));
    };
    let (rp, settings) = (&client.rp, &client.settings);
    let Some(redirect_uri) = p.get("redirect_uri").cloned() else {
        return Ok(Err(Refused::Page("redirect_uri is missing".into())));
    };
    // Exact string comparison: no prefix, port, case or query variations (RFC 9700 2.1).
    if !settings.redirect_uris.contains(&redirect_uri) {
        return Ok(Err(Refused::Page(format!(
            "redirect_uri {redirect_uri} is not registered for {client_id}"
        ))));
    }
    let st = p.get("state").cloned();
    let refuse = |error: &'static str, description: String| {
        Ok(Err(Refused::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: st.clone().filter(|s| s.len() <= MAX_STATE),
            error,
            description,
        }))
    };
    if st.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
        return refuse("invalid_request", "state is too long".into());
    }
    if p.contains_key("request") {
        return refuse(
            "request_not_supported",
            "signed request objects are not supported; use /oidc/par".into(),
        );
    }
    if !rp.enabled {
        return refuse("unauthorized_client", "this client is disabled".into());
    }
    match p.get("response_type").map(String::as_str) {
        Some("code") => {}
        Some(other) => {
            return refuse(
                "unsupported_response_type",
                format!("response_type {other} is not supported; use code"),
            )
        }
        None => return refuse("invalid_request", "response_type is missing".into()),
    }
    if p.get("response_mode").is_some_and(|m| m != "query") {
        return refuse(
            "invalid_request",
            "only response_mode=query is supported".into(),
        );
    }
    let requested = p.get("scope").cloned().unwrap_or_default();
    if !requested.split(' ').any(|s| s == "openid") {
        return refuse("invalid_scope", "scope must include openid".into());
    }
    let scope = claims::granted_scopes(&requested, &settings.scopes);
    let Some(challenge) = p.get("code_challenge").cloned() else {
        return refuse(
            "invalid_request",
            "PKCE is required: code_challenge is missing".into(),
        );
    };
    match p.get("code_challenge_method").map(String::as_str) {
        Some("S256") => {}
        Some(other) => {
            return refuse(
                "invalid_request",
                format!("code_challenge_method {other} is refused; use S256"),
            )
        }
        None => {
            return refuse(
                "invalid_request",
                "code_challenge_method is missing; use S256 (plain is refused)".into(),
            )
        }
    }
    if !check_pkce_challenge(&challenge) {
        return refuse("invalid_request", "code_challenge is malformed".into());
    }
    let nonce = p.get("nonce").cloned();
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_STATE) {
        return refuse("invalid_request", "nonce is too long".into());
    }
    let prompts: Vec<&str> = p
        .get("prompt")
        .map(|s| s.split(' ').filter(|x| !x.is_empty()).collect())
        .unwrap_or_default();
    for v in &prompts {
        if !["none", "login", "consent", "select_account"].contains(v) {
            return refuse("invalid_request", format!("prompt {v} is unknown"));
        }
    }
    if prompts.contains(&"none") && prompts.len() > 1 {
        return refuse("invalid_request", "prompt=none cannot be combined".into());
    }
    let max_age = match p.get("max_age") {
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                return refuse(
                    "invalid_request",
                    "max_age must be a number of seconds".into(),
                )
            }
        },
        None => None,
    };
    let request = RpRequest {
        rp_id: rp.id.clone(),
        answer: Answer::Oidc {
            redirect_uri: redirect_uri.clone(),
            state: st.clone(),
            nonce,
            code_challenge: challenge,
            scope,
            max_age,
            acr_values: p.get("acr_values").cloned(),
        },
        force_authn: prompts.contains(&"login") || prompts.contains(&"select_account"),
        is_passive: prompts.contains(&"none"),
        login_hint: p.get("login_hint").cloned().filter(|h| h.len() <= 256),
        connector_hint: p.get("idp_hint").cloned().filter(|h| h.len() <= 64),
    };
    Ok(Ok(Checked {
        client: client.clone(),
        request,
    }))
}

async fn authorize(
    state: AppState,
    headers: HeaderMap,
    raw: Vec<u8>,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let request_id = request_id_of(&headers);
    let params = match parse_params(&raw) {
        Ok(p) => p,
        Err(e) => return Err(bad_request_page(e)),
    };
    let who = params.get("client_id").cloned().unwrap_or_default();
    let lang = params
        .get("ui_locales")
        .and_then(|l| l.split(' ').find_map(crate::web::pages::Lang::parse));
    // One database visit: check the request, find the SSO session, or start a sign-in.
    let cookie = cookies::get(&headers, &state.config.cookies.name).map(str::to_string);
    let idle = state.config.sessions.sso_idle_timeout.as_secs() as i64;
    let ttl = state.config.sessions.auth_session_ttl.as_secs() as i64;
    let cache = state.cache.clone();
    let step = state
        .store
        .write_async(move |c| {
            let checked = match check(c, &cache, params, now)? {
                Ok(checked) => checked,
                Err(refused) => return Ok(Err(refused)),
            };
            let session = match cookie {
                Some(cookie) if !checked.request.force_authn => {
                    sso::current(c, &cookie, idle, now)?
                }
                _ => None,
            };
            let max_age = match &checked.request.answer {
                Answer::Oidc { max_age, .. } => *max_age,
                _ => None,
            };
            // max_age: a sign-in older than that does not count (OIDC Core 3.1.2.1).
            let session = session.filter(|s| max_age.is_none_or(|m| now - s.authn.auth_time <= m));
            let handle = match (&session, checked.request.is_passive) {
                (None, false) => Some(auth_session::create(c, &checked.request, ttl, now)?),
                _ => None,
            };
            Ok(Ok((checked, session, handle)))
        })
        .await?;
    let (checked, session, handle) = match step {
        Ok(step) => step,
        Err(Refused::Page(why)) => {
            super::audit_refusal(&state, "oidc.authorize", who, why.clone(), request_id).await;
            return Err(bad_request_page(why));
        }
        Err(Refused::Redirect {
            redirect_uri,
            state: st,
            error,
            description,
        }) => {
            super::audit_refusal(
                &state,
                "oidc.authorize",
                who,
                description.clone(),
                request_id,
            )
            .await;
            return error_redirect(&state, &redirect_uri, error, &description, st.as_deref());
        }
    };
    let Checked { client, request } = checked;
    if let Some(session) = session {
        return answer(state, &headers, client, request, session, None).await;
    }
    let Some(handle) = handle else {
        // prompt=none without a (recent enough) sign-in.
        let Answer::Oidc {
            redirect_uri,
            state: st,
            ..
        } = &request.answer
        else {
            return Err(WebError::page(Error::internal("not an OIDC request")));
        };
        return error_redirect(
            &state,
            redirect_uri,
            "login_required",
            "no single sign-on session",
            st.as_deref(),
        );
    };
    let login = match lang {
        Some(l) => format!("/login/{handle}?lang={}", l.code()),
        None => format!("/login/{handle}"),
    };
    let mut res = Redirect::to(&login).into_response();
    if let Some(c) = cookies::login(&state.config, &handle, ttl) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}

/// What answering needs from the server, taken before the transaction.
#[derive(Clone)]
pub struct AnswerContext {
    pub vault: std::sync::Arc<fedhub_metadata::AtRestKey>,
    pub code_ttl: i64,
    pub request_id: String,
    pub now: i64,
}

impl AnswerContext {
    pub fn of(state: &AppState, headers: &HeaderMap) -> crate::error::Result<AnswerContext> {
        Ok(AnswerContext {
            vault: state.vault()?,
            code_ttl: state.config.tokens.authorization_code_ttl.as_secs() as i64,
            request_id: request_id_of(headers),
            now: state.clock.now(),
        })
    }
}

/// Inside a transaction: resolve the person for this client and store a single-use code;
/// returns the code, or why the person may not use the client (audited either way).
pub fn issue_code(
    c: &mut crate::store::Db,
    ctx: &AnswerContext,
    rp: &RelyingParty,
    settings: &OidcSettings,
    request: &RpRequest,
    session: &SsoSession,
) -> crate::error::Result<std::result::Result<String, Refusal>> {
    let Answer::Oidc {
        redirect_uri,
        nonce,
        code_challenge,
        scope,
        ..
    } = &request.answer
    else {
        return Err(Error::internal("not an OIDC request"));
    };
    let now = ctx.now;
    let account = crate::directory::accounts::get(c, &session.account_id)?;
    let event = Event::new(format!("account:{}", session.account_id), "oidc.authorize")
        .target(rp.entity_id.clone())
        .rp(rp.id.clone())
        .request(Some(ctx.request_id.clone()));
    let resolved = match resolve::for_rp(c, &ctx.vault, account, rp)? {
        Ok(r) => r,
        Err(refusal) => {
            let event = event.outcome(Outcome::Denied).detail(refusal.as_str());
            audit::record(c, &event, now)?;
            return Ok(Err(refusal));
        }
    };
    let sub = claims::subject(&resolved, settings.subject_type);
    let sid = sso::served(c, &session.id, &rp.id, &sub, now)?;
    let grant = Grant {
        rp_id: rp.id.clone(),
        client_id: rp.entity_id.clone(),
        account_id: resolved.account.id.clone(),
        claims: claims::release(&resolved, scope, settings.claim_profile),
        sub,
        sid,
        sso_session_id: session.id.clone(),
        auth_time: session.authn.auth_time,
        acr: session.authn.acr.clone(),
        amr: session.authn.amr.clone(),
        nonce: nonce.clone(),
        scope: scope.clone(),
    };
    let code = random_secret("")?;
    grants::store_code(
        c,
        NewCode {
            code: &code,
            redirect_uri,
            code_challenge,
            grant: &grant,
            ttl: ctx.code_ttl,
        },
        now,
    )?;
    audit::record(c, &event, now)?;
    Ok(Ok(code))
}

/// The browser's answer: back to the client with the code, or the refusal.
pub fn respond(
    state: &AppState,
    request: &RpRequest,
    outcome: std::result::Result<String, Refusal>,
    set_sso: Option<HeaderValue>,
) -> Result<Response, WebError> {
    let Answer::Oidc {
        redirect_uri,
        state: st,
        ..
    } = &request.answer
    else {
        return Err(WebError::page(Error::internal("not an OIDC request")));
    };
    let mut res = match outcome {
        Ok(code) => see_other(&redirect_with(
            redirect_uri,
            &[("code", &code)],
            st.as_deref(),
            &super::issuer(state),
        )?),
        // prompt=none must not show a page: the client hears access_denied.
        Err(_) if request.is_passive => error_redirect(
            state,
            redirect_uri,
            "access_denied",
            "not allowed to use this service",
            st.as_deref(),
        )?,
        Err(refusal) => return Err(refusal_page(refusal)),
    };
    if let Some(c) = set_sso {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}

/// With a live SSO session: resolve, store a code and send the browser back to the client.
pub async fn answer(
    state: AppState,
    headers: &HeaderMap,
    client: std::sync::Arc<crate::cache::OidcClient>,
    request: RpRequest,
    session: SsoSession,
    set_sso: Option<HeaderValue>,
) -> Result<Response, WebError> {
    let ctx = AnswerContext::of(&state, headers)?;
    let req = request.clone();
    let outcome = state
        .store
        .write_async(move |c| issue_code(c, &ctx, &client.rp, &client.settings, &req, &session))
        .await?;
    respond(&state, &request, outcome, set_sso)
}

fn refusal_page(refusal: Refusal) -> WebError {
    crate::saml::sso::refusal_page(refusal)
}

/// The upstream sign-in failed: the client hears access_denied at its redirect URI.
pub fn upstream_failed(state: &AppState, request: &RpRequest) -> Result<Response, WebError> {
    let Answer::Oidc {
        redirect_uri,
        state: st,
        ..
    } = &request.answer
    else {
        return Err(WebError::page(Error::internal("not an OIDC request")));
    };
    error_redirect(
        state,
        redirect_uri,
        "access_denied",
        "the sign-in did not succeed",
        st.as_deref(),
    )
}

/// `/oidc/par`: an authenticated client pushes its authorization parameters and gets a
/// one-time `request_uri` to send the browser with.
pub async fn par(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match par_inner(&state, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn par_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> std::result::Result<Response, OAuthError> {
    client_auth::require_form(headers)?;
    let mut form = parse_params(body).map_err(OAuthError::invalid_request)?;
    let client = client_auth::authenticate(state, headers, &form, "par").await?;
    if form.contains_key("request_uri") {
        return Err(OAuthError::invalid_request(
            "request_uri must not be pushed",
        ));
    }
    if form.contains_key("request") {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "request_not_supported",
            "signed request objects are not supported",
        ));
    }
    for k in ["client_secret", "client_assertion", "client_assertion_type"] {
        form.remove(k);
    }
    form.insert("client_id".into(), client.rp.entity_id.clone());
    // Checked now as at /oidc/authorize, so a bad request is refused to the client itself.
    let now = state.clock.now();
    let probe = form.clone();
    let cache = state.cache.clone();
    let checked = state
        .store
        .read_async(move |c| {
            let mut p = probe;
            p.remove("request_uri");
            check(c, &cache, p, now).map(|r| r.map(|_| ()))
        })
        .await?;
    match checked {
        Ok(()) => {}
        Err(Refused::Page(why)) => return Err(OAuthError::invalid_request(why)),
        Err(Refused::Redirect {
            error, description, ..
        }) => return Err(OAuthError::new(StatusCode::BAD_REQUEST, error, description)),
    }
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", random_secret("")?);
    let params = serde_json::to_string(&form).map_err(Error::internal)?;
    let (uri, client_id) = (request_uri.clone(), client.rp.entity_id.clone());
    state
        .store
        .write_async(move |c| grants::push_request(c, &uri, &client_id, &params, PAR_TTL, now))
        .await?;
    let mut res = super::no_store_json(&json!({
        "request_uri": request_uri,
        "expires_in": PAR_TTL,
    }));
    *res.status_mut() = StatusCode::CREATED;
    Ok(res)
}
