//! Registering a SAML service provider from its metadata, and its per-SP settings.

use diesel::prelude::*;
use fedhub_identifiers::AgencyCode;
use fedhub_metadata::xml::{self, Limits, SpMetadata};
use samael::crypto::CertificateDer;
use serde::{Deserialize, Serialize};

use super::RelyingParty;
use crate::error::{Error, Result};
use crate::store::schema::relying_parties::dsl as rp;
use crate::store::Db;

/// What the hub signs in its answers to this SP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SignWhat {
    Response,
    Assertion,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NameIdFormat {
    /// A stable identifier for this person at this SP only (the default).
    Persistent,
    /// A new identifier at every sign-in.
    Transient,
    /// The person's email address.
    Email,
}

/// Attributes an SP may receive; see docs for their URIs and friendly names.
pub const ATTRIBUTES: &[&str] = &[
    "national_id",
    "name",
    "phone",
    "email",
    "account_type",
    "agency_code",
    "agency_name",
    "roles",
    "admin_level",
];

/// Per-SP settings, stored as JSON with the relying party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlSettings {
    /// The metadata as registered (the last good copy when fetched by URL).
    pub metadata_xml: String,
    /// Where the metadata is refreshed from, if it was registered by URL.
    pub metadata_url: Option<String>,
    pub sign: SignWhat,
    /// Encrypt the assertion (only possible when the metadata has an encryption key).
    pub encrypt_assertion: bool,
    pub name_id_format: NameIdFormat,
    /// Names from [`ATTRIBUTES`] released to this SP.
    pub release: Vec<String>,
    /// When the metadata was last fetched or loaded (Unix seconds).
    pub metadata_loaded_at: i64,
}

impl SamlSettings {
    pub fn metadata(&self) -> Result<SpMetadata> {
        xml::sp::parse(self.metadata_xml.as_bytes(), Limits::default())
            .map_err(|e| Error::Internal(format!("stored SP metadata no longer parses: {e}")))
    }
}

/// A registration request, as the CLI and the admin API give it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlRegistration {
    #[serde(default)]
    pub metadata_xml: String,
    #[serde(default)]
    pub metadata_url: Option<String>,
    pub owner_agency_code: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub sign: Option<SignWhat>,
    #[serde(default)]
    pub encrypt_assertion: Option<bool>,
    #[serde(default)]
    pub name_id_format: Option<NameIdFormat>,
    #[serde(default)]
    pub release: Option<Vec<String>>,
    /// Only activated members may sign in (default true).
    #[serde(default)]
    pub require_activated_membership: Option<bool>,
}

impl SamlRegistration {
    /// Checks everything that does not need the database.
    /// `federation` holds the certificates SP metadata must be signed with (none: unsigned is fine).
    pub fn validate(
        &self,
        now: i64,
        federation: &[CertificateDer],
    ) -> Result<(SpMetadata, AgencyCode, SamlSettings)> {
        let (md, stored) = parse_metadata(self.metadata_xml.as_bytes(), federation)?;
        if md.valid_until.is_some_and(|t| t <= now) {
            return Err(Error::invalid(
                "metadata",
                "validUntil is in the past: the SP must publish fresh metadata",
            ));
        }
        let owner = AgencyCode::parse(&self.owner_agency_code)
            .map_err(|e| Error::invalid("owner_agency_code", e.rule))?;
        // Encrypt by default whenever the SP publishes an encryption key.
        let encrypt = match self.encrypt_assertion {
            Some(true) if md.encryption_certs.is_empty() => {
                return Err(Error::invalid(
                    "encrypt_assertion",
                    "the metadata has no encryption key",
                ))
            }
            Some(choice) => choice,
            None => !md.encryption_certs.is_empty(),
        };
        if encrypt
            && !md
                .encryption_certs
                .first()
                .is_some_and(|c| fedhub_metadata::xml::encrypt::can_encrypt_for(c.der_data()))
        {
            return Err(Error::invalid(
                "encrypt_assertion",
                "the metadata's encryption key is not an RSA key the hub can encrypt for; publish one, or register with encryption off (--encrypt false)",
            ));
        }
        let release = match &self.release {
            Some(names) => {
                for n in names {
                    if !ATTRIBUTES.contains(&n.as_str()) {
                        return Err(Error::invalid(
                            "release",
                            format!("unknown attribute {n:?}; known: {}", ATTRIBUTES.join(", ")),
                        ));
                    }
                }
                names.clone()
            }
            None => ATTRIBUTES.iter().map(|s| s.to_string()).collect(),
        };
        let settings = SamlSettings {
            metadata_xml: stored,
            metadata_url: self.metadata_url.clone(),
            sign: self.sign.unwrap_or(SignWhat::Both),
            encrypt_assertion: encrypt,
            name_id_format: self.name_id_format.unwrap_or(NameIdFormat::Persistent),
            release,
            metadata_loaded_at: now,
        };
        Ok((md, owner, settings))
    }
}

/// SP metadata under the deployment's policy: signed by the federation when one is
/// configured. Returns the document to store (only the signed part when signed).
fn parse_metadata(xml: &[u8], federation: &[CertificateDer]) -> Result<(SpMetadata, String)> {
    let parsed = if federation.is_empty() {
        xml::sp::parse(xml, Limits::default())
            .map(|md| (md, String::from_utf8_lossy(xml).into_owned()))
    } else {
        xml::sp::parse_signed(xml, federation, Limits::default())
    };
    parsed.map_err(|e| Error::invalid("metadata", e.to_string()))
}

/// Registers an SP. Its entityID must be new and its owner agency registered.
pub fn add(conn: &mut Db, reg: &SamlRegistration, now: i64) -> Result<RelyingParty> {
    add_under(conn, reg, &[], now)
}

/// [`add`] where the metadata must be signed with one of `federation`'s certificates.
pub fn add_under(
    conn: &mut Db,
    reg: &SamlRegistration,
    federation: &[CertificateDer],
    now: i64,
) -> Result<RelyingParty> {
    let (md, owner, settings) = reg.validate(now, federation)?;
    let new = super::NewRelyingParty {
        protocol: "saml",
        entity_id: &md.entity_id,
        id_field: "entity_id",
        display_name: reg.display_name.as_deref(),
        owner: &owner,
        config: serde_json::to_string(&settings).map_err(Error::internal)?,
        requires_membership: reg.require_activated_membership.unwrap_or(true),
    };
    super::insert(conn, new, now)
}

/// The SAML settings of a registered SP.
pub fn settings(rp: &RelyingParty) -> Result<SamlSettings> {
    if rp.protocol != "saml" {
        return Err(Error::invalid(
            "relying_party",
            format!("{} is not a SAML service provider", rp.entity_id),
        ));
    }
    serde_json::from_str(&rp.config)
        .map_err(|e| Error::Internal(format!("stored settings of {}: {e}", rp.entity_id)))
}

/// Seconds in an XML Schema duration as `cacheDuration` uses it (`P1D`, `PT6H`, `PT30M`,
/// `P1DT2H30M15S`); `None` for anything else (years and months are not fixed lengths).
pub fn parse_duration(s: &str) -> Option<i64> {
    let rest = s.trim().strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = 0i64;
    if !days.is_empty() {
        total += days.strip_suffix('D')?.parse::<i64>().ok()? * 86_400;
    }
    if let Some(mut t) = time {
        if t.is_empty() {
            return None;
        }
        for (unit, secs) in [('H', 3600), ('M', 60), ('S', 1)] {
            if let Some(i) = t.find(unit) {
                let n: f64 = t[..i].parse().ok()?;
                total += (n * secs as f64) as i64;
                t = &t[i + 1..];
            }
        }
        if !t.is_empty() {
            return None;
        }
    }
    Some(total)
}

/// When metadata loaded at `loaded_at` should be fetched again: after its cacheDuration
/// (default a day), and at the latest an hour before its validUntil.
pub fn refresh_at(md: &SpMetadata, loaded_at: i64) -> i64 {
    let by_cache = loaded_at
        + md.cache_duration
            .as_deref()
            .and_then(parse_duration)
            .unwrap_or(86_400)
            .max(300);
    match md.valid_until {
        Some(until) => by_cache.min(until - 3600),
        None => by_cache,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshOutcome {
    pub entity_id: String,
    /// `updated`, `unchanged`, `kept` (the fetch or the new copy failed) or `not_due`.
    pub result: String,
    pub detail: Option<String>,
}

/// SAML SPs registered by URL whose metadata is due for a refresh at `now`.
pub fn due_for_refresh(conn: &mut Db, now: i64) -> Result<Vec<(RelyingParty, SamlSettings)>> {
    let mut due = Vec::new();
    for rp in super::list(conn)?
        .into_iter()
        .filter(|r| r.protocol == "saml")
    {
        let settings = settings(&rp)?;
        if settings.metadata_url.is_none() {
            continue;
        }
        let md = settings.metadata()?;
        if refresh_at(&md, settings.metadata_loaded_at) <= now {
            due.push((rp, settings));
        }
    }
    Ok(due)
}

/// Applies a freshly fetched copy: it must parse, pass every metadata rule, name the same
/// entityID, and not be expired; otherwise the last good copy stays.
pub fn apply_refresh(
    conn: &mut Db,
    rp: &RelyingParty,
    fetched: std::result::Result<Vec<u8>, Error>,
    federation: &[CertificateDer],
    now: i64,
) -> Result<RefreshOutcome> {
    let mut settings = settings(rp)?;
    let outcome = |result: &str, detail: Option<String>| RefreshOutcome {
        entity_id: rp.entity_id.clone(),
        result: result.into(),
        detail,
    };
    let checked = fetched.and_then(|bytes| {
        let text = String::from_utf8(bytes).map_err(|_| Error::invalid("metadata", "not UTF-8"))?;
        let (md, text) = parse_metadata(text.as_bytes(), federation)?;
        if md.entity_id != rp.entity_id {
            return Err(Error::invalid(
                "metadata",
                format!("the document is for {}, not {}", md.entity_id, rp.entity_id),
            ));
        }
        if md.valid_until.is_some_and(|t| t <= now) {
            return Err(Error::invalid("metadata", "validUntil is in the past"));
        }
        // The SP's answers are encrypted for its key: a copy without a usable one would break
        // every sign-in, so it does not replace the good one.
        if settings.encrypt_assertion
            && !md
                .encryption_certs
                .first()
                .is_some_and(|c| fedhub_metadata::xml::encrypt::can_encrypt_for(c.der_data()))
        {
            return Err(Error::invalid(
                "metadata",
                "no RSA encryption key any more, and assertions to this SP are encrypted",
            ));
        }
        Ok(text)
    });
    let result = match checked {
        Ok(text) => {
            let changed = text != settings.metadata_xml;
            settings.metadata_xml = text;
            settings.metadata_loaded_at = now;
            diesel::update(rp::relying_parties.find(&rp.id))
                .set((
                    rp::config.eq(serde_json::to_string(&settings).map_err(Error::internal)?),
                    rp::updated_at.eq(now),
                ))
                .execute(conn)?;
            if changed {
                outcome("updated", None)
            } else {
                outcome("unchanged", None)
            }
        }
        Err(e) => outcome("kept", Some(e.to_string())),
    };
    Ok(result)
}
