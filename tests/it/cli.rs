//! The CLI in-process: each class of bad input exits with its code and a message naming the
//! field and the rule, and leaves nothing half-written.

use clap::Parser;
use fedhub::cli::{run, Cli, Failure};
use fedhub::Error;

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn env(&self) -> Vec<(String, String)> {
        vec![(
            "FEDHUB_DATABASE_URL".into(),
            format!("sqlite://{}", self.dir.path().join("cli.db").display()),
        )]
    }
    fn run(&self, args: &[&str]) -> Result<(), Failure> {
        self.run_env(args, self.env())
    }
    fn run_env(&self, args: &[&str], env: Vec<(String, String)>) -> Result<(), Failure> {
        let mut argv = vec!["fedhub"];
        argv.extend_from_slice(args);
        run(Cli::try_parse_from(argv).unwrap(), &env)
    }
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
    fn store(&self) -> fedhub::store::Store {
        let url = format!("sqlite://{}", self.dir.path().join("cli.db").display());
        fedhub::store::Store::connect(&url, &Default::default()).unwrap()
    }
}

fn invalid_field(r: Result<(), Failure>) -> String {
    match r {
        Err(Failure::App(e @ Error::Invalid { .. })) => {
            assert_eq!(e.exit_code(), 2);
            match e {
                Error::Invalid { field, .. } => field,
                _ => unreachable!(),
            }
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[test]
fn bad_configuration_names_the_key() {
    let s = Scratch::new();
    let mut env = s.env();
    env.push(("FEDHUB_SERVER_LISTEN".into(), "nowhere".into()));
    match s.run_env(&["config"], env) {
        Err(Failure::Config(e)) => {
            assert_eq!(e.key, "server.listen");
            assert!(e.to_string().contains("127.0.0.1:8080"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let missing = s.dir.path().join("missing.toml").display().to_string();
    assert!(
        matches!(s.run(&["--config", &missing, "config"]), Err(Failure::Config(e)) if e.key == "--config")
    );
    let bad = s.file("bad.toml", "[database]\nurl = 5\n");
    assert!(
        matches!(s.run_env(&["--config", &bad, "migrate"], vec![]), Err(Failure::Config(e)) if e.key == "database.url")
    );
    // The environment wins over the file: the same bad file with FEDHUB_DATABASE_URL set works.
    s.run(&["--config", &bad, "migrate"]).unwrap();
}

#[test]
fn bad_identifiers_are_refused_and_nothing_is_written() {
    let s = Scratch::new();
    let field = invalid_field(s.run(&[
        "account",
        "add",
        "--kind",
        "citizen",
        "--name",
        "Nguyễn Văn An",
        "--national-id",
        "12345",
    ]));
    assert_eq!(field, "national_id");
    let field = invalid_field(s.run(&[
        "account",
        "add",
        "--kind",
        "organisation",
        "--name",
        "Công ty A",
        "--tax-code",
        "0101234566",
    ]));
    assert_eq!(field, "tax_code");
    let field = invalid_field(s.run(&[
        "account",
        "add",
        "--kind",
        "citizen",
        "--name",
        "A",
        "--national-id",
        "001204012345",
        "--email",
        "not-an-email",
    ]));
    assert_eq!(field, "email");
    let field = invalid_field(s.run(&["agency", "show", "G12"]));
    assert_eq!(field, "agency_code");
    assert_eq!(
        s.store().read(fedhub::directory::accounts::count).unwrap(),
        0
    );
}

#[test]
fn missing_parent_and_duplicates() {
    let s = Scratch::new();
    let field = invalid_field(s.run(&["agency", "add", "000.00.18.G12", "--name-vi", "Cục Thuế"]));
    assert_eq!(field, "agency_code");
    let csv = s.file(
        "a.csv",
        "code,name_vi\n000.00.00.G12,Bộ Tài chính\n000.00.05.G13,Mồ côi\n",
    );
    let field = invalid_field(s.run(&["agency", "import", &csv]));
    assert_eq!(field, "file");
    assert_eq!(
        s.store().read(fedhub::directory::agencies::count).unwrap(),
        0,
        "all or nothing"
    );

    s.run(&["agency", "import-builtin"]).unwrap();
    s.run(&["agency", "add", "000.00.18.G12", "--name-vi", "Cục Thuế"])
        .unwrap();
    match s.run(&["agency", "add", "000.00.18.G12", "--name-vi", "Cục Thuế"]) {
        Err(Failure::App(e @ Error::Conflict { .. })) => assert_eq!(e.exit_code(), 2),
        other => panic!("{other:?}"),
    }
    s.run(&[
        "account",
        "add",
        "--kind",
        "citizen",
        "--name",
        "Nguyễn Văn An",
        "--national-id",
        "001204012345",
    ])
    .unwrap();
    assert!(matches!(
        s.run(&["account", "add", "--kind", "citizen", "--name", "Khác", "--national-id", "001204012345"]),
        Err(Failure::App(Error::Conflict { field, .. })) if field == "national_id"
    ));
    s.run(&["account", "find", "nguyen van an"]).unwrap();
    s.run(&["audit", "tail"]).unwrap();
    assert_eq!(
        invalid_field(s.run(&["audit", "export", "--since", "last week"])),
        "since"
    );
    s.run(&[
        "audit",
        "export",
        "--since",
        "2020-01-01",
        "--format",
        "jsonl",
    ])
    .unwrap();
    let entries = s.store().read(|c| fedhub::audit::tail(c, 100)).unwrap();
    assert!(entries
        .iter()
        .any(|e| e.action == "agency.import" && e.outcome == "failure"));
    assert!(entries
        .iter()
        .any(|e| e.action == "account.add" && e.outcome == "failure"));
}

#[test]
fn unreachable_database_exits_4() {
    let s = Scratch::new();
    let env = vec![
        (
            "FEDHUB_DATABASE_URL".to_string(),
            "postgres://postgres@127.0.0.1:1/test".to_string(),
        ),
        (
            "FEDHUB_DATABASE_CONNECT_TIMEOUT".to_string(),
            "1s".to_string(),
        ),
    ];
    match s.run_env(&["agency", "list"], env) {
        Err(Failure::App(e @ Error::Unavailable(_))) => {
            assert_eq!(e.exit_code(), 4);
            // The driver's own reason reaches the operator, not a generic "invalid URL".
            let text = e.to_string();
            assert!(
                text.contains("port 1") || text.to_lowercase().contains("connection refused"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn serve_refuses_to_start_without_an_at_rest_key() {
    let s = Scratch::new();
    match s.run(&["serve"]) {
        Err(Failure::Config(e)) => assert_eq!(e.key, "keys.at_rest_key_file"),
        other => panic!("{other:?}"),
    }
    assert!(
        !s.dir.path().join("cli.db").exists(),
        "refused before touching the database"
    );
}

#[test]
fn demo_refuses_a_used_port_and_touches_nothing() {
    let s = Scratch::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = s.dir.path().join("demo");
    let data_s = data.display().to_string();
    match s.run(&["demo", "--listen", &addr, "--data-dir", &data_s]) {
        Err(Failure::App(Error::Invalid { field, rule })) => {
            assert_eq!(field, "server.listen");
            assert!(rule.contains(&addr), "{rule}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!data.exists(), "nothing created");
}

#[test]
fn demo_seeds_directory_and_token() {
    let s = Scratch::new();
    let data = s.dir.path().join("demo");
    let data_s = data.display().to_string();
    s.run(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_s,
        "--seed-only",
    ])
    .unwrap();
    let url = format!("sqlite://{}", data.join("demo.db").display());
    let store = fedhub::store::Store::connect(&url, &Default::default()).unwrap();
    assert!(store.read(fedhub::directory::accounts::count).unwrap() >= 5);
    let found = store
        .read(|c| fedhub::directory::accounts::find(c, "0912345678", 10))
        .unwrap();
    assert_eq!(found[0].display_name, "Nguyễn Văn An");
    // Running it again starts fresh instead of failing on duplicates.
    s.run(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_s,
        "--seed-only",
    ])
    .unwrap();
}

#[test]
fn serve_without_migrating_refuses_a_database_with_pending_migrations() {
    let s = Scratch::new();
    let mut env = s.env();
    env.push(("FEDHUB_KEYS_AT_REST_KEY".into(), fedhub_metadata_key()));
    env.push(("FEDHUB_SERVER_LISTEN".into(), "127.0.0.1:0".into()));
    match s.run_env(&["serve", "--no-migrate"], env) {
        Err(Failure::App(Error::Invalid { field, rule })) => {
            assert_eq!(field, "database");
            assert!(
                rule.contains("pending") && rule.contains("fedhub migrate"),
                "{rule}"
            );
        }
        other => panic!("{other:?}"),
    }
    s.run(&["migrate", "--check"]).unwrap_err();
    s.run(&["migrate"]).unwrap();
    s.run(&["migrate", "--check"]).unwrap();
}

/// A well-formed at-rest key (32 bytes, base64).
fn fedhub_metadata_key() -> String {
    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string()
}

#[test]
fn serve_refuses_an_at_rest_key_that_cannot_open_the_signing_keys() {
    let s = Scratch::new();
    let mut env = s.env();
    env.push(("FEDHUB_KEYS_AT_REST_KEY".into(), fedhub_metadata_key()));
    s.run_env(&["keys", "rotate"], env).unwrap();
    let mut env = s.env();
    env.push((
        "FEDHUB_KEYS_AT_REST_KEY".into(),
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=".into(),
    ));
    env.push(("FEDHUB_SERVER_LISTEN".into(), "127.0.0.1:0".into()));
    match s.run_env(&["serve"], env) {
        Err(Failure::Config(e)) => {
            assert_eq!(e.key, "keys.at_rest_key_file");
            assert!(e.problem.contains("cannot be opened"), "{}", e.problem);
        }
        other => panic!("{other:?}"),
    }
    // Nothing was sealed with the wrong key.
    let all = s.store().read(fedhub::keys::list).unwrap();
    assert!(
        all.iter().all(|k| k.purpose == "saml"),
        "no OIDC keys created under the wrong at-rest key"
    );
    // The first rotation of an empty store publishes a next key instead of promoting it.
    let list: Vec<_> = all.into_iter().filter(|k| k.purpose == "saml").collect();
    assert_eq!(list.iter().filter(|k| k.state == "current").count(), 1);
    assert_eq!(list.iter().filter(|k| k.state == "next").count(), 1);
    assert!(list.iter().all(|k| k.state != "previous"));
}

#[test]
fn connectors_are_registered_checked_and_their_secrets_sealed() {
    let s = Scratch::new();
    let mut env = s.env();
    env.push(("FEDHUB_KEYS_AT_REST_KEY".into(), fedhub_metadata_key()));
    s.run_env(&["migrate"], env.clone()).unwrap();
    let secret = s.file("secret.txt", "upstream-client-secret-42\n");
    let add = |issuer: &str, id: &str| {
        s.run_env(
            &[
                "connector",
                "add-oidc",
                "--id",
                id,
                "--name",
                "Tài khoản định danh điện tử",
                "--issuer",
                issuer,
                "--client-id",
                "fedhub",
                "--client-secret-file",
                &secret,
            ],
            env.clone(),
        )
    };
    assert_eq!(
        invalid_field(add("http://id.example.gov.vn", "vneid")),
        "issuer"
    );
    assert_eq!(
        invalid_field(add("https://id.example.gov.vn", "VNeID!")),
        "id"
    );
    add("https://id.example.gov.vn", "vneid").unwrap();
    match add("https://id.example.gov.vn", "vneid") {
        Err(Failure::App(Error::Conflict { field, .. })) => assert_eq!(field, "id"),
        other => panic!("{other:?}"),
    }
    let stored = s
        .store()
        .read(|c| fedhub::upstream::get(c, "vneid"))
        .unwrap();
    assert!(
        !stored.config.contains("upstream-client-secret-42"),
        "the client secret is stored sealed"
    );
    // It opens with the at-rest key, and the redirect URI to register is the hub's.
    let up = fedhub::upstream::oidc_upstream(
        &stored,
        &fedhub_metadata::AtRestKey::from_base64(&fedhub_metadata_key()).unwrap(),
        "http://127.0.0.1:8080",
    )
    .unwrap();
    assert_eq!(up.client_secret, "upstream-client-secret-42");
    assert_eq!(
        up.redirect_uri,
        "http://127.0.0.1:8080/connectors/vneid/callback"
    );
    // A certificate connector needs real trust anchors.
    let not_pem = s.file("root.pem", "not a certificate");
    let r = s.run_env(
        &[
            "connector",
            "add-certificate",
            "--id",
            "usb",
            "--name",
            "USB ký số",
            "--trust-anchor",
            &not_pem,
        ],
        env.clone(),
    );
    assert_eq!(invalid_field(r), "trust_anchors_pem");
    s.run_env(&["connector", "disable", "vneid"], env.clone())
        .unwrap();
    let stored = s
        .store()
        .read(|c| fedhub::upstream::get(c, "vneid"))
        .unwrap();
    assert!(!stored.enabled);
    match s.run_env(&["connector", "disable", "nope"], env.clone()) {
        Err(Failure::App(Error::NotFound { .. })) => {}
        other => panic!("{other:?}"),
    }
}
