//! Browser sessions, in memory: a random id in an HttpOnly cookie, the login in progress
//! (state, nonce, PKCE verifier) and, once signed in, the tokens and claims.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use axum::http::{header, HeaderMap, HeaderValue};
use openidconnect::{CsrfToken, Nonce, PkceCodeVerifier};
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::hub::HubIdToken;

/// Sessions idle longer than this are forgotten.
const IDLE: Duration = Duration::from_secs(8 * 3600);
/// A login in progress lasts this long.
const PENDING_TTL: Duration = Duration::from_secs(600);
const MAX_SESSIONS: usize = 10_000;

/// A login sent to the hub and not yet back.
pub struct Pending {
    pub state: CsrfToken,
    pub nonce: Nonce,
    pub verifier: PkceCodeVerifier,
}

/// What a completed sign-in (or refresh) left the gateway with.
#[derive(Clone)]
pub struct SignedIn {
    pub id_token: HubIdToken,
    pub nonce: Nonce,
    pub id_claims: Map<String, Value>,
    pub userinfo: Result<Map<String, Value>, String>,
    pub access_token: openidconnect::AccessToken,
    pub refresh_token: Option<openidconnect::RefreshToken>,
    /// When the access token expires, as the hub said (`expires_in`).
    pub expires_at: Option<SystemTime>,
    pub scopes: Vec<String>,
    /// How many times the tokens were refreshed.
    pub refreshed: u32,
}

struct Session {
    touched: Instant,
    csrf: String,
    pending: Option<(Pending, Instant)>,
    signed_in: Option<SignedIn>,
    logout_state: Option<String>,
    flash: Option<String>,
}

/// What a page shows of a session.
pub struct View {
    pub csrf: String,
    pub signed_in: Option<SignedIn>,
    pub flash: Option<String>,
}

pub struct Sessions {
    /// The session cookie's name: `gw_session`, with the port when the gateway's URL has
    /// one, since browsers share cookies between the ports of one host.
    cookie_name: String,
    all: Mutex<HashMap<String, Session>>,
    /// `jti`s of the logout tokens already used (the newest ones).
    seen_logout_tokens: Mutex<std::collections::VecDeque<String>>,
}

/// A random URL-safe value (256 bits).
pub fn random() -> String {
    CsrfToken::new_random_len(32).secret().clone()
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

impl Sessions {
    pub fn new(public_url: &url::Url) -> Sessions {
        Sessions {
            cookie_name: match public_url.port() {
                Some(port) => format!("gw_session_{port}"),
                None => "gw_session".into(),
            },
            all: Mutex::default(),
            seen_logout_tokens: Mutex::default(),
        }
    }

    /// The session id the browser sent.
    pub fn id_of(&self, headers: &HeaderMap) -> Option<String> {
        cookie(headers, &self.cookie_name).filter(|v| !v.is_empty())
    }

    /// The session `id` if it exists, else a new one with the cookie that names it.
    pub fn ensure(&self, id: Option<String>, secure: bool) -> (String, Option<HeaderValue>) {
        let mut all = self.all.lock();
        let now = Instant::now();
        if let Some(id) = id {
            if let Some(s) = all.get_mut(&id) {
                s.touched = now;
                return (id, None);
            }
        }
        all.retain(|_, s| now.duration_since(s.touched) < IDLE);
        if all.len() >= MAX_SESSIONS {
            if let Some(oldest) = all
                .iter()
                .min_by_key(|(_, s)| s.touched)
                .map(|(k, _)| k.clone())
            {
                all.remove(&oldest);
            }
        }
        let id = random();
        all.insert(
            id.clone(),
            Session {
                touched: now,
                csrf: random(),
                pending: None,
                signed_in: None,
                logout_state: None,
                flash: None,
            },
        );
        let cookie = HeaderValue::from_str(&format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Lax{}",
            self.cookie_name,
            if secure { "; Secure" } else { "" }
        ))
        .ok();
        (id, cookie)
    }

    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Session) -> T) -> Option<T> {
        let mut all = self.all.lock();
        let s = all.get_mut(id)?;
        if s.touched.elapsed() >= IDLE {
            all.remove(id);
            return None;
        }
        s.touched = Instant::now();
        Some(f(s))
    }

    pub fn set_pending(&self, id: &str, p: Pending) {
        self.with(id, |s| s.pending = Some((p, Instant::now())));
    }

    /// The login in progress, consumed: a callback works once.
    pub fn take_pending(&self, id: &str) -> Option<Pending> {
        self.with(id, |s| s.pending.take())
            .flatten()
            .filter(|(_, at)| at.elapsed() < PENDING_TTL)
            .map(|(p, _)| p)
    }

    pub fn sign_in(&self, id: &str, signed_in: SignedIn) {
        self.with(id, |s| {
            s.signed_in = Some(signed_in);
            // A new sign-in gets a new form token.
            s.csrf = random();
        });
    }

    pub fn signed_in(&self, id: &str) -> Option<SignedIn> {
        self.with(id, |s| s.signed_in.clone()).flatten()
    }

    /// Ends the local sign-in; returns what it was.
    pub fn sign_out(&self, id: &str) -> Option<SignedIn> {
        self.with(id, |s| s.signed_in.take()).flatten()
    }

    pub fn csrf_ok(&self, id: &str, token: &str) -> bool {
        self.with(id, |s| !token.is_empty() && s.csrf == token)
            .unwrap_or(false)
    }

    pub fn flash(&self, id: &str, message: &str) {
        self.with(id, |s| s.flash = Some(message.to_string()));
    }

    pub fn expect_logout(&self, id: &str, state: String) {
        self.with(id, |s| s.logout_state = Some(state));
    }

    /// Whether `state` is the one the logout sent to the hub carried (consumed).
    pub fn logout_done(&self, id: &str, state: &str) -> bool {
        self.with(id, |s| s.logout_state.take().is_some_and(|st| st == state))
            .unwrap_or(false)
    }

    /// The session for a page (its flash message consumed).
    pub fn view(&self, id: &str) -> Option<View> {
        self.with(id, |s| View {
            csrf: s.csrf.clone(),
            signed_in: s.signed_in.clone(),
            flash: s.flash.take(),
        })
    }

    /// Ends the local sign-ins the hub's back-channel logout names: the hub session `sid`
    /// (or, without one, every sign-in of `sub`). Returns how many ended; `None` when the
    /// token's `jti` was used already.
    pub fn end_by_logout_token(
        &self,
        sub: &str,
        sid: Option<&str>,
        jti: Option<&str>,
    ) -> Option<usize> {
        if let Some(jti) = jti {
            let mut seen = self.seen_logout_tokens.lock();
            if seen.iter().any(|j| j == jti) {
                return None;
            }
            if seen.len() >= 1000 {
                seen.pop_front();
            }
            seen.push_back(jti.to_string());
        }
        let claim = |s: &SignedIn, k: &str| {
            s.id_claims
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let mut ended = 0;
        for session in self.all.lock().values_mut() {
            let hit = session.signed_in.as_ref().is_some_and(|s| {
                claim(s, "sub").as_deref() == Some(sub)
                    && sid.is_none_or(|sid| claim(s, "sid").as_deref() == Some(sid))
            });
            if hit {
                session.signed_in = None;
                session.flash = Some(crate::pages::FLASH_SIGNED_OUT_BY_HUB.into());
                ended += 1;
            }
        }
        Some(ended)
    }
}
