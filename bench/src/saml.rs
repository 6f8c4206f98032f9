//! One full SP-initiated SAML login as a fresh browser would do it: the load tool's service
//! provider sends a signed AuthnRequest (HTTP-Redirect binding, RSA-SHA256) → the hub's login
//! page → the upstream sign-in (demo form, or an OpenID provider) → the hub's auto-POST page carrying the `SAMLResponse` for
//! the SP. The Response is decoded and its status and `InResponseTo` checked; its signature
//! is not verified (that would be the load tool's CPU, not the hub's).

use std::io::Write as _;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fedhub_metadata::keys::{generate, KeyAlg};
use quick_xml::events::Event;
use reqwest::StatusCode;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use url::form_urlencoded;

use crate::flow;
use crate::upstream::Upstream;

/// The load tool's service provider. Nothing listens at its ACS: the tool reads the
/// auto-POST page and never submits it.
pub const ENTITY_ID: &str = "http://127.0.0.1:9/fedhub-load/saml";
pub const ACS: &str = "http://127.0.0.1:9/fedhub-load/saml/acs";
const SIG_ALG: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const RELAY_STATE: &str = "fedhub-load";

/// The service provider's side of the flow: its signing key and where the hub is.
pub struct Sp {
    pub base_url: String,
    key: RsaKeyPair,
    cert_der: Vec<u8>,
}

impl Sp {
    /// A new SP with a fresh RSA-2048 signing key and a self-signed certificate.
    pub fn generate(base_url: String, now: i64) -> Result<Sp> {
        let generated = generate(KeyAlg::Rsa2048, "fedhub-load SP", now - 86_400, 365)
            .map_err(|e| anyhow!("generating the SP key: {e}"))?;
        let key = RsaKeyPair::from_der(&generated.private_der)
            .or_else(|_| RsaKeyPair::from_pkcs8(&generated.private_der))
            .map_err(|e| anyhow!("reading the SP key: {e}"))?;
        Ok(Sp {
            base_url,
            key,
            cert_der: generated.cert_der,
        })
    }

    /// The SP's metadata, registered at setup: signed requests, one HTTP-POST ACS.
    pub fn metadata(&self) -> String {
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{ENTITY_ID}"><md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true" protocolSupportEnumeration="{SAMLP}"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{ACS}" index="0" isDefault="true"/></md:SPSSODescriptor></md:EntityDescriptor>"#,
            STANDARD.encode(&self.cert_der)
        )
    }

    /// An AuthnRequest with this `id`, issued at `instant` (xs:dateTime, UTC).
    pub fn authn_request(&self, id: &str, instant: &str) -> String {
        format!(
            r#"<samlp:AuthnRequest xmlns:samlp="{SAMLP}" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{instant}" Destination="{}/saml/sso" AssertionConsumerServiceURL="{ACS}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>{ENTITY_ID}</saml:Issuer></samlp:AuthnRequest>"#,
            self.base_url.trim_end_matches('/')
        )
    }

    /// The HTTP-Redirect query carrying `xml` as SAMLRequest with `relay`, signed with the
    /// SP's key (SAML Bindings §3.4.4.1: deflate, base64, sign the query octets).
    pub fn signed_query(&self, rng: &SystemRandom, xml: &str, relay: &str) -> Result<String> {
        let mut deflate =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflate.write_all(xml.as_bytes())?;
        let deflated = deflate.finish()?;
        let e = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let octets = format!(
            "SAMLRequest={}&RelayState={}&SigAlg={}",
            e(&STANDARD.encode(deflated)),
            e(relay),
            e(SIG_ALG)
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, rng, octets.as_bytes(), &mut signature)
            .map_err(|_| anyhow!("signing the AuthnRequest failed"))?;
        Ok(format!(
            "{octets}&Signature={}",
            e(&STANDARD.encode(signature))
        ))
    }
}

/// A fresh request ID: `_` and 16 random bytes in hex (an xs:ID must not start with a digit).
fn request_id(rng: &SystemRandom) -> Result<String> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes)
        .map_err(|_| anyhow!("random generator failed"))?;
    Ok(bytes
        .iter()
        .fold(String::from("_"), |s, b| s + &format!("{b:02x}")))
}

/// Now as xs:dateTime in UTC, to the second.
fn now_instant() -> Result<String> {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .map_err(|e| anyhow!("{e}"))?
        .format(&time::format_description::well_known::Rfc3339)
        .context("formatting IssueInstant")
}

/// The `value` of the input named `name` in an HTML form, unescaped.
fn input_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let len = html.get(start..)?.find('"')?;
    Some(flow::unescape(html.get(start..start + len)?))
}

/// Checks a base64 `SAMLResponse`: it decodes, is a `samlp:Response` answering `request_id`,
/// and its top-level status is Success. The signature is not checked.
pub fn check_response(b64: &str, request_id: &str) -> Result<()> {
    let bytes = STANDARD
        .decode(b64.trim())
        .context("SAMLResponse is not base64")?;
    let xml = std::str::from_utf8(&bytes).context("SAMLResponse is not UTF-8")?;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0usize;
    let mut in_response_to = None;
    let mut in_status = false;
    let mut status = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| anyhow!("SAMLResponse is not XML: {e}"))?;
        match event {
            Event::Start(e) | Event::Empty(e) if depth == 0 => {
                if e.name().as_ref() != b"samlp:Response"
                    || !e.attributes().flatten().any(|a| {
                        a.key.as_ref() == b"xmlns:samlp" && a.value.as_ref() == SAMLP.as_bytes()
                    })
                {
                    bail!(
                        "SAMLResponse is a {}, not a samlp:Response",
                        String::from_utf8_lossy(e.name().as_ref())
                    );
                }
                for a in e.attributes().flatten() {
                    if a.key.as_ref() == b"InResponseTo" {
                        in_response_to = Some(String::from_utf8_lossy(&a.value).into_owned());
                    }
                }
                depth = 1;
            }
            Event::Start(e) => {
                depth += 1;
                if depth == 2 && e.local_name().as_ref() == b"Status" {
                    in_status = true;
                } else if depth == 3 && in_status && e.local_name().as_ref() == b"StatusCode" {
                    status = status_value(&e);
                }
            }
            Event::Empty(e)
                if depth == 2 && in_status && e.local_name().as_ref() == b"StatusCode" =>
            {
                status = status.or_else(|| status_value(&e));
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    in_status = false;
                }
                if depth == 0 {
                    break;
                }
            }
            Event::Eof => bail!("SAMLResponse ends early"),
            _ => {}
        }
    }
    match in_response_to.as_deref() {
        Some(irt) if irt == request_id => {}
        other => bail!("SAMLResponse InResponseTo {other:?} is not the request {request_id:?}"),
    }
    match status.as_deref() {
        Some(SUCCESS) => Ok(()),
        other => bail!("SAMLResponse status is {other:?}, not Success"),
    }
}

fn status_value(e: &quick_xml::events::BytesStart<'_>) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == b"Value")
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
}

/// One login, start to finish, with `upstream` vouching for the person. Any deviation from
/// the expected answers is an error that names the step.
pub async fn login(
    http: &reqwest::Client,
    rng: &SystemRandom,
    sp: &Sp,
    upstream: &Upstream,
) -> Result<()> {
    let base = url::Url::parse(&sp.base_url)?;
    let id = request_id(rng)?;
    let xml = sp.authn_request(&id, &now_instant()?);

    // 1. The SP sends the browser to the hub with a signed AuthnRequest.
    let mut sso = base.join("/saml/sso")?;
    sso.set_query(Some(&sp.signed_query(rng, &xml, RELAY_STATE)?));
    let r = flow::expect(
        http.get(sso).send().await.context("SAML request")?,
        StatusCode::SEE_OTHER,
        "SAML request",
    )
    .await?;

    // 2.–3. The login page and the upstream login; the hub answers with the auto-POST page for
    // the SP.
    let r = flow::expect(
        upstream
            .sign_in(http, rng, &base, &r, "SAML request")
            .await?,
        StatusCode::OK,
        "upstream login",
    )
    .await?;
    let html = r.text().await.context("SAML POST page")?;

    // 4. The Response the browser would post to the SP.
    let b64 = input_value(&html, "SAMLResponse")
        .ok_or_else(|| anyhow!("upstream login: no SAMLResponse in the page"))?;
    match input_value(&html, "RelayState") {
        Some(relay) if relay == RELAY_STATE => {}
        other => bail!("SAML POST page: RelayState {other:?} is not the one sent"),
    }
    check_response(&b64, &id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(irt: &str, status: &str) -> String {
        STANDARD.encode(format!(
            r#"<samlp:Response xmlns:samlp="{SAMLP}" ID="_r" InResponseTo="{irt}" Version="2.0"><saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">hub</saml:Issuer><samlp:Status><samlp:StatusCode Value="{status}"><samlp:StatusCode Value="urn:x:inner"/></samlp:StatusCode></samlp:Status></samlp:Response>"#
        ))
    }

    #[test]
    fn the_signed_query_verifies_with_the_sp_public_key() {
        let rng = SystemRandom::new();
        let sp = Sp::generate("http://127.0.0.1:1".into(), 1_700_000_000).unwrap();
        let xml = sp.authn_request("_abc", "2026-12-05T00:00:00Z");
        assert!(xml.contains(r#"Destination="http://127.0.0.1:1/saml/sso""#));
        let query = sp.signed_query(&rng, &xml, "rs").unwrap();
        let (octets, signature) = query.split_once("&Signature=").unwrap();
        let signature: String = form_urlencoded::parse(format!("s={signature}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        let signature = STANDARD.decode(signature).unwrap();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            sp.key.public().as_ref().to_vec(),
        );
        public.verify(octets.as_bytes(), &signature).unwrap();
        assert!(public.verify(b"SAMLRequest=other", &signature).is_err());

        // The request inflates back to the XML, and the metadata carries the certificate.
        let pairs: Vec<(String, String)> = form_urlencoded::parse(octets.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(pairs[0].0, "SAMLRequest");
        assert_eq!(pairs[1], ("RelayState".into(), "rs".into()));
        assert_eq!(pairs[2], ("SigAlg".into(), SIG_ALG.into()));
        let mut inflated = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::DeflateDecoder::new(&STANDARD.decode(&pairs[0].1).unwrap()[..]),
            &mut inflated,
        )
        .unwrap();
        assert_eq!(inflated, xml);
        assert!(sp.metadata().contains(&STANDARD.encode(&sp.cert_der)));
    }

    #[test]
    fn the_response_check() {
        check_response(&response("_req", SUCCESS), "_req").unwrap();
        let e = check_response(&response("_other", SUCCESS), "_req").unwrap_err();
        assert!(e.to_string().contains("InResponseTo"), "{e}");
        let e = check_response(
            &response("_req", "urn:oasis:names:tc:SAML:2.0:status:Responder"),
            "_req",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not Success"), "{e}");
        assert!(check_response("not base64!", "_req").is_err());
        let logout = STANDARD.encode(format!(
            r#"<samlp:LogoutResponse xmlns:samlp="{SAMLP}" InResponseTo="_req"/>"#
        ));
        assert!(check_response(&logout, "_req").is_err());
    }

    #[test]
    fn the_post_page_is_read() {
        let html = r#"<input type="hidden" name="SAMLResponse" value="PHNhbWxw&#x2f;Oi&#43;s=">
    <input type="hidden" name="RelayState" value="fedhub-load">"#;
        assert_eq!(
            input_value(html, "SAMLResponse").as_deref(),
            Some("PHNhbWxw/Oi+s=")
        );
        assert_eq!(
            input_value(html, "RelayState").as_deref(),
            Some(RELAY_STATE)
        );
        assert!(request_id(&SystemRandom::new()).unwrap().starts_with('_'));
    }
}
