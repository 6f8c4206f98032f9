//! The IdP metadata at `/saml/metadata` (also the entityID): signed with the current key,
//! publishing the next and previous keys too, with `validUntil` and `cacheDuration`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use fedhub_metadata::xml::sign::{escape, sign, template};
use http::header;

use super::{NAMEID_EMAIL, NAMEID_PERSISTENT, NAMEID_TRANSIENT};
use crate::clock::rfc3339;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::keys::{self, KeyRecord, Purpose, Signer};
use crate::web::error::WebError;
use crate::web::AppState;

const POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

fn key_descriptor(key: &KeyRecord) -> String {
    use base64::Engine as _;
    format!(
        r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:KeyName>{}</ds:KeyName><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
        escape(&key.kid),
        base64::engine::general_purpose::STANDARD.encode(&key.public_der)
    )
}

/// ISO 8601 duration in seconds, as `cacheDuration` wants it.
fn iso_duration(d: std::time::Duration) -> String {
    format!("PT{}S", d.as_secs())
}

/// The signed metadata document.
pub fn build(
    config: &Config,
    published: &[KeyRecord],
    signer: &Signer,
    now: i64,
) -> Result<String> {
    let base = config.base_url();
    let id = format!("_fh{}", uuid::Uuid::new_v4().simple());
    let valid_until = rfc3339(now + config.saml.metadata_valid_for.as_secs() as i64);
    let keys: String = published.iter().map(key_descriptor).collect();
    let sso = format!("{base}/saml/sso");
    let slo = format!("{base}/saml/slo");
    let unsigned = format!(
        concat!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" "#,
            r#"ID="{id}" entityID="{entity}" validUntil="{valid_until}" cacheDuration="{cache}">{signature}"#,
            r#"<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="false">"#,
            "{keys}",
            r#"<md:SingleLogoutService Binding="{redirect}" Location="{slo}"/>"#,
            r#"<md:SingleLogoutService Binding="{post}" Location="{slo}"/>"#,
            "<md:NameIDFormat>{persistent}</md:NameIDFormat><md:NameIDFormat>{transient}</md:NameIDFormat><md:NameIDFormat>{email}</md:NameIDFormat>",
            r#"<md:SingleSignOnService Binding="{redirect}" Location="{sso}"/>"#,
            r#"<md:SingleSignOnService Binding="{post}" Location="{sso}"/>"#,
            "</md:IDPSSODescriptor></md:EntityDescriptor>"
        ),
        id = id,
        entity = escape(&config.saml_entity_id()),
        valid_until = valid_until,
        cache = iso_duration(config.saml.metadata_cache_duration),
        signature = template(&id, signer.alg, &signer.cert_der),
        keys = keys,
        redirect = REDIRECT,
        post = POST,
        slo = escape(&slo),
        sso = escape(&sso),
        persistent = NAMEID_PERSISTENT,
        transient = NAMEID_TRANSIENT,
        email = NAMEID_EMAIL,
    );
    sign(&unsigned, &signer.private_der).map_err(Error::internal)
}

pub async fn serve(State(state): State<AppState>) -> Result<Response, WebError> {
    let vault = state.vault()?;
    let now = state.clock.now();
    let config = state.config.clone();
    let xml = state
        .store
        .read_async(move |c| {
            let published = keys::published(c, Purpose::Saml, now)?;
            let signer = keys::signer(c, &vault, Purpose::Saml)?;
            build(&config, &published, &signer, now)
        })
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/samlmetadata+xml"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{xml}"),
    )
        .into_response())
}
