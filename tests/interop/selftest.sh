#!/usr/bin/env bash
# Self-test of tests/interop/pysaml2_sp.py that needs no running IdP.
#
# Builds the venv (tests/interop/setup-venv), writes a minimal IdP metadata
# file with a freshly generated signing certificate and SSO/SLO Redirect
# endpoints at http://127.0.0.1:18999/saml/{sso,slo} (no server is started),
# then checks `init` and `authn` end to end (metadata content, the signed
# Redirect URL, the AuthnRequest itself) and a few error paths. Scratch files
# live in a mktemp directory that is removed on exit.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="$("$script_dir/setup-venv" | tail -n 1)"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/pysaml2-sp-selftest.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

SP_SCRIPT="$script_dir/pysaml2_sp.py" SCRATCH="$scratch" "$python" - <<'PY'
import base64
import datetime
import json
import os
import subprocess
import sys
import urllib.parse
import zlib
import xml.etree.ElementTree as ET

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SP_SCRIPT = os.environ["SP_SCRIPT"]
SCRATCH = os.environ["SCRATCH"]
NS = {
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
}
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
IDP = "http://127.0.0.1:18999/saml/metadata"
SSO = "http://127.0.0.1:18999/saml/sso"
SLO = "http://127.0.0.1:18999/saml/slo"
SP_ENTITY = "http://127.0.0.1:18998/sp"
ACS = "http://127.0.0.1:18998/sp/acs"
SP_SLO = "http://127.0.0.1:18998/sp/slo"

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def run(*args):
    return subprocess.run(
        [sys.executable, SP_SCRIPT, *args], capture_output=True, text=True, timeout=120
    )


def run_json(name, *args):
    proc = run(*args)
    check(f"{name}: exit 0", proc.returncode == 0, proc.stderr)
    try:
        out = json.loads(proc.stdout)
        check(f"{name}: stdout is one JSON object", isinstance(out, dict) and proc.stdout.count("\n") == 1)
    except ValueError:
        check(f"{name}: stdout is one JSON object", False, repr(proc.stdout))
        out = {}
    return out


# --- a minimal IdP: key + self-signed cert + metadata (no server) ---------
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "selftest idp")])
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
cert_b64 = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
idp_md = os.path.join(SCRATCH, "idp-metadata.xml")
with open(idp_md, "w") as fh:
    fh.write(f"""<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="{NS['md']}" xmlns:ds="{NS['ds']}" entityID="{IDP}">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="true"
      protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:SingleLogoutService Binding="{REDIRECT}" Location="{SLO}"/>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:SingleSignOnService Binding="{REDIRECT}" Location="{SSO}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
""")

sp_dir = os.path.join(SCRATCH, "sp")

# --- init ------------------------------------------------------------------
out = run_json("init", "init", "--dir", sp_dir, "--entity-id", SP_ENTITY, "--acs", ACS, "--slo", SP_SLO)
md_path = out.get("metadata", "")
check("init: metadata path is D/sp-metadata.xml",
      os.path.abspath(md_path) == os.path.abspath(os.path.join(sp_dir, "sp-metadata.xml")), md_path)
check("init: key and cert written",
      all(os.path.isfile(os.path.join(sp_dir, f)) for f in ("sp-key.pem", "sp-cert.pem")))
root = ET.parse(md_path).getroot()
check("metadata: entityID", root.get("entityID") == SP_ENTITY, root.get("entityID"))
spsso = root.find("md:SPSSODescriptor", NS)
check("metadata: SPSSODescriptor present", spsso is not None)
spsso = spsso if spsso is not None else ET.Element("x")
check("metadata: AuthnRequestsSigned=true", spsso.get("AuthnRequestsSigned") == "true")
check("metadata: WantAssertionsSigned=true", spsso.get("WantAssertionsSigned") == "true")
uses = sorted(kd.get("use") or "" for kd in spsso.findall("md:KeyDescriptor", NS))
check("metadata: signing + encryption KeyDescriptors", uses == ["encryption", "signing"], uses)
sp_cert = x509.load_pem_x509_certificate(open(os.path.join(sp_dir, "sp-cert.pem"), "rb").read())
sp_cert_b64 = base64.b64encode(sp_cert.public_bytes(serialization.Encoding.DER)).decode()
md_certs = {"".join(c.text.split()) for c in spsso.findall(".//ds:X509Certificate", NS)}
check("metadata: KeyDescriptors carry the generated cert", md_certs == {sp_cert_b64})
check("metadata: RSA-2048 key", sp_cert.public_key().key_size == 2048)
acs = [(e.get("Binding"), e.get("Location")) for e in spsso.findall("md:AssertionConsumerService", NS)]
check("metadata: ACS HTTP-POST", acs == [(POST, ACS)], acs)
slo = [(e.get("Binding"), e.get("Location")) for e in spsso.findall("md:SingleLogoutService", NS)]
check("metadata: SLO HTTP-Redirect", slo == [(REDIRECT, SP_SLO)], slo)

# --- authn -----------------------------------------------------------------
relay = "rs-123/äö?&="
out = run_json("authn", "authn", "--dir", sp_dir, "--idp-metadata", idp_md,
               "--relay-state", relay, "--force-authn", "--passive")
url = out.get("url", "")
req_id = out.get("request_id", "")
parts = urllib.parse.urlsplit(url)
check("authn: URL goes to the IdP SSO endpoint",
      f"{parts.scheme}://{parts.netloc}{parts.path}" == SSO, url)
pairs = parts.query.split("&")
raw = dict(p.split("=", 1) for p in pairs)
q = {k: urllib.parse.unquote_plus(v) for k, v in raw.items()}
check("authn: SAMLRequest, RelayState, SigAlg, Signature in that order",
      [p.split("=", 1)[0] for p in pairs] == ["SAMLRequest", "RelayState", "SigAlg", "Signature"], pairs)
check("authn: RelayState round-trips", q.get("RelayState") == relay, q.get("RelayState"))
check("authn: SigAlg is RSA-SHA256", q.get("SigAlg") == RSA_SHA256, q.get("SigAlg"))
signed = "&".join(p for p in pairs if not p.startswith("Signature=")).encode()
try:
    sp_cert.public_key().verify(base64.b64decode(q["Signature"]), signed, padding.PKCS1v15(), hashes.SHA256())
    sig_ok = True
except Exception as exc:  # noqa: BLE001
    sig_ok = False
check("authn: Redirect signature verifies with the SP cert over the raw query", sig_ok)
xml = zlib.decompress(base64.b64decode(q["SAMLRequest"]), -15)
req = ET.fromstring(xml)
check("AuthnRequest: root element", req.tag == f"{{{NS['samlp']}}}AuthnRequest", req.tag)
check("AuthnRequest: ID == request_id", req.get("ID") == req_id and req_id, (req.get("ID"), req_id))
check("AuthnRequest: Destination", req.get("Destination") == SSO, req.get("Destination"))
check("AuthnRequest: ACS URL", req.get("AssertionConsumerServiceURL") == ACS)
check("AuthnRequest: ProtocolBinding POST", req.get("ProtocolBinding") == POST)
check("AuthnRequest: ForceAuthn", req.get("ForceAuthn") == "true", req.get("ForceAuthn"))
check("AuthnRequest: IsPassive", req.get("IsPassive") == "true", req.get("IsPassive"))
issuer = req.find("saml:Issuer", NS)
check("AuthnRequest: Issuer", issuer is not None and issuer.text == SP_ENTITY)
check("AuthnRequest: no enveloped signature (Redirect binding)", req.find("ds:Signature", NS) is None)
outstanding = json.load(open(os.path.join(sp_dir, "outstanding.json")))
check("authn: request id recorded as outstanding", outstanding.get(req_id) == relay, outstanding)

out = run_json("authn (plain)", "authn", "--dir", sp_dir, "--idp-metadata", idp_md)
q2 = urllib.parse.parse_qs(urllib.parse.urlsplit(out.get("url", "")).query)
req2 = ET.fromstring(zlib.decompress(base64.b64decode(q2["SAMLRequest"][0]), -15))
check("authn (plain): no RelayState, ForceAuthn, IsPassive",
      "RelayState" not in q2 and req2.get("ForceAuthn") is None and req2.get("IsPassive") is None)
outstanding = json.load(open(os.path.join(sp_dir, "outstanding.json")))
check("authn (plain): both requests outstanding", set(outstanding) == {req_id, out.get("request_id")})

# --- error paths -------------------------------------------------------------
for name, args in [
    ("authn with missing IdP metadata", ["authn", "--dir", sp_dir, "--idp-metadata", os.path.join(SCRATCH, "nope.xml")]),
    ("logout without a session", ["logout", "--dir", sp_dir, "--idp-metadata", idp_md]),
    ("acs with garbage", ["acs", "--dir", sp_dir, "--idp-metadata", idp_md, "--saml-response", "bm90IHhtbA=="]),
    ("usage error", ["authn", "--dir", sp_dir]),
]:
    proc = run(*args)
    check(f"{name}: exit 1, empty stdout, reason on stderr",
          proc.returncode == 1 and proc.stdout == "" and "error" in proc.stderr,
          (proc.returncode, proc.stdout, proc.stderr[-300:]))

print(f"selftest: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
