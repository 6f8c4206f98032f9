//! Admin grants below top admin (seed III.3): a top admin grants level 1, level 1 grants
//! levels 2 and 3, down the agency tree, per relying party. The operator's top grants are in
//! `directory::admin_grants`; both pass the same policy.

use diesel::prelude::*;
use fedhub_identifiers::AgencyCode;
use serde::Deserialize;

use super::memberships::Admin;
use super::policy::{Action, Level};
use crate::directory::admin_grants::Grant;
use crate::error::{Error, Result};
use crate::store::schema::admin_grants::dsl as g;
use crate::store::schema::{accounts, agencies};
use crate::store::{new_id, Db};

/// A request to grant an admin level.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub account_id: String,
    pub rp_id: String,
    /// `level1`, `level2` or `level3` (top admin: `/admin-grants/top`, operator only).
    pub level: String,
    pub scope_agency_code: String,
}

/// Grants `req.level` if the policy allows it: below the admin's own level, within their
/// subtree, in the same relying party, to someone else who already has a federated account.
pub fn grant(conn: &mut Db, admin: &Admin, req: &GrantRequest, now: i64) -> Result<Grant> {
    let level = Level::parse(&req.level)
        .filter(|l| matches!(l, Level::L1 | Level::L2 | Level::L3))
        .ok_or_else(|| Error::invalid("level", "one of level1, level2, level3"))?;
    let scope = AgencyCode::parse(&req.scope_agency_code)
        .map_err(|e| Error::invalid("scope_agency_code", e.rule))?;
    crate::rp::get(conn, &req.rp_id)?;
    admin.check(&Action::Grant {
        rp_id: &req.rp_id,
        level,
        scope: &scope,
        grantee: &req.account_id,
    })?;
    let known_scope = agencies::table
        .find(scope.as_str())
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if !known_scope {
        return Err(Error::invalid(
            "scope_agency_code",
            format!("agency {scope} is not registered"),
        ));
    }
    let status: Option<String> = accounts::table
        .find(&req.account_id)
        .select(accounts::status)
        .get_result(conn)
        .optional()?;
    match status.as_deref() {
        None => return Err(Error::not_found("account", &req.account_id)),
        Some("active") => {}
        Some(_) => {
            return Err(Error::invalid(
                "account_id",
                "this account is disabled in the directory",
            ))
        }
    }
    let duplicate = g::admin_grants
        .filter(g::account_id.eq(&req.account_id))
        .filter(g::rp_id.eq(&req.rp_id))
        .filter(g::level.eq(level.as_str()))
        .filter(g::scope_agency_code.eq(scope.as_str()))
        .filter(g::revoked_at.is_null())
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if duplicate {
        return Err(Error::Conflict {
            field: "account_id".into(),
            rule: "this account already holds that grant".into(),
        });
    }
    let id = new_id();
    let granted_by = justifying_grant(conn, admin, &req.rp_id, level, &scope)?;
    diesel::insert_into(g::admin_grants)
        .values((
            g::id.eq(&id),
            g::account_id.eq(&req.account_id),
            g::rp_id.eq(Some(&req.rp_id)),
            g::level.eq(level.as_str()),
            g::scope_agency_code.eq(Some(scope.as_str())),
            // The chain of delegation: the grant that allowed this one (none: the operator).
            g::granted_by.eq(granted_by),
            g::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(g::admin_grants
        .find(&id)
        .select(Grant::as_select())
        .get_result(conn)?)
}

/// The admin's own live grant that allows granting `level` over `scope` in `rp_id` (the
/// highest one), recorded as `granted_by`; `None` for the operator.
fn justifying_grant(
    conn: &mut Db,
    admin: &Admin,
    rp_id: &str,
    level: Level,
    scope: &AgencyCode,
) -> Result<Option<String>> {
    if admin.is_operator() {
        return Ok(None);
    }
    let mine: Vec<(String, String, Option<String>)> = g::admin_grants
        .filter(g::account_id.eq(&admin.account_id))
        .filter(g::rp_id.eq(rp_id))
        .filter(g::revoked_at.is_null())
        .select((g::id, g::level, g::scope_agency_code))
        .load(conn)?;
    Ok(mine
        .into_iter()
        .filter_map(|(id, l, s)| {
            let held = Level::parse(&l)?;
            let held_scope = AgencyCode::parse(s.as_deref()?).ok()?;
            (level < held && scope.is_within(&held_scope)).then_some((held, id))
        })
        .max()
        .map(|(_, id)| id))
}

/// Revokes a live grant the admin could have given.
pub fn revoke(conn: &mut Db, admin: &Admin, id: &str, now: i64) -> Result<Grant> {
    let grant: Grant = g::admin_grants
        .find(id)
        .filter(g::revoked_at.is_null())
        .select(Grant::as_select())
        .get_result(conn)
        .optional()?
        .ok_or_else(|| Error::not_found("live admin grant", id))?;
    let level = Level::parse(&grant.level)
        .ok_or_else(|| Error::internal(format!("grant {id} has level {}", grant.level)))?;
    match (&grant.rp_id, &grant.scope_agency_code) {
        (Some(rp_id), Some(scope)) => {
            let scope = AgencyCode::parse(scope)
                .map_err(|e| Error::internal(format!("grant {id}: {}", e.rule)))?;
            admin.check(&Action::Revoke {
                rp_id,
                level,
                scope: &scope,
                holder: &grant.account_id,
            })?
        }
        _ => admin.check(&Action::ManageRegistry)?,
    }
    crate::directory::admin_grants::revoke(conn, id, now)?;
    Ok(g::admin_grants
        .find(id)
        .select(Grant::as_select())
        .get_result(conn)?)
}

/// The live grants of a relying party the admin may see (within their subtrees).
pub fn of_rp(conn: &mut Db, admin: &Admin, rp_id: &str) -> Result<Vec<Grant>> {
    admin.check(&Action::ViewMembers { rp_id })?;
    crate::rp::get(conn, rp_id)?;
    let all: Vec<Grant> = g::admin_grants
        .filter(g::rp_id.eq(rp_id))
        .filter(g::revoked_at.is_null())
        .select(Grant::as_select())
        .order(g::created_at.asc())
        .load(conn)?;
    let scopes = admin.scopes_in(rp_id);
    Ok(all
        .into_iter()
        .filter(|gr| {
            admin.is_operator()
                || gr
                    .scope_agency_code
                    .as_deref()
                    .and_then(|s| AgencyCode::parse(s).ok())
                    .is_some_and(|s| scopes.iter().any(|mine| s.is_within(mine)))
        })
        .collect())
}
