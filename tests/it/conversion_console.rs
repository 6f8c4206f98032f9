//! "Chuyển đổi tài khoản" in the console, in-process: a legacy account becomes a federated
//! one through the dry-run report and "Đồng ý"; a refused conversion (different units) says
//! why and changes nothing; a stale form is refused. And the self-service claim at
//! `/claim/{rp}`: wrong passwords are refused, audited and limited; the right one converts
//! once.

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use diesel::prelude::*;
use fedhub::conversion::legacy::LegacyRecord;
use fedhub::directory::accounts::AccountInput;
use fedhub::directory::agencies::AgencyInput;
use fedhub::store::schema;
use http::{header, Request, StatusCode};

use crate::sso::{get, send, Reply, CITIZEN};
use crate::support::{self, TestStore, NOW};

/// The top admin of Quảng Ninh.
const TOP_ADMIN: &str = "022080000001";
/// A person who is not a member of the relying party.
const OUTSIDER: &str = "022195000123";
/// "Mật khẩu 2019!" as `sha256$<salt>$<hex>` (computed with Python's hashlib).
const HASH: &str =
    "sha256$a1b2c3d4e5$e706d6174f7736331810a10928be5c773420b653cb585ed3703456c4f917bc2b";
const PASSWORD: &str = "Mật khẩu 2019!";

struct Hub {
    app: Router,
    store: TestStore,
    clock: Arc<fedhub::clock::ManualClock>,
    rp_id: String,
    citizen_id: String,
}

fn setup() -> Hub {
    let store = support::sqlite();
    let clock = Arc::new(fedhub::clock::ManualClock::at(NOW));
    let (app, rp_id, citizen_id) = crate::sso::hub_with(
        &store,
        &crate::sp::default_sp().metadata(),
        false,
        clock.clone(),
    );
    // hub_with registered 000.00.01.H49 (Sở Tài chính).
    let agency = AgencyInput {
        code: "000.00.02.H49".into(),
        name_vi: "Sở Y tế tỉnh Quảng Ninh".into(),
        ..Default::default()
    }
    .validate()
    .unwrap();
    store
        .write(|c| fedhub::directory::agencies::add(c, &agency, NOW))
        .unwrap();
    let account = |input: AccountInput| {
        let valid = input.validate().unwrap();
        store
            .write(|c| fedhub::directory::accounts::add(c, &valid, NOW))
            .unwrap()
            .id
    };
    let top_admin_id = account(AccountInput {
        kind: "agency".into(),
        display_name: "Văn phòng UBND tỉnh Quảng Ninh".into(),
        agency_code: Some("000.00.00.H49".into()),
        national_id: Some(TOP_ADMIN.into()),
        ..Default::default()
    });
    account(AccountInput {
        kind: "citizen".into(),
        display_name: "Người Lạ".into(),
        national_id: Some(OUTSIDER.into()),
        ..Default::default()
    });
    store
        .write(|c| {
            fedhub::directory::admin_grants::grant_top(
                c,
                &fedhub::directory::admin_grants::TopGrant {
                    account_id: top_admin_id.clone(),
                    rp_id: rp_id.clone(),
                    scope_agency_code: "000.00.00.H49".into(),
                    delegated_office_code: None,
                },
                NOW,
            )
        })
        .unwrap();
    store
        .write(|c| {
            diesel::update(schema::accounts::table.find(&citizen_id))
                .set((
                    schema::accounts::phone.eq("+84912345678"),
                    schema::accounts::email.eq("an.nv@taichinh.quangninh.gov.vn"),
                ))
                .execute(c)?;
            crate::support::insert_member(
                c,
                crate::support::MemberRow {
                    id: "citizen-member",
                    account_id: &citizen_id,
                    rp_id: &rp_id,
                    unit: Some("000.00.01.H49"),
                    status: "activated",
                    user_group: Some("Kế toán"),
                    subject: "fed-subject-an",
                },
            )
        })
        .unwrap();
    let legacy = |username: &str, name: &str, unit: &str| LegacyRecord {
        row: 1,
        username: username.into(),
        display_name: name.into(),
        unit: Some(unit.into()),
        user_group: Some("Kế toán".into()),
        roles: vec!["Kế toán viên".into()],
        password_hash: HASH.into(),
        ..Default::default()
    };
    let records = vec![
        legacy("nva", "Nguyễn Văn An", "000.00.01.H49"),
        legacy("khac", "Trần Thị Khác", "000.00.02.H49"),
    ];
    store
        .write(|c| fedhub::conversion::legacy::import(c, &rp_id, &records, NOW))
        .unwrap();
    let people = serde_json::json!({ "people": [
        { "national_id": CITIZEN, "name": "Nguyễn Văn An" },
        { "national_id": TOP_ADMIN, "name": "Văn phòng UBND tỉnh Quảng Ninh" },
        { "national_id": OUTSIDER, "name": "Người Lạ" },
    ] });
    store
        .write(|c| {
            diesel::update(schema::connectors::table.find("dev"))
                .set(schema::connectors::config.eq(people.to_string()))
                .execute(c)?;
            Ok(())
        })
        .unwrap();
    Hub {
        app,
        store,
        clock,
        rp_id,
        citizen_id,
    }
}

/// Opens `path`, signs in through the demo connector, and comes back: the SSO cookie.
async fn sign_in(app: &Router, path: &str, national_id: &str) -> String {
    let r = send(app, get(path, &[])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let login = r.location().to_string();
    assert!(login.starts_with("/login/"), "{login}");
    let bind = r
        .cookie("fedhub_login")
        .expect("login bound to the browser");
    let form = Request::post(format!("{login}/dev"))
        .header(header::COOKIE, format!("fedhub_login={bind}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("national_id={national_id}")))
        .unwrap();
    let r = send(app, form).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), path, "back to the page asked for");
    r.cookie("fedhub_sso").expect("an SSO session")
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn post(app: &Router, path: &str, sso: &str, fields: &[(&str, &str)]) -> Reply {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    let req = Request::post(path)
        .header(header::COOKIE, format!("fedhub_sso={sso}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.join("&")))
        .unwrap();
    send(app, req).await
}

async fn page(app: &Router, path: &str, sso: &str) -> Reply {
    send(app, get(path, &[("fedhub_sso", sso)])).await
}

fn csrf(body: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = body.find(marker).expect("a form with a CSRF token") + marker.len();
    let end = body[start..].find('"').unwrap() + start;
    body[start..end].to_string()
}

fn text(r: &Reply) -> String {
    r.body
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
}

/// The legacy account's id and whom it was converted into.
fn legacy(h: &Hub, username: &str) -> (String, Option<String>) {
    h.store
        .read(|c| {
            use schema::legacy_accounts as la;
            Ok(la::table
                .filter(la::rp_id.eq(&h.rp_id))
                .filter(la::username.eq(username))
                .select((la::id, la::converted_to))
                .get_result(c)?)
        })
        .unwrap()
}

fn conversions(h: &Hub) -> i64 {
    h.store
        .read(|c| Ok(schema::conversions::table.count().get_result(c)?))
        .unwrap()
}

fn citizen_roles(h: &Hub) -> Vec<String> {
    h.store
        .read(|c| {
            use schema::{membership_roles as mr, roles};
            Ok(mr::table
                .inner_join(roles::table)
                .filter(mr::membership_id.eq("citizen-member"))
                .select(roles::name)
                .load(c)?)
        })
        .unwrap()
}

/// The operator turns the self-service claim on or off through the admin API.
async fn switch_claim(h: &Hub, on: bool) {
    let token = h
        .store
        .write(|c| {
            fedhub::tokens::create_api_token(c, &format!("op-{}", uuid::Uuid::new_v4()), NOW)
        })
        .unwrap();
    let req = Request::put(format!("/admin/api/v1/relying-parties/{}/claim", h.rp_id))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::json!({ "enabled": on }).to_string()))
        .unwrap();
    let r = send(&h.app, req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["claim_enabled"], on);
}

fn audit(h: &Hub, action: &str) -> Vec<fedhub::audit::Entry> {
    h.store
        .read(|c| fedhub::audit::tail(c, 500))
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

#[tokio::test]
async fn a_legacy_account_converts_through_the_report_and_confirm() {
    let h = setup();
    let rp = h.rp_id.clone();
    let base = format!("/admin/rp/{rp}/conversion");
    let sso = sign_in(&h.app, "/admin", TOP_ADMIN).await;
    // The navigation offers the screen.
    let list = page(&h.app, &format!("/admin/rp/{rp}/members"), &sso).await;
    assert!(
        text(&list).contains(&format!(r#"href="{base}""#)),
        "{}",
        list.body
    );
    // Pick the mode, find the old account.
    let r = page(&h.app, &format!("{base}?mode=legacy&old_q=nva"), &sso).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = text(&r);
    assert!(body.contains("Chuyển đổi tài khoản"), "{body}");
    let (legacy_id, _) = legacy(&h, "nva");
    assert!(body.contains(&format!("old={legacy_id}")), "{body}");
    // Find the federated account by name, phone and email: id, name, phone, email, unit.
    for q in [
        "nguyen van an",
        "0912345678",
        "an.nv@taichinh.quangninh.gov.vn",
    ] {
        let r = page(
            &h.app,
            &format!("{base}?mode=legacy&old={legacy_id}&new_q={}", enc(q)),
            &sso,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let body = text(&r);
        for shown in [
            CITIZEN,
            "Nguyễn Văn An",
            "+84912345678",
            "an.nv@taichinh.quangninh.gov.vn",
            "000.00.01.H49",
        ] {
            assert!(body.contains(shown), "{q}: {shown} in {body}");
        }
        assert!(body.contains(&format!("new={}", h.citizen_id)), "{body}");
    }
    let r = page(
        &h.app,
        &format!("{base}?mode=legacy&old={legacy_id}&new={}", h.citizen_id),
        &sso,
    )
    .await;
    let body = text(&r);
    assert!(
        body.contains(&format!(r#"action="{base}/preview""#)),
        "{body}"
    );
    let token = csrf(&r.body);
    let fields = [
        ("csrf", token.as_str()),
        ("mode", "legacy"),
        ("old", legacy_id.as_str()),
        ("new", h.citizen_id.as_str()),
    ];
    // "Chuyển đổi": the dry run's report; nothing changes.
    let r = post(&h.app, &format!("{base}/preview"), &sso, &fields).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = text(&r);
    for shown in [
        "Đồng ý",
        "nva",
        "fed-subject-an",
        "Kế toán viên",
        "bản xem trước",
    ] {
        assert!(body.contains(shown), "{shown} in {body}");
    }
    assert_eq!(legacy(&h, "nva").1, None);
    assert_eq!(conversions(&h), 0);
    assert!(citizen_roles(&h).is_empty());
    // "Đồng ý": converted, the report kept at its own address.
    let r = post(&h.app, &base, &sso, &fields).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let at = r.location().to_string();
    assert!(at.starts_with(&format!("{base}/")), "{at}");
    assert_eq!(legacy(&h, "nva").1.as_deref(), Some(h.citizen_id.as_str()));
    assert_eq!(citizen_roles(&h), ["Kế toán viên"]);
    assert_eq!(conversions(&h), 1);
    let r = page(&h.app, &at, &sso).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = text(&r);
    assert!(body.contains("Đã chuyển đổi tài khoản"), "{body}");
    assert!(body.contains("fed-subject-an") && !body.contains("bản xem trước"));
    // Later, without the message.
    let report = at.split('?').next().unwrap();
    let r = page(&h.app, report, &sso).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(text(&r).contains("Nguyễn Văn An (nva)"));
    let entries = audit(&h, "conversion.convert");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].outcome, "success");
    assert_eq!(entries[0].rp_id.as_deref(), Some(rp.as_str()));
    // Converting it again is refused with the reason.
    let r = post(&h.app, &base, &sso, &fields).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("đã được chuyển đổi"), "{}", r.body);
    assert_eq!(conversions(&h), 1);
}

#[tokio::test]
async fn a_refused_conversion_says_why_and_a_stale_form_changes_nothing() {
    let h = setup();
    let base = format!("/admin/rp/{}/conversion", h.rp_id);
    let sso = sign_in(&h.app, "/admin", TOP_ADMIN).await;
    let (legacy_id, _) = legacy(&h, "khac");
    let r = page(
        &h.app,
        &format!("{base}?mode=legacy&old={legacy_id}&new={}", h.citizen_id),
        &sso,
    )
    .await;
    let token = csrf(&r.body);
    for path in [format!("{base}/preview"), base.clone()] {
        let r = post(
            &h.app,
            &path,
            &sso,
            &[
                ("csrf", &token),
                ("mode", "legacy"),
                ("old", &legacy_id),
                ("new", &h.citizen_id),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        let body = text(&r);
        assert!(
            body.contains("Hai tài khoản thuộc hai đơn vị khác nhau")
                && body.contains("000.00.02.H49")
                && body.contains("000.00.01.H49"),
            "{body}"
        );
    }
    assert_eq!(legacy(&h, "khac").1, None);
    assert_eq!(conversions(&h), 0);
    assert!(citizen_roles(&h).is_empty());
    let refused = audit(&h, "conversion.convert");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].outcome, "failure");
    assert!(refused[0]
        .detail
        .as_deref()
        .unwrap_or("")
        .contains("different units"));
    // A stale form (another token, or none) is refused before anything else.
    let (nva, _) = legacy(&h, "nva");
    for token in ["0123456789abcdef0123456789abcdef", ""] {
        let r = post(
            &h.app,
            &base,
            &sso,
            &[
                ("csrf", token),
                ("mode", "legacy"),
                ("old", &nva),
                ("new", &h.citizen_id),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert!(r.body.contains("Biểu mẫu đã hết hiệu lực"), "{}", r.body);
    }
    assert_eq!(legacy(&h, "nva").1, None);
    assert_eq!(conversions(&h), 0);
}

#[tokio::test]
async fn a_member_claims_a_legacy_account_with_its_password_once() {
    let h = setup();
    let path = format!("/claim/{}", h.rp_id);
    switch_claim(&h, true).await;
    // Someone who is not an activated member does not see the page.
    let outsider = sign_in(&h.app, &path, OUTSIDER).await;
    let r = page(&h.app, &path, &outsider).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // The member signs in at the hub and comes back to the form.
    let sso = sign_in(&h.app, &path, CITIZEN).await;
    let r = page(&h.app, &path, &sso).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Nhận tài khoản cũ"), "{}", r.body);
    let token = csrf(&r.body);
    let attempt = |password: &'static str| {
        let (app, path, sso, token) = (h.app.clone(), path.clone(), sso.clone(), token.clone());
        async move {
            post(
                &app,
                &path,
                &sso,
                &[
                    ("csrf", &token),
                    ("username", "nva"),
                    ("password", password),
                ],
            )
            .await
        }
    };
    // A stale form is refused.
    let r = post(
        &h.app,
        &path,
        &sso,
        &[
            ("csrf", "nope"),
            ("username", "nva"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Five wrong passwords: refused and audited.
    for _ in 0..5 {
        let r = attempt("mật khẩu sai").await;
        // The form again, saying so.
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains(r#"name="password""#));
        assert!(r.body.contains("không đúng"), "{}", r.body);
    }
    let failed = audit(&h, "conversion.claim");
    assert_eq!(failed.len(), 5);
    assert!(failed.iter().all(|e| e.outcome == "failure"));
    assert!(failed
        .iter()
        .all(|e| e.actor == format!("account:{}", h.citizen_id)));
    // The sixth attempt is limited, even with the right password.
    let r = attempt(PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.body.contains("sai mật khẩu quá nhiều lần"), "{}", r.body);
    assert_eq!(legacy(&h, "nva").1, None);
    assert_eq!(
        audit(&h, "conversion.claim").last().unwrap().outcome,
        "denied"
    );
    // Once the window has passed, the right password converts.
    h.clock.advance(16 * 60);
    let r = attempt(PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Đã nhận tài khoản cũ"), "{}", r.body);
    assert_eq!(legacy(&h, "nva").1.as_deref(), Some(h.citizen_id.as_str()));
    assert_eq!(citizen_roles(&h), ["Kế toán viên"]);
    // The claim is the person's own act: the audit entry and the stored conversion name
    // them, not an operator.
    let done = audit(&h, "conversion.claim").pop().unwrap();
    assert_eq!(done.outcome, "success");
    assert_eq!(done.actor, format!("account:{}", h.citizen_id));
    assert!(
        done.detail
            .as_deref()
            .unwrap_or("")
            .contains("Nguyễn Văn An"),
        "{done:?}"
    );
    let actor: String = h
        .store
        .read(|c| {
            Ok(schema::conversions::table
                .select(schema::conversions::actor)
                .get_result(c)?)
        })
        .unwrap();
    assert_eq!(actor, format!("account:{}", h.citizen_id));
    // The old password never works again.
    let r = attempt(PASSWORD).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("đã được chuyển đổi"), "{}", r.body);
    assert_eq!(conversions(&h), 1);
    assert_eq!(
        audit(&h, "conversion.claim").last().unwrap().outcome,
        "denied"
    );
}

#[tokio::test]
async fn the_claim_is_offered_only_where_the_operator_turned_it_on() {
    let h = setup();
    let path = format!("/claim/{}", h.rp_id);
    // Off by default: said at once, before anyone is asked to sign in, in either language.
    let r = send(&h.app, get(&path, &[])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.body.contains("không cho tự nhận tài khoản cũ"),
        "{}",
        r.body
    );
    assert!(!r.body.contains(r#"name="password""#));
    let r = send(&h.app, get(&format!("{path}?lang=en"), &[])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.body.contains("Claiming old accounts is not offered here"),
        "{}",
        r.body
    );
    // An unknown relying party says the same (nothing is revealed about it).
    let r = send(&h.app, get("/claim/no-such-rp", &[])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // On: the member signs in and gets the form.
    switch_claim(&h, true).await;
    let sso = sign_in(&h.app, &path, CITIZEN).await;
    let r = page(&h.app, &path, &sso).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = csrf(&r.body);
    // Off again while the form is open: the right password converts nothing.
    switch_claim(&h, false).await;
    let r = post(
        &h.app,
        &path,
        &sso,
        &[
            ("csrf", &token),
            ("username", "nva"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.body.contains("không cho tự nhận tài khoản cũ"),
        "{}",
        r.body
    );
    assert_eq!(legacy(&h, "nva").1, None);
    assert_eq!(conversions(&h), 0);
    // On again: the same form converts.
    switch_claim(&h, true).await;
    let r = post(
        &h.app,
        &path,
        &sso,
        &[
            ("csrf", &token),
            ("username", "nva"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(legacy(&h, "nva").1.as_deref(), Some(h.citizen_id.as_str()));
    assert_eq!(conversions(&h), 1);
}

/// The claim's own entry point holds the policy: the switch, and nothing but a legacy account
/// into the person who proved it.
#[test]
fn the_claim_entry_point_checks_the_switch_itself() {
    use fedhub::conversion::convert;
    let h = setup();
    let (legacy_id, _) = legacy(&h, "nva");
    let proof = convert::prove_ownership(&h.rp_id, &legacy_id, HASH, PASSWORD, &h.citizen_id)
        .unwrap()
        .expect("the right password proves ownership");
    assert!(
        convert::prove_ownership(&h.rp_id, &legacy_id, HASH, "sai", &h.citizen_id)
            .unwrap()
            .is_none()
    );
    let off = h
        .store
        .write(|c| convert::convert_claim(c, &proof, NOW))
        .unwrap_err();
    assert!(
        matches!(&off, fedhub::Error::Forbidden(why) if why == convert::CLAIM_OFF),
        "{off:?}"
    );
    assert_eq!(conversions(&h), 0);
    h.store
        .write(|c| fedhub::rp::set_claim_enabled(c, &h.rp_id, true, NOW))
        .unwrap();
    let (report, _) = h
        .store
        .write(|c| convert::convert_claim(c, &proof, NOW))
        .unwrap();
    assert_eq!(report.target_account_id, h.citizen_id);
    assert_eq!(report.old_subject, "nva");
}
