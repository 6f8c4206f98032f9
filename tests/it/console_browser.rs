//! The admin console in a real browser: a hub on a loopback port, and headless Chromium
//! (Debian's, driven by playwright-core from `tests/e2e/console.mjs`) signing in through the
//! hub and walking the seed's workflow — search, add, activate, change unit, assign role —
//! then a refused out-of-scope action. Screenshots of every step are kept under
//! `$CARGO_TARGET_DIR/e2e-screenshots/console/` (else `target/…`) for CI.
//!
//! This test never skips: without Chromium it fails with the command that installs it
//! (`scripts/ensure-deps` does, as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use fedhub::directory::accounts::AccountInput;
use fedhub::directory::agencies::AgencyInput;
use fedhub::store::schema;

use crate::support::{self, TestStore, NOW};

/// The whole browser run, Chromium's start included.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(240);
/// The steps of `console.mjs`, each with its screenshot.
const STEPS: usize = 12;

/// The Quảng Ninh admin, a state-agency account that also has a personal ID, so that the
/// demo connector signs it in.
const ADMIN_NAME: &str = "Văn phòng UBND tỉnh Quảng Ninh";
const ADMIN_ID: &str = "022080000001";
/// The person the admin finds in the directory and adds.
const PERSON_NAME: &str = "Trần Thị Bình";
const PERSON_ID: &str = "022190000456";
const PERSON_PHONE: &str = "0912000456";
/// How the directory shows that number.
const PERSON_PHONE_SHOWN: &str = "+84912000456";
/// A member in Hồ Chí Minh City, outside the admin's subtree.
const OUTSIDE_MEMBER: &str = "hcm-member";
const OUTSIDE_NAME: &str = "Võ Minh Châu";
const ROLE: &str = "Admin của Tỉnh/thành phố";

const FINANCE: (&str, &str) = ("000.00.01.H49", "Sở Tài chính tỉnh Quảng Ninh");
const BUDGET: (&str, &str) = ("000.01.01.H49", "Phòng Quản lý ngân sách");

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where a browser test's screenshots go: `e2e-screenshots/<test>` in the cargo target
/// directory CI keeps.
pub(crate) fn screenshot_dir(test: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let target = if target.is_absolute() {
        target
    } else {
        repo_root().join(target)
    };
    target.join("e2e-screenshots").join(test)
}

/// `tests/e2e/setup-node`: playwright-core from the lockfile, and Chromium checked.
pub(crate) fn node_modules() -> PathBuf {
    let script = repo_root().join("tests/e2e/setup-node");
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed (the browser test needs Node.js, npm and Debian's Chromium):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(stdout.lines().last().unwrap().trim()).join("node_modules")
}

fn account(store: &TestStore, input: AccountInput) -> String {
    let valid = input.validate().unwrap();
    store
        .write(|c| fedhub::directory::accounts::add(c, &valid, NOW))
        .unwrap()
        .id
}

fn agency(store: &TestStore, code: &str, name: &str) {
    let valid = AgencyInput {
        code: code.into(),
        name_vi: name.into(),
        ..Default::default()
    }
    .validate()
    .unwrap();
    store
        .write(|c| fedhub::directory::agencies::add(c, &valid, NOW))
        .unwrap();
}

struct Seeded {
    rp_id: String,
    rp_name: String,
    admin_id: String,
    person_id: String,
}

/// The shipped agencies and units of Quảng Ninh (and one of Hồ Chí Minh City), an OIDC
/// relying party owned by Quảng Ninh, its top admin, citizens in the directory, a member in
/// another province, and the demo connector offering the admin.
fn seed(store: &TestStore) -> Seeded {
    store
        .write(|c| {
            fedhub::directory::agencies::import_csv(
                c,
                fedhub::directory::agencies::BUILTIN_CSV,
                NOW,
            )
        })
        .unwrap();
    agency(store, FINANCE.0, FINANCE.1);
    agency(store, BUDGET.0, BUDGET.1);
    agency(store, "000.00.02.H49", "Sở Y tế tỉnh Quảng Ninh");
    agency(store, "000.00.01.H29", "Sở Tài chính Thành phố Hồ Chí Minh");
    let mut reg = crate::oidc_support::default_registration();
    reg.require_activated_membership = Some(true);
    let rp = store
        .write(|c| fedhub::rp::oidc::add(c, &reg, NOW))
        .unwrap()
        .rp;
    let admin_id = account(
        store,
        AccountInput {
            kind: "agency".into(),
            display_name: ADMIN_NAME.into(),
            agency_code: Some("000.00.00.H49".into()),
            national_id: Some(ADMIN_ID.into()),
            ..Default::default()
        },
    );
    store
        .write(|c| {
            fedhub::directory::admin_grants::grant_top(
                c,
                &fedhub::directory::admin_grants::TopGrant {
                    account_id: admin_id.clone(),
                    rp_id: rp.id.clone(),
                    scope_agency_code: "000.00.00.H49".into(),
                    delegated_office_code: None,
                },
                NOW,
            )
        })
        .unwrap();
    let person_id = account(
        store,
        AccountInput {
            kind: "citizen".into(),
            display_name: PERSON_NAME.into(),
            national_id: Some(PERSON_ID.into()),
            phone: Some(PERSON_PHONE.into()),
            email: Some("binh@example.vn".into()),
            ..Default::default()
        },
    );
    // More of the directory: a namesake of the admin's search would show up too.
    for (name, id) in [
        ("Nguyễn Văn An", crate::sso::CITIZEN),
        ("Trần Văn Bình", "022085000321"),
    ] {
        account(
            store,
            AccountInput {
                kind: "citizen".into(),
                display_name: name.into(),
                national_id: Some(id.into()),
                ..Default::default()
            },
        );
    }
    let outside_id = account(
        store,
        AccountInput {
            kind: "citizen".into(),
            display_name: OUTSIDE_NAME.into(),
            national_id: Some("079185000001".into()),
            ..Default::default()
        },
    );
    let rp_id = rp.id.clone();
    store
        .write(|c| {
            support::insert_member(
                c,
                support::MemberRow {
                    id: OUTSIDE_MEMBER,
                    account_id: &outside_id,
                    rp_id: &rp_id,
                    unit: Some("000.00.01.H29"),
                    status: "not_activated",
                    user_group: None,
                    subject: "hcm-subject",
                },
            )
        })
        .unwrap();
    support::add_dev_connector(store, NOW);
    let people = serde_json::json!({ "people": [
        { "national_id": ADMIN_ID, "name": ADMIN_NAME },
        { "national_id": crate::sso::CITIZEN, "name": "Nguyễn Văn An" },
    ] });
    store
        .write(|c| {
            diesel::update(schema::connectors::table.find("dev"))
                .set(schema::connectors::config.eq(people.to_string()))
                .execute(c)?;
            Ok(())
        })
        .unwrap();
    Seeded {
        rp_id: rp.id,
        rp_name: rp.display_name,
        admin_id,
        person_id,
    }
}

/// The browser script ran `steps` steps, each with its numbered screenshot in `shots`.
pub(crate) fn every_step_ran(steps: usize, output: &str, shots: &Path) {
    assert!(
        output.contains(&format!("e2e: {steps} passed, 0 failed")),
        "every step ran:\n{output}"
    );
    for n in 1..=steps {
        let prefix = format!("{n:02}-");
        assert!(
            std::fs::read_dir(shots).unwrap().any(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.starts_with(&prefix) && name.ends_with(".png")
            }),
            "the screenshot of step {n} in {}",
            shots.display()
        );
    }
}

/// Runs `node tests/e2e/<script> <json>` with a deadline; its output goes to files so that a
/// chatty browser cannot block on a full pipe.
pub(crate) fn run_browser(
    script: &str,
    modules: &Path,
    data: &serde_json::Value,
) -> (bool, String, Duration) {
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg(repo_root().join("tests/e2e").join(script))
        .arg(data.to_string())
        .env("NODE_PATH", modules)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (apt-get install -y nodejs): {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed();
    let output = format!(
        "--- stdout\n{}--- stderr\n{}",
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    match status {
        Some(s) => (s.success(), format!("{s}\n{output}"), elapsed),
        None => (
            false,
            format!("killed after {BROWSER_TIMEOUT:?}\n{output}"),
            elapsed,
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_workflow_in_headless_chromium() {
    // Before anything else: without Node.js or Chromium this fails with how to install them.
    let modules = node_modules();
    let store = support::sqlite();
    let seeded = seed(&store);

    let listener = fedhub::web::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = support::test_config();
    config.server.listen = addr.to_string();
    config.server.public_url = format!("http://{addr}");
    config.cookies.secure = false;
    // The browser's clock is the real one: so is the hub's.
    let state = fedhub::web::AppState::new(
        config,
        store.store.clone(),
        Arc::new(fedhub::clock::SystemClock),
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(fedhub::web::serve(
        listener,
        state,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(2),
    ));

    let shots = screenshot_dir("console");
    // This run's screenshots only (a concurrent run may have removed the folder already).
    let _ = std::fs::remove_dir_all(&shots);
    let data = serde_json::json!({
        "base_url": format!("http://{addr}"),
        "screenshots": shots,
        "rp_id": seeded.rp_id,
        "rp_name": seeded.rp_name,
        "admin": { "name": ADMIN_NAME },
        "person": { "name": PERSON_NAME, "national_id": PERSON_ID, "phone": PERSON_PHONE_SHOWN },
        "first_unit": { "code": FINANCE.0, "name": FINANCE.1 },
        "new_unit": { "code": BUDGET.0, "name": BUDGET.1, "parent_name": FINANCE.1 },
        "role": ROLE,
        "outside": { "id": OUTSIDE_MEMBER, "name": OUTSIDE_NAME },
    });
    let (ok, output, elapsed) =
        tokio::task::spawn_blocking(move || run_browser("console.mjs", &modules, &data))
            .await
            .unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        ok,
        "the browser test failed ({elapsed:?}; screenshots in {}):\n{output}",
        shots.display()
    );
    eprintln!(
        "console in Chromium: {elapsed:?}, screenshots in {}",
        shots.display()
    );
    every_step_ran(STEPS, &output, &shots);

    // What the browser did is in the database: the membership is activated, in the unit
    // picked in the tree, with the role ...
    let (id, status, unit) = store
        .read(|c| {
            use schema::memberships as m;
            Ok(m::table
                .filter(m::account_id.eq(&seeded.person_id))
                .filter(m::rp_id.eq(&seeded.rp_id))
                .select((m::id, m::status, m::unit_agency_code))
                .get_result::<(String, String, Option<String>)>(c)?)
        })
        .unwrap();
    assert_eq!(status, "activated");
    assert_eq!(unit.as_deref(), Some(BUDGET.0));
    let roles: Vec<String> = store
        .read(|c| {
            use schema::{membership_roles as mr, roles as r};
            Ok(mr::table
                .inner_join(r::table.on(r::id.eq(mr::role_id)))
                .filter(mr::membership_id.eq(&id))
                .select(r::name)
                .load(c)?)
        })
        .unwrap();
    assert_eq!(roles, [ROLE]);
    // ... the other province's member is untouched ...
    let outside: String = store
        .read(|c| {
            Ok(schema::memberships::table
                .find(OUTSIDE_MEMBER)
                .select(schema::memberships::status)
                .get_result(c)?)
        })
        .unwrap();
    assert_eq!(outside, "not_activated");
    // ... and the audit log holds each step, and the refusal as denied, by the admin.
    let entries = store.read(|c| fedhub::audit::tail(c, 500)).unwrap();
    let actor = format!("account:{}", seeded.admin_id);
    for action in [
        "membership.add",
        "membership.activate",
        "membership.change_unit",
        "membership.assign_roles",
    ] {
        assert!(
            entries
                .iter()
                .any(|e| e.action == action && e.outcome == "success" && e.actor == actor),
            "{action} succeeded: {entries:#?}"
        );
    }
    let denied = entries
        .iter()
        .find(|e| {
            e.action == "membership.activate"
                && e.target.as_deref() == Some(&format!("membership:{OUTSIDE_MEMBER}"))
        })
        .expect("the refusal is audited");
    assert_eq!(denied.outcome, "denied");
    assert_eq!(denied.actor, actor);
    assert_eq!(denied.rp_id.as_deref(), Some(seeded.rp_id.as_str()));
}
