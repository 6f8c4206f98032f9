#!/usr/bin/env bash
# Self-test of tests/interop/pysaml2_idp.py (pysaml2 as the upstream IdP) that
# needs no server.
#
# Two SPs talk to the IdP CLI:
#  * a real pysaml2 SP (tests/interop/pysaml2_sp.py), pointed at the IdP's
#    metadata: AuthnRequests from `authn`, Responses checked by `acs` (signed
#    assertion, exact attribute names, every encryption variant decrypts), and
#    both logout round trips (`logout`/`logout-response`,
#    `idp-logout-request`);
#  * a hand-made SP: key, cert and minimal metadata generated here with
#    `cryptography` (signing key only, SLO with a ResponseLocation), messages
#    built and Redirect-signed here, Response signatures checked with the
#    xmlsec1 binary directly. It drives the error paths (unsigned, tampered,
#    wrong Destination/Issuer/ACS, stale IssueInstant, ...).
# Scratch files live in a mktemp directory that is removed on exit.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="$("$script_dir/setup-venv" | tail -n 1)"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/pysaml2-idp-selftest.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

IDP_SCRIPT="$script_dir/pysaml2_idp.py" SP_SCRIPT="$script_dir/pysaml2_sp.py" SCRATCH="$scratch" \
    "$python" - <<'PY'
import base64
import datetime
import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
import zlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

IDP_SCRIPT = os.environ["IDP_SCRIPT"]
SP_SCRIPT = os.environ["SP_SCRIPT"]
SCRATCH = os.environ["SCRATCH"]
NS = {
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "xenc": "http://www.w3.org/2001/04/xmlenc#",
}
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
URI_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
AUTHN_FAILED = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
UNKNOWN_PRINCIPAL = "urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"

IDP = "http://127.0.0.1:18997/saml/idp"
IDP_BASE = "http://127.0.0.1:18997/saml"
SSO = IDP_BASE + "/sso"
SLO = IDP_BASE + "/slo"
SP_ENTITY = "http://127.0.0.1:18996/hub/sp"
ACS = "http://127.0.0.1:18996/hub/acs"
SP_SLO = "http://127.0.0.1:18996/hub/slo"
SP_SLO_RETURN = "http://127.0.0.1:18996/hub/slo-return"

USER = {
    "name_id": "user-42@example.org",
    "attributes": {
        "urn:oid:2.16.840.1.113730.3.1.241": ["Ann Ärlig"],
        "urn:oid:0.9.2342.19200300.100.1.3": ["ann@example.org", "a@example.org"],
        "urn:fedhub:attribute:national_id": ["19800101-1234"],
        "mail": ["not-renamed@example.org"],
        "CamelCase:Name": ["kept as is"],
    },
}

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def run(script, *args):
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=120)


def run_json(name, script, *args):
    proc = run(script, *args)
    ok = proc.returncode == 0
    check(f"{name}: exit 0", ok, proc.stderr[-800:])
    try:
        out = json.loads(proc.stdout)
        one = isinstance(out, dict) and proc.stdout.count("\n") == 1
    except ValueError:
        out, one = {}, False
    if ok:
        check(f"{name}: stdout is one JSON object", one, repr(proc.stdout[:300]))
    return out if isinstance(out, dict) else {}


def idp(name, *args):
    return run_json(name, IDP_SCRIPT, *args)


def sp(name, *args):
    return run_json(name, SP_SCRIPT, *args)


def refused(name, script, *args, reason=""):
    proc = run(script, *args)
    check(
        f"{name}: exit 1, empty stdout, error on stderr",
        proc.returncode == 1 and proc.stdout == "" and proc.stderr.startswith(("error:", "usage:"))
        and "error" in proc.stderr,
        (proc.returncode, proc.stdout[:200], proc.stderr[-400:]),
    )
    if os.environ.get("SHOW_ERRORS"):
        print("     ", proc.stderr.strip().splitlines()[-1][:230])
    if reason:
        check(f"{name}: reason mentions {reason!r}", reason.lower() in proc.stderr.lower(), proc.stderr[-400:])
    return proc


def new_key_cert(cn):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def cert_b64(cert):
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def query_of(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))


def inflate(b64):
    return zlib.decompress(base64.b64decode(b64), -15)


def deflate(xml):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(c.compress(xml.encode()) + c.flush()).decode()


def redirect_query(key, param, xml, relay_state=None, sign=True):
    """Redirect-binding query, signed the way SAML bindings 3.4.4.1 (and pysaml2) do it."""
    pairs = [(param, deflate(xml))]
    if relay_state is not None:
        pairs.append(("RelayState", relay_state))
    if not sign:
        return urllib.parse.urlencode(pairs)
    pairs.append(("SigAlg", RSA_SHA256))
    signed = urllib.parse.urlencode(pairs)
    sig = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signed + "&" + urllib.parse.urlencode({"Signature": base64.b64encode(sig).decode()})


def verify_redirect(cert, url, param):
    """The IdP's query signature over the raw query, as sent (order param, RelayState, SigAlg)."""
    raw = urllib.parse.urlsplit(url).query
    pairs = raw.split("&")
    names = [p.split("=", 1)[0] for p in pairs]
    if names[-1] != "Signature" or names[0] != param or names[-2] != "SigAlg":
        return False
    signed = "&".join(pairs[:-1]).encode()
    sig = base64.b64decode(urllib.parse.unquote_plus(pairs[-1].split("=", 1)[1]))
    try:
        cert.public_key().verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
        return True
    except Exception:  # noqa: BLE001
        return False


def now_xs(delta=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def authn_request_xml(issuer=None, destination=SSO, acs=ACS, issue_instant=None, req_id=None):
    req_id = req_id or "_" + uuid.uuid4().hex
    dest = f' Destination="{destination}"' if destination else ""
    acs_attr = f' AssertionConsumerServiceURL="{acs}" ProtocolBinding="{POST}"' if acs else ""
    return req_id, (
        f'<samlp:AuthnRequest xmlns:samlp="{NS["samlp"]}" xmlns:saml="{NS["saml"]}" ID="{req_id}" '
        f'Version="2.0" IssueInstant="{issue_instant or now_xs()}"{dest}{acs_attr}>'
        f'<saml:Issuer>{issuer or SP_ENTITY}</saml:Issuer>'
        f'<samlp:NameIDPolicy Format="{PERSISTENT}" AllowCreate="true"/>'
        f"</samlp:AuthnRequest>"
    )


def logout_request_xml(name_id, session_index=None, destination=SLO, fmt=PERSISTENT):
    req_id = "_" + uuid.uuid4().hex
    si = f"<samlp:SessionIndex>{session_index}</samlp:SessionIndex>" if session_index else ""
    dest = f' Destination="{destination}"' if destination else ""
    return req_id, (
        f'<samlp:LogoutRequest xmlns:samlp="{NS["samlp"]}" xmlns:saml="{NS["saml"]}" ID="{req_id}" '
        f'Version="2.0" IssueInstant="{now_xs()}"{dest}>'
        f"<saml:Issuer>{SP_ENTITY}</saml:Issuer>"
        f'<saml:NameID Format="{fmt}">{name_id}</saml:NameID>{si}'
        f"</samlp:LogoutRequest>"
    )


def logout_response_xml(in_response_to, destination=SLO, status=SUCCESS):
    return (
        f'<samlp:LogoutResponse xmlns:samlp="{NS["samlp"]}" xmlns:saml="{NS["saml"]}" '
        f'ID="_{uuid.uuid4().hex}" Version="2.0" IssueInstant="{now_xs()}" Destination="{destination}" '
        f'InResponseTo="{in_response_to}"><saml:Issuer>{SP_ENTITY}</saml:Issuer>'
        f'<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status></samlp:LogoutResponse>'
    )


def xmlsec_verify(xml_bytes, cert_file, node_xpath):
    f = os.path.join(SCRATCH, "verify.xml")
    with open(f, "wb") as fh:
        fh.write(xml_bytes)
    proc = subprocess.run(
        ["xmlsec1", "--verify", "--pubkey-cert-pem", cert_file,
         "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:Response",
         "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
         "--node-xpath", node_xpath, f],
        capture_output=True, text=True, timeout=60,
    )
    return proc.returncode == 0, proc.stderr[-300:]


def write(name, text):
    f = os.path.join(SCRATCH, name)
    with open(f, "w", encoding="utf-8") as fh:
        fh.write(text)
    return f


RESPONSE_SIG = "/*[local-name()='Response']/*[local-name()='Signature']"
ASSERTION_SIG = "/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']"

# ============================================================================
# Part 1: the real pysaml2 SP (pysaml2_sp.py) against the IdP
# ============================================================================
sp_dir = os.path.join(SCRATCH, "sp")
idp_dir = os.path.join(SCRATCH, "idp")
sp("sp init", "init", "--dir", sp_dir, "--entity-id", SP_ENTITY, "--acs", ACS, "--slo", SP_SLO)
sp_md = os.path.join(sp_dir, "sp-metadata.xml")

t0 = time.monotonic()
out = idp("init", "init", "--dir", idp_dir, "--entity-id", IDP, "--base", IDP_BASE + "/", "--sp-metadata", sp_md)
init_secs = time.monotonic() - t0
md_path = out.get("metadata", "")
check("init: metadata path is absolute D/idp-metadata.xml",
      os.path.isabs(md_path) and md_path == os.path.abspath(os.path.join(idp_dir, "idp-metadata.xml")), md_path)
check("init: entity_id echoed", out.get("entity_id") == IDP, out)
check("init: key, cert, SP metadata copy written",
      all(os.path.isfile(os.path.join(idp_dir, f)) for f in ("idp-key.pem", "idp-cert.pem", "sp-metadata.xml")))
idp_cert_file = os.path.join(idp_dir, "idp-cert.pem")
idp_cert = x509.load_pem_x509_certificate(open(idp_cert_file, "rb").read())
check("init: RSA-2048 key", idp_cert.public_key().key_size == 2048)
validity = idp_cert.not_valid_after_utc - idp_cert.not_valid_before_utc
check("init: certificate valid ~10 years", validity.days >= 3650, validity)

root = ET.parse(md_path).getroot()
check("metadata: entityID", root.get("entityID") == IDP, root.get("entityID"))
idpsso = root.find("md:IDPSSODescriptor", NS)
check("metadata: IDPSSODescriptor present", idpsso is not None)
idpsso = idpsso if idpsso is not None else ET.Element("x")
check("metadata: WantAuthnRequestsSigned=true", idpsso.get("WantAuthnRequestsSigned") == "true")
kds = idpsso.findall("md:KeyDescriptor", NS)
check("metadata: KeyDescriptor use=signing", [kd.get("use") for kd in kds] == ["signing"], [kd.get("use") for kd in kds])
md_certs = {"".join(c.text.split()) for c in idpsso.findall(".//ds:X509Certificate", NS)}
check("metadata: KeyDescriptor carries idp-cert.pem", md_certs == {cert_b64(idp_cert)})
ssos = sorted((e.get("Binding"), e.get("Location")) for e in idpsso.findall("md:SingleSignOnService", NS))
check("metadata: SSO Redirect + POST at {base}/sso", ssos == sorted([(REDIRECT, SSO), (POST, SSO)]), ssos)
slos = [(e.get("Binding"), e.get("Location")) for e in idpsso.findall("md:SingleLogoutService", NS)]
check("metadata: SLO Redirect at {base}/slo", slos == [(REDIRECT, SLO)], slos)
nidf = [e.text for e in idpsso.findall("md:NameIDFormat", NS)]
check("metadata: NameIDFormats persistent + transient", sorted(nidf) == sorted([PERSISTENT, TRANSIENT]), nidf)


def login(name, *sso_args, relay_state="rs-1/ä?&=", user=None, expect_acs=True):
    """SP authn -> IdP sso -> (optionally) SP acs; returns (sso output, acs output, Response XML)."""
    a = sp(f"{name}: sp authn", "authn", "--dir", sp_dir, "--idp-metadata", md_path, "--relay-state", relay_state)
    s = idp(f"{name}: sso", "sso", "--dir", idp_dir, "--query", a.get("url", ""),
            "--user", json.dumps(user or USER), *sso_args)
    check(f"{name}: sso answers the request id", s.get("request_id") == a.get("request_id") and s["request_id"],
          (s.get("request_id"), a.get("request_id")))
    check(f"{name}: sso acs is the SP's ACS", s.get("acs") == ACS, s.get("acs"))
    check(f"{name}: sso relay_state echoed", s.get("relay_state") == relay_state, s.get("relay_state"))
    xml = base64.b64decode(s.get("saml_response", ""))
    acs_out = None
    if expect_acs:
        acs_out = sp(f"{name}: sp acs", "acs", "--dir", sp_dir, "--idp-metadata", md_path,
                     "--saml-response", s.get("saml_response", ""), "--relay-state", relay_state)
    return s, acs_out, xml


# --- default login: signed assertion, unsigned Response ----------------------
t0 = time.monotonic()
s, a, xml = login("login")
resp = ET.fromstring(xml)
check("login: SP accepts, status success", a.get("status") == "success", a)
check("login: attributes arrive under the exact names given", a.get("attributes") == USER["attributes"],
      a.get("attributes"))
check("login: NameID value + persistent format", a.get("name_id") == USER["name_id"] and a.get("name_id_format") == PERSISTENT,
      (a.get("name_id"), a.get("name_id_format")))
check("login: sso reports name_id", s.get("name_id") == USER["name_id"])
check("login: SessionIndex matches", s.get("session_index") and a.get("session_index") == s.get("session_index"),
      (s.get("session_index"), a.get("session_index")))
check("login: default AuthnContextClassRef", a.get("authn_context") == PPT, a.get("authn_context"))
check("login: issuer is the IdP", a.get("issuer") == IDP)
assertion = resp.find("saml:Assertion", NS)
check("Response: one plain Assertion", assertion is not None and len(resp.findall("saml:Assertion", NS)) == 1)
assertion = assertion if assertion is not None else ET.Element("x")
check("Response: not signed by default", resp.find("ds:Signature", NS) is None)
check("Response: Destination = ACS", resp.get("Destination") == ACS)
check("Response: InResponseTo = request id", resp.get("InResponseTo") == s.get("request_id"))
sig = assertion.find("ds:Signature", NS)
check("Assertion: signed", sig is not None)
if sig is not None:
    check("Assertion signature: rsa-sha256",
          sig.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm") == RSA_SHA256)
    check("Assertion signature: sha256 digest",
          sig.find("ds:SignedInfo/ds:Reference/ds:DigestMethod", NS).get("Algorithm") == SHA256)
ok, err = xmlsec_verify(xml, idp_cert_file, ASSERTION_SIG)
check("Assertion signature verifies with xmlsec1 and idp-cert.pem", ok, err)
attrs = assertion.findall("saml:AttributeStatement/saml:Attribute", NS)
check("Assertion: every Attribute NameFormat uri",
      attrs and all(at.get("NameFormat") == URI_FORMAT for at in attrs), [at.get("NameFormat") for at in attrs])
check("Assertion: no FriendlyName added", all(at.get("FriendlyName") is None for at in attrs))
scd = assertion.find("saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", NS)
check("Assertion: SubjectConfirmationData Recipient + InResponseTo",
      scd is not None and scd.get("Recipient") == ACS and scd.get("InResponseTo") == s.get("request_id"))
aud = assertion.find("saml:Conditions/saml:AudienceRestriction/saml:Audience", NS)
check("Assertion: Audience = SP entity id", aud is not None and aud.text == SP_ENTITY)
cond = assertion.find("saml:Conditions", NS)
nooa = datetime.datetime.strptime(cond.get("NotOnOrAfter"), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
ahead = (nooa - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
check("Assertion: NotOnOrAfter ~5 minutes ahead", 200 < ahead <= 301, ahead)
sessions = json.load(open(os.path.join(idp_dir, "sessions.json")))
check("sso: session recorded in D", len(sessions) == 1 and sessions[0]["session_index"] == s.get("session_index"))

# a tampered assertion must no longer verify at the SP (the untampered one does)
s, _, xml = login("login to tamper with", expect_acs=False)
tampered = xml.replace(b"19800101-1234", b"19800101-9999")
check("tampering changed the Response", tampered != xml)
refused("tampered assertion refused by the SP", SP_SCRIPT, "acs", "--dir", sp_dir, "--idp-metadata", md_path,
        "--saml-response", base64.b64encode(tampered).decode(), reason="signature")
sp("untampered Response accepted", "acs", "--dir", sp_dir, "--idp-metadata", md_path,
   "--saml-response", s.get("saml_response", ""))

# --- variants ----------------------------------------------------------------
s, a, xml = login("sign-response", "--sign-response")
resp = ET.fromstring(xml)
check("sign-response: Response and Assertion both signed",
      resp.find("ds:Signature", NS) is not None and resp.find("saml:Assertion/ds:Signature", NS) is not None)
ok, err = xmlsec_verify(xml, idp_cert_file, RESPONSE_SIG)
check("sign-response: Response signature verifies with xmlsec1", ok, err)
check("sign-response: SP accepts", a.get("status") == "success", a)

s, a, xml = login("unsigned assertion", "--no-sign-assertion", "--sign-response", expect_acs=False)
resp = ET.fromstring(xml)
check("no-sign-assertion: only the Response is signed",
      resp.find("ds:Signature", NS) is not None and resp.find("saml:Assertion/ds:Signature", NS) is None)
refused("no-sign-assertion: pysaml2 SP (wants signed assertions) refuses", SP_SCRIPT, "acs", "--dir", sp_dir,
        "--idp-metadata", md_path, "--saml-response", s.get("saml_response", ""))

s, a, xml = login("transient + authn context", "--name-id-format", TRANSIENT, "--authn-context",
                  "urn:fedhub:ac:mfa", "--name-qualifier", IDP, "--sp-name-qualifier", SP_ENTITY)
check("transient: NameID format and AuthnContextClassRef as asked",
      a.get("name_id_format") == TRANSIENT and a.get("authn_context") == "urn:fedhub:ac:mfa", a)
nid = ET.fromstring(xml).find("saml:Assertion/saml:Subject/saml:NameID", NS)
check("transient: NameQualifier / SPNameQualifier set",
      nid is not None and nid.get("NameQualifier") == IDP and nid.get("SPNameQualifier") == SP_ENTITY)

ENC_TRIPLEDES = "http://www.w3.org/2001/04/xmlenc#tripledes-cbc"
RSA_OAEP = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
for label, extra, block in [
    ("encrypted (pysaml2 default)", [], ENC_TRIPLEDES),
    ("encrypted aes128-cbc + signed Response", ["--encryption-alg", "aes128-cbc", "--sign-response"],
     "http://www.w3.org/2001/04/xmlenc#aes128-cbc"),
    ("encrypted aes256-gcm", ["--encryption-alg", "aes256-gcm"], "http://www.w3.org/2009/xmlenc11#aes256-gcm"),
]:
    s, a, xml = login(label, "--encrypt-assertion", *extra)
    resp = ET.fromstring(xml)
    enc = resp.find("saml:EncryptedAssertion", NS)
    check(f"{label}: EncryptedAssertion, no plain Assertion",
          enc is not None and resp.find("saml:Assertion", NS) is None)
    methods = [m.get("Algorithm") for m in resp.iter(f"{{{NS['xenc']}}}EncryptionMethod")]
    check(f"{label}: {block.rsplit('#', 1)[1]} + rsa-oaep-mgf1p", sorted(methods) == sorted([block, RSA_OAEP]), methods)
    check(f"{label}: SP decrypts, attributes intact",
          a.get("status") == "success" and a.get("attributes") == USER["attributes"], a)
    check(f"{label}: SessionIndex reported", a.get("session_index") == s.get("session_index") and s.get("session_index"))

last_success = a
s, a, xml = login("status error", "--status-error", "--status-message", "wrong password")
resp = ET.fromstring(xml)
check("status error: no assertion", resp.find("saml:Assertion", NS) is None and resp.find("saml:EncryptedAssertion", NS) is None)
check("status error: Response signed", resp.find("ds:Signature", NS) is not None)
ok, err = xmlsec_verify(xml, idp_cert_file, RESPONSE_SIG)
check("status error: Response signature verifies", ok, err)
check("status error: SP sees Responder / AuthnFailed",
      a.get("status") == RESPONDER and a.get("second_status") == AUTHN_FAILED and a.get("message") == "wrong password", a)
check("status error: in_response_to", a.get("in_response_to") == s.get("request_id"))
check("status error: no session_index / name_id in sso output", s.get("session_index") is None and s.get("name_id") is None)

s, _, xml = login("expired assertion", "--lifetime", "-120", expect_acs=False)
refused("--lifetime -120: the SP refuses the expired assertion", SP_SCRIPT, "acs", "--dir", sp_dir,
        "--idp-metadata", md_path, "--saml-response", s.get("saml_response", ""))

# --- SP-initiated logout (SP session = the last successful login) -------------
sessions_before = len(json.load(open(os.path.join(idp_dir, "sessions.json"))))
lo = sp("sp logout", "logout", "--dir", sp_dir, "--idp-metadata", md_path)
slo = idp("slo", "slo", "--dir", idp_dir, "--query", lo.get("url", ""))
check("slo: Success", slo.get("status") == SUCCESS, slo)
check("slo: request_id / name_id / session_index",
      slo.get("request_id") == lo.get("request_id") and slo.get("name_id") == USER["name_id"]
      and slo.get("session_index") == last_success.get("session_index"), (slo, last_success.get("session_index")))
check("slo: answer goes to the SP SLO", slo.get("url", "").startswith(SP_SLO + "?"), slo.get("url"))
q = query_of(slo.get("url", ""))
check("slo: RelayState echoed", q.get("RelayState") == query_of(lo.get("url", "")).get("RelayState"))
check("slo: query signed rsa-sha256 with the IdP key",
      q.get("SigAlg") == RSA_SHA256 and verify_redirect(idp_cert, slo.get("url", ""), "SAMLResponse"))
lr = ET.fromstring(inflate(q.get("SAMLResponse", "")))
check("slo: LogoutResponse InResponseTo / Destination / no XML signature",
      lr.get("InResponseTo") == lo.get("request_id") and lr.get("Destination") == SP_SLO
      and lr.find("ds:Signature", NS) is None)
sessions_after = len(json.load(open(os.path.join(idp_dir, "sessions.json"))))
check("slo: one IdP session ended", sessions_after == sessions_before - 1, (sessions_before, sessions_after))
out = sp("sp logout-response", "logout-response", "--dir", sp_dir, "--idp-metadata", md_path,
         "--query", slo.get("url", ""))
check("sp logout-response: Success", out.get("status") == SUCCESS, out)
again = idp("slo replay (session gone)", "slo", "--dir", idp_dir, "--query", lo.get("url", ""))
check("slo replay: Responder", again.get("status") == RESPONDER, again)
lr = ET.fromstring(inflate(query_of(again.get("url", "")).get("SAMLResponse", "")))
sc = lr.find("samlp:Status/samlp:StatusCode/samlp:StatusCode", NS)
check("slo replay: second-level UnknownPrincipal", sc is not None and sc.get("Value") == UNKNOWN_PRINCIPAL)
refused("slo: unsigned LogoutRequest", IDP_SCRIPT, "slo", "--dir", idp_dir,
        "--query", lo.get("url", "").split("&SigAlg=")[0], reason="not signed")

# --- IdP-initiated logout ----------------------------------------------------
s, a, xml = login("login for idp logout")  # the most recent session is the one logged out
lo = idp("logout", "logout", "--dir", idp_dir)
check("logout: URL to the SP SLO", lo.get("url", "").startswith(SP_SLO + "?"), lo.get("url"))
check("logout: query signed rsa-sha256 with the IdP key",
      query_of(lo.get("url", "")).get("SigAlg") == RSA_SHA256 and verify_redirect(idp_cert, lo.get("url", ""), "SAMLRequest"))
lreq = ET.fromstring(inflate(query_of(lo.get("url", "")).get("SAMLRequest", "")))
check("logout: LogoutRequest ID / Destination / NameID / SessionIndex",
      lreq.get("ID") == lo.get("request_id") and lreq.get("Destination") == SP_SLO
      and lreq.find("saml:NameID", NS).text == USER["name_id"]
      and lreq.find("saml:NameID", NS).get("Format") == PERSISTENT
      and lreq.find("samlp:SessionIndex", NS).text == s.get("session_index"))
ilr = sp("sp idp-logout-request", "idp-logout-request", "--dir", sp_dir, "--idp-metadata", md_path,
         "--query", lo.get("url", ""))
check("sp idp-logout-request: Success (NameID matches exactly)", ilr.get("status") == SUCCESS, ilr)
lresp = idp("logout-response", "logout-response", "--dir", idp_dir, "--query", ilr.get("response_url", ""))
check("logout-response: Success, in_response_to", lresp.get("status") == SUCCESS
      and lresp.get("second_status") is None and lresp.get("in_response_to") == lo.get("request_id"), lresp)
check("logout-response: IdP session ended", s.get("session_index") not in
      [x["session_index"] for x in json.load(open(os.path.join(idp_dir, "sessions.json")))])
refused("logout-response replay (request consumed)", IDP_SCRIPT, "logout-response", "--dir", idp_dir,
        "--query", ilr.get("response_url", ""), reason="no pending")

# the SP has no session any more: it answers UnknownPrincipal, reported with exit 0
s, a, xml = login("login for a second idp logout")
sp("sp local logout", "logout", "--dir", sp_dir, "--idp-metadata", md_path)  # pending at SP, session kept
lo = idp("logout 2", "logout", "--dir", idp_dir, "--name-id", USER["name_id"], "--relay-state", "idp-rs")
check("logout --relay-state: RelayState in URL", query_of(lo.get("url", "")).get("RelayState") == "idp-rs")
ilr = sp("sp idp-logout-request 2", "idp-logout-request", "--dir", sp_dir, "--idp-metadata", md_path,
         "--query", lo.get("url", ""))
check("sp idp-logout-request 2: Success", ilr.get("status") == SUCCESS, ilr)
ilr2 = sp("sp idp-logout-request (no SP session)", "idp-logout-request", "--dir", sp_dir, "--idp-metadata", md_path,
          "--query", lo.get("url", ""))
check("sp answers UnknownPrincipal without a session", ilr2.get("second_status") == UNKNOWN_PRINCIPAL, ilr2)
lresp = idp("logout-response UnknownPrincipal", "logout-response", "--dir", idp_dir, "--query", ilr2.get("response_url", ""))
check("logout-response: Responder / UnknownPrincipal reported with exit 0",
      lresp.get("status") == RESPONDER and lresp.get("second_status") == UNKNOWN_PRINCIPAL
      and lresp.get("in_response_to") == lo.get("request_id"), lresp)
check("logout-response: relay_state echoed", lresp.get("relay_state") == "idp-rs", lresp)
refused("logout-response: second answer to a consumed request", IDP_SCRIPT, "logout-response", "--dir", idp_dir,
        "--query", ilr.get("response_url", ""), reason="no pending")

# --- another signature algorithm: a second IdP for the same SP -----------------
idp512 = os.path.join(SCRATCH, "idp512")
md512 = idp("init --sign-alg rsa-sha512", "init", "--dir", idp512, "--entity-id", IDP, "--base", IDP_BASE,
            "--sp-metadata", sp_md, "--sign-alg", "rsa-sha512").get("metadata", "")
a512 = sp("rsa-sha512: sp authn", "authn", "--dir", sp_dir, "--idp-metadata", md512)
s512 = idp("rsa-sha512: sso", "sso", "--dir", idp512, "--query", a512.get("url", ""), "--user", json.dumps(USER))
sig512 = ET.fromstring(base64.b64decode(s512.get("saml_response", ""))).find("saml:Assertion/ds:Signature", NS)
check("rsa-sha512: SignatureMethod / DigestMethod",
      sig512 is not None
      and sig512.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm").endswith("#rsa-sha512")
      and sig512.find("ds:SignedInfo/ds:Reference/ds:DigestMethod", NS).get("Algorithm").endswith("#sha512"))
out = sp("rsa-sha512: sp acs", "acs", "--dir", sp_dir, "--idp-metadata", md512,
         "--saml-response", s512.get("saml_response", ""))
check("rsa-sha512: SP accepts", out.get("status") == "success", out)

# --- re-init keeps the key, replaces the SP metadata --------------------------
key_before = open(os.path.join(idp_dir, "idp-key.pem"), "rb").read()
idp("re-init", "init", "--dir", idp_dir, "--entity-id", IDP, "--base", IDP_BASE, "--sp-metadata", sp_md)
check("re-init: key kept", open(os.path.join(idp_dir, "idp-key.pem"), "rb").read() == key_before)

# ============================================================================
# Part 2: a hand-made SP (metadata, messages and signatures built here)
# ============================================================================
hub_key, hub_cert = new_key_cert("selftest hub SP")
other_key, _ = new_key_cert("someone else")
hub_md = write("hub-sp-metadata.xml", f"""<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="{NS['md']}" xmlns:ds="{NS['ds']}" entityID="{SP_ENTITY}">
  <md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true"
      protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_b64(hub_cert)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:SingleLogoutService Binding="{REDIRECT}" Location="{SP_SLO}" ResponseLocation="{SP_SLO_RETURN}"/>
    <md:NameIDFormat>{PERSISTENT}</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{POST}" Location="{ACS}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
""")
idp2 = os.path.join(SCRATCH, "idp2")
idp("init (hand-made SP)", "init", "--dir", idp2, "--entity-id", IDP, "--base", IDP_BASE, "--sp-metadata", hub_md)
idp2_cert_file = os.path.join(idp2, "idp-cert.pem")
idp2_cert = x509.load_pem_x509_certificate(open(idp2_cert_file, "rb").read())
refused("logout without a session", IDP_SCRIPT, "logout", "--dir", idp2, reason="no recorded session")
user_file = write("user.json", json.dumps(USER))

req_id, req = authn_request_xml()
qs = redirect_query(hub_key, "SAMLRequest", req, relay_state="hub-rs")
t0 = time.monotonic()
s = idp("hand-made: sso (user from file)", "sso", "--dir", idp2, "--query", "?" + qs, "--user", user_file, "--sign-response")
sso_secs = time.monotonic() - t0
check("hand-made: request id / acs / relay state",
      s.get("request_id") == req_id and s.get("acs") == ACS and s.get("relay_state") == "hub-rs", s)
check("hand-made: name_id_policy_format reported", s.get("name_id_policy_format") == PERSISTENT, s)
xml = base64.b64decode(s.get("saml_response", ""))
ok, err = xmlsec_verify(xml, idp2_cert_file, RESPONSE_SIG)
check("hand-made: Response signature verifies with xmlsec1", ok, err)
ok, err = xmlsec_verify(xml, idp2_cert_file, ASSERTION_SIG)
check("hand-made: Assertion signature verifies with xmlsec1", ok, err)
hand_session = s.get("session_index")

# the query given as a whole URL, from @FILE
req_id2, req2 = authn_request_xml(acs=None)  # no ACS URL: the default POST ACS is used
qfile = write("query.txt", SSO + "?" + redirect_query(hub_key, "SAMLRequest", req2))
s2 = idp("hand-made: sso with @FILE URL, no ACS URL", "sso", "--dir", idp2, "--query", "@" + qfile, "--user", user_file)
check("hand-made: default ACS used, relay_state null", s2.get("acs") == ACS and s2.get("relay_state") is None, s2)

refused("encrypt without an SP encryption key", IDP_SCRIPT, "sso", "--dir", idp2, "--query", qs,
        "--user", user_file, "--encrypt-assertion", reason="encryption")
_, r = authn_request_xml()
refused("unsigned AuthnRequest", IDP_SCRIPT, "sso", "--dir", idp2, "--user", user_file,
        "--query", redirect_query(hub_key, "SAMLRequest", r, sign=False), reason="not signed")
good = redirect_query(hub_key, "SAMLRequest", r, relay_state="x")
sig_part = good.rsplit("Signature=", 1)[1]
bad_sig = urllib.parse.unquote(sig_part)
bad_sig = ("B" if bad_sig[0] != "B" else "C") + bad_sig[1:]
refused("tampered signature", IDP_SCRIPT, "sso", "--dir", idp2, "--user", user_file,
        "--query", good.rsplit("Signature=", 1)[0] + urllib.parse.urlencode({"Signature": bad_sig}))
refused("tampered RelayState (signed value changed)", IDP_SCRIPT, "sso", "--dir", idp2, "--user", user_file,
        "--query", good.replace("RelayState=x", "RelayState=y"))
refused("signed with a key not in the SP metadata", IDP_SCRIPT, "sso", "--dir", idp2, "--user", user_file,
        "--query", redirect_query(other_key, "SAMLRequest", r))
_, r = authn_request_xml(destination="http://127.0.0.1:18997/elsewhere/sso")
refused("wrong Destination", IDP_SCRIPT, "sso", "--dir", idp2, "--user", user_file,
        "--query", redirect_query(hub_key, "SAMLRequest", r), reason="destination")
_, r = authn_request_xml(issuer="http://127.0.0.1:18996/not-the-sp")
refused("wrong Issuer", IDP_SCRIPT, "sso", "--dir", idp2, "--user", user_file,
        "--query", redirect_query(hub_key, "SAMLRequest", r), reason="issuer")
_, r = authn_request_xml(acs="http://127.0.0.1:18996/evil/acs")
refused("ACS URL not in the SP metadata", IDP_SCRIPT, "sso", "--dir", idp2, "--user", user_file,
        "--query", redirect_query(hub_key, "SAMLRequest", r), reason="AssertionConsumerServiceURL")
_, r = authn_request_xml(issue_instant=now_xs(-2 * 86400))
refused("IssueInstant two days old", IDP_SCRIPT, "sso", "--dir", idp2, "--user", user_file,
        "--query", redirect_query(hub_key, "SAMLRequest", r), reason="IssueInstant")
refused("bad --user JSON", IDP_SCRIPT, "sso", "--dir", idp2, "--query", qs, "--user", '{"attributes": {}}')
refused("usage error (no --user)", IDP_SCRIPT, "sso", "--dir", idp2, "--query", qs)
refused("sso before init", IDP_SCRIPT, "sso", "--dir", os.path.join(SCRATCH, "nope"), "--query", qs,
        "--user", user_file)

# hand-made SLO: ResponseLocation used, SessionIndex must match
_, lreq = logout_request_xml(USER["name_id"], session_index="not-" + str(hand_session))
out = idp("hand-made slo, wrong SessionIndex", "slo", "--dir", idp2, "--query",
          redirect_query(hub_key, "SAMLRequest", lreq))
check("wrong SessionIndex: Responder", out.get("status") == RESPONDER, out)
_, lreq = logout_request_xml(USER["name_id"], fmt=TRANSIENT)
out = idp("hand-made slo, NameID Format differs", "slo", "--dir", idp2, "--query",
          redirect_query(hub_key, "SAMLRequest", lreq))
check("NameID Format differs: Responder", out.get("status") == RESPONDER, out)
_, lreq = logout_request_xml(USER["name_id"], destination=SSO)
refused("slo: wrong Destination", IDP_SCRIPT, "slo", "--dir", idp2, "--query",
        redirect_query(hub_key, "SAMLRequest", lreq), reason="destination")
lreq_id, lreq = logout_request_xml(USER["name_id"], session_index=hand_session)
refused("slo: tampered signature", IDP_SCRIPT, "slo", "--dir", idp2, "--query",
        redirect_query(other_key, "SAMLRequest", lreq), reason="signature")
out = idp("hand-made slo", "slo", "--dir", idp2, "--query", redirect_query(hub_key, "SAMLRequest", lreq, relay_state="r2"))
check("hand-made slo: Success, session index", out.get("status") == SUCCESS and out.get("session_index") == hand_session, out)
check("hand-made slo: answer to the ResponseLocation", out.get("url", "").startswith(SP_SLO_RETURN + "?"), out.get("url"))
check("hand-made slo: signed, RelayState echoed",
      verify_redirect(idp2_cert, out.get("url", ""), "SAMLResponse") and query_of(out.get("url", "")).get("RelayState") == "r2")
lr = ET.fromstring(inflate(query_of(out.get("url", "")).get("SAMLResponse", "")))
check("hand-made slo: Destination = ResponseLocation, InResponseTo",
      lr.get("Destination") == SP_SLO_RETURN and lr.get("InResponseTo") == lreq_id)

# hand-made IdP-initiated logout (session from the second sso) + LogoutResponse checks
lo = idp("hand-made logout", "logout", "--dir", idp2)
check("hand-made logout: request goes to Location (not ResponseLocation)",
      lo.get("url", "").startswith(SP_SLO + "?"), lo.get("url"))
rid = lo.get("request_id", "")
refused("logout-response: unsigned", IDP_SCRIPT, "logout-response", "--dir", idp2, "--query",
        redirect_query(hub_key, "SAMLResponse", logout_response_xml(rid), sign=False), reason="not signed")
refused("logout-response: wrong InResponseTo", IDP_SCRIPT, "logout-response", "--dir", idp2, "--query",
        redirect_query(hub_key, "SAMLResponse", logout_response_xml("_unknown")), reason="InResponseTo")
refused("logout-response: wrong Destination", IDP_SCRIPT, "logout-response", "--dir", idp2, "--query",
        redirect_query(hub_key, "SAMLResponse", logout_response_xml(rid, destination=SSO)), reason="destination")
refused("logout-response: unsigned, POST binding", IDP_SCRIPT, "logout-response", "--dir", idp2, "--saml-response",
        base64.b64encode(logout_response_xml(rid).encode()).decode(), reason="not signed")
refused("logout-response: signed by another key", IDP_SCRIPT, "logout-response", "--dir", idp2, "--query",
        redirect_query(other_key, "SAMLResponse", logout_response_xml(rid)), reason="signature")
out = idp("logout-response: non-success status", "logout-response", "--dir", idp2, "--query",
          redirect_query(hub_key, "SAMLResponse", logout_response_xml(rid, status=RESPONDER)))
check("logout-response: Responder reported with exit 0", out.get("status") == RESPONDER and out.get("in_response_to") == rid, out)
check("logout-response: session kept after a failure",
      len(json.load(open(os.path.join(idp2, "sessions.json")))) == 1)

print(f"timing: init {init_secs:.2f}s, one sso call {sso_secs:.2f}s")
print(f"selftest_idp: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
