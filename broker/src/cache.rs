//! Per-node copies of what changes rarely and is read by every sign-in: relying parties
//! (with their parsed settings and SAML metadata) and the opened signing keys.
//!
//! Nodes do not tell each other about changes; the database does. Every change to
//! `relying_parties`, `connectors`, `rp_connectors` or `signing_keys` moves a row of
//! `change_counters` (a trigger does it, so no write path can forget). A node trusts its copies
//! for `database.cache_refresh` after it last read the counters; after that the next lookup
//! reads them again (one small query) and drops every copy if one moved. So a change made on
//! any node is seen everywhere within `cache_refresh`.
//!
//! A copy is kept only when it was loaded after reading counters equal to the ones the cache
//! holds: a lookup that raced a change cannot leave an old copy behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use fedhub_metadata::keys::KeyAlg;
use fedhub_metadata::xml::dsig::XmlSigner;
use fedhub_metadata::xml::sp::SpMetadata;
use fedhub_metadata::AtRestKey;

use crate::error::Result;
use crate::keys::{self, Purpose};
use crate::rp::oidc::OidcSettings;
use crate::rp::saml::SamlSettings;
use crate::rp::{self, RelyingParty};
use crate::store::counters;
use crate::store::schema::change_counters::dsl as cc;
use crate::store::Db;
use crate::upstream::lookup::{self, Offer};
use crate::upstream::Connector;

/// At most this many (relying party, connector) pairs and sign-in pages are kept: a
/// federation of thousands of IdPs offered to many services must not grow a node without
/// bound (beyond it, lookups go to the database's indexes, as without a cache).
const MAX_CONNECTOR_COPIES: usize = 4096;

/// The counters the cached data depends on, as last read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Versions {
    relying_parties: i64,
    connectors: i64,
    signing_keys: i64,
}

impl Versions {
    fn read(conn: &mut Db) -> Result<Versions> {
        let rows: Vec<(String, i64)> = cc::change_counters
            .filter(cc::name.eq_any([
                counters::RELYING_PARTIES,
                counters::CONNECTORS,
                counters::SIGNING_KEYS,
            ]))
            .select((cc::name, cc::version))
            .load(conn)?;
        let mut v = Versions::default();
        for (name, version) in rows {
            match name.as_str() {
                counters::RELYING_PARTIES => v.relying_parties = version,
                counters::CONNECTORS => v.connectors = version,
                _ => v.signing_keys = version,
            }
        }
        Ok(v)
    }

    /// Counters only move forward: the later of two readings, field by field.
    fn latest(self, other: Versions) -> Versions {
        Versions {
            relying_parties: self.relying_parties.max(other.relying_parties),
            connectors: self.connectors.max(other.connectors),
            signing_keys: self.signing_keys.max(other.signing_keys),
        }
    }
}

/// A SAML service provider with its settings and metadata already parsed.
#[derive(Debug)]
pub struct SamlSp {
    pub rp: Arc<RelyingParty>,
    pub settings: SamlSettings,
    pub metadata: SpMetadata,
}

/// An OIDC client with its settings already parsed.
#[derive(Debug)]
pub struct OidcClient {
    pub rp: Arc<RelyingParty>,
    pub settings: OidcSettings,
}

#[derive(Default)]
struct Copies {
    versions: Versions,
    /// When `versions` was last read from the database.
    checked: Option<Instant>,
    by_id: HashMap<String, Arc<RelyingParty>>,
    /// SAML entityID or OIDC client_id → relying party id.
    by_entity: HashMap<String, String>,
    saml: HashMap<String, Arc<SamlSp>>,
    oidc: HashMap<String, Arc<OidcClient>>,
    saml_signer: Option<Arc<XmlSigner>>,
    current_kids: HashMap<(Purpose, KeyAlg), String>,
    /// (relying party, connector) → the connector, for pairs the relying party offers.
    allowed: HashMap<(String, String), Connector>,
    /// (relying party, few, limit) → what its sign-in page offers without a search.
    offers: HashMap<(String, i64, i64), Arc<Offer>>,
}

impl Copies {
    fn forget(&mut self) {
        self.by_id.clear();
        self.by_entity.clear();
        self.saml.clear();
        self.oidc.clear();
        self.saml_signer = None;
        self.current_kids.clear();
        self.allowed.clear();
        self.offers.clear();
    }
}

/// The node's cache; cheap to clone (one per `AppState`, shared by its clones).
#[derive(Clone)]
pub struct NodeCache {
    refresh: Duration,
    copies: Arc<Mutex<Copies>>,
}

impl std::fmt::Debug for NodeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCache")
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl NodeCache {
    /// `refresh`: how long copies are trusted without asking the database (zero: always ask).
    pub fn new(refresh: Duration) -> NodeCache {
        NodeCache {
            refresh,
            copies: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Copies> {
        // A panic while holding the lock cannot leave copies half-updated in a way that
        // matters: at worst an entry is missing and is loaded again.
        self.copies.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self, copies: &Copies) -> bool {
        copies.checked.is_some_and(|at| at.elapsed() < self.refresh)
    }

    /// A copy without touching the database, if the counters were read recently enough.
    fn peek<T>(&self, find: impl FnOnce(&Copies) -> Option<T>) -> Option<T> {
        let copies = self.lock();
        if self.fresh(&copies) {
            find(&copies)
        } else {
            None
        }
    }

    /// Reads the counters (unless they were read within `refresh`), dropping every copy if
    /// one moved. Returns the reading new copies are tagged with.
    fn check(&self, conn: &mut Db) -> Result<Versions> {
        {
            let copies = self.lock();
            if self.fresh(&copies) {
                return Ok(copies.versions);
            }
        }
        let read = Versions::read(conn)?;
        let mut copies = self.lock();
        let latest = copies.versions.latest(read);
        if latest != copies.versions {
            copies.forget();
            copies.versions = latest;
        }
        if read == latest {
            copies.checked = Some(Instant::now());
        }
        Ok(read)
    }

    /// Looks in the copies (after [`check`]), else loads with `load` and keeps the result when
    /// nothing moved in between.
    fn get_or_load<T: Clone>(
        &self,
        conn: &mut Db,
        find: impl Fn(&Copies) -> Option<T>,
        load: impl FnOnce(&mut Db) -> Result<T>,
        keep: impl FnOnce(&mut Copies, &T),
    ) -> Result<T> {
        let tag = self.check(conn)?;
        if let Some(hit) = find(&self.lock()) {
            return Ok(hit);
        }
        let loaded = load(conn)?;
        let mut copies = self.lock();
        if copies.versions == tag {
            keep(&mut copies, &loaded);
        }
        Ok(loaded)
    }

    /// A relying party by id.
    pub fn rp(&self, conn: &mut Db, id: &str) -> Result<Arc<RelyingParty>> {
        self.get_or_load(
            conn,
            |c| c.by_id.get(id).cloned(),
            |conn| rp::get(conn, id).map(Arc::new),
            keep_rp,
        )
    }

    /// A relying party by SAML entityID or OIDC client_id (unknown ones are not remembered).
    pub fn rp_by_entity_id(
        &self,
        conn: &mut Db,
        entity_id: &str,
    ) -> Result<Option<Arc<RelyingParty>>> {
        self.get_or_load(
            conn,
            |c| {
                c.by_entity
                    .get(entity_id)
                    .and_then(|id| c.by_id.get(id))
                    .cloned()
                    .map(Some)
            },
            |conn| Ok(rp::by_entity_id(conn, entity_id)?.map(Arc::new)),
            |c, rp| {
                if let Some(rp) = rp {
                    keep_rp(c, rp);
                }
            },
        )
    }

    /// [`rp_by_entity_id`](Self::rp_by_entity_id) without the database, when the copy is fresh.
    pub fn peek_rp_by_entity_id(&self, entity_id: &str) -> Option<Arc<RelyingParty>> {
        self.peek(|c| {
            c.by_entity
                .get(entity_id)
                .and_then(|id| c.by_id.get(id))
                .cloned()
        })
    }

    /// A SAML service provider's settings and metadata, parsed once per change.
    pub fn saml_sp(&self, conn: &mut Db, rp: &Arc<RelyingParty>) -> Result<Arc<SamlSp>> {
        let id = rp.id.clone();
        self.get_or_load(
            conn,
            |c| c.saml.get(&id).cloned(),
            |_| parse_saml(rp),
            |c, sp| {
                c.saml.insert(id.clone(), sp.clone());
            },
        )
    }

    /// [`saml_sp`](Self::saml_sp) of a copy already held, without the database.
    pub fn peek_saml_sp(&self, rp_id: &str) -> Option<Arc<SamlSp>> {
        self.peek(|c| c.saml.get(rp_id).cloned())
    }

    /// An OIDC client by client_id, with its settings parsed once per change.
    pub fn oidc_client(&self, conn: &mut Db, client_id: &str) -> Result<Option<Arc<OidcClient>>> {
        let rp = self.rp_by_entity_id(conn, client_id)?;
        let Some(rp) = rp.filter(|r| r.protocol == "oidc") else {
            return Ok(None);
        };
        let id = rp.id.clone();
        self.get_or_load(
            conn,
            |c| c.oidc.get(&id).cloned(),
            |_| {
                Ok(Arc::new(OidcClient {
                    settings: rp::oidc::settings(&rp)?,
                    rp: rp.clone(),
                }))
            },
            |c, client| {
                c.oidc.insert(id.clone(), client.clone());
            },
        )
        .map(Some)
    }

    /// [`oidc_client`](Self::oidc_client) of a copy already held, without the database.
    pub fn peek_oidc_client(&self, rp_id: &str) -> Option<Arc<OidcClient>> {
        self.peek(|c| c.oidc.get(rp_id).cloned())
    }

    /// The SAML signing key, opened once per key change.
    pub fn saml_signer(&self, conn: &mut Db, vault: &AtRestKey) -> Result<Arc<XmlSigner>> {
        self.get_or_load(
            conn,
            |c| c.saml_signer.clone(),
            |conn| {
                Ok(Arc::new(
                    keys::signer(conn, vault, Purpose::Saml)?.xml_signer()?,
                ))
            },
            |c, s| c.saml_signer = Some(s.clone()),
        )
    }

    /// The kid that signs now for `purpose` and `alg`.
    pub fn current_kid(&self, conn: &mut Db, purpose: Purpose, alg: KeyAlg) -> Result<String> {
        self.get_or_load(
            conn,
            |c| c.current_kids.get(&(purpose, alg)).cloned(),
            |conn| keys::current_kid(conn, purpose, alg),
            |c, kid| {
                c.current_kids.insert((purpose, alg), kid.clone());
            },
        )
    }
}

impl NodeCache {
    /// The enabled connector `id` if the relying party offers it
    /// ([`lookup::allowed`]); refusals are not remembered.
    pub fn allowed_connector(
        &self,
        conn: &mut Db,
        rp_id: &str,
        id: &str,
    ) -> Result<Option<Connector>> {
        let key = (rp_id.to_string(), id.to_string());
        self.get_or_load(
            conn,
            |c| c.allowed.get(&key).cloned().map(Some),
            |conn| lookup::allowed(conn, rp_id, id),
            |c, found| {
                if let Some(found) = found {
                    if c.allowed.len() < MAX_CONNECTOR_COPIES {
                        c.allowed.insert(key.clone(), found.clone());
                    }
                }
            },
        )
    }

    /// What the sign-in page offers without a search ([`lookup::offer`]); the browser's last
    /// choice is checked apart with [`allowed_connector`](Self::allowed_connector).
    pub fn offer(&self, conn: &mut Db, rp_id: &str, few: i64, limit: i64) -> Result<Arc<Offer>> {
        let key = (rp_id.to_string(), few, limit);
        self.get_or_load(
            conn,
            |c| c.offers.get(&key).cloned(),
            |conn| lookup::offer(conn, rp_id, None, few, limit).map(Arc::new),
            |c, offer| {
                if c.offers.len() < MAX_CONNECTOR_COPIES {
                    c.offers.insert(key.clone(), offer.clone());
                }
            },
        )
    }
}

fn keep_rp(copies: &mut Copies, rp: &Arc<RelyingParty>) {
    copies.by_entity.insert(rp.entity_id.clone(), rp.id.clone());
    copies.by_id.insert(rp.id.clone(), rp.clone());
}

fn parse_saml(rp: &Arc<RelyingParty>) -> Result<Arc<SamlSp>> {
    let settings = rp::saml::settings(rp)?;
    let metadata = settings.metadata()?;
    Ok(Arc::new(SamlSp {
        rp: rp.clone(),
        settings,
        metadata,
    }))
}
