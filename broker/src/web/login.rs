//! The sign-in pages between a relying party's request and the answer: the connector chooser,
//! the step that sends the browser upstream, and the callbacks that bring it back. A login is
//! bound to the browser that started it by the `fedhub_login` cookie; whichever connector
//! vouches for the person, the same [`finish`] links the account, starts the SSO session and
//! answers the relying party, in one transaction.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use fedhub_connectors::certificate::{
    self, CertificateConfig, Challenge, SignRequest, SignedChallenge,
};
use fedhub_connectors::oidc::{self as upstream_oidc, Callback, PendingLogin};
use fedhub_connectors::simpki::{self, PollResult};
use fedhub_connectors::{dev, ConnectorError, ConnectorKind, UpstreamIdentity};
use http::{header, HeaderMap};
use minijinja::context;
use serde::Serialize;

use super::error::WebError;
use super::{cookies, page_context, request_id_of, AppState};
use crate::audit::{self, Event, Outcome};
use crate::error::Error;
use crate::login::{auth_session, resolve, sso, Answer, LoginOutcome, LoginResult};
use crate::upstream::{self, Connector};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login/{handle}", get(chooser))
        .route("/login/{handle}/{connector}", post(choose))
        .route(
            "/login/{handle}/{connector}/answer",
            post(certificate_answer),
        )
        .route("/login/{handle}/{connector}/phone", post(simpki_phone))
        .route("/login/{handle}/{connector}/tls", post(certificate_tls))
        .route("/login/{handle}/{connector}/wait", get(simpki_wait))
        .route("/connectors/{connector}/callback", get(oidc_callback))
}

/// The "login expired or used" page for what the login itself got wrong; a database that is
/// away (or a bug) keeps its own page and status (503 with Retry-After, 500), so a person is
/// not told to start again when trying again in a moment would do.
pub(crate) fn expired(e: Error) -> WebError {
    match e {
        Error::Unavailable(_) | Error::Internal(_) => WebError::page(e),
        e => WebError::page_with(
            e,
            "error.login_expired.title",
            "error.login_expired.message",
        ),
    }
}

/// A page for an upstream failure: an answer that cannot be trusted says why (400, e.g. "the
/// certificate has expired"); an upstream that did not answer is a 503. A certificate refused
/// for a known reason gets the certificate page, its reason in the person's language.
pub(crate) fn upstream_page(e: ConnectorError) -> WebError {
    let (error, reason) = match e {
        ConnectorError::Invalid(m) | ConnectorError::Refused(m) => {
            let reason = certificate_reason_key(&m);
            (Error::invalid("sign-in", m), reason)
        }
        other => (Error::Unavailable(other.to_string()), None),
    };
    match reason {
        Some(key) => WebError::page_with(
            error,
            "error.certificate.title",
            "error.certificate.message",
        )
        .with_detail_key(key),
        None => WebError::page_with(error, "error.upstream.title", "error.upstream.message"),
    }
}

/// The catalogue key of a certificate refusal's reason, found from the connector's message
/// (the text of a [`CertificateError`] without data; the audit log keeps that text).
fn certificate_reason_key(message: &str) -> Option<&'static str> {
    use certificate::CertificateError as E;
    [
        (E::Revoked, "error.certificate.revoked"),
        (E::Expired, "error.certificate.expired"),
        (E::NotYetValid, "error.certificate.not_yet_valid"),
        (E::Untrusted, "error.certificate.untrusted"),
        (E::RevocationUnknown, "error.certificate.revocation_unknown"),
        (
            E::RevocationListExpired,
            "error.certificate.revocation_list_expired",
        ),
        (
            E::BadChainSignature,
            "error.certificate.bad_chain_signature",
        ),
        (E::BadSignature, "error.certificate.bad_signature"),
        (E::ChallengeMismatch, "error.certificate.challenge_mismatch"),
        (E::ChallengeExpired, "error.certificate.challenge_expired"),
        (E::WrongEku, "error.certificate.wrong_usage"),
        (E::WrongKeyUsage, "error.certificate.wrong_usage"),
        (E::CaAsLeaf, "error.certificate.ca_as_leaf"),
    ]
    .into_iter()
    .find(|(e, _)| e.to_string() == message)
    .map(|(_, key)| key)
}

/// The name of the service a login is for (a relying party, or the admin console).
fn service_name(
    c: &mut crate::store::Db,
    cache: &crate::cache::NodeCache,
    rp_id: &str,
) -> crate::error::Result<String> {
    if rp_id == crate::login::CONSOLE {
        return Ok("Quản trị fedhub".into());
    }
    Ok(cache.rp(c, rp_id)?.display_name.clone())
}

/// The login must continue in the browser that started it.
pub(crate) fn check_binding(headers: &HeaderMap, handle: &str) -> Result<(), WebError> {
    match cookies::get(headers, cookies::LOGIN_COOKIE) {
        Some(v) if v == handle => Ok(()),
        _ => Err(expired(Error::invalid(
            "login",
            "this sign-in was started in another browser",
        ))),
    }
}

#[derive(Debug, Serialize)]
struct Offered {
    name: String,
    action: String,
    last: bool,
}

/// Up to this many SAML identity providers, the sign-in page shows a button for each (as it
/// always has); beyond, a search box.
pub const CHOOSER_FEW: i64 = 12;
/// Most identity providers one search shows.
pub const CHOOSER_SHOWN: i64 = 20;
/// Longest search text taken (longer is cut).
const SEARCH_MAX_CHARS: usize = 100;

/// The search part of the sign-in page when a relying party offers many identity providers.
#[derive(Debug, Serialize)]
struct Search {
    action: String,
    q: String,
    results: Vec<Offered>,
    /// More matched than shown: the person should type more.
    more: bool,
}

/// The `q` of the sign-in page's query string, trimmed and bounded.
fn search_text(uri: &http::Uri) -> Option<String> {
    let query = uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.trim().chars().take(SEARCH_MAX_CHARS).collect::<String>())
        .filter(|v| !v.is_empty())
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
    let q = search_text(&uri);
    let last = cookies::get(&headers, cookies::LAST_CONNECTOR_COOKIE).map(str::to_string);
    let (session, rp_name, hinted, offer, last_choice) = {
        let (q, last, cache) = (q.clone(), last.clone(), state.cache.clone());
        state
            .store
            .read_async(move |c| {
                let session = auth_session::load(c, &h, now)?;
                let rp = session.request.rp_id.clone();
                // The relying party named the connector (idp_hint, Scoping): one index read.
                if let Some(hint) = session.request.connector_hint.as_deref() {
                    if let Some(found) = upstream::lookup::by_hint(c, &rp, hint)? {
                        let found = Some(found);
                        return Ok((session, String::new(), found, Arc::default(), None));
                    }
                }
                let rp_name = service_name(c, &cache, &rp)?;
                // Without a search the page is the same for every visitor: the node's copy.
                let offer = match q.as_deref() {
                    None => cache.offer(c, &rp, CHOOSER_FEW, CHOOSER_SHOWN)?,
                    Some(q) => Arc::new(upstream::lookup::offer(
                        c,
                        &rp,
                        Some(q),
                        CHOOSER_FEW,
                        CHOOSER_SHOWN,
                    )?),
                };
                // The browser's last choice, if this relying party still offers it.
                let last_choice = match last.as_deref() {
                    Some(id) => cache.allowed_connector(c, &rp, id)?,
                    None => None,
                };
                Ok((session, rp_name, None, offer, last_choice))
            })
            .await
            .map_err(expired)?
    };
    if let Some(hinted) = hinted {
        return begin_connector(
            &state,
            &headers,
            &handle,
            &session,
            &hinted,
            &HashMap::new(),
        )
        .await;
    }
    if offer.others.is_empty() && offer.saml.is_empty() && !offer.many {
        return Err(WebError::page_with(
            Error::Unavailable("no usable connector".into()),
            "error.no_connector.title",
            "error.no_connector.message",
        ));
    }
    let last = last.as_deref();
    let offered = |c: &Connector| Offered {
        name: c.display_name.clone(),
        action: format!("/login/{handle}/{}", c.id),
        last: last == Some(c.id.as_str()),
    };
    let not_dev = |c: &&Connector| c.kind() != Some(ConnectorKind::Dev);
    let many = offer.many;
    let mut buttons: Vec<&Connector> = offer.others.iter().filter(not_dev).collect();
    let search = if many {
        // The last choice keeps its button even when it is one of many.
        if let Some(l) = last_choice.as_ref() {
            if l.kind() == Some(ConnectorKind::Saml) {
                buttons.push(l);
            }
        }
        let shown = usize::try_from(CHOOSER_SHOWN).unwrap_or(20);
        Some(Search {
            action: format!("/login/{handle}"),
            q: q.clone().unwrap_or_default(),
            results: offer.saml.iter().take(shown).map(offered).collect(),
            more: offer.saml.len() > shown,
        })
    } else {
        buttons.extend(offer.saml.iter());
        buttons.sort_by(|a, b| a.id.cmp(&b.id));
        None
    };
    let mut upstreams: Vec<Offered> = buttons.into_iter().map(offered).collect();
    // The browser's last choice first.
    upstreams.sort_by_key(|o| !o.last);
    let dev_connector = offer
        .others
        .iter()
        .find(|c| c.kind() == Some(ConnectorKind::Dev));
    let people = match dev_connector {
        Some(c) => {
            dev::DevConfig::parse(&c.config)
                .map_err(Error::internal)?
                .people
        }
        None => Vec::new(),
    };
    let dev_action = dev_connector.map(|c| format!("/login/{handle}/{}", c.id));
    let html = state.pages.render(
        "login_dev.html",
        &page_context(&headers, &uri),
        context! { rp_name, upstreams, people, dev_action, search },
    )?;
    Ok(Html(html).into_response())
}

/// What `connector` saved with the login when it started (nonce, challenge, transaction):
/// the login must have gone to this very connector, and not have finished since.
pub(crate) fn saved_state(
    session: &auth_session::AuthSession,
    connector: &Connector,
    missing: &str,
) -> Result<String, WebError> {
    match (&session.connector_id, &session.connector_state) {
        (Some(id), Some(saved)) if *id == connector.id => Ok(saved.clone()),
        _ => Err(expired(Error::invalid("login", missing.to_string()))),
    }
}

/// The connector a login may use, or why not.
pub(crate) async fn allowed(
    state: &AppState,
    handle: &str,
    connector_id: &str,
) -> Result<(auth_session::AuthSession, Connector), WebError> {
    let now = state.clock.now();
    let (h, id) = (handle.to_string(), connector_id.to_string());
    let cache = state.cache.clone();
    let (session, connector) = state
        .store
        .read_async(move |c| {
            let session = auth_session::load(c, &h, now)?;
            let connector = cache.allowed_connector(c, &session.request.rp_id, &id)?;
            Ok((session, connector))
        })
        .await
        .map_err(expired)?;
    let connector = connector.ok_or_else(|| {
        WebError::page(Error::invalid(
            "connector",
            "this sign-in method is not offered for this service",
        ))
    })?;
    Ok((session, connector))
}

/// The person picked a connector: the demo one signs in at once; an OIDC one sends the
/// browser to the provider, keeping nonce and PKCE verifier with the login.
async fn choose(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((handle, connector_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    // Read as a form whatever the content type says: a button without fields posts nothing.
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    check_binding(&headers, &handle)?;
    let (session, connector) = allowed(&state, &handle, &connector_id).await?;
    begin_connector(&state, &headers, &handle, &session, &connector, &form).await
}

/// Starts signing in with `connector`: the demo one signs in at once; an OIDC one sends the
/// browser to the provider; a certificate one shows its challenge.
async fn begin_connector(
    state: &AppState,
    headers: &HeaderMap,
    handle: &str,
    session: &auth_session::AuthSession,
    connector: &Connector,
    form: &HashMap<String, String>,
) -> Result<Response, WebError> {
    let (state, headers, handle) = (state.clone(), headers.clone(), handle.to_string());
    let now = state.clock.now();
    let mut res = match connector.kind() {
        Some(ConnectorKind::Dev) => {
            let cfg = dev::DevConfig::parse(&connector.config).map_err(Error::internal)?;
            let chosen = form.get("national_id").map(|s| s.trim()).unwrap_or("");
            let identity = dev::complete(&cfg, &connector.id, chosen, now);
            return finish(&state, &headers, &handle, &connector.id, identity).await;
        }
        Some(ConnectorKind::Oidc) => {
            let vault = state.vault()?;
            let up = upstream::oidc_upstream(
                connector,
                &vault,
                &state.config.base_url(),
                state.config.connectors.clock_skew,
            )?;
            let (meta, _) = provider(&state, &up.issuer, false)
                .await
                .map_err(upstream_page)?;
            let (url, pending) =
                upstream_oidc::begin(&up, &meta, &handle, session.request.login_hint.as_deref())
                    .map_err(upstream_page)?;
            let saved = serde_json::to_string(&pending).map_err(Error::internal)?;
            let (h, id) = (handle.clone(), connector.id.clone());
            state
                .store
                .write_async(move |c| auth_session::set_connector(c, &h, &id, Some(&saved), now))
                .await
                .map_err(expired)?;
            Redirect::to(&url).into_response()
        }
        Some(ConnectorKind::Certificate) => {
            // A fresh single-use challenge for the token to sign, kept with the login.
            let cfg = CertificateConfig::parse(&connector.config).map_err(Error::internal)?;
            let challenge =
                Challenge::issue(&cfg, &state.config.base_url(), now).map_err(Error::internal)?;
            let text = challenge.to_signing_string();
            let (h, id, saved) = (handle.clone(), connector.id.clone(), text.clone());
            state
                .store
                .write_async(move |c| auth_session::set_connector(c, &h, &id, Some(&saved), now))
                .await
                .map_err(expired)?;
            let rp_id = session.request.rp_id.clone();
            let cache = state.cache.clone();
            let rp_name = state
                .store
                .read_async(move |c| service_name(c, &cache, &rp_id))
                .await?;
            let sign_request =
                serde_json::to_string(&SignRequest { challenge: text }).map_err(Error::internal)?;
            let page = super::page_context_for(&headers, "/login");
            let html = state.pages.render(
                "login_certificate.html",
                &page,
                context! {
                    rp_name,
                    connector_name => connector.display_name,
                    sign_request,
                    expires => crate::clock::rfc3339(challenge.expires_at),
                    action => format!("/login/{handle}/{}/answer", connector.id),
                    tls_action => (!state.config.connectors.trusted_proxies.is_empty())
                        .then(|| format!("/login/{handle}/{}/tls", connector.id)),
                },
            )?;
            Html(html).into_response()
        }
        Some(ConnectorKind::Saml) => {
            crate::saml::upstream::begin(&state, &headers, &handle, session, connector).await?
        }
        Some(ConnectorKind::Simpki) => {
            let action = format!("/login/{handle}/{}/phone", connector.id);
            simpki_page(&state, &headers, session, connector, Some(action), None).await?
        }
        _ => {
            return Err(WebError::page(Error::invalid(
                "connector",
                "this sign-in method is not available yet",
            )))
        }
    };
    if let Some(c) = cookies::last_connector(&state.config, &connector.id) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}

/// The signing tool's answer to the challenge: the chain must lead to a configured government
/// CA, not be revoked (CRLs from the trusted chain's distribution points), and the signature
/// must be over this login's challenge.
async fn certificate_answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((handle, connector_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    check_binding(&headers, &handle)?;
    let (session, connector) = allowed(&state, &handle, &connector_id).await?;
    let expected = saved_state(
        &session,
        &connector,
        "no challenge was issued for this sign-in",
    )?;
    let cfg = CertificateConfig::parse(&connector.config).map_err(Error::internal)?;
    let answer_text: String = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "answer")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let now = state.clock.now();
    let identity = match SignedChallenge::from_json(answer_text.trim()) {
        Ok(answer) => {
            let urls = certificate::trusted_crl_urls(&cfg, &answer, now).unwrap_or_default();
            let crls = state
                .crls
                .get(
                    &state.http,
                    &urls,
                    now,
                    state.config.connectors.upstream_timeout,
                )
                .await;
            certificate::verify(&cfg, &expected, &answer, &crls, now, &connector.id)
        }
        Err(e) => Err(e),
    };
    // A certificate that is expired, revoked, untrusted or signed something else is the
    // person's problem to see, not the relying party's: show why.
    let identity = identity.map_err(|e| match e {
        ConnectorError::Refused(m) | ConnectorError::Invalid(m) => ConnectorError::Invalid(m),
        other => other,
    });
    finish(&state, &headers, &handle, &connector.id, identity).await
}

/// The certificate the browser presented to the TLS-terminating proxy, forwarded in a header.
/// Believed only when the request comes from a configured trusted proxy: from anyone else the
/// header is a forgery.
async fn certificate_tls(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((handle, connector_id)): Path<(String, String)>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
) -> Result<Response, WebError> {
    check_binding(&headers, &handle)?;
    let (_session, connector) = allowed(&state, &handle, &connector_id).await?;
    if connector.kind() != Some(ConnectorKind::Certificate) {
        return Err(WebError::page(Error::invalid(
            "connector",
            "not a certificate connector",
        )));
    }
    let cfg = CertificateConfig::parse(&connector.config).map_err(Error::internal)?;
    let now = state.clock.now();
    let from_proxy =
        peer.is_some_and(|p| super::client::is_trusted_proxy(&state.config, (p.0).0.ip()));
    let identity = if !from_proxy {
        Err(ConnectorError::Invalid(
            "a client certificate is accepted only from the hub's own TLS proxy".into(),
        ))
    } else {
        let forwarded = headers
            .get(state.config.connectors.client_cert_header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(percent_decode)
            .unwrap_or_default();
        match fedhub_metadata::keys::certificates_from_bytes(forwarded.as_bytes()) {
            Ok(chain) if !chain.is_empty() => {
                let urls =
                    certificate::trusted_crl_urls_of_chain(&cfg, &chain, now).unwrap_or_default();
                let crls = state
                    .crls
                    .get(
                        &state.http,
                        &urls,
                        now,
                        state.config.connectors.upstream_timeout,
                    )
                    .await;
                certificate::verify_presented(&cfg, &chain, &crls, now, &connector.id).map_err(
                    |e| match e {
                        ConnectorError::Refused(m) => ConnectorError::Invalid(m),
                        other => other,
                    },
                )
            }
            _ => Err(ConnectorError::Invalid(
                "the browser presented no client certificate".into(),
            )),
        }
    };
    finish(&state, &headers, &handle, &connector.id, identity).await
}

/// Percent-decoding as proxies escape a PEM certificate (`%20`, `%0A`, `%2B`...; a `+` stays a
/// `+`, as base64 needs).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a SIM-PKI sign-in keeps while the phone confirms.
#[derive(Debug, Serialize, serde::Deserialize)]
struct SimPkiPending {
    challenge: String,
    transaction_id: String,
    msisdn: String,
}

/// The phone-number form (`action`), or the page that waits for the phone (`waiting_for`).
async fn simpki_page(
    state: &AppState,
    headers: &HeaderMap,
    session: &auth_session::AuthSession,
    connector: &Connector,
    action: Option<String>,
    waiting_for: Option<String>,
) -> Result<Response, WebError> {
    let rp_id = session.request.rp_id.clone();
    let cache = state.cache.clone();
    let rp_name = state
        .store
        .read_async(move |c| service_name(c, &cache, &rp_id))
        .await?;
    let html = state.pages.render(
        "login_simpki.html",
        &super::page_context_for(headers, "/login"),
        context! {
            rp_name,
            connector_name => connector.display_name,
            action,
            waiting => waiting_for.is_some(),
            msisdn => waiting_for,
        },
    )?;
    Ok(Html(html).into_response())
}

/// The person gave their number: the provider asks their phone to sign a fresh challenge.
async fn simpki_phone(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((handle, connector_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    check_binding(&headers, &handle)?;
    let (_session, connector) = allowed(&state, &handle, &connector_id).await?;
    let vault = state.vault()?;
    let (provider, cfg) = upstream::simpki(&connector, &vault)?;
    let typed: String = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "msisdn")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let msisdn = simpki::normalise_msisdn(&typed)
        .map_err(|e| WebError::page(Error::invalid("msisdn", e.to_string())))?;
    let now = state.clock.now();
    let challenge = Challenge::issue(&cfg, &state.config.base_url(), now)
        .map_err(Error::internal)?
        .to_signing_string();
    let display = format!("Đăng nhập {}", state.config.base_url());
    let transaction_id = simpki::start(
        &state.http,
        &provider,
        &msisdn,
        &challenge,
        &display,
        state.config.connectors.upstream_timeout,
    )
    .await
    .map_err(upstream_page)?;
    let saved = serde_json::to_string(&SimPkiPending {
        challenge,
        transaction_id,
        msisdn,
    })
    .map_err(Error::internal)?;
    let (h, id) = (handle.clone(), connector.id.clone());
    state
        .store
        .write_async(move |c| auth_session::set_connector(c, &h, &id, Some(&saved), now))
        .await
        .map_err(expired)?;
    Ok(Redirect::to(&format!("/login/{handle}/{}/wait", connector.id)).into_response())
}

/// The waiting page asks again every two seconds until the phone has answered.
async fn simpki_wait(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((handle, connector_id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    check_binding(&headers, &handle)?;
    let (session, connector) = allowed(&state, &handle, &connector_id).await?;
    let pending: SimPkiPending = serde_json::from_str(&saved_state(
        &session,
        &connector,
        "no signing request was sent for this sign-in",
    )?)
    .map_err(Error::internal)?;
    let vault = state.vault()?;
    let (provider, cfg) = upstream::simpki(&connector, &vault)?;
    let now = state.clock.now();
    let polled = simpki::poll(
        &state.http,
        &provider,
        &pending.transaction_id,
        &pending.challenge,
        state.config.connectors.upstream_timeout,
    )
    .await;
    let identity = match polled {
        Ok(PollResult::Pending) => {
            let expired_challenge = Challenge::parse(&pending.challenge)
                .map(|c| c.is_expired(now))
                .unwrap_or(true);
            if !expired_challenge {
                return simpki_page(
                    &state,
                    &headers,
                    &session,
                    &connector,
                    None,
                    Some(pending.msisdn),
                )
                .await;
            }
            Err(ConnectorError::Invalid(
                "the phone did not confirm in time".into(),
            ))
        }
        Ok(PollResult::Signed(answer)) => {
            let urls = certificate::trusted_crl_urls(&cfg, &answer, now).unwrap_or_default();
            let crls = state
                .crls
                .get(
                    &state.http,
                    &urls,
                    now,
                    state.config.connectors.upstream_timeout,
                )
                .await;
            certificate::verify(&cfg, &pending.challenge, &answer, &crls, now, &connector.id)
                .map(simpki::as_simpki)
                .map_err(|e| match e {
                    ConnectorError::Refused(m) => ConnectorError::Invalid(m),
                    other => other,
                })
        }
        // The person declined on the phone: the relying party hears it.
        Ok(PollResult::Refused) => Err(ConnectorError::Refused("declined on the phone".into())),
        Ok(PollResult::Expired) => Err(ConnectorError::Invalid(
            "the signing request expired before the phone confirmed".into(),
        )),
        Err(e) => Err(e),
    };
    finish(&state, &headers, &handle, &connector.id, identity).await
}

/// The provider's discovery document and keys (cached per node; `refresh` fetches again).
async fn provider(
    state: &AppState,
    issuer: &str,
    refresh: bool,
) -> Result<(upstream_oidc::ProviderMetadata, Vec<serde_json::Value>), ConnectorError> {
    let now = state.clock.now();
    if !refresh {
        if let Some(hit) = state.providers.get(issuer, now) {
            return Ok(hit);
        }
    }
    if let Some(until) = state.providers.down_until(issuer, now) {
        return Err(ConnectorError::Unavailable(format!(
            "{issuer} did not answer a moment ago; not asked again before {}",
            crate::clock::rfc3339(until)
        )));
    }
    let timeout = state.config.connectors.upstream_timeout;
    let fetched = async {
        let meta = upstream_oidc::discover(&state.http, issuer, timeout).await?;
        let keys = upstream_oidc::fetch_jwks(&state.http, &meta, timeout).await?;
        Ok((meta, keys))
    }
    .await;
    match &fetched {
        Ok((meta, keys)) => state.providers.put(issuer, now, meta.clone(), keys.clone()),
        Err(e) => remember_if_down(state, issuer, e),
    }
    fetched
}

/// A provider that did not answer is not asked again for `connectors.upstream_down_for`: the
/// people who pick it meanwhile get the page at once instead of each holding a request slot
/// for `upstream_timeout` (a national IdP's outage would otherwise fill them all).
fn remember_if_down(state: &AppState, issuer: &str, e: &ConnectorError) {
    let down_for = state.config.connectors.upstream_down_for.as_secs();
    if matches!(e, ConnectorError::Unavailable(_)) && down_for > 0 {
        let until = state.clock.now() + i64::try_from(down_for).unwrap_or(i64::MAX / 2);
        tracing::warn!(%issuer, error = %e, "upstream provider down; not asked again for {down_for} s");
        state.providers.mark_down(issuer, until);
    }
}

/// Where to send the browser to sign out at the OIDC provider a session came from (`None`
/// when it offers no end-session endpoint or cannot be reached); it comes back to
/// `/connectors/{id}/logged-out` with the logout handle as `state`.
pub(crate) async fn oidc_end_session(
    state: &AppState,
    connector: &Connector,
    session: &str,
    handle: &str,
) -> Option<String> {
    let saved: upstream_oidc::UpstreamSession = serde_json::from_str(session).ok()?;
    let vault = state.vault().ok()?;
    let base = state.config.base_url();
    let up = upstream::oidc_upstream(connector, &vault, &base, state.config.connectors.clock_skew)
        .ok()?;
    let (meta, _) = match provider(state, &up.issuer, false).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(connector = %connector.id, error = %e, "upstream logout skipped");
            return None;
        }
    };
    upstream_oidc::end_session_url(
        &up,
        &meta,
        Some(&saved.id_token),
        &format!("{base}/connectors/{}/logged-out", connector.id),
        handle,
    )
}

/// The OIDC provider sends the browser back here with a code (or an error).
async fn oidc_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(connector_id): Path<String>,
    Query(cb): Query<Callback>,
) -> Result<Response, WebError> {
    let Some(handle) = cb.state.clone() else {
        return Err(expired(Error::invalid("state", "missing")));
    };
    check_binding(&headers, &handle)?;
    let now = state.clock.now();
    let (session, connector) = allowed(&state, &handle, &connector_id).await?;
    let pending: PendingLogin = serde_json::from_str(&saved_state(
        &session,
        &connector,
        "this sign-in did not go to that provider",
    )?)
    .map_err(Error::internal)?;
    let vault = state.vault()?;
    let up = upstream::oidc_upstream(
        &connector,
        &vault,
        &state.config.base_url(),
        state.config.connectors.clock_skew,
    )?;
    let outcome = async {
        let (meta, keys) = provider(&state, &up.issuer, false).await?;
        let tokens = upstream_oidc::exchange(
            &state.http,
            &up,
            &meta,
            &cb,
            &pending,
            state.config.connectors.upstream_timeout,
        )
        .await?;
        let id = |keys: Vec<serde_json::Value>| {
            let (up, meta, tokens, pending, cid) = (&up, &meta, &tokens, &pending, &connector.id);
            let (http, timeout) = (&state.http, state.config.connectors.upstream_timeout);
            async move {
                upstream_oidc::identity(http, up, meta, &keys, tokens, pending, cid, now, timeout)
                    .await
            }
        };
        match id(keys).await {
            // Signed with a key this node has not seen: the provider rotated. Fetch its keys
            // again, once.
            Err(ConnectorError::Invalid(m)) if m.contains("no key with kid") => {
                let (_, fresh) = provider(&state, &up.issuer, true).await?;
                id(fresh).await
            }
            other => other,
        }
    }
    .await;
    if let Err(e) = &outcome {
        remember_if_down(&state, &up.issuer, e);
    }
    finish(&state, &headers, &handle, &connector.id, outcome).await
}

/// How finishing a login ended.
enum Step {
    /// A SAML SP answered in the same transaction: the assertion to sign (or a refusal).
    SamlAnswered(
        crate::login::RpRequest,
        std::sync::Arc<crate::cache::SamlSp>,
        std::result::Result<crate::saml::sso::Prepared, resolve::Refusal>,
        String,
    ),
    /// An OIDC client answered in the same transaction: its code (or a refusal).
    OidcAnswered(
        crate::login::RpRequest,
        std::result::Result<String, resolve::Refusal>,
        String,
    ),
    Refused(resolve::Refusal),
    /// Signed in to the admin console: back to the page asked for.
    Console(String, String),
    /// The upstream said no: the relying party hears it (AuthnFailed / access_denied).
    UpstreamRefused(
        crate::login::RpRequest,
        std::sync::Arc<crate::rp::RelyingParty>,
    ),
    /// The upstream's answer could not be trusted or did not come: the person sees a page.
    UpstreamFailed(ConnectorError),
}

/// What the metrics need of the login being finished.
struct Started {
    protocol: &'static str,
    rp: String,
    created_at: i64,
}

/// Upstream identity → account → SSO session → answer, with the auth session consumed, in one
/// transaction: a replayed callback finds the login already used. Each login that gets this
/// far is counted once in the metrics, with how it ended.
pub(crate) async fn finish(
    state: &AppState,
    headers: &HeaderMap,
    handle: &str,
    connector_id: &str,
    identity: std::result::Result<UpstreamIdentity, ConnectorError>,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let request_id = request_id_of(headers);
    let sso_ttl = state.config.sessions.sso_session_ttl.as_secs() as i64;
    let oidc_ctx = crate::oidc::authorize::AnswerContext::of(state, headers)?;
    let saml_ctx = crate::saml::sso::AnswerContext::of(state, headers)?;
    let (h, connector) = (handle.to_string(), connector_id.to_string());
    let cache = state.cache.clone();
    let (step, started) = state
        .store
        .write_async(move |c| {
            let session = auth_session::consume(c, &h, now).map_err(|e| match e {
                // The database went away: 503, the login is still there to finish.
                Error::Unavailable(_) | Error::Internal(_) => e,
                other => Error::invalid("login", other.to_string()),
            })?;
            let connector_id = connector;
            let rp = match session.request.answer {
                Answer::Console { .. } => None,
                _ => Some(cache.rp(c, &session.request.rp_id)?),
            };
            let started = Started {
                protocol: session.request.answer.protocol(),
                rp: rp.as_ref().map_or_else(
                    || crate::login::CONSOLE.to_string(),
                    |r| r.entity_id.clone(),
                ),
                created_at: session.created_at,
            };
            let identity = match identity {
                Ok(identity) => identity,
                Err(e) => {
                    let event = Event::new("anonymous", "login")
                        .target(connector_id.clone())
                        .outcome(Outcome::Failure)
                        .detail(e.to_string())
                        .request(Some(request_id.clone()));
                    audit::record(c, &event, now)?;
                    return Ok((
                        match (e, rp) {
                            (ConnectorError::Refused(_), Some(rp)) => {
                                Step::UpstreamRefused(session.request, rp)
                            }
                            (other, _) => Step::UpstreamFailed(other),
                        },
                        started,
                    ));
                }
            };
            let account = match resolve::account_for(c, &identity, now)? {
                Ok(a) => a,
                Err(refusal) => {
                    let event = Event::new(format!("upstream:{}", identity.subject), "login")
                        .target(connector_id.clone())
                        .outcome(Outcome::Denied)
                        .detail(refusal.as_str())
                        .request(Some(request_id.clone()));
                    audit::record(c, &event, now)?;
                    return Ok((Step::Refused(refusal), started));
                }
            };
            let (cookie, sso_session) = sso::start(
                c,
                &account.id,
                &connector_id,
                &identity.authn,
                sso::UpstreamRef {
                    subject: Some(&identity.subject),
                    session: identity.session.as_deref(),
                },
                sso_ttl,
                now,
            )?;
            let event = Event::new(format!("account:{}", account.id), "login")
                .target(connector_id.clone())
                .request(Some(request_id.clone()));
            audit::record(c, &event, now)?;
            let rp = match (&session.request.answer, rp) {
                (Answer::Console { return_to }, _) => {
                    return Ok((Step::Console(return_to.clone(), cookie), started));
                }
                (_, Some(rp)) => rp,
                (_, None) => return Err(Error::internal("a login without its relying party")),
            };
            if matches!(session.request.answer, Answer::Oidc { .. }) {
                // The code is stored with the sign-in: one transaction for the whole step.
                let client = cache
                    .oidc_client(c, &rp.entity_id)?
                    .ok_or_else(|| Error::internal("an OIDC login for a client that is gone"))?;
                let outcome = crate::oidc::authorize::issue_code(
                    c,
                    &oidc_ctx,
                    &client.rp,
                    &client.settings,
                    &session.request,
                    &sso_session,
                )?;
                return Ok((
                    Step::OidcAnswered(session.request, outcome, cookie),
                    started,
                ));
            }
            // The Response is prepared with the sign-in too (signed after the commit).
            let sp = cache.saml_sp(c, &rp)?;
            let outcome =
                crate::saml::sso::prepare(c, &saml_ctx, &sp, &session.request, &sso_session)?;
            Ok((
                Step::SamlAnswered(session.request, sp, outcome, cookie),
                started,
            ))
        })
        .await
        .map_err(|e| match e {
            Error::Invalid { ref field, .. } if field == "login" => expired(e),
            other => WebError::page(other),
        })?;
    let (outcome, res) = answer_step(state, headers, step).await;
    state.metrics.login(&LoginResult {
        protocol: started.protocol,
        rp: started.rp,
        connector: connector_id.to_string(),
        outcome,
        seconds: now - started.created_at,
    });
    let mut res = res?;
    if let Some(c) = cookies::clear_login(&state.config) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}

/// The answer to a finished login, and how the login ended.
async fn answer_step(
    state: &AppState,
    headers: &HeaderMap,
    step: Step,
) -> (LoginOutcome, Result<Response, WebError>) {
    // A failure to answer (signing, the database) is the hub's.
    let failed = |e: WebError| (LoginOutcome::Error("internal"), Err(e));
    match step {
        Step::SamlAnswered(request, sp, outcome, cookie) => {
            let set_sso = cookies::sso(&state.config, &cookie);
            match crate::saml::sso::conclude(state, headers, &sp, &request, outcome, set_sso).await
            {
                Ok((None, res)) => (LoginOutcome::Success, res),
                Ok((Some(refusal), res)) => (LoginOutcome::Refused(refusal.as_str()), res),
                Err(e) => failed(e),
            }
        }
        Step::Console(return_to, cookie) => {
            let mut res = Redirect::to(&return_to).into_response();
            if let Some(c) = cookies::sso(&state.config, &cookie) {
                res.headers_mut().append(header::SET_COOKIE, c);
            }
            (LoginOutcome::Success, Ok(res))
        }
        Step::OidcAnswered(request, outcome, cookie) => {
            let set_sso = cookies::sso(&state.config, &cookie);
            let ended = match &outcome {
                Ok(_) => LoginOutcome::Success,
                Err(refusal) => LoginOutcome::Refused(refusal.as_str()),
            };
            match crate::oidc::authorize::respond(state, &request, outcome, set_sso) {
                // A refusal is answered with its page: still the refusal, not a failure.
                Err(e) if ended != LoginOutcome::Success => (ended, Err(e)),
                Err(e) => failed(e),
                Ok(res) => (ended, Ok(res)),
            }
        }
        Step::Refused(refusal) => (
            LoginOutcome::Refused(refusal.as_str()),
            Err(crate::saml::sso::refusal_page(refusal)),
        ),
        Step::UpstreamFailed(why) => (LoginOutcome::of_upstream(&why), Err(upstream_page(why))),
        Step::UpstreamRefused(request, _) if matches!(request.answer, Answer::Oidc { .. }) => {
            let ended = LoginOutcome::Refused("upstream_refused");
            match crate::oidc::authorize::upstream_failed(state, &request) {
                Ok(res) => (ended, Ok(res)),
                Err(e) => failed(e),
            }
        }
        Step::UpstreamRefused(request, rp) => {
            use crate::saml::response::{STATUS_AUTHN_FAILED, STATUS_RESPONDER};
            let ended = LoginOutcome::Refused("upstream_refused");
            match crate::saml::sso::error_answer(
                state,
                &rp,
                &request,
                STATUS_RESPONDER,
                Some(STATUS_AUTHN_FAILED),
                "the sign-in did not succeed",
                headers,
            )
            .await
            {
                Ok(res) => (ended, Ok(res)),
                Err(e) => failed(e.into()),
            }
        }
    }
}
