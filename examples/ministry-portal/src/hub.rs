//! The hub's IdP metadata, fetched from `{hub}/saml/metadata`. The first copy is trusted as
//! fetched (say so in your deployment: fetch it over https); every later copy must be signed
//! by a key of the copy already trusted, or it is ignored and the old copy kept.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use parking_lot::RwLock;
use samael::crypto::{CertificateDer, CryptoProvider, XmlSec};
use samael::metadata::EntityDescriptor;

use crate::saml::{guard_xml, guarded, BINDING_REDIRECT};

/// How long a copy is used before the portal fetches the metadata again.
const REFRESH_AFTER: Duration = Duration::from_secs(3600);

/// One trusted copy of the hub's metadata.
#[derive(Clone)]
pub struct HubMetadata {
    pub descriptor: EntityDescriptor,
    pub entity_id: String,
    /// The hub's signing certificates (current, next, previous): the only keys trusted.
    pub certs: Vec<CertificateDer>,
    pub sso_redirect: String,
    pub slo_redirect: String,
    fetched: Instant,
}

impl HubMetadata {
    pub fn parse(xml: &str) -> Result<HubMetadata> {
        guard_xml(xml)?;
        let descriptor: EntityDescriptor = xml
            .parse()
            .map_err(|e| anyhow!("the hub's metadata cannot be read: {e}"))?;
        let entity_id = descriptor
            .entity_id
            .clone()
            .ok_or_else(|| anyhow!("the hub's metadata has no entityID"))?;
        let idp = descriptor
            .idp_sso_descriptors
            .as_ref()
            .and_then(|d| d.first())
            .ok_or_else(|| anyhow!("the hub's metadata has no IDPSSODescriptor"))?;
        let mut certs = Vec::new();
        for kd in &idp.key_descriptors {
            let signing = matches!(kd.key_use.as_deref(), None | Some("") | Some("signing"));
            if !signing {
                continue;
            }
            for c in kd
                .key_info
                .x509_data
                .iter()
                .flat_map(|d| d.certificates.iter())
            {
                let der = samael::crypto::decode_x509_cert(c)
                    .context("a certificate in the hub's metadata is not base64")?;
                certs.push(der);
            }
        }
        if certs.is_empty() {
            bail!("the hub's metadata has no signing key");
        }
        let sso_redirect = idp
            .single_sign_on_services
            .iter()
            .find(|e| e.binding == BINDING_REDIRECT)
            .map(|e| e.location.clone())
            .ok_or_else(|| anyhow!("the hub offers no HTTP-Redirect SingleSignOnService"))?;
        let slo_redirect = idp
            .single_logout_services
            .iter()
            .find(|e| e.binding == BINDING_REDIRECT)
            .map(|e| e.location.clone())
            .ok_or_else(|| anyhow!("the hub offers no HTTP-Redirect SingleLogoutService"))?;
        Ok(HubMetadata {
            descriptor,
            entity_id,
            certs,
            sso_redirect,
            slo_redirect,
            fetched: Instant::now(),
        })
    }

    /// Whether `xml` carries a valid enveloped signature by one of this copy's keys.
    fn signs(&self, xml: &str) -> bool {
        self.certs.iter().any(|cert| {
            guarded(|| XmlSec::verify_signed_xml(xml, cert, Some("ID")).map_err(|e| anyhow!("{e}")))
                .is_ok()
        })
    }
}

/// The hub's metadata, fetched when first needed and refreshed every hour.
pub struct HubCache {
    metadata_url: String,
    client: reqwest::Client,
    current: RwLock<Option<Arc<HubMetadata>>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl HubCache {
    pub fn new(metadata_url: String) -> Result<HubCache> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(HubCache {
            metadata_url,
            client,
            current: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// The trusted copy, fetched now if there is none or it is due.
    pub async fn get(&self) -> Result<Arc<HubMetadata>> {
        if let Some(m) = self.fresh() {
            return Ok(m);
        }
        let _one = self.fetching.lock().await;
        if let Some(m) = self.fresh() {
            return Ok(m);
        }
        let old = self.current.read().clone();
        match (self.fetch().await, old) {
            (Ok((_, new)), None) => {
                let new = Arc::new(new);
                tracing::info!(entity_id = %new.entity_id, "hub metadata loaded");
                *self.current.write() = Some(new.clone());
                Ok(new)
            }
            (Ok((xml, new)), Some(old)) => {
                if old.signs(&xml) {
                    let new = Arc::new(new);
                    *self.current.write() = Some(new.clone());
                    Ok(new)
                } else {
                    tracing::warn!(
                        "the hub's new metadata is not signed by a key we trust; keeping the last copy"
                    );
                    Ok(self.keep(old))
                }
            }
            (Err(e), Some(old)) => {
                tracing::warn!("cannot refresh the hub's metadata, keeping the last copy: {e:#}");
                Ok(self.keep(old))
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Keeps `old` for another period (so a failing hub is not asked at every request).
    fn keep(&self, old: Arc<HubMetadata>) -> Arc<HubMetadata> {
        let mut kept = (*old).clone();
        kept.fetched = Instant::now();
        let kept = Arc::new(kept);
        *self.current.write() = Some(kept.clone());
        kept
    }

    fn fresh(&self) -> Option<Arc<HubMetadata>> {
        self.current
            .read()
            .as_ref()
            .filter(|m| m.fetched.elapsed() < REFRESH_AFTER)
            .cloned()
    }

    async fn fetch(&self) -> Result<(String, HubMetadata)> {
        let url = &self.metadata_url;
        let res = self
            .client
            .get(url)
            .send()
            .await
            .with_context(|| format!("cannot reach the hub at {url}"))?;
        if !res.status().is_success() {
            bail!("{url} answered {}", res.status());
        }
        let body = res
            .bytes()
            .await
            .with_context(|| format!("cannot read {url}"))?;
        if body.len() > crate::saml::MAX_XML {
            bail!("{url}: the metadata is too large");
        }
        let xml = String::from_utf8(body.to_vec()).with_context(|| format!("{url}: not UTF-8"))?;
        let md = HubMetadata::parse(&xml).with_context(|| url.to_string())?;
        Ok((xml, md))
    }
}
