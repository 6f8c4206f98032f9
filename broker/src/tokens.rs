//! Secrets the hub hands out (admin API tokens today): random, shown once, stored as a
//! SHA-256 hash, compared by looking up the hash.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use diesel::prelude::*;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};
use crate::store::schema::api_tokens::dsl as t;
use crate::store::{new_id, Db};

/// 32 random bytes, URL-safe base64, with a prefix that secret scanners can spot.
pub fn random_secret(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Internal("random generator failed".into()))?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()))
}

/// Creates a named API token and returns it; only its hash is kept.
pub fn create_api_token(conn: &mut Db, name: &str, now: i64) -> Result<String> {
    let name = name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(Error::invalid(
            "name",
            "1-64 ASCII letters, digits, '-', '_' or '.'",
        ));
    }
    let exists = t::api_tokens
        .filter(t::name.eq(name))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if exists {
        return Err(Error::conflict(
            "name",
            format!("an API token named {name:?} already exists"),
        ));
    }
    let token = random_secret("fhk_")?;
    diesel::insert_into(t::api_tokens)
        .values((
            t::id.eq(new_id()),
            t::name.eq(name),
            t::token_hash.eq(sha256_hex(&token)),
            t::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(token)
}

pub fn revoke_api_token(conn: &mut Db, name: &str, now: i64) -> Result<()> {
    let n = diesel::update(
        t::api_tokens
            .filter(t::name.eq(name))
            .filter(t::revoked_at.is_null()),
    )
    .set(t::revoked_at.eq(Some(now)))
    .execute(conn)?;
    if n == 0 {
        return Err(Error::not_found("active API token", name));
    }
    Ok(())
}

/// Issues a personal API token for an account (`fedhub token issue --account ID`): it carries
/// exactly that account's admin grants, now and as they change. Named `account:<id>:<n>`.
pub fn issue_personal_token(conn: &mut Db, account_id: &str, now: i64) -> Result<(String, String)> {
    let status: Option<String> = crate::store::schema::accounts::table
        .find(account_id)
        .select(crate::store::schema::accounts::status)
        .get_result(conn)
        .optional()?;
    match status.as_deref() {
        None => return Err(Error::not_found("account", account_id)),
        Some("active") => {}
        Some(_) => {
            return Err(Error::invalid(
                "account",
                "this account is disabled in the directory",
            ))
        }
    }
    let n = t::api_tokens
        .filter(t::account_id.eq(account_id))
        .count()
        .get_result::<i64>(conn)?;
    let name = format!("account:{account_id}:{}", n + 1);
    let token = random_secret("fhp_")?;
    diesel::insert_into(t::api_tokens)
        .values((
            t::id.eq(new_id()),
            t::name.eq(&name),
            t::token_hash.eq(sha256_hex(&token)),
            t::created_at.eq(now),
            t::account_id.eq(Some(account_id)),
        ))
        .execute(conn)?;
    Ok((name, token))
}

/// Who a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub name: String,
    /// `None`: a federation-operator token.
    pub account_id: Option<String>,
}

/// The token's owner, or `Unauthorized` for an unknown or revoked token.
pub fn verify_api_token(conn: &mut Db, token: &str, _now: i64) -> Result<TokenOwner> {
    t::api_tokens
        .filter(t::token_hash.eq(sha256_hex(token)))
        .filter(t::revoked_at.is_null())
        .select((t::name, t::account_id))
        .first::<(String, Option<String>)>(conn)
        .optional()?
        .map(|(name, account_id)| TokenOwner { name, account_id })
        .ok_or_else(|| Error::Unauthorized("unknown or revoked API token".into()))
}
