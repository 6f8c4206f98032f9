//! JWS signing and verification: round trips for every algorithm, the attacks a verifier must
//! refuse, and the openssl command line as an outside judge of our signatures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fedhub_metadata::jose::{self, JoseError, JwsAlg, JwsSigner, MAX_TOKEN_LEN};
use fedhub_metadata::jwk;
use fedhub_metadata::keys::{self, GeneratedKey, KeyAlg};
use serde_json::{json, Value};

struct Key {
    generated: GeneratedKey,
    jwk: Value,
}

fn key(alg: KeyAlg) -> Key {
    let generated = keys::generate(alg, "jose test", 0, 1).unwrap();
    let jwk = jwk::from_certificate(&generated.kid, alg, &generated.cert_der).unwrap();
    Key {
        jwk: serde_json::to_value(jwk).unwrap(),
        generated,
    }
}

impl Key {
    fn signer(&self, alg: JwsAlg) -> JwsSigner {
        JwsSigner::new(&self.generated.kid, alg, &self.generated.private_der).unwrap()
    }
    fn kid(&self) -> &str {
        &self.generated.kid
    }
}

fn claims() -> Value {
    json!({"iss": "https://hub.example", "sub": "u1", "aud": "client", "exp": 2_000_000_000})
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// A token with any header and payload bytes, validly signed by an Ed25519 key: proves that
/// a refusal comes from the rule under test, not from a bad signature.
fn forge_ed(ed: &Key, header: &Value, payload: &[u8]) -> String {
    let pair =
        ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&ed.generated.private_der)
            .unwrap();
    let input = format!("{}.{}", b64(header), URL_SAFE_NO_PAD.encode(payload));
    let sig = pair.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn parts(token: &str) -> Vec<&str> {
    token.split('.').collect()
}

#[test]
fn every_algorithm_round_trips() {
    let rsa = key(KeyAlg::Rsa2048);
    let ec = key(KeyAlg::EcP256);
    let ed = key(KeyAlg::Ed25519);
    for alg in JwsAlg::ALL {
        let k = match alg.key_alg() {
            KeyAlg::Rsa2048 => &rsa,
            KeyAlg::EcP256 => &ec,
            KeyAlg::Ed25519 => &ed,
        };
        let signer = k.signer(alg);
        assert_eq!((signer.kid(), signer.alg()), (k.kid(), alg));
        let token = signer.sign(Some("JWT"), &claims()).unwrap();
        let p = parts(&token);
        assert_eq!(p.len(), 3);
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            json!({"alg": alg.as_str(), "kid": k.kid(), "typ": "JWT"})
        );
        let sig_len = URL_SAFE_NO_PAD.decode(p[2]).unwrap().len();
        let expected = match alg {
            JwsAlg::RS256 | JwsAlg::PS256 => 256,
            JwsAlg::ES256 => 64, // r||s, not DER
            JwsAlg::EdDSA => 64,
        };
        assert_eq!(sig_len, expected, "{alg}");

        // The JWK Set holds every kind of key; the kid picks the right one.
        let set = [rsa.jwk.clone(), ec.jwk.clone(), ed.jwk.clone()];
        let v = jose::verify(&token, &set, &JwsAlg::ALL).unwrap();
        assert_eq!(v.alg, alg);
        assert_eq!(v.kid.as_deref(), Some(k.kid()));
        assert_eq!(v.header["typ"], "JWT");
        assert_eq!(Value::Object(v.claims), claims());

        let untyped = signer.sign(None, &claims()).unwrap();
        let v = jose::verify(&untyped, &set, &[alg]).unwrap();
        assert!(v.header.get("typ").is_none());
    }
}

#[test]
fn one_rsa_key_serves_rs256_and_ps256_and_pss_is_really_used() {
    let rsa = key(KeyAlg::Rsa2048);
    assert!(rsa.jwk.get("alg").is_none(), "RSA JWKs carry no alg");
    let rs = rsa.signer(JwsAlg::RS256);
    let ps = rsa.signer(JwsAlg::PS256);
    // PKCS#1 v1.5 is deterministic; PSS has a random salt.
    assert_eq!(
        rs.sign(None, &claims()).unwrap(),
        rs.sign(None, &claims()).unwrap()
    );
    let (a, b) = (
        ps.sign(None, &claims()).unwrap(),
        ps.sign(None, &claims()).unwrap(),
    );
    assert_ne!(a, b);
    for t in [&a, &b] {
        jose::verify(t, std::slice::from_ref(&rsa.jwk), &[JwsAlg::PS256]).unwrap();
    }
    // The padding follows the header: see `we_verify_what_openssl_signs` for a PSS
    // signature under an RS256 header (and the reverse) being refused.
}

#[test]
fn tampering_breaks_the_signature() {
    for alg in JwsAlg::ALL {
        let k = key(alg.key_alg());
        let token = k.signer(alg).sign(None, &claims()).unwrap();
        let p = parts(&token);
        let mut forged = claims();
        forged["sub"] = json!("admin");
        let tampered = format!("{}.{}.{}", p[0], b64(&forged), p[2]);
        let jwks = std::slice::from_ref(&k.jwk);
        assert_eq!(
            jose::verify(&tampered, jwks, &[alg]).unwrap_err(),
            JoseError::BadSignature,
            "{alg}"
        );
        let mut sig = URL_SAFE_NO_PAD.decode(p[2]).unwrap();
        sig[10] ^= 1;
        let flipped = format!("{}.{}.{}", p[0], p[1], URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(
            jose::verify(&flipped, jwks, &[alg]).unwrap_err(),
            JoseError::BadSignature
        );
        // Another key of the same kind and kid does not verify it either.
        let mut other = key(alg.key_alg()).jwk;
        other["kid"] = json!(k.kid());
        assert_eq!(
            jose::verify(&token, &[other], &[alg]).unwrap_err(),
            JoseError::BadSignature
        );
        jose::verify(&token, jwks, &[alg]).unwrap();
    }
}

#[test]
fn alg_none_is_refused() {
    let rsa = key(KeyAlg::Rsa2048);
    for name in ["none", "None", "NONE"] {
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": name, "kid": rsa.kid()})),
            b64(&claims())
        );
        let err = jose::verify(&token, std::slice::from_ref(&rsa.jwk), &JwsAlg::ALL).unwrap_err();
        assert_eq!(err, JoseError::AlgNone);
        assert_eq!(err.to_string(), "alg none is refused");
    }
}

#[test]
fn hs256_macd_with_the_rsa_public_key_is_refused() {
    // The classic key confusion: the attacker MACs with the public key's bytes, hoping the
    // verifier feeds the same bytes to HMAC.
    let rsa = key(KeyAlg::Rsa2048);
    let n = URL_SAFE_NO_PAD
        .decode(rsa.jwk["n"].as_str().unwrap())
        .unwrap();
    let pem = openssl::x509::X509::from_der(&rsa.generated.cert_der)
        .unwrap()
        .public_key()
        .unwrap()
        .public_key_to_pem()
        .unwrap();
    for secret in [n, pem] {
        for name in ["HS256", "HS384", "HS512"] {
            let input = format!(
                "{}.{}",
                b64(&json!({"alg": name, "kid": rsa.kid()})),
                b64(&claims())
            );
            let mac = ring::hmac::sign(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
                input.as_bytes(),
            );
            let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
            let err =
                jose::verify(&token, std::slice::from_ref(&rsa.jwk), &JwsAlg::ALL).unwrap_err();
            assert_eq!(err, JoseError::Symmetric(name.to_string()));
            assert_eq!(
                err.to_string(),
                format!("{name} is refused: symmetric algorithms are not accepted")
            );
        }
    }
}

#[test]
fn algorithms_outside_the_allowed_list_and_unknown_ones_are_refused() {
    let rsa = key(KeyAlg::Rsa2048);
    let token = rsa.signer(JwsAlg::PS256).sign(None, &claims()).unwrap();
    let jwks = std::slice::from_ref(&rsa.jwk);
    let err = jose::verify(&token, jwks, &[JwsAlg::RS256, JwsAlg::ES256]).unwrap_err();
    assert_eq!(err, JoseError::NotAllowed(JwsAlg::PS256));
    assert_eq!(err.to_string(), "alg PS256 is not allowed here");
    assert!(jose::verify(&token, jwks, &[]).is_err());

    let p = parts(&token);
    for name in ["RS384", "ES512", "rs256", "Ed25519", "PS256 "] {
        let header = json!({"alg": name, "kid": rsa.kid()});
        let token = format!("{}.{}.{}", b64(&header), p[1], p[2]);
        assert_eq!(
            jose::verify(&token, jwks, &JwsAlg::ALL).unwrap_err(),
            JoseError::UnsupportedAlg(name.to_string())
        );
    }
    // Names from a token are shortened and stripped before they reach a message.
    let long = format!("X\n{}", "A".repeat(500));
    let header = json!({"alg": long, "kid": rsa.kid()});
    let err = jose::verify(
        &format!("{}.{}.{}", b64(&header), p[1], p[2]),
        jwks,
        &JwsAlg::ALL,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.len() < 120 && !text.contains('\n'), "{text}");
}

#[test]
fn the_names_are_exact() {
    for alg in JwsAlg::ALL {
        assert_eq!(JwsAlg::parse(alg.as_str()), Some(alg));
        assert_eq!(alg.to_string(), alg.as_str());
    }
    for name in ["none", "HS256", "rs256", "EDDSA", "ES384", ""] {
        assert_eq!(JwsAlg::parse(name), None, "{name}");
    }
    assert_eq!(JwsAlg::RS256.key_alg(), KeyAlg::Rsa2048);
    assert_eq!(JwsAlg::PS256.key_alg(), KeyAlg::Rsa2048);
    assert_eq!(JwsAlg::ES256.key_alg(), KeyAlg::EcP256);
    assert_eq!(JwsAlg::EdDSA.key_alg(), KeyAlg::Ed25519);
}

#[test]
fn an_unknown_kid_is_refused() {
    let ec = key(KeyAlg::EcP256);
    let token = JwsSigner::new("someone-else", JwsAlg::ES256, &ec.generated.private_der)
        .unwrap()
        .sign(None, &claims())
        .unwrap();
    let err = jose::verify(&token, std::slice::from_ref(&ec.jwk), &JwsAlg::ALL).unwrap_err();
    assert_eq!(err, JoseError::NoKey("someone-else".into()));
    assert_eq!(err.to_string(), "no key with kid someone-else");
    // Not even when the key without its kid would verify it.
    let mut anonymous = ec.jwk.clone();
    anonymous.as_object_mut().unwrap().remove("kid");
    assert!(matches!(
        jose::verify(&token, &[anonymous], &JwsAlg::ALL),
        Err(JoseError::NoKey(_))
    ));
}

#[test]
fn a_key_that_does_not_fit_the_algorithm_is_refused() {
    let rsa = key(KeyAlg::Rsa2048);
    let ec = key(KeyAlg::EcP256);
    let ed = key(KeyAlg::Ed25519);
    let unfit = |token: &str, jwk: Value| match jose::verify(token, &[jwk], &JwsAlg::ALL) {
        Err(JoseError::KeyUnfit { why, .. }) => why,
        other => panic!("expected KeyUnfit, got {other:?}"),
    };

    // ES256 header, kid of an RSA key.
    let es = ec.signer(JwsAlg::ES256).sign(None, &claims()).unwrap();
    let mut rsa_same_kid = rsa.jwk.clone();
    rsa_same_kid["kid"] = json!(ec.kid());
    assert!(unfit(&es, rsa_same_kid).contains("kty RSA"));
    // EdDSA header, kid of an EC key; RS256 header, kid of an OKP key.
    let eddsa = ed.signer(JwsAlg::EdDSA).sign(None, &claims()).unwrap();
    let mut ec_same_kid = ec.jwk.clone();
    ec_same_kid["kid"] = json!(ed.kid());
    assert!(unfit(&eddsa, ec_same_kid).contains("kty EC crv P-256"));
    let rs = rsa.signer(JwsAlg::RS256).sign(None, &claims()).unwrap();
    let mut ed_same_kid = ed.jwk.clone();
    ed_same_kid["kid"] = json!(rsa.kid());
    unfit(&rs, ed_same_kid);
    // An EC key on another curve.
    let mut p384 = ec.jwk.clone();
    p384["crv"] = json!("P-384");
    unfit(&es, p384);

    // A JWK whose alg differs from the header's.
    let mut rs_only = rsa.jwk.clone();
    rs_only["alg"] = json!("RS256");
    let ps = rsa.signer(JwsAlg::PS256).sign(None, &claims()).unwrap();
    assert!(unfit(&ps, rs_only.clone()).contains("alg RS256"));
    jose::verify(&rs, &[rs_only], &JwsAlg::ALL).unwrap();
    let mut es384 = ec.jwk.clone();
    es384["alg"] = json!("ES384");
    unfit(&es, es384);

    // A JWK for encryption.
    let mut enc = ec.jwk.clone();
    enc["use"] = json!("enc");
    assert!(unfit(&es, enc).contains("use is enc"));

    // Without a kid, a key of the wrong type is no candidate at all.
    let header = json!({"alg": "EdDSA"});
    let token = forge_ed(&ed, &header, &serde_json::to_vec(&claims()).unwrap());
    assert_eq!(
        jose::verify(&token, &[rsa.jwk.clone(), ec.jwk.clone()], &JwsAlg::ALL).unwrap_err(),
        JoseError::NoKeyForAlg(JwsAlg::EdDSA)
    );
}

#[test]
fn without_a_kid_only_a_single_fitting_key_is_used() {
    let rsa = key(KeyAlg::Rsa2048);
    let ed = key(KeyAlg::Ed25519);
    let other_ed = key(KeyAlg::Ed25519);
    let token = forge_ed(
        &ed,
        &json!({"alg": "EdDSA"}),
        &serde_json::to_vec(&claims()).unwrap(),
    );
    let v = jose::verify(&token, &[rsa.jwk.clone(), ed.jwk.clone()], &JwsAlg::ALL).unwrap();
    assert_eq!((v.alg, v.kid), (JwsAlg::EdDSA, None));
    assert_eq!(
        jose::verify(
            &token,
            &[ed.jwk.clone(), other_ed.jwk.clone()],
            &JwsAlg::ALL
        )
        .unwrap_err(),
        JoseError::AmbiguousKey(JwsAlg::EdDSA)
    );
    // A key for encryption is not a candidate, so the signing key is the only one.
    let mut enc = other_ed.jwk.clone();
    enc["use"] = json!("enc");
    jose::verify(&token, &[enc, ed.jwk.clone()], &JwsAlg::ALL).unwrap();
    // Two keys under the same kid are ambiguous too.
    let named = ed.signer(JwsAlg::EdDSA).sign(None, &claims()).unwrap();
    let mut twin = other_ed.jwk.clone();
    twin["kid"] = json!(ed.kid());
    assert!(matches!(
        jose::verify(&named, &[twin, ed.jwk.clone()], &JwsAlg::ALL),
        Err(JoseError::DuplicateKid(_))
    ));
}

#[test]
fn a_crit_header_is_refused_even_with_a_valid_signature() {
    let ed = key(KeyAlg::Ed25519);
    let payload = serde_json::to_vec(&claims()).unwrap();
    let jwks = std::slice::from_ref(&ed.jwk);
    let plain = forge_ed(&ed, &json!({"alg": "EdDSA", "kid": ed.kid()}), &payload);
    jose::verify(&plain, jwks, &JwsAlg::ALL).unwrap();
    for crit in [json!(["exp"]), json!([]), json!("b64")] {
        let header = json!({"alg": "EdDSA", "kid": ed.kid(), "crit": crit, "exp": 1, "b64": true});
        let token = forge_ed(&ed, &header, &payload);
        let err = jose::verify(&token, jwks, &JwsAlg::ALL).unwrap_err();
        assert_eq!(err, JoseError::Crit);
        assert_eq!(err.to_string(), "crit header not understood");
    }
}

#[test]
fn oversize_tokens_are_refused_before_anything_is_decoded() {
    let ed = key(KeyAlg::Ed25519);
    let signer = ed.signer(JwsAlg::EdDSA);
    let jwks = std::slice::from_ref(&ed.jwk);
    let mut big = claims();
    big["pad"] = json!("x".repeat(MAX_TOKEN_LEN));
    let token = signer.sign(None, &big).unwrap();
    assert!(token.len() > MAX_TOKEN_LEN);
    let err = jose::verify(&token, jwks, &JwsAlg::ALL).unwrap_err();
    assert_eq!(err, JoseError::TooLarge);
    assert!(err.to_string().starts_with("token too large"));
    // Just under the limit is fine.
    let base = signer.sign(None, &claims()).unwrap().len();
    let mut fits = claims();
    fits["pad"] = json!("x".repeat((MAX_TOKEN_LEN - base) * 3 / 4 - 20));
    let token = signer.sign(None, &fits).unwrap();
    assert!(token.len() <= MAX_TOKEN_LEN && token.len() > MAX_TOKEN_LEN - 100);
    jose::verify(&token, jwks, &JwsAlg::ALL).unwrap();
    // Garbage is refused by size too, without being parsed.
    let garbage = ".".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(
        jose::verify(&garbage, jwks, &JwsAlg::ALL).unwrap_err(),
        JoseError::TooLarge
    );
}

#[test]
fn malformed_tokens_and_non_object_claims_are_refused() {
    let ed = key(KeyAlg::Ed25519);
    let jwks = std::slice::from_ref(&ed.jwk);
    let good = ed.signer(JwsAlg::EdDSA).sign(None, &claims()).unwrap();
    let p = parts(&good);
    let header = json!({"alg": "EdDSA", "kid": ed.kid()});
    let malformed = [
        String::new(),
        format!("{}.{}", p[0], p[1]),
        format!("{good}.{}", p[2]),
        format!("{}.{}.{}=", p[0], p[1], p[2]),
        format!("{}=.{}.{}", p[0], p[1], p[2]),
        format!("{}.{}.{}", URL_SAFE_NO_PAD.encode("not json"), p[1], p[2]),
        format!("{}.{}.{}", b64(&json!(["EdDSA"])), p[1], p[2]),
        format!("{}.{}.{}", b64(&json!({"kid": ed.kid()})), p[1], p[2]),
        format!("{}.{}.{}", b64(&json!({"alg": 256})), p[1], p[2]),
        format!(
            "{}.{}.{}",
            b64(&json!({"alg": "EdDSA", "kid": 7})),
            p[1],
            p[2]
        ),
        format!("{}.{}.{}", p[0], p[1], p[2].replace(|_: char| true, "+")),
        // Validly signed, but the payload is not JSON.
        forge_ed(&ed, &header, b"not json"),
    ];
    for token in &malformed {
        assert!(
            matches!(
                jose::verify(token, jwks, &JwsAlg::ALL),
                Err(JoseError::Malformed(_))
            ),
            "{token}: {:?}",
            jose::verify(token, jwks, &JwsAlg::ALL)
        );
    }
    for payload in [json!(["a"]), json!("sub"), json!(1), json!(null)] {
        let token = forge_ed(&ed, &header, &serde_json::to_vec(&payload).unwrap());
        assert_eq!(
            jose::verify(&token, jwks, &JwsAlg::ALL).unwrap_err(),
            JoseError::NotObject
        );
    }
    // The signer refuses non-object claims too.
    assert_eq!(
        ed.signer(JwsAlg::EdDSA)
            .sign(None, &json!(["a"]))
            .unwrap_err(),
        JoseError::NotObject
    );
}

#[test]
fn signers_need_the_right_kind_of_key_and_hide_it() {
    let rsa = key(KeyAlg::Rsa2048);
    let ec = key(KeyAlg::EcP256);
    let ed = key(KeyAlg::Ed25519);
    for (alg, wrong) in [
        (JwsAlg::RS256, &ec),
        (JwsAlg::PS256, &ed),
        (JwsAlg::ES256, &rsa),
        (JwsAlg::EdDSA, &rsa),
        (JwsAlg::EdDSA, &ec),
    ] {
        assert!(
            matches!(
                JwsSigner::new("k", alg, &wrong.generated.private_der),
                Err(JoseError::Key(_))
            ),
            "{alg}"
        );
    }
    assert!(JwsSigner::new("", JwsAlg::RS256, &rsa.generated.private_der).is_err());
    let debug = format!("{:?}", rsa.signer(JwsAlg::RS256));
    assert_eq!(
        debug,
        format!("JwsSigner {{ kid: {:?}, alg: RS256, .. }}", rsa.kid())
    );
}

#[test]
fn xml_signing_refuses_ed25519_keys() {
    let ed = key(KeyAlg::Ed25519);
    let err = fedhub_metadata::xml::dsig::XmlSigner::new(
        KeyAlg::Ed25519,
        &ed.generated.private_der,
        &ed.generated.cert_der,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Ed25519 is for OIDC only; SAML signing keys are RSA or ECDSA P-256"
    );
}

#[test]
fn half_hash_known_answers() {
    // OpenID Connect Core 1.0, Appendix A.4: the at_hash and c_hash of its example tokens.
    // Checked independently while writing this test:
    //   printf %s jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y | sha256sum
    //   = efb42650fb633dfcd6b45d809e92bd45 6a57...  -> left half, base64url
    assert_eq!(
        jose::half_hash(JwsAlg::RS256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
        "77QmUPtjPfzWtF2AnpK9RQ"
    );
    //   printf %s Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk | sha256sum
    //   = 2c392d29da106a4dcf9347275f10a5b4 183f...
    assert_eq!(
        jose::half_hash(
            JwsAlg::ES256,
            "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"
        ),
        "LDktKdoQak3Pk0cnXxCltA"
    );
    assert_eq!(
        hex::encode(
            URL_SAFE_NO_PAD
                .decode(jose::half_hash(
                    JwsAlg::PS256,
                    "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
                ))
                .unwrap()
        ),
        "efb42650fb633dfcd6b45d809e92bd45"
    );
    // EdDSA (Ed25519) uses SHA-512: printf %s fedhub | sha512sum
    //   = c6d16a794bcc2374b4e70b6a790cf19bd38004689242e2d0843d818346b825e2 76cc...
    let ed = jose::half_hash(JwsAlg::EdDSA, "fedhub");
    assert_eq!(
        hex::encode(URL_SAFE_NO_PAD.decode(&ed).unwrap()),
        "c6d16a794bcc2374b4e70b6a790cf19bd38004689242e2d0843d818346b825e2"
    );
    assert_eq!(ed, "xtFqeUvMI3S05wtqeQzxm9OABGiSQuLQhD2Bg0a4JeI");
}

// --- The openssl command line as an outside verifier (and signer) -----------------------

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command line (scripts/ensure-deps installs it)")
}

/// ECDSA r||s (32 bytes each) as the DER SEQUENCE of two INTEGERs openssl reads.
fn ecdsa_fixed_to_der(sig: &[u8]) -> Vec<u8> {
    fn integer(v: &[u8]) -> Vec<u8> {
        let first = v.iter().position(|b| *b != 0).unwrap_or(v.len() - 1);
        let mut body = v[first..].to_vec();
        if body[0] & 0x80 != 0 {
            body.insert(0, 0);
        }
        let mut out = vec![0x02, body.len() as u8];
        out.extend(body);
        out
    }
    assert_eq!(sig.len(), 64);
    let mut seq = integer(&sig[..32]);
    seq.extend(integer(&sig[32..]));
    let mut out = vec![0x30, seq.len() as u8];
    out.extend(seq);
    out
}

#[test]
fn openssl_verifies_our_signatures() {
    let dir = tempfile::tempdir().unwrap();
    for alg in JwsAlg::ALL {
        let k = key(alg.key_alg());
        std::fs::write(dir.path().join("cert.der"), &k.generated.cert_der).unwrap();
        let out = openssl(
            dir.path(),
            &[
                "x509", "-inform", "DER", "-in", "cert.der", "-pubkey", "-noout", "-out", "pub.pem",
            ],
        );
        assert!(out.status.success(), "{out:?}");
        let token = k.signer(alg).sign(Some("JWT"), &claims()).unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let sig = match alg {
            JwsAlg::ES256 => ecdsa_fixed_to_der(&sig),
            _ => sig,
        };
        std::fs::write(dir.path().join("sig.bin"), &sig).unwrap();
        let check = |data: &str| {
            std::fs::write(dir.path().join("input.txt"), data).unwrap();
            let args: Vec<&str> = match alg {
                JwsAlg::RS256 | JwsAlg::ES256 => vec![
                    "dgst",
                    "-sha256",
                    "-verify",
                    "pub.pem",
                    "-signature",
                    "sig.bin",
                    "input.txt",
                ],
                JwsAlg::PS256 => vec![
                    "dgst",
                    "-sha256",
                    "-verify",
                    "pub.pem",
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    "rsa_pss_saltlen:32",
                    "-sigopt",
                    "rsa_mgf1_md:sha256",
                    "-signature",
                    "sig.bin",
                    "input.txt",
                ],
                JwsAlg::EdDSA => vec![
                    "pkeyutl",
                    "-verify",
                    "-pubin",
                    "-inkey",
                    "pub.pem",
                    "-rawin",
                    "-in",
                    "input.txt",
                    "-sigfile",
                    "sig.bin",
                ],
            };
            let out = openssl(dir.path(), &args);
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let (ok, text) = check(input);
        assert!(ok && text.contains("Verified"), "{alg}: {text}");
        // The same check fails on other bytes, so a pass above means something.
        let (ok, _) = check(&format!("{input}x"));
        assert!(!ok, "{alg}: openssl accepted a tampered input");
    }
}

#[test]
fn we_verify_what_openssl_signs() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = key(KeyAlg::Rsa2048);
    std::fs::write(dir.path().join("key.der"), &rsa.generated.private_der).unwrap();
    let out = openssl(
        dir.path(),
        &["rsa", "-inform", "DER", "-in", "key.der", "-out", "key.pem"],
    );
    assert!(out.status.success(), "{out:?}");
    // Every (header alg, padding) pair: only the matching ones verify.
    for (alg, pss) in [
        (JwsAlg::RS256, false),
        (JwsAlg::PS256, true),
        (JwsAlg::RS256, true),
        (JwsAlg::PS256, false),
    ] {
        let input = format!(
            "{}.{}",
            b64(&json!({"alg": alg.as_str(), "kid": rsa.kid()})),
            b64(&claims())
        );
        std::fs::write(dir.path().join("input.txt"), &input).unwrap();
        let mut args = vec!["dgst", "-sha256", "-sign", "key.pem", "-out", "sig.bin"];
        if pss {
            args.extend([
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
            ]);
        }
        args.push("input.txt");
        let out = openssl(dir.path(), &args);
        assert!(out.status.success(), "{out:?}");
        let sig = std::fs::read(dir.path().join("sig.bin")).unwrap();
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
        let result = jose::verify(&token, std::slice::from_ref(&rsa.jwk), &JwsAlg::ALL);
        if pss == (alg == JwsAlg::PS256) {
            assert_eq!(Value::Object(result.unwrap().claims), claims());
        } else {
            assert_eq!(
                result.unwrap_err(),
                JoseError::BadSignature,
                "{alg} pss={pss}"
            );
        }
    }
}
