//! fedhub integration tests: one binary. Store conformance runs on SQLite and on
//! PostgreSQL (`FEDHUB_TEST_DATABASE_URL`, required: these tests fail rather than skip).

// A test binary: a failing unwrap is a failing test, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// Each named case as a test on SQLite (`<module>::sqlite::<case>`) and on PostgreSQL
/// (`<module>::postgres::<case>`); a case is a `fn(&TestStore)` of the calling module.
macro_rules! on_both_engines {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $case() { super::$case(&crate::support::sqlite()); } )*
        }
        mod postgres {
            $( #[test] fn $case() { super::$case(&crate::support::postgres()); } )*
        }
    };
}

mod admin_api;
mod cli;
mod console;
mod console_browser;
mod conversion;
mod conversion_console;
mod example_ministry_portal;
mod example_province_gateway;
mod faults;
mod http;
mod interop;
mod jobs;
mod legacy;
mod member_list;
mod metrics;
mod node_cache;
mod nodes;
mod oidc;
mod oidc_clients;
mod oidc_interop;
mod oidc_support;
mod openapi;
mod overload;
mod saml;
mod server;
mod sp;
mod sso;
mod store;
mod support;
mod tour_browser;
mod upstream_certificate;
mod upstream_interop;
mod upstream_oidc;
mod upstream_saml;
mod upstream_saml_interop;

mod upstream_simpki;
