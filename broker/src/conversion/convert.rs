//! Account conversion (seed III.3.4): a legacy username/password account becomes a federated
//! account, or a federated account's place in a relying party passes to another federated
//! account when staff change. Both must be in the same unit and the same user group of that
//! relying party. Everything moves in one transaction — roles, admin grants, the relying
//! party's subject mapping — and the old account loses access; a report says what moved, what
//! stayed and the counts before and after. A dry run computes the same report and rolls back.

use diesel::prelude::*;
use fedhub_identifiers::AgencyCode;
use serde::{Deserialize, Serialize};

use crate::admin::memberships::{Admin, ACTIVATED};
use crate::admin::policy::Action;
use crate::error::{Error, Result};
use crate::oidc::logout::Target;
use crate::store::schema::admin_grants::dsl as g;
use crate::store::schema::{
    conversions as cv, legacy_accounts as la, membership_roles as mr, memberships as m, roles,
    sso_session_rps as sr, sso_sessions as ss,
};
use crate::store::{new_id, Db};

/// What is converted into the target account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Source {
    /// An imported legacy account of the relying party.
    Legacy { legacy_id: String },
    /// A federated account's membership (staff hand-over).
    Handover { account_id: String },
}

/// A conversion request.
#[derive(Debug, Clone)]
pub struct Request {
    pub rp_id: String,
    pub source: Source,
    /// The federated account that takes over; it must already be a member of the relying
    /// party, in the same unit and user group.
    pub target_account_id: String,
    pub dry_run: bool,
}

/// A conversion request as the admin API takes it (JSON): `mode` says which of `legacy_id`
/// or `account_id` names the source. Unknown fields are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    pub rp_id: String,
    pub mode: String,
    #[serde(default)]
    pub legacy_id: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
    pub target_account_id: String,
    #[serde(default)]
    pub dry_run: bool,
}

impl RequestBody {
    pub fn into_request(self) -> Result<Request> {
        let source = match (self.mode.as_str(), self.legacy_id, self.account_id) {
            ("legacy", Some(legacy_id), None) => Source::Legacy { legacy_id },
            ("handover", None, Some(account_id)) => Source::Handover { account_id },
            ("legacy", _, _) => {
                return Err(Error::invalid(
                    "legacy_id",
                    "mode legacy names legacy_id only",
                ))
            }
            ("handover", _, _) => {
                return Err(Error::invalid(
                    "account_id",
                    "mode handover names account_id only",
                ))
            }
            _ => return Err(Error::invalid("mode", "legacy or handover")),
        };
        Ok(Request {
            rp_id: self.rp_id,
            source,
            target_account_id: self.target_account_id,
            dry_run: self.dry_run,
        })
    }
}

/// Counts the report compares before and after.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub source_roles: usize,
    pub target_roles: usize,
    pub source_admin_grants: usize,
    pub target_admin_grants: usize,
    /// Whether the source may still sign in to the relying party.
    pub source_has_access: bool,
}

/// What a conversion did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub id: Option<String>,
    pub rp_id: String,
    pub mode: String,
    pub source: String,
    pub source_name: String,
    pub target_account_id: String,
    pub target_name: String,
    pub unit: Option<String>,
    pub user_group: Option<String>,
    /// Roles the target received (it keeps the ones it had).
    pub roles_moved: Vec<String>,
    /// Roles the target already had.
    pub roles_kept: Vec<String>,
    /// Admin grants (level and scope) that moved to the target.
    pub admin_grants_moved: Vec<String>,
    /// The relying party re-keys its records from `old_subject` to `new_subject`.
    pub old_subject: String,
    pub new_subject: String,
    pub before: Counts,
    pub after: Counts,
    pub dry_run: bool,
    pub created_at: i64,
}

/// The source's side of a conversion, read before anything changes.
struct Side {
    key: String,
    name: String,
    unit: Option<String>,
    user_group: Option<String>,
    roles: Vec<String>,
    subject: String,
    /// A hand-over: the old account and its membership.
    account: Option<(String, String)>,
}

fn roles_of_membership(c: &mut Db, membership_id: &str) -> Result<Vec<String>> {
    Ok(mr::table
        .inner_join(roles::table)
        .filter(mr::membership_id.eq(membership_id))
        .order(roles::name.asc())
        .select(roles::name)
        .load(c)?)
}

fn grants_in(
    c: &mut Db,
    account_id: &str,
    rp_id: &str,
) -> Result<Vec<(String, String, Option<String>)>> {
    Ok(g::admin_grants
        .filter(g::account_id.eq(account_id))
        .filter(g::rp_id.eq(rp_id))
        .filter(g::revoked_at.is_null())
        .select((g::id, g::level, g::scope_agency_code))
        .load(c)?)
}

type MembershipRow = (String, String, Option<String>, Option<String>, String);

fn membership_of(c: &mut Db, account_id: &str, rp_id: &str) -> Result<Option<MembershipRow>> {
    Ok(m::table
        .filter(m::account_id.eq(account_id))
        .filter(m::rp_id.eq(rp_id))
        .select((
            m::id,
            m::status,
            m::unit_agency_code,
            m::user_group,
            m::subject,
        ))
        .get_result(c)
        .optional()?)
}

/// (username, display name, unit, user group, roles JSON, subject, converted to)
type LegacyRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
);

fn source_side(c: &mut Db, rp_id: &str, source: &Source) -> Result<Side> {
    match source {
        Source::Legacy { legacy_id } => {
            let row: Option<LegacyRow> = la::table
                .find(legacy_id)
                .filter(la::rp_id.eq(rp_id))
                .select((
                    la::username,
                    la::display_name,
                    la::unit_agency_code,
                    la::user_group,
                    la::roles,
                    la::subject,
                    la::converted_to,
                ))
                .get_result(c)
                .optional()?;
            let (username, name, unit, group, roles_json, subject, converted) =
                row.ok_or_else(|| {
                    Error::not_found("legacy account of this relying party", legacy_id)
                })?;
            if converted.is_some() {
                return Err(Error::Conflict {
                    field: "legacy_id".into(),
                    rule: format!("legacy account {username} has already been converted"),
                });
            }
            let roles: Vec<String> = serde_json::from_str(&roles_json).unwrap_or_default();
            Ok(Side {
                key: legacy_id.clone(),
                name: format!("{name} ({username})"),
                unit,
                user_group: group,
                roles,
                subject,
                account: None,
            })
        }
        Source::Handover { account_id } => {
            let (mid, _status, unit, group, subject) = membership_of(c, account_id, rp_id)?
                .ok_or_else(|| {
                    Error::invalid(
                        "account_id",
                        "the old account is not a member of this relying party (already converted?)",
                    )
                })?;
            let name = crate::directory::accounts::get(c, account_id)?.display_name;
            Ok(Side {
                key: account_id.clone(),
                name,
                unit,
                user_group: group,
                roles: roles_of_membership(c, &mid)?,
                subject,
                account: Some((account_id.clone(), mid)),
            })
        }
    }
}

/// Who converts: an admin (console, admin API, CLI) within their grants, or a person
/// claiming their own legacy account (see [`convert_claim`]). Every other rule is the same.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    Admin(&'a Admin),
    /// The signed-in federated account that proved it holds the legacy account.
    SelfClaim {
        account_id: &'a str,
    },
}

impl Actor<'_> {
    /// How the conversion names who did it (`conversions.actor`, the audit log).
    pub fn name(&self) -> String {
        match self {
            Actor::Admin(admin) => admin.actor.clone(),
            Actor::SelfClaim { account_id } => format!("account:{account_id}"),
        }
    }
}

/// Converts (or, with `dry_run`, reports what converting would do). The admin must be allowed
/// to act on memberships in the unit. Returns the report and the OIDC back-channel logout
/// targets of the old account's sessions there (send them after commit).
pub fn convert(
    c: &mut Db,
    admin: &Admin,
    req: &Request,
    now: i64,
) -> Result<(Report, Vec<Target>)> {
    convert_as(c, Actor::Admin(admin), req, now)
}

fn convert_as(
    c: &mut Db,
    actor: Actor<'_>,
    req: &Request,
    now: i64,
) -> Result<(Report, Vec<Target>)> {
    crate::rp::get(c, &req.rp_id)?;
    // A dry run runs the very same steps in a savepoint that is then rolled back, so its
    // report (counts after included) is exactly what converting would do.
    let mut outcome = None;
    let result = c.transaction::<(), Error, _>(|c| {
        outcome = Some(convert_inner(c, actor, req, now)?);
        if req.dry_run {
            return Err(Error::Internal("dry run: rolled back".into()));
        }
        Ok(())
    });
    match (result, outcome) {
        (Ok(()), Some(done)) => Ok(done),
        (Err(_), Some((mut report, _))) if req.dry_run => {
            report.id = None;
            report.dry_run = true;
            Ok((report, Vec::new()))
        }
        (Err(e), _) => Err(e),
        (Ok(()), None) => Err(Error::internal("conversion produced no report")),
    }
}

/// Proof that a person holds a legacy account: made only by checking the account's old
/// password ([`prove_ownership`]), consumed by [`convert_claim`].
pub struct Ownership {
    rp_id: String,
    legacy_id: String,
    account_id: String,
    /// The hash the password was checked against: the claim converts only if it is still
    /// the one stored.
    hash: String,
}

impl Ownership {
    pub fn legacy_id(&self) -> &str {
        &self.legacy_id
    }
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ownership")
            .field("rp_id", &self.rp_id)
            .field("legacy_id", &self.legacy_id)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

/// Checks `password` against the legacy account's stored `hash` (slow by design: call it
/// off the async runtime). `Ok(None)`: wrong password.
pub fn prove_ownership(
    rp_id: &str,
    legacy_id: &str,
    hash: &str,
    password: &str,
    account_id: &str,
) -> Result<Option<Ownership>> {
    if !super::password::verify(hash, password)? {
        return Ok(None);
    }
    Ok(Some(Ownership {
        rp_id: rp_id.to_string(),
        legacy_id: legacy_id.to_string(),
        account_id: account_id.to_string(),
        hash: hash.to_string(),
    }))
}

/// The self-service claim: the legacy account converts into the person who proved they hold
/// it, and only into them. The relying party must have the claim turned on, the person's
/// account must be active, and every rule of [`convert`] applies (same unit and user group,
/// an activated member, not converted yet). No admin grants are involved or assumed.
pub fn convert_claim(c: &mut Db, proof: &Ownership, now: i64) -> Result<(Report, Vec<Target>)> {
    let rp = crate::rp::get(c, &proof.rp_id)?;
    if !rp.claim_enabled {
        return Err(Error::Forbidden(CLAIM_OFF.into()));
    }
    let account = crate::directory::accounts::get(c, &proof.account_id)?;
    if account.status != "active" {
        return Err(Error::Forbidden(
            "this account is disabled in the directory".into(),
        ));
    }
    let stored: Option<String> = la::table
        .find(&proof.legacy_id)
        .filter(la::rp_id.eq(&proof.rp_id))
        .select(la::password_hash)
        .get_result(c)
        .optional()?;
    if stored.as_deref() != Some(proof.hash.as_str()) {
        return Err(Error::Conflict {
            field: "password".into(),
            rule: "the legacy account changed meanwhile; try again".into(),
        });
    }
    let req = Request {
        rp_id: proof.rp_id.clone(),
        source: Source::Legacy {
            legacy_id: proof.legacy_id.clone(),
        },
        target_account_id: proof.account_id.clone(),
        dry_run: false,
    };
    convert_as(
        c,
        Actor::SelfClaim {
            account_id: &proof.account_id,
        },
        &req,
        now,
    )
}

/// Why a claim is refused when the relying party does not offer it.
pub const CLAIM_OFF: &str = "the self-service claim is not offered for this relying party";

fn convert_inner(
    c: &mut Db,
    actor: Actor<'_>,
    req: &Request,
    now: i64,
) -> Result<(Report, Vec<Target>)> {
    let rp_id = req.rp_id.as_str();
    let source = source_side(c, rp_id, &req.source)?;
    match actor {
        // The policy first: the unit must lie in the admin's subtree (nothing about other
        // units' memberships is said to an admin who may not see them).
        Actor::Admin(admin) => {
            let unit = source
                .unit
                .as_deref()
                .and_then(|u| AgencyCode::parse(u).ok());
            match &unit {
                Some(u) => admin.check(&Action::Membership { rp_id, unit: u })?,
                None if admin.is_operator() => {}
                None => {
                    return Err(Error::Forbidden(
                        "the account has no unit in your agency subtree".into(),
                    ))
                }
            }
        }
        // A claim converts a legacy account into the claimant, nothing else.
        Actor::SelfClaim { account_id } => {
            if !matches!(req.source, Source::Legacy { .. }) || req.target_account_id != account_id {
                return Err(Error::Forbidden(
                    "a claim converts a legacy account into the claimant only".into(),
                ));
            }
        }
    }
    if source
        .account
        .as_ref()
        .is_some_and(|(a, _)| *a == req.target_account_id)
    {
        return Err(Error::invalid(
            "target_account_id",
            "an account cannot be converted into itself",
        ));
    }
    let (target_mid, target_status, target_unit, target_group, new_subject) =
        membership_of(c, &req.target_account_id, rp_id)?.ok_or_else(|| {
            Error::invalid(
                "target_account_id",
                "add the federated account to this relying party first (same unit and user group)",
            )
        })?;
    let target_name = crate::directory::accounts::get(c, &req.target_account_id)?.display_name;
    // The rule of the seed: same unit and same user group.
    if source.unit != target_unit {
        return Err(Error::invalid(
            "target_account_id",
            format!(
                "the accounts are in different units ({} and {})",
                source.unit.as_deref().unwrap_or("none"),
                target_unit.as_deref().unwrap_or("none")
            ),
        ));
    }
    if source.user_group != target_group {
        return Err(Error::invalid(
            "target_account_id",
            format!(
                "the accounts are in different user groups ({} and {})",
                source.user_group.as_deref().unwrap_or("none"),
                target_group.as_deref().unwrap_or("none")
            ),
        ));
    }
    if target_status != ACTIVATED {
        return Err(Error::invalid(
            "target_account_id",
            "activate the federated account in this relying party first",
        ));
    }
    let target_roles_before = roles_of_membership(c, &target_mid)?;
    let source_grants = match &source.account {
        Some((a, _)) => grants_in(c, a, rp_id)?,
        None => Vec::new(),
    };
    let target_grants_before = grants_in(c, &req.target_account_id, rp_id)?.len();
    let before = Counts {
        source_roles: source.roles.len(),
        target_roles: target_roles_before.len(),
        source_admin_grants: source_grants.len(),
        target_admin_grants: target_grants_before,
        source_has_access: true,
    };

    // Roles: the target gets the source's (it keeps its own).
    let mut roles_moved = Vec::new();
    for name in &source.roles {
        if target_roles_before.contains(name) {
            continue;
        }
        let role_id: Option<String> = roles::table
            .filter(roles::rp_id.eq(rp_id))
            .filter(roles::name.eq(name))
            .select(roles::id)
            .get_result(c)
            .optional()?;
        let role_id = match role_id {
            Some(id) => id,
            // A legacy role the relying party has not defined yet is defined now.
            None => {
                let id = new_id();
                diesel::insert_into(roles::table)
                    .values((
                        roles::id.eq(&id),
                        roles::rp_id.eq(rp_id),
                        roles::name.eq(name),
                        roles::builtin.eq(false),
                        roles::created_at.eq(now),
                    ))
                    .execute(c)?;
                id
            }
        };
        diesel::insert_into(mr::table)
            .values((mr::membership_id.eq(&target_mid), mr::role_id.eq(role_id)))
            .execute(c)?;
        roles_moved.push(name.clone());
    }

    // Admin grants in this relying party move to the target.
    let mut grants_moved = Vec::new();
    for (id, level, scope) in &source_grants {
        diesel::update(g::admin_grants.find(id))
            .set(g::account_id.eq(&req.target_account_id))
            .execute(c)?;
        grants_moved.push(format!("{level} {}", scope.as_deref().unwrap_or("")));
    }

    // The old account loses access.
    let mut backchannel = Vec::new();
    match &source.account {
        None => {
            let n = diesel::update(
                la::table
                    .find(&source.key)
                    .filter(la::converted_to.is_null()),
            )
            .set((
                la::converted_to.eq(Some(&req.target_account_id)),
                la::converted_at.eq(Some(now)),
            ))
            .execute(c)?;
            if n != 1 {
                return Err(Error::Conflict {
                    field: "legacy_id".into(),
                    rule: "the legacy account was converted meanwhile".into(),
                });
            }
        }
        Some((old_account, old_mid)) => {
            diesel::delete(mr::table.filter(mr::membership_id.eq(old_mid))).execute(c)?;
            diesel::delete(m::table.find(old_mid)).execute(c)?;
            let sessions: Vec<String> = ss::table
                .inner_join(sr::table)
                .filter(ss::account_id.eq(old_account))
                .filter(ss::ended_at.is_null())
                .filter(sr::rp_id.eq(rp_id))
                .select(ss::id)
                .load(c)?;
            for s in sessions {
                backchannel.extend(crate::oidc::logout::targets(c, &s)?);
                crate::oidc::logout::end_session_tokens(c, &s, now)?;
                crate::login::sso::end(c, &s, now)?;
            }
        }
    }

    let after = Counts {
        source_roles: 0,
        target_roles: roles_of_membership(c, &target_mid)?.len(),
        source_admin_grants: match &source.account {
            Some((a, _)) => grants_in(c, a, rp_id)?.len(),
            None => 0,
        },
        target_admin_grants: grants_in(c, &req.target_account_id, rp_id)?.len(),
        source_has_access: match &source.account {
            Some((a, _)) => membership_of(c, a, rp_id)?.is_some(),
            None => false,
        },
    };
    let mode = match &req.source {
        Source::Legacy { .. } => "legacy",
        Source::Handover { .. } => "handover",
    };
    let id = new_id();
    let mut report = Report {
        id: Some(id.clone()),
        rp_id: rp_id.to_string(),
        mode: mode.into(),
        source: source.key.clone(),
        source_name: source.name,
        target_account_id: req.target_account_id.clone(),
        target_name,
        unit: source.unit,
        user_group: source.user_group,
        roles_moved,
        roles_kept: target_roles_before,
        admin_grants_moved: grants_moved,
        old_subject: source.subject,
        new_subject,
        before,
        after,
        dry_run: false,
        created_at: now,
    };
    let seq: i64 = cv::table
        .select(diesel::dsl::max(cv::seq))
        .get_result::<Option<i64>>(c)?
        .unwrap_or(0)
        + 1;
    let json = serde_json::to_string(&report).map_err(Error::internal)?;
    diesel::insert_into(cv::table)
        .values((
            cv::id.eq(&id),
            cv::seq.eq(seq),
            cv::rp_id.eq(rp_id),
            cv::mode.eq(mode),
            cv::source.eq(&report.source),
            cv::target_account.eq(&report.target_account_id),
            cv::old_subject.eq(&report.old_subject),
            cv::new_subject.eq(&report.new_subject),
            cv::report.eq(&json),
            cv::actor.eq(actor.name()),
            cv::created_at.eq(now),
        ))
        .execute(c)?;
    // The relying party's webhook, if any, is told after the commit (an outbox row now).
    super::webhook::enqueue(c, rp_id, &id, now)?;
    report.id = Some(id);
    Ok((report, backchannel))
}

/// One entry of the conversion feed: what a relying party re-keys.
#[derive(Debug, Clone, Serialize, Queryable)]
pub struct FeedEntry {
    pub seq: i64,
    pub id: String,
    pub mode: String,
    pub old_subject: String,
    pub new_subject: String,
    pub created_at: i64,
}

/// Conversions of a relying party after `since` (a `seq`), oldest first, at most `limit`.
pub fn feed(
    c: &mut Db,
    admin: &Admin,
    rp_id: &str,
    since: i64,
    limit: i64,
) -> Result<Vec<FeedEntry>> {
    admin.check(&Action::ViewMembers { rp_id })?;
    crate::rp::get(c, rp_id)?;
    let rows: Vec<(FeedEntry, String)> = cv::table
        .filter(cv::rp_id.eq(rp_id))
        .filter(cv::seq.gt(since))
        .order(cv::seq.asc())
        .limit(limit.clamp(1, 1000))
        .select((
            (
                cv::seq,
                cv::id,
                cv::mode,
                cv::old_subject,
                cv::new_subject,
                cv::created_at,
            ),
            cv::report,
        ))
        .load(c)?;
    // An admin sees the conversions of units in their subtree only (the operator: all).
    Ok(rows
        .into_iter()
        .filter(|(_, json)| serde_json::from_str::<Report>(json).is_ok_and(|r| may_see(admin, &r)))
        .map(|(entry, _)| entry)
        .collect())
}

fn may_see(admin: &Admin, r: &Report) -> bool {
    match r.unit.as_deref().and_then(|u| AgencyCode::parse(u).ok()) {
        Some(unit) => admin
            .check(&Action::Membership {
                rp_id: &r.rp_id,
                unit: &unit,
            })
            .is_ok(),
        None => admin.is_operator(),
    }
}

/// The stored report of a conversion, for whoever may see that relying party.
pub fn report(c: &mut Db, admin: &Admin, id: &str) -> Result<Report> {
    let (rp_id, json): (String, String) = cv::table
        .find(id)
        .select((cv::rp_id, cv::report))
        .get_result(c)
        .optional()?
        .ok_or_else(|| Error::not_found("conversion", id))?;
    admin.check(&Action::ViewMembers { rp_id: &rp_id })?;
    let report: Report = serde_json::from_str(&json).map_err(Error::internal)?;
    if !may_see(admin, &report) {
        return Err(Error::Forbidden(
            "the conversion is outside your agency subtree".into(),
        ));
    }
    Ok(report)
}
