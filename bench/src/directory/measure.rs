//! `fedhub-load directory`: how long the user-management list and the directory search take
//! on a generated directory (`fedhub-load directory-data`).
//!
//! Every call goes through the product's own functions on a store of one connection, one
//! call at a time: `admin::memberships::list` for an admin with a level-1 grant over one
//! ministry or province in one relying party, and `directory::accounts::find`. For each call
//! the tool records the wall time and the CPU time of this thread (which runs SQLite, or the
//! PostgreSQL client) and, on PostgreSQL, of the server process serving the connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use diesel::connection::{Connection, InstrumentationEvent, SimpleConnection};
use diesel::prelude::*;
use fedhub::admin::memberships::{self, Admin, ListQuery};
use fedhub::admin::policy::{GrantView, Level};
use fedhub::directory::accounts;
use fedhub::store::schema::{accounts as ac, agencies as ag, memberships as m, relying_parties};
use fedhub::store::{Db, Store};
use fedhub_identifiers::AgencyCode;
use serde_json::json;

use super::names::Rng;
use super::DataArgs;
use crate::procstat;
use crate::setup::Engine;

#[derive(Debug, clap::Args)]
pub struct MeasureArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Measured calls per query kind and scenario.
    #[arg(long, default_value_t = 200)]
    pub iterations: usize,
    /// Calls per query kind and scenario before measuring (not counted).
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Seed of the random choices (relying parties, subtrees, search terms).
    #[arg(long, default_value_t = 2)]
    pub seed: u64,
    /// SQL to run on the data set before measuring, e.g. an index to try (repeatable). It
    /// changes the stored data set: generate it again to undo.
    #[arg(long = "try-sql")]
    pub try_sql: Vec<String>,
    /// Print the statements one call of each kind sends, and the engine's plan for each
    /// (EXPLAIN QUERY PLAN on SQLite, EXPLAIN ANALYZE on PostgreSQL); then measure.
    #[arg(long)]
    pub explain: bool,
    /// Also print the N slowest calls of each kind, with their arguments.
    #[arg(long, default_value_t = 0)]
    pub slowest: usize,
    /// The p95 every query kind must stay under, in milliseconds; above it the tool exits 1.
    #[arg(long, default_value_t = 50.0)]
    pub target_ms: f64,
}

/// Which relying parties the admin works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Any of them, uniformly (most are small).
    RandomRp,
    /// The one with the most memberships.
    LargestRp,
    /// The largest RP, always with the level-1 subtree holding most of its members (the
    /// admin with the most to list).
    LargestSubtree,
    /// Directory search (no relying party).
    Directory,
}

impl Scenario {
    fn as_str(self) -> &'static str {
        match self {
            Scenario::RandomRp => "random RP",
            Scenario::LargestRp => "largest RP",
            Scenario::LargestSubtree => "largest subtree",
            Scenario::Directory => "directory",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    ListName,
    ListCccd,
    ListStatus,
    ListUnit,
    FindName,
    FindCccd,
    FindPhone,
    FindTaxCode,
}

impl Kind {
    const LIST: [Kind; 5] = [
        Kind::List,
        Kind::ListName,
        Kind::ListCccd,
        Kind::ListStatus,
        Kind::ListUnit,
    ];
    const FIND: [Kind; 4] = [
        Kind::FindName,
        Kind::FindCccd,
        Kind::FindPhone,
        Kind::FindTaxCode,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Kind::List => "list (page 1, total)",
            Kind::ListName => "list q=<name>",
            Kind::ListCccd => "list q=<CCCD>",
            Kind::ListStatus => "list status=",
            Kind::ListUnit => "list unit=<sub-unit>",
            Kind::FindName => "find <name>",
            Kind::FindCccd => "find <CCCD>",
            Kind::FindPhone => "find <phone>",
            Kind::FindTaxCode => "find <tax code>",
        }
    }
}

/// What the tool knows of the data set, loaded before measuring.
struct Catalogue {
    /// Relying parties with their membership counts, largest first.
    rps: Vec<(String, i64)>,
    /// The largest one's client_id or entityID.
    largest_entity_id: String,
    /// Level-1 agencies (the admin scopes).
    level1: Vec<AgencyCode>,
    /// The level-1 agency with the most members in the largest RP, and how many.
    largest_subtree: (AgencyCode, usize),
    /// Units at level 2 and 3, by level-1 segment (the `unit=` filter).
    sub_units: HashMap<String, Vec<AgencyCode>>,
    /// A random sample of memberships: (RP, level-1 segment, display name, CCCD).
    members: Vec<(String, String, String, Option<String>)>,
    /// Sample indexes by RP, and by RP and level-1 segment.
    by_rp: HashMap<String, Vec<usize>>,
    by_rp_level1: HashMap<(String, String), Vec<usize>>,
    /// A random sample of accounts: (display name, CCCD, phone in national form, tax code).
    accounts: Vec<AccountSample>,
    tax_codes: Vec<String>,
}

type AccountSample = (String, Option<String>, Option<String>, Option<String>);

impl Catalogue {
    fn load(store: &Store) -> Result<Catalogue> {
        store
            .read(|c| {
                let entity_ids: HashMap<String, String> = relying_parties::table
                    .select((relying_parties::id, relying_parties::entity_id))
                    .load::<(String, String)>(c)?
                    .into_iter()
                    .collect();
                let mut rps: Vec<(String, i64)> =
                    entity_ids.keys().map(|id| (id.clone(), 0)).collect();
                let counts: HashMap<String, i64> = m::table
                    .group_by(m::rp_id)
                    .select((m::rp_id, diesel::dsl::count_star()))
                    .load::<(String, i64)>(c)?
                    .into_iter()
                    .collect();
                for (id, n) in &mut rps {
                    *n = counts.get(id).copied().unwrap_or(0);
                }
                rps.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let codes: Vec<String> = ag::table.select(ag::code).order(ag::code).load(c)?;
                let mut level1 = Vec::new();
                let mut sub_units: HashMap<String, Vec<AgencyCode>> = HashMap::new();
                for code in codes.iter().filter_map(|s| AgencyCode::parse(s).ok()) {
                    match code.level() {
                        1 => level1.push(code),
                        2 | 3 => sub_units
                            .entry(code.level1().to_string())
                            .or_default()
                            .push(code),
                        _ => {}
                    }
                }
                // Ids are random UUIDs: the first rows by id are a random sample.
                let members: Vec<(String, String, String, Option<String>)> = m::table
                    .inner_join(ac::table)
                    .select((
                        m::rp_id,
                        m::unit_agency_code.assume_not_null(),
                        ac::display_name,
                        ac::national_id,
                    ))
                    .filter(m::unit_agency_code.is_not_null())
                    .order(m::id)
                    .limit(30_000)
                    .load(c)?;
                let members = members
                    .into_iter()
                    .map(|(rp, unit, name, nid)| {
                        let l1 = unit.get(10..13).unwrap_or_default().to_string();
                        (rp, l1, name, nid)
                    })
                    .collect::<Vec<_>>();
                let mut by_rp: HashMap<String, Vec<usize>> = HashMap::new();
                let mut by_rp_level1: HashMap<(String, String), Vec<usize>> = HashMap::new();
                for (i, (rp, l1, _, _)) in members.iter().enumerate() {
                    by_rp.entry(rp.clone()).or_default().push(i);
                    by_rp_level1
                        .entry((rp.clone(), l1.clone()))
                        .or_default()
                        .push(i);
                }
                let mut per_level1: HashMap<String, usize> = HashMap::new();
                if let Some((rp, _)) = rps.first() {
                    let paths: Vec<Option<String>> = m::table
                        .filter(m::rp_id.eq(rp))
                        .select(m::unit_path)
                        .load(c)?;
                    for p in paths.iter().flatten() {
                        *per_level1
                            .entry(p.get(..3).unwrap_or_default().to_string())
                            .or_default() += 1;
                    }
                }
                let largest_subtree = level1
                    .iter()
                    .map(|code| {
                        let n = per_level1.get(code.level1()).copied().unwrap_or(0);
                        (code.clone(), n)
                    })
                    .max_by_key(|(_, n)| *n)
                    .ok_or_else(|| fedhub::Error::Internal("no level-1 agency".into()))?;
                let accounts: Vec<AccountSample> = ac::table
                    .select((ac::display_name, ac::national_id, ac::phone, ac::tax_code))
                    .order(ac::id)
                    .limit(5_000)
                    .load(c)?;
                let tax_codes: Vec<String> = ac::table
                    .select(ac::tax_code.assume_not_null())
                    .filter(ac::tax_code.is_not_null())
                    .order(ac::id)
                    .limit(1_000)
                    .load(c)?;
                Ok(Catalogue {
                    largest_entity_id: rps
                        .first()
                        .and_then(|(id, _)| entity_ids.get(id))
                        .cloned()
                        .unwrap_or_default(),
                    rps,
                    level1,
                    largest_subtree,
                    sub_units,
                    members,
                    by_rp,
                    by_rp_level1,
                    accounts,
                    tax_codes,
                })
            })
            .context("reading the data set")
    }
}

/// One call to make: the relying party and scope of the admin, and the call's arguments.
struct Call {
    rp_id: String,
    scope: AgencyCode,
    query: ListQuery,
    /// For directory search.
    text: String,
}

impl Call {
    fn describe(&self, found: i64) -> String {
        let mut args = Vec::new();
        if !self.text.is_empty() {
            args.push(format!("{:?}", self.text));
        } else {
            args.push(format!("rp {} scope {}", self.rp_id, self.scope));
            for (name, value) in [
                ("q", &self.query.q),
                ("status", &self.query.status),
                ("unit", &self.query.unit),
            ] {
                if let Some(v) = value {
                    args.push(format!("{name}={v:?}"));
                }
            }
        }
        format!("{} → {found}", args.join(" "))
    }
}

/// A name fragment as people type it: the given name with its accents ("Hương"), family
/// and middle name ("Nguyễn Thị"), or the whole name without accents ("nguyen thi huong").
fn name_fragment(name: &str, rng: &mut Rng) -> String {
    let words: Vec<&str> = name.split(' ').collect();
    match rng.below(3) {
        0 => words.last().copied().unwrap_or(name).to_string(),
        1 if words.len() > 2 => words[..2].join(" "),
        _ => fedhub::directory::fold_name(name),
    }
}

fn make_call(cat: &Catalogue, scenario: Scenario, kind: Kind, rng: &mut Rng) -> Result<Call> {
    let rp_id = match scenario {
        Scenario::LargestRp | Scenario::LargestSubtree => cat.rps.first(),
        _ => (!cat.rps.is_empty()).then(|| rng.pick(&cat.rps)),
    }
    .map(|(id, _)| id.clone())
    .ok_or_else(|| anyhow!("the data set has no relying party"))?;
    let scope = match scenario {
        Scenario::LargestSubtree => cat.largest_subtree.0.clone(),
        _ => rng.pick(&cat.level1).clone(),
    };
    let l1 = scope.level1().to_string();
    // A member of this RP, in the admin's subtree when the sample has one: the search then
    // finds someone.
    let member = cat
        .by_rp_level1
        .get(&(rp_id.clone(), l1.clone()))
        .or_else(|| cat.by_rp.get(&rp_id))
        .map(|ix| &cat.members[*rng.pick(ix)]);
    let account = rng.pick(&cat.accounts);
    let mut query = ListQuery {
        page: Some(1),
        per_page: Some(20),
        ..Default::default()
    };
    let mut text = String::new();
    match kind {
        Kind::List => {}
        Kind::ListName => {
            let name = member.map_or(&account.0, |m| &m.2);
            query.q = Some(name_fragment(name, rng));
        }
        Kind::ListCccd => {
            query.q = member
                .and_then(|m| m.3.clone())
                .or_else(|| account.1.clone())
                .or_else(|| Some("001090012345".into()));
        }
        Kind::ListStatus => {
            query.status = Some(
                rng.pick(&[
                    memberships::ACTIVATED,
                    memberships::NOT_ACTIVATED,
                    memberships::LOCKED,
                ])
                .to_string(),
            );
        }
        Kind::ListUnit => {
            query.unit = Some(
                cat.sub_units
                    .get(&l1)
                    .filter(|u| !u.is_empty())
                    .map_or(&scope, |u| rng.pick(u))
                    .to_string(),
            );
        }
        Kind::FindName => text = name_fragment(&account.0, rng),
        Kind::FindCccd => {
            text = account.1.clone().unwrap_or_else(|| "001090012345".into());
        }
        Kind::FindPhone => {
            // As typed on a Vietnamese screen: 0912345678.
            text = account
                .2
                .as_deref()
                .and_then(|p| p.strip_prefix("+84"))
                .map_or_else(|| "0912345678".into(), |rest| format!("0{rest}"));
        }
        Kind::FindTaxCode => {
            text = if cat.tax_codes.is_empty() {
                "0301519977".into()
            } else {
                rng.pick(&cat.tax_codes).clone()
            };
        }
    }
    Ok(Call {
        rp_id,
        scope,
        query,
        text,
    })
}

/// Runs the call; returns the number of matches (the list's total, or the results found).
fn run_call(c: &mut Db, kind: Kind, call: &Call) -> fedhub::Result<i64> {
    if Kind::FIND.contains(&kind) {
        return Ok(accounts::find(c, &call.text, 20)?.len() as i64);
    }
    let admin = Admin {
        actor: "fedhub-load".into(),
        account_id: "fedhub-load".into(),
        grants: vec![GrantView {
            level: Level::L1,
            rp_id: Some(call.rp_id.clone()),
            scope: Some(call.scope.clone()),
        }],
    };
    Ok(memberships::list(c, &admin, &call.rp_id, &call.query)?.total)
}

/// Nanoseconds on a CPU so far: of this thread (`"thread-self"`) or of a process, from
/// `/proc/<pid>/schedstat` (exact, unlike the tick-based counters of `/proc/<pid>/stat`).
fn cpu_ns(pid: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The measurements of one query kind in one scenario.
#[derive(Default)]
struct Series {
    wall: Vec<Duration>,
    own_cpu_ns: u64,
    db_cpu_ns: u64,
    matches: i64,
    /// The slowest calls with what they asked (`--slowest`).
    slowest: Vec<(Duration, String)>,
}

pub fn run(args: &MeasureArgs) -> Result<()> {
    if args.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    // One connection, one call at a time: latency of a single admin, no queueing.
    let store = args.data.store(1)?;
    if store.pending_migrations()? > 0 {
        bail!(
            "{} is not a generated data set (migrations pending): run `fedhub-load directory-data` first",
            args.data.describe()
        );
    }
    for sql in &args.try_sql {
        let started = Instant::now();
        store
            .read(|c| Ok(c.batch_execute(sql)?))
            .with_context(|| format!("--try-sql {sql}"))?;
        eprintln!(
            "fedhub-load: ran {sql:?} in {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }
    let cat = Catalogue::load(&store)?;
    if cat.level1.is_empty() || cat.accounts.is_empty() {
        bail!("the data set is empty: run `fedhub-load directory-data` first");
    }
    let backend = match args.data.engine {
        Engine::Postgres => Some(backend_pid(&store)?),
        Engine::Sqlite => None,
    };
    let counts = store.read(|c| {
        let n_accounts: i64 = ac::table.count().get_result(c)?;
        let n_agencies: i64 = ag::table.count().get_result(c)?;
        let n_memberships: i64 = m::table.count().get_result(c)?;
        Ok((n_accounts, n_agencies, n_memberships))
    })?;
    let largest = cat.rps.first().cloned().unwrap_or_default();
    eprintln!(
        "fedhub-load: {}: {} accounts, {} agencies ({} level-1 scopes), {} relying parties, {} memberships (largest RP {}: {}, of them {} in {}); {} warm-up + {} measured calls per kind",
        args.data.describe(),
        counts.0,
        counts.1,
        cat.level1.len(),
        cat.rps.len(),
        counts.2,
        cat.largest_entity_id,
        largest.1,
        cat.largest_subtree.1,
        cat.largest_subtree.0,
        args.warmup,
        args.iterations
    );

    let plan: Vec<(Scenario, Kind)> = [
        Scenario::RandomRp,
        Scenario::LargestRp,
        Scenario::LargestSubtree,
    ]
    .into_iter()
    .flat_map(|s| Kind::LIST.into_iter().map(move |k| (s, k)))
    .chain(Kind::FIND.into_iter().map(|k| (Scenario::Directory, k)))
    .collect();

    let mut rng = Rng::new(args.seed);
    if args.explain {
        for &(scenario, kind) in &plan {
            let call = make_call(&cat, scenario, kind, &mut rng)?;
            explain(&store, args.data.engine, scenario, kind, &call)?;
        }
    }

    let ticks = procstat::clock_ticks();
    let process_cpu_0 = procstat::cpu_seconds("self", ticks)?;
    let machine_0 = procstat::machine_busy_seconds(ticks)?;
    let db_total_0 = backend.and_then(|pid| cpu_ns(&pid.to_string()));
    let started = Instant::now();
    let mut series: Vec<Series> = plan.iter().map(|_| Series::default()).collect();
    let backend_id = backend.map(|pid| pid.to_string());
    for round in 0..args.warmup + args.iterations {
        // Kinds take turns, so each sees the same state of the caches.
        for (i, &(scenario, kind)) in plan.iter().enumerate() {
            let call = make_call(&cat, scenario, kind, &mut rng)?;
            let own_0 = cpu_ns("thread-self").unwrap_or(0);
            let db_0 = backend_id.as_deref().and_then(cpu_ns).unwrap_or(0);
            let began = Instant::now();
            let found = store
                .read(|c| run_call(c, kind, &call))
                .with_context(|| format!("{} {}", scenario.as_str(), kind.as_str()))?;
            let wall = began.elapsed();
            let own = cpu_ns("thread-self").unwrap_or(0).saturating_sub(own_0);
            let db = backend_id
                .as_deref()
                .and_then(cpu_ns)
                .unwrap_or(0)
                .saturating_sub(db_0);
            if round >= args.warmup {
                let s = &mut series[i];
                s.wall.push(wall);
                s.own_cpu_ns += own;
                s.db_cpu_ns += db;
                s.matches += found;
                if args.slowest > 0 {
                    s.slowest.push((wall, call.describe(found)));
                    s.slowest.sort_by_key(|(wall, _)| std::cmp::Reverse(*wall));
                    s.slowest.truncate(args.slowest);
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let process_cpu = procstat::cpu_seconds("self", ticks)? - process_cpu_0;
    let machine = procstat::machine_busy_seconds(ticks)? - machine_0;
    let db_total = match (db_total_0, backend_id.as_deref().and_then(cpu_ns)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e9),
        _ => None,
    };

    let mut worst: (f64, &str, &str) = (0.0, "", "");
    println!(
        "{:<15} {:<22} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "scenario",
        "query",
        "calls",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "matches",
        "cpu ms",
        "db cpu ms"
    );
    let mut lines = Vec::new();
    for (&(scenario, kind), s) in plan.iter().zip(&mut series) {
        s.wall.sort_unstable();
        let n = s.wall.len();
        let (p50, p95, p99) = (
            crate::percentile_ms(&s.wall, 0.50),
            crate::percentile_ms(&s.wall, 0.95),
            crate::percentile_ms(&s.wall, 0.99),
        );
        let max = s.wall.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        let per = |ns: u64| ns as f64 / 1e6 / n.max(1) as f64;
        let matches = s.matches as f64 / n.max(1) as f64;
        println!(
            "{:<15} {:<22} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.1} {:>9.2} {:>9}",
            scenario.as_str(),
            kind.as_str(),
            n,
            p50,
            p95,
            p99,
            max,
            matches,
            per(s.own_cpu_ns),
            backend.map_or("-".to_string(), |_| format!("{:.2}", per(s.db_cpu_ns)))
        );
        if p95 > worst.0 {
            worst = (p95, scenario.as_str(), kind.as_str());
        }
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        lines.push(json!({
            "engine": args.data.engine.as_str(),
            "scenario": scenario.as_str(),
            "query": kind.as_str(),
            "calls": n,
            "p50_ms": round(p50),
            "p95_ms": round(p95),
            "p99_ms": round(p99),
            "max_ms": round(max),
            "mean_matches": round(matches),
            "cpu_ms_per_call": round(per(s.own_cpu_ns)),
            "db_cpu_ms_per_call": backend.map(|_| round(per(s.db_cpu_ns))),
        }));
    }
    let other = (machine - process_cpu - db_total.unwrap_or(0.0)).max(0.0);
    println!(
        "wall {:.1} s; process CPU {:.2} s{}; other CPU on the machine {:.2} s ({:.0}% of one core); slowest p95 {:.2} ms ({} / {}), target {} ms",
        elapsed.as_secs_f64(),
        process_cpu,
        db_total.map_or(String::new(), |s| format!(
            "; PostgreSQL backend CPU {s:.2} s"
        )),
        other,
        100.0 * other / elapsed.as_secs_f64().max(1e-9),
        worst.0,
        worst.1,
        worst.2,
        args.target_ms
    );
    for line in lines {
        println!("{line}");
    }
    if args.slowest > 0 {
        for (&(scenario, kind), s) in plan.iter().zip(&series) {
            println!("slowest {} / {}:", scenario.as_str(), kind.as_str());
            for (wall, what) in &s.slowest {
                println!("  {:>8.2} ms  {what}", wall.as_secs_f64() * 1000.0);
            }
        }
    }
    if worst.0 >= args.target_ms {
        bail!(
            "p95 of {} / {} is {:.1} ms, not under {} ms",
            worst.1,
            worst.2,
            worst.0,
            args.target_ms
        );
    }
    Ok(())
}

fn backend_pid(store: &Store) -> Result<u32> {
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let pid: Pid =
        store.read(|c| Ok(diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result(c)?))?;
    u32::try_from(pid.pid).map_err(|_| anyhow!("odd backend pid {}", pid.pid))
}

/// Prints every statement one call sends (with its bound values) and the plan of each
/// distinct statement.
fn explain(
    store: &Store,
    engine: Engine,
    scenario: Scenario,
    kind: Kind,
    call: &Call,
) -> Result<()> {
    let captured = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = captured.clone();
    store.read(|c| {
        c.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                if let Ok(mut v) = sink.lock() {
                    v.push(query.to_string());
                }
            }
        });
        let result = run_call(c, kind, call);
        c.set_instrumentation(|_: InstrumentationEvent<'_>| {});
        result
    })?;
    let statements = captured.lock().map(|v| v.clone()).unwrap_or_default();
    println!(
        "== {} / {} (rp {}, scope {}, {:?}): {} statements",
        scenario.as_str(),
        kind.as_str(),
        call.rp_id,
        call.scope,
        (
            &call.query.q,
            &call.query.status,
            &call.query.unit,
            &call.text
        ),
        statements.len()
    );
    let mut seen: Vec<(String, usize)> = Vec::new();
    for s in &statements {
        let sql = s.split(" -- binds: ").next().unwrap_or(s).to_string();
        match seen.iter_mut().find(|(q, _)| *q == sql) {
            Some((_, n)) => *n += 1,
            None => seen.push((sql, 1)),
        }
    }
    for (sql, times) in &seen {
        let full = statements
            .iter()
            .find(|s| s.starts_with(sql.as_str()))
            .cloned()
            .unwrap_or_default();
        println!("-- {times}x: {full}");
        // The plans that matter: the statements over memberships or accounts (the list's
        // count and page, the directory search); the others are primary-key lookups.
        if !sql.contains("memberships") && !sql.contains("accounts") {
            continue;
        }
        let binds = full
            .split(" -- binds: ")
            .nth(1)
            .map(parse_binds)
            .transpose()?
            .unwrap_or_default();
        for line in plan(store, engine, sql, &binds)? {
            println!("   {line}");
        }
    }
    Ok(())
}

/// A value bound to a statement, as diesel's debug output shows it.
#[derive(Debug, Clone, PartialEq)]
enum Bind {
    Text(String),
    Int(i64),
}

/// Reads diesel's debug list of bound values: `["a \"b\"", 20]`.
fn parse_binds(text: &str) -> Result<Vec<Bind>> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| anyhow!("unexpected bind list {text:?}"))?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None => break,
            Some('"') => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some(c) => s.push(c),
                            None => bail!("unterminated string in {text:?}"),
                        },
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => bail!("unterminated string in {text:?}"),
                    }
                }
                out.push(Bind::Text(s));
            }
            Some(_) => {
                let mut token = String::new();
                while let Some(c) = chars.peek().filter(|c| **c != ',') {
                    token.push(*c);
                    chars.next();
                }
                let n = token
                    .trim()
                    .parse()
                    .with_context(|| format!("bind {token:?} in {text:?}"))?;
                out.push(Bind::Int(n));
            }
        }
    }
    Ok(out)
}

/// The engine's plan for `sql` with `binds`: EXPLAIN QUERY PLAN on SQLite (which does not
/// run it), EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL (which runs it and shows the times).
fn plan(store: &Store, engine: Engine, sql: &str, binds: &[Bind]) -> Result<Vec<String>> {
    use diesel::sql_types::{BigInt, Integer, Text};
    #[derive(QueryableByName)]
    struct SqlitePlan {
        #[diesel(sql_type = Integer)]
        id: i32,
        #[diesel(sql_type = Integer)]
        parent: i32,
        #[diesel(sql_type = Text)]
        detail: String,
    }
    #[derive(QueryableByName)]
    struct PgPlan {
        #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
        line: String,
    }
    Ok(store.read(|c| {
        Ok(match (engine, c) {
            (Engine::Sqlite, Db::Sqlite(conn)) => {
                let mut q = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
                    .into_boxed::<diesel::sqlite::Sqlite>();
                for b in binds {
                    q = match b {
                        Bind::Text(s) => q.bind::<Text, _>(s.clone()),
                        Bind::Int(n) => q.bind::<BigInt, _>(*n),
                    };
                }
                let rows: Vec<SqlitePlan> = q.load(conn)?;
                let mut depth: HashMap<i32, usize> = HashMap::new();
                rows.into_iter()
                    .map(|r| {
                        let d = depth.get(&r.parent).map_or(0, |d| d + 1);
                        depth.insert(r.id, d);
                        format!("{}{}", "  ".repeat(d), r.detail)
                    })
                    .collect()
            }
            (Engine::Postgres, Db::Postgres(conn)) => {
                let mut q = diesel::sql_query(format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"))
                    .into_boxed::<diesel::pg::Pg>();
                for b in binds {
                    q = match b {
                        Bind::Text(s) => q.bind::<Text, _>(s.clone()),
                        Bind::Int(n) => q.bind::<BigInt, _>(*n),
                    };
                }
                let rows: Vec<PgPlan> = q.load(conn)?;
                rows.into_iter().map(|r| r.line).collect()
            }
            _ => vec!["(no plan: the connection is not of the expected engine)".into()],
        })
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_values_are_read_back_from_diesels_debug_output() {
        let binds = parse_binds(r#"["a b", "say \"hi\"", "\\", 20, 0]"#).unwrap();
        assert_eq!(
            binds,
            vec![
                Bind::Text("a b".into()),
                Bind::Text("say \"hi\"".into()),
                Bind::Text("\\".into()),
                Bind::Int(20),
                Bind::Int(0),
            ]
        );
        assert_eq!(parse_binds("[]").unwrap(), vec![]);
        assert!(parse_binds("no list").is_err());
    }
}
