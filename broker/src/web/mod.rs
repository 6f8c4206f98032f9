//! The HTTP server: one axum `Router` per module, merged here, wrapped in the layers every
//! request passes (request id, tracing, metrics, timeouts, body limit, panic catcher,
//! security headers, error pages, the in-flight bound and the per-address limit of failing
//! requests).

pub mod admin_api;
pub mod api;
pub mod claim;
pub mod client;
pub mod console;
pub mod conversion_api;
pub mod cookies;
pub mod error;
pub mod health;
pub mod login;
pub mod metrics;
pub mod overload;
pub mod pages;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use minijinja::context;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Store;
use error::{finish_errors, panic_response, WebError};
use pages::{Lang, PageContext, Pages};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub pages: Pages,
    pub clock: SharedClock,
    pub metrics: metrics::Metrics,
    /// The in-flight bound and the per-address limit of failing requests.
    pub guards: Arc<overload::Guards>,
    /// Opens the sealed signing keys; `None` when no at-rest key is configured.
    pub vault: Option<Arc<fedhub_metadata::AtRestKey>>,
    /// This node's copies of relying parties and signing keys (see `cache`).
    pub cache: crate::cache::NodeCache,
    /// Opened OIDC signing keys (by kid, which never changes meaning).
    pub oidc_signers: crate::oidc::token::SignerCache,
    /// Upstream OpenID Providers' discovery documents and keys.
    pub providers: crate::upstream::ProviderCache,
    /// CRLs of the government CAs, fetched from trusted chains' distribution points.
    pub crls: crate::upstream::CrlCache,
    /// The client upstream calls use: no redirects (SSRF), bounded by `upstream_timeout`.
    pub http: reqwest::Client,
}

impl AppState {
    pub fn new(config: Config, store: Store, clock: SharedClock) -> Result<AppState> {
        let vault = config
            .at_rest_key()
            .map_err(|e| Error::invalid(e.key, e.problem))?
            .map(Arc::new);
        let metrics = metrics::Metrics::new(store.acquire_timeouts());
        let cache = crate::cache::NodeCache::new(config.database.cache_refresh);
        Ok(AppState {
            guards: Arc::new(overload::Guards::new(&config)),
            oidc_signers: crate::oidc::token::SignerCache::new(cache.clone()),
            cache,
            config: Arc::new(config),
            store,
            pages: Pages::load()?,
            clock,
            metrics,
            vault,
            providers: Default::default(),
            crls: Default::default(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(Error::internal)?,
        })
    }

    /// The at-rest key, or 503 when this node has none (it cannot sign).
    pub fn vault(&self) -> Result<Arc<fedhub_metadata::AtRestKey>> {
        self.vault.clone().ok_or_else(|| {
            Error::Unavailable("no at-rest key configured: this node cannot sign".into())
        })
    }
}

/// The request id `assign_request_id` put on the request.
pub fn request_id_of(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

/// Every request gets a fresh id (a client-supplied one is not trusted: it would let anyone
/// forge log correlation); it is echoed in the response and shown on error pages.
async fn assign_request_id(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(REQUEST_ID, v.clone());
        let mut res = next.run(req).await;
        res.headers_mut().insert(REQUEST_ID, v);
        return res;
    }
    next.run(req).await
}

/// `?lang=en` (or `vi`) on any page sets a cookie, so the language stays as people move on.
async fn remember_lang(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let picked = req.uri().query().and_then(Lang::from_query);
    let mut res = next.run(req).await;
    if let Some(lang) = picked {
        let secure = if state.config.cookies.secure {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{}={}; Path=/; Max-Age=31536000; SameSite=Lax{secure}",
            pages::LANG_COOKIE,
            lang.code()
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The application with `extra` routes inside the same layers (tests add failing routes).
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let config = state.config.clone();
    let https = config.server.public_url.starts_with("https://");
    let mut app = Router::new()
        .route("/", get(index))
        .route("/static/fedhub.css", get(stylesheet))
        .merge(health::router())
        .merge(metrics::router())
        .merge(crate::saml::router())
        .merge(crate::oidc::router())
        .merge(login::router())
        .merge(console::router())
        .merge(claim::router(state.clone()))
        .nest("/admin/api/v1", api::router(state.clone()))
        .merge(extra)
        .fallback(not_found)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.server.request_timeout,
        ))
        .layer(RequestBodyLimitLayer::new(config.server.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            overload::shed,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            overload::limit_failures,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), finish_errors))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            overload::retry_after,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), remember_lang))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        // Inside the default below, so that the sign-in and sign-out pages get theirs first.
        .layer(middleware::from_fn(sign_in_and_out_csp))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    if https {
        app = app.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ));
    }
    app.layer(
        TraceLayer::new_for_http().make_span_with(|req: &Request| {
            tracing::info_span!("request", id = %request_id_of(req.headers()), method = %req.method(), path = %req.uri().path())
        }),
    )
    .layer(middleware::from_fn(assign_request_id))
    .with_state(state)
}

/// The pages' Content-Security-Policy: no scripts, styles and images from the hub only, forms
/// posted to the hub only, never framed.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// The same for the sign-in and sign-out pages, without `form-action`: their forms post to the
/// hub, whose answer is a redirect to another site (the national IdP, a portal's callback, a
/// portal's logout endpoint), and browsers apply `form-action` to every redirect after a form
/// is sent (Chromium refuses the redirect and the person is stuck on the page).
const CSP_REDIRECTING_FORMS: &str =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

/// Paths whose forms lead away from the hub.
fn forms_lead_away(path: &str) -> bool {
    path.starts_with("/login/")
        || path.starts_with("/connectors/")
        || matches!(
            path,
            "/saml/logout" | "/saml/slo" | "/oidc/logout" | "/oidc/authorize"
        )
}

async fn sign_in_and_out_csp(req: Request, next: Next) -> Response {
    let relaxed = forms_lead_away(req.uri().path());
    let mut res = next.run(req).await;
    if relaxed && !res.headers().contains_key(header::CONTENT_SECURITY_POLICY) {
        res.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP_REDIRECTING_FORMS),
        );
    }
    res
}

/// What a page needs to know about the request it answers.
pub(crate) fn page_context(headers: &HeaderMap, uri: &http::Uri) -> PageContext {
    PageContext {
        lang: Lang::negotiate(uri.query(), headers),
        request_id: request_id_of(headers),
        path: uri.path().to_string(),
        query: uri.query().map(String::from),
    }
}

/// A page context for a path whose query must not be echoed (it may hold tokens).
pub(crate) fn page_context_for(headers: &HeaderMap, path: &str) -> PageContext {
    PageContext {
        lang: Lang::negotiate(None, headers),
        request_id: request_id_of(headers),
        path: path.to_string(),
        query: None,
    }
}

async fn index(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: http::Uri,
) -> Result<Html<String>, WebError> {
    let page = page_context(&headers, &uri);
    let html = state.pages.render(
        "index.html",
        &page,
        context! { base_url => state.config.base_url(), version => env!("CARGO_PKG_VERSION") },
    )?;
    Ok(Html(html))
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        pages::STYLESHEET,
    )
        .into_response()
}

async fn not_found(uri: http::Uri) -> WebError {
    let e = Error::NotFound {
        what: "page",
        id: uri.path().to_string(),
    };
    if uri.path().starts_with("/admin/api/") {
        WebError::api(e)
    } else {
        WebError::page(e)
    }
}

/// Binds the listener, naming the address when it cannot.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::AddrInUse {
            "is already in use by another program".to_string()
        } else {
            e.to_string()
        };
        Error::invalid("server.listen", format!("cannot listen on {addr}: {why}"))
    })
}

/// Serves until `shutdown` resolves, then lets requests in flight finish for at most
/// `grace` (a stuck client must not hold a node's restart hostage).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: std::time::Duration,
) -> Result<()> {
    serve_app(listener, router(state), shutdown, grace).await
}

/// `serve` for an already built application (tests add routes with `router_with`).
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: std::time::Duration,
) -> Result<()> {
    let (draining, mut drain_started) = tokio::sync::watch::channel(false);
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = draining.send(true);
    });
    let server = std::future::IntoFuture::into_future(server);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.map_err(Error::internal),
        _ = drain_started.wait_for(|started| *started) => {}
    }
    match tokio::time::timeout(grace, server).await {
        Ok(result) => result.map_err(Error::internal),
        Err(_) => {
            tracing::warn!(grace = ?grace, "requests still in flight after the grace period; stopping");
            Ok(())
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests in flight");
}
