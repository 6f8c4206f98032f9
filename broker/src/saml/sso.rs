//! Web SSO at `/saml/sso` (HTTP-Redirect and HTTP-POST) and IdP-initiated sign-in at
//! `/saml/init`. Follow the data: binding → verified AuthnRequest → ACS from metadata →
//! RpRequest → (SSO session ? answer : auth session + login page) → signed Response.

use std::sync::Arc;

use axum::extract::{Form, Query, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fedhub_metadata::xml::{self, authn::peek_issuer, Binding, Limits, XmlError};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use minijinja::context;
use serde::Deserialize;

use super::response::{self, AssertionData};
use super::{NAMEID_EMAIL, NAMEID_PERSISTENT, NAMEID_TRANSIENT};
use crate::audit::{self, Event, Outcome};
use crate::cache::SamlSp;
use crate::error::{Error, Result};
use crate::login::resolve::{self, Refusal};
use crate::login::sso::{self, SsoSession};
use crate::login::{auth_session, Answer, RpRequest};
use crate::rp::saml::NameIdFormat;
use crate::rp::RelyingParty;
use crate::store::schema::saml_replay::dsl as replay;
use crate::web::error::WebError;
use crate::web::pages::{Lang, PageContext};
use crate::web::{cookies, request_id_of, AppState};

/// Clock difference tolerated between an SP and the hub, in seconds.
const CLOCK_SKEW: i64 = 180;

#[derive(Debug, Deserialize)]
pub struct PostForm {
    #[serde(rename = "SAMLRequest")]
    saml_request: String,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

pub async fn sso_redirect(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    let query = query.unwrap_or_default();
    handle(state, headers, Incoming::Redirect(query)).await
}

pub async fn sso_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<PostForm>,
) -> Result<Response, WebError> {
    handle(
        state,
        headers,
        Incoming::Post(form.saml_request, form.relay_state),
    )
    .await
}

enum Incoming {
    Redirect(String),
    Post(String, Option<String>),
}

impl Incoming {
    fn binding(&self) -> Binding<'_> {
        match self {
            Incoming::Redirect(q) => Binding::Redirect { raw_query: q },
            Incoming::Post(r, relay) => Binding::Post {
                saml_request: r,
                relay_state: relay.as_deref(),
            },
        }
    }
}

fn refused_request(e: impl std::fmt::Display) -> WebError {
    WebError::page_with(
        Error::invalid("SAMLRequest", e.to_string()),
        "error.unknown_sp.title",
        "error.unknown_sp.message",
    )
}

/// The first half of a login: check the request, then answer at once (SSO) or send the person
/// to sign in. Every refusal is audited; none is ever sent to an address metadata lacks.
async fn handle(
    state: AppState,
    headers: HeaderMap,
    incoming: Incoming,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let request_id = request_id_of(&headers);
    let limits = Limits::default();
    let audit_refusal = |target: String, detail: String| {
        super::audit_refusal(&state, "saml.sso", target, detail, request_id.clone())
    };
    let issuer = match peek_issuer(&incoming.binding(), limits) {
        Ok(i) => i,
        Err(e) => {
            audit_refusal("(unreadable request)".into(), e.to_string()).await;
            return Err(refused_request(e));
        }
    };
    let Some(sp) = service_provider(&state, &issuer).await? else {
        audit_refusal(issuer.clone(), "unknown service provider".into()).await;
        return Err(refused_request(format!("{issuer} is not registered")));
    };
    let md = &sp.metadata;
    let verified = match xml::decode_authn_request(incoming.binding(), md, limits) {
        Ok(v) => v,
        Err(e) => {
            audit_refusal(issuer.clone(), e.to_string()).await;
            return Err(refused_request(e));
        }
    };
    let req = &verified.request;
    // A request meant for another IdP, or one too old or from the future, is not answered.
    let sso_url = format!("{}/saml/sso", state.config.base_url());
    let age = now - req.issue_instant.timestamp();
    let problem = if req.destination.as_deref().is_some_and(|d| d != sso_url) {
        Some(format!("Destination is not {sso_url}"))
    } else if age > state.config.sessions.auth_session_ttl.as_secs() as i64 || age < -CLOCK_SKEW {
        Some("IssueInstant is too old or in the future".to_string())
    } else {
        None
    };
    if let Some(problem) = problem {
        audit_refusal(issuer.clone(), problem.clone()).await;
        return Err(refused_request(problem));
    }
    let acs = match md.choose_acs(
        req.assertion_consumer_service_index,
        req.assertion_consumer_service_url.as_deref(),
    ) {
        Ok(a) => a.location.clone(),
        Err(e) => {
            audit_refusal(issuer.clone(), e.to_string()).await;
            return Err(refused_request(e));
        }
    };
    // A request is answered once: a replayed AuthnRequest ID is refused.
    let replay_key = format!("{}!{}", md.entity_id, req.id);
    let ttl = state.config.sessions.auth_session_ttl.as_secs() as i64;
    let fresh = state
        .store
        .write_async(move |c| {
            use diesel::prelude::*;
            diesel::delete(replay::saml_replay.filter(replay::expires_at.le(now))).execute(c)?;
            let taken = replay::saml_replay
                .find(&replay_key)
                .count()
                .get_result::<i64>(c)?
                > 0;
            if !taken {
                diesel::insert_into(replay::saml_replay)
                    .values((replay::id.eq(&replay_key), replay::expires_at.eq(now + ttl)))
                    .execute(c)?;
            }
            Ok(!taken)
        })
        .await?;
    if !fresh {
        audit_refusal(issuer.clone(), format!("AuthnRequest {} replayed", req.id)).await;
        return Err(refused_request(XmlError::Invalid(
            "this request was already used".into(),
        )));
    }
    let request = RpRequest {
        rp_id: sp.rp.id.clone(),
        answer: Answer::Saml {
            acs_url: acs,
            in_response_to: Some(req.id.clone()),
            relay_state: verified.relay_state.clone(),
        },
        force_authn: req.force_authn.unwrap_or(false),
        is_passive: req.is_passive.unwrap_or(false),
        login_hint: None,
        // Scoping/IDPList: the identity provider the SP wants (a connector id or issuer).
        connector_hint: verified.idp_list.first().cloned(),
    };
    start_or_answer(state, &headers, sp, request).await
}

/// A registered SP by entityID, parsed: from this node's copies when they are fresh, else
/// through the database (see `cache`).
pub(crate) async fn service_provider(
    state: &AppState,
    entity_id: &str,
) -> Result<Option<Arc<SamlSp>>> {
    if let Some(sp) = state
        .cache
        .peek_rp_by_entity_id(entity_id)
        .and_then(|rp| state.cache.peek_saml_sp(&rp.id))
    {
        return Ok(Some(sp));
    }
    let (cache, entity) = (state.cache.clone(), entity_id.to_string());
    state
        .store
        .read_async(move |c| match cache.rp_by_entity_id(c, &entity)? {
            Some(rp) if rp.protocol == "saml" => cache.saml_sp(c, &rp).map(Some),
            Some(rp) => Err(Error::invalid(
                "relying_party",
                format!("{} is not a SAML service provider", rp.entity_id),
            )),
            None => Ok(None),
        })
        .await
}

/// The parsed SP of a relying party already in hand.
pub(crate) async fn sp_of(state: &AppState, rp: &Arc<RelyingParty>) -> Result<Arc<SamlSp>> {
    if let Some(sp) = state.cache.peek_saml_sp(&rp.id) {
        return Ok(sp);
    }
    let (cache, rp) = (state.cache.clone(), rp.clone());
    state.store.read_async(move |c| cache.saml_sp(c, &rp)).await
}

/// With a live SSO session (and no ForceAuthn) answer now; IsPassive without one gets
/// NoPassive; otherwise start a login.
async fn start_or_answer(
    state: AppState,
    headers: &HeaderMap,
    sp: Arc<SamlSp>,
    request: RpRequest,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    if !sp.rp.enabled {
        return Ok(error_answer(
            &state,
            &sp.rp,
            &request,
            response::STATUS_REQUESTER,
            Some(response::STATUS_REQUEST_DENIED),
            "service disabled",
            headers,
        )
        .await?);
    }
    let session = match cookies::get(headers, &state.config.cookies.name) {
        Some(cookie) if !request.force_authn => {
            let cookie = cookie.to_string();
            let idle = state.config.sessions.sso_idle_timeout.as_secs() as i64;
            state
                .store
                .write_async(move |c| sso::current(c, &cookie, idle, now))
                .await?
        }
        _ => None,
    };
    if let Some(session) = session {
        return answer(state, headers, sp, request, session, None).await;
    }
    if request.is_passive {
        return Ok(error_answer(
            &state,
            &sp.rp,
            &request,
            response::STATUS_RESPONDER,
            Some(response::STATUS_NO_PASSIVE),
            "no single sign-on session",
            headers,
        )
        .await?);
    }
    let ttl = state.config.sessions.auth_session_ttl.as_secs() as i64;
    let stored = request.clone();
    let handle = state
        .store
        .write_async(move |c| auth_session::create(c, &stored, ttl, now))
        .await?;
    let mut res = Redirect::to(&format!("/login/{handle}")).into_response();
    if let Some(c) = cookies::login(&state.config, &handle, ttl) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}

/// A signed error Response to the (metadata-registered) ACS.
/// A signed error Response to the SP's registered ACS (NoPassive, RequestDenied, AuthnFailed…).
pub async fn error_answer(
    state: &AppState,
    rp: &RelyingParty,
    request: &RpRequest,
    top: &'static str,
    second: Option<&'static str>,
    message: &'static str,
    headers: &HeaderMap,
) -> Result<Response> {
    let Answer::Saml {
        acs_url,
        in_response_to,
        relay_state,
    } = &request.answer
    else {
        return Err(Error::internal(
            "a SAML error answer for a request of another protocol",
        ));
    };
    let now = state.clock.now();
    let vault = state.vault()?;
    let issuer = state.config.saml_entity_id();
    let (acs, irt) = (acs_url.clone(), in_response_to.clone());
    let cache = state.cache.clone();
    let xml = state
        .store
        .read_async(move |c| {
            let signer = cache.saml_signer(c, &vault)?;
            response::failure(
                &issuer,
                &acs,
                irt.as_deref(),
                top,
                second,
                Some(message),
                now,
                &signer,
            )
        })
        .await?;
    let event = Event::new("anonymous", "saml.sso")
        .target(rp.entity_id.clone())
        .rp(rp.id.clone())
        .outcome(Outcome::Failure)
        .detail(second.unwrap_or(top).to_string())
        .request(Some(request_id_of(headers)));
    state
        .store
        .write_async(move |c| audit::record(c, &event, now))
        .await?;
    post_page(state, headers, rp, acs_url, &xml, relay_state.as_deref())
}

/// The second half: resolve the person for this SP and send the signed Response.
/// `set_sso` carries a new SSO cookie to set with the answer.
pub async fn answer(
    state: AppState,
    headers: &HeaderMap,
    sp: Arc<SamlSp>,
    request: RpRequest,
    session: SsoSession,
    set_sso: Option<HeaderValue>,
) -> Result<Response, WebError> {
    answer_telling(state, headers, sp, request, session, set_sso)
        .await?
        .1
}

/// [`answer`], also telling why the person was refused (`None`: the Response was sent).
/// The outer error is a failure to answer at all.
pub(crate) async fn answer_telling(
    state: AppState,
    headers: &HeaderMap,
    sp: Arc<SamlSp>,
    request: RpRequest,
    session: SsoSession,
    set_sso: Option<HeaderValue>,
) -> Result<(Option<Refusal>, Result<Response, WebError>), WebError> {
    let now = state.clock.now();
    let vault = state.vault()?;
    let issuer = state.config.saml_entity_id();
    let assertion_ttl = state.config.tokens.saml_assertion_ttl.as_secs() as i64;
    let rp = sp.rp.clone();
    let encrypt_for = if sp.settings.encrypt_assertion {
        sp.metadata
            .encryption_certs
            .first()
            .map(|c| c.der_data().to_vec())
    } else {
        None
    };
    let Answer::Saml {
        acs_url,
        in_response_to,
        relay_state,
    } = request.answer.clone()
    else {
        return Err(WebError::page(Error::internal(
            "a SAML answer for a request of another protocol",
        )));
    };
    let (rp_for_db, for_db) = (rp.clone(), sp.clone());
    let cache = state.cache.clone();
    let request_id = request_id_of(headers);
    let acs = acs_url.clone();
    let passive = request.is_passive;
    let original = request.clone();
    let outcome = state
        .store
        .write_async(move |c| {
            let account = crate::directory::accounts::get(c, &session.account_id)?;
            let resolved = match resolve::for_rp(c, &vault, account, &rp_for_db)? {
                Ok(r) => r,
                Err(refusal) => {
                    let event = Event::new(format!("account:{}", session.account_id), "saml.sso")
                        .target(rp_for_db.entity_id.clone())
                        .rp(rp_for_db.id.clone())
                        .outcome(Outcome::Denied)
                        .detail(refusal.as_str())
                        .request(Some(request_id.clone()));
                    audit::record(c, &event, now)?;
                    return Ok(Err(refusal));
                }
            };
            let settings = &for_db.settings;
            let (name_id, format) = match settings.name_id_format {
                NameIdFormat::Persistent => (resolved.subject.clone(), NAMEID_PERSISTENT),
                NameIdFormat::Transient => (
                    format!("_t{}", uuid::Uuid::new_v4().simple()),
                    NAMEID_TRANSIENT,
                ),
                NameIdFormat::Email => match &resolved.account.email {
                    Some(e) => (e.clone(), NAMEID_EMAIL),
                    None => (resolved.subject.clone(), NAMEID_PERSISTENT),
                },
            };
            // Logout names the person the way this SP knows them.
            let session_index = sso::served(c, &session.id, &rp_for_db.id, &name_id, now)?;
            let attributes = resolved
                .attributes
                .into_iter()
                .filter(|(n, _)| settings.release.iter().any(|r| r == n))
                .collect();
            let data =
                AssertionData {
                    issuer,
                    audience: rp_for_db.entity_id.clone(),
                    acs_url: acs,
                    in_response_to,
                    name_id,
                    name_id_format: format.to_string(),
                    session_index,
                    authn_instant: session.authn.auth_time,
                    authn_context_class: session.authn.acr.clone().unwrap_or_else(|| {
                        "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified".into()
                    }),
                    attributes,
                    now,
                    ttl: assertion_ttl,
                };
            let signer = cache.saml_signer(c, &vault)?;
            let xml = response::success(&data, settings.sign, &signer, encrypt_for.as_deref())?;
            let event = Event::new(format!("account:{}", session.account_id), "saml.sso")
                .target(rp_for_db.entity_id.clone())
                .rp(rp_for_db.id.clone())
                .request(Some(request_id.clone()));
            audit::record(c, &event, now)?;
            Ok(Ok(xml))
        })
        .await?;
    let xml = match outcome {
        Ok(xml) => xml,
        // IsPassive forbids showing a page: the SP gets a signed refusal instead.
        Err(refusal) if passive => {
            let res = error_answer(
                &state,
                &rp,
                &original,
                response::STATUS_REQUESTER,
                Some(response::STATUS_REQUEST_DENIED),
                "not allowed to use this service",
                headers,
            )
            .await?;
            return Ok((Some(refusal), Ok(res)));
        }
        Err(refusal) => return Ok((Some(refusal), Err(refusal_page(refusal)))),
    };
    let mut res = post_page(&state, headers, &rp, &acs_url, &xml, relay_state.as_deref())?;
    if let Some(c) = set_sso {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok((None, Ok(res)))
}

pub fn refusal_page(refusal: Refusal) -> WebError {
    let e = Error::Forbidden(refusal.as_str().into());
    match refusal {
        Refusal::UnknownAccount => WebError::page_with(
            e,
            "error.unknown_account.title",
            "error.unknown_account.message",
        ),
        Refusal::AccountDisabled => WebError::page_with(
            e,
            "error.account_disabled.title",
            "error.account_disabled.message",
        ),
        Refusal::NotMember => {
            WebError::page_with(e, "error.not_member.title", "error.not_member.message")
        }
        Refusal::IdentityConflict => WebError::page_with(
            e,
            "error.identity_conflict.title",
            "error.identity_conflict.message",
        ),
        Refusal::NotActivated => WebError::page_with(
            e,
            "error.not_activated.title",
            "error.not_activated.message",
        ),
    }
}

/// The auto-POST page carrying a SAML message to the SP. Its one script is allowed by hash
/// and the form may post only to this ACS.
fn post_page(
    state: &AppState,
    headers: &HeaderMap,
    rp: &RelyingParty,
    acs: &str,
    xml: &str,
    relay_state: Option<&str>,
) -> Result<Response> {
    post_message(
        state,
        headers,
        &rp.display_name,
        acs,
        "SAMLResponse",
        xml,
        relay_state,
    )
}

/// Auto-POSTs a SAML message (`field`: SAMLRequest or SAMLResponse) to `acs`, a URL from
/// the SP's metadata.
pub fn post_message(
    state: &AppState,
    headers: &HeaderMap,
    rp_name: &str,
    acs: &str,
    field: &str,
    xml: &str,
    relay_state: Option<&str>,
) -> Result<Response> {
    post_form(
        state,
        headers,
        rp_name,
        acs,
        field,
        &STANDARD.encode(xml),
        relay_state,
    )
}

/// The auto-submitting form that carries `message` (already base64) to `acs`.
pub fn post_form(
    state: &AppState,
    headers: &HeaderMap,
    rp_name: &str,
    acs: &str,
    field: &str,
    message: &str,
    relay_state: Option<&str>,
) -> Result<Response> {
    let page = PageContext {
        lang: Lang::negotiate(None, headers),
        request_id: request_id_of(headers),
        path: "/saml/sso".into(),
        query: None,
    };
    let html = state.pages.render(
        "saml_post.html",
        &page,
        context! { action => acs, field => field, message => message, relay_state, rp_name => rp_name },
    )?;
    let script_hash = STANDARD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        crate::web::pages::AUTO_POST_SCRIPT.as_bytes(),
    ));
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'sha256-{script_hash}'; form-action {acs}; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut res = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    Ok(res)
}

#[derive(Debug, Deserialize)]
pub struct InitQuery {
    sp: String,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// IdP-initiated sign-in: `/saml/init?sp=ENTITY_ID[&RelayState=…]`, answered to the SP's
/// default ACS from its metadata.
pub async fn idp_initiated(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<InitQuery>,
) -> Result<Response, WebError> {
    if q.relay_state
        .as_ref()
        .is_some_and(|r| r.len() > xml::authn::MAX_RELAY_STATE)
    {
        super::audit_refusal(
            &state,
            "saml.sso",
            q.sp.clone(),
            "RelayState longer than 80 bytes".into(),
            request_id_of(&headers),
        )
        .await;
        return Err(WebError::page(Error::invalid(
            "RelayState",
            "at most 80 bytes",
        )));
    }
    let Some(sp) = service_provider(&state, &q.sp).await? else {
        super::audit_refusal(
            &state,
            "saml.sso",
            q.sp.clone(),
            "IdP-initiated sign-in for an unknown service provider".into(),
            request_id_of(&headers),
        )
        .await;
        return Err(refused_request(format!("{} is not registered", q.sp)));
    };
    let acs = sp
        .metadata
        .choose_acs(None, None)
        .map_err(refused_request)?
        .location
        .clone();
    let request = RpRequest {
        rp_id: sp.rp.id.clone(),
        answer: Answer::Saml {
            acs_url: acs,
            in_response_to: None,
            relay_state: q.relay_state,
        },
        force_authn: false,
        is_passive: false,
        login_hint: None,
        connector_hint: None,
    };
    start_or_answer(state, &headers, sp, request).await
}
