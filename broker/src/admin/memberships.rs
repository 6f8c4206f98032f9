//! Memberships: a person or organisation in one relying party (seed III.3.1–3.3). Added from
//! the directory as "Chưa kích hoạt" (not activated), then activated, moved to a unit, given
//! roles; locked, unlocked or removed. Every operation is decided by the policy against the
//! acting admin's grants first, and changes nothing when refused.

use diesel::prelude::*;
use diesel::sql_types::Bool;
use fedhub_identifiers::AgencyCode;
use fedhub_metadata::AtRestKey;
use serde::{Deserialize, Serialize};

use super::policy::{decide, Action, Actor, GrantView, Level};
use crate::error::{Error, Result};
use crate::store::schema::{
    accounts, admin_grants, agencies, membership_roles as mr, memberships as m, roles,
    sso_session_rps as sr, sso_sessions as ss,
};
use crate::store::{new_id, Db};

/// Statuses as stored (the screens say "Chưa kích hoạt" / "Đã kích hoạt" / "Đã khóa").
pub const NOT_ACTIVATED: &str = "not_activated";
pub const ACTIVATED: &str = "activated";
pub const LOCKED: &str = "locked";

/// Roles every relying party has (seed III.3.3); more can be defined per relying party.
pub const BUILTIN_ROLES: &[&str] = &[
    "Admin của Bộ",
    "Admin của Tỉnh/thành phố",
    "Nhóm admin đơn vị",
];

/// Someone acting in the admin console or API: an account with its live grants, or the
/// federation operator (CLI, operator API tokens).
#[derive(Debug, Clone)]
pub struct Admin {
    /// As written in the audit log (`account:<id>`, `api-token:<name>`, `cli:<user>`).
    pub actor: String,
    pub account_id: String,
    pub grants: Vec<GrantView>,
}

impl Admin {
    /// The federation operator: holds every right the policy gives the operator.
    pub fn operator(actor: impl Into<String>) -> Admin {
        let actor = actor.into();
        Admin {
            account_id: actor.clone(),
            actor,
            grants: vec![GrantView {
                level: Level::Operator,
                rp_id: None,
                scope: None,
            }],
        }
    }

    /// An account with the grants it holds now.
    pub fn of_account(conn: &mut Db, account_id: &str) -> Result<Admin> {
        let rows: Vec<(String, Option<String>, Option<String>)> = admin_grants::table
            .filter(admin_grants::account_id.eq(account_id))
            .filter(admin_grants::revoked_at.is_null())
            .select((
                admin_grants::level,
                admin_grants::rp_id,
                admin_grants::scope_agency_code,
            ))
            .load(conn)?;
        let grants = rows
            .into_iter()
            .filter_map(|(level, rp_id, scope)| {
                Some(GrantView {
                    level: Level::parse(&level)?,
                    rp_id,
                    scope: scope.and_then(|s| AgencyCode::parse(&s).ok()),
                })
            })
            .collect();
        Ok(Admin {
            actor: format!("account:{account_id}"),
            account_id: account_id.to_string(),
            grants,
        })
    }

    /// The policy's decision as an error the caller reports (and the audit log records).
    pub fn check(&self, action: &Action<'_>) -> Result<()> {
        let actor = Actor {
            account_id: &self.account_id,
            grants: &self.grants,
        };
        decide(&actor, action).map_err(|d| Error::Forbidden(d.0.to_string()))
    }

    pub fn is_operator(&self) -> bool {
        self.grants.iter().any(|g| g.level == Level::Operator)
    }

    /// The agency subtrees this admin administers in `rp_id` (empty for the operator, who
    /// is not limited).
    pub fn scopes_in(&self, rp_id: &str) -> Vec<AgencyCode> {
        self.grants
            .iter()
            .filter(|g| g.rp_id.as_deref() == Some(rp_id))
            .filter_map(|g| g.scope.clone())
            .collect()
    }
}

/// A membership as the user-management list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: String,
    pub rp_id: String,
    pub account_id: String,
    pub display_name: String,
    pub kind: String,
    pub national_id: Option<String>,
    pub tax_code: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub unit_agency_code: Option<String>,
    pub unit_name: Option<String>,
    pub status: String,
    pub user_group: Option<String>,
    pub roles: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A unit code with its level-1 segment first (`000.00.01.H49` → `H49.01.00.000`), as
/// stored in `memberships.unit_path`: a subtree is then one index range.
pub fn unit_path(code: &AgencyCode) -> String {
    let s = code.as_str();
    format!("{}.{}.{}.{}", &s[10..13], &s[7..9], &s[4..6], &s[0..3])
}

/// The `[low, high)` range of `unit_path` values in `scope`'s subtree (as `is_within`).
pub fn subtree_range(scope: &AgencyCode) -> (String, String) {
    let path = unit_path(scope);
    // The characters the scope fixes: "H49", "H49.01", "H49.01.02", or the whole path.
    let fixed = match scope.level() {
        1 => 3,
        2 => 6,
        3 => 9,
        _ => path.len(),
    };
    let prefix = &path[..fixed];
    if fixed == path.len() {
        // A level-4 unit is its own subtree: the next code up is the bound.
        let last = prefix.as_bytes()[fixed - 1];
        let high = format!("{}{}", &prefix[..fixed - 1], char::from(last + 1));
        return (prefix.to_string(), high);
    }
    // '/' follows '.' in ASCII: every path that starts with "prefix." sorts before "prefix/".
    (format!("{prefix}."), format!("{prefix}/"))
}

/// The SQL `LIKE` pattern of every code in `scope`'s subtree: the levels the scope sets are
/// fixed, the levels below it free (as `AgencyCode::is_within`).
pub fn subtree_pattern(scope: &AgencyCode) -> String {
    // Canonical form: L4.L3.L2.L1 = "000.00.00.H49"; a scope at level n sets L1..Ln.
    let s = scope.as_str();
    let level = scope.level();
    let seg = |range: std::ops::Range<usize>, depth: u8| {
        if depth <= level {
            s[range].to_string()
        } else {
            "_".repeat(range.len())
        }
    };
    format!(
        "{}.{}.{}.{}",
        seg(0..3, 4),
        seg(4..6, 3),
        seg(7..9, 2),
        seg(10..13, 1)
    )
}

fn registered_unit(conn: &mut Db, code: &str) -> Result<AgencyCode> {
    let unit = AgencyCode::parse(code).map_err(|e| Error::invalid("unit", e.rule))?;
    let known = agencies::table
        .find(unit.as_str())
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if !known {
        return Err(Error::invalid(
            "unit",
            format!("agency {unit} is not registered"),
        ));
    }
    Ok(unit)
}

/// The built-in roles of a relying party, created on first use.
pub fn ensure_builtin_roles(conn: &mut Db, rp_id: &str, now: i64) -> Result<()> {
    for name in BUILTIN_ROLES {
        let exists = roles::table
            .filter(roles::rp_id.eq(rp_id))
            .filter(roles::name.eq(name))
            .count()
            .get_result::<i64>(conn)?
            > 0;
        if !exists {
            diesel::insert_into(roles::table)
                .values((
                    roles::id.eq(new_id()),
                    roles::rp_id.eq(rp_id),
                    roles::name.eq(name),
                    roles::builtin.eq(true),
                    roles::created_at.eq(now),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// The roles of a relying party, built-in ones first.
pub fn roles_of(conn: &mut Db, rp_id: &str, now: i64) -> Result<Vec<String>> {
    crate::rp::get(conn, rp_id)?;
    ensure_builtin_roles(conn, rp_id, now)?;
    Ok(roles::table
        .filter(roles::rp_id.eq(rp_id))
        .order((roles::builtin.desc(), roles::name.asc()))
        .select(roles::name)
        .load(conn)?)
}

/// Defines a role in a relying party (its top admins and the operator).
pub fn add_role(conn: &mut Db, admin: &Admin, rp_id: &str, name: &str, now: i64) -> Result<()> {
    crate::rp::get(conn, rp_id)?;
    let top = admin.is_operator()
        || admin
            .grants
            .iter()
            .any(|g| g.rp_id.as_deref() == Some(rp_id) && g.level == Level::Top);
    if !top {
        return Err(Error::Forbidden(
            "roles are defined by the relying party's top admins".into(),
        ));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid("name", "1 to 100 characters"));
    }
    if roles_of(conn, rp_id, now)?.iter().any(|r| r == name) {
        return Err(Error::Conflict {
            field: "name".into(),
            rule: format!("role {name} already exists"),
        });
    }
    diesel::insert_into(roles::table)
        .values((
            roles::id.eq(new_id()),
            roles::rp_id.eq(rp_id),
            roles::name.eq(name),
            roles::builtin.eq(false),
            roles::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

type Row = (
    (
        String,
        String,
        String,
        Option<String>,
        String,
        Option<String>,
    ),
    (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    (i64, i64),
);

/// Rows with their roles and unit names: two queries for the whole page, not two per row.
fn to_members(conn: &mut Db, rows: Vec<Row>) -> Result<Vec<Member>> {
    use std::collections::HashMap;
    let ids: Vec<&String> = rows.iter().map(|((id, ..), ..)| id).collect();
    let mut roles_of: HashMap<String, Vec<String>> = HashMap::new();
    let role_rows: Vec<(String, String)> = mr::table
        .inner_join(roles::table)
        .filter(mr::membership_id.eq_any(&ids))
        .order((mr::membership_id.asc(), roles::name.asc()))
        .select((mr::membership_id, roles::name))
        .load(conn)?;
    for (membership, role) in role_rows {
        roles_of.entry(membership).or_default().push(role);
    }
    let units: Vec<&String> = rows
        .iter()
        .filter_map(|((_, _, _, unit, ..), ..)| unit.as_ref())
        .collect();
    let unit_names: HashMap<String, String> = if units.is_empty() {
        HashMap::new()
    } else {
        agencies::table
            .filter(agencies::code.eq_any(&units))
            .select((agencies::code, agencies::name_vi))
            .load::<(String, String)>(conn)?
            .into_iter()
            .collect()
    };
    let mut out = Vec::with_capacity(rows.len());
    for (
        (id, rp_id, account_id, unit, status, user_group),
        (name, kind, nid, tax, phone, email),
        (created_at, updated_at),
    ) in rows
    {
        out.push(Member {
            roles: roles_of.remove(&id).unwrap_or_default(),
            unit_name: unit.as_ref().and_then(|u| unit_names.get(u).cloned()),
            id,
            rp_id,
            account_id,
            display_name: name,
            kind,
            national_id: nid,
            tax_code: tax,
            phone,
            email,
            unit_agency_code: unit,
            status,
            user_group,
            created_at,
            updated_at,
        });
    }
    Ok(out)
}

/// One membership, whoever may see it.
fn load(conn: &mut Db, id: &str) -> Result<Member> {
    let rows: Vec<Row> = m::table
        .inner_join(accounts::table)
        .filter(m::id.eq(id))
        .select(member_columns())
        .load(conn)?;
    to_members(conn, rows)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::not_found("membership", id))
}

#[allow(clippy::type_complexity)]
fn member_columns() -> (
    (
        m::id,
        m::rp_id,
        m::account_id,
        m::unit_agency_code,
        m::status,
        m::user_group,
    ),
    (
        accounts::display_name,
        accounts::kind,
        accounts::national_id,
        accounts::tax_code,
        accounts::phone,
        accounts::email,
    ),
    (m::created_at, m::updated_at),
) {
    (
        (
            m::id,
            m::rp_id,
            m::account_id,
            m::unit_agency_code,
            m::status,
            m::user_group,
        ),
        (
            accounts::display_name,
            accounts::kind,
            accounts::national_id,
            accounts::tax_code,
            accounts::phone,
            accounts::email,
        ),
        (m::created_at, m::updated_at),
    )
}

/// A membership the admin may act on (its unit in their subtree), or why not. A membership
/// without a unit belongs to nobody's subtree: only the operator acts on it.
pub fn get_for(conn: &mut Db, admin: &Admin, id: &str) -> Result<Member> {
    let member = load(conn, id)?;
    check_member(admin, &member)?;
    Ok(member)
}

fn check_member(admin: &Admin, member: &Member) -> Result<()> {
    match member
        .unit_agency_code
        .as_deref()
        .and_then(|u| AgencyCode::parse(u).ok())
    {
        Some(unit) => admin.check(&Action::Membership {
            rp_id: &member.rp_id,
            unit: &unit,
        }),
        None if admin.is_operator() => Ok(()),
        None => Err(Error::Forbidden(
            "the membership has no unit in your agency subtree".into(),
        )),
    }
}

/// Filters of the user-management list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListQuery {
    /// Name (accents ignored), CCCD/CMND, tax code or phone.
    pub q: Option<String>,
    pub status: Option<String>,
    /// Only this unit's subtree.
    pub unit: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// One page of the list, with the total the screen shows ("Tìm thấy 272 kết quả").
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
    pub items: Vec<Member>,
}

/// The members of a relying party the admin may see: those in their subtrees.
///
/// Every filter is on `memberships` alone, so the count and the page are each one range of
/// an index (`memberships_rp_name` / `memberships_rp_status_name` / `memberships_rp_unit_path`)
/// whatever the size of the relying party; the accounts of the page's 20 rows are joined last.
pub fn list(conn: &mut Db, admin: &Admin, rp_id: &str, q: &ListQuery) -> Result<Page> {
    admin.check(&Action::ViewMembers { rp_id })?;
    crate::rp::get(conn, rp_id)?;
    let per_page = q.per_page.unwrap_or(20).clamp(1, 200);
    let page = q.page.unwrap_or(1).max(1);
    let empty = |total| Page {
        total,
        page,
        per_page,
        items: Vec::new(),
    };
    let scopes = if admin.is_operator() {
        None
    } else {
        let scopes = admin.scopes_in(rp_id);
        if scopes.is_empty() {
            return Ok(empty(0));
        }
        Some(scopes)
    };
    let unit = match q.unit.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => Some(AgencyCode::parse(u).map_err(|e| Error::invalid("unit", e.rule))?),
        None => None,
    };
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    if let Some(status) = status {
        if ![NOT_ACTIVATED, ACTIVATED, LOCKED].contains(&status) {
            return Err(Error::invalid(
                "status",
                "one of not_activated, activated, locked",
            ));
        }
    }
    let text = match q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => Some(SearchText::read(conn, t)?),
        None => None,
    };
    if let Some(SearchText::Accounts(ids)) = &text {
        if ids.is_empty() {
            return Ok(empty(0));
        }
    }

    // `Plan::Range` reads the subtree's range of `memberships_rp_unit_path` and sorts it;
    // `Plan::NameOrder` walks the relying party's members in name order until the page is
    // full, the range test done on each index entry.
    let build = |plan: Plan| {
        let mut query = m::table.filter(m::rp_id.eq(rp_id.to_string())).into_boxed();
        if let Some(scopes) = &scopes {
            query = query.filter(in_subtrees(scopes, plan));
        }
        if let Some(unit) = &unit {
            query = query.filter(in_subtrees(std::slice::from_ref(unit), plan));
        }
        if let Some(status) = status {
            query = query.filter(m::status.eq(status.to_string()));
        }
        match &text {
            Some(SearchText::Name(pattern)) => {
                query = query.filter(m::search_name.like(pattern.clone()).escape('\\'));
            }
            Some(SearchText::Accounts(ids)) => {
                query = query.filter(m::account_id.eq_any(ids.clone()));
            }
            None => {}
        }
        query
    };
    let total: i64 = build(Plan::Range).count().get_result(conn)?;
    if total <= (page - 1) * per_page {
        return Ok(empty(total));
    }
    // The count tells which plan reads less: sorting a small subtree costs its size, while
    // walking in name order costs about (rows skipped + page) × members ÷ matches, small
    // when the matches are many. Neither planner can know this from its statistics (SQLite
    // keeps one average per relying party; a generic PostgreSQL plan assumes a few rows).
    let plan = if total <= SORT_AT_MOST {
        Plan::Range
    } else {
        Plan::NameOrder
    };
    let ids: Vec<String> = build(plan)
        .select(m::id)
        .order((m::search_name.asc(), m::id.asc()))
        .limit(per_page)
        .offset((page - 1) * per_page)
        .load(conn)?;
    let mut rows: Vec<Row> = m::table
        .inner_join(accounts::table)
        .filter(m::id.eq_any(&ids))
        .select(member_columns())
        .load(conn)?;
    let position = |id: &String| ids.iter().position(|i| i == id);
    rows.sort_by_key(|row| position(&(row.0).0));
    Ok(Page {
        total,
        page,
        per_page,
        items: to_members(conn, rows)?,
    })
}

/// What the search box of the list holds: a name (accents ignored, matched anywhere in the
/// name) or an identifier, which names a few accounts.
enum SearchText {
    /// A `LIKE` pattern over `memberships.search_name`, with `\` escaping.
    Name(String),
    /// The accounts whose CCCD/CMND, tax code or phone number it is.
    Accounts(Vec<String>),
}

impl SearchText {
    fn read(conn: &mut Db, text: &str) -> Result<SearchText> {
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        let identifier_shaped = digits.len() >= 9
            && text
                .chars()
                .all(|c| c.is_ascii_digit() || " .-+()".contains(c));
        if !identifier_shaped {
            let folded = crate::directory::fold_name(text);
            return Ok(SearchText::Name(format!("%{}%", escape_like(&folded))));
        }
        // Phones are stored as +84 and the national number (9 digits for mobiles, 10 for
        // landlines), however they were typed.
        let phones: Vec<String> = [9, 10]
            .iter()
            .filter(|&&n| digits.len() >= n)
            .map(|&n| format!("+84{}", &digits[digits.len() - n..]))
            .collect();
        let mut tax_codes = vec![digits.clone()];
        if let Ok(tax) = fedhub_identifiers::TaxCode::parse(text) {
            tax_codes.push(tax.as_str().to_string());
        }
        let ids = accounts::table
            .filter(
                accounts::national_id
                    .eq(digits.clone())
                    .or(accounts::tax_code.eq_any(tax_codes))
                    .or(accounts::phone.eq_any(phones)),
            )
            .select(accounts::id)
            .limit(500)
            .load(conn)?;
        Ok(SearchText::Accounts(ids))
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Up to this many matches, a page is sorted from the subtree's index range (see `list`).
const SORT_AT_MOST: i64 = 2_000;

/// How `list` reads a page: see there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Range,
    NameOrder,
}

/// `memberships.unit_path` within any of `scopes`' subtrees: one index range per scope, or
/// (`Plan::NameOrder`) the same test written so that no planner starts from it.
fn in_subtrees(
    scopes: &[AgencyCode],
    plan: Plan,
) -> Box<dyn BoxableExpression<m::table, Backend, SqlType = Bool>> {
    let range =
        |scope: &AgencyCode| -> Box<dyn BoxableExpression<m::table, Backend, SqlType = Bool>> {
            let (low, high) = subtree_range(scope);
            match plan {
                Plan::Range => Box::new(
                    m::unit_path
                        .ge(low)
                        .and(m::unit_path.lt(high))
                        .assume_not_null(),
                ),
                // `unit_path || ''` has the same value but no index: both engines then take the
                // order from `memberships_rp_name` and test the range on each entry.
                Plan::NameOrder => {
                    let path = || m::unit_path.concat(String::new());
                    Box::new(path().ge(low).and(path().lt(high)).assume_not_null())
                }
            }
        };
    let mut scopes = scopes.iter();
    // No seed such as `1 = 0 OR …`: it would hide the ranges from SQLite's planner.
    let mut cond: Box<dyn BoxableExpression<m::table, Backend, SqlType = Bool>> =
        match scopes.next() {
            Some(first) => range(first),
            None => Box::new(diesel::dsl::sql::<Bool>("1 = 0")),
        };
    for scope in scopes {
        cond = Box::new(cond.or(range(scope)));
    }
    cond
}

type Backend = <Db as diesel::Connection>::Backend;

/// Adds an account to a relying party as "Chưa kích hoạt", in `unit` (default: the unit of
/// the admin's first grant there).
pub fn add(
    conn: &mut Db,
    vault: &AtRestKey,
    admin: &Admin,
    rp_id: &str,
    account_id: &str,
    unit: Option<&str>,
    now: i64,
) -> Result<Member> {
    let rp = crate::rp::get(conn, rp_id)?;
    let unit = match unit.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => registered_unit(conn, u)?,
        None => admin.scopes_in(rp_id).into_iter().next().ok_or_else(|| {
            Error::invalid("unit", "name the unit the person works for in this service")
        })?,
    };
    admin.check(&Action::Membership { rp_id, unit: &unit })?;
    let account: Option<(String, String)> = accounts::table
        .find(account_id)
        .select((accounts::status, accounts::search_name))
        .get_result(conn)
        .optional()?;
    let search_name = match account {
        None => return Err(Error::not_found("account", account_id)),
        Some((status, search_name)) if status == "active" => search_name,
        Some(_) => {
            return Err(Error::invalid(
                "account_id",
                "this account is disabled in the directory",
            ))
        }
    };
    let exists = m::table
        .filter(m::rp_id.eq(rp_id))
        .filter(m::account_id.eq(account_id))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if exists {
        return Err(Error::Conflict {
            field: "account_id".into(),
            rule: "this person is already a member of this service".into(),
        });
    }
    let id = new_id();
    diesel::insert_into(m::table)
        .values((
            m::id.eq(&id),
            m::account_id.eq(account_id),
            m::rp_id.eq(&rp.id),
            m::unit_agency_code.eq(unit.as_str()),
            m::unit_path.eq(unit_path(&unit)),
            // Copied so the list pages one index in name order (accounts are not renamed).
            m::search_name.eq(&search_name),
            m::status.eq(NOT_ACTIVATED),
            // The subject the relying party already knows this person by (pairwise).
            m::subject.eq(crate::login::resolve::pairwise_subject(
                vault, &rp.id, account_id,
            )),
            m::created_at.eq(now),
            m::updated_at.eq(now),
        ))
        .execute(conn)?;
    load(conn, &id)
}

/// What a change of status does to the person's live sessions at that relying party.
#[derive(Debug, Clone, Default)]
pub struct Ended {
    /// SSO sessions ended because the person may no longer sign in to this relying party.
    pub sessions: Vec<String>,
    /// OIDC back-channel logout tokens to send once the transaction commits.
    pub backchannel: Vec<crate::oidc::logout::Target>,
}

/// Ends the account's live SSO sessions that served `rp_id`, so the change shows at once:
/// the next request from that relying party asks to sign in again, and is refused.
fn end_sessions(conn: &mut Db, account_id: &str, rp_id: &str, now: i64) -> Result<Ended> {
    let sessions: Vec<String> = ss::table
        .inner_join(sr::table)
        .filter(ss::account_id.eq(account_id))
        .filter(ss::ended_at.is_null())
        .filter(sr::rp_id.eq(rp_id))
        .select(ss::id)
        .load(conn)?;
    let mut ended = Ended::default();
    for id in sessions {
        ended
            .backchannel
            .extend(crate::oidc::logout::targets(conn, &id)?);
        crate::oidc::logout::end_session_tokens(conn, &id, now)?;
        crate::login::sso::end(conn, &id, now)?;
        ended.sessions.push(id);
    }
    Ok(ended)
}

fn set_status(conn: &mut Db, id: &str, status: &str, now: i64) -> Result<()> {
    diesel::update(m::table.find(id))
        .set((m::status.eq(status), m::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

/// "Kích hoạt": the person may sign in to the relying party.
pub fn activate(conn: &mut Db, admin: &Admin, id: &str, now: i64) -> Result<Member> {
    let member = get_for(conn, admin, id)?;
    match member.status.as_str() {
        NOT_ACTIVATED => set_status(conn, id, ACTIVATED, now)?,
        ACTIVATED => {
            return Err(Error::Conflict {
                field: "status".into(),
                rule: "already activated".into(),
            })
        }
        _ => {
            return Err(Error::Conflict {
                field: "status".into(),
                rule: "a locked membership is unlocked, not activated".into(),
            })
        }
    }
    load(conn, id)
}

/// Locks a membership: the person can no longer sign in to the relying party; their live
/// sessions there end.
pub fn lock(conn: &mut Db, admin: &Admin, id: &str, now: i64) -> Result<(Member, Ended)> {
    let member = get_for(conn, admin, id)?;
    match member.status.as_str() {
        LOCKED => {
            return Err(Error::Conflict {
                field: "status".into(),
                rule: "already locked".into(),
            })
        }
        // Unlocking would activate someone nobody activated: not activated yet means removed,
        // not locked.
        NOT_ACTIVATED => {
            return Err(Error::Conflict {
                field: "status".into(),
                rule: "a membership that was never activated is removed, not locked".into(),
            })
        }
        _ => {}
    }
    set_status(conn, id, LOCKED, now)?;
    let ended = end_sessions(conn, &member.account_id, &member.rp_id, now)?;
    Ok((load(conn, id)?, ended))
}

/// Unlocks a locked membership (it is activated again).
pub fn unlock(conn: &mut Db, admin: &Admin, id: &str, now: i64) -> Result<Member> {
    let member = get_for(conn, admin, id)?;
    if member.status != LOCKED {
        return Err(Error::Conflict {
            field: "status".into(),
            rule: "only a locked membership is unlocked".into(),
        });
    }
    set_status(conn, id, ACTIVATED, now)?;
    load(conn, id)
}

/// Removes a membership and its roles; the person's live sessions at the relying party end.
pub fn remove(conn: &mut Db, admin: &Admin, id: &str, now: i64) -> Result<(Member, Ended)> {
    let member = get_for(conn, admin, id)?;
    diesel::delete(mr::table.filter(mr::membership_id.eq(id))).execute(conn)?;
    diesel::delete(m::table.find(id)).execute(conn)?;
    let ended = end_sessions(conn, &member.account_id, &member.rp_id, now)?;
    Ok((member, ended))
}

/// "Thay đổi đơn vị": both the old and the new unit must lie in the admin's subtree.
pub fn change_unit(conn: &mut Db, admin: &Admin, id: &str, unit: &str, now: i64) -> Result<Member> {
    let member = load(conn, id)?;
    let to = registered_unit(conn, unit)?;
    match member
        .unit_agency_code
        .as_deref()
        .and_then(|u| AgencyCode::parse(u).ok())
    {
        Some(from) => admin.check(&Action::ChangeUnit {
            rp_id: &member.rp_id,
            from: &from,
            to: &to,
        })?,
        None => {
            check_member(admin, &member)?;
        }
    }
    diesel::update(m::table.find(id))
        .set((
            m::unit_agency_code.eq(to.as_str()),
            m::unit_path.eq(unit_path(&to)),
            m::updated_at.eq(now),
        ))
        .execute(conn)?;
    load(conn, id)
}

/// "Gán quyền": the membership's roles (replacing the ones it had) and user group.
pub fn assign_roles(
    conn: &mut Db,
    admin: &Admin,
    id: &str,
    role_names: &[String],
    user_group: Option<&str>,
    now: i64,
) -> Result<Member> {
    let member = get_for(conn, admin, id)?;
    ensure_builtin_roles(conn, &member.rp_id, now)?;
    let mut ids = Vec::new();
    for name in role_names {
        let role: Option<String> = roles::table
            .filter(roles::rp_id.eq(&member.rp_id))
            .filter(roles::name.eq(name.trim()))
            .select(roles::id)
            .get_result(conn)
            .optional()?;
        ids.push(role.ok_or_else(|| {
            Error::invalid("roles", format!("{name} is not a role of this service"))
        })?);
    }
    diesel::delete(mr::table.filter(mr::membership_id.eq(id))).execute(conn)?;
    for role_id in ids {
        diesel::insert_into(mr::table)
            .values((mr::membership_id.eq(id), mr::role_id.eq(role_id)))
            .execute(conn)?;
    }
    let group = user_group.map(str::trim).filter(|g| !g.is_empty());
    diesel::update(m::table.find(id))
        .set((m::user_group.eq(group), m::updated_at.eq(now)))
        .execute(conn)?;
    load(conn, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_patterns_match_what_is_within_says() {
        let code = |s: &str| AgencyCode::parse(s).unwrap();
        assert_eq!(subtree_pattern(&code("000.00.00.H49")), "___.__.__.H49");
        assert_eq!(subtree_pattern(&code("000.00.01.H49")), "___.__.01.H49");
        assert_eq!(subtree_pattern(&code("000.02.01.H49")), "___.02.01.H49");
        assert_eq!(subtree_pattern(&code("003.02.01.H49")), "003.02.01.H49");
        // The SQL pattern and is_within agree on codes inside and outside.
        let like = |pattern: &str, s: &str| {
            pattern.len() == s.len()
                && pattern
                    .chars()
                    .zip(s.chars())
                    .all(|(p, c)| p == '_' || p == c)
        };
        let scopes = ["000.00.00.H49", "000.00.01.H49", "000.01.01.H49"];
        let units = [
            "000.00.00.H49",
            "000.00.01.H49",
            "000.00.02.H49",
            "000.01.01.H49",
            "001.01.01.H49",
            "000.00.01.H29",
        ];
        for s in scopes.iter().chain(["001.01.01.H49"].iter()) {
            for u in units {
                let in_range = {
                    let (low, high) = subtree_range(&code(s));
                    let p = unit_path(&code(u));
                    p >= low && p < high
                };
                assert_eq!(in_range, code(u).is_within(&code(s)), "{u} in range of {s}");
                if scopes.contains(s) {
                    assert_eq!(
                        like(&subtree_pattern(&code(s)), u),
                        code(u).is_within(&code(s)),
                        "{u} in {s}"
                    );
                }
            }
        }
        assert_eq!(unit_path(&code("003.02.01.H49")), "H49.01.02.003");
    }
}
