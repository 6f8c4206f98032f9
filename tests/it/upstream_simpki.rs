//! Signing in with a SIM-PKI card through the hub, against the shipped provider simulator on
//! a loopback port: the person gives their number, the page waits (refreshing itself) while
//! the phone confirms, then the signature and certificate are checked as for a USB token.

use std::time::Duration;

use fedhub::clock::{Clock, SystemClock};
use fedhub::simpki_simulator::Simulator;
use fedhub_connectors::certificate::CertificateConfig;
use http::{header, Request, StatusCode};

use crate::oidc_support::*;
use crate::sso::{get as get_req, send, Reply, CITIZEN};
use crate::support::NOW;

const PHONE: &str = "+84912345671";

async fn setup() -> (OidcHub, Simulator) {
    let sim = Simulator::new(Duration::from_millis(200), "sim-key-1".into()).unwrap();
    sim.add_subscriber(PHONE, CITIZEN, "Nguyễn Văn An").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(fedhub::simpki_simulator::serve(listener, sim.clone()));
    let hub = oidc_hub(default_registration());
    // The simulator's certificates and CRL carry the real time.
    hub.clock.advance(SystemClock.now() - NOW);
    let reg = fedhub::upstream::SimPkiRegistration {
        id: "sim".into(),
        display_name: "SIM ký số".into(),
        provider_url: url,
        api_key: "sim-key-1".into(),
        certificate: CertificateConfig::new(vec![sim.ca_pem()]),
    };
    let rp_id = hub.rp_id.clone();
    let now = hub.clock.now();
    hub.store
        .write(|c| {
            fedhub::upstream::add_simpki(c, &crate::support::vault(), &reg, now)?;
            fedhub::upstream::allow_for_rp(c, &rp_id, &["sim".to_string()])
        })
        .unwrap();
    (hub, sim)
}

fn post(path: &str, bind: &str, body: String) -> Request<axum::body::Body> {
    Request::post(path)
        .header(header::COOKIE, format!("fedhub_login={bind}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(body))
        .unwrap()
}

/// Gateway request → phone form → number sent → the waiting page, polled until it answers.
/// Returns the final reply, the PKCE verifier and the number of waiting pages seen.
async fn with_phone(hub: &OidcHub, phone: &str) -> (Reply, String, usize) {
    let (verifier, challenge) = pkce();
    let r = send(&hub.app, get_req(&hub.authorize_uri(&challenge, ""), &[])).await;
    let login = r.location().to_string();
    let bind = r.cookie("fedhub_login").unwrap();
    let form = send(
        &hub.app,
        post(&format!("{login}/sim"), &bind, String::new()),
    )
    .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(form.body.contains("name=\"msisdn\""), "asks for the number");
    let sent = send(
        &hub.app,
        post(
            &format!("{login}/sim/phone"),
            &bind,
            format!("msisdn={}", enc(phone)),
        ),
    )
    .await;
    if sent.status != StatusCode::SEE_OTHER {
        return (sent, verifier, 0);
    }
    let wait = sent.location().to_string();
    let mut pages = 0;
    for _ in 0..50 {
        let r = send(&hub.app, get_req(&wait, &[("fedhub_login", &bind)])).await;
        if r.status == StatusCode::OK && r.body.contains("http-equiv=\"refresh\"") {
            pages += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        return (r, verifier, pages);
    }
    panic!("the phone never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_confirms_on_the_phone_and_arrives_at_the_gateway() {
    let (hub, _sim) = setup().await;
    // A local way of writing the number works too.
    let (back, verifier, pages) = with_phone(&hub, "0912 345 671").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert!(back.location().starts_with(REDIRECT));
    assert!(
        pages >= 1,
        "the browser waited on a page that updates itself"
    );
    let code = query_of(back.location())["code"].clone();
    let tokens = hub.redeem(&code, &verifier).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["national_id"], CITIZEN);
    assert_eq!(id["acr"], "urn:fedhub:acr:simpki");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declining_on_the_phone_reaches_the_gateway_as_access_denied() {
    let (hub, _sim) = setup().await;
    let (back, _, _) = with_phone(&hub, "+84912345670").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert_eq!(query_of(back.location())["error"], "access_denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_card_an_unknown_number_and_a_bad_number_get_pages() {
    let (hub, sim) = setup().await;
    sim.revoke(PHONE).unwrap();
    let (back, _, _) = with_phone(&hub, PHONE).await;
    assert_eq!(back.status, StatusCode::BAD_REQUEST, "{}", back.body);
    // The reason in the page's language (Vietnamese here); the audit log keeps the English one.
    assert!(
        back.body.contains("Chứng thư số đã bị thu hồi"),
        "{}",
        back.body
    );
    assert!(back.cookie("fedhub_sso").is_none());
    let (unknown, _, _) = with_phone(&hub, "+84987654321").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.body);
    let (bad, _, _) = with_phone(&hub, "12345").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_never_confirms_times_out_with_a_page() {
    let (hub, _sim) = setup().await;
    let (verifier, challenge) = pkce();
    let _ = verifier;
    let r = send(&hub.app, get_req(&hub.authorize_uri(&challenge, ""), &[])).await;
    let login = r.location().to_string();
    let bind = r.cookie("fedhub_login").unwrap();
    send(
        &hub.app,
        post(&format!("{login}/sim"), &bind, String::new()),
    )
    .await;
    let sent = send(
        &hub.app,
        post(
            &format!("{login}/sim/phone"),
            &bind,
            "msisdn=%2B84912345679".into(),
        ),
    )
    .await;
    let wait = sent.location().to_string();
    let still = send(&hub.app, get_req(&wait, &[("fedhub_login", &bind)])).await;
    assert_eq!(still.status, StatusCode::OK, "still waiting");
    // The challenge lives 5 minutes.
    hub.clock.advance(301);
    let late = send(&hub.app, get_req(&wait, &[("fedhub_login", &bind)])).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST, "{}", late.body);
    assert!(late.body.contains("did not confirm in time"));
}
