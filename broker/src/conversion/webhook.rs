//! The optional conversion webhook of a relying party: after a conversion commits, the hub
//! POSTs its feed entry (old subject → new subject) to the URL the relying party registered,
//! signed with HMAC-SHA256 under a secret shown once at registration.
//!
//! - The delivery is written in the conversion's own transaction (an outbox row) and sent
//!   after the commit, never inside it: a receiver that is down, slow or wrong cannot undo or
//!   hold up a conversion.
//! - A failed delivery is retried [`MAX_ATTEMPTS`] times in all, with growing delays
//!   ([`backoff`]); each attempt is recorded on its row (`webhook_deliveries`). `fedhub serve`
//!   retries every [`INTERVAL`]; a node claims a delivery before sending it, so two nodes do
//!   not send the same attempt.
//! - The conversion feed (`GET /admin/api/v1/conversions?rp=&since=`) stays the source of
//!   truth: a portal that missed a webhook catches up there.
//! - The URL must be https (http only to a loopback address); redirects are not followed.
//! - The secret is sealed with the at-rest key (the hub must sign with it again, so it cannot
//!   be hashed), bound to the relying party.
//!
//! Signature: `Fedhub-Signature: t=UNIX_SECONDS,v1=HEX` where HEX is
//! `HMAC-SHA256(key = the secret as printed, message = "UNIX_SECONDS." + raw body)`.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use diesel::prelude::*;
use fedhub_metadata::AtRestKey;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::schema::{conversions as cv, relying_parties as rp, webhook_deliveries as wd};
use crate::store::{new_id, Db, Store};

/// Attempts in all (the first one included) before a delivery is given up as `failed`.
pub const MAX_ATTEMPTS: i32 = 6;
/// How long one POST may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How often `fedhub serve` looks for deliveries due for a retry.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// How long a node holds a delivery it is sending (another node retries it after that).
const LEASE: i64 = 120;
/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Fedhub-Signature";
/// The header carrying the delivery's id (the same on every retry).
pub const DELIVERY_HEADER: &str = "Fedhub-Delivery";

/// Seconds to wait after the `attempts`-th failed attempt: 30 s, 2 min, 8 min, 32 min, 2 h 8 min.
pub fn backoff(attempts: i32) -> i64 {
    30 * 4_i64.pow(attempts.clamp(1, 8).unsigned_abs() - 1)
}

/// What the hub POSTs: the conversion feed entry, with the relying party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// Always `conversion`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The conversion (its report: `GET /admin/api/v1/conversions/{id}`).
    pub id: String,
    /// Its place in the conversion feed (`?since=`).
    pub seq: i64,
    pub rp_id: String,
    /// `legacy` or `handover`.
    pub mode: String,
    pub old_subject: String,
    pub new_subject: String,
    pub created_at: i64,
}

/// A relying party's webhook as the operator sees it (never the secret).
#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    pub rp_id: String,
    pub url: Option<String>,
}

/// A webhook just registered: the secret is in this answer only.
#[derive(Serialize)]
pub struct Registered {
    pub rp_id: String,
    pub url: String,
    /// The HMAC key, shown once.
    pub secret: String,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("rp_id", &self.rp_id)
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// One delivery, as recorded.
#[derive(Debug, Clone, Serialize, Queryable)]
pub struct Delivery {
    pub id: String,
    pub conversion_id: String,
    /// `pending` (sent or retried soon), `delivered` or `failed` (given up).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
}

/// A URL the hub may POST conversions to: https, or http to a loopback address (tests, a
/// receiver on the same machine); no credentials in it.
pub fn check_url(url: &str) -> Result<url::Url> {
    let u = url::Url::parse(url.trim())
        .map_err(|e| Error::invalid("url", format!("not a URL: {e}")))?;
    let loopback = fedhub_metadata::xml::sp::is_loopback(&u);
    match u.scheme() {
        "https" if u.host().is_some() => {}
        "http" if loopback => {}
        _ => {
            return Err(Error::invalid(
                "url",
                "must be an https:// URL (http:// only to a loopback address such as 127.0.0.1)",
            ))
        }
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(Error::invalid(
            "url",
            "must not carry a user name or password",
        ));
    }
    Ok(u)
}

fn seal_context(rp_id: &str) -> Vec<u8> {
    format!("webhook:{rp_id}").into_bytes()
}

/// Registers (or replaces) the relying party's webhook with a fresh secret, returned once.
pub fn set(c: &mut Db, vault: &AtRestKey, rp_id: &str, url: &str, now: i64) -> Result<Registered> {
    let u = check_url(url)?;
    crate::rp::get(c, rp_id)?;
    let secret = crate::tokens::random_secret("fhwh_")?;
    let sealed = vault
        .seal(&seal_context(rp_id), secret.as_bytes())
        .map_err(Error::internal)?;
    diesel::update(rp::table.find(rp_id))
        .set((
            rp::webhook_url.eq(Some(u.as_str())),
            rp::webhook_secret_sealed.eq(Some(STANDARD.encode(sealed))),
            rp::updated_at.eq(now),
        ))
        .execute(c)?;
    Ok(Registered {
        rp_id: rp_id.to_string(),
        url: u.to_string(),
        secret,
    })
}

/// Removes the webhook; deliveries not yet made are given up (the feed still has them).
pub fn remove(c: &mut Db, rp_id: &str, now: i64) -> Result<()> {
    crate::rp::get(c, rp_id)?;
    diesel::update(rp::table.find(rp_id))
        .set((
            rp::webhook_url.eq(None::<String>),
            rp::webhook_secret_sealed.eq(None::<String>),
            rp::updated_at.eq(now),
        ))
        .execute(c)?;
    diesel::update(
        wd::table
            .filter(wd::rp_id.eq(rp_id))
            .filter(wd::status.eq("pending")),
    )
    .set((
        wd::status.eq("failed"),
        wd::last_error.eq(Some("the webhook was removed")),
    ))
    .execute(c)?;
    Ok(())
}

/// The relying party's deliveries, newest first.
pub fn deliveries(c: &mut Db, rp_id: &str, limit: i64) -> Result<Vec<Delivery>> {
    crate::rp::get(c, rp_id)?;
    Ok(wd::table
        .filter(wd::rp_id.eq(rp_id))
        .order((wd::created_at.desc(), wd::id.desc()))
        .limit(limit.clamp(1, 1000))
        .select((
            wd::id,
            wd::conversion_id,
            wd::status,
            wd::attempts,
            wd::next_attempt_at,
            wd::last_error,
            wd::last_attempt_at,
            wd::delivered_at,
            wd::created_at,
        ))
        .load(c)?)
}

/// Inside a conversion's transaction: when the relying party has a webhook, a delivery of
/// this conversion is due now.
pub(crate) fn enqueue(c: &mut Db, rp_id: &str, conversion_id: &str, now: i64) -> Result<()> {
    let url: Option<String> = rp::table
        .find(rp_id)
        .select(rp::webhook_url)
        .get_result(c)?;
    if url.is_none() {
        return Ok(());
    }
    diesel::insert_into(wd::table)
        .values((
            wd::id.eq(new_id()),
            wd::conversion_id.eq(conversion_id),
            wd::rp_id.eq(rp_id),
            wd::status.eq("pending"),
            wd::attempts.eq(0),
            wd::next_attempt_at.eq(now),
            wd::created_at.eq(now),
        ))
        .execute(c)?;
    Ok(())
}

/// `t=T,v1=HEX` for `body` sent at `t`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(format!("{t}.").as_bytes());
    ctx.update(body);
    format!("t={t},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub delivery_id: String,
    pub conversion_id: String,
    pub delivered: bool,
    /// Why not, when not.
    pub error: Option<String>,
    /// The delivery's status after the attempt.
    pub status: String,
}

/// A delivery claimed for one attempt: what to send and where.
struct Claimed {
    id: String,
    conversion_id: String,
    attempts: i32,
    url: Option<String>,
    sealed: Option<String>,
    payload: Payload,
    rp_id: String,
}

type DueRow = (String, String, String, i32, i64);

/// Takes the delivery for this node (the conditional update fails when another node took it
/// first) and loads what to send.
fn claim(c: &mut Db, due: &DueRow, now: i64) -> Result<Option<Claimed>> {
    let (id, conversion_id, rp_id, attempts, next_at) = due;
    let taken = diesel::update(
        wd::table
            .find(id)
            .filter(wd::status.eq("pending"))
            .filter(wd::attempts.eq(*attempts))
            .filter(wd::next_attempt_at.eq(*next_at)),
    )
    .set(wd::next_attempt_at.eq(now + LEASE))
    .execute(c)?;
    if taken != 1 {
        return Ok(None);
    }
    let (url, sealed): (Option<String>, Option<String>) = rp::table
        .find(rp_id)
        .select((rp::webhook_url, rp::webhook_secret_sealed))
        .get_result(c)?;
    let (seq, mode, old_subject, new_subject, created_at): (i64, String, String, String, i64) =
        cv::table
            .find(conversion_id)
            .select((
                cv::seq,
                cv::mode,
                cv::old_subject,
                cv::new_subject,
                cv::created_at,
            ))
            .get_result(c)?;
    Ok(Some(Claimed {
        id: id.clone(),
        conversion_id: conversion_id.clone(),
        attempts: *attempts,
        url,
        sealed,
        rp_id: rp_id.clone(),
        payload: Payload {
            kind: "conversion".into(),
            id: conversion_id.clone(),
            seq,
            rp_id: rp_id.clone(),
            mode,
            old_subject,
            new_subject,
            created_at,
        },
    }))
}

/// POSTs one delivery; `Err` says why it did not arrive.
async fn send(
    client: &reqwest::Client,
    vault: &AtRestKey,
    claimed: &Claimed,
    now: i64,
) -> std::result::Result<(), String> {
    let (Some(url), Some(sealed)) = (&claimed.url, &claimed.sealed) else {
        return Err("the webhook was removed".into());
    };
    let url = check_url(url).map_err(|e| e.to_string())?;
    let secret = STANDARD
        .decode(sealed)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            vault
                .open(&seal_context(&claimed.rp_id), &s)
                .map_err(|e| format!("the webhook secret cannot be opened: {e}"))
        })
        .and_then(|s| String::from_utf8(s).map_err(|e| e.to_string()))?;
    let body = serde_json::to_vec(&claimed.payload).map_err(|e| e.to_string())?;
    let res = client
        .post(url)
        .timeout(TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, "fedhub-webhook")
        .header(SIGNATURE_HEADER, signature(&secret, now, &body))
        .header(DELIVERY_HEADER, &claimed.id)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            let mut e = e.without_url().to_string();
            e.truncate(300);
            e
        })?;
    let status = res.status();
    if status.is_success() {
        Ok(())
    } else if status.is_redirection() {
        Err(format!("answered {status} (redirects are not followed)"))
    } else {
        Err(format!("answered {status}"))
    }
}

/// Records an attempt's outcome on the delivery.
fn finish(
    c: &mut Db,
    claimed: &Claimed,
    result: &std::result::Result<(), String>,
    now: i64,
) -> Result<String> {
    let attempts = claimed.attempts + 1;
    let status = match result {
        Ok(()) => "delivered",
        Err(_) if attempts >= MAX_ATTEMPTS => "failed",
        Err(_) => "pending",
    };
    let next = match result {
        Ok(()) => now,
        Err(_) => now + backoff(attempts),
    };
    diesel::update(wd::table.find(&claimed.id))
        .set((
            wd::status.eq(status),
            wd::attempts.eq(attempts),
            wd::next_attempt_at.eq(next),
            wd::last_attempt_at.eq(Some(now)),
            wd::last_error.eq(result.as_ref().err()),
            wd::delivered_at.eq(result.as_ref().ok().map(|()| now)),
        ))
        .execute(c)?;
    Ok(status.to_string())
}

/// Sends the deliveries due at `now` (only those of `conversions`, when given): the first
/// attempt just after a conversion commits, later ones on the retry schedule.
pub async fn deliver_due(
    store: &Store,
    vault: &AtRestKey,
    client: &reqwest::Client,
    now: i64,
    conversions: Option<Vec<String>>,
) -> Result<Vec<Attempt>> {
    let due: Vec<DueRow> = store
        .read_async(move |c| {
            let mut q = wd::table
                .filter(wd::status.eq("pending"))
                .filter(wd::next_attempt_at.le(now))
                .order((wd::next_attempt_at.asc(), wd::id.asc()))
                .select((
                    wd::id,
                    wd::conversion_id,
                    wd::rp_id,
                    wd::attempts,
                    wd::next_attempt_at,
                ))
                .limit(100)
                .into_boxed();
            if let Some(ids) = conversions {
                q = q.filter(wd::conversion_id.eq_any(ids));
            }
            Ok(q.load(c)?)
        })
        .await?;
    let mut out = Vec::new();
    for row in due {
        let Some(claimed) = store.write_async(move |c| claim(c, &row, now)).await? else {
            continue;
        };
        let result = send(client, vault, &claimed, now).await;
        if let Err(e) = &result {
            tracing::warn!(
                delivery = %claimed.id,
                conversion = %claimed.conversion_id,
                attempt = claimed.attempts + 1,
                error = %e,
                "conversion webhook not delivered"
            );
        }
        let (claimed, result2) = (claimed, result.clone());
        let (status, claimed) = store
            .write_async(move |c| {
                let status = finish(c, &claimed, &result2, now)?;
                Ok((status, claimed))
            })
            .await?;
        out.push(Attempt {
            delivery_id: claimed.id,
            conversion_id: claimed.conversion_id,
            delivered: result.is_ok(),
            error: result.err(),
            status,
        });
    }
    Ok(out)
}

/// After a conversion commits in the web server: its first delivery attempt, in the
/// background (the answer to the admin or person does not wait for the receiver).
pub fn kick(state: &crate::web::AppState, conversion_id: Option<String>) {
    let Some(conversion_id) = conversion_id else {
        return;
    };
    let Ok(vault) = state.vault() else {
        return;
    };
    let (store, client, now) = (state.store.clone(), state.http.clone(), state.clock.now());
    tokio::spawn(async move {
        if let Err(e) = deliver_due(&store, &vault, &client, now, Some(vec![conversion_id])).await {
            tracing::warn!(error = %e, "conversion webhook delivery round failed");
        }
    });
}

/// The retry loop of `fedhub serve`.
pub async fn forever(state: crate::web::AppState) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        let Ok(vault) = state.vault() else {
            return;
        };
        let now = state.clock.now();
        if let Err(e) = deliver_due(&state.store, &vault, &state.http, now, None).await {
            tracing::warn!(error = %e, "conversion webhook retry round failed");
        }
    }
}
