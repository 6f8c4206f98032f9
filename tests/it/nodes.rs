//! Several nodes on one PostgreSQL database: each node is its own `AppState` with its own
//! connection pool and in-memory caches (as separate `fedhub serve` processes would be), and
//! every step of a login goes to the other node than the step before. What one node started,
//! the other finishes; what must happen once (a login, a code, a refresh token) happens once
//! across nodes.

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{header, Request, StatusCode};

use crate::oidc_support::{self, jwt_claims, pkce, query_of, OidcHub, REDIRECT};
use crate::sp::default_sp;
use crate::sso::{authn_request_uri, get, send, Reply, CITIZEN};
use crate::support::{self, NOW};

/// Node `n` of `nodes`, round robin: step k of a login goes to node k mod n.
struct RoundRobin {
    nodes: Vec<Router>,
    next: std::cell::Cell<usize>,
}

impl RoundRobin {
    fn new(nodes: Vec<Router>) -> RoundRobin {
        RoundRobin {
            nodes,
            next: std::cell::Cell::new(0),
        }
    }

    /// The node for the next request (never the one of the request before).
    fn node(&self) -> &Router {
        let i = self.next.get();
        self.next.set(i + 1);
        &self.nodes[i % self.nodes.len()]
    }
}

fn node_over(store: fedhub::store::Store, hub: &OidcHub) -> Router {
    let state = fedhub::web::AppState::new(
        (*hub.state.config).clone(),
        store,
        Arc::new(hub.clock.clone()),
    )
    .unwrap();
    fedhub::web::router(state)
}

fn basic(hub: &OidcHub) -> String {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    let pair = format!(
        "{}:{}",
        hub.client_id,
        hub.secret.clone().unwrap_or_default()
    );
    format!("Basic {}", STANDARD.encode(pair))
}

async fn token_at(app: &Router, hub: &OidcHub, form: String) -> Reply {
    let req = Request::post("/oidc/token")
        .header(header::AUTHORIZATION, basic(hub))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    send(app, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oidc_login_hops_between_three_nodes_and_single_use_holds_across_them() {
    let store = tokio::task::spawn_blocking(support::postgres)
        .await
        .unwrap();
    let (b, c) = (store.another_node(), store.another_node());
    let mut reg = oidc_support::default_registration();
    reg.scopes = Some(vec![
        "openid".into(),
        "profile".into(),
        "offline_access".into(),
    ]);
    let hub = tokio::task::spawn_blocking(move || {
        oidc_support::oidc_hub_at(store, "http://127.0.0.1:8080", reg)
    })
    .await
    .unwrap();
    let nodes = RoundRobin::new(vec![
        hub.app.clone(),
        node_over(b, &hub),
        node_over(c, &hub),
    ]);

    // authorize (node 1) → login page (node 2) → demo sign-in (node 3).
    let (verifier, challenge) = pkce();
    let to_login = send(nodes.node(), get(&hub.authorize_uri(&challenge, ""), &[])).await;
    assert_eq!(to_login.status, StatusCode::SEE_OTHER, "{}", to_login.body);
    let login = to_login.location().split('?').next().unwrap().to_string();
    let bind = to_login.cookie("fedhub_login").unwrap();
    let page = send(nodes.node(), get(&login, &[("fedhub_login", &bind)])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let form = || {
        Request::post(format!("{login}/dev"))
            .header(header::COOKIE, format!("fedhub_login={bind}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("national_id={CITIZEN}")))
            .unwrap()
    };
    let back = send(nodes.node(), form()).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert!(back.location().starts_with(REDIRECT), "{}", back.location());
    // The same sign-in posted again to another node finds the login used.
    let again = send(nodes.node(), form()).await;
    assert_ne!(
        again.status,
        StatusCode::SEE_OTHER,
        "a login is finished once: {}",
        again.body
    );

    // The code, redeemed on one node, is refused on the next, and the reuse revokes what the
    // code issued, everywhere.
    let code = query_of(back.location())["code"].clone();
    let redeem = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={verifier}",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let first = token_at(nodes.node(), &hub, redeem.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let tokens: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], hub.client_id.as_str());
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();

    // userinfo on another node.
    let info = send(
        nodes.node(),
        Request::get("/oidc/userinfo")
            .header(header::AUTHORIZATION, format!("Bearer {access}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    let info: serde_json::Value = serde_json::from_str(&info.body).unwrap();
    assert_eq!(info["sub"], id["sub"]);

    // Refresh on one node; the old refresh token replayed on another is refused and ends the
    // family, so the new one stops working on a third.
    let rotated = token_at(
        nodes.node(),
        &hub,
        format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let rotated: serde_json::Value = serde_json::from_str(&rotated.body).unwrap();
    let newer = rotated["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(newer, refresh);
    let replay = token_at(
        nodes.node(),
        &hub,
        format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.body);
    assert!(replay.body.contains("invalid_grant"), "{}", replay.body);
    let after = token_at(
        nodes.node(),
        &hub,
        format!("grant_type=refresh_token&refresh_token={newer}"),
    )
    .await;
    assert_eq!(after.status, StatusCode::BAD_REQUEST, "{}", after.body);

    // The code again, on yet another node.
    let reused = token_at(nodes.node(), &hub, redeem).await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST, "{}", reused.body);
    assert!(reused.body.contains("invalid_grant"), "{}", reused.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saml_login_hops_between_two_nodes_and_sso_holds_on_both() {
    let store = tokio::task::spawn_blocking(support::postgres)
        .await
        .unwrap();
    let other = store.another_node();
    let sp = default_sp();
    let clock: fedhub::clock::SharedClock = Arc::new(fedhub::clock::ManualClock::at(NOW));
    let metadata = sp.metadata();
    let (a, _store, clock) = tokio::task::spawn_blocking(move || {
        let (app, _, _) = crate::sso::hub_with(&store, &metadata, false, clock.clone());
        (app, store, clock)
    })
    .await
    .unwrap();
    let b = fedhub::web::router(
        fedhub::web::AppState::new(support::test_config(), other, clock).unwrap(),
    );
    let nodes = RoundRobin::new(vec![a, b]);
    let authn = |id: &str| authn_request_uri(&sp, id);

    // AuthnRequest (node A) → login page (node B) → sign-in (node A).
    let r = send(nodes.node(), get(&authn("_n-1"), &[])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let login = r.location().to_string();
    let bind = r.cookie("fedhub_login").unwrap();
    let page = send(nodes.node(), get(&login, &[("fedhub_login", &bind)])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let post = || {
        Request::post(format!("{login}/dev"))
            .header(header::COOKIE, format!("fedhub_login={bind}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("national_id={CITIZEN}")))
            .unwrap()
    };
    let answer = send(nodes.node(), post()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let xml = answer.saml_response();
    assert!(xml.contains(r#"InResponseTo="_n-1""#), "{xml}");
    let sso = answer.cookie("fedhub_sso").expect("an SSO session");
    // Posted again, to the other node: the login is used.
    let again = send(nodes.node(), post()).await;
    assert_ne!(again.status, StatusCode::OK, "{}", again.body);

    // Single sign-on: a second request, to either node, is answered without a login page.
    for id in ["_n-2", "_n-3"] {
        let r = send(nodes.node(), get(&authn(id), &[("fedhub_sso", &sso)])).await;
        assert_eq!(r.status, StatusCode::OK, "{id}: {}", r.body);
        assert!(r
            .saml_response()
            .contains(&format!(r#"InResponseTo="{id}""#)));
    }
}
