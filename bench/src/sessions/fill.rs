//! N live single sign-on sessions written in bulk, shaped as `login::sso::start` and
//! `login::sso::served` write them: `login::sso::session_id` of a fresh cookie as the id, the `Authn` JSON, the
//! connector's logout state in `upstream_session` (an OIDC provider's ID token, or a SAML
//! IdP's NameID and SessionIndex, serialised by the connectors' own types), and one or two
//! relying parties per session with their pairwise subject and SessionIndex.

use anyhow::{anyhow, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use diesel::prelude::*;
use fedhub::clock::{Clock, SystemClock};
use fedhub::store::schema::{sso_session_rps as sr, sso_sessions as s};
use fedhub::store::{Db, Store};
use fedhub_connectors::Authn;
use fedhub_metadata::AtRestKey;

use crate::directory::names::Rng;

/// Rows per INSERT: 10 columns, well under SQLite's 32,766 bound parameters.
const BATCH: usize = 1000;
/// INSERT statements per transaction.
const BATCHES_PER_TRANSACTION: usize = 20;

/// The level of assurance a national eID vouches for.
const ACR: &str = "http://eidas.europa.eu/LoA/substantial";
const SAML_IDP: &str = "https://idp.vneid.gov.example/saml/metadata";
const OIDC_ISSUER: &str = "https://sso.vneid.gov.example";
const HUB_ENTITY: &str = "https://fedhub.gov.example/saml/metadata";

/// What kind of sessions to write.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Share whose upstream is an OpenID provider (the ID token is kept for logout); the
    /// rest came from a SAML IdP (NameID and SessionIndex kept).
    pub oidc_share: f64,
    /// Share that has been answered to two relying parties; the rest to one.
    pub two_rp_share: f64,
    /// Live sessions, or sessions that expired more than a day ago (housekeeping's work).
    pub expired: bool,
}

/// What was written.
#[derive(Debug, Default)]
pub struct Written {
    pub sessions: usize,
    pub with_oidc_upstream: usize,
    pub served_rows: usize,
    /// Characters of `upstream_session`, OIDC and SAML sessions.
    pub oidc_upstream_chars: usize,
    pub saml_upstream_chars: usize,
    /// Cookie values of up to `keep_cookies` live sessions, spread over the whole set.
    pub cookies: Vec<String>,
}

/// Where the sessions point.
pub struct Targets<'a> {
    pub accounts: &'a [String],
    pub connector_id: &'a str,
    /// Relying parties a session may have been answered to.
    pub rp_ids: &'a [String],
    pub vault: &'a AtRestKey,
}

/// A multi-row INSERT on the connection's own engine.
macro_rules! batch_insert {
    ($conn:expr, $table:expr, $rows:expr) => {
        match $conn {
            Db::Sqlite(c) => diesel::insert_into($table).values($rows).execute(c),
            Db::Postgres(c) => diesel::insert_into($table).values($rows).execute(c),
        }
    };
}

struct Session {
    id: String,
    account_id: String,
    authn: String,
    created_at: i64,
    expires_at: i64,
    last_seen_at: i64,
    upstream_session: String,
    upstream_subject: String,
}

struct Served {
    session: usize,
    rp_id: String,
    subject: String,
    session_index: String,
    served_at: i64,
}

/// Writes `count` sessions of `shape`, account `i` for session `i` (wrapping around), as of
/// the time each transaction starts.
#[allow(clippy::too_many_arguments)]
pub fn sessions(
    store: &Store,
    to: &Targets<'_>,
    count: usize,
    shape: Shape,
    keep_cookies: usize,
    rng: &mut Rng,
) -> Result<Written> {
    if to.accounts.is_empty() || to.rp_ids.is_empty() {
        return Err(anyhow!(
            "no accounts or relying parties to point sessions at"
        ));
    }
    let ttl = 8 * 3600;
    let keep_every = (count / keep_cookies.max(1)).max(1);
    let mut written = Written::default();
    let mut done = 0;
    while done < count {
        let n = (count - done).min(BATCH * BATCHES_PER_TRANSACTION);
        // The time of each transaction: a fill of a million takes minutes.
        let now = SystemClock.now();
        let mut rows = Vec::with_capacity(n);
        let mut served = Vec::with_capacity(n * 2);
        for i in done..done + n {
            let cookie = fedhub::tokens::random_secret("")?;
            let account_id = to.accounts[i % to.accounts.len()].clone();
            // Live: signed in within the 8 h lifetime, seen in the last 10 minutes (of the
            // 30 min idle time: they stay live while a long fill and the logins run).
            // Expired: signed in two to three days ago.
            let created_at = if shape.expired {
                now - 2 * 86_400 - rng.below(86_400) as i64
            } else {
                now - rng.below(ttl as usize - 3600) as i64 - 60
            };
            let last_seen_at = if shape.expired {
                created_at + 600
            } else {
                now - rng.below(600) as i64
            };
            let authn = Authn {
                auth_time: created_at,
                acr: Some(ACR.into()),
                amr: vec!["pwd".into(), "otp".into()],
            };
            let oidc = rng.chance(shape.oidc_share);
            let (upstream_session, upstream_subject) = if oidc {
                let kept = oidc_upstream(rng, created_at)?;
                written.with_oidc_upstream += 1;
                written.oidc_upstream_chars += kept.0.len();
                kept
            } else {
                let kept = saml_upstream(rng)?;
                written.saml_upstream_chars += kept.0.len();
                kept
            };
            let id = fedhub::login::sso::session_id(&cookie);
            let rps = if rng.chance(shape.two_rp_share) { 2 } else { 1 };
            let first = rng.below(to.rp_ids.len());
            for k in 0..rps.min(to.rp_ids.len()) {
                let rp_id = &to.rp_ids[(first + k) % to.rp_ids.len()];
                served.push(Served {
                    session: rows.len(),
                    rp_id: rp_id.clone(),
                    subject: fedhub::login::resolve::pairwise_subject(to.vault, rp_id, &account_id),
                    session_index: format!("_si{}", uuid_simple(rng)),
                    served_at: created_at + 5 * k as i64,
                });
            }
            if !shape.expired
                && i.is_multiple_of(keep_every)
                && written.cookies.len() < keep_cookies
            {
                written.cookies.push(cookie);
            }
            rows.push(Session {
                id,
                account_id,
                authn: serde_json::to_string(&authn)?,
                created_at,
                expires_at: created_at + ttl,
                last_seen_at,
                upstream_session,
                upstream_subject,
            });
        }
        store.write(|c| insert(c, to.connector_id, &rows, &served))?;
        written.sessions += rows.len();
        written.served_rows += served.len();
        done += n;
    }
    Ok(written)
}

fn insert(
    c: &mut Db,
    connector_id: &str,
    rows: &[Session],
    served: &[Served],
) -> fedhub::Result<()> {
    for chunk in rows.chunks(BATCH) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    s::id.eq(&r.id),
                    s::account_id.eq(&r.account_id),
                    s::connector_id.eq(connector_id),
                    s::authn.eq(&r.authn),
                    s::created_at.eq(r.created_at),
                    s::expires_at.eq(r.expires_at),
                    s::last_seen_at.eq(r.last_seen_at),
                    s::upstream_session.eq(&r.upstream_session),
                    s::upstream_subject.eq(&r.upstream_subject),
                )
            })
            .collect();
        batch_insert!(c, s::table, values)?;
    }
    for chunk in served.chunks(BATCH) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    sr::sso_session_id.eq(&rows[r.session].id),
                    sr::rp_id.eq(&r.rp_id),
                    sr::subject.eq(&r.subject),
                    sr::session_index.eq(&r.session_index),
                    sr::served_at.eq(r.served_at),
                )
            })
            .collect();
        batch_insert!(c, sr::table, values)?;
    }
    Ok(())
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| (rng.next_u64() & 0xff) as u8).collect()
}

fn uuid_simple(rng: &mut Rng) -> String {
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

/// An OpenID provider's session as the OIDC connector keeps it: its RS256 ID token (header,
/// the claims a national eID sends, a 2048-bit signature), about 1 KB.
fn oidc_upstream(rng: &mut Rng, iat: i64) -> Result<(String, String)> {
    let sub = uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()).to_string();
    let header = serde_json::json!({
        "alg": "RS256",
        "kid": URL_SAFE_NO_PAD.encode(random_bytes(rng, 32)),
        "typ": "JWT",
    });
    let claims = serde_json::json!({
        "iss": OIDC_ISSUER,
        "sub": sub,
        "aud": "fedhub-gov",
        "exp": iat + 3600,
        "iat": iat,
        "auth_time": iat,
        "nonce": URL_SAFE_NO_PAD.encode(random_bytes(rng, 16)),
        "acr": ACR,
        "amr": ["pwd", "otp"],
        "sid": uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()).to_string(),
        "at_hash": URL_SAFE_NO_PAD.encode(random_bytes(rng, 16)),
        "name": "Nguyễn Thị Thu Hương",
        "national_id": format!("0{}", rng.digits(11)),
        "phone_number": format!("+849{}", rng.digits(8)),
    });
    let id_token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?),
        URL_SAFE_NO_PAD.encode(random_bytes(rng, 256)),
    );
    let kept = serde_json::to_string(&fedhub_connectors::oidc::UpstreamSession { id_token })?;
    Ok((kept, sub))
}

/// A SAML IdP's session as the SAML connector keeps it: a persistent NameID with its
/// qualifiers, and the SessionIndex.
fn saml_upstream(rng: &mut Rng) -> Result<(String, String)> {
    let name_id = fedhub_metadata::xml::response::NameId {
        value: format!("_{}", hex(&random_bytes(rng, 20))),
        format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
        name_qualifier: Some(SAML_IDP.into()),
        sp_name_qualifier: Some(HUB_ENTITY.into()),
    };
    let subject = name_id.value.clone();
    let kept = serde_json::to_string(&fedhub_connectors::saml::UpstreamSession {
        name_id,
        session_index: Some(format!("_{}", hex(&random_bytes(rng, 16)))),
    })?;
    Ok((kept, subject))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logout_state_reads_back_through_the_connectors_types() {
        let mut rng = Rng::new(1);
        let (kept, sub) = oidc_upstream(&mut rng, 1_795_737_600).unwrap();
        let back: fedhub_connectors::oidc::UpstreamSession = serde_json::from_str(&kept).unwrap();
        assert_eq!(back.id_token.split('.').count(), 3, "a JWS");
        assert!((950..1200).contains(&back.id_token.len()), "about 1 KB");
        let claims = URL_SAFE_NO_PAD
            .decode(back.id_token.split('.').nth(1).unwrap())
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
        assert_eq!(claims["sub"], sub.as_str());

        let (kept, sub) = saml_upstream(&mut rng).unwrap();
        let back: fedhub_connectors::saml::UpstreamSession = serde_json::from_str(&kept).unwrap();
        assert_eq!(back.name_id.value, sub);
        assert!(back.session_index.is_some());
    }
}
