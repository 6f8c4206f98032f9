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
pub fn xmlsec1_verifies(xml: &str, cert_der: &[u8], id_attr: &str) -> bool {
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

mod registration {
    use clap::Parser;
    use fedhub::cli::{run, Cli, Failure};
    use fedhub::Error;

    use crate::sp::{default_sp, TestSp};

    struct Hub {
        dir: tempfile::TempDir,
    }

    impl Hub {
        fn new() -> Hub {
            let hub = Hub {
                dir: tempfile::tempdir().unwrap(),
            };
            hub.run(&["agency", "import-builtin"]).unwrap();
            hub
        }
        fn env(&self) -> Vec<(String, String)> {
            vec![(
                "FEDHUB_DATABASE_URL".into(),
                format!("sqlite://{}", self.dir.path().join("hub.db").display()),
            )]
        }
        fn run(&self, args: &[&str]) -> Result<(), Failure> {
            let mut argv = vec!["fedhub"];
            argv.extend_from_slice(args);
            run(Cli::try_parse_from(argv).unwrap(), &self.env())
        }
        fn file(&self, name: &str, text: &str) -> String {
            let p = self.dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        }
        fn store(&self) -> fedhub::store::Store {
            let url = format!("sqlite://{}", self.dir.path().join("hub.db").display());
            fedhub::store::Store::connect(&url, &Default::default()).unwrap()
        }
    }

    fn invalid(r: Result<(), Failure>) -> (String, String) {
        match r {
            Err(Failure::App(Error::Invalid { field, rule })) => (field, rule),
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    #[test]
    fn a_portal_registers_from_its_metadata_file_with_safe_defaults() {
        let hub = Hub::new();
        let sp = default_sp();
        let md = hub.file("sp.xml", &sp.metadata());
        hub.run(&[
            "rp",
            "add-saml",
            "--metadata",
            &md,
            "--owner",
            "000.00.00.G12",
            "--name",
            "Cổng DVC Bộ Tài chính",
        ])
        .unwrap();
        let rp = hub
            .store()
            .read(|c| fedhub::rp::by_entity_id(c, &sp.entity_id))
            .unwrap()
            .unwrap();
        assert_eq!(rp.display_name, "Cổng DVC Bộ Tài chính");
        assert!(rp.requires_membership, "only activated members by default");
        let s = fedhub::rp::saml::settings(&rp).unwrap();
        assert_eq!(s.sign, fedhub::rp::saml::SignWhat::Both);
        assert_eq!(s.name_id_format, fedhub::rp::saml::NameIdFormat::Persistent);
        assert!(!s.encrypt_assertion, "no encryption key in this metadata");
        assert_eq!(s.release.len(), fedhub::rp::saml::ATTRIBUTES.len());
        let (field, _) = match hub.run(&[
            "rp",
            "add-saml",
            "--metadata",
            &md,
            "--owner",
            "000.00.00.G12",
        ]) {
            Err(Failure::App(Error::Conflict { field, rule })) => (field, rule),
            other => panic!("{other:?}"),
        };
        assert_eq!(field, "entity_id");
        hub.run(&["rp", "show", &sp.entity_id]).unwrap();
        hub.run(&["rp", "list"]).unwrap();
    }

    #[test]
    fn bad_registrations_are_refused_and_nothing_is_stored() {
        let hub = Hub::new();
        let sp = default_sp();
        let md = hub.file("sp.xml", &sp.metadata());
        assert_eq!(
            invalid(hub.run(&[
                "rp",
                "add-saml",
                "--metadata",
                &md,
                "--owner",
                "000.00.00.G99"
            ]))
            .0,
            "owner_agency_code"
        );
        let no_key = sp.metadata().replace(
            r#"<md:KeyDescriptor use="signing">"#,
            r#"<md:KeyDescriptor use="encryption">"#,
        );
        let no_key = hub.file("nokey.xml", &no_key);
        let (field, rule) = invalid(hub.run(&[
            "rp",
            "add-saml",
            "--metadata",
            &no_key,
            "--owner",
            "000.00.00.G12",
        ]));
        assert_eq!(field, "metadata");
        assert!(rule.contains("signing key"), "{rule}");
        let enc = hub.file("enc.xml", &sp.metadata());
        assert_eq!(
            invalid(hub.run(&[
                "rp",
                "add-saml",
                "--metadata",
                &enc,
                "--owner",
                "000.00.00.G12",
                "--encrypt",
                "true"
            ]))
            .0,
            "encrypt_assertion"
        );
        assert_eq!(
            invalid(hub.run(&[
                "rp",
                "add-saml",
                "--metadata",
                &enc,
                "--owner",
                "000.00.00.G12",
                "--release",
                "national_id,password"
            ]))
            .0,
            "release"
        );
        assert_eq!(
            invalid(hub.run(&[
                "rp",
                "add-saml",
                "--metadata",
                "http://10.0.0.1/md.xml",
                "--owner",
                "000.00.00.G12"
            ]))
            .0,
            "metadata"
        );
        let doctype = hub.file("dt.xml", &format!("<!DOCTYPE x>{}", sp.metadata()));
        assert_eq!(
            invalid(hub.run(&[
                "rp",
                "add-saml",
                "--metadata",
                &doctype,
                "--owner",
                "000.00.00.G12"
            ]))
            .0,
            "metadata"
        );
        assert!(hub.store().read(fedhub::rp::list).unwrap().is_empty());
        let log = hub.store().read(|c| fedhub::audit::tail(c, 50)).unwrap();
        assert!(
            log.iter()
                .filter(|e| e.action == "rp.add_saml" && e.outcome == "failure")
                .count()
                >= 5
        );
    }

    #[test]
    fn metadata_can_be_fetched_from_a_url() {
        let hub = Hub::new();
        let sp = TestSp::new(
            "https://dvc.quangninh.example.gov.vn/sp",
            "https://dvc.quangninh.example.gov.vn/acs",
        );
        let xml = sp.metadata();
        // The SP's metadata server, on loopback, in its own runtime.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let app = axum::Router::new()
                    .route(
                        "/metadata.xml",
                        axum::routing::get(move || async move { xml }),
                    )
                    .route(
                        "/moved",
                        axum::routing::get(|| async {
                            axum::response::Redirect::temporary("/metadata.xml")
                        }),
                    );
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap()).unwrap();
                axum::serve(l, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        let moved = format!("http://{addr}/moved");
        let (field, rule) = invalid(hub.run(&[
            "rp",
            "add-saml",
            "--metadata",
            &moved,
            "--owner",
            "000.00.00.H49",
        ]));
        assert_eq!(field, "metadata");
        assert!(rule.contains("307"), "redirects are not followed: {rule}");
        let url = format!("http://{addr}/metadata.xml");
        hub.run(&[
            "rp",
            "add-saml",
            "--metadata",
            &url,
            "--owner",
            "000.00.00.H49",
        ])
        .unwrap();
        let rp = hub
            .store()
            .read(|c| fedhub::rp::by_entity_id(c, &sp.entity_id))
            .unwrap()
            .unwrap();
        assert_eq!(
            fedhub::rp::saml::settings(&rp)
                .unwrap()
                .metadata_url
                .as_deref(),
            Some(url.as_str())
        );
    }
}

mod responses {
    use fedhub::keys::Signer;
    use fedhub::rp::saml::SignWhat;
    use fedhub::saml::response::{self, AssertionData};
    use fedhub_metadata::keys::{generate, KeyAlg};

    use super::xmlsec1_verifies;
    use crate::support::NOW;

    pub fn signer(alg: KeyAlg) -> Signer {
        let k = generate(alg, "idp", NOW - 10, 30).unwrap();
        Signer {
            kid: k.kid,
            alg,
            cert_der: k.cert_der,
            private_der: k.private_der,
        }
    }

    fn xs(s: &Signer) -> fedhub_metadata::xml::dsig::XmlSigner {
        s.xml_signer().unwrap()
    }

    pub fn data() -> AssertionData {
        AssertionData {
            issuer: "http://127.0.0.1:8080/saml/metadata".into(),
            audience: crate::sp::ENTITY.into(),
            acs_url: crate::sp::ACS.into(),
            in_response_to: Some("_req-1".into()),
            name_id: "pairwise-abc".into(),
            name_id_format: fedhub::saml::NAMEID_PERSISTENT.into(),
            session_index: "_s1".into(),
            authn_instant: NOW - 5,
            authn_context_class: "urn:oasis:names:tc:SAML:2.0:ac:classes:X509".into(),
            attributes: vec![
                ("national_id".into(), vec!["001204012345".into()]),
                ("name".into(), vec!["Nguyễn Văn An & <Co>".into()]),
                (
                    "roles".into(),
                    vec!["Admin của Bộ".into(), "Nhóm admin đơn vị".into()],
                ),
                ("email".into(), vec![]),
            ],
            now: NOW,
            ttl: 300,
        }
    }

    fn assertion_alone(response: &str) -> String {
        let start = response.find("<saml:Assertion").unwrap();
        let end = response.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
        response[start..end].to_string()
    }

    #[test]
    fn a_success_response_is_complete_and_both_signatures_verify_in_xmlsec1() {
        for alg in [KeyAlg::Rsa2048, KeyAlg::EcP256] {
            let s = signer(alg);
            let xml = response::success(&data(), SignWhat::Both, &xs(&s), None).unwrap();
            let parsed: samael::schema::Response = xml.parse().unwrap();
            assert_eq!(parsed.in_response_to.as_deref(), Some("_req-1"));
            assert_eq!(parsed.destination.as_deref(), Some(crate::sp::ACS));
            let a = parsed.assertion.as_ref().unwrap();
            let subject = a.subject.as_ref().unwrap();
            assert_eq!(subject.name_id.as_ref().unwrap().value, "pairwise-abc");
            let scd = subject.subject_confirmations.as_ref().unwrap()[0]
                .subject_confirmation_data
                .as_ref()
                .unwrap();
            assert_eq!(scd.recipient.as_deref(), Some(crate::sp::ACS));
            assert_eq!(scd.in_response_to.as_deref(), Some("_req-1"));
            assert_eq!(scd.not_on_or_after.unwrap().timestamp(), NOW + 300);
            let audience = &a
                .conditions
                .as_ref()
                .unwrap()
                .audience_restrictions
                .as_ref()
                .unwrap()[0]
                .audience[0];
            assert_eq!(audience, crate::sp::ENTITY);
            assert!(xml.contains("SessionIndex=\"_s1\"") && xml.contains("classes:X509"));
            assert!(
                xml.contains("Nguyễn Văn An &amp; &lt;Co&gt;"),
                "values are escaped"
            );
            assert!(
                xml.contains("FriendlyName=\"roles\"")
                    && xml.matches("<saml:AttributeValue>").count() == 4
            );
            assert!(
                !xml.contains("FriendlyName=\"mail\""),
                "empty attributes are left out"
            );

            assert!(
                xmlsec1_verifies(
                    &xml,
                    &s.cert_der,
                    "urn:oasis:names:tc:SAML:2.0:protocol:Response"
                ),
                "{alg:?} response signature"
            );
            let alone = assertion_alone(&xml);
            assert!(
                xmlsec1_verifies(
                    &alone,
                    &s.cert_der,
                    "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
                ),
                "{alg:?} assertion signature"
            );
            let forged = alone.replace("001204012345", "001204099999");
            assert!(!xmlsec1_verifies(
                &forged,
                &s.cert_der,
                "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
            ));
        }
    }

    #[test]
    fn canonical_writing_survives_awkward_values() {
        // Values whose escaping differs between plain XML and canonical XML.
        let s = signer(KeyAlg::Rsa2048);
        let mut d = data();
        d.acs_url = "https://dvc.example.gov.vn/acs?a=1&b='2'&c=\"3\">".into();
        d.in_response_to = Some("_id'with\"quotes".into());
        d.attributes = vec![(
            "name".into(),
            vec!["O'Neil > Tab\there\r\nnew line & \"quoted\"".into()],
        )];
        let xml = response::success(&d, SignWhat::Both, &xs(&s), None).unwrap();
        assert!(
            xmlsec1_verifies(
                &xml,
                &s.cert_der,
                "urn:oasis:names:tc:SAML:2.0:protocol:Response"
            ),
            "{xml}"
        );
        let start = xml.find("<saml:Assertion").unwrap();
        let end = xml.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
        assert!(xmlsec1_verifies(
            &xml[start..end],
            &s.cert_der,
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
        ));
        // samael (xmlsec through libxml) verifies both signatures with the published key too.
        let cert = samael::crypto::CertificateDer::from(s.cert_der.clone());
        use samael::crypto::CryptoProvider;
        samael::crypto::XmlSec::reduce_xml_to_signed(
            &xml,
            &[cert],
            samael::crypto::ReduceMode::ValidateAndMarkNoAncestors,
        )
        .unwrap();
    }

    #[test]
    fn signing_follows_the_sp_setting() {
        let s = signer(KeyAlg::Rsa2048);
        let only_assertion =
            response::success(&data(), SignWhat::Assertion, &xs(&s), None).unwrap();
        assert_eq!(only_assertion.matches("<ds:Signature ").count(), 1);
        assert!(
            only_assertion.find("<ds:Signature ").unwrap()
                > only_assertion.find("<saml:Assertion").unwrap()
        );
        let only_response = response::success(&data(), SignWhat::Response, &xs(&s), None).unwrap();
        assert_eq!(only_response.matches("<ds:Signature ").count(), 1);
        assert!(
            only_response.find("<ds:Signature ").unwrap()
                < only_response.find("<saml:Assertion").unwrap()
        );
    }

    #[test]
    fn an_error_response_carries_the_status_and_is_signed() {
        let s = signer(KeyAlg::Rsa2048);
        let xml = response::failure(
            "http://127.0.0.1:8080/saml/metadata",
            crate::sp::ACS,
            Some("_req-2"),
            response::STATUS_RESPONDER,
            Some(response::STATUS_NO_PASSIVE),
            Some("no session"),
            NOW,
            &xs(&s),
        )
        .unwrap();
        let parsed: samael::schema::Response = xml.parse().unwrap();
        let status = parsed.status.unwrap();
        assert_eq!(
            status.status_code.value.as_deref(),
            Some(response::STATUS_RESPONDER)
        );
        assert!(xml.contains(response::STATUS_NO_PASSIVE));
        assert!(parsed.assertion.is_none());
        assert!(xmlsec1_verifies(
            &xml,
            &s.cert_der,
            "urn:oasis:names:tc:SAML:2.0:protocol:Response"
        ));
    }
}

mod refresh {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use crate::sp::TestSp;
    use crate::support::{self, NOW};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metadata_by_url_is_refreshed_and_a_bad_copy_never_replaces_a_good_one() {
        let sp = TestSp::new(
            "https://dvc.example.gov.vn/sp",
            "https://dvc.example.gov.vn/acs",
        );
        let v1 = sp.metadata().replace(
            "<md:EntityDescriptor ",
            r#"<md:EntityDescriptor cacheDuration="PT1H" "#,
        );
        let v2 = v1.replace(
            "https://dvc.example.gov.vn/acs",
            "https://dvc.example.gov.vn/acs-new",
        );
        let other = v2.replace(
            "https://dvc.example.gov.vn/sp",
            "https://impostor.example/sp",
        );
        let mode = Arc::new(AtomicUsize::new(0));
        let served = mode.clone();
        let (v2c, otherc) = (v2.clone(), other.clone());
        let app = axum::Router::new().route(
            "/md.xml",
            axum::routing::get(move || {
                let (v2, other, mode) =
                    (v2c.clone(), otherc.clone(), served.load(Ordering::SeqCst));
                async move {
                    match mode {
                        0 => (http::StatusCode::OK, v2),
                        1 => (http::StatusCode::INTERNAL_SERVER_ERROR, String::new()),
                        2 => (http::StatusCode::OK, other),
                        _ => (http::StatusCode::OK, format!("<!DOCTYPE x>{v2}")),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/md.xml", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let store = support::sqlite();
        store
            .write(|c| {
                fedhub::directory::agencies::import_csv(
                    c,
                    fedhub::directory::agencies::BUILTIN_CSV,
                    NOW,
                )
            })
            .unwrap();
        let reg = fedhub::rp::saml::SamlRegistration {
            metadata_xml: v1.clone(),
            metadata_url: Some(url),
            owner_agency_code: "000.00.00.G12".into(),
            display_name: None,
            sign: None,
            encrypt_assertion: None,
            name_id_format: None,
            release: None,
            require_activated_membership: None,
        };
        let rp = store
            .write(|c| fedhub::rp::saml::add(c, &reg, NOW))
            .unwrap();
        let acs = |store: &fedhub::store::Store| {
            let rp = store.read(|c| fedhub::rp::get(c, &rp.id)).unwrap();
            fedhub::rp::saml::settings(&rp)
                .unwrap()
                .metadata()
                .unwrap()
                .acs[0]
                .location
                .clone()
        };

        assert!(
            fedhub::rp::refresh::run(&store, NOW + 60, false)
                .await
                .unwrap()
                .is_empty(),
            "not due before cacheDuration"
        );
        let o = fedhub::rp::refresh::run(&store, NOW + 3601, false)
            .await
            .unwrap();
        assert_eq!(o[0].result, "updated");
        assert_eq!(acs(&store), "https://dvc.example.gov.vn/acs-new");

        for (m, why) in [(1, "500"), (2, "impostor"), (3, "DOCTYPE")] {
            mode.store(m, Ordering::SeqCst);
            let o = fedhub::rp::refresh::run(&store, NOW + 7300, true)
                .await
                .unwrap();
            assert_eq!(o[0].result, "kept", "{why}");
            assert_eq!(
                acs(&store),
                "https://dvc.example.gov.vn/acs-new",
                "the last good copy stays after {why}"
            );
        }
        let log = store.read(|c| fedhub::audit::tail(c, 20)).unwrap();
        assert_eq!(
            log.iter()
                .filter(|e| e.action == "rp.metadata_refresh" && e.outcome == "failure")
                .count(),
            3
        );
        assert!(log
            .iter()
            .any(|e| e.action == "rp.metadata_refresh" && e.outcome == "success"));
    }

    #[test]
    fn cache_durations_parse() {
        use fedhub::rp::saml::parse_duration;
        assert_eq!(parse_duration("PT6H"), Some(21_600));
        assert_eq!(parse_duration("P1DT2H30M15S"), Some(95_415));
        assert_eq!(parse_duration("PT0.5S"), Some(0));
        assert_eq!(parse_duration("P1M"), None, "months have no fixed length");
        assert_eq!(parse_duration("6h"), None);
    }
}

mod federation {
    use fedhub_metadata::keys::{generate, KeyAlg};
    use fedhub_metadata::xml::sign;
    use samael::crypto::CertificateDer;

    use crate::sp::default_sp;
    use crate::support::{self, NOW};

    fn signed_by(key: &fedhub_metadata::keys::GeneratedKey, metadata: &str) -> String {
        let with_id = metadata.replacen(
            "<md:EntityDescriptor ",
            r#"<md:EntityDescriptor ID="_md1" "#,
            1,
        );
        let at = with_id.find("<md:SPSSODescriptor").unwrap();
        let template = sign::template("_md1", KeyAlg::Rsa2048, &key.cert_der);
        let doc = format!("{}{}{}", &with_id[..at], template, &with_id[at..]);
        sign::sign(&doc, &key.private_der).unwrap()
    }

    fn registration(xml: String) -> fedhub::rp::saml::SamlRegistration {
        fedhub::rp::saml::SamlRegistration {
            metadata_xml: xml,
            metadata_url: None,
            owner_agency_code: "000.00.00.G12".into(),
            display_name: None,
            sign: None,
            encrypt_assertion: None,
            name_id_format: None,
            release: None,
            require_activated_membership: None,
        }
    }

    #[test]
    fn only_metadata_signed_by_the_federation_is_accepted() {
        let store = support::sqlite();
        store
            .write(|c| {
                fedhub::directory::agencies::import_csv(
                    c,
                    fedhub::directory::agencies::BUILTIN_CSV,
                    NOW,
                )
            })
            .unwrap();
        let federation = generate(KeyAlg::Rsa2048, "federation operator", NOW - 10, 30).unwrap();
        let fed = vec![CertificateDer::from(federation.cert_der.clone())];
        let sp = default_sp();
        let add = |xml: String| {
            store.write(|c| fedhub::rp::saml::add_under(c, &registration(xml), &fed, NOW))
        };

        let err = add(sp.metadata()).unwrap_err();
        assert!(
            err.to_string().contains("must be signed"),
            "unsigned: {err}"
        );
        let stranger = generate(KeyAlg::Rsa2048, "someone else", NOW - 10, 30).unwrap();
        let err = add(signed_by(&stranger, &sp.metadata())).unwrap_err();
        assert!(err.to_string().contains("signature"), "wrong signer: {err}");
        let tampered = signed_by(&federation, &sp.metadata())
            .replace(crate::sp::ACS, "https://attacker.example/acs");
        assert!(add(tampered).is_err(), "changed after signing");

        let rp = add(signed_by(&federation, &sp.metadata())).unwrap();
        let stored = fedhub::rp::saml::settings(&rp).unwrap();
        assert_eq!(stored.metadata().unwrap().acs[0].location, crate::sp::ACS);
    }

    #[test]
    fn an_unreadable_federation_certificate_stops_start_up() {
        let mut c = support::test_config();
        c.saml.federation_certificate = Some("/nonexistent/federation.pem".into());
        assert_eq!(c.validate().unwrap_err().key, "saml.federation_certificate");
    }
}

mod jwks {
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use crate::support::{self, NOW};

    async fn fetch(app: axum::Router) -> serde_json::Value {
        let res = app
            .oneshot(Request::get("/oidc/jwks").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), http::StatusCode::OK);
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    #[tokio::test]
    async fn the_jwks_publishes_current_next_and_previous_oidc_keys() {
        use fedhub::keys::{self, Purpose};
        let store = support::sqlite();
        let (state, _) = support::app_state(&store);
        let alg = fedhub_metadata::keys::KeyAlg::Rsa2048;
        store
            .write(|c| keys::ensure(c, &support::vault(), Purpose::Oidc, alg, NOW))
            .unwrap();
        let app = fedhub::web::router(state);
        let set = fetch(app.clone()).await;
        let keys = set["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "current and next");
        // RSA keys carry no alg: one key serves RS256 and PS256.
        assert!(keys.iter().all(|k| k["kty"] == "RSA"
            && k.get("alg").is_none()
            && k["use"] == "sig"
            && k["n"].is_string()));
        assert!(
            keys.iter()
                .all(|k| k.get("d").is_none() && k.get("p").is_none()),
            "no private parts"
        );
        let current = store
            .read(|c| keys::signer(c, &support::vault(), Purpose::Oidc))
            .unwrap()
            .kid;
        store
            .write(|c| keys::rotate(c, &support::vault(), Purpose::Oidc, alg, 86_400, NOW))
            .unwrap();
        let after = fetch(app).await;
        let kids: Vec<&str> = after["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids.len(), 3);
        assert!(
            kids.contains(&current.as_str()),
            "the previous key stays published during its grace"
        );
    }
}
