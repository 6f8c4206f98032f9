//! SAML hot paths, one core: building and signing an assertion, and verifying a signed
//! AuthnRequest. Run: `cargo bench -p fedhub --bench saml`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fedhub::keys::Signer;
use fedhub::saml::response::{self, AssertionData};
use fedhub_metadata::keys::{generate, KeyAlg};
use fedhub_metadata::xml::{self, sign, Binding, Limits};

const NOW: i64 = 1_795_737_600;
const SP: &str = "https://dvc.example.gov.vn/saml";
const ACS: &str = "https://dvc.example.gov.vn/saml/acs";

fn signer(alg: KeyAlg) -> Signer {
    let k = generate(alg, "bench idp", NOW, 30).unwrap();
    Signer {
        kid: k.kid,
        alg,
        cert_der: k.cert_der,
        private_der: k.private_der,
    }
}

fn data() -> AssertionData {
    AssertionData {
        issuer: "https://sso.example.gov.vn/saml/metadata".into(),
        audience: SP.into(),
        acs_url: ACS.into(),
        in_response_to: Some("_req".into()),
        name_id: "3f1c2a9e8b7d6c5f4e3d2c1b0a998877".into(),
        name_id_format: fedhub::saml::NAMEID_PERSISTENT.into(),
        session_index: "_sess".into(),
        authn_instant: NOW,
        authn_context_class: "urn:oasis:names:tc:SAML:2.0:ac:classes:X509".into(),
        attributes: vec![
            ("national_id".into(), vec!["001204012345".into()]),
            ("name".into(), vec!["Nguyễn Văn An".into()]),
            ("agency_code".into(), vec!["000.00.01.H49".into()]),
            ("roles".into(), vec!["Admin của Tỉnh/thành phố".into()]),
        ],
        now: NOW,
        ttl: 300,
    }
}

fn signed_request_fixture() -> (xml::SpMetadata, String) {
    let sp_key = generate(KeyAlg::Rsa2048, "bench sp", NOW, 30).unwrap();
    let metadata = format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{SP}"><md:SPSSODescriptor AuthnRequestsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{ACS}" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>"#,
        STANDARD.encode(&sp_key.cert_der)
    );
    let sp = xml::sp::parse(metadata.as_bytes(), Limits::default()).unwrap();
    let request = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" IssueInstant="2026-11-27T08:00:00Z" AssertionConsumerServiceURL="{ACS}"><saml:Issuer>{SP}</saml:Issuer>{}</samlp:AuthnRequest>"#,
        sign::template("_r1", KeyAlg::Rsa2048, &sp_key.cert_der)
    );
    let signed = sign::sign(&request, &sp_key.private_der).unwrap();
    (sp, STANDARD.encode(signed))
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("saml");
    g.throughput(Throughput::Elements(1));
    let rsa = signer(KeyAlg::Rsa2048).xml_signer().unwrap();
    let d = data();
    g.bench_function("assertion_build_sign_rsa2048", |b| {
        b.iter(|| response::assertion(black_box(&d), &rsa, true).unwrap())
    });
    g.bench_function("response_build_sign_both_rsa2048", |b| {
        b.iter(|| {
            response::success(black_box(&d), fedhub::rp::saml::SignWhat::Both, &rsa, None).unwrap()
        })
    });
    // The floor: one RSA-2048 signature alone, so the XML work can be read as a ratio.
    g.bench_function("rsa2048_sign_only", |b| {
        b.iter(|| rsa.sign_bytes(black_box(b"fedhub")).unwrap())
    });
    let ec = signer(KeyAlg::EcP256).xml_signer().unwrap();
    g.bench_function("assertion_build_sign_p256", |b| {
        b.iter(|| response::assertion(black_box(&d), &ec, true).unwrap())
    });
    let (sp, b64) = signed_request_fixture();
    g.bench_function("authn_request_verify_post_rsa2048", |b| {
        b.iter(|| {
            xml::decode_authn_request(
                Binding::Post {
                    saml_request: black_box(&b64),
                    relay_state: None,
                },
                &sp,
                Limits::default(),
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
