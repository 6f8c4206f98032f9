//! One-time use of things a peer may try to present twice (upstream SAML assertion IDs,
//! client assertion `jti`s): remembered until they expire anyway.

use diesel::prelude::*;

use super::schema::saml_replay::dsl as replay;
use super::Db;
use crate::error::Result;

/// Remembers `key` until `until`; `false` when it was already remembered (a replay). Expired
/// entries are dropped first. Two nodes racing on the same key: the second insert fails on
/// the primary key and its transaction errors, so a replay is never accepted.
pub fn remember_once(c: &mut Db, key: &str, until: i64, now: i64) -> Result<bool> {
    diesel::delete(replay::saml_replay.filter(replay::expires_at.le(now))).execute(c)?;
    let taken = replay::saml_replay.find(key).count().get_result::<i64>(c)? > 0;
    if !taken {
        diesel::insert_into(replay::saml_replay)
            .values((replay::id.eq(key), replay::expires_at.eq(until)))
            .execute(c)?;
    }
    Ok(!taken)
}
