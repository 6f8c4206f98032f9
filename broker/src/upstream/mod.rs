//! Connectors as registered by the federation operator: which upstreams exist, their
//! settings (secrets sealed with the at-rest key), whether they are enabled, and which
//! relying parties may use them. The protocol logic lives in the `fedhub-connectors` crate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use diesel::prelude::*;
use fedhub_connectors::oidc::{self, ClaimNames, OidcUpstream, ProviderMetadata};
use fedhub_connectors::ConnectorKind;
use fedhub_metadata::AtRestKey;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::schema::{connectors as k, relying_parties, rp_connectors as rc};
use crate::store::Db;

pub mod aggregate;
pub mod lookup;
pub mod saml;
pub use saml::{add_saml, saml_upstream, SamlRegistration};

/// A registered connector (settings as stored: secrets sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = crate::store::schema::connectors)]
pub struct Connector {
    pub id: String,
    pub kind: String,
    pub display_name: String,
    #[serde(skip)]
    pub config: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Connector {
    pub fn kind(&self) -> Option<ConnectorKind> {
        ConnectorKind::parse(&self.kind)
    }

    /// Whether a relying party's hint names this connector: its id, or (OIDC) its issuer, as a
    /// SAML SP's Scoping/IDPList ProviderID would.
    pub fn answers_to(&self, hint: &str) -> bool {
        self.id == hint
            || match self.kind() {
                Some(ConnectorKind::Oidc) => serde_json::from_str::<OidcSettings>(&self.config)
                    .is_ok_and(|s| s.issuer == hint),
                Some(ConnectorKind::Saml) => {
                    saml::SamlSettings::parse(&self.config).is_ok_and(|s| s.entity_id == hint)
                }
                _ => false,
            }
    }
}

/// Stored settings of an OIDC connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    /// The client secret, AES-256-GCM under the at-rest key (base64).
    pub client_secret_sealed: String,
    pub scopes: Vec<String>,
    pub claim_names: ClaimNames,
}

/// A request to register an OIDC upstream (the national identity provider, say).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcRegistration {
    pub id: String,
    pub display_name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub claim_names: Option<ClaimNames>,
}

/// Connector ids appear in URLs (`/connectors/{id}/callback`): a short slug.
pub(crate) fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 40
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "id",
            "1-40 lowercase letters, digits or '-' (it appears in URLs)",
        ))
    }
}

pub(crate) fn insert(
    conn: &mut Db,
    id: &str,
    kind: ConnectorKind,
    name: &str,
    config: &str,
    now: i64,
) -> Result<Connector> {
    let exists = k::table.find(id).count().get_result::<i64>(conn)? > 0;
    if exists {
        return Err(Error::Conflict {
            field: "id".into(),
            rule: format!("connector {id} already exists"),
        });
    }
    // The entity ID or issuer is indexed for hints, the name for the sign-in page's search.
    let entity_id = lookup::entity_id_of(kind, config);
    diesel::insert_into(k::table)
        .values((
            k::id.eq(id),
            k::kind.eq(kind.as_str()),
            k::display_name.eq(name),
            k::config.eq(config),
            k::enabled.eq(true),
            k::created_at.eq(now),
            k::updated_at.eq(now),
            k::search_name.eq(lookup::search_name(name, entity_id.as_deref(), &[])),
            k::entity_id.eq(entity_id),
        ))
        .execute(conn)?;
    get(conn, id)
}

/// Registers an OIDC upstream; the secret is sealed before it is stored.
pub fn add_oidc(
    conn: &mut Db,
    vault: &AtRestKey,
    reg: &OidcRegistration,
    now: i64,
) -> Result<Connector> {
    check_id(&reg.id)?;
    if reg.display_name.trim().is_empty() {
        return Err(Error::invalid("display_name", "must not be empty"));
    }
    oidc::check_endpoint("issuer", &reg.issuer)
        .map_err(|e| Error::invalid("issuer", e.to_string()))?;
    if reg.client_id.trim().is_empty() {
        return Err(Error::invalid("client_id", "must not be empty"));
    }
    if reg.client_secret.len() < 8 {
        return Err(Error::invalid(
            "client_secret",
            "the secret the provider issued (at least 8 characters)",
        ));
    }
    let scopes = reg
        .scopes
        .clone()
        .unwrap_or_else(|| vec!["openid".into(), "profile".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        return Err(Error::invalid("scopes", "must include openid"));
    }
    let sealed = vault
        .seal(reg.id.as_bytes(), reg.client_secret.as_bytes())
        .map_err(Error::internal)?;
    let settings = OidcSettings {
        issuer: reg.issuer.clone(),
        client_id: reg.client_id.clone(),
        client_secret_sealed: STANDARD.encode(sealed),
        scopes,
        claim_names: reg.claim_names.unwrap_or_default(),
    };
    let config = serde_json::to_string(&settings).map_err(Error::internal)?;
    insert(
        conn,
        &reg.id,
        ConnectorKind::Oidc,
        reg.display_name.trim(),
        &config,
        now,
    )
}

/// A request to register the USB-token certificate connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateRegistration {
    pub id: String,
    pub display_name: String,
    #[serde(flatten)]
    pub config: fedhub_connectors::certificate::CertificateConfig,
}

/// Registers a certificate connector: its trust anchors (the government CA roots) are checked
/// now, so a bad PEM never reaches a sign-in.
pub fn add_certificate(
    conn: &mut Db,
    reg: &CertificateRegistration,
    now: i64,
) -> Result<Connector> {
    check_id(&reg.id)?;
    if reg.display_name.trim().is_empty() {
        return Err(Error::invalid("display_name", "must not be empty"));
    }
    reg.config
        .check()
        .map_err(|e| Error::invalid("trust_anchors_pem", e.to_string()))?;
    let config = serde_json::to_string(&reg.config).map_err(Error::internal)?;
    insert(
        conn,
        &reg.id,
        ConnectorKind::Certificate,
        reg.display_name.trim(),
        &config,
        now,
    )
}

/// A request to register a SIM-PKI (mobile signature) provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimPkiRegistration {
    pub id: String,
    pub display_name: String,
    pub provider_url: String,
    pub api_key: String,
    pub certificate: fedhub_connectors::certificate::CertificateConfig,
}

/// Stored settings of a SIM-PKI connector: the provider and certificate settings, the API
/// key sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimPkiStored {
    settings: fedhub_connectors::simpki::SimPkiSettings,
    api_key_sealed: String,
}

pub fn add_simpki(
    conn: &mut Db,
    vault: &AtRestKey,
    reg: &SimPkiRegistration,
    now: i64,
) -> Result<Connector> {
    check_id(&reg.id)?;
    if reg.display_name.trim().is_empty() {
        return Err(Error::invalid("display_name", "must not be empty"));
    }
    let settings = fedhub_connectors::simpki::SimPkiSettings {
        provider_url: reg.provider_url.clone(),
        certificate: reg.certificate.clone(),
    };
    settings
        .check()
        .map_err(|e| Error::invalid("provider_url", e.to_string()))?;
    if reg.api_key.trim().is_empty() {
        return Err(Error::invalid("api_key", "the key the provider issued"));
    }
    let sealed = vault
        .seal(reg.id.as_bytes(), reg.api_key.trim().as_bytes())
        .map_err(Error::internal)?;
    let stored = SimPkiStored {
        settings,
        api_key_sealed: STANDARD.encode(sealed),
    };
    let config = serde_json::to_string(&stored).map_err(Error::internal)?;
    insert(
        conn,
        &reg.id,
        ConnectorKind::Simpki,
        reg.display_name.trim(),
        &config,
        now,
    )
}

/// A SIM-PKI connector's provider (API key opened) and certificate settings.
pub fn simpki(
    c: &Connector,
    vault: &AtRestKey,
) -> Result<(
    fedhub_connectors::simpki::SimPkiProvider,
    fedhub_connectors::certificate::CertificateConfig,
)> {
    let stored: SimPkiStored = serde_json::from_str(&c.config)
        .map_err(|e| Error::Internal(format!("settings of connector {}: {e}", c.id)))?;
    let sealed = STANDARD
        .decode(&stored.api_key_sealed)
        .map_err(Error::internal)?;
    let key = vault.open(c.id.as_bytes(), &sealed).map_err(|e| {
        Error::Internal(format!(
            "API key of connector {} cannot be opened: {e}",
            c.id
        ))
    })?;
    let key = String::from_utf8(key).map_err(Error::internal)?;
    let provider = stored
        .settings
        .provider(key)
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok((provider, stored.settings.certificate))
}

/// Registers a certificate to an account (a state agency signs in with its certificate,
/// which carries no personal ID): later sign-ins with it through `connector_id` land on that
/// account. A certificate already linked to another account is a conflict.
pub fn link_certificate(
    conn: &mut Db,
    account_id: &str,
    connector_id: &str,
    cert_der: &[u8],
    now: i64,
) -> Result<String> {
    use crate::store::schema::upstream_links::dsl as ul;
    let c = get(conn, connector_id)?;
    if !matches!(
        c.kind(),
        Some(ConnectorKind::Certificate | ConnectorKind::Simpki)
    ) {
        return Err(Error::invalid(
            "connector",
            format!("{connector_id} is not a certificate or SIM-PKI connector"),
        ));
    }
    crate::directory::accounts::get(conn, account_id)?;
    let facts = fedhub_connectors::certificate::read_certificate(cert_der)
        .map_err(|e| Error::invalid("certificate", e.to_string()))?;
    let issuer = fedhub_connectors::certificate::ISSUER;
    let existing: Option<String> = ul::upstream_links
        .filter(ul::connector_id.eq(connector_id))
        .filter(ul::issuer.eq(issuer))
        .filter(ul::subject.eq(&facts.subject))
        .select(ul::account_id)
        .get_result(conn)
        .optional()?;
    match existing {
        Some(a) if a == account_id => return Ok(facts.subject),
        Some(_) => {
            return Err(Error::Conflict {
                field: "certificate".into(),
                rule: "this certificate is already registered to another account".into(),
            })
        }
        None => {}
    }
    diesel::insert_into(ul::upstream_links)
        .values((
            ul::id.eq(crate::store::new_id()),
            ul::account_id.eq(account_id),
            ul::connector_id.eq(connector_id),
            ul::issuer.eq(issuer),
            ul::subject.eq(&facts.subject),
            ul::created_at.eq(now),
            ul::last_seen_at.eq(now),
        ))
        .execute(conn)?;
    Ok(facts.subject)
}

pub fn get(conn: &mut Db, id: &str) -> Result<Connector> {
    k::table
        .find(id)
        .select(Connector::as_select())
        .get_result(conn)
        .optional()?
        .ok_or_else(|| Error::not_found("connector", id))
}

pub fn list(conn: &mut Db) -> Result<Vec<Connector>> {
    Ok(k::table
        .select(Connector::as_select())
        .order(k::id.asc())
        .load(conn)?)
}

/// Enables or disables a connector (a disabled one is offered to no one).
///
/// An operator's decision: a federation's aggregate import no longer enables or disables it
/// on its own (except disabling it when the aggregate stops listing it).
pub fn set_enabled(conn: &mut Db, id: &str, enabled: bool, now: i64) -> Result<Connector> {
    let n = diesel::update(k::table.find(id))
        .set((
            k::enabled.eq(enabled),
            k::left_federation_at.eq(None::<i64>),
            k::updated_at.eq(now),
        ))
        .execute(conn)?;
    if n == 0 {
        return Err(Error::not_found("connector", id));
    }
    get(conn, id)
}

/// Sets which connectors a relying party offers (an empty list: every enabled one).
pub fn allow_for_rp(conn: &mut Db, rp_id: &str, connector_ids: &[String]) -> Result<()> {
    let rp_known = relying_parties::table
        .find(rp_id)
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if !rp_known {
        return Err(Error::not_found("relying party", rp_id));
    }
    for id in connector_ids {
        get(conn, id)?;
    }
    diesel::delete(rc::table.filter(rc::rp_id.eq(rp_id))).execute(conn)?;
    for id in connector_ids {
        diesel::insert_into(rc::table)
            .values((rc::rp_id.eq(rp_id), rc::connector_id.eq(id)))
            .execute(conn)?;
    }
    Ok(())
}

/// Enabled connectors a relying party allows (all enabled ones when it lists none).
pub fn for_rp(conn: &mut Db, rp_id: &str) -> Result<Vec<Connector>> {
    let listed: Vec<String> = rc::table
        .filter(rc::rp_id.eq(rp_id))
        .select(rc::connector_id)
        .load(conn)?;
    Ok(list(conn)?
        .into_iter()
        .filter(|c| c.enabled && (listed.is_empty() || listed.contains(&c.id)))
        .collect())
}

/// The OIDC upstream of a connector, its secret opened; `clock_skew` is
/// `connectors.clock_skew`.
pub fn oidc_upstream(
    c: &Connector,
    vault: &AtRestKey,
    base_url: &str,
    clock_skew: std::time::Duration,
) -> Result<OidcUpstream> {
    let s: OidcSettings = serde_json::from_str(&c.config)
        .map_err(|e| Error::Internal(format!("settings of connector {}: {e}", c.id)))?;
    let sealed = STANDARD
        .decode(&s.client_secret_sealed)
        .map_err(Error::internal)?;
    let secret = vault.open(c.id.as_bytes(), &sealed).map_err(|e| {
        Error::Internal(format!(
            "secret of connector {} cannot be opened: {e}",
            c.id
        ))
    })?;
    Ok(OidcUpstream {
        issuer: s.issuer,
        client_id: s.client_id,
        client_secret: String::from_utf8(secret).map_err(Error::internal)?,
        scopes: s.scopes,
        claim_names: s.claim_names,
        redirect_uri: format!("{base_url}/connectors/{}/callback", c.id),
        clock_skew: i64::try_from(clock_skew.as_secs()).unwrap_or(i64::MAX),
    })
}

/// Discovery documents and keys of upstream providers, per node, kept for five minutes (keys
/// are fetched again at once when a token names a key not yet known); and the providers that
/// just failed to answer, with until when they are not asked again.
#[derive(Clone, Default)]
pub struct ProviderCache {
    fetched: Arc<Mutex<HashMap<String, CachedProvider>>>,
    down: Arc<Mutex<HashMap<String, i64>>>,
}

/// When it was fetched, the discovery document, the keys.
type CachedProvider = (i64, ProviderMetadata, Vec<serde_json::Value>);

/// How long discovery and keys are trusted before being fetched again.
const PROVIDER_TTL: i64 = 300;

impl ProviderCache {
    pub fn get(
        &self,
        issuer: &str,
        now: i64,
    ) -> Option<(ProviderMetadata, Vec<serde_json::Value>)> {
        let map = self.fetched.lock().ok()?;
        let (at, meta, keys) = map.get(issuer)?;
        (now - at < PROVIDER_TTL).then(|| (meta.clone(), keys.clone()))
    }
    pub fn put(
        &self,
        issuer: &str,
        now: i64,
        meta: ProviderMetadata,
        keys: Vec<serde_json::Value>,
    ) {
        if let Ok(mut m) = self.fetched.lock() {
            m.insert(issuer.to_string(), (now, meta, keys));
        }
        if let Ok(mut d) = self.down.lock() {
            d.remove(issuer);
        }
    }
    pub fn forget(&self, issuer: &str) {
        if let Ok(mut m) = self.fetched.lock() {
            m.remove(issuer);
        }
    }
    /// Until when `issuer` is not asked again, if it failed to answer recently.
    pub fn down_until(&self, issuer: &str, now: i64) -> Option<i64> {
        let d = self.down.lock().ok()?;
        d.get(issuer).copied().filter(|until| *until > now)
    }
    /// `issuer` did not answer: answer for it at once until `until`.
    pub fn mark_down(&self, issuer: &str, until: i64) {
        if let Ok(mut d) = self.down.lock() {
            // One entry per configured provider: the map cannot grow past the connectors.
            d.retain(|_, u| *u > until - 86_400);
            d.insert(issuer.to_string(), until);
        }
    }
}

impl std::fmt::Debug for ProviderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderCache")
    }
}

/// Certificate revocation lists fetched from the distribution points of trusted chains, per
/// node, kept until their nextUpdate (at most a day).
#[derive(Clone, Default)]
pub struct CrlCache(Arc<Mutex<HashMap<String, CachedCrl>>>);

/// Valid until (Unix seconds), DER.
type CachedCrl = (i64, Vec<u8>);

/// Longest a CRL is kept without fetching it again.
const CRL_MAX_AGE: i64 = 86_400;
/// Largest CRL accepted.
const CRL_MAX_BYTES: usize = 16 * 1024 * 1024;

impl CrlCache {
    /// The CRLs at `urls`: cached ones still current, the others fetched now. A CRL that
    /// cannot be fetched is left out; the connector's revocation policy then decides (by
    /// default, fail closed).
    pub async fn get(
        &self,
        http: &reqwest::Client,
        urls: &[String],
        now: i64,
        timeout: std::time::Duration,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for url in urls {
            let cached = self
                .0
                .lock()
                .ok()
                .and_then(|m| m.get(url).filter(|(until, _)| *until > now).cloned());
            if let Some((_, der)) = cached {
                out.push(der);
                continue;
            }
            match fetch_crl(http, url, timeout).await {
                Ok(der) => {
                    let until = fedhub_connectors::certificate::crl_info(&der)
                        .ok()
                        .and_then(|i| i.next_update)
                        .unwrap_or(now + CRL_MAX_AGE)
                        .min(now + CRL_MAX_AGE);
                    if let Ok(mut m) = self.0.lock() {
                        m.insert(url.clone(), (until, der.clone()));
                    }
                    out.push(der);
                }
                Err(e) => tracing::warn!(crl = %url, error = %e, "CRL not available"),
            }
        }
        out
    }
}

async fn fetch_crl(
    http: &reqwest::Client,
    url: &str,
    timeout: std::time::Duration,
) -> std::result::Result<Vec<u8>, String> {
    let res = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("answered {}", res.status()));
    }
    let body = res.bytes().await.map_err(|e| e.to_string())?;
    if body.len() > CRL_MAX_BYTES {
        return Err("too large".into());
    }
    // A PEM CRL is accepted too.
    let text = String::from_utf8_lossy(&body);
    if let Some(b64) = text
        .split("-----BEGIN X509 CRL-----")
        .nth(1)
        .and_then(|r| r.split("-----END X509 CRL-----").next())
    {
        let clean: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
        return STANDARD.decode(clean).map_err(|e| e.to_string());
    }
    Ok(body.to_vec())
}

impl std::fmt::Debug for CrlCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CrlCache")
    }
}
