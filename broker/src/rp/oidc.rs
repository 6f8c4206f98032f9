//! Registering an OpenID Connect client (a provincial gateway or a portal subsystem). The
//! secret is generated, shown once and stored as a hash; redirect URIs are matched exactly.

use fedhub_identifiers::AgencyCode;
use serde::{Deserialize, Serialize};

use super::RelyingParty;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::tokens::{random_secret, sha256_hex};

/// Scopes a client may be allowed; each releases its claims (see docs).
pub const SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "phone",
    "national_id",
    "agency",
    "roles",
    "offline_access",
];
pub const SIGNING_ALGS: &[&str] = &["RS256", "ES256", "EdDSA", "PS256"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SubjectType {
    /// A different `sub` for the same person at each client (the default).
    Pairwise,
    /// The same `sub` everywhere.
    Public,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClaimProfile {
    /// OpenID standard claims plus fedhub's (`national_id`, `agency_code`, ...).
    Standard,
    /// Also the national portal's names (`SoDinhDanh`, `HoVaTen`, `SoDienThoai`, ...).
    Portal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AccessTokenFormat {
    /// RFC 9068 JWT access tokens.
    Jwt,
    /// Random handles, checked through introspection.
    Opaque,
}

/// How a client proves who it is at the token, introspection and revocation endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with client_id and secret (the default).
    #[default]
    ClientSecretBasic,
    /// client_id and client_secret in the form body.
    ClientSecretPost,
    /// A JWT signed with the client's own key (registered as a JWK Set); no secret exists.
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
    pub fn parse(s: &str) -> Option<AuthMethod> {
        [
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
            AuthMethod::PrivateKeyJwt,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// Per-client settings, stored as JSON with the relying party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// SHA-256 of the client secret (hex); the secret itself is never stored.
    pub client_secret_sha256: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub scopes: Vec<String>,
    pub signing_alg: String,
    pub subject_type: SubjectType,
    pub claim_profile: ClaimProfile,
    pub access_token_format: AccessTokenFormat,
    /// Overrides of the hub's token lifetimes, in seconds.
    pub access_token_ttl: Option<u64>,
    pub refresh_token_ttl: Option<u64>,
    #[serde(default)]
    pub token_endpoint_auth_method: AuthMethod,
    /// The client's public keys (a JWK Set) for `private_key_jwt`.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
}

/// A registration request, from the CLI or the admin API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcRegistration {
    /// Chosen client_id (default: generated).
    #[serde(default)]
    pub client_id: Option<String>,
    pub owner_agency_code: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub signing_alg: Option<String>,
    #[serde(default)]
    pub subject_type: Option<SubjectType>,
    #[serde(default)]
    pub claim_profile: Option<ClaimProfile>,
    #[serde(default)]
    pub access_token_format: Option<AccessTokenFormat>,
    #[serde(default)]
    pub access_token_ttl: Option<u64>,
    #[serde(default)]
    pub refresh_token_ttl: Option<u64>,
    #[serde(default)]
    pub require_activated_membership: Option<bool>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<AuthMethod>,
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
}

/// Redirect URIs are compared byte for byte later, so they are checked strictly now: absolute,
/// https (http only to loopback, as RFC 8252 allows native apps), no fragment, no wildcard.
fn check_redirect(field: &str, uri: &str) -> Result<()> {
    let u = url::Url::parse(uri)
        .map_err(|e| Error::invalid(field, format!("{uri:?} is not an absolute URL ({e})")))?;
    if u.fragment().is_some() {
        return Err(Error::invalid(
            field,
            format!("{uri:?} must not have a #fragment"),
        ));
    }
    if uri.contains('*') {
        return Err(Error::invalid(
            field,
            format!("{uri:?}: wildcards are not allowed, register each URI"),
        ));
    }
    let ok = match u.scheme() {
        "https" => u.host().is_some(),
        "http" => fedhub_metadata::xml::sp::is_loopback(&u),
        _ => false,
    };
    if !ok {
        return Err(Error::invalid(
            field,
            format!("{uri:?} must be https:// (http only on 127.0.0.1/localhost)"),
        ));
    }
    Ok(())
}

/// A JWK Set of public signing keys the hub can verify with.
fn check_jwks(set: &serde_json::Value) -> Result<()> {
    let keys = set
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| Error::invalid("jwks", "must be a JWK Set: {\"keys\": [...]}"))?;
    if keys.is_empty() || keys.len() > 10 {
        return Err(Error::invalid("jwks", "must hold 1 to 10 keys"));
    }
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            if k.get(private).is_some() {
                return Err(Error::invalid(
                    "jwks",
                    format!("a key holds the private or symmetric member {private:?}: register public keys only"),
                ));
            }
        }
        match k.get("kty").and_then(|v| v.as_str()) {
            Some("RSA" | "EC" | "OKP") => {}
            other => {
                return Err(Error::invalid(
                    "jwks",
                    format!("key type {other:?} is not RSA, EC or OKP"),
                ))
            }
        }
    }
    Ok(())
}

fn check_client_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(Error::invalid(
            "client_id",
            "1-64 ASCII letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(())
}

impl OidcRegistration {
    /// Checks everything that does not need the database; returns the client id and the
    /// settings without the secret hash.
    fn validate(&self) -> Result<(String, AgencyCode, Vec<String>)> {
        let client_id = match &self.client_id {
            Some(id) => {
                check_client_id(id.trim())?;
                id.trim().to_string()
            }
            None => format!(
                "client-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
        };
        let owner = AgencyCode::parse(&self.owner_agency_code)
            .map_err(|e| Error::invalid("owner_agency_code", e.rule))?;
        if self.redirect_uris.is_empty() {
            return Err(Error::invalid(
                "redirect_uris",
                "at least one redirect URI is required",
            ));
        }
        for uri in &self.redirect_uris {
            check_redirect("redirect_uris", uri)?;
        }
        for uri in &self.post_logout_redirect_uris {
            check_redirect("post_logout_redirect_uris", uri)?;
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            check_redirect("backchannel_logout_uri", uri)?;
        }
        let scopes = self
            .scopes
            .clone()
            .unwrap_or_else(|| vec!["openid".into(), "profile".into()]);
        for s in &scopes {
            if !SCOPES.contains(&s.as_str()) {
                return Err(Error::invalid(
                    "scopes",
                    format!("unknown scope {s:?}; known: {}", SCOPES.join(", ")),
                ));
            }
        }
        if !scopes.iter().any(|s| s == "openid") {
            return Err(Error::invalid("scopes", "must include openid"));
        }
        if let Some(alg) = &self.signing_alg {
            if !SIGNING_ALGS.contains(&alg.as_str()) {
                return Err(Error::invalid(
                    "signing_alg",
                    format!("{alg:?} is not one of {}", SIGNING_ALGS.join(", ")),
                ));
            }
        }
        let method = self.token_endpoint_auth_method.unwrap_or_default();
        match (&self.jwks, method) {
            (None, AuthMethod::PrivateKeyJwt) => {
                return Err(Error::invalid(
                    "jwks",
                    "private_key_jwt needs the client's public keys (a JWK Set)",
                ))
            }
            (Some(set), _) => check_jwks(set)?,
            (None, _) => {}
        }
        for (field, ttl) in [
            ("access_token_ttl", self.access_token_ttl),
            ("refresh_token_ttl", self.refresh_token_ttl),
        ] {
            if ttl == Some(0) {
                return Err(Error::invalid(field, "must be longer than zero"));
            }
        }
        Ok((client_id, owner, scopes))
    }
}

/// A registered client and its secret, which is shown this once (none for private_key_jwt).
#[derive(Debug, Serialize)]
pub struct Registered {
    #[serde(flatten)]
    pub rp: RelyingParty,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// Registers a client. Its client_id must be new and its owner agency registered.
pub fn add(conn: &mut Db, reg: &OidcRegistration, now: i64) -> Result<Registered> {
    let (client_id, owner, scopes) = reg.validate()?;
    let method = reg.token_endpoint_auth_method.unwrap_or_default();
    let secret = match method {
        AuthMethod::PrivateKeyJwt => None,
        _ => Some(random_secret("fhs_")?),
    };
    let settings = OidcSettings {
        client_secret_sha256: secret.as_deref().map(sha256_hex).unwrap_or_default(),
        redirect_uris: reg.redirect_uris.clone(),
        post_logout_redirect_uris: reg.post_logout_redirect_uris.clone(),
        backchannel_logout_uri: reg.backchannel_logout_uri.clone(),
        scopes,
        signing_alg: reg.signing_alg.clone().unwrap_or_else(|| "RS256".into()),
        subject_type: reg.subject_type.unwrap_or(SubjectType::Pairwise),
        claim_profile: reg.claim_profile.unwrap_or(ClaimProfile::Standard),
        access_token_format: reg.access_token_format.unwrap_or(AccessTokenFormat::Jwt),
        access_token_ttl: reg.access_token_ttl,
        refresh_token_ttl: reg.refresh_token_ttl,
        token_endpoint_auth_method: method,
        jwks: reg.jwks.clone(),
    };
    let new = super::NewRelyingParty {
        protocol: "oidc",
        entity_id: &client_id,
        id_field: "client_id",
        display_name: reg.display_name.as_deref(),
        owner: &owner,
        config: serde_json::to_string(&settings).map_err(Error::internal)?,
        requires_membership: reg.require_activated_membership.unwrap_or(true),
    };
    let rp = super::insert(conn, new, now)?;
    Ok(Registered {
        rp,
        client_secret: secret,
    })
}

/// The OIDC settings of a registered client.
pub fn settings(rp: &RelyingParty) -> Result<OidcSettings> {
    if rp.protocol != "oidc" {
        return Err(Error::invalid(
            "relying_party",
            format!("{} is not an OIDC client", rp.entity_id),
        ));
    }
    serde_json::from_str(&rp.config)
        .map_err(|e| Error::Internal(format!("stored settings of {}: {e}", rp.entity_id)))
}

/// Checks a presented client secret against the stored hash. The hashes are compared without
/// early exit (timing would only reveal hash bytes, but there is no reason to leak even that).
pub fn secret_matches(settings: &OidcSettings, presented: &str) -> bool {
    if settings.client_secret_sha256.is_empty() {
        return false;
    }
    let presented = sha256_hex(presented);
    let (a, b) = (
        presented.as_bytes(),
        settings.client_secret_sha256.as_bytes(),
    );
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
