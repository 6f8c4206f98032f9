//! Test stores on both engines and an in-process app.

use std::sync::Arc;

use fedhub::clock::ManualClock;
use fedhub::config::Config;
use fedhub::store::{Store, StoreOptions};
use fedhub::web::AppState;

/// 2026-11-27T00:00:00Z
pub const NOW: i64 = 1_795_737_600;

/// A store and whatever must live as long as it.
pub struct TestStore {
    pub store: Store,
    /// The database URL, for more nodes on the same database.
    pub url: String,
    _guard: Guard,
}

impl TestStore {
    /// Another node's pool on the same database (its own connections, nothing shared in
    /// memory), as a second `fedhub serve` would open.
    pub fn another_node(&self) -> Store {
        Store::connect(
            &self.url,
            &StoreOptions {
                pool_size: 3,
                ..Default::default()
            },
        )
        .unwrap()
    }

    /// A store on a database the caller owns and removes (e.g. a private cluster).
    pub fn unguarded(store: Store, url: String) -> TestStore {
        TestStore {
            store,
            url,
            _guard: Guard::None,
        }
    }
}

enum Guard {
    /// Whoever made the database removes it.
    None,
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Schema {
        url: String,
        schema: String,
    },
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Schema { url, schema } = self {
            if let Ok(mut conn) = fedhub::store::establish(url) {
                use diesel::connection::SimpleConnection;
                let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

impl std::ops::Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

/// A fresh SQLite database file (not :memory:, so the pool's connections share it).
pub fn sqlite_unmigrated() -> TestStore {
    sqlite_unmigrated_with(&StoreOptions::default())
}

fn sqlite_unmigrated_with(opts: &StoreOptions) -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = Store::connect(&url, opts).unwrap();
    TestStore {
        store,
        url,
        _guard: Guard::Dir(dir),
    }
}

pub fn sqlite() -> TestStore {
    let s = sqlite_unmigrated();
    s.migrate().unwrap();
    s
}

/// [`sqlite`] with its pool set by `opts`.
pub fn sqlite_with(opts: &StoreOptions) -> TestStore {
    let s = sqlite_unmigrated_with(opts);
    s.migrate().unwrap();
    s
}

/// The PostgreSQL server tests run against. Required: a missing variable fails the test.
pub fn postgres_url() -> String {
    std::env::var("FEDHUB_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "FEDHUB_TEST_DATABASE_URL is not set. PostgreSQL tests never skip: run them through \
             scripts/test, or set it, e.g. postgres://postgres@127.0.0.1:5432/test"
        )
    })
}

/// A fresh schema in the test database, migrated, dropped afterwards.
pub fn postgres() -> TestStore {
    postgres_with(&StoreOptions {
        pool_size: 3, // small: the suite runs many schemas at once against one server
        ..Default::default()
    })
}

/// [`postgres`] with its pool set by `opts`.
pub fn postgres_with(opts: &StoreOptions) -> TestStore {
    use diesel::connection::SimpleConnection;
    let base = postgres_url();
    let schema = format!("fedhub_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = fedhub::store::establish(&base)
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {base}: {e}"));
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let store = Store::connect(&url, opts).unwrap();
    store.migrate().unwrap();
    TestStore {
        store,
        url,
        _guard: Guard::Schema { url: base, schema },
    }
}

/// A fixed at-rest key for tests (32 bytes, base64).
pub const AT_REST_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub fn vault() -> fedhub_metadata::AtRestKey {
    fedhub_metadata::AtRestKey::from_base64(AT_REST_KEY).unwrap()
}

pub fn test_config() -> Config {
    let mut c = Config::default();
    c.server.public_url = "http://127.0.0.1:8080".into();
    c.keys.at_rest_key = Some(AT_REST_KEY.into());
    c
}

/// App state whose SAML keys exist (as after the first `fedhub serve`).
pub fn saml_state(store: &Store) -> (AppState, ManualClock) {
    let (state, clock) = app_state(store);
    let alg = state.config.saml_key_alg();
    store
        .write(|c| fedhub::keys::ensure(c, &vault(), fedhub::keys::Purpose::Saml, alg, NOW))
        .unwrap();
    (state, clock)
}

/// App state over `store`, with a clock tests control.
pub fn app_state(store: &Store) -> (AppState, ManualClock) {
    let clock = ManualClock::at(NOW);
    let state = AppState::new(test_config(), store.clone(), Arc::new(clock.clone())).unwrap();
    (state, clock)
}

/// The demo connector `dev` offering the citizen and a person the directory does not hold.
pub fn add_dev_connector(store: &Store, now: i64) {
    use diesel::prelude::*;
    use fedhub::store::schema::connectors::dsl as k;
    let people = serde_json::json!({ "people": [
        { "national_id": crate::sso::CITIZEN, "name": "Nguyễn Văn An" },
        { "national_id": "022195000123", "name": "Người Lạ" },
    ] });
    store
        .write(|c| {
            diesel::insert_into(k::connectors)
                .values((
                    k::id.eq("dev"),
                    k::kind.eq("dev"),
                    k::display_name.eq("Demo"),
                    k::config.eq(people.to_string()),
                    k::enabled.eq(true),
                    k::created_at.eq(now),
                    k::updated_at.eq(now),
                ))
                .execute(c)?;
            Ok(())
        })
        .unwrap();
}

/// Runs `tests/interop/<dir>/setup-node` (npm packages of a third-party peer) and returns its
/// node_modules directory. Call once per test binary (behind a `OnceLock`).
pub fn setup_node(dir: &str) -> std::path::PathBuf {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("interop")
        .join(dir)
        .join("setup-node");
    let out = std::process::Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    std::path::PathBuf::from(stdout.lines().last().unwrap().trim()).join("node_modules")
}

/// A membership row written straight to the table, for tests that need a given id, status,
/// group or subject: with the columns `admin::memberships::add` derives (the unit's
/// `unit_path` and the account's `search_name`), so lists and searches see it as they would
/// a member added in the console.
pub struct MemberRow<'a> {
    pub id: &'a str,
    pub account_id: &'a str,
    pub rp_id: &'a str,
    pub unit: Option<&'a str>,
    pub status: &'a str,
    pub user_group: Option<&'a str>,
    pub subject: &'a str,
}

pub fn insert_member(c: &mut fedhub::store::Db, row: MemberRow<'_>) -> fedhub::Result<()> {
    use diesel::prelude::*;
    use fedhub::store::schema::{accounts, memberships as m};
    let search_name: String = accounts::table
        .find(row.account_id)
        .select(accounts::search_name)
        .get_result(c)?;
    let unit_path = row.unit.map(|u| {
        fedhub::admin::memberships::unit_path(&fedhub_identifiers::AgencyCode::parse(u).unwrap())
    });
    diesel::insert_into(m::table)
        .values((
            m::id.eq(row.id),
            m::account_id.eq(row.account_id),
            m::rp_id.eq(row.rp_id),
            m::unit_agency_code.eq(row.unit),
            m::unit_path.eq(unit_path),
            m::search_name.eq(search_name),
            m::status.eq(row.status),
            m::user_group.eq(row.user_group),
            m::subject.eq(row.subject),
            m::created_at.eq(NOW),
            m::updated_at.eq(NOW),
        ))
        .execute(c)?;
    Ok(())
}
