//! Property tests for the delegated-administration policy ([`super::policy::decide`]).
//!
//! Every case builds a random agency tree (about two ministries or provinces, at least one,
//! with random children down to level 4), two or three relying parties, five to ten accounts
//! (`a0`, `a1`, ...) and a random set of initial grants (operator, top, 1, 2, 3 with random
//! scopes). The tests never ask `AgencyCode` whether one unit lies in another: the tree keeps
//! each unit's path of segments from level 1 down, and "unit lies in scope" is "the scope's
//! path is a prefix of the unit's path". That oracle is checked against `decide` directly
//! (scope, deny by default) and used to state the invariants of random sequences of grants
//! and revocations (no escalation).

use std::fmt;

use fedhub_identifiers::AgencyCode;
use proptest::prelude::*;
use proptest::sample::{select, subsequence, Index};
use proptest::test_runner::TestCaseError;

use super::policy::{decide, Action, Actor, GrantView, Level};

// Small pools on purpose: the same segment turns up under different parents (`01` under G12
// and under H49, `H12` next to `G12`), so a check that compared only the deepest segment, or
// only a suffix of the code, would be caught.
const ROOTS: [&str; 6] = ["G12", "G22", "H12", "H29", "H49", "H57"];
const LEVEL2: [&str; 5] = ["01", "02", "18", "1A", "A1"];
const LEVEL3: [&str; 3] = ["01", "02", "0B"];
const LEVEL4: [&str; 3] = ["001", "002", "01C"];
const RPS: [&str; 3] = ["pakn", "tthc", "dvc"];
/// A relying party nobody holds a grant in.
const FOREIGN_RP: &str = "nobody-admins-this";

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // Keep the work tree clean: no `proptest-regressions/` files next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The agency tree and the oracle
// ---------------------------------------------------------------------------------------------

/// One unit of the generated tree: its code and its path of segments from level 1 down.
#[derive(Clone, PartialEq, Eq)]
struct Node {
    code: AgencyCode,
    path: Vec<&'static str>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code.as_str())
    }
}

impl Node {
    fn new(path: Vec<&'static str>) -> Node {
        let seg = |i: usize, unused: &'static str| path.get(i).copied().unwrap_or(unused);
        let text = format!(
            "{}.{}.{}.{}",
            seg(3, "000"),
            seg(2, "00"),
            seg(1, "00"),
            seg(0, "")
        );
        let code = AgencyCode::parse(&text)
            .unwrap_or_else(|e| panic!("the generator built an invalid code {text}: {e}"));
        Node { code, path }
    }
}

/// The oracle: `unit` is `scope` or lies beneath it.
fn covers(scope: &Node, unit: &Node) -> bool {
    unit.path.starts_with(&scope.path)
}

/// Which units exist: `roots[r]` for `ROOTS[r]`, `l2[r][a]` for `LEVEL2[a]` under it, and so
/// on. Plain booleans rather than nested `prop_flat_map`s, so shrinking (true to false: fewer
/// units) is quick and direct.
type Mask = (
    [bool; 6],
    [[bool; 5]; 6],
    [[[bool; 3]; 5]; 6],
    [[[[bool; 3]; 3]; 5]; 6],
);

/// All units of a random tree, parents before their children: about two ministries or
/// provinces with a handful of units each.
fn tree() -> impl Strategy<Value = Vec<Node>> {
    use prop::array::{uniform3, uniform5, uniform6};
    use prop::bool::weighted;
    (
        uniform6(weighted(0.3)),
        uniform6(uniform5(weighted(0.35))),
        uniform6(uniform5(uniform3(weighted(0.3)))),
        uniform6(uniform5(uniform3(uniform3(weighted(0.25))))),
    )
        .prop_map(|(roots, l2, l3, l4): Mask| {
            let mut nodes = Vec::new();
            let any_root = roots.contains(&true);
            for (r, root) in ROOTS.into_iter().enumerate() {
                // Never an empty tree: without any root, the first one.
                if !(roots[r] || (r == 0 && !any_root)) {
                    continue;
                }
                nodes.push(Node::new(vec![root]));
                for (a, sa) in LEVEL2.into_iter().enumerate().filter(|&(a, _)| l2[r][a]) {
                    nodes.push(Node::new(vec![root, sa]));
                    for (b, sb) in LEVEL3.into_iter().enumerate().filter(|&(b, _)| l3[r][a][b]) {
                        nodes.push(Node::new(vec![root, sa, sb]));
                        for (c, sc) in LEVEL4.into_iter().enumerate() {
                            if l4[r][a][b][c] {
                                nodes.push(Node::new(vec![root, sa, sb, sc]));
                            }
                        }
                    }
                }
            }
            nodes
        })
}

#[derive(Debug, Clone)]
struct World {
    nodes: Vec<Node>,
    rps: Vec<&'static str>,
    /// Accounts are `a0` .. `a{accounts - 1}`.
    accounts: usize,
}

fn account(i: usize) -> String {
    format!("a{i}")
}

fn world() -> impl Strategy<Value = World> {
    (tree(), subsequence(RPS.to_vec(), 2..=3), 5usize..=10).prop_map(|(nodes, rps, accounts)| {
        World {
            nodes,
            rps,
            accounts,
        }
    })
}

/// An initial grant; for `Operator` the relying party and scope are ignored (the operator's
/// grant has neither).
#[derive(Debug, Clone)]
struct InitialGrant {
    holder: usize,
    level: Level,
    rp: &'static str,
    scope: Node,
}

fn initial_level() -> impl Strategy<Value = Level> {
    // The operator is rare, so that most cases have none and rights can only come from the
    // initial top/1/2/3 grants.
    prop_oneof![
        1 => Just(Level::Operator),
        3 => Just(Level::Top),
        3 => Just(Level::L1),
        3 => Just(Level::L2),
        3 => Just(Level::L3),
    ]
}

fn initial_grants(w: &World) -> impl Strategy<Value = Vec<InitialGrant>> {
    let one = (
        0..w.accounts,
        initial_level(),
        select(w.rps.clone()),
        select(w.nodes.clone()),
    )
        .prop_map(|(holder, level, rp, scope)| InitialGrant {
            holder,
            level,
            rp,
            scope,
        });
    prop::collection::vec(one, 0..=8)
}

fn view(g: &InitialGrant) -> GrantView {
    if g.level == Level::Operator {
        GrantView {
            level: Level::Operator,
            rp_id: None,
            scope: None,
        }
    } else {
        GrantView {
            level: g.level,
            rp_id: Some(g.rp.to_owned()),
            scope: Some(g.scope.code.clone()),
        }
    }
}

/// The grants `holder` starts with.
fn held_by(grants: &[InitialGrant], holder: usize) -> Vec<InitialGrant> {
    grants
        .iter()
        .filter(|g| g.holder == holder)
        .cloned()
        .collect()
}

/// The oracle's view of one actor's rights, from its grants and the tree paths.
struct Rights<'a> {
    grants: &'a [InitialGrant],
}

impl Rights<'_> {
    fn operator(&self) -> bool {
        self.grants.iter().any(|g| g.level == Level::Operator)
    }

    /// Non-operator grants in `rp`.
    fn in_rp<'b>(&'b self, rp: &'b str) -> impl Iterator<Item = &'b InitialGrant> + 'b {
        self.grants
            .iter()
            .filter(move |g| g.level != Level::Operator && g.rp == rp)
    }

    fn membership(&self, rp: &str, unit: &Node) -> bool {
        self.operator() || self.in_rp(rp).any(|g| covers(&g.scope, unit))
    }

    fn change_unit(&self, rp: &str, from: &Node, to: &Node) -> bool {
        self.operator()
            || self
                .in_rp(rp)
                .any(|g| covers(&g.scope, from) && covers(&g.scope, to))
    }

    fn grant_or_revoke(&self, me: &str, rp: &str, level: Level, scope: &Node, other: &str) -> bool {
        if other == me || level == Level::Operator {
            return false;
        }
        if self.operator() {
            return true;
        }
        level != Level::Top
            && self
                .in_rp(rp)
                .any(|g| level < g.level && covers(&g.scope, scope))
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Scope (and the rest of the documented rule)
// ---------------------------------------------------------------------------------------------

fn actor_in_world() -> impl Strategy<Value = (World, Vec<InitialGrant>, usize)> {
    world().prop_flat_map(|w| {
        let n = w.accounts;
        (Just(w.clone()), initial_grants(&w), 0..n)
    })
}

proptest! {
    #![proptest_config(config())]

    /// The generator only builds codes `AgencyCode::parse` accepts, and the library's view of
    /// the tree agrees with the paths the oracle uses.
    #[test]
    fn generated_trees_are_valid_agency_trees(w in world()) {
        for n in &w.nodes {
            prop_assert_eq!(usize::from(n.code.level()), n.path.len(), "{:?}", n);
            let expected: Vec<AgencyCode> = (1..n.path.len())
                .rev()
                .map(|len| Node::new(n.path[..len].to_vec()).code)
                .collect();
            prop_assert_eq!(n.code.ancestors(), expected, "{:?}", n);
        }
    }

    /// Membership and ChangeUnit are allowed exactly when the actor is the operator or holds,
    /// in that relying party, one grant whose scope contains the unit (for ChangeUnit: one
    /// grant containing both units).
    #[test]
    fn membership_and_change_unit_need_a_grant_covering_the_units(
        (w, grants, me) in actor_in_world()
    ) {
        let mine = held_by(&grants, me);
        let views: Vec<GrantView> = mine.iter().map(view).collect();
        let name = account(me);
        let actor = Actor { account_id: &name, grants: &views };
        let oracle = Rights { grants: &mine };
        let rps = w.rps.iter().copied().chain([FOREIGN_RP]);
        for rp in rps {
            for unit in &w.nodes {
                let allowed = decide(&actor, &Action::Membership { rp_id: rp, unit: &unit.code });
                prop_assert_eq!(
                    allowed.is_ok(),
                    oracle.membership(rp, unit),
                    "Membership {} {:?} by {:?}: {:?}", rp, unit, mine, allowed
                );
                for to in &w.nodes {
                    let action = Action::ChangeUnit { rp_id: rp, from: &unit.code, to: &to.code };
                    let allowed = decide(&actor, &action);
                    prop_assert_eq!(
                        allowed.is_ok(),
                        oracle.change_unit(rp, unit, to),
                        "ChangeUnit {} {:?} -> {:?} by {:?}: {:?}", rp, unit, to, mine, allowed
                    );
                }
            }
        }
    }

    /// Grant, Revoke, ViewMembers, ViewAudit and ManageRegistry follow the rule written in
    /// the policy's module documentation.
    #[test]
    fn grants_revocations_and_views_follow_the_documented_rule(
        (w, grants, me) in actor_in_world()
    ) {
        let mine = held_by(&grants, me);
        let views: Vec<GrantView> = mine.iter().map(view).collect();
        let name = account(me);
        let actor = Actor { account_id: &name, grants: &views };
        let oracle = Rights { grants: &mine };
        prop_assert_eq!(decide(&actor, &Action::ManageRegistry).is_ok(), oracle.operator());
        prop_assert_eq!(
            decide(&actor, &Action::ViewAudit { rp_id: None }).is_ok(),
            oracle.operator()
        );
        for rp in w.rps.iter().copied().chain([FOREIGN_RP]) {
            let any_here = oracle.operator() || oracle.in_rp(rp).next().is_some();
            prop_assert_eq!(decide(&actor, &Action::ViewMembers { rp_id: rp }).is_ok(), any_here);
            prop_assert_eq!(
                decide(&actor, &Action::ViewAudit { rp_id: Some(rp) }).is_ok(),
                any_here
            );
            for scope in &w.nodes {
                for level in Level::ALL {
                    // Only whether the other party is the actor matters to the rule.
                    for other in [name.clone(), account(me + 1)] {
                        let expected = oracle.grant_or_revoke(&name, rp, level, scope, &other);
                        let grant = Action::Grant {
                            rp_id: rp, level, scope: &scope.code, grantee: &other,
                        };
                        let revoke = Action::Revoke {
                            rp_id: rp, level, scope: &scope.code, holder: &other,
                        };
                        for action in [grant, revoke] {
                            let allowed = decide(&actor, &action);
                            prop_assert_eq!(
                                allowed.is_ok(),
                                expected,
                                "{:?} by {} holding {:?}: {:?}", action, name, mine, allowed
                            );
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. No escalation through any sequence of grants and revocations
// ---------------------------------------------------------------------------------------------

/// Where an attempted grant or revocation points.
#[derive(Debug, Clone)]
enum Target {
    /// Any relying party and unit.
    Anywhere { rp: &'static str, scope: Node },
    /// A unit inside one of the actor's own live grants (at the time of the step), in that
    /// grant's relying party: attempts that have a chance of being allowed.
    UnderOwn { grant: Index, unit: Index },
}

/// Who attempts a step.
#[derive(Debug, Clone)]
enum Who {
    /// Any account, with or without grants.
    Account(usize),
    /// One of the accounts that hold a live grant at the time of the step: attempts that
    /// have a chance of being allowed, and chains of grants more than one step long.
    Holder(Index),
}

#[derive(Debug, Clone)]
enum Step {
    Grant {
        actor: Who,
        level: Level,
        to: usize,
        target: Target,
    },
    Revoke {
        actor: Who,
        level: Level,
        from: usize,
        target: Target,
    },
    /// Revoke exactly one of the live grants `from` holds (at the time of the step).
    RevokeHeld {
        actor: Who,
        from: usize,
        grant: Index,
    },
}

fn target(w: &World) -> impl Strategy<Value = Target> {
    prop_oneof![
        1 => (select(w.rps.clone()), select(w.nodes.clone()))
            .prop_map(|(rp, scope)| Target::Anywhere { rp, scope }),
        3 => (any::<Index>(), any::<Index>())
            .prop_map(|(grant, unit)| Target::UnderOwn { grant, unit }),
    ]
}

/// Any level, the ones below top more often (those are the ones a non-operator may give).
fn level() -> impl Strategy<Value = Level> {
    prop_oneof![
        1 => Just(Level::Operator),
        1 => Just(Level::Top),
        3 => Just(Level::L1),
        3 => Just(Level::L2),
        3 => Just(Level::L3),
    ]
}

fn who(n: usize) -> impl Strategy<Value = Who> {
    prop_oneof![
        1 => (0..n).prop_map(Who::Account),
        4 => any::<Index>().prop_map(Who::Holder),
    ]
}

fn steps(w: &World) -> impl Strategy<Value = Vec<Step>> {
    let n = w.accounts;
    let step = prop_oneof![
        4 => (who(n), level(), 0..n, target(w))
            .prop_map(|(actor, level, to, target)| Step::Grant { actor, level, to, target }),
        1 => (who(n), level(), 0..n, target(w))
            .prop_map(|(actor, level, from, target)| Step::Revoke { actor, level, from, target }),
        2 => (who(n), 0..n, any::<Index>())
            .prop_map(|(actor, from, grant)| Step::RevokeHeld { actor, from, grant }),
    ];
    prop::collection::vec(step, 0..=30)
}

fn scenario() -> impl Strategy<Value = (World, Vec<InitialGrant>, Vec<Step>)> {
    world().prop_flat_map(|w| (Just(w.clone()), initial_grants(&w), steps(&w)))
}

#[derive(Debug, Clone)]
enum Origin {
    Initial,
    /// Created at `step` by `by`, who then held the live grants `creator_held` (ids).
    Created {
        by: usize,
        step: usize,
        creator_held: Vec<usize>,
    },
}

/// One grant in the simulated store; never deleted, revocation clears `live`.
#[derive(Debug, Clone)]
struct Record {
    id: usize,
    holder: usize,
    level: Level,
    /// `None` only for the operator's grant.
    rp: Option<&'static str>,
    scope: Option<Node>,
    live: bool,
    origin: Origin,
}

impl Record {
    fn view(&self) -> GrantView {
        GrantView {
            level: self.level,
            rp_id: self.rp.map(str::to_owned),
            scope: self.scope.as_ref().map(|n| n.code.clone()),
        }
    }

    /// The rank this grant gives in `rp` over `unit`, if any (the operator's covers all).
    fn rank_over(&self, rp: &str, unit: &Node) -> Option<Level> {
        if self.level == Level::Operator {
            return Some(Level::Operator);
        }
        match (self.rp, &self.scope) {
            (Some(r), Some(scope)) if r == rp && covers(scope, unit) => Some(self.level),
            _ => None,
        }
    }
}

struct Store {
    records: Vec<Record>,
}

impl Store {
    fn live_of(&self, holder: usize) -> impl Iterator<Item = &Record> {
        self.records
            .iter()
            .filter(move |r| r.live && r.holder == holder)
    }

    fn views_of(&self, holder: usize) -> Vec<GrantView> {
        self.live_of(holder).map(Record::view).collect()
    }

    /// The highest rank `holder`'s live grants give in `rp` over `unit`.
    fn top_rank(&self, holder: usize, rp: &str, unit: &Node) -> Option<Level> {
        self.live_of(holder)
            .filter_map(|r| r.rank_over(rp, unit))
            .max()
    }

    /// Whether `parent` (held by the creator when `child` was created) makes `child`
    /// legitimate: a strictly higher level, in the same relying party, over a superset of
    /// the child's scope (the operator's grant is above everything but itself).
    fn justifies(parent: &Record, child: &Record) -> bool {
        if child.level >= parent.level {
            return false;
        }
        if parent.level == Level::Operator {
            return true;
        }
        match (parent.rp, &parent.scope, child.rp, &child.scope) {
            (Some(prp), Some(pscope), Some(crp), Some(cscope)) => {
                prp == crp && covers(pscope, cscope)
            }
            _ => false,
        }
    }

    /// Whether `r` goes back, through grants each created by someone who held a justifying
    /// grant at that moment, to an initial grant.
    fn rooted(&self, r: &Record) -> bool {
        match &r.origin {
            Origin::Initial => true,
            // Levels strictly rise along the chain, so it is at most five long.
            Origin::Created { creator_held, .. } => creator_held.iter().any(|&p| {
                let parent = &self.records[p];
                Self::justifies(parent, r) && self.rooted(parent)
            }),
        }
    }
}

/// What one step attempted and whether `decide` allowed it.
struct Attempt {
    grant: bool,
    actor: usize,
    rp: &'static str,
    level: Level,
    scope: Node,
    other: usize,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (verb, dir) = if self.grant {
            ("grants", "to")
        } else {
            ("revokes", "from")
        };
        write!(
            f,
            "a{} {verb} {:?} over {:?} in {} {dir} a{}",
            self.actor, self.level, self.scope, self.rp, self.other
        )
    }
}

/// Turns a generated step into a concrete attempt against the current store.
fn resolve(w: &World, store: &Store, step: &Step) -> Option<Attempt> {
    let who = |actor: &Who| match actor {
        Who::Account(a) => *a,
        Who::Holder(ix) => {
            let holders: Vec<usize> = (0..w.accounts)
                .filter(|&a| store.live_of(a).next().is_some())
                .collect();
            if holders.is_empty() {
                0
            } else {
                *ix.get(&holders)
            }
        }
    };
    let pick = |actor: usize, t: &Target| -> (&'static str, Node) {
        match t {
            Target::Anywhere { rp, scope } => (*rp, scope.clone()),
            Target::UnderOwn { grant, unit } => {
                let own: Vec<&Record> = store
                    .live_of(actor)
                    .filter(|r| r.rp.is_some() && r.scope.is_some())
                    .collect();
                let fallback = (w.rps[0], w.nodes[0].clone());
                if own.is_empty() {
                    return fallback;
                }
                let g = grant.get(&own);
                match (g.rp, &g.scope) {
                    (Some(rp), Some(scope)) => {
                        let under: Vec<&Node> =
                            w.nodes.iter().filter(|n| covers(scope, n)).collect();
                        (rp, (*unit.get(&under)).clone())
                    }
                    _ => fallback,
                }
            }
        }
    };
    match step {
        Step::Grant {
            actor,
            level,
            to,
            target,
        } => {
            let actor = who(actor);
            let (rp, scope) = pick(actor, target);
            Some(Attempt {
                grant: true,
                actor,
                rp,
                level: *level,
                scope,
                other: *to,
            })
        }
        Step::Revoke {
            actor,
            level,
            from,
            target,
        } => {
            let actor = who(actor);
            let (rp, scope) = pick(actor, target);
            Some(Attempt {
                grant: false,
                actor,
                rp,
                level: *level,
                scope,
                other: *from,
            })
        }
        Step::RevokeHeld { actor, from, grant } => {
            let held: Vec<&Record> = store.live_of(*from).collect();
            if held.is_empty() {
                return None;
            }
            let g = grant.get(&held);
            Some(Attempt {
                grant: false,
                actor: who(actor),
                // The operator's grant has neither; any values do to ask for its revocation.
                rp: g.rp.unwrap_or(w.rps[0]),
                level: g.level,
                scope: g.scope.clone().unwrap_or_else(|| w.nodes[0].clone()),
                other: *from,
            })
        }
    }
}

/// Checks the invariants (a)-(d) on the store after a step; `trace` is what happened so far.
fn check_invariants(
    w: &World,
    store: &Store,
    initial: &Store,
    trace: &[String],
) -> Result<(), TestCaseError> {
    let trace = || trace.join("\n  ");
    let live: Vec<&Record> = store.records.iter().filter(|r| r.live).collect();

    for r in &live {
        if let Origin::Created {
            by,
            step,
            creator_held,
        } = &r.origin
        {
            // (a) Nobody holds a grant they created themselves.
            prop_assert_ne!(
                *by,
                r.holder,
                "a{} holds a grant they created: {:?}\n  {}",
                r.holder,
                r,
                trace()
            );
            // (c) Top only from the operator; Operator never created.
            prop_assert_ne!(
                r.level,
                Level::Operator,
                "operator created: {:?}\n  {}",
                r,
                trace()
            );
            if r.level == Level::Top {
                prop_assert!(
                    creator_held
                        .iter()
                        .any(|&p| store.records[p].level == Level::Operator),
                    "top admin granted at step {} by a{}, not the operator: {:?}\n  {}",
                    step,
                    by,
                    r,
                    trace()
                );
            }
            // (d) The creator then held a strictly higher level over a superset, in the same
            // relying party, and that grant is itself rooted in an initial grant.
            prop_assert!(
                store.rooted(r),
                "grant not rooted in an initial grant: {:?}\n  {}",
                r,
                trace()
            );
        }
    }

    // (c) The set of operators never grows.
    for a in 0..w.accounts {
        let now = store.live_of(a).any(|r| r.level == Level::Operator);
        let then = initial.live_of(a).any(|r| r.level == Level::Operator);
        prop_assert!(!now || then, "a{} became operator\n  {}", a, trace());
    }

    for rp in w.rps.iter().copied() {
        for unit in &w.nodes {
            // Rights at a unit come only from above: no created grant reaches the highest
            // level anyone initially had over the unit. With nobody above the unit at the
            // start, nothing at all is ever created over it (no cycle of mutual grants helps).
            let cap = (0..w.accounts)
                .filter_map(|a| initial.top_rank(a, rp, unit))
                .max();
            for r in &live {
                if matches!(r.origin, Origin::Created { .. }) {
                    if let Some(rank) = r.rank_over(rp, unit) {
                        prop_assert!(
                            cap.is_some_and(|cap| rank < cap),
                            "{:?} over {:?} in {} exceeds the initial ceiling {:?}: {:?}\n  {}",
                            rank,
                            unit,
                            rp,
                            cap,
                            r,
                            trace()
                        );
                    }
                }
            }
            for a in 0..w.accounts {
                // (b) Whoever rises above their initial rank over a unit got the raising grant
                // from someone who, at that moment, held a strictly higher rank over that unit
                // in that relying party.
                let start = initial.top_rank(a, rp, unit);
                let now = store.top_rank(a, rp, unit);
                if now <= start {
                    continue;
                }
                for r in store.live_of(a) {
                    let Some(rank) = r.rank_over(rp, unit) else {
                        continue;
                    };
                    if Some(rank) <= start {
                        continue;
                    }
                    let Origin::Created { creator_held, .. } = &r.origin else {
                        return Err(TestCaseError::fail(format!(
                            "initial grant above the initial rank: {r:?}"
                        )));
                    };
                    let from_above = creator_held.iter().any(|&p| {
                        store.records[p]
                            .rank_over(rp, unit)
                            .is_some_and(|creator_rank| creator_rank > rank)
                    });
                    prop_assert!(
                        from_above,
                        "a{} rose from {:?} to {:?} over {:?} in {} without it coming from \
                         above: {:?}\n  {}",
                        a,
                        start,
                        rank,
                        unit,
                        rp,
                        r,
                        trace()
                    );
                }
            }
        }
    }
    Ok(())
}

/// (d) after the sequence: every allowed Membership is backed by a live grant of the actor
/// that is rooted in an initial grant.
fn check_memberships_are_rooted(
    w: &World,
    store: &Store,
    trace: &[String],
) -> Result<(), TestCaseError> {
    for a in 0..w.accounts {
        let name = account(a);
        let views = store.views_of(a);
        let actor = Actor {
            account_id: &name,
            grants: &views,
        };
        for rp in w.rps.iter().copied() {
            for unit in &w.nodes {
                let action = Action::Membership {
                    rp_id: rp,
                    unit: &unit.code,
                };
                if decide(&actor, &action).is_ok() {
                    let backed = store
                        .live_of(a)
                        .any(|r| r.rank_over(rp, unit).is_some() && store.rooted(r));
                    prop_assert!(
                        backed,
                        "a{} may act on {:?} in {} with no rooted grant: {:?}\n  {}",
                        a,
                        unit,
                        rp,
                        views,
                        trace.join("\n  ")
                    );
                }
            }
        }
    }
    Ok(())
}

fn initial_store(grants: &[InitialGrant]) -> Store {
    let records = grants
        .iter()
        .enumerate()
        .map(|(id, g)| {
            let operator = g.level == Level::Operator;
            Record {
                id,
                holder: g.holder,
                level: g.level,
                rp: (!operator).then_some(g.rp),
                scope: (!operator).then(|| g.scope.clone()),
                live: true,
                origin: Origin::Initial,
            }
        })
        .collect();
    Store { records }
}

proptest! {
    #![proptest_config(config())]

    /// Random actors attempt random grants and revocations; only those `decide` allows are
    /// applied, and after every step the invariants hold.
    #[test]
    fn no_escalation_through_any_sequence((w, grants, steps) in scenario()) {
        let initial = initial_store(&grants);
        let mut store = initial_store(&grants);
        let mut trace: Vec<String> = grants
            .iter()
            .map(|g| format!("initially a{} holds {:?}", g.holder, view(g)))
            .collect();
        for (i, step) in steps.iter().enumerate() {
            let Some(attempt) = resolve(&w, &store, step) else {
                continue;
            };
            let name = account(attempt.actor);
            let other = account(attempt.other);
            let views = store.views_of(attempt.actor);
            let actor = Actor { account_id: &name, grants: &views };
            let action = if attempt.grant {
                Action::Grant {
                    rp_id: attempt.rp,
                    level: attempt.level,
                    scope: &attempt.scope.code,
                    grantee: &other,
                }
            } else {
                Action::Revoke {
                    rp_id: attempt.rp,
                    level: attempt.level,
                    scope: &attempt.scope.code,
                    holder: &other,
                }
            };
            let allowed = decide(&actor, &action).is_ok();
            trace.push(format!(
                "step {i}: {attempt}: {}",
                if allowed { "allowed" } else { "denied" }
            ));
            if attempt.actor == attempt.other {
                prop_assert!(!allowed, "self-service allowed\n  {}", trace.join("\n  "));
            }
            if !allowed {
                continue;
            }
            if attempt.grant {
                let creator_held = store.live_of(attempt.actor).map(|r| r.id).collect();
                let id = store.records.len();
                store.records.push(Record {
                    id,
                    holder: attempt.other,
                    level: attempt.level,
                    rp: Some(attempt.rp),
                    scope: Some(attempt.scope.clone()),
                    live: true,
                    origin: Origin::Created { by: attempt.actor, step: i, creator_held },
                });
            } else {
                let matching = store.records.iter_mut().find(|r| {
                    r.live
                        && r.holder == attempt.other
                        && r.level == attempt.level
                        && r.rp == Some(attempt.rp)
                        && r.scope.as_ref() == Some(&attempt.scope)
                });
                if let Some(r) = matching {
                    r.live = false;
                }
            }
            check_invariants(&w, &store, &initial, &trace)?;
        }
        check_memberships_are_rooted(&w, &store, &trace)?;
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Deny by default
// ---------------------------------------------------------------------------------------------

/// Names every variant; without a wildcard arm, a new variant does not compile until it is
/// added to the deny-by-default test below.
fn variant(action: &Action<'_>) -> &'static str {
    match action {
        Action::ViewMembers { .. } => "ViewMembers",
        Action::Membership { .. } => "Membership",
        Action::ChangeUnit { .. } => "ChangeUnit",
        Action::Grant { .. } => "Grant",
        Action::Revoke { .. } => "Revoke",
        Action::ManageRegistry => "ManageRegistry",
        Action::ViewAudit { .. } => "ViewAudit",
    }
}

const VARIANTS: [&str; 7] = [
    "ViewMembers",
    "Membership",
    "ChangeUnit",
    "Grant",
    "Revoke",
    "ManageRegistry",
    "ViewAudit",
];

proptest! {
    #![proptest_config(config())]

    /// An actor without grants is refused every action, whatever its arguments (including
    /// granting to or revoking from itself, at every level).
    #[test]
    fn an_actor_without_grants_is_refused_everything(
        w in world(),
        me in "[a-z0-9-]{0,8}",
    ) {
        let actor = Actor { account_id: &me, grants: &[] };
        let others: Vec<String> = (0..w.accounts).map(account).chain([me.clone()]).collect();
        let mut actions = vec![Action::ManageRegistry, Action::ViewAudit { rp_id: None }];
        for rp in w.rps.iter().copied().chain([FOREIGN_RP]) {
            actions.push(Action::ViewMembers { rp_id: rp });
            actions.push(Action::ViewAudit { rp_id: Some(rp) });
            for unit in &w.nodes {
                actions.push(Action::Membership { rp_id: rp, unit: &unit.code });
                for to in &w.nodes {
                    actions.push(Action::ChangeUnit { rp_id: rp, from: &unit.code, to: &to.code });
                }
                for level in Level::ALL {
                    for other in &others {
                        actions.push(Action::Grant {
                            rp_id: rp, level, scope: &unit.code, grantee: other,
                        });
                        actions.push(Action::Revoke {
                            rp_id: rp, level, scope: &unit.code, holder: other,
                        });
                    }
                }
            }
        }
        let mut seen: Vec<&str> = actions.iter().map(variant).collect();
        seen.sort_unstable();
        seen.dedup();
        let mut all = VARIANTS.to_vec();
        all.sort_unstable();
        prop_assert_eq!(seen, all);
        for action in &actions {
            prop_assert!(decide(&actor, action).is_err(), "{} allowed {:?}", me, action);
        }
    }
}
