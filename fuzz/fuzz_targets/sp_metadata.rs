//! SP metadata documents as an operator would upload them.
#![no_main]

use fedhub_metadata::xml::{sp, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fedhub_fuzz::init();
    if let Ok(md) = sp::parse(data, Limits::default()) {
        // Exercise what callers do next with accepted metadata.
        let _ = md.choose_acs(None, None);
        if let Some(first) = md.acs.first() {
            let _ = md.choose_acs(Some(first.index), None);
            let _ = md.choose_acs(None, Some(&first.location));
        }
    }
});
