//! HTTP-Redirect AuthnRequests: the input is the raw query string as received.
#![no_main]

use fedhub_metadata::xml::{self, authn, redirect, Binding, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fedhub_fuzz::init();
    // A real query string reaches us as text; lossy conversion keeps non-UTF-8 inputs useful.
    let q = String::from_utf8_lossy(data);
    let q = q.as_ref();
    let _ = redirect::parse(q, "SAMLRequest", Limits::default());
    let binding = Binding::Redirect { raw_query: q };
    let _ = authn::peek_issuer(&binding, Limits::default());
    let _ = xml::decode_authn_request(binding, fedhub_fuzz::sp(), Limits::default());
});
