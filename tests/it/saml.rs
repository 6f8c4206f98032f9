//! The SAML IdP front: metadata (checked by xmlsec1, a third-party verifier) and keys.

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::support::{self, NOW};

async fn get_metadata(app: axum::Router) -> (StatusCode, String, String) {
    let res = app
        .oneshot(Request::get("/saml/metadata").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, ct, body)
}

/// Runs `xmlsec1 --verify` on `xml` with `cert_der` as the only trusted key.
fn xmlsec1_verifies(xml: &str, cert_der: &[u8], id_attr: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("doc.xml");
    let cert = dir.path().join("cert.der");
    std::fs::write(&doc, xml).unwrap();
    std::fs::write(&cert, cert_der).unwrap();
    let out = std::process::Command::new("xmlsec1")
        .args(["--verify", "--id-attr:ID", id_attr, "--pubkey-cert-der"])
        .arg(&cert)
        .arg(&doc)
        .output()
        .expect("xmlsec1 is installed by scripts/ensure-deps");
    out.status.success()
}

fn current_cert(store: &fedhub::store::Store) -> Vec<u8> {
    store
        .read(|c| fedhub::keys::signer(c, &support::vault(), fedhub::keys::Purpose::Saml))
        .unwrap()
        .cert_der
}

#[tokio::test]
async fn metadata_is_signed_and_xmlsec1_verifies_it() {
    let store = support::sqlite();
    let (state, _) = support::saml_state(&store);
    let (status, ct, xml) = get_metadata(fedhub::web::router(state)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct, "application/samlmetadata+xml");
    let md: samael::metadata::EntityDescriptor = xml.parse().unwrap();
    assert_eq!(
        md.entity_id.as_deref(),
        Some("http://127.0.0.1:8080/saml/metadata")
    );
    assert_eq!(md.valid_until.unwrap().timestamp(), NOW + 7 * 86_400);
    let idp = &md.idp_sso_descriptors.as_ref().unwrap()[0];
    assert_eq!(idp.single_sign_on_services.len(), 2);
    assert_eq!(
        idp.key_descriptors.len(),
        2,
        "current and next keys are published"
    );

    let cert = current_cert(&store);
    let entity = "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor";
    assert!(
        xmlsec1_verifies(&xml, &cert, entity),
        "xmlsec1 must accept our signature"
    );
    let tampered = xml.replace("/saml/sso", "/saml/evil");
    assert!(
        !xmlsec1_verifies(&tampered, &cert, entity),
        "and refuse a changed document"
    );
}

#[tokio::test]
async fn rotation_publishes_before_signing_and_keeps_the_old_key_for_its_grace() {
    let store = support::sqlite();
    let (state, _) = support::saml_state(&store);
    let app = fedhub::web::router(state.clone());
    let (_, _, before) = get_metadata(app.clone()).await;
    let next = store
        .read(|c| fedhub::keys::published(c, fedhub::keys::Purpose::Saml, NOW))
        .unwrap()
        .into_iter()
        .find(|k| k.state == "next")
        .unwrap();
    use base64::Engine as _;
    let next_b64 = base64::engine::general_purpose::STANDARD.encode(&next.public_der);
    assert!(
        before.contains(&next_b64),
        "the next key is published before it signs"
    );
    let old_cert = current_cert(&store);

    store
        .write(|c| {
            fedhub::keys::rotate(
                c,
                &support::vault(),
                fedhub::keys::Purpose::Saml,
                state.config.saml_key_alg(),
                86_400,
                NOW,
            )
        })
        .unwrap();
    let (_, _, after) = get_metadata(app).await;
    let entity = "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor";
    assert!(
        xmlsec1_verifies(&after, &next.public_der, entity),
        "now signed by the promoted key"
    );
    assert!(!xmlsec1_verifies(&after, &old_cert, entity));
    let old_b64 = base64::engine::general_purpose::STANDARD.encode(&old_cert);
    assert!(
        after.contains(&old_b64),
        "the previous key stays published during its grace"
    );
    assert_eq!(after.matches("<md:KeyDescriptor").count(), 3);
}

#[tokio::test]
async fn a_node_without_the_at_rest_key_cannot_sign_and_says_so() {
    let store = support::sqlite();
    let mut config = support::test_config();
    config.keys.at_rest_key = None;
    let state = fedhub::web::AppState::new(
        config,
        store.store.clone(),
        std::sync::Arc::new(fedhub::clock::ManualClock::at(NOW)),
    )
    .unwrap();
    let (status, ct, body) = get_metadata(fedhub::web::router(state)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(
        !body.contains("at-rest"),
        "internal detail stays in the log"
    );
}
