//! The hub as a SAML service provider towards SAML connectors (upstream IdPs): its SP
//! metadata, the signed AuthnRequest that starts a sign-in, the ACS that takes the IdP's
//! Response (verified only through the `fedhub-metadata` layer, bound to the login by
//! RelayState + cookie + InResponseTo, assertion IDs single-use), and single logout.

use std::collections::HashMap;

use axum::extract::{Path, Query, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fedhub_connectors::saml::{self as upstream_saml, Outgoing, PendingLogin, SamlUpstream};
use fedhub_connectors::ConnectorError;
use fedhub_metadata::xml::sign::{escape, sign, template};
use fedhub_metadata::xml::{response::decode_response, Limits};
use http::{header, HeaderMap, StatusCode};

use crate::error::{Error, Result};
use crate::keys::{self, Purpose};
use crate::login::auth_session;
use crate::upstream::{self, Connector};
use crate::web::error::WebError;
use crate::web::login::{allowed, check_binding, expired, finish, saved_state};
use crate::web::{cookies, request_id_of, AppState};

fn clock_skew(state: &AppState) -> i64 {
    state.config.connectors.clock_skew.as_secs() as i64
}

/// The connector `id` if it is a SAML one, ready to use.
async fn saml_connector(state: &AppState, id: &str) -> Result<(Connector, SamlUpstream)> {
    let lookup = id.to_string();
    let c = state
        .store
        .read_async(move |c| upstream::get(c, &lookup))
        .await?;
    if c.kind() != Some(fedhub_connectors::ConnectorKind::Saml) {
        return Err(Error::not_found("SAML connector", id));
    }
    let up = upstream::saml_upstream(
        &c,
        &state.config.base_url(),
        clock_skew(state),
        state.clock.now(),
    )?;
    Ok((c, up))
}

async fn xml_signer(state: &AppState) -> Result<fedhub_metadata::xml::dsig::XmlSigner> {
    let vault = state.vault()?;
    state
        .store
        .read_async(move |c| keys::signer(c, &vault, Purpose::Saml)?.xml_signer())
        .await
}

/// Sends a message to the IdP: a redirect, or the auto-POST page.
pub(crate) fn send(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    out: Outgoing,
) -> Result<Response> {
    match out {
        Outgoing::Redirect(url) => Ok(Redirect::to(&url).into_response()),
        Outgoing::Post {
            url,
            field,
            xml,
            relay_state,
        } => super::sso::post_message(
            state,
            headers,
            name,
            &url,
            field,
            &xml,
            relay_state.as_deref(),
        ),
    }
}

/// Starts a sign-in at the IdP: the request ID is kept with the login (InResponseTo must
/// match it), the login handle travels as RelayState.
pub(crate) async fn begin(
    state: &AppState,
    headers: &HeaderMap,
    handle: &str,
    session: &auth_session::AuthSession,
    connector: &Connector,
) -> std::result::Result<Response, WebError> {
    let now = state.clock.now();
    let up = upstream::saml_upstream(
        connector,
        &state.config.base_url(),
        clock_skew(state),
        state.clock.now(),
    )?;
    let signer = xml_signer(state).await?;
    let (out, pending) =
        upstream_saml::begin(&up, &signer, handle, session.request.force_authn, now)
            .map_err(crate::web::login::upstream_page)?;
    let saved = serde_json::to_string(&pending).map_err(Error::internal)?;
    let (h, id) = (handle.to_string(), connector.id.clone());
    state
        .store
        .write_async(move |c| auth_session::set_connector(c, &h, &id, Some(&saved), now))
        .await
        .map_err(expired)?;
    Ok(send(state, headers, &connector.display_name, out)?)
}

/// The hub's SP metadata for one connector: entityID = this URL, signed AuthnRequests, the
/// ACS (POST) and SLO (Redirect, POST), signing keys and (RSA keys) encryption keys.
pub async fn metadata(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> std::result::Result<Response, WebError> {
    let (_, up) = saml_connector(&state, &id).await?;
    let now = state.clock.now();
    let vault = state.vault()?;
    let xml = state
        .store
        .read_async(move |c| {
            let published = keys::published(c, Purpose::Saml, now)?;
            let signer = keys::signer(c, &vault, Purpose::Saml)?;
            build_metadata(&up, &published, &signer)
        })
        .await?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/samlmetadata+xml"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        xml,
    )
        .into_response())
}

fn build_metadata(
    up: &SamlUpstream,
    published: &[keys::KeyRecord],
    signer: &keys::Signer,
) -> Result<String> {
    use fedhub_metadata::xml::sp::{BINDING_POST, BINDING_REDIRECT};
    let mut kd = String::new();
    for k in published {
        let cert = STANDARD.encode(&k.public_der);
        kd.push_str(&format!(
            r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:KeyName>{}</ds:KeyName><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
            escape(&k.kid)
        ));
        if k.alg == fedhub_metadata::keys::KeyAlg::Rsa2048.as_str() {
            kd.push_str(&format!(
                r#"<md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:KeyName>{}</ds:KeyName><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo><md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/><md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes128-gcm"/><md:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc"/><md:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/><md:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/></md:KeyDescriptor>"#,
                escape(&k.kid)
            ));
        }
    }
    let id = format!(
        "_{}",
        crate::tokens::random_secret("")?.replace(['-', '_'], "")
    );
    let name_id = up
        .name_id_format
        .as_deref()
        .map(|f| format!("<md:NameIDFormat>{}</md:NameIDFormat>", escape(f)))
        .unwrap_or_default();
    let unsigned = format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="{id}" entityID="{entity}">{signature}"#,
            r#"<md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{kd}"#,
            r#"<md:SingleLogoutService Binding="{redirect}" Location="{slo}"/><md:SingleLogoutService Binding="{post}" Location="{slo}"/>{name_id}"#,
            r#"<md:AssertionConsumerService Binding="{post}" Location="{acs}" index="0" isDefault="true"/>"#,
            r#"</md:SPSSODescriptor></md:EntityDescriptor>"#
        ),
        id = id,
        entity = escape(&up.sp_entity_id),
        signature = template(&id, signer.alg, &signer.cert_der),
        kd = kd,
        redirect = BINDING_REDIRECT,
        post = BINDING_POST,
        slo = escape(&up.slo_url),
        acs = escape(&up.acs_url),
        name_id = name_id,
    );
    sign(&unsigned, &signer.private_der).map_err(Error::internal)
}

/// The IdP's answer. A cross-site POST carries no SameSite=Lax cookie: the first time the
/// login cookie is missing, the form is posted again from the hub's own origin (then the
/// browser sends it); a second miss means another browser.
pub async fn acs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(connector_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> std::result::Result<Response, WebError> {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let (Some(saml_response), Some(handle)) = (form.get("SAMLResponse"), form.get("RelayState"))
    else {
        super::audit_refusal(
            &state,
            "saml.acs",
            connector_id.clone(),
            "a Response without SAMLResponse or RelayState".into(),
            request_id_of(&headers),
        )
        .await;
        return Err(WebError::page(Error::invalid(
            "SAMLResponse",
            "the identity provider's answer is missing SAMLResponse or RelayState",
        )));
    };
    if cookies::get(&headers, cookies::LOGIN_COOKIE).is_none() && !q.contains_key("again") {
        let action = format!("/connectors/{connector_id}/saml/acs?again=1");
        return Ok(super::sso::post_form(
            &state,
            &headers,
            "fedhub",
            &action,
            "SAMLResponse",
            saml_response,
            Some(handle),
        )?);
    }
    if let Err(e) = check_binding(&headers, handle) {
        super::audit_refusal(
            &state,
            "saml.acs",
            format!("connector:{connector_id}"),
            "the Response came back to another browser than the one that started the sign-in"
                .into(),
            request_id_of(&headers),
        )
        .await;
        return Err(e);
    }
    let (session, connector) = match allowed(&state, handle, &connector_id).await {
        Ok(found) => found,
        Err(e) => {
            // A Response for a sign-in that is over (a replay) or never existed.
            super::audit_refusal(
                &state,
                "saml.acs",
                format!("connector:{connector_id}"),
                "a Response for a sign-in that is over or unknown (replayed?)".into(),
                request_id_of(&headers),
            )
            .await;
            return Err(e);
        }
    };
    let pending: PendingLogin = serde_json::from_str(&saved_state(
        &session,
        &connector,
        "this sign-in did not go to that identity provider",
    )?)
    .map_err(Error::internal)?;
    let up = upstream::saml_upstream(
        &connector,
        &state.config.base_url(),
        clock_skew(&state),
        state.clock.now(),
    )?;
    let now = state.clock.now();
    let vault = state.vault()?;
    let ders = state
        .store
        .read_async(move |c| keys::decryption_keys(c, &vault, now))
        .await?;
    let pkeys: Vec<_> = ders
        .iter()
        .filter_map(|d| openssl::rsa::Rsa::private_key_from_der(d).ok())
        .filter_map(|r| openssl::pkey::PKey::from_rsa(r).ok())
        .collect();
    let verified = decode_response(saml_response, &up.idp, &pkeys, Limits::default())
        .map_err(|e| ConnectorError::Invalid(e.to_string()))
        .and_then(|v| upstream_saml::identity(&up, &v, &pending, now));
    let identity = match verified {
        Ok(signed_in) => {
            // Each assertion once: a copied or replayed Response finds its ID taken.
            let key = format!(
                "saml!{}!{}",
                connector.id,
                crate::tokens::sha256_hex(&signed_in.assertion_id)
            );
            let until = signed_in.remember_until + clock_skew(&state);
            let fresh = state
                .store
                .write_async(move |c| crate::store::replay::remember_once(c, &key, until, now))
                .await?;
            if fresh {
                Ok(signed_in.identity)
            } else {
                Err(ConnectorError::Invalid(
                    "this assertion was already used (replayed)".into(),
                ))
            }
        }
        Err(e) => Err(e),
    };
    finish(&state, &headers, handle, &connector.id, identity).await
}

/// Single logout with the IdP: its LogoutRequest (it ends the session here and everywhere
/// the person went through the hub) or its LogoutResponse to the hub's request.
pub async fn slo_redirect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(connector_id): Path<String>,
    RawQuery(q): RawQuery,
) -> std::result::Result<Response, WebError> {
    let q = q.unwrap_or_default();
    let param = if q.split('&').any(|p| p.starts_with("SAMLResponse=")) {
        "SAMLResponse"
    } else {
        "SAMLRequest"
    };
    super::slo::from_upstream(
        state,
        headers,
        connector_id,
        fedhub_metadata::xml::Binding::Redirect { raw_query: &q },
        param,
    )
    .await
}

pub async fn slo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(connector_id): Path<String>,
    axum::extract::Form(f): axum::extract::Form<HashMap<String, String>>,
) -> std::result::Result<Response, WebError> {
    let (message, param) = match (f.get("SAMLRequest"), f.get("SAMLResponse")) {
        (Some(r), None) => (r.as_str(), "SAMLRequest"),
        (None, Some(r)) => (r.as_str(), "SAMLResponse"),
        _ => {
            return Err(WebError::page(Error::invalid(
                "SAMLRequest",
                "send exactly one of SAMLRequest or SAMLResponse",
            )))
        }
    };
    super::slo::from_upstream(
        state,
        headers,
        connector_id,
        fedhub_metadata::xml::Binding::Post {
            saml_request: message,
            relay_state: f.get("RelayState").map(String::as_str),
        },
        param,
    )
    .await
}

/// The upstream half of a logout: a LogoutRequest to a SAML IdP, or the OIDC provider's
/// end-session endpoint. `None` when the upstream offers no logout. Returns the response
/// and what the hub now waits for (the LogoutRequest ID, or `oidc` for the provider's
/// redirect back).
pub(crate) async fn logout_upstream(
    state: &AppState,
    headers: &HeaderMap,
    connector_id: &str,
    session: &str,
    handle: &str,
) -> Result<Option<(Response, String)>> {
    let lookup = connector_id.to_string();
    let c = state
        .store
        .read_async(move |c| upstream::get(c, &lookup))
        .await?;
    let now = state.clock.now();
    match c.kind() {
        Some(fedhub_connectors::ConnectorKind::Saml) => {
            let up = upstream::saml_upstream(
                &c,
                &state.config.base_url(),
                clock_skew(state),
                state.clock.now(),
            )?;
            let Ok(s) = serde_json::from_str::<upstream_saml::UpstreamSession>(session) else {
                return Ok(None);
            };
            let signer = xml_signer(state).await?;
            let Some((out, id)) = upstream_saml::logout_request(&up, &s, handle, &signer, now)
                .map_err(|e| Error::Internal(e.to_string()))?
            else {
                return Ok(None);
            };
            Ok(Some((send(state, headers, &c.display_name, out)?, id)))
        }
        Some(fedhub_connectors::ConnectorKind::Oidc) => {
            let Some(url) = crate::web::login::oidc_end_session(state, &c, session, handle).await
            else {
                return Ok(None);
            };
            Ok(Some((Redirect::to(&url).into_response(), OIDC_WAIT.into())))
        }
        _ => Ok(None),
    }
}

/// What a logout waits for while the browser is at an OIDC provider's end-session endpoint.
pub(crate) const OIDC_WAIT: &str = "oidc";

/// The hub's LogoutResponse to an IdP-initiated logout, once every relying party was told
/// (Success: the person is signed out of the hub, whatever the relying parties said).
pub(crate) async fn answer_upstream(
    state: &AppState,
    headers: &HeaderMap,
    connector_id: &str,
    request_id: &str,
    relay_state: Option<&str>,
) -> Result<Option<Response>> {
    let (c, up) = saml_connector(state, connector_id).await?;
    let signer = xml_signer(state).await?;
    let out = upstream_saml::logout_response(
        &up,
        request_id,
        upstream_saml::STATUS_SUCCESS,
        relay_state,
        &signer,
        state.clock.now(),
    )
    .map_err(|e| Error::Internal(e.to_string()))?;
    out.map(|o| send(state, headers, &c.display_name, o))
        .transpose()
}
