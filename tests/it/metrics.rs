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

/// The sample names a scrape shows (`fedhub_logins_total`, `…_bucket`, …).
fn exported(scrape: &str) -> std::collections::BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Metric names in a PromQL expression: identifiers used as selectors (before `{` or `[`)
/// and any `fedhub_` identifier (e.g. in `label_values(…)`). Strings are skipped.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:$".contains(chars[i]))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if word.starts_with("fedhub_") || matches!(next, Some('{') | Some('[')) {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[tokio::test]
async fn the_grafana_dashboard_asks_only_for_series_the_hub_exports() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/grafana/fedhub-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // A hub that has answered requests and finished a login, so that every family has samples.
    let hub = oidc_hub(oidc_support::default_registration());
    hub.code().await;
    let scrape = send(&hub.app, get("/metrics", &[])).await.body;
    let exported = exported(&scrape);
    assert!(exported.contains("fedhub_logins_total"), "{scrape}");

    // The Prometheus data source is a variable, and every query uses it.
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "{variables:?}"
    );
    let mut exprs = Vec::new();
    for v in variables.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"]["uid"], "${datasource}");
        exprs.push(v["definition"].as_str().unwrap().to_string());
    }
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 6, "{}", panels.len());
    for panel in panels {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        for t in panel["targets"].as_array().unwrap() {
            assert_eq!(
                t["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no fedhub metric in {expr}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{name} (in {expr}) is not exported; the hub exports {exported:?}"
            );
        }
    }
    // The checker itself catches a name the hub does not export.
    assert_eq!(
        metric_names(r#"sum(rate(fedhub_login_total{outcome="x"}[5m])) / up[1m]"#),
        ["fedhub_login_total", "up"]
    );
    assert!(!exported.contains("fedhub_login_total"));
}
