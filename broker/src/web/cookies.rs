//! The hub's two cookies: the SSO session (`cookies.name`) and the login-in-progress binding
//! (`fedhub_login`, which ties a login to the browser that started it, against login CSRF).

use http::{header, HeaderMap, HeaderValue};

use crate::config::{Config, SameSite};

pub const LOGIN_COOKIE: &str = "fedhub_login";
/// The connector the browser chose last, offered first next time (not a secret).
pub const LAST_CONNECTOR_COOKIE: &str = "fedhub_last_connector";

/// The value of cookie `name` in the request.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn build(
    config: &Config,
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<i64>,
    same_site: SameSite,
) -> Option<HeaderValue> {
    let same_site = match same_site {
        SameSite::Strict => "Strict",
        SameSite::Lax => "Lax",
        SameSite::None => "None",
    };
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite={same_site}");
    if config.cookies.secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).ok()
}

/// The SSO cookie (a session cookie: it ends with the browser, the server enforces lifetimes).
pub fn sso(config: &Config, value: &str) -> Option<HeaderValue> {
    build(
        config,
        &config.cookies.name,
        value,
        "/",
        None,
        config.cookies.same_site,
    )
}

pub fn clear_sso(config: &Config) -> Option<HeaderValue> {
    build(
        config,
        &config.cookies.name,
        "",
        "/",
        Some(0),
        config.cookies.same_site,
    )
}

/// Binds a login in progress to this browser.
pub fn login(config: &Config, handle: &str, ttl: i64) -> Option<HeaderValue> {
    build(
        config,
        LOGIN_COOKIE,
        handle,
        // "/" and not "/login": upstream providers send the browser back to
        // /connectors/{id}/callback, which must see the binding too.
        "/",
        Some(ttl),
        SameSite::Lax,
    )
}

pub fn clear_login(config: &Config) -> Option<HeaderValue> {
    build(config, LOGIN_COOKIE, "", "/", Some(0), SameSite::Lax)
}

/// Remembers the connector chosen on this browser for a year.
pub fn last_connector(config: &Config, id: &str) -> Option<HeaderValue> {
    build(
        config,
        LAST_CONNECTOR_COOKIE,
        id,
        "/",
        Some(365 * 86_400),
        SameSite::Lax,
    )
}
