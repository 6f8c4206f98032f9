//! A federation's signed metadata aggregate imported as SAML connectors: verified with the
//! operator's certificate only, all or nothing, kept up to date by importing again; then the
//! sign-in page and the hint lookups with many identity providers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fedhub::upstream::aggregate::{connector_id_for, import, ImportReport};
use fedhub::upstream::lookup;
use fedhub_metadata::keys::{generate, GeneratedKey, KeyAlg};
use fedhub_metadata::xml::aggregate::verify;
use fedhub_metadata::xml::aggregate_writer::{
    entity_xml, signed_aggregate, unsigned_aggregate, EntitySpec,
};
use fedhub_metadata::xml::dsig::XmlSigner;
use http::{header, Request, StatusCode};
use samael::crypto::CertificateDer;

use crate::oidc_support::*;
use crate::sso::{get as get_req, send};
use crate::support::{TestStore, NOW};

const NAMES: &[&str] = &[
    "Bách khoa Hà Nội",
    "Kinh tế Quốc dân",
    "Y Hà Nội",
    "Sư phạm Huế",
    "Cần Thơ",
    "Đà Nẵng",
    "Ngoại thương",
    "Luật TP. Hồ Chí Minh",
];

/// A federation operator with its signing key, and a key its IdPs share (one is enough here).
struct Federation {
    key: GeneratedKey,
    idp_key: GeneratedKey,
}

impl Federation {
    fn new() -> Self {
        Federation {
            key: generate(KeyAlg::Rsa2048, "federation", NOW - 60, 30).unwrap(),
            idp_key: generate(KeyAlg::EcP256, "idp", NOW - 60, 30).unwrap(),
        }
    }

    fn trusted(&self) -> Vec<CertificateDer> {
        vec![CertificateDer::from(self.key.cert_der.clone())]
    }

    fn signer(&self) -> XmlSigner {
        XmlSigner::new(KeyAlg::Rsa2048, &self.key.private_der, &self.key.cert_der).unwrap()
    }

    /// Entity `i`: an IdP unless `i` is a multiple of 6.
    fn spec(&self, i: usize) -> EntitySpec {
        EntitySpec {
            entity_id: entity(i),
            display_name: format!("Trường ĐH {} ({i})", NAMES[i % NAMES.len()]),
            scope: format!("truong{i}.edu.vn"),
            idp: !i.is_multiple_of(6),
            endpoint: format!("https://idp.truong{i}.edu.vn/sso"),
            cert_der: self.idp_key.cert_der.clone(),
        }
    }

    fn entities(&self, ids: impl IntoIterator<Item = usize>) -> Vec<String> {
        ids.into_iter().map(|i| entity_xml(&self.spec(i))).collect()
    }

    fn signed(&self, entities: &[String], valid_until: i64) -> String {
        signed_aggregate(&self.signer(), "agg-1", "urn:vn:edu", valid_until, entities).unwrap()
    }
}

fn entity(i: usize) -> String {
    format!("https://idp.truong{i}.edu.vn/idp/shibboleth")
}

fn idps_in(ids: std::ops::Range<usize>) -> usize {
    ids.filter(|i| !i.is_multiple_of(6)).count()
}

/// Verifies and imports as `fedhub connector import-saml-aggregate` does.
fn import_xml(
    store: &TestStore,
    fed: &Federation,
    xml: &str,
    allow: &[String],
) -> Result<ImportReport, String> {
    let agg = verify(xml.as_bytes(), &fed.trusted(), NOW).map_err(|e| e.to_string())?;
    store
        .write(|c| import(c, "vn-edu", agg, allow, NOW))
        .map_err(|e| e.to_string())
}

fn connector_count(store: &TestStore) -> usize {
    store.read(fedhub::upstream::list).unwrap().len()
}

fn a_signed_aggregate_registers_its_idps_and_only_those(store: &TestStore) {
    let fed = Federation::new();
    let mut entities = fed.entities(0..30);
    // An IdP whose SSO endpoint is plain http: left out, the others still imported.
    let mut bad = fed.spec(31);
    bad.endpoint = "http://idp.truong31.edu.vn/sso".into();
    entities.push(entity_xml(&bad));
    let xml = fed.signed(&entities, NOW + 86_400);
    let before = connector_count(store);
    let report = import_xml(store, &fed, &xml, &[]).unwrap();
    assert_eq!(report.added.len(), idps_in(0..30));
    assert_eq!(
        report.other_entities, 5,
        "the service providers are not connectors"
    );
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].entity_id, entity(31));
    assert!(
        report.skipped[0].reason.contains("https"),
        "{:?}",
        report.skipped
    );
    assert_eq!(connector_count(store), before + idps_in(0..30));

    let c = store
        .read(|c| fedhub::upstream::get(c, &connector_id_for(&entity(14))))
        .unwrap();
    assert_eq!(c.display_name, "Trường ĐH Ngoại thương (14)");
    assert_eq!(c.kind, "saml");
    // The hint is answered from the index, for an RP that offers every connector.
    let rp = "any-rp";
    let hinted = store
        .read(|c| lookup::by_hint(c, rp, &entity(14)))
        .unwrap()
        .unwrap();
    assert_eq!(hinted.id, c.id);
    assert!(hinted.answers_to(&entity(14)));
    assert!(store
        .read(|c| lookup::by_hint(c, rp, &entity(6)))
        .unwrap()
        .is_none());
    // The same IdP registered alone later is refused, as a duplicate.
    let alone = fedhub::upstream::SamlRegistration {
        id: "alone".into(),
        display_name: "X".into(),
        metadata_xml: store
            .read(|c| fedhub::upstream::get(c, &connector_id_for(&entity(8))))
            .map(|c| {
                fedhub::upstream::saml::SamlSettings::parse(&c.config)
                    .unwrap()
                    .metadata_xml
            })
            .unwrap(),
        name_id_format: None,
        attribute_map: None,
    };
    let err = store
        .write(|c| fedhub::upstream::add_saml(c, &alone, NOW))
        .unwrap_err();
    assert!(err.to_string().contains("already registered"), "{err}");
}

fn refused_aggregates_write_nothing(store: &TestStore) {
    let fed = Federation::new();
    let entities = fed.entities(0..30);
    let good = fed.signed(&entities, NOW + 86_400);
    let before = connector_count(store);
    let refused = |xml: &str| {
        let err = import_xml(store, &fed, xml, &[]).unwrap_err();
        assert_eq!(connector_count(store), before, "{err}");
        err
    };

    let (unsigned, _) = unsigned_aggregate("agg-1", "urn:vn:edu", NOW + 86_400, &entities);
    assert!(refused(&unsigned).contains("must be signed"));

    let other = generate(KeyAlg::Rsa2048, "not-the-federation", NOW - 60, 30).unwrap();
    let by_other = signed_aggregate(
        &XmlSigner::new(KeyAlg::Rsa2048, &other.private_der, &other.cert_der).unwrap(),
        "agg-1",
        "urn:vn:edu",
        NOW + 86_400,
        &entities,
    )
    .unwrap();
    assert!(refused(&by_other).contains("does not verify"));

    // One entity's certificate swapped after signing: an attacker's key for that IdP.
    let attacker = generate(KeyAlg::EcP256, "attacker", NOW - 60, 30).unwrap();
    let swapped = good.replacen(
        &STANDARD.encode(&fed.idp_key.cert_der),
        &STANDARD.encode(&attacker.cert_der),
        1,
    );
    assert_ne!(swapped, good);
    assert!(refused(&swapped).contains("does not verify"));

    let expired = fed.signed(&entities, NOW - 1);
    assert!(refused(&expired).contains("expired"));

    let doctype = format!("<!DOCTYPE md [<!ENTITY x \"y\">]>{good}");
    assert!(refused(&doctype).contains("DOCTYPE"));

    // A wrapped signature: one genuinely signed IdP inside a root nobody signed.
    let inner = entities[1].replacen(
        "<md:EntityDescriptor ",
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" ID=\"e1\" ",
        1,
    );
    let at = inner.find('>').unwrap() + 1;
    let signed_inner = fed
        .signer()
        .sign_enveloped(inner.trim_end(), "e1", at)
        .unwrap();
    let mut wrapped_entities = entities.clone();
    wrapped_entities[1] = signed_inner.clone();
    let (wrapped, _) = unsigned_aggregate("agg-1", "urn:vn:edu", NOW + 86_400, &wrapped_entities);
    assert!(refused(&wrapped).contains("signature"));
    // The same signature moved up to the root, still pointing at the inner entity.
    let sig_start = signed_inner.find("<ds:Signature").unwrap();
    let sig_end = signed_inner.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let signature = &signed_inner[sig_start..sig_end];
    let mut moved_entities = entities.clone();
    moved_entities[1] = signed_inner[..sig_start].to_string() + &signed_inner[sig_end..];
    let (unsigned_root, root_end) =
        unsigned_aggregate("agg-1", "urn:vn:edu", NOW + 86_400, &moved_entities);
    let moved = format!(
        "{}{signature}{}",
        &unsigned_root[..root_end],
        &unsigned_root[root_end..]
    );
    assert!(refused(&moved).contains("reference its root"));
    // The genuine one still imports.
    assert!(import_xml(store, &fed, &good, &[]).is_ok());
}

fn importing_again_updates_and_disables(store: &TestStore) {
    let fed = Federation::new();
    let until = NOW + 86_400;
    let first = import_xml(store, &fed, &fed.signed(&fed.entities(0..30), until), &[]).unwrap();
    assert_eq!(first.added.len(), idps_in(0..30));

    // IdP 1 leaves, IdP 2 is renamed, IdP 31 joins.
    let next: Vec<String> = (0..32)
        .filter(|i| *i != 1 && *i != 30)
        .map(|i| {
            let mut s = fed.spec(i);
            if i == 2 {
                s.display_name = "Trường ĐH Y Dược (2)".into();
            }
            entity_xml(&s)
        })
        .collect();
    let second = import_xml(store, &fed, &fed.signed(&next, until), &[]).unwrap();
    assert_eq!(second.added, [connector_id_for(&entity(31))]);
    assert_eq!(second.updated, [connector_id_for(&entity(2))]);
    assert_eq!(second.disabled, [connector_id_for(&entity(1))]);
    assert_eq!(second.unchanged, idps_in(0..30) - 2);
    let gone = store
        .read(|c| fedhub::upstream::get(c, &connector_id_for(&entity(1))))
        .unwrap();
    assert!(!gone.enabled);
    assert!(store
        .read(|c| lookup::by_hint(c, "any-rp", &entity(1)))
        .unwrap()
        .is_none());
    let renamed = store
        .read(|c| fedhub::upstream::get(c, &connector_id_for(&entity(2))))
        .unwrap();
    assert_eq!(renamed.display_name, "Trường ĐH Y Dược (2)");

    // Back in the aggregate: offered again.
    let third = import_xml(store, &fed, &fed.signed(&fed.entities(0..30), until), &[]).unwrap();
    assert!(third.updated.contains(&connector_id_for(&entity(1))));
    assert!(third.disabled.contains(&connector_id_for(&entity(31))));
    assert!(store
        .read(|c| lookup::by_hint(c, "any-rp", &entity(1)))
        .unwrap()
        .is_some());
}

on_both_engines!(
    a_signed_aggregate_registers_its_idps_and_only_those,
    refused_aggregates_write_nothing,
    importing_again_updates_and_disables,
    an_idp_an_operator_disabled_stays_disabled_across_imports,
    after_the_upgrade_idps_disabled_before_come_back_as_they_did,
);

/// A gateway whose relying party lists the demo connector and, through the import, the
/// federation's IdPs `ids`.
fn hub_with_federation(ids: std::ops::Range<usize>) -> OidcHub {
    let hub = oidc_hub(default_registration());
    let rp = hub.rp_id.clone();
    hub.store
        .write(|c| fedhub::upstream::allow_for_rp(c, &rp, &["dev".to_string()]))
        .unwrap();
    let fed = Federation::new();
    let xml = fed.signed(&fed.entities(ids), NOW + 86_400);
    let report = import_xml(&hub.store, &fed, &xml, std::slice::from_ref(&rp)).unwrap();
    assert_eq!(report.allowed, [(rp, report.added.len())]);
    hub
}

/// A page's text with the slashes minijinja escapes put back.
fn unescaped(body: &str) -> String {
    body.replace("&#x2f;", "/")
}

/// The gateway's request, up to the sign-in page: (its path, the login cookie).
async fn to_chooser(hub: &OidcHub, extra: &str) -> (String, String) {
    let (_, challenge) = pkce();
    let r = send(
        &hub.app,
        get_req(&hub.authorize_uri(&challenge, extra), &[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    (r.location().to_string(), r.cookie("fedhub_login").unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hint_naming_a_federation_idp_goes_straight_to_it() {
    let hub = hub_with_federation(0..30);
    let (login, bind) = to_chooser(&hub, &format!("&idp_hint={}", enc(&entity(13)))).await;
    let go = send(&hub.app, get_req(&login, &[("fedhub_login", &bind)])).await;
    assert_eq!(go.status, StatusCode::SEE_OTHER, "{}", go.body);
    assert!(
        go.location()
            .starts_with("https://idp.truong13.edu.vn/sso?SAMLRequest="),
        "{}",
        go.location()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_many_idps_the_sign_in_page_searches_instead_of_listing() {
    let hub = hub_with_federation(0..30);
    let (login, bind) = to_chooser(&hub, "").await;
    let page = send(&hub.app, get_req(&login, &[("fedhub_login", &bind)])).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"name="q""#), "{}", page.body);
    assert!(page.body.contains(r#"<label for="idp-q">"#));
    assert!(
        !page.body.contains("Ngoại thương"),
        "no IdP listed before a search"
    );
    assert!(
        unescaped(&page.body).contains("/dev\""),
        "the other methods keep their buttons"
    );

    // By name, without the accents.
    let found = send(
        &hub.app,
        get_req(
            &format!("{login}?q=ngoai+thuong"),
            &[("fedhub_login", &bind)],
        ),
    )
    .await;
    assert_eq!(found.status, StatusCode::OK);
    for i in [14, 22] {
        assert!(
            found.body.contains(&format!("Ngoại thương ({i})")),
            "{}",
            found.body
        );
    }
    assert!(
        !found.body.contains("Ngoại thương (6)"),
        "a service provider is no IdP"
    );
    assert!(!found.body.contains("Cần Thơ"));
    // By entity ID or domain.
    let by_domain = send(
        &hub.app,
        get_req(
            &format!("{login}?q=truong13.edu.vn"),
            &[("fedhub_login", &bind)],
        ),
    )
    .await;
    assert!(by_domain.body.contains("(13)"), "{}", by_domain.body);
    assert!(!by_domain.body.contains("(14)"));
    let none = send(
        &hub.app,
        get_req(&format!("{login}?q=khong+co"), &[("fedhub_login", &bind)]),
    )
    .await;
    assert!(none.body.contains("role=\"status\""));
    assert!(!none.body.contains("truong"));

    // Picking the result starts the sign-in there.
    let action = format!("{login}/{}", connector_id_for(&entity(13)));
    assert!(unescaped(&by_domain.body).contains(&action));
    let go = send(
        &hub.app,
        Request::post(&action)
            .header(header::COOKIE, format!("fedhub_login={bind}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(go.status, StatusCode::SEE_OTHER, "{}", go.body);
    assert!(go.location().starts_with("https://idp.truong13.edu.vn/sso"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_few_idps_the_sign_in_page_lists_them_all() {
    let hub = hub_with_federation(0..6);
    let (login, bind) = to_chooser(&hub, "").await;
    let page = send(&hub.app, get_req(&login, &[("fedhub_login", &bind)])).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains(r#"name="q""#));
    for i in 1..6 {
        assert!(
            unescaped(&page.body).contains(&format!("/{}\"", connector_id_for(&entity(i)))),
            "{}",
            page.body
        );
    }
}

#[test]
fn the_cli_imports_with_an_audit_entry_and_refuses_a_tampered_aggregate() {
    use clap::Parser;
    use fedhub::cli::{run, Cli, Failure};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let env = vec![("FEDHUB_DATABASE_URL".to_string(), db.clone())];
    let fed = Federation::new();
    // The CLI reads the system clock: an aggregate valid for a day from now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let good = signed_aggregate(
        &fed.signer(),
        "agg-1",
        "urn:vn:edu",
        now + 86_400,
        &fed.entities(0..12),
    )
    .unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let pem = openssl::x509::X509::from_der(&fed.key.cert_der)
        .unwrap()
        .to_pem()
        .unwrap();
    let cert = file("signer.pem", &pem);
    let import = |metadata: &str| {
        let argv = [
            "fedhub",
            "connector",
            "import-saml-aggregate",
            "--federation",
            "vn-edu",
            "--metadata",
            metadata,
            "--signing-cert",
            &cert,
        ];
        run(Cli::try_parse_from(argv).unwrap(), &env)
    };
    let tampered = good.replace("Cần Thơ", "Cần Thơ Giả");
    match import(&file("tampered.xml", tampered.as_bytes())) {
        Err(Failure::App(fedhub::Error::Invalid { field, rule })) => {
            assert_eq!(field, "metadata");
            assert!(rule.contains("does not verify"), "{rule}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    import(&file("good.xml", good.as_bytes())).unwrap();

    let store = fedhub::store::Store::connect(&db, &Default::default()).unwrap();
    let saml: Vec<_> = store
        .read(fedhub::upstream::list)
        .unwrap()
        .into_iter()
        .filter(|c| c.kind == "saml")
        .collect();
    assert_eq!(saml.len(), idps_in(0..12), "only the good import wrote");
    let audit = store.read(|c| fedhub::audit::tail(c, 10)).unwrap();
    let mine: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "connector.import_saml_aggregate")
        .collect();
    assert_eq!(mine.len(), 2, "{audit:?}");
    assert_eq!(mine[0].outcome, "failure");
    assert_eq!(mine[1].outcome, "success");
    assert_eq!(mine[1].target.as_deref(), Some("vn-edu"));
    assert!(mine[1]
        .detail
        .as_deref()
        .is_some_and(|d| d.contains(&format!("{} added", idps_in(0..12)))));
}

/// The daily re-import must not undo an operator: an IdP disabled by hand stays disabled
/// (its metadata still follows the aggregate), while one the aggregate itself disabled comes
/// back when it is listed again.
fn an_idp_an_operator_disabled_stays_disabled_across_imports(store: &TestStore) {
    use fedhub::upstream::{get, set_enabled};
    let fed = Federation::new();
    let until = NOW + 86_400;
    let all = fed.signed(&fed.entities(0..12), until);
    import_xml(store, &fed, &all, &[]).unwrap();
    let (x, y) = (connector_id_for(&entity(1)), connector_id_for(&entity(2)));
    let enabled = |id: &str| store.read(|c| get(c, id)).unwrap().enabled;
    store.write(|c| set_enabled(c, &x, false, NOW)).unwrap();

    let again = import_xml(store, &fed, &all, &[]).unwrap();
    assert_eq!(again.kept_disabled, [x.as_str()]);
    assert!(again.updated.is_empty(), "{:?}", again.updated);
    assert!(
        again.summary().contains("1 kept disabled"),
        "{}",
        again.summary()
    );
    assert!(
        !enabled(&x),
        "the import enabled an IdP the operator disabled"
    );

    // Its metadata changes: the change is taken, and it stays disabled.
    let renamed: Vec<String> = (0..12)
        .map(|i| {
            let mut s = fed.spec(i);
            if i == 1 {
                s.display_name = "Đại học (đổi tên)".into();
            }
            entity_xml(&s)
        })
        .collect();
    let third = import_xml(store, &fed, &fed.signed(&renamed, until), &[]).unwrap();
    assert_eq!(third.updated, [x.as_str()]);
    assert_eq!(third.kept_disabled, [x.as_str()]);
    let after = store.read(|c| get(c, &x)).unwrap();
    assert_eq!(after.display_name, "Đại học (đổi tên)");
    assert!(!after.enabled);

    // Another IdP leaves the aggregate and comes back: the import enables it again.
    let without_y: Vec<String> = (0..12)
        .filter(|i| *i != 2)
        .map(|i| entity_xml(&fed.spec(i)))
        .collect();
    let left = import_xml(store, &fed, &fed.signed(&without_y, until), &[]).unwrap();
    assert_eq!(left.disabled, [y.as_str()]);
    assert!(!enabled(&y));
    let back = import_xml(store, &fed, &all, &[]).unwrap();
    assert!(back.updated.contains(&y), "{:?}", back.updated);
    assert!(enabled(&y), "an IdP back in the aggregate stayed disabled");

    // The operator enables x again: the next import leaves it enabled.
    store.write(|c| set_enabled(c, &x, true, NOW)).unwrap();
    let last = import_xml(store, &fed, &all, &[]).unwrap();
    assert!(last.kept_disabled.is_empty());
    assert!(enabled(&x));
}

/// Migration 000100 cannot tell who disabled a federation IdP before it: those keep the old
/// behaviour (the next import enables them when listed), nothing else changes.
fn after_the_upgrade_idps_disabled_before_come_back_as_they_did(store: &TestStore) {
    use diesel::prelude::*;
    use fedhub::store::schema::connectors::dsl as k;
    let fed = Federation::new();
    let all = fed.signed(&fed.entities(0..12), NOW + 86_400);
    import_xml(store, &fed, &all, &[]).unwrap();
    let y = connector_id_for(&entity(2));
    store.revert_through("2026-12-05-000100").unwrap();
    let id = y.clone();
    store
        .write(move |c| {
            diesel::update(k::connectors.find(&id))
                .set(k::enabled.eq(false))
                .execute(c)?;
            Ok(())
        })
        .unwrap();
    store.migrate().unwrap();
    let again = import_xml(store, &fed, &all, &[]).unwrap();
    assert!(again.kept_disabled.is_empty(), "{:?}", again.kept_disabled);
    assert_eq!(again.updated, [y.as_str()]);
    assert!(
        store
            .read(|c| fedhub::upstream::get(c, &y))
            .unwrap()
            .enabled
    );
}
