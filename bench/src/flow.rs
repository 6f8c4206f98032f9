//! One full OpenID Connect login as a fresh browser and a confidential client would do it:
//! authorize → the hub's login page → the upstream sign-in (the demo form, or an OpenID
//! provider) → back to the client with a code → token → userinfo. Cookies are carried by hand (only `fedhub_login` is needed; the
//! SSO cookie is dropped, so every login is a full upstream login).

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use ring::rand::{SecureRandom, SystemRandom};
use url::form_urlencoded;

use crate::upstream::Upstream;

/// The demo citizen every login signs in as (seeded by `fedhub::demo::seed`).
pub const NATIONAL_ID: &str = "001204012345";
const LOGIN_COOKIE: &str = "fedhub_login";
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// The relying party's side of the flow.
pub struct Target {
    /// The hub's base URL, also its issuer.
    pub base_url: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    /// `Authorization: Basic ...` for the token endpoint (RFC 6749 §2.3.1).
    basic: String,
}

impl Target {
    pub fn new(
        base_url: String,
        client_id: String,
        client_secret: String,
        redirect_uri: String,
        scope: String,
    ) -> Target {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", enc(&client_id), enc(&client_secret)))
        );
        Target {
            base_url,
            client_id,
            redirect_uri,
            scope,
            basic,
        }
    }
}

pub(crate) fn random_token(rng: &SystemRandom, bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    rng.fill(&mut buf)
        .map_err(|_| anyhow!("random generator failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// Fails with the step, the status and the start of the body unless `r` has status `want`.
pub(crate) async fn expect(r: Response, want: StatusCode, step: &str) -> Result<Response> {
    if r.status() == want {
        return Ok(r);
    }
    let status = r.status();
    let request_id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let body = r.text().await.unwrap_or_default();
    bail!(
        "{step}: HTTP {status} (expected {want}), request {request_id}: {}",
        summarize(&body)
    )
}

/// The readable start of a response body: an HTML page's main text without tags, or the
/// body as it is (JSON errors).
fn summarize(body: &str) -> String {
    let text = match (body.find("<main"), body.find("</main>")) {
        (Some(start), Some(end)) if start < end => body.get(start..end).unwrap_or(body),
        _ if body.contains("<html") => body,
        _ => return body.chars().take(300).collect(),
    };
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                plain.push(' ');
            }
            c if !in_tag => plain.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    unescape(&words.join(" ")).chars().take(300).collect()
}

pub(crate) fn location(r: &Response, step: &str) -> Result<String> {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{step}: no Location header"))
}

fn set_cookie(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Undoes the HTML escaping of an attribute value (minijinja escapes `/` too): the named
/// entities it writes and any numeric character reference.
pub(crate) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let tail = rest.get(at..).unwrap_or_default();
        let reference = tail.find(';').and_then(|end| {
            let name = tail.get(1..end)?;
            let c = match name {
                "quot" => '"',
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "apos" => '\'',
                _ => {
                    let code = match name.strip_prefix("#x").or(name.strip_prefix("#X")) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => name.strip_prefix('#')?.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, end + 1))
        });
        match reference {
            Some((c, len)) => {
                out.push(c);
                rest = tail.get(len..).unwrap_or_default();
            }
            None => {
                out.push('&');
                rest = tail.get(1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `action` of the login page's form that signs in as `national_id`.
fn form_action(html: &str, national_id: &str) -> Option<String> {
    let at = html.find(&format!("value=\"{national_id}\""))?;
    let before = html.get(..at)?;
    let start = before.rfind("action=\"")? + "action=\"".len();
    let len = before.get(start..)?.find('"')?;
    Some(unescape(before.get(start..start + len)?))
}

fn payload(jwt: &str) -> Result<serde_json::Value> {
    let part = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| anyhow!("id_token is not a JWS"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .context("id_token payload is not base64url")?;
    serde_json::from_slice(&bytes).context("id_token payload is not JSON")
}

/// The hub's login page as the browser sees it: where it is, the `Cookie` header that binds
/// the login to this browser, and the page.
pub(crate) struct LoginPage {
    pub url: url::Url,
    pub cookie: String,
    pub html: String,
}

/// Follows `r` (the answer to `step`) to the hub's login page and reads it.
pub(crate) async fn open_login_page(
    http: &reqwest::Client,
    base: &url::Url,
    r: &Response,
    step: &str,
) -> Result<LoginPage> {
    let url = base.join(&location(r, step)?)?;
    if !url.path().starts_with("/login/") {
        bail!("{step}: redirected to {url}, not to a login page");
    }
    let handle =
        set_cookie(r, LOGIN_COOKIE).ok_or_else(|| anyhow!("{step}: no {LOGIN_COOKIE} cookie"))?;
    let cookie = format!("{LOGIN_COOKIE}={handle}");
    let r = expect(
        http.get(url.clone())
            .header(COOKIE, &cookie)
            .send()
            .await
            .context("login page")?,
        StatusCode::OK,
        "login page",
    )
    .await?;
    let html = r.text().await.context("login page")?;
    Ok(LoginPage { url, cookie, html })
}

/// Steps shared by every protocol once the hub has sent the browser (`r`, the answer to
/// `step`) to its login page: the login page (the demo connector's list of people), then the
/// demo connector's form posted back to the hub. Returns the hub's answer to that post.
pub(crate) async fn demo_sign_in(
    http: &reqwest::Client,
    base: &url::Url,
    r: &Response,
    step: &str,
) -> Result<Response> {
    let LoginPage {
        url: login_page,
        cookie,
        html,
    } = open_login_page(http, base, r, step).await?;
    let action = form_action(&html, NATIONAL_ID)
        .ok_or_else(|| anyhow!("login page: no sign-in form for {NATIONAL_ID}"))?;

    http.post(login_page.join(&action)?)
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, FORM)
        .body(format!("national_id={NATIONAL_ID}"))
        .send()
        .await
        .context("upstream login")
}

/// What the relying party keeps while the browser is away: the PKCE verifier, `state` and
/// `nonce`, and the authorization URL that carries them.
pub(crate) struct Pending {
    pub verifier: String,
    pub state: String,
    pub nonce: String,
    pub authorize: url::Url,
}

/// A new authorization request of `t` (PKCE S256).
pub(crate) fn authorization(rng: &SystemRandom, t: &Target) -> Result<Pending> {
    let base = url::Url::parse(&t.base_url)?;
    let verifier = random_token(rng, 32)?;
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    let state = random_token(rng, 16)?;
    let nonce = random_token(rng, 16)?;
    let mut authorize = base.join("/oidc/authorize")?;
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &t.client_id)
        .append_pair("redirect_uri", &t.redirect_uri)
        .append_pair("scope", &t.scope)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(Pending {
        verifier,
        state,
        nonce,
        authorize,
    })
}

/// One login, start to finish, with `upstream` vouching for the person. Any deviation from
/// the expected answers is an error that names the step.
pub async fn login(
    http: &reqwest::Client,
    rng: &SystemRandom,
    t: &Target,
    upstream: &Upstream,
) -> Result<()> {
    let base = url::Url::parse(&t.base_url)?;
    let pending = authorization(rng, t)?;

    // 1. The relying party sends the browser to the hub.
    let r = expect(
        http.get(pending.authorize.clone())
            .send()
            .await
            .context("authorize")?,
        StatusCode::SEE_OTHER,
        "authorize",
    )
    .await?;
    // 2.–3. The login page and the upstream login, which the hub answers for the client.
    let r = expect(
        upstream.sign_in(http, rng, &base, &r, "authorize").await?,
        StatusCode::SEE_OTHER,
        "upstream login",
    )
    .await?;
    redeem(http, t, &pending, &r, "upstream login").await
}

/// Steps 4–5 once the hub sent the browser back to the client (`r`, the answer to `step`):
/// the callback's `code`, `state` and `iss`, the token request, and userinfo.
pub(crate) async fn redeem(
    http: &reqwest::Client,
    t: &Target,
    pending: &Pending,
    r: &Response,
    step: &str,
) -> Result<()> {
    let base = url::Url::parse(&t.base_url)?;
    let back = url::Url::parse(&location(r, step)?).with_context(|| format!("{step}: Location"))?;
    let expected = url::Url::parse(&t.redirect_uri)?;
    if back.origin() != expected.origin() || back.path() != expected.path() {
        bail!("{step}: redirected to {back}, not to the client");
    }
    let mut code = None;
    for (k, v) in back.query_pairs() {
        match &*k {
            "code" => code = Some(v.into_owned()),
            "state" if v != pending.state => bail!("callback: state {v:?} is not the one sent"),
            "iss" if v.trim_end_matches('/') != t.base_url.trim_end_matches('/') => {
                bail!("callback: iss {v:?} is not the hub")
            }
            "error" => bail!("callback: error {v:?} in {back}"),
            _ => {}
        }
    }
    let code = code.ok_or_else(|| anyhow!("callback: no code in {back}"))?;

    // 4. The client redeems the code.
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", &t.redirect_uri)
        .append_pair("code_verifier", &pending.verifier)
        .finish();
    let r = expect(
        http.post(base.join("/oidc/token")?)
            .header(AUTHORIZATION, &t.basic)
            .header(CONTENT_TYPE, FORM)
            .body(form)
            .send()
            .await
            .context("token")?,
        StatusCode::OK,
        "token",
    )
    .await?;
    let tokens: serde_json::Value =
        serde_json::from_slice(&r.bytes().await.context("token")?).context("token: JSON")?;
    let (Some(id_token), Some(access_token)) =
        (tokens["id_token"].as_str(), tokens["access_token"].as_str())
    else {
        bail!("token: no id_token or access_token in {tokens}");
    };
    let claims = payload(id_token)?;
    if claims["nonce"].as_str() != Some(pending.nonce.as_str()) {
        bail!(
            "token: id_token nonce {} is not the one sent",
            claims["nonce"]
        );
    }
    if claims["aud"].as_str() != Some(t.client_id.as_str())
        && !claims["aud"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(t.client_id.as_str())))
    {
        bail!("token: id_token aud {} is not this client", claims["aud"]);
    }

    // 5. And asks who signed in.
    let r = expect(
        http.get(base.join("/oidc/userinfo")?)
            .header(AUTHORIZATION, format!("Bearer {access_token}"))
            .send()
            .await
            .context("userinfo")?,
        StatusCode::OK,
        "userinfo",
    )
    .await?;
    let info: serde_json::Value =
        serde_json::from_slice(&r.bytes().await.context("userinfo")?).context("userinfo: JSON")?;
    match (info["sub"].as_str(), claims["sub"].as_str()) {
        (Some(a), Some(b)) if a == b => Ok(()),
        (a, b) => bail!("userinfo: sub {a:?} does not match the id_token's {b:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_escaped_form_action() {
        let html = r#"<form method="post" action="&#x2f;login&#x2f;abc&#x2f;demo">
            <input type="hidden" name="national_id" value="001204012345">"#;
        assert_eq!(
            form_action(html, "001204012345").as_deref(),
            Some("/login/abc/demo")
        );
        assert_eq!(form_action(html, "999"), None);
    }

    #[test]
    fn error_pages_are_summarized() {
        let page = "<html><body><main id=\"main\"><h1>Bad</h1>\n  <p>login &amp; more</p></main></body></html>";
        assert_eq!(summarize(page), "Bad login & more");
        assert_eq!(
            summarize("{\"error\":\"invalid_grant\"}"),
            "{\"error\":\"invalid_grant\"}"
        );
    }

    #[test]
    fn basic_credentials_are_form_encoded() {
        let t = Target::new(
            "http://127.0.0.1:1".into(),
            "a b".into(),
            "s:1".into(),
            "http://127.0.0.1:9/cb".into(),
            "openid".into(),
        );
        let raw = STANDARD
            .decode(t.basic.trim_start_matches("Basic "))
            .unwrap();
        assert_eq!(raw, b"a+b:s%3A1");
    }
}
