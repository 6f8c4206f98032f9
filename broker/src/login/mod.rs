//! The login flow between a relying party's request and the answer (DESIGN.md, "One login,
//! as data"): a protocol-neutral [`RpRequest`] kept in an auth session while the person signs
//! in upstream, then resolved to an account and its membership in that relying party.

pub mod auth_session;
pub mod resolve;
pub mod sso;

use serde::{Deserialize, Serialize};

/// Where and how to answer, per protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum Answer {
    Saml {
        /// Always an ACS from the SP's registered metadata.
        acs_url: String,
        /// The AuthnRequest ID (absent for IdP-initiated sign-in).
        in_response_to: Option<String>,
        relay_state: Option<String>,
    },
    Oidc {
        /// Exactly one of the client's registered redirect URIs.
        redirect_uri: String,
        state: Option<String>,
        nonce: Option<String>,
        /// PKCE S256 challenge the token request must answer.
        code_challenge: String,
        /// Requested scopes the client is allowed (others were dropped).
        scope: Vec<String>,
        /// Longest acceptable time since the person last signed in, in seconds.
        max_age: Option<i64>,
        acr_values: Option<String>,
    },
    /// The hub's own admin console: after signing in, back to `return_to` (a local path).
    Console { return_to: String },
}

/// The `rp_id` of a sign-in to the admin console (not a registered relying party).
pub const CONSOLE: &str = "fedhub-console";

/// What a relying party asked for, once its request passed the front's checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpRequest {
    pub rp_id: String,
    pub answer: Answer,
    pub force_authn: bool,
    pub is_passive: bool,
    /// Who the relying party expects (OIDC login_hint): offered first on the login page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    /// The connector the relying party asks for (OIDC `idp_hint`): the chooser is skipped
    /// when that connector is offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_hint: Option<String>,
}

impl Answer {
    /// The protocol the relying party spoke: `saml`, `oidc`, or `console` (the hub's own).
    pub fn protocol(&self) -> &'static str {
        match self {
            Answer::Saml { .. } => "saml",
            Answer::Oidc { .. } => "oidc",
            Answer::Console { .. } => "console",
        }
    }
}

/// How a login through the sign-in page ended, whatever the protocol: what the metrics count.
/// Reasons come from a small fixed set, so that they can be labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The relying party got its answer (a SAML Response, a code, the console).
    Success,
    /// The person may not sign in: `unknown_account`, `account_disabled`, `not_member`,
    /// `not_activated`, `identity_conflict` (see [`resolve::Refusal`]), `upstream_refused`
    /// (the sign-in method said no, or the person declined) or `upstream_invalid` (its
    /// answer could not be accepted, e.g. an expired certificate).
    Refused(&'static str),
    /// The hub could not finish: `upstream_unavailable` (the sign-in method did not answer,
    /// or is misconfigured) or `internal`.
    Error(&'static str),
}

impl LoginOutcome {
    pub fn outcome(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::Refused(_) => "refused",
            LoginOutcome::Error(_) => "error",
        }
    }
    pub fn reason(self) -> &'static str {
        match self {
            LoginOutcome::Success => "none",
            LoginOutcome::Refused(r) | LoginOutcome::Error(r) => r,
        }
    }
    /// What a failed sign-in method means for the login.
    pub fn of_upstream(e: &fedhub_connectors::ConnectorError) -> LoginOutcome {
        use fedhub_connectors::ConnectorError as E;
        match e {
            E::Refused(_) => LoginOutcome::Refused("upstream_refused"),
            E::Invalid(_) => LoginOutcome::Refused("upstream_invalid"),
            E::Config(_) | E::Unavailable(_) => LoginOutcome::Error("upstream_unavailable"),
        }
    }
}

/// One finished login, as the metrics see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResult {
    /// `saml`, `oidc` or `console`.
    pub protocol: &'static str,
    /// The relying party's entityID or client_id (registered ones only), or [`CONSOLE`].
    pub rp: String,
    pub connector: String,
    pub outcome: LoginOutcome,
    /// From the auth session's creation to the answer, in the clock's seconds.
    pub seconds: i64,
}
