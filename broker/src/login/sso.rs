//! Single sign-on sessions: after one upstream sign-in, later requests from any relying party
//! are answered without asking again, until the session expires, idles out or is ended.

use diesel::prelude::*;
use fedhub_connectors::Authn;

use crate::error::{Error, Result};
use crate::store::schema::sso_session_rps::dsl as sr;
use crate::store::schema::sso_sessions::dsl as s;
use crate::store::Db;
use crate::tokens::{random_secret, sha256_hex};

/// The database id of the session behind a cookie value: the first 128 bits of the
/// value's SHA-256, in hex. The cookie carries 256 random bits; the id only has to be unique
/// and of no use to someone who reads the database, and 128 bits are both at half the bytes
/// (it is stored in the session, in every relying party served, and in their indexes).
pub fn session_id(cookie: &str) -> String {
    let mut id = sha256_hex(cookie);
    id.truncate(32);
    id
}

#[derive(Debug, Clone)]
pub struct SsoSession {
    /// The database id (`session_id` of the cookie value).
    pub id: String,
    pub account_id: String,
    pub connector_id: Option<String>,
    pub authn: Authn,
    pub expires_at: i64,
}

/// How the upstream knows the session: the subject it vouched for, and the connector's state
/// for logging out there later.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpstreamRef<'a> {
    pub subject: Option<&'a str>,
    pub session: Option<&'a str>,
}

/// Starts a session; returns the cookie value.
pub fn start(
    conn: &mut Db,
    account_id: &str,
    connector_id: &str,
    authn: &Authn,
    upstream: UpstreamRef<'_>,
    ttl: i64,
    now: i64,
) -> Result<(String, SsoSession)> {
    let cookie = random_secret("")?;
    let id = session_id(&cookie);
    diesel::insert_into(s::sso_sessions)
        .values((
            s::id.eq(&id),
            s::account_id.eq(account_id),
            s::connector_id.eq(connector_id),
            s::authn.eq(serde_json::to_string(authn).map_err(Error::internal)?),
            s::created_at.eq(now),
            s::expires_at.eq(now + ttl),
            s::last_seen_at.eq(now),
            s::upstream_session.eq(upstream.session),
            s::upstream_subject.eq(upstream.subject),
        ))
        .execute(conn)?;
    let session = SsoSession {
        id,
        account_id: account_id.into(),
        connector_id: Some(connector_id.into()),
        authn: authn.clone(),
        expires_at: now + ttl,
    };
    Ok((cookie, session))
}

type Row = (String, String, Option<String>, String, i64, i64);

/// The live session behind a cookie value, touched as seen now; `None` when expired, idle
/// for longer than `idle`, ended, or unknown.
pub fn current(conn: &mut Db, cookie: &str, idle: i64, now: i64) -> Result<Option<SsoSession>> {
    let id = session_id(cookie);
    let row: Option<Row> = s::sso_sessions
        .find(&id)
        .filter(s::ended_at.is_null())
        .filter(s::expires_at.gt(now))
        .filter(s::last_seen_at.gt(now - idle))
        .select((
            s::id,
            s::account_id,
            s::connector_id,
            s::authn,
            s::expires_at,
            s::last_seen_at,
        ))
        .get_result(conn)
        .optional()?;
    let Some((id, account_id, connector_id, authn, expires_at, _)) = row else {
        return Ok(None);
    };
    diesel::update(s::sso_sessions.find(&id))
        .set(s::last_seen_at.eq(now))
        .execute(conn)?;
    let authn = serde_json::from_str(&authn).map_err(Error::internal)?;
    Ok(Some(SsoSession {
        id,
        account_id,
        connector_id,
        authn,
        expires_at,
    }))
}

/// Records that `rp_id` was answered in this session (for single logout); returns the
/// SessionIndex the relying party was given (stable per session and relying party).
pub fn served(
    conn: &mut Db,
    session_id: &str,
    rp_id: &str,
    subject: &str,
    now: i64,
) -> Result<String> {
    let existing: Option<Option<String>> = sr::sso_session_rps
        .find((session_id, rp_id))
        .select(sr::session_index)
        .get_result(conn)
        .optional()?;
    if let Some(Some(index)) = existing {
        // Remember the NameID sent last: with transient NameIDs it changes at every answer.
        diesel::update(sr::sso_session_rps.find((session_id, rp_id)))
            .set((sr::served_at.eq(now), sr::subject.eq(subject)))
            .execute(conn)?;
        return Ok(index);
    }
    let index = format!("_si{}", uuid::Uuid::new_v4().simple());
    diesel::insert_into(sr::sso_session_rps)
        .values((
            sr::sso_session_id.eq(session_id),
            sr::rp_id.eq(rp_id),
            sr::subject.eq(subject),
            sr::session_index.eq(&index),
            sr::served_at.eq(now),
        ))
        .execute(conn)?;
    Ok(index)
}

/// Ends a session (logout).
pub fn end(conn: &mut Db, session_id: &str, now: i64) -> Result<()> {
    diesel::update(
        s::sso_sessions
            .find(session_id)
            .filter(s::ended_at.is_null()),
    )
    .set(s::ended_at.eq(Some(now)))
    .execute(conn)?;
    Ok(())
}
