//! What every console page shares: the layout's context (navigation, the relying parties,
//! the message after a change), form parsing, audited changes and refusals shown as pages
//! in the reader's language.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::response::{IntoResponse, Redirect, Response};
use http::HeaderMap;
use serde::Serialize;

use super::ConsoleSession;
use crate::admin::memberships::Admin;
use crate::audit::{self, Event, Outcome};
use crate::error::{Error, Result};
use crate::store::Db;
use crate::web::error::{status_of, ErrorPage, WebError};
use crate::web::pages::Lang;
use crate::web::AppState;

/// A submitted form (`application/x-www-form-urlencoded`), fields in order, repeats kept.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(body: &[u8]) -> Form {
        Form(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, trimmed; `None` when missing or empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every non-empty value of `name` (checkboxes).
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// Query parameters of a console page (unknown ones, such as `lang`, are ignored).
pub(crate) type Params = HashMap<String, String>;

/// A query parameter, trimmed; `None` when missing or empty.
pub(crate) fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The identifier an account is known by: a citizen's CCCD/CMND, an organisation's tax
/// code, a state agency's agency code (the others when that one is missing).
pub(crate) fn identifier_of(account: &crate::directory::accounts::Account) -> String {
    let (nid, tax, agency) = (
        account.national_id.clone(),
        account.tax_code.clone(),
        account.agency_code.clone(),
    );
    match account.kind.as_str() {
        "organisation" => tax.or(nid).or(agency),
        "agency" => agency.or(tax).or(nid),
        _ => nid.or(tax).or(agency),
    }
    .unwrap_or_default()
}

/// The language a page or refusal is written in.
pub(crate) fn lang_of(headers: &HeaderMap, uri: &http::Uri) -> Lang {
    Lang::negotiate(uri.query(), headers)
}

/// Messages shown after a change (`?done=`), each `console.done.<name>` in the catalogues.
pub(crate) const DONE: &[&str] = &[
    "added",
    "activate",
    "lock",
    "unlock",
    "remove",
    "unit",
    "roles",
    "granted",
    "revoked",
    "connector_enabled",
    "connector_disabled",
];

/// Sections of the console navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Section {
    Members,
    Add,
    Grants,
    Audit,
    Registry,
}

/// The context of `admin_layout.html`: who is signed in, where they are, what they may
/// open, and the message of the change just made.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Shell {
    pub admin_name: String,
    pub csrf: String,
    pub operator: bool,
    /// The relying parties this admin administers (id, name).
    pub rps: Vec<(String, String)>,
    /// The relying party the page is about, or the first one (for the navigation).
    pub rp_id: Option<String>,
    pub rp_name: Option<String>,
    /// Whether the page is about one relying party (shows the switcher).
    pub rp_page: bool,
    /// Where the switcher's links go under `/admin/rp/{rp}/`.
    pub rp_path: &'static str,
    pub section: Section,
    /// Catalogue key of the success message.
    pub done: Option<String>,
}

impl Shell {
    pub(crate) fn load(
        c: &mut Db,
        session: &SessionInfo,
        rp: Option<&str>,
        section: Section,
        done: Option<&str>,
    ) -> Result<Shell> {
        let rps = super::rps_of(c, &session.admin)?;
        let (rp_id, rp_name) = match rp {
            Some(rp) => match rps.iter().find(|(id, _)| id == rp) {
                Some((id, name)) => (Some(id.clone()), Some(name.clone())),
                None => {
                    let found = crate::rp::get(c, rp)?;
                    (Some(found.id), Some(found.display_name))
                }
            },
            None => match rps.first() {
                Some((id, name)) => (Some(id.clone()), Some(name.clone())),
                None => (None, None),
            },
        };
        let rp_path = match section {
            Section::Add => "members/new",
            Section::Grants => "grants",
            _ => "members",
        };
        Ok(Shell {
            admin_name: session.display_name.clone(),
            csrf: session.csrf.clone(),
            operator: session.admin.is_operator(),
            rps,
            rp_id,
            rp_name,
            rp_page: rp.is_some(),
            rp_path,
            section,
            done: done
                .filter(|d| DONE.contains(d))
                .map(|d| format!("console.done.{d}")),
        })
    }
}

/// What a blocking closure needs of the session.
#[derive(Debug, Clone)]
pub(crate) struct SessionInfo {
    pub admin: Admin,
    pub display_name: String,
    pub csrf: String,
}

impl From<&ConsoleSession> for SessionInfo {
    fn from(s: &ConsoleSession) -> Self {
        SessionInfo {
            admin: s.admin.clone(),
            display_name: s.display_name.clone(),
            csrf: s.csrf.clone(),
        }
    }
}

/// The audit event of a console change.
pub(crate) fn event(session: &ConsoleSession, action: &str, target: String) -> Event {
    Event::new(&session.admin.actor, action.to_string())
        .target(target)
        .request(Some(session.request_id.clone()))
}

/// Runs a change in one transaction with its audit entry: success, failure and refusal are
/// all recorded (a refusal changes nothing).
pub(crate) async fn change<T, F>(state: &AppState, event: Event, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Db, i64) -> Result<T> + Send + 'static,
{
    let now = state.clock.now();
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || audit::audited(&store, event, now, |c| f(c, now)))
        .await
        .map_err(Error::internal)?
}

/// A page's reads, as one admin: a refusal by the policy is audited (`denied`) like a change.
/// `write` runs them in a write transaction (for reads that create defaults on first use).
pub(crate) async fn view<T, F>(
    state: &AppState,
    session: &ConsoleSession,
    (action, target, rp): (&str, String, Option<String>),
    write: bool,
    f: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Db, &SessionInfo) -> Result<T> + Send + 'static,
{
    let info = SessionInfo::from(session);
    let result = if write {
        state.store.write_async(move |c| f(c, &info)).await
    } else {
        state.store.read_async(move |c| f(c, &info)).await
    };
    if let Err(e @ Error::Forbidden(_)) = &result {
        let now = state.clock.now();
        let mut denied = event(session, action, target)
            .outcome(Outcome::Denied)
            .detail(e.to_string());
        denied.rp_id = rp;
        state
            .store
            .write_async(move |c| audit::record(c, &denied, now))
            .await?;
    }
    result
}

/// Back to a console page after a change, with its message.
pub(crate) fn back(path: &str, done: &str, extra: &[(&str, &str)]) -> Response {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("done", done);
    for (k, v) in extra {
        if !v.is_empty() {
            query.append_pair(k, v);
        }
    }
    Redirect::to(&format!("{path}?{}", query.finish())).into_response()
}

/// A link to `path` with the non-empty `params`.
pub(crate) fn link(path: &str, params: &[(&str, String)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in params {
        if !v.is_empty() {
            query.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("{path}?{}", query.finish())
    } else {
        path.to_string()
    }
}

/// One link of a pager: a page number, or a gap (`…`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PageLink {
    pub number: i64,
    pub href: String,
    pub current: bool,
    pub gap: bool,
}

/// The pager of a list: the first and last pages, and two either side of the current one.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Pager {
    pub pages: i64,
    pub current: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub links: Vec<PageLink>,
}

pub(crate) fn pager(
    path: &str,
    params: &[(&str, String)],
    total: i64,
    page: i64,
    per_page: i64,
) -> Pager {
    let pages = ((total + per_page - 1) / per_page.max(1)).max(1);
    let href = |n: i64| {
        let mut p: Vec<(&str, String)> = params.to_vec();
        if n > 1 {
            p.push(("page", n.to_string()));
        }
        link(path, &p)
    };
    let mut links = Vec::new();
    let mut last_shown = 0;
    for n in 1..=pages {
        if n == 1 || n == pages || (n - page).abs() <= 2 {
            if n > last_shown + 1 {
                links.push(PageLink {
                    number: 0,
                    href: String::new(),
                    current: false,
                    gap: true,
                });
            }
            links.push(PageLink {
                number: n,
                href: href(n),
                current: n == page,
                gap: false,
            });
            last_shown = n;
        }
    }
    Pager {
        pages,
        current: page,
        prev: (page > 1).then(|| href(page - 1)),
        next: (page < pages).then(|| href(page + 1)),
        links,
    }
}

/// `at` in Vietnam time (UTC+7, no daylight saving), as the screens show it.
pub(crate) fn local_time(at: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .map(|t| t.to_offset(VIETNAM))
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| at.to_string())
}

pub(crate) const VIETNAM: time::UtcOffset = time::macros::offset!(+7);

type Catalogue = HashMap<String, String>;

fn catalogue(lang: Lang) -> &'static Catalogue {
    static VI: OnceLock<Catalogue> = OnceLock::new();
    static EN: OnceLock<Catalogue> = OnceLock::new();
    match lang {
        Lang::Vi => VI.get_or_init(|| {
            toml::from_str(include_str!("../../../../templates/locales/vi.toml"))
                .unwrap_or_default()
        }),
        Lang::En => EN.get_or_init(|| {
            toml::from_str(include_str!("../../../../templates/locales/en.toml"))
                .unwrap_or_default()
        }),
    }
}

/// A catalogue message outside templates (the key itself when missing).
pub(crate) fn text(lang: Lang, key: &str) -> String {
    catalogue(lang)
        .get(key)
        .cloned()
        .unwrap_or_else(|| key.to_string())
}

/// The reasons the domain gives (the policy's refusals, the rules of memberships and
/// grants) and the console's own, with the message that says them on the screens.
pub(crate) const REASONS: &[(&str, &str)] = &[
    (
        "only the federation operator manages the registry",
        "console.reason.registry",
    ),
    (
        "no admin grant for this relying party",
        "console.reason.no_grant",
    ),
    (
        "the unit is outside your agency subtree",
        "console.reason.unit_outside",
    ),
    (
        "both units must lie in your agency subtree",
        "console.reason.units_outside",
    ),
    (
        "nobody grants or revokes their own rights",
        "console.reason.own_rights",
    ),
    (
        "the operator role is given on the command line only",
        "console.reason.operator_role",
    ),
    (
        "only the federation operator grants top admin",
        "console.reason.top_by_operator",
    ),
    (
        "a grant must be below your level and within your agency subtree",
        "console.reason.grant_below",
    ),
    (
        "the membership has no unit in your agency subtree",
        "console.reason.no_unit",
    ),
    (
        "this person is already a member of this service",
        "console.reason.already_member",
    ),
    ("already activated", "console.reason.already_activated"),
    (
        "a locked membership is unlocked, not activated",
        "console.reason.locked_not_activated",
    ),
    ("already locked", "console.reason.already_locked"),
    (
        "only a locked membership is unlocked",
        "console.reason.not_locked",
    ),
    (
        "this account already holds that grant",
        "console.reason.duplicate_grant",
    ),
    (
        "this account is disabled in the directory",
        "console.reason.account_disabled",
    ),
    ("one of level1, level2, level3", "console.reason.bad_level"),
    (
        "name the unit the person works for in this service",
        "console.reason.unit_required",
    ),
    (CHOOSE_PERSON, "console.reason.choose_person"),
    (CHOOSE_UNIT, "console.reason.unit_required"),
    (BAD_DATE, "console.reason.bad_date"),
    (NOT_HERE, "console.reason.not_here"),
];

/// The console's own rules (in `REASONS`).
pub(crate) const CHOOSE_PERSON: &str = "choose a person from the search results";
pub(crate) const CHOOSE_UNIT: &str = "choose a unit";
pub(crate) const BAD_DATE: &str = "a date written YYYY-MM-DD";
pub(crate) const NOT_HERE: &str = "it belongs to another relying party";

/// Why `e` happened, in `lang`: the known reasons translated, unknown ones as they are.
pub(crate) fn explain(e: &Error, lang: Lang) -> String {
    let known = |reason: &str| {
        REASONS
            .iter()
            .find(|(r, _)| *r == reason)
            .map(|(_, key)| text(lang, key))
    };
    match e {
        Error::Forbidden(reason) => known(reason).unwrap_or_else(|| reason.clone()),
        Error::Invalid { field, rule } | Error::Conflict { field, rule } => {
            if let Some(t) = known(rule) {
                return t;
            }
            match field.as_str() {
                "unit" | "scope_agency_code" => {
                    let code = rule
                        .strip_prefix("agency ")
                        .and_then(|r| r.strip_suffix(" is not registered"));
                    match code {
                        Some(code) => {
                            text(lang, "console.reason.unknown_unit").replace("{code}", code)
                        }
                        None => format!("{}: {rule}", text(lang, "console.reason.bad_unit")),
                    }
                }
                "roles" => match rule.strip_suffix(" is not a role of this service") {
                    Some(role) => text(lang, "console.reason.unknown_role").replace("{role}", role),
                    None => e.to_string(),
                },
                _ => e.to_string(),
            }
        }
        Error::NotFound { what, id } => {
            format!("{} ({what}: {id})", text(lang, "console.reason.not_found"))
        }
        other => other.to_string(),
    }
}

/// An audit entry's detail as the log viewer shows it: a refusal whose reason is known is
/// said in `lang`; anything else as written.
pub(crate) fn detail_text(detail: &str, lang: Lang) -> String {
    detail
        .strip_prefix("forbidden: ")
        .and_then(|reason| REASONS.iter().find(|(r, _)| *r == reason))
        .map(|(_, key)| text(lang, key))
        .unwrap_or_else(|| detail.to_string())
}

/// A refused or failed console request as the page the admin reads: the policy's reason
/// (403), the rule their input broke (400, 409) or what was not found (404). Nothing was
/// changed.
pub(crate) fn refuse(e: Error, lang: Lang) -> Response {
    let keys = match &e {
        Error::Forbidden(_) => ("console.refused.title", "console.refused.message"),
        Error::Invalid { .. } | Error::Conflict { .. } => {
            ("console.invalid.title", "console.invalid.message")
        }
        Error::NotFound { .. } => ("console.not_found.title", "console.not_found.message"),
        _ => return WebError::page(e).into_response(),
    };
    tracing::info!(error = %e, "console request refused");
    let mut res = status_of(&e).into_response();
    res.extensions_mut().insert(ErrorPage {
        detail: Some(explain(&e, lang)),
        keys: Some(keys),
    });
    res
}

/// A console handler's answer: a page or redirect, or the page saying why not.
pub(crate) type Answer = std::result::Result<Response, Response>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_and_message_is_in_both_catalogues() {
        let mut keys: Vec<String> = REASONS.iter().map(|(_, k)| k.to_string()).collect();
        keys.extend(DONE.iter().map(|d| format!("console.done.{d}")));
        for k in [
            "console.reason.unknown_unit",
            "console.reason.bad_unit",
            "console.reason.unknown_role",
            "console.reason.not_found",
            "console.refused.title",
            "console.refused.message",
            "console.invalid.title",
            "console.invalid.message",
            "console.not_found.title",
            "console.not_found.message",
        ] {
            keys.push(k.into());
        }
        for lang in [Lang::Vi, Lang::En] {
            for k in &keys {
                assert!(catalogue(lang).contains_key(k), "{k} missing in {lang:?}");
            }
        }
    }

    #[test]
    fn reasons_are_translated_and_unknown_ones_kept() {
        let e = Error::Forbidden("the unit is outside your agency subtree".into());
        assert_eq!(
            explain(&e, Lang::Vi),
            text(Lang::Vi, "console.reason.unit_outside")
        );
        let e = Error::invalid("unit", "agency 000.00.09.H49 is not registered");
        assert!(explain(&e, Lang::Vi).contains("000.00.09.H49"));
        assert!(!explain(&e, Lang::Vi).contains("is not registered"));
        let e = Error::invalid("roles", "Thủ quỹ is not a role of this service");
        assert!(explain(&e, Lang::En).contains("Thủ quỹ"));
        let e = Error::Forbidden("something new".into());
        assert_eq!(explain(&e, Lang::Vi), "something new");
    }

    #[test]
    fn refusals_in_the_log_are_translated() {
        assert_eq!(
            detail_text(
                "forbidden: the unit is outside your agency subtree",
                Lang::Vi
            ),
            text(Lang::Vi, "console.reason.unit_outside")
        );
        assert_eq!(detail_text("000.00.01.H49", Lang::Vi), "000.00.01.H49");
    }

    #[test]
    fn pager_shows_ends_and_neighbours() {
        let p = pager("/x", &[("q", "a b".into())], 200, 7, 10);
        assert_eq!(p.pages, 20);
        let shown: Vec<i64> = p.links.iter().map(|l| l.number).collect();
        assert_eq!(shown, [1, 0, 5, 6, 7, 8, 9, 0, 20]);
        assert_eq!(p.links[0].href, "/x?q=a+b");
        assert_eq!(p.prev.as_deref(), Some("/x?q=a+b&page=6"));
        assert_eq!(p.next.as_deref(), Some("/x?q=a+b&page=8"));
        assert_eq!(pager("/x", &[], 0, 1, 10).pages, 1);
    }

    #[test]
    fn vietnam_time() {
        assert_eq!(local_time(1_795_737_600), "2026-11-27 07:00:00");
    }
}
