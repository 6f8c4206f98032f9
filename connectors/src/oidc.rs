//! The OIDC connector: the hub as a Relying Party of the national identity provider (or any
//! OpenID Provider). Authorization code flow with PKCE S256, `state` (the login handle) and
//! `nonce`; the ID token is verified with the hub's own JOSE verifier (algorithm allow-list,
//! keys from the provider's JWKS), then userinfo is read and the claims are mapped, including
//! the national portal's names (`SoDinhDanh`, `HoVaTen`, ...). The HTTP client and the time
//! are passed in; the client must not follow redirects.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use fedhub_metadata::jose::{self, JwsAlg};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Authn, ConnectorError, UpstreamIdentity};

/// Clock difference tolerated with the provider, in seconds.
/// Largest answer read from the provider.
const MAX_BODY: usize = 256 * 1024;

/// How the provider's claims are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClaimNames {
    /// OpenID standard names plus `national_id`, `tax_code`, `account_type`.
    Standard,
    /// The national portal's names (`SoDinhDanh`, `HoVaTen`, ...), standard ones as fallback.
    #[default]
    Portal,
}

/// A configured OIDC upstream (the secret already opened by the caller).
#[derive(Clone)]
pub struct OidcUpstream {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub claim_names: ClaimNames,
    /// Where the provider sends the browser back: `<hub>/connectors/<id>/callback`.
    pub redirect_uri: String,
    /// Seconds of clock difference tolerated on the ID token's `exp` and `iat`.
    pub clock_skew: i64,
}

impl std::fmt::Debug for OidcUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcUpstream")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The parts of the provider's discovery document the hub uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// What the connector keeps with the login while the person is at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    pub nonce: String,
    pub code_verifier: String,
}

/// The provider's answer at the callback, as received.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

fn random(len: usize) -> Result<String, ConnectorError> {
    let mut b = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| ConnectorError::Config("random generator failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// https everywhere; plain http only to the loopback interface (tests, local demos).
pub fn check_endpoint(what: &str, url: &str) -> Result<url::Url, ConnectorError> {
    let u = url::Url::parse(url)
        .map_err(|e| ConnectorError::Invalid(format!("{what} {url:?} is not a URL: {e}")))?;
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match u.scheme() {
        "https" => Ok(u),
        "http" if loopback => Ok(u),
        _ => Err(ConnectorError::Invalid(format!(
            "{what} {url:?} must be https://"
        ))),
    }
}

async fn read_json(res: reqwest::Response, what: &str) -> Result<Value, ConnectorError> {
    let status = res.status();
    let bytes = res
        .bytes()
        .await
        .map_err(|e| ConnectorError::Unavailable(format!("{what}: {e}")))?;
    if bytes.len() > MAX_BODY {
        return Err(ConnectorError::Invalid(format!("{what}: answer too large")));
    }
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|_| ConnectorError::Invalid(format!("{what}: answer is not JSON ({status})")))?;
    if !status.is_success() {
        let err = v.get("error").and_then(Value::as_str).unwrap_or("error");
        return Err(ConnectorError::Refused(format!(
            "{what} answered {status}: {err}"
        )));
    }
    Ok(v)
}

fn unavailable(what: &str, e: reqwest::Error) -> ConnectorError {
    let mut msg = e.to_string();
    if let Some(i) = msg.find(" for url") {
        msg.truncate(i);
    }
    if e.is_timeout() {
        msg = "timed out".into();
    }
    ConnectorError::Unavailable(format!("{what}: {msg}"))
}

/// Reads and checks the provider's discovery document (its `issuer` must be the configured
/// one exactly, OIDC Discovery 4.3).
pub async fn discover(
    http: &reqwest::Client,
    issuer: &str,
    timeout: Duration,
) -> Result<ProviderMetadata, ConnectorError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    check_endpoint("issuer", &url)?;
    let res = http
        .get(&url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| unavailable("discovery", e))?;
    let v = read_json(res, "discovery").await?;
    let meta: ProviderMetadata = serde_json::from_value(v)
        .map_err(|e| ConnectorError::Invalid(format!("discovery document: {e}")))?;
    if meta.issuer != issuer {
        return Err(ConnectorError::Invalid(format!(
            "the provider calls itself {:?}, not {issuer:?}",
            meta.issuer
        )));
    }
    for (what, u) in [
        ("authorization_endpoint", &meta.authorization_endpoint),
        ("token_endpoint", &meta.token_endpoint),
        ("jwks_uri", &meta.jwks_uri),
    ] {
        check_endpoint(what, u)?;
    }
    Ok(meta)
}

/// The provider's keys (a JWK Set).
pub async fn fetch_jwks(
    http: &reqwest::Client,
    meta: &ProviderMetadata,
    timeout: Duration,
) -> Result<Vec<Value>, ConnectorError> {
    let res = http
        .get(&meta.jwks_uri)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| unavailable("jwks", e))?;
    let v = read_json(res, "jwks").await?;
    v.get("keys")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ConnectorError::Invalid("jwks: no keys".into()))
}

/// Where to send the browser, and what to keep until it comes back. `state` is the login's
/// handle (it comes back to the callback and finds the login).
pub fn begin(
    up: &OidcUpstream,
    meta: &ProviderMetadata,
    state: &str,
    login_hint: Option<&str>,
) -> Result<(String, PendingLogin), ConnectorError> {
    let nonce = random(24)?;
    let code_verifier = random(48)?;
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        code_verifier.as_bytes(),
    ));
    let mut url = check_endpoint("authorization_endpoint", &meta.authorization_endpoint)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &up.client_id)
            .append_pair("redirect_uri", &up.redirect_uri)
            .append_pair("scope", &up.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(h) = login_hint {
            q.append_pair("login_hint", h);
        }
    }
    Ok((
        url.to_string(),
        PendingLogin {
            nonce,
            code_verifier,
        },
    ))
}

/// The token endpoint's answer.
#[derive(Clone)]
pub struct TokenAnswer {
    pub id_token: String,
    pub access_token: Option<String>,
}

impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenAnswer")
    }
}

/// Checks the callback and redeems the code (once: a code cannot be tried twice).
pub async fn exchange(
    http: &reqwest::Client,
    up: &OidcUpstream,
    meta: &ProviderMetadata,
    callback: &Callback,
    pending: &PendingLogin,
    timeout: Duration,
) -> Result<TokenAnswer, ConnectorError> {
    if let Some(err) = &callback.error {
        return Err(ConnectorError::Refused(format!(
            "{err}{}",
            callback
                .error_description
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        )));
    }
    // RFC 9207: when present (or promised), iss names the provider that answered.
    match &callback.iss {
        Some(iss) if *iss != meta.issuer => {
            return Err(ConnectorError::Invalid(
                "the answer comes from another provider (iss)".into(),
            ))
        }
        None if meta.authorization_response_iss_parameter_supported => {
            return Err(ConnectorError::Invalid(
                "the answer lacks the iss parameter the provider promised".into(),
            ))
        }
        _ => {}
    }
    let code = callback
        .code
        .as_deref()
        .ok_or_else(|| ConnectorError::Invalid("no authorization code".into()))?;
    let basic = STANDARD.encode(format!(
        "{}:{}",
        form_encode(&up.client_id),
        form_encode(&up.client_secret)
    ));
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
        form_encode(code),
        form_encode(&up.redirect_uri),
        form_encode(&pending.code_verifier)
    );
    let res = http
        .post(&meta.token_endpoint)
        .timeout(timeout)
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| unavailable("token endpoint", e))?;
    let tokens = read_json(res, "token endpoint").await?;
    let id_token = tokens
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or_else(|| ConnectorError::Invalid("no ID token in the token answer".into()))?
        .to_string();
    Ok(TokenAnswer {
        id_token,
        access_token: tokens
            .get("access_token")
            .and_then(Value::as_str)
            .map(String::from),
    })
}

/// Verifies the ID token with `jwks`, reads userinfo and maps the claims.
#[allow(clippy::too_many_arguments)]
pub async fn identity(
    http: &reqwest::Client,
    up: &OidcUpstream,
    meta: &ProviderMetadata,
    jwks: &[Value],
    tokens: &TokenAnswer,
    pending: &PendingLogin,
    connector_id: &str,
    now: i64,
    timeout: Duration,
) -> Result<UpstreamIdentity, ConnectorError> {
    let id_token = tokens.id_token.as_str();
    let claims = verify_id_token(up, meta, jwks, id_token, &pending.nonce, now)?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or_else(|| ConnectorError::Invalid("the ID token has no sub".into()))?
        .to_string();
    let mut all = claims.clone();
    if let (Some(endpoint), Some(access)) = (
        meta.userinfo_endpoint.as_deref(),
        tokens.access_token.as_deref(),
    ) {
        check_endpoint("userinfo_endpoint", endpoint)?;
        let res = http
            .get(endpoint)
            .timeout(timeout)
            .bearer_auth(access)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| unavailable("userinfo", e))?;
        let info = read_json(res, "userinfo").await?;
        // OIDC Core 5.3.2: userinfo about someone else must not be used.
        if info.get("sub").and_then(Value::as_str) != Some(sub.as_str()) {
            return Err(ConnectorError::Invalid(
                "userinfo is about another subject".into(),
            ));
        }
        if let Value::Object(map) = info {
            for (k, v) in map {
                all.entry(k).or_insert(v);
            }
        }
    }
    let authn = Authn {
        auth_time: claims
            .get("auth_time")
            .and_then(Value::as_i64)
            .unwrap_or(now),
        acr: claims.get("acr").and_then(Value::as_str).map(String::from),
        amr: claims
            .get("amr")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
    };
    Ok(UpstreamIdentity {
        connector: connector_id.to_string(),
        issuer: meta.issuer.clone(),
        subject: sub,
        attributes: map_claims(&all, up.claim_names),
        authn,
        // Kept with the SSO session: the id_token_hint of a later logout at the provider.
        session: serde_json::to_string(&UpstreamSession {
            id_token: tokens.id_token.clone(),
        })
        .ok(),
    })
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// OIDC Core 3.1.3.7: signature by a provider key with an allowed algorithm, iss, aud (and
/// azp), exp, iat, nonce.
pub fn verify_id_token(
    up: &OidcUpstream,
    meta: &ProviderMetadata,
    jwks: &[Value],
    id_token: &str,
    nonce: &str,
    now: i64,
) -> Result<serde_json::Map<String, Value>, ConnectorError> {
    let verified = jose::verify(id_token, jwks, &JwsAlg::ALL)
        .map_err(|e| ConnectorError::Invalid(format!("ID token: {e}")))?;
    let c = verified.claims;
    let s = |k: &str| c.get(k).and_then(Value::as_str);
    if s("iss") != Some(meta.issuer.as_str()) {
        return Err(ConnectorError::Invalid(
            "ID token from another issuer".into(),
        ));
    }
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => *a == up.client_id,
        Some(Value::Array(list)) => {
            list.iter()
                .any(|a| a.as_str() == Some(up.client_id.as_str()))
                && (list.len() == 1 || s("azp") == Some(up.client_id.as_str()))
        }
        _ => false,
    };
    if !aud_ok {
        return Err(ConnectorError::Invalid(
            "ID token for another audience".into(),
        ));
    }
    let exp = c.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp.saturating_add(up.clock_skew) <= now {
        return Err(ConnectorError::Invalid("ID token expired".into()));
    }
    if c.get("iat")
        .and_then(Value::as_i64)
        .is_none_or(|iat| iat > now.saturating_add(up.clock_skew))
    {
        return Err(ConnectorError::Invalid(
            "ID token issued in the future or without iat".into(),
        ));
    }
    if s("nonce") != Some(nonce) {
        return Err(ConnectorError::Invalid(
            "ID token nonce does not match this sign-in (replayed?)".into(),
        ));
    }
    Ok(c)
}

/// The hub's attribute names from the provider's claims.
pub fn map_claims(
    claims: &serde_json::Map<String, Value>,
    names: ClaimNames,
) -> BTreeMap<String, Vec<String>> {
    let text = |k: &str| -> Option<String> {
        match claims.get(k)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let pick = |portal: &str, standard: &str| -> Option<String> {
        match names {
            ClaimNames::Portal => text(portal).or_else(|| text(standard)),
            ClaimNames::Standard => text(standard),
        }
    };
    let mut out = BTreeMap::new();
    let mut put = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            out.insert(name.to_string(), vec![v]);
        }
    };
    put("national_id", pick("SoDinhDanh", "national_id"));
    put("name", pick("HoVaTen", "name"));
    put("phone", pick("SoDienThoai", "phone_number"));
    put("email", pick("ThuDienTu", "email"));
    put("tax_code", pick("MaSoThue", "tax_code"));
    put(
        "account_type",
        match names {
            // The portal's codes: 1 citizen, 2 organisation, 3 agency official.
            ClaimNames::Portal => text("LoaiTaiKhoan")
                .map(|t| match t.as_str() {
                    "1" => "citizen".to_string(),
                    "2" => "organisation".to_string(),
                    "3" => "agency".to_string(),
                    other => other.to_string(),
                })
                .or_else(|| text("account_type")),
            ClaimNames::Standard => text("account_type"),
        },
    );
    out
}

/// Kept with the SSO session a provider started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamSession {
    pub id_token: String,
}

/// RP-initiated logout at the provider (OpenID Connect RP-Initiated Logout 1.0), when it
/// offers it: the browser comes back to `post_logout_redirect_uri` with `state`.
pub fn end_session_url(
    up: &OidcUpstream,
    meta: &ProviderMetadata,
    id_token_hint: Option<&str>,
    post_logout_redirect_uri: &str,
    state: &str,
) -> Option<String> {
    let mut url = check_endpoint(
        "end_session_endpoint",
        meta.end_session_endpoint.as_deref()?,
    )
    .ok()?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(h) = id_token_hint {
            q.append_pair("id_token_hint", h);
        }
        q.append_pair("client_id", &up.client_id);
        q.append_pair("post_logout_redirect_uri", post_logout_redirect_uri);
        q.append_pair("state", state);
    }
    Some(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_claim_names_map_to_the_hubs_attributes() {
        let claims: serde_json::Map<String, Value> = serde_json::from_value(serde_json::json!({
            "sub": "x", "SoDinhDanh": "001204012345", "HoVaTen": "Nguyễn Văn An",
            "SoDienThoai": "0912345678", "LoaiTaiKhoan": "1", "email": "an@example.vn"
        }))
        .unwrap();
        let a = map_claims(&claims, ClaimNames::Portal);
        assert_eq!(a["national_id"], vec!["001204012345"]);
        assert_eq!(a["name"], vec!["Nguyễn Văn An"]);
        assert_eq!(a["phone"], vec!["0912345678"]);
        assert_eq!(
            a["email"],
            vec!["an@example.vn"],
            "standard name as fallback"
        );
        assert_eq!(a["account_type"], vec!["citizen"]);
        let std = map_claims(&claims, ClaimNames::Standard);
        assert!(!std.contains_key("national_id"), "portal names ignored");
    }

    #[test]
    fn endpoints_must_be_https_except_on_loopback() {
        assert!(check_endpoint("x", "https://id.gov.vn/auth").is_ok());
        assert!(check_endpoint("x", "http://127.0.0.1:9/auth").is_ok());
        assert!(check_endpoint("x", "http://id.gov.vn/auth").is_err());
        assert!(check_endpoint("x", "file:///etc/passwd").is_err());
    }
}
