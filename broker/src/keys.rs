//! The hub's signing keys in the database, private halves sealed with the at-rest key.
//!
//! Life of a key: `next` (published in metadata/JWKS, signs nothing) → `current` (signs) →
//! `previous` (still published until `retire_at`, so relying parties that cached the old
//! metadata keep verifying) → `retired`. `rotate` moves each one step and makes a new `next`,
//! so a key is always published before it signs anything.

use diesel::prelude::*;
use fedhub_metadata::keys::{generate, KeyAlg};
use fedhub_metadata::AtRestKey;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::schema::signing_keys::dsl as sk;
use crate::store::Db;

/// What a key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Saml,
    Oidc,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Saml => "saml",
            Purpose::Oidc => "oidc",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = crate::store::schema::signing_keys)]
pub struct KeyRecord {
    pub kid: String,
    pub purpose: String,
    pub alg: String,
    /// The key's certificate (DER).
    #[serde(skip)]
    pub public_der: Vec<u8>,
    #[serde(skip)]
    pub private_sealed: Vec<u8>,
    pub state: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retire_at: Option<i64>,
}

/// The current key, opened for signing. Never printed.
pub struct Signer {
    pub kid: String,
    pub alg: KeyAlg,
    pub cert_der: Vec<u8>,
    pub private_der: Vec<u8>,
}

impl Signer {
    /// The key prepared for fast XML signing (build once per use site, sign many times).
    pub fn xml_signer(&self) -> Result<fedhub_metadata::xml::dsig::XmlSigner> {
        fedhub_metadata::xml::dsig::XmlSigner::new(self.alg, &self.private_der, &self.cert_der)
            .map_err(Error::internal)
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Certificates stay valid for ten years: SAML peers trust the key as registered, not a CA.
const CERT_DAYS: u32 = 3650;

fn create(
    conn: &mut Db,
    vault: &AtRestKey,
    purpose: Purpose,
    alg: KeyAlg,
    state: &str,
    now: i64,
) -> Result<KeyRecord> {
    let key = generate(
        alg,
        &format!("fedhub {} signing", purpose.as_str()),
        now,
        CERT_DAYS,
    )
    .map_err(Error::internal)?;
    let sealed = vault
        .seal(key.kid.as_bytes(), &key.private_der)
        .map_err(Error::internal)?;
    diesel::insert_into(sk::signing_keys)
        .values((
            sk::kid.eq(&key.kid),
            sk::purpose.eq(purpose.as_str()),
            sk::alg.eq(alg.as_str()),
            sk::public_der.eq(&key.cert_der),
            sk::private_sealed.eq(&sealed),
            sk::state.eq(state),
            sk::created_at.eq(now),
            sk::activated_at.eq((state == "current").then_some(now)),
        ))
        .execute(conn)?;
    get(conn, &key.kid)
}

pub fn get(conn: &mut Db, kid: &str) -> Result<KeyRecord> {
    sk::signing_keys
        .find(kid)
        .select(KeyRecord::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| Error::not_found("signing key", kid))
}

/// OIDC keeps one key line per algorithm family (each client picks RS256/PS256, ES256 or
/// EdDSA); SAML has one line, whose algorithm changes at a rotation.
pub const OIDC_FAMILIES: [KeyAlg; 3] = [KeyAlg::Rsa2048, KeyAlg::EcP256, KeyAlg::Ed25519];

fn family(purpose: Purpose, alg: KeyAlg) -> Option<KeyAlg> {
    match purpose {
        Purpose::Saml => None,
        Purpose::Oidc => Some(alg),
    }
}

fn in_state(
    conn: &mut Db,
    purpose: Purpose,
    family: Option<KeyAlg>,
    state: &str,
) -> Result<Vec<KeyRecord>> {
    let mut q = sk::signing_keys
        .filter(sk::purpose.eq(purpose.as_str()))
        .filter(sk::state.eq(state))
        .select(KeyRecord::as_select())
        .order(sk::created_at.desc())
        .into_boxed();
    if let Some(alg) = family {
        q = q.filter(sk::alg.eq(alg.as_str()));
    }
    Ok(q.load(conn)?)
}

/// Makes sure a `current` and a `next` key exist (first start). Idempotent.
pub fn ensure(
    conn: &mut Db,
    vault: &AtRestKey,
    purpose: Purpose,
    alg: KeyAlg,
    now: i64,
) -> Result<()> {
    let fam = family(purpose, alg);
    if in_state(conn, purpose, fam, "current")?.is_empty() {
        create(conn, vault, purpose, alg, "current", now)?;
    }
    if in_state(conn, purpose, fam, "next")?.is_empty() {
        create(conn, vault, purpose, alg, "next", now)?;
    }
    Ok(())
}

/// [`ensure`] for every key line of `purpose` (SAML: the configured algorithm; OIDC: each
/// family).
pub fn ensure_all(
    conn: &mut Db,
    vault: &AtRestKey,
    purpose: Purpose,
    saml_alg: KeyAlg,
    now: i64,
) -> Result<()> {
    match purpose {
        Purpose::Saml => ensure(conn, vault, purpose, saml_alg, now),
        Purpose::Oidc => OIDC_FAMILIES
            .iter()
            .try_for_each(|alg| ensure(conn, vault, purpose, *alg, now)),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Rotation {
    pub current: String,
    pub previous: Option<String>,
    pub next: String,
    pub retired: Vec<String>,
}

/// One rotation step: next → current, current → previous (published for `grace` seconds more),
/// expired previous keys → retired, and a new next. Run inside one write transaction.
pub fn rotate(
    conn: &mut Db,
    vault: &AtRestKey,
    purpose: Purpose,
    alg: KeyAlg,
    grace: i64,
    now: i64,
) -> Result<Rotation> {
    let fam = family(purpose, alg);
    let had_current = !in_state(conn, purpose, fam, "current")?.is_empty();
    ensure(conn, vault, purpose, alg, now)?;
    if !had_current {
        // First keys: a current one and a published next one; promoting now would make a key
        // sign before anyone could have seen it.
        let current = in_state(conn, purpose, fam, "current")?
            .into_iter()
            .next()
            .map(|k| k.kid)
            .unwrap_or_default();
        let next = in_state(conn, purpose, fam, "next")?
            .into_iter()
            .next()
            .map(|k| k.kid)
            .unwrap_or_default();
        return Ok(Rotation {
            current,
            previous: None,
            next,
            retired: Vec::new(),
        });
    }
    let mut retired = Vec::new();
    for old in in_state(conn, purpose, fam, "previous")? {
        if old.retire_at.is_some_and(|t| t <= now) {
            set_state(conn, &old.kid, "retired", None, old.retire_at)?;
            retired.push(old.kid);
        }
    }
    let current = in_state(conn, purpose, fam, "current")?;
    let next = in_state(conn, purpose, fam, "next")?;
    let promoted = next
        .into_iter()
        .next()
        .ok_or_else(|| Error::internal("no next key after ensure"))?;
    let mut previous = None;
    for cur in current {
        set_state(
            conn,
            &cur.kid,
            "previous",
            cur.activated_at,
            Some(now + grace),
        )?;
        previous = Some(cur.kid);
    }
    set_state(conn, &promoted.kid, "current", Some(now), None)?;
    let new_next = create(conn, vault, purpose, alg, "next", now)?;
    Ok(Rotation {
        current: promoted.kid,
        previous,
        next: new_next.kid,
        retired,
    })
}

fn set_state(
    conn: &mut Db,
    kid: &str,
    state: &str,
    activated_at: Option<i64>,
    retire_at: Option<i64>,
) -> Result<()> {
    diesel::update(sk::signing_keys.find(kid))
        .set((
            sk::state.eq(state),
            sk::activated_at.eq(activated_at),
            sk::retire_at.eq(retire_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Keys to publish (metadata, JWKS): next, current, and previous ones still in their grace.
pub fn published(conn: &mut Db, purpose: Purpose, now: i64) -> Result<Vec<KeyRecord>> {
    let mut keys = in_state(conn, purpose, None, "current")?;
    keys.extend(in_state(conn, purpose, None, "next")?);
    keys.extend(
        in_state(conn, purpose, None, "previous")?
            .into_iter()
            .filter(|k| k.retire_at.is_none_or(|t| t > now)),
    );
    Ok(keys)
}

/// The private halves of the published RSA SAML keys, opened: an upstream IdP may encrypt
/// assertions for any key the hub's SP metadata listed.
pub fn decryption_keys(conn: &mut Db, vault: &AtRestKey, now: i64) -> Result<Vec<Vec<u8>>> {
    published(conn, Purpose::Saml, now)?
        .into_iter()
        .filter(|k| k.alg == KeyAlg::Rsa2048.as_str())
        .map(|k| {
            vault
                .open(k.kid.as_bytes(), &k.private_sealed)
                .map_err(|e| Error::Internal(format!("key {} cannot be opened: {e}", k.kid)))
        })
        .collect()
}

/// The key that signs now, opened with the at-rest key.
pub fn signer(conn: &mut Db, vault: &AtRestKey, purpose: Purpose) -> Result<Signer> {
    signer_in(conn, vault, purpose, None)
}

/// The kid that signs now for one algorithm family (cheap: no key is opened).
pub fn current_kid(conn: &mut Db, purpose: Purpose, alg: KeyAlg) -> Result<String> {
    sk::signing_keys
        .filter(sk::purpose.eq(purpose.as_str()))
        .filter(sk::state.eq("current"))
        .filter(sk::alg.eq(alg.as_str()))
        .order(sk::created_at.desc())
        .select(sk::kid)
        .first(conn)
        .optional()?
        .ok_or_else(|| {
            Error::Unavailable(format!(
                "no current {} {} signing key; run `fedhub keys rotate`",
                purpose.as_str(),
                alg.as_str()
            ))
        })
}

/// The current key of one algorithm family (OIDC: the client's chosen algorithm).
pub fn signer_for(
    conn: &mut Db,
    vault: &AtRestKey,
    purpose: Purpose,
    alg: KeyAlg,
) -> Result<Signer> {
    signer_in(conn, vault, purpose, Some(alg))
}

fn signer_in(
    conn: &mut Db,
    vault: &AtRestKey,
    purpose: Purpose,
    fam: Option<KeyAlg>,
) -> Result<Signer> {
    let key = in_state(conn, purpose, fam, "current")?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::Unavailable(format!(
                "no current {} {} signing key; run `fedhub keys rotate`",
                purpose.as_str(),
                fam.map(KeyAlg::as_str).unwrap_or_default()
            ))
        })?;
    let private_der = vault
        .open(key.kid.as_bytes(), &key.private_sealed)
        .map_err(|e| Error::Internal(format!("signing key {} cannot be opened ({e}); is keys.at_rest_key the one it was sealed with?", key.kid)))?;
    let alg = KeyAlg::parse(&key.alg)
        .ok_or_else(|| Error::internal(format!("unknown key algorithm {}", key.alg)))?;
    Ok(Signer {
        kid: key.kid,
        alg,
        cert_der: key.public_der,
        private_der,
    })
}

pub fn list(conn: &mut Db) -> Result<Vec<KeyRecord>> {
    Ok(sk::signing_keys
        .select(KeyRecord::as_select())
        .order((sk::purpose.asc(), sk::created_at.desc()))
        .load(conn)?)
}
