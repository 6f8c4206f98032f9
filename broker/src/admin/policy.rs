//! Who may do what in delegated administration: one pure function, deny by default.
//!
//! The model (seed parts II and III.3): the federation operator grants *top admin* of a
//! ministry or province for one relying party; a top admin grants level 1, level 1 grants
//! levels 2 and 3, and so on down the agency tree. Every right is per relying party and
//! scoped to an agency subtree:
//! - an admin acts on a membership only when its unit lies in the subtree of one of their
//!   grants for that relying party (moving it: both the old and the new unit);
//! - an admin grants (or revokes) only a level strictly below one they hold, for a subtree of
//!   that grant, in the same relying party, and never to (or from) themselves;
//! - only the operator registers relying parties and connectors and grants top admin.
//!
//! Callers pass the actor's live grants (not revoked); the decision is made here only.

use fedhub_identifiers::AgencyCode;
use serde::{Deserialize, Serialize};

/// Admin levels, lowest first (`Ord` follows rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    #[serde(rename = "level3")]
    L3,
    #[serde(rename = "level2")]
    L2,
    #[serde(rename = "level1")]
    L1,
    #[serde(rename = "top")]
    Top,
    #[serde(rename = "operator")]
    Operator,
}

impl Level {
    pub const ALL: [Level; 5] = [Level::L3, Level::L2, Level::L1, Level::Top, Level::Operator];

    /// As stored in `admin_grants.level`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::L3 => "level3",
            Level::L2 => "level2",
            Level::L1 => "level1",
            Level::Top => "top",
            Level::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// One live grant as the policy sees it. The operator's grant has neither relying party nor
/// scope; every other grant has both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantView {
    pub level: Level,
    pub rp_id: Option<String>,
    pub scope: Option<AgencyCode>,
}

/// Who is acting.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub account_id: &'a str,
    pub grants: &'a [GrantView],
}

/// What they want to do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// See a relying party's members (each row still filtered with [`Action::Membership`]).
    ViewMembers { rp_id: &'a str },
    /// Add, activate, lock, unlock, remove a membership or set its roles: `unit` is the
    /// membership's unit (for an addition, the unit it gets).
    Membership {
        rp_id: &'a str,
        unit: &'a AgencyCode,
    },
    /// Move a membership from one unit to another.
    ChangeUnit {
        rp_id: &'a str,
        from: &'a AgencyCode,
        to: &'a AgencyCode,
    },
    /// Grant `level` over `scope` in `rp_id` to `grantee`.
    Grant {
        rp_id: &'a str,
        level: Level,
        scope: &'a AgencyCode,
        grantee: &'a str,
    },
    /// Revoke a grant `holder` has.
    Revoke {
        rp_id: &'a str,
        level: Level,
        scope: &'a AgencyCode,
        holder: &'a str,
    },
    /// Register or change relying parties and connectors (the federation registry).
    ManageRegistry,
    /// Read the audit log (of one relying party, or all of it).
    ViewAudit { rp_id: Option<&'a str> },
}

/// Why an action is refused (shown to the admin, audited).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub &'static str);

fn is_operator(actor: &Actor<'_>) -> bool {
    actor.grants.iter().any(|g| g.level == Level::Operator)
}

/// The actor's grants for one relying party (with their scope).
fn in_rp<'a>(
    actor: &'a Actor<'_>,
    rp_id: &'a str,
) -> impl Iterator<Item = (Level, &'a AgencyCode)> {
    actor
        .grants
        .iter()
        .filter_map(move |g| match (&g.rp_id, &g.scope) {
            (Some(rp), Some(scope)) if rp == rp_id && g.level < Level::Operator => {
                Some((g.level, scope))
            }
            _ => None,
        })
}

/// Allowed, or why not.
pub fn decide(actor: &Actor<'_>, action: &Action<'_>) -> Result<(), Denied> {
    match *action {
        Action::ManageRegistry => {
            if is_operator(actor) {
                Ok(())
            } else {
                Err(Denied("only the federation operator manages the registry"))
            }
        }
        Action::ViewAudit { rp_id } => {
            let allowed =
                is_operator(actor) || rp_id.is_some_and(|rp| in_rp(actor, rp).next().is_some());
            if allowed {
                Ok(())
            } else {
                Err(Denied("no admin grant for this relying party"))
            }
        }
        Action::ViewMembers { rp_id } => {
            if is_operator(actor) || in_rp(actor, rp_id).next().is_some() {
                Ok(())
            } else {
                Err(Denied("no admin grant for this relying party"))
            }
        }
        Action::Membership { rp_id, unit } => {
            if is_operator(actor) || in_rp(actor, rp_id).any(|(_, scope)| unit.is_within(scope)) {
                Ok(())
            } else {
                Err(Denied("the unit is outside your agency subtree"))
            }
        }
        Action::ChangeUnit { rp_id, from, to } => {
            let ok = is_operator(actor)
                || in_rp(actor, rp_id)
                    .any(|(_, scope)| from.is_within(scope) && to.is_within(scope));
            if ok {
                Ok(())
            } else {
                Err(Denied("both units must lie in your agency subtree"))
            }
        }
        Action::Grant {
            rp_id,
            level,
            scope,
            grantee,
        }
        | Action::Revoke {
            rp_id,
            level,
            scope,
            holder: grantee,
        } => {
            if grantee == actor.account_id {
                return Err(Denied("nobody grants or revokes their own rights"));
            }
            if level == Level::Operator {
                return Err(Denied(
                    "the operator role is given on the command line only",
                ));
            }
            if is_operator(actor) {
                return Ok(());
            }
            if level == Level::Top {
                return Err(Denied("only the federation operator grants top admin"));
            }
            let ok = in_rp(actor, rp_id)
                .any(|(held, held_scope)| level < held && scope.is_within(held_scope));
            if ok {
                Ok(())
            } else {
                Err(Denied(
                    "a grant must be below your level and within your agency subtree",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> AgencyCode {
        AgencyCode::parse(s).unwrap()
    }

    fn grant(level: Level, rp: &str, scope: &str) -> GrantView {
        GrantView {
            level,
            rp_id: Some(rp.into()),
            scope: Some(code(scope)),
        }
    }

    #[test]
    fn a_province_admin_acts_in_their_subtree_and_relying_party_only() {
        let grants = [grant(Level::L1, "pakn", "000.00.00.H49")];
        let a = Actor {
            account_id: "qn-admin",
            grants: &grants,
        };
        let finance = code("000.00.01.H49");
        let hcm = code("000.00.01.H29");
        assert!(decide(
            &a,
            &Action::Membership {
                rp_id: "pakn",
                unit: &finance
            }
        )
        .is_ok());
        assert!(decide(
            &a,
            &Action::Membership {
                rp_id: "pakn",
                unit: &hcm
            }
        )
        .is_err());
        assert!(decide(
            &a,
            &Action::Membership {
                rp_id: "tthc",
                unit: &finance
            }
        )
        .is_err());
        assert!(decide(
            &a,
            &Action::ChangeUnit {
                rp_id: "pakn",
                from: &finance,
                to: &hcm
            }
        )
        .is_err());
        assert!(decide(&a, &Action::ManageRegistry).is_err());
    }

    #[test]
    fn grants_go_strictly_down_and_never_to_oneself() {
        let grants = [grant(Level::L1, "pakn", "000.00.00.H49")];
        let a = Actor {
            account_id: "qn-admin",
            grants: &grants,
        };
        let finance = code("000.00.01.H49");
        let g = |level, scope, grantee| Action::Grant {
            rp_id: "pakn",
            level,
            scope,
            grantee,
        };
        assert!(decide(&a, &g(Level::L2, &finance, "x")).is_ok());
        assert!(decide(&a, &g(Level::L3, &finance, "x")).is_ok());
        assert!(
            decide(&a, &g(Level::L1, &finance, "x")).is_err(),
            "not its own level"
        );
        assert!(decide(&a, &g(Level::Top, &finance, "x")).is_err());
        assert!(
            decide(&a, &g(Level::L2, &finance, "qn-admin")).is_err(),
            "not to itself"
        );
        let hcm = code("000.00.00.H29");
        assert!(decide(&a, &g(Level::L2, &hcm, "x")).is_err());
        let op = [GrantView {
            level: Level::Operator,
            rp_id: None,
            scope: None,
        }];
        let operator = Actor {
            account_id: "vpcp",
            grants: &op,
        };
        let qn = code("000.00.00.H49");
        assert!(decide(&operator, &g(Level::Top, &qn, "x")).is_ok());
        assert!(decide(&operator, &g(Level::Operator, &qn, "x")).is_err());
    }

    #[test]
    fn nobody_without_grants_may_do_anything() {
        let a = Actor {
            account_id: "x",
            grants: &[],
        };
        let unit = code("000.00.01.H49");
        for action in [
            Action::ViewMembers { rp_id: "pakn" },
            Action::Membership {
                rp_id: "pakn",
                unit: &unit,
            },
            Action::ManageRegistry,
            Action::ViewAudit { rp_id: None },
            Action::ViewAudit {
                rp_id: Some("pakn"),
            },
        ] {
            assert!(decide(&a, &action).is_err(), "{action:?}");
        }
    }
}
