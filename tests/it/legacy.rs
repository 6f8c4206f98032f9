//! Legacy accounts import (`fedhub legacy import` / `list`): every accepted hash format from
//! CSV and JSON, listing without hashes, each kind of bad input refused with its row and
//! nothing imported, the audit entries, both engines; and no sign-in path asks for a password.

use clap::Parser;
use diesel::prelude::*;
use fedhub::cli::{run, Cli, Failure};
use fedhub::conversion::{legacy, password};
use fedhub::store::schema::legacy_accounts::dsl as la;
use fedhub::Error;
use http::{header, Request, StatusCode};

use crate::support::{self, NOW};

/// The password behind every hash below.
const PASSWORD: &str = "Mật khẩu 2019!";

/// One hash of PASSWORD in each accepted format, made at authoring time by other
/// implementations (Python's bcrypt 3.2, passlib 1.7, argon2-cffi 21.1, hashlib), with the
/// scheme name the import records.
const HASHES: &[(&str, &str)] = &[
    (
        "$2b$05$L.ASBKidfADHya8iMPHdhOrps0GEq6DLNrivH32ogL6dkpJv4Bo46",
        "bcrypt",
    ),
    (
        "$2a$05$hnk4MjIctVZDH5kymMRqtuyIpTvoeftXarIBHz7TI4BPD1ashu632",
        "bcrypt",
    ),
    (
        "$2y$05$dQnvXfSB7MdFXPDh0QxvVufpJ4MQOLSuNIdjNPmMYUHwYMIihPaVK",
        "bcrypt",
    ),
    (
        "pbkdf2_sha256$36000$cnrFfqhOvdYC$RU6fg77HzRH1j6RPgRxcvFl4GJE6/IjzCf6r621KCdk=",
        "pbkdf2-sha256",
    ),
    (
        "$pbkdf2-sha256$29000$BWAMwVhLKYUwRkgpRcjZ2w$/cR.AwoSH4C/qV6z74NiLikc9umkIM4Vp.cIcy8qOp0",
        "pbkdf2-sha256",
    ),
    (
        "$argon2id$v=19$m=1024,t=2,p=2$CHj4WluIlne5D5BxiNmbBg$+TZrleM+V7Olg+TC5T13aITIZ6l5GVQeqh7nT9MkFDc",
        "argon2id",
    ),
    (
        "{SSHA256}MoSjjrZGIceAAD0W1MqjNbEmiESdRYLhQafFzbo1NYV7TyllrPUegw==",
        "salted-sha256",
    ),
    (
        "sha256$a1b2c3d4e5$e706d6174f7736331810a10928be5c773420b653cb585ed3703456c4f917bc2b",
        "salted-sha256",
    ),
];

const CLIENT_ID: &str = "cong-dvc-quang-ninh-legacy";
const HEADER: &str = "username,display_name,unit,user_group,roles,password_hash,subject";

/// A CLI database with the built-in agencies and one OIDC client.
struct Hub {
    dir: tempfile::TempDir,
    rp_id: String,
}

impl Hub {
    fn new() -> Self {
        let hub = Hub {
            dir: tempfile::tempdir().unwrap(),
            rp_id: String::new(),
        };
        hub.run(&["agency", "import-builtin"]).unwrap();
        hub.run(&[
            "rp",
            "add-oidc",
            "--owner",
            "000.00.00.H49",
            "--redirect-uri",
            "https://gateway.quangninh.example/cb",
            "--client-id",
            CLIENT_ID,
        ])
        .unwrap();
        let rp_id = hub
            .store()
            .read(|c| fedhub::rp::by_entity_id(c, CLIENT_ID))
            .unwrap()
            .unwrap()
            .id;
        Hub { rp_id, ..hub }
    }
    fn url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("legacy.db").display())
    }
    fn run(&self, args: &[&str]) -> Result<(), Failure> {
        let argv = std::iter::once("fedhub").chain(args.iter().copied());
        run(
            Cli::try_parse_from(argv).unwrap(),
            &[("FEDHUB_DATABASE_URL".into(), self.url())],
        )
    }
    fn import(&self, name: &str, text: &str) -> Result<(), Failure> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        self.run(&[
            "legacy",
            "import",
            "--rp",
            CLIENT_ID,
            path.to_str().unwrap(),
        ])
    }
    fn store(&self) -> fedhub::store::Store {
        fedhub::store::Store::connect(&self.url(), &Default::default()).unwrap()
    }
    fn count(&self) -> i64 {
        self.store()
            .read(|c| legacy::count(c, &self.rp_id))
            .unwrap()
    }
    fn audit(&self, action: &str) -> Vec<fedhub::audit::Entry> {
        let all = self.store().read(|c| fedhub::audit::tail(c, 500)).unwrap();
        all.into_iter().filter(|e| e.action == action).collect()
    }
    /// `fedhub ARGS` in a process of its own (this test binary re-entered at
    /// `cli::cli_child_process`): its exit code and stdout.
    fn process(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["cli::cli_child_process", "--exact", "--ignored"])
            .args(["--nocapture", "--test-threads=1", "-q"])
            .env("FEDHUB_DATABASE_URL", self.url())
            .env(
                "IT_FEDHUB_CLI_CHILD_ARGS",
                serde_json::to_string(args).unwrap(),
            )
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), stdout)
    }
}

/// CSV rows for every hash, usernames `{prefix}1`…; the first row has its own subject. The
/// hashes are quoted, as any CSV writer does: Argon2id parameters hold commas.
fn csv_of_every_hash(prefix: &str) -> String {
    let mut text = format!("{HEADER}\n");
    for (i, (hash, _)) in HASHES.iter().enumerate() {
        let unit = if i % 2 == 0 { "000.00.00.H49" } else { "" };
        let subject = if i == 0 { "NV-0001" } else { "" };
        text.push_str(&format!(
            "{prefix}{},Cán bộ {},{unit},Phòng {},cán bộ; lãnh đạo,\"{hash}\",{subject}\n",
            i + 1,
            i + 1,
            i % 3
        ));
    }
    text
}

/// The refusal of a bad file: an invalid `file` exiting 2, its message.
fn refused(r: Result<(), Failure>) -> String {
    match r {
        Err(Failure::App(e @ Error::Invalid { .. })) => {
            assert_eq!(e.exit_code(), 2);
            let Error::Invalid { field, rule } = e else {
                unreachable!()
            };
            assert_eq!(field, "file", "{rule}");
            rule
        }
        other => panic!("expected a refused file, got {other:?}"),
    }
}

#[test]
fn csv_and_json_with_every_hash_format_import_and_list_hides_the_hashes() {
    let hub = Hub::new();
    hub.import("users.csv", &csv_of_every_hash("csv")).unwrap();
    assert_eq!(hub.count(), HASHES.len() as i64);

    // JSON, its format given by --format (the file name says nothing).
    let rows: Vec<serde_json::Value> = HASHES
        .iter()
        .enumerate()
        .map(|(i, (hash, _))| {
            serde_json::json!({
                "username": format!("json{}", i + 1),
                "display_name": format!("Chuyên viên {}", i + 1),
                "unit": if i == 1 { serde_json::json!("000.00.00.G12") } else { serde_json::Value::Null },
                "roles": ["chuyên viên"],
                "password_hash": hash,
            })
        })
        .collect();
    let path = hub.dir.path().join("users.export");
    std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    let file = path.to_str().unwrap();
    let no_format = hub.run(&["legacy", "import", "--rp", CLIENT_ID, file]);
    assert!(
        matches!(&no_format, Err(Failure::App(Error::Invalid { field, .. })) if field == "format"),
        "{no_format:?}"
    );
    hub.run(&[
        "legacy", "import", "--rp", &hub.rp_id, "--format", "json", file,
    ])
    .unwrap();
    assert_eq!(hub.count(), 2 * HASHES.len() as i64);

    let listed = hub.store().read(|c| legacy::list(c, &hub.rp_id)).unwrap();
    assert_eq!(listed.len(), 2 * HASHES.len());
    let csv1 = listed.iter().find(|a| a.username == "csv1").unwrap();
    assert_eq!(csv1.subject, "NV-0001");
    assert_eq!(csv1.display_name, "Cán bộ 1");
    assert_eq!(csv1.unit_agency_code.as_deref(), Some("000.00.00.H49"));
    assert_eq!(csv1.user_group.as_deref(), Some("Phòng 0"));
    assert_eq!(csv1.roles, ["cán bộ", "lãnh đạo"]);
    assert!(csv1.converted_to.is_none());
    let csv2 = listed.iter().find(|a| a.username == "csv2").unwrap();
    assert_eq!(csv2.subject, "csv2", "the subject defaults to the username");
    assert_eq!(csv2.unit_agency_code, None);
    let json2 = listed.iter().find(|a| a.username == "json2").unwrap();
    assert_eq!(json2.unit_agency_code.as_deref(), Some("000.00.00.G12"));
    assert_eq!(json2.roles, ["chuyên viên"]);
    for (i, (_, scheme)) in HASHES.iter().enumerate() {
        for prefix in ["csv", "json"] {
            let a = listed
                .iter()
                .find(|a| a.username == format!("{prefix}{}", i + 1))
                .unwrap();
            assert_eq!(a.hash_scheme, *scheme, "{}", a.username);
        }
    }
    // Listing never carries a hash, in the API nor on the command line.
    let shown = serde_json::to_string(&listed).unwrap();
    let (code, stdout) = hub.process(&["legacy", "list", "--rp", CLIENT_ID]);
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.contains('\t')).count(),
        2 * HASHES.len(),
        "{stdout}"
    );
    assert!(
        stdout.contains("csv1\tCán bộ 1\t000.00.00.H49\tPhòng 0\tcán bộ;lãnh đạo\tbcrypt\tNV-0001")
    );
    for (hash, _) in HASHES {
        assert!(!shown.contains(hash), "list returns a hash: {shown}");
        assert!(!stdout.contains(hash), "list prints a hash: {stdout}");
        let salt_and_digest = hash.rsplit('$').next().unwrap();
        assert!(!stdout.contains(salt_and_digest));
    }
    assert!(!shown.contains("password"));

    // Stored as given: each hash still proves the password, and nothing else.
    let stored: Vec<(String, String)> = hub
        .store()
        .read(|c| {
            Ok(la::legacy_accounts
                .select((la::username, la::password_hash))
                .load(c)?)
        })
        .unwrap();
    for (username, hash) in &stored {
        assert!(password::verify(hash, PASSWORD).unwrap(), "{username}");
        assert!(
            !password::verify(hash, "mật khẩu 2019!").unwrap(),
            "{username}"
        );
        assert_ne!(hash, PASSWORD);
    }

    // Both imports are audited against the relying party (the one refused for want of a
    // format never started).
    let entries = hub.audit("legacy.import");
    assert_eq!(entries.len(), 2, "{entries:?}");
    for e in &entries {
        assert_eq!(e.outcome, "success");
        assert_eq!(e.rp_id.as_deref(), Some(hub.rp_id.as_str()));
        assert_eq!(e.target.as_deref(), Some(CLIENT_ID));
    }
    assert!(entries[0].detail.as_deref().unwrap().ends_with("users.csv"));
    let (code, stdout) = hub.process(&[
        "legacy",
        "import",
        "--rp",
        CLIENT_ID,
        hub.dir.path().join("more.csv").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "a missing file: {stdout}");
    std::fs::write(
        hub.dir.path().join("more.csv"),
        csv_of_every_hash("more").replace("NV-0001", "NV-0100"),
    )
    .unwrap();
    let (code, stdout) = hub.process(&[
        "legacy",
        "import",
        "--rp",
        CLIENT_ID,
        hub.dir.path().join("more.csv").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains(&format!(
            "imported {} legacy account(s) for {CLIENT_ID} (bcrypt 3, pbkdf2-sha256 2, argon2id 1, salted-sha256 2)",
            HASHES.len()
        )),
        "{stdout}"
    );
    assert_eq!(hub.count(), 3 * HASHES.len() as i64);
    let outcomes: Vec<String> = hub
        .audit("legacy.import")
        .into_iter()
        .map(|e| e.outcome)
        .collect();
    assert_eq!(outcomes, ["success", "success", "failure", "success"]);
}

#[test]
fn bad_input_is_refused_with_its_row_and_nothing_is_imported() {
    let hub = Hub::new();
    let (bcrypt, _) = HASHES[0];
    let (django, _) = HASHES[3];
    hub.import(
        "first.csv",
        &format!("{HEADER}\nan.nv,Nguyễn Văn An,000.00.00.H49,,,{bcrypt},\n"),
    )
    .unwrap();
    assert_eq!(hub.count(), 1);
    let md5_crypt = "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/";
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown-hash.csv",
            format!("{HEADER}\nbinh.tt,Trần Thị Bình,,,,{django},\ncuong.lv,Lê Văn Cường,,,,{md5_crypt},\n"),
            vec![
                "1 problem(s), nothing imported",
                "row 2 (line 3): password_hash: MD5-crypt ($1$) is not an accepted format",
                "accepted formats: bcrypt",
            ],
        ),
        (
            "columns.csv",
            format!("{HEADER}\nbinh.tt,Trần Thị Bình,,,{django},\ncuong.lv,Lê Văn Cường,,,,{django},,extra\n"),
            vec![
                "row 1 (line 2): 6 field(s) where the header has 7",
                "row 2 (line 3): 8 field(s) where the header has 7",
            ],
        ),
        (
            "unit.csv",
            format!("{HEADER}\nbinh.tt,Trần Thị Bình,000.00.00.H49,,,{django},\ncuong.lv,Lê Văn Cường,000.00.00.G99,,,{django},\ndung.pt,Phạm Tiến Dũng,G12,,,{django},\n"),
            vec![
                "2 problem(s)",
                "row 2 (line 3): unit: agency 000.00.00.G99 is not registered",
                "row 3 (line 4): unit:",
            ],
        ),
        (
            "duplicate.csv",
            format!("{HEADER}\nbinh.tt,Trần Thị Bình,,,,{django},\nan.nv,Nguyễn Văn An,,,,{django},\nbinh.tt,Trần Thị Bình,,,,{django},\n"),
            vec![
                "row 2 (line 3): username: an.nv is already imported for this relying party",
                "row 3 (line 4): username: binh.tt repeats row 1",
            ],
        ),
        (
            "clear-text.csv",
            "username,display_name,password\nbinh.tt,Trần Thị Bình,Mật khẩu 2019!\n".to_string(),
            vec![
                "row 1 (line 2): password: clear-text passwords are never accepted",
                "the `password_hash` column is missing",
            ],
        ),
        (
            "clear-text-too.csv",
            format!("{HEADER},password\nbinh.tt,Trần Thị Bình,,,,{django},,Mật khẩu 2019!\n"),
            vec!["row 1 (line 2): password: clear-text passwords are never accepted"],
        ),
        (
            "missing.csv",
            format!("{HEADER}\n,Trần Thị Bình,,,,{django},\ncuong.lv,,,,,,\n"),
            vec![
                "row 1 (line 2): username: required",
                "row 2 (line 3): display_name: required",
                "row 2 (line 3): password_hash: is empty",
            ],
        ),
        (
            "bad.json",
            serde_json::json!([
                { "username": "binh.tt", "display_name": "Trần Thị Bình", "password_hash": django },
                { "username": "cuong.lv", "display_name": "Lê Văn Cường", "password": PASSWORD },
                { "username": "dung.pt", "display_name": "Phạm Tiến Dũng", "password_hash": PASSWORD },
            ])
            .to_string(),
            vec!["row 2: password: clear-text passwords are never accepted"],
        ),
        (
            "plain-as-hash.json",
            serde_json::json!([
                { "username": "dung.pt", "display_name": "Phạm Tiến Dũng", "password_hash": "hunter2" },
                { "username": "em.nv", "display_name": "Nguyễn Văn Em", "password_hash": "5f4dcc3b5aa765d61d8327deb882cf99", "roles": ["a", ""] },
            ])
            .to_string(),
            vec![
                "row 1: password_hash: is not a password hash in an accepted format",
                "row 2: password_hash: looks like an unsalted MD5 digest",
                "row 2: roles: a role name is empty",
            ],
        ),
    ];
    for (name, text, wants) in &cases {
        let rule = refused(hub.import(name, text));
        for want in wants {
            assert!(rule.contains(want), "{name}: {want:?} not in {rule}");
        }
        for secret in [PASSWORD, md5_crypt, django, "hunter2"] {
            assert!(!rule.contains(secret), "{name} repeats a secret: {rule}");
        }
        assert_eq!(hub.count(), 1, "{name}: nothing imported");
    }
    // Each refusal is audited as a failure, without the secrets either.
    let failures: Vec<_> = hub
        .audit("legacy.import")
        .into_iter()
        .filter(|e| e.outcome == "failure")
        .collect();
    assert_eq!(failures.len(), cases.len());
    for e in &failures {
        let detail = e.detail.as_deref().unwrap_or_default();
        assert!(detail.contains("nothing imported"), "{detail}");
        assert!(
            !detail.contains(PASSWORD) && !detail.contains(django),
            "{detail}"
        );
    }
    // An unknown relying party is named as such.
    let path = hub.dir.path().join("first.csv");
    let r = hub.run(&["legacy", "import", "--rp", "nobody", path.to_str().unwrap()]);
    assert!(
        matches!(&r, Err(Failure::App(Error::NotFound { .. }))),
        "{r:?}"
    );
}

/// The same import and refusal on both engines, at the library level.
fn all_or_nothing_on(store: &fedhub::store::Store) {
    store
        .write(|c| {
            fedhub::directory::agencies::import_csv(
                c,
                fedhub::directory::agencies::BUILTIN_CSV,
                NOW,
            )
        })
        .unwrap();
    let reg = crate::oidc_support::default_registration();
    let rp = store
        .write(|c| fedhub::rp::oidc::add(c, &reg, NOW))
        .unwrap()
        .rp;
    let good = legacy::parse(&csv_of_every_hash("u"), legacy::Format::Csv).unwrap();
    let report = store
        .write(|c| legacy::import(c, &rp.id, &good, NOW))
        .unwrap();
    assert_eq!(report.imported, HASHES.len());
    assert_eq!(report.schemes.values().sum::<usize>(), HASHES.len());
    assert_eq!(report.schemes[&password::HashScheme::Bcrypt], 3);
    let shown = serde_json::to_value(&report).unwrap();
    assert_eq!(shown["schemes"]["bcrypt"], 3, "{shown}");
    // All of the hashes here have weak (fast test) parameters, but the two PBKDF2 ones.
    assert_eq!(report.weak, HASHES.len() - 2);
    // The second file repeats one username at its end: not one of its rows goes in.
    let mut again = legacy::parse(&csv_of_every_hash("v"), legacy::Format::Csv).unwrap();
    again.last_mut().unwrap().username = "u3".into();
    again.last_mut().unwrap().subject = Some("S-3".into());
    let e = store
        .write(|c| legacy::import(c, &rp.id, &again, NOW))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("row 8 (line 9): username: u3 is already imported"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("row 1 (line 2): subject: NV-0001 is already a legacy subject"),
        "{e}"
    );
    assert_eq!(
        store.read(|c| legacy::count(c, &rp.id)).unwrap(),
        HASHES.len() as i64
    );
    let listed = store.read(|c| legacy::list(c, &rp.id)).unwrap();
    assert_eq!(listed[0].username, "u1");
    assert_eq!(listed[0].roles, ["cán bộ", "lãnh đạo"]);
}

#[test]
fn sqlite_import_is_all_or_nothing() {
    all_or_nothing_on(&support::sqlite());
}

#[test]
fn postgres_import_is_all_or_nothing() {
    all_or_nothing_on(&support::postgres());
}

/// The sign-in chooser of a relying party with legacy accounts offers connectors only: no
/// password field, and no route takes a legacy username and password.
#[tokio::test]
async fn no_sign_in_path_asks_for_a_password() {
    use crate::sso::{get, send};
    let hub = crate::oidc_support::oidc_hub(crate::oidc_support::default_registration());
    let records = legacy::parse(&csv_of_every_hash("nguoidung.cu"), legacy::Format::Csv).unwrap();
    let rp_id = hub.rp_id.clone();
    hub.store
        .write(|c| legacy::import(c, &rp_id, &records, NOW))
        .unwrap();
    let (_, challenge) = crate::oidc_support::pkce();
    let to_login = send(&hub.app, get(&hub.authorize_uri(&challenge, ""), &[])).await;
    assert_eq!(to_login.status, StatusCode::SEE_OTHER, "{}", to_login.body);
    let login = to_login.location().split('?').next().unwrap().to_string();
    let bind = to_login.cookie("fedhub_login").unwrap();
    for lang in ["vi", "en"] {
        let page = send(
            &hub.app,
            Request::get(&login)
                .header(header::COOKIE, format!("fedhub_login={bind}"))
                .header(header::ACCEPT_LANGUAGE, lang)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let html = page.body.to_lowercase();
        for input in html.split("<input").skip(1) {
            let tag = input.split('>').next().unwrap();
            assert!(!tag.contains("type=\"password\""), "{tag}");
            assert!(!tag.contains("name=\"password\""), "{tag}");
            assert!(!tag.contains("name=\"username\""), "{tag}");
        }
        assert!(
            !html.contains("nguoidung.cu"),
            "no legacy username on the page"
        );
    }
    // A username and password posted anywhere under the login do not sign in.
    for path in ["legacy", "password", "dev", "local"] {
        let r = send(
            &hub.app,
            Request::post(format!("{login}/{path}"))
                .header(header::COOKIE, format!("fedhub_login={bind}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(format!(
                    "username=nguoidung.cu1&password={}",
                    crate::oidc_support::enc(PASSWORD)
                )))
                .unwrap(),
        )
        .await;
        // Refusals go back to the client too, as an OIDC error; a sign-in carries a code.
        let signed_in = r.status == StatusCode::SEE_OTHER
            && crate::oidc_support::query_of(r.location()).contains_key("code");
        assert!(
            !signed_in,
            "{path}: {} {} {}",
            r.status,
            r.location(),
            r.body
        );
        assert!(r.cookie("fedhub_sso").is_none(), "{path}");
    }
    // And no sign-in page template has a password field. (The self-service claim page asks
    // for a legacy password only of someone already signed in through a connector.)
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
    let mut checked = 0;
    for entry in std::fs::read_dir(templates).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("login") || name == "base.html" || name == "index.html" {
            let text = std::fs::read_to_string(&path).unwrap().to_lowercase();
            assert!(
                !text.contains("type=\"password\"") && !text.contains("type=password"),
                "{name}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "the sign-in templates moved: {checked}");
}
