//! The SIM-PKI connector: the hub asks a mobile signing provider to have a person's SIM card
//! sign a login [`Challenge`](crate::certificate::Challenge); the person confirms with a PIN on
//! the phone; the hub polls the provider until the signature is there, then checks it exactly as
//! for a USB token, with [`certificate::verify`] (chain to the government CA, CRLs, signature
//! over the challenge). [`as_simpki`] then describes the sign-in as a SIM-PKI one.
//!
//! Pure logic, like every connector: the HTTP client and the timeouts are passed in, nothing is
//! stored. `connectors/SIMPKI.md` documents the provider API:
//!
//! * `POST {base}/v1/sign` with `{"msisdn", "challenge", "display_text"}` → 202
//!   `{"transaction_id"}` ([`start`]);
//! * `GET {base}/v1/sign/{transaction_id}` → `{"status": "pending" | "signed" | "refused" |
//!   "expired", ...}` ([`poll`]).
//!
//! Both with `Authorization: Bearer <api key>`, JSON bodies, over https (plain http only to
//! `127.0.0.1` / `localhost`, for the simulator).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::certificate::{self, CertificateConfig, SignedChallenge, MAX_CHAIN_LEN};
use crate::{ConnectorError, UpstreamIdentity};

/// How a SIM-PKI sign-in is described to relying parties.
pub const ACR: &str = "urn:fedhub:acr:simpki";
/// Authentication methods (RFC 8176): a SIM card holding the key, proof of a PKI certificate.
pub const AMR: [&str; 2] = ["sim", "pki"];
/// Largest answer read from the provider.
const MAX_BODY: usize = 256 * 1024;
/// Longest transaction id accepted from the provider.
const MAX_TRANSACTION_ID: usize = 128;
/// Longest text shown on the phone, in characters.
const MAX_DISPLAY_TEXT: usize = 200;

/// What the broker stores for a SIM-PKI connector (the API key is stored apart, sealed):
/// `provider_url` beside the fields of [`CertificateConfig`], unknown fields refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Map<String, Value>")]
pub struct SimPkiSettings {
    /// The provider's base URL, e.g. `https://mobile-ca.example.vn/api`.
    pub provider_url: String,
    /// How the returned signature and certificate are checked, as for a USB token.
    #[serde(flatten)]
    pub certificate: CertificateConfig,
}

// By hand: serde's `flatten` would let unknown (mistyped) certificate fields through.
impl TryFrom<serde_json::Map<String, Value>> for SimPkiSettings {
    type Error = String;

    fn try_from(mut fields: serde_json::Map<String, Value>) -> Result<Self, String> {
        let provider_url = match fields.remove("provider_url") {
            Some(Value::String(url)) => url,
            Some(_) => return Err("provider_url must be a string".into()),
            None => return Err("missing field `provider_url`".into()),
        };
        let certificate =
            serde_json::from_value(Value::Object(fields)).map_err(|e| e.to_string())?;
        Ok(SimPkiSettings {
            provider_url,
            certificate,
        })
    }
}

impl SimPkiSettings {
    /// Parse and [`check`](Self::check) a JSON configuration.
    pub fn parse(json: &str) -> Result<SimPkiSettings, ConnectorError> {
        let settings: SimPkiSettings =
            serde_json::from_str(json).map_err(|e| ConnectorError::Config(e.to_string()))?;
        settings.check()?;
        Ok(settings)
    }

    /// The provider URL is https (or http on the loopback) and the certificate part is usable.
    pub fn check(&self) -> Result<(), ConnectorError> {
        check_provider_url(&self.provider_url)?;
        self.certificate.check()
    }

    /// The runtime provider, once the broker has opened the API key.
    pub fn provider(&self, api_key: String) -> Result<SimPkiProvider, ConnectorError> {
        SimPkiProvider::new(&self.provider_url, api_key)
    }
}

/// A configured provider, its API key opened.
#[derive(Clone)]
pub struct SimPkiProvider {
    /// Without a trailing slash.
    pub base_url: String,
    pub api_key: String,
}

impl std::fmt::Debug for SimPkiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPkiProvider")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SimPkiProvider {
    /// Checks the URL (https, or http to the loopback) and that there is a key.
    pub fn new(base_url: &str, api_key: String) -> Result<SimPkiProvider, ConnectorError> {
        check_provider_url(base_url)?;
        if api_key.is_empty() || api_key.chars().any(|c| c.is_control() || c == ' ') {
            return Err(ConnectorError::Config(
                "the provider API key must be non-empty, without spaces".into(),
            ));
        }
        Ok(SimPkiProvider {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
        })
    }
}

/// https everywhere; plain http only to `127.0.0.1` or `localhost` (the simulator). No query,
/// fragment or credentials.
pub fn check_provider_url(url: &str) -> Result<(), ConnectorError> {
    let u = url::Url::parse(url)
        .map_err(|e| ConnectorError::Config(format!("provider_url {url:?} is not a URL: {e}")))?;
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost"));
    let scheme_ok = match u.scheme() {
        "https" => u.host_str().is_some(),
        "http" => loopback,
        _ => false,
    };
    if !scheme_ok {
        return Err(ConnectorError::Config(format!(
            "provider_url {url:?} must be https:// (http:// only to 127.0.0.1 or localhost)"
        )));
    }
    if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
        return Err(ConnectorError::Config(format!(
            "provider_url {url:?} must not carry a query, fragment or credentials"
        )));
    }
    Ok(())
}

/// `+84` followed by exactly 9 digits (the form [`start`] sends).
pub fn is_msisdn(s: &str) -> bool {
    s.strip_prefix("+84")
        .is_some_and(|rest| rest.len() == 9 && rest.bytes().all(|b| b.is_ascii_digit()))
}

/// A Vietnamese mobile number as people type it (`0912 345 678`, `84912345678`,
/// `+84 912-345-678`, `(+84) 912.345.678`) to `+84912345678`; anything else is refused.
pub fn normalise_msisdn(input: &str) -> Result<String, ConnectorError> {
    let compact: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')' | '\u{a0}'))
        .collect();
    let national = if let Some(rest) = compact.strip_prefix("+84") {
        rest
    } else if let Some(rest) = compact.strip_prefix("84").filter(|r| r.len() == 9) {
        rest
    } else {
        compact.strip_prefix('0').unwrap_or_default()
    };
    let candidate = format!("+84{national}");
    if is_msisdn(&candidate) {
        Ok(candidate)
    } else {
        Err(ConnectorError::Invalid(
            "not a Vietnamese mobile number (+84 and 9 digits)".into(),
        ))
    }
}

fn check_transaction_id(id: &str) -> Result<(), ConnectorError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_TRANSACTION_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::Invalid(
            "the provider's transaction id is not 1..=128 characters of A-Z a-z 0-9 - _ .".into(),
        ))
    }
}

/// What the provider says about a signing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollResult {
    /// The person has not answered on the phone yet: poll again later.
    Pending,
    /// Signed; check it with [`certificate::verify`]. `challenge` is the one sent to [`start`].
    Signed(SignedChallenge),
    /// The person declined on the phone.
    Refused,
    /// The provider gave up waiting for the person.
    Expired,
}

#[derive(Serialize)]
struct SignBody<'a> {
    msisdn: &'a str,
    challenge: &'a str,
    display_text: &'a str,
}

fn unavailable(what: &str, e: reqwest::Error) -> ConnectorError {
    let msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        let mut msg = e.to_string();
        if let Some(i) = msg.find(" for url") {
            msg.truncate(i);
        }
        msg
    };
    ConnectorError::Unavailable(format!("SIM-PKI provider, {what}: {msg}"))
}

/// The answer's JSON object, or the error its status code means.
async fn read_answer(res: reqwest::Response, what: &str) -> Result<Value, ConnectorError> {
    let status = res.status();
    if let Some(len) = res.content_length() {
        if len > MAX_BODY as u64 {
            return Err(ConnectorError::Invalid(format!(
                "SIM-PKI provider, {what}: answer too large"
            )));
        }
    }
    let bytes = res.bytes().await.map_err(|e| unavailable(what, e))?;
    if bytes.len() > MAX_BODY {
        return Err(ConnectorError::Invalid(format!(
            "SIM-PKI provider, {what}: answer too large"
        )));
    }
    let json: Option<Value> = serde_json::from_slice(&bytes).ok();
    let error = json
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str)
        .map(|s| s.chars().take(64).collect::<String>())
        .unwrap_or_else(|| status.to_string());
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(ConnectorError::Unavailable(format!(
            "SIM-PKI provider, {what}: answered {status}"
        )));
    }
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(ConnectorError::Config(format!(
            "SIM-PKI provider, {what}: the API key was refused ({status})"
        )));
    }
    if status == reqwest::StatusCode::NOT_FOUND && error == "unknown_subscriber" {
        return Err(ConnectorError::Refused(
            "this phone number has no SIM-PKI certificate (unknown_subscriber)".into(),
        ));
    }
    if !status.is_success() {
        return Err(ConnectorError::Invalid(format!(
            "SIM-PKI provider, {what}: answered {status}: {error}"
        )));
    }
    match json {
        Some(v @ Value::Object(_)) => Ok(v),
        _ => Err(ConnectorError::Invalid(format!(
            "SIM-PKI provider, {what}: the answer is not a JSON object"
        ))),
    }
}

/// Ask the provider to have `msisdn` (`+84` and 9 digits) sign `challenge` (a canonical
/// challenge string); `display_text` is shown on the phone (e.g. `Đăng nhập <hub name>`).
/// Returns the provider's transaction id, for [`poll`]. Nothing is sent if an argument is
/// malformed.
pub async fn start(
    http: &reqwest::Client,
    provider: &SimPkiProvider,
    msisdn: &str,
    challenge: &str,
    display_text: &str,
    timeout: Duration,
) -> Result<String, ConnectorError> {
    if !is_msisdn(msisdn) {
        return Err(ConnectorError::Invalid(
            "not a Vietnamese mobile number (+84 and 9 digits)".into(),
        ));
    }
    certificate::Challenge::parse(challenge)
        .map_err(|e| ConnectorError::Config(format!("the challenge to sign is not valid: {e}")))?;
    let display_ok = !display_text.trim().is_empty()
        && display_text.chars().count() <= MAX_DISPLAY_TEXT
        && !display_text.chars().any(char::is_control);
    if !display_ok {
        return Err(ConnectorError::Config(format!(
            "the text shown on the phone must be 1..={MAX_DISPLAY_TEXT} characters, without control characters"
        )));
    }
    let body = serde_json::to_vec(&SignBody {
        msisdn,
        challenge,
        display_text,
    })
    .map_err(|e| ConnectorError::Config(e.to_string()))?;
    let res = http
        .post(format!("{}/v1/sign", provider.base_url))
        .bearer_auth(&provider.api_key)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .body(body)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| unavailable("sign request", e))?;
    let v = read_answer(res, "sign request").await?;
    let id = v
        .get("transaction_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ConnectorError::Invalid("SIM-PKI provider, sign request: no transaction_id".into())
        })?;
    check_transaction_id(id)?;
    Ok(id.to_string())
}

/// Ask the provider where a signing request stands. `challenge` is the string sent to
/// [`start`]; a signed answer is returned with it, ready for [`certificate::verify`].
pub async fn poll(
    http: &reqwest::Client,
    provider: &SimPkiProvider,
    transaction_id: &str,
    challenge: &str,
    timeout: Duration,
) -> Result<PollResult, ConnectorError> {
    check_transaction_id(transaction_id)?;
    let res = http
        .get(format!("{}/v1/sign/{transaction_id}", provider.base_url))
        .bearer_auth(&provider.api_key)
        .header("accept", "application/json")
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| unavailable("status", e))?;
    let v = read_answer(res, "status").await?;
    parse_status(&v, challenge)
}

/// Read a status answer (`GET /v1/sign/{id}`).
pub fn parse_status(v: &Value, challenge: &str) -> Result<PollResult, ConnectorError> {
    let invalid = |why: &str| ConnectorError::Invalid(format!("SIM-PKI provider, status: {why}"));
    match v.get("status").and_then(Value::as_str) {
        Some("pending") => Ok(PollResult::Pending),
        Some("refused") => Ok(PollResult::Refused),
        Some("expired") => Ok(PollResult::Expired),
        Some("signed") => {
            let signature = v
                .get("signature")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("signed without a signature"))?;
            let chain = v
                .get("chain")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("signed without a certificate chain"))?;
            if chain.is_empty() || chain.len() > MAX_CHAIN_LEN {
                return Err(invalid(&format!(
                    "the certificate chain must hold 1..={MAX_CHAIN_LEN} certificates"
                )));
            }
            let chain = chain
                .iter()
                .map(|c| c.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid("a chain entry is not a string"))?;
            let answer = SignedChallenge {
                challenge: challenge.to_string(),
                signature: signature.to_string(),
                chain,
            };
            // Size limits and base64 now, so a malformed answer is reported as the provider's.
            answer.chain_der()?;
            Ok(PollResult::Signed(answer))
        }
        Some(other) => Err(invalid(&format!(
            "unknown status {:?}",
            other.chars().take(32).collect::<String>()
        ))),
        None => Err(invalid("no status")),
    }
}

/// The identity [`certificate::verify`] returned, described as a SIM-PKI sign-in
/// ([`ACR`], [`AMR`]).
pub fn as_simpki(identity: UpstreamIdentity) -> UpstreamIdentity {
    let mut identity = identity;
    identity.authn.acr = Some(ACR.to_string());
    identity.authn.amr = AMR.iter().map(|s| s.to_string()).collect();
    identity
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msisdn_rules() {
        assert!(is_msisdn("+84912345678"));
        for bad in [
            "+8491234567",
            "+849123456789",
            "84912345678",
            "+84 91234567",
            "",
        ] {
            assert!(!is_msisdn(bad), "{bad}");
        }
        for ok in [
            "0912345678",
            "0912 345 678",
            "84912345678",
            "+84 912-345-678",
            "(+84) 912.345.678",
        ] {
            assert_eq!(normalise_msisdn(ok).unwrap(), "+84912345678", "{ok}");
        }
        for bad in [
            "912345678",
            "+1 912345678",
            "0912345",
            "09123456789",
            "+84abc",
        ] {
            assert!(normalise_msisdn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn provider_urls() {
        assert!(check_provider_url("https://sim.example.vn/api").is_ok());
        assert!(check_provider_url("http://127.0.0.1:8080").is_ok());
        assert!(check_provider_url("http://localhost:8080/").is_ok());
        assert!(check_provider_url("http://sim.example.vn").is_err());
        assert!(check_provider_url("ftp://sim.example.vn").is_err());
        assert!(check_provider_url("https://u:p@sim.example.vn").is_err());
        assert!(check_provider_url("https://sim.example.vn/?k=1").is_err());
        let p = SimPkiProvider::new("http://127.0.0.1:1/", "k".into()).unwrap();
        assert_eq!(p.base_url, "http://127.0.0.1:1");
        assert!(!format!("{p:?}").contains("api_key"));
        assert!(SimPkiProvider::new("http://127.0.0.1:1/", String::new()).is_err());
    }
}
