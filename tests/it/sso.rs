//! Web SSO through the hub end to end (in-process): a registered SP's signed AuthnRequest,
//! the login page, the demo connector, the signed Response, SSO, and every refusal.

use std::io::Write;

use axum::body::Body;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use diesel::prelude::*;
use fedhub::store::schema;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::sp::{default_sp, TestSp};
use crate::support::{self, NOW};

pub const CITIZEN: &str = "001204012345";

struct Hub {
    app: Router,
    store: support::TestStore,
    sp: TestSp,
    rp_id: String,
    account_id: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                c.strip_prefix(&format!("{name}="))
                    .map(|rest| rest.split(';').next().unwrap_or("").to_string())
            })
    }
    /// The SAMLResponse carried by an auto-POST page, decoded.
    pub fn saml_response(&self) -> String {
        let marker = r#"name="SAMLResponse" value=""#;
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no SAMLResponse in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        let b64 = self.body[start..end]
            .replace("&#x2f;", "/")
            .replace("&#43;", "+")
            .replace("&#x3d;", "=");
        String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
    }
}

/// A Redirect-binding query carrying `xml` as `param`, signed with the SP's key.
pub fn signed_query(sp: &TestSp, param: &str, xml: &str, relay: Option<&str>) -> String {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes()).unwrap();
    let b64 = STANDARD.encode(enc.finish().unwrap());
    let e = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut octets = format!("{param}={}", e(&b64));
    if let Some(r) = relay {
        octets.push_str(&format!("&RelayState={}", e(r)));
    }
    octets.push_str(&format!(
        "&SigAlg={}",
        e("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    ));
    let key = ring::signature::RsaKeyPair::from_der(&sp.signing.private_der).unwrap();
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        octets.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{octets}&Signature={}", e(&STANDARD.encode(sig)))
}

/// `/saml/sso?…`: a signed HTTP-Redirect AuthnRequest `id` from `sp` (RelayState `rs-1`).
pub fn authn_request_uri(sp: &TestSp, id: &str) -> String {
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="2026-11-27T00:00:00Z" Destination="http://127.0.0.1:8080/saml/sso"><saml:Issuer>{}</saml:Issuer></samlp:AuthnRequest>"#,
        sp.entity_id
    );
    format!(
        "/saml/sso?{}",
        signed_query(sp, "SAMLRequest", &xml, Some("rs-1"))
    )
}

pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body =
        String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes()).into_owned();
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(uri: &str, cookies: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::get(uri);
    let c: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !c.is_empty() {
        b = b.header(header::COOKIE, c.join("; "));
    }
    b.body(Body::empty()).unwrap()
}

fn setup(requires_membership: bool) -> Hub {
    setup_on(support::sqlite(), requires_membership)
}

fn setup_on(store: support::TestStore, requires_membership: bool) -> Hub {
    let sp = default_sp();
    let (app, rp_id, account_id) = hub_with(
        &store,
        &sp.metadata(),
        requires_membership,
        std::sync::Arc::new(fedhub::clock::ManualClock::at(NOW)),
    );
    Hub {
        app,
        store,
        sp,
        rp_id,
        account_id,
    }
}

/// A hub over `store` with SAML keys, the shipped agencies, one citizen, the demo connector
/// and one registered SP; returns the app, the SP's relying-party id and the citizen's id.
pub fn hub_with(
    store: &fedhub::store::Store,
    sp_metadata: &str,
    requires_membership: bool,
    clock: fedhub::clock::SharedClock,
) -> (Router, String, String) {
    let now = clock.now();
    let state = fedhub::web::AppState::new(support::test_config(), store.clone(), clock).unwrap();
    let alg = state.config.saml_key_alg();
    store
        .write(|c| {
            fedhub::keys::ensure(c, &support::vault(), fedhub::keys::Purpose::Saml, alg, now)
        })
        .unwrap();
    store
        .write(|c| {
            fedhub::directory::agencies::import_csv(
                c,
                fedhub::directory::agencies::BUILTIN_CSV,
                now,
            )
        })
        .unwrap();
    let unit = fedhub::directory::agencies::AgencyInput {
        code: "000.00.01.H49".into(),
        name_vi: "Sở Tài chính tỉnh Quảng Ninh".into(),
        ..Default::default()
    }
    .validate()
    .unwrap();
    store
        .write(|c| fedhub::directory::agencies::add(c, &unit, now))
        .unwrap();
    let account = fedhub::directory::accounts::AccountInput {
        kind: "citizen".into(),
        display_name: "Nguyễn Văn An".into(),
        national_id: Some(CITIZEN.into()),
        email: Some("an@example.vn".into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let account = store
        .write(|c| fedhub::directory::accounts::add(c, &account, now))
        .unwrap();
    support::add_dev_connector(store, now);
    let reg = fedhub::rp::saml::SamlRegistration {
        metadata_xml: sp_metadata.to_string(),
        metadata_url: None,
        owner_agency_code: "000.00.00.H49".into(),
        display_name: Some("Cổng DVC thử nghiệm".into()),
        sign: None,
        encrypt_assertion: None,
        name_id_format: None,
        release: None,
        require_activated_membership: Some(requires_membership),
    };
    let rp = store
        .write(|c| fedhub::rp::saml::add(c, &reg, now))
        .unwrap();
    (fedhub::web::router(state), rp.id, account.id)
}

impl Hub {
    fn member(&self, status: &str) {
        let (acc, rp, now) = (self.account_id.clone(), self.rp_id.clone(), NOW);
        let status = status.to_string();
        self.store
            .write(move |c| {
                use schema::{membership_roles as mr, roles as r};
                crate::support::insert_member(
                    c,
                    crate::support::MemberRow {
                        id: "m1",
                        account_id: &acc,
                        rp_id: &rp,
                        unit: Some("000.00.01.H49"),
                        status: &status,
                        user_group: Some("Nhóm admin đơn vị"),
                        subject: "member-subject-1",
                    },
                )?;
                diesel::insert_into(r::table)
                    .values((
                        r::id.eq("r1"),
                        r::rp_id.eq(&rp),
                        r::name.eq("Admin của Tỉnh/thành phố"),
                        r::builtin.eq(true),
                        r::created_at.eq(now),
                    ))
                    .execute(c)?;
                diesel::insert_into(mr::table)
                    .values((mr::membership_id.eq("m1"), mr::role_id.eq("r1")))
                    .execute(c)?;
                Ok(())
            })
            .unwrap();
    }

    /// A signed HTTP-Redirect AuthnRequest query from the test SP.
    fn authn_query(&self, id: &str, extra: &str, relay: &str) -> String {
        let xml = format!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="2026-11-27T00:00:00Z" Destination="http://127.0.0.1:8080/saml/sso"{extra}><saml:Issuer>{}</saml:Issuer></samlp:AuthnRequest>"#,
            self.sp.entity_id
        );
        signed_query(&self.sp, "SAMLRequest", &xml, Some(relay))
    }

    fn hub_cert(&self) -> Vec<u8> {
        self.store
            .read(|c| fedhub::keys::signer(c, &support::vault(), fedhub::keys::Purpose::Saml))
            .unwrap()
            .cert_der
    }

    /// Request → login page → demo sign-in; returns the final reply (auto-POST page).
    async fn sign_in(&self, request_id: &str, national_id: &str) -> Reply {
        let r = send(
            &self.app,
            get(
                &format!("/saml/sso?{}", self.authn_query(request_id, "", "rs-1")),
                &[],
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let login = r.location().to_string();
        let handle = login.trim_start_matches("/login/").to_string();
        let bind = r
            .cookie("fedhub_login")
            .expect("login bound to this browser");
        assert_eq!(bind, handle);
        let page = send(&self.app, get(&login, &[("fedhub_login", &bind)])).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Cổng DVC thử nghiệm") && page.body.contains("Nguyễn Văn An"));
        let form = Request::post(format!("{login}/dev"))
            .header(header::COOKIE, format!("fedhub_login={bind}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("national_id={national_id}")))
            .unwrap();
        send(&self.app, form).await
    }

    fn audit(&self) -> Vec<fedhub::audit::Entry> {
        self.store.read(|c| fedhub::audit::tail(c, 100)).unwrap()
    }
}

#[tokio::test]
async fn a_member_signs_in_and_the_sp_gets_a_complete_signed_response() {
    member_sign_in(setup(true)).await;
}

/// The same flow on PostgreSQL: every query of the login path runs on both engines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_member_sign_in() {
    let store = tokio::task::spawn_blocking(support::postgres)
        .await
        .unwrap();
    let hub = tokio::task::spawn_blocking(move || setup_on(store, true))
        .await
        .unwrap();
    member_sign_in(hub).await;
}

async fn member_sign_in(hub: Hub) {
    hub.member("activated");
    let r = hub.sign_in("_req-1", CITIZEN).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let sso_cookie = r.cookie("fedhub_sso").expect("an SSO session starts");
    let csp = r
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains(&format!("form-action {}", crate::sp::ACS))
            && csp.contains("script-src 'sha256-"),
        "{csp}"
    );
    assert!(
        r.body.contains(&format!(
            r#"action="{}""#,
            crate::sp::ACS.replace('/', "&#x2f;")
        )) || r.body.contains(crate::sp::ACS)
    );
    assert!(r.body.contains(r#"name="RelayState" value="rs-1""#));
    let xml = r.saml_response();
    let resp: samael::schema::Response = xml.parse().unwrap();
    assert_eq!(resp.in_response_to.as_deref(), Some("_req-1"));
    let assertion = resp.assertion.unwrap();
    assert_eq!(
        assertion.subject.unwrap().name_id.unwrap().value,
        "member-subject-1",
        "the membership's stable subject"
    );
    assert!(
        xml.contains("000.00.01.H49")
            && xml.contains("Sở Tài chính tỉnh Quảng Ninh")
            && xml.contains("Admin của Tỉnh/thành phố")
    );
    assert!(super::saml::xmlsec1_verifies(
        &xml,
        &hub.hub_cert(),
        "urn:oasis:names:tc:SAML:2.0:protocol:Response"
    ));
    assert!(hub
        .audit()
        .iter()
        .any(|e| e.action == "saml.sso" && e.outcome == "success"));

    // Single sign-on: the next request is answered without a login page.
    let again = send(
        &hub.app,
        get(
            &format!("/saml/sso?{}", hub.authn_query("_req-2", "", "rs-2")),
            &[("fedhub_sso", &sso_cookie)],
        ),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert!(again.saml_response().contains(r#"InResponseTo="_req-2""#));
    // ForceAuthn asks again even with a session.
    let forced = send(
        &hub.app,
        get(
            &format!(
                "/saml/sso?{}",
                hub.authn_query("_req-3", r#" ForceAuthn="true""#, "")
            ),
            &[("fedhub_sso", &sso_cookie)],
        ),
    )
    .await;
    assert_eq!(forced.status, StatusCode::SEE_OTHER);
    // A replayed request is refused.
    let replay = send(
        &hub.app,
        get(
            &format!("/saml/sso?{}", hub.authn_query("_req-2", "", "rs-2")),
            &[("fedhub_sso", &sso_cookie)],
        ),
    )
    .await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(!replay.body.contains("SAMLResponse"));
}

#[tokio::test]
async fn is_passive_never_shows_a_page_even_to_refuse() {
    let hub = setup(true);
    hub.member("activated");
    let sso_cookie = hub
        .sign_in("_p0", CITIZEN)
        .await
        .cookie("fedhub_sso")
        .unwrap();
    // The membership is locked after sign-in; a passive request gets a SAML refusal.
    hub.store
        .write(|c| {
            Ok(diesel::update(schema::memberships::table)
                .set(schema::memberships::status.eq("locked"))
                .execute(c)?)
        })
        .unwrap();
    let r = send(
        &hub.app,
        get(
            &format!(
                "/saml/sso?{}",
                hub.authn_query("_p1", r#" IsPassive="true""#, "")
            ),
            &[("fedhub_sso", &sso_cookie)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.saml_response().contains("status:RequestDenied"));
    // And a non-passive one gets the page.
    let r = send(
        &hub.app,
        get(
            &format!("/saml/sso?{}", hub.authn_query("_p2", "", "")),
            &[("fedhub_sso", &sso_cookie)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn disabling_an_account_stops_its_live_session() {
    let hub = setup(false);
    let sso_cookie = hub
        .sign_in("_d1", CITIZEN)
        .await
        .cookie("fedhub_sso")
        .unwrap();
    hub.store
        .write(|c| {
            Ok(diesel::update(schema::accounts::table)
                .set(schema::accounts::status.eq("disabled"))
                .execute(c)?)
        })
        .unwrap();
    let r = send(
        &hub.app,
        get(
            &format!("/saml/sso?{}", hub.authn_query("_d2", "", "")),
            &[("fedhub_sso", &sso_cookie)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("vô hiệu hóa"), "{}", r.body);
}

#[tokio::test]
async fn is_passive_without_a_session_answers_no_passive() {
    let hub = setup(false);
    let r = send(
        &hub.app,
        get(
            &format!(
                "/saml/sso?{}",
                hub.authn_query("_p1", r#" IsPassive="true""#, "")
            ),
            &[],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let xml = r.saml_response();
    assert!(
        xml.contains("status:Responder") && xml.contains("status:NoPassive"),
        "{xml}"
    );
    assert!(super::saml::xmlsec1_verifies(
        &xml,
        &hub.hub_cert(),
        "urn:oasis:names:tc:SAML:2.0:protocol:Response"
    ));
}

#[tokio::test]
async fn members_who_are_not_activated_get_a_clear_page_not_a_response() {
    let hub = setup(true);
    hub.member("not_activated");
    let r = hub.sign_in("_n1", CITIZEN).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body.contains("Tài khoản chưa được kích hoạt"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("SAMLResponse"));
    assert!(hub.audit().iter().any(|e| e.action == "saml.sso"
        && e.outcome == "denied"
        && e.detail.as_deref() == Some("not_activated")));

    let hub = setup(true);
    let r = hub.sign_in("_n2", CITIZEN).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body.contains("chưa có quyền sử dụng hệ thống này"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_failed_upstream_sign_in_is_answered_authn_failed() {
    let hub = setup(false);
    let r = hub.sign_in("_f1", "079088004567").await;
    assert_eq!(r.status, StatusCode::OK);
    let xml = r.saml_response();
    assert!(
        xml.contains("status:Responder") && xml.contains("status:AuthnFailed"),
        "{xml}"
    );
    assert!(xml.contains(r#"InResponseTo="_f1""#));
    assert!(hub
        .audit()
        .iter()
        .any(|e| e.action == "login" && e.outcome == "failure"));
}

#[tokio::test]
async fn doctype_and_oversized_post_requests_are_refused_and_audited() {
    let hub = setup(false);
    let post = |body: String| {
        Request::post("/saml/sso")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let e = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let xxe = format!(
        r#"<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_x" Version="2.0" IssueInstant="2026-11-27T00:00:00Z"><saml:Issuer>{}&x;</saml:Issuer></samlp:AuthnRequest>"#,
        hub.sp.entity_id
    );
    let r = send(
        &hub.app,
        post(format!("SAMLRequest={}", e(&STANDARD.encode(&xxe)))),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!r.body.contains("root:"), "nothing of the file leaks");
    let big = STANDARD.encode(format!("<a>{}</a>", "x".repeat(150_000)));
    let r = send(&hub.app, post(format!("SAMLRequest={}", e(&big)))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let refused: Vec<_> = hub
        .audit()
        .into_iter()
        .filter(|e| e.action == "saml.sso" && e.outcome == "denied")
        .collect();
    assert!(refused
        .iter()
        .any(|e| e.detail.as_deref().unwrap_or("").contains("DOCTYPE")));
    assert!(refused
        .iter()
        .any(|e| e.detail.as_deref().unwrap_or("").contains("larger than")));
}

#[tokio::test]
async fn an_identity_without_an_account_is_refused() {
    let hub = setup(false);
    let r = hub.sign_in("_u1", "022195000123").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("Không tìm thấy tài khoản"), "{}", r.body);
}

#[tokio::test]
async fn a_login_cannot_be_finished_from_another_browser_or_twice() {
    let hub = setup(false);
    let r = send(
        &hub.app,
        get(
            &format!("/saml/sso?{}", hub.authn_query("_b1", "", "")),
            &[],
        ),
    )
    .await;
    let login = r.location().to_string();
    let bind = r.cookie("fedhub_login").unwrap();
    let stranger = send(&hub.app, get(&login, &[])).await;
    assert_eq!(stranger.status, StatusCode::BAD_REQUEST);
    assert!(stranger.body.contains("Phiên đăng nhập đã hết hạn"));
    let post = |cookie: String| {
        Request::post(format!("{login}/dev"))
            .header(header::COOKIE, format!("fedhub_login={cookie}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("national_id={CITIZEN}")))
            .unwrap()
    };
    assert_eq!(
        send(&hub.app, post(bind.clone())).await.status,
        StatusCode::OK
    );
    let twice = send(&hub.app, post(bind)).await;
    assert_eq!(
        twice.status,
        StatusCode::BAD_REQUEST,
        "a login is single use"
    );
}

#[tokio::test]
async fn bad_requests_get_a_page_and_an_audit_entry_never_a_response() {
    let hub = setup(false);
    // Unknown SP.
    let stranger = TestSp::new(
        "https://stranger.example/sp",
        "https://stranger.example/acs",
    );
    let other = Hub {
        app: hub.app.clone(),
        store: support::sqlite(),
        sp: stranger,
        rp_id: String::new(),
        account_id: String::new(),
    };
    let r = send(
        &hub.app,
        get(
            &format!("/saml/sso?{}", other.authn_query("_x1", "", "")),
            &[],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Hệ thống chưa được đăng ký"));
    // ACS URL not in metadata: refused, never used.
    let evil = send(
        &hub.app,
        get(
            &format!(
                "/saml/sso?{}",
                hub.authn_query(
                    "_x2",
                    r#" AssertionConsumerServiceURL="https://attacker.example/acs""#,
                    ""
                )
            ),
            &[],
        ),
    )
    .await;
    assert_eq!(evil.status, StatusCode::BAD_REQUEST);
    assert!(!evil.body.contains("attacker.example") || !evil.body.contains("SAMLResponse"));
    // Unsigned although the metadata says requests are signed.
    let q = hub.authn_query("_x3", "", "");
    let unsigned = q.split("&RelayState").next().unwrap().to_string();
    let r = send(&hub.app, get(&format!("/saml/sso?{unsigned}"), &[])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Garbage.
    let r = send(&hub.app, get("/saml/sso?SAMLRequest=%%%", &[])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let denied = hub
        .audit()
        .into_iter()
        .filter(|e| e.action == "saml.sso" && e.outcome == "denied")
        .count();
    assert!(denied >= 4, "{denied}");
}

#[tokio::test]
async fn requests_for_another_idp_or_out_of_time_are_refused() {
    let hub = setup(false);
    let request = |destination: &str, instant: &str| {
        format!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_t{}" Version="2.0" IssueInstant="{instant}" Destination="{destination}"><saml:Issuer>{}</saml:Issuer></samlp:AuthnRequest>"#,
            instant.len() + destination.len(),
            hub.sp.entity_id
        )
    };
    for (destination, instant) in [
        ("https://other-idp.example/sso", "2026-11-27T00:00:00Z"),
        ("http://127.0.0.1:8080/saml/sso", "2026-11-26T23:00:00Z"),
        ("http://127.0.0.1:8080/saml/sso", "2026-11-27T01:00:00Z"),
    ] {
        let q = signed_query(&hub.sp, "SAMLRequest", &request(destination, instant), None);
        let r = send(&hub.app, get(&format!("/saml/sso?{q}"), &[])).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{destination} {instant}");
    }
    let q = signed_query(
        &hub.sp,
        "SAMLRequest",
        &request("http://127.0.0.1:8080/saml/sso", "2026-11-26T23:58:00Z"),
        None,
    );
    assert_eq!(
        send(&hub.app, get(&format!("/saml/sso?{q}"), &[]))
            .await
            .status,
        StatusCode::SEE_OTHER,
        "two minutes old is fine"
    );
}

#[tokio::test]
async fn idp_initiated_sign_in_goes_to_the_default_acs() {
    let hub = setup(false);
    let r = send(
        &hub.app,
        get(
            &format!(
                "/saml/init?sp={}&RelayState=home",
                url::form_urlencoded::byte_serialize(hub.sp.entity_id.as_bytes())
                    .collect::<String>()
            ),
            &[],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let login = r.location().to_string();
    let bind = r.cookie("fedhub_login").unwrap();
    let form = Request::post(format!("{login}/dev"))
        .header(header::COOKIE, format!("fedhub_login={bind}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("national_id={CITIZEN}")))
        .unwrap();
    let done = send(&hub.app, form).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let xml = done.saml_response();
    assert!(!xml.contains("InResponseTo"), "unsolicited");
    assert!(xml.contains(&format!(r#"Destination="{}""#, crate::sp::ACS)));
}

mod logout {
    use super::*;
    use fedhub_metadata::xml::{redirect, Limits};

    fn logout_request(sp: &TestSp, id: &str, name_id: &str) -> String {
        format!(
            r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="2026-11-27T00:00:00Z" Destination="http://127.0.0.1:8080/saml/slo"><saml:Issuer>{}</saml:Issuer><saml:NameID>{name_id}</saml:NameID></samlp:LogoutRequest>"#,
            sp.entity_id
        )
    }

    fn logout_response(sp: &TestSp, in_response_to: &str) -> String {
        format!(
            r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lr1" Version="2.0" IssueInstant="2026-11-27T00:00:00Z" InResponseTo="{in_response_to}"><saml:Issuer>{}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#,
            sp.entity_id
        )
    }

    /// Splits a redirect to an SP's SLO endpoint and checks the hub's query signature.
    fn hub_message(hub: &Hub, location: &str, param: &str) -> redirect::RedirectMessage {
        let query = location.split_once('?').unwrap().1;
        let msg = redirect::parse(query, param, Limits::default()).unwrap();
        let cert = samael::crypto::CertificateDer::from(hub.hub_cert());
        msg.signature
            .as_ref()
            .expect("signed")
            .verify(&[cert])
            .expect("signed by the hub's current key");
        msg
    }

    #[tokio::test]
    async fn sp_initiated_logout_reaches_every_sp_of_the_session_and_ends_sso() {
        logout_through_two_portals(setup(false)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_logout_through_two_portals() {
        let store = tokio::task::spawn_blocking(support::postgres)
            .await
            .unwrap();
        let hub = tokio::task::spawn_blocking(move || setup_on(store, false))
            .await
            .unwrap();
        logout_through_two_portals(hub).await;
    }

    async fn logout_through_two_portals(hub: Hub) {
        // A second portal in the same session.
        let sp2 = TestSp::new(
            "https://dvc.quangninh.example.gov.vn/sp",
            "https://dvc.quangninh.example.gov.vn/acs",
        );
        let reg = fedhub::rp::saml::SamlRegistration {
            metadata_xml: sp2.metadata(),
            metadata_url: None,
            owner_agency_code: "000.00.00.H49".into(),
            display_name: None,
            sign: None,
            encrypt_assertion: None,
            name_id_format: None,
            release: None,
            require_activated_membership: Some(false),
        };
        hub.store
            .write(|c| fedhub::rp::saml::add(c, &reg, NOW))
            .unwrap();
        let first = hub.sign_in("_a1", CITIZEN).await;
        let sso_cookie = first.cookie("fedhub_sso").unwrap();
        let name_id = {
            let r: samael::schema::Response = first.saml_response().parse().unwrap();
            r.assertion.unwrap().subject.unwrap().name_id.unwrap().value
        };
        let hub2 = Hub {
            app: hub.app.clone(),
            store: support::sqlite(),
            sp: sp2,
            rp_id: String::new(),
            account_id: String::new(),
        };
        let second = send(
            &hub.app,
            get(
                &format!("/saml/sso?{}", hub2.authn_query("_b1", "", "")),
                &[("fedhub_sso", &sso_cookie)],
            ),
        )
        .await;
        assert_eq!(second.status, StatusCode::OK, "SSO into the second portal");

        // Portal 1 asks to log out.
        let q = signed_query(
            &hub.sp,
            "SAMLRequest",
            &logout_request(&hub.sp, "_lo1", &name_id),
            Some("back-home"),
        );
        let r = send(
            &hub.app,
            get(&format!("/saml/slo?{q}"), &[("fedhub_sso", &sso_cookie)]),
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert!(
            r.headers
                .get_all(header::SET_COOKIE)
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("fedhub_sso=;")),
            "the SSO cookie is cleared"
        );
        // The hub tells portal 2 first.
        assert!(
            r.location()
                .starts_with(&format!("{}/slo?", hub2.sp.entity_id)),
            "{}",
            r.location()
        );
        let to_sp2 = hub_message(&hub, r.location(), "SAMLRequest");
        let req: samael::schema::LogoutRequest = to_sp2.xml.parse().unwrap();
        let handle = to_sp2.relay_state.clone().unwrap();
        // Portal 2 confirms; the hub answers portal 1.
        let q = signed_query(
            &hub2.sp,
            "SAMLResponse",
            &logout_response(&hub2.sp, req.id.as_deref().unwrap()),
            Some(&handle),
        );
        let r = send(&hub.app, get(&format!("/saml/slo?{q}"), &[])).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert!(r
            .location()
            .starts_with(&format!("{}/slo?", hub.sp.entity_id)));
        let answer = hub_message(&hub, r.location(), "SAMLResponse");
        assert_eq!(answer.relay_state.as_deref(), Some("back-home"));
        let resp: samael::schema::LogoutResponse = answer.xml.parse().unwrap();
        assert_eq!(resp.in_response_to.as_deref(), Some("_lo1"));
        assert!(answer.xml.contains("status:Success") && !answer.xml.contains("PartialLogout"));

        // The old cookie no longer signs anyone in.
        let after = send(
            &hub.app,
            get(
                &format!("/saml/sso?{}", hub.authn_query("_a2", "", "")),
                &[("fedhub_sso", &sso_cookie)],
            ),
        )
        .await;
        assert_eq!(after.status, StatusCode::SEE_OTHER, "a login page again");
        assert!(hub.audit().iter().any(|e| e.action == "logout"));
    }

    #[tokio::test]
    async fn a_post_binding_logout_request_with_an_xml_signature_works() {
        let hub = setup(false);
        let sso_cookie = hub
            .sign_in("_a1", CITIZEN)
            .await
            .cookie("fedhub_sso")
            .unwrap();
        let unsigned = logout_request(&hub.sp, "_lp1", "x");
        let at = unsigned.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
        let template = fedhub_metadata::xml::sign::template(
            "_lp1",
            fedhub_metadata::keys::KeyAlg::Rsa2048,
            &hub.sp.signing.cert_der,
        );
        let signed = fedhub_metadata::xml::sign::sign(
            &format!("{}{}{}", &unsigned[..at], template, &unsigned[at..]),
            &hub.sp.signing.private_der,
        )
        .unwrap();
        let e = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let form = |xml: &str| {
            Request::post("/saml/slo")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, format!("fedhub_sso={sso_cookie}"))
                .body(Body::from(format!(
                    "SAMLRequest={}&RelayState=rs",
                    e(&STANDARD.encode(xml))
                )))
                .unwrap()
        };
        let forged = send(
            &hub.app,
            form(&signed.replace("_lp1</", "_lp2</").replace(">x<", ">y<")),
        )
        .await;
        assert_eq!(
            forged.status,
            StatusCode::BAD_REQUEST,
            "changed after signing"
        );
        let r = send(&hub.app, form(&signed)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let answer = hub_message(&hub, r.location(), "SAMLResponse");
        assert!(answer.xml.contains(r#"InResponseTo="_lp1""#));
    }

    #[tokio::test]
    async fn a_logout_request_without_the_cookie_ends_the_session_it_names() {
        // A cross-site POST does not carry a SameSite=Lax cookie: the NameID must be enough.
        let hub = setup(false);
        let first = hub.sign_in("_a1", CITIZEN).await;
        let sso_cookie = first.cookie("fedhub_sso").unwrap();
        let name_id = {
            let r: samael::schema::Response = first.saml_response().parse().unwrap();
            r.assertion.unwrap().subject.unwrap().name_id.unwrap().value
        };
        let q = signed_query(
            &hub.sp,
            "SAMLRequest",
            &logout_request(&hub.sp, "_lo9", &name_id),
            None,
        );
        let r = send(&hub.app, get(&format!("/saml/slo?{q}"), &[])).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let after = send(
            &hub.app,
            get(
                &format!("/saml/sso?{}", hub.authn_query("_a2", "", "")),
                &[("fedhub_sso", &sso_cookie)],
            ),
        )
        .await;
        assert_eq!(
            after.status,
            StatusCode::SEE_OTHER,
            "the named session is over"
        );
    }

    #[tokio::test]
    async fn unsigned_or_foreign_logout_requests_are_refused() {
        let hub = setup(false);
        let first = hub.sign_in("_a1", CITIZEN).await;
        let sso_cookie = first.cookie("fedhub_sso").unwrap();
        let q = signed_query(
            &hub.sp,
            "SAMLRequest",
            &logout_request(&hub.sp, "_lo1", "x"),
            None,
        );
        let unsigned = q.split("&SigAlg").next().unwrap();
        let r = send(
            &hub.app,
            get(
                &format!("/saml/slo?{unsigned}"),
                &[("fedhub_sso", &sso_cookie)],
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let stranger = TestSp::new(&hub.sp.entity_id, crate::sp::ACS);
        let forged = signed_query(
            &stranger,
            "SAMLRequest",
            &logout_request(&hub.sp, "_lo2", "x"),
            None,
        );
        let r = send(
            &hub.app,
            get(
                &format!("/saml/slo?{forged}"),
                &[("fedhub_sso", &sso_cookie)],
            ),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "signed with a key not in metadata"
        );
        // The session survived both.
        let again = send(
            &hub.app,
            get(
                &format!("/saml/sso?{}", hub.authn_query("_a3", "", "")),
                &[("fedhub_sso", &sso_cookie)],
            ),
        )
        .await;
        assert_eq!(again.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn sign_out_everywhere_from_the_hub() {
        let hub = setup(false);
        // A plain link (GET) only shows the button; signing out takes a POST.
        let page = send(&hub.app, get("/saml/logout", &[])).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.contains(r#"method="post""#) && page.body.contains("Đăng xuất khỏi tất cả")
        );
        let first = hub.sign_in("_a1", CITIZEN).await;
        let sso_cookie = first.cookie("fedhub_sso").unwrap();
        let r = send(
            &hub.app,
            Request::post("/saml/logout")
                .header(header::COOKIE, format!("fedhub_sso={sso_cookie}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "the portal is told first");
        let to_sp = hub_message(&hub, r.location(), "SAMLRequest");
        let req: samael::schema::LogoutRequest = to_sp.xml.parse().unwrap();
        let q = signed_query(
            &hub.sp,
            "SAMLResponse",
            &logout_response(&hub.sp, req.id.as_deref().unwrap()),
            to_sp.relay_state.as_deref(),
        );
        let done = send(&hub.app, get(&format!("/saml/slo?{q}"), &[])).await;
        assert_eq!(done.status, StatusCode::OK);
        assert!(done.body.contains("Đã đăng xuất"), "{}", done.body);
    }
}
