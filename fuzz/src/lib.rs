//! Shared set-up for the fuzz targets in `fuzz_targets/`.
//!
//! The contract under test: every public entry point of `fedhub_metadata::xml` returns `Ok`
//! or `Err` for any input. A panic that escapes, an abort, a hang or an unbounded allocation
//! is a bug.

use std::collections::HashSet;
use std::sync::{Mutex, Once, OnceLock};

use fedhub_metadata::xml::{Limits, SpMetadata};

/// The registered metadata every AuthnRequest is checked against: `seeds/sp_metadata/sp.xml`,
/// an SP with `AuthnRequestsSigned="false"` so that both unsigned requests (parsed as they
/// are) and signed ones (verified with its key, then reduced) get past the binding layer.
/// The seed requests in `seeds/authn_*` are signed with this SP's key.
pub const SP_METADATA: &[u8] = include_bytes!("../seeds/sp_metadata/sp.xml");

/// The fixed SP, parsed once.
pub fn sp() -> &'static SpMetadata {
    static SP: OnceLock<SpMetadata> = OnceLock::new();
    SP.get_or_init(
        || match fedhub_metadata::xml::sp::parse(SP_METADATA, Limits::default()) {
            Ok(sp) => sp,
            Err(e) => panic!("seeds/sp_metadata/sp.xml does not parse: {e}"),
        },
    )
}

/// Call first in every target.
///
/// libfuzzer-sys installs a panic hook that aborts on *any* panic, including the ones
/// `fedhub_metadata::xml::guard::guarded` deliberately contains (samael/libxml panics become
/// `XmlError::Panicked`, which is an acceptable outcome). This replaces that hook with one that
/// only reports each contained panic location once; a panic that escapes our code is still
/// caught by libfuzzer-sys's `catch_unwind` around the target and turned into an abort, i.e.
/// a crash.
///
/// Set `FEDHUB_FUZZ_STRICT_PANICS=1` to keep libfuzzer-sys's hook, so that contained panics
/// in third-party code are reported as crashes too (useful for finding samael bugs).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = sp();
        if std::env::var_os("FEDHUB_FUZZ_STRICT_PANICS").is_some() {
            return;
        }
        static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
        std::panic::set_hook(Box::new(|info| {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
            if seen.get_or_insert_with(HashSet::new).insert(at.clone()) {
                eprintln!("fedhub-fuzz: panic at {at} (contained unless an abort follows): {info}");
            }
        }));
    });
}
