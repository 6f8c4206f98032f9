//! The demo's guided tour in a real browser: the hub seeded as `fedhub demo` seeds it, the
//! example ministry portal (SAML SP) and provincial gateway (OIDC RP) registered and seeded by
//! the demo's own code (`demo::portals::seed`), all on loopback ports, and headless Chromium
//! (Debian's, driven by playwright-core from `tests/e2e/tour.mjs`) walking the tour: sign in
//! at the ministry portal, single sign-on at the gateway, sign out everywhere, the province
//! admin activating a member in the console; then the refusals a person meets: a member not
//! yet activated, a revoked certificate, an admin acting outside their province. Screenshots
//! of every step are kept under `$CARGO_TARGET_DIR/e2e-screenshots/tour/` for CI.
//!
//! The portals run in-process here (the demo runs the same programs as child processes).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::prelude::*;
use fedhub::demo::portals;
use fedhub::store::schema;
use fedhub_connectors::certificate::{sign_challenge, CertificateConfig};

use crate::console_browser::{every_step_ran, node_modules, run_browser, screenshot_dir};
use crate::upstream_certificate::{ca, crl, crl_server, leaf};

/// The steps of `tour.mjs`, each with its screenshot.
const STEPS: usize = 11;
/// The revoked certificate's serial (listed in the CRL the test serves).
const REVOKED_SERIAL: u32 = 66;

/// A loopback stand-in for the USB token's signing tool: signs the challenge it is given
/// with a certificate the CA has revoked. (A real token signs with the person's key after
/// asking for the PIN; `fedhub sign-challenge` is the command-line version.)
async fn token_signer(key: Vec<u8>, chain: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sign", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/sign",
        axum::routing::post(move |challenge: String| {
            let (key, chain) = (key.clone(), chain.clone());
            async move {
                sign_challenge(challenge.trim(), &key, &chain)
                    .unwrap()
                    .to_json()
                    .unwrap()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_tour_in_headless_chromium() {
    let modules = node_modules();
    let dir = tempfile::tempdir().unwrap();

    // The hub, prepared as `fedhub demo` prepares it.
    let hub_listener = fedhub::web::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let hub_addr = hub_listener.local_addr().unwrap();
    let hub_url = format!("http://{hub_addr}");
    let mut config = fedhub::config::Config::default();
    config.server.listen = hub_addr.to_string();
    config.server.public_url = hub_url.clone();
    config.cookies.secure = false;
    let data = dir.path().join("hub");
    let demo = tokio::task::spawn_blocking(move || fedhub::demo::prepare(&data, config))
        .await
        .unwrap()
        .unwrap();

    // The two portals, seeded by the demo's code.
    let portal_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let portal_addr = portal_listener.local_addr().unwrap();
    let gateway_addr = gateway_listener.local_addr().unwrap();
    let (portal_url, gateway_url) = (
        format!("http://{portal_addr}"),
        format!("http://{gateway_addr}"),
    );
    let mut portal_config = fedhub_example_ministry_portal::Config::new(portal_addr, &hub_url);
    portal_config.data_dir = Some(dir.path().join("ministry-portal"));
    let metadata = fedhub_example_ministry_portal::metadata(&portal_config).unwrap();
    let secret = {
        let (store, gateway_url) = (demo.store.clone(), gateway_url.clone());
        let vault = demo.config.at_rest_key().unwrap().unwrap();
        tokio::task::spawn_blocking(move || {
            portals::seed(&store, &vault, &metadata, &gateway_url, crate::support::NOW)
        })
        .await
        .unwrap()
        .unwrap()
    };

    // A USB-token connector trusting a test CA whose CRL revokes one certificate; the gateway
    // offers it next to the demo accounts.
    let crl_body = Arc::new(Mutex::new(None));
    let crl_url = crl_server(crl_body.clone()).await;
    let root = ca(&crl_url);
    *crl_body.lock().unwrap() = Some(crl(&root, &[REVOKED_SERIAL]));
    let (revoked_key, revoked_chain) = leaf(
        &root,
        REVOKED_SERIAL,
        &format!("CCCD:{}", fedhub::demo::CITIZEN_AN),
        crate::support::NOW + 86_400 * 365,
    );
    let signer = token_signer(revoked_key, revoked_chain).await;
    let gateway_rp = demo
        .store
        .read(|c| {
            Ok(schema::relying_parties::table
                .filter(schema::relying_parties::entity_id.eq(portals::GATEWAY_CLIENT_ID))
                .select(schema::relying_parties::id)
                .get_result::<String>(c)?)
        })
        .unwrap();
    demo.store
        .write(|c| {
            let reg = fedhub::upstream::CertificateRegistration {
                id: "usb".into(),
                display_name: "Chứng thư số (USB ký số)".into(),
                config: CertificateConfig::new(vec![root.cert_pem()]),
            };
            fedhub::upstream::add_certificate(c, &reg, crate::support::NOW)?;
            fedhub::upstream::allow_for_rp(c, &gateway_rp, &["demo".into(), "usb".into()])
        })
        .unwrap();

    // Serve everything.
    let state = fedhub::web::AppState::new(
        demo.config.clone(),
        demo.store.clone(),
        Arc::new(fedhub::clock::SystemClock),
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(fedhub::web::serve(
        hub_listener,
        state,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(2),
    ));
    let portal = fedhub_example_ministry_portal::app(portal_config)
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(portal_listener, portal).await });
    let gateway_config = fedhub_example_province_gateway::Config {
        listen: gateway_addr,
        public_url: gateway_url.clone(),
        issuer: hub_url.clone(),
        client_id: portals::GATEWAY_CLIENT_ID.into(),
        client_secret: secret,
        scopes: fedhub_example_province_gateway::DEFAULT_SCOPES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        show_tokens: false,
    };
    tokio::spawn(async move {
        fedhub_example_province_gateway::serve(
            gateway_listener,
            gateway_config,
            std::future::pending(),
        )
        .await
    });

    // Who is who in the tour.
    let member_of = |account_national_id: &str, rp: &str| {
        let (nid, rp) = (account_national_id.to_string(), rp.to_string());
        demo.store
            .read(move |c| {
                use schema::{accounts as a, memberships as m};
                Ok(m::table
                    .inner_join(a::table)
                    .filter(a::national_id.eq(&nid))
                    .filter(m::rp_id.eq(&rp))
                    .select(m::id)
                    .get_result::<String>(c)?)
            })
            .unwrap()
    };
    let cuong_member = member_of(fedhub::demo::CITIZEN_CUONG, &gateway_rp);
    let binh_member = member_of(fedhub::demo::CITIZEN_BINH, &gateway_rp);

    let shots = screenshot_dir("tour");
    let _ = std::fs::remove_dir_all(&shots);
    let input = serde_json::json!({
        "hub": hub_url,
        "portal": portal_url,
        "gateway": gateway_url,
        "signer": signer,
        "screenshots": shots,
        "gateway_rp": gateway_rp,
        "citizen": "Nguyễn Văn An",
        "inactive": "Trần Thị Bình",
        "admin": portals::ADMIN_NAME,
        "to_activate": { "name": "Lê Minh Cường", "membership": cuong_member },
        "outside": { "name": "Trần Thị Bình", "membership": binh_member },
        "unit": "Cục Thuế",
        "role": portals::STAFF_ROLE,
    });
    let (ok, output, elapsed) =
        tokio::task::spawn_blocking(move || run_browser("tour.mjs", &modules, &input))
            .await
            .unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        ok,
        "the tour failed in the browser ({elapsed:?}; screenshots in {}):\n{output}",
        shots.display()
    );
    every_step_ran(STEPS, &output, &shots);

    // The database agrees: the admin activated Cường, Bình stays as she was, and the
    // refusals are in the audit log.
    let status = |id: &str| {
        let id = id.to_string();
        demo.store
            .read(move |c| {
                Ok(schema::memberships::table
                    .find(&id)
                    .select(schema::memberships::status)
                    .get_result::<String>(c)?)
            })
            .unwrap()
    };
    assert_eq!(status(&cuong_member), "activated");
    assert_eq!(status(&binh_member), "not_activated");
    let entries = demo.store.read(|c| fedhub::audit::tail(c, 500)).unwrap();
    assert!(
        entries.iter().any(|e| e.action == "membership.activate"
            && e.outcome == "denied"
            && e.target.as_deref() == Some(&format!("membership:{binh_member}"))),
        "the out-of-scope activation is audited as denied"
    );
    assert!(
        entries
            .iter()
            .any(|e| e.action == "login" && e.outcome != "success"),
        "the refused sign-ins are audited"
    );
}
