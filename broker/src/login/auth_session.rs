//! Auth sessions: one login in progress. The browser holds a random handle; the database
//! keeps only its hash. Single use: consuming is one conditional UPDATE, so two nodes (or a
//! replayed form) cannot both finish the same login.

use diesel::prelude::*;

use super::RpRequest;
use crate::error::{Error, Result};
use crate::store::schema::auth_sessions::dsl as a;
use crate::store::Db;
use crate::tokens::{random_secret, sha256_hex};

/// The session as loaded (not consumed).
#[derive(Debug, Clone)]
pub struct AuthSession {
    pub request: RpRequest,
    pub connector_id: Option<String>,
    pub connector_state: Option<String>,
    /// When the relying party's request started this login.
    pub created_at: i64,
    pub expires_at: i64,
}

fn expired() -> Error {
    Error::invalid(
        "login",
        "this sign-in has expired or was already used; go back to the portal and start again",
    )
}

/// Stores a login in progress; returns the handle for the browser.
pub fn create(conn: &mut Db, request: &RpRequest, ttl: i64, now: i64) -> Result<String> {
    let handle = random_secret("")?;
    diesel::insert_into(a::auth_sessions)
        .values((
            a::id.eq(sha256_hex(&handle)),
            a::rp_id.eq(&request.rp_id),
            a::request.eq(serde_json::to_string(request).map_err(Error::internal)?),
            a::created_at.eq(now),
            a::expires_at.eq(now + ttl),
        ))
        .execute(conn)?;
    Ok(handle)
}

type Row = (String, Option<String>, Option<String>, i64, i64);

/// Loads a live (unexpired, unconsumed) session.
pub fn load(conn: &mut Db, handle: &str, now: i64) -> Result<AuthSession> {
    let row: Option<Row> = a::auth_sessions
        .find(sha256_hex(handle))
        .filter(a::consumed_at.is_null())
        .filter(a::expires_at.gt(now))
        .select((
            a::request,
            a::connector_id,
            a::connector_state,
            a::created_at,
            a::expires_at,
        ))
        .get_result(conn)
        .optional()?;
    let (request, connector_id, connector_state, created_at, expires_at) =
        row.ok_or_else(expired)?;
    let request = serde_json::from_str(&request).map_err(Error::internal)?;
    Ok(AuthSession {
        request,
        connector_id,
        connector_state,
        created_at,
        expires_at,
    })
}

/// Remembers which connector the person chose and its state (e.g. OIDC nonce).
pub fn set_connector(
    conn: &mut Db,
    handle: &str,
    connector_id: &str,
    state: Option<&str>,
    now: i64,
) -> Result<()> {
    let n = diesel::update(
        a::auth_sessions
            .find(sha256_hex(handle))
            .filter(a::consumed_at.is_null())
            .filter(a::expires_at.gt(now)),
    )
    .set((
        a::connector_id.eq(connector_id),
        a::connector_state.eq(state),
    ))
    .execute(conn)?;
    if n == 1 {
        Ok(())
    } else {
        Err(expired())
    }
}

/// Marks the session used and returns its request; fails if it was already used or expired.
pub fn consume(conn: &mut Db, handle: &str, now: i64) -> Result<AuthSession> {
    let session = load(conn, handle, now)?;
    let n = diesel::update(
        a::auth_sessions
            .find(sha256_hex(handle))
            .filter(a::consumed_at.is_null())
            .filter(a::expires_at.gt(now)),
    )
    .set(a::consumed_at.eq(Some(now)))
    .execute(conn)?;
    if n == 1 {
        Ok(session)
    } else {
        Err(expired())
    }
}
