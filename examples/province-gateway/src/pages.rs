//! The gateway's pages: Vietnamese by default, English with `?lang=en`. Plain HTML with inline
//! CSS; every value from the hub is escaped.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::hub::Problem;
use crate::session::View;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Vi,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "vi" => Some(Lang::Vi),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }
    pub fn pick<'a>(self, vi: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }
}

/// Flash messages, by key (translated when shown).
pub const FLASH_REFRESHED: &str = "refreshed";
pub const FLASH_SIGNED_OUT_BY_HUB: &str = "signed-out-by-hub";

fn flash_html(lang: Lang, key: &str) -> String {
    let text = match key {
        FLASH_REFRESHED => lang.pick("Đã làm mới token.", "Tokens refreshed."),
        FLASH_SIGNED_OUT_BY_HUB => lang.pick(
            "Bạn đã được đăng xuất vì phiên đăng nhập tại fedhub đã kết thúc.",
            "You were signed out because your fedhub session ended.",
        ),
        _ => return String::new(),
    };
    format!(
        r#"<p class="notice" role="status" id="flash">{}</p>"#,
        esc(text)
    )
}

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --blue: #0b4f9c; --red: #b3261e; --ink: #1a1c1e; --muted: #4a4f55; --line: #d5d9de; --bg: #f4f6f9; }
* { box-sizing: border-box; }
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; color: var(--ink); background: var(--bg); line-height: 1.5; }
header { background: var(--blue); color: #fff; padding: .75rem 1.25rem; display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; justify-content: space-between; }
header a { color: #fff; }
header .brand { font-weight: 700; font-size: 1.1rem; text-decoration: none; }
main { max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; }
.card { background: #fff; border: 1px solid var(--line); border-radius: .5rem; padding: 1.25rem 1.5rem; margin-bottom: 1.25rem; }
h1 { font-size: 1.5rem; margin: 0 0 .75rem; }
h2 { font-size: 1.15rem; margin: 0 0 .75rem; }
p { margin: .5rem 0; }
.muted { color: var(--muted); }
table { width: 100%; border-collapse: collapse; font-size: .95rem; }
th, td { text-align: left; vertical-align: top; padding: .45rem .6rem; border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
th { width: 34%; font-weight: 600; }
th code { display: block; font-weight: 400; color: var(--muted); font-size: .85rem; }
.button, button { display: inline-block; font: inherit; font-weight: 600; padding: .6rem 1.2rem; border-radius: .4rem; border: 2px solid var(--blue); background: var(--blue); color: #fff; text-decoration: none; cursor: pointer; }
.button.secondary, button.secondary { background: #fff; color: var(--blue); }
button.danger { background: var(--red); border-color: var(--red); }
.button:focus-visible, button:focus-visible, a:focus-visible { outline: 3px solid #f2a900; outline-offset: 2px; }
.actions { display: flex; flex-wrap: wrap; gap: .75rem; align-items: center; margin-top: 1rem; }
.actions form { margin: 0; }
.notice { border-left: 4px solid #1e7d32; background: #e8f5e9; padding: .6rem .9rem; margin-bottom: 1rem; }
.error { border-left: 4px solid var(--red); }
.code { font-family: ui-monospace, Consolas, monospace; background: #eef1f5; padding: .1rem .35rem; border-radius: .25rem; }
details pre { white-space: pre-wrap; overflow-wrap: anywhere; font-size: .8rem; background: #eef1f5; padding: .6rem; }
footer { max-width: 60rem; margin: 0 auto 2rem; padding: 0 1rem; color: var(--muted); font-size: .85rem; }
"#;

fn layout(lang: Lang, title: &str, body: &str) -> String {
    let other = match lang {
        Lang::Vi => r#"<a href="?lang=en" hreflang="en" lang="en">English</a>"#,
        Lang::En => r#"<a href="?lang=vi" hreflang="vi" lang="vi">Tiếng Việt</a>"#,
    };
    format!(
        r#"<!doctype html>
<html lang="{code}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {site}</title>
<style>{STYLE}</style>
</head>
<body>
<header><a class="brand" href="/">{site}</a><nav aria-label="{langnav}">{other}</nav></header>
<main id="main">
{body}
</main>
<footer>{footer}</footer>
</body>
</html>
"#,
        code = lang.code(),
        title = esc(title),
        site = lang.pick(
            "Cổng dịch vụ công tỉnh (ví dụ)",
            "Provincial public-service gateway (example)"
        ),
        langnav = lang.pick("Ngôn ngữ", "Language"),
        footer = lang.pick(
            "Ví dụ bên nhận OpenID Connect (openidconnect) đăng nhập qua fedhub.",
            "An example OpenID Connect relying party (openidconnect) signing in through fedhub."
        ),
    )
}

/// The home page for someone not signed in.
pub fn home(lang: Lang, flash: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(f) = flash {
        body.push_str(&flash_html(lang, f));
    }
    let _ = write!(
        body,
        r#"<section class="card"><h1>{h}</h1><p>{p}</p>
<div class="actions"><a class="button" href="/login">{login}</a></div></section>"#,
        h = lang.pick("Chào mừng", "Welcome"),
        p = lang.pick(
            "Đăng nhập bằng tài khoản định danh điện tử qua hệ thống xác thực tập trung (fedhub) để dùng các dịch vụ công của tỉnh.",
            "Sign in with your electronic identity through the central sign-in hub (fedhub) to use the province's public services."
        ),
        login = lang.pick("Đăng nhập", "Sign in"),
    );
    layout(lang, lang.pick("Trang chủ", "Home"), &body)
}

/// Labels for the claims fedhub releases (docs/oidc.md).
fn claim_label(lang: Lang, name: &str) -> Option<&'static str> {
    Some(match (name, lang) {
        ("sub", Lang::Vi) => "Mã định danh người dùng",
        ("sub", Lang::En) => "Subject",
        ("name", Lang::Vi) => "Họ và tên",
        ("name", Lang::En) => "Name",
        ("account_type", Lang::Vi) => "Loại tài khoản",
        ("account_type", Lang::En) => "Account type",
        ("email", Lang::Vi) => "Thư điện tử",
        ("email", Lang::En) => "Email",
        ("phone_number", Lang::Vi) => "Số điện thoại",
        ("phone_number", Lang::En) => "Phone number",
        ("national_id", Lang::Vi) => "Số định danh cá nhân",
        ("national_id", Lang::En) => "National ID number",
        ("tax_code", Lang::Vi) => "Mã số thuế",
        ("tax_code", Lang::En) => "Tax code",
        ("agency_code", Lang::Vi) => "Mã định danh đơn vị",
        ("agency_code", Lang::En) => "Agency code",
        ("agency_name", Lang::Vi) => "Đơn vị",
        ("agency_name", Lang::En) => "Unit",
        ("roles", Lang::Vi) => "Vai trò",
        ("roles", Lang::En) => "Roles",
        ("admin_level", Lang::Vi) => "Cấp quản trị",
        ("admin_level", Lang::En) => "Admin level",
        ("iss", Lang::Vi) => "Bên phát hành",
        ("iss", Lang::En) => "Issuer",
        ("aud", Lang::Vi) => "Bên nhận",
        ("aud", Lang::En) => "Audience",
        ("exp", Lang::Vi) => "Hết hạn lúc",
        ("exp", Lang::En) => "Expires at",
        ("iat", Lang::Vi) => "Phát hành lúc",
        ("iat", Lang::En) => "Issued at",
        ("auth_time", Lang::Vi) => "Đăng nhập lúc",
        ("auth_time", Lang::En) => "Signed in at",
        ("sid", Lang::Vi) => "Phiên đăng nhập",
        ("sid", Lang::En) => "Session",
        ("acr", Lang::Vi) => "Mức đảm bảo xác thực",
        ("acr", Lang::En) => "Authentication context",
        ("amr", Lang::Vi) => "Phương thức xác thực",
        ("amr", Lang::En) => "Authentication methods",
        _ => return None,
    })
}

/// The order claims are listed in: the person first, then the token's own claims.
const ORDER: &[&str] = &[
    "sub",
    "name",
    "account_type",
    "national_id",
    "tax_code",
    "email",
    "phone_number",
    "agency_code",
    "agency_name",
    "roles",
    "admin_level",
    "iss",
    "aud",
    "iat",
    "exp",
    "auth_time",
    "sid",
    "acr",
    "amr",
];

fn format_time(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => {
            let t = t.to_offset(time::macros::offset!(+7));
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} (UTC+7)",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        }
        Err(_) => secs.to_string(),
    }
}

fn value_html(name: &str, v: &Value) -> String {
    match v {
        Value::String(s) => esc(s),
        Value::Number(n) if matches!(name, "exp" | "iat" | "auth_time" | "nbf") => n
            .as_i64()
            .map(|t| format!("{} <span class=\"muted\">({t})</span>", format_time(t)))
            .unwrap_or_else(|| esc(&n.to_string())),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            if items.is_empty() {
                "—".to_string()
            } else {
                format!(
                    "<ul>{}</ul>",
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|s| format!("<li>{}</li>", esc(s)))
                        .collect::<String>()
                )
            }
        }
        other => format!("<span class=\"code\">{}</span>", esc(&other.to_string())),
    }
}

fn claims_table(lang: Lang, caption: &str, claims: &Map<String, Value>, id: &str) -> String {
    let mut names: Vec<&String> = claims.keys().collect();
    names.sort_by_key(|n| {
        (
            ORDER.iter().position(|o| o == n).unwrap_or(ORDER.len()),
            n.to_string(),
        )
    });
    let mut rows = String::new();
    for n in names {
        let label = claim_label(lang, n).unwrap_or("");
        let _ = write!(
            rows,
            r#"<tr data-claim="{n}"><th scope="row">{label}<code>{n}</code></th><td>{v}</td></tr>"#,
            n = esc(n),
            label = esc(label),
            v = claims.get(n).map(|v| value_html(n, v)).unwrap_or_default(),
        );
    }
    format!(
        r#"<table id="{id}"><caption class="muted" style="text-align:left">{caption}</caption>
<thead><tr><th scope="col">{c}</th><th scope="col">{v}</th></tr></thead><tbody>{rows}</tbody></table>"#,
        caption = esc(caption),
        c = lang.pick("Thông tin", "Claim"),
        v = lang.pick("Giá trị", "Value"),
    )
}

/// The signed-in page: ID token claims, userinfo, tokens, Refresh and Logout.
pub fn account(lang: Lang, view: &View, show_tokens: bool) -> String {
    let Some(s) = view.signed_in.as_ref() else {
        return home(lang, None);
    };
    let mut body = String::new();
    if let Some(f) = &view.flash {
        body.push_str(&flash_html(lang, f));
    }
    let name = s
        .id_claims
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let _ = write!(
        body,
        r#"<section class="card"><h1>{h} <span>{name}</span></h1><p class="muted">{p}</p></section>"#,
        h = lang.pick("Xin chào,", "Hello,"),
        name = esc(name),
        p = lang.pick(
            "Bạn đã đăng nhập qua fedhub. Chữ ký của ID token đã được kiểm tra bằng khóa công khai của fedhub.",
            "You are signed in through fedhub. The ID token's signature was checked with fedhub's public keys."
        ),
    );
    let _ = write!(
        body,
        r#"<section class="card"><h2>{h}</h2>{t}</section>"#,
        h = lang.pick("Thông tin trong ID token", "ID token claims"),
        t = claims_table(
            lang,
            lang.pick(
                "Tất cả thông tin fedhub đưa vào ID token",
                "Every claim fedhub put in the ID token"
            ),
            &s.id_claims,
            "id-token-claims"
        ),
    );
    let userinfo = match &s.userinfo {
        Ok(m) => claims_table(
            lang,
            lang.pick(
                "Câu trả lời của điểm cuối userinfo",
                "The userinfo endpoint's answer",
            ),
            m,
            "userinfo",
        ),
        Err(e) => format!(
            r#"<p class="notice error" id="userinfo-error">{} <span class="code">{}</span></p>"#,
            lang.pick("Không lấy được userinfo:", "Userinfo failed:"),
            esc(e)
        ),
    };
    let _ = write!(
        body,
        r#"<section class="card"><h2>Userinfo</h2>{userinfo}</section>"#
    );
    let expiry = match s.expires_at {
        Some(at) => {
            let secs = at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let left = at
                .duration_since(SystemTime::now())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!(
                r#"<span id="access-token-expiry" data-expires-at="{secs}">{}</span> <span class="muted">({} {left} {})</span>"#,
                format_time(secs),
                lang.pick("còn", "in"),
                lang.pick("giây", "seconds"),
            )
        }
        None => lang.pick("không rõ", "not stated").to_string(),
    };
    let refresh_state = if s.refresh_token.is_some() {
        lang.pick("có (đổi mới mỗi lần dùng)", "yes (rotated at every use)")
    } else {
        lang.pick(
            "không có (cần phạm vi offline_access)",
            "none (needs the offline_access scope)",
        )
    };
    let mut tokens = format!(
        r#"<table id="tokens"><tbody>
<tr><th scope="row">{exp_l}</th><td>{expiry}</td></tr>
<tr><th scope="row">{scope_l}</th><td>{scopes}</td></tr>
<tr><th scope="row">Refresh token</th><td>{refresh_state}</td></tr>
<tr><th scope="row">{count_l}</th><td id="refresh-count">{count}</td></tr>
</tbody></table>"#,
        exp_l = lang.pick("Access token hết hạn lúc", "Access token expires at"),
        scope_l = lang.pick("Phạm vi được cấp", "Granted scopes"),
        scopes = esc(&s.scopes.join(" ")),
        count_l = lang.pick("Số lần làm mới", "Times refreshed"),
        count = s.refreshed,
    );
    if show_tokens {
        let _ = write!(
            tokens,
            r#"<details><summary>{}</summary>
<p>Access token</p><pre id="access-token">{}</pre>
<p>Refresh token</p><pre id="refresh-token">{}</pre>
<p>ID token</p><pre id="id-token">{}</pre></details>"#,
            lang.pick(
                "Token thô (chỉ để phát triển: --show-tokens)",
                "Raw tokens (development only: --show-tokens)"
            ),
            esc(s.access_token.secret()),
            esc(s
                .refresh_token
                .as_ref()
                .map(|t| t.secret().as_str())
                .unwrap_or("")),
            esc(&s.id_token.to_string()),
        );
    }
    let _ = write!(
        body,
        r#"<section class="card"><h2>Token</h2>{tokens}
<div class="actions">
<form method="post" action="/refresh"><input type="hidden" name="csrf" value="{csrf}"><button type="submit" class="secondary"{disabled}>{refresh}</button></form>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{csrf}"><button type="submit" class="danger">{logout}</button></form>
</div></section>"#,
        csrf = esc(&view.csrf),
        disabled = if s.refresh_token.is_some() {
            ""
        } else {
            " disabled"
        },
        refresh = lang.pick("Làm mới token", "Refresh tokens"),
        logout = lang.pick("Đăng xuất", "Sign out"),
    );
    layout(lang, lang.pick("Tài khoản", "Account"), &body)
}

pub fn signed_out(lang: Lang, at_hub: bool) -> String {
    let body = format!(
        r#"<section class="card" id="signed-out"><h1>{h}</h1><p>{p}</p>
<div class="actions"><a class="button" href="/login">{again}</a><a class="button secondary" href="/">{home}</a></div></section>"#,
        h = lang.pick("Bạn đã đăng xuất", "You are signed out"),
        p = if at_hub {
            lang.pick(
                "Phiên đăng nhập tại cổng này và tại fedhub đã kết thúc.",
                "Your session at this gateway and at fedhub has ended.",
            )
        } else {
            lang.pick(
                "Phiên đăng nhập tại cổng này đã kết thúc.",
                "Your session at this gateway has ended.",
            )
        },
        again = lang.pick("Đăng nhập lại", "Sign in again"),
        home = lang.pick("Trang chủ", "Home"),
    );
    layout(lang, lang.pick("Đã đăng xuất", "Signed out"), &body)
}

/// What the person reads for each OAuth error the hub may answer with.
fn oauth_error_text(lang: Lang, error: &str) -> &'static str {
    match (error, lang) {
        ("access_denied", Lang::Vi) => "fedhub không cho phép đăng nhập vào cổng này (ví dụ: tài khoản chưa được kích hoạt cho dịch vụ này, hoặc việc xác thực không thành công).",
        ("access_denied", Lang::En) => "fedhub did not allow signing in to this gateway (for example: the account is not activated for this service, or the sign-in did not succeed).",
        ("login_required", Lang::Vi) => "Bạn chưa đăng nhập tại fedhub.",
        ("login_required", Lang::En) => "You are not signed in at fedhub.",
        ("invalid_grant", Lang::Vi) => "Mã xác thực hoặc token không còn hợp lệ (đã dùng, hết hạn hoặc đã bị thu hồi).",
        ("invalid_grant", Lang::En) => "The authorization code or token is no longer valid (used, expired or revoked).",
        ("invalid_client", Lang::Vi) => "fedhub không nhận ra cổng này (mã ứng dụng hoặc mật khẩu ứng dụng sai).",
        ("invalid_client", Lang::En) => "fedhub did not recognise this gateway (wrong client id or secret).",
        (_, Lang::Vi) => "fedhub đã từ chối yêu cầu.",
        (_, Lang::En) => "fedhub refused the request.",
    }
}

/// An error page: what happened, in words, and the hub's error code when there is one.
pub fn error(lang: Lang, problem: &Problem) -> String {
    let (title, text, detail): (&str, String, Option<String>) = match problem {
        Problem::Refused { error, description } => (
            lang.pick("Đăng nhập bị từ chối", "Sign-in refused"),
            oauth_error_text(lang, error).to_string(),
            Some(with_description(error, description.as_deref())),
        ),
        Problem::TokenRefused { error, description } => (
            lang.pick("Không hoàn tất được đăng nhập", "The sign-in could not be completed"),
            format!(
                "{} {}",
                lang.pick("fedhub không cấp token:", "fedhub issued no tokens:"),
                oauth_error_text(lang, error)
            ),
            Some(with_description(error, description.as_deref())),
        ),
        Problem::TokenFailed(why) => (
            lang.pick("Không hoàn tất được đăng nhập", "The sign-in could not be completed"),
            lang.pick(
                "Không đổi được mã xác thực lấy token tại fedhub.",
                "The authorization code could not be exchanged for tokens at fedhub.",
            )
            .to_string(),
            Some(why.clone()),
        ),
        Problem::BadIdToken(why) => (
            lang.pick("ID token không hợp lệ", "The ID token is not valid"),
            lang.pick(
                "ID token nhận được không qua được kiểm tra (chữ ký, bên phát hành, bên nhận, thời hạn hoặc nonce), nên không đăng nhập.",
                "The ID token received failed its checks (signature, issuer, audience, lifetime or nonce), so you are not signed in.",
            )
            .to_string(),
            Some(why.clone()),
        ),
        Problem::HubUnreachable(why) => (
            lang.pick("Không kết nối được fedhub", "fedhub cannot be reached"),
            lang.pick(
                "Cổng không lấy được cấu hình của fedhub. Vui lòng thử lại sau.",
                "The gateway could not fetch fedhub's configuration. Please try again later.",
            )
            .to_string(),
            Some(why.clone()),
        ),
        Problem::BadState => (
            lang.pick("Yêu cầu đăng nhập không khớp", "The sign-in does not match"),
            lang.pick(
                "Tham số state không khớp với lần đăng nhập của trình duyệt này, nên câu trả lời bị bỏ qua. Hãy đăng nhập lại.",
                "The state parameter does not match this browser's sign-in, so the answer was ignored. Please sign in again.",
            )
            .to_string(),
            Some("state mismatch".into()),
        ),
        Problem::NoLoginInProgress => (
            lang.pick("Không có lần đăng nhập nào đang chờ", "No sign-in in progress"),
            lang.pick(
                "Lần đăng nhập đã hết hạn hoặc đã được dùng. Hãy đăng nhập lại.",
                "The sign-in has expired or was used already. Please sign in again.",
            )
            .to_string(),
            None,
        ),
        Problem::WrongIssuer(iss) => (
            lang.pick("Câu trả lời từ nơi khác", "An answer from elsewhere"),
            lang.pick(
                "Câu trả lời không đến từ fedhub mà cổng này tin cậy.",
                "The answer did not come from the fedhub this gateway trusts.",
            )
            .to_string(),
            Some(format!("iss={iss}")),
        ),
        Problem::NoCode => (
            lang.pick("Thiếu mã xác thực", "No authorization code"),
            lang.pick(
                "Câu trả lời của fedhub không có mã xác thực.",
                "fedhub's answer carried no authorization code.",
            )
            .to_string(),
            None,
        ),
        Problem::NotSignedIn => (
            lang.pick("Chưa đăng nhập", "Not signed in"),
            lang.pick(
                "Phiên của bạn đã kết thúc hoặc biểu mẫu đã cũ. Hãy đăng nhập lại.",
                "Your session has ended or the form is out of date. Please sign in again.",
            )
            .to_string(),
            None,
        ),
        Problem::NoRefreshToken => (
            lang.pick("Không có refresh token", "No refresh token"),
            lang.pick(
                "fedhub không cấp refresh token cho lần đăng nhập này (cần phạm vi offline_access).",
                "fedhub issued no refresh token for this sign-in (the offline_access scope is needed).",
            )
            .to_string(),
            None,
        ),
        Problem::BadPrompt => (
            lang.pick("Yêu cầu không hợp lệ", "Bad request"),
            lang.pick(
                "prompt chỉ nhận none hoặc login.",
                "prompt takes only none or login.",
            )
            .to_string(),
            None,
        ),
        Problem::NotFound => (
            lang.pick("Không tìm thấy trang", "Page not found"),
            lang.pick(
                "Địa chỉ này không có trên cổng.",
                "This address does not exist on the gateway.",
            )
            .to_string(),
            None,
        ),
    };
    let detail = detail
        .map(|d| {
            format!(
                r#"<p>{} <span class="code" id="error-detail">{}</span></p>"#,
                lang.pick("Chi tiết:", "Details:"),
                esc(&d)
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"<section class="card notice error" role="alert"><h1>{title}</h1><p>{text}</p>{detail}
<div class="actions"><a class="button" href="/login">{again}</a><a class="button secondary" href="/">{home}</a></div></section>"#,
        title = esc(title),
        text = esc(&text),
        again = lang.pick("Đăng nhập lại", "Sign in again"),
        home = lang.pick("Trang chủ", "Home"),
    );
    layout(lang, title, &body)
}

fn with_description(error: &str, description: Option<&str>) -> String {
    match description {
        Some(d) if !d.is_empty() => format!("{error}: {d}"),
        _ => error.to_string(),
    }
}
