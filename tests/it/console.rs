//! The admin console at `/admin`, in-process: signing in through the demo connector, the
//! seed's workflow (search the directory, add, activate, change unit, assign role), admin
//! grants, the registry, the audit log and its CSV export, and every refusal (no rights,
//! stale or foreign forms, out-of-scope actions).

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use diesel::prelude::*;
use fedhub::admin::memberships::Admin;
use fedhub::directory::accounts::AccountInput;
use fedhub::directory::agencies::AgencyInput;
use fedhub::store::schema;
use http::{header, Request, StatusCode};

use crate::sso::{get, send, Reply, CITIZEN};
use crate::support::{self, TestStore, NOW};

const ORIGIN: &str = "http://127.0.0.1:8080";
/// The top admin of Quảng Ninh (a state-agency account registered with a personal ID too,
/// so that the demo connector signs it in).
const TOP_ADMIN: &str = "022080000001";
/// A person with no admin rights.
const NOBODY: &str = "022195000123";
/// The federation operator's account.
const OPERATOR: &str = "001090012345";
/// The level-1 admin of another relying party only.
const OTHER_ADMIN: &str = "022185000777";
/// A citizen of Hồ Chí Minh City, a member in another province's unit.
const HCM_CITIZEN: &str = "079185000001";

struct Console {
    app: Router,
    store: TestStore,
    rp_id: String,
    other_rp: String,
    citizen_id: String,
    top_admin_id: String,
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

fn insert_grant(
    store: &TestStore,
    account_id: &str,
    level: &str,
    rp: Option<&str>,
    scope: Option<&str>,
) {
    use schema::admin_grants::dsl as g;
    store
        .write(|c| {
            diesel::insert_into(g::admin_grants)
                .values((
                    g::id.eq(uuid::Uuid::new_v4().to_string()),
                    g::account_id.eq(account_id),
                    g::rp_id.eq(rp),
                    g::level.eq(level),
                    g::scope_agency_code.eq(scope),
                    g::created_at.eq(NOW),
                ))
                .execute(c)?;
            Ok(())
        })
        .unwrap();
}

/// A hub with Quảng Ninh's units, a registered SP, a second relying party, the people of
/// these tests, and the demo connector offering them.
fn setup() -> Console {
    setup_on(support::sqlite())
}

fn setup_on(store: TestStore) -> Console {
    let (app, rp_id, citizen_id) = crate::sso::hub_with(
        &store,
        &crate::sp::default_sp().metadata(),
        false,
        Arc::new(fedhub::clock::ManualClock::at(NOW)),
    );
    // hub_with registered 000.00.01.H49 (Sở Tài chính).
    agency(&store, "000.00.02.H49", "Sở Y tế tỉnh Quảng Ninh");
    agency(&store, "000.01.01.H49", "Phòng Quản lý ngân sách");
    agency(
        &store,
        "000.00.01.H29",
        "Sở Tài chính Thành phố Hồ Chí Minh",
    );
    let top_admin_id = account(
        &store,
        AccountInput {
            kind: "agency".into(),
            display_name: "Văn phòng UBND tỉnh Quảng Ninh".into(),
            agency_code: Some("000.00.00.H49".into()),
            national_id: Some(TOP_ADMIN.into()),
            ..Default::default()
        },
    );
    let nobody = AccountInput {
        kind: "citizen".into(),
        display_name: "Người Lạ".into(),
        national_id: Some(NOBODY.into()),
        ..Default::default()
    };
    account(&store, nobody);
    let operator_id = account(
        &store,
        AccountInput {
            kind: "citizen".into(),
            display_name: "Cán bộ Văn phòng Chính phủ".into(),
            national_id: Some(OPERATOR.into()),
            ..Default::default()
        },
    );
    let other_admin_id = account(
        &store,
        AccountInput {
            kind: "citizen".into(),
            display_name: "Phạm Thu Hà".into(),
            national_id: Some(OTHER_ADMIN.into()),
            ..Default::default()
        },
    );
    let hcm_id = account(
        &store,
        AccountInput {
            kind: "citizen".into(),
            display_name: "Võ Minh Châu".into(),
            national_id: Some(HCM_CITIZEN.into()),
            phone: Some("0987654321".into()),
            ..Default::default()
        },
    );
    // The phone number the directory search finds the citizen by.
    store
        .write(|c| {
            diesel::update(schema::accounts::table.find(&citizen_id))
                .set(schema::accounts::phone.eq("+84912345678"))
                .execute(c)?;
            Ok(())
        })
        .unwrap();
    let owner = fedhub_identifiers::AgencyCode::parse("000.00.00.H49").unwrap();
    let other_rp = store
        .write(|c| {
            fedhub::rp::insert(
                c,
                fedhub::rp::NewRelyingParty {
                    protocol: "saml",
                    entity_id: "https://pakn.example.gov.vn/saml",
                    id_field: "entity_id",
                    display_name: Some("Hệ thống phản ánh kiến nghị"),
                    owner: &owner,
                    config: "{}".into(),
                    requires_membership: false,
                },
                NOW,
            )
        })
        .unwrap()
        .id;
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
    insert_grant(&store, &operator_id, "operator", None, None);
    insert_grant(
        &store,
        &other_admin_id,
        "level1",
        Some(&other_rp),
        Some("000.00.00.H49"),
    );
    // A member in Hồ Chí Minh City: outside the Quảng Ninh admin's subtree.
    store
        .write(|c| {
            crate::support::insert_member(
                c,
                crate::support::MemberRow {
                    id: "hcm-member",
                    account_id: &hcm_id,
                    rp_id: &rp_id,
                    unit: Some("000.00.01.H29"),
                    status: "not_activated",
                    user_group: None,
                    subject: "hcm-subject",
                },
            )
        })
        .unwrap();
    // The demo connector offers every person of these tests.
    let people = serde_json::json!({ "people": [
        { "national_id": CITIZEN, "name": "Nguyễn Văn An" },
        { "national_id": NOBODY, "name": "Người Lạ" },
        { "national_id": TOP_ADMIN, "name": "Văn phòng UBND tỉnh Quảng Ninh" },
        { "national_id": OPERATOR, "name": "Cán bộ Văn phòng Chính phủ" },
        { "national_id": OTHER_ADMIN, "name": "Phạm Thu Hà" },
    ] });
    store
        .write(|c| {
            diesel::update(schema::connectors::table.find("dev"))
                .set(schema::connectors::config.eq(people.to_string()))
                .execute(c)?;
            Ok(())
        })
        .unwrap();
    Console {
        app,
        store,
        rp_id,
        other_rp,
        citizen_id,
        top_admin_id,
    }
}

/// Signs in to the console through the demo connector; returns the SSO cookie.
async fn sign_in(app: &Router, national_id: &str) -> String {
    let r = send(app, get("/admin", &[])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let login = r.location().to_string();
    assert!(login.starts_with("/login/"), "{login}");
    let bind = r
        .cookie("fedhub_login")
        .expect("login bound to the browser");
    let page = send(app, get(&login, &[("fedhub_login", &bind)])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let form = Request::post(format!("{login}/dev"))
        .header(header::COOKIE, format!("fedhub_login={bind}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("national_id={national_id}")))
        .unwrap();
    let r = send(app, form).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/admin", "back to the page asked for");
    r.cookie("fedhub_sso").expect("an SSO session")
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A form POST from the browser (same origin unless `origin` says otherwise).
async fn post(
    app: &Router,
    path: &str,
    sso: &str,
    fields: &[(&str, &str)],
    origin: Option<&str>,
) -> Reply {
    let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
    post_with(app, path, sso, fields, &headers).await
}

/// A form POST with these request headers.
async fn post_with(
    app: &Router,
    path: &str,
    sso: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Reply {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    let mut b = Request::post(path)
        .header(header::COOKIE, format!("fedhub_sso={sso}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(app, b.body(Body::from(body.join("&"))).unwrap()).await
}

async fn page(app: &Router, path: &str, sso: &str) -> Reply {
    send(app, get(path, &[("fedhub_sso", sso)])).await
}

/// The CSRF token every form of the page carries.
fn csrf(body: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = body.find(marker).expect("a form with a CSRF token") + marker.len();
    let end = body[start..].find('"').unwrap() + start;
    body[start..end].to_string()
}

/// Text of a page with minijinja's escapes undone (`/` is escaped in attributes and text).
/// This session's CSRF token, from a page that offers a form (the "Thêm mới" search for a
/// person who is never added).
async fn token(app: &Router, rp: &str, sso: &str) -> String {
    csrf(
        &page(app, &format!("/admin/rp/{rp}/members/new?q={NOBODY}"), sso)
            .await
            .body,
    )
}

fn text(r: &Reply) -> String {
    r.body
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
}

fn membership(c: &Console, account_id: &str) -> Option<(String, String, Option<String>)> {
    c.store
        .read(|conn| {
            use schema::memberships as m;
            Ok(m::table
                .filter(m::account_id.eq(account_id))
                .filter(m::rp_id.eq(&c.rp_id))
                .select((m::id, m::status, m::unit_agency_code))
                .get_result(conn)
                .optional()?)
        })
        .unwrap()
}

fn audit(c: &Console) -> Vec<fedhub::audit::Entry> {
    c.store.read(|conn| fedhub::audit::tail(conn, 500)).unwrap()
}

#[tokio::test]
async fn an_account_without_admin_rights_gets_the_403_page() {
    let c = setup();
    let sso = sign_in(&c.app, NOBODY).await;
    let r = page(&c.app, "/admin", &sso).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("Không có quyền quản trị"), "{}", r.body);
    let r = page(&c.app, &format!("/admin/rp/{}/members", c.rp_id), &sso).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Not signed in at all: a sign-in starts, back to the page asked for afterwards.
    let r = send(&c.app, get("/admin/audit", &[])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().starts_with("/login/"));
}

#[tokio::test]
async fn a_top_admin_walks_the_seed_workflow() {
    seed_workflow(setup()).await;
}

/// The same on PostgreSQL: every query of the console runs on both engines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_seed_workflow_and_audit_log() {
    let c = tokio::task::spawn_blocking(|| setup_on(support::postgres()))
        .await
        .unwrap();
    seed_workflow(c).await;
    let c = tokio::task::spawn_blocking(|| setup_on(support::postgres()))
        .await
        .unwrap();
    audit_log_scoping(c).await;
}

async fn seed_workflow(c: Console) {
    let rp = c.rp_id.clone();
    let sso = sign_in(&c.app, TOP_ADMIN).await;
    let r = page(&c.app, "/admin", &sso).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), format!("/admin/rp/{rp}/members"));
    let list = page(&c.app, &format!("/admin/rp/{rp}/members"), &sso).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let body = text(&list);
    assert!(
        body.contains("Quản lý người dùng") && body.contains("Tìm thấy 0 kết quả"),
        "{body}"
    );
    assert!(body.contains(r#"aria-current="page""#));
    assert!(
        body.contains(r#"action="/saml/logout""#),
        "a sign-out button"
    );
    assert!(
        body.contains("Văn phòng UBND tỉnh Quảng Ninh"),
        "who is signed in"
    );
    assert!(
        !body.contains(r#"href="/admin/registry""#),
        "the registry is the operator's"
    );
    let token = token(&c.app, &rp, &sso).await;

    // "Thêm mới": the directory by CCCD, by phone and by name.
    for q in [CITIZEN, "0912345678", "nguyen van an"] {
        let r = page(
            &c.app,
            &format!("/admin/rp/{rp}/members/new?q={}", enc(q)),
            &sso,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let body = text(&r);
        assert!(body.contains("Nguyễn Văn An"), "{q}: {body}");
        assert!(body.contains("an@example.vn") && body.contains("+84912345678"));
        assert!(body.contains("Công dân") && body.contains("Lưu vào hệ thống"));
        assert!(
            body.contains(r#"<option value="000.00.02.H49""#),
            "units of the subtree"
        );
        assert!(
            !body.contains("000.00.01.H29"),
            "no unit of another province"
        );
    }
    // An organisation by its agency code.
    let r = page(
        &c.app,
        &format!("/admin/rp/{rp}/members/new?q=000.00.00.H49"),
        &sso,
    )
    .await;
    assert!(text(&r).contains("Cơ quan nhà nước"), "{}", r.body);
    let r = page(&c.app, &format!("/admin/rp/{rp}/members/new?q=x"), &sso).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("ít nhất 2 ký tự"));

    // "Lưu vào hệ thống": not activated, back to the list with a message.
    let r = post(
        &c.app,
        &format!("/admin/rp/{rp}/members/new"),
        &sso,
        &[
            ("csrf", &token),
            ("account_id", &c.citizen_id),
            ("unit", "000.00.01.H49"),
        ],
        Some(ORIGIN),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r
        .location()
        .starts_with(&format!("/admin/rp/{rp}/members?done=added")));
    let list = page(&c.app, r.location(), &sso).await;
    let body = text(&list);
    assert!(body.contains("Đã lưu vào hệ thống"), "{body}");
    assert!(body.contains("Nguyễn Văn An") && body.contains(r#"badge-inactive">Chưa kích hoạt"#));
    assert!(body.contains("Sở Tài chính tỉnh Quảng Ninh"));
    let (id, status, _) = membership(&c, &c.citizen_id).unwrap();
    assert_eq!(status, "not_activated");
    assert!(body.contains(&format!("/admin/rp/{rp}/members/{id}/unit")));
    assert!(body.contains(&format!("/admin/rp/{rp}/members/{id}/roles")));
    // Already a member: the search says so instead of offering the form.
    let r = page(
        &c.app,
        &format!("/admin/rp/{rp}/members/new?q={CITIZEN}"),
        &sso,
    )
    .await;
    assert!(r.body.contains("Đã có trong hệ thống"));
    let r = post(
        &c.app,
        &format!("/admin/rp/{rp}/members/new"),
        &sso,
        &[("csrf", &token), ("account_id", &c.citizen_id)],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.body.contains("Người này đã có trong hệ thống"),
        "{}",
        r.body
    );

    // "Kích hoạt".
    let r = post(
        &c.app,
        &format!("/admin/rp/{rp}/members/{id}/activate"),
        &sso,
        &[("csrf", &token)],
        Some(ORIGIN),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let body = text(&page(&c.app, r.location(), &sso).await);
    assert!(body.contains("Đã kích hoạt người dùng"), "{body}");
    assert!(body.contains(r#"badge-active">Đã kích hoạt"#) && !body.contains("badge-inactive"));

    // "Thay đổi đơn vị": the tree of the subtree, then the new unit.
    let r = page(&c.app, &format!("/admin/rp/{rp}/members/{id}/unit"), &sso).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = text(&r);
    assert!(body.contains("<details") && body.contains(r#"type="radio""#));
    assert!(
        body.contains(r#"id="u-000.00.01.H49" value="000.00.01.H49" required checked"#),
        "{body}"
    );
    assert!(body.contains("Phòng Quản lý ngân sách") && body.contains("Sở Y tế tỉnh Quảng Ninh"));
    assert!(!body.contains("000.00.01.H29"));
    let r = post(
        &c.app,
        &format!("/admin/rp/{rp}/members/{id}/unit"),
        &sso,
        &[("csrf", &token), ("unit", "000.00.02.H49")],
        Some(ORIGIN),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let body = text(&page(&c.app, r.location(), &sso).await);
    assert!(
        body.contains("Đã thay đổi đơn vị") && body.contains("Sở Y tế tỉnh Quảng Ninh"),
        "{body}"
    );
    assert_eq!(
        membership(&c, &c.citizen_id).unwrap().2.as_deref(),
        Some("000.00.02.H49")
    );
    // An unknown unit: the reason, and nothing changes.
    let r = post(
        &c.app,
        &format!("/admin/rp/{rp}/members/{id}/unit"),
        &sso,
        &[("csrf", &token), ("unit", "000.00.77.H49")],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        text(&r).contains("Đơn vị 000.00.77.H49 chưa được đăng ký"),
        "{}",
        r.body
    );
    let r = post(
        &c.app,
        &format!("/admin/rp/{rp}/members/{id}/unit"),
        &sso,
        &[("csrf", &token), ("unit", "000.00.01.H29")],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "another province");
    assert!(r.body.contains("phạm vi"), "{}", r.body);
    assert_eq!(
        membership(&c, &c.citizen_id).unwrap().2.as_deref(),
        Some("000.00.02.H49")
    );

    // "Gán quyền": built-in roles, the relying party's own, and the user group.
    c.store
        .write(|conn| {
            fedhub::admin::memberships::add_role(
                conn,
                &Admin::operator("cli:test"),
                &rp,
                "Cán bộ \"một cửa\", tiếp nhận",
                NOW,
            )
        })
        .unwrap();
    let r = page(&c.app, &format!("/admin/rp/{rp}/members/{id}/roles"), &sso).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = text(&r);
    for role in [
        "Admin của Bộ",
        "Admin của Tỉnh/thành phố",
        "Nhóm admin đơn vị",
        "tiếp nhận",
    ] {
        assert!(body.contains(role), "{role}: {body}");
    }
    assert!(body.contains(r#"type="checkbox""#) && body.contains("Lưu lại"));
    let r = post(
        &c.app,
        &format!("/admin/rp/{rp}/members/{id}/roles"),
        &sso,
        &[
            ("csrf", &token),
            ("role", "Admin của Tỉnh/thành phố"),
            ("role", "Cán bộ \"một cửa\", tiếp nhận"),
            ("user_group", "Nhóm admin đơn vị"),
        ],
        Some(ORIGIN),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let body = text(&page(&c.app, r.location(), &sso).await);
    assert!(body.contains("Đã lưu quyền"), "{body}");
    assert!(body.contains("Admin của Tỉnh/thành phố") && body.contains("Nhóm admin đơn vị"));
    let r = post(
        &c.app,
        &format!("/admin/rp/{rp}/members/{id}/roles"),
        &sso,
        &[("csrf", &token), ("role", "Thủ quỹ")],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        text(&r).contains("Quyền “Thủ quỹ” không có trong hệ thống này"),
        "{}",
        r.body
    );

    // Filters of the list.
    let r = page(
        &c.app,
        &format!("/admin/rp/{rp}/members?status=locked"),
        &sso,
    )
    .await;
    assert!(r.body.contains("Tìm thấy 0 kết quả"));
    let r = page(
        &c.app,
        &format!("/admin/rp/{rp}/members?unit=000.00.02.H49&q=an"),
        &sso,
    )
    .await;
    assert!(r.body.contains("Tìm thấy 1 kết quả"), "{}", r.body);

    // English on request.
    let r = page(&c.app, &format!("/admin/rp/{rp}/members?lang=en"), &sso).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = text(&r);
    assert!(body.contains(r#"lang="en""#) && body.contains("User management"));
    assert!(body.contains(r#"badge-active">Activated"#), "{body}");
    assert!(body.contains("Change unit") && body.contains("Assign role"));
    assert!(!body.contains("Quản lý người dùng"), "{body}");

    // Lock: the audit log holds every step; the CSV export too, properly quoted.
    let r = post(
        &c.app,
        &format!("/admin/rp/{rp}/members/{id}/lock"),
        &sso,
        &[("csrf", &token)],
        Some(ORIGIN),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(membership(&c, &c.citizen_id).unwrap().1, "locked");
    let r = page(&c.app, "/admin/audit?action=membership.", &sso).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = text(&r);
    for a in [
        "membership.add",
        "membership.activate",
        "membership.change_unit",
        "membership.assign_roles",
        "membership.lock",
    ] {
        assert!(body.contains(a), "{a}: {body}");
    }
    assert!(
        body.contains(r#"badge-locked">Bị từ chối"#),
        "the refused unit change"
    );
    let csv = page(&c.app, "/admin/audit.csv", &sso).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(
        csv.headers.get(header::CONTENT_TYPE).unwrap(),
        "text/csv; charset=utf-8"
    );
    let disposition = csv
        .headers
        .get(header::CONTENT_DISPOSITION)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"fedhub-audit-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    assert!(csv
        .body
        .starts_with("id,at,actor,action,target,rp_id,outcome,request_id,detail\n"));
    assert!(
        csv.body
            .contains(r#""Admin của Tỉnh/thành phố, Cán bộ ""một cửa"", tiếp nhận""#),
        "{}",
        csv.body
    );
    for a in [
        "membership.add",
        "membership.activate",
        "membership.change_unit",
        "membership.assign_roles",
        "membership.lock",
    ] {
        assert!(
            csv.body
                .lines()
                .any(|l| l.contains(&format!(",{a},")) && l.contains(",success,")),
            "{a}: {}",
            csv.body
        );
    }
    assert!(audit(&c).iter().any(|e| e.action == "audit.export"));
}

#[tokio::test]
async fn stale_and_foreign_forms_change_nothing() {
    let c = setup();
    let sso = sign_in(&c.app, TOP_ADMIN).await;
    let rp = c.rp_id.clone();
    let token = token(&c.app, &rp, &sso).await;
    let path = format!("/admin/rp/{rp}/members/new");
    for (fields, origin) in [
        (vec![("account_id", c.citizen_id.as_str())], None),
        (
            vec![
                ("csrf", "0123456789abcdef0123456789abcdef"),
                ("account_id", c.citizen_id.as_str()),
            ],
            None,
        ),
        (
            vec![
                ("csrf", token.as_str()),
                ("account_id", c.citizen_id.as_str()),
            ],
            Some("https://evil.example"),
        ),
    ] {
        let r = post(&c.app, &path, &sso, &fields, origin).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{fields:?} {origin:?}");
        assert!(r.body.contains("Biểu mẫu đã hết hiệu lực"), "{}", r.body);
    }
    assert!(membership(&c, &c.citizen_id).is_none());
    // Another session's token is not this one's.
    let other = sign_in(&c.app, TOP_ADMIN).await;
    let r = post(
        &c.app,
        &path,
        &other,
        &[("csrf", &token), ("account_id", &c.citizen_id)],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(membership(&c, &c.citizen_id).is_none());
    // A browser that says the form came from another site.
    let r = post_with(
        &c.app,
        &path,
        &sso,
        &[("csrf", &token), ("account_id", &c.citizen_id)],
        &[("origin", "null"), ("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(membership(&c, &c.citizen_id).is_none());
    // A page of the hub (Referrer-Policy: no-referrer) posts with `Origin: null`: the
    // token and the Fetch metadata decide.
    let r = post_with(
        &c.app,
        &path,
        &sso,
        &[("csrf", &token), ("account_id", &c.citizen_id)],
        &[("origin", "null"), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let (id, status, _) = membership(&c, &c.citizen_id).unwrap();
    assert_eq!(status, "not_activated");
    // The hub's own origin with the right token passes.
    let r = post(
        &c.app,
        &format!("/admin/rp/{rp}/members/{id}/activate"),
        &sso,
        &[("csrf", &token)],
        Some(ORIGIN),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(membership(&c, &c.citizen_id).unwrap().1, "activated");
}

#[tokio::test]
async fn out_of_scope_actions_are_refused_and_audited() {
    let c = setup();
    let sso = sign_in(&c.app, TOP_ADMIN).await;
    let rp = c.rp_id.clone();
    let token = token(&c.app, &rp, &sso).await;
    // The Hồ Chí Minh City member is not in the list of a Quảng Ninh admin ...
    let list = page(&c.app, &format!("/admin/rp/{rp}/members"), &sso).await;
    assert!(!list.body.contains("Võ Minh Châu"));
    // ... and acting on them is refused with the policy's reason.
    let r = post(
        &c.app,
        &format!("/admin/rp/{rp}/members/hcm-member/activate"),
        &sso,
        &[("csrf", &token)],
        Some(ORIGIN),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("Không được phép thực hiện"), "{}", r.body);
    assert!(
        r.body
            .contains("Đơn vị nằm ngoài phạm vi cơ quan bạn quản trị"),
        "{}",
        r.body
    );
    let status: String = c
        .store
        .read(|conn| {
            Ok(schema::memberships::table
                .find("hcm-member")
                .select(schema::memberships::status)
                .get_result(conn)?)
        })
        .unwrap();
    assert_eq!(status, "not_activated");
    let entries = audit(&c);
    let denied = entries
        .iter()
        .find(|e| {
            e.action == "membership.activate"
                && e.target.as_deref() == Some("membership:hcm-member")
        })
        .expect("the refusal is audited");
    assert_eq!(denied.outcome, "denied");
    assert_eq!(denied.actor, format!("account:{}", c.top_admin_id));
    // The log viewer says why, in the admin's language.
    let r = page(&c.app, "/admin/audit?outcome=denied", &sso).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains("membership.activate") && r.body.contains("Đơn vị nằm ngoài phạm vi"),
        "{}",
        r.body
    );
    // Its pages too.
    let r = page(
        &c.app,
        &format!("/admin/rp/{rp}/members/hcm-member/unit"),
        &sso,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = page(
        &c.app,
        &format!("/admin/rp/{rp}/members/hcm-member/roles"),
        &sso,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A relying party where the admin holds no grant.
    let r = page(&c.app, &format!("/admin/rp/{}/members", c.other_rp), &sso).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body
            .contains("không có quyền quản trị trong hệ thống này"),
        "{}",
        r.body
    );
    assert!(audit(&c)
        .iter()
        .any(|e| e.action == "membership.list" && e.outcome == "denied"));
    // The registry is the operator's.
    let r = page(&c.app, "/admin/registry", &sso).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post(
        &c.app,
        "/admin/registry/connectors/dev/disable",
        &sso,
        &[("csrf", &token)],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(audit(&c)
        .iter()
        .any(|e| e.action == "connector.disable" && e.outcome == "denied"));
}

#[tokio::test]
async fn admin_grants_go_down_the_tree() {
    let c = setup();
    let sso = sign_in(&c.app, TOP_ADMIN).await;
    let rp = c.rp_id.clone();
    let r = page(&c.app, &format!("/admin/rp/{rp}/grants"), &sso).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = text(&r);
    assert!(body.contains("Quản trị cấp cao") && body.contains("Văn phòng UBND tỉnh Quảng Ninh"));
    assert!(
        body.contains("Đơn vị vận hành nền tảng"),
        "granted by the operator"
    );
    let token = token(&c.app, &rp, &sso).await;
    let r = page(
        &c.app,
        &format!("/admin/rp/{rp}/grants?who={CITIZEN}"),
        &sso,
    )
    .await;
    let body = text(&r);
    assert!(
        body.contains("Nguyễn Văn An") && body.contains(r#"name="account_id""#),
        "{body}"
    );
    assert!(
        body.contains(r#"<option value="level1">"#),
        "a top admin grants level 1"
    );
    let grant = |level: &'static str, scope: &'static str, who: String| {
        let (app, sso, token, rp) = (c.app.clone(), sso.clone(), token.clone(), rp.clone());
        async move {
            post(
                &app,
                &format!("/admin/rp/{rp}/grants"),
                &sso,
                &[
                    ("csrf", &token),
                    ("account_id", &who),
                    ("level", level),
                    ("scope", scope),
                ],
                Some(ORIGIN),
            )
            .await
        }
    };
    let r = grant("level1", "000.00.01.H49", c.citizen_id.clone()).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let body = text(&page(&c.app, r.location(), &sso).await);
    assert!(
        body.contains("Đã cấp quyền quản trị") && body.contains("Cấp 1"),
        "{body}"
    );
    assert!(body.contains("Sở Tài chính tỉnh Quảng Ninh"));
    assert!(
        body.contains(
            r#"Văn phòng UBND tỉnh Quảng Ninh<br><span class="muted">Quản trị cấp cao</span>"#
        ),
        "granted by the top admin's grant: {body}"
    );
    // Refusals show the policy's reason.
    let r = grant("level2", "000.00.01.H29", c.citizen_id.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body
            .contains("Chỉ được cấp (hoặc thu hồi) quyền thấp hơn cấp của bạn"),
        "{}",
        r.body
    );
    let r = grant("level2", "000.00.02.H49", c.top_admin_id.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("tự cấp"), "{}", r.body);
    let r = grant("top", "000.00.02.H49", c.citizen_id.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = grant("level2", "000.00.99.H49", c.citizen_id.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(text(&r).contains("000.00.99.H49"));
    // Revoke.
    let id: String = c
        .store
        .read(|conn| {
            use schema::admin_grants as g;
            Ok(g::table
                .filter(g::account_id.eq(&c.citizen_id))
                .filter(g::revoked_at.is_null())
                .select(g::id)
                .get_result(conn)?)
        })
        .unwrap();
    let r = post(
        &c.app,
        &format!("/admin/rp/{rp}/grants/{id}/revoke"),
        &sso,
        &[("csrf", &token)],
        Some(ORIGIN),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let body = text(&page(&c.app, r.location(), &sso).await);
    assert!(
        body.contains("Đã thu hồi quyền quản trị") && !body.contains("Cấp 1 ("),
        "{body}"
    );
    let actions: Vec<(String, String)> = audit(&c)
        .into_iter()
        .filter(|e| e.action.starts_with("admin."))
        .map(|e| (e.action, e.outcome))
        .collect();
    assert!(actions.contains(&("admin.grant".into(), "success".into())));
    assert!(actions.contains(&("admin.grant".into(), "denied".into())));
    assert!(actions.contains(&("admin.revoke".into(), "success".into())));
    // The top admin's own grant is the operator's to revoke: no button.
    let body = text(&page(&c.app, &format!("/admin/rp/{rp}/grants"), &sso).await);
    assert!(!body.contains("/revoke\""), "{body}");
}

#[tokio::test]
async fn the_audit_log_of_an_rp_admin_holds_only_their_relying_parties() {
    audit_log_scoping(setup()).await;
}

async fn audit_log_scoping(c: Console) {
    // Entries in both relying parties and one without.
    c.store
        .write(|conn| {
            for (action, rp) in [
                ("membership.add", Some(c.rp_id.clone())),
                ("membership.activate", Some(c.other_rp.clone())),
                ("rp.add", None),
            ] {
                let mut e = fedhub::audit::Event::new("cli:test", action);
                e.rp_id = rp;
                fedhub::audit::record(conn, &e, NOW)?;
            }
            Ok(())
        })
        .unwrap();
    let sso = sign_in(&c.app, OTHER_ADMIN).await;
    let r = page(&c.app, "/admin", &sso).await;
    assert_eq!(r.location(), format!("/admin/rp/{}/members", c.other_rp));
    let csv = page(&c.app, "/admin/audit.csv", &sso).await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
    let rows: Vec<&str> = csv.body.lines().skip(1).collect();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|l| l.contains(&c.other_rp)), "{}", csv.body);
    assert!(rows.iter().any(|l| l.contains("membership.activate")));
    assert!(!csv.body.contains("rp.add") && !csv.body.contains("membership.add"));
    let r = page(&c.app, "/admin/audit", &sso).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("membership.activate") && !r.body.contains("rp.add"));
    // Another relying party's entries are refused, not filtered silently.
    let r = page(&c.app, &format!("/admin/audit.csv?rp={}", c.rp_id), &sso).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = page(&c.app, "/admin/audit?from=27-11-2026", &sso).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("NNNN-TT-NN"), "{}", r.body);

    // The operator reads everything, filters by date and outcome, and sees the registry.
    let op = sign_in(&c.app, OPERATOR).await;
    let csv = page(&c.app, "/admin/audit.csv", &op).await;
    assert!(
        csv.body.contains("rp.add")
            && csv.body.contains("membership.add")
            && csv.body.contains("login")
    );
    let csv = page(&c.app, "/admin/audit.csv?from=2026-11-28", &op).await;
    assert_eq!(csv.body.lines().count(), 1, "only the header: {}", csv.body);
    let csv = page(
        &c.app,
        "/admin/audit.csv?from=2026-11-27&to=2026-11-27&action=rp.",
        &op,
    )
    .await;
    assert_eq!(csv.body.lines().count(), 2, "{}", csv.body);
    let csv = page(&c.app, "/admin/audit.csv?actor=Phạm%20Thu", &op).await;
    assert!(
        csv.body
            .lines()
            .skip(1)
            .all(|l| l.contains(",login,") || l.contains("audit.export")),
        "{}",
        csv.body
    );
    assert!(
        csv.body.lines().count() > 1,
        "the other admin's sign-in, found by name"
    );
}

#[tokio::test]
async fn the_operator_manages_connectors_in_the_registry() {
    let c = setup();
    c.store
        .write(|conn| {
            use schema::connectors::dsl as k;
            diesel::insert_into(k::connectors)
                .values((
                    k::id.eq("spare"),
                    k::kind.eq("dev"),
                    k::display_name.eq("Dự phòng"),
                    k::config.eq(r#"{"people":[]}"#),
                    k::enabled.eq(true),
                    k::created_at.eq(NOW),
                    k::updated_at.eq(NOW),
                ))
                .execute(conn)?;
            Ok(())
        })
        .unwrap();
    let op = sign_in(&c.app, OPERATOR).await;
    let r = page(&c.app, "/admin", &op).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = page(&c.app, "/admin/registry", &op).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = text(&r);
    assert!(body.contains("Cổng DVC thử nghiệm") && body.contains("Hệ thống phản ánh kiến nghị"));
    assert!(body.contains("Ủy ban nhân dân tỉnh Quảng Ninh") && body.contains("SAML"));
    assert!(body.contains("Dự phòng") && body.contains("Đang bật"));
    assert!(
        body.contains(r#"href="/admin/registry" aria-current="page""#),
        "{body}"
    );
    let token = csrf(&r.body);
    let r = post(
        &c.app,
        "/admin/registry/connectors/spare/disable",
        &op,
        &[("csrf", &token)],
        Some(ORIGIN),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let body = text(&page(&c.app, r.location(), &op).await);
    assert!(body.contains("Đã tắt phương thức đăng nhập") && body.contains("Đã tắt"));
    let enabled: bool = c
        .store
        .read(|conn| {
            Ok(schema::connectors::table
                .find("spare")
                .select(schema::connectors::enabled)
                .get_result(conn)?)
        })
        .unwrap();
    assert!(!enabled);
    assert!(audit(&c).iter().any(|e| e.action == "connector.disable"
        && e.target.as_deref() == Some("spare")
        && e.outcome == "success"));
    let r = post(
        &c.app,
        "/admin/registry/connectors/spare/enable",
        &op,
        &[("csrf", &token)],
        Some(ORIGIN),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(audit(&c).iter().any(|e| e.action == "connector.enable"));
    // The operator administers every relying party's members too.
    let r = page(
        &c.app,
        &format!("/admin/rp/{}/members?lang=en", c.rp_id),
        &op,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains("Found 1 result(s)") && r.body.contains("Võ Minh Châu"),
        "{}",
        r.body
    );
}
