//! The database bytes the SSO session tables take, by table and index: SQLite's `dbstat`
//! (pages of each b-tree, overflow pages included), PostgreSQL's relation sizes (main fork,
//! free-space and visibility maps, TOAST, each index).

use anyhow::Result;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use fedhub::store::{Db, Store};

/// One table, index or TOAST relation.
#[derive(Debug, Clone, QueryableByName)]
pub struct Part {
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub bytes: i64,
}

const SQLITE: &str = "SELECT d.name AS name, CAST(SUM(d.pgsize) AS BIGINT) AS bytes \
     FROM dbstat d JOIN sqlite_schema m ON m.name = d.name \
     WHERE m.tbl_name IN ('sso_sessions', 'sso_session_rps') \
     GROUP BY d.name ORDER BY d.name";

const POSTGRES: &str = "\
    SELECT t.relname::text AS name, \
           (pg_table_size(t.oid) - COALESCE(pg_total_relation_size(NULLIF(t.reltoastrelid, 0)), 0))::bigint AS bytes \
      FROM pg_class t WHERE t.relname IN ('sso_sessions', 'sso_session_rps') AND t.relkind = 'r' \
    UNION ALL \
    SELECT (t.relname || ' TOAST')::text, pg_total_relation_size(t.reltoastrelid)::bigint \
      FROM pg_class t WHERE t.relname IN ('sso_sessions', 'sso_session_rps') AND t.relkind = 'r' \
       AND t.reltoastrelid <> 0 \
    UNION ALL \
    SELECT i.relname::text, pg_relation_size(i.oid)::bigint \
      FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
     WHERE t.relname IN ('sso_sessions', 'sso_session_rps') \
    ORDER BY 1";

/// The parts as they are now. PostgreSQL gets `VACUUM (ANALYZE)` first, as autovacuum would
/// soon after a bulk load (it sets the visibility map; it gives no space back).
pub fn measure(store: &Store) -> Result<Vec<Part>> {
    Ok(store.read(|c| {
        Ok(match c {
            Db::Sqlite(c) => diesel::sql_query(SQLITE).load::<Part>(c)?,
            Db::Postgres(c) => {
                c.batch_execute("VACUUM (ANALYZE) sso_sessions, sso_session_rps")?;
                diesel::sql_query(POSTGRES).load::<Part>(c)?
            }
        })
    })?)
}

/// SQLite: rewrites the file (`VACUUM`), which packs every b-tree page full.
pub fn sqlite_vacuum(store: &Store) -> Result<()> {
    Ok(store.read(|c| Ok(c.batch_execute("VACUUM")?))?)
}

/// Prints the parts, per session, and returns the bytes per session.
pub fn report(title: &str, parts: &[Part], sessions: usize) -> f64 {
    let total: i64 = parts.iter().map(|p| p.bytes).sum();
    let per = |b: i64| b as f64 / sessions.max(1) as f64;
    println!(
        "{title}: {:.1} MiB, {:.0} bytes per session",
        total as f64 / 1048576.0,
        per(total)
    );
    for p in parts {
        println!(
            "  {:<36} {:>10.1} MiB {:>7.0} B/session",
            p.name,
            p.bytes as f64 / 1048576.0,
            per(p.bytes)
        );
    }
    per(total)
}
