//! Change counters: nodes cache slow-changing data (relying parties, metadata, keys, the
//! agency tree) and re-read it when the counter for that data moves.

use diesel::prelude::*;

use super::schema::change_counters::dsl as cc;
use super::Db;
use crate::error::Result;

/// Names of what nodes cache.
pub const AGENCIES: &str = "agencies";
/// Moved by database triggers on `relying_parties` (migration 000090).
pub const RELYING_PARTIES: &str = "relying_parties";
/// Moved by database triggers on `connectors` and `rp_connectors`.
pub const CONNECTORS: &str = "connectors";
/// Moved by database triggers on `signing_keys`.
pub const SIGNING_KEYS: &str = "signing_keys";

/// Moves the counter for `name` forward; call inside the transaction that changed it (the
/// triggered counters above move by themselves).
pub fn bump(conn: &mut Db, name: &str) -> Result<i64> {
    let updated = diesel::update(cc::change_counters.filter(cc::name.eq(name)))
        .set(cc::version.eq(cc::version + 1))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(cc::change_counters)
            .values((cc::name.eq(name), cc::version.eq(1_i64)))
            .execute(conn)?;
    }
    current(conn, name)
}

/// The counter's value; 0 when nothing has changed yet.
pub fn current(conn: &mut Db, name: &str) -> Result<i64> {
    Ok(cc::change_counters
        .filter(cc::name.eq(name))
        .select(cc::version)
        .first::<i64>(conn)
        .optional()?
        .unwrap_or(0))
}
