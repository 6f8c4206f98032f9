//! Background jobs of `fedhub serve`, run on one node at a time however many nodes share the
//! database: each round, a node asks for the job's lease; the node that gets it runs the job,
//! the others skip the round. The lease is a row in `job_leases` taken with one conditional
//! UPDATE, the same SQL on SQLite and PostgreSQL.
//!
//! `housekeeping` removes what has expired and can no longer be used: login attempts,
//! authorization codes (kept while a token they issued lives, so that a replayed code still
//! revokes it), tokens, pushed authorization requests, the SAML replay cache, and single
//! sign-on sessions a day after they ended.

use std::time::Duration;

use diesel::prelude::*;
use serde::Serialize;

use crate::error::Result;
use crate::store::schema::{
    auth_sessions as auth, job_leases as jl, oidc_codes as codes, oidc_par as par,
    oidc_tokens as tokens, saml_replay as replay, sso_sessions as sso,
};
use crate::store::{Db, Store};

/// The job that removes expired rows.
pub const HOUSEKEEPING: &str = "housekeeping";
/// The refresh of SP metadata registered by URL (`rp::refresh`).
pub const SAML_METADATA_REFRESH: &str = "saml_metadata_refresh";
/// Scheduled key rotation (`keys.rotate_every`).
pub const KEY_ROTATION: &str = "key_rotation";
/// How often a node looks whether a key is due for rotation.
pub const KEY_ROTATION_CHECK: Duration = Duration::from_secs(3600);
/// How often a node asks for the housekeeping lease (and how long the lease lasts).
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(300);
/// How long an ended or expired single sign-on session is kept (for logout and support).
pub const SSO_KEPT_FOR: i64 = 86_400;

/// Takes `job`'s lease for `node` until `now + ttl` if no other node holds it now; returns
/// whether this node has it. A node that holds it may take it again. Every job has its row
/// from the migration that introduced it: an unknown job is never taken.
pub fn take_lease(conn: &mut Db, job: &str, node: &str, now: i64, ttl: i64) -> Result<bool> {
    let taken = diesel::update(
        jl::table
            .filter(jl::name.eq(job))
            .filter(jl::until.le(now).or(jl::holder.eq(node))),
    )
    .set((
        jl::holder.eq(node),
        jl::until.eq(now + ttl),
        jl::last_run_at.eq(Some(now)),
        jl::runs.eq(jl::runs + 1),
    ))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Runs `job` on this node if it gets the lease: `Ok(None)` when another node holds it.
/// The lease is taken in its own transaction, so a job that fails is not retried by another
/// node before the lease runs out.
pub fn with_lease<T>(
    store: &Store,
    job: &str,
    node: &str,
    now: i64,
    ttl: Duration,
    run: impl FnOnce(&Store) -> Result<T>,
) -> Result<Option<T>> {
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    if !store.write(|c| take_lease(c, job, node, now, ttl))? {
        return Ok(None);
    }
    run(store).map(Some)
}

/// What a housekeeping round removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Purged {
    pub auth_sessions: usize,
    pub codes: usize,
    pub tokens: usize,
    pub pushed_requests: usize,
    pub replay_entries: usize,
    pub sso_sessions: usize,
}

impl Purged {
    fn add(&mut self, more: &Purged) {
        self.auth_sessions += more.auth_sessions;
        self.codes += more.codes;
        self.tokens += more.tokens;
        self.pushed_requests += more.pushed_requests;
        self.replay_entries += more.replay_entries;
        self.sso_sessions += more.sso_sessions;
    }

    /// Whether some kind filled its batch of `limit` rows: there may be more to remove.
    fn filled(&self, limit: i64) -> bool {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        [
            self.auth_sessions,
            self.codes,
            self.tokens,
            self.pushed_requests,
            self.replay_entries,
            self.sso_sessions,
        ]
        .iter()
        .any(|n| *n >= limit)
    }
}

/// Rows of each kind one batch removes. A round with much to remove (after a long outage,
/// or with a million sessions expiring) runs batch after batch, each in its own short
/// transaction, so sign-ins get the database (SQLite's write lock) between them.
pub const PURGE_BATCH: i64 = 200;

/// Deletes up to `limit` rows of `table` that match `filter`, found first by their `key`
/// (diesel cannot delete from a table through a subquery on the same table).
macro_rules! delete_batch {
    ($conn:expr, $table:ident, $key:expr, $filter:expr, $limit:expr) => {{
        let keys: Vec<String> = $table::table
            .filter($filter)
            .select($key)
            .limit($limit)
            .load($conn)?;
        if keys.is_empty() {
            0
        } else {
            diesel::delete($table::table.filter($key.eq_any(&keys))).execute($conn)?
        }
    }};
}

/// Removes up to `limit` rows of each kind that expired before `now`. Every statement finds
/// its rows through an index on the expiry (or end) time, so a batch costs the same with a
/// million live sessions as with none. An expired code stays while a token it issued lives:
/// a code replayed then must still find the code and revoke its tokens.
pub fn purge_batch(conn: &mut Db, now: i64, limit: i64) -> Result<Purged> {
    let tokens = delete_batch!(
        conn,
        tokens,
        tokens::token_hash,
        tokens::expires_at.le(now),
        limit
    );
    let issued_by_codes = tokens::table
        .filter(tokens::code_hash.is_not_null())
        .select(tokens::code_hash.assume_not_null());
    let codes = delete_batch!(
        conn,
        codes,
        codes::code_hash,
        codes::expires_at
            .le(now)
            .and(codes::code_hash.ne_all(issued_by_codes)),
        limit
    );
    let auth_sessions = delete_batch!(conn, auth, auth::id, auth::expires_at.le(now), limit);
    let pushed_requests = delete_batch!(conn, par, par::id, par::expires_at.le(now), limit);
    let replay_entries = delete_batch!(conn, replay, replay::id, replay::expires_at.le(now), limit);
    // Sessions a day after they expired, and a day after they ended (two statements: each
    // has its index; `sso_sessions_ended` holds ended sessions only). Their relying parties
    // (`sso_session_rps`) go with them (ON DELETE CASCADE).
    let kept_until = now - SSO_KEPT_FOR;
    let expired = delete_batch!(conn, sso, sso::id, sso::expires_at.le(kept_until), limit);
    let ended = delete_batch!(conn, sso, sso::id, sso::ended_at.le(kept_until), limit);
    Ok(Purged {
        auth_sessions,
        codes,
        tokens,
        pushed_requests,
        replay_entries,
        // Two statements: a sum over a full batch may cost one more (empty) batch.
        sso_sessions: expired + ended,
    })
}

/// Removes everything that expired before `now` on this connection, batch after batch in
/// the caller's transaction (tests, small stores). `serve` uses `purge_round`.
pub fn purge_expired(conn: &mut Db, now: i64) -> Result<Purged> {
    let mut total = Purged::default();
    loop {
        let batch = purge_batch(conn, now, PURGE_BATCH)?;
        total.add(&batch);
        if !batch.filled(PURGE_BATCH) {
            return Ok(total);
        }
    }
}

/// What a round removed, and in how many transactions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Round {
    pub purged: Purged,
    pub batches: usize,
}

/// One housekeeping round: batches of at most `limit` rows of each kind, each batch in its
/// own transaction, until a batch finds less than a full batch of every kind.
pub fn purge_round(store: &Store, now: i64, limit: i64) -> Result<Round> {
    let limit = limit.max(1);
    let mut round = Round::default();
    loop {
        let batch = store.write(|c| purge_batch(c, now, limit))?;
        round.batches += 1;
        round.purged.add(&batch);
        if !batch.filled(limit) {
            return Ok(round);
        }
    }
}

/// The housekeeping loop of `serve`: every interval, on whichever node gets the lease.
pub async fn housekeeping_forever(store: Store, clock: crate::clock::SharedClock, node: String) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    loop {
        tick.tick().await;
        let (store, node, now) = (store.clone(), node.clone(), clock.now());
        let round = tokio::task::spawn_blocking(move || {
            with_lease(
                &store,
                HOUSEKEEPING,
                &node,
                now,
                HOUSEKEEPING_INTERVAL,
                |s| purge_round(s, now, PURGE_BATCH),
            )
        })
        .await;
        match round {
            Ok(Ok(Some(round))) => tracing::info!(
                purged = ?round.purged,
                batches = round.batches,
                "housekeeping: expired rows removed"
            ),
            Ok(Ok(None)) => tracing::debug!("housekeeping: another node has this round"),
            Ok(Err(e)) => tracing::warn!(error = %e, "housekeeping round failed"),
            Err(e) => tracing::warn!(error = %e, "housekeeping round stopped"),
        }
    }
}

/// What scheduled key rotation needs from the configuration.
#[derive(Clone)]
pub struct RotationPlan {
    pub vault: std::sync::Arc<fedhub_metadata::AtRestKey>,
    pub saml_alg: fedhub_metadata::keys::KeyAlg,
    pub every: Duration,
    pub grace: Duration,
}

/// One round of scheduled rotation on this node, if it gets the lease; each rotation is
/// audited as `keys.rotate` by `fedhub (scheduled)`.
pub fn rotate_keys_round(
    store: &Store,
    plan: &RotationPlan,
    node: &str,
    now: i64,
) -> Result<Option<Vec<String>>> {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2);
    with_lease(store, KEY_ROTATION, node, now, KEY_ROTATION_CHECK, |s| {
        s.write(|c| {
            let done = crate::keys::rotate_due(
                c,
                &plan.vault,
                plan.saml_alg,
                secs(plan.every),
                secs(plan.grace),
                now,
            )?;
            let mut lines = Vec::new();
            for (purpose, alg, r) in done {
                let event = crate::audit::Event::new("fedhub (scheduled)", "keys.rotate")
                    .target(purpose.as_str())
                    .detail(format!("{}: {} signs now", alg.as_str(), r.current));
                crate::audit::record(c, &event, now)?;
                lines.push(format!(
                    "{} {}: {}",
                    purpose.as_str(),
                    alg.as_str(),
                    r.current
                ));
            }
            Ok(lines)
        })
    })
}

/// The scheduled rotation loop of `serve` (only when `keys.rotate_every` is set).
pub async fn rotate_keys_forever(
    store: Store,
    clock: crate::clock::SharedClock,
    node: String,
    plan: RotationPlan,
) {
    let mut tick = tokio::time::interval(KEY_ROTATION_CHECK);
    loop {
        tick.tick().await;
        let (store, node, plan, now) = (store.clone(), node.clone(), plan.clone(), clock.now());
        let round =
            tokio::task::spawn_blocking(move || rotate_keys_round(&store, &plan, &node, now)).await;
        match round {
            Ok(Ok(Some(lines))) if !lines.is_empty() => {
                tracing::info!(?lines, "scheduled key rotation: new keys sign now")
            }
            Ok(Ok(_)) => tracing::debug!("scheduled key rotation: nothing due on this node"),
            Ok(Err(e)) => tracing::warn!(error = %e, "scheduled key rotation failed"),
            Err(e) => tracing::warn!(error = %e, "scheduled key rotation stopped"),
        }
    }
}
