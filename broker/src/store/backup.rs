//! Backup and restore of the embedded SQLite database (`fedhub backup` / `fedhub restore`).
//!
//! A backup is `VACUUM INTO` on a connection of the running store: one read transaction, so
//! it is consistent while the hub serves (WAL readers do not block writers), and it carries
//! what is still only in the `-wal` file, which a file copy would miss. A restore checks the
//! file first (an SQLite database, `integrity_check` ok, fedhub's migrations table and
//! tables, no migration this binary does not know), copies it next to the target, then
//! renames it over the target while holding the target's exclusive lock, so that no fedhub
//! process has the old file open and the target is never half-written.
//!
//! PostgreSQL has its own tools (`pg_dump` / `pg_restore`): both commands refuse it.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};

use super::{sqlite_path, Engine, SQLITE_MIGRATIONS};
use crate::error::{Error, Result};

/// Tables every fedhub database has had since its first migration.
const REQUIRED_TABLES: [&str; 6] = [
    "__diesel_schema_migrations",
    "agencies",
    "accounts",
    "relying_parties",
    "signing_keys",
    "audit_log",
];

/// What a backup file holds, as printed by both commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub bytes: u64,
    /// The newest migration applied, e.g. `20261205000032`.
    pub schema: String,
    /// Migrations this binary knows that the file has not had yet (the next command applies
    /// them).
    pub behind: usize,
    pub accounts: i64,
    pub relying_parties: i64,
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes, schema {}, {} account(s), {} relying part{}",
            self.bytes,
            self.schema,
            self.accounts,
            self.relying_parties,
            if self.relying_parties == 1 {
                "y"
            } else {
                "ies"
            }
        )
    }
}

/// The refusal on PostgreSQL, naming its tools and the documentation.
fn postgres_refusal(command: &str) -> Error {
    Error::invalid(
        "database.url",
        format!(
            "`fedhub {command}` is for the embedded SQLite database; on PostgreSQL use \
             `pg_dump -Fc -f FILE \"$FEDHUB_DATABASE_URL\"` and `pg_restore` into a new, empty \
             database (docs/operations.md, section \"Backups\", PostgreSQL)"
        ),
    )
}

/// The SQLite file the configured database URL names, or the refusal for PostgreSQL.
pub fn sqlite_file(url: &str, command: &str) -> Result<PathBuf> {
    match Engine::of_url(url).map_err(|rule| Error::invalid("database.url", rule))? {
        Engine::Postgres => Err(postgres_refusal(command)),
        Engine::Sqlite => {
            let path = sqlite_path(url);
            if path.is_empty() || path.starts_with(":memory:") || path.starts_with("file:") {
                return Err(Error::invalid(
                    "database.url",
                    format!("`fedhub {command}` needs the database as a file path"),
                ));
            }
            Ok(PathBuf::from(path))
        }
    }
}

fn utf8(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| Error::invalid("file", format!("{} is not UTF-8", path.display())))
}

/// A string literal for SQL.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn cannot(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::invalid("file", format!("{}: {e}", path.display()))
}

impl super::Store {
    /// Writes a consistent copy of the (SQLite) database to `to`, a file that must not
    /// exist, readable by its owner only; returns what it holds.
    pub fn backup_to(&self, to: &Path) -> Result<Snapshot> {
        if self.engine != Engine::Sqlite {
            return Err(postgres_refusal("backup"));
        }
        let target = utf8(to)?;
        // Created here, exclusively: an existing file is never overwritten, and the copy of
        // sealed secrets and password hashes is never readable by others, not even briefly.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(to) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::conflict(
                    "file",
                    format!(
                        "{} already exists; a backup never overwrites a file, choose a new name",
                        to.display()
                    ),
                ));
            }
            Err(e) => return Err(cannot(to, e)),
        }
        let written = self
            .conn()
            .and_then(|mut c| Ok(c.batch_execute(&format!("VACUUM INTO {}", quoted(target)))?));
        let checked = written.and_then(|()| inspect(to));
        if checked.is_err() {
            // Nothing half-written stays behind.
            let _ = std::fs::remove_file(to);
        }
        checked
    }
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

#[derive(QueryableByName)]
struct Check {
    #[diesel(sql_type = Text)]
    integrity_check: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The migrations this binary carries, by version.
fn known_versions() -> Result<Vec<String>> {
    let migrations = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
        .map_err(Error::internal)?;
    let mut versions: Vec<String> = migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    versions.sort();
    Ok(versions)
}

fn open(path: &Path) -> Result<SqliteConnection> {
    let mut conn = SqliteConnection::establish(utf8(path)?)
        .map_err(|e| Error::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.batch_execute("PRAGMA busy_timeout = 0;")?;
    Ok(conn)
}

fn tables(conn: &mut SqliteConnection) -> Result<Vec<String>> {
    Ok(diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .load::<Name>(conn)?
    .into_iter()
    .map(|n| n.name)
    .collect())
}

/// Checks that `path` is a sound fedhub SQLite database this binary can run, and says what
/// it holds. Every refusal is `Invalid` on `file`.
pub fn inspect(path: &Path) -> Result<Snapshot> {
    let not_fedhub = |why: &str| {
        Error::invalid(
            "file",
            format!("{} is not a fedhub SQLite database: {why}", path.display()),
        )
    };
    let mut header = [0u8; 16];
    let bytes = std::fs::metadata(path).map_err(|e| cannot(path, e))?.len();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|_| not_fedhub("not an SQLite file"))?;
    if &header != b"SQLite format 3\0" {
        return Err(not_fedhub("not an SQLite file"));
    }
    let mut conn = open(path)?;
    let damaged =
        |detail: String| Error::invalid("file", format!("{} is damaged: {detail}", path.display()));
    let checks = diesel::sql_query("PRAGMA integrity_check")
        .load::<Check>(&mut conn)
        .map_err(|e| damaged(e.to_string()))?;
    let problems: Vec<String> = checks
        .into_iter()
        .map(|c| c.integrity_check)
        .filter(|c| c != "ok")
        .collect();
    if !problems.is_empty() {
        let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
        return Err(damaged(format!("integrity_check: {}", shown.join("; "))));
    }
    let present = tables(&mut conn).map_err(|e| damaged(e.to_string()))?;
    let missing: Vec<&str> = REQUIRED_TABLES
        .iter()
        .copied()
        .filter(|t| !present.iter().any(|p| p == t))
        .collect();
    if !missing.is_empty() {
        return Err(not_fedhub(&format!("no table {}", missing.join(", "))));
    }
    let mut applied: Vec<String> =
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
            .load::<Version>(&mut conn)?
            .into_iter()
            .map(|v| v.version)
            .collect();
    applied.sort();
    let known = known_versions()?;
    let newest_known = known.last().cloned().unwrap_or_default();
    if let Some(unknown) = applied.iter().find(|v| !known.contains(v)) {
        let newest = applied.last().unwrap_or(unknown);
        return Err(Error::invalid(
            "file",
            format!(
                "{} comes from a newer fedhub: its schema {newest} has migration {unknown}, \
                 which this binary does not know (it knows up to {newest_known}); restore it \
                 with the fedhub version that made it, or a newer one",
                path.display()
            ),
        ));
    }
    let count = |conn: &mut SqliteConnection, table: &str| -> Result<i64> {
        Ok(
            diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                .get_result::<Count>(conn)?
                .n,
        )
    };
    Ok(Snapshot {
        bytes,
        schema: applied.last().cloned().unwrap_or_else(|| "none".into()),
        behind: known.len().saturating_sub(applied.len()),
        accounts: count(&mut conn, "accounts")?,
        relying_parties: count(&mut conn, "relying_parties")?,
    })
}

/// Whether `path` looks like a fedhub SQLite database (its tables are there), without the
/// cost of an integrity check.
pub fn is_fedhub(path: &Path) -> bool {
    path.is_file()
        && open(path)
            .and_then(|mut c| tables(&mut c))
            .is_ok_and(|t| REQUIRED_TABLES.iter().all(|r| t.iter().any(|p| p == r)))
}

/// What `restore` found at the target before replacing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    Nothing,
    Empty,
    /// A database with data, replaced because of `--force`.
    Data,
}

/// A file next to the target that is removed unless it was renamed into place.
struct Staged {
    path: PathBuf,
    installed: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.installed {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = self.path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(p));
            }
        }
    }
}

fn in_use(target: &Path) -> Error {
    Error::conflict(
        "database",
        format!(
            "{} is in use: stop `fedhub serve` (and any other fedhub command using it) first",
            target.display()
        ),
    )
}

/// Replaces the SQLite database at `target` with the backup `from`, after checking it (see
/// [`inspect`]). Refuses while any process has `target` open, and, unless `force`, when it
/// holds data. The backup file itself is only read.
pub fn restore(from: &Path, target: &Path, force: bool) -> Result<(Snapshot, Replaced)> {
    if !from.is_file() {
        return Err(cannot(from, "no such file"));
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Error::Unavailable(format!(
            "cannot open the database: the folder {} does not exist",
            dir.display()
        )));
    }
    let name = target
        .file_name()
        .ok_or_else(|| Error::invalid("database.url", "names no file"))?
        .to_string_lossy()
        .into_owned();
    let mut staged = Staged {
        path: dir.join(format!(".{name}.restore-{}", uuid::Uuid::new_v4().simple())),
        installed: false,
    };
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options
            .open(&staged.path)
            .map_err(|e| cannot(&staged.path, e))?;
        let mut src = std::fs::File::open(from).map_err(|e| cannot(from, e))?;
        std::io::copy(&mut src, &mut out).map_err(|e| cannot(&staged.path, e))?;
        out.sync_all().map_err(|e| cannot(&staged.path, e))?;
    }
    let snapshot = inspect(&staged.path).map_err(|e| match e {
        // The messages name the file the operator gave, not the staged copy.
        Error::Invalid { field, rule } => Error::Invalid {
            field,
            rule: rule.replace(
                &staged.path.display().to_string(),
                &from.display().to_string(),
            ),
        },
        other => other,
    })?;
    // Hold the target's exclusive lock while it is replaced: no other connection may be
    // open (a running hub would go on writing to the replaced file).
    let mut held = None;
    let mut replaced = Replaced::Nothing;
    if target.exists() {
        let mut conn = open(target)?;
        // A hub or command stopped a moment ago may still be closing its connections: give
        // them two seconds before calling the database in use.
        let busy = |e: &diesel::result::Error| {
            let text = e.to_string();
            text.contains("locked") || text.contains("busy")
        };
        let mut waited = 0;
        let locked = loop {
            match conn.batch_execute("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;") {
                Err(e) if busy(&e) && waited < 20 => {
                    waited += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => break other,
            }
        };
        if let Err(e) = locked {
            let text = e.to_string();
            return Err(if text.contains("locked") || text.contains("busy") {
                in_use(target)
            } else {
                Error::invalid(
                    "database",
                    format!("{} cannot be read: {text}", target.display()),
                )
            });
        }
        let mut with_rows = Vec::new();
        let unreadable = |e: Error| {
            Error::invalid(
                "database",
                format!("{} cannot be read: {e}", target.display()),
            )
        };
        for table in tables(&mut conn).map_err(unreadable)? {
            if table == "__diesel_schema_migrations" {
                continue;
            }
            let n = diesel::sql_query(format!(
                "SELECT COUNT(*) AS n FROM (SELECT 1 FROM \"{}\" LIMIT 1)",
                table.replace('"', "\"\"")
            ))
            .get_result::<Count>(&mut conn)?
            .n;
            if n > 0 {
                with_rows.push(table);
            }
        }
        replaced = if with_rows.is_empty() {
            Replaced::Empty
        } else {
            Replaced::Data
        };
        if replaced == Replaced::Data && !force {
            return Err(Error::conflict(
                "database",
                format!(
                    "{} holds data ({}); restoring replaces all of it: back it up, then give --force",
                    target.display(),
                    with_rows.join(", ")
                ),
            ));
        }
        // Out of WAL mode while the lock is held: the old -wal file is folded in and removed,
        // so no stale WAL is left beside the restored database.
        conn.batch_execute("COMMIT; PRAGMA journal_mode = DELETE;")?;
        held = Some(conn);
    }
    std::fs::rename(&staged.path, target).map_err(|e| cannot(target, e))?;
    staged.installed = true;
    drop(held);
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok((snapshot, replaced))
}
