//! `fedhub-load`: drives full OpenID Connect code-flow logins (`oidc`) or SP-initiated SAML
//! logins (`saml`) against a `fedhub serve` process over loopback and prints logins per second
//! and per hub core-second.
//!
//! Follow the data: `setup` makes a fresh database and registers a client or service provider,
//! `hub` starts the hub as its own process, `flow` is one OIDC login and `saml` one SAML login,
//! and `run_load` runs many of them at once while `procstat` reads the CPU time both processes
//! spent.
//!
//! `directory` is the other tool: `directory-data` fills a database with a directory of
//! national size and `directory` times the admin list and the directory search on it.

mod directory;
mod flow;
mod hub;
mod metadata;
mod mock_op;
mod procstat;
mod saml;
mod sessions;
mod setup;
mod upstream;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use fedhub::rp::oidc::AccessTokenFormat;
use fedhub_metadata::keys::KeyAlg;
use serde_json::json;

use setup::Engine;
use upstream::{Upstream, UpstreamKind};

#[derive(Debug, Parser)]
#[command(
    name = "fedhub-load",
    version,
    about = "Load tool for fedhub: full logins against a hub process on loopback, and the directory at scale"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// OpenID Connect code flow: authorize → upstream login → callback → token → userinfo.
    Oidc(OidcArgs),
    /// SAML Web SSO: signed AuthnRequest (HTTP-Redirect) → upstream login → the auto-POST
    /// page with the SAMLResponse for the SP.
    Saml(SamlArgs),
    /// Fills a fresh database with a national-size directory: agencies, accounts, relying
    /// parties and memberships (kept for `directory`; `--drop` removes it).
    DirectoryData(directory::generate::GenerateArgs),
    /// Times the user-management list and the directory search on that data set.
    Directory(directory::measure::MeasureArgs),
    /// Fills a fresh database with N live SSO sessions, then measures their database bytes,
    /// the hub's memory, sign-in speed with them in place, and a housekeeping round.
    Sessions(sessions::SessionsArgs),
    /// Generates and signs a federation's metadata aggregate, then times its verification,
    /// its import and the sign-in page with thousands of IdPs.
    Metadata(metadata::MetadataArgs),
}

/// The options every protocol's load shares.
#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// Database engine of the hub.
    #[arg(long, value_enum, default_value = "sqlite")]
    engine: Engine,
    /// PostgreSQL server to create the run's database on (`--engine postgres`); the database
    /// `fedhub_load_<pid>` is created there and dropped at the end.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
    /// Logins to measure.
    #[arg(long, default_value_t = 2000)]
    logins: usize,
    /// Logins in flight at once (each one a fresh browser).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Stop measuring after this long even if fewer logins are done.
    #[arg(long, default_value_t = 120)]
    max_seconds: u64,
    /// Logins before the measurement (not counted); the first runs alone.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// The fedhub binary (default: `fedhub` next to this executable).
    #[arg(long)]
    fedhub: Option<PathBuf>,
    /// The hub's database pool size (FEDHUB_DATABASE_POOL_SIZE; default: the hub's own).
    #[arg(long)]
    pool_size: Option<u32>,
    /// Any other hub setting, as the environment variable names it without `FEDHUB_`
    /// (repeatable): `--hub-setting DATABASE_SQLITE_INLINE=false`.
    #[arg(long = "hub-setting", value_parser = hub_setting)]
    hub_settings: Vec<(String, String)>,
    /// The hub's log filter (FEDHUB_LOGGING_LEVEL), e.g. `info`.
    #[arg(long, default_value = "warn")]
    hub_log_level: String,
    /// Keep the hub's log in this file (default: a temporary file, removed at the end).
    #[arg(long)]
    hub_log: Option<PathBuf>,
    /// Worker threads of the load generator (it competes with the hub for the cores).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Who vouches for the person: the hub's demo connector, or an OpenID provider the load
    /// tool runs on loopback (the hub redeems a code there and verifies an RS256 ID token).
    #[arg(long, value_enum, default_value = "demo")]
    upstream: UpstreamKind,
    /// `--upstream oidc`: how many citizens can sign in at the provider (each has an account;
    /// each login picks one at random).
    #[arg(long, default_value_t = 1000)]
    upstream_people: usize,
}

#[derive(Debug, clap::Args)]
struct OidcArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Access tokens of the registered client.
    #[arg(long, value_enum, default_value = "jwt")]
    access_token_format: AccessTokenFormat,
    /// Signing algorithm of the client's ID tokens and JWT access tokens.
    #[arg(long, default_value = "RS256", value_parser = ["RS256", "PS256", "ES256", "EdDSA"])]
    alg: String,
}

#[derive(Debug, clap::Args)]
struct SamlArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// The hub's SAML signing key (`keys.saml_algorithm`): RSA-2048 or ECDSA P-256. The load
    /// tool's SP always signs its requests with RSA-2048.
    #[arg(long, default_value = "RS256", value_parser = ["RS256", "ES256"])]
    saml_alg: String,
    /// What the hub signs in its answers to the load's SP (the SP's `sign` setting): the
    /// hub's default signs both the Response and the Assertion.
    #[arg(long, value_enum, default_value = "both")]
    saml_sign: fedhub::rp::saml::SignWhat,
}

/// What one login is, for `run_load`: the protocol's side and the upstream sign-in.
struct Scenario {
    relying_party: RelyingParty,
    upstream: Upstream,
}

enum RelyingParty {
    Oidc(flow::Target),
    Saml(saml::Sp),
    /// A browser with an SSO session signs in to the client (`sessions`).
    Sso(sessions::sso_login::SsoTarget),
}

impl Scenario {
    async fn login(&self, http: &reqwest::Client, rng: &ring::rand::SystemRandom) -> Result<()> {
        match &self.relying_party {
            RelyingParty::Oidc(target) => flow::login(http, rng, target, &self.upstream).await,
            RelyingParty::Saml(sp) => saml::login(http, rng, sp, &self.upstream).await,
            RelyingParty::Sso(target) => sessions::sso_login::login(http, rng, target).await,
        }
    }
}

/// What the report says about the protocol beyond the common figures.
struct Protocol {
    name: &'static str,
    /// For the table's first row, e.g. `access token jwt, RS256 ID tokens`.
    describe: String,
    /// Extra JSON fields.
    json: serde_json::Map<String, serde_json::Value>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Oidc(args) => run_oidc(&args),
        Command::Saml(args) => run_saml(&args),
        Command::DirectoryData(args) => directory::generate::run(&args),
        Command::Directory(args) => directory::measure::run(&args),
        Command::Sessions(args) => sessions::run(&args),
        Command::Metadata(args) => metadata::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fedhub-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_oidc(args: &OidcArgs) -> Result<()> {
    let format = args.access_token_format;
    let alg = args.alg.clone();
    let format_name = match format {
        AccessTokenFormat::Jwt => "jwt",
        AccessTokenFormat::Opaque => "opaque",
    };
    let mut json = serde_json::Map::new();
    json.insert("access_token_format".into(), format_name.into());
    json.insert("alg".into(), args.alg.clone().into());
    let protocol = Protocol {
        name: "oidc",
        describe: format!("access token {format_name}, {} ID tokens", args.alg),
        json,
    };
    run_protocol(
        &args.load,
        KeyAlg::Rsa2048,
        &protocol,
        |store, now| setup::register_oidc(store, now, format, &alg),
        |base_url, client| {
            Ok(RelyingParty::Oidc(flow::Target::new(
                base_url,
                client.client_id,
                client.client_secret,
                setup::REDIRECT_URI.into(),
                setup::SCOPES.join(" "),
            )))
        },
    )
}

fn run_saml(args: &SamlArgs) -> Result<()> {
    let hub_alg = KeyAlg::parse(&args.saml_alg)
        .ok_or_else(|| anyhow::anyhow!("--saml-alg {}: RS256 or ES256", args.saml_alg))?;
    let mut json = serde_json::Map::new();
    json.insert("saml_alg".into(), args.saml_alg.clone().into());
    json.insert("saml_sign".into(), serde_json::to_value(args.saml_sign)?);
    let protocol = Protocol {
        name: "saml",
        describe: format!(
            "hub signs {:?} with {}, SP requests RSA-SHA256",
            args.saml_sign, args.saml_alg
        ),
        json,
    };
    let sign = args.saml_sign;
    run_protocol(
        &args.load,
        hub_alg,
        &protocol,
        |store, now| {
            // The SP's key is made here; the base URL is filled in once the hub's port is known.
            let sp = saml::Sp::generate(String::new(), now)?;
            let rp_id = setup::register_saml(store, now, sp.metadata(), sign)?;
            Ok(setup::Registered { rp_id, value: sp })
        },
        |base_url, mut sp| {
            sp.base_url = base_url;
            Ok(RelyingParty::Saml(sp))
        },
    )
}

/// The harness every protocol shares: a temporary folder and database, the hub as its own
/// process, the mock upstream provider if any, warm-up, the measured run and the report.
/// `register` adds the load's relying party to the fresh database; `relying_party` makes the
/// protocol's side of the login from it and the hub's base URL.
fn run_protocol<T>(
    args: &LoadArgs,
    saml_alg: KeyAlg,
    protocol: &Protocol,
    register: impl FnOnce(&fedhub::store::Store, i64) -> Result<setup::Registered<T>>,
    relying_party: impl FnOnce(String, T) -> Result<RelyingParty>,
) -> Result<()> {
    if args.logins == 0 || args.concurrency == 0 || args.client_threads == 0 {
        bail!("--logins, --concurrency and --client-threads must be at least 1");
    }
    if args.upstream == UpstreamKind::Oidc && args.upstream_people == 0 {
        bail!("--upstream-people must be at least 1");
    }
    let binary = hub::locate(args.fedhub.as_deref())?;
    let dir = tempfile::Builder::new()
        .prefix("fedhub-load-")
        .tempdir()
        .context("creating a temporary folder")?;
    let port = hub::free_port()?;
    let hub_url = format!("http://127.0.0.1:{port}");
    // Dropped in reverse order: the hub is killed before its database is dropped and before
    // the provider it calls stops.
    let (op, people) = match args.upstream {
        UpstreamKind::Demo => (None, Vec::new()),
        UpstreamKind::Oidc => {
            let people = upstream::citizens(args.upstream_people, 1);
            let callback = format!("{hub_url}/connectors/{}/callback", upstream::CONNECTOR_ID);
            (
                Some(mock_op::MockOp::start(people.clone(), callback)?),
                people,
            )
        }
    };
    let upstream_setup = match &op {
        None => setup::UpstreamSetup::Demo,
        Some(op) => setup::UpstreamSetup::Oidc {
            issuer: &op.issuer,
            people: &people,
        },
    };
    let database = setup::Database::create(args.engine, &args.postgres_url, dir.path())?;
    let prepared = setup::prepare(
        &database.url,
        dir.path(),
        saml_alg,
        &upstream_setup,
        register,
    )
    .context("preparing the hub's database")?;
    let log_file = args
        .hub_log
        .clone()
        .unwrap_or_else(|| dir.path().join("hub.log"));
    let mut hub = hub::Hub::start(&hub::HubSettings {
        binary: &binary,
        port,
        database_url: &database.url,
        at_rest_key_file: &prepared.at_rest_key_file,
        log_level: &args.hub_log_level,
        pool_size: args.pool_size,
        extra: &args.hub_settings,
        saml_algorithm: saml_alg.as_str(),
        log_file: &log_file,
        dir: dir.path(),
    })?;
    let target = Arc::new(Scenario {
        relying_party: relying_party(hub.base_url.clone(), prepared.registered)?,
        upstream: match &op {
            None => Upstream::Demo,
            Some(op) => Upstream::Oidc {
                issuer: op.issuer.clone(),
                people: people.len(),
            },
        },
    });
    let op_cpu = |ticks: f64| op.as_ref().map(|op| op.cpu_seconds(ticks)).transpose();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .enable_all()
        .build()
        .context("starting the load generator's runtime")?;
    let ticks = procstat::clock_ticks();
    let pid = hub.pid.to_string();

    let measured = runtime.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(args.concurrency)
            .build()
            .context("building the HTTP client")?;
        hub.wait_ready(&http, Duration::from_secs(30)).await?;
        eprintln!(
            "fedhub-load: {} against hub pid {} at {} on {}; {} warm-up + {} logins, {} at once",
            protocol.name,
            hub.pid,
            hub.base_url,
            database.describe(),
            args.warmup,
            args.logins,
            args.concurrency
        );
        let limit = Duration::from_secs(args.max_seconds);
        // The very first login alone: with the demo upstream it links the demo citizen's
        // upstream identity to the account, and concurrent first logins of one person raced
        // on that link once (see README).
        let first = run_load(&http, &target, 1, 1, limit).await;
        if first.failures > 0 {
            return Ok(first);
        }
        if args.warmup > 1 {
            let warm = run_load(&http, &target, args.warmup - 1, args.concurrency, limit).await;
            if warm.failures > 0 {
                return Ok(warm);
            }
        }
        let hub_cpu_0 = procstat::cpu_seconds(&pid, ticks)?;
        let own_cpu_0 = procstat::cpu_seconds("self", ticks)?;
        let machine_0 = procstat::machine_busy_seconds(ticks)?;
        let db_cpu_0 = database_cpu(&database, ticks)?;
        let op_cpu_0 = op_cpu(ticks)?;
        let mut run = run_load(&http, &target, args.logins, args.concurrency, limit).await;
        run.hub_cpu = procstat::cpu_seconds(&pid, ticks)? - hub_cpu_0;
        // The provider runs in this process: its thread's CPU is reported on its own.
        run.upstream_cpu = match (op_cpu(ticks)?, op_cpu_0) {
            (Some(after), Some(before)) => Some(after - before),
            _ => None,
        };
        run.client_cpu =
            procstat::cpu_seconds("self", ticks)? - own_cpu_0 - run.upstream_cpu.unwrap_or(0.0);
        run.machine_cpu = procstat::machine_busy_seconds(ticks)? - machine_0;
        run.db_cpu = database_cpu(&database, ticks)?
            .iter()
            .map(|(pid, cpu)| cpu - db_cpu_0.get(pid).copied().unwrap_or(0.0))
            .sum();
        Ok::<_, anyhow::Error>(run)
    });
    let run = measured?;
    let rss = procstat::peak_rss_mib(&pid).unwrap_or(0.0);
    let alive = hub.running();
    let (problem_count, problems) = hub.log_problems(10);
    // Let the runtime's idle connections go before the hub is killed.
    drop(runtime);

    if run.failures > 0 || run.interrupted {
        eprintln!(
            "fedhub-load: {} of {} logins failed{}; first errors:",
            run.failures,
            run.done + run.failures,
            if run.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        );
        for e in &run.errors {
            eprintln!("  {e}");
        }
        report_hub_log(&hub, problem_count, &problems, alive);
        bail!("the run failed");
    }

    let report = Report::new(args, protocol, &run, rss);
    report.print_table();
    println!("{}", report.json());
    if problem_count > 0 || !alive {
        report_hub_log(&hub, problem_count, &problems, alive);
    }
    if args.hub_log.is_some() {
        eprintln!("fedhub-load: hub log kept in {}", hub.log_file().display());
    }
    if run.done < args.logins {
        eprintln!(
            "fedhub-load: stopped after {}s with {} of {} logins done",
            args.max_seconds, run.done, args.logins
        );
    }
    drop(hub);
    drop(database);
    drop(op);
    Ok(())
}

/// CPU seconds so far of each PostgreSQL process serving the hub, by pid.
fn database_cpu(
    database: &setup::Database,
    ticks: f64,
) -> Result<std::collections::HashMap<u32, f64>> {
    let mut cpu = std::collections::HashMap::new();
    for pid in database.backend_pids()? {
        // A backend that ended meanwhile is skipped.
        if let Ok(s) = procstat::cpu_seconds(&pid.to_string(), ticks) {
            cpu.insert(pid, s);
        }
    }
    Ok(cpu)
}

fn report_hub_log(hub: &hub::Hub, count: usize, problems: &[String], alive: bool) {
    if !alive {
        eprintln!("fedhub-load: the hub process exited during the run");
    }
    if count > 0 {
        eprintln!("fedhub-load: the hub logged {count} WARN/ERROR line(s); the first:");
        for line in problems {
            eprintln!("  {line}");
        }
    } else if !alive {
        eprintln!("{}", hub.log_tail(20));
    }
}

/// What one batch of logins did.
#[derive(Debug, Default)]
struct Run {
    done: usize,
    failures: usize,
    errors: Vec<String>,
    latencies: Vec<Duration>,
    wall: Duration,
    hub_cpu: f64,
    /// The load generator's CPU, without the mock provider's.
    client_cpu: f64,
    /// CPU time of the mock OpenID provider's thread (`--upstream oidc`).
    upstream_cpu: Option<f64>,
    /// CPU time of the PostgreSQL server processes serving the hub (0 for SQLite).
    db_cpu: f64,
    /// Busy CPU time of the whole machine (hub, load tool, PostgreSQL, anything else).
    machine_cpu: f64,
    interrupted: bool,
}

/// Errors kept for the report.
const KEEP_ERRORS: usize = 5;
/// The run stops early after this many failures: something is broken, not slow.
const GIVE_UP_AFTER: usize = 50;

/// Runs `logins` logins with `concurrency` tasks, for at most `limit`. Ctrl-C stops it.
async fn run_load(
    http: &reqwest::Client,
    target: &Arc<Scenario>,
    logins: usize,
    concurrency: usize,
    limit: Duration,
) -> Run {
    let claimed = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + limit;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(logins) {
        let (http, target) = (http.clone(), target.clone());
        let (claimed, failed, stop) = (claimed.clone(), failed.clone(), stop.clone());
        tasks.spawn(async move {
            let rng = ring::rand::SystemRandom::new();
            let mut mine = Run::default();
            while !stop.load(Ordering::Relaxed)
                && Instant::now() < deadline
                && claimed.fetch_add(1, Ordering::Relaxed) < logins
            {
                let began = Instant::now();
                match target.login(&http, &rng).await {
                    Ok(()) => {
                        mine.done += 1;
                        mine.latencies.push(began.elapsed());
                    }
                    Err(e) => {
                        mine.failures += 1;
                        if mine.errors.len() < KEEP_ERRORS {
                            mine.errors.push(format!("{e:#}"));
                        }
                        if failed.fetch_add(1, Ordering::Relaxed) + 1 >= GIVE_UP_AFTER {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
            mine
        });
    }
    let mut run = Run::default();
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(mine)) => {
                    run.done += mine.done;
                    run.failures += mine.failures;
                    run.latencies.extend(mine.latencies);
                    for e in mine.errors {
                        if run.errors.len() < KEEP_ERRORS {
                            run.errors.push(e);
                        }
                    }
                }
                Some(Err(e)) => {
                    run.failures += 1;
                    run.errors.push(format!("a load task died: {e}"));
                }
                None => break,
            },
            _ = tokio::signal::ctrl_c(), if !run.interrupted => {
                run.interrupted = true;
                stop.store(true, Ordering::Relaxed);
            }
        }
    }
    run.wall = start.elapsed();
    run
}

/// The measured figures.
struct Report {
    protocol: &'static str,
    describe: String,
    extra: serde_json::Map<String, serde_json::Value>,
    engine: &'static str,
    concurrency: usize,
    logins: usize,
    seconds: f64,
    hub_cpu_s: f64,
    client_cpu_s: f64,
    upstream_cpu_s: Option<f64>,
    db_cpu_s: Option<f64>,
    other_cpu_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    hub_peak_rss_mb: f64,
}

impl Report {
    fn new(args: &LoadArgs, protocol: &Protocol, run: &Run, rss: f64) -> Report {
        let mut sorted = run.latencies.clone();
        sorted.sort_unstable();
        let mut extra = protocol.json.clone();
        extra.insert("upstream".into(), args.upstream.as_str().into());
        let upstream = match args.upstream {
            UpstreamKind::Demo => "demo upstream".to_string(),
            UpstreamKind::Oidc => format!("OIDC upstream, {} people", args.upstream_people),
        };
        Report {
            protocol: protocol.name,
            describe: format!("{}, {upstream}", protocol.describe),
            extra,
            engine: args.engine.as_str(),
            concurrency: args.concurrency,
            logins: run.done,
            seconds: run.wall.as_secs_f64(),
            hub_cpu_s: run.hub_cpu,
            client_cpu_s: run.client_cpu,
            upstream_cpu_s: run.upstream_cpu,
            db_cpu_s: (args.engine == Engine::Postgres).then_some(run.db_cpu),
            other_cpu_s: (run.machine_cpu
                - run.hub_cpu
                - run.client_cpu
                - run.upstream_cpu.unwrap_or(0.0)
                - run.db_cpu)
                .max(0.0),
            p50_ms: percentile_ms(&sorted, 0.50),
            p99_ms: percentile_ms(&sorted, 0.99),
            hub_peak_rss_mb: rss,
        }
    }

    fn per_second(&self) -> f64 {
        ratio(self.logins as f64, self.seconds)
    }

    fn per_hub_core_second(&self) -> f64 {
        ratio(self.logins as f64, self.hub_cpu_s)
    }

    fn print_table(&self) {
        let rows = [
            (
                "engine",
                format!(
                    "{} ({} {}, {} at once)",
                    self.engine, self.protocol, self.describe, self.concurrency
                ),
            ),
            ("logins", self.logins.to_string()),
            ("wall time", format!("{:.2} s", self.seconds)),
            ("logins per second", format!("{:.0}", self.per_second())),
            ("hub CPU", format!("{:.2} s", self.hub_cpu_s)),
            (
                "logins per hub core-second",
                format!("{:.0}", self.per_hub_core_second()),
            ),
            (
                "hub CPU per login",
                format!(
                    "{:.2} ms",
                    1000.0 * ratio(self.hub_cpu_s, self.logins as f64)
                ),
            ),
            ("load tool CPU", format!("{:.2} s", self.client_cpu_s)),
            (
                "mock OpenID provider CPU",
                match self.upstream_cpu_s {
                    Some(s) => format!(
                        "{s:.2} s ({:.2} ms per login)",
                        1000.0 * ratio(s, self.logins as f64)
                    ),
                    None => "- (demo upstream, inside the hub)".into(),
                },
            ),
            (
                "PostgreSQL CPU",
                match self.db_cpu_s {
                    Some(s) => format!(
                        "{s:.2} s ({:.2} ms per login)",
                        1000.0 * ratio(s, self.logins as f64)
                    ),
                    None => "- (SQLite runs inside the hub)".into(),
                },
            ),
            (
                "other CPU (kernel, others)",
                format!("{:.2} s", self.other_cpu_s),
            ),
            (
                "login latency p50 / p99",
                format!("{:.1} ms / {:.1} ms", self.p50_ms, self.p99_ms),
            ),
            ("hub peak RSS", format!("{:.1} MiB", self.hub_peak_rss_mb)),
        ];
        for (name, value) in rows {
            println!("{name:<28} {value}");
        }
    }

    fn json(&self) -> serde_json::Value {
        let round = |x: f64, places: i32| {
            let f = 10f64.powi(places);
            (x * f).round() / f
        };
        let mut value = json!({
            "protocol": self.protocol,
            "engine": self.engine,
            "concurrency": self.concurrency,
            "logins": self.logins,
            "seconds": round(self.seconds, 3),
            "logins_per_s": round(self.per_second(), 1),
            "hub_cpu_s": round(self.hub_cpu_s, 2),
            "logins_per_hub_core_s": round(self.per_hub_core_second(), 1),
            "client_cpu_s": round(self.client_cpu_s, 2),
            "upstream_cpu_s": self.upstream_cpu_s.map(|s| round(s, 2)),
            "db_cpu_s": self.db_cpu_s.map(|s| round(s, 2)),
            "other_cpu_s": round(self.other_cpu_s, 2),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "hub_peak_rss_mb": round(self.hub_peak_rss_mb, 1),
        });
        if let Some(object) = value.as_object_mut() {
            object.extend(self.extra.clone());
        }
        value
    }
}

fn ratio(n: f64, d: f64) -> f64 {
    if d > 0.0 {
        n / d
    } else {
        0.0
    }
}

/// The `p` quantile (nearest rank) of sorted latencies, in milliseconds.
pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted
        .get(rank - 1)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// `KEY=VALUE` of `--hub-setting` → (`FEDHUB_KEY`, `VALUE`).
fn hub_setting(s: &str) -> std::result::Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE, e.g. DATABASE_SQLITE_INLINE=false"))?;
    let key = key
        .trim()
        .trim_start_matches("FEDHUB_")
        .to_ascii_uppercase();
    if key.is_empty() {
        return Err(format!("{s:?}: no setting name"));
    }
    Ok((format!("FEDHUB_{key}"), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_settings_name_the_hub_environment() {
        assert_eq!(
            hub_setting("database_sqlite_inline=false").unwrap(),
            ("FEDHUB_DATABASE_SQLITE_INLINE".into(), "false".into())
        );
        assert_eq!(
            hub_setting("FEDHUB_SERVER_MAX_IN_FLIGHT=a=b").unwrap(),
            ("FEDHUB_SERVER_MAX_IN_FLIGHT".into(), "a=b".into())
        );
        assert!(hub_setting("DATABASE_SQLITE_INLINE").is_err());
        assert!(hub_setting("=1").is_err());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&ms, 0.50), 50.0);
        assert_eq!(percentile_ms(&ms, 0.99), 99.0);
        assert_eq!(percentile_ms(&ms[..1], 0.99), 1.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn arguments_parse() {
        let cli = Cli::try_parse_from([
            "fedhub-load",
            "oidc",
            "--engine",
            "postgres",
            "--access-token-format",
            "opaque",
        ])
        .unwrap();
        let Command::Oidc(args) = cli.command else {
            panic!("not the oidc command");
        };
        assert_eq!(args.load.engine, Engine::Postgres);
        assert_eq!(args.load.logins, 2000);
        assert_eq!(args.access_token_format, AccessTokenFormat::Opaque);
    }

    #[test]
    fn saml_arguments_parse() {
        let cli = Cli::try_parse_from([
            "fedhub-load",
            "saml",
            "--saml-alg",
            "ES256",
            "--logins",
            "10",
        ])
        .unwrap();
        let Command::Saml(args) = cli.command else {
            panic!("not the saml command");
        };
        assert_eq!((args.load.logins, args.saml_alg.as_str()), (10, "ES256"));
        assert_eq!(args.load.upstream, UpstreamKind::Demo);
        let cli = Cli::try_parse_from(["fedhub-load", "saml", "--upstream", "oidc"]).unwrap();
        let Command::Saml(args) = cli.command else {
            panic!("not the saml command");
        };
        assert_eq!(
            (args.load.upstream, args.load.upstream_people),
            (UpstreamKind::Oidc, 1000)
        );
        assert!(Cli::try_parse_from(["fedhub-load", "saml", "--upstream", "saml"]).is_err());
        assert!(Cli::try_parse_from(["fedhub-load", "saml", "--saml-alg", "EdDSA"]).is_err());
    }

    #[test]
    fn directory_arguments_parse() {
        let cli =
            Cli::try_parse_from(["fedhub-load", "directory-data", "--engine", "postgres"]).unwrap();
        let Command::DirectoryData(args) = cli.command else {
            panic!("not directory-data");
        };
        assert_eq!(
            (args.accounts, args.agencies, args.relying_parties),
            (100_000, 3_400, 200)
        );
        assert_eq!(args.data.schema, "fedhub_directory_bench");
        assert!(args
            .data
            .url()
            .unwrap()
            .ends_with("options=-csearch_path%3Dfedhub_directory_bench"));
        let cli = Cli::try_parse_from(["fedhub-load", "directory", "--iterations", "50"]).unwrap();
        let Command::Directory(args) = cli.command else {
            panic!("not directory");
        };
        assert_eq!((args.iterations, args.data.engine), (50, Engine::Sqlite));
    }
}
