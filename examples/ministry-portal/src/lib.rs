//! An example ministry portal: a SAML 2.0 service provider built with samael that signs
//! people in through fedhub, shows who they are (name, identifiers, agency and unit, roles,
//! admin level) and offers single logout both ways.
//!
//! ```text
//! GET  /                 home: "Đăng nhập" (sign in), or who is signed in and "Đăng xuất"
//! GET  /login            signed AuthnRequest to the hub (HTTP-Redirect); ?passive=1 asks
//!                        IsPassive="true" (no page at the hub: an answer either way)
//! POST /saml/acs         the hub's Response (HTTP-POST)
//! POST /logout           signed LogoutRequest to the hub (HTTP-Redirect)
//! GET  /saml/slo         the hub's LogoutResponse, or its LogoutRequest (answered)
//! GET  /saml/metadata    the portal's signed SP metadata
//! ```

pub mod hub;
pub mod keys;
pub mod pages;
pub mod saml;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use axum::Router;

pub use web::app_with_key;

/// How the portal runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen, e.g. `127.0.0.1:8081`.
    pub listen: SocketAddr,
    /// The portal's base URL as browsers reach it, without a trailing slash.
    pub public_url: String,
    /// The hub's base URL, e.g. `http://127.0.0.1:8080`; its metadata is at `/saml/metadata`.
    pub hub_url: String,
    /// Folder of the portal's key and certificate (created on first start). `None`: a new key
    /// at every start, kept in memory only.
    pub data_dir: Option<PathBuf>,
    /// The SP entityID; default `{public_url}/saml/metadata`.
    pub entity_id: Option<String>,
}

impl Config {
    /// A configuration for `listen`, published at `http://{listen}`, using the hub at `hub_url`.
    pub fn new(listen: SocketAddr, hub_url: &str) -> Config {
        Config {
            listen,
            public_url: format!("http://{listen}"),
            hub_url: hub_url.trim_end_matches('/').to_string(),
            data_dir: None,
            entity_id: None,
        }
    }

    pub fn base_url(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    pub fn entity_id(&self) -> String {
        self.entity_id
            .clone()
            .unwrap_or_else(|| format!("{}/saml/metadata", self.base_url()))
    }

    pub fn acs_url(&self) -> String {
        format!("{}/saml/acs", self.base_url())
    }

    pub fn slo_url(&self) -> String {
        format!("{}/saml/slo", self.base_url())
    }

    pub fn hub_metadata_url(&self) -> String {
        format!("{}/saml/metadata", self.hub_url.trim_end_matches('/'))
    }

    /// Checks the URLs: absolute http(s), no query or fragment.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [("--public-url", &self.public_url), ("--hub", &self.hub_url)] {
            let u = url::Url::parse(value)
                .map_err(|e| anyhow::anyhow!("{name}: {value:?} is not a URL: {e}"))?;
            if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                anyhow::bail!("{name}: {value:?} must be an http:// or https:// URL");
            }
            if u.query().is_some() || u.fragment().is_some() {
                anyhow::bail!("{name}: {value:?} must not have a query or fragment");
            }
        }
        Ok(())
    }

    /// The key and certificate: from `data_dir` (generated there on first start), or new.
    pub fn load_key(&self) -> Result<keys::SpKey> {
        let cn = self.entity_id();
        match &self.data_dir {
            Some(dir) => keys::SpKey::load_or_generate(dir, &cn),
            None => keys::SpKey::ephemeral(&cn),
        }
    }
}

/// The portal's router. The hub's metadata is fetched when first needed, so the portal may
/// start before the hub.
pub async fn app(config: Config) -> Result<Router> {
    config.validate()?;
    let cfg = config.clone();
    let key = tokio::task::spawn_blocking(move || cfg.load_key()).await??;
    app_with_key(config, key)
}

/// The portal's signed metadata (for `--print-metadata`).
pub fn metadata(config: &Config) -> Result<String> {
    config.validate()?;
    let key = config.load_key()?;
    saml::sp_metadata(
        &config.entity_id(),
        &config.acs_url(),
        &config.slo_url(),
        &key,
        time::OffsetDateTime::now_utc(),
    )
}
