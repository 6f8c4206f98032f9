//! The admin API (`/admin/api/v1`): JSON in, JSON or problem+json out, bearer tokens
//! created with `fedhub api-token create`. Every change is audited.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::routing::get;
use axum::{Json, Router};
use fedhub_identifiers::AgencyCode;
use http::request::Parts;
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::WebError;
use super::{request_id_of, AppState};
use crate::audit::{self, Event};
use crate::directory::{accounts, agencies};
use crate::error::Error;
use crate::tokens;

pub fn router(state: AppState) -> Router<AppState> {
    // Reads of the directory and registry: every admin (they add people from the directory).
    let reads = Router::new()
        .route("/agencies", get(list_agencies))
        .route("/agencies/{code}", get(show_agency))
        .route("/accounts", get(find_accounts))
        .route("/accounts/{id}", get(show_account))
        .route("/relying-parties", get(list_rps))
        .route("/relying-parties/{id}", get(show_rp))
        .route("/connectors", get(list_connectors))
        .route("/connectors/{id}", get(show_connector));
    Router::new()
        .merge(reads)
        .merge(registry().route_layer(axum::middleware::from_fn_with_state(state, operator_only)))
        .merge(super::admin_api::router())
        .merge(super::conversion_api::router())
}

/// Changes to the federation registry: the operator's alone (operator tokens; a personal
/// token is refused here whatever its grants).
fn registry() -> Router<AppState> {
    Router::new()
        .route("/agencies", axum::routing::post(add_agency))
        .route("/accounts", axum::routing::post(add_account))
        .route("/relying-parties/saml", axum::routing::post(add_saml_rp))
        .route("/relying-parties/oidc", axum::routing::post(add_oidc_rp))
        .route(
            "/relying-parties/{id}/connectors",
            axum::routing::put(set_rp_connectors),
        )
        .route(
            "/relying-parties/{id}/claim",
            axum::routing::put(set_rp_claim),
        )
        .route(
            "/relying-parties/{id}/webhook",
            axum::routing::put(set_rp_webhook).delete(remove_rp_webhook),
        )
        .route(
            "/relying-parties/{id}/webhook/deliveries",
            get(list_webhook_deliveries),
        )
        .route("/admin-grants/top", axum::routing::post(grant_top_admin))
        .route("/connectors/oidc", axum::routing::post(add_oidc_connector))
        .route(
            "/connectors/certificate",
            axum::routing::post(add_certificate_connector),
        )
        .route(
            "/connectors/simpki",
            axum::routing::post(add_simpki_connector),
        )
        .route("/connectors/saml", axum::routing::post(add_saml_connector))
        .route(
            "/connectors/{id}/enabled",
            axum::routing::put(set_connector_enabled),
        )
}

/// Lets only the federation operator through; a refusal is audited.
async fn operator_only(
    State(state): State<AppState>,
    caller: ApiCaller,
    req: Request,
    next: axum::middleware::Next,
) -> Result<axum::response::Response, WebError> {
    use crate::admin::policy::Action;
    if let Err(e) = caller.admin.check(&Action::ManageRegistry) {
        let now = state.clock.now();
        let event = Event::new(&caller.name, "api.authorize")
            .target(format!("{} {}", req.method(), req.uri().path()))
            .outcome(audit::Outcome::Denied)
            .detail(e.to_string())
            .request(Some(caller.request_id));
        state
            .store
            .write_async(move |c| audit::record(c, &event, now))
            .await
            .map_err(WebError::api)?;
        return Err(WebError::api(e));
    }
    Ok(next.run(req).await)
}

pub(super) type ApiResult<T> = Result<T, WebError>;

/// The caller, authenticated by an API token: an operator token, or a personal token that
/// acts as its account with exactly that account's grants.
pub struct ApiCaller {
    pub name: String,
    pub request_id: String,
    pub admin: crate::admin::memberships::Admin,
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let Some(token) = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Err(WebError::api(Error::Unauthorized(
                "send `Authorization: Bearer <token>`".into(),
            )));
        };
        let token = token.to_string();
        let now = state.clock.now();
        let request_id = request_id_of(&parts.headers);
        let verified = state
            .store
            .read_async(move |c| {
                let owner = tokens::verify_api_token(c, &token, now)?;
                let admin = match &owner.account_id {
                    Some(account) => {
                        let active =
                            crate::directory::accounts::get(c, account)?.status == "active";
                        if !active {
                            return Err(Error::Unauthorized(
                                "the token's account is disabled".into(),
                            ));
                        }
                        let mut a = crate::admin::memberships::Admin::of_account(c, account)?;
                        a.actor = format!("api-token:{}", owner.name);
                        a
                    }
                    None => crate::admin::memberships::Admin::operator(format!(
                        "api-token:{}",
                        owner.name
                    )),
                };
                Ok((owner, admin))
            })
            .await;
        match verified {
            Ok((owner, admin)) => Ok(ApiCaller {
                name: format!("api-token:{}", owner.name),
                request_id,
                admin,
            }),
            Err(e) => {
                // A wrong token is a security event: record it (never the token itself).
                if matches!(e, Error::Unauthorized(_)) {
                    let event = Event::new("api-token:unknown", "api.authenticate")
                        .target(format!("{} {}", parts.method, parts.uri.path()))
                        .outcome(audit::Outcome::Denied)
                        .request(Some(request_id));
                    if let Err(log_err) = state
                        .store
                        .write_async(move |c| audit::record(c, &event, now))
                        .await
                    {
                        tracing::error!(error = %log_err, "could not audit a refused API token");
                    }
                }
                Err(WebError::api(e))
            }
        }
    }
}

/// `Json` whose rejections are problem+json naming what is wrong with the body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(WebError::api(Error::invalid(
                "content-type",
                "must be application/json",
            ))),
            Err(e) => Err(WebError::api(Error::invalid("body", e.body_text()))),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListAgencies {
    parent: Option<String>,
}

async fn list_agencies(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Query(q): Query<ListAgencies>,
) -> ApiResult<Json<Vec<agencies::Agency>>> {
    let parent = q
        .parent
        .as_deref()
        .map(AgencyCode::parse)
        .transpose()
        .map_err(|e| WebError::api(e.into()))?;
    let rows = state
        .store
        .read_async(move |c| agencies::list(c, parent.as_ref()))
        .await
        .map_err(WebError::api)?;
    Ok(Json(rows))
}

async fn show_agency(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(code): Path<String>,
) -> ApiResult<Json<agencies::Agency>> {
    let code = AgencyCode::parse(&code).map_err(|e| WebError::api(e.into()))?;
    let row = state
        .store
        .read_async(move |c| agencies::get(c, &code))
        .await
        .map_err(WebError::api)?;
    Ok(Json(row))
}

async fn add_agency(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(input): ApiJson<agencies::AgencyInput>,
) -> ApiResult<(StatusCode, Json<agencies::Agency>)> {
    let now = state.clock.now();
    let event = Event::new(&caller.name, "agency.add")
        .target(input.code.trim())
        .request(Some(caller.request_id));
    let store = state.store.clone();
    let row = tokio::task::spawn_blocking(move || {
        audit::audited(&store, event, now, |c| {
            agencies::add(c, &input.validate()?, now)
        })
    })
    .await
    .map_err(|e| WebError::api(Error::internal(e)))?
    .map_err(WebError::api)?;
    Ok((StatusCode::CREATED, Json(row)))
}

#[derive(Debug, Deserialize)]
struct FindAccounts {
    q: Option<String>,
    limit: Option<i64>,
}

async fn find_accounts(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Query(q): Query<FindAccounts>,
) -> ApiResult<Json<Vec<accounts::Account>>> {
    let query = q.q.unwrap_or_default();
    let limit = q.limit.unwrap_or(50);
    let rows = state
        .store
        .read_async(move |c| accounts::find(c, &query, limit))
        .await
        .map_err(WebError::api)?;
    Ok(Json(rows))
}

async fn show_account(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<accounts::Account>> {
    let row = state
        .store
        .read_async(move |c| accounts::get(c, &id))
        .await
        .map_err(WebError::api)?;
    Ok(Json(row))
}

async fn add_account(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(input): ApiJson<accounts::AccountInput>,
) -> ApiResult<(StatusCode, Json<accounts::Account>)> {
    let now = state.clock.now();
    let event = Event::new(&caller.name, "account.add")
        .target(input.key_identifier())
        .request(Some(caller.request_id));
    let store = state.store.clone();
    let row = tokio::task::spawn_blocking(move || {
        audit::audited(&store, event, now, |c| {
            accounts::add(c, &input.validate()?, now)
        })
    })
    .await
    .map_err(|e| WebError::api(Error::internal(e)))?
    .map_err(WebError::api)?;
    Ok((StatusCode::CREATED, Json(row)))
}

async fn list_rps(
    State(state): State<AppState>,
    _caller: ApiCaller,
) -> ApiResult<Json<Vec<crate::rp::RelyingParty>>> {
    let rows = state
        .store
        .read_async(crate::rp::list)
        .await
        .map_err(WebError::api)?;
    Ok(Json(rows))
}

async fn show_rp(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<crate::rp::RelyingParty>> {
    let row = state
        .store
        .read_async(move |c| crate::rp::get(c, &id))
        .await
        .map_err(WebError::api)?;
    Ok(Json(row))
}

/// Registers a SAML SP: `metadata_xml` inline, or `metadata_url` to fetch it from.
async fn add_saml_rp(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(mut reg): ApiJson<crate::rp::saml::SamlRegistration>,
) -> ApiResult<(StatusCode, Json<crate::rp::RelyingParty>)> {
    let now = state.clock.now();
    let target = reg
        .metadata_url
        .clone()
        .unwrap_or_else(|| "(inline metadata)".into());
    let event = Event::new(&caller.name, "rp.add_saml")
        .target(target)
        .request(Some(caller.request_id));
    if reg.metadata_xml.trim().is_empty() {
        if let Some(url) = reg.metadata_url.clone() {
            let fetched = crate::fetch::get(
                "metadata_url",
                &url,
                1024 * 1024,
                std::time::Duration::from_secs(15),
            )
            .await;
            match fetched.and_then(|b| {
                String::from_utf8(b).map_err(|_| Error::invalid("metadata_url", "not UTF-8"))
            }) {
                Ok(xml) => reg.metadata_xml = xml,
                Err(e) => {
                    let failed = event.outcome(audit::Outcome::Failure).detail(e.to_string());
                    let _ = state
                        .store
                        .write_async(move |c| audit::record(c, &failed, now))
                        .await;
                    return Err(WebError::api(e));
                }
            }
        }
    }
    let federation = state
        .config
        .federation_certs()
        .map_err(|e| WebError::api(Error::Internal(e.to_string())))?;
    let store = state.store.clone();
    let row = tokio::task::spawn_blocking(move || {
        audit::audited(&store, event, now, |c| {
            crate::rp::saml::add_under(c, &reg, &federation, now)
        })
    })
    .await
    .map_err(|e| WebError::api(Error::internal(e)))?
    .map_err(WebError::api)?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Registers an OIDC client; the response carries the secret this once.
async fn add_oidc_rp(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(mut reg): ApiJson<crate::rp::oidc::OidcRegistration>,
) -> ApiResult<(StatusCode, Json<crate::rp::oidc::Registered>)> {
    let now = state.clock.now();
    if reg.signing_alg.is_none() {
        reg.signing_alg = Some(state.config.keys.oidc_algorithm.clone());
    }
    let target = reg
        .client_id
        .clone()
        .unwrap_or_else(|| "(generated)".into());
    let event = Event::new(&caller.name, "rp.add_oidc")
        .target(target)
        .request(Some(caller.request_id));
    let store = state.store.clone();
    let done = tokio::task::spawn_blocking(move || {
        audit::audited(&store, event, now, |c| crate::rp::oidc::add(c, &reg, now))
    })
    .await
    .map_err(|e| WebError::api(Error::internal(e)))?
    .map_err(WebError::api)?;
    Ok((StatusCode::CREATED, Json(done)))
}

/// Runs an audited change on the blocking pool and maps its error to problem+json.
pub(super) async fn audited_api<T: Send + 'static>(
    state: &AppState,
    event: Event,
    f: impl FnOnce(&mut crate::store::Db) -> crate::error::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let now = state.clock.now();
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || audit::audited(&store, event, now, f))
        .await
        .map_err(|e| WebError::api(Error::internal(e)))?
        .map_err(WebError::api)
}

async fn list_connectors(
    State(state): State<AppState>,
    _caller: ApiCaller,
) -> ApiResult<Json<Vec<crate::upstream::Connector>>> {
    let rows = state
        .store
        .read_async(crate::upstream::list)
        .await
        .map_err(WebError::api)?;
    Ok(Json(rows))
}

async fn show_connector(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<crate::upstream::Connector>> {
    let row = state
        .store
        .read_async(move |c| crate::upstream::get(c, &id))
        .await
        .map_err(WebError::api)?;
    Ok(Json(row))
}

/// Registers an OIDC upstream; its client secret is sealed and never shown again.
async fn add_oidc_connector(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(reg): ApiJson<crate::upstream::OidcRegistration>,
) -> ApiResult<(StatusCode, Json<crate::upstream::Connector>)> {
    let now = state.clock.now();
    let vault = state.vault().map_err(WebError::api)?;
    let event = Event::new(&caller.name, "connector.add_oidc")
        .target(reg.id.clone())
        .request(Some(caller.request_id));
    let c = audited_api(&state, event, move |c| {
        crate::upstream::add_oidc(c, &vault, &reg, now)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// Registers the USB-token certificate connector (trust anchors as PEM text).
async fn add_certificate_connector(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(reg): ApiJson<crate::upstream::CertificateRegistration>,
) -> ApiResult<(StatusCode, Json<crate::upstream::Connector>)> {
    let now = state.clock.now();
    let event = Event::new(&caller.name, "connector.add_certificate")
        .target(reg.id.clone())
        .request(Some(caller.request_id));
    let c = audited_api(&state, event, move |c| {
        crate::upstream::add_certificate(c, &reg, now)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// Registers a SIM-PKI provider; its API key is sealed and never shown again.
async fn add_simpki_connector(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(reg): ApiJson<crate::upstream::SimPkiRegistration>,
) -> ApiResult<(StatusCode, Json<crate::upstream::Connector>)> {
    let now = state.clock.now();
    let vault = state.vault().map_err(WebError::api)?;
    let event = Event::new(&caller.name, "connector.add_simpki")
        .target(reg.id.clone())
        .request(Some(caller.request_id));
    let c = audited_api(&state, event, move |c| {
        crate::upstream::add_simpki(c, &vault, &reg, now)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

async fn add_saml_connector(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(reg): ApiJson<crate::upstream::SamlRegistration>,
) -> ApiResult<(StatusCode, Json<crate::upstream::Connector>)> {
    let now = state.clock.now();
    let event = Event::new(&caller.name, "connector.add_saml")
        .target(reg.id.clone())
        .request(Some(caller.request_id));
    let c = audited_api(&state, event, move |c| {
        crate::upstream::add_saml(c, &reg, now)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Enabled {
    enabled: bool,
}

async fn set_connector_enabled(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Enabled>,
) -> ApiResult<Json<crate::upstream::Connector>> {
    let now = state.clock.now();
    let action = if body.enabled {
        "connector.enable"
    } else {
        "connector.disable"
    };
    let event = Event::new(&caller.name, action)
        .target(id.clone())
        .request(Some(caller.request_id));
    let c = audited_api(&state, event, move |c| {
        crate::upstream::set_enabled(c, &id, body.enabled, now)
    })
    .await?;
    Ok(Json(c))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowedConnectors {
    connectors: Vec<String>,
}

/// Sets the connectors a relying party offers (an empty list: every enabled one).
async fn set_rp_connectors(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AllowedConnectors>,
) -> ApiResult<StatusCode> {
    let event = Event::new(&caller.name, "rp.connectors")
        .target(id.clone())
        .detail(body.connectors.join(","))
        .request(Some(caller.request_id));
    audited_api(&state, event, move |c| {
        crate::upstream::allow_for_rp(c, &id, &body.connectors)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimSwitch {
    enabled: bool,
}

/// Turns the self-service claim of legacy accounts (`/claim/{id}`) on or off.
async fn set_rp_claim(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ClaimSwitch>,
) -> ApiResult<Json<crate::rp::RelyingParty>> {
    let now = state.clock.now();
    let event = Event::new(&caller.name, "rp.claim")
        .target(id.clone())
        .rp(id.clone())
        .detail(if body.enabled { "on" } else { "off" })
        .request(Some(caller.request_id));
    let rp = audited_api(&state, event, move |c| {
        crate::rp::set_claim_enabled(c, &id, body.enabled, now)
    })
    .await?;
    Ok(Json(rp))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookUrl {
    url: String,
}

/// Registers (or replaces) a relying party's conversion webhook; the answer carries its
/// signing secret, shown this once.
async fn set_rp_webhook(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WebhookUrl>,
) -> ApiResult<Json<crate::conversion::webhook::Registered>> {
    let now = state.clock.now();
    let vault = state.vault().map_err(WebError::api)?;
    let event = Event::new(&caller.name, "rp.webhook.set")
        .target(id.clone())
        .rp(id.clone())
        .detail(body.url.clone())
        .request(Some(caller.request_id));
    let registered = audited_api(&state, event, move |c| {
        crate::conversion::webhook::set(c, &vault, &id, &body.url, now)
    })
    .await?;
    Ok(Json(registered))
}

async fn remove_rp_webhook(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let now = state.clock.now();
    let event = Event::new(&caller.name, "rp.webhook.remove")
        .target(id.clone())
        .rp(id.clone())
        .request(Some(caller.request_id));
    audited_api(&state, event, move |c| {
        crate::conversion::webhook::remove(c, &id, now)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The webhook's deliveries, newest first: status, attempts, the last error.
async fn list_webhook_deliveries(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<crate::conversion::webhook::Delivery>>> {
    state
        .store
        .read_async(move |c| crate::conversion::webhook::deliveries(c, &id, 100))
        .await
        .map(Json)
        .map_err(WebError::api)
}

/// The federation operator grants top admin of a ministry or province for one relying party.
async fn grant_top_admin(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(req): ApiJson<crate::directory::admin_grants::TopGrant>,
) -> ApiResult<(StatusCode, Json<crate::directory::admin_grants::Grant>)> {
    let now = state.clock.now();
    let event = Event::new(&caller.name, "admin.grant_top")
        .target(format!("account:{}", req.account_id))
        .rp(req.rp_id.clone())
        .detail(req.scope_agency_code.clone())
        .request(Some(caller.request_id));
    let g = audited_api(&state, event, move |c| {
        crate::directory::admin_grants::grant_top(c, &req, now)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(g)))
}

/// Revokes a grant: the operator any, an admin only what they could have granted.
pub(super) async fn revoke_admin_grant(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let now = state.clock.now();
    let event = Event::new(&caller.name, "admin.revoke")
        .target(id.clone())
        .request(Some(caller.request_id));
    let admin = caller.admin;
    audited_api(&state, event, move |c| {
        crate::admin::grants::revoke(c, &admin, &id, now)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
