//! Self-service claim of a legacy account at `/claim/{rp}`: a person signed in at the hub
//! types the username and the old password of their legacy account in a relying party once;
//! when the password is right and the conversion's rules hold (same unit and user group, an
//! activated member), the legacy account converts into them and its password never works
//! again (the legacy row is marked converted; a second claim is refused).
//!
//! The claim is optional per relying party (`fedhub rp claim RP --on`, or
//! `PUT /admin/api/v1/relying-parties/{id}/claim`): off, the page says so before anyone signs
//! in. On, it is open only to a person who is an activated member of the relying party. The
//! conversion runs as the person (`convert::convert_claim`), never as an operator. Wrong
//! passwords are limited: after
//! [`MAX_FAILURES`] failures for the same legacy account, or by the same person, within
//! [`WINDOW`] seconds, every attempt is refused until the window passes (the failures are
//! kept in `saml_replay` with their expiry, so every node sees them). Every attempt is
//! audited as `conversion.claim`.

use axum::extract::{FromRequestParts, Path, Request as HttpRequest, State};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use diesel::prelude::*;
use http::request::Parts;
use http::{header, HeaderMap, StatusCode};
use minijinja::context;

use super::error::{ErrorPage, WebError};
use super::{cookies, page_context, AppState};
use crate::admin::memberships::ACTIVATED;
use crate::audit::{self, Event, Outcome};
use crate::conversion::convert;
use crate::error::{Error, Result};
use crate::login::{auth_session, sso, Answer, RpRequest, CONSOLE};
use crate::store::schema::{legacy_accounts as la, memberships as m, saml_replay as sr};
use crate::store::Db;

/// Wrong passwords allowed within the window, per legacy account and per person.
pub const MAX_FAILURES: i64 = 5;
/// The window, in seconds.
pub const WINDOW: i64 = 15 * 60;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/claim/{rp}", get(form).post(claim))
        .route_layer(axum::middleware::from_fn_with_state(state, claim_offered))
}

/// A relying party that does not offer the claim (or does not exist) says so at once, before
/// anyone is asked to sign in.
async fn claim_offered(
    State(state): State<AppState>,
    Path(rp): Path<String>,
    req: HttpRequest,
    next: Next,
) -> Response {
    let offered = state
        .store
        .read_async(move |c| match crate::rp::get(c, &rp) {
            Ok(found) => Ok(found.claim_enabled),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        })
        .await;
    match offered {
        Ok(true) => next.run(req).await,
        Ok(false) => not_offered(),
        Err(e) => WebError::page(e).into_response(),
    }
}

fn not_offered() -> Response {
    WebError::page_with(
        Error::Forbidden(convert::CLAIM_OFF.into()),
        "claim.off.title",
        "claim.off.message",
    )
    .into_response()
}

/// A person signed in at the hub (any person, not only admins).
pub struct Person {
    pub account_id: String,
    pub display_name: String,
    pub csrf: String,
    pub request_id: String,
}

fn csrf_for(state: &AppState, sso_session_id: &str) -> Result<String> {
    let vault = state.vault()?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &vault.derive(b"claim-csrf"));
    Ok(hex::encode(
        &ring::hmac::sign(&key, sso_session_id.as_bytes()).as_ref()[..16],
    ))
}

/// Not signed in: a sign-in through the hub, back to this claim page.
async fn start_sign_in(state: &AppState, parts: &Parts) -> Result<Response> {
    let path = parts.uri.path();
    let return_to = if path.starts_with("/claim/") && !path.starts_with("//") {
        path.to_string()
    } else {
        "/".to_string()
    };
    let now = state.clock.now();
    let ttl = state.config.sessions.auth_session_ttl.as_secs() as i64;
    let request = RpRequest {
        rp_id: CONSOLE.into(),
        answer: Answer::Console { return_to },
        force_authn: false,
        is_passive: false,
        login_hint: None,
        connector_hint: None,
    };
    let handle = state
        .store
        .write_async(move |c| auth_session::create(c, &request, ttl, now))
        .await?;
    let mut res = Redirect::to(&format!("/login/{handle}")).into_response();
    if let Some(c) = cookies::login(&state.config, &handle, ttl) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}

impl FromRequestParts<AppState> for Person {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Self::Rejection> {
        let now = state.clock.now();
        let idle = state.config.sessions.sso_idle_timeout.as_secs() as i64;
        let cookie = cookies::get(&parts.headers, &state.config.cookies.name).map(str::to_string);
        let found = match cookie {
            Some(cookie) => state
                .store
                .write_async(move |c| {
                    let Some(session) = sso::current(c, &cookie, idle, now)? else {
                        return Ok(None);
                    };
                    let account = crate::directory::accounts::get(c, &session.account_id)?;
                    Ok(Some((session, account)))
                })
                .await
                .map_err(|e| WebError::page(e).into_response())?,
            None => None,
        };
        let Some((session, account)) = found else {
            return Err(start_sign_in(state, parts)
                .await
                .map_err(WebError::page)
                .into_response());
        };
        if account.status != "active" {
            return Err(WebError::page(Error::Forbidden(
                "this account is disabled in the directory".into(),
            ))
            .into_response());
        }
        let csrf = csrf_for(state, &session.id).map_err(|e| WebError::page(e).into_response())?;
        Ok(Person {
            account_id: account.id,
            display_name: account.display_name,
            csrf,
            request_id: super::request_id_of(&parts.headers),
        })
    }
}

impl Person {
    /// As the console's forms: this session's token, from the hub's own origin.
    fn form_ok(&self, state: &AppState, headers: &HeaderMap, token: Option<&str>) -> bool {
        let origin_ok = headers
            .get(header::ORIGIN)
            .map(|v| v.to_str().unwrap_or(""))
            .is_none_or(|o| o == "null" || o == state.config.base_url());
        let site_ok = headers
            .get("sec-fetch-site")
            .is_none_or(|v| v.as_bytes() == b"same-origin");
        let token_ok = token.is_some_and(|t| {
            t.len() == self.csrf.len() && openssl::memcmp::eq(t.as_bytes(), self.csrf.as_bytes())
        });
        origin_ok && site_ok && token_ok
    }
}

/// The relying party's name, when the person is an activated member of it.
fn member_of(c: &mut Db, account_id: &str, rp_id: &str) -> Result<Option<String>> {
    let rp = match crate::rp::get(c, rp_id) {
        Ok(rp) => rp,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let status: Option<String> = m::table
        .filter(m::account_id.eq(account_id))
        .filter(m::rp_id.eq(rp_id))
        .select(m::status)
        .get_result(c)
        .optional()?;
    Ok((status.as_deref() == Some(ACTIVATED)).then_some(rp.display_name))
}

/// The keys failures are counted under: hex, so that `LIKE` needs no escaping.
fn failure_prefix(kind: &str, value: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{kind}\n{value}").as_bytes());
    format!("claim-failure:{}:", hex::encode(&digest.as_ref()[..16]))
}

fn failures(c: &mut Db, prefix: &str, now: i64) -> Result<i64> {
    Ok(sr::table
        .filter(sr::id.like(format!("{prefix}%")))
        .filter(sr::expires_at.gt(now))
        .count()
        .get_result(c)?)
}

fn remember_failure(c: &mut Db, prefix: &str, now: i64) -> Result<()> {
    diesel::delete(sr::table.filter(sr::expires_at.le(now))).execute(c)?;
    diesel::insert_into(sr::table)
        .values((
            sr::id.eq(format!("{prefix}{}", uuid::Uuid::new_v4())),
            sr::expires_at.eq(now + WINDOW),
        ))
        .execute(c)?;
    Ok(())
}

/// What the page says after an attempt.
enum Said {
    /// The form, with a message (catalogue key) when one applies.
    Form(Option<&'static str>),
    /// Too many wrong passwords: no form until the window passes.
    Limited,
    /// A refusal of the conversion's rules: its message (catalogue key) and what it names.
    Refused(&'static str, Option<String>),
    /// Converted: the report.
    Done(Box<convert::Report>),
}

#[allow(clippy::too_many_arguments)]
fn render(
    state: &AppState,
    headers: &HeaderMap,
    uri: &http::Uri,
    person: &Person,
    rp_id: &str,
    rp_name: &str,
    username: &str,
    said: Said,
) -> Response {
    // Refusals are error pages (the error layer renders them in the reader's language).
    let (template, message, report) = match said {
        Said::Limited => {
            return error_page(
                StatusCode::TOO_MANY_REQUESTS,
                ("claim.limited_title", "claim.limited"),
                None,
            )
        }
        Said::Refused(key, named) => {
            return error_page(StatusCode::CONFLICT, ("claim.refused_title", key), named)
        }
        Said::Form(message) => ("claim.html", message, None),
        Said::Done(report) => ("claim_done.html", None, Some(report)),
    };
    let html = state.pages.render(
        template,
        &page_context(headers, uri),
        context! {
            rp_id,
            rp_name,
            person_name => person.display_name.clone(),
            csrf => person.csrf.clone(),
            username,
            message,
            report,
        },
    );
    match html {
        Ok(html) => Html(html).into_response(),
        Err(e) => WebError::page(e).into_response(),
    }
}

fn error_page(
    status: StatusCode,
    keys: (&'static str, &'static str),
    detail: Option<String>,
) -> Response {
    let mut res = status.into_response();
    res.extensions_mut().insert(ErrorPage {
        detail,
        keys: Some(keys),
    });
    res
}

fn not_member() -> Response {
    WebError::page_with(
        Error::Forbidden("the claim is open to activated members of this service only".into()),
        "claim.not_member.title",
        "claim.not_member.message",
    )
    .into_response()
}

async fn form(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    uri: http::Uri,
    Path(rp): Path<String>,
) -> Response {
    let (account, rp2) = (person.account_id.clone(), rp.clone());
    let name = match state
        .store
        .read_async(move |c| member_of(c, &account, &rp2))
        .await
    {
        Ok(Some(name)) => name,
        Ok(None) => return not_member(),
        Err(e) => return WebError::page(e).into_response(),
    };
    render(
        &state,
        &headers,
        &uri,
        &person,
        &rp,
        &name,
        "",
        Said::Form(None),
    )
}

/// The legacy account a username names in a relying party: id, hash, already converted.
type Legacy = (String, String, bool);

async fn claim(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    uri: http::Uri,
    Path(rp): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if !person.form_ok(&state, &headers, field("csrf")) {
        return WebError::page_with(
            Error::Forbidden("the form is stale or comes from another site".into()),
            "console.stale_form.title",
            "console.stale_form.message",
        )
        .into_response();
    }
    let username = field("username").unwrap_or("").trim().to_string();
    let password = field("password").unwrap_or("").to_string();
    let now = state.clock.now();
    let actor = format!("account:{}", person.account_id);
    let event = Event::new(actor.clone(), "conversion.claim")
        .target(format!("legacy-username:{username}"))
        .rp(rp.clone())
        .request(Some(person.request_id.clone()));
    let (account, rp2, user2) = (person.account_id.clone(), rp.clone(), username.clone());
    let legacy_key = failure_prefix("legacy", &format!("{rp}\n{username}"));
    let person_key = failure_prefix("person", &person.account_id);
    let (lk, pk) = (legacy_key.clone(), person_key.clone());
    // Who may claim, how many failures so far, and the legacy account.
    let looked = state
        .store
        .read_async(move |c| {
            let Some(name) = member_of(c, &account, &rp2)? else {
                return Ok(None);
            };
            let failed = failures(c, &lk, now)?.max(failures(c, &pk, now)?);
            let legacy: Option<Legacy> = la::table
                .filter(la::rp_id.eq(&rp2))
                .filter(la::username.eq(&user2))
                .select((la::id, la::password_hash, la::converted_to.is_not_null()))
                .get_result(c)
                .optional()?;
            Ok(Some((name, failed, legacy)))
        })
        .await;
    let (rp_name, failed, legacy) = match looked {
        Ok(Some(found)) => found,
        Ok(None) => {
            record(
                &state,
                event
                    .outcome(Outcome::Denied)
                    .detail("not an activated member"),
                now,
            )
            .await;
            return not_member();
        }
        Err(e) => return WebError::page(e).into_response(),
    };
    let page = |said: Said| {
        render(
            &state, &headers, &uri, &person, &rp, &rp_name, &username, said,
        )
    };
    if username.is_empty() || password.is_empty() {
        return page(Said::Form(Some("claim.missing")));
    }
    if failed >= MAX_FAILURES {
        record(
            &state,
            event.outcome(Outcome::Denied).detail(format!(
                "rate limited: {failed} wrong passwords in {} minutes",
                WINDOW / 60
            )),
            now,
        )
        .await;
        return page(Said::Limited);
    }
    // The password is checked outside any transaction (a hash may take a while).
    let proof = match legacy {
        Some((_, _, true)) => {
            record(
                &state,
                event
                    .outcome(Outcome::Denied)
                    .detail("the legacy account has already been converted"),
                now,
            )
            .await;
            return page(Said::Refused("console.conversion.reason.converted", None));
        }
        Some((id, hash, false)) => {
            let (rp2, account) = (rp.clone(), person.account_id.clone());
            let checked = tokio::task::spawn_blocking(move || {
                convert::prove_ownership(&rp2, &id, &hash, &password, &account)
            })
            .await
            .map_err(Error::internal)
            .and_then(|r| r);
            match checked {
                Ok(proof) => proof,
                Err(e) => {
                    // A stored hash the checker cannot read: no password matches it.
                    tracing::warn!(error = %e, "legacy password hash unreadable");
                    None
                }
            }
        }
        // No such username: said as a wrong password (the form does not tell which).
        None => None,
    };
    let Some(proof) = proof else {
        let (lk, pk) = (legacy_key, person_key);
        let failure = event
            .clone()
            .outcome(Outcome::Failure)
            .detail("wrong username or password");
        let stored = state
            .store
            .write_async(move |c| {
                remember_failure(c, &lk, now)?;
                remember_failure(c, &pk, now)?;
                audit::record(c, &failure, now)
            })
            .await;
        if let Err(e) = stored {
            return WebError::page(e).into_response();
        }
        return page(Said::Form(Some("claim.wrong")));
    };
    // The person proved they hold the legacy account: it converts into them, as them (the
    // claim's own entry point checks the switch and applies every rule of a conversion).
    let event = event
        .target(format!(
            "legacy:{} -> account:{}",
            proof.legacy_id(),
            person.account_id
        ))
        .detail(format!("claimed by {} in person", person.display_name));
    let store = state.store.clone();
    let done = tokio::task::spawn_blocking(move || {
        audit::audited(&store, event, now, |c| {
            convert::convert_claim(c, &proof, now)
        })
    })
    .await
    .map_err(Error::internal)
    .and_then(|r| r);
    match done {
        Ok((report, backchannel)) => {
            crate::oidc::logout::send_backchannel(&state, backchannel).await;
            crate::conversion::webhook::kick(&state, report.id.clone());
            page(Said::Done(Box::new(report)))
        }
        Err(Error::Forbidden(why)) if why == convert::CLAIM_OFF => not_offered(),
        Err(e @ (Error::Invalid { .. } | Error::Conflict { .. } | Error::Forbidden(_))) => {
            let (key, named) = reason_of(&e);
            page(Said::Refused(key, named))
        }
        Err(e) => WebError::page(e).into_response(),
    }
}

/// The conversion rules a claim can break, by how their text begins, with their message.
const RULES: &[(&str, &str)] = &[
    (
        "the accounts are in different units",
        "console.conversion.reason.units",
    ),
    (
        "the accounts are in different user groups",
        "console.conversion.reason.groups",
    ),
    (
        "activate the federated account",
        "console.conversion.reason.not_activated",
    ),
    (
        "add the federated account to this relying party first",
        "console.conversion.reason.not_member",
    ),
    (
        "the legacy account was converted meanwhile",
        "console.conversion.reason.converted",
    ),
];

/// Why a claim's conversion was refused: a message and what the rule names (units, groups).
fn reason_of(e: &Error) -> (&'static str, Option<String>) {
    let rule = match e {
        Error::Invalid { rule, .. } | Error::Conflict { rule, .. } => rule.as_str(),
        Error::Forbidden(reason) => reason.as_str(),
        _ => "",
    };
    if rule.ends_with("has already been converted") {
        return ("console.conversion.reason.converted", None);
    }
    match RULES.iter().find(|(start, _)| rule.starts_with(start)) {
        Some((start, key)) => {
            let named = rule[start.len()..]
                .trim()
                .strip_prefix('(')
                .and_then(|n| n.strip_suffix(')'))
                .filter(|n| !n.is_empty() && !n.contains("same unit"))
                .map(String::from);
            (key, named)
        }
        None => ("claim.refused", Some(rule.to_string())),
    }
}

/// Writes an audit entry of its own (nothing else changes).
async fn record(state: &AppState, event: Event, now: i64) {
    let written = state
        .store
        .write_async(move |c| audit::record(c, &event, now))
        .await;
    if let Err(e) = written {
        tracing::error!(error = %e, "could not write the audit entry of a claim");
    }
}
