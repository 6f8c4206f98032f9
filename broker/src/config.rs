//! Configuration: `fedhub.toml` (or `--config FILE`), then `FEDHUB_<SECTION>_<KEY>`
//! environment variables over it (e.g. `FEDHUB_DATABASE_URL`, `FEDHUB_SERVER_LISTEN`).
//! Loading fails with the key's dotted name and what is wrong with it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Sections of the file; an environment variable is read only if it names one of them.
const SECTIONS: &[&str] = &[
    "saml",
    "server",
    "database",
    "cookies",
    "sessions",
    "tokens",
    "keys",
    "logging",
    "connectors",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    fn new(key: &str, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.to_string(),
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub cookies: CookieConfig,
    pub sessions: SessionConfig,
    pub tokens: TokenConfig,
    pub keys: KeyConfig,
    pub saml: SamlConfig,
    pub connectors: ConnectorsConfig,
    pub logging: LoggingConfig,
}

/// Settings shared by upstream connectors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectorsConfig {
    /// TLS-terminating proxies (their addresses as the hub sees them) whose forwarded client
    /// certificate is believed. Empty: no forwarded certificate is ever accepted.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The header carrying the client certificate, URL-encoded PEM (nginx:
    /// `proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;`).
    pub client_cert_header: String,
    /// Clock difference tolerated on upstream assertions' time windows (SAML NotBefore /
    /// NotOnOrAfter).
    #[serde(with = "humantime_serde")]
    pub clock_skew: Duration,
    /// How long one call to an upstream provider (discovery, keys, token, userinfo, CRL,
    /// SIM-PKI) may take before the sign-in through it fails with a page (503).
    #[serde(with = "humantime_serde")]
    pub upstream_timeout: Duration,
    /// After an OpenID provider did not answer (timeout, connection refused), sign-ins through
    /// it get the 503 page at once for this long instead of each waiting `upstream_timeout`
    /// (zero: never remembered).
    #[serde(with = "humantime_serde")]
    pub upstream_down_for: Duration,
}

impl Default for ConnectorsConfig {
    fn default() -> Self {
        ConnectorsConfig {
            trusted_proxies: Vec::new(),
            client_cert_header: "x-ssl-client-cert".into(),
            clock_skew: Duration::from_secs(60),
            upstream_timeout: Duration::from_secs(10),
            upstream_down_for: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamlConfig {
    /// `validUntil` of the IdP metadata: SPs must refresh before then.
    #[serde(with = "humantime_serde")]
    pub metadata_valid_for: Duration,
    /// `cacheDuration` of the IdP metadata: how often SPs should refresh.
    #[serde(with = "humantime_serde")]
    pub metadata_cache_duration: Duration,
    /// Certificate(s) of the federation operator (PEM or DER file). When set, SP metadata
    /// must be signed with one of them, at registration and at every refresh.
    pub federation_certificate: Option<PathBuf>,
}

impl Default for SamlConfig {
    fn default() -> Self {
        SamlConfig {
            metadata_valid_for: Duration::from_secs(7 * 86_400),
            metadata_cache_duration: Duration::from_secs(6 * 3600),
            federation_certificate: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: String,
    /// The URL people and relying parties reach the hub at (entityID and issuer derive from it).
    pub public_url: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Requests taking longer are answered 503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Requests handled at once by this node; more are answered 503 at once. 0: derived from
    /// the pool size and the cores ([`Config::max_in_flight`]).
    pub max_in_flight: usize,
    /// `Retry-After` of a 503 (overload, database busy or unreachable), whole seconds.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// Failed requests (4xx) per minute one client address may keep sending once its burst is
    /// spent; beyond that it is answered 429. 0: no limit.
    pub bad_request_rate: u32,
    /// Failed requests one client address may send in a row before the rate applies.
    pub bad_request_burst: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            max_body_bytes: 256 * 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            max_in_flight: 0,
            retry_after: Duration::from_secs(5),
            bad_request_rate: 120,
            bad_request_burst: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (embedded, one node) or `postgres://USER@HOST:PORT/DB` (many nodes).
    pub url: String,
    pub pool_size: u32,
    /// How long opening a connection may take (at start-up, and the pool's own attempts).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long a request waits for a free pooled connection before it is answered 503.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// SQLite: how long a writer waits for the lock.
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
    /// `fedhub serve` applies pending migrations before it listens.
    pub migrate_on_start: bool,
    /// How long a node uses its copies of relying parties, connectors and signing keys before
    /// it asks the database whether another node changed them (zero: ask on every use).
    #[serde(with = "humantime_serde")]
    pub cache_refresh: Duration,
    /// SQLite: run a transaction on the request's own thread when a connection (and, to
    /// write, the writer's turn) is free at once, instead of on the blocking pool.
    pub sqlite_inline: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://fedhub.db".into(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(2),
            busy_timeout: Duration::from_secs(5),
            migrate_on_start: true,
            cache_refresh: Duration::from_secs(2),
            sqlite_inline: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CookieConfig {
    /// Send cookies only over HTTPS. Turn off only for a loopback demo.
    pub secure: bool,
    /// SameSite for the SSO cookie. SAML HTTP-POST back to the hub needs `none` (with secure).
    pub same_site: SameSite,
    /// Cookie name prefix.
    pub name: String,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            secure: true,
            same_site: SameSite::Lax,
            name: "fedhub_sso".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// A login in progress (from the relying party's request to the answer).
    #[serde(with = "humantime_serde")]
    pub auth_session_ttl: Duration,
    /// Single sign-on lifetime.
    #[serde(with = "humantime_serde")]
    pub sso_session_ttl: Duration,
    /// Single sign-on ends after this long without use.
    #[serde(with = "humantime_serde")]
    pub sso_idle_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            auth_session_ttl: Duration::from_secs(10 * 60),
            sso_session_ttl: Duration::from_secs(8 * 3600),
            sso_idle_timeout: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    #[serde(with = "humantime_serde")]
    pub authorization_code_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub id_token_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub refresh_token_ttl: Duration,
    /// SAML assertion validity (NotOnOrAfter - IssueInstant).
    #[serde(with = "humantime_serde")]
    pub saml_assertion_ttl: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            authorization_code_ttl: Duration::from_secs(60),
            access_token_ttl: Duration::from_secs(5 * 60),
            id_token_ttl: Duration::from_secs(5 * 60),
            refresh_token_ttl: Duration::from_secs(8 * 3600),
            saml_assertion_ttl: Duration::from_secs(5 * 60),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyConfig {
    /// Folder for key material the operator manages by hand (certificates, trust anchors).
    pub dir: Option<PathBuf>,
    /// File holding the at-rest key (32 random bytes, base64) that seals signing keys in the
    /// database. Create one with `fedhub keys generate-at-rest-key > FILE`.
    pub at_rest_key_file: Option<PathBuf>,
    /// The at-rest key itself, base64; meant for `FEDHUB_KEYS_AT_REST_KEY` from a secret store.
    pub at_rest_key: Option<String>,
    /// How long a replaced signing key stays published after `fedhub keys rotate`.
    #[serde(with = "humantime_serde")]
    pub previous_key_grace: Duration,
    /// Rotate the signing keys by themselves once the current key has signed this long
    /// (`0s`, the default: only `fedhub keys rotate` rotates). One node does it.
    #[serde(with = "humantime_serde")]
    pub rotate_every: Duration,
    /// Algorithm of new SAML signing keys: `RS256` (RSA-2048, default) or `ES256` (P-256).
    pub saml_algorithm: String,
    /// ID token signing algorithm of clients registered without one: `RS256` (default),
    /// `PS256`, `ES256` or `EdDSA`. The hub keeps OIDC keys of every family.
    pub oidc_algorithm: String,
}

impl Default for KeyConfig {
    fn default() -> Self {
        KeyConfig {
            dir: None,
            at_rest_key_file: None,
            at_rest_key: None,
            previous_key_grace: Duration::from_secs(7 * 86_400),
            rotate_every: Duration::ZERO,
            saml_algorithm: "RS256".into(),
            oidc_algorithm: "RS256".into(),
        }
    }
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("dir", &self.dir)
            .field("at_rest_key_file", &self.at_rest_key_file)
            .field(
                "at_rest_key",
                &self.at_rest_key.as_ref().map(|_| "[redacted]"),
            )
            .field("previous_key_grace", &self.previous_key_grace)
            .field("saml_algorithm", &self.saml_algorithm)
            .field("oidc_algorithm", &self.oidc_algorithm)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `fedhub=debug,tower_http=info`.
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Where the configuration came from, for messages.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
}

impl Config {
    /// Loads defaults, then the file (when given or when `./fedhub.toml` exists), then the
    /// environment, then checks every value.
    pub fn load(file: Option<&Path>, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = match file {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError::new(
                        "--config",
                        format!("file {} does not exist", path.display()),
                    ));
                }
                Some(path.to_path_buf())
            }
            None => Some(PathBuf::from("fedhub.toml")).filter(|p| p.is_file()),
        };
        if let Some(path) = &file {
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(env_provider(env));
        let config: Config = figment.extract().map_err(from_figment)?;
        config.validate()?;
        Ok(Loaded { config, file })
    }

    /// Rules that types alone do not express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        let url = url::Url::parse(&self.server.public_url).map_err(|e| {
            ConfigError::new(
                "server.public_url",
                format!("not a URL ({e}); e.g. https://sso.example.gov.vn"),
            )
        })?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_host(&url) => {}
            "http" => {
                return Err(ConfigError::new(
                    "server.public_url",
                    "must use https:// (plain http is allowed only on 127.0.0.1/localhost)",
                ))
            }
            other => {
                return Err(ConfigError::new(
                    "server.public_url",
                    format!("unsupported scheme {other}:"),
                ))
            }
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::new(
                "server.public_url",
                "must not have a query or fragment",
            ));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(ConfigError::new(
                "server.max_body_bytes",
                "must be at least 1024",
            ));
        }
        crate::store::Engine::of_url(&self.database.url)
            .map_err(|rule| ConfigError::new("database.url", rule))?;
        if self.database.pool_size == 0 {
            return Err(ConfigError::new("database.pool_size", "must be at least 1"));
        }
        if self.database.acquire_timeout.is_zero() {
            return Err(ConfigError::new(
                "database.acquire_timeout",
                "must be longer than zero",
            ));
        }
        if self.connectors.upstream_timeout.is_zero() {
            return Err(ConfigError::new(
                "connectors.upstream_timeout",
                "must be longer than zero",
            ));
        }
        if self.server.retry_after < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "server.retry_after",
                "must be at least 1s (Retry-After is in whole seconds)",
            ));
        }
        if self.server.bad_request_rate > 0 && self.server.bad_request_burst == 0 {
            return Err(ConfigError::new(
                "server.bad_request_burst",
                "must be at least 1 when server.bad_request_rate is set (0 turns the limit off)",
            ));
        }
        if self.cookies.same_site == SameSite::None && !self.cookies.secure {
            return Err(ConfigError::new(
                "cookies.same_site",
                "`none` requires cookies.secure = true",
            ));
        }
        if !self.cookies.secure && !is_loopback_host(&url) {
            return Err(ConfigError::new(
                "cookies.secure",
                "may be false only when server.public_url is on 127.0.0.1/localhost",
            ));
        }
        if self.cookies.name.is_empty()
            || !self
                .cookies
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::new(
                "cookies.name",
                "must be non-empty ASCII letters, digits, _ or -",
            ));
        }
        let ttls = [
            ("sessions.auth_session_ttl", self.sessions.auth_session_ttl),
            ("sessions.sso_session_ttl", self.sessions.sso_session_ttl),
            ("sessions.sso_idle_timeout", self.sessions.sso_idle_timeout),
            (
                "tokens.authorization_code_ttl",
                self.tokens.authorization_code_ttl,
            ),
            ("tokens.access_token_ttl", self.tokens.access_token_ttl),
            ("tokens.id_token_ttl", self.tokens.id_token_ttl),
            ("tokens.refresh_token_ttl", self.tokens.refresh_token_ttl),
            ("tokens.saml_assertion_ttl", self.tokens.saml_assertion_ttl),
        ];
        for (key, ttl) in ttls {
            if ttl.is_zero() {
                return Err(ConfigError::new(key, "must be longer than zero"));
            }
        }
        if self.tokens.authorization_code_ttl > Duration::from_secs(600) {
            return Err(ConfigError::new(
                "tokens.authorization_code_ttl",
                "must be at most 10m (RFC 6749 §4.1.2)",
            ));
        }
        if self.sessions.sso_idle_timeout > self.sessions.sso_session_ttl {
            return Err(ConfigError::new(
                "sessions.sso_idle_timeout",
                "must not exceed sessions.sso_session_ttl",
            ));
        }
        if self.keys.at_rest_key.is_some() && self.keys.at_rest_key_file.is_some() {
            return Err(ConfigError::new(
                "keys.at_rest_key",
                "set either keys.at_rest_key or keys.at_rest_key_file, not both",
            ));
        }
        if let Some(dir) = &self.keys.dir {
            if !dir.is_dir() {
                return Err(ConfigError::new(
                    "keys.dir",
                    format!("{} is not a directory", dir.display()),
                ));
            }
        }
        // Only checks that a configured key is well formed; whether one is required is up to
        // the command (serve needs one, migrate does not).
        if self.keys.at_rest_key.is_some() || self.keys.at_rest_key_file.is_some() {
            self.at_rest_key()?;
        }
        match fedhub_metadata::keys::KeyAlg::parse(&self.keys.saml_algorithm) {
            None => {
                return Err(ConfigError::new(
                    "keys.saml_algorithm",
                    "must be RS256 or ES256",
                ))
            }
            Some(fedhub_metadata::keys::KeyAlg::Ed25519) => {
                return Err(ConfigError::new(
                    "keys.saml_algorithm",
                    "EdDSA (Ed25519) is for OIDC only; SAML signing keys are RS256 or ES256",
                ))
            }
            Some(_) => {}
        }
        if fedhub_metadata::jose::JwsAlg::parse(&self.keys.oidc_algorithm).is_none() {
            return Err(ConfigError::new(
                "keys.oidc_algorithm",
                "must be RS256, PS256, ES256 or EdDSA",
            ));
        }
        if self.saml.metadata_valid_for.is_zero() || self.saml.metadata_cache_duration.is_zero() {
            return Err(ConfigError::new(
                "saml.metadata_valid_for",
                "metadata_valid_for and metadata_cache_duration must be longer than zero",
            ));
        }
        if self.saml.metadata_cache_duration > self.saml.metadata_valid_for {
            return Err(ConfigError::new(
                "saml.metadata_cache_duration",
                "must not exceed saml.metadata_valid_for",
            ));
        }
        self.federation_certs()?;
        tracing_subscriber::EnvFilter::try_new(&self.logging.level)
            .map_err(|e| ConfigError::new("logging.level", e.to_string()))?;
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen.parse().map_err(|_| {
            ConfigError::new(
                "server.listen",
                format!(
                    "{:?} is not an address:port, e.g. 127.0.0.1:8080",
                    self.server.listen
                ),
            )
        })
    }

    /// The at-rest key, or `None` when none is configured.
    pub fn at_rest_key(&self) -> Result<Option<fedhub_metadata::AtRestKey>, ConfigError> {
        let (key, text) = match (&self.keys.at_rest_key, &self.keys.at_rest_key_file) {
            (Some(value), _) => ("keys.at_rest_key", value.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(
                        "keys.at_rest_key_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                ("keys.at_rest_key_file", text)
            }
            (None, None) => return Ok(None),
        };
        fedhub_metadata::AtRestKey::from_base64(text.trim())
            .map(Some)
            .map_err(|e| ConfigError::new(key, e.to_string()))
    }

    /// Requests this node handles at once: `server.max_in_flight`, or when that is 0,
    /// 16 per core plus 8 per pooled database connection, at least 64. Requests mostly wait
    /// (on the database, an upstream provider) rather than compute, so a node holds many more
    /// than it has cores; the bound is what keeps a flood from queueing without end.
    pub fn max_in_flight(&self) -> usize {
        if self.server.max_in_flight > 0 {
            return self.server.max_in_flight;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (16 * cores + 8 * self.database.pool_size as usize).max(64)
    }

    /// `Retry-After` in whole seconds, rounded up.
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.server.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }

    /// The public base URL without a trailing slash.
    pub fn base_url(&self) -> String {
        self.server.public_url.trim_end_matches('/').to_string()
    }

    /// The SAML algorithm for new keys (checked in `validate`).
    pub fn saml_key_alg(&self) -> fedhub_metadata::keys::KeyAlg {
        fedhub_metadata::keys::KeyAlg::parse(&self.keys.saml_algorithm)
            .unwrap_or(fedhub_metadata::keys::KeyAlg::Rsa2048)
    }

    /// The federation operator's certificates that SP metadata must be signed with (empty
    /// when `saml.federation_certificate` is not set).
    pub fn federation_certs(&self) -> Result<Vec<samael::crypto::CertificateDer>, ConfigError> {
        let Some(path) = &self.saml.federation_certificate else {
            return Ok(Vec::new());
        };
        let key = "saml.federation_certificate";
        let bytes = std::fs::read(path)
            .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))?;
        let certs = fedhub_metadata::keys::certificates_from_bytes(&bytes)
            .map_err(|e| ConfigError::new(key, e.to_string()))?;
        Ok(certs
            .into_iter()
            .map(samael::crypto::CertificateDer::from)
            .collect())
    }

    /// The hub's SAML entityID: `<public_url>/saml/metadata`.
    pub fn saml_entity_id(&self) -> String {
        format!("{}/saml/metadata", self.base_url())
    }
}

fn is_loopback_host(url: &url::Url) -> bool {
    fedhub_metadata::xml::sp::is_loopback(url)
}

/// `FEDHUB_DATABASE_URL` → `database.url`: the first `_` after the prefix separates the
/// section from the key, so keys keep their own underscores.
fn env_provider(env: &[(String, String)]) -> figment::providers::Serialized<figment::value::Dict> {
    let mut sections: figment::value::Dict = figment::value::Dict::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("FEDHUB_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let Some((section, key)) = rest.split_once('_') else {
            continue;
        };
        if !SECTIONS.contains(&section) || key.is_empty() {
            continue;
        }
        let parsed = parse_env_value(value);
        let entry = sections
            .entry(section.to_string())
            .or_insert_with(|| figment::value::Value::from(figment::value::Dict::new()));
        if let figment::value::Value::Dict(_, dict) = entry {
            dict.insert(key.to_string(), parsed);
        }
    }
    Serialized::defaults(sections)
}

/// Environment values are strings; numbers and booleans are read as such so that
/// `FEDHUB_DATABASE_POOL_SIZE=4` and `FEDHUB_COOKIES_SECURE=false` work.
fn parse_env_value(value: &str) -> figment::value::Value {
    use figment::value::Value;
    let tag = figment::value::Tag::Default;
    match value {
        "true" => Value::Bool(tag, true),
        "false" => Value::Bool(tag, false),
        v => match v.parse::<u64>() {
            Ok(n) if !v.starts_with('0') || v == "0" => Value::from(n),
            _ => Value::from(v.to_string()),
        },
    }
}

/// Turns figment's error into ours, naming the key as written in the file.
fn from_figment(e: figment::Error) -> ConfigError {
    let key = if e.path.is_empty() {
        "(file)".to_string()
    } else {
        e.path.join(".")
    };
    let problem = match &e.kind {
        figment::error::Kind::UnknownField(field, expected) => {
            // figment's path already ends with the unknown field.
            let key = if e.path.is_empty() {
                field.clone()
            } else {
                key
            };
            return ConfigError::new(
                &key,
                format!("unknown key; expected one of: {}", expected.join(", ")),
            );
        }
        kind => kind.to_string(),
    };
    ConfigError::new(&key, problem)
}

/// The annotated example shipped in `examples/fedhub.toml`; a test checks it loads.
pub const EXAMPLE: &str = include_str!("../../examples/fedhub.toml");

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_str(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fedhub.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(Some(&path), &env(vars)).map(|l| l.config)
    }

    #[test]
    fn defaults_are_valid_and_embedded_sqlite() {
        let c = load_str("", &[]).unwrap();
        assert_eq!(c.database.url, "sqlite://fedhub.db");
        assert!(c.cookies.secure);
    }

    #[test]
    fn example_file_loads() {
        load_str(EXAMPLE, &[]).unwrap();
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load_str(
            "[database]\nurl = \"sqlite://a.db\"\n",
            &[
                ("FEDHUB_DATABASE_URL", "postgres://u@127.0.0.1/x"),
                ("FEDHUB_DATABASE_POOL_SIZE", "3"),
                ("FEDHUB_TOKENS_ACCESS_TOKEN_TTL", "2m"),
                ("FEDHUB_TEST_DATABASE_URL", "ignored"),
            ],
        )
        .unwrap();
        assert_eq!(c.database.url, "postgres://u@127.0.0.1/x");
        assert_eq!(c.database.pool_size, 3);
        assert_eq!(c.tokens.access_token_ttl, Duration::from_secs(120));
    }

    #[test]
    fn errors_name_the_key() {
        let e = load_str("[server]\nlisten = \"nowhere\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "server.listen");
        let e = load_str("[database]\nurl = \"mysql://x\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "database.url");
        let e = load_str("[database]\npool_size = \"many\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "database.pool_size");
        let e = load_str("[server]\nlisen = \"127.0.0.1:1\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "server.lisen");
        assert!(e.problem.contains("listen"), "{}", e.problem);
        let e = load_str("[tokens]\naccess_token_ttl = \"soon\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "tokens.access_token_ttl");
        let e = load_str(
            "",
            &[("FEDHUB_SERVER_PUBLIC_URL", "http://sso.example.gov.vn")],
        )
        .unwrap_err();
        assert_eq!(e.key, "server.public_url");
        let e = load_str(
            "[cookies]\nsecure = false\n[server]\npublic_url = \"https://sso.gov.vn\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key, "cookies.secure");
        let e = load_str("[keys]\nat_rest_key = \"c2hvcnQ=\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "keys.at_rest_key");
        let e = load_str("[tokens]\nauthorization_code_ttl = \"1h\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "tokens.authorization_code_ttl");
    }

    #[test]
    fn overload_settings_are_checked_and_the_bound_is_derived() {
        let c = load_str("", &[]).unwrap();
        assert!(c.max_in_flight() >= 64);
        assert_eq!(c.retry_after_secs(), 5);
        let c = load_str(
            "[server]\nmax_in_flight = 3\nretry_after = \"1500ms\"\n",
            &[("FEDHUB_SERVER_BAD_REQUEST_RATE", "0")],
        )
        .unwrap();
        assert_eq!(c.max_in_flight(), 3);
        assert_eq!(c.retry_after_secs(), 2, "rounded up to whole seconds");
        assert_eq!(c.server.bad_request_rate, 0);
        let e = load_str("[server]\nretry_after = \"0s\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "server.retry_after");
        let e = load_str("[server]\nbad_request_burst = 0\n", &[]).unwrap_err();
        assert_eq!(e.key, "server.bad_request_burst");
        let e = load_str("[database]\nacquire_timeout = \"0s\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "database.acquire_timeout");
    }

    #[test]
    fn saml_keys_cannot_be_ed25519() {
        for name in ["EdDSA", "ed25519"] {
            let e = load_str(&format!("[keys]\nsaml_algorithm = \"{name}\"\n"), &[]).unwrap_err();
            assert_eq!(e.key, "keys.saml_algorithm");
            assert!(e.problem.contains("OIDC only"), "{}", e.problem);
        }
        load_str("[keys]\nsaml_algorithm = \"ES256\"\n", &[]).unwrap();
    }

    #[test]
    fn oidc_default_algorithm_is_one_the_hub_signs_with() {
        for bad in ["HS256", "none", "RS512"] {
            let e = load_str(&format!("[keys]\noidc_algorithm = \"{bad}\"\n"), &[]).unwrap_err();
            assert_eq!(e.key, "keys.oidc_algorithm");
        }
        for good in ["RS256", "PS256", "ES256", "EdDSA"] {
            load_str(&format!("[keys]\noidc_algorithm = \"{good}\"\n"), &[]).unwrap();
        }
    }

    #[test]
    fn missing_config_file_is_named() {
        let e = Config::load(Some(Path::new("/nonexistent/fedhub.toml")), &[]).unwrap_err();
        assert_eq!(e.key, "--config");
    }

    #[test]
    fn secrets_do_not_reach_debug_output() {
        let mut c = Config::default();
        c.keys.at_rest_key = Some("c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw==".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
    }
}
