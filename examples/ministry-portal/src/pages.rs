//! The portal's pages: Vietnamese first with an English line below, or English first with
//! `?lang=en`. Plain HTML with inline CSS; every text is escaped.

use axum::response::{Html, IntoResponse, Response};
use http::{header, StatusCode};

use crate::saml::escape;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Vi,
    En,
}

impl Lang {
    pub fn from_query(lang: Option<&str>) -> Lang {
        match lang {
            Some(l) if l.eq_ignore_ascii_case("en") => Lang::En,
            _ => Lang::Vi,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// `?lang=en` to keep on links, or nothing.
    pub fn suffix(self) -> &'static str {
        match self {
            Lang::Vi => "",
            Lang::En => "?lang=en",
        }
    }
}

/// A text in both languages.
#[derive(Debug, Clone, Copy)]
pub struct T(pub &'static str, pub &'static str);

impl T {
    pub fn primary(self, lang: Lang) -> &'static str {
        match lang {
            Lang::Vi => self.0,
            Lang::En => self.1,
        }
    }
    pub fn secondary(self, lang: Lang) -> &'static str {
        match lang {
            Lang::Vi => self.1,
            Lang::En => self.0,
        }
    }
    /// The primary text, then the other language below in a smaller line.
    pub fn html(self, lang: Lang) -> String {
        let other = match lang {
            Lang::Vi => "en",
            Lang::En => "vi",
        };
        format!(
            r#"{}<span class="alt" lang="{other}">{}</span>"#,
            escape(self.primary(lang)),
            escape(self.secondary(lang))
        )
    }
    /// Both languages on one line, for labels and buttons.
    pub fn inline(self, lang: Lang) -> String {
        format!(
            "{} <span class=\"alt-inline\">/ {}</span>",
            escape(self.primary(lang)),
            escape(self.secondary(lang))
        )
    }
}

pub const PORTAL: T = T("Cổng thông tin Bộ (ví dụ)", "Ministry portal (example)");

const CSS: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font-family: "Segoe UI", Roboto, "Noto Sans", Arial, sans-serif; font-size: 1rem;
  line-height: 1.5; color: #1a1a1a; background: #f4f6f9; }
header { background: #a50e0e; color: #fff; padding: 0.9rem 1.25rem; }
header .brand { font-weight: 700; font-size: 1.15rem; color: #fff; text-decoration: none; }
header .alt { color: #ffe9e9; }
header nav { float: right; }
header nav a { color: #fff; }
main { max-width: 52rem; margin: 1.5rem auto; padding: 0 1rem; }
.card { background: #fff; border: 1px solid #d0d7e2; border-radius: 6px; padding: 1.25rem 1.5rem; margin-bottom: 1.25rem; }
h1 { font-size: 1.5rem; margin: 0 0 0.75rem; }
h2 { font-size: 1.15rem; margin: 0 0 0.5rem; }
.alt { display: block; font-size: 0.85em; font-weight: 400; color: #4a5160; }
.alt-inline { font-weight: 400; color: inherit; opacity: 0.85; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.5rem; }
th, td { text-align: left; vertical-align: top; padding: 0.5rem 0.6rem; border-bottom: 1px solid #e1e6ee; }
th { width: 38%; background: #f7f9fc; font-weight: 600; }
td code, p code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.92em; word-break: break-all; }
.btn { display: inline-block; font: inherit; font-weight: 600; padding: 0.6rem 1.2rem; border-radius: 4px;
  border: 2px solid #0b3d91; background: #0b3d91; color: #fff; cursor: pointer; text-decoration: none; }
.btn.secondary { background: #fff; color: #0b3d91; }
.btn:focus-visible, a:focus-visible { outline: 3px solid #f2b705; outline-offset: 2px; }
a { color: #0b3d91; }
.error { border-left: 6px solid #a50e0e; }
.ok { border-left: 6px solid #1b6e3a; }
.muted { color: #4a5160; font-size: 0.9rem; }
dl.reason { margin: 0.75rem 0; }
dl.reason dt { font-weight: 600; }
dl.reason dd { margin: 0 0 0.5rem 0; }
ul.values { margin: 0; padding-left: 1.1rem; }
footer { max-width: 52rem; margin: 0 auto 2rem; padding: 0 1rem; color: #4a5160; font-size: 0.85rem; }
"#;

/// A whole page around `body` (already HTML).
pub fn page(lang: Lang, title: T, body: &str) -> String {
    let other = match lang {
        Lang::Vi => r#"<a href="?lang=en" lang="en" hreflang="en">English</a>"#,
        Lang::En => r#"<a href="?lang=vi" lang="vi" hreflang="vi">Tiếng Việt</a>"#,
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="{code}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {portal}</title>
<style>{CSS}</style>
</head>
<body>
<header><nav aria-label="{lang_label}">{other}</nav><a class="brand" href="/{suffix}">{portal_html}</a></header>
<main id="main">
{body}
</main>
<footer>{footer}</footer>
</body>
</html>
"#,
        code = lang.code(),
        title = escape(title.primary(lang)),
        portal = escape(PORTAL.primary(lang)),
        portal_html = PORTAL.html(lang),
        lang_label = escape(T("Ngôn ngữ", "Language").primary(lang)),
        suffix = lang.suffix(),
        footer = T(
            "Ví dụ một cổng thông tin của Bộ, đăng nhập qua fedhub bằng SAML 2.0.",
            "An example ministry portal that signs people in through fedhub with SAML 2.0."
        )
        .html(lang),
    )
}

/// An HTML answer with `status`; never cached (pages show personal data).
pub fn respond(status: StatusCode, html: String) -> Response {
    let mut res = (status, Html(html)).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    res
}

/// What went wrong, for the error page.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub title: T,
    pub message: T,
    /// Lines of detail (the hub's status and message, the validation error), shown verbatim.
    pub details: Vec<(T, String)>,
}

/// The readable error page (never a stack trace).
pub fn error_page(lang: Lang, p: &Problem) -> Response {
    let details: String = p
        .details
        .iter()
        .map(|(label, value)| {
            format!(
                "<dt>{}</dt><dd><code>{}</code></dd>",
                label.inline(lang),
                escape(value)
            )
        })
        .collect();
    let details = if details.is_empty() {
        String::new()
    } else {
        format!(r#"<dl class="reason">{details}</dl>"#)
    };
    let body = format!(
        r#"<section class="card error" role="alert" aria-labelledby="err-title">
<h1 id="err-title">{title}</h1>
<p>{message}</p>
{details}
<p><a class="btn" href="/{suffix}">{home}</a></p>
</section>"#,
        title = p.title.html(lang),
        message = p.message.html(lang),
        details = details,
        suffix = lang.suffix(),
        home = T("Về trang chủ", "Back to the home page").inline(lang),
    );
    respond(p.status, page(lang, p.title, &body))
}
