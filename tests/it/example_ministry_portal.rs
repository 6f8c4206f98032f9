//! The example ministry portal (examples/ministry-portal, a samael SP) against the real hub,
//! both over loopback TCP: registered from its own metadata URL with `fedhub rp add-saml`,
//! then a browser-like client signs a member in through the demo connector, single logout
//! both ways, refusals shown as the portal's pages, and a tampered Response refused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Parser;

const AN: &str = "001204012345"; // demo citizen, activated member with a unit and a role
const BINH: &str = "022195000123"; // demo citizen, member not activated
const UNIT: &str = "000.00.01.H49";
const UNIT_NAME: &str = "Sở Tài chính tỉnh Quảng Ninh";
const ROLE: &str = "Admin của Tỉnh/thành phố";

/// What came back from one request.
#[derive(Debug)]
struct Page {
    url: url::Url,
    status: u16,
    location: Option<String>,
    body: String,
}

/// A browser-like client: one cookie jar for 127.0.0.1 (browsers share cookies across ports
/// of a host), redirects followed by hand.
struct Browser {
    client: reqwest::Client,
    jar: Mutex<HashMap<String, String>>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            jar: Mutex::new(HashMap::new()),
        }
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }

    fn cookie_header(&self) -> String {
        self.jar
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn absorb(&self, url: url::Url, res: reqwest::Response) -> Page {
        for c in res.headers().get_all(reqwest::header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let gone = value.is_empty()
                || attrs.to_ascii_lowercase().contains("max-age=0")
                || attrs.contains("1970");
            let mut jar = self.jar.lock().unwrap();
            if gone {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_string(), value.to_string());
            }
        }
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string());
        let body = res.text().await.unwrap();
        Page {
            url,
            status,
            location,
            body,
        }
    }

    async fn get(&self, url: &str) -> Page {
        let url = url::Url::parse(url).unwrap();
        let res = self
            .client
            .get(url.clone())
            .header(reqwest::header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.absorb(url, res).await
    }

    async fn post(&self, url: &str, form: &[(&str, &str)]) -> Page {
        let url = url::Url::parse(url).unwrap();
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let res = self
            .client
            .post(url.clone())
            .header(reqwest::header::COOKIE, self.cookie_header())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .unwrap();
        self.absorb(url, res).await
    }

    /// Follows redirects (GET) until a page that is not one.
    async fn follow(&self, mut page: Page) -> Page {
        for _ in 0..20 {
            if !(300..400).contains(&page.status) {
                return page;
            }
            let next = page.url.join(page.location.as_deref().unwrap()).unwrap();
            page = self.get(next.as_str()).await;
        }
        panic!("too many redirects, last {}", page.url);
    }

    async fn visit(&self, url: &str) -> Page {
        let p = self.get(url).await;
        self.follow(p).await
    }

    /// Submits the hub's auto-POST form (what its script does in a browser).
    async fn submit_auto_post(&self, page: &Page) -> Page {
        let form = AutoPost::parse(page);
        let p = self.post(&form.action, &form.fields()).await;
        self.follow(p).await
    }
}

/// The hub's auto-POST form: action and hidden fields.
struct AutoPost {
    action: String,
    field: String,
    message: String,
    relay_state: Option<String>,
}

fn unescape_html(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&#43;", "+")
        .replace("&#x3d;", "=")
        .replace("&#x3D;", "=")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attr_after(body: &str, marker: &str) -> Option<String> {
    let start = body.find(marker)? + marker.len();
    let end = body[start..].find('"')? + start;
    Some(unescape_html(&body[start..end]))
}

impl AutoPost {
    fn parse(page: &Page) -> AutoPost {
        assert_eq!(page.status, 200, "{}: {}", page.url, page.body);
        let form_at = page
            .body
            .find(r#"id="saml-post""#)
            .or_else(|| page.body.find("<form method=\"post\""))
            .unwrap_or_else(|| panic!("no auto-POST form at {}: {}", page.url, page.body));
        let start = page.body[..form_at].rfind("<form").unwrap();
        let form = &page.body[start..];
        let action = attr_after(form, r#"action=""#).unwrap();
        let (field, message) = ["SAMLResponse", "SAMLRequest"]
            .iter()
            .find_map(|f| {
                attr_after(form, &format!(r#"name="{f}" value=""#)).map(|v| (f.to_string(), v))
            })
            .unwrap_or_else(|| panic!("no SAML message in {}", page.body));
        AutoPost {
            action: page.url.join(&action).unwrap().to_string(),
            field,
            message,
            relay_state: attr_after(form, r#"name="RelayState" value=""#),
        }
    }

    fn fields(&self) -> Vec<(&str, &str)> {
        let mut f = vec![(self.field.as_str(), self.message.as_str())];
        if let Some(r) = &self.relay_state {
            f.push(("RelayState", r.as_str()));
        }
        f
    }

    fn xml(&self) -> String {
        String::from_utf8(STANDARD.decode(&self.message).unwrap()).unwrap()
    }
}

struct Hub {
    base: String,
    store: fedhub::store::Store,
    config: fedhub::config::Config,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The real hub over loopback with the demo directory and demo connector.
async fn start_hub(dir: &std::path::Path) -> Hub {
    let listener = fedhub::web::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = fedhub::config::Config::default();
    config.server.listen = addr.to_string();
    config.server.public_url = format!("http://{addr}");
    config.cookies.secure = false;
    let data = dir.to_path_buf();
    let demo = tokio::task::spawn_blocking(move || fedhub::demo::prepare(&data, config))
        .await
        .unwrap()
        .unwrap();
    let state = fedhub::web::AppState::new(
        demo.config.clone(),
        demo.store.clone(),
        std::sync::Arc::new(fedhub::clock::SystemClock),
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(fedhub::web::serve(
        listener,
        state,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(2),
    ));
    Hub {
        base: format!("http://{addr}"),
        store: demo.store,
        config: demo.config,
        _stop: stop,
    }
}

/// The example portal in-process on a loopback port; returns its base URL.
async fn start_portal(hub: &str, data_dir: &std::path::Path) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut config = fedhub_example_ministry_portal::Config::new(addr, hub);
    config.data_dir = Some(data_dir.to_path_buf());
    let router = fedhub_example_ministry_portal::app(config).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

impl Hub {
    /// `fedhub rp add-saml --metadata URL --owner CODE [extra…]`, in-process; returns the
    /// relying party's id.
    async fn register(&self, metadata_url: &str, extra: &[&str]) -> String {
        let mut argv: Vec<String> = [
            "fedhub",
            "rp",
            "add-saml",
            "--metadata",
            metadata_url,
            "--owner",
            "000.00.00.H49",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.extend(extra.iter().map(|s| s.to_string()));
        let env = vec![
            (
                "FEDHUB_DATABASE_URL".to_string(),
                self.config.database.url.clone(),
            ),
            (
                "FEDHUB_KEYS_AT_REST_KEY_FILE".to_string(),
                self.config
                    .keys
                    .at_rest_key_file
                    .as_ref()
                    .unwrap()
                    .display()
                    .to_string(),
            ),
        ];
        // The CLI runs its own runtime: give it a thread of its own.
        std::thread::spawn(move || {
            fedhub::cli::run(fedhub::cli::Cli::try_parse_from(argv).unwrap(), &env)
        })
        .join()
        .unwrap()
        .unwrap();
        let entity = metadata_url.to_string();
        self.store
            .read(|c| fedhub::rp::by_entity_id(c, &entity))
            .unwrap()
            .expect("registered")
            .id
    }

    fn account(&self, national_id: &str) -> String {
        let id = national_id.to_string();
        self.store
            .read(|c| fedhub::directory::accounts::by_national_id(c, &id))
            .unwrap()
            .unwrap()
            .id
    }

    /// A membership in `UNIT` (activated with a role, or left "not activated").
    fn member(&self, rp_id: &str, national_id: &str, activated: bool) {
        use fedhub::admin::memberships as m;
        let vault = self.config.at_rest_key().unwrap().unwrap();
        let admin = m::Admin::operator("test");
        let account = self.account(national_id);
        let now = fedhub::clock::Clock::now(&fedhub::clock::SystemClock);
        let rp = rp_id.to_string();
        self.store
            .write(|c| {
                let member = m::add(c, &vault, &admin, &rp, &account, Some(UNIT), now)?;
                if activated {
                    m::activate(c, &admin, &member.id, now)?;
                    m::assign_roles(c, &admin, &member.id, &[ROLE.to_string()], None, now)?;
                    // A level 1 admin of the unit in this portal: the admin_level attribute.
                    let grant = fedhub::admin::grants::GrantRequest {
                        account_id: account.clone(),
                        rp_id: rp.clone(),
                        level: "level1".into(),
                        scope_agency_code: UNIT.into(),
                    };
                    fedhub::admin::grants::grant(c, &admin, &grant, now)?;
                }
                Ok(())
            })
            .unwrap();
    }
}

/// Portal → hub → demo sign-in as `national_id`: the page the hub shows after the sign-in
/// (its auto-POST page, or a refusal).
async fn sign_in_at_hub(b: &Browser, portal: &str, path: &str, national_id: &str) -> Page {
    let chooser = b.visit(&format!("{portal}{path}")).await;
    assert_eq!(chooser.status, 200, "{}", chooser.body);
    assert!(
        chooser.url.path().starts_with("/login/"),
        "the hub asks who signs in: {}",
        chooser.url
    );
    assert!(chooser.body.contains(national_id), "{}", chooser.body);
    let action = format!("{}/demo", chooser.url);
    b.post(&action, &[("national_id", national_id)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_ministry_portal_signs_a_member_in_and_out_through_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(&dir.path().join("hub")).await;
    let portal = start_portal(&hub.base, &dir.path().join("portal")).await;

    // Its metadata: signed, AuthnRequestsSigned, WantAssertionsSigned, ACS POST, SLO.
    let md = reqwest::get(format!("{portal}/saml/metadata"))
        .await
        .unwrap();
    assert_eq!(
        md.headers()[reqwest::header::CONTENT_TYPE],
        "application/samlmetadata+xml"
    );
    let md = md.text().await.unwrap();
    for needle in [
        r#"AuthnRequestsSigned="true""#,
        r#"WantAssertionsSigned="true""#,
        "<ds:SignatureValue>",
        &format!("{portal}/saml/acs"),
        &format!("{portal}/saml/slo"),
    ] {
        assert!(md.contains(needle), "{needle} in {md}");
    }
    let rp_id = hub
        .register(
            &format!("{portal}/saml/metadata"),
            &["--name", "Cổng thông tin Bộ (ví dụ)"],
        )
        .await;
    hub.member(&rp_id, AN, true);

    let b = Browser::new();
    let home = b.visit(&format!("{portal}/")).await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Đăng nhập") && home.body.contains(r#"lang="vi""#));

    // Portal → hub → demo connector → auto-POST back to the portal.
    let post = sign_in_at_hub(&b, &portal, "/login", AN).await;
    assert!(b.cookie("fedhub_sso").is_some(), "a hub session started");
    let signed_in = b.submit_auto_post(&post).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    for shown in [
        "Nguyễn Văn An",
        AN,
        UNIT,
        UNIT_NAME,
        ROLE,
        "Quản trị cấp 1",
        "Công dân",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        "Đăng xuất",
    ] {
        assert!(
            signed_in.body.contains(shown),
            "{shown} in {}",
            signed_in.body
        );
    }
    let session = b.cookie("mp_session").expect("a portal session");
    assert!(session.len() >= 32);
    // English on request.
    let en = b.visit(&format!("{portal}/?lang=en")).await;
    assert!(en.body.contains("Sign out") && en.body.contains(r#"lang="en""#));

    // A tampered Response (an attribute changed) is refused; the genuine one is then
    // accepted once, and only once.
    let sso = b.visit(&format!("{portal}/login")).await;
    let genuine = AutoPost::parse(&sso);
    let xml = genuine.xml();
    assert!(xml.contains(UNIT_NAME));
    let forged = AutoPost {
        message: STANDARD.encode(xml.replace(UNIT_NAME, "Bộ Quốc phòng")),
        action: genuine.action.clone(),
        field: genuine.field.clone(),
        relay_state: genuine.relay_state.clone(),
    };
    let refused = b.post(&forged.action, &forged.fields()).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("Phản hồi đăng nhập không hợp lệ")
            && refused.body.contains("signature"),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("Bộ Quốc phòng"));
    let accepted = b.post(&genuine.action, &genuine.fields()).await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    let replayed = b.post(&genuine.action, &genuine.fields()).await;
    assert_eq!(
        replayed.status, 400,
        "a Response is used once: {}",
        replayed.body
    );

    // Single logout from the portal: both sessions end.
    let out = b.post(&format!("{portal}/logout"), &[]).await;
    assert_eq!(out.status, 303);
    assert!(
        out.location
            .as_deref()
            .unwrap()
            .starts_with(&format!("{}/saml/slo?SAMLRequest=", hub.base)),
        "{:?}",
        out.location
    );
    let done = b.follow(out).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.url.as_str().starts_with(&portal), "{}", done.url);
    assert!(done.body.contains("Bạn đã đăng xuất"), "{}", done.body);
    assert!(b.cookie("mp_session").is_none());
    assert!(b.cookie("fedhub_sso").is_none(), "the hub session ended");
    // A new sign-in asks again.
    let again = b.visit(&format!("{portal}/login")).await;
    assert!(again.url.path().starts_with("/login/"), "{}", again.url);

    // Single logout started at the hub ("sign out everywhere"): the hub sends the portal a
    // LogoutRequest, the portal ends its session and answers.
    let post = b
        .post(&format!("{}/demo", again.url), &[("national_id", AN)])
        .await;
    let page = b.submit_auto_post(&post).await;
    assert!(page.body.contains("Nguyễn Văn An"));
    let everywhere = b.post(&format!("{}/saml/logout", hub.base), &[]).await;
    assert_eq!(everywhere.status, 303, "{}", everywhere.body);
    assert!(
        everywhere
            .location
            .as_deref()
            .unwrap()
            .starts_with(&format!("{portal}/saml/slo?SAMLRequest=")),
        "{:?}",
        everywhere.location
    );
    let finished = b.follow(everywhere).await;
    assert_eq!(finished.status, 200, "{}", finished.body);
    assert!(
        finished.url.as_str().starts_with(&hub.base),
        "{}",
        finished.url
    );
    assert!(
        !finished.body.contains("did not confirm") && !finished.body.contains("chưa xác nhận"),
        "the portal confirmed: {}",
        finished.body
    );
    assert!(b.cookie("mp_session").is_none());
    let home = b.visit(&format!("{portal}/")).await;
    assert!(!home.body.contains("Nguyễn Văn An") && home.body.contains("Đăng nhập"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_ministry_portal_shows_refusals_as_readable_pages() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(&dir.path().join("hub")).await;
    let portal = start_portal(&hub.base, &dir.path().join("portal")).await;
    // A second portal anyone in the directory may use, for a single sign-on session.
    let open = start_portal(&hub.base, &dir.path().join("open")).await;
    let rp_id = hub.register(&format!("{portal}/saml/metadata"), &[]).await;
    hub.register(&format!("{open}/saml/metadata"), &["--without-membership"])
        .await;
    hub.member(&rp_id, BINH, false);

    // Not activated: the hub refuses at its own page (readable, 403), the portal gets nothing.
    let b = Browser::new();
    let refused = sign_in_at_hub(&b, &portal, "/login", BINH).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("Tài khoản chưa được kích hoạt"),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("SAMLResponse"));
    let home = b.visit(&format!("{portal}/")).await;
    assert!(b.cookie("mp_session").is_none() && home.body.contains("Đăng nhập"));

    // Passive sign-in without a hub session: the hub answers NoPassive, the portal explains.
    let no_session = b.visit(&format!("{portal}/login?passive=1")).await;
    let page = b.submit_auto_post(&no_session).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains("Cổng xác thực từ chối đăng nhập")
            && page.body.contains("NoPassive")
            && page.body.contains("no single sign-on session"),
        "{}",
        page.body
    );

    // With a single sign-on session (from the open portal), the portal asking passively gets
    // the hub's signed refusal and shows the hub's reason on its own error page.
    let post = sign_in_at_hub(&b, &open, "/login", BINH).await;
    let at_open = b.submit_auto_post(&post).await;
    assert!(at_open.body.contains("Trần Thị Bình"), "{}", at_open.body);
    let denied = b.visit(&format!("{portal}/login?passive=1&lang=en")).await;
    let page = b.submit_auto_post(&denied).await;
    assert_eq!(page.status, 403, "{}", page.body);
    for shown in [
        "The sign-in hub refused the sign-in",
        "Cổng xác thực từ chối đăng nhập",
        "not allowed to use this service",
        "RequestDenied",
    ] {
        assert!(page.body.contains(shown), "{shown} in {}", page.body);
    }
    assert!(!page.body.contains("Trần Thị Bình"));

    // Garbage at the ACS is a readable 400, never a 500.
    let bad = b
        .post(
            &format!("{portal}/saml/acs"),
            &[("SAMLResponse", "bm90IHhtbA==")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("Phản hồi đăng nhập không hợp lệ"));
    let bad = b.get(&format!("{portal}/saml/slo?SAMLRequest=abc")).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
}
