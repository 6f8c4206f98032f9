//! Inputs found while fuzzing the XML security layer (see fuzz/README.md), kept as tests so
//! they stay fixed. Each feeds the input exactly as it arrived and asserts a plain `Ok`/`Err`
//! (a panic, abort or hang here is the bug coming back).
//!
//! The SP every request is checked against is the fuzz targets' own
//! (`fuzz/seeds/sp_metadata/sp.xml`, Issuer `https://sp.example.org/saml`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fedhub_metadata::xml::{self, authn, guard, Binding, Limits, XmlError};

const SEED_SP: &str = include_str!("../../fuzz/seeds/sp_metadata/sp.xml");

fn sp() -> xml::SpMetadata {
    xml::sp::parse(SEED_SP.as_bytes(), Limits::default()).unwrap()
}

fn post(saml_request: &str) -> Result<xml::VerifiedAuthnRequest, XmlError> {
    xml::decode_authn_request(
        Binding::Post {
            saml_request,
            relay_state: None,
        },
        &sp(),
        Limits::default(),
    )
}

/// An unsigned-looking AuthnRequest carrying a `ds:Signature` whose Reference has `uri` and
/// the given transforms. Nobody holds a key for it: it must fail without any side effect.
fn forged(uri: &str, transforms: &str) -> String {
    format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_x" Version="2.0" IssueInstant="2026-01-01T08:00:00Z"><saml:Issuer>https://sp.example.org/saml</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI={uri}><ds:Transforms>{transforms}</ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature></samlp:AuthnRequest>"#
    )
}

/// A 1.6 KB POST `SAMLRequest` (base64 exactly as posted) whose Reference is
/// `#xpointer(//*[count(//*[count(//*[count(//*)>0])>0])>0])` over 200 empty elements.
/// libxmlsec evaluates that XPath while computing the digest, before it looks at the
/// signature: O(n^4), about 26 s per request in a release build before the fix (and minutes
/// for a slightly larger one, still far under the 128 KiB limit). Anyone could send it.
const XPOINTER_DOS: &str = "
PHNhbWxwOkF1dGhuUmVxdWVzdCB4bWxuczpzYW1scD0idXJuOm9hc2lzOm5hbWVzOnRjOlNBTUw6Mi4wOnByb3RvY29sIiB4
bWxuczpzYW1sPSJ1cm46b2FzaXM6bmFtZXM6dGM6U0FNTDoyLjA6YXNzZXJ0aW9uIiBJRD0iX3giIFZlcnNpb249IjIuMCIg
SXNzdWVJbnN0YW50PSIyMDI2LTAxLTAxVDA4OjAwOjAwWiI+PHNhbWw6SXNzdWVyPmh0dHBzOi8vc3AuZXhhbXBsZS5vcmcv
c2FtbDwvc2FtbDpJc3N1ZXI+PHNhbWxwOkV4dGVuc2lvbnM+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+
PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+
PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+
PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+
PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+
PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+
PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+
PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+
PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+
PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+
PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+
PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48YS8+PGEvPjxhLz48L3NhbWxwOkV4dGVuc2lvbnM+PGRzOlNpZ25h
dHVyZSB4bWxuczpkcz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC8wOS94bWxkc2lnIyI+PGRzOlNpZ25lZEluZm8+PGRzOkNh
bm9uaWNhbGl6YXRpb25NZXRob2QgQWxnb3JpdGhtPSJodHRwOi8vd3d3LnczLm9yZy8yMDAxLzEwL3htbC1leGMtYzE0biMi
Lz48ZHM6U2lnbmF0dXJlTWV0aG9kIEFsZ29yaXRobT0iaHR0cDovL3d3dy53My5vcmcvMjAwMS8wNC94bWxkc2lnLW1vcmUj
cnNhLXNoYTI1NiIvPjxkczpSZWZlcmVuY2UgVVJJPSIjeHBvaW50ZXIoLy8qW2NvdW50KC8vKltjb3VudCgvLypbY291bnQo
Ly8qKT4wXSk+MF0pPjBdKSI+PGRzOlRyYW5zZm9ybXM+PC9kczpUcmFuc2Zvcm1zPjxkczpEaWdlc3RNZXRob2QgQWxnb3Jp
dGhtPSJodHRwOi8vd3d3LnczLm9yZy8yMDAxLzA0L3htbGVuYyNzaGEyNTYiLz48ZHM6RGlnZXN0VmFsdWU+QUFBQTwvZHM6
RGlnZXN0VmFsdWU+PC9kczpSZWZlcmVuY2U+PC9kczpTaWduZWRJbmZvPjxkczpTaWduYXR1cmVWYWx1ZT5BQUFBPC9kczpT
aWduYXR1cmVWYWx1ZT48L2RzOlNpZ25hdHVyZT48L3NhbWxwOkF1dGhuUmVxdWVzdD4=
";

#[test]
fn xpointer_reference_is_refused_before_xmlsec_evaluates_it() {
    let started = Instant::now();
    let err = post(XPOINTER_DOS).unwrap_err();
    assert!(matches!(err, XmlError::Invalid(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // Looking up the Issuer (samael only, no xmlsec) is a plain answer too.
    let peek = authn::peek_issuer(
        &Binding::Post {
            saml_request: XPOINTER_DOS,
            relay_state: None,
        },
        Limits::default(),
    );
    assert!(matches!(peek, Ok(_) | Err(XmlError::Parse(_))), "{peek:?}");
}

/// An 0.8 KB POST `SAMLRequest` (base64 exactly as posted) whose Reference is
/// `URI="file:///dev/zero"`. Before the fix libxmlsec read the "referenced document" into one
/// growing buffer while computing the digest: about 4 GiB of memory in 8 s, then SIGSEGV in
/// `xmlSecBufferAppend` (libxmlsec1 1.2.37), killing the whole process. Unauthenticated.
const DEV_ZERO_CRASH: &str = "
PHNhbWxwOkF1dGhuUmVxdWVzdCB4bWxuczpzYW1scD0idXJuOm9hc2lzOm5hbWVzOnRjOlNBTUw6Mi4wOnByb3RvY29sIiB4
bWxuczpzYW1sPSJ1cm46b2FzaXM6bmFtZXM6dGM6U0FNTDoyLjA6YXNzZXJ0aW9uIiBJRD0iX3giIFZlcnNpb249IjIuMCIg
SXNzdWVJbnN0YW50PSIyMDI2LTAxLTAxVDA4OjAwOjAwWiI+PHNhbWw6SXNzdWVyPmh0dHBzOi8vc3AuZXhhbXBsZS5vcmcv
c2FtbDwvc2FtbDpJc3N1ZXI+PHNhbWxwOkV4dGVuc2lvbnM+PC9zYW1scDpFeHRlbnNpb25zPjxkczpTaWduYXR1cmUgeG1s
bnM6ZHM9Imh0dHA6Ly93d3cudzMub3JnLzIwMDAvMDkveG1sZHNpZyMiPjxkczpTaWduZWRJbmZvPjxkczpDYW5vbmljYWxp
emF0aW9uTWV0aG9kIEFsZ29yaXRobT0iaHR0cDovL3d3dy53My5vcmcvMjAwMS8xMC94bWwtZXhjLWMxNG4jIi8+PGRzOlNp
Z25hdHVyZU1ldGhvZCBBbGdvcml0aG09Imh0dHA6Ly93d3cudzMub3JnLzIwMDEvMDQveG1sZHNpZy1tb3JlI3JzYS1zaGEy
NTYiLz48ZHM6UmVmZXJlbmNlIFVSST0iZmlsZTovLy9kZXYvemVybyI+PGRzOlRyYW5zZm9ybXM+PC9kczpUcmFuc2Zvcm1z
PjxkczpEaWdlc3RNZXRob2QgQWxnb3JpdGhtPSJodHRwOi8vd3d3LnczLm9yZy8yMDAxLzA0L3htbGVuYyNzaGEyNTYiLz48
ZHM6RGlnZXN0VmFsdWU+QUFBQTwvZHM6RGlnZXN0VmFsdWU+PC9kczpSZWZlcmVuY2U+PC9kczpTaWduZWRJbmZvPjxkczpT
aWduYXR1cmVWYWx1ZT5BQUFBPC9kczpTaWduYXR1cmVWYWx1ZT48L2RzOlNpZ25hdHVyZT48L3NhbWxwOkF1dGhuUmVxdWVz
dD4=
";

#[test]
fn file_reference_no_longer_crashes_the_process() {
    let err = post(DEV_ZERO_CRASH).unwrap_err();
    assert!(matches!(err, XmlError::Invalid(_)), "{err:?}");
}

/// Before the fix libxmlsec fetched the Reference URI (an HTTP GET from the hub to any host
/// the sender names) while checking the digest of a forged, unsigned request.
#[test]
fn remote_reference_uri_is_never_fetched() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    for uri in [
        format!(r#""http://127.0.0.1:{port}/ssrf""#),
        // The same, hidden behind character references, single quotes and a prefix.
        format!(r#""&#104;ttp://127.0.0.1:{port}/ssrf""#),
        format!(r#"'http&#x3A;//127.0.0.1:{port}/ssrf'"#),
        format!(r#" "http://127.0.0.1:{port}/ssrf" ds:x="""#),
    ] {
        let err = post(&STANDARD.encode(forged(&uri, ""))).unwrap_err();
        assert!(matches!(err, XmlError::Invalid(_)), "{uri}: {err:?}");
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the hub connected to the URI in the message: {other:?}"),
    }
    for uri in [
        r#""file:///etc/hostname""#,
        r#""/etc/hostname""#,
        r##""#xpointer(/)""##,
    ] {
        let err = post(&STANDARD.encode(forged(uri, ""))).unwrap_err();
        assert!(matches!(err, XmlError::Invalid(_)), "{uri}: {err:?}");
    }
}

#[test]
fn xpath_and_xslt_transforms_are_refused_before_xmlsec_runs_them() {
    for transform in [
        r#"<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"><ds:XPath>count(//*)</ds:XPath></ds:Transform>"#,
        r#"<ds:Transform Algorithm="http://www.w3.org/2002/06/xmldsig-filter2"/>"#,
        r#"<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"/>"#,
        r#"<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#base64"/>"#,
        r#"<ds:Transform Algorithm = 'http://www.w3.org/TR/1999/REC-xpath-19991116'/>"#,
    ] {
        let err = post(&STANDARD.encode(forged(r##""#_x""##, transform))).unwrap_err();
        assert!(
            matches!(err, XmlError::Algorithm(_)),
            "{transform}: {err:?}"
        );
    }
}

#[test]
fn the_signature_profile_check_reads_attributes_as_the_parser_does() {
    let check = |xml: &str| guard::check_signature_profile(xml);
    assert!(check(r##"<r><Reference URI=""/><Reference URI="#_a.b-1"/></r>"##).is_ok());
    assert!(check(r#"<r><Transform Algorithm="http://www.w3.org/2000/09/xmldsig&#x23;enveloped-signature"/></r>"#).is_ok());
    // Unreadable values fail closed rather than being skipped.
    assert!(check(r##"<r><Reference URI="#a&bogus;"/></r>"##).is_err());
    assert!(check(r##"<r><Reference URI="#a&#xFFFFFFFF;"/></r>"##).is_err());
    assert!(check(r#"<r><Reference URI=#a/></r>"#).is_err());
    assert!(check(r##"<r><Reference URI="#a"##).is_err());
    // Look-alikes in text are not attributes, or are checked anyway (fail closed).
    assert!(check(r#"<r>no URIs here; Algorithm is a word</r>"#).is_ok());
    assert!(check(r#"<r><!-- URI="http://x" --></r>"#).is_err());
    // Non-ASCII just before a name does not trip the scanner.
    assert!(check("é URI=\"#a\"").is_ok());
    assert!(check("é URI=\"#xpointer(/)\"").is_err());
}

/// The fuzz seeds go all the way through (they are where the fuzzer starts from).
#[test]
fn fuzz_seeds_still_decode() {
    let sp = sp();
    for (b64, signed) in [
        (include_str!("../../fuzz/seeds/authn_post/signed.b64"), true),
        (
            include_str!("../../fuzz/seeds/authn_post/unsigned.b64"),
            false,
        ),
    ] {
        let r = post(b64).unwrap();
        assert_eq!(r.signed, signed);
    }
    for (q, signed) in [
        (
            include_str!("../../fuzz/seeds/authn_redirect/signed-rsa-sha256.txt"),
            true,
        ),
        (
            include_str!("../../fuzz/seeds/authn_redirect/unsigned.txt"),
            false,
        ),
    ] {
        let r =
            xml::decode_authn_request(Binding::Redirect { raw_query: q }, &sp, Limits::default())
                .unwrap();
        assert_eq!(r.signed, signed);
    }
    let full = include_str!("../../fuzz/seeds/sp_metadata/sp-signed-requests-full.xml");
    assert!(
        xml::sp::parse(full.as_bytes(), Limits::default())
            .unwrap()
            .authn_requests_signed
    );
}
