//! Faults, over loopback TCP with real servers: PostgreSQL stopped and started again under a
//! stream of logins (requests fail cleanly while it is down, the node recovers without a
//! restart, nothing is lost or duplicated), and a node killed in the middle of logins that
//! another node finishes, each exactly once.

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
use crate::sso::CITIZEN;
use crate::support;

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
    if to_login.status != StatusCode::SEE_OTHER {
        assert_clean_refusal("authorize", &to_login);
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
    Ok(Started {
        path,
        bind,
        verifier,
    })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_logins_fails_cleanly_then_recovers_without_loss_or_duplicates() {
    let deadline = Instant::now() + WHOLE;
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
    let hub = Arc::new(hub);
    let (addr, stop_server, server) = serve(hub.state.clone()).await;
    let client = client();
    let ready = |client: reqwest::Client| async move {
        answer(client.get(format!("http://{addr}/readyz")))
            .await
            .status
    };
    assert_eq!(ready(client.clone()).await, StatusCode::OK);

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
    let codes = || seen.lock().unwrap().codes.len();
    let refused = || seen.lock().unwrap().refused;
    wait_until("logins before the outage", deadline, &mut logins, || {
        codes() >= 3
    })
    .await;

    // PostgreSQL goes away in the middle of the logins.
    let c = Arc::new(cluster);
    tokio::task::spawn_blocking({
        let c = c.clone();
        move || c.pg_stop()
    })
    .await
    .unwrap();
    let before = codes();
    wait_until("refusals during the outage", deadline, &mut logins, || {
        refused() >= 5
    })
    .await;
    assert_eq!(
        ready(client.clone()).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "/readyz during the outage"
    );
    assert!(
        codes() <= before + 1,
        "logins cannot finish without the database"
    );

    // It comes back: logins succeed again on the same node, without restarting it.
    tokio::task::spawn_blocking({
        let c = c.clone();
        move || c.pg_start()
    })
    .await
    .unwrap();
    let after = codes();
    wait_until("logins after the restart", deadline, &mut logins, || {
        codes() >= after + 5
    })
    .await;
    stop_logins.send(true).unwrap();
    tokio::time::timeout(BOUND, logins)
        .await
        .expect("the login loop stops")
        .expect("the login loop saw only successes and clean refusals");
    assert_eq!(ready(client.clone()).await, StatusCode::OK, "/readyz after");

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
    for step in ["stop", "start"] {
        let c = c.clone();
        tokio::task::spawn_blocking(move || match step {
            "stop" => c.pg_stop(),
            _ => c.pg_start(),
        })
        .await
        .unwrap();
    }
    let mut probes = Vec::new();
    for _ in 0..POOL + 3 {
        probes.push(ready(client.clone()).await);
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
