//! A sign-in with an SSO cookie: a browser that already has a session at the hub signs in
//! to the load's OIDC client. authorize (with the cookie) → straight back to the client with a
//! code → token → userinfo. Each login takes the next cookie of a pool spread over the whole
//! set of sessions, so the hub looks up sessions all over its tables.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{anyhow, Context, Result};
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use ring::rand::SystemRandom;

use crate::flow::{self, expect, Target};

/// The hub's SSO cookie (`cookies.name`, default).
const SSO_COOKIE: &str = "fedhub_sso";

pub struct SsoTarget {
    pub target: Target,
    cookies: Vec<String>,
    next: AtomicUsize,
}

impl SsoTarget {
    pub fn new(target: Target, cookies: Vec<String>) -> SsoTarget {
        SsoTarget {
            target,
            cookies,
            next: AtomicUsize::new(0),
        }
    }
}

pub async fn login(http: &reqwest::Client, rng: &SystemRandom, t: &SsoTarget) -> Result<()> {
    let at = t.next.fetch_add(1, Ordering::Relaxed);
    let cookie = t
        .cookies
        .get(at % t.cookies.len().max(1))
        .ok_or_else(|| anyhow!("no SSO cookies to sign in with"))?;
    let pending = flow::authorization(rng, &t.target)?;
    let step = "authorize with an SSO cookie";
    let r = expect(
        http.get(pending.authorize.clone())
            .header(COOKIE, format!("{SSO_COOKIE}={cookie}"))
            .send()
            .await
            .context("authorize")?,
        StatusCode::SEE_OTHER,
        step,
    )
    .await?;
    flow::redeem(http, &t.target, &pending, &r, step).await
}
