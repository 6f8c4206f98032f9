//! The OpenID Provider end to end (in-process): discovery, code + PKCE, tokens, userinfo,
//! refresh rotation, and the refusals RFC 9700 asks for.

use http::StatusCode;

use crate::oidc_support::*;
use crate::sso::{get, send};

#[tokio::test]
async fn a_gateway_signs_in_with_code_and_pkce_and_reads_userinfo() {
    let hub = oidc_hub(default_registration());
    let d = send(&hub.app, get("/.well-known/openid-configuration", &[])).await;
    assert_eq!(d.status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&d.body).unwrap();
    assert_eq!(doc["issuer"], "http://127.0.0.1:8080");
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    let (code, verifier, _sso) = hub.code().await;
    let tokens = hub.redeem(&code, &verifier).await;
    let id = tokens["id_token"].as_str().unwrap();
    let keys = jwks(&hub.app).await;
    let verified =
        fedhub_metadata::jose::verify(id, &keys, &[fedhub_metadata::jose::JwsAlg::RS256]).unwrap();
    let c = verified.claims;
    assert_eq!(c["iss"], "http://127.0.0.1:8080");
    assert_eq!(c["aud"], CLIENT_ID);
    assert_eq!(c["nonce"], "n-1");
    assert_eq!(c["national_id"], crate::sso::CITIZEN);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        c["at_hash"],
        fedhub_metadata::jose::half_hash(fedhub_metadata::jose::JwsAlg::RS256, access)
    );
    let mut req = get("/oidc/userinfo", &[]);
    req.headers_mut().insert(
        http::header::AUTHORIZATION,
        format!("Bearer {access}").parse().unwrap(),
    );
    let u = send(&hub.app, req).await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.body);
    let info: serde_json::Value = serde_json::from_str(&u.body).unwrap();
    assert_eq!(info["sub"], c["sub"]);
    assert_eq!(info["name"], "Nguyễn Văn An");
    assert_eq!(info["phone_number"], "+84912345678");
}
