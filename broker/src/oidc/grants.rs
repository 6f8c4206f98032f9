//! What the OpenID Provider keeps between requests, all in the database so any node can
//! answer any step: authorization codes, access and refresh tokens, pushed requests. Every
//! secret is stored as its SHA-256; the value itself exists only in the client's hands.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::schema::oidc_codes::dsl as oc;
use crate::store::schema::oidc_par::dsl as par;
use crate::store::schema::oidc_tokens::dsl as ot;
use crate::store::Db;
use crate::tokens::sha256_hex;

/// Everything a code or token stands for, fixed when the person was answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub rp_id: String,
    pub client_id: String,
    pub account_id: String,
    pub sub: String,
    /// Session id given to this client (`sid`), for logout.
    pub sid: String,
    pub sso_session_id: String,
    pub auth_time: i64,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub nonce: Option<String>,
    pub scope: Vec<String>,
    /// Claims for the ID token and userinfo, already filtered by scope.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

pub struct NewCode<'a> {
    pub code: &'a str,
    pub redirect_uri: &'a str,
    pub code_challenge: &'a str,
    pub grant: &'a Grant,
    pub ttl: i64,
}

pub fn store_code(conn: &mut Db, new: NewCode<'_>, now: i64) -> Result<()> {
    diesel::insert_into(oc::oidc_codes)
        .values((
            oc::code_hash.eq(sha256_hex(new.code)),
            oc::client_id.eq(&new.grant.client_id),
            oc::account_id.eq(&new.grant.account_id),
            oc::sso_session_id.eq(Some(&new.grant.sso_session_id)),
            oc::redirect_uri.eq(new.redirect_uri),
            oc::code_challenge.eq(new.code_challenge),
            oc::nonce.eq(new.grant.nonce.as_deref()),
            oc::scope.eq(new.grant.scope.join(" ")),
            oc::claims.eq(serde_json::to_string(new.grant).map_err(Error::internal)?),
            oc::created_at.eq(now),
            oc::expires_at.eq(now + new.ttl),
        ))
        .execute(conn)?;
    Ok(())
}

/// A code as presented at the token endpoint.
#[derive(Debug)]
pub struct RedeemedCode {
    pub code_hash: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub grant: Grant,
}

/// Why a code could not be redeemed.
#[derive(Debug, PartialEq, Eq)]
pub enum CodeProblem {
    Unknown,
    Expired,
    /// Already redeemed once: whatever it issued has now been revoked.
    Reused {
        revoked: usize,
    },
}

/// Marks a code used (one conditional UPDATE, so two nodes cannot both redeem it). A second
/// use revokes every token the first one issued (RFC 9700 4.2.1 / RFC 6749 4.1.2).
pub fn redeem_code(
    conn: &mut Db,
    code: &str,
    now: i64,
) -> Result<std::result::Result<RedeemedCode, CodeProblem>> {
    let hash = sha256_hex(code);
    let row: Option<(String, String, String, i64, Option<i64>)> = oc::oidc_codes
        .find(&hash)
        .select((
            oc::redirect_uri,
            oc::code_challenge,
            oc::claims,
            oc::expires_at,
            oc::consumed_at,
        ))
        .get_result(conn)
        .optional()?;
    let Some((redirect_uri, code_challenge, grant, expires_at, consumed_at)) = row else {
        return Ok(Err(CodeProblem::Unknown));
    };
    if consumed_at.is_some() {
        let revoked = revoke_where_code(conn, &hash, now)?;
        return Ok(Err(CodeProblem::Reused { revoked }));
    }
    if expires_at <= now {
        return Ok(Err(CodeProblem::Expired));
    }
    let n = diesel::update(oc::oidc_codes.find(&hash).filter(oc::consumed_at.is_null()))
        .set(oc::consumed_at.eq(Some(now)))
        .execute(conn)?;
    if n != 1 {
        let revoked = revoke_where_code(conn, &hash, now)?;
        return Ok(Err(CodeProblem::Reused { revoked }));
    }
    let grant = serde_json::from_str(&grant).map_err(Error::internal)?;
    Ok(Ok(RedeemedCode {
        code_hash: hash,
        redirect_uri,
        code_challenge,
        grant,
    }))
}

fn revoke_where_code(conn: &mut Db, code_hash: &str, now: i64) -> Result<usize> {
    // Revoke the whole refresh families the code started, including later rotations.
    let families: Vec<String> = ot::oidc_tokens
        .filter(ot::code_hash.eq(code_hash))
        .select(ot::family_id)
        .distinct()
        .load(conn)?;
    let mut n = 0;
    for family in families {
        n += revoke_family(conn, &family, now)?;
    }
    Ok(n)
}

/// Revokes every live token of a family (an authorization and its refresh rotations).
pub fn revoke_family(conn: &mut Db, family: &str, now: i64) -> Result<usize> {
    Ok(diesel::update(
        ot::oidc_tokens
            .filter(ot::family_id.eq(family))
            .filter(ot::revoked_at.is_null()),
    )
    .set(ot::revoked_at.eq(Some(now)))
    .execute(conn)?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Access,
    Refresh,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Refresh => "refresh",
        }
    }
}

pub struct NewToken<'a> {
    pub token: &'a str,
    pub kind: Kind,
    pub grant: &'a Grant,
    pub code_hash: Option<&'a str>,
    pub family_id: &'a str,
    pub ttl: i64,
}

pub fn store_token(conn: &mut Db, new: NewToken<'_>, now: i64) -> Result<()> {
    diesel::insert_into(ot::oidc_tokens)
        .values((
            ot::token_hash.eq(sha256_hex(new.token)),
            ot::kind.eq(new.kind.as_str()),
            ot::client_id.eq(&new.grant.client_id),
            ot::account_id.eq(&new.grant.account_id),
            ot::code_hash.eq(new.code_hash),
            ot::family_id.eq(new.family_id),
            ot::scope.eq(new.grant.scope.join(" ")),
            ot::created_at.eq(now),
            ot::expires_at.eq(now + new.ttl),
            ot::grant_data.eq(serde_json::to_string(new.grant).map_err(Error::internal)?),
            ot::sso_session_id.eq(Some(&new.grant.sso_session_id)),
        ))
        .execute(conn)?;
    Ok(())
}

/// A stored token as looked up by its value.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub token_hash: String,
    pub kind: Kind,
    pub client_id: String,
    pub code_hash: Option<String>,
    pub family_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub replaced_by: Option<String>,
    pub grant: Grant,
}

impl TokenRecord {
    pub fn active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.replaced_by.is_none() && self.expires_at > now
    }
}

type TokenRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    String,
);

pub fn find_token(conn: &mut Db, token: &str) -> Result<Option<TokenRecord>> {
    let row: Option<TokenRow> = ot::oidc_tokens
        .find(sha256_hex(token))
        .select((
            ot::token_hash,
            ot::kind,
            ot::client_id,
            ot::code_hash,
            ot::family_id,
            ot::created_at,
            ot::expires_at,
            ot::revoked_at,
            ot::replaced_by,
            ot::grant_data,
        ))
        .get_result(conn)
        .optional()?;
    let Some((
        token_hash,
        kind,
        client_id,
        code_hash,
        family_id,
        created_at,
        expires_at,
        revoked_at,
        replaced_by,
        grant,
    )) = row
    else {
        return Ok(None);
    };
    Ok(Some(TokenRecord {
        token_hash,
        kind: if kind == "refresh" {
            Kind::Refresh
        } else {
            Kind::Access
        },
        client_id,
        code_hash,
        family_id,
        created_at,
        expires_at,
        revoked_at,
        replaced_by,
        grant: serde_json::from_str(&grant).map_err(Error::internal)?,
    }))
}

/// Marks a refresh token as rotated; false when another request rotated it first.
pub fn mark_replaced(conn: &mut Db, token_hash: &str, by: &str) -> Result<bool> {
    let n = diesel::update(
        ot::oidc_tokens
            .find(token_hash)
            .filter(ot::replaced_by.is_null())
            .filter(ot::revoked_at.is_null()),
    )
    .set(ot::replaced_by.eq(Some(sha256_hex(by))))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn revoke_token(conn: &mut Db, token_hash: &str, now: i64) -> Result<()> {
    diesel::update(
        ot::oidc_tokens
            .find(token_hash)
            .filter(ot::revoked_at.is_null()),
    )
    .set(ot::revoked_at.eq(Some(now)))
    .execute(conn)?;
    Ok(())
}

/// A pushed authorization request (RFC 9126), kept until used once or expired.
pub fn push_request(
    conn: &mut Db,
    request_uri: &str,
    client_id: &str,
    params: &str,
    ttl: i64,
    now: i64,
) -> Result<()> {
    diesel::delete(par::oidc_par.filter(par::expires_at.le(now))).execute(conn)?;
    diesel::insert_into(par::oidc_par)
        .values((
            par::id.eq(sha256_hex(request_uri)),
            par::client_id.eq(client_id),
            par::params.eq(params),
            par::created_at.eq(now),
            par::expires_at.eq(now + ttl),
        ))
        .execute(conn)?;
    Ok(())
}

/// Takes a pushed request for `client_id`: its parameters, once.
pub fn take_pushed(
    conn: &mut Db,
    request_uri: &str,
    client_id: &str,
    now: i64,
) -> Result<Option<String>> {
    let id = sha256_hex(request_uri);
    let params: Option<String> = par::oidc_par
        .find(&id)
        .filter(par::client_id.eq(client_id))
        .filter(par::consumed_at.is_null())
        .filter(par::expires_at.gt(now))
        .select(par::params)
        .get_result(conn)
        .optional()?;
    if params.is_some() {
        let n = diesel::update(par::oidc_par.find(&id).filter(par::consumed_at.is_null()))
            .set(par::consumed_at.eq(Some(now)))
            .execute(conn)?;
        if n != 1 {
            return Ok(None);
        }
    }
    Ok(params)
}
