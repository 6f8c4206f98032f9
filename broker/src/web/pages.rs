//! HTML pages: minijinja templates compiled into the binary, in Vietnamese by default and
//! English on request (`?lang=en`, or a browser that prefers English).

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
use minijinja::{context, Environment, State, Value};

use crate::error::{Error, Result};

/// The two languages of every page. Vietnamese is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Vi,
    En,
}

/// Remembers the language picked with the switch, so the next pages keep it.
pub const LANG_COOKIE: &str = "fedhub_lang";

impl Lang {
    /// `lang=vi|en` in a query string.
    pub fn from_query(q: &str) -> Option<Lang> {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("lang=").and_then(Lang::parse))
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }
    fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "vi" | "vi-vn" => Some(Lang::Vi),
            "en" | "en-us" | "en-gb" => Some(Lang::En),
            _ => None,
        }
    }

    /// `?lang=` wins; otherwise the first language of `Accept-Language` we speak.
    pub fn negotiate(query: Option<&str>, headers: &HeaderMap) -> Lang {
        if let Some(lang) = query.and_then(Lang::from_query) {
            return lang;
        }
        // The language picked earlier with the switch (see `remember_lang`).
        if let Some(lang) = super::cookies::get(headers, LANG_COOKIE).and_then(Lang::parse) {
            return lang;
        }
        let accept = headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut ranked: Vec<(f32, Lang)> = accept
            .split(',')
            .filter_map(|part| {
                let mut it = part.split(';');
                let tag = it.next()?.trim();
                let q = it
                    .find_map(|p| {
                        p.trim()
                            .strip_prefix("q=")
                            .and_then(|v| v.parse::<f32>().ok())
                    })
                    .unwrap_or(1.0);
                let primary = tag.split('-').next().unwrap_or(tag);
                Lang::parse(primary).map(|l| (q, l))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked.first().map(|(_, l)| *l).unwrap_or_default()
    }
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../../templates/base.html")),
    (
        "admin_layout.html",
        include_str!("../../../templates/admin_layout.html"),
    ),
    (
        "admin_pager.html",
        include_str!("../../../templates/admin_pager.html"),
    ),
    (
        "admin_members.html",
        include_str!("../../../templates/admin_members.html"),
    ),
    (
        "admin_member_new.html",
        include_str!("../../../templates/admin_member_new.html"),
    ),
    (
        "admin_member_unit.html",
        include_str!("../../../templates/admin_member_unit.html"),
    ),
    (
        "admin_member_roles.html",
        include_str!("../../../templates/admin_member_roles.html"),
    ),
    (
        "admin_grants.html",
        include_str!("../../../templates/admin_grants.html"),
    ),
    (
        "admin_registry.html",
        include_str!("../../../templates/admin_registry.html"),
    ),
    (
        "admin_audit.html",
        include_str!("../../../templates/admin_audit.html"),
    ),
    (
        "admin_conversion.html",
        include_str!("../../../templates/admin_conversion.html"),
    ),
    (
        "admin_conversion_report.html",
        include_str!("../../../templates/admin_conversion_report.html"),
    ),
    ("claim.html", include_str!("../../../templates/claim.html")),
    (
        "claim_done.html",
        include_str!("../../../templates/claim_done.html"),
    ),
    ("error.html", include_str!("../../../templates/error.html")),
    ("index.html", include_str!("../../../templates/index.html")),
    (
        "login_dev.html",
        include_str!("../../../templates/login_dev.html"),
    ),
    (
        "login_certificate.html",
        include_str!("../../../templates/login_certificate.html"),
    ),
    (
        "login_simpki.html",
        include_str!("../../../templates/login_simpki.html"),
    ),
    (
        "saml_post.html",
        include_str!("../../../templates/saml_post.html"),
    ),
    (
        "logout.html",
        include_str!("../../../templates/logout.html"),
    ),
    (
        "signed_out.html",
        include_str!("../../../templates/signed_out.html"),
    ),
];

const CATALOGUES: &[(&str, &str)] = &[
    ("vi", include_str!("../../../templates/locales/vi.toml")),
    ("en", include_str!("../../../templates/locales/en.toml")),
];

/// The one script the hub serves: it submits the SAML POST form. Allowed by its hash in CSP.
pub const AUTO_POST_SCRIPT: &str = r#"document.getElementById("saml-post").submit();"#;

pub const STYLESHEET: &str = include_str!("../../../templates/static/fedhub.css");

type Catalogue = HashMap<String, String>;

/// The template environment and message catalogues; built once at start-up.
#[derive(Clone)]
pub struct Pages {
    env: Arc<Environment<'static>>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pages")
    }
}

/// What every page needs to know about the request it answers.
#[derive(Debug, Clone)]
pub struct PageContext {
    pub lang: Lang,
    pub request_id: String,
    /// Path and query of the current page, for the language switch link.
    pub path: String,
    pub query: Option<String>,
}

impl PageContext {
    fn lang_switch_url(&self) -> String {
        let other = self.lang.other().code();
        let kept: Vec<&str> = self
            .query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("lang="))
            .collect();
        let mut url = format!("{}?", self.path);
        for p in kept {
            url.push_str(p);
            url.push('&');
        }
        url.push_str("lang=");
        url.push_str(other);
        url
    }
}

impl Pages {
    pub fn load() -> Result<Pages> {
        let mut catalogues: HashMap<String, Catalogue> = HashMap::new();
        for (lang, text) in CATALOGUES {
            let table: Catalogue = toml::from_str(text)
                .map_err(|e| Error::Internal(format!("templates/locales/{lang}.toml: {e}")))?;
            catalogues.insert((*lang).to_string(), table);
        }
        let catalogues = Arc::new(catalogues);
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|e| Error::Internal(format!("template {name}: {e}")))?;
        }
        env.add_function("t", move |state: &State, key: &str| -> String {
            let lang = state
                .lookup("lang")
                .map(|v| v.to_string())
                .unwrap_or_else(|| "vi".into());
            catalogues
                .get(&lang)
                .and_then(|c| c.get(key))
                .cloned()
                .unwrap_or_else(|| key.to_string())
        });
        Ok(Pages { env: Arc::new(env) })
    }

    /// Renders `template` with the page context and `values`.
    pub fn render(&self, template: &str, page: &PageContext, values: Value) -> Result<String> {
        let tmpl = self.env.get_template(template).map_err(Error::internal)?;
        let ctx = context! {
            lang => page.lang.code(),
            other_lang => page.lang.other().code(),
            lang_switch_url => page.lang_switch_url(),
            request_id => page.request_id,
            product => "fedhub",
            ..values
        };
        tmpl.render(ctx)
            .map_err(|e| Error::Internal(format!("rendering {template}: {e:#}")))
    }

    /// The message for `key` in `lang`, for text outside templates.
    pub fn catalogue_keys(lang: &str) -> Result<Vec<String>> {
        let text = CATALOGUES
            .iter()
            .find(|(l, _)| *l == lang)
            .map(|(_, t)| *t)
            .unwrap_or("");
        let table: Catalogue = toml::from_str(text).map_err(Error::internal)?;
        let mut keys: Vec<String> = table.into_keys().collect();
        keys.sort();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT_LANGUAGE, accept.parse().unwrap());
        h
    }

    #[test]
    fn vietnamese_unless_asked_otherwise() {
        assert_eq!(Lang::negotiate(None, &HeaderMap::new()), Lang::Vi);
        assert_eq!(Lang::negotiate(None, &headers("en-US,en;q=0.9")), Lang::En);
        assert_eq!(
            Lang::negotiate(None, &headers("fr, en;q=0.5, vi;q=0.8")),
            Lang::Vi
        );
        assert_eq!(
            Lang::negotiate(Some("a=1&lang=en"), &headers("vi")),
            Lang::En
        );
        assert_eq!(Lang::negotiate(Some("lang=xx"), &headers("en")), Lang::En);
    }

    #[test]
    fn every_template_file_is_compiled_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".html") {
                assert!(
                    TEMPLATES.iter().any(|(n, _)| *n == name),
                    "templates/{name} is not in TEMPLATES"
                );
            }
        }
    }

    #[test]
    fn the_auto_post_script_is_the_one_csp_allows() {
        let (_, post) = TEMPLATES
            .iter()
            .find(|(n, _)| *n == "saml_post.html")
            .unwrap();
        assert!(post.contains(&format!("<script>{AUTO_POST_SCRIPT}</script>")));
    }

    #[test]
    fn both_catalogues_have_the_same_keys() {
        let vi = Pages::catalogue_keys("vi").unwrap();
        assert!(!vi.is_empty());
        assert_eq!(vi, Pages::catalogue_keys("en").unwrap());
    }

    #[test]
    fn error_page_renders_in_both_languages_without_raw_keys() {
        let pages = Pages::load().unwrap();
        for lang in [Lang::Vi, Lang::En] {
            let page = PageContext {
                lang,
                request_id: "req-123".into(),
                path: "/x".into(),
                query: Some("a=b".into()),
            };
            let html = pages
                .render("error.html", &page, context! { status => 404, title_key => "error.not_found.title", message_key => "error.not_found.message" })
                .unwrap();
            assert!(html.contains("req-123"));
            assert!(
                !html.contains("error.not_found"),
                "untranslated key in {html}"
            );
            assert!(html.contains(&format!("lang=\"{}\"", lang.code())));
            let unescaped = html.replace("&#x2f;", "/").replace("&amp;", "&");
            assert!(
                unescaped.contains(&format!("href=\"/x?a=b&lang={}\"", lang.other().code())),
                "{html}"
            );
        }
    }
}
