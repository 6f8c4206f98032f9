//! HTTP-POST AuthnRequests. The same input is used two ways:
//! 1. as the `SAMLRequest` form field itself (base64 text, possibly broken);
//! 2. as the XML document: the bytes are base64-encoded first, so the DOCTYPE guard, the
//!    samael/quick-xml parser and the xmlsec verify-and-reduce path see arbitrary XML.
//!
//! Seeds of both kinds live in `seeds/authn_post/` (`*.b64` and `*.xml`).
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fedhub_metadata::xml::{self, authn, Binding, Limits};
use libfuzzer_sys::fuzz_target;

fn run(saml_request: &str) {
    let post = |relay_state| Binding::Post {
        saml_request,
        relay_state,
    };
    let _ = authn::peek_issuer(&post(None), Limits::default());
    let _ = xml::decode_authn_request(post(Some("relay-1")), fedhub_fuzz::sp(), Limits::default());
}

fuzz_target!(|data: &[u8]| {
    fedhub_fuzz::init();
    if let Ok(field) = std::str::from_utf8(data) {
        run(field);
    }
    run(&STANDARD.encode(data));
});
