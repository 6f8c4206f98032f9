//! The CLI in-process: each class of bad input exits with its code and a message naming the
//! field and the rule, and leaves nothing half-written.

use clap::Parser;
use diesel::connection::SimpleConnection as _;
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
        std::time::Duration::from_secs(60),
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

/// The variable carrying the arguments of a `fedhub` run to [`cli_child_process`].
const CHILD_ARGS: &str = "IT_FEDHUB_CLI_CHILD_ARGS";

/// Not a test by itself: the `fedhub` command run in a process of its own by
/// [`Scratch::process`], so that what it prints to stdout and its exit code can be seen.
#[test]
#[ignore = "runs only as the child process of another test"]
fn cli_child_process() {
    let Ok(args) = std::env::var(CHILD_ARGS) else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).unwrap();
    let mut argv = vec!["fedhub".to_string()];
    argv.extend(args);
    let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k != CHILD_ARGS).collect();
    let code = match run(Cli::try_parse_from(argv).unwrap(), &env) {
        Ok(()) => 0,
        Err(Failure::Config(e)) => {
            eprintln!("fedhub: {e}");
            3
        }
        Err(Failure::App(e)) => {
            eprintln!("fedhub: {e}");
            i32::from(e.exit_code())
        }
    };
    use std::io::Write as _;
    std::io::stdout().flush().unwrap();
    std::io::stderr().flush().unwrap();
    std::process::exit(code);
}

/// What a `fedhub` process printed and how it exited.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Scratch {
    /// Runs `fedhub ARGS` with `env` (and nothing else of `FEDHUB_*`) in its own process:
    /// this test binary, re-entered at [`cli_child_process`].
    fn process(&self, args: &[&str], env: &[(String, String)]) -> Ran {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "cli::cli_child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ]);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FEDHUB_")) {
            cmd.env_remove(k);
        }
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(CHILD_ARGS, serde_json::to_string(args).unwrap());
        let out = cmd.output().unwrap();
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Minimal IdP metadata: one signing certificate, one Redirect SingleSignOnService.
pub(crate) fn idp_metadata(cert_der: &[u8], entity_id: &str, sso: &str) -> String {
    use base64::Engine as _;
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity_id}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="true"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#,
        base64::engine::general_purpose::STANDARD.encode(cert_der)
    )
}

/// A fresh IdP signing certificate (DER).
pub(crate) fn idp_cert() -> Vec<u8> {
    use fedhub_metadata::keys::{generate, KeyAlg};
    generate(KeyAlg::Rsa2048, "idp", crate::support::NOW - 86_400, 365)
        .unwrap()
        .cert_der
}

/// An invalid-input refusal: exit code 2, the field it names, and its rule.
fn refused_invalid(r: Result<(), Failure>) -> (String, String) {
    match r {
        Err(Failure::App(e @ Error::Invalid { .. })) => {
            assert_eq!(e.exit_code(), 2);
            match e {
                Error::Invalid { field, rule } => (field, rule),
                _ => unreachable!(),
            }
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[test]
fn saml_connectors_are_registered_from_idp_metadata_and_bad_ones_refused() {
    const IDP: &str = "https://idp.botuphap.example.gov.vn/idp";
    let s = Scratch::new();
    let mut env = s.env();
    env.push((
        "FEDHUB_SERVER_PUBLIC_URL".into(),
        "https://sso.example.gov.vn".into(),
    ));
    s.run_env(&["migrate"], env.clone()).unwrap();
    let good = s.file(
        "idp.xml",
        &idp_metadata(&idp_cert(), IDP, "https://idp.botuphap.example.gov.vn/sso"),
    );

    let added = s.process(
        &[
            "connector",
            "add-saml",
            "--id",
            "bo-tu-phap",
            "--name",
            "Bộ Tư pháp",
            "--metadata",
            &good,
            "--map",
            "urn:oid:2.5.4.42=name",
        ],
        &env,
    );
    assert_eq!(added.code, Some(0), "{}\n{}", added.stdout, added.stderr);
    assert!(
        added
            .stdout
            .contains("connector bo-tu-phap (Bộ Tư pháp) added"),
        "{}",
        added.stdout
    );
    assert!(
        added
            .stdout
            .contains("https://sso.example.gov.vn/connectors/bo-tu-phap/saml/metadata"),
        "the SP metadata URL to give the IdP: {}",
        added.stdout
    );

    let list = s.process(&["connector", "list"], &env);
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    let listed = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.contains('\t'))
            .map(String::from)
            .collect()
    };
    let before = listed(&list.stdout);
    assert_eq!(
        before,
        vec!["bo-tu-phap\tsaml\tenabled\tBộ Tư pháp".to_string()],
        "{}",
        list.stdout
    );

    let show = s.process(&["connector", "show", "bo-tu-phap"], &env);
    assert_eq!(show.code, Some(0), "{}", show.stderr);
    let json = &show.stdout[show.stdout.find('{').unwrap()..=show.stdout.rfind('}').unwrap()];
    let shown: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(shown["id"], "bo-tu-phap");
    assert_eq!(shown["kind"], "saml");
    assert_eq!(shown["enabled"], true);
    assert_eq!(shown["settings"]["entity_id"], IDP);
    assert_eq!(
        shown["settings"]["attribute_map"]["urn:oid:2.5.4.42"],
        "name"
    );

    // Refusals: each names what is wrong, exits 2, and adds nothing.
    let add = |id: &str, metadata: &str, map: Option<&str>| {
        let mut args = vec![
            "connector",
            "add-saml",
            "--id",
            id,
            "--name",
            "IdP khác",
            "--metadata",
            metadata,
        ];
        if let Some(m) = map {
            args.extend(["--map", m]);
        }
        s.run_env(&args, env.clone())
    };
    let other = s.file(
        "other.xml",
        &idp_metadata(
            &idp_cert(),
            "https://idp.other.example.gov.vn/idp",
            "https://idp.other.example.gov.vn/sso",
        ),
    );
    let plain_http = s.file(
        "http.xml",
        &idp_metadata(
            &idp_cert(),
            "https://idp.other.example.gov.vn/idp",
            "http://idp.other.example.gov.vn/sso",
        ),
    );
    let (field, rule) = refused_invalid(add("other", &plain_http, None));
    assert_eq!(field, "metadata");
    assert!(
        rule.contains("http://idp.other.example.gov.vn/sso") && rule.contains("https://"),
        "{rule}"
    );
    // The same refusal as the operator sees it: a message on stderr, a non-zero exit.
    let ran = s.process(
        &[
            "connector",
            "add-saml",
            "--id",
            "other",
            "--name",
            "IdP khác",
            "--metadata",
            &plain_http,
        ],
        &env,
    );
    assert_eq!(ran.code, Some(2), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr.contains("metadata") && ran.stderr.contains("https://"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stdout.contains("added"), "{}", ran.stdout);

    let (field, rule) = refused_invalid(add("other", &other, Some("x=password")));
    assert_eq!(field, "attribute_map");
    assert!(
        rule.contains("password") && rule.contains("not an attribute the hub knows"),
        "{rule}"
    );
    let (field, rule) = refused_invalid(add("other", &other, Some("urn:oid:2.5.4.42")));
    assert_eq!(field, "map");
    assert!(rule.contains("SAML_NAME=ATTRIBUTE"), "{rule}");
    // The same IdP under another connector id.
    match add("bo-tu-phap-2", &good, None) {
        Err(Failure::App(e @ Error::Conflict { .. })) => {
            assert_eq!(e.exit_code(), 2);
            let Error::Conflict { field, rule } = e else {
                unreachable!()
            };
            assert_eq!(field, "metadata");
            assert!(rule.contains(IDP) && rule.contains("bo-tu-phap"), "{rule}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The same connector id again.
    assert!(matches!(
        add("bo-tu-phap", &other, None),
        Err(Failure::App(Error::Conflict { field, .. })) if field == "id"
    ));

    let after = s.process(&["connector", "list"], &env);
    assert_eq!(after.code, Some(0), "{}", after.stderr);
    assert_eq!(listed(&after.stdout), before, "nothing added by a refusal");
    assert!(matches!(
        s.run_env(&["connector", "show", "other"], env.clone()),
        Err(Failure::App(Error::NotFound { .. }))
    ));
    let audit = s.store().read(|c| fedhub::audit::tail(c, 100)).unwrap();
    let outcomes: Vec<&str> = audit
        .iter()
        .filter(|e| e.action == "connector.add_saml")
        .map(|e| e.outcome.as_str())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "success").count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&"failure"), "{outcomes:?}");

    // http:// is fine on loopback (a test IdP on this machine).
    let local = s.file(
        "local.xml",
        &idp_metadata(
            &idp_cert(),
            "http://127.0.0.1:9000/idp",
            "http://127.0.0.1:9000/sso",
        ),
    );
    add("local", &local, Some("HoVaTen=name")).unwrap();
}

// ---------------------------------------------------------------------------------------
// fedhub convert one|bulk, fedhub rp claim|webhook.

const AT_REST: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const FINANCE: &str = "000.00.01.H49";
const JUSTICE: &str = "000.00.02.H49";
/// "Mật khẩu 2019!" as salted SHA-256 (as conversion_console.rs).
const LEGACY_HASH: &str =
    "sha256$a1b2c3d4e5$e706d6174f7736331810a10928be5c773420b653cb585ed3703456c4f917bc2b";

/// A scratch hub with a gateway (`gw.quangninh`), two units, three people who are activated
/// members in Sở Tài chính / group "Một cửa" (Dung in Sở Tư pháp), and legacy accounts
/// an.nv, binh.tt (Tài chính) and khac (Tư pháp).
struct Conv {
    s: Scratch,
    rp: String,
    an: String,
    binh: String,
}

const AN: &str = "022185000111";
const BINH: &str = "022185000456";
const DUNG: &str = "034195000321";

impl Conv {
    fn new() -> Conv {
        let s = Scratch::new();
        let env = s.env_key();
        s.run_env(&["agency", "import-builtin"], env.clone())
            .unwrap();
        s.run(&[
            "agency",
            "add",
            FINANCE,
            "--name-vi",
            "Sở Tài chính tỉnh Quảng Ninh",
        ])
        .unwrap();
        s.run(&[
            "agency",
            "add",
            JUSTICE,
            "--name-vi",
            "Sở Tư pháp tỉnh Quảng Ninh",
        ])
        .unwrap();
        for (name, cccd) in [
            ("Nguyễn Văn An", AN),
            ("Trần Thị Bình", BINH),
            ("Phạm Thị Dung", DUNG),
        ] {
            s.run(&[
                "account",
                "add",
                "--kind",
                "citizen",
                "--name",
                name,
                "--national-id",
                cccd,
            ])
            .unwrap();
        }
        s.run_env(
            &[
                "rp",
                "add-oidc",
                "--owner",
                "000.00.00.H49",
                "--client-id",
                "gw.quangninh",
                "--redirect-uri",
                "https://gw.quangninh.example.gov.vn/cb",
            ],
            env.clone(),
        )
        .unwrap();
        let store = s.store();
        let rp = store
            .read(|c| fedhub::rp::by_id_or_entity_id(c, "gw.quangninh"))
            .unwrap()
            .id;
        let id_of = |cccd: &str| -> String {
            store
                .read(|c| {
                    use diesel::prelude::*;
                    use fedhub::store::schema::accounts as a;
                    Ok(a::table
                        .filter(a::national_id.eq(cccd))
                        .select(a::id)
                        .get_result(c)?)
                })
                .unwrap()
        };
        let (an, binh, dung) = (id_of(AN), id_of(BINH), id_of(DUNG));
        let vault = fedhub_metadata::AtRestKey::from_base64(AT_REST).unwrap();
        store
            .write(|c| {
                use fedhub::admin::memberships::{self, Admin};
                let admin = Admin::operator("test");
                memberships::ensure_builtin_roles(c, &rp, 0)?;
                for (account, unit) in [(&an, FINANCE), (&binh, FINANCE), (&dung, JUSTICE)] {
                    let m = memberships::add(c, &vault, &admin, &rp, account, Some(unit), 0)?;
                    memberships::activate(c, &admin, &m.id, 0)?;
                    memberships::assign_roles(c, &admin, &m.id, &[], Some("Một cửa"), 0)?;
                }
                Ok(())
            })
            .unwrap();
        let csv = s.file(
            "legacy.csv",
            &format!(
                "username,display_name,unit,user_group,roles,password_hash\n\
                 an.nv,Nguyễn Văn An,{FINANCE},Một cửa,Cán bộ một cửa,{LEGACY_HASH}\n\
                 binh.tt,Trần Thị Bình,{FINANCE},Một cửa,Cán bộ một cửa,{LEGACY_HASH}\n\
                 khac,Trần Thị Khác,{JUSTICE},Một cửa,Cán bộ một cửa,{LEGACY_HASH}\n"
            ),
        );
        s.run(&["legacy", "import", "--rp", "gw.quangninh", &csv])
            .unwrap();
        Conv { s, rp, an, binh }
    }

    /// (legacy username, converted to), by username.
    fn legacy(&self) -> Vec<(String, Option<String>)> {
        self.s
            .store()
            .read(|c| {
                use diesel::prelude::*;
                use fedhub::store::schema::legacy_accounts as la;
                Ok(la::table
                    .select((la::username, la::converted_to))
                    .order(la::username)
                    .load(c)?)
            })
            .unwrap()
    }

    fn conversions(&self) -> i64 {
        self.s
            .store()
            .read(|c| {
                use diesel::prelude::*;
                Ok(fedhub::store::schema::conversions::table
                    .count()
                    .get_result(c)?)
            })
            .unwrap()
    }

    fn audit(&self, action: &str) -> Vec<fedhub::audit::Entry> {
        self.s
            .store()
            .read(|c| fedhub::audit::tail(c, 500))
            .unwrap()
            .into_iter()
            .filter(|e| e.action == action)
            .collect()
    }
}

impl Scratch {
    /// The environment with an at-rest key.
    fn env_key(&self) -> Vec<(String, String)> {
        let mut env = self.env();
        env.push(("FEDHUB_KEYS_AT_REST_KEY".into(), AT_REST.into()));
        env
    }
}

/// Every legacy account unconverted.
fn untouched() -> Vec<(String, Option<String>)> {
    ["an.nv", "binh.tt", "khac"]
        .map(|u| (u.to_string(), None))
        .to_vec()
}

#[test]
fn convert_one_converts_dry_runs_and_refuses_with_exit_2() {
    let c = Conv::new();
    let nothing = untouched();
    assert_eq!(c.legacy(), nothing);
    // A dry run: the report, nothing changed.
    c.s.run(&[
        "convert",
        "one",
        "--rp",
        "gw.quangninh",
        "--legacy",
        "an.nv",
        "--to",
        AN,
        "--dry-run",
    ])
    .unwrap();
    assert_eq!(c.legacy(), nothing, "a dry run changes nothing");
    assert_eq!(c.conversions(), 0);
    assert_eq!(c.audit("conversion.dry_run").len(), 1);
    // A refusal: another unit. Exit 2, the reason named, nothing changed.
    let r = c.s.run(&[
        "convert",
        "one",
        "--rp",
        "gw.quangninh",
        "--legacy",
        "khac",
        "--to",
        AN,
    ]);
    match r {
        Err(Failure::App(e)) => {
            assert_eq!(e.exit_code(), 2, "{e:?}");
            assert!(e.to_string().contains("different units"), "{e}");
            assert!(e.to_string().contains(JUSTICE), "{e}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(c.legacy(), nothing, "a refusal changes nothing");
    assert_eq!(c.conversions(), 0);
    let refused = c.audit("conversion.convert");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].outcome, "failure");
    // The real one.
    c.s.run(&[
        "convert",
        "one",
        "--rp",
        "gw.quangninh",
        "--legacy",
        "an.nv",
        "--to",
        AN,
    ])
    .unwrap();
    assert_eq!(
        c.legacy(),
        vec![
            ("an.nv".to_string(), Some(c.an.clone())),
            ("binh.tt".to_string(), None),
            ("khac".to_string(), None),
        ]
    );
    assert_eq!(c.conversions(), 1);
    let done = c.audit("conversion.convert");
    assert_eq!(done.last().unwrap().outcome, "success");
    assert!(done.last().unwrap().actor.starts_with("cli:"));
    // Once only.
    let r = c.s.run(&[
        "convert",
        "one",
        "--rp",
        "gw.quangninh",
        "--legacy",
        "an.nv",
        "--to",
        AN,
    ]);
    assert!(
        matches!(&r, Err(Failure::App(e)) if e.exit_code() == 2 && e.to_string().contains("already been converted")),
        "{r:?}"
    );
    assert_eq!(c.conversions(), 1);
    // A hand-over between federated accounts.
    c.s.run(&[
        "convert",
        "one",
        "--rp",
        "gw.quangninh",
        "--from",
        AN,
        "--to",
        BINH,
    ])
    .unwrap();
    assert_eq!(c.conversions(), 2);
}

#[test]
fn convert_bulk_all_or_nothing_or_per_row() {
    let c = Conv::new();
    let nothing = untouched();
    // Row 2 names a legacy account of another unit.
    let csv = c.s.file(
        "pairs.csv",
        &format!("source,target\nlegacy:an.nv,{AN}\nlegacy:khac,{BINH}\nlegacy:binh.tt,{BINH}\n"),
    );
    let args = |commit: &'static str, dry: bool| {
        let mut a = vec![
            "convert",
            "bulk",
            "--rp",
            "gw.quangninh",
            csv.as_str(),
            "--commit",
            commit,
        ];
        if dry {
            a.push("--dry-run");
        }
        a
    };
    // All or nothing: exit 2 naming row 2, nothing converted (row 1 is rolled back).
    match c.s.run(&args("all-or-nothing", false)) {
        Err(Failure::App(e)) => {
            assert_eq!(e.exit_code(), 2, "{e:?}");
            let msg = e.to_string();
            assert!(msg.contains("row 2"), "{msg}");
            assert!(msg.contains("different units"), "{msg}");
            assert!(msg.contains("nothing was converted"), "{msg}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(c.legacy(), nothing);
    assert_eq!(c.conversions(), 0);
    // A dry run per row: fine, nothing changed.
    c.s.run(&args("per-row", true)).unwrap();
    assert_eq!(c.legacy(), nothing);
    assert_eq!(c.conversions(), 0);
    // Per row: rows 1 and 3 convert, row 2 stays.
    c.s.run(&args("per-row", false)).unwrap();
    assert_eq!(
        c.legacy(),
        vec![
            ("an.nv".to_string(), Some(c.an.clone())),
            ("binh.tt".to_string(), Some(c.binh.clone())),
            ("khac".to_string(), None),
        ]
    );
    assert_eq!(c.conversions(), 2);
}

#[test]
fn rp_claim_switch_and_webhook_from_the_command_line() {
    let c = Conv::new();
    let rp_row = || c.s.store().read(|x| fedhub::rp::get(x, &c.rp)).unwrap();
    assert!(!rp_row().claim_enabled, "off by default");
    c.s.run(&["rp", "claim", "gw.quangninh", "--on"]).unwrap();
    assert!(rp_row().claim_enabled);
    c.s.run(&["rp", "claim", "gw.quangninh", "--off"]).unwrap();
    assert!(!rp_row().claim_enabled);
    // A webhook that is not https (nor loopback) is refused; nothing stored.
    let field = invalid_field(c.s.run_env(
        &[
            "rp",
            "webhook",
            "gw.quangninh",
            "--url",
            "http://portal.example.gov.vn/hook",
        ],
        c.s.env_key(),
    ));
    assert_eq!(field, "url");
    assert_eq!(rp_row().webhook_url, None);
    // Without the at-rest key the secret cannot be sealed: refused, nothing stored.
    let field = invalid_field(c.s.run(&[
        "rp",
        "webhook",
        "gw.quangninh",
        "--url",
        "https://portal.example.gov.vn/hook",
    ]));
    assert_eq!(field, "keys.at_rest_key_file");
    assert_eq!(rp_row().webhook_url, None);
    c.s.run_env(
        &[
            "rp",
            "webhook",
            "gw.quangninh",
            "--url",
            "https://portal.example.gov.vn/hook",
        ],
        c.s.env_key(),
    )
    .unwrap();
    assert_eq!(
        rp_row().webhook_url.as_deref(),
        Some("https://portal.example.gov.vn/hook")
    );
    // Show, then remove.
    c.s.run(&["rp", "webhook", "gw.quangninh"]).unwrap();
    c.s.run(&["rp", "webhook", "gw.quangninh", "--remove"])
        .unwrap();
    assert_eq!(rp_row().webhook_url, None);
    assert_eq!(c.audit("rp.webhook.set").last().unwrap().outcome, "success");
    assert_eq!(c.audit("rp.claim").len(), 2);
}

/// A database as a hub holds it: the shipped agencies, a citizen and an OIDC gateway.
fn seed_for_backup(s: &Scratch) {
    s.run(&["agency", "import-builtin"]).unwrap();
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
    s.run(&[
        "rp",
        "add-oidc",
        "--owner",
        "000.00.00.H49",
        "--redirect-uri",
        "https://gateway.quangninh.example/cb",
        "--client-id",
        "cong-dvc-quang-ninh",
    ])
    .unwrap();
}

fn sqlite_env(path: &std::path::Path) -> Vec<(String, String)> {
    vec![(
        "FEDHUB_DATABASE_URL".into(),
        format!("sqlite://{}", path.display()),
    )]
}

fn store_at(path: &std::path::Path) -> fedhub::store::Store {
    fedhub::store::Store::connect(&format!("sqlite://{}", path.display()), &Default::default())
        .unwrap()
}

/// (accounts, relying parties) in a database.
fn counts(store: &fedhub::store::Store) -> (i64, usize) {
    store
        .read(|c| {
            Ok((
                fedhub::directory::accounts::count(c)?,
                fedhub::rp::list(c)?.len(),
            ))
        })
        .unwrap()
}

/// Files in the scratch folder: a refused restore leaves no staged copy behind.
fn listing(s: &Scratch) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with("-wal") && !n.ends_with("-shm"))
        .collect();
    names.sort();
    names
}

#[test]
fn backup_while_the_database_is_open_then_restore_into_a_fresh_path() {
    let s = Scratch::new();
    seed_for_backup(&s);
    // Held open as `fedhub serve` holds it: the last write is still only in the -wal file,
    // where a copy of fedhub.db would miss it.
    let live = s.store();
    let late = fedhub::directory::accounts::AccountInput {
        kind: "citizen".into(),
        display_name: "Trần Thị Bình".into(),
        national_id: Some("079303001234".into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    live.write(|c| fedhub::directory::accounts::add(c, &late, crate::support::NOW))
        .unwrap();
    let wal = s.dir.path().join("cli.db-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "the write is in the WAL"
    );

    let backup = s.dir.path().join("backup.db");
    let backup_s = backup.display().to_string();
    let ran = s.process(&["backup", &backup_s], &s.env());
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(
        ran.stdout.contains(&format!("wrote {backup_s}: "))
            && ran.stdout.contains("bytes, schema 2026")
            && ran.stdout.contains("2 account(s), 1 relying party"),
        "{}",
        ran.stdout
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
    }

    let fresh = s.dir.path().join("restored").join("fedhub.db");
    std::fs::create_dir(fresh.parent().unwrap()).unwrap();
    s.run_env(&["restore", &backup_s], sqlite_env(&fresh))
        .unwrap();
    let restored = store_at(&fresh);
    assert_eq!(counts(&restored), counts(&live));
    assert_eq!(counts(&restored), (2, 1));
    // What a sign-in needs: the gateway's registration and the person from the WAL.
    let gateway = restored
        .read(|c| fedhub::rp::by_entity_id(c, "cong-dvc-quang-ninh"))
        .unwrap()
        .expect("the gateway is registered");
    assert_eq!(gateway.owner_agency_code, "000.00.00.H49");
    let found = restored
        .read(|c| fedhub::directory::accounts::find(c, "079303001234", 5))
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].display_name, "Trần Thị Bình");
    // Both are in the audit log: the backup in the live database, the restore in the new one.
    let backed = live.read(|c| fedhub::audit::tail(c, 5)).unwrap();
    let entry = backed.last().unwrap();
    assert_eq!(
        (entry.action.as_str(), entry.outcome.as_str()),
        ("database.backup", "success")
    );
    assert_eq!(entry.target.as_deref(), Some(backup_s.as_str()));
    let entry = restored.read(|c| fedhub::audit::tail(c, 1)).unwrap();
    assert_eq!(
        (entry[0].action.as_str(), entry[0].outcome.as_str()),
        ("database.restore", "success")
    );
}

#[test]
fn backup_and_restore_refuse_what_they_cannot_do_safely_and_change_nothing() {
    let s = Scratch::new();
    // Nothing to back up: no database file is created for it.
    let backup = s.dir.path().join("backup.db");
    let backup_s = backup.display().to_string();
    match s.run(&["backup", &backup_s]) {
        Err(Failure::App(e @ Error::NotFound { .. })) => assert_eq!(e.exit_code(), 2),
        other => panic!("{other:?}"),
    }
    assert!(listing(&s).is_empty(), "{:?}", listing(&s));

    seed_for_backup(&s);
    s.run(&["backup", &backup_s]).unwrap();
    let taken = std::fs::read(&backup).unwrap();
    // A backup never overwrites a file.
    match s.run(&["backup", &backup_s]) {
        Err(Failure::App(e @ Error::Conflict { .. })) => {
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("already exists"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&backup).unwrap(), taken);

    let target = s.dir.path().join("cli.db");
    let before = counts(&s.store());
    // Every refusal: exit 2, the target as it was, no staged copy left in the folder.
    let check = |file: &std::path::Path, force: bool| -> String {
        let files = listing(&s);
        let mut args = vec!["restore".to_string(), file.display().to_string()];
        if force {
            args.push("--force".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = s.run(&args);
        assert_eq!(counts(&s.store()), before, "nothing changed");
        assert_eq!(listing(&s), files, "no staged copy left behind");
        match r {
            Err(Failure::App(e @ (Error::Invalid { .. } | Error::Conflict { .. }))) => {
                assert_eq!(e.exit_code(), 2);
                e.to_string()
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    };

    // Not a database at all, and an SQLite database that is not fedhub's.
    let text = std::path::PathBuf::from(s.file("notes.txt", "not a database\n"));
    let why = check(&text, true);
    assert!(why.contains("not a fedhub SQLite database"), "{why}");
    let other_db = s.dir.path().join("other.db");
    fedhub::store::establish(&format!("sqlite://{}", other_db.display()))
        .unwrap()
        .batch_execute("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('x');")
        .unwrap();
    let why = check(&other_db, true);
    assert!(
        why.contains("not a fedhub SQLite database") && why.contains("__diesel_schema_migrations"),
        "{why}"
    );

    // A damaged copy: pages overwritten in the middle.
    let damaged = s.dir.path().join("damaged.db");
    let mut bytes = taken.clone();
    let page = 4096;
    let mut at = 2 * page;
    while at + 64 < bytes.len() {
        bytes[at..at + 64].fill(0xA5);
        at += 3 * page;
    }
    std::fs::write(&damaged, &bytes).unwrap();
    let why = check(&damaged, true);
    assert!(why.contains("damaged"), "{why}");

    // A backup from a newer fedhub: a migration this binary does not know.
    let newer = s.dir.path().join("newer.db");
    std::fs::write(&newer, &taken).unwrap();
    fedhub::store::establish(&format!("sqlite://{}", newer.display()))
        .unwrap()
        .batch_execute(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('20991231000000');",
        )
        .unwrap();
    let why = check(&newer, true);
    assert!(
        why.contains("newer fedhub") && why.contains("20991231000000"),
        "{why}"
    );

    // A good backup, but the target holds data: only with --force, and never while open.
    let why = check(&backup, false);
    assert!(
        why.contains("holds data") && why.contains("--force"),
        "{why}"
    );
    let held = s.store();
    held.read(fedhub::directory::accounts::count).unwrap();
    let why = check(&backup, true);
    assert!(why.contains("in use"), "{why}");
    drop(held);
    // Now it goes: an account added after the backup is gone again.
    s.run(&[
        "account",
        "add",
        "--kind",
        "citizen",
        "--name",
        "Lê Văn Cường",
        "--national-id",
        "001099012345",
    ])
    .unwrap();
    s.run(&["restore", &backup_s, "--force"]).unwrap();
    assert_eq!(counts(&store_at(&target)), before);
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        taken,
        "the backup file is only read"
    );
}

#[test]
fn backup_and_restore_on_postgresql_point_to_pg_dump() {
    let s = Scratch::new();
    let env = vec![(
        "FEDHUB_DATABASE_URL".to_string(),
        crate::support::postgres_url(),
    )];
    let file = s.dir.path().join("pg.dump").display().to_string();
    for command in ["backup", "restore"] {
        let ran = s.process(&[command, &file], &env);
        assert_eq!(ran.code, Some(2), "{}", ran.stderr);
        assert!(
            ran.stderr.contains("pg_dump")
                && ran.stderr.contains("pg_restore")
                && ran.stderr.contains("docs/operations.md"),
            "{}",
            ran.stderr
        );
    }
    assert!(listing(&s).is_empty(), "nothing written");
}
