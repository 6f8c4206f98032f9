//! An example provincial gateway: an OpenID Connect relying party of fedhub, built with the
//! `openidconnect` crate. It signs people in with the authorization code flow (PKCE S256,
//! state and nonce checked, ID token signature verified with the hub's published keys,
//! `client_secret_basic`), shows the ID token claims and the userinfo answer, refreshes its
//! tokens (storing the rotated refresh token) and signs out at the hub (RP-initiated logout).
//!
//! Everything is kept in memory: it is an example, one process, no database.

mod hub;
mod pages;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use hub::{Hub, Problem};
use pages::Lang;
use session::{Pending, SignedIn};

pub use hub::DEFAULT_SCOPES;

/// How the gateway is set up.
#[derive(Clone)]
pub struct Config {
    /// Where to listen, e.g. `127.0.0.1:8082`.
    pub listen: SocketAddr,
    /// The URL people use to reach the gateway (no trailing slash), e.g.
    /// `http://127.0.0.1:8082`. The redirect URI is `{public_url}/callback`.
    pub public_url: String,
    /// The hub's issuer (its `server.public_url`), e.g. `http://127.0.0.1:8080`.
    pub issuer: String,
    /// The client id the hub registered.
    pub client_id: String,
    /// The client secret the hub printed once at registration.
    pub client_secret: String,
    /// The scopes asked for (`openid` is always asked for).
    pub scopes: Vec<String>,
    /// Show the raw access and refresh tokens on the page (for developers; off by default).
    pub show_tokens: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("show_tokens", &self.show_tokens)
            .finish()
    }
}

impl Config {
    /// `{public_url}/callback`: the redirect URI to register at the hub.
    pub fn redirect_uri(&self) -> String {
        format!("{}/callback", self.public_url.trim_end_matches('/'))
    }
    /// `{public_url}/signed-out`: the post-logout redirect URI to register at the hub.
    pub fn post_logout_redirect_uri(&self) -> String {
        format!("{}/signed-out", self.public_url.trim_end_matches('/'))
    }
    /// `{public_url}/backchannel-logout`: the back-channel logout URI to register at the hub.
    pub fn backchannel_logout_uri(&self) -> String {
        format!(
            "{}/backchannel-logout",
            self.public_url.trim_end_matches('/')
        )
    }
    fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

#[derive(Clone)]
struct App {
    config: Arc<Config>,
    hub: Arc<Hub>,
    sessions: Arc<session::Sessions>,
}

/// The gateway's routes. The hub is discovered on first use (and again when its keys change),
/// so the gateway starts even while the hub is down.
pub async fn app(config: Config) -> anyhow::Result<Router> {
    let public_url = url::Url::parse(&config.public_url).context("--public-url is not a URL")?;
    url::Url::parse(&config.issuer).context("--issuer is not a URL")?;
    let hub = Hub::new(&config)?;
    let app = App {
        config: Arc::new(config),
        hub: Arc::new(hub),
        sessions: Arc::new(session::Sessions::new(&public_url)),
    };
    Ok(Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/refresh", post(refresh))
        .route("/logout", post(logout))
        .route("/signed-out", get(signed_out))
        .route("/backchannel-logout", post(backchannel_logout))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(not_found)
        .with_state(app))
}

/// Serves the gateway on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let router = app(config).await?;
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the gateway")
}

/// A page to show for something that went wrong: never a stack trace.
pub(crate) struct PageError {
    status: StatusCode,
    lang: Lang,
    problem: Problem,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        tracing::warn!(status = %self.status, problem = ?self.problem, "error page");
        html(self.status, pages::error(self.lang, &self.problem), None)
    }
}

fn html(status: StatusCode, body: String, cookie: Option<HeaderValue>) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if let Some(c) = cookie {
        h.append(header::SET_COOKIE, c);
    }
    res
}

fn see_other(to: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    for c in cookies {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

#[derive(Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

/// The reader's language: `?lang=` (remembered in a cookie), the cookie, else Vietnamese.
fn lang_of(headers: &HeaderMap, asked: Option<&str>) -> (Lang, Option<HeaderValue>) {
    if let Some(l) = asked.and_then(Lang::parse) {
        let cookie = HeaderValue::from_str(&format!(
            "gw_lang={}; Path=/; Max-Age=31536000; SameSite=Lax",
            l.code()
        ))
        .ok();
        return (l, cookie);
    }
    let l = session::cookie(headers, "gw_lang")
        .and_then(|v| Lang::parse(&v))
        .unwrap_or(Lang::Vi);
    (l, None)
}

async fn home(State(app): State<App>, headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    let (lang, lang_cookie) = lang_of(&headers, q.lang.as_deref());
    let view = app
        .sessions
        .id_of(&headers)
        .and_then(|id| app.sessions.view(&id));
    let body = match view {
        Some(v) if v.signed_in.is_some() => pages::account(lang, &v, app.config.show_tokens),
        other => pages::home(lang, other.and_then(|v| v.flash).as_deref()),
    };
    html(StatusCode::OK, body, lang_cookie)
}

#[derive(Deserialize)]
struct LoginQuery {
    prompt: Option<String>,
}

/// "Đăng nhập": a new login (state, nonce, PKCE verifier kept in the session), then to the hub.
async fn login(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let (lang, _) = lang_of(&headers, None);
    let fail = |problem| PageError {
        status: StatusCode::BAD_GATEWAY,
        lang,
        problem,
    };
    let prompt = match q.prompt.as_deref() {
        None | Some("") => None,
        Some(p @ ("none" | "login")) => Some(p),
        Some(_) => {
            return Err(PageError {
                status: StatusCode::BAD_REQUEST,
                lang,
                problem: Problem::BadPrompt,
            })
        }
    };
    let start = app.hub.begin(lang, prompt).await.map_err(fail)?;
    let (id, cookie) = app
        .sessions
        .ensure(app.sessions.id_of(&headers), app.config.secure_cookies());
    app.sessions.set_pending(
        &id,
        Pending {
            state: start.state,
            nonce: start.nonce,
            verifier: start.verifier,
        },
    );
    Ok(see_other(start.url.as_str(), cookie.into_iter().collect()))
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

/// The hub's answer: checked (state, issuer), the code exchanged, the ID token verified.
async fn callback(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, PageError> {
    let (lang, _) = lang_of(&headers, None);
    let refuse = |status, problem| PageError {
        status,
        lang,
        problem,
    };
    let id = app.sessions.id_of(&headers);
    let pending = id.as_deref().and_then(|id| app.sessions.take_pending(id));
    let (Some(id), Some(pending)) = (id, pending) else {
        return Err(refuse(StatusCode::BAD_REQUEST, Problem::NoLoginInProgress));
    };
    if q.state.as_deref() != Some(pending.state.secret().as_str()) {
        return Err(refuse(StatusCode::BAD_REQUEST, Problem::BadState));
    }
    if let Some(iss) = q.iss.as_deref() {
        if iss != app.hub.issuer() {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                Problem::WrongIssuer(iss.to_string()),
            ));
        }
    }
    if let Some(error) = q.error {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            Problem::Refused {
                error,
                description: q.error_description,
            },
        ));
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return Err(refuse(StatusCode::BAD_REQUEST, Problem::NoCode));
    };
    let signed_in = app
        .hub
        .finish(code, pending)
        .await
        .map_err(|p| refuse(StatusCode::BAD_GATEWAY, p))?;
    app.sessions.sign_in(&id, signed_in);
    Ok(see_other("/", vec![]))
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// "Làm mới": the refresh token for new tokens; the hub rotates it, so the new one is kept.
async fn refresh(
    State(app): State<App>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (lang, _) = lang_of(&headers, None);
    // A form without its token is refused like one with a wrong token.
    let form = form.map(|Form(f)| f).unwrap_or(CsrfForm {
        csrf: String::new(),
    });
    let refuse = |status, problem| PageError {
        status,
        lang,
        problem,
    };
    let id = app
        .sessions
        .id_of(&headers)
        .filter(|id| app.sessions.csrf_ok(id, &form.csrf))
        .ok_or_else(|| refuse(StatusCode::FORBIDDEN, Problem::NotSignedIn))?;
    let current: SignedIn = app
        .sessions
        .signed_in(&id)
        .ok_or_else(|| refuse(StatusCode::FORBIDDEN, Problem::NotSignedIn))?;
    match app.hub.refresh(&current).await {
        Ok(next) => {
            app.sessions.sign_in(&id, next);
            app.sessions.flash(&id, pages::FLASH_REFRESHED);
            Ok(see_other("/", vec![]))
        }
        Err(p) => Err(refuse(StatusCode::BAD_GATEWAY, p)),
    }
}

/// "Đăng xuất": the local session ends, then the hub signs the person out (RP-initiated
/// logout with `id_token_hint`) and sends the browser to `/signed-out`.
async fn logout(
    State(app): State<App>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (lang, _) = lang_of(&headers, None);
    // A form without its token is refused like one with a wrong token.
    let form = form.map(|Form(f)| f).unwrap_or(CsrfForm {
        csrf: String::new(),
    });
    let id = app
        .sessions
        .id_of(&headers)
        .filter(|id| app.sessions.csrf_ok(id, &form.csrf))
        .ok_or(PageError {
            status: StatusCode::FORBIDDEN,
            lang,
            problem: Problem::NotSignedIn,
        })?;
    let Some(signed_in) = app.sessions.sign_out(&id) else {
        return Ok(see_other("/signed-out", vec![]));
    };
    match app.hub.logout_url(lang, &signed_in).await {
        Ok((url, state)) => {
            app.sessions.expect_logout(&id, state);
            Ok(see_other(url.as_str(), vec![]))
        }
        Err(p) => Err(PageError {
            status: StatusCode::BAD_GATEWAY,
            lang,
            problem: p,
        }),
    }
}

#[derive(Deserialize)]
struct SignedOutQuery {
    state: Option<String>,
    lang: Option<String>,
}

/// Where the hub sends the browser after signing out.
async fn signed_out(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<SignedOutQuery>,
) -> Response {
    let (lang, cookie) = lang_of(&headers, q.lang.as_deref());
    let at_hub = match (app.sessions.id_of(&headers), q.state.as_deref()) {
        (Some(id), Some(state)) => app.sessions.logout_done(&id, state),
        _ => false,
    };
    html(StatusCode::OK, pages::signed_out(lang, at_hub), cookie)
}

#[derive(Deserialize)]
struct LogoutTokenForm {
    logout_token: String,
}

/// The hub's back-channel logout: a signed logout token ends the local sign-ins of that hub
/// session. Answers 200, or 400 with a JSON error (OpenID Connect Back-Channel Logout 1.0).
async fn backchannel_logout(
    State(app): State<App>,
    form: Result<Form<LogoutTokenForm>, FormRejection>,
) -> Response {
    let answer = |status: StatusCode, body: String| {
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res
    };
    let bad = |why: String| {
        tracing::warn!(%why, "back-channel logout refused");
        answer(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": "invalid_request", "error_description": why }).to_string(),
        )
    };
    let Ok(Form(form)) = form else {
        return bad("a logout_token form field is required".into());
    };
    match app.hub.verify_logout_token(&form.logout_token).await {
        Ok(of) => {
            match app
                .sessions
                .end_by_logout_token(&of.sub, of.sid.as_deref(), of.jti.as_deref())
            {
                Some(n) => {
                    tracing::info!(sessions = n, "signed out by the hub (back-channel)");
                    answer(StatusCode::OK, "{}".into())
                }
                None => bad("this logout token was used already".into()),
            }
        }
        Err(why) => bad(why),
    }
}

async fn not_found(headers: HeaderMap) -> Response {
    let (lang, _) = lang_of(&headers, None);
    html(
        StatusCode::NOT_FOUND,
        pages::error(lang, &Problem::NotFound),
        None,
    )
}
