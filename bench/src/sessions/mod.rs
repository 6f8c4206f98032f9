//! `fedhub-load sessions`: N live single sign-on sessions in a fresh database, and what they
//! cost: database bytes per session (by table and index), the hub's memory, sign-in speed
//! (full logins and SSO-cookie logins) with them in place, and a housekeeping round that
//! has expired sessions to remove while sign-ins go on.
//!
//! Run it at two sizes (e.g. 10,000 and 1,000,000) and compare: per-session bytes should
//! stay flat, and the hub's memory and speed should not move with N.

mod fill;
mod footprint;
pub mod sso_login;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use diesel::prelude::*;
use fedhub::clock::{Clock, SystemClock};
use fedhub::rp::oidc::AccessTokenFormat;
use fedhub::store::schema::relying_parties as rp;
use fedhub::store::{Store, StoreOptions};
use fedhub_metadata::keys::KeyAlg;
use fedhub_metadata::AtRestKey;
use serde_json::json;

use crate::directory::generate::{bulk_cache, insert_accounts, make_accounts};
use crate::directory::names::Rng;
use crate::setup::{self, Engine};
use crate::upstream::Upstream;
use crate::{flow, hub, procstat, RelyingParty, Scenario};

#[derive(Debug, clap::Args)]
pub struct SessionsArgs {
    /// Database engine of the hub.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub engine: Engine,
    /// PostgreSQL server to create the run's database on (`--engine postgres`).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub postgres_url: String,
    /// Live SSO sessions to write, each for its own (bulk-inserted) account.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Share of sessions whose upstream is an OpenID provider (its ~1 KB ID token is kept
    /// for logout); the others come from a SAML IdP (NameID + SessionIndex kept).
    #[arg(long, default_value_t = 0.5)]
    pub oidc_share: f64,
    /// Share of sessions already answered to two relying parties (the others to one).
    #[arg(long, default_value_t = 0.3)]
    pub two_rp_share: f64,
    /// Sessions that expired more than a day ago, written before the housekeeping round
    /// (default: a tenth of --sessions).
    #[arg(long)]
    pub expired: Option<usize>,
    /// Rows of each kind per housekeeping batch (default: the hub's own).
    #[arg(long, default_value_t = fedhub::jobs::PURGE_BATCH)]
    pub purge_batch: i64,
    /// Logins of each measured kind (full logins, SSO-cookie logins).
    #[arg(long, default_value_t = 2000)]
    pub logins: usize,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The fedhub binary (default: `fedhub` next to this executable).
    #[arg(long)]
    pub fedhub: Option<PathBuf>,
    /// Only fill and measure the database; start no hub.
    #[arg(long)]
    pub no_hub: bool,
}

/// Cookies kept for the SSO-cookie logins (spread over all sessions).
const COOKIE_POOL: usize = 5_000;

pub fn run(args: &SessionsArgs) -> Result<()> {
    if args.sessions == 0 || args.logins == 0 || args.concurrency == 0 {
        bail!("--sessions, --logins and --concurrency must be at least 1");
    }
    let binary = match args.no_hub {
        true => None,
        false => Some(hub::locate(args.fedhub.as_deref())?),
    };
    let dir = tempfile::Builder::new()
        .prefix("fedhub-sessions-")
        .tempdir_in(std::env::var_os("TMPDIR").unwrap_or_else(|| "/var/tmp".into()))
        .context("creating a temporary folder")?;
    let database = setup::Database::create(args.engine, &args.postgres_url, dir.path())?;
    let prepared = setup::prepare(
        &database.url,
        dir.path(),
        KeyAlg::Rsa2048,
        &setup::UpstreamSetup::Demo,
        |s, now| setup::register_oidc(s, now, AccessTokenFormat::Jwt, "RS256"),
    )
    .context("preparing the hub's database")?;
    let key = std::fs::read_to_string(&prepared.at_rest_key_file)?;
    let vault = AtRestKey::from_base64(key.trim()).map_err(|e| anyhow!("at-rest key: {e}"))?;
    let store = Store::connect(&database.url, &StoreOptions::default())?;
    let now = SystemClock.now();
    let mut rng = Rng::new(args.seed);
    let mut out = serde_json::Map::new();
    out.insert("engine".into(), args.engine.as_str().into());
    out.insert("sessions".into(), args.sessions.into());

    // Accounts: one person per live session.
    let started = Instant::now();
    let accounts = make_accounts(args.sessions, &mut rng)?;
    for chunk in accounts.chunks(50_000) {
        store.write(|c| {
            bulk_cache(c)?;
            insert_accounts(c, chunk)
        })?;
    }
    let account_ids: Vec<String> = accounts.into_iter().map(|a| a.id).collect();
    eprintln!(
        "fedhub-load: {} accounts in {:.1} s",
        account_ids.len(),
        started.elapsed().as_secs_f64()
    );
    add_portals(&store, PORTALS, now)?;
    let rp_ids: Vec<String> = store.read(|c| Ok(rp::table.select(rp::id).load(c)?))?;
    let targets = fill::Targets {
        accounts: &account_ids,
        connector_id: "demo",
        rp_ids: &rp_ids,
        vault: &vault,
    };

    // The sessions, and what they take in the database.
    let empty = footprint::measure(&store)?;
    let started = Instant::now();
    let shape = fill::Shape {
        oidc_share: args.oidc_share,
        two_rp_share: args.two_rp_share,
        expired: false,
    };
    let live = fill::sessions(
        &store,
        &targets,
        args.sessions,
        shape,
        COOKIE_POOL,
        &mut rng,
    )?;
    let fill_s = started.elapsed().as_secs_f64();
    println!(
        "filled {} live sessions ({} with an OIDC upstream, {} relying-party rows) in {fill_s:.1} s ({:.0} sessions/s)",
        live.sessions,
        live.with_oidc_upstream,
        live.served_rows,
        live.sessions as f64 / fill_s.max(1e-9)
    );
    let saml = live.sessions - live.with_oidc_upstream;
    println!(
        "upstream_session: {:.0} characters on average with an OIDC upstream, {:.0} with SAML",
        live.oidc_upstream_chars as f64 / live.with_oidc_upstream.max(1) as f64,
        live.saml_upstream_chars as f64 / saml.max(1) as f64
    );
    out.insert("fill_s".into(), round(fill_s, 1).into());
    let filled = minus(&footprint::measure(&store)?, &empty);
    let per = footprint::report("database, as written", &filled, live.sessions);
    out.insert("db_bytes_per_session".into(), per.round().into());
    out.insert("db_parts".into(), parts_json(&filled, live.sessions));
    if args.engine == Engine::Sqlite {
        footprint::sqlite_vacuum(&store)?;
        let packed = minus(&footprint::measure(&store)?, &empty);
        let per = footprint::report("database, after VACUUM", &packed, live.sessions);
        out.insert("db_bytes_per_session_vacuumed".into(), per.round().into());
    }

    let Some(binary) = binary else {
        println!("{}", serde_json::Value::Object(out));
        return Ok(());
    };
    let log_file = dir.path().join("hub.log");
    let mut hub = hub::Hub::start(&hub::HubSettings {
        binary: &binary,
        port: hub::free_port()?,
        database_url: &database.url,
        at_rest_key_file: &prepared.at_rest_key_file,
        log_level: "warn",
        pool_size: None,
        extra: &[],
        saml_algorithm: KeyAlg::Rsa2048.as_str(),
        log_file: &log_file,
        dir: dir.path(),
    })?;
    let client = prepared.registered;
    let target = || {
        flow::Target::new(
            hub.base_url.clone(),
            client.client_id.clone(),
            client.client_secret.clone(),
            setup::REDIRECT_URI.into(),
            setup::SCOPES.join(" "),
        )
    };
    let full = Arc::new(Scenario {
        relying_party: RelyingParty::Oidc(target()),
        upstream: Upstream::Demo,
    });
    let sso = Arc::new(Scenario {
        relying_party: RelyingParty::Sso(sso_login::SsoTarget::new(target(), live.cookies)),
        upstream: Upstream::Demo,
    });
    let pid = hub.pid.to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    runtime.block_on(hub.wait_ready(&http, Duration::from_secs(60)))?;
    let idle_rss = status_mib(&pid, "VmRSS:")?;
    println!("hub RSS when ready: {idle_rss:.1} MiB");
    out.insert("hub_rss_ready_mb".into(), round(idle_rss, 1).into());

    // Warm-up: the first full login alone (it links the demo citizen), then a few of each.
    let limit = Duration::from_secs(300);
    for (scenario, n, at_once) in [
        (&full, 1, 1),
        (&full, 49, args.concurrency),
        (&sso, 50, args.concurrency),
    ] {
        let warm = runtime.block_on(crate::run_load(&http, scenario, n, at_once, limit));
        if warm.failures > 0 {
            bail!("warm-up failed: {}", warm.errors.join("; "));
        }
    }
    for (name, scenario) in [("full_login", &full), ("sso_cookie_login", &sso)] {
        let f = measure(&runtime, &http, scenario, args, &pid, limit)?;
        f.print(name);
        out.insert(name.into(), f.json());
    }
    let peak = procstat::peak_rss_mib(&pid)?;
    let rss = status_mib(&pid, "VmRSS:")?;
    println!("hub RSS after the logins: {rss:.1} MiB, peak (VmHWM) {peak:.1} MiB");
    out.insert("hub_rss_after_mb".into(), round(rss, 1).into());
    out.insert("hub_peak_rss_mb".into(), round(peak, 1).into());

    // Housekeeping with expired sessions to remove, while SSO-cookie logins go on.
    let expired_count = args.expired.unwrap_or(args.sessions / 10);
    let started = Instant::now();
    let shape = fill::Shape {
        expired: true,
        ..shape
    };
    fill::sessions(&store, &targets, expired_count, shape, 0, &mut rng)?;
    eprintln!(
        "fedhub-load: {expired_count} expired sessions written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // What the single statement of earlier versions had to read to find them: `expires_at`
    // OR `ended_at`, with no index on `ended_at`, is a scan of every session.
    let kept_until = SystemClock.now() - fedhub::jobs::SSO_KEPT_FOR;
    let started = Instant::now();
    let found = single_statement_scan(&store, kept_until)?;
    let scan_s = started.elapsed().as_secs_f64();
    println!(
        "one statement with OR (as before the fix) finds {found} sessions to remove in {scan_s:.2} s"
    );
    let purge_store = store.clone();
    let purge_batch = args.purge_batch;
    let purge_now = SystemClock.now();
    let purge = std::thread::spawn(move || {
        let began = Instant::now();
        fedhub::jobs::purge_round(&purge_store, purge_now, purge_batch)
            .map(|round| (round, began.elapsed()))
    });
    let during = measure(&runtime, &http, &sso, args, &pid, limit)?;
    let (purged, took) = purge
        .join()
        .map_err(|_| anyhow!("the housekeeping thread panicked"))??;
    println!(
        "housekeeping round: {} sessions removed in {} batches of at most {} rows, {:.2} s",
        purged.purged.sso_sessions,
        purged.batches,
        args.purge_batch,
        took.as_secs_f64()
    );
    during.print("sso_cookie_login_during_housekeeping");
    out.insert(
        "housekeeping".into(),
        json!({
            "expired_sessions": expired_count,
            "removed": purged.purged.sso_sessions,
            "batches": purged.batches,
            "batch_limit": args.purge_batch,
            "seconds": round(took.as_secs_f64(), 2),
            "single_statement_scan_s": round(scan_s, 2),
        }),
    );
    out.insert("sso_cookie_login_during_housekeeping".into(), during.json());
    let (problems, first) = hub.log_problems(5);
    if problems > 0 {
        eprintln!("fedhub-load: the hub logged {problems} WARN/ERROR line(s): {first:?}");
    }
    drop(runtime);
    println!("{}", serde_json::Value::Object(out));
    drop(hub);
    drop(store);
    drop(database);
    Ok(())
}

/// Relying parties the sessions have been answered to, besides the load's client.
const PORTALS: usize = 20;

/// Registers `count` OIDC clients (ministry portals) through the product.
fn add_portals(store: &Store, count: usize, now: i64) -> Result<()> {
    for i in 0..count {
        let registration = fedhub::rp::oidc::OidcRegistration {
            client_id: Some(format!("portal-{i:02}")),
            owner_agency_code: "000.00.00.H49".into(),
            display_name: Some(format!("Cổng dịch vụ {i:02}")),
            redirect_uris: vec![format!("https://portal-{i:02}.gov.example/callback")],
            ..Default::default()
        };
        store.write(|c| fedhub::rp::oidc::add(c, &registration, now))?;
    }
    Ok(())
}

/// One measured batch of logins.
struct Figures {
    logins: usize,
    seconds: f64,
    hub_cpu_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Figures {
    fn per_hub_core_s(&self) -> f64 {
        self.logins as f64 / self.hub_cpu_s.max(1e-9)
    }

    fn print(&self, name: &str) {
        println!(
            "{name}: {} logins in {:.2} s, {:.0} per hub core-second, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.logins, self.seconds, self.per_hub_core_s(), self.p50_ms, self.p99_ms, self.max_ms
        );
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "logins": self.logins,
            "seconds": round(self.seconds, 3),
            "hub_cpu_s": round(self.hub_cpu_s, 2),
            "logins_per_hub_core_s": round(self.per_hub_core_s(), 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "max_ms": round(self.max_ms, 2),
        })
    }
}

fn measure(
    runtime: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    scenario: &Arc<Scenario>,
    args: &SessionsArgs,
    pid: &str,
    limit: Duration,
) -> Result<Figures> {
    let ticks = procstat::clock_ticks();
    let cpu_0 = procstat::cpu_seconds(pid, ticks)?;
    let run = runtime.block_on(crate::run_load(
        http,
        scenario,
        args.logins,
        args.concurrency,
        limit,
    ));
    let hub_cpu_s = procstat::cpu_seconds(pid, ticks)? - cpu_0;
    if run.failures > 0 {
        bail!(
            "{} logins failed; first: {}",
            run.failures,
            run.errors.join("; ")
        );
    }
    let mut sorted = run.latencies.clone();
    sorted.sort_unstable();
    Ok(Figures {
        logins: run.done,
        seconds: run.wall.as_secs_f64(),
        hub_cpu_s,
        p50_ms: crate::percentile_ms(&sorted, 0.50),
        p99_ms: crate::percentile_ms(&sorted, 0.99),
        max_ms: crate::percentile_ms(&sorted, 1.0),
    })
}

/// Counts the sessions earlier versions' single DELETE removed, with the plan it had then:
/// no index for `ended_at`, so a read of the whole table (SQLite `NOT INDEXED`, PostgreSQL
/// without index scans), in a transaction that writes nothing.
fn single_statement_scan(store: &Store, kept_until: i64) -> Result<i64> {
    use diesel::connection::SimpleConnection;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = |from: &str| {
        format!(
            "SELECT COUNT(*) AS n FROM {from} WHERE expires_at <= {kept_until} OR ended_at <= {kept_until}"
        )
    };
    let found: Count = store.write(|c| {
        Ok(match c {
            fedhub::store::Db::Sqlite(c) => {
                diesel::sql_query(sql("sso_sessions NOT INDEXED")).get_result(c)?
            }
            fedhub::store::Db::Postgres(c) => {
                c.batch_execute(
                    "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off",
                )?;
                diesel::sql_query(sql("sso_sessions")).get_result(c)?
            }
        })
    })?;
    Ok(found.n)
}

/// A `/proc/<pid>/status` memory line (e.g. `VmRSS:`), in MiB.
fn status_mib(pid: &str, field: &str) -> Result<f64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .ok_or_else(|| anyhow!("{path}: no {field} line"))
}

/// The parts' growth over `before` (what the sessions added).
fn minus(after: &[footprint::Part], before: &[footprint::Part]) -> Vec<footprint::Part> {
    after
        .iter()
        .map(|p| {
            let was = before
                .iter()
                .find(|b| b.name == p.name)
                .map_or(0, |b| b.bytes);
            footprint::Part {
                name: p.name.clone(),
                bytes: p.bytes - was,
            }
        })
        .collect()
}

fn parts_json(parts: &[footprint::Part], sessions: usize) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for p in parts {
        m.insert(
            p.name.clone(),
            round(p.bytes as f64 / sessions.max(1) as f64, 0).into(),
        );
    }
    serde_json::Value::Object(m)
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn arguments_parse() {
        let cli = crate::Cli::try_parse_from([
            "fedhub-load",
            "sessions",
            "--engine",
            "postgres",
            "--sessions",
            "1000000",
            "--no-hub",
        ])
        .unwrap();
        let crate::Command::Sessions(args) = cli.command else {
            panic!("not the sessions command");
        };
        assert_eq!(
            (args.engine, args.sessions, args.no_hub, args.expired),
            (Engine::Postgres, 1_000_000, true, None)
        );
        assert_eq!(args.purge_batch, fedhub::jobs::PURGE_BATCH);
    }
}
