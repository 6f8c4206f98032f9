//! Registering OIDC clients (gateways): secrets shown once and stored hashed, strict
//! redirect URIs, known scopes only.

use fedhub::rp::oidc::{self, OidcRegistration};
use fedhub::Error;

use crate::support::{self, NOW};

fn reg(redirects: &[&str]) -> OidcRegistration {
    OidcRegistration {
        client_id: Some("cong-dvc-quang-ninh".into()),
        owner_agency_code: "000.00.00.H49".into(),
        redirect_uris: redirects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn store() -> support::TestStore {
    let s = support::sqlite();
    s.write(|c| {
        fedhub::directory::agencies::import_csv(c, fedhub::directory::agencies::BUILTIN_CSV, NOW)
    })
    .unwrap();
    s
}

#[test]
fn a_gateway_registers_and_only_the_hash_of_its_secret_is_kept() {
    let s = store();
    let done = s
        .write(|c| oidc::add(c, &reg(&["https://dvc.quangninh.gov.vn/callback"]), NOW))
        .unwrap();
    let secret = done.client_secret.clone().unwrap();
    assert!(secret.starts_with("fhs_") && secret.len() > 40);
    assert!(
        !done.rp.config.contains(&secret),
        "the secret is not stored"
    );
    let settings = oidc::settings(&done.rp).unwrap();
    assert!(oidc::secret_matches(&settings, &secret));
    assert!(!oidc::secret_matches(&settings, "fhs_guess"));
    assert_eq!(settings.scopes, vec!["openid", "profile"]);
    assert_eq!(settings.signing_alg, "RS256");
    assert_eq!(settings.subject_type, oidc::SubjectType::Pairwise);
    assert!(done.rp.requires_membership);
    let again = s
        .write(|c| oidc::add(c, &reg(&["https://dvc.quangninh.gov.vn/callback"]), NOW))
        .unwrap_err();
    assert!(
        matches!(&again, Error::Conflict { field, .. } if field == "client_id"),
        "{again:?}"
    );
}

#[test]
fn redirect_uris_scopes_and_owners_are_checked() {
    let s = store();
    let field = |r: OidcRegistration| match s.write(|c| oidc::add(c, &r, NOW)) {
        Err(Error::Invalid { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    for bad in [
        "http://gw.example.gov.vn/cb",
        "https://gw.example.gov.vn/cb#frag",
        "https://*.example.gov.vn/cb",
        "/relative",
        "javascript:alert(1)",
    ] {
        assert_eq!(field(reg(&[bad])), "redirect_uris", "{bad}");
    }
    assert_eq!(field(reg(&[])), "redirect_uris");
    assert_eq!(
        field(OidcRegistration {
            scopes: Some(vec!["openid".into(), "admin".into()]),
            ..reg(&["https://gw.example/cb"])
        }),
        "scopes"
    );
    assert_eq!(
        field(OidcRegistration {
            scopes: Some(vec!["profile".into()]),
            ..reg(&["https://gw.example/cb"])
        }),
        "scopes"
    );
    assert_eq!(
        field(OidcRegistration {
            signing_alg: Some("none".into()),
            ..reg(&["https://gw.example/cb"])
        }),
        "signing_alg"
    );
    assert_eq!(
        field(OidcRegistration {
            signing_alg: Some("HS256".into()),
            ..reg(&["https://gw.example/cb"])
        }),
        "signing_alg"
    );
    assert_eq!(
        field(OidcRegistration {
            owner_agency_code: "000.00.00.H98".into(),
            ..reg(&["https://gw.example/cb"])
        }),
        "owner_agency_code"
    );
    assert_eq!(
        field(OidcRegistration {
            client_id: Some("bad id!".into()),
            ..reg(&["https://gw.example/cb"])
        }),
        "client_id"
    );
    // Loopback http is fine (RFC 8252 native apps, local development).
    s.write(|c| oidc::add(c, &reg(&["http://127.0.0.1:8765/callback"]), NOW))
        .unwrap();
    assert_eq!(
        s.read(fedhub::rp::list).unwrap().len(),
        1,
        "refused registrations store nothing"
    );
}

#[tokio::test]
async fn the_admin_api_returns_the_secret_once() {
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let s = store();
    let (state, _) = support::app_state(&s);
    let token = s
        .write(|c| fedhub::tokens::create_api_token(c, "ops", NOW))
        .unwrap();
    let app = fedhub::web::router(state);
    let body = r#"{"owner_agency_code":"000.00.00.H49","redirect_uris":["https://gw.example.gov.vn/cb"],"scopes":["openid","email"]}"#;
    let res = app
        .oneshot(
            Request::post("/admin/api/v1/relying-parties/oidc")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), http::StatusCode::CREATED);
    let json: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(json["client_secret"].as_str().unwrap().starts_with("fhs_"));
    assert!(json["entity_id"].as_str().unwrap().starts_with("client-"));
    let log = s.read(|c| fedhub::audit::tail(c, 10)).unwrap();
    assert!(log
        .iter()
        .any(|e| e.action == "rp.add_oidc" && e.outcome == "success"));
    assert!(
        log.iter()
            .all(|e| !e.detail.clone().unwrap_or_default().contains("fhs_")),
        "the secret never reaches the audit log"
    );
}
