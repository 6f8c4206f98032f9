//! The directory at scale: `generate` fills a database with a large directory (agencies,
//! accounts, relying parties, memberships) and `measure` times the admin list and directory
//! search on it. Both name the same database through [`DataArgs`].

pub mod generate;
pub mod measure;
pub mod names;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use diesel::connection::SimpleConnection;
use fedhub::store::{Store, StoreOptions};

use crate::setup::Engine;

/// Where the generated directory lives. It stays there between runs, so one generation
/// serves many measurements; `directory-data --drop` removes it.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Database engine.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub engine: Engine,
    /// SQLite file (`--engine sqlite`).
    #[arg(long, default_value_os_t = std::env::temp_dir().join("fedhub-directory.db"))]
    pub sqlite_path: PathBuf,
    /// PostgreSQL database to hold the schema (`--engine postgres`).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub postgres_url: String,
    /// PostgreSQL schema of its own for the data (`--engine postgres`): nothing outside it
    /// is touched, so other users of the database are not disturbed.
    #[arg(long, default_value = "fedhub_directory_bench")]
    pub schema: String,
}

impl DataArgs {
    fn check_schema(&self) -> Result<()> {
        let ok = !self.schema.is_empty()
            && self.schema.len() <= 63
            && self
                .schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !self.schema.starts_with(|c: char| c.is_ascii_digit())
            && !self.schema.starts_with("pg_")
            && self.schema != "public";
        if !ok {
            bail!(
                "--schema {:?}: use lower-case letters, digits and _ (not public, not pg_*)",
                self.schema
            );
        }
        Ok(())
    }

    /// The database URL the product's store opens (PostgreSQL: with the schema as its
    /// search path, so the migrations and every query stay inside it).
    pub fn url(&self) -> Result<String> {
        match self.engine {
            Engine::Sqlite => Ok(format!("sqlite://{}", self.sqlite_path.display())),
            Engine::Postgres => {
                self.check_schema()?;
                let sep = if self.postgres_url.contains('?') {
                    '&'
                } else {
                    '?'
                };
                Ok(format!(
                    "{}{sep}options=-csearch_path%3D{}",
                    self.postgres_url, self.schema
                ))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self.engine {
            Engine::Sqlite => format!("SQLite {}", self.sqlite_path.display()),
            Engine::Postgres => format!(
                "PostgreSQL schema {} in {}",
                self.schema,
                redact(&self.postgres_url)
            ),
        }
    }

    /// Removes the data: the SQLite file (with its WAL) or the PostgreSQL schema.
    pub fn drop_data(&self) -> Result<()> {
        match self.engine {
            Engine::Sqlite => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut path = self.sqlite_path.clone().into_os_string();
                    path.push(suffix);
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(e).with_context(|| format!("removing {path:?}"));
                        }
                    }
                }
                Ok(())
            }
            Engine::Postgres => {
                self.check_schema()?;
                let mut admin = fedhub::store::establish(&self.postgres_url)
                    .with_context(|| format!("connecting to {}", redact(&self.postgres_url)))?;
                admin
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
                    .with_context(|| format!("DROP SCHEMA {}", self.schema))
            }
        }
    }

    /// An empty place for a new data set: the old one dropped, the schema created.
    fn recreate(&self) -> Result<()> {
        self.drop_data()?;
        if self.engine == Engine::Postgres {
            let mut admin = fedhub::store::establish(&self.postgres_url)?;
            admin
                .batch_execute(&format!("CREATE SCHEMA {}", self.schema))
                .with_context(|| format!("CREATE SCHEMA {}", self.schema))?;
        }
        Ok(())
    }

    /// The product's store over an existing data set.
    pub fn store(&self, pool_size: u32) -> Result<Store> {
        if self.engine == Engine::Sqlite && !self.sqlite_path.exists() {
            bail!(
                "{} does not exist: run `fedhub-load directory-data --engine sqlite` first",
                self.sqlite_path.display()
            );
        }
        self.open(pool_size)
    }

    /// The product's store (a new SQLite file is created).
    fn open(&self, pool_size: u32) -> Result<Store> {
        let store = Store::connect(
            &self.url()?,
            &StoreOptions {
                pool_size,
                ..Default::default()
            },
        )
        .with_context(|| format!("opening {}", self.describe()))?;
        Ok(store)
    }
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

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use fedhub::store::schema::{accounts as ac, agencies as ag, memberships as m};
    use fedhub_identifiers::AgencyCode;

    use super::generate::{self, GenerateArgs};
    use super::measure::{self, MeasureArgs};
    use super::DataArgs;
    use crate::setup::Engine;

    #[test]
    fn a_small_directory_is_generated_as_the_product_writes_it_and_measured() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataArgs {
            engine: Engine::Sqlite,
            sqlite_path: dir.path().join("directory.db"),
            postgres_url: String::new(),
            schema: "unused".into(),
        };
        generate::run(&GenerateArgs {
            data: data.clone(),
            accounts: 400,
            agencies: 300,
            relying_parties: 8,
            seed: 3,
            sqlite_no_statistics: false,
            drop: false,
        })
        .unwrap();

        let store = data.store(1).unwrap();
        let (agencies, accounts, memberships) = store
            .read(|c| {
                let agencies: Vec<String> = ag::table.select(ag::code).load(c)?;
                let accounts: Vec<(String, String)> = ac::table
                    .select((ac::display_name, ac::search_name))
                    .load(c)?;
                let memberships: Vec<(Option<String>, Option<String>)> = m::table
                    .select((m::unit_agency_code, m::unit_path))
                    .load(c)?;
                Ok((agencies, accounts, memberships))
            })
            .unwrap();
        assert_eq!(agencies.len(), 300);
        let levels: Vec<u8> = agencies
            .iter()
            .map(|c| AgencyCode::parse(c).unwrap().level())
            .collect();
        assert!((1..=4).all(|l| levels.contains(&l)), "levels 1 to 4");
        assert_eq!(accounts.len(), 400);
        for (name, folded) in &accounts {
            assert_eq!(folded, &fedhub::directory::fold_name(name));
        }
        assert!(memberships.len() >= 400);
        for (unit, path) in &memberships {
            let unit = AgencyCode::parse(unit.as_deref().unwrap()).unwrap();
            assert_eq!(
                path.as_deref(),
                Some(fedhub::admin::memberships::unit_path(&unit).as_str())
            );
        }

        measure::run(&MeasureArgs {
            data: data.clone(),
            iterations: 3,
            warmup: 1,
            seed: 1,
            try_sql: vec!["CREATE INDEX scratch ON memberships (status)".into()],
            explain: true,
            slowest: 1,
            target_ms: 60_000.0,
        })
        .unwrap();

        data.drop_data().unwrap();
        assert!(!data.sqlite_path.exists());
    }
}
