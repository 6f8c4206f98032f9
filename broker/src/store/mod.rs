//! Storage: one diesel codebase over SQLite (embedded default) and PostgreSQL (many nodes).
//!
//! Queries are written once against [`Db`], a diesel `MultiConnection`. The only places that
//! look at the engine are here: connecting, migrating and opening a write transaction
//! (SQLite needs `BEGIN IMMEDIATE`, or read-then-write transactions fail with "database is
//! locked" under concurrency).
//!
//! Lookups by a unique key use `get_result`, not `first`: `first` binds `LIMIT ?`, and SQLite
//! re-prepares a cached statement whose LIMIT is a bound parameter at every use (measured at
//! about a tenth of the hub's CPU under login load).

pub mod backup;
pub mod counters;
pub mod replay;
pub mod schema;

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::{CustomizeConnection, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::{Error, Result};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// A connection to either engine.
#[derive(diesel::MultiConnection)]
pub enum Db {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// Which engine a database URL names, or why it names none.
    pub fn of_url(url: &str) -> std::result::Result<Engine, String> {
        if url.starts_with("sqlite:") {
            Ok(Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Engine::Postgres)
        } else {
            Err("must start with sqlite:// (embedded) or postgres:// (many nodes)".into())
        }
    }
}

/// What diesel's SQLite driver wants: a path, or `:memory:`.
fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub pool_size: u32,
    /// Opening a connection (at start-up, and the pool's own attempts).
    pub connect_timeout: Duration,
    /// Waiting for a free pooled connection ([`Store::conn`]); then `Unavailable`.
    pub acquire_timeout: Duration,
    pub busy_timeout: Duration,
    /// SQLite: see [`Store::read_async`].
    pub sqlite_inline: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(2),
            busy_timeout: Duration::from_secs(5),
            sqlite_inline: true,
        }
    }
}

/// Per-connection settings: SQLite needs WAL, foreign keys and a busy timeout on every
/// connection it opens; PostgreSQL needs nothing.
#[derive(Debug)]
struct Setup {
    busy_timeout_ms: u128,
}

impl CustomizeConnection<Db, diesel::r2d2::Error> for Setup {
    fn on_acquire(&self, conn: &mut Db) -> std::result::Result<(), diesel::r2d2::Error> {
        if let Db::Sqlite(c) = conn {
            // busy_timeout first: connections opened together contend for the WAL switch.
            c.batch_execute(&format!(
                "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                self.busy_timeout_ms
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// Opens connections of the engine the URL names. (diesel's generic manager tries every
/// engine in turn and reports only "invalid connection url", hiding the real cause.)
#[derive(Debug)]
pub struct DbManager {
    engine: Engine,
    target: String,
}

impl ManageConnection for DbManager {
    type Connection = Db;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> std::result::Result<Db, Self::Error> {
        let conn = match self.engine {
            Engine::Sqlite => SqliteConnection::establish(&self.target).map(Db::Sqlite),
            Engine::Postgres => PgConnection::establish(&self.target).map(Db::Postgres),
        };
        conn.map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut Db) -> std::result::Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Db) -> bool {
        match conn {
            Db::Sqlite(c) => c.is_broken(),
            Db::Postgres(c) => c.is_broken(),
        }
    }
}

pub type Pooled = PooledConnection<DbManager>;

/// The store handle: cheap to clone, shared by the server and the CLI.
#[derive(Clone)]
pub struct Store {
    pool: Pool<DbManager>,
    engine: Engine,
    /// SQLite has one writer at a time: this process's writers queue here (fairly, for at
    /// most `busy_timeout`) instead of in SQLite's busy handler, which sleeps in steps of up
    /// to 100 ms and so made the slowest logins wait a quarter of a second under load.
    sqlite_writers: std::sync::Arc<parking_lot::FairMutex<()>>,
    busy_timeout: Duration,
    acquire_timeout: Duration,
    inline_sqlite: bool,
    /// Requests that found no free connection within `acquire_timeout` (for `/metrics`).
    acquire_timeouts: prometheus_client::metrics::counter::Counter,
    /// When a connection was last handed out, in ms after `opened` (see [`Store::readiness`]).
    last_checkout_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    opened: std::time::Instant,
}

/// What `/readyz` reports of the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// It answers and is fully migrated.
    Ready,
    /// Every connection is in use and they were being handed out a moment ago: the node is
    /// busy, not broken (taking it out of the load balancer would only load the others).
    Busy,
}

/// How recently connections must have been handed out for a full pool to count as busy.
const BUSY_EVIDENCE: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("Store")
            .field("engine", &self.engine)
            .finish()
    }
}

impl Store {
    /// Opens a pool. Fails with `Unavailable` if the first connection cannot be made.
    pub fn connect(url: &str, opts: &StoreOptions) -> Result<Store> {
        let engine = Engine::of_url(url).map_err(|rule| Error::invalid("database.url", rule))?;
        let target = match engine {
            Engine::Sqlite => {
                let path = sqlite_path(url);
                if path.is_empty() {
                    return Err(Error::invalid(
                        "database.url",
                        "sqlite:// needs a file path",
                    ));
                }
                path.to_string()
            }
            Engine::Postgres => url.to_string(),
        };
        let manager = DbManager { engine, target };
        let pool = Pool::builder()
            .max_size(opts.pool_size.max(1))
            // No "SELECT 1" before every use (a round trip per query on PostgreSQL): a
            // connection that failed is dropped through `has_broken` instead.
            .test_on_check_out(false)
            .connection_timeout(opts.connect_timeout)
            .connection_customizer(Box::new(Setup {
                busy_timeout_ms: opts.busy_timeout.as_millis(),
            }))
            .build(manager)
            .map_err(|e| Error::Unavailable(format!("cannot connect to the database: {e}")))?;
        Ok(Store {
            pool,
            engine,
            sqlite_writers: Default::default(),
            busy_timeout: opts.busy_timeout,
            acquire_timeout: opts.acquire_timeout,
            inline_sqlite: opts.sqlite_inline,
            acquire_timeouts: Default::default(),
            last_checkout_ms: Default::default(),
            opened: std::time::Instant::now(),
        })
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// A pooled connection, waiting at most `acquire_timeout` for one to be free. Every
    /// connection busy that long (a node over its capacity) or none openable (the database
    /// down) is `Unavailable`: a 503 with `Retry-After` at the HTTP edge, not a 500.
    pub fn conn(&self) -> Result<Pooled> {
        let conn = self.pool.get_timeout(self.acquire_timeout).map_err(|e| {
            self.acquire_timeouts.inc();
            let state = self.pool.state();
            Error::Unavailable(format!(
                "no database connection within {} ms ({} of {} in use): {e}",
                self.acquire_timeout.as_millis(),
                state.connections - state.idle_connections,
                self.pool.max_size(),
            ))
        })?;
        self.checked_out();
        Ok(conn)
    }

    fn checked_out(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_checkout_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many times [`Store::conn`] gave up waiting (counted in `/metrics`).
    pub fn acquire_timeouts(&self) -> prometheus_client::metrics::counter::Counter {
        self.acquire_timeouts.clone()
    }

    /// Applies pending migrations; returns how many ran.
    pub fn migrate(&self) -> Result<usize> {
        let mut conn = self.conn()?;
        let ran = match &mut *conn {
            Db::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
            Db::Postgres(c) => c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len()),
        };
        ran.map_err(|e| Error::Internal(format!("migration failed: {e}")))
    }

    /// Gives the query planner statistics. SQLite keeps none until `ANALYZE` runs, and then
    /// it cannot tell that a CCCD names one account while an agency subtree holds thousands
    /// of members; `optimize` analyses (a bounded sample of) the tables that need it, and is
    /// cheap when nothing changed. PostgreSQL's autovacuum does this on its own.
    pub fn optimize(&self) -> Result<()> {
        let mut conn = self.conn()?;
        if let Db::Sqlite(c) = &mut *conn {
            c.batch_execute("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")?;
        }
        Ok(())
    }

    /// Reverts the applied migrations newer than or equal to `version` (as its folder name
    /// starts, e.g. `2026-12-05-000030`), newest first: the way back from an upgrade, and how
    /// the tests check that a migration carries existing rows forward. Returns the versions
    /// reverted.
    pub fn revert_through(&self, version: &str) -> Result<Vec<String>> {
        let wanted: String = version.chars().filter(char::is_ascii_digit).collect();
        let mut conn = self.conn()?;
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| {
            Error::Internal(format!("reverting migrations failed: {e}"))
        };
        let applied: Vec<String> = match &mut *conn {
            Db::Sqlite(c) => c.applied_migrations(),
            Db::Postgres(c) => c.applied_migrations(),
        }
        .map_err(fail)?
        .iter()
        .map(|v| v.to_string())
        .collect();
        if !applied.iter().any(|v| v.as_str() == wanted) {
            return Err(Error::invalid(
                "version",
                format!("migration {version} is not applied"),
            ));
        }
        let mut reverted = Vec::new();
        loop {
            let v = match &mut *conn {
                Db::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS),
                Db::Postgres(c) => c.revert_last_migration(POSTGRES_MIGRATIONS),
            }
            .map_err(fail)?
            .to_string();
            let done = v == wanted;
            reverted.push(v);
            if done {
                return Ok(reverted);
            }
        }
    }

    /// Migrations not yet applied (for `/readyz` and `fedhub migrate --check`).
    pub fn pending_migrations(&self) -> Result<usize> {
        let mut conn = self.conn()?;
        let pending = match &mut *conn {
            Db::Sqlite(c) => c.pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
            Db::Postgres(c) => c.pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len()),
        };
        pending.map_err(|e| Error::Unavailable(format!("cannot read migrations: {e}")))
    }

    /// Runs `f` on a pooled connection (blocking: call from `spawn_blocking` or the CLI).
    pub fn read<T>(&self, f: impl FnOnce(&mut Db) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        f(&mut conn)
    }

    /// Runs `f` inside a write transaction: all of it is committed or none of it.
    pub fn write<T>(&self, f: impl FnOnce(&mut Db) -> Result<T>) -> Result<T> {
        let _turn = match self.engine {
            Engine::Sqlite => Some(
                self.sqlite_writers
                    .try_lock_for(self.busy_timeout)
                    .ok_or_else(|| {
                        Error::Unavailable(format!(
                            "the database stayed busy for {} ms; try again",
                            self.busy_timeout.as_millis()
                        ))
                    })?,
            ),
            Engine::Postgres => None,
        };
        let mut conn = self.conn()?;
        write_transaction(&mut conn, f)
    }

    /// `read` for async callers. On SQLite, when a connection is free at once, the calling
    /// thread runs it: a short SQLite read takes microseconds, less than the two thread
    /// wake-ups of a trip to the blocking pool (6% more logins per core-second, measured in
    /// bench/README.md). Anything that would wait, and every PostgreSQL query (a network
    /// round trip), goes to the blocking pool.
    pub async fn read_async<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T> + Send + 'static,
    {
        if let Some(mut conn) = self.free_sqlite_conn() {
            return f(&mut conn);
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(Error::internal)?
    }

    /// `write` for async callers: on the calling thread when SQLite's writer turn and a
    /// connection are both free at once (see [`Store::read_async`]), else on the blocking
    /// pool, which waits for them.
    pub async fn write_async<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T> + Send + 'static,
    {
        if let Some(_turn) = self.free_sqlite_writer() {
            if let Some(mut conn) = self.free_sqlite_conn() {
                return write_transaction(&mut conn, f);
            }
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .map_err(Error::internal)?
    }

    /// A pooled SQLite connection if one is idle now; `None` on PostgreSQL.
    fn free_sqlite_conn(&self) -> Option<Pooled> {
        let conn = match self.engine {
            Engine::Sqlite if self.inline_sqlite => self.pool.try_get(),
            _ => None,
        };
        if conn.is_some() {
            self.checked_out();
        }
        conn
    }

    /// This process's SQLite writer turn if nobody holds or waits for it; `None` on
    /// PostgreSQL.
    fn free_sqlite_writer(&self) -> Option<parking_lot::FairMutexGuard<'_, ()>> {
        match self.engine {
            Engine::Sqlite if self.inline_sqlite => self.sqlite_writers.try_lock(),
            _ => None,
        }
    }

    /// For `/readyz`, without waiting for a connection when all are busy: [`Readiness::Busy`]
    /// when every connection is in use and one was handed out within the last 10 s (a
    /// database that went away breaks and drops its connections, and hands none out), else
    /// [`Store::ping`].
    pub fn readiness(&self) -> Result<Readiness> {
        let state = self.pool.state();
        let full = state.idle_connections == 0 && state.connections == self.pool.max_size();
        let last = Duration::from_millis(
            self.last_checkout_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        if full && self.opened.elapsed().saturating_sub(last) < BUSY_EVIDENCE {
            return Ok(Readiness::Busy);
        }
        self.ping().map(|()| Readiness::Ready)
    }

    /// Is the database reachable and fully migrated?
    pub fn ping(&self) -> Result<()> {
        let mut conn = self.conn()?;
        conn.batch_execute("SELECT 1")
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        drop(conn);
        match self.pending_migrations()? {
            0 => Ok(()),
            n => Err(Error::Unavailable(format!("{n} migration(s) pending"))),
        }
    }
}

/// A write transaction on either engine. SQLite takes the write lock up front
/// (`BEGIN IMMEDIATE`) so that busy_timeout applies instead of a lock-upgrade failure.
pub fn write_transaction<T>(conn: &mut Db, f: impl FnOnce(&mut Db) -> Result<T>) -> Result<T> {
    match conn {
        Db::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
        Db::Postgres(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    match f(conn) {
        Ok(value) => {
            commit(conn)?;
            Ok(value)
        }
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
}

fn commit(conn: &mut Db) -> Result<()> {
    let result = match conn {
        Db::Sqlite(c) => AnsiTransactionManager::commit_transaction(c),
        Db::Postgres(c) => AnsiTransactionManager::commit_transaction(c),
    };
    if let Err(e) = result {
        rollback(conn);
        return Err(e.into());
    }
    Ok(())
}

fn rollback(conn: &mut Db) {
    let result = match conn {
        Db::Sqlite(c) => AnsiTransactionManager::rollback_transaction(c),
        Db::Postgres(c) => AnsiTransactionManager::rollback_transaction(c),
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "rollback failed; the connection will be discarded");
    }
}

/// A fresh random identifier (UUID v4), as the seed's screens show federated account ids.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The connection type the DSL runs on; re-exported so other modules do not name the engine.
pub use diesel::RunQueryDsl;

/// Opens a single connection without a pool, e.g. to create a test schema.
pub fn establish(url: &str) -> Result<Db> {
    let engine = Engine::of_url(url).map_err(|rule| Error::invalid("database.url", rule))?;
    let target = match engine {
        Engine::Sqlite => sqlite_path(url).to_string(),
        Engine::Postgres => url.to_string(),
    };
    DbManager { engine, target }
        .connect()
        .map_err(|e| Error::Unavailable(format!("cannot connect to the database: {e}")))
}
