//! Who vouches for the person in a load login (`--upstream`): the hub's demo connector (one
//! form post, the same citizen every time), or an OpenID provider (the [`mock_op`] on
//! loopback, a pool of citizens). Both steps start where the hub has sent the browser to its
//! login page and end with the hub's answer for the relying party.
//!
//! [`mock_op`]: crate::mock_op

use anyhow::{anyhow, bail, Context, Result};
use reqwest::header::{CONTENT_TYPE, COOKIE};
use reqwest::{Response, StatusCode};
use ring::rand::{SecureRandom, SystemRandom};

use crate::directory::names::{self, Rng, Weighted};
use crate::flow;
use crate::mock_op::{self, Person};

/// The connector the OIDC upstream is registered as in the hub.
pub const CONNECTOR_ID: &str = "vneid";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpstreamKind {
    /// The hub's demo connector (`fedhub demo`'s), one citizen.
    Demo,
    /// A mock OpenID provider run by the load tool on loopback, a pool of citizens.
    Oidc,
}

impl UpstreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::Demo => "demo",
            UpstreamKind::Oidc => "oidc",
        }
    }
}

/// The upstream sign-in of one login.
pub enum Upstream {
    Demo,
    Oidc {
        /// The provider's issuer (its base URL).
        issuer: String,
        /// How many people can sign in there (each login picks one at random).
        people: usize,
    },
}

impl Upstream {
    /// From the hub's answer `r` to `step` (a redirect to its login page and the login
    /// cookie) to the hub's answer for the relying party.
    pub async fn sign_in(
        &self,
        http: &reqwest::Client,
        rng: &SystemRandom,
        base: &url::Url,
        r: &Response,
        step: &str,
    ) -> Result<Response> {
        match self {
            Upstream::Demo => flow::demo_sign_in(http, base, r, step).await,
            Upstream::Oidc { issuer, people } => {
                let person = pick(rng, *people)?;
                oidc_sign_in(http, base, r, step, issuer, person).await
            }
        }
    }
}

fn pick(rng: &SystemRandom, n: usize) -> Result<usize> {
    let mut b = [0u8; 8];
    rng.fill(&mut b)
        .map_err(|_| anyhow!("random generator failed"))?;
    Ok((u64::from_le_bytes(b) % n.max(1) as u64) as usize)
}

/// The login page (which offers the OIDC connector) → the person chooses it → the provider,
/// where the browser is already signed in as `person` → back to the hub's callback, where the
/// hub redeems the code, verifies the ID token and reads userinfo.
async fn oidc_sign_in(
    http: &reqwest::Client,
    base: &url::Url,
    r: &Response,
    step: &str,
    issuer: &str,
    person: usize,
) -> Result<Response> {
    let page = flow::open_login_page(http, base, r, step).await?;
    let (login_page, cookie) = (page.url, page.cookie);
    let html = flow::unescape(&page.html);
    let choice = format!("{}/{CONNECTOR_ID}", login_page.path());
    if !html.contains(&format!("action=\"{choice}\"")) {
        bail!("login page: the provider {CONNECTOR_ID} is not offered");
    }

    // The person picks the provider: the hub sends the browser there.
    let r = flow::expect(
        http.post(base.join(&choice)?)
            .header(COOKIE, &cookie)
            .header(CONTENT_TYPE, flow::FORM)
            .send()
            .await
            .context("choose provider")?,
        StatusCode::SEE_OTHER,
        "choose provider",
    )
    .await?;
    let authorize = flow::location(&r, "choose provider")?;
    if !authorize.starts_with(&format!("{issuer}/authorize?")) {
        bail!("choose provider: redirected to {authorize}, not to the provider");
    }

    // The provider: already signed in, it sends the browser straight back with a code.
    let r = flow::expect(
        http.get(&authorize)
            .header(COOKIE, format!("{}={person}", mock_op::SESSION_COOKIE))
            .send()
            .await
            .context("provider")?,
        StatusCode::SEE_OTHER,
        "provider",
    )
    .await?;
    let callback = base.join(&flow::location(&r, "provider")?)?;
    if callback.origin() != base.origin()
        || callback.path() != format!("/connectors/{CONNECTOR_ID}/callback")
    {
        bail!("provider: redirected to {callback}, not to the hub's callback");
    }
    http.get(callback)
        .header(COOKIE, &cookie)
        .send()
        .await
        .context("callback")
}

/// `count` citizens with made-up names, valid CCCDs (distinct) and mobile numbers, the same
/// for a given `seed`.
pub fn citizens(count: usize, seed: u64) -> Vec<Person> {
    let mut rng = Rng::new(seed);
    let family = Weighted::new(names::FAMILY.iter().map(|(_, w)| *w));
    let mut taken = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let (name, female) = names::person_name(&mut rng, &family);
        let Some(cccd) = names::cccd(&mut rng, female) else {
            continue;
        };
        if !taken.insert(cccd.as_str().to_string()) {
            continue;
        }
        out.push(Person {
            national_id: cccd.as_str().to_string(),
            name,
            phone: names::mobile(&mut rng).map(|p| p.national()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_citizen_pool_is_distinct_valid_and_repeatable() {
        let pool = citizens(300, 7);
        let ids: std::collections::HashSet<_> = pool.iter().map(|p| &p.national_id).collect();
        assert_eq!(ids.len(), 300);
        for p in &pool {
            let input = fedhub::directory::accounts::AccountInput {
                kind: "citizen".into(),
                display_name: p.name.clone(),
                national_id: Some(p.national_id.clone()),
                phone: p.phone.clone(),
                ..Default::default()
            };
            input.validate().unwrap();
        }
        assert_eq!(citizens(300, 7)[299].national_id, pool[299].national_id);
    }
}
