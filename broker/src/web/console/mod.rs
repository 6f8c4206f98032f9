//! The admin console at `/admin` (seed III.3): reached only by signing in through the hub
//! itself (a connector: certificate, SIM-PKI, national IdP; no passwords). The console acts
//! with the signed-in account's admin grants, through the same policy as the API. Every form
//! carries a CSRF token bound to the SSO session, and a POST from another origin is refused.
//!
//! Pages (Vietnamese by default, English with `?lang=en`):
//! - `/admin/rp/{rp}/members`: "Quản lý người dùng", with activate, lock, unlock, remove;
//! - `/admin/rp/{rp}/members/new`: "Thêm mới" from the directory ("Lưu vào hệ thống");
//! - `/admin/rp/{rp}/members/{id}/unit`: "Thay đổi đơn vị" (a tree of the admin's subtree);
//! - `/admin/rp/{rp}/members/{id}/roles`: "Gán quyền" (roles and user group);
//! - `/admin/rp/{rp}/grants`: admin grants below one's own level, and revoking them;
//! - `/admin/audit` and `/admin/audit.csv`: the audit log of the admin's relying parties;
//! - `/admin/registry`: relying parties and connectors (the federation operator only).
//!
//! Every change is audited (success, failure, refusal); a refused read is audited too.

mod add;
mod audit_log;
mod conversion;
mod grants;
mod members;
mod registry;
mod roles;
mod support;
mod tree;
mod unit;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use http::request::Parts;
use http::{header, HeaderMap};

use super::error::WebError;
use super::{cookies, AppState};
use crate::admin::memberships::Admin;
use crate::error::Error;
use crate::login::{auth_session, sso, Answer, RpRequest, CONSOLE};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(home))
        .merge(members::router())
        .merge(add::router())
        .merge(unit::router())
        .merge(roles::router())
        .merge(grants::router())
        .merge(registry::router())
        .merge(audit_log::router())
        .merge(conversion::router())
}

/// The signed-in admin of a console request.
pub struct ConsoleSession {
    pub admin: Admin,
    pub display_name: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    pub request_id: String,
}

/// Not signed in: a sign-in through the hub, back to the page asked for.
pub struct SignIn(Response);

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        self.0
    }
}

/// The CSRF token of an SSO session: an HMAC under a key derived from the at-rest key, so it
/// cannot be guessed, changes with every sign-in, and needs no storage.
fn csrf_for(state: &AppState, sso_session_id: &str) -> Result<String, Error> {
    let vault = state.vault()?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &vault.derive(b"console-csrf"));
    Ok(hex::encode(
        &ring::hmac::sign(&key, sso_session_id.as_bytes()).as_ref()[..16],
    ))
}

/// Local path (and query) of the request, the only kind of place sign-in returns to.
fn return_to(parts: &Parts) -> String {
    let p = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/admin".into());
    if p.starts_with("/admin") && !p.starts_with("//") {
        p
    } else {
        "/admin".into()
    }
}

async fn start_sign_in(state: &AppState, return_to: String) -> Result<Response, WebError> {
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

impl FromRequestParts<AppState> for ConsoleSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
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
                    let admin = Admin::of_account(c, &session.account_id)?;
                    Ok(Some((session, account, admin)))
                })
                .await
                .map_err(|e| WebError::page(e).into_response())?,
            None => None,
        };
        let Some((session, account, admin)) = found else {
            return Err(start_sign_in(state, return_to(parts)).await.into_response());
        };
        if account.status != "active" || admin.grants.is_empty() {
            return Err(WebError::page_with(
                Error::Forbidden("this account holds no admin rights".into()),
                "console.no_rights.title",
                "console.no_rights.message",
            )
            .into_response());
        }
        let csrf = csrf_for(state, &session.id).map_err(|e| WebError::page(e).into_response())?;
        Ok(ConsoleSession {
            admin,
            display_name: account.display_name,
            csrf,
            request_id: super::request_id_of(&parts.headers),
        })
    }
}

impl ConsoleSession {
    /// A form POST is accepted only with this session's CSRF token and, when the browser
    /// says where it comes from, from the hub's own origin.
    pub fn check_form(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        token: Option<&str>,
    ) -> Result<(), WebError> {
        // The hub's pages say `Referrer-Policy: no-referrer`, so a browser posting a form
        // from them sends `Origin: null`: only a named origin is compared. Browsers that
        // send Fetch metadata say whether the form came from the hub itself.
        let origin_ok = headers
            .get(header::ORIGIN)
            .map(|v| v.to_str().unwrap_or(""))
            .is_none_or(|o| o == "null" || o == state.config.base_url());
        let site_ok = headers
            .get("sec-fetch-site")
            .is_none_or(|v| v.as_bytes() == b"same-origin");
        let origin_ok = origin_ok && site_ok;
        let token_ok = token.is_some_and(|t| {
            t.len() == self.csrf.len() && openssl::memcmp::eq(t.as_bytes(), self.csrf.as_bytes())
        });
        if origin_ok && token_ok {
            Ok(())
        } else {
            Err(WebError::page_with(
                Error::Forbidden("the form is stale or comes from another site".into()),
                "console.stale_form.title",
                "console.stale_form.message",
            ))
        }
    }
}

/// The console's front page: the relying parties this admin administers.
async fn home(session: ConsoleSession) -> Response {
    let first = session.admin.grants.iter().find_map(|g| g.rp_id.clone());
    match first {
        Some(rp) => Redirect::to(&format!("/admin/rp/{rp}/members")).into_response(),
        None => Redirect::to("/admin/registry").into_response(),
    }
}

/// The relying parties an admin may pick in the console.
pub(crate) fn rps_of(
    c: &mut crate::store::Db,
    admin: &Admin,
) -> crate::error::Result<Vec<(String, String)>> {
    Ok(crate::rp::list(c)?
        .into_iter()
        .filter(|rp| {
            admin.is_operator()
                || admin
                    .grants
                    .iter()
                    .any(|g| g.rp_id.as_deref() == Some(&rp.id))
        })
        .map(|rp| (rp.id, rp.display_name))
        .collect())
}
