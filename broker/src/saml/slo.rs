//! Single logout at `/saml/slo` (SP-initiated, HTTP-Redirect or POST, signed) and
//! `/saml/logout` (started at the hub). Ending the SSO session is immediate; then every other
//! SP the person visited is told in turn (front channel), and the initiator gets a signed
//! LogoutResponse: Success, or PartialLogout when an SP did not confirm.

use axum::extract::{Form, Query, RawQuery, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use diesel::prelude::*;
use fedhub_metadata::xml::dsig::{c14n_attr, c14n_text, XmlSigner};
use fedhub_metadata::xml::logout::{self, LogoutMessage};
use fedhub_metadata::xml::sp::{BINDING_POST, BINDING_REDIRECT};
use fedhub_metadata::xml::{Binding, Limits};
use http::{header, HeaderMap};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::response::{new_id, STATUS_SUCCESS};
use super::sso::post_message;
use crate::audit::{self, Event, Outcome};
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::keys::{self, Purpose};
use crate::rp::{self, RelyingParty};
use crate::store::schema::{logout_sessions as ls, sso_session_rps as sr, sso_sessions as ss};
use crate::store::Db;
use crate::tokens::{random_secret, sha256_hex};
use crate::web::error::WebError;
use crate::web::pages::{Lang, PageContext};
use crate::web::{cookies, request_id_of, AppState};

const STATUS_PARTIAL_LOGOUT: &str = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout";

/// Who asked for the logout and must get the final answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Initiator {
    rp_id: String,
    request_id: String,
    relay_state: Option<String>,
    /// How the SP named the person, to find the session when the browser sent no cookie
    /// (a cross-site POST with SameSite=Lax).
    name_id: Option<String>,
    session_index: Option<String>,
}

/// A relying party still to be told: who, and how it knows the person.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    rp_id: String,
    name_id: String,
    session_index: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LogoutState {
    initiator: Option<Initiator>,
    pending: Vec<Pending>,
    /// The LogoutRequest we sent last, waiting for its response.
    waiting_for: Option<String>,
    partial: bool,
    /// Where the browser goes when every SP was told (an OIDC client's registered
    /// post_logout_redirect_uri, with its state).
    #[serde(default)]
    finish_at: Option<String>,
    /// The upstream the ended session came from, to sign out there too (after the relying
    /// parties).
    #[serde(default)]
    upstream: Option<UpstreamEnd>,
    /// The upstream IdP that started this logout and gets the final LogoutResponse.
    #[serde(default)]
    upstream_initiator: Option<UpstreamInitiator>,
    /// The upstream LogoutRequest ID (or `oidc`) the hub waits for.
    #[serde(default)]
    waiting_for_upstream: Option<String>,
}

/// A session's upstream and the connector's state for logging out there.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UpstreamEnd {
    connector_id: String,
    session: String,
}

/// An upstream IdP's LogoutRequest.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UpstreamInitiator {
    connector_id: String,
    request_id: String,
    relay_state: Option<String>,
}

/// Which sessions an upstream IdP's LogoutRequest names.
#[derive(Debug, Clone)]
struct UpstreamNamed {
    initiator: UpstreamInitiator,
    name_id: String,
    session_index: Option<String>,
}

/// An OIDC client's RP-initiated logout: which session (when the browser sent no cookie)
/// and where to go at the end.
#[derive(Debug, Clone, Default)]
pub struct OidcEnd {
    /// (rp_id, sid) from a verified id_token_hint.
    pub sid: Option<(String, String)>,
    pub finish_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SloForm {
    #[serde(rename = "SAMLRequest")]
    saml_request: Option<String>,
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

pub async fn slo_redirect(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    let q = q.unwrap_or_default();
    let param = if q.split('&').any(|p| p.starts_with("SAMLResponse=")) {
        "SAMLResponse"
    } else {
        "SAMLRequest"
    };
    handle(state, headers, Binding::Redirect { raw_query: &q }, param).await
}

pub async fn slo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<SloForm>,
) -> Result<Response, WebError> {
    let (message, param) = match (&f.saml_request, &f.saml_response) {
        (Some(r), None) => (r.as_str(), "SAMLRequest"),
        (None, Some(r)) => (r.as_str(), "SAMLResponse"),
        _ => {
            return Err(WebError::page(Error::invalid(
                "SAMLRequest",
                "send exactly one of SAMLRequest or SAMLResponse",
            )))
        }
    };
    handle(
        state,
        headers,
        Binding::Post {
            saml_request: message,
            relay_state: f.relay_state.as_deref(),
        },
        param,
    )
    .await
}

fn bad(e: impl std::fmt::Display) -> WebError {
    WebError::page_with(
        Error::invalid("SAMLRequest", e.to_string()),
        "error.unknown_sp.title",
        "error.unknown_sp.message",
    )
}

async fn handle(
    state: AppState,
    headers: HeaderMap,
    binding: Binding<'_>,
    param: &str,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let limits = Limits::default();
    let issuer = match logout::peek_issuer(&binding, param, limits) {
        Ok(i) => i,
        Err(e) => {
            super::audit_refusal(
                &state,
                "saml.slo",
                "(unreadable message)".into(),
                e.to_string(),
                request_id_of(&headers),
            )
            .await;
            return Err(bad(e));
        }
    };
    let lookup = issuer.clone();
    let Some(rp) = state
        .store
        .read_async(move |c| rp::by_entity_id(c, &lookup))
        .await?
    else {
        super::audit_refusal(
            &state,
            "saml.slo",
            issuer.clone(),
            "unknown service provider".into(),
            request_id_of(&headers),
        )
        .await;
        return Err(bad(format!("{issuer} is not registered")));
    };
    let md = rp::saml::settings(&rp)?.metadata()?;
    let verified = match logout::decode(binding, param, &md, limits) {
        Ok(v) => v,
        Err(e) => {
            let event = Event::new("anonymous", "saml.slo")
                .target(issuer)
                .rp(rp.id.clone())
                .outcome(Outcome::Denied)
                .detail(e.to_string())
                .request(Some(request_id_of(&headers)));
            state
                .store
                .write_async(move |c| audit::record(c, &event, now))
                .await?;
            return Err(bad(e));
        }
    };
    match verified.message {
        LogoutMessage::Request(req) => {
            let initiator = Initiator {
                rp_id: rp.id.clone(),
                request_id: req.id.clone().unwrap_or_default(),
                relay_state: verified.relay_state,
                name_id: req.name_id.as_ref().map(|n| n.value.clone()),
                session_index: req.session_index.clone(),
            };
            begin(state, headers, Some(initiator)).await
        }
        LogoutMessage::Response(resp) => {
            let Some(handle) = verified.relay_state else {
                super::audit_refusal(
                    &state,
                    "saml.slo",
                    rp.entity_id.clone(),
                    "LogoutResponse without RelayState".into(),
                    request_id_of(&headers),
                )
                .await;
                return Err(bad(
                    "a LogoutResponse must carry the RelayState the hub sent",
                ));
            };
            let success = resp
                .status
                .as_ref()
                .and_then(|s| s.status_code.value.as_deref())
                == Some(STATUS_SUCCESS);
            let in_response_to = resp.in_response_to.clone();
            let h = handle.clone();
            let expected = state
                .store
                .write_async(move |c| {
                    let mut st = load(c, &h, now)?;
                    if st.waiting_for.is_none() || st.waiting_for != in_response_to {
                        return Err(Error::invalid(
                            "SAMLResponse",
                            "not the LogoutResponse the hub is waiting for",
                        ));
                    }
                    st.waiting_for = None;
                    st.partial |= !success;
                    save(c, &h, &st)
                })
                .await;
            if let Err(e) = expected {
                super::audit_refusal(
                    &state,
                    "saml.slo",
                    rp.entity_id.clone(),
                    e.to_string(),
                    request_id_of(&headers),
                )
                .await;
                return Err(e.into());
            }
            next(state, headers, handle).await
        }
    }
}

/// A logout message from an upstream SAML IdP at `/connectors/{id}/saml/slo`: its own
/// LogoutRequest (the session ends here and at every relying party, then the IdP gets a
/// LogoutResponse), or its LogoutResponse to the hub's request (the logout goes on).
pub async fn from_upstream(
    state: AppState,
    headers: HeaderMap,
    connector_id: String,
    binding: Binding<'_>,
    param: &str,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let lookup = connector_id.clone();
    let connector = state
        .store
        .read_async(move |c| crate::upstream::get(c, &lookup))
        .await?;
    if connector.kind() != Some(fedhub_connectors::ConnectorKind::Saml) {
        return Err(WebError::page(Error::not_found(
            "SAML connector",
            &connector_id,
        )));
    }
    let skew = state.config.connectors.clock_skew.as_secs() as i64;
    let up = crate::upstream::saml_upstream(&connector, &state.config.base_url(), skew, now)?;
    let verified = match logout::decode(binding, param, &up.idp, Limits::default()) {
        Ok(v) => v,
        Err(e) => {
            super::audit_refusal(
                &state,
                "saml.upstream_slo",
                format!("connector:{connector_id}"),
                e.to_string(),
                request_id_of(&headers),
            )
            .await;
            return Err(bad(e));
        }
    };
    match verified.message {
        LogoutMessage::Request(req) => {
            let Some(name_id) = req.name_id.as_ref().map(|n| n.value.clone()) else {
                super::audit_refusal(
                    &state,
                    "saml.upstream_slo",
                    format!("connector:{connector_id}"),
                    "a LogoutRequest without NameID".into(),
                    request_id_of(&headers),
                )
                .await;
                return Err(bad("the LogoutRequest names no one (NameID)"));
            };
            let named = UpstreamNamed {
                initiator: UpstreamInitiator {
                    connector_id,
                    request_id: req.id.clone().unwrap_or_default(),
                    relay_state: verified.relay_state,
                },
                name_id,
                session_index: req.session_index.clone(),
            };
            begin_with(state, headers, None, OidcEnd::default(), Some(named)).await
        }
        LogoutMessage::Response(resp) => {
            let Some(handle) = verified.relay_state else {
                super::audit_refusal(
                    &state,
                    "saml.upstream_slo",
                    format!("connector:{connector_id}"),
                    "a LogoutResponse without RelayState".into(),
                    request_id_of(&headers),
                )
                .await;
                return Err(bad(
                    "a LogoutResponse must carry the RelayState the hub sent",
                ));
            };
            let success = resp
                .status
                .as_ref()
                .and_then(|s| s.status_code.value.as_deref())
                == Some(STATUS_SUCCESS);
            let answered = resp.in_response_to.clone();
            resumed(state, headers, handle, answered, success, now).await
        }
    }
}

/// An OIDC provider sent the browser back from its end-session endpoint.
pub async fn upstream_returned(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, WebError> {
    let Some(handle) = q.get("state").cloned() else {
        return Err(bad("the provider did not return the logout state"));
    };
    let now = state.clock.now();
    let waited = Some(super::upstream::OIDC_WAIT.to_string());
    resumed(state, headers, handle, waited, true, now).await
}

/// The upstream answered the hub's logout: it must be the answer the hub waits for.
async fn resumed(
    state: AppState,
    headers: HeaderMap,
    handle: String,
    answered: Option<String>,
    success: bool,
    now: i64,
) -> Result<Response, WebError> {
    let h = handle.clone();
    let expected = state
        .store
        .write_async(move |c| {
            let mut st = load(c, &h, now)?;
            if st.waiting_for_upstream.is_none() || st.waiting_for_upstream != answered {
                return Err(Error::invalid(
                    "SAMLResponse",
                    "not the logout answer the hub is waiting for",
                ));
            }
            st.waiting_for_upstream = None;
            st.partial |= !success;
            save(c, &h, &st)
        })
        .await;
    if let Err(e) = expected {
        super::audit_refusal(
            &state,
            "saml.upstream_slo",
            "upstream".into(),
            e.to_string(),
            request_id_of(&headers),
        )
        .await;
        return Err(e.into());
    }
    next(state, headers, handle).await
}

/// Starts a logout: ends the browser's SSO session and lists the relying parties to tell.
async fn begin(
    state: AppState,
    headers: HeaderMap,
    initiator: Option<Initiator>,
) -> Result<Response, WebError> {
    begin_with(state, headers, initiator, OidcEnd::default(), None).await
}

/// An OIDC client's RP-initiated logout, through the same steps as a SAML one.
pub async fn oidc_logout(
    state: AppState,
    headers: HeaderMap,
    oidc: OidcEnd,
) -> Result<Response, WebError> {
    begin_with(state, headers, None, oidc, None).await
}

/// Ends the browser's SSO session (or the one an OIDC id_token_hint names), tells OIDC
/// clients by back-channel, then SAML SPs by front channel, then answers the initiator.
async fn begin_with(
    state: AppState,
    headers: HeaderMap,
    initiator: Option<Initiator>,
    oidc: OidcEnd,
    from_upstream: Option<UpstreamNamed>,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let cookie = cookies::get(&headers, &state.config.cookies.name).map(str::to_string);
    let ttl = state.config.sessions.auth_session_ttl.as_secs() as i64;
    let request_id = request_id_of(&headers);
    let OidcEnd { sid, finish_at } = oidc;
    let (handle, backchannel) = state
        .store
        .write_async(move |c| {
            // An id_token_hint names the session to end; the browser's cookie may belong to
            // another one, which is not ended without asking.
            let sessions = match (&sid, &from_upstream) {
                (_, Some(named)) => sessions_of_upstream(c, named)?,
                (Some((rp_id, sid)), None) => crate::oidc::logout::session_by_sid(c, rp_id, sid)?,
                (None, None) => sessions_to_end(c, cookie.as_deref(), initiator.as_ref())?,
            };
            let mut backchannel = Vec::new();
            let mut pending = Vec::new();
            let mut upstream = None;
            for (session_id, account) in sessions {
                // Signing out at the upstream too, unless the upstream started this.
                if upstream.is_none() && from_upstream.is_none() {
                    let (connector, session): (Option<String>, Option<String>) = ss::table
                        .find(&session_id)
                        .select((ss::connector_id, ss::upstream_session))
                        .first(c)?;
                    if let (Some(connector_id), Some(session)) = (connector, session) {
                        upstream = Some(UpstreamEnd {
                            connector_id,
                            session,
                        });
                    }
                }
                let served: Vec<(String, String, Option<String>)> = sr::table
                    .filter(sr::sso_session_id.eq(&session_id))
                    .select((sr::rp_id, sr::subject, sr::session_index))
                    .load(c)?;
                for (rp_id, name_id, session_index) in served {
                    if initiator.as_ref().is_some_and(|i| i.rp_id == rp_id) {
                        continue;
                    }
                    pending.push(Pending {
                        rp_id,
                        name_id,
                        session_index,
                    });
                }
                backchannel.extend(crate::oidc::logout::targets(c, &session_id)?);
                crate::oidc::logout::end_session_tokens(c, &session_id, now)?;
                crate::login::sso::end(c, &session_id, now)?;
                let target = match (&initiator, &from_upstream) {
                    (Some(i), _) => i.rp_id.clone(),
                    (None, Some(u)) => format!("connector:{}", u.initiator.connector_id),
                    (None, None) => "hub".into(),
                };
                let event = Event::new(format!("account:{account}"), "logout")
                    .target(target)
                    .request(Some(request_id.clone()));
                audit::record(c, &event, now)?;
            }
            let handle = random_secret("")?;
            let st = LogoutState {
                initiator,
                pending,
                waiting_for: None,
                partial: false,
                finish_at,
                upstream,
                upstream_initiator: from_upstream.map(|u| u.initiator),
                waiting_for_upstream: None,
            };
            diesel::insert_into(ls::table)
                .values((
                    ls::id.eq(sha256_hex(&handle)),
                    ls::state.eq(serde_json::to_string(&st).map_err(Error::internal)?),
                    ls::created_at.eq(now),
                    ls::expires_at.eq(now + ttl),
                ))
                .execute(c)?;
            Ok((handle, backchannel))
        })
        .await?;
    crate::oidc::logout::send_backchannel(&state, backchannel).await;
    let mut res = next(state.clone(), headers, handle).await?;
    if let Some(c) = cookies::clear_sso(&state.config) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}

/// The live SSO sessions a logout ends: the browser's (by cookie), or else those in which the
/// initiating SP was given this NameID (and SessionIndex, when the request names one).
fn sessions_to_end(
    c: &mut Db,
    cookie: Option<&str>,
    initiator: Option<&Initiator>,
) -> Result<Vec<(String, String)>> {
    if let Some(cookie) = cookie {
        let id = crate::login::sso::session_id(cookie);
        let account: Option<String> = ss::table
            .find(&id)
            .filter(ss::ended_at.is_null())
            .select(ss::account_id)
            .first(c)
            .optional()?;
        if let Some(account) = account {
            return Ok(vec![(id, account)]);
        }
    }
    let Some(Initiator {
        rp_id,
        name_id: Some(name_id),
        session_index,
        ..
    }) = initiator
    else {
        return Ok(Vec::new());
    };
    let mut q = sr::table
        .inner_join(ss::table)
        .filter(sr::rp_id.eq(rp_id))
        .filter(sr::subject.eq(name_id))
        .filter(ss::ended_at.is_null())
        .select((ss::id, ss::account_id))
        .into_boxed();
    if let Some(index) = session_index {
        q = q.filter(sr::session_index.eq(index.clone()));
    }
    Ok(q.load(c)?)
}

/// The live sessions an upstream IdP's LogoutRequest names: started through that connector,
/// with that NameID (and SessionIndex, when the request names one).
fn sessions_of_upstream(c: &mut Db, named: &UpstreamNamed) -> Result<Vec<(String, String)>> {
    let rows: Vec<(String, String, Option<String>)> = ss::table
        .filter(ss::connector_id.eq(&named.initiator.connector_id))
        .filter(ss::upstream_subject.eq(named.name_id.trim()))
        .filter(ss::ended_at.is_null())
        .select((ss::id, ss::account_id, ss::upstream_session))
        .load(c)?;
    Ok(rows
        .into_iter()
        .filter(|(_, _, s)| {
            s.as_deref()
                .and_then(|s| {
                    serde_json::from_str::<fedhub_connectors::saml::UpstreamSession>(s).ok()
                })
                .is_some_and(|s| {
                    fedhub_connectors::saml::names_session(
                        &s,
                        &named.name_id,
                        named.session_index.as_deref(),
                    )
                })
        })
        .map(|(id, account, _)| (id, account))
        .collect())
}

fn load(c: &mut Db, handle: &str, now: i64) -> Result<LogoutState> {
    let json: String = ls::table
        .find(sha256_hex(handle))
        .filter(ls::expires_at.gt(now))
        .select(ls::state)
        .first(c)
        .optional()?
        .ok_or_else(|| Error::invalid("RelayState", "this logout has expired"))?;
    serde_json::from_str(&json).map_err(Error::internal)
}

fn save(c: &mut Db, handle: &str, st: &LogoutState) -> Result<()> {
    diesel::update(ls::table.find(sha256_hex(handle)))
        .set(ls::state.eq(serde_json::to_string(st).map_err(Error::internal)?))
        .execute(c)?;
    Ok(())
}

/// What to send next: a LogoutRequest to the next SP, or the final answer.
enum Step {
    Tell {
        rp: RelyingParty,
        endpoint: String,
        binding: String,
        xml: String,
    },
    Answer {
        rp: RelyingParty,
        endpoint: String,
        binding: String,
        xml: String,
        relay_state: Option<String>,
    },
    Done {
        partial: bool,
        finish_at: Option<String>,
    },
    /// Sign out at the upstream the session came from.
    Upstream(UpstreamEnd),
    /// Answer the upstream IdP that started the logout.
    AnswerUpstream(UpstreamInitiator),
}

async fn next(state: AppState, headers: HeaderMap, handle: String) -> Result<Response, WebError> {
    loop {
        if let Some(res) = next_once(&state, &headers, &handle).await? {
            return Ok(res);
        }
    }
}

/// One step of a logout; `None` when the step sent nothing (an upstream without logout) and
/// the next one should run.
async fn next_once(
    state: &AppState,
    headers: &HeaderMap,
    handle: &str,
) -> Result<Option<Response>, WebError> {
    let (state, headers, handle) = (state.clone(), headers.clone(), handle.to_string());
    let now = state.clock.now();
    let vault = state.vault()?;
    let issuer = state.config.saml_entity_id();
    let h = handle.clone();
    let step = state
        .store
        .write_async(move |c| {
            let mut st = load(c, &h, now)?;
            let signer = keys::signer(c, &vault, Purpose::Saml)?.xml_signer()?;
            while let Some(p) = st.pending.pop() {
                let rp = rp::get(c, &p.rp_id)?;
                let Ok(md) = rp::saml::settings(&rp).and_then(|s| s.metadata()) else {
                    continue;
                };
                // Prefer the Redirect binding; an SP without an SLO endpoint cannot be told.
                let Some(slo) = md
                    .slo
                    .iter()
                    .find(|e| e.binding == BINDING_REDIRECT)
                    .or_else(|| md.slo.first())
                else {
                    st.partial = true;
                    continue;
                };
                let id = new_id();
                let format = match rp::saml::settings(&rp)?.name_id_format {
                    rp::saml::NameIdFormat::Persistent => super::NAMEID_PERSISTENT,
                    rp::saml::NameIdFormat::Transient => super::NAMEID_TRANSIENT,
                    rp::saml::NameIdFormat::Email => super::NAMEID_EMAIL,
                };
                let xml =
                    logout_request(&issuer, &rp.entity_id, format, &slo.location, &id, &p, now)?;
                st.waiting_for = Some(id);
                save(c, &h, &st)?;
                return Ok(Step::Tell {
                    rp,
                    endpoint: slo.location.clone(),
                    binding: slo.binding.clone(),
                    xml,
                });
            }
            // Then the upstream the person signed in with, if it offers logout.
            if let Some(u) = st.upstream.take() {
                save(c, &h, &st)?;
                return Ok(Step::Upstream(u));
            }
            diesel::delete(ls::table.find(sha256_hex(&h))).execute(c)?;
            let Some(init) = st.initiator else {
                if let Some(u) = st.upstream_initiator {
                    return Ok(Step::AnswerUpstream(u));
                }
                return Ok(Step::Done {
                    partial: st.partial,
                    finish_at: st.finish_at,
                });
            };
            let rp = rp::get(c, &init.rp_id)?;
            let md = rp::saml::settings(&rp)?.metadata()?;
            let slo = md
                .slo
                .iter()
                .find(|e| e.binding == BINDING_REDIRECT)
                .or_else(|| md.slo.first())
                .ok_or_else(|| {
                    Error::invalid(
                        "SingleLogoutService",
                        "the service provider's metadata has no SingleLogoutService",
                    )
                })?;
            let endpoint = slo
                .response_location
                .clone()
                .unwrap_or_else(|| slo.location.clone());
            let (top, second) = if st.partial {
                (STATUS_SUCCESS, Some(STATUS_PARTIAL_LOGOUT))
            } else {
                (STATUS_SUCCESS, None)
            };
            let xml = logout_response(
                &issuer,
                &endpoint,
                &init.request_id,
                top,
                second,
                now,
                &signer,
                slo.binding == BINDING_POST,
            )?;
            Ok(Step::Answer {
                rp,
                endpoint,
                binding: slo.binding.clone(),
                xml,
                relay_state: init.relay_state,
            })
        })
        .await?;
    let signer = {
        let vault = state.vault()?;
        state
            .store
            .read_async(move |c| keys::signer(c, &vault, Purpose::Saml)?.xml_signer())
            .await?
    };
    let res = match step {
        Step::Upstream(u) => {
            let Some((res, waiting)) = super::upstream::logout_upstream(
                &state,
                &headers,
                &u.connector_id,
                &u.session,
                &handle,
            )
            .await?
            else {
                return Ok(None);
            };
            let h = handle.clone();
            state
                .store
                .write_async(move |c| {
                    let mut st = load(c, &h, now)?;
                    st.waiting_for_upstream = Some(waiting);
                    save(c, &h, &st)
                })
                .await?;
            Ok(res)
        }
        Step::AnswerUpstream(u) => {
            match super::upstream::answer_upstream(
                &state,
                &headers,
                &u.connector_id,
                &u.request_id,
                u.relay_state.as_deref(),
            )
            .await?
            {
                Some(res) => Ok(res),
                None => signed_out_page(&state, &headers, false),
            }
        }
        Step::Tell {
            rp,
            endpoint,
            binding,
            xml,
        } => send(
            &state,
            &headers,
            &rp,
            &endpoint,
            &binding,
            "SAMLRequest",
            &xml,
            Some(&handle),
            &signer,
        ),
        Step::Answer {
            rp,
            endpoint,
            binding,
            xml,
            relay_state,
        } => send(
            &state,
            &headers,
            &rp,
            &endpoint,
            &binding,
            "SAMLResponse",
            &xml,
            relay_state.as_deref(),
            &signer,
        ),
        Step::Done {
            finish_at: Some(url),
            ..
        } => Ok(Redirect::to(&url).into_response()),
        Step::Done { partial, .. } => signed_out_page(&state, &headers, partial),
    };
    res.map(Some)
}

fn signed_out_page(
    state: &AppState,
    headers: &HeaderMap,
    partial: bool,
) -> Result<Response, WebError> {
    let page = PageContext {
        lang: Lang::negotiate(None, headers),
        request_id: request_id_of(headers),
        path: "/saml/logout".into(),
        query: None,
    };
    let html = state
        .pages
        .render("signed_out.html", &page, context! { partial })?;
    Ok(Html(html).into_response())
}

/// The NameID matches the assertion's exactly (Format and qualifiers too): SPs compare them.
fn logout_request(
    issuer: &str,
    sp_entity: &str,
    format: &str,
    destination: &str,
    id: &str,
    p: &Pending,
    now: i64,
) -> Result<String> {
    let index = p
        .session_index
        .as_deref()
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", c14n_text(s)))
        .unwrap_or_default();
    Ok(format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" Destination="{}" ID="{id}" IssueInstant="{}" Version="2.0"><saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">{}</saml:Issuer><saml:NameID xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" Format="{}" NameQualifier="{}" SPNameQualifier="{}">{}</saml:NameID>{index}</samlp:LogoutRequest>"#,
        c14n_attr(destination),
        rfc3339(now),
        c14n_text(issuer),
        c14n_attr(format),
        c14n_attr(issuer),
        c14n_attr(sp_entity),
        c14n_text(&p.name_id),
    ))
}

#[allow(clippy::too_many_arguments)]
fn logout_response(
    issuer: &str,
    destination: &str,
    in_response_to: &str,
    top: &str,
    second: Option<&str>,
    now: i64,
    signer: &XmlSigner,
    xml_signature: bool,
) -> Result<String> {
    let id = new_id();
    let inner = second
        .map(|s| format!(r#"<samlp:StatusCode Value="{s}"></samlp:StatusCode>"#))
        .unwrap_or_default();
    let head = format!(
        r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" Destination="{}" ID="{id}" InResponseTo="{}" IssueInstant="{}" Version="2.0"><saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">{}</saml:Issuer>"#,
        c14n_attr(destination),
        c14n_attr(in_response_to),
        rfc3339(now),
        c14n_text(issuer),
    );
    let xml = format!(
        r#"{head}<samlp:Status><samlp:StatusCode Value="{top}">{inner}</samlp:StatusCode></samlp:Status></samlp:LogoutResponse>"#
    );
    if xml_signature {
        signer
            .sign_enveloped(&xml, &id, head.len())
            .map_err(Error::internal)
    } else {
        Ok(xml)
    }
}

/// Sends a logout message: a signed Redirect query, or an XML-signed auto-POST.
#[allow(clippy::too_many_arguments)]
fn send(
    state: &AppState,
    headers: &HeaderMap,
    rp: &RelyingParty,
    endpoint: &str,
    binding: &str,
    field: &str,
    xml: &str,
    relay_state: Option<&str>,
    signer: &XmlSigner,
) -> Result<Response, WebError> {
    if binding == BINDING_POST {
        // POST messages carry an XML signature; LogoutRequests are signed here.
        let signed = if field == "SAMLRequest" {
            let id = xml
                .split("ID=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or_default()
                .to_string();
            let at = xml
                .find("</saml:Issuer>")
                .map(|i| i + "</saml:Issuer>".len())
                .unwrap_or(0);
            signer
                .sign_enveloped(xml, &id, at)
                .map_err(Error::internal)?
        } else {
            xml.to_string()
        };
        return Ok(post_message(
            state,
            headers,
            &rp.display_name,
            endpoint,
            field,
            &signed,
            relay_state,
        )?);
    }
    let url = fedhub_metadata::xml::redirect::encode(endpoint, field, xml, relay_state, signer)
        .map_err(Error::internal)?;
    Ok(Redirect::to(&url).into_response())
}

/// "Sign out everywhere", started at the hub (POST only: a link on another site must not be
/// able to sign people out).
pub async fn logout_everywhere(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    begin(state, headers, None).await
}

/// The sign-out page with its button.
pub async fn logout_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let page = PageContext {
        lang: Lang::negotiate(None, &headers),
        request_id: request_id_of(&headers),
        path: "/saml/logout".into(),
        query: None,
    };
    let html = state.pages.render("logout.html", &page, context! {})?;
    Ok(Html(html).into_response())
}
