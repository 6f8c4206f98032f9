//! A fresh hub database, seeded like `fedhub demo`, with one OIDC client or one SAML service
//! provider for the load, and (`--upstream oidc`) an OIDC connector to the load tool's mock
//! provider with the provider's people in the directory.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};
use fedhub::clock::{Clock, SystemClock};
use fedhub::directory::accounts::AccountInput;
use fedhub::keys::{self, Purpose};
use fedhub::rp::oidc::{AccessTokenFormat, OidcRegistration};
use fedhub::store::{Store, StoreOptions};
use fedhub::upstream::OidcRegistration as OidcUpstreamRegistration;
use fedhub_metadata::keys::KeyAlg;
use fedhub_metadata::AtRestKey;

use crate::mock_op::{self, Person};
use crate::upstream::CONNECTOR_ID;

/// Where the hub sends the browser back with a code. Nothing listens there: the load tool
/// reads the `Location` header and never follows it.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";
pub const CLIENT_ID: &str = "fedhub-load";
pub const SCOPES: [&str; 4] = ["openid", "profile", "phone", "national_id"];
/// A demo agency that owns the client (from the shipped agency list).
const OWNER: &str = "000.00.00.H49";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// The hub's database. A PostgreSQL database is created for the run and dropped with this
/// value (also when the run fails); a SQLite file lives in the run's temporary folder.
pub struct Database {
    pub url: String,
    postgres: Option<Created>,
}

struct Created {
    admin_url: String,
    name: String,
}

impl Database {
    pub fn create(engine: Engine, postgres_url: &str, dir: &Path) -> Result<Database> {
        match engine {
            Engine::Sqlite => Ok(Database {
                url: format!("sqlite://{}", dir.join("load.db").display()),
                postgres: None,
            }),
            Engine::Postgres => {
                let name = format!("fedhub_load_{}", std::process::id());
                let mut admin = PgConnection::establish(postgres_url).with_context(|| {
                    format!("connecting to {} (--postgres-url)", redact(postgres_url))
                })?;
                drop_database(&mut admin, &name)?;
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .with_context(|| format!("CREATE DATABASE {name}"))?;
                let mut url = url::Url::parse(postgres_url).context("--postgres-url")?;
                url.set_path(&format!("/{name}"));
                Ok(Database {
                    url: url.to_string(),
                    postgres: Some(Created {
                        admin_url: postgres_url.to_string(),
                        name,
                    }),
                })
            }
        }
    }

    /// Process ids of the PostgreSQL server processes serving this database (the hub's pool);
    /// none for SQLite, which runs inside the hub.
    pub fn backend_pids(&self) -> Result<Vec<u32>> {
        #[derive(diesel::QueryableByName)]
        struct Backend {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            pid: i32,
        }
        let Some(created) = &self.postgres else {
            return Ok(Vec::new());
        };
        let mut admin = PgConnection::establish(&created.admin_url)?;
        let rows: Vec<Backend> = diesel::sql_query(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind::<diesel::sql_types::Text, _>(&created.name)
        .load(&mut admin)?;
        Ok(rows
            .into_iter()
            .filter_map(|b| u32::try_from(b.pid).ok())
            .collect())
    }

    /// The database's name or file, for messages.
    pub fn describe(&self) -> String {
        match &self.postgres {
            Some(created) => format!("PostgreSQL database {}", created.name),
            None => self.url.clone(),
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let Some(created) = &self.postgres else {
            return;
        };
        let dropped = PgConnection::establish(&created.admin_url)
            .map_err(anyhow::Error::from)
            .and_then(|mut admin| drop_database(&mut admin, &created.name));
        if let Err(e) = dropped {
            eprintln!(
                "fedhub-load: could not drop database {}: {e:#}; drop it by hand",
                created.name
            );
        }
    }
}

fn drop_database(admin: &mut PgConnection, name: &str) -> Result<()> {
    // FORCE (PostgreSQL 13+) ends sessions a killed hub may have left; older servers get the
    // plain statement.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .or_else(|_| admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")))
        .with_context(|| format!("DROP DATABASE {name}"))
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// What the load needs to know about the prepared hub.
pub struct Prepared<T> {
    pub at_rest_key_file: PathBuf,
    /// What `register` returned.
    pub registered: T,
}

/// The load's relying party as registered: its id in the hub, and what the login needs.
pub struct Registered<T> {
    pub rp_id: String,
    pub value: T,
}

/// Who vouches for the person, as the hub must know it.
pub enum UpstreamSetup<'a> {
    /// The demo connector `fedhub::demo::seed` registers.
    Demo,
    /// An OpenID provider at `issuer` (the load tool's mock), for these people.
    Oidc {
        issuer: &'a str,
        people: &'a [Person],
    },
}

/// Migrates and seeds the database, writes a fresh at-rest key, creates the signing keys (the
/// SAML ones with `saml_alg`), registers the load's relying party with `register` and the
/// upstream it signs in with. The store is closed before the hub starts.
pub fn prepare<T>(
    database_url: &str,
    dir: &Path,
    saml_alg: KeyAlg,
    upstream: &UpstreamSetup<'_>,
    register: impl FnOnce(&Store, i64) -> Result<Registered<T>>,
) -> Result<Prepared<T>> {
    let store = Store::connect(database_url, &StoreOptions::default())?;
    store.migrate()?;
    let now = SystemClock.now();
    fedhub::demo::seed(&store, now)?;

    let key = AtRestKey::generate_base64().map_err(|e| anyhow!("at-rest key: {e}"))?;
    let at_rest_key_file = dir.join("at-rest.key");
    std::fs::write(&at_rest_key_file, &key)
        .with_context(|| format!("writing {}", at_rest_key_file.display()))?;
    let vault = AtRestKey::from_base64(&key).map_err(|e| anyhow!("at-rest key: {e}"))?;
    for purpose in [Purpose::Saml, Purpose::Oidc] {
        store.write(|c| keys::ensure_all(c, &vault, purpose, saml_alg, now))?;
    }
    let registered = register(&store, now)?;
    if let UpstreamSetup::Oidc { issuer, people } = upstream {
        register_oidc_upstream(&store, &vault, now, &registered.rp_id, issuer, people)
            .context("registering the OIDC upstream")?;
    }
    Ok(Prepared {
        at_rest_key_file,
        registered: registered.value,
    })
}

/// The OIDC connector for the provider at `issuer`, registered as an operator would
/// (`upstream::add_oidc`, national portal claim names), the only one the load's relying party
/// offers; and an account in the directory for each of `people`, added as the directory
/// does (`accounts::add` after `validate`), all in one transaction.
fn register_oidc_upstream(
    store: &Store,
    vault: &AtRestKey,
    now: i64,
    rp_id: &str,
    issuer: &str,
    people: &[Person],
) -> Result<()> {
    let registration = OidcUpstreamRegistration {
        id: CONNECTOR_ID.into(),
        display_name: "Tài khoản định danh điện tử (fedhub-load mock OP)".into(),
        issuer: issuer.into(),
        client_id: mock_op::CLIENT_ID.into(),
        client_secret: mock_op::CLIENT_SECRET.into(),
        scopes: Some(vec!["openid".into(), "profile".into()]),
        claim_names: None,
    };
    store.write(|c| {
        fedhub::upstream::add_oidc(c, vault, &registration, now)?;
        fedhub::upstream::allow_for_rp(c, rp_id, &[CONNECTOR_ID.to_string()])?;
        for p in people {
            let input = AccountInput {
                kind: "citizen".into(),
                display_name: p.name.clone(),
                national_id: Some(p.national_id.clone()),
                phone: p.phone.clone(),
                ..Default::default()
            };
            fedhub::directory::accounts::add(c, &input.validate()?, now)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The load tool's OIDC client: its id and secret.
pub struct OidcClient {
    pub client_id: String,
    pub client_secret: String,
}

/// Registers the load tool's OIDC client.
pub fn register_oidc(
    store: &Store,
    now: i64,
    format: AccessTokenFormat,
    alg: &str,
) -> Result<Registered<OidcClient>> {
    let registration = OidcRegistration {
        client_id: Some(CLIENT_ID.into()),
        owner_agency_code: OWNER.into(),
        display_name: Some("fedhub-load".into()),
        redirect_uris: vec![REDIRECT_URI.into()],
        scopes: Some(SCOPES.iter().map(|s| (*s).to_string()).collect()),
        signing_alg: Some(alg.to_string()),
        access_token_format: Some(format),
        require_activated_membership: Some(false),
        ..Default::default()
    };
    let registered = store.write(|c| fedhub::rp::oidc::add(c, &registration, now))?;
    let client_secret = registered
        .client_secret
        .ok_or_else(|| anyhow!("the registered client has no secret"))?;
    Ok(Registered {
        rp_id: registered.rp.id,
        value: OidcClient {
            client_id: registered.rp.entity_id,
            client_secret,
        },
    })
}

/// Registers the load tool's SAML service provider from its metadata; returns its id.
pub fn register_saml(
    store: &Store,
    now: i64,
    metadata_xml: String,
    sign: fedhub::rp::saml::SignWhat,
) -> Result<String> {
    let registration = fedhub::rp::saml::SamlRegistration {
        metadata_xml,
        metadata_url: None,
        owner_agency_code: OWNER.into(),
        display_name: Some("fedhub-load SP".into()),
        sign: Some(sign),
        encrypt_assertion: None,
        name_id_format: None,
        release: None,
        require_activated_membership: Some(false),
    };
    let rp = store.write(|c| fedhub::rp::saml::add(c, &registration, now))?;
    Ok(rp.id)
}
