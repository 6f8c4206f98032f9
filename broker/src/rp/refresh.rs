//! Keeping SP metadata registered by URL fresh: fetched again after its cacheDuration (and
//! before its validUntil); a failed or wrong fetch keeps the last good copy, and every
//! attempt is audited. `fedhub serve` runs this every few minutes; `fedhub rp refresh` on demand.

use std::time::Duration;

use super::saml::{self, RefreshOutcome};
use crate::audit::{self, Event, Outcome};
use crate::error::Result;
use crate::store::Store;

/// How often `serve` looks for metadata due for a refresh.
pub const INTERVAL: Duration = Duration::from_secs(300);

/// Refreshes the SPs due at `now` (all SPs registered by URL when `force`).
pub async fn run(store: &Store, now: i64, force: bool) -> Result<Vec<RefreshOutcome>> {
    run_under(store, Vec::new(), now, force).await
}

/// [`run`] where fetched metadata must be signed with one of `federation`'s certificates.
pub async fn run_under(
    store: &Store,
    federation: Vec<samael::crypto::CertificateDer>,
    now: i64,
    force: bool,
) -> Result<Vec<RefreshOutcome>> {
    let due = store
        .read_async(move |c| {
            if force {
                let mut all = Vec::new();
                for rp in super::list(c)?.into_iter().filter(|r| r.protocol == "saml") {
                    let s = saml::settings(&rp)?;
                    if s.metadata_url.is_some() {
                        all.push((rp, s));
                    }
                }
                Ok(all)
            } else {
                saml::due_for_refresh(c, now)
            }
        })
        .await?;
    let mut outcomes = Vec::new();
    for (rp, settings) in due {
        let url = settings.metadata_url.clone().unwrap_or_default();
        let fetched =
            crate::fetch::get("metadata_url", &url, 1024 * 1024, Duration::from_secs(15)).await;
        let fed = federation.clone();
        let outcome = store
            .write_async(move |c| {
                let outcome = saml::apply_refresh(c, &rp, fetched, &fed, now)?;
                let kept = outcome.result == "kept";
                let mut event = Event::new("hub", "rp.metadata_refresh")
                    .target(rp.entity_id.clone())
                    .rp(rp.id.clone())
                    .outcome(if kept {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    })
                    .detail(
                        outcome
                            .detail
                            .clone()
                            .unwrap_or_else(|| outcome.result.clone()),
                    );
                if kept {
                    event = event.detail(format!(
                        "last good copy kept: {}",
                        outcome.detail.clone().unwrap_or_default()
                    ));
                }
                audit::record(c, &event, now)?;
                Ok(outcome)
            })
            .await?;
        if outcome.result == "kept" {
            tracing::warn!(entity_id = %outcome.entity_id, detail = ?outcome.detail, "SP metadata refresh failed; keeping the last good copy");
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The background loop of `serve`: each round on whichever node gets the job's lease.
pub async fn forever(
    store: Store,
    federation: Vec<samael::crypto::CertificateDer>,
    clock: crate::clock::SharedClock,
    node: String,
) {
    let mut tick = tokio::time::interval(INTERVAL);
    let ttl = i64::try_from(INTERVAL.as_secs()).unwrap_or(300);
    loop {
        tick.tick().await;
        let now = clock.now();
        let lease_node = node.clone();
        let ours = store
            .write_async(move |c| {
                crate::jobs::take_lease(
                    c,
                    crate::jobs::SAML_METADATA_REFRESH,
                    &lease_node,
                    now,
                    ttl,
                )
            })
            .await;
        match ours {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "metadata refresh: cannot take the lease");
                continue;
            }
        }
        if let Err(e) = run_under(&store, federation.clone(), now, false).await {
            tracing::warn!(error = %e, "metadata refresh round failed");
        }
    }
}
