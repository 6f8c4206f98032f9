//! The portal's routes and its in-memory state (sessions, requests awaiting an answer,
//! assertions already used).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use axum::extract::{Form, Query, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use parking_lot::Mutex;
use samael::crypto::{CryptoProvider, ReduceMode, XmlSec};
use samael::schema::{Assertion, LogoutRequest, LogoutResponse};
use samael::service_provider::ServiceProvider;
use serde::Deserialize;

use crate::hub::{HubCache, HubMetadata};
use crate::keys::SpKey;
use crate::pages::{error_page, page, respond, Lang, Problem, T};
use crate::saml::{
    self, escape, guard_xml, guarded, short_status, status_codes, status_message, NameId,
    STATUS_SUCCESS,
};
use crate::Config;

const COOKIE: &str = "mp_session";
/// How long an AuthnRequest or LogoutRequest waits for its answer.
const REQUEST_TTL: Duration = Duration::from_secs(600);
/// How long a portal session lasts.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// Someone signed in at the portal.
#[derive(Debug, Clone)]
struct Session {
    name_id: NameId,
    session_index: Option<String>,
    authn_instant: Option<String>,
    authn_context: Option<String>,
    /// `(SAML Name, FriendlyName, values)` in the order received.
    attributes: Vec<(String, Option<String>, Vec<String>)>,
    created: Instant,
}

impl Session {
    fn values(&self, name: &str) -> Vec<String> {
        self.attributes
            .iter()
            .filter(|(n, _, _)| n == name)
            .flat_map(|(_, _, v)| v.iter().cloned())
            .collect()
    }
    fn first(&self, name: &str) -> Option<String> {
        self.values(name).into_iter().next()
    }
}

struct Inner {
    entity_id: String,
    acs_url: String,
    slo_url: String,
    secure_cookie: bool,
    key: SpKey,
    hub: HubCache,
    sessions: Mutex<HashMap<String, Session>>,
    /// AuthnRequest IDs we sent, answered at most once.
    pending: Mutex<HashMap<String, Instant>>,
    /// Assertion IDs already accepted (single use), until they expire.
    used_assertions: Mutex<HashMap<String, Instant>>,
    /// LogoutRequest IDs we sent.
    pending_logouts: Mutex<HashMap<String, Instant>>,
}

#[derive(Clone)]
struct AppState(Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The router over an already loaded key (tests may bring their own).
pub fn app_with_key(config: Config, key: SpKey) -> Result<Router> {
    config.validate()?;
    let state = AppState(Arc::new(Inner {
        entity_id: config.entity_id(),
        acs_url: config.acs_url(),
        slo_url: config.slo_url(),
        secure_cookie: config.base_url().starts_with("https://"),
        key,
        hub: HubCache::new(config.hub_metadata_url())?,
        sessions: Mutex::new(HashMap::new()),
        pending: Mutex::new(HashMap::new()),
        used_assertions: Mutex::new(HashMap::new()),
        pending_logouts: Mutex::new(HashMap::new()),
    }));
    Ok(Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/logout", post(logout))
        .route("/saml/acs", post(acs))
        .route("/saml/slo", get(slo))
        .route("/saml/metadata", get(metadata))
        .fallback(not_found)
        .with_state(state))
}

/// Keeps only entries younger than `ttl`.
fn prune(map: &mut HashMap<String, Instant>, ttl: Duration) {
    map.retain(|_, t| t.elapsed() < ttl);
}

#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    lang: Option<String>,
    msg: Option<String>,
    passive: Option<String>,
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == COOKIE && !v.is_empty()).then(|| v.to_string())
        })
}

impl Inner {
    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie_value(headers)?;
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, s| s.created.elapsed() < SESSION_TTL);
        sessions.get(&id).cloned().map(|s| (id, s))
    }

    fn set_cookie(&self, value: &str, clear: bool) -> HeaderValue {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        let age = if clear { "; Max-Age=0" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax{secure}{age}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("mp_session=; Path=/; Max-Age=0"))
    }

    fn service_provider(&self, hub: &HubMetadata) -> ServiceProvider {
        ServiceProvider {
            entity_id: Some(self.entity_id.clone()),
            key: Some(self.key.key.clone()),
            certificate: Some(self.key.cert_der.clone().into()),
            acs_url: Some(self.acs_url.clone()),
            slo_url: Some(self.slo_url.clone()),
            idp_metadata: hub.descriptor.clone(),
            allowed_signature_algorithms: Some(saml::ALLOWED.to_vec()),
            ..ServiceProvider::default()
        }
    }
}

/// A local path to come back to: `/…` only (never `//host` or a full URL), at most 80 bytes.
fn local_path(relay: Option<&str>) -> String {
    match relay {
        Some(r)
            if r.starts_with('/')
                && !r.starts_with("//")
                && !r.contains('\\')
                && r.len() <= 80
                && !r.chars().any(char::is_control) =>
        {
            r.to_string()
        }
        _ => "/".to_string(),
    }
}

fn lang_of_path(path: &str) -> Lang {
    if path.contains("lang=en") {
        Lang::En
    } else {
        Lang::Vi
    }
}

fn with_msg(path: &str, msg: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}msg={msg}")
}

fn hub_unreachable(e: &anyhow::Error) -> Problem {
    Problem {
        status: StatusCode::BAD_GATEWAY,
        title: T(
            "Không kết nối được cổng xác thực",
            "The sign-in hub cannot be reached",
        ),
        message: T(
            "Cổng thông tin không tải được thông tin (metadata) của cổng xác thực. Vui lòng thử lại sau.",
            "The portal could not load the hub's metadata. Please try again later.",
        ),
        details: vec![(T("Chi tiết", "Details"), format!("{e:#}"))],
    }
}

fn invalid_response(reason: String) -> Problem {
    Problem {
        status: StatusCode::BAD_REQUEST,
        title: T("Phản hồi đăng nhập không hợp lệ", "Invalid sign-in response"),
        message: T(
            "Cổng thông tin đã từ chối phản hồi này vì không kiểm tra được tính hợp lệ của nó. Bạn chưa được đăng nhập. Hãy đăng nhập lại.",
            "The portal refused this response because it could not be validated. You are not signed in. Please sign in again.",
        ),
        details: vec![(T("Lý do", "Reason"), reason)],
    }
}

async fn not_found(Query(q): Query<PageQuery>) -> Response {
    let lang = Lang::from_query(q.lang.as_deref());
    error_page(
        lang,
        &Problem {
            status: StatusCode::NOT_FOUND,
            title: T("Không tìm thấy trang", "Page not found"),
            message: T(
                "Địa chỉ này không có trên cổng thông tin.",
                "There is no such page on this portal.",
            ),
            details: vec![],
        },
    )
}

async fn metadata(State(state): State<AppState>) -> Response {
    let key = state.key.clone();
    let (entity, acs, slo) = (
        state.entity_id.clone(),
        state.acs_url.clone(),
        state.slo_url.clone(),
    );
    let signed = tokio::task::spawn_blocking(move || {
        saml::sp_metadata(&entity, &acs, &slo, &key, time::OffsetDateTime::now_utc())
    })
    .await
    .map_err(|e| anyhow!("{e}"))
    .and_then(|r| r);
    match signed {
        Ok(xml) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/samlmetadata+xml"),
            )],
            xml,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("building the metadata: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the metadata cannot be built; see the portal's log",
            )
                .into_response()
        }
    }
}

// ---------------------------------------------------------------------------------------
// Home

const ATTRIBUTE_LABELS: &[(&str, T)] = &[
    (
        "urn:oid:2.16.840.1.113730.3.1.241",
        T("Họ và tên", "Full name"),
    ),
    (
        "urn:fedhub:attribute:national_id",
        T("Số định danh cá nhân (CCCD/CMND)", "National ID number"),
    ),
    ("urn:fedhub:attribute:tax_code", T("Mã số thuế", "Tax code")),
    (
        "urn:fedhub:attribute:account_type",
        T("Loại tài khoản", "Account type"),
    ),
    (
        "urn:fedhub:attribute:agency_code",
        T("Mã cơ quan, đơn vị", "Agency / unit code"),
    ),
    (
        "urn:fedhub:attribute:agency_name",
        T("Tên cơ quan, đơn vị", "Agency / unit name"),
    ),
    ("urn:fedhub:attribute:roles", T("Vai trò", "Roles")),
    (
        "urn:fedhub:attribute:admin_level",
        T("Cấp quản trị", "Admin level"),
    ),
    ("urn:oid:2.5.4.20", T("Số điện thoại", "Phone")),
    (
        "urn:oid:0.9.2342.19200300.100.1.3",
        T("Thư điện tử", "Email"),
    ),
];

const NAME: &str = "urn:oid:2.16.840.1.113730.3.1.241";
const AGENCY_CODE: &str = "urn:fedhub:attribute:agency_code";
const AGENCY_NAME: &str = "urn:fedhub:attribute:agency_name";

/// A value as people read it (account types and admin levels explained).
fn readable(name: &str, value: &str, lang: Lang) -> String {
    let known = match (name, value) {
        ("urn:fedhub:attribute:account_type", "citizen") => Some(T("Công dân", "Citizen")),
        ("urn:fedhub:attribute:account_type", "organisation") => {
            Some(T("Tổ chức, doanh nghiệp", "Organisation"))
        }
        ("urn:fedhub:attribute:account_type", "agency") => {
            Some(T("Cơ quan nhà nước", "State agency"))
        }
        ("urn:fedhub:attribute:admin_level", "operator") => {
            Some(T("Quản trị vận hành liên thông", "Federation operator"))
        }
        ("urn:fedhub:attribute:admin_level", "top") => {
            Some(T("Quản trị cấp cao nhất", "Top admin"))
        }
        ("urn:fedhub:attribute:admin_level", "level1") => {
            Some(T("Quản trị cấp 1", "Level 1 admin"))
        }
        ("urn:fedhub:attribute:admin_level", "level2") => {
            Some(T("Quản trị cấp 2", "Level 2 admin"))
        }
        ("urn:fedhub:attribute:admin_level", "level3") => {
            Some(T("Quản trị cấp 3", "Level 3 admin"))
        }
        _ => None,
    };
    match known {
        Some(t) => format!(
            "{} <code>({})</code>",
            escape(t.primary(lang)),
            escape(value)
        ),
        None => format!("<code>{}</code>", escape(value)),
    }
}

fn values_html(name: &str, values: &[String], lang: Lang) -> String {
    match values {
        [] => format!(
            r#"<span class="muted">{}</span>"#,
            escape(T("— (không được cung cấp)", "— (not released)").primary(lang))
        ),
        [one] => readable(name, one, lang),
        many => {
            let items: String = many
                .iter()
                .map(|v| format!("<li>{}</li>", readable(name, v, lang)))
                .collect();
            format!(r#"<ul class="values">{items}</ul>"#)
        }
    }
}

fn row(label: T, lang: Lang, saml_name: Option<&str>, value_html: &str) -> String {
    let name = saml_name
        .map(|n| format!(r#"<br><code class="muted">{}</code>"#, escape(n)))
        .unwrap_or_default();
    format!(
        r#"<tr><th scope="row">{}{name}</th><td>{value_html}</td></tr>"#,
        label.html(lang)
    )
}

fn signed_in_page(s: &Session, lang: Lang, msg: Option<&str>) -> String {
    let name = s.first(NAME).unwrap_or_else(|| s.name_id.value.clone());
    let unit = match (s.first(AGENCY_CODE), s.first(AGENCY_NAME)) {
        (Some(code), Some(n)) => format!("{} — {}", escape(&code), escape(&n)),
        (Some(code), None) => escape(&code),
        (None, Some(n)) => escape(&n),
        (None, None) => escape(T("(không có)", "(none)").primary(lang)),
    };
    let roles = s.values("urn:fedhub:attribute:roles");
    let roles = if roles.is_empty() {
        escape(T("(không có)", "(none)").primary(lang))
    } else {
        roles
            .iter()
            .map(|r| escape(r))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rows = String::new();
    rows.push_str(&row(
        T("Định danh người dùng (NameID)", "User identifier (NameID)"),
        lang,
        s.name_id.format.as_deref(),
        &format!("<code>{}</code>", escape(&s.name_id.value)),
    ));
    for (saml_name, label) in ATTRIBUTE_LABELS {
        let values = s.values(saml_name);
        if values.is_empty() && *saml_name == "urn:fedhub:attribute:tax_code" {
            continue; // the hub does not release tax codes today
        }
        rows.push_str(&row(
            *label,
            lang,
            Some(saml_name),
            &values_html(saml_name, &values, lang),
        ));
    }
    for (saml_name, friendly, values) in &s.attributes {
        if ATTRIBUTE_LABELS.iter().any(|(n, _)| n == saml_name) {
            continue;
        }
        let label = friendly.clone().unwrap_or_else(|| saml_name.clone());
        rows.push_str(&format!(
            r#"<tr><th scope="row">{}<br><code class="muted">{}</code></th><td>{}</td></tr>"#,
            escape(&label),
            escape(saml_name),
            values_html(saml_name, values, lang)
        ));
    }
    for (label, value) in [
        (T("Thời điểm đăng nhập", "Signed in at"), &s.authn_instant),
        (
            T("Phiên tại cổng xác thực", "Hub session index"),
            &s.session_index,
        ),
        (
            T("Phương thức xác thực", "Authentication context"),
            &s.authn_context,
        ),
    ] {
        if let Some(v) = value {
            rows.push_str(&row(
                label,
                lang,
                None,
                &format!("<code>{}</code>", escape(v)),
            ));
        }
    }
    let notice = match msg {
        Some("signed_in") => format!(
            r#"<p class="muted" role="status">{}</p>"#,
            T("Đăng nhập thành công.", "Signed in.").inline(lang)
        ),
        _ => String::new(),
    };
    format!(
        r#"<section class="card ok" aria-labelledby="hello">
<h1 id="hello">{hello} {name}</h1>
{notice}
<p><strong>{unit_label}:</strong> {unit}<br><strong>{roles_label}:</strong> {roles}</p>
<form method="post" action="/logout{suffix}">
<button class="btn" type="submit">{logout}</button>
</form>
</section>
<section class="card" aria-labelledby="attrs">
<h2 id="attrs">{attrs}</h2>
<table>
<caption>{caption}</caption>
<tbody>
{rows}
</tbody>
</table>
</section>"#,
        hello = escape(T("Xin chào,", "Hello,").primary(lang)),
        name = escape(&name),
        notice = notice,
        unit_label = T("Đơn vị", "Unit").inline(lang),
        unit = unit,
        roles_label = T("Vai trò", "Roles").inline(lang),
        roles = roles,
        suffix = lang.suffix(),
        logout = T("Đăng xuất", "Sign out").inline(lang),
        attrs = T(
            "Thông tin do cổng xác thực cung cấp",
            "What the sign-in hub told this portal"
        )
        .html(lang),
        caption = T(
            "Thuộc tính trong assertion SAML đã được kiểm tra chữ ký",
            "Attributes of the verified SAML assertion"
        )
        .inline(lang),
        rows = rows,
    )
}

fn signed_out_page(lang: Lang, msg: Option<&str>) -> String {
    let notice = match msg {
        Some("signed_out") => format!(
            r#"<p class="card ok" role="status">{}</p>"#,
            T(
                "Bạn đã đăng xuất khỏi cổng thông tin và cổng xác thực.",
                "You are signed out of this portal and of the sign-in hub."
            )
            .html(lang)
        ),
        Some("partial") => format!(
            r#"<p class="card error" role="status">{}</p>"#,
            T(
                "Bạn đã đăng xuất khỏi cổng thông tin, nhưng một số hệ thống khác chưa xác nhận việc đăng xuất. Hãy đóng trình duyệt để chắc chắn.",
                "You are signed out of this portal, but some other services did not confirm the sign-out. Close your browser to be sure."
            )
            .html(lang)
        ),
        _ => String::new(),
    };
    format!(
        r#"{notice}<section class="card" aria-labelledby="welcome">
<h1 id="welcome">{welcome}</h1>
<p>{intro}</p>
<form method="get" action="/login">
{lang_field}<button class="btn" type="submit">{login}</button>
</form>
</section>"#,
        notice = notice,
        welcome = PORTAL_WELCOME.html(lang),
        intro = T(
            "Đăng nhập bằng tài khoản định danh điện tử qua cổng xác thực tập trung (fedhub). Cổng thông tin này không lưu mật khẩu.",
            "Sign in with your electronic identity through the central sign-in hub (fedhub). This portal keeps no passwords."
        )
        .html(lang),
        lang_field = match lang {
            Lang::En => r#"<input type="hidden" name="lang" value="en">"#,
            Lang::Vi => "",
        },
        login = T("Đăng nhập", "Sign in").inline(lang),
    )
}

const PORTAL_WELCOME: T = T(
    "Chào mừng đến cổng thông tin của Bộ",
    "Welcome to the ministry portal",
);

async fn home(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::from_query(q.lang.as_deref());
    match state.session(&headers) {
        Some((_, s)) => respond(
            StatusCode::OK,
            page(
                lang,
                T("Thông tin tài khoản", "Your account"),
                &signed_in_page(&s, lang, q.msg.as_deref()),
            ),
        ),
        None => respond(
            StatusCode::OK,
            page(
                lang,
                T("Trang chủ", "Home"),
                &signed_out_page(lang, q.msg.as_deref()),
            ),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Sign-in

async fn login(State(state): State<AppState>, Query(q): Query<PageQuery>) -> Response {
    let lang = Lang::from_query(q.lang.as_deref());
    let hub = match state.hub.get().await {
        Ok(h) => h,
        Err(e) => return error_page(lang, &hub_unreachable(&e)),
    };
    let passive = matches!(q.passive.as_deref(), Some("1" | "true"));
    let relay = format!("/{}", lang.suffix());
    match authn_redirect(&state, &hub, passive, &relay) {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => {
            tracing::error!("building the AuthnRequest: {e:#}");
            error_page(
                lang,
                &Problem {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    title: T(
                        "Không tạo được yêu cầu đăng nhập",
                        "Cannot start the sign-in",
                    ),
                    message: T(
                        "Cổng thông tin không tạo được yêu cầu đăng nhập. Vui lòng thử lại sau.",
                        "The portal could not build the sign-in request. Please try again later.",
                    ),
                    details: vec![(T("Chi tiết", "Details"), format!("{e:#}"))],
                },
            )
        }
    }
}

/// A signed HTTP-Redirect AuthnRequest (samael builds and signs it); its ID is remembered.
fn authn_redirect(state: &Inner, hub: &HubMetadata, passive: bool, relay: &str) -> Result<String> {
    let sp = state.service_provider(hub);
    let mut req = sp
        .make_authentication_request(&hub.sso_redirect)
        .map_err(|e| anyhow!("{e}"))?;
    req.id = saml::new_id();
    if passive {
        req.is_passive = Some(true);
    }
    let url = req
        .signed_redirect(relay, &state.key.key)
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| anyhow!("the AuthnRequest has no Destination"))?;
    let mut pending = state.pending.lock();
    prune(&mut pending, REQUEST_TTL);
    pending.insert(req.id.clone(), Instant::now());
    Ok(url.to_string())
}

#[derive(Debug, Deserialize)]
struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// What the ACS concluded.
enum Outcome {
    SignedIn(Session),
    /// The hub answered with a non-success status (signed, to a request of ours).
    Refused {
        codes: Vec<String>,
        message: Option<String>,
    },
}

async fn acs(State(state): State<AppState>, Form(f): Form<AcsForm>) -> Response {
    let back = local_path(f.relay_state.as_deref());
    let lang = lang_of_path(&back);
    let Some(encoded) = f.saml_response.filter(|s| !s.trim().is_empty()) else {
        return error_page(
            lang,
            &invalid_response("no SAMLResponse in the form".into()),
        );
    };
    let hub = match state.hub.get().await {
        Ok(h) => h,
        Err(e) => return error_page(lang, &hub_unreachable(&e)),
    };
    let st = state.clone();
    let checked = tokio::task::spawn_blocking(move || check_response(&st, &hub, &encoded))
        .await
        .map_err(|e| anyhow!("{e}"))
        .and_then(|r| r);
    match checked {
        Ok(Outcome::SignedIn(session)) => {
            let id = random_id();
            state.sessions.lock().insert(id.clone(), session);
            let mut res = Redirect::to(&with_msg(&back, "signed_in")).into_response();
            res.headers_mut()
                .append(header::SET_COOKIE, state.set_cookie(&id, false));
            res
        }
        Ok(Outcome::Refused { codes, message }) => {
            let mut details = Vec::new();
            if let Some(m) = message {
                details.push((T("Lý do từ cổng xác thực", "The hub's reason"), m));
            }
            let status = codes
                .iter()
                .map(|c| short_status(c).to_string())
                .collect::<Vec<_>>()
                .join(" / ");
            details.push((T("Mã trạng thái SAML", "SAML status"), status));
            let explain = explain_status(&codes);
            error_page(
                lang,
                &Problem {
                    status: StatusCode::FORBIDDEN,
                    title: T(
                        "Cổng xác thực từ chối đăng nhập",
                        "The sign-in hub refused the sign-in",
                    ),
                    message: explain,
                    details,
                },
            )
        }
        Err(e) => {
            tracing::warn!("refused a SAML Response: {e:#}");
            error_page(lang, &invalid_response(format!("{e:#}")))
        }
    }
}

fn explain_status(codes: &[String]) -> T {
    let has = |s: &str| codes.iter().any(|c| short_status(c) == s);
    if has("NoPassive") {
        T(
            "Bạn chưa đăng nhập tại cổng xác thực. Hãy bấm \"Đăng nhập\" để đăng nhập.",
            "You are not signed in at the hub. Press \"Sign in\" to sign in.",
        )
    } else if has("RequestDenied") {
        T(
            "Tài khoản của bạn chưa được phép sử dụng cổng thông tin này (chưa là thành viên, chưa được kích hoạt hoặc đã bị khóa). Hãy liên hệ quản trị viên của đơn vị.",
            "Your account may not use this portal (not a member, not activated or locked). Contact your unit's administrator.",
        )
    } else if has("AuthnFailed") {
        T(
            "Việc xác thực tại nhà cung cấp định danh không thành công. Hãy thử lại.",
            "Authentication at the identity provider did not succeed. Please try again.",
        )
    } else {
        T(
            "Cổng xác thực không đăng nhập bạn vào cổng thông tin này.",
            "The hub did not sign you in to this portal.",
        )
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; 32];
    if openssl::rand::rand_bytes(&mut bytes).is_err() {
        // The OpenSSL RNG does not fail on supported systems; fall back to two UUIDs.
        return format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Verifies the Response: signature by the hub's keys (samael + xmlsec), status, then
/// samael's checks (Destination, Issuer, InResponseTo among our requests, audience,
/// Recipient, time conditions), then single use.
fn check_response(state: &Inner, hub: &HubMetadata, encoded: &str) -> Result<Outcome> {
    if encoded.len() > saml::MAX_XML * 2 {
        return Err(anyhow!("the SAMLResponse is too large"));
    }
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = STANDARD
        .decode(compact)
        .map_err(|_| anyhow!("the SAMLResponse is not base64"))?;
    let xml = String::from_utf8(bytes).map_err(|_| anyhow!("the SAMLResponse is not UTF-8"))?;
    guard_xml(&xml)?;
    // Only what a hub key signed counts: the status is read from the verified content.
    let verified = guarded(|| {
        XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
            &xml,
            &hub.certs,
            ReduceMode::ValidateAndMarkNoAncestors,
            Some(saml::ALLOWED),
        )
        .map_err(|_| anyhow!("the signature does not verify with the hub's keys"))
    })?;
    let codes = status_codes(&verified);
    if codes.first().is_some_and(|c| c != STATUS_SUCCESS) {
        let response: samael::schema::Response = verified
            .parse()
            .map_err(|e| anyhow!("the Response cannot be read: {e}"))?;
        if response.destination.as_deref() != Some(state.acs_url.as_str()) {
            return Err(anyhow!("the Response is not addressed to this portal"));
        }
        if response.issuer.as_ref().and_then(|i| i.value.as_deref()) != Some(&hub.entity_id) {
            return Err(anyhow!("the Response is not from the hub"));
        }
        let irt = response
            .in_response_to
            .ok_or_else(|| anyhow!("the refusal answers no request of this portal"))?;
        if !take_pending(state, &irt) {
            return Err(anyhow!(
                "the refusal answers no pending request of this portal (InResponseTo {irt})"
            ));
        }
        return Ok(Outcome::Refused {
            codes,
            message: status_message(&verified),
        });
    }
    let ids: Vec<String> = {
        let mut pending = state.pending.lock();
        prune(&mut pending, REQUEST_TTL);
        pending.keys().cloned().collect()
    };
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let sp = state.service_provider(hub);
    let assertion = guarded(|| {
        sp.parse_xml_response(&xml, Some(&refs))
            .map_err(|e| anyhow!("{e}"))
    })?;
    let irt = answered_request(&assertion)
        .ok_or_else(|| anyhow!("the assertion answers no request of this portal"))?;
    if !take_pending(state, &irt) {
        return Err(anyhow!("this response was already used"));
    }
    {
        let mut used = state.used_assertions.lock();
        prune(&mut used, REQUEST_TTL);
        if used.insert(assertion.id.clone(), Instant::now()).is_some() {
            return Err(anyhow!("this assertion was already used"));
        }
    }
    Ok(Outcome::SignedIn(session_of(&assertion)?))
}

fn take_pending(state: &Inner, id: &str) -> bool {
    let mut pending = state.pending.lock();
    prune(&mut pending, REQUEST_TTL);
    pending.remove(id).is_some()
}

/// The InResponseTo of the bearer confirmation samael accepted.
fn answered_request(a: &Assertion) -> Option<String> {
    a.subject
        .as_ref()?
        .subject_confirmations
        .as_ref()?
        .iter()
        .filter_map(|c| c.subject_confirmation_data.as_ref())
        .find_map(|d| d.in_response_to.clone())
}

fn session_of(a: &Assertion) -> Result<Session> {
    let name_id = a
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .ok_or_else(|| anyhow!("the assertion names nobody (no NameID)"))?;
    let statement = a.authn_statements.as_ref().and_then(|s| s.first());
    let attributes = a
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| s.attributes.iter())
        .map(|at| {
            (
                at.name.clone().unwrap_or_default(),
                at.friendly_name.clone(),
                at.values
                    .iter()
                    .filter_map(|v| v.value.clone())
                    .map(|v| v.trim().to_string())
                    .collect(),
            )
        })
        .collect();
    Ok(Session {
        name_id: NameId {
            value: name_id.value.trim().to_string(),
            format: name_id.format.clone(),
        },
        session_index: statement.and_then(|s| s.session_index.clone()),
        authn_instant: statement
            .and_then(|s| s.authn_instant)
            .map(|t| t.to_rfc3339()),
        authn_context: statement
            .and_then(|s| s.authn_context.as_ref())
            .and_then(|c| c.value.as_ref())
            .and_then(|r| r.value.clone()),
        attributes,
        created: Instant::now(),
    })
}

// ---------------------------------------------------------------------------------------
// Single logout

/// "Đăng xuất": the local session ends at once; the hub gets a signed LogoutRequest.
async fn logout(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::from_query(q.lang.as_deref());
    let home = format!("/{}", lang.suffix());
    let Some((id, session)) = state.session(&headers) else {
        return Redirect::to(&home).into_response();
    };
    state.sessions.lock().remove(&id);
    let clear = state.set_cookie("", true);
    let hub = match state.hub.get().await {
        Ok(h) => h,
        Err(e) => {
            let mut res = error_page(lang, &hub_unreachable(&e));
            res.headers_mut().append(header::SET_COOKIE, clear);
            return res;
        }
    };
    let request_id = saml::new_id();
    let xml = saml::logout_request(
        &request_id,
        &state.entity_id,
        &hub.slo_redirect,
        &hub.entity_id,
        &session.name_id,
        session.session_index.as_deref(),
        time::OffsetDateTime::now_utc(),
    );
    let url = saml::signed_redirect(
        &hub.slo_redirect,
        "SAMLRequest",
        &xml,
        Some(&home),
        &state.key,
    );
    let mut res = match url {
        Ok(url) => {
            let mut pending = state.pending_logouts.lock();
            prune(&mut pending, REQUEST_TTL);
            pending.insert(request_id, Instant::now());
            Redirect::to(&url).into_response()
        }
        Err(e) => {
            tracing::error!("building the LogoutRequest: {e:#}");
            Redirect::to(&with_msg(&home, "partial")).into_response()
        }
    };
    res.headers_mut().append(header::SET_COOKIE, clear);
    res
}

fn invalid_logout(reason: String) -> Problem {
    Problem {
        status: StatusCode::BAD_REQUEST,
        title: T(
            "Thông điệp đăng xuất không hợp lệ",
            "Invalid sign-out message",
        ),
        message: T(
            "Cổng thông tin đã từ chối thông điệp đăng xuất này vì không kiểm tra được tính hợp lệ của nó.",
            "The portal refused this sign-out message because it could not be validated.",
        ),
        details: vec![(T("Lý do", "Reason"), reason)],
    }
}

/// `/saml/slo` (HTTP-Redirect): the hub's LogoutResponse to our request, or its own
/// LogoutRequest (another portal or the hub started the sign-out), which we answer.
async fn slo(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::from_query(q.lang.as_deref());
    let raw = raw.unwrap_or_default();
    let is_response = raw.split('&').any(|p| p.starts_with("SAMLResponse="));
    let is_request = raw.split('&').any(|p| p.starts_with("SAMLRequest="));
    let hub = match state.hub.get().await {
        Ok(h) => h,
        Err(e) => return error_page(lang, &hub_unreachable(&e)),
    };
    if is_response {
        match logout_response_from_hub(&state, &hub, &raw) {
            Ok((back, partial)) => {
                let msg = if partial { "partial" } else { "signed_out" };
                Redirect::to(&with_msg(&back, msg)).into_response()
            }
            Err(e) => {
                tracing::warn!("refused a LogoutResponse: {e:#}");
                error_page(lang, &invalid_logout(format!("{e:#}")))
            }
        }
    } else if is_request {
        match logout_request_from_hub(&state, &hub, &raw, &headers) {
            Ok(url) => {
                let mut res = Redirect::to(&url).into_response();
                res.headers_mut()
                    .append(header::SET_COOKIE, state.set_cookie("", true));
                res
            }
            Err(e) => {
                tracing::warn!("refused a LogoutRequest: {e:#}");
                error_page(lang, &invalid_logout(format!("{e:#}")))
            }
        }
    } else {
        error_page(
            lang,
            &invalid_logout("neither SAMLRequest nor SAMLResponse in the query".into()),
        )
    }
}

/// Returns where to go and whether the logout was partial.
fn logout_response_from_hub(state: &Inner, hub: &HubMetadata, raw: &str) -> Result<(String, bool)> {
    let m = saml::verify_redirect(raw, "SAMLResponse", &hub.certs)?;
    let resp: LogoutResponse = guarded(|| {
        m.xml
            .parse()
            .map_err(|e| anyhow!("the LogoutResponse cannot be read: {e}"))
    })?;
    if resp.issuer.as_ref().and_then(|i| i.value.as_deref()) != Some(&hub.entity_id) {
        return Err(anyhow!("the LogoutResponse is not from the hub"));
    }
    if let Some(d) = resp.destination.as_deref() {
        if d != state.slo_url {
            return Err(anyhow!("the LogoutResponse is addressed to {d}"));
        }
    }
    let irt = resp
        .in_response_to
        .ok_or_else(|| anyhow!("the LogoutResponse answers no request"))?;
    let known = {
        let mut pending = state.pending_logouts.lock();
        prune(&mut pending, REQUEST_TTL);
        pending.remove(&irt).is_some()
    };
    if !known {
        return Err(anyhow!(
            "the LogoutResponse answers no pending request of this portal"
        ));
    }
    let codes = status_codes(&m.xml);
    let success = codes.first().map(String::as_str) == Some(STATUS_SUCCESS);
    let partial = !success || codes.iter().any(|c| short_status(c) == "PartialLogout");
    Ok((local_path(m.relay_state.as_deref()), partial))
}

/// Ends the sessions of the NameID the hub names and returns the signed LogoutResponse URL.
fn logout_request_from_hub(
    state: &Inner,
    hub: &HubMetadata,
    raw: &str,
    headers: &HeaderMap,
) -> Result<String> {
    let m = saml::verify_redirect(raw, "SAMLRequest", &hub.certs)?;
    let req: LogoutRequest = guarded(|| {
        m.xml
            .parse()
            .map_err(|e| anyhow!("the LogoutRequest cannot be read: {e}"))
    })?;
    if req.issuer.as_ref().and_then(|i| i.value.as_deref()) != Some(&hub.entity_id) {
        return Err(anyhow!("the LogoutRequest is not from the hub"));
    }
    if let Some(d) = req.destination.as_deref() {
        if d != state.slo_url {
            return Err(anyhow!("the LogoutRequest is addressed to {d}"));
        }
    }
    let id = req
        .id
        .clone()
        .ok_or_else(|| anyhow!("the LogoutRequest has no ID"))?;
    let name_id = req
        .name_id
        .as_ref()
        .map(|n| n.value.trim().to_string())
        .ok_or_else(|| anyhow!("the LogoutRequest names nobody (no NameID)"))?;
    let cookie = cookie_value(headers);
    let ended = {
        let mut sessions = state.sessions.lock();
        let before = sessions.len();
        sessions.retain(|sid, s| s.name_id.value != name_id && Some(sid) != cookie.as_ref());
        before - sessions.len()
    };
    tracing::info!(ended, "the hub asked to end the sessions of a person");
    let answer = saml::logout_response(
        &state.entity_id,
        &hub.slo_redirect,
        &id,
        STATUS_SUCCESS,
        time::OffsetDateTime::now_utc(),
    );
    saml::signed_redirect(
        &hub.slo_redirect,
        "SAMLResponse",
        &answer,
        m.relay_state.as_deref(),
        &state.key,
    )
}
