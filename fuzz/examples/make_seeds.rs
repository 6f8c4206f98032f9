//! Writes the seed corpora in `seeds/` (run from `fuzz/`: `cargo run --example make_seeds`).
//!
//! A fresh RSA key is made on every run; the SP metadata in `seeds/sp_metadata/sp.xml` carries
//! its certificate and every signed seed request is signed with it, so the seeds always match
//! the SP the targets use. The private key is not kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fedhub_metadata::xml::{self, Binding, Limits};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509Builder, X509NameBuilder};
use samael::crypto::{CryptoProvider, XmlSec};

const SP: &str = "https://sp.example.org/saml";
const ACS: &str = "https://sp.example.org/saml/acs";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

fn keys() -> (PKey<Private>, Vec<u8>) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "fedhub-fuzz-sp").unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(3650).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let der = b.build().to_der().unwrap();
    (key, der)
}

fn metadata(cert_der: &[u8], signed_requests: bool, extras: bool) -> String {
    let cert = STANDARD.encode(cert_der);
    let enc = if extras {
        format!(
            r#"<md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp.example.org/saml/slo" ResponseLocation="https://sp.example.org/saml/slo/response"/>
"#
        )
    } else {
        String::new()
    };
    let nameid = if extras {
        "<md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>\n"
    } else {
        ""
    };
    let valid = if extras {
        r#" validUntil="2036-01-01T00:00:00Z" cacheDuration="PT6H""#
    } else {
        ""
    };
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{SP}"{valid}>
<md:SPSSODescriptor AuthnRequestsSigned="{signed_requests}" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
{enc}<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://sp.example.org/saml/slo"/>
{nameid}<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{ACS}" index="1" isDefault="true"/>
<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{ACS}/2" index="2"/>
</md:SPSSODescriptor></md:EntityDescriptor>
"#
    )
}

fn unsigned_request(id: &str) -> String {
    format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="2026-01-01T08:00:00Z" Destination="https://hub.example.org/saml/sso" AssertionConsumerServiceIndex="2"><saml:Issuer>{SP}</saml:Issuer><samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" AllowCreate="true"/></samlp:AuthnRequest>"#
    )
}

fn signed_post_request(key: &PKey<Private>, id: &str) -> String {
    let template = format!(
        r##"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="2026-01-01T08:00:00Z" Destination="https://hub.example.org/saml/sso" AssertionConsumerServiceURL="{ACS}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>{SP}</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{RSA_SHA256}"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="{SHA256}"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature></samlp:AuthnRequest>"##
    );
    XmlSec::sign_xml(template, &key.private_key_to_der().unwrap()).unwrap()
}

fn deflate_b64(xml: &str) -> String {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes()).unwrap();
    STANDARD.encode(enc.finish().unwrap())
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn signed_query(key: &PKey<Private>, xml: &str, relay: &str) -> String {
    let octets = format!(
        "SAMLRequest={}&RelayState={}&SigAlg={}",
        encode(&deflate_b64(xml)),
        encode(relay),
        encode(RSA_SHA256)
    );
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), key).unwrap();
    signer.update(octets.as_bytes()).unwrap();
    let sig = STANDARD.encode(signer.sign_to_vec().unwrap());
    format!("{octets}&Signature={}", encode(&sig))
}

fn write(path: &str, contents: &str) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, contents).unwrap();
    println!("wrote {} ({} bytes)", p.display(), contents.len());
}

fn main() {
    let (key, cert) = keys();
    let limits = Limits::default();

    // The fixed SP every target checks requests against (see src/lib.rs).
    let sp_xml = metadata(&cert, false, false);
    let sp = xml::sp::parse(sp_xml.as_bytes(), limits).expect("seed metadata parses");
    write("sp_metadata/sp.xml", &sp_xml);
    let full = metadata(&cert, true, true);
    xml::sp::parse(full.as_bytes(), limits).expect("seed metadata parses");
    write("sp_metadata/sp-signed-requests-full.xml", &full);

    // Every request seed must get all the way through: the fuzzer starts from the deep paths.
    let redirect = |q: &str, signed: bool| {
        let r = xml::decode_authn_request(Binding::Redirect { raw_query: q }, &sp, limits)
            .expect("seed Redirect request is accepted");
        assert_eq!(r.signed, signed);
    };
    let post = |b64: &str, signed: bool| {
        let r = xml::decode_authn_request(
            Binding::Post {
                saml_request: b64,
                relay_state: Some("relay-1"),
            },
            &sp,
            limits,
        )
        .expect("seed POST request is accepted");
        assert_eq!(r.signed, signed);
    };

    let q = format!(
        "SAMLRequest={}&RelayState=r1",
        encode(&deflate_b64(&unsigned_request("_rd1")))
    );
    redirect(&q, false);
    write("authn_redirect/unsigned.txt", &q);
    let q = signed_query(&key, &unsigned_request("_rd2"), "relay/1 2");
    redirect(&q, true);
    write("authn_redirect/signed-rsa-sha256.txt", &q);

    let signed = signed_post_request(&key, "_p1");
    let unsigned = unsigned_request("_p2");
    post(&STANDARD.encode(&signed), true);
    post(&STANDARD.encode(&unsigned), false);
    // The same documents twice: as the form field (base64) and as XML for the target's
    // second mode, which base64-encodes the raw input itself.
    write("authn_post/signed.b64", &STANDARD.encode(&signed));
    write("authn_post/unsigned.b64", &STANDARD.encode(&unsigned));
    write("authn_post/signed.xml", &signed);
    write("authn_post/unsigned.xml", &unsigned);
}
