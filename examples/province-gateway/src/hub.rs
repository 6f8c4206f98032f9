//! Talking to the hub with `openidconnect`: discovery, the authorization request, the code
//! exchange with ID token verification, userinfo, refresh and the logout URL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    HttpClientError, IdToken, IdTokenFields, IssuerUrl, JsonWebTokenType, LanguageTag,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardErrorResponse, StandardTokenResponse, SubjectIdentifier,
    TokenResponse as _, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use url::Url;

use crate::pages::Lang;
use crate::session::{Pending, SignedIn};
use crate::Config;

/// What the gateway asks for: everything fedhub releases to a gateway (docs/oidc.md).
pub const DEFAULT_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "phone",
    "national_id",
    "agency",
    "roles",
    "offline_access",
];

/// fedhub's own claims (agency_code, agency_name, roles, admin_level, national_id, ...):
/// kept as they come, so the page can show every claim the hub released.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct HubClaims(pub BTreeMap<String, Value>);
impl AdditionalClaims for HubClaims {}

type HubIdTokenFields = IdTokenFields<
    HubClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type HubTokenResponse = StandardTokenResponse<HubIdTokenFields, CoreTokenType>;
pub type HubIdToken =
    IdToken<HubClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;
type HubClient = Client<
    HubClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    HubTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;
type TokenError = RequestTokenError<
    HttpClientError<reqwest::Error>,
    StandardErrorResponse<CoreErrorResponseType>,
>;

/// Why something did not work, for the error page (never a stack trace).
#[derive(Debug, Clone)]
pub enum Problem {
    /// The hub could not be reached or its discovery document was unusable.
    HubUnreachable(String),
    /// The hub answered the callback with `error=` (e.g. `access_denied`).
    Refused {
        error: String,
        description: Option<String>,
    },
    /// The callback's `state` is not the one this browser's login sent.
    BadState,
    /// A callback arrived with no login in progress (expired, or used already).
    NoLoginInProgress,
    /// The callback's `iss` names another provider (RFC 9207).
    WrongIssuer(String),
    NoCode,
    /// The token endpoint said no (`invalid_grant`, `invalid_client`, ...).
    TokenRefused {
        error: String,
        description: Option<String>,
    },
    /// The token request failed another way (network, unreadable answer).
    TokenFailed(String),
    /// The ID token is missing or did not verify (signature, issuer, audience, nonce, expiry).
    BadIdToken(String),
    NotSignedIn,
    NoRefreshToken,
    BadPrompt,
    NotFound,
}

/// A login about to be sent to the hub.
pub struct Start {
    pub url: Url,
    pub state: CsrfToken,
    pub nonce: Nonce,
    pub verifier: PkceCodeVerifier,
}

struct Discovered {
    client: HubClient,
    end_session: Option<EndSessionUrl>,
    at: Instant,
}

pub struct Hub {
    http: reqwest::Client,
    issuer: String,
    client_id: ClientId,
    client_secret: ClientSecret,
    redirect: RedirectUrl,
    post_logout: PostLogoutRedirectUrl,
    scopes: Vec<String>,
    discovered: Mutex<Option<Arc<Discovered>>>,
}

/// Discovery is fetched again after this long (the hub rotates its keys).
const DISCOVERY_TTL: Duration = Duration::from_secs(600);

impl Hub {
    pub fn new(config: &Config) -> anyhow::Result<Hub> {
        // No redirects: a token or discovery endpoint that redirects is an error, not a hop.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Hub {
            http,
            issuer: config.issuer.trim_end_matches('/').to_string(),
            client_id: ClientId::new(config.client_id.clone()),
            client_secret: ClientSecret::new(config.client_secret.clone()),
            redirect: RedirectUrl::new(config.redirect_uri())?,
            post_logout: PostLogoutRedirectUrl::new(config.post_logout_redirect_uri())?,
            scopes: config.scopes.clone(),
            discovered: Mutex::new(None),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The hub's metadata and keys, from `{issuer}/.well-known/openid-configuration`.
    async fn discovered(&self, fresh: bool) -> Result<Arc<Discovered>, Problem> {
        let mut slot = self.discovered.lock().await;
        if let Some(d) = slot.as_ref() {
            if !fresh && d.at.elapsed() < DISCOVERY_TTL {
                return Ok(d.clone());
            }
        }
        let issuer = IssuerUrl::new(self.issuer.clone())
            .map_err(|e| Problem::HubUnreachable(e.to_string()))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| Problem::HubUnreachable(error_chain(&e)))?;
        let end_session = metadata.additional_metadata().end_session_endpoint.clone();
        let client = HubClient::from_provider_metadata(
            metadata,
            self.client_id.clone(),
            Some(self.client_secret.clone()),
        )
        .set_redirect_uri(self.redirect.clone());
        let d = Arc::new(Discovered {
            client,
            end_session,
            at: Instant::now(),
        });
        *slot = Some(d.clone());
        Ok(d)
    }

    /// The authorization URL for a new login: code flow, PKCE S256, fresh state and nonce.
    pub async fn begin(&self, lang: Lang, prompt: Option<&str>) -> Result<Start, Problem> {
        let d = self.discovered(false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = d
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge)
            .add_ui_locale(LanguageTag::new(lang.code().to_string()));
        for s in self.scopes.iter().filter(|s| s.as_str() != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        match prompt {
            Some("none") => req = req.add_prompt(CoreAuthPrompt::None),
            Some("login") => req = req.add_prompt(CoreAuthPrompt::Login),
            _ => {}
        }
        let (url, state, nonce) = req.url();
        Ok(Start {
            url,
            state,
            nonce,
            verifier,
        })
    }

    /// The code for tokens; the ID token verified; userinfo fetched.
    pub async fn finish(&self, code: String, pending: Pending) -> Result<SignedIn, Problem> {
        let d = self.discovered(false).await?;
        let tokens = d
            .client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| Problem::TokenFailed(e.to_string()))?
            .set_pkce_verifier(pending.verifier)
            .request_async(&self.http)
            .await
            .map_err(token_problem)?;
        let id_token = tokens
            .id_token()
            .cloned()
            .ok_or_else(|| Problem::BadIdToken("the token response has no id_token".into()))?;
        let nonce = pending.nonce;
        let id_claims = self
            .verify(&id_token, &tokens, |n: Option<&Nonce>| match n {
                Some(n) if n.secret() == nonce.secret() => Ok(()),
                Some(_) => Err("the nonce is not the one this login sent".to_string()),
                None => Err("the ID token has no nonce".to_string()),
            })
            .await?;
        self.signed_in(d, id_token, nonce, id_claims, &tokens, None, 0)
            .await
    }

    /// New tokens from the refresh token. The hub rotates refresh tokens: the answer's one
    /// replaces the old, which the hub no longer accepts.
    pub async fn refresh(&self, current: &SignedIn) -> Result<SignedIn, Problem> {
        let d = self.discovered(false).await?;
        let rt = current
            .refresh_token
            .as_ref()
            .ok_or(Problem::NoRefreshToken)?;
        let tokens = d
            .client
            .exchange_refresh_token(rt)
            .map_err(|e| Problem::TokenFailed(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(token_problem)?;
        // A refreshed ID token must be about the same person, for this client, with the
        // original nonce if it carries one (OpenID Connect Core 12.2).
        let (id_token, id_claims) = match tokens.id_token().cloned() {
            Some(new) => {
                let nonce = current.nonce.clone();
                let claims = self
                    .verify(&new, &tokens, |n: Option<&Nonce>| match n {
                        Some(n) if n.secret() != nonce.secret() => {
                            Err("the refreshed ID token carries another nonce".to_string())
                        }
                        _ => Ok(()),
                    })
                    .await?;
                if claims.get("sub") != current.id_claims.get("sub") {
                    return Err(Problem::BadIdToken(
                        "the refreshed ID token is about someone else".into(),
                    ));
                }
                (new, claims)
            }
            None => (current.id_token.clone(), current.id_claims.clone()),
        };
        self.signed_in(
            d,
            id_token,
            current.nonce.clone(),
            id_claims,
            &tokens,
            current.refresh_token.clone(),
            current.refreshed + 1,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn signed_in(
        &self,
        d: Arc<Discovered>,
        id_token: HubIdToken,
        nonce: Nonce,
        id_claims: Map<String, Value>,
        tokens: &HubTokenResponse,
        previous_refresh: Option<RefreshToken>,
        refreshed: u32,
    ) -> Result<SignedIn, Problem> {
        let sub = id_claims
            .get("sub")
            .and_then(Value::as_str)
            .map(|s| SubjectIdentifier::new(s.to_string()));
        let userinfo = match d.client.user_info(tokens.access_token().clone(), sub) {
            Ok(req) => req
                .request_async::<HubClaims, _, CoreGenderClaim>(&self.http)
                .await
                .map_err(|e| error_chain(&e))
                .and_then(|c: UserInfoClaims<HubClaims, CoreGenderClaim>| {
                    as_map(&c).map_err(|e| e.to_string())
                }),
            Err(e) => Err(e.to_string()),
        };
        Ok(SignedIn {
            id_token,
            nonce,
            id_claims,
            userinfo,
            access_token: tokens.access_token().clone(),
            refresh_token: tokens.refresh_token().cloned().or(previous_refresh),
            expires_at: tokens.expires_in().map(|d| SystemTime::now() + d),
            scopes: tokens
                .scopes()
                .map(|s| s.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
            refreshed,
        })
    }

    /// Verifies the ID token (signature with the hub's keys, issuer, audience, expiry, nonce,
    /// `at_hash`) and returns its claims. Unknown keys: discovery is fetched again once, as the
    /// hub may have rotated its keys.
    async fn verify(
        &self,
        id_token: &HubIdToken,
        tokens: &HubTokenResponse,
        nonce: impl Fn(Option<&Nonce>) -> Result<(), String> + Clone,
    ) -> Result<Map<String, Value>, Problem> {
        let mut fresh = false;
        loop {
            let d = self.discovered(fresh).await?;
            let verifier = d.client.id_token_verifier();
            match id_token.claims(&verifier, nonce.clone()) {
                Ok(claims) => {
                    if let Some(expected) = claims.access_token_hash() {
                        let actual = id_token
                            .signing_alg()
                            .map_err(|e| Problem::BadIdToken(e.to_string()))
                            .and_then(|alg| {
                                let key = id_token
                                    .signing_key(&verifier)
                                    .map_err(|e| Problem::BadIdToken(e.to_string()))?;
                                AccessTokenHash::from_token(tokens.access_token(), alg, key)
                                    .map_err(|e| Problem::BadIdToken(e.to_string()))
                            })?;
                        if actual != *expected {
                            return Err(Problem::BadIdToken(
                                "at_hash does not match the access token".into(),
                            ));
                        }
                    }
                    return as_map(claims).map_err(|e| Problem::BadIdToken(e.to_string()));
                }
                Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) if !fresh => {
                    fresh = true;
                }
                Err(e) => return Err(Problem::BadIdToken(error_chain(&e))),
            }
        }
    }

    /// The hub's end-session URL with `id_token_hint`, `post_logout_redirect_uri` and a new
    /// `state`; returns it with that state.
    pub async fn logout_url(
        &self,
        lang: Lang,
        signed_in: &SignedIn,
    ) -> Result<(Url, String), Problem> {
        let d = self.discovered(false).await?;
        let end = d.end_session.clone().ok_or_else(|| {
            Problem::HubUnreachable("the hub publishes no end_session_endpoint".into())
        })?;
        let state = CsrfToken::new_random();
        let url = LogoutRequest::from(end)
            .set_id_token_hint(&signed_in.id_token)
            .set_client_id(self.client_id.clone())
            .set_post_logout_redirect_uri(self.post_logout.clone())
            .set_state(state.clone())
            .add_ui_locale(LanguageTag::new(lang.code().to_string()))
            .http_get_url();
        Ok((url, state.secret().clone()))
    }
}

/// The back-channel logout event (OpenID Connect Back-Channel Logout 1.0, section 2.4).
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Who a verified logout token signs out.
pub struct LogoutOf {
    pub sub: String,
    pub sid: Option<String>,
    pub jti: Option<String>,
}

impl Hub {
    /// Verifies a back-channel logout token as section 2.6 of the specification asks: signed by
    /// the hub (`typ: logout+jwt`), for this client, not expired, with the logout event and
    /// without a `nonce`.
    pub async fn verify_logout_token(&self, token: &str) -> Result<LogoutOf, String> {
        let token: HubIdToken = token
            .parse()
            .map_err(|e: serde_json::Error| format!("not a JWT: {e}"))?;
        let typ = JsonWebTokenType::new("logout+jwt".to_string())
            .normalize()
            .map_err(|e| e.to_string())?;
        let mut fresh = false;
        loop {
            let d = self.discovered(fresh).await.map_err(|p| format!("{p:?}"))?;
            let verifier = d
                .client
                .id_token_verifier()
                .set_allowed_jose_types([typ.clone()]);
            match token.claims(&verifier, |n: Option<&Nonce>| match n {
                None => Ok(()),
                Some(_) => Err("a logout token carries no nonce".to_string()),
            }) {
                Ok(claims) => {
                    let extra = &claims.additional_claims().0;
                    let event = extra
                        .get("events")
                        .and_then(Value::as_object)
                        .is_some_and(|e| e.contains_key(BACKCHANNEL_EVENT));
                    if !event {
                        return Err("no back-channel logout event".into());
                    }
                    let text = |k: &str| extra.get(k).and_then(Value::as_str).map(str::to_string);
                    return Ok(LogoutOf {
                        sub: claims.subject().to_string(),
                        sid: text("sid"),
                        jti: text("jti"),
                    });
                }
                Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) if !fresh => {
                    fresh = true;
                }
                Err(e) => return Err(error_chain(&e)),
            }
        }
    }
}

fn as_map(v: &impl Serialize) -> Result<Map<String, Value>, serde_json::Error> {
    match serde_json::to_value(v)? {
        Value::Object(m) => Ok(m),
        _ => Ok(Map::new()),
    }
}

fn token_problem(e: TokenError) -> Problem {
    match e {
        RequestTokenError::ServerResponse(r) => Problem::TokenRefused {
            error: r.error().as_ref().to_string(),
            description: r.error_description().cloned(),
        },
        other => Problem::TokenFailed(error_chain(&other)),
    }
}

/// An error and its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
