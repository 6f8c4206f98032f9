//! SAML 2.0: the IdP front for ministry portals (metadata, Web SSO, single logout), and the
//! hub as SP towards upstream SAML IdPs (`upstream`).

pub mod attributes;
mod idp_metadata;
pub mod response;
pub mod slo;
pub mod sso;
pub mod upstream;

use axum::routing::get;
use axum::Router;

use crate::web::AppState;

pub use idp_metadata::build as build_metadata;

pub const NAMEID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
pub const NAMEID_TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
pub const NAMEID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

/// Records a refused SAML message from someone not (yet) identified.
pub(crate) async fn audit_refusal(
    state: &AppState,
    action: &'static str,
    target: String,
    detail: String,
    request_id: String,
) {
    let now = state.clock.now();
    let event = crate::audit::Event::new("anonymous", action)
        .target(target)
        .outcome(crate::audit::Outcome::Denied)
        .request(Some(request_id))
        .detail(detail);
    if let Err(e) = state
        .store
        .write_async(move |c| crate::audit::record(c, &event, now))
        .await
    {
        tracing::error!(error = %e, "could not audit a refused SAML message");
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/saml/metadata", get(idp_metadata::serve))
        .route("/saml/sso", get(sso::sso_redirect).post(sso::sso_post))
        .route("/saml/init", get(sso::idp_initiated))
        .route("/saml/slo", get(slo::slo_redirect).post(slo::slo_post))
        .route(
            "/saml/logout",
            get(slo::logout_page).post(slo::logout_everywhere),
        )
        .route(
            "/connectors/{connector}/saml/metadata",
            get(upstream::metadata),
        )
        .route(
            "/connectors/{connector}/saml/acs",
            axum::routing::post(upstream::acs),
        )
        .route(
            "/connectors/{connector}/saml/slo",
            get(upstream::slo_redirect).post(upstream::slo_post),
        )
        .route(
            "/connectors/{connector}/logged-out",
            get(slo::upstream_returned),
        )
}
