//! The HTTP edge of [`Error`]: one `IntoResponse`. Browser routes get a themed HTML page with
//! a reference id; the admin API gets `application/problem+json` (RFC 9457). Pages are
//! rendered by the `finish_errors` middleware, which knows the request's language and id.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use minijinja::context;
use serde_json::json;

use super::pages::{Lang, PageContext};
use super::{request_id_of, AppState};
use crate::error::Error;

/// Who reads the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Browser,
    Api,
}

/// An error on its way out of a handler.
#[derive(Debug)]
pub struct WebError {
    pub error: Error,
    pub audience: Audience,
    /// Catalogue keys (title, message) of a page more specific than the status's own.
    pub page: Option<(&'static str, &'static str)>,
    /// Catalogue key of the detail line, shown instead of the error's own (English) text when
    /// the error is a known one (e.g. "the certificate was revoked"). The log keeps the text.
    pub detail_key: Option<&'static str>,
}

impl WebError {
    pub fn page(error: Error) -> Self {
        WebError {
            error,
            audience: Audience::Browser,
            page: None,
            detail_key: None,
        }
    }
    /// A page with its own title and message (e.g. "not a member of this system").
    pub fn page_with(error: Error, title_key: &'static str, message_key: &'static str) -> Self {
        WebError {
            error,
            audience: Audience::Browser,
            page: Some((title_key, message_key)),
            detail_key: None,
        }
    }
    /// The detail line in the person's language: the catalogue key `key` instead of the
    /// error's text.
    pub fn with_detail_key(mut self, key: &'static str) -> Self {
        self.detail_key = Some(key);
        self
    }
    pub fn api(error: Error) -> Self {
        WebError {
            error,
            audience: Audience::Api,
            page: None,
            detail_key: None,
        }
    }
}

impl From<Error> for WebError {
    fn from(error: Error) -> Self {
        WebError::page(error)
    }
}

pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Marker left on a response for `finish_errors` to render as a page.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    /// Shown to the person (rule broken); never internal details.
    pub detail: Option<String>,
    pub keys: Option<(&'static str, &'static str)>,
}

/// Marker next to [`ErrorPage`]: the detail line is this catalogue key, in the page's language.
#[derive(Debug, Clone, Copy)]
pub struct ErrorDetailKey(pub &'static str);

/// What a person may see of an error: the rule they broke, never internals.
fn public_detail(e: &Error) -> Option<String> {
    match e {
        Error::Invalid { .. } | Error::Conflict { .. } | Error::NotFound { .. } => {
            Some(e.to_string())
        }
        _ => None,
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = status_of(&self.error);
        if status.is_server_error() {
            tracing::error!(error = %self.error, "request failed");
        } else {
            tracing::info!(error = %self.error, "request refused");
        }
        match self.audience {
            Audience::Api => problem(status, &self.error),
            Audience::Browser => {
                let mut res = status.into_response();
                res.extensions_mut().insert(ErrorPage {
                    detail: public_detail(&self.error),
                    keys: self.page,
                });
                if let Some(key) = self.detail_key {
                    res.extensions_mut().insert(ErrorDetailKey(key));
                }
                res
            }
        }
    }
}

/// `application/problem+json`; `finish_errors` adds the request id.
fn problem(status: StatusCode, e: &Error) -> Response {
    let mut body = json!({
        "type": format!("urn:fedhub:problem:{}", e.kind()),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
    });
    if let Some(detail) = public_detail(e) {
        body["detail"] = json!(detail);
    }
    if let Error::Invalid { field, rule } | Error::Conflict { field, rule } = e {
        body["field"] = json!(field);
        body["rule"] = json!(rule);
    }
    if let Error::Unauthorized(why) | Error::Forbidden(why) = e {
        body["detail"] = json!(why);
    }
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"fedhub-admin\""),
        );
    }
    res
}

fn keys_for(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 | 422 => ("error.bad_request.title", "error.bad_request.message"),
        401 => ("error.unauthorized.title", "error.unauthorized.message"),
        403 => ("error.forbidden.title", "error.forbidden.message"),
        404 => ("error.not_found.title", "error.not_found.message"),
        405 => (
            "error.method_not_allowed.title",
            "error.method_not_allowed.message",
        ),
        413 => (
            "error.payload_too_large.title",
            "error.payload_too_large.message",
        ),
        429 => (
            "error.too_many_requests.title",
            "error.too_many_requests.message",
        ),
        408 | 503 | 504 => ("error.unavailable.title", "error.unavailable.message"),
        _ if status.is_client_error() => ("error.bad_request.title", "error.bad_request.message"),
        _ => ("error.internal.title", "error.internal.message"),
    }
}

fn is_api_path(path: &str) -> bool {
    path.starts_with("/admin/api/")
}

/// Turns every error response into what its audience reads: the themed page (with the
/// request's language and reference id) for people, problem+json for the admin API. Also
/// covers errors that did not come from our handlers (unknown route, wrong method, body too
/// large, timeouts, panics).
pub async fn finish_errors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let page = PageContext {
        lang: Lang::negotiate(req.uri().query(), req.headers()),
        request_id: request_id_of(req.headers()),
        path: req.uri().path().to_string(),
        query: req.uri().query().map(String::from),
    };
    let api = is_api_path(&page.path);
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let marker = res.extensions().get::<ErrorPage>().cloned();
    let already_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if api {
        if already_problem {
            return add_request_id_to_problem(res, &page.request_id).await;
        }
        let generic = Error::Invalid {
            field: "request".into(),
            rule: status.canonical_reason().unwrap_or("error").into(),
        };
        let e = if status.is_server_error() {
            Error::Internal(String::new())
        } else {
            generic
        };
        let mut out = problem(status, &e);
        *out.status_mut() = status;
        copy_header(&res, &mut out, header::RETRY_AFTER);
        return add_request_id_to_problem(out, &page.request_id).await;
    }
    // Already machine-readable (problem+json, or JSON such as /readyz): leave it alone.
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if already_problem || is_json {
        return res;
    }
    let (title_key, message_key) = marker
        .as_ref()
        .and_then(|m| m.keys)
        .unwrap_or_else(|| keys_for(status));
    let detail_key = res.extensions().get::<ErrorDetailKey>().map(|k| k.0);
    let detail = marker.and_then(|m| m.detail);
    let html = state.pages.render(
        "error.html",
        &page,
        context! { status => status.as_u16(), title_key, message_key, detail, detail_key },
    );
    match html {
        Ok(html) => {
            let mut out = (status, html).into_response();
            out.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            copy_header(&res, &mut out, header::ALLOW);
            copy_header(&res, &mut out, header::RETRY_AFTER);
            out
        }
        Err(e) => {
            tracing::error!(error = %e, "error page failed to render");
            (status, format!("{status} (reference {})", page.request_id)).into_response()
        }
    }
}

fn copy_header(from: &Response, to: &mut Response, name: header::HeaderName) {
    if let Some(v) = from.headers().get(&name) {
        to.headers_mut().insert(name, v.clone());
    }
}

async fn add_request_id_to_problem(res: Response, request_id: &str) -> Response {
    let (mut parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => b,
        Err(_) => return (parts.status, "error").into_response(),
    };
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({}));
    value["request_id"] = json!(request_id);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(value.to_string()))
}

/// Panics become a 500 page with a reference id; the panic message goes to the log only.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = msg, "handler panicked");
    let mut res = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    res.extensions_mut().insert(ErrorPage {
        detail: None,
        keys: None,
    });
    res
}
