//! Delegated administration through the admin API, as a ministry's or province's IT team
//! uses it (seed II and III.3): the operator makes Quảng Ninh's registered state-agency
//! account top admin of a relying system; that account, with its personal token, finds people
//! in the directory, puts them into the system, activates them, moves them to their unit,
//! gives them roles and hands level-1 rights down to a department. Every refusal answers
//! problem+json, changes nothing and is in the audit log; every change shows at sign-in.

use axum::body::Body;
use diesel::prelude::*;
use fedhub::directory::accounts::AccountInput;
use fedhub::directory::admin_grants::Grant;
use fedhub::directory::agencies::AgencyInput;
use fedhub::store::schema;
use http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::oidc_support::{
    default_registration, jwt_claims, oidc_hub_at, pkce, query_of, OidcHub, ISSUER, REDIRECT,
};
use crate::sso::{get, send, Reply, CITIZEN};
use crate::support::{self, TestStore, NOW};

const API: &str = "/admin/api/v1";
/// Ủy ban nhân dân tỉnh Quảng Ninh.
const QUANG_NINH: &str = "000.00.00.H49";
/// Sở Tài chính tỉnh Quảng Ninh (a demo unit, registered by the tests).
const FINANCE: &str = "000.00.01.H49";
const FINANCE_NAME: &str = "Sở Tài chính tỉnh Quảng Ninh";
/// Sở Tư pháp tỉnh Quảng Ninh (a demo unit).
const JUSTICE: &str = "000.00.02.H49";
/// A department of Hồ Chí Minh City: another province.
const HCMC_FINANCE: &str = "000.00.01.H29";
const UNIT_ADMIN_GROUP: &str = "Nhóm admin đơn vị";

/// A hub with one OIDC relying party (Cổng DVC Quảng Ninh), its citizen Nguyễn Văn An, the
/// demo units, Quảng Ninh's state-agency account and the operator's token.
struct Portal {
    hub: OidcHub,
    /// The federation operator's API token.
    operator: String,
    /// The account Quảng Ninh registered with its certificate device.
    qn_office: String,
}

fn portal(store: TestStore, members_only: bool) -> Portal {
    let hub = oidc_hub_at(
        store,
        ISSUER,
        fedhub::rp::oidc::OidcRegistration {
            require_activated_membership: Some(members_only),
            ..default_registration()
        },
    );
    for (code, name) in [
        (FINANCE, FINANCE_NAME),
        (JUSTICE, "Sở Tư pháp tỉnh Quảng Ninh"),
        (HCMC_FINANCE, "Sở Tài chính Thành phố Hồ Chí Minh"),
    ] {
        let unit = AgencyInput {
            code: code.into(),
            name_vi: name.into(),
            ..Default::default()
        }
        .validate()
        .unwrap();
        hub.store
            .write(|c| fedhub::directory::agencies::add(c, &unit, NOW))
            .unwrap();
    }
    let qn_office = add_account(
        &hub,
        AccountInput {
            kind: "agency".into(),
            display_name: "Văn phòng UBND tỉnh Quảng Ninh".into(),
            agency_code: Some(QUANG_NINH.into()),
            email: Some("vanphong@quangninh.example.gov.vn".into()),
            ..Default::default()
        },
    );
    let operator = hub
        .store
        .write(|c| fedhub::tokens::create_api_token(c, "vpcp-operator", NOW))
        .unwrap();
    Portal {
        hub,
        operator,
        qn_office,
    }
}

fn add_account(hub: &OidcHub, input: AccountInput) -> String {
    let valid = input.validate().unwrap();
    hub.store
        .write(|c| fedhub::directory::accounts::add(c, &valid, NOW))
        .unwrap()
        .id
}

type MembershipRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    i64,
);

/// Everything delegated administration may change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    memberships: Vec<MembershipRow>,
    membership_roles: Vec<(String, String)>,
    grants: Vec<Grant>,
    relying_parties: i64,
}

/// What the problem+json `type` says for each status.
fn problem_kind(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "invalid",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::CONFLICT => "conflict",
        other => panic!("no problem kind for {other}"),
    }
}

impl Portal {
    fn rp(&self) -> &str {
        &self.hub.rp_id
    }

    /// A citizen in the directory (an official working for a unit, say).
    fn person(&self, name: &str, cccd: &str, phone: &str) -> String {
        add_account(
            &self.hub,
            AccountInput {
                kind: "citizen".into(),
                display_name: name.into(),
                national_id: Some(cccd.into()),
                phone: Some(phone.into()),
                ..Default::default()
            },
        )
    }

    /// A level-1 grant over `scope`, written straight into the store as the top admin would
    /// have given it, and the holder's personal token. The seed workflow grants through the
    /// API; the refusal and list tests only need a level-1 admin to exist.
    fn level1_in_store(&self, account_id: &str, scope: &str) -> String {
        let (account, rp, scope) = (
            account_id.to_string(),
            self.rp().to_string(),
            scope.to_string(),
        );
        self.hub
            .store
            .write(move |c| {
                use schema::admin_grants as g;
                diesel::insert_into(g::table)
                    .values((
                        g::id.eq(uuid::Uuid::new_v4().to_string()),
                        g::account_id.eq(&account),
                        g::rp_id.eq(Some(&rp)),
                        g::level.eq("level1"),
                        g::scope_agency_code.eq(Some(&scope)),
                        g::created_at.eq(NOW),
                    ))
                    .execute(c)?;
                Ok(())
            })
            .unwrap();
        self.personal_token(account_id)
    }

    /// `fedhub token issue --account ID`: a token acting with the account's grants.
    fn personal_token(&self, account_id: &str) -> String {
        let id = account_id.to_string();
        self.hub
            .store
            .write(move |c| fedhub::tokens::issue_personal_token(c, &id, NOW))
            .unwrap()
            .1
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{API}{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let body = match body {
            Some(v) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        send(&self.hub.app, b.body(body).unwrap()).await
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, token, Some(body)).await
    }

    /// The operator makes Quảng Ninh's office top admin of the relying party; returns the
    /// office's personal token.
    async fn top_admin(&self) -> String {
        let r = self
            .post(
                "/admin-grants/top",
                &self.operator,
                json!({"account_id": self.qn_office, "rp_id": self.rp(), "scope_agency_code": QUANG_NINH}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.json()["level"], "top");
        self.personal_token(&self.qn_office)
    }

    /// Adds `account_id` to the relying party in `unit`; returns the membership id.
    async fn add_member(&self, token: &str, account_id: &str, unit: &str) -> String {
        let r = self
            .post(
                &format!("/relying-parties/{}/members", self.rp()),
                token,
                json!({"account_id": account_id, "unit": unit}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.json()["id"].as_str().unwrap().to_string()
    }

    async fn act(&self, token: &str, id: &str, action: &str) -> Reply {
        self.call(
            Method::POST,
            &format!("/memberships/{id}/{action}"),
            token,
            None,
        )
        .await
    }

    async fn grant(&self, token: &str, account_id: &str, level: &str, scope: &str) -> Reply {
        self.post(
            "/admin-grants",
            token,
            json!({"account_id": account_id, "rp_id": self.rp(), "level": level, "scope_agency_code": scope}),
        )
        .await
    }

    async fn members(&self, token: &str, query: &str) -> Value {
        let r = self
            .get(
                &format!("/relying-parties/{}/members?{query}", self.rp()),
                token,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
        r.json()
    }

    fn snapshot(&self) -> Snapshot {
        self.hub
            .store
            .read(|c| {
                use schema::membership_roles as mr;
                use schema::memberships as m;
                Ok(Snapshot {
                    memberships: m::table
                        .select((
                            m::id,
                            m::account_id,
                            m::rp_id,
                            m::unit_agency_code,
                            m::status,
                            m::user_group,
                            m::updated_at,
                        ))
                        .order(m::id)
                        .load(c)?,
                    membership_roles: mr::table
                        .select((mr::membership_id, mr::role_id))
                        .order((mr::membership_id, mr::role_id))
                        .load(c)?,
                    grants: schema::admin_grants::table
                        .select(Grant::as_select())
                        .order(schema::admin_grants::id)
                        .load(c)?,
                    relying_parties: schema::relying_parties::table.count().get_result(c)?,
                })
            })
            .unwrap()
    }

    /// The id of the newest audit entry.
    fn audit_mark(&self) -> i64 {
        self.hub.audit().last().map(|e| e.id).unwrap_or(0)
    }

    fn audit_since(&self, mark: i64) -> Vec<fedhub::audit::Entry> {
        self.hub
            .audit()
            .into_iter()
            .filter(|e| e.id > mark)
            .collect()
    }

    /// Sends `request` and checks what the admin and the security team see: problem+json with
    /// `status`, the database as it was, and an audit entry `action` with `outcome`, carrying
    /// the reference the answer showed.
    async fn refused(
        &self,
        case: &str,
        request: impl std::future::Future<Output = Reply>,
        status: StatusCode,
        action: &str,
        outcome: &str,
    ) -> Reply {
        let before = self.snapshot();
        let mark = self.audit_mark();
        let r = request.await;
        assert_eq!(r.status, status, "{case}: {}", r.body);
        assert_eq!(
            r.header(header::CONTENT_TYPE),
            Some("application/problem+json"),
            "{case}"
        );
        let problem = r.json();
        assert_eq!(
            problem["type"],
            format!("urn:fedhub:problem:{}", problem_kind(status)),
            "{case}: {problem}"
        );
        assert_eq!(problem["status"], status.as_u16(), "{case}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{case}: the admin is told why: {problem}"
        );
        assert_eq!(
            self.snapshot(),
            before,
            "{case}: the refusal changed the database"
        );
        let reference = problem["request_id"].as_str().unwrap_or_default();
        let entries = self.audit_since(mark);
        assert!(
            entries.iter().any(|e| e.action == action
                && e.outcome == outcome
                && e.request_id.as_deref() == Some(reference)),
            "{case}: expected an audit entry {action} {outcome} with reference {reference}: {entries:#?}"
        );
        r
    }

    /// Authorize at the relying party and sign in as the citizen with the demo connector
    /// (a fresh browser): the reply to the sign-in form.
    async fn sign_in(&self) -> Reply {
        let (_, challenge) = pkce();
        let r = send(
            &self.hub.app,
            get(&self.hub.authorize_uri(&challenge, ""), &[]),
        )
        .await;
        self.hub.sign_in(&r, CITIZEN).await
    }
}

/// A refused sign-in: a page in Vietnamese, nothing sent to the relying party.
fn assert_refused_page(r: &Reply, says: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.headers.get(header::LOCATION).is_none(), "no redirect");
    assert!(
        r.header(header::CONTENT_TYPE)
            .is_some_and(|c| c.starts_with("text/html")),
        "a page"
    );
    assert!(r.body.contains(says), "{}", r.body);
}

// ---------------------------------------------------------------------------------------
// 1. The seed workflow: top admin → add → activate → change unit → assign role → level 1.

#[tokio::test]
async fn a_province_puts_an_official_into_its_portal_and_delegates_to_a_department() {
    seed_workflow(portal(support::sqlite(), false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_province_puts_an_official_into_its_portal_and_delegates_to_a_department() {
    let p = tokio::task::spawn_blocking(|| portal(support::postgres(), false))
        .await
        .unwrap();
    seed_workflow(p).await;
}

async fn seed_workflow(p: Portal) {
    let rp = p.rp().to_string();
    let members = format!("/relying-parties/{rp}/members");

    // The operator grants top admin of Quảng Ninh for this system.
    let top = p.top_admin().await;
    let me = p.get("/me", &top).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let me = me.json();
    assert_eq!(me["operator"], false);
    assert_eq!(
        me["grants"],
        json!([{"level": "top", "rp_id": rp, "scope_agency_code": QUANG_NINH}])
    );

    // "Thêm mới": search the directory by CCCD, by phone, by name.
    for q in [CITIZEN, "0912345678", "nguyen%20van%20an"] {
        let r = p.get(&format!("/accounts?q={q}"), &top).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.body);
        let found = r.json();
        let found = found.as_array().unwrap();
        assert_eq!(found.len(), 1, "{q}: {found:?}");
        assert_eq!(found[0]["id"], p.hub.account_id.as_str());
        assert_eq!(found[0]["display_name"], "Nguyễn Văn An");
    }

    // "Lưu vào hệ thống": the person joins as "Chưa kích hoạt", in the admin's province.
    let r = p
        .post(&members, &top, json!({"account_id": p.hub.account_id}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let m = r.json();
    assert_eq!(m["status"], "not_activated");
    assert_eq!(m["unit_agency_code"], QUANG_NINH);
    assert_eq!(m["account_id"], p.hub.account_id.as_str());
    let id = m["id"].as_str().unwrap().to_string();

    // The list screen: full name, phone, CCCD, status ("Tìm thấy 1 kết quả").
    let list = p.members(&top, "").await;
    assert_eq!(list["total"], 1);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["display_name"], "Nguyễn Văn An");
    assert_eq!(items[0]["national_id"], CITIZEN);
    assert_eq!(items[0]["phone"], "+84912345678");
    assert_eq!(items[0]["status"], "not_activated");

    // "Kích hoạt".
    let r = p.act(&top, &id, "activate").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "activated");

    // "Thay đổi đơn vị": to the provincial Department of Finance.
    let r = p
        .put(
            &format!("/memberships/{id}/unit"),
            &top,
            json!({"unit": FINANCE}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["unit_agency_code"], FINANCE);
    assert_eq!(r.json()["unit_name"], FINANCE_NAME);

    // "Gán quyền": the built-in role, with a user group.
    let roles = p.get(&format!("/relying-parties/{rp}/roles"), &top).await;
    assert_eq!(roles.status, StatusCode::OK, "{}", roles.body);
    assert!(
        roles
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == UNIT_ADMIN_GROUP),
        "{}",
        roles.body
    );
    let r = p
        .put(
            &format!("/memberships/{id}/roles"),
            &top,
            json!({"roles": [UNIT_ADMIN_GROUP], "user_group": "Nhóm quản trị Sở Tài chính"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let shown = p.get(&format!("/memberships/{id}"), &top).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let shown = shown.json();
    assert_eq!(shown["roles"], json!([UNIT_ADMIN_GROUP]));
    assert_eq!(shown["user_group"], "Nhóm quản trị Sở Tài chính");
    assert_eq!(shown["status"], "activated");
    assert_eq!(shown["unit_agency_code"], FINANCE);

    // The relying party sees the unit and the role when the official signs in.
    let (code, verifier, _) = p.hub.code().await;
    let tokens = p.hub.redeem(&code, &verifier).await;
    let info = p
        .hub
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    let info = info.json();
    assert_eq!(info["agency_code"], FINANCE, "{info}");
    assert_eq!(info["agency_name"], FINANCE_NAME, "{info}");
    assert_eq!(info["roles"], json!([UNIT_ADMIN_GROUP]), "{info}");

    // Level 1 over the Department of Finance, to an official who has a federated account.
    let binh = p.person("Trần Thị Bình", "022185000456", "0987654321");
    let r = p.grant(&top, &binh, "level1", FINANCE).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let g = r.json();
    assert_eq!(g["level"], "level1");
    assert_eq!(g["account_id"], binh.as_str());
    assert_eq!(g["scope_agency_code"], FINANCE);
    assert_eq!(g["rp_id"], rp.as_str());
    let grants = p
        .get(&format!("/relying-parties/{rp}/admin-grants"), &top)
        .await;
    assert_eq!(grants.status, StatusCode::OK, "{}", grants.body);
    assert_eq!(
        grants.json().as_array().unwrap().len(),
        2,
        "{}",
        grants.body
    );

    // Someone in the Department of Justice, put there by the top admin.
    let cuong = p.person("Lê Văn Cường", "022090000789", "0977000111");
    let in_justice = p.add_member(&top, &cuong, JUSTICE).await;

    // The level-1 admin works inside the Department of Finance...
    let l1 = p.personal_token(&binh);
    let list = p.members(&l1, "").await;
    assert_eq!(list["total"], 1, "only their unit's members: {list}");
    assert_eq!(list["items"][0]["id"], id.as_str());
    let duc = p.person("Phạm Minh Đức", "022088000321", "0966000222");
    let new_member = p.add_member(&l1, &duc, FINANCE).await;
    let r = p.act(&l1, &new_member, "activate").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = p.act(&l1, &id, "lock").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = p.act(&l1, &id, "unlock").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "activated");
    let r = p.grant(&l1, &duc, "level2", FINANCE).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "level 1 grants level 2: {}",
        r.body
    );

    // ...and not in the Department of Justice.
    let r = p.get(&format!("/memberships/{in_justice}"), &l1).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = p.act(&l1, &in_justice, "activate").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = p
        .put(
            &format!("/memberships/{id}/unit"),
            &l1,
            json!({"unit": JUSTICE}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let someone = p.person("Hoàng Thu Hà", "022187000654", "0955000333");
    let r = p
        .post(
            &members,
            &l1,
            json!({"account_id": someone, "unit": JUSTICE}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = p.grant(&l1, &someone, "level2", JUSTICE).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let shown = p.get(&format!("/memberships/{in_justice}"), &top).await;
    assert_eq!(shown.json()["status"], "not_activated", "untouched");

    // Every change is in the audit log under the admin's own token.
    let log = p.hub.audit();
    for action in [
        "admin.grant_top",
        "membership.add",
        "membership.activate",
        "membership.change_unit",
        "membership.assign_roles",
        "admin.grant",
    ] {
        assert!(
            log.iter()
                .any(|e| e.action == action && e.outcome == "success"),
            "{action}: {log:#?}"
        );
    }
    let top_actor = format!("api-token:account:{}:", p.qn_office);
    assert!(log.iter().any(|e| e.action == "membership.change_unit"
        && e.actor.starts_with(&top_actor)
        && e.target.as_deref() == Some(&format!("membership:{id}"))));
    assert!(log
        .iter()
        .any(|e| e.action == "admin.grant_top" && e.actor == "api-token:vpcp-operator"));
}

// ---------------------------------------------------------------------------------------
// 2. Refusals: problem+json, nothing changed, audited.

#[tokio::test]
async fn refusals_change_nothing_and_are_audited() {
    refusals(portal(support::sqlite(), false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refusals_change_nothing_and_are_audited() {
    let p = tokio::task::spawn_blocking(|| portal(support::postgres(), false))
        .await
        .unwrap();
    refusals(p).await;
}

async fn refusals(p: Portal) {
    let rp = p.rp().to_string();
    let members = format!("/relying-parties/{rp}/members");
    let top = p.top_admin().await;
    let forbidden = StatusCode::FORBIDDEN;

    // Members: one in Quảng Ninh, one that the operator put in Hồ Chí Minh City.
    let ours = p.add_member(&top, &p.hub.account_id, FINANCE).await;
    let hcmc_person = p.person("Võ Thị Lan", "079190000111", "0908000444");
    let theirs = p.add_member(&p.operator, &hcmc_person, HCMC_FINANCE).await;
    let binh = p.person("Trần Thị Bình", "022185000456", "0987654321");
    let l1 = p.level1_in_store(&binh, FINANCE);

    // Out-of-scope membership actions: a member in another province.
    for action in ["activate", "lock", "unlock"] {
        p.refused(
            &format!("{action} a member in another province"),
            p.act(&top, &theirs, action),
            forbidden,
            &format!("membership.{action}"),
            "denied",
        )
        .await;
    }
    p.refused(
        "see a member in another province",
        p.get(&format!("/memberships/{theirs}"), &top),
        forbidden,
        "membership.show",
        "denied",
    )
    .await;
    p.refused(
        "assign roles to a member in another province",
        p.put(
            &format!("/memberships/{theirs}/roles"),
            &top,
            json!({"roles": [UNIT_ADMIN_GROUP]}),
        ),
        forbidden,
        "membership.assign_roles",
        "denied",
    )
    .await;
    p.refused(
        "remove a member in another province",
        p.call(
            Method::DELETE,
            &format!("/memberships/{theirs}"),
            &top,
            None,
        ),
        forbidden,
        "membership.remove",
        "denied",
    )
    .await;
    let someone = p.person("Đặng Văn Hùng", "022092000888", "0944000555");
    p.refused(
        "add a person to a unit in another province",
        p.post(
            &members,
            &top,
            json!({"account_id": someone, "unit": HCMC_FINANCE}),
        ),
        forbidden,
        "membership.add",
        "denied",
    )
    .await;
    // Changing unit to outside the subtree (and from outside into it).
    p.refused(
        "move a member out of the province",
        p.put(
            &format!("/memberships/{ours}/unit"),
            &top,
            json!({"unit": HCMC_FINANCE}),
        ),
        forbidden,
        "membership.change_unit",
        "denied",
    )
    .await;
    p.refused(
        "move a member out of the level-1 subtree",
        p.put(
            &format!("/memberships/{ours}/unit"),
            &l1,
            json!({"unit": JUSTICE}),
        ),
        forbidden,
        "membership.change_unit",
        "denied",
    )
    .await;
    p.refused(
        "pull a member of another province in",
        p.put(
            &format!("/memberships/{theirs}/unit"),
            &top,
            json!({"unit": FINANCE}),
        ),
        forbidden,
        "membership.change_unit",
        "denied",
    )
    .await;

    // Grants: never one's own level, never to oneself, never outside one's subtree.
    p.refused(
        "level 1 grants level 1",
        p.grant(&l1, &someone, "level1", FINANCE),
        forbidden,
        "admin.grant",
        "denied",
    )
    .await;
    p.refused(
        "level 1 grants to itself",
        p.grant(&l1, &binh, "level2", FINANCE),
        forbidden,
        "admin.grant",
        "denied",
    )
    .await;
    p.refused(
        "top admin grants to itself",
        p.grant(&top, &p.qn_office, "level1", QUANG_NINH),
        forbidden,
        "admin.grant",
        "denied",
    )
    .await;
    p.refused(
        "top admin grants in another province",
        p.grant(&top, &someone, "level1", HCMC_FINANCE),
        forbidden,
        "admin.grant",
        "denied",
    )
    .await;
    p.refused(
        "level 1 grants over a sibling department",
        p.grant(&l1, &someone, "level2", JUSTICE),
        forbidden,
        "admin.grant",
        "denied",
    )
    .await;

    // A personal token never reaches the operator's registry, whatever its grants.
    let sp = crate::sp::default_sp();
    for (path, body) in [
        (
            "/relying-parties/saml",
            json!({"metadata_xml": sp.metadata(), "owner_agency_code": QUANG_NINH}),
        ),
        (
            "/admin-grants/top",
            json!({"account_id": p.qn_office, "rp_id": rp, "scope_agency_code": QUANG_NINH}),
        ),
    ] {
        let r = p
            .refused(
                &format!("personal token on {path}"),
                p.post(path, &top, body),
                forbidden,
                "api.authorize",
                "denied",
            )
            .await;
        let log = p.hub.audit();
        let entry = log
            .iter()
            .rev()
            .find(|e| e.action == "api.authorize")
            .unwrap();
        assert!(
            entry
                .actor
                .starts_with(&format!("api-token:account:{}:", p.qn_office)),
            "{entry:?}"
        );
        assert!(
            entry
                .target
                .as_deref()
                .is_some_and(|t| t.starts_with("POST ") && t.ends_with(path)),
            "{entry:?}"
        );
        assert!(r.json()["detail"].as_str().unwrap().contains("operator"));
    }

    // A relying party where the admin holds no grant.
    let other = p.hub.add_client(crate::oidc_support::registration(
        "cong-pakn",
        "https://pakn.example.gov.vn/cb",
    ));
    let other_members = format!("/relying-parties/{}/members", other.rp_id);
    p.refused(
        "list the members of a system without a grant",
        p.get(&other_members, &top),
        forbidden,
        "membership.list",
        "denied",
    )
    .await;
    p.refused(
        "add a person to a system without a grant",
        p.post(
            &other_members,
            &top,
            json!({"account_id": someone, "unit": FINANCE}),
        ),
        forbidden,
        "membership.add",
        "denied",
    )
    .await;
    p.refused(
        "grant in a system without a grant",
        p.post(
            "/admin-grants",
            &top,
            json!({"account_id": someone, "rp_id": other.rp_id, "level": "level1", "scope_agency_code": FINANCE}),
        ),
        forbidden,
        "admin.grant",
        "denied",
    )
    .await;

    // Bad input: the rule broken is named; nothing changes; the failure is audited.
    let bad = StatusCode::BAD_REQUEST;
    let r = p
        .refused(
            "unknown account",
            p.post(
                &members,
                &top,
                json!({"account_id": "5d0f4a3e-0000-4000-8000-000000000000", "unit": FINANCE}),
            ),
            StatusCode::NOT_FOUND,
            "membership.add",
            "failure",
        )
        .await;
    assert!(r.json()["detail"].as_str().unwrap().contains("account"));
    let disabled = p.person("Ngô Văn Tài", "022093000999", "0933000666");
    p.hub
        .store
        .write(|c| {
            Ok(diesel::update(schema::accounts::table.find(&disabled))
                .set(schema::accounts::status.eq("disabled"))
                .execute(c)?)
        })
        .unwrap();
    let r = p
        .refused(
            "disabled account",
            p.post(
                &members,
                &top,
                json!({"account_id": disabled, "unit": FINANCE}),
            ),
            bad,
            "membership.add",
            "failure",
        )
        .await;
    assert_eq!(r.json()["field"], "account_id");
    let r = p
        .refused(
            "unregistered unit",
            p.post(
                &members,
                &top,
                json!({"account_id": someone, "unit": "000.00.09.H49"}),
            ),
            bad,
            "membership.add",
            "failure",
        )
        .await;
    assert_eq!(r.json()["field"], "unit");
    let r = p
        .refused(
            "move to an unregistered unit",
            p.put(
                &format!("/memberships/{ours}/unit"),
                &top,
                json!({"unit": "000.00.09.H49"}),
            ),
            bad,
            "membership.change_unit",
            "failure",
        )
        .await;
    assert_eq!(r.json()["field"], "unit");
    let r = p
        .refused(
            "the same person twice",
            p.post(
                &members,
                &top,
                json!({"account_id": p.hub.account_id, "unit": JUSTICE}),
            ),
            StatusCode::CONFLICT,
            "membership.add",
            "failure",
        )
        .await;
    assert_eq!(r.json()["field"], "account_id");
    let r = p
        .refused(
            "unknown role",
            p.put(
                &format!("/memberships/{ours}/roles"),
                &top,
                json!({"roles": [UNIT_ADMIN_GROUP, "Giám đốc Sở"]}),
            ),
            bad,
            "membership.assign_roles",
            "failure",
        )
        .await;
    assert_eq!(r.json()["field"], "roles");
    let r = p.act(&top, &ours, "activate").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = p
        .refused(
            "activate twice",
            p.act(&top, &ours, "activate"),
            StatusCode::CONFLICT,
            "membership.activate",
            "failure",
        )
        .await;
    assert_eq!(r.json()["field"], "status");
}

// ---------------------------------------------------------------------------------------
// 3. What the person notices at sign-in.

#[tokio::test]
async fn activation_lock_unlock_and_removal_show_at_sign_in() {
    let p = portal(support::sqlite(), true);
    let top = p.top_admin().await;

    // Added but not activated: a page, not the relying party.
    let id = p.add_member(&top, &p.hub.account_id, FINANCE).await;
    assert_refused_page(&p.sign_in().await, "Tài khoản chưa được kích hoạt");

    // Activated: signed in, with a live SSO session and a refresh token.
    let r = p.act(&top, &id, "activate").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (code, verifier, sso) = p.hub.code().await;
    let tokens = p.hub.redeem(&code, &verifier).await;
    let refresh = tokens["refresh_token"].as_str().expect("offline_access");
    let sub = jwt_claims(tokens["id_token"].as_str().unwrap())["sub"].clone();
    let r = p
        .hub
        .token(&format!("grant_type=refresh_token&refresh_token={refresh}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let refresh = r.json()["refresh_token"]
        .as_str()
        .unwrap_or(refresh)
        .to_string();

    // Locked: the live session ends at once and signing in again is refused.
    let r = p.act(&top, &id, "lock").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "locked");
    let (_, challenge) = pkce();
    let r = send(
        &p.hub.app,
        get(
            &p.hub.authorize_uri(&challenge, "&prompt=none"),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with(REDIRECT), "{}", r.location());
    assert_eq!(
        query_of(r.location()).get("error").map(String::as_str),
        Some("login_required"),
        "{}",
        r.location()
    );
    let r = p
        .hub
        .token(&format!("grant_type=refresh_token&refresh_token={refresh}"))
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "the refresh token died with the session: {}",
        r.body
    );
    assert_refused_page(&p.sign_in().await, "Tài khoản chưa được kích hoạt");

    // Unlocked: signing in works again, under the same subject.
    let r = p.act(&top, &id, "unlock").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "activated");
    let (code, verifier, sso) = p.hub.code().await;
    let tokens = p.hub.redeem(&code, &verifier).await;
    assert_eq!(
        jwt_claims(tokens["id_token"].as_str().unwrap())["sub"],
        sub,
        "the relying party knows the person by the same subject"
    );

    // Removed: gone from the list, the session ends, sign-in says "not a member".
    let r = p
        .call(Method::DELETE, &format!("/memberships/{id}"), &top, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = p.get(&format!("/memberships/{id}"), &top).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(p.members(&top, "").await["total"], 0);
    let (_, challenge) = pkce();
    let r = send(
        &p.hub.app,
        get(
            &p.hub.authorize_uri(&challenge, "&prompt=none"),
            &[("fedhub_sso", &sso)],
        ),
    )
    .await;
    assert_eq!(
        query_of(r.location()).get("error").map(String::as_str),
        Some("login_required"),
        "{} {}",
        r.status,
        r.location()
    );
    assert_refused_page(&p.sign_in().await, "chưa có quyền sử dụng hệ thống này");

    let log = p.hub.audit();
    assert!(log.iter().any(|e| e.action == "oidc.authorize"
        && e.outcome == "denied"
        && e.detail.as_deref() == Some("not_activated")));
    for action in ["membership.lock", "membership.unlock", "membership.remove"] {
        assert!(
            log.iter()
                .any(|e| e.action == action && e.outcome == "success"),
            "{action}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. The list screen: pages, totals, filters, and each admin sees only their subtree.

#[tokio::test]
async fn the_member_list_pages_filters_and_shows_each_admin_only_their_units() {
    let p = portal(support::sqlite(), false);
    let top = p.top_admin().await;
    let families = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng"];
    let given = ["Bảo", "Cúc", "Dương", "Giang", "Hải"];
    let mut ids = Vec::new();
    let mut cccds = Vec::new();
    for i in 0..25usize {
        let middle = if i % 2 == 0 { "Văn" } else { "Thị" };
        let name = format!("{} {middle} {}", families[i / 5], given[i % 5]);
        let cccd = format!("022{}{:02}{:06}", i % 2, 70 + i, 500 + i);
        let account = p.person(&name, &cccd, &format!("09120000{i:02}"));
        let unit = if i < 15 { FINANCE } else { JUSTICE };
        ids.push(p.add_member(&top, &account, unit).await);
        cccds.push(cccd);
    }
    // Five in the Department of Finance activated, one of them then locked.
    for i in [0, 3, 6, 9, 12] {
        let r = p.act(&top, &ids[i], "activate").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = p.act(&top, &ids[3], "lock").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // "Tìm thấy 25 kết quả", ten a page: the third page holds the last five.
    let page3 = p.members(&top, "per_page=10&page=3").await;
    assert_eq!(page3["total"], 25);
    assert_eq!(page3["page"], 3);
    assert_eq!(page3["per_page"], 10);
    assert_eq!(page3["items"].as_array().unwrap().len(), 5);
    let mut seen = std::collections::BTreeSet::new();
    for page in 1..=3 {
        let r = p.members(&top, &format!("per_page=10&page={page}")).await;
        for item in r["items"].as_array().unwrap() {
            assert!(
                seen.insert(item["id"].as_str().unwrap().to_string()),
                "a member on two pages: {item}"
            );
        }
    }
    assert_eq!(seen.len(), 25, "every member on exactly one page");
    let beyond = p.members(&top, "per_page=10&page=4").await;
    assert_eq!(beyond["total"], 25);
    assert!(beyond["items"].as_array().unwrap().is_empty());

    // Status filters.
    let activated = p.members(&top, "status=activated").await;
    assert_eq!(activated["total"], 4);
    assert!(activated["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["status"] == "activated"));
    assert_eq!(p.members(&top, "status=locked").await["total"], 1);
    assert_eq!(p.members(&top, "status=not_activated").await["total"], 20);
    let r = p
        .get(
            &format!("/relying-parties/{}/members?status=open", p.rp()),
            &top,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.json()["field"], "status");

    // Search: by name without accents, by CCCD, by phone.
    let tran = p.members(&top, "q=tran%20thi").await;
    assert_eq!(tran["total"], 3, "{tran}");
    assert!(tran["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["display_name"].as_str().unwrap().starts_with("Trần Thị")));
    assert_eq!(p.members(&top, "q=Tr%E1%BA%A7n").await["total"], 5);
    let one = p.members(&top, &format!("q={}", cccds[7])).await;
    assert_eq!(one["total"], 1);
    assert_eq!(one["items"][0]["id"], ids[7].as_str());
    let by_phone = p.members(&top, "q=0912000011").await;
    assert_eq!(by_phone["total"], 1);
    assert_eq!(by_phone["items"][0]["id"], ids[11].as_str());
    assert_eq!(
        p.members(&top, "q=tran%20thi&status=not_activated").await["total"],
        2,
        "Trần Thị Hải is activated"
    );

    // Unit filter.
    assert_eq!(
        p.members(&top, &format!("unit={JUSTICE}")).await["total"],
        10
    );
    assert_eq!(
        p.members(&top, &format!("unit={FINANCE}")).await["total"],
        15
    );

    // The Department of Finance's level-1 admin sees their fifteen, and nobody else.
    let binh = p.person("Trần Thị Bình", "022185000456", "0987654321");
    let l1 = p.level1_in_store(&binh, FINANCE);
    let theirs = p.members(&l1, "per_page=10").await;
    assert_eq!(theirs["total"], 15, "only their subtree is counted");
    assert_eq!(theirs["items"].as_array().unwrap().len(), 10);
    let page2 = p.members(&l1, "per_page=10&page=2").await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 5);
    for item in theirs["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["items"].as_array().unwrap())
    {
        assert_eq!(item["unit_agency_code"], FINANCE, "{item}");
    }
    assert_eq!(
        p.members(&l1, &format!("unit={JUSTICE}")).await["total"],
        0,
        "a filter does not widen the subtree"
    );
    assert_eq!(p.members(&l1, "status=activated").await["total"], 4);
    assert_eq!(p.members(&l1, "q=tran").await["total"], 5);
    let justice_person = p.members(&l1, &format!("q={}", cccds[20])).await;
    assert_eq!(justice_person["total"], 0, "{justice_person}");
}
