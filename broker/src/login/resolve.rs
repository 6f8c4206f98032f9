//! Resolve and map: upstream identity → account → membership in the relying party → the
//! attributes released to it and the subject it knows the person by. Plain functions over
//! the store; the fronts turn the result into a SAML assertion or OIDC claims.

use diesel::prelude::*;
use fedhub_connectors::UpstreamIdentity;
use fedhub_metadata::AtRestKey;

use crate::directory::accounts::{self, Account};
use crate::error::{Error, Result};
use crate::rp::RelyingParty;
use crate::store::schema::{
    admin_grants, agencies, membership_roles, memberships, roles, upstream_links,
};
use crate::store::{new_id, Db};

/// Why a person may not sign in to a relying party. Each has its own page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The upstream vouched for someone the directory does not hold.
    UnknownAccount,
    /// The account is disabled.
    AccountDisabled,
    /// The relying party requires a membership and there is none.
    NotMember,
    /// The membership exists but is not activated (or is locked).
    NotActivated,
    /// The upstream identity is linked to an account with another national ID or tax code
    /// (say, a certificate registered to one person presented with another's ID).
    IdentityConflict,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownAccount => "unknown_account",
            Refusal::AccountDisabled => "account_disabled",
            Refusal::NotMember => "not_member",
            Refusal::NotActivated => "not_activated",
            Refusal::IdentityConflict => "identity_conflict",
        }
    }
}

/// The account an upstream identity belongs to: by an existing link, else by national ID or
/// (organisations) tax code, then linked, so later sign-ins need no lookup by attribute.
pub fn account_for(
    conn: &mut Db,
    id: &UpstreamIdentity,
    now: i64,
) -> Result<std::result::Result<Account, Refusal>> {
    use upstream_links::dsl as ul;
    let linked: Option<String> = ul::upstream_links
        .filter(ul::connector_id.eq(&id.connector))
        .filter(ul::issuer.eq(&id.issuer))
        .filter(ul::subject.eq(&id.subject))
        .select(ul::account_id)
        .get_result(conn)
        .optional()?;
    let account = match linked {
        Some(account_id) => {
            diesel::update(
                ul::upstream_links
                    .filter(ul::connector_id.eq(&id.connector))
                    .filter(ul::issuer.eq(&id.issuer))
                    .filter(ul::subject.eq(&id.subject)),
            )
            .set(ul::last_seen_at.eq(now))
            .execute(conn)?;
            let account = accounts::get(conn, &account_id)?;
            // The link says who this is; the identifiers the upstream vouches for now must
            // agree with it, or someone is being passed off as someone else.
            let differs = |attr: &str, known: &Option<String>| matches!((id.attribute(attr), known), (Some(now), Some(k)) if now != k);
            if differs("national_id", &account.national_id)
                || differs("tax_code", &account.tax_code)
            {
                return Ok(Err(Refusal::IdentityConflict));
            }
            account
        }
        None => {
            // A person by national ID; an organisation (its certificate's UID=MST:) by tax code.
            let by_person = id
                .attribute("national_id")
                .map(|nid| accounts::by_national_id(conn, nid))
                .transpose()?
                .flatten();
            let found = match by_person {
                Some(a) => Some(a),
                None => id
                    .attribute("tax_code")
                    .map(|mst| accounts::by_tax_code(conn, mst))
                    .transpose()?
                    .flatten(),
            };
            let Some(account) = found else {
                return Ok(Err(Refusal::UnknownAccount));
            };
            // Two first sign-ins of one person at once (two nodes, or PostgreSQL's row locks
            // instead of SQLite's database lock) both get here: the later link is a no-op. The
            // insert runs in a savepoint so that its unique violation leaves the transaction
            // usable on PostgreSQL.
            let inserted = conn.transaction(|c| {
                diesel::insert_into(ul::upstream_links)
                    .values((
                        ul::id.eq(new_id()),
                        ul::account_id.eq(&account.id),
                        ul::connector_id.eq(&id.connector),
                        ul::issuer.eq(&id.issuer),
                        ul::subject.eq(&id.subject),
                        ul::created_at.eq(now),
                        ul::last_seen_at.eq(now),
                    ))
                    .execute(c)
            });
            match inserted {
                Ok(_)
                | Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                )) => {}
                Err(e) => return Err(e.into()),
            }
            account
        }
    };
    if account.status != "active" {
        return Ok(Err(Refusal::AccountDisabled));
    }
    Ok(Ok(account))
}

/// A person's membership in one relying party, with what it implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub status: String,
    pub subject: String,
    pub unit_code: Option<String>,
    pub unit_name: Option<String>,
    pub user_group: Option<String>,
    pub roles: Vec<String>,
}

/// The Vietnamese name of an agency, when there is a code and it is registered.
fn agency_name(conn: &mut Db, code: Option<&str>) -> Result<Option<String>> {
    let Some(code) = code else { return Ok(None) };
    Ok(agencies::table
        .find(code)
        .select(agencies::name_vi)
        .get_result::<String>(conn)
        .optional()?)
}

/// (id, status, subject, unit, user group)
type MembershipRow = (String, String, String, Option<String>, Option<String>);

fn membership(conn: &mut Db, account_id: &str, rp_id: &str) -> Result<Option<Membership>> {
    use memberships::dsl as m;
    let row: Option<MembershipRow> = m::memberships
        .filter(m::account_id.eq(account_id))
        .filter(m::rp_id.eq(rp_id))
        .select((
            m::id,
            m::status,
            m::subject,
            m::unit_agency_code,
            m::user_group,
        ))
        .get_result(conn)
        .optional()?;
    let Some((id, status, subject, unit_code, user_group)) = row else {
        return Ok(None);
    };
    let unit_name = agency_name(conn, unit_code.as_deref())?;
    let roles = membership_roles::table
        .inner_join(roles::table)
        .filter(membership_roles::membership_id.eq(&id))
        .select(roles::name)
        .order(roles::name.asc())
        .load::<String>(conn)?;
    Ok(Some(Membership {
        status,
        subject,
        unit_code,
        unit_name,
        user_group,
        roles,
    }))
}

/// The highest admin level the account holds for this relying party (or federation-wide).
fn admin_level(conn: &mut Db, account_id: &str, rp_id: &str) -> Result<Option<String>> {
    use admin_grants::dsl as g;
    let levels: Vec<String> = g::admin_grants
        .filter(g::account_id.eq(account_id))
        .filter(g::revoked_at.is_null())
        .filter(g::rp_id.eq(rp_id).or(g::rp_id.is_null()))
        .select(g::level)
        .load(conn)?;
    const ORDER: [&str; 5] = ["operator", "top", "level1", "level2", "level3"];
    Ok(ORDER
        .iter()
        .find(|l| levels.iter().any(|x| x == *l))
        .map(|l| l.to_string()))
}

/// A stable identifier for this person at this relying party only, so two relying parties
/// cannot correlate people by subject. Derived from the at-rest key: it must never change.
pub fn pairwise_subject(vault: &AtRestKey, rp_id: &str, account_id: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &vault.derive(b"pairwise-subject"));
    let tag = ring::hmac::sign(&key, format!("{rp_id}\n{account_id}").as_bytes());
    hex::encode(&tag.as_ref()[..16])
}

/// What the relying party learns about the person.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub account: Account,
    pub membership: Option<Membership>,
    pub subject: String,
    /// All attributes the hub knows; the front releases those the RP is allowed.
    pub attributes: Vec<(String, Vec<String>)>,
}

pub fn for_rp(
    conn: &mut Db,
    vault: &AtRestKey,
    account: Account,
    rp: &RelyingParty,
) -> Result<std::result::Result<Resolved, Refusal>> {
    if !rp.enabled {
        return Err(Error::Forbidden(format!("{} is disabled", rp.entity_id)));
    }
    // Checked at every answer, so disabling an account also stops its live SSO sessions.
    if account.status != "active" {
        return Ok(Err(Refusal::AccountDisabled));
    }
    let membership = membership(conn, &account.id, &rp.id)?;
    if rp.requires_membership {
        match &membership {
            None => return Ok(Err(Refusal::NotMember)),
            Some(m) if m.status != "activated" => return Ok(Err(Refusal::NotActivated)),
            Some(_) => {}
        }
    }
    let admin_level = admin_level(conn, &account.id, &rp.id)?;
    let subject = membership
        .as_ref()
        .map(|m| m.subject.clone())
        .unwrap_or_else(|| pairwise_subject(vault, &rp.id, &account.id));
    let one = |v: &Option<String>| v.iter().cloned().collect::<Vec<_>>();
    let (agency_code, agency_name) = match &membership {
        Some(m) if m.unit_code.is_some() => (one(&m.unit_code), one(&m.unit_name)),
        _ => {
            let name = agency_name(conn, account.agency_code.as_deref())?;
            (one(&account.agency_code), one(&name))
        }
    };
    let attributes = vec![
        ("national_id".to_string(), one(&account.national_id)),
        ("name".to_string(), vec![account.display_name.clone()]),
        ("phone".to_string(), one(&account.phone)),
        ("email".to_string(), one(&account.email)),
        ("account_type".to_string(), vec![account.kind.clone()]),
        ("agency_code".to_string(), agency_code),
        ("agency_name".to_string(), agency_name),
        (
            "roles".to_string(),
            membership
                .as_ref()
                .map(|m| m.roles.clone())
                .unwrap_or_default(),
        ),
        ("admin_level".to_string(), one(&admin_level)),
    ];
    Ok(Ok(Resolved {
        account,
        membership,
        subject,
        attributes,
    }))
}
