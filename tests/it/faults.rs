//! Faults, over loopback TCP with real servers: PostgreSQL stopped and started again under a
//! stream of logins, OIDC and SAML (requests fail cleanly while it is down, the node recovers
//! without a restart, nothing is lost or duplicated), and a node killed in the middle of logins
//! that another node finishes, each exactly once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use fedhub::store::{Store, StoreOptions};
use fedhub::web::AppState;
use reqwest::StatusCode;

use crate::oidc_support::*;
use crate::sp::{default_sp, TestSp};
use crate::sso::{signed_query, Reply, CITIZEN};
use crate::support::{self, NOW};

/// No request and no wait in these tests lasts longer than this.
const BOUND: Duration = Duration::from_secs(10);
/// Connections in the pool of the node whose database restarts.
const POOL: u32 = 2;
/// The whole of a test.
const WHOLE: Duration = Duration::from_secs(50);

/// A private PostgreSQL cluster in a temporary directory on a free loopback port, stopped
/// and removed on drop (even when the test panics). Never the machine's shared server.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Cluster {
    fn start() -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("pg_ctl").exists())
            .max_by_key(|p| {
                p.parent()
                    .and_then(|v| v.file_name())
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .unwrap_or_else(|| {
                panic!(
                    "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin. \
                     The fault tests never skip: install them (sudo apt-get install -y postgresql)"
                )
            });
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success(), "chown postgres {}", dir.path().display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster { bin, dir, port };
        let data = cluster.data();
        cluster.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres"]);
        cluster.pg_start();
        cluster.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "fedhub",
            ],
        );
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/fedhub", self.port)
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed:\n{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
    }

    fn pg_start(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &opts,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    fn pg_stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "fast", "-w", "-t", "30", "stop"],
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// Serves `state` on a loopback port as `fedhub serve` does, until `shutdown` fires or the
/// returned task is aborted.
async fn serve(
    state: AppState,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<fedhub::Result<()>>,
) {
    let listener = fedhub::web::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(fedhub::web::serve(
        listener,
        state,
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    (addr, stop, task)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(BOUND)
        .build()
        .unwrap()
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    content_type: String,
    location: String,
    cookies: Vec<String>,
    body: String,
}

impl Answer {
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find_map(|c| {
            c.split(';')
                .next()
                .and_then(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(String::from)
        })
    }
}

/// Sends `req`; a request that hangs beyond [`BOUND`] fails the test.
async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("no answer within {BOUND:?}: {e}"));
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    Answer {
        status: res.status(),
        retry_after: header("retry-after"),
        content_type: header("content-type").unwrap_or_default(),
        location: header("location").unwrap_or_default(),
        cookies: res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(String::from))
            .collect(),
        body: res.text().await.unwrap_or_default(),
    }
}

/// A refusal while the database is away: 503 with Retry-After, a page or OAuth JSON.
fn assert_clean_refusal(step: &str, a: &Answer) {
    assert_eq!(
        a.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{step}: while the database is away only 503 is acceptable: {a:?}"
    );
    assert!(a.retry_after.is_some(), "{step}: 503 without Retry-After");
    assert!(
        a.content_type.starts_with("text/html") || a.content_type.starts_with("application/json"),
        "{step}: {a:?}"
    );
}

/// A login started at the login page: the sign-in form's path, the browser binding cookie
/// and the PKCE verifier.
struct Started {
    path: String,
    bind: String,
    verifier: String,
}

/// authorize → login page, at `addr`. `Err` is a clean refusal (checked).
async fn start_login(
    client: &reqwest::Client,
    addr: SocketAddr,
    hub: &OidcHub,
) -> Result<Started, ()> {
    let (verifier, challenge) = pkce();
    let to_login = answer(client.get(format!(
        "http://{addr}{}",
        hub.authorize_uri(&challenge, "")
    )))
    .await;
    let (path, bind) = open_login_page(client, addr, "authorize", &to_login).await?;
    Ok(Started {
        path,
        bind,
        verifier,
    })
}

/// The login page that `to_login` (a relying party's request, answered at `step`) sends the
/// browser to: its path and the browser binding cookie. `Err` is a clean refusal (checked)
/// of the request or of the page.
async fn open_login_page(
    client: &reqwest::Client,
    addr: SocketAddr,
    step: &str,
    to_login: &Answer,
) -> Result<(String, String), ()> {
    if to_login.status != StatusCode::SEE_OTHER {
        assert_clean_refusal(step, to_login);
        return Err(());
    }
    assert!(to_login.location.starts_with("/login/"), "{to_login:?}");
    let bind = to_login.cookie("fedhub_login").expect("login cookie");
    let page = answer(
        client
            .get(format!("http://{addr}{}", to_login.location))
            .header("cookie", format!("fedhub_login={bind}")),
    )
    .await;
    if page.status != StatusCode::OK {
        assert_clean_refusal("login page", &page);
        return Err(());
    }
    let path = to_login.location.split('?').next().unwrap().to_string();
    Ok((path, bind))
}

/// The demo sign-in of a started login, at `addr`.
async fn sign_in(client: &reqwest::Client, addr: SocketAddr, s: &Started) -> Answer {
    answer(
        client
            .post(format!("http://{addr}{}/dev", s.path))
            .header("cookie", format!("fedhub_login={}", s.bind))
            .form(&[("national_id", CITIZEN)]),
    )
    .await
}

/// Redeems `code` at `addr`.
async fn redeem(
    client: &reqwest::Client,
    addr: SocketAddr,
    hub: &OidcHub,
    code: &str,
    verifier: &str,
) -> Answer {
    answer(
        client
            .post(format!("http://{addr}/oidc/token"))
            .basic_auth(&hub.client_id, hub.secret.as_deref())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ]),
    )
    .await
}

/// What the login loop saw.
#[derive(Default)]
struct Seen {
    /// (code, verifier) of every login answered with a redirect carrying a code.
    codes: Vec<(String, String)>,
    refused: usize,
}

fn count(store: &Store, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    store
        .read(|c| match c {
            fedhub::store::Db::Postgres(c) => Ok(diesel::sql_query(sql).get_result::<N>(c)?.n),
            fedhub::store::Db::Sqlite(_) => unreachable!(),
        })
        .unwrap()
}

/// Waits until `done`, failing at once if `task` (whose progress `done` watches) ended, with
/// its panic, and after `deadline`.
async fn wait_until(
    what: &str,
    deadline: Instant,
    task: &mut tokio::task::JoinHandle<()>,
    mut done: impl FnMut() -> bool,
) {
    while !done() {
        if task.is_finished() {
            match task.await {
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                other => panic!("the login loop ended while waiting for {what}: {other:?}"),
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A private cluster and, on it, a hub whose pool is small and gives up quickly, so that an
/// outage shows within the test's bounds: `oidc_hub_at`'s client, demo connector, citizen and
/// SAML and OIDC keys.
async fn hub_on_private_cluster() -> (Arc<Cluster>, Arc<OidcHub>) {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let url = cluster.url();
    let hub = tokio::task::spawn_blocking(move || {
        let opts = StoreOptions {
            pool_size: POOL,
            connect_timeout: Duration::from_secs(1),
            acquire_timeout: Duration::from_millis(500),
            ..Default::default()
        };
        let store = Store::connect(&url, &opts).unwrap();
        store.migrate().unwrap();
        let test_store = support::TestStore::unguarded(store, url);
        oidc_hub_at(test_store, "http://127.0.0.1:8080", default_registration())
    })
    .await
    .unwrap();
    (Arc::new(cluster), Arc::new(hub))
}

/// `step` (stop or start) on the cluster, off the async threads.
async fn on_cluster(cluster: &Arc<Cluster>, step: fn(&Cluster)) {
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || step(&c)).await.unwrap();
}

async fn readyz(client: &reqwest::Client, addr: SocketAddr) -> StatusCode {
    answer(client.get(format!("http://{addr}/readyz")))
        .await
        .status
}

/// PostgreSQL stopped, then started again, under a running login loop (`logins`, whose
/// progress `answered` and `refused` count; the loop itself checks that every refusal is
/// clean): logins are answered before; while it is down they are refused, /readyz is 503 and
/// no login finishes but one in flight; once it is back, logins are answered again by the
/// same node, without a restart.
async fn restart_under_logins(
    cluster: &Arc<Cluster>,
    addr: SocketAddr,
    client: &reqwest::Client,
    deadline: Instant,
    logins: &mut tokio::task::JoinHandle<()>,
    answered: impl Fn() -> usize,
    refused: impl Fn() -> usize,
) {
    wait_until("logins before the outage", deadline, logins, || {
        answered() >= 3
    })
    .await;

    // PostgreSQL goes away in the middle of the logins.
    on_cluster(cluster, Cluster::pg_stop).await;
    let before = answered();
    let refused_before = refused();
    wait_until("refusals during the outage", deadline, logins, || {
        refused() >= refused_before + 5
    })
    .await;
    assert_eq!(
        readyz(client, addr).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "/readyz during the outage"
    );
    assert!(
        answered() <= before + 1,
        "logins cannot finish without the database"
    );

    // It comes back: logins succeed again on the same node, without restarting it.
    on_cluster(cluster, Cluster::pg_start).await;
    let after = answered();
    wait_until("logins after the restart", deadline, logins, || {
        answered() >= after + 5
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_logins_fails_cleanly_then_recovers_without_loss_or_duplicates() {
    let deadline = Instant::now() + WHOLE;
    let (c, hub) = hub_on_private_cluster().await;
    let (addr, stop_server, server) = serve(hub.state.clone()).await;
    let client = client();
    assert_eq!(readyz(&client, addr).await, StatusCode::OK);

    // Logins in a loop, from a task, until told to stop.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (stop_logins, logins_stopped) = tokio::sync::watch::channel(false);
    let mut logins = tokio::spawn({
        let (seen, hub, client) = (seen.clone(), hub.clone(), client.clone());
        async move {
            while !*logins_stopped.borrow() {
                let Ok(started) = start_login(&client, addr, &hub).await else {
                    seen.lock().unwrap().refused += 1;
                    continue;
                };
                let back = sign_in(&client, addr, &started).await;
                if back.status == StatusCode::SEE_OTHER {
                    assert!(back.location.starts_with(REDIRECT), "{back:?}");
                    let code = query_of(&back.location)["code"].clone();
                    seen.lock().unwrap().codes.push((code, started.verifier));
                } else {
                    assert_clean_refusal("sign-in", &back);
                    seen.lock().unwrap().refused += 1;
                }
            }
        }
    });
    restart_under_logins(
        &c,
        addr,
        &client,
        deadline,
        &mut logins,
        || seen.lock().unwrap().codes.len(),
        || seen.lock().unwrap().refused,
    )
    .await;
    stop_logins.send(true).unwrap();
    tokio::time::timeout(BOUND, logins)
        .await
        .expect("the login loop stops")
        .expect("the login loop saw only successes and clean refusals");
    assert_eq!(readyz(&client, addr).await, StatusCode::OK, "/readyz after");

    // Nothing lost, nothing duplicated: every code is redeemed exactly once.
    let codes = std::mem::take(&mut seen.lock().unwrap().codes);
    let mut unique: Vec<_> = codes.iter().map(|(c, _)| c.clone()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), codes.len(), "a code was handed out twice");
    for (code, verifier) in &codes {
        let first = redeem(&client, addr, &hub, code, verifier).await;
        assert_eq!(first.status, StatusCode::OK, "{first:?}");
        let again = redeem(&client, addr, &hub, code, verifier).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST, "{again:?}");
        assert!(again.body.contains("invalid_grant"), "{again:?}");
    }
    // Every login recorded in the audit log issued a code, and the other way round: no
    // half-written login. (A login whose answer was lost with the connection may have
    // committed, so the database may hold more than the loop saw, never fewer.)
    let store = hub.store.store.clone();
    let (audited, issued) = tokio::task::spawn_blocking(move || {
        (
            count(
                &store,
                "SELECT count(*) AS n FROM audit_log WHERE action = 'login' AND outcome = 'success'",
            ),
            count(&store, "SELECT count(*) AS n FROM oidc_codes"),
        )
    })
    .await
    .unwrap();
    assert_eq!(audited, issued, "logins audited vs codes issued");
    assert!(issued >= codes.len() as i64, "{issued} < {}", codes.len());
    assert!(
        issued <= codes.len() as i64 + 2,
        "{issued} ≫ {}",
        codes.len()
    );

    // A restart while the node is idle: its pooled connections all lost their server. Each
    // may fail one request (503), is then discarded, and the node is ready again.
    on_cluster(&c, Cluster::pg_stop).await;
    on_cluster(&c, Cluster::pg_start).await;
    let mut probes = Vec::new();
    for _ in 0..POOL + 3 {
        probes.push(readyz(&client, addr).await);
    }
    let failed = probes.iter().filter(|s| **s != StatusCode::OK).count();
    assert!(
        failed <= POOL as usize && probes[POOL as usize..].iter().all(|s| *s == StatusCode::OK),
        "at most one failure per dead pooled connection, then ready: {probes:?}"
    );

    stop_server.send(()).unwrap();
    let _ = tokio::time::timeout(BOUND, server).await;
    drop(hub);
    drop(c);
}

/// Registers a SAML service provider with `hub` (signed requests, no membership needed).
fn register_sp(hub: &OidcHub) -> TestSp {
    let sp = default_sp();
    let reg = fedhub::rp::saml::SamlRegistration {
        metadata_xml: sp.metadata(),
        metadata_url: None,
        owner_agency_code: "000.00.00.H49".into(),
        display_name: Some("Cổng DVC thử nghiệm".into()),
        sign: None,
        encrypt_assertion: None,
        name_id_format: None,
        release: None,
        require_activated_membership: Some(false),
    };
    hub.store
        .write(|c| fedhub::rp::saml::add(c, &reg, NOW))
        .unwrap();
    sp
}

/// The query of an HTTP-Redirect AuthnRequest `id` from `sp`, signed, issued at the hub's
/// (manual) now.
fn authn_query(sp: &TestSp, id: &str) -> String {
    let instant = time::OffsetDateTime::from_unix_timestamp(NOW)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{instant}" Destination="{ISSUER}/saml/sso"><saml:Issuer>{}</saml:Issuer></samlp:AuthnRequest>"#,
        sp.entity_id
    );
    signed_query(sp, "SAMLRequest", &xml, Some("rs"))
}

/// How an SP-initiated login ended.
enum SamlLogin {
    /// The auto-POST page for the SP: the Response, decoded.
    Answered(String),
    /// A clean refusal (checked): `accepted` when the hub had taken the AuthnRequest (sent
    /// the browser on to its login page).
    Refused { accepted: bool },
}

/// AuthnRequest `id` → login page → demo sign-in, at `addr`.
async fn saml_login(
    client: &reqwest::Client,
    addr: SocketAddr,
    sp: &TestSp,
    id: &str,
) -> SamlLogin {
    let to_login =
        answer(client.get(format!("http://{addr}/saml/sso?{}", authn_query(sp, id)))).await;
    // The SP sent a browser: a refusal is a page for the person, never a JSON error.
    let page_for_a_person = |a: &Answer| {
        assert!(a.content_type.starts_with("text/html"), "{a:?}");
    };
    if to_login.status != StatusCode::SEE_OTHER {
        page_for_a_person(&to_login);
    }
    let Ok((path, bind)) = open_login_page(client, addr, "SAML request", &to_login).await else {
        return SamlLogin::Refused {
            accepted: to_login.status == StatusCode::SEE_OTHER,
        };
    };
    let started = Started {
        path,
        bind,
        verifier: String::new(),
    };
    let back = sign_in(client, addr, &started).await;
    if back.status != StatusCode::OK {
        assert_clean_refusal("sign-in", &back);
        page_for_a_person(&back);
        return SamlLogin::Refused { accepted: true };
    }
    assert!(back.content_type.starts_with("text/html"), "{back:?}");
    let page = Reply {
        status: back.status,
        headers: Default::default(),
        body: back.body,
    };
    SamlLogin::Answered(page.saml_response())
}

/// The values of `attr` on every `<tag ...>` of `xml`.
fn attributes_of(xml: &str, tag: &str, attr: &str) -> Vec<String> {
    xml.split(&format!("<{tag} "))
        .skip(1)
        .filter_map(|rest| {
            let element = rest.split('>').next()?;
            let (_, value) = element.split_once(&format!(" {attr}=\""))?;
            Some(value.split('"').next()?.to_string())
        })
        .collect()
}

/// What the SAML login loop saw.
#[derive(Default)]
struct SeenSaml {
    /// (AuthnRequest ID, the Response) of every login the SP got an answer for.
    answered: Vec<(String, String)>,
    /// AuthnRequests the hub took (sent on to the login page).
    accepted: usize,
    refused: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_saml_logins_fails_cleanly_then_recovers_without_loss_or_duplicates(
) {
    let deadline = Instant::now() + WHOLE;
    let (c, hub) = hub_on_private_cluster().await;
    let sp = Arc::new({
        let hub = hub.clone();
        tokio::task::spawn_blocking(move || register_sp(&hub))
            .await
            .unwrap()
    });
    let (addr, stop_server, server) = serve(hub.state.clone()).await;
    let client = client();
    assert_eq!(readyz(&client, addr).await, StatusCode::OK);

    // SP-initiated logins in a loop, each a fresh browser with a new AuthnRequest.
    let seen = Arc::new(Mutex::new(SeenSaml::default()));
    let (stop_logins, logins_stopped) = tokio::sync::watch::channel(false);
    let mut logins = tokio::spawn({
        let (seen, sp, client) = (seen.clone(), sp.clone(), client.clone());
        async move {
            let mut n = 0;
            while !*logins_stopped.borrow() {
                n += 1;
                let id = format!("_fault-{n}");
                let ended = saml_login(&client, addr, &sp, &id).await;
                let mut seen = seen.lock().unwrap();
                match ended {
                    SamlLogin::Answered(xml) => {
                        seen.accepted += 1;
                        seen.answered.push((id, xml));
                    }
                    SamlLogin::Refused { accepted } => {
                        seen.refused += 1;
                        seen.accepted += usize::from(accepted);
                    }
                }
            }
        }
    });
    restart_under_logins(
        &c,
        addr,
        &client,
        deadline,
        &mut logins,
        || seen.lock().unwrap().answered.len(),
        || seen.lock().unwrap().refused,
    )
    .await;
    stop_logins.send(true).unwrap();
    tokio::time::timeout(BOUND, logins)
        .await
        .expect("the login loop stops")
        .expect("the login loop saw only answers and clean refusals");
    assert_eq!(readyz(&client, addr).await, StatusCode::OK, "/readyz after");
    let seen = std::mem::take(&mut *seen.lock().unwrap());

    // Every answer is a signed-in Success for the request it answers, and no Response or
    // assertion ID was ever issued twice.
    let mut response_ids = Vec::new();
    let mut assertion_ids = Vec::new();
    for (request, xml) in &seen.answered {
        assert_eq!(
            attributes_of(xml, "samlp:Response", "InResponseTo"),
            [request.as_str()],
            "{xml}"
        );
        assert!(
            xml.contains(r#"Value="urn:oasis:names:tc:SAML:2.0:status:Success""#),
            "{xml}"
        );
        response_ids.extend(attributes_of(xml, "samlp:Response", "ID"));
        let ids = attributes_of(xml, "saml:Assertion", "ID");
        assert_eq!(ids.len(), 1, "one assertion per Response: {xml}");
        assertion_ids.extend(ids);
    }
    for (what, ids) in [("Response", response_ids), ("assertion", assertion_ids)] {
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "a {what} ID was issued twice");
        assert_eq!(ids.len(), seen.answered.len());
    }
    // A request answered before is not answered again, also after the restart.
    let (first, _) = &seen.answered[0];
    let replayed = answer(client.get(format!(
        "http://{addr}/saml/sso?{}",
        authn_query(&sp, first)
    )))
    .await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST, "{replayed:?}");

    // What the database holds agrees with what the browsers saw. A login whose answer was
    // lost with the connection may have committed, so it may hold a little more, never less.
    let store = hub.store.store.clone();
    let [replay_rows, sessions, served, logins_audited, answers_audited] =
        tokio::task::spawn_blocking(move || {
            [
                "SELECT count(*) AS n FROM saml_replay",
                "SELECT count(*) AS n FROM sso_sessions",
                "SELECT count(*) AS n FROM sso_session_rps",
                "SELECT count(*) AS n FROM audit_log WHERE action = 'login' AND outcome = 'success'",
                "SELECT count(*) AS n FROM audit_log WHERE action = 'saml.sso' AND outcome = 'success'",
            ]
            .map(|sql| count(&store, sql))
        })
        .await
        .unwrap();
    let answered = seen.answered.len() as i64;
    let accepted = seen.accepted as i64;
    // Each request the hub took is remembered once (its replay row).
    assert!(
        (accepted..=accepted + 2).contains(&replay_rows),
        "replay rows {replay_rows}, requests taken {accepted}"
    );
    // A sign-in is one transaction: SSO session and its audit entry together; so is an
    // answer: the SP's row in the session and its audit entry.
    assert_eq!(logins_audited, sessions, "logins audited vs SSO sessions");
    assert_eq!(answers_audited, served, "answers audited vs SPs served");
    assert!(
        (answered..=answered + 2).contains(&served),
        "SPs served {served}, answers seen {answered}"
    );
    // The sign-in and the SP's answer are one transaction: no SSO session is left without
    // the SP it was started for, whenever the outage struck.
    assert_eq!(sessions, served, "SSO sessions vs SPs served");

    stop_server.send(()).unwrap();
    let _ = tokio::time::timeout(BOUND, server).await;
    drop(hub);
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_in_the_middle_of_logins_leaves_them_to_another_node_each_once() {
    const LOGINS: usize = 6;
    let hub = tokio::task::spawn_blocking(|| {
        oidc_hub_at(
            support::postgres(),
            "http://127.0.0.1:8080",
            default_registration(),
        )
    })
    .await
    .unwrap();
    let b_store = hub.store.another_node();
    let b_state = AppState::new(
        (*hub.state.config).clone(),
        b_store,
        Arc::new(hub.clock.clone()),
    )
    .unwrap();
    let (a, _stop_a, node_a) = serve(hub.state.clone()).await;
    let (b, stop_b, node_b) = serve(b_state).await;
    let client = client();

    // N logins started on node A: authorize and the login page.
    let mut started = Vec::new();
    for _ in 0..LOGINS {
        started.push(
            start_login(&client, a, &hub)
                .await
                .expect("node A serves while it is up"),
        );
    }
    // One more login in flight on A when it dies: it may fail, but must not hang.
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .get(format!("http://{a}/login/whatever"))
                .send()
                .await
        }
    });

    // Node A dies abruptly: its server task is aborted, its listener and connections dropped.
    node_a.abort();
    assert!(node_a.await.unwrap_err().is_cancelled());
    let _ = tokio::time::timeout(BOUND, in_flight)
        .await
        .expect("a request in flight on the dead node ends");
    let fresh = reqwest::Client::builder().timeout(BOUND).build().unwrap();
    assert!(
        fresh
            .get(format!("http://{a}/healthz"))
            .send()
            .await
            .is_err(),
        "node A is gone"
    );

    // Node B finishes every login A started, each exactly once.
    for s in &started {
        let back = sign_in(&client, b, s).await;
        assert_eq!(back.status, StatusCode::SEE_OTHER, "{back:?}");
        assert!(back.location.starts_with(REDIRECT), "{back:?}");
        let again = sign_in(&client, b, s).await;
        assert_ne!(
            again.status,
            StatusCode::SEE_OTHER,
            "a login finishes once: {again:?}"
        );
        let code = query_of(&back.location)["code"].clone();
        let tokens = redeem(&client, b, &hub, &code, &s.verifier).await;
        assert_eq!(tokens.status, StatusCode::OK, "{tokens:?}");
        let id: serde_json::Value = serde_json::from_str(&tokens.body).unwrap();
        assert_eq!(
            jwt_claims(id["id_token"].as_str().unwrap())["aud"],
            hub.client_id.as_str()
        );
        let twice = redeem(&client, b, &hub, &code, &s.verifier).await;
        assert_eq!(twice.status, StatusCode::BAD_REQUEST, "{twice:?}");
    }
    let store = hub.store.store.clone();
    let (audited, issued) = tokio::task::spawn_blocking(move || {
        (
            count(
                &store,
                "SELECT count(*) AS n FROM audit_log WHERE action = 'login' AND outcome = 'success'",
            ),
            count(&store, "SELECT count(*) AS n FROM oidc_codes"),
        )
    })
    .await
    .unwrap();
    assert_eq!((audited, issued), (LOGINS as i64, LOGINS as i64));

    stop_b.send(()).unwrap();
    let _ = tokio::time::timeout(BOUND, node_b).await;
}

/// The server ends a connection (what every pooled connection sees on a fast shutdown:
/// `pg_terminate_backend` sends the same "terminating connection due to administrator
/// command"): in the middle of a query, or while it idles in the pool. The query that meets
/// it fails as `Unavailable` (503), never `Internal` (500), and the pool then serves again.
#[test]
fn a_connection_the_server_ends_is_unavailable_then_replaced() {
    let store = support::postgres_with(&StoreOptions {
        pool_size: 1,
        ..Default::default()
    });
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let pid = |store: &Store| {
        store
            .read(|c| match c {
                fedhub::store::Db::Postgres(c) => {
                    Ok(diesel::sql_query("SELECT pg_backend_pid() AS pid")
                        .get_result::<Pid>(c)?
                        .pid)
                }
                fedhub::store::Db::Sqlite(_) => unreachable!(),
            })
            .unwrap()
    };
    let kill = |pid: i32| {
        let mut admin = fedhub::store::establish(&support::postgres_url()).unwrap();
        diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
            .execute(&mut admin)
            .unwrap();
    };

    // In the middle of a query (here: the query itself), inside a write transaction and out.
    for write in [false, true] {
        let f = |c: &mut fedhub::store::Db| match c {
            fedhub::store::Db::Postgres(c) => {
                diesel::sql_query("SELECT pg_terminate_backend(pg_backend_pid())").execute(c)?;
                Ok(())
            }
            fedhub::store::Db::Sqlite(_) => unreachable!(),
        };
        let r = if write { store.write(f) } else { store.read(f) };
        assert!(
            matches!(r, Err(fedhub::Error::Unavailable(_))),
            "write {write}: {r:?}"
        );
        let first = pid(&store);
        assert!(first > 0, "a fresh connection serves");
    }

    // While idle in the pool: its next query fails as Unavailable or (if the pool noticed)
    // succeeds on a new connection; the one after succeeds either way.
    let old = pid(&store);
    kill(old);
    std::thread::sleep(Duration::from_millis(200));
    let r = store.read(|c| match c {
        fedhub::store::Db::Postgres(c) => {
            diesel::sql_query("SELECT 1").execute(c)?;
            Ok(())
        }
        fedhub::store::Db::Sqlite(_) => unreachable!(),
    });
    assert!(
        r.is_ok() || matches!(r, Err(fedhub::Error::Unavailable(_))),
        "{r:?}"
    );
    assert_ne!(pid(&store), old, "the dead connection was replaced");
}
