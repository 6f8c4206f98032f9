//! Top-admin grants by the federation operator (seed part II, step 2): a registered state-agency
//! account becomes the top admin of its ministry or province for one relying party, possibly
//! exercised by a subordinate office authorised in writing. Grants below top level, and the
//! policy that decides what each admin may do, belong to delegated administration.

use diesel::prelude::*;
use fedhub_identifiers::AgencyCode;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::schema::admin_grants::dsl as g;
use crate::store::schema::{accounts, agencies};
use crate::store::{new_id, Db};

/// A request to grant top admin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopGrant {
    pub account_id: String,
    pub rp_id: String,
    /// The ministry or province the admin answers for.
    pub scope_agency_code: String,
    /// A subordinate office (within the scope) that exercises the grant, by written
    /// authorisation.
    #[serde(default)]
    pub delegated_office_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = crate::store::schema::admin_grants)]
pub struct Grant {
    pub id: String,
    pub account_id: String,
    pub rp_id: Option<String>,
    pub level: String,
    pub scope_agency_code: Option<String>,
    pub delegated_office_code: Option<String>,
    pub granted_by: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

fn registered(conn: &mut Db, code: &str, field: &str) -> Result<AgencyCode> {
    let parsed = AgencyCode::parse(code).map_err(|e| Error::invalid(field, e.rule))?;
    let known = agencies::table.find(code).count().get_result::<i64>(conn)? > 0;
    if !known {
        return Err(Error::invalid(
            field,
            format!("agency {code} is not registered"),
        ));
    }
    Ok(parsed)
}

/// Grants top admin. Only a state-agency account may hold it; one live top grant per relying
/// party and ministry/province.
pub fn grant_top(conn: &mut Db, req: &TopGrant, now: i64) -> Result<Grant> {
    let kind: Option<String> = accounts::table
        .find(&req.account_id)
        .select(accounts::kind)
        .get_result(conn)
        .optional()?;
    match kind.as_deref() {
        None => return Err(Error::not_found("account", &req.account_id)),
        Some("agency") => {}
        Some(other) => {
            return Err(Error::invalid(
                "account_id",
                format!(
                "top admin is granted to a registered state-agency account, not a {other} account"
            ),
            ))
        }
    }
    crate::rp::get(conn, &req.rp_id)?;
    let scope = registered(conn, &req.scope_agency_code, "scope_agency_code")?;
    if let Some(office) = &req.delegated_office_code {
        let office = registered(conn, office, "delegated_office_code")?;
        if !office.is_within(&scope) || office == scope {
            return Err(Error::invalid(
                "delegated_office_code",
                format!("{office} is not a subordinate office of {scope}"),
            ));
        }
    }
    let taken = g::admin_grants
        .filter(g::rp_id.eq(&req.rp_id))
        .filter(g::level.eq("top"))
        .filter(g::scope_agency_code.eq(&req.scope_agency_code))
        .filter(g::revoked_at.is_null())
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if taken {
        return Err(Error::Conflict {
            field: "scope_agency_code".into(),
            rule: format!(
                "{} already has a top admin for this relying party; revoke it first",
                req.scope_agency_code
            ),
        });
    }
    let id = new_id();
    diesel::insert_into(g::admin_grants)
        .values((
            g::id.eq(&id),
            g::account_id.eq(&req.account_id),
            g::rp_id.eq(Some(&req.rp_id)),
            g::level.eq("top"),
            g::scope_agency_code.eq(Some(&req.scope_agency_code)),
            g::delegated_office_code.eq(req.delegated_office_code.as_deref()),
            g::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(g::admin_grants
        .find(&id)
        .select(Grant::as_select())
        .get_result(conn)?)
}

/// Revokes a grant (kept, with its revocation time, for the record).
pub fn revoke(conn: &mut Db, id: &str, now: i64) -> Result<()> {
    let n = diesel::update(g::admin_grants.find(id).filter(g::revoked_at.is_null()))
        .set(g::revoked_at.eq(Some(now)))
        .execute(conn)?;
    if n == 0 {
        return Err(Error::not_found("live admin grant", id));
    }
    Ok(())
}

/// The grants of an account, live first.
pub fn of_account(conn: &mut Db, account_id: &str) -> Result<Vec<Grant>> {
    Ok(g::admin_grants
        .filter(g::account_id.eq(account_id))
        .select(Grant::as_select())
        .order((g::revoked_at.is_not_null(), g::created_at.desc()))
        .load(conn)?)
}
