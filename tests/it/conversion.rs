//! Account conversion (seed III.3.4) as a relying party's admin lives it: a legacy
//! username/password account becomes a federated one, a federated account's place passes to a
//! colleague when staff change. What moved shows in the report, in the members' roles and
//! grants, at sign-in and in the conversion feed; refusals and crashes leave the old state.

use axum::body::Body;
use diesel::prelude::*;
use fedhub::admin::memberships::{self, Admin};
use fedhub::conversion::bulk::{self, Commit};
use fedhub::directory::accounts::AccountInput;
use fedhub::directory::agencies::AgencyInput;
use fedhub::store::schema;
use http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::oidc_support::{default_registration, oidc_hub_at, pkce, query_of, OidcHub, ISSUER};
use crate::sso::{get, send, Reply};
use crate::support::{self, TestStore, NOW};

const API: &str = "/admin/api/v1";
const QUANG_NINH: &str = "000.00.00.H49";
/// Sở Tài chính tỉnh Quảng Ninh (a demo unit).
const FINANCE: &str = "000.00.01.H49";
/// Sở Tư pháp tỉnh Quảng Ninh (a demo unit).
const JUSTICE: &str = "000.00.02.H49";
const ONE_STOP: &str = "Một cửa";
const CLERK: &str = "Cán bộ một cửa";
const UNIT_ADMIN: &str = "Nhóm admin đơn vị";

struct Hub {
    hub: OidcHub,
    operator: String,
}

fn hub(store: TestStore) -> Hub {
    let hub = oidc_hub_at(store, ISSUER, default_registration());
    for (code, name) in [
        (FINANCE, "Sở Tài chính tỉnh Quảng Ninh"),
        (JUSTICE, "Sở Tư pháp tỉnh Quảng Ninh"),
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
    let operator = hub
        .store
        .write(|c| fedhub::tokens::create_api_token(c, "vpcp-operator", NOW))
        .unwrap();
    Hub { hub, operator }
}

/// A membership: id, account, unit, status, user group, subject.
type MembershipRow = (
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    String,
);
/// An admin grant: id, account, level, scope, revoked at.
type GrantRow = (String, String, String, Option<String>, Option<i64>);

/// Everything a conversion may change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    memberships: Vec<MembershipRow>,
    membership_roles: Vec<(String, String)>,
    /// (id, account, level, scope, revoked)
    grants: Vec<GrantRow>,
    /// (id, converted_to, converted_at)
    legacy: Vec<(String, Option<String>, Option<i64>)>,
    roles: i64,
    conversions: i64,
    live_sessions: i64,
}

impl Hub {
    fn rp(&self) -> String {
        self.hub.rp_id.clone()
    }

    fn person(&self, name: &str, cccd: &str) -> String {
        let valid = AccountInput {
            kind: "citizen".into(),
            display_name: name.into(),
            national_id: Some(cccd.into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        self.hub
            .store
            .write(|c| fedhub::directory::accounts::add(c, &valid, NOW))
            .unwrap()
            .id
    }

    /// Puts `account` into the relying party in `unit`/`group` with `roles`; activated when
    /// `activate`. Returns the membership id.
    fn member(
        &self,
        account: &str,
        unit: &str,
        group: &str,
        roles: &[&str],
        activate: bool,
    ) -> String {
        let vault = support::vault();
        let rp = self.rp();
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        self.hub
            .store
            .write(|c| {
                let admin = Admin::operator("test");
                memberships::ensure_builtin_roles(c, &rp, NOW)?;
                for r in &roles {
                    if !memberships::roles_of(c, &rp, NOW)?.contains(r) {
                        memberships::add_role(c, &admin, &rp, r, NOW)?;
                    }
                }
                let m = memberships::add(c, &vault, &admin, &rp, account, Some(unit), NOW)?;
                if activate {
                    memberships::activate(c, &admin, &m.id, NOW)?;
                }
                memberships::assign_roles(c, &admin, &m.id, &roles, Some(group), NOW)?;
                Ok(m.id)
            })
            .unwrap()
    }

    /// A legacy account of the relying party, as an import stores it.
    fn legacy(&self, username: &str, unit: &str, group: &str, roles: &[&str]) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let rp = self.rp();
        let roles = serde_json::to_string(roles).unwrap();
        let (id2, username) = (id.clone(), username.to_string());
        self.hub
            .store
            .write(move |c| {
                use schema::legacy_accounts as la;
                diesel::insert_into(la::table)
                    .values((
                        la::id.eq(&id2),
                        la::rp_id.eq(&rp),
                        la::username.eq(&username),
                        la::display_name.eq(format!("Cán bộ {username}")),
                        la::unit_agency_code.eq(Some(unit)),
                        la::user_group.eq(Some(group)),
                        la::roles.eq(&roles),
                        la::password_hash
                            .eq("$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"),
                        la::hash_scheme.eq("bcrypt"),
                        la::subject.eq(format!("legacy-{username}")),
                        la::created_at.eq(NOW),
                    ))
                    .execute(c)?;
                Ok(())
            })
            .unwrap();
        id
    }

    /// A grant written into the store as an admin would have given it.
    fn grant_in_store(&self, account: &str, level: &str, scope: &str) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let (id2, account, rp) = (id.clone(), account.to_string(), self.rp());
        let (level, scope) = (level.to_string(), scope.to_string());
        self.hub
            .store
            .write(move |c| {
                use schema::admin_grants as g;
                diesel::insert_into(g::table)
                    .values((
                        g::id.eq(&id2),
                        g::account_id.eq(&account),
                        g::rp_id.eq(Some(&rp)),
                        g::level.eq(&level),
                        g::scope_agency_code.eq(Some(&scope)),
                        g::created_at.eq(NOW),
                    ))
                    .execute(c)?;
                Ok(())
            })
            .unwrap();
        id
    }

    fn personal_token(&self, account: &str) -> String {
        let id = account.to_string();
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

    async fn convert(&self, token: &str, body: Value) -> Reply {
        self.call(Method::POST, "/conversions", token, Some(body))
            .await
    }

    fn legacy_body(&self, legacy_id: &str, target: &str) -> Value {
        json!({"rp_id": self.rp(), "mode": "legacy", "legacy_id": legacy_id, "target_account_id": target})
    }

    fn handover_body(&self, account: &str, target: &str) -> Value {
        json!({"rp_id": self.rp(), "mode": "handover", "account_id": account, "target_account_id": target})
    }

    fn roles_of(&self, account: &str) -> Option<Vec<String>> {
        let (account, rp) = (account.to_string(), self.rp());
        self.hub
            .store
            .read(move |c| {
                use schema::membership_roles as mr;
                use schema::memberships as m;
                let mid: Option<String> = m::table
                    .filter(m::account_id.eq(&account))
                    .filter(m::rp_id.eq(&rp))
                    .select(m::id)
                    .get_result(c)
                    .optional()?;
                let Some(mid) = mid else { return Ok(None) };
                let mut names: Vec<String> = mr::table
                    .inner_join(schema::roles::table)
                    .filter(mr::membership_id.eq(&mid))
                    .select(schema::roles::name)
                    .load(c)?;
                names.sort();
                Ok(Some(names))
            })
            .unwrap()
    }

    fn subject_of(&self, account: &str) -> String {
        let (account, rp) = (account.to_string(), self.rp());
        self.hub
            .store
            .read(move |c| {
                use schema::memberships as m;
                Ok(m::table
                    .filter(m::account_id.eq(&account))
                    .filter(m::rp_id.eq(&rp))
                    .select(m::subject)
                    .get_result(c)?)
            })
            .unwrap()
    }

    fn grant_holder(&self, grant: &str) -> String {
        let grant = grant.to_string();
        self.hub
            .store
            .read(move |c| {
                use schema::admin_grants as g;
                Ok(g::table.find(&grant).select(g::account_id).get_result(c)?)
            })
            .unwrap()
    }

    fn converted_to(&self, legacy: &str) -> Option<String> {
        let legacy = legacy.to_string();
        self.hub
            .store
            .read(move |c| {
                use schema::legacy_accounts as la;
                Ok(la::table
                    .find(&legacy)
                    .select(la::converted_to)
                    .get_result(c)?)
            })
            .unwrap()
    }

    fn snapshot(&self) -> Snapshot {
        self.hub
            .store
            .read(|c| {
                use schema::admin_grants as g;
                use schema::legacy_accounts as la;
                use schema::membership_roles as mr;
                use schema::memberships as m;
                Ok(Snapshot {
                    memberships: m::table
                        .select((
                            m::id,
                            m::account_id,
                            m::unit_agency_code,
                            m::status,
                            m::user_group,
                            m::subject,
                        ))
                        .order(m::id)
                        .load(c)?,
                    membership_roles: mr::table
                        .select((mr::membership_id, mr::role_id))
                        .order((mr::membership_id, mr::role_id))
                        .load(c)?,
                    grants: g::table
                        .select((
                            g::id,
                            g::account_id,
                            g::level,
                            g::scope_agency_code,
                            g::revoked_at,
                        ))
                        .order(g::id)
                        .load(c)?,
                    legacy: la::table
                        .select((la::id, la::converted_to, la::converted_at))
                        .order(la::id)
                        .load(c)?,
                    roles: schema::roles::table.count().get_result(c)?,
                    conversions: schema::conversions::table.count().get_result(c)?,
                    live_sessions: schema::sso_sessions::table
                        .filter(schema::sso_sessions::ended_at.is_null())
                        .count()
                        .get_result(c)?,
                })
            })
            .unwrap()
    }

    fn audit_mark(&self) -> i64 {
        self.hub.audit().last().map(|e| e.id).unwrap_or(0)
    }

    /// Sends a refused conversion and checks problem+json with `status`, the database as it
    /// was, and an audit entry `conversion.convert` with `outcome` and the answer's reference.
    async fn refused(
        &self,
        case: &str,
        token: &str,
        body: Value,
        status: StatusCode,
        outcome: &str,
        says: &str,
    ) {
        let before = self.snapshot();
        let mark = self.audit_mark();
        let r = self.convert(token, body).await;
        assert_eq!(r.status, status, "{case}: {}", r.body);
        assert_eq!(
            r.header(header::CONTENT_TYPE),
            Some("application/problem+json"),
            "{case}"
        );
        let p = r.json();
        assert_eq!(p["status"], status.as_u16(), "{case}: {p}");
        let detail = p["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(says),
            "{case}: the admin is told why ({says:?}): {p}"
        );
        assert_eq!(
            self.snapshot(),
            before,
            "{case}: the refusal changed the database"
        );
        let reference = p["request_id"].as_str().unwrap_or_default().to_string();
        let entries: Vec<_> = self
            .hub
            .audit()
            .into_iter()
            .filter(|e| e.id > mark)
            .collect();
        assert!(
            entries.iter().any(|e| e.action == "conversion.convert"
                && e.outcome == outcome
                && e.request_id.as_deref() == Some(reference.as_str())),
            "{case}: expected an audit entry conversion.convert {outcome} ({reference}): {entries:#?}"
        );
    }
}

fn strip(mut report: Value) -> Value {
    let o = report.as_object_mut().unwrap();
    o.remove("id");
    o.remove("dry_run");
    report
}

// ---------------------------------------------------------------------------------------
// 1. Legacy → federated.

#[tokio::test]
async fn a_legacy_account_becomes_a_federated_account() {
    let h = hub(support::sqlite());
    let rp = h.rp();
    // Quảng Ninh's office, top admin of the portal, converts with its personal token.
    let office = {
        let valid = AccountInput {
            kind: "agency".into(),
            display_name: "Văn phòng UBND tỉnh Quảng Ninh".into(),
            agency_code: Some(QUANG_NINH.into()),
            email: Some("vanphong@quangninh.example.gov.vn".into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        h.hub
            .store
            .write(|c| fedhub::directory::accounts::add(c, &valid, NOW))
            .unwrap()
            .id
    };
    h.grant_in_store(&office, "top", QUANG_NINH);
    let top = h.personal_token(&office);

    let legacy = h.legacy("an.nv", FINANCE, ONE_STOP, &[CLERK, UNIT_ADMIN]);
    let an = h.hub.account_id.clone();
    h.member(&an, FINANCE, ONE_STOP, &[UNIT_ADMIN], true);
    let new_subject = h.subject_of(&an);

    let r = h.convert(&top, h.legacy_body(&legacy, &an)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let report = r.json();
    assert_eq!(report["mode"], "legacy");
    assert_eq!(report["rp_id"], rp.as_str());
    assert_eq!(report["source"], legacy.as_str());
    assert_eq!(report["target_account_id"], an.as_str());
    assert_eq!(report["roles_moved"], json!([CLERK]));
    assert_eq!(report["roles_kept"], json!([UNIT_ADMIN]));
    assert_eq!(report["old_subject"], "legacy-an.nv");
    assert_eq!(report["new_subject"], new_subject.as_str());
    assert_eq!(report["unit"], FINANCE);
    assert_eq!(report["user_group"], ONE_STOP);
    assert_eq!(report["dry_run"], false);
    assert_eq!(
        report["before"],
        json!({"source_roles": 2, "target_roles": 1, "source_admin_grants": 0, "target_admin_grants": 0, "source_has_access": true})
    );
    assert_eq!(
        report["after"],
        json!({"source_roles": 0, "target_roles": 2, "source_admin_grants": 0, "target_admin_grants": 0, "source_has_access": false})
    );
    let id = report["id"].as_str().unwrap().to_string();

    // The member now holds both roles; the legacy account is marked converted.
    let mut want = vec![CLERK.to_string(), UNIT_ADMIN.to_string()];
    want.sort();
    assert_eq!(h.roles_of(&an), Some(want));
    assert_eq!(h.converted_to(&legacy), Some(an.clone()));

    // The relying party sees the roles at sign-in.
    let (code, verifier, _) = h.hub.code().await;
    let tokens = h.hub.redeem(&code, &verifier).await;
    let info = h
        .hub
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    let roles = info.json()["roles"].clone();
    assert!(roles.as_array().unwrap().contains(&json!(CLERK)), "{roles}");

    // Converting it again: 409.
    h.refused(
        "already converted",
        &top,
        h.legacy_body(&legacy, &an),
        StatusCode::CONFLICT,
        "failure",
        "already been converted",
    )
    .await;

    // The feed: since=0 lists it, since=<its seq> is empty.
    let feed = h
        .call(
            Method::GET,
            &format!("/conversions?rp={rp}&since=0"),
            &top,
            None,
        )
        .await;
    assert_eq!(feed.status, StatusCode::OK, "{}", feed.body);
    let feed = feed.json();
    let entries = feed.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{feed}");
    assert_eq!(entries[0]["id"], id.as_str());
    assert_eq!(entries[0]["mode"], "legacy");
    assert_eq!(entries[0]["old_subject"], "legacy-an.nv");
    assert_eq!(entries[0]["new_subject"], new_subject.as_str());
    let seq = entries[0]["seq"].as_i64().unwrap();
    let later = h
        .call(
            Method::GET,
            &format!("/conversions?rp={rp}&since={seq}&limit=10"),
            &top,
            None,
        )
        .await;
    assert_eq!(later.status, StatusCode::OK, "{}", later.body);
    assert_eq!(later.json(), json!([]));

    // The stored report is the one the admin saw.
    let shown = h
        .call(Method::GET, &format!("/conversions/{id}"), &top, None)
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.json(), report);
    let missing = h
        .call(Method::GET, "/conversions/no-such-conversion", &top, None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);

    // The success is in the audit log.
    assert!(h
        .hub
        .audit()
        .iter()
        .any(|e| e.action == "conversion.convert" && e.outcome == "success"));
}

// ---------------------------------------------------------------------------------------
// 2. Hand-over between federated accounts.

async fn prompt_none(h: &Hub, sso: &str) -> Reply {
    let (_, challenge) = pkce();
    send(
        &h.hub.app,
        get(
            &h.hub.authorize_uri(&challenge, "&prompt=none"),
            &[("fedhub_sso", sso)],
        ),
    )
    .await
}

#[tokio::test]
async fn a_federated_account_hands_over_to_a_colleague() {
    let h = hub(support::sqlite());
    let a = h.hub.account_id.clone();
    let b = h.person("Trần Thị Bình", "022185000456");
    h.member(&a, FINANCE, ONE_STOP, &[CLERK], true);
    h.member(&b, FINANCE, ONE_STOP, &[UNIT_ADMIN], true);
    let grant = h.grant_in_store(&a, "level2", FINANCE);
    let b_subject = h.subject_of(&b);
    let a_subject = h.subject_of(&a);

    // A is signed in to the portal.
    let (_, _, sso) = h.hub.code().await;
    let r = prompt_none(&h, &sso).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(
        query_of(r.location()).contains_key("code"),
        "{}",
        r.location()
    );

    let r = h.convert(&h.operator, h.handover_body(&a, &b)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let report = r.json();
    assert_eq!(report["mode"], "handover");
    assert_eq!(report["source"], a.as_str());
    assert_eq!(report["roles_moved"], json!([CLERK]));
    assert_eq!(report["roles_kept"], json!([UNIT_ADMIN]));
    assert_eq!(report["admin_grants_moved"].as_array().unwrap().len(), 1);
    assert!(
        report["admin_grants_moved"][0]
            .as_str()
            .unwrap()
            .contains("level2"),
        "{report}"
    );
    assert_eq!(report["old_subject"], a_subject.as_str());
    assert_eq!(report["new_subject"], b_subject.as_str());
    assert_eq!(
        report["before"],
        json!({"source_roles": 1, "target_roles": 1, "source_admin_grants": 1, "target_admin_grants": 0, "source_has_access": true})
    );
    assert_eq!(
        report["after"],
        json!({"source_roles": 0, "target_roles": 2, "source_admin_grants": 0, "target_admin_grants": 1, "source_has_access": false})
    );

    // B has the role and the grant and keeps its subject; A is gone from the portal.
    let mut want = vec![CLERK.to_string(), UNIT_ADMIN.to_string()];
    want.sort();
    assert_eq!(h.roles_of(&b), Some(want));
    assert_eq!(h.grant_holder(&grant), b);
    assert_eq!(h.roles_of(&a), None, "A's membership is gone");
    assert_eq!(h.subject_of(&b), b_subject);

    // A's live session for the portal has ended: a silent authorization needs a login.
    let r = prompt_none(&h, &sso).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let q = query_of(r.location());
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("login_required"),
        "{}",
        r.location()
    );

    // Handing over again: A is no longer a member.
    h.refused(
        "A already handed over",
        &h.operator,
        h.handover_body(&a, &b),
        StatusCode::BAD_REQUEST,
        "failure",
        "not a member",
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// 3. Dry run.

#[tokio::test]
async fn a_dry_run_reports_the_real_conversion_and_changes_nothing() {
    let h = hub(support::sqlite());
    let a = h.hub.account_id.clone();
    let b = h.person("Trần Thị Bình", "022185000456");
    let c = h.person("Lê Văn Cường", "031190000789");
    h.member(&a, FINANCE, ONE_STOP, &[CLERK], true);
    h.member(&b, FINANCE, ONE_STOP, &[UNIT_ADMIN], true);
    h.member(&c, FINANCE, ONE_STOP, &[], true);
    h.grant_in_store(&a, "level2", FINANCE);
    let legacy = h.legacy("cuong.lv", FINANCE, ONE_STOP, &["Vai trò cũ"]);

    for (case, body) in [
        ("handover", h.handover_body(&a, &b)),
        ("legacy", h.legacy_body(&legacy, &c)),
    ] {
        let before = h.snapshot();
        let mut dry_body = body.clone();
        dry_body["dry_run"] = json!(true);
        let dry = h.convert(&h.operator, dry_body).await;
        assert_eq!(dry.status, StatusCode::OK, "{case}: {}", dry.body);
        let dry = dry.json();
        assert_eq!(dry["dry_run"], true, "{case}");
        assert!(dry["id"].is_null(), "{case}: a dry run has no id: {dry}");
        assert_eq!(
            h.snapshot(),
            before,
            "{case}: the dry run changed the database"
        );
        assert!(h
            .hub
            .audit()
            .iter()
            .any(|e| e.action == "conversion.dry_run" && e.outcome == "success"));

        let real = h.convert(&h.operator, body).await;
        assert_eq!(real.status, StatusCode::CREATED, "{case}: {}", real.body);
        assert_eq!(strip(real.json()), strip(dry), "{case}: dry run ≠ real run");
        assert_ne!(h.snapshot(), before, "{case}");
    }
}

// ---------------------------------------------------------------------------------------
// 4. Refusals.

#[tokio::test]
async fn refused_conversions_say_why_change_nothing_and_are_audited() {
    let h = hub(support::sqlite());
    let a = h.hub.account_id.clone();
    let same = h.person("Trần Thị Bình", "022185000456");
    let other_unit = h.person("Lê Văn Cường", "031190000789");
    let other_group = h.person("Phạm Thị Dung", "034195000321");
    let outsider = h.person("Hoàng Văn Em", "036188000654");
    let inactive = h.person("Vũ Thị Phương", "038192000987");
    let justice_admin = h.person("Đỗ Văn Giang", "040187000111");
    h.member(&a, FINANCE, ONE_STOP, &[CLERK], true);
    h.member(&same, FINANCE, ONE_STOP, &[], true);
    h.member(&other_unit, JUSTICE, ONE_STOP, &[], true);
    h.member(&other_group, FINANCE, "Nhóm kế toán", &[], true);
    h.member(&inactive, FINANCE, ONE_STOP, &[], false);
    h.grant_in_store(&justice_admin, "level1", JUSTICE);
    let justice_token = h.personal_token(&justice_admin);
    let legacy = h.legacy("an.nv", FINANCE, ONE_STOP, &[CLERK]);
    let op = h.operator.clone();
    let bad = StatusCode::BAD_REQUEST;

    h.refused(
        "different unit",
        &op,
        h.legacy_body(&legacy, &other_unit),
        bad,
        "failure",
        "different units",
    )
    .await;
    h.refused(
        "different user group",
        &op,
        h.handover_body(&a, &other_group),
        bad,
        "failure",
        "different user groups",
    )
    .await;
    h.refused(
        "target not a member",
        &op,
        h.legacy_body(&legacy, &outsider),
        bad,
        "failure",
        "add the federated account",
    )
    .await;
    h.refused(
        "target not activated",
        &op,
        h.handover_body(&a, &inactive),
        bad,
        "failure",
        "activate",
    )
    .await;
    h.refused(
        "into itself",
        &op,
        h.handover_body(&a, &a),
        bad,
        "failure",
        "into itself",
    )
    .await;
    h.refused(
        "out-of-scope admin",
        &justice_token,
        h.legacy_body(&legacy, &same),
        StatusCode::FORBIDDEN,
        "denied",
        "",
    )
    .await;
    h.refused(
        "unknown legacy id",
        &op,
        h.legacy_body("no-such-legacy-account", &same),
        StatusCode::NOT_FOUND,
        "failure",
        "no-such-legacy-account",
    )
    .await;
    // Already converted (after a real conversion).
    let r = h.convert(&op, h.legacy_body(&legacy, &same)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    h.refused(
        "already converted",
        &op,
        h.legacy_body(&legacy, &same),
        StatusCode::CONFLICT,
        "failure",
        "already been converted",
    )
    .await;
}

/// An admin of another unit sees no conversion of this one: neither in the feed nor as a
/// report (the members list hides other units' members the same way).
#[tokio::test]
async fn an_admin_of_another_unit_sees_no_conversion_of_this_one() {
    let h = hub(support::sqlite());
    let an = h.hub.account_id.clone();
    h.member(&an, FINANCE, ONE_STOP, &[], true);
    let legacy = h.legacy("an.nv", FINANCE, ONE_STOP, &[CLERK]);
    let r = h.convert(&h.operator, h.legacy_body(&legacy, &an)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let justice_admin = h.person("Đỗ Văn Giang", "040187000111");
    h.grant_in_store(&justice_admin, "level1", JUSTICE);
    let token = h.personal_token(&justice_admin);
    let shown = h
        .call(Method::GET, &format!("/conversions/{id}"), &token, None)
        .await;
    assert_eq!(shown.status, StatusCode::FORBIDDEN, "{}", shown.body);
    let feed = h
        .call(
            Method::GET,
            &format!("/conversions?rp={}", h.rp()),
            &token,
            None,
        )
        .await;
    assert!(
        feed.status == StatusCode::FORBIDDEN
            || feed.status == StatusCode::OK && feed.json() == json!([]),
        "{} {}",
        feed.status,
        feed.body
    );
}

// ---------------------------------------------------------------------------------------
// 5. A crash in the middle leaves the old state.

fn install_crash(h: &Hub, postgres: bool) {
    let sql: &[&str] = if postgres {
        &[
            "CREATE FUNCTION conversion_crash() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'crash'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER conversion_crash BEFORE INSERT ON conversions FOR EACH ROW EXECUTE FUNCTION conversion_crash()",
        ]
    } else {
        &["CREATE TRIGGER conversion_crash BEFORE INSERT ON conversions BEGIN SELECT RAISE(ABORT, 'crash'); END"]
    };
    h.hub
        .store
        .write(|c| {
            for s in sql {
                diesel::sql_query(*s).execute(c)?;
            }
            Ok(())
        })
        .unwrap();
}

fn drop_crash(h: &Hub, postgres: bool) {
    let sql: &[&str] = if postgres {
        &[
            "DROP TRIGGER conversion_crash ON conversions",
            "DROP FUNCTION conversion_crash()",
        ]
    } else {
        &["DROP TRIGGER conversion_crash"]
    };
    h.hub
        .store
        .write(|c| {
            for s in sql {
                diesel::sql_query(*s).execute(c)?;
            }
            Ok(())
        })
        .unwrap();
}

async fn crash_leaves_the_old_state(h: Hub, postgres: bool) {
    let a = h.hub.account_id.clone();
    let b = h.person("Trần Thị Bình", "022185000456");
    h.member(&a, FINANCE, ONE_STOP, &[CLERK], true);
    h.member(&b, FINANCE, ONE_STOP, &[], true);
    let grant = h.grant_in_store(&a, "level2", FINANCE);
    let legacy = h.legacy("binh.tt", FINANCE, ONE_STOP, &[UNIT_ADMIN]);
    let (_, _, sso) = h.hub.code().await;

    install_crash(&h, postgres);
    for (case, body) in [
        ("handover", h.handover_body(&a, &b)),
        ("legacy", h.legacy_body(&legacy, &b)),
    ] {
        let before = h.snapshot();
        let r = h.convert(&h.operator, body).await;
        assert!(
            r.status.is_server_error(),
            "{case}: the crash fails the conversion: {} {}",
            r.status,
            r.body
        );
        assert_eq!(
            h.snapshot(),
            before,
            "{case}: the crash left a half conversion"
        );
    }
    assert_eq!(h.roles_of(&a), Some(vec![CLERK.to_string()]));
    assert_eq!(h.roles_of(&b), Some(vec![]));
    assert_eq!(h.grant_holder(&grant), a);
    assert_eq!(h.converted_to(&legacy), None);
    let r = prompt_none(&h, &sso).await;
    assert!(
        query_of(r.location()).contains_key("code"),
        "A is still signed in: {}",
        r.location()
    );
    drop_crash(&h, postgres);

    // Without the crash, the same conversion goes through.
    let r = h.convert(&h.operator, h.handover_body(&a, &b)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn a_crash_mid_conversion_leaves_the_old_state_sqlite() {
    crash_leaves_the_old_state(hub(support::sqlite()), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_crash_mid_conversion_leaves_the_old_state() {
    let h = tokio::task::spawn_blocking(|| hub(support::postgres()))
        .await
        .unwrap();
    crash_leaves_the_old_state(h, true).await;
}

// ---------------------------------------------------------------------------------------
// 6. Bulk.

#[test]
fn bulk_csv_needs_its_header_and_two_values_a_row() {
    let pairs = bulk::parse_pairs("source,target\nlegacy:an.nv, 001204012345\nabc,def\n").unwrap();
    assert_eq!(
        pairs,
        vec![
            ("legacy:an.nv".to_string(), "001204012345".to_string()),
            ("abc".to_string(), "def".to_string())
        ]
    );
    let e = bulk::parse_pairs("legacy:an.nv,001204012345\n").unwrap_err();
    assert!(e.to_string().contains("source,target"), "{e}");
    let e = bulk::parse_pairs("").unwrap_err();
    assert!(e.to_string().contains("source,target"), "{e}");
    let e = bulk::parse_pairs("source,target\na,b\nc,d,e\n").unwrap_err();
    assert!(e.to_string().contains("row 2"), "{e}");
    let e = bulk::parse_pairs("source,target\na,b\nc,\n").unwrap_err();
    assert!(e.to_string().contains("row 2"), "{e}");
    assert!(bulk::parse_pairs("source,target\n").is_err(), "no rows");
}

#[tokio::test]
async fn bulk_converts_per_row_or_all_or_nothing() {
    let h = hub(support::sqlite());
    let rp = h.rp();
    let b = h.person("Trần Thị Bình", "022185000456");
    let c = h.person("Lê Văn Cường", "031190000789");
    let d = h.person("Phạm Thị Dung", "034195000321");
    h.member(&b, FINANCE, ONE_STOP, &[], true);
    h.member(&c, FINANCE, ONE_STOP, &[], true);
    h.member(&d, JUSTICE, ONE_STOP, &[], true);
    h.legacy("binh.tt", FINANCE, ONE_STOP, &[CLERK]);
    h.legacy("cuong.lv", FINANCE, ONE_STOP, &[CLERK]);
    h.legacy("dung.pt", FINANCE, ONE_STOP, &[CLERK]);
    let pairs = bulk::parse_pairs(
        "source,target\nlegacy:binh.tt,022185000456\nlegacy:dung.pt,034195000321\nlegacy:cuong.lv,031190000789\n",
    )
    .unwrap();
    let run = |commit: Commit, dry_run: bool| {
        let (rp, pairs) = (rp.clone(), pairs.clone());
        h.hub
            .store
            .write(move |c| {
                bulk::bulk(
                    c,
                    &Admin::operator("test"),
                    &rp,
                    &pairs,
                    commit,
                    dry_run,
                    NOW,
                )
            })
            .unwrap()
            .0
    };

    // All or nothing: row 2 is in another unit, nothing converts.
    let before = h.snapshot();
    let rows = run(Commit::AllOrNothing, false);
    assert_eq!(h.snapshot(), before, "all or nothing with a bad row");
    assert!(rows.iter().all(|r| !r.ok), "{rows:?}");
    let bad = rows.iter().find(|r| r.row == 2).unwrap();
    assert!(
        bad.error.as_deref().unwrap().contains("different units"),
        "{bad:?}"
    );
    assert!(
        rows.iter()
            .all(|r| r.row == 2 || r.error.as_deref().unwrap().contains("all or nothing")),
        "{rows:?}"
    );

    // A dry run, per row: the same outcomes, nothing changes.
    let rows = run(Commit::PerRow, true);
    assert_eq!(h.snapshot(), before, "dry run");
    assert_eq!(
        rows.iter().map(|r| r.ok).collect::<Vec<_>>(),
        vec![true, false, true],
        "{rows:?}"
    );
    assert!(rows[0].report.as_ref().unwrap().dry_run);

    // Per row: rows 1 and 3 convert, row 2 says why not.
    let rows = run(Commit::PerRow, false);
    assert_eq!(
        rows.iter().map(|r| (r.row, r.ok)).collect::<Vec<_>>(),
        vec![(1, true), (2, false), (3, true)],
        "{rows:?}"
    );
    assert!(rows[1]
        .error
        .as_deref()
        .unwrap()
        .contains("different units"));
    assert_eq!(h.roles_of(&b), Some(vec![CLERK.to_string()]));
    assert_eq!(h.roles_of(&c), Some(vec![CLERK.to_string()]));
    assert_eq!(h.roles_of(&d), Some(vec![]));
    assert_eq!(h.snapshot().conversions, 2);
}

// ---------------------------------------------------------------------------------------
// The relying party's webhook: a real receiver on loopback.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the receiver answers: 200, 500, or a redirect to `/elsewhere`.
const ANSWER_OK: u8 = 0;
const ANSWER_FAIL: u8 = 1;
const ANSWER_REDIRECT: u8 = 2;

/// A POST as received: its headers and body.
type Received = (http::HeaderMap, Vec<u8>);

#[derive(Clone, Default)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    answer: Arc<AtomicU8>,
    elsewhere: Arc<AtomicUsize>,
}

/// A portal's webhook endpoint on 127.0.0.1: records every POST and answers as told.
async fn receiver() -> Receiver {
    use axum::extract::State;
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = Receiver {
        url: format!(
            "http://{}/fedhub/conversions",
            listener.local_addr().unwrap()
        ),
        ..Default::default()
    };
    r.answer.store(ANSWER_OK, Ordering::SeqCst);
    let app =
        axum::Router::new()
            .route(
                "/fedhub/conversions",
                axum::routing::post(
                    |State(r): State<Receiver>,
                     headers: http::HeaderMap,
                     body: axum::body::Bytes| async move {
                        r.got.lock().unwrap().push((headers, body.to_vec()));
                        match r.answer.load(Ordering::SeqCst) {
                            ANSWER_OK => StatusCode::OK.into_response(),
                            ANSWER_FAIL => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                            _ => (
                                StatusCode::TEMPORARY_REDIRECT,
                                [(
                                    header::LOCATION,
                                    format!(
                                        "{}/elsewhere",
                                        r.url.replace("/fedhub/conversions", "")
                                    ),
                                )],
                            )
                                .into_response(),
                        }
                    },
                ),
            )
            .route(
                "/elsewhere",
                axum::routing::post(|State(r): State<Receiver>| async move {
                    r.elsewhere.fetch_add(1, Ordering::SeqCst);
                    StatusCode::OK
                }),
            )
            .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    r
}

impl Receiver {
    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Waits (a few seconds at most) until `n` POSTs have arrived.
    async fn wait_for(&self, n: usize) {
        for _ in 0..200 {
            if self.count() >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the receiver got {} POSTs, expected {n}", self.count());
    }

    /// The `n`-th POST, its signature checked as docs/conversion.md tells a portal to.
    fn verified(&self, n: usize, secret: &str) -> Value {
        let (headers, body) = self.got.lock().unwrap()[n].clone();
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert!(headers.contains_key("fedhub-delivery"));
        let sig = headers["fedhub-signature"].to_str().unwrap().to_string();
        let (t, v1) = sig
            .split_once(',')
            .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
            .unwrap_or_else(|| panic!("signature header {sig}"));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let mut signed = format!("{t}.").into_bytes();
        signed.extend_from_slice(&body);
        let expected: String = ring::hmac::sign(&key, &signed)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(v1, expected, "the signature verifies with the secret");
        // Another secret does not verify it.
        let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"fhwh_not-the-secret");
        assert!(ring::hmac::verify(&other, &signed, &hex_decode(v1)).is_err());
        serde_json::from_slice(&body).unwrap()
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

impl Hub {
    /// Registers the relying party's webhook through the admin API; the secret.
    async fn webhook(&self, url: &str) -> String {
        let r = self
            .call(
                Method::PUT,
                &format!("/relying-parties/{}/webhook", self.rp()),
                &self.operator,
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["url"], url);
        r.json()["secret"].as_str().unwrap().to_string()
    }

    async fn deliveries(&self) -> Vec<Value> {
        let r = self
            .call(
                Method::GET,
                &format!("/relying-parties/{}/webhook/deliveries", self.rp()),
                &self.operator,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.json().as_array().unwrap().clone()
    }

    /// Waits until the newest delivery has had `attempts` attempts.
    async fn wait_attempts(&self, attempts: i64) -> Value {
        for _ in 0..200 {
            let d = self.deliveries().await;
            if d.first().is_some_and(|d| d["attempts"] == attempts) {
                return d[0].clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!(
            "no delivery with {attempts} attempt(s): {:?}",
            self.deliveries().await
        );
    }

    /// What `fedhub serve` does every 30 seconds, at the hub's (test) time.
    async fn retry_round(&self) -> Vec<fedhub::conversion::webhook::Attempt> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        fedhub::conversion::webhook::deliver_due(
            &self.hub.store,
            &support::vault(),
            &client,
            fedhub::clock::Clock::now(&self.hub.clock),
            None,
        )
        .await
        .unwrap()
    }
}

async fn webhook_receives_signed_conversions(h: Hub) {
    let portal = receiver().await;
    let secret = h.webhook(&portal.url).await;
    assert!(secret.starts_with("fhwh_"), "{secret}");
    // The secret is stored sealed, not in clear.
    let sealed: Option<String> = h
        .hub
        .store
        .read(|c| {
            use schema::relying_parties as rp;
            Ok(rp::table
                .find(h.rp())
                .select(rp::webhook_secret_sealed)
                .get_result(c)?)
        })
        .unwrap();
    let sealed = sealed.expect("a sealed secret");
    assert!(!sealed.contains(&secret) && !sealed.contains(&secret[5..]));

    // A legacy account converts; the portal hears of it, signed.
    let legacy = h.legacy("an.nv", FINANCE, ONE_STOP, &[CLERK]);
    let an = h.hub.account_id.clone();
    h.member(&an, FINANCE, ONE_STOP, &[], true);
    let r = h.convert(&h.operator, h.legacy_body(&legacy, &an)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let report = r.json();
    portal.wait_for(1).await;
    let sent = portal.verified(0, &secret);
    assert_eq!(sent["type"], "conversion");
    assert_eq!(sent["id"], report["id"]);
    assert_eq!(sent["rp_id"], h.rp().as_str());
    assert_eq!(sent["mode"], "legacy");
    assert_eq!(sent["old_subject"], "legacy-an.nv");
    assert_eq!(sent["new_subject"], h.subject_of(&an).as_str());
    // The same entry as the feed, which stays the source of truth.
    let feed = h
        .call(
            Method::GET,
            &format!("/conversions?rp={}&since=0", h.rp()),
            &h.operator,
            None,
        )
        .await
        .json();
    assert_eq!(feed[0]["seq"], sent["seq"]);
    assert_eq!(feed[0]["old_subject"], sent["old_subject"]);
    assert_eq!(feed[0]["new_subject"], sent["new_subject"]);
    let d = h.wait_attempts(1).await;
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["conversion_id"], report["id"]);

    // A hand-over is told too; a dry run is not.
    let binh = h.person("Trần Thị Bình", "022185000456");
    h.member(&binh, FINANCE, ONE_STOP, &[], true);
    let mut dry = h.handover_body(&an, &binh);
    dry["dry_run"] = json!(true);
    let r = h.convert(&h.operator, dry).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = h.convert(&h.operator, h.handover_body(&an, &binh)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    portal.wait_for(2).await;
    let sent = portal.verified(1, &secret);
    assert_eq!(sent["mode"], "handover");
    assert_eq!(sent["old_subject"], r.json()["old_subject"]);
    assert_eq!(sent["new_subject"], h.subject_of(&binh).as_str());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(portal.count(), 2, "nothing for the dry run");

    // Removed: later conversions are in the feed only.
    let r = h
        .call(
            Method::DELETE,
            &format!("/relying-parties/{}/webhook", h.rp()),
            &h.operator,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let cuong = h.person("Lê Văn Cường", "031190000789");
    h.member(&cuong, FINANCE, ONE_STOP, &[], true);
    let r = h.convert(&h.operator, h.handover_body(&binh, &cuong)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(portal.count(), 2);
    assert_eq!(h.deliveries().await.len(), 2);
}

#[tokio::test]
async fn a_webhook_receives_each_conversion_signed() {
    webhook_receives_signed_conversions(hub(support::sqlite())).await;
}

#[tokio::test]
async fn postgres_a_webhook_receives_each_conversion_signed() {
    let h = tokio::task::spawn_blocking(|| hub(support::postgres()))
        .await
        .unwrap();
    webhook_receives_signed_conversions(h).await;
}

#[tokio::test]
async fn a_failing_webhook_never_undoes_a_conversion_and_is_retried_then_given_up() {
    use fedhub::conversion::webhook::{backoff, MAX_ATTEMPTS};
    let h = hub(support::sqlite());
    let portal = receiver().await;
    let secret = h.webhook(&portal.url).await;
    portal.answer.store(ANSWER_FAIL, Ordering::SeqCst);
    let legacy = h.legacy("an.nv", FINANCE, ONE_STOP, &[CLERK]);
    let an = h.hub.account_id.clone();
    h.member(&an, FINANCE, ONE_STOP, &[], true);
    let r = h.convert(&h.operator, h.legacy_body(&legacy, &an)).await;
    // The conversion stands whatever the receiver says.
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(h.converted_to(&legacy).as_deref(), Some(an.as_str()));
    let d = h.wait_attempts(1).await;
    assert_eq!(d["status"], "pending", "{d}");
    assert!(d["last_error"].as_str().unwrap().contains("500"), "{d}");
    assert_eq!(d["next_attempt_at"], NOW + backoff(1));
    // Not due yet: nothing is sent.
    assert!(h.retry_round().await.is_empty());
    // Due: retried, still failing, the wait grows.
    h.hub.clock.advance(backoff(1));
    let round = h.retry_round().await;
    assert_eq!(round.len(), 1);
    assert!(!round[0].delivered);
    let d = h.wait_attempts(2).await;
    assert_eq!(d["status"], "pending");
    // A redirect is not followed (and counts as a failure).
    portal.answer.store(ANSWER_REDIRECT, Ordering::SeqCst);
    h.hub.clock.advance(backoff(2));
    let round = h.retry_round().await;
    assert!(
        round[0].error.as_deref().unwrap().contains("not followed"),
        "{round:?}"
    );
    assert_eq!(portal.elsewhere.load(Ordering::SeqCst), 0);
    // Until the last attempt: then it is given up, and recorded so.
    portal.answer.store(ANSWER_FAIL, Ordering::SeqCst);
    for n in 3..MAX_ATTEMPTS {
        h.hub.clock.advance(backoff(n));
        assert_eq!(h.retry_round().await.len(), 1);
    }
    let d = h.wait_attempts(i64::from(MAX_ATTEMPTS)).await;
    assert_eq!(d["status"], "failed", "{d}");
    h.hub.clock.advance(24 * 3600);
    assert!(
        h.retry_round().await.is_empty(),
        "no attempt after the last"
    );
    assert_eq!(portal.count(), MAX_ATTEMPTS as usize);
    // Every attempt carried the same delivery id and a valid signature.
    for n in 0..portal.count() {
        assert_eq!(portal.verified(n, &secret)["id"], d["conversion_id"]);
    }
    // Still converted; the feed has it.
    assert_eq!(h.converted_to(&legacy).as_deref(), Some(an.as_str()));
    let feed = h
        .call(
            Method::GET,
            &format!("/conversions?rp={}&since=0", h.rp()),
            &h.operator,
            None,
        )
        .await
        .json();
    assert_eq!(feed.as_array().unwrap().len(), 1);

    // A receiver back up gets the next one at once.
    portal.answer.store(ANSWER_OK, Ordering::SeqCst);
    let legacy2 = h.legacy("binh.tt", FINANCE, ONE_STOP, &[]);
    let binh = h.person("Trần Thị Bình", "022185000456");
    h.member(&binh, FINANCE, ONE_STOP, &[], true);
    let r = h.convert(&h.operator, h.legacy_body(&legacy2, &binh)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let d = h.wait_attempts(1).await;
    assert_eq!(d["status"], "delivered", "{d}");
}

#[tokio::test]
async fn a_webhook_url_must_be_https_except_on_loopback() {
    let h = hub(support::sqlite());
    for url in [
        "http://portal.example.gov.vn/fedhub/conversions",
        "http://10.0.0.8/hook",
        "ftp://portal.example.gov.vn/hook",
        "https://user:pass@portal.example.gov.vn/hook",
        "not a url",
    ] {
        let r = h
            .call(
                Method::PUT,
                &format!("/relying-parties/{}/webhook", h.rp()),
                &h.operator,
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}: {}", r.body);
        assert!(r
            .header(header::CONTENT_TYPE)
            .unwrap()
            .starts_with("application/problem+json"));
        let p = r.json();
        assert_eq!(p["field"], "url", "{url}: {p}");
        assert!(!r.body.contains("fhwh_"), "no secret for a refused URL");
    }
    let r = h
        .call(
            Method::PUT,
            &format!("/relying-parties/{}/webhook", h.rp()),
            &h.operator,
            Some(json!({ "url": "http://portal.example.gov.vn/fedhub/conversions" })),
        )
        .await;
    assert!(
        r.json()["rule"]
            .as_str()
            .unwrap()
            .contains("must be an https:// URL"),
        "{}",
        r.body
    );
    // Nothing stored.
    let stored: (Option<String>, Option<String>) = h
        .hub
        .store
        .read(|c| {
            use schema::relying_parties as rp;
            Ok(rp::table
                .find(h.rp())
                .select((rp::webhook_url, rp::webhook_secret_sealed))
                .get_result(c)?)
        })
        .unwrap();
    assert_eq!(stored, (None, None));
    // A personal token (even a top admin's) may not register one.
    let office = h.person("Văn phòng", "022080000001");
    h.grant_in_store(&office, "top", QUANG_NINH);
    let top = h.personal_token(&office);
    let r = h
        .call(
            Method::PUT,
            &format!("/relying-parties/{}/webhook", h.rp()),
            &top,
            Some(json!({ "url": "https://portal.example.gov.vn/hook" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}
