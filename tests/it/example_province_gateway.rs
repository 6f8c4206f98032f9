//! The example provincial gateway (examples/province-gateway, an `openidconnect` relying
//! party) against the real hub, both served on loopback ports, driven by a browser-like HTTP
//! client (cookie store, redirects followed by hand): sign-in through the demo connector, the
//! claims and userinfo on the gateway's page, refresh with rotation, logout at the hub, and
//! refused sign-ins shown as readable pages.

use std::time::Duration;

use fedhub::admin::memberships::{self, Admin};
use fedhub::clock::{Clock, SystemClock};
use fedhub::directory::agencies::AgencyInput;
use fedhub::rp::oidc::OidcRegistration;
use fedhub_example_province_gateway as gateway;
use reqwest::{Client, StatusCode};
use url::Url;

use crate::oidc_support::{oidc_hub_configured, registration, OidcHub, TestClient};
use crate::sso::CITIZEN;
use crate::support::{self, NOW};

/// Sở Tài chính tỉnh Quảng Ninh: the citizen's unit in the gateway's membership.
const FINANCE: (&str, &str) = ("000.00.01.H49", "Sở Tài chính tỉnh Quảng Ninh");
const ROLE: &str = "Cán bộ một cửa";

/// A hub served on a loopback port.
struct Hub {
    hub: OidcHub,
    issuer: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Hub {
    /// Serves a hub whose first client is `reg` (its redirect URIs filled in by `start`).
    async fn start(reg: OidcRegistration) -> Hub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let hub = oidc_hub_configured(support::sqlite(), &issuer, reg, |c| {
            c.cookies.secure = false;
        });
        // openidconnect checks iat and exp against the real clock: so does the hub.
        hub.clock.advance(SystemClock.now() - NOW);
        let unit = AgencyInput {
            code: FINANCE.0.into(),
            name_vi: FINANCE.1.into(),
            ..Default::default()
        }
        .validate()
        .unwrap();
        hub.store
            .write(|c| fedhub::directory::agencies::add(c, &unit, NOW))
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(fedhub::web::serve_app(
            listener,
            hub.app.clone(),
            async {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
        ));
        Hub {
            hub,
            issuer,
            stop: Some(stop),
        }
    }

    /// Gives the citizen a membership of `rp_id` in the finance department with `ROLE`,
    /// activated or not.
    fn member(&self, rp_id: &str, activated: bool) {
        let vault = support::vault();
        let (rp, account) = (rp_id.to_string(), self.hub.account_id.clone());
        self.hub
            .store
            .write(|c| {
                let admin = Admin::operator("test");
                memberships::ensure_builtin_roles(c, &rp, NOW)?;
                memberships::add_role(c, &admin, &rp, ROLE, NOW)?;
                let m = memberships::add(c, &vault, &admin, &rp, &account, Some(FINANCE.0), NOW)?;
                if activated {
                    memberships::activate(c, &admin, &m.id, NOW)?;
                }
                memberships::assign_roles(c, &admin, &m.id, &[ROLE.to_string()], None, NOW)?;
                Ok(())
            })
            .unwrap();
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A gateway served on a loopback port.
struct Gateway {
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Binds a port for a gateway; its URL and redirect URIs are known before the hub registers it.
async fn gateway_port() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// The gateway's registration at the hub: only activated members may sign in.
fn gateway_registration(client_id: &str, url: &str) -> OidcRegistration {
    OidcRegistration {
        post_logout_redirect_uris: vec![format!("{url}/signed-out")],
        require_activated_membership: Some(true),
        ..registration(client_id, &format!("{url}/callback"))
    }
}

async fn start_gateway(
    listener: tokio::net::TcpListener,
    url: &str,
    issuer: &str,
    client: &TestClient,
) -> Gateway {
    let config = gateway::Config {
        listen: listener.local_addr().unwrap(),
        public_url: url.to_string(),
        issuer: issuer.to_string(),
        client_id: client.id.clone(),
        client_secret: client.secret.clone().unwrap(),
        scopes: gateway::DEFAULT_SCOPES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        show_tokens: true,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        gateway::serve(listener, config, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Gateway {
        url: url.to_string(),
        _stop: stop,
    }
}

/// A browser: one cookie jar for every port of 127.0.0.1, redirects followed by hand.
fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Where a browser ends up, and the page it shows there.
#[derive(Debug)]
struct Page {
    url: Url,
    status: StatusCode,
    body: String,
    /// Every URL visited, the first included.
    trail: Vec<String>,
}

/// GET `url`, following redirects as a browser does (at most 10).
async fn open(b: &Client, url: &str) -> Page {
    let r = b.get(url).send().await.unwrap();
    follow(b, r, vec![url.to_string()]).await
}

/// POST a form, following the redirects of the answer.
async fn submit(b: &Client, url: &str, form: &[(&str, &str)]) -> Page {
    let r = b.post(url).form(form).send().await.unwrap();
    follow(b, r, vec![url.to_string()]).await
}

async fn follow(b: &Client, mut r: reqwest::Response, mut trail: Vec<String>) -> Page {
    for _ in 0..10 {
        if !r.status().is_redirection() {
            let (url, status) = (r.url().clone(), r.status());
            let body = r.text().await.unwrap();
            return Page {
                url,
                status,
                body,
                trail,
            };
        }
        let to = r
            .url()
            .join(r.headers()[reqwest::header::LOCATION].to_str().unwrap())
            .unwrap();
        trail.push(to.to_string());
        r = b.get(to).send().await.unwrap();
    }
    panic!("too many redirects: {trail:?}");
}

/// Signs in at the hub's login page (the demo connector) as `national_id`.
async fn demo_sign_in(b: &Client, login_page: &Page, national_id: &str) -> Page {
    assert_eq!(login_page.status, StatusCode::OK, "{}", login_page.body);
    assert!(
        login_page.url.path().starts_with("/login/"),
        "the hub asks the person to sign in: {:?}",
        login_page.trail
    );
    let mut dev = login_page.url.clone();
    dev.set_query(None);
    dev.set_path(&format!("{}/dev", login_page.url.path()));
    submit(b, dev.as_str(), &[("national_id", national_id)]).await
}

/// The text of the element with `id` (`<tag id="...">TEXT<`).
fn element(body: &str, id: &str) -> String {
    let start = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {body}"));
    let rest = &body[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest[open..].find('<').unwrap();
    rest[open..open + close].to_string()
}

/// The value of the form token the page's forms carry.
fn csrf(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no form token in {body}"));
    let rest = &body[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The HTML of one claims table (`id-token-claims` or `userinfo`).
fn table<'a>(body: &'a str, id: &str) -> &'a str {
    let start = body
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table #{id} in {body}"));
    let rest = &body[start..];
    &rest[..rest.find("</table>").unwrap()]
}

/// The row of `claim` in a claims table.
fn claim_row<'a>(table: &'a str, claim: &str) -> &'a str {
    let start = table
        .find(&format!("data-claim=\"{claim}\""))
        .unwrap_or_else(|| panic!("no claim {claim} in {table}"));
    let rest = &table[start..];
    &rest[..rest.find("</tr>").unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_province_gateway_signs_in_shows_claims_refreshes_and_signs_out() {
    let (gw_listener, gw_url) = gateway_port().await;
    let hub = Hub::start(gateway_registration("cong-dvc-quang-ninh", &gw_url)).await;
    let client = hub.hub.client();
    hub.member(&client.rp_id, true);
    let gw = start_gateway(gw_listener, &gw_url, &hub.issuer, &client).await;
    let b = browser();

    // Vietnamese by default, English on request.
    let home = open(&b, &gw.url).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("<html lang=\"vi\"") && home.body.contains("Đăng nhập"));
    let en = open(&b, &format!("{}/?lang=en", gw.url)).await;
    assert!(en.body.contains("Sign in"), "{}", en.body);
    open(&b, &format!("{}/?lang=vi", gw.url)).await;

    // "Đăng nhập" → the hub's authorization endpoint (code flow, PKCE S256) → its login page.
    let login = open(&b, &format!("{}/login", gw.url)).await;
    let authorize = Url::parse(&login.trail[1]).unwrap();
    assert_eq!(authorize.path(), "/oidc/authorize", "{:?}", login.trail);
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], client.id);
    assert_eq!(q["redirect_uri"], format!("{gw_url}/callback"));
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["code_challenge"].len() >= 43 && !q["state"].is_empty() && !q["nonce"].is_empty());
    for scope in ["openid", "profile", "agency", "roles", "offline_access"] {
        assert!(q["scope"].split(' ').any(|s| s == scope), "{}", q["scope"]);
    }

    // The demo connector signs the citizen in; the hub sends the code back to the gateway.
    let page = demo_sign_in(&b, &login, CITIZEN).await;
    assert!(
        page.trail
            .iter()
            .any(|u| u.starts_with(&format!("{gw_url}/callback?code="))),
        "{:?}",
        page.trail
    );
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.url.as_str(), format!("{gw_url}/"));
    let body = page.body;

    // Every ID token claim, the unit and the role of the membership among them.
    let id = table(&body, "id-token-claims");
    assert!(claim_row(id, "name").contains("Nguyễn Văn An"), "{id}");
    assert!(claim_row(id, "agency_code").contains(FINANCE.0), "{id}");
    assert!(claim_row(id, "agency_name").contains(FINANCE.1), "{id}");
    assert!(claim_row(id, "roles").contains(ROLE), "{id}");
    assert!(claim_row(id, "national_id").contains(CITIZEN), "{id}");
    assert!(claim_row(id, "iss").contains(&hub.issuer), "{id}");
    assert!(claim_row(id, "aud").contains(&client.id), "{id}");
    for claim in [
        "exp",
        "iat",
        "auth_time",
        "sid",
        "nonce",
        "at_hash",
        "account_type",
    ] {
        claim_row(id, claim);
    }
    assert!(
        id.contains("Mã định danh đơn vị") && id.contains("Vai trò"),
        "labels in Vietnamese"
    );
    // The userinfo answer, with the same person and unit.
    let userinfo = table(&body, "userinfo");
    assert!(
        claim_row(userinfo, "name").contains("Nguyễn Văn An"),
        "{userinfo}"
    );
    assert!(
        claim_row(userinfo, "agency_code").contains(FINANCE.0),
        "{userinfo}"
    );
    assert!(claim_row(userinfo, "roles").contains(ROLE), "{userinfo}");
    assert_eq!(
        claim_row(userinfo, "sub").split("<td>").nth(1),
        claim_row(id, "sub").split("<td>").nth(1),
        "userinfo is about the ID token's subject"
    );
    assert!(body.contains("offline_access"), "granted scopes shown");

    // Refresh: new tokens, a new expiry, and the hub's rotated refresh token kept.
    let first_refresh = element(&body, "refresh-token");
    let first_access = element(&body, "access-token");
    assert!(!first_refresh.is_empty());
    assert_eq!(element(&body, "refresh-count"), "0");
    let first_expiry: i64 = {
        let at = body.find("data-expires-at=\"").unwrap() + "data-expires-at=\"".len();
        body[at..at + body[at..].find('"').unwrap()]
            .parse()
            .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refreshed = submit(&b, &format!("{gw_url}/refresh"), &[("csrf", &csrf(&body))]).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let body = refreshed.body;
    assert!(body.contains("Đã làm mới token."), "{body}");
    assert_eq!(element(&body, "refresh-count"), "1");
    let second_refresh = element(&body, "refresh-token");
    assert_ne!(
        second_refresh, first_refresh,
        "the hub rotated the refresh token"
    );
    assert_ne!(element(&body, "access-token"), first_access);
    let second_expiry: i64 = {
        let at = body.find("data-expires-at=\"").unwrap() + "data-expires-at=\"".len();
        body[at..at + body[at..].find('"').unwrap()]
            .parse()
            .unwrap()
    };
    assert!(
        second_expiry > first_expiry,
        "{first_expiry} → {second_expiry}"
    );
    assert!(claim_row(table(&body, "id-token-claims"), "roles").contains(ROLE));

    // A second refresh uses the stored (rotated) token and works too.
    let again = submit(&b, &format!("{gw_url}/refresh"), &[("csrf", &csrf(&body))]).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(element(&again.body, "refresh-count"), "2");
    let body = again.body;

    // The first refresh token is dead at the hub.
    let hub_http = Client::new();
    let old = hub_http
        .post(format!("{}/oidc/token", hub.issuer))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", first_refresh.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_str(&old.text().await.unwrap()).unwrap();
    assert_eq!(v["error"], "invalid_grant");

    // Reusing a rotated token revoked the whole grant: the gateway's next refresh is refused,
    // and says so in a page, not a 500.
    let refused = submit(&b, &format!("{gw_url}/refresh"), &[("csrf", &csrf(&body))]).await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY, "{}", refused.body);
    assert!(
        refused.body.contains("invalid_grant") && refused.body.contains("role=\"alert\""),
        "{}",
        refused.body
    );
    // A form without the page's token is refused.
    let forged = submit(&b, &format!("{gw_url}/refresh"), &[("csrf", "forged")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // Logout: the hub ends its session (id_token_hint) and sends the browser back.
    let home = open(&b, &gw.url).await;
    let out = submit(
        &b,
        &format!("{gw_url}/logout"),
        &[("csrf", &csrf(&home.body))],
    )
    .await;
    assert!(
        out.trail
            .iter()
            .any(|u| u.starts_with(&format!("{}/oidc/logout?", hub.issuer))
                && u.contains("id_token_hint=")
                && u.contains("post_logout_redirect_uri=")),
        "{:?}",
        out.trail
    );
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(out.url.path(), "/signed-out");
    assert!(
        out.body.contains("Bạn đã đăng xuất") && out.body.contains("tại fedhub đã kết thúc"),
        "{}",
        out.body
    );
    // Signed out at the gateway ...
    let home = open(&b, &gw.url).await;
    assert!(!home.body.contains("id-token-claims"), "{}", home.body);
    // ... and at the hub: a new login asks again.
    let login = open(&b, &format!("{}/login", gw.url)).await;
    assert!(login.url.path().starts_with("/login/"), "{:?}", login.trail);
    let page = demo_sign_in(&b, &login, CITIZEN).await;
    assert!(table(&page.body, "id-token-claims").contains(FINANCE.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_province_gateway_shows_refusals_and_bad_answers_as_pages() {
    // Two gateways on one hub: the citizen is an activated member of the first only.
    let (a_listener, a_url) = gateway_port().await;
    let (b_listener, b_url) = gateway_port().await;
    let hub = Hub::start(gateway_registration("cong-dvc-quang-ninh", &a_url)).await;
    let member = hub.hub.client();
    hub.member(&member.rp_id, true);
    let inactive = hub
        .hub
        .add_client(gateway_registration("cong-dvc-ha-long", &b_url));
    hub.member(&inactive.rp_id, false);
    let gw_a = start_gateway(a_listener, &a_url, &hub.issuer, &member).await;
    let gw_b = start_gateway(b_listener, &b_url, &hub.issuer, &inactive).await;
    let b = browser();

    // Not activated: the hub says why on its own page (it tells the client nothing).
    let login = open(&b, &format!("{}/login", gw_b.url)).await;
    let refused = demo_sign_in(&b, &login, CITIZEN).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused.body.contains("Tài khoản chưa được kích hoạt"),
        "{}",
        refused.body
    );
    assert!(!refused.trail.iter().any(|u| u.starts_with(&b_url)));

    // A silent sign-in (prompt=none) without a hub session: login_required, on the gateway.
    let silent = open(&b, &format!("{}/login?prompt=none", gw_b.url)).await;
    assert_eq!(silent.status, StatusCode::UNAUTHORIZED, "{}", silent.body);
    assert_eq!(silent.url.path(), "/callback");
    assert!(silent.body.contains("login_required"), "{}", silent.body);

    // Signed in at the first gateway, the hub has a session; the second gateway's silent
    // sign-in is refused with access_denied: a readable page on the gateway, not a 500.
    let login = open(&b, &format!("{}/login", gw_a.url)).await;
    let page = demo_sign_in(&b, &login, CITIZEN).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id-token-claims"));
    let denied = open(&b, &format!("{}/login?prompt=none", gw_b.url)).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED, "{}", denied.body);
    assert!(denied
        .url
        .as_str()
        .starts_with(&format!("{b_url}/callback?")));
    assert!(
        denied.body.contains("Đăng nhập bị từ chối")
            && denied.body.contains("access_denied")
            && denied.body.contains("role=\"alert\""),
        "{}",
        denied.body
    );
    assert!(!denied.body.contains("panicked"));
    // In English too.
    let en = open(&b, &format!("{}/?lang=en", gw_b.url)).await;
    assert!(en.body.contains("Sign in"));
    let denied = open(&b, &format!("{}/login?prompt=none", gw_b.url)).await;
    assert!(
        denied.body.contains("Sign-in refused") && denied.body.contains("access_denied"),
        "{}",
        denied.body
    );
    open(&b, &format!("{}/?lang=vi", gw_b.url)).await;

    // A bad state: the answer is ignored.
    let start = b.get(format!("{}/login", gw_a.url)).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let bad = open(&b, &format!("{a_url}/callback?code=abc&state=forged")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(
        bad.body.contains("Yêu cầu đăng nhập không khớp"),
        "{}",
        bad.body
    );
    // The login was consumed: the same callback again finds none in progress.
    let again = open(&b, &format!("{a_url}/callback?code=abc&state=forged")).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.body.contains("Không có lần đăng nhập nào đang chờ"));

    // A failed token exchange: the hub's real answer with its code swapped for a bogus one.
    let start = b.get(format!("{}/login", gw_a.url)).send().await.unwrap();
    let to_hub = start.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    let back = b.get(&to_hub).send().await.unwrap();
    assert_eq!(
        back.status(),
        StatusCode::SEE_OTHER,
        "answered from the hub session"
    );
    let mut callback =
        Url::parse(back.headers()[reqwest::header::LOCATION].to_str().unwrap()).unwrap();
    assert!(callback.as_str().starts_with(&format!("{a_url}/callback?")));
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "code" {
                (k, "bogus".into())
            } else {
                (k, v)
            }
        })
        .collect();
    callback.query_pairs_mut().clear().extend_pairs(pairs);
    let failed = open(&b, callback.as_str()).await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.body);
    assert!(
        failed.body.contains("Không hoàn tất được đăng nhập")
            && failed.body.contains("invalid_grant"),
        "{}",
        failed.body
    );

    // A form post without its token, or without a body at all, is a page, not a bare 4xx.
    let empty = b.post(format!("{a_url}/logout")).send().await.unwrap();
    assert_eq!(empty.status(), StatusCode::FORBIDDEN);
    assert!(empty.text().await.unwrap().contains("Chưa đăng nhập"));
    let no_token = Client::new()
        .post(format!("{a_url}/backchannel-logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::BAD_REQUEST);

    // An unknown page is a page too.
    let missing = open(&b, &format!("{a_url}/khong-co")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("Không tìm thấy trang"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_province_gateway_is_signed_out_by_the_hubs_back_channel_logout() {
    // Two gateways of one province, both told of logouts by the hub's back-channel.
    let (a_listener, a_url) = gateway_port().await;
    let (b_listener, b_url) = gateway_port().await;
    let with_backchannel = |id: &str, url: &str| OidcRegistration {
        backchannel_logout_uri: Some(format!("{url}/backchannel-logout")),
        ..gateway_registration(id, url)
    };
    let hub = Hub::start(with_backchannel("cong-dvc-quang-ninh", &a_url)).await;
    let first = hub.hub.client();
    hub.member(&first.rp_id, true);
    let second = hub
        .hub
        .add_client(with_backchannel("cong-dvc-ha-long", &b_url));
    hub.member(&second.rp_id, true);
    let gw_a = start_gateway(a_listener, &a_url, &hub.issuer, &first).await;
    let gw_b = start_gateway(b_listener, &b_url, &hub.issuer, &second).await;
    let b = browser();

    // Signed in at the first gateway, then at the second without signing in again (SSO).
    let login = open(&b, &format!("{}/login", gw_a.url)).await;
    let page = demo_sign_in(&b, &login, CITIZEN).await;
    assert!(page.body.contains("id-token-claims"), "{}", page.body);
    let page = open(&b, &format!("{}/login", gw_b.url)).await;
    assert!(
        !page.trail.iter().any(|u| u.contains("/login/")),
        "single sign-on: {:?}",
        page.trail
    );
    assert!(page.body.contains("id-token-claims"), "{}", page.body);

    // Signing out at the second gateway ends the hub session; the hub's logout token signs
    // the person out of the first gateway too.
    let out = submit(
        &b,
        &format!("{b_url}/logout"),
        &[("csrf", &csrf(&page.body))],
    )
    .await;
    assert_eq!(out.url.path(), "/signed-out", "{:?}", out.trail);
    let mut home = open(&b, &gw_a.url).await;
    for _ in 0..50 {
        if !home.body.contains("id-token-claims") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        home = open(&b, &gw_a.url).await;
    }
    assert!(!home.body.contains("id-token-claims"), "{}", home.body);
    assert!(
        home.body
            .contains("Bạn đã được đăng xuất vì phiên đăng nhập tại fedhub đã kết thúc."),
        "{}",
        home.body
    );

    // A logout token the hub did not sign is refused.
    let forged = Client::new()
        .post(format!("{a_url}/backchannel-logout"))
        .form(&[("logout_token", "eyJhbGciOiJub25lIn0.e30.")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_str(&forged.text().await.unwrap()).unwrap();
    assert_eq!(v["error"], "invalid_request");
}
