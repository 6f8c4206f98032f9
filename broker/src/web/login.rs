//! The sign-in pages between a relying party's request and the answer: the connector chooser
//! (today: the demo connector) and the connector callbacks. A login is bound to the browser
//! that started it by the `fedhub_login` cookie.

use axum::extract::{Form, Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use diesel::prelude::*;
use fedhub_connectors::{dev, ConnectorKind};
use http::{header, HeaderMap};
use minijinja::context;
use serde::Deserialize;

use super::error::WebError;
use super::{cookies, page_context, request_id_of, AppState};
use crate::audit::{self, Event, Outcome};
use crate::error::Error;
use crate::login::{auth_session, resolve, sso, Answer};
use crate::store::schema::{connectors, rp_connectors};
use crate::store::Db;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login/{handle}", get(chooser))
        .route("/login/{handle}/{connector}", post(callback))
}

fn expired(e: Error) -> WebError {
    WebError::page_with(
        e,
        "error.login_expired.title",
        "error.login_expired.message",
    )
}

/// The login must continue in the browser that started it.
fn check_binding(headers: &HeaderMap, handle: &str) -> Result<(), WebError> {
    match cookies::get(headers, cookies::LOGIN_COOKIE) {
        Some(v) if v == handle => Ok(()),
        _ => Err(expired(Error::invalid(
            "login",
            "this sign-in was started in another browser",
        ))),
    }
}

#[derive(Debug, Clone)]
struct Connector {
    id: String,
    kind: String,
    config: String,
}

/// Connectors this relying party allows (all enabled ones when it lists none).
fn connectors_for(conn: &mut Db, rp_id: &str) -> crate::error::Result<Vec<Connector>> {
    let listed: Vec<String> = rp_connectors::table
        .filter(rp_connectors::rp_id.eq(rp_id))
        .select(rp_connectors::connector_id)
        .load(conn)?;
    let rows: Vec<(String, String, String)> = connectors::table
        .filter(connectors::enabled.eq(true))
        .select((connectors::id, connectors::kind, connectors::config))
        .order(connectors::id.asc())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|(id, _, _)| listed.is_empty() || listed.contains(id))
        .map(|(id, kind, config)| Connector { id, kind, config })
        .collect())
}

async fn chooser(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: http::Uri,
    Path(handle): Path<String>,
) -> Result<Response, WebError> {
    check_binding(&headers, &handle)?;
    let now = state.clock.now();
    let h = handle.clone();
    let (session, rp, available) = state
        .store
        .read_async(move |c| {
            let session = auth_session::load(c, &h, now)?;
            let rp = crate::rp::get(c, &session.request.rp_id)?;
            let available = connectors_for(c, &rp.id)?;
            Ok((session, rp, available))
        })
        .await
        .map_err(expired)?;
    let _ = session;
    // Only the demo connector has a page today; the others arrive with their issue.
    let Some(dev_connector) = available
        .iter()
        .find(|c| ConnectorKind::parse(&c.kind) == Some(ConnectorKind::Dev))
    else {
        return Err(WebError::page_with(
            Error::Unavailable("no usable connector".into()),
            "error.no_connector.title",
            "error.no_connector.message",
        ));
    };
    let cfg = dev::DevConfig::parse(&dev_connector.config).map_err(Error::internal)?;
    let html = state.pages.render(
        "login_dev.html",
        &page_context(&headers, &uri),
        context! { rp_name => rp.display_name, people => cfg.people, action => format!("/login/{handle}/{}", dev_connector.id) },
    )?;
    Ok(Html(html).into_response())
}

/// How a connector callback ended.
enum Step {
    SignedIn(
        crate::login::RpRequest,
        crate::rp::RelyingParty,
        sso::SsoSession,
        String,
    ),
    /// An OIDC client answered in the same transaction: its code (or a refusal).
    OidcAnswered(
        crate::login::RpRequest,
        std::result::Result<String, resolve::Refusal>,
        String,
    ),
    Refused(resolve::Refusal),
    UpstreamFailed(crate::login::RpRequest, crate::rp::RelyingParty),
}

#[derive(Debug, Deserialize)]
struct DevForm {
    national_id: String,
}

async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((handle, connector_id)): Path<(String, String)>,
    Form(form): Form<DevForm>,
) -> Result<Response, WebError> {
    check_binding(&headers, &handle)?;
    let now = state.clock.now();
    let request_id = request_id_of(&headers);
    let sso_ttl = state.config.sessions.sso_session_ttl.as_secs() as i64;
    let oidc_ctx = crate::oidc::authorize::AnswerContext::of(&state, &headers)?;
    let h = handle.clone();
    // Connector → identity → account, the SSO session, and the auth session consumed: one
    // transaction, so a replayed form finds the login already used.
    let outcome = state
        .store
        .write_async(move |c| {
            let session = auth_session::consume(c, &h, now)
                .map_err(|e| Error::invalid("login", e.to_string()))?;
            let connector = connectors_for(c, &session.request.rp_id)?
                .into_iter()
                .find(|x| x.id == connector_id)
                .ok_or_else(|| Error::invalid("connector", "not allowed for this service"))?;
            if ConnectorKind::parse(&connector.kind) != Some(ConnectorKind::Dev) {
                return Err(Error::invalid(
                    "connector",
                    "this connector has no callback yet",
                ));
            }
            let cfg = dev::DevConfig::parse(&connector.config).map_err(Error::internal)?;
            let identity = match dev::complete(&cfg, &connector.id, form.national_id.trim(), now) {
                Ok(identity) => identity,
                Err(e) => {
                    // The upstream did not vouch for anyone: the SP hears AuthnFailed.
                    let event = Event::new("anonymous", "login")
                        .target(connector.id.clone())
                        .outcome(Outcome::Failure)
                        .detail(e.to_string())
                        .request(Some(request_id.clone()));
                    audit::record(c, &event, now)?;
                    let rp = crate::rp::get(c, &session.request.rp_id)?;
                    return Ok(Step::UpstreamFailed(session.request, rp));
                }
            };
            let account = match resolve::account_for(c, &identity, now)? {
                Ok(a) => a,
                Err(refusal) => {
                    let event = Event::new(format!("upstream:{}", identity.subject), "login")
                        .target(connector.id.clone())
                        .outcome(Outcome::Denied)
                        .detail(refusal.as_str())
                        .request(Some(request_id.clone()));
                    audit::record(c, &event, now)?;
                    return Ok(Step::Refused(refusal));
                }
            };
            let (cookie, sso_session) =
                sso::start(c, &account.id, &connector.id, &identity.authn, sso_ttl, now)?;
            let event = Event::new(format!("account:{}", account.id), "login")
                .target(connector.id.clone())
                .request(Some(request_id.clone()));
            audit::record(c, &event, now)?;
            let rp = crate::rp::get(c, &session.request.rp_id)?;
            if matches!(session.request.answer, Answer::Oidc { .. }) {
                // The code is stored with the sign-in: one transaction for the whole step.
                let settings = crate::rp::oidc::settings(&rp)?;
                let outcome = crate::oidc::authorize::issue_code(
                    c,
                    &oidc_ctx,
                    &rp,
                    &settings,
                    &session.request,
                    &sso_session,
                )?;
                return Ok(Step::OidcAnswered(session.request, outcome, cookie));
            }
            Ok(Step::SignedIn(session.request, rp, sso_session, cookie))
        })
        .await
        .map_err(|e| match e {
            Error::Invalid { ref field, .. } if field == "login" => expired(e),
            other => WebError::page(other),
        })?;
    let (request, rp, session, cookie) = match outcome {
        Step::SignedIn(request, rp, session, cookie) => (request, rp, session, cookie),
        Step::Refused(refusal) => return Err(crate::saml::sso::refusal_page(refusal)),
        Step::OidcAnswered(request, outcome, cookie) => {
            let set_sso = cookies::sso(&state.config, &cookie);
            let mut res = crate::oidc::authorize::respond(&state, &request, outcome, set_sso)?;
            if let Some(c) = cookies::clear_login(&state.config) {
                res.headers_mut().append(header::SET_COOKIE, c);
            }
            return Ok(res);
        }
        Step::UpstreamFailed(request, rp) if matches!(request.answer, Answer::Oidc { .. }) => {
            let _ = rp;
            return crate::oidc::authorize::upstream_failed(&state, &request);
        }
        Step::UpstreamFailed(request, rp) => {
            use crate::saml::response::{STATUS_AUTHN_FAILED, STATUS_RESPONDER};
            return Ok(crate::saml::sso::error_answer(
                &state,
                &rp,
                &request,
                STATUS_RESPONDER,
                Some(STATUS_AUTHN_FAILED),
                "the sign-in did not succeed",
                &headers,
            )
            .await?);
        }
    };
    let set_sso = cookies::sso(&state.config, &cookie);
    let mut res = match request.answer {
        Answer::Saml { .. } => {
            let settings = crate::rp::saml::settings(&rp)?;
            crate::saml::sso::answer(
                state.clone(),
                &headers,
                rp,
                settings,
                request,
                session,
                set_sso,
            )
            .await?
        }
        Answer::Oidc { .. } => {
            let settings = crate::rp::oidc::settings(&rp)?;
            crate::oidc::authorize::answer(
                state.clone(),
                &headers,
                rp,
                settings,
                request,
                session,
                set_sso,
            )
            .await?
        }
    };
    if let Some(c) = cookies::clear_login(&state.config) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}
