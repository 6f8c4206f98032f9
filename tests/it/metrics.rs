//! `/metrics` counts logins by protocol, relying party, connector and outcome, with their
//! duration; the Grafana dashboard in `examples/grafana` asks only for series the hub exports.

use http::StatusCode;

use crate::oidc_support::{self, oidc_hub, pkce, registration, REDIRECT};
use crate::sso::{get, send, CITIZEN};

/// The value of the sample named exactly `series` (name and labels) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

#[tokio::test]
async fn a_signed_in_and_a_refused_oidc_login_are_counted_with_their_duration() {
    let hub = oidc_hub(oidc_support::default_registration());
    // Signed in, 3 seconds after the gateway sent the browser.
    let (_, challenge) = pkce();
    let r = send(&hub.app, get(&hub.authorize_uri(&challenge, ""), &[])).await;
    hub.clock.advance(3);
    let back = hub.sign_in(&r, CITIZEN).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert!(back.location().starts_with(REDIRECT), "{}", back.location());
    // Refused: a gateway that admits its activated members only, and the citizen is none.
    let members_only = hub.add_client(fedhub::rp::oidc::OidcRegistration {
        require_activated_membership: Some(true),
        ..registration("members-only", "https://members.example/cb")
    });
    let (_, challenge) = pkce();
    let r = send(
        &hub.app,
        get(
            &hub.authorize_for(&members_only, "openid", &challenge, ""),
            &[],
        ),
    )
    .await;
    let refused = hub.sign_in(&r, CITIZEN).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    let scrape = send(&hub.app, get("/metrics", &[])).await;
    assert_eq!(scrape.status, StatusCode::OK);
    let m = &scrape.body;
    let ok = r#"protocol="oidc",rp="cong-dvc-quang-ninh",connector="dev",outcome="success""#;
    let no = r#"protocol="oidc",rp="members-only",connector="dev",outcome="refused""#;
    assert_eq!(
        sample(m, &format!(r#"fedhub_logins_total{{{ok},reason="none"}}"#)),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            m,
            &format!(r#"fedhub_logins_total{{{no},reason="not_member"}}"#)
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        m.matches("fedhub_logins_total{").count(),
        2,
        "one series per login, nothing else: {m}"
    );
    // The duration: from the gateway's request to the answer, by the hub's clock.
    assert_eq!(
        sample(m, &format!("fedhub_login_duration_seconds_count{{{ok}}}")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(m, &format!("fedhub_login_duration_seconds_sum{{{ok}}}")),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        sample(
            m,
            &format!(r#"fedhub_login_duration_seconds_bucket{{le="2.0",{ok}}}"#)
        ),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        sample(
            m,
            &format!(r#"fedhub_login_duration_seconds_bucket{{le="5.0",{ok}}}"#)
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(m, &format!("fedhub_login_duration_seconds_count{{{no}}}")),
        Some(1.0),
        "{m}"
    );
}
