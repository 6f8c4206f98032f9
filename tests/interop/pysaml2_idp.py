#!/usr/bin/env python3
"""A real third-party SAML 2.0 Identity Provider (pysaml2) driven from the CLI.

fedhub's Rust interop tests run this script as a subprocess, one process per
protocol step, when the hub is the SAML *Service Provider* and pysaml2's IdP
class (``saml2.server.Server``) is the upstream IdP. No HTTP server is run: the
test plays the browser and hands this script the hub's redirect URLs; the
script answers with what the IdP would send back (a POST form value or a
redirect URL). Everything the IdP must remember between steps (keys, config,
the SP's metadata, issued sessions, pending logout requests) lives in files
under ``--dir``. Every successful call prints exactly one JSON object on
stdout; failures print ``error: <reason>`` on stderr and exit with status 1.

See tests/interop/README.md for the full contract. Set PYSAML2_IDP_DEBUG=1 to
get pysaml2's debug log (and tracebacks) on stderr.
"""

import argparse
import base64
import calendar
import datetime
import json
import logging
import os
import shutil
import sys
import time
import traceback
import urllib.parse
import warnings

DEBUG = os.environ.get("PYSAML2_IDP_DEBUG", "") not in ("", "0")
if not DEBUG:
    # Keep stderr for real errors: pysaml2 triggers deprecation warnings in
    # newer `cryptography` releases at import time.
    warnings.simplefilter("ignore")

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    from saml2 import BINDING_HTTP_POST
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2 import saml
    from saml2 import samlp
    from saml2 import time_util
    from saml2.assertion import Policy
    from saml2.attribute_converter import AttributeConverter
    from saml2.config import IdPConfig
    from saml2.ident import code as code_name_id
    from saml2.ident import decode as decode_name_id
    from saml2.metadata import entity_descriptor
    from saml2.response import StatusError
    from saml2.s_utils import decode_base64_and_inflate
    from saml2.s_utils import do_ava
    from saml2.s_utils import factory
    from saml2.saml import NAME_FORMAT_URI
    from saml2.server import Server
    from saml2.sigver import RSA_OAEP_MGF1P
    from saml2.sigver import TRIPLE_DES_CBC
    from saml2.sigver import get_pem_wrapped_unwrapped
    from saml2.sigver import make_temp
    from saml2.sigver import pre_encryption_part
    from saml2.sigver import verify_redirect_signature
    from saml2.xmldsig import DIGEST_SHA1
    from saml2.xmldsig import DIGEST_SHA256
    from saml2.xmldsig import DIGEST_SHA384
    from saml2.xmldsig import DIGEST_SHA512
    from saml2.xmldsig import SIG_RSA_SHA1
    from saml2.xmldsig import SIG_RSA_SHA256
    from saml2.xmldsig import SIG_RSA_SHA384
    from saml2.xmldsig import SIG_RSA_SHA512
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write(
        f"error: cannot import pysaml2/cryptography ({exc}); run this script with the "
        "python printed by tests/interop/setup-venv\n"
    )
    sys.exit(1)


STATUS_SUCCESS = samlp.STATUS_SUCCESS
TIME_SLACK = 60  # seconds; pysaml2's accepted_time_diff
NAMEID_PERSISTENT = saml.NAMEID_FORMAT_PERSISTENT
NAMEID_TRANSIENT = saml.NAMEID_FORMAT_TRANSIENT
DEFAULT_AUTHN_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"

# --sign-alg: (SignatureMethod, DigestMethod); the digest follows the hash of the signature.
SIGN_ALGS = {
    "rsa-sha256": (SIG_RSA_SHA256, DIGEST_SHA256),
    "rsa-sha384": (SIG_RSA_SHA384, DIGEST_SHA384),
    "rsa-sha512": (SIG_RSA_SHA512, DIGEST_SHA512),
    "rsa-sha1": (SIG_RSA_SHA1, DIGEST_SHA1),  # for negative tests only
}

# --encryption-alg: (EncryptionMethod of the EncryptedData, xmlsec1 --session-key type).
# "tripledes-cbc" is pysaml2's own default and takes pysaml2's unmodified code path.
XMLENC = "http://www.w3.org/2001/04/xmlenc#"
XMLENC11 = "http://www.w3.org/2009/xmlenc11#"
BLOCK_ALGS = {
    "tripledes-cbc": (TRIPLE_DES_CBC, "des-192"),
    "aes128-cbc": (XMLENC + "aes128-cbc", "aes-128"),
    "aes256-cbc": (XMLENC + "aes256-cbc", "aes-256"),
    "aes128-gcm": (XMLENC11 + "aes128-gcm", "aes-128"),
    "aes256-gcm": (XMLENC11 + "aes256-gcm", "aes-256"),
}
DEFAULT_BLOCK_ALG = "tripledes-cbc"

# Files kept in --dir.
F_IDP = "idp.json"  # entity id, base URL, algorithms given to `init`
F_KEY = "idp-key.pem"
F_CERT = "idp-cert.pem"
F_METADATA = "idp-metadata.xml"
F_SP_METADATA = "sp-metadata.xml"  # copy of the hub's (SP) metadata
F_SESSIONS = "sessions.json"  # issued login sessions (for slo / logout)
F_PENDING = "logout-pending.json"  # IdP-initiated LogoutRequests awaiting a response


class CliError(Exception):
    """A failure reported to the caller as `error: ...` with exit code 1."""


# ----------------------------------------------------------------- helpers


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")


def path(d, name):
    return os.path.join(d, name)


def read_json(file, default=None):
    try:
        with open(file, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        if default is not None:
            return default
        raise CliError(f"missing state file {file}; run init first")


def write_json(file, obj):
    tmp = file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
    os.replace(tmp, file)


def arg_value(value):
    """`@FILE` reads the value from FILE, `-` from stdin; anything else is literal."""
    if value == "-":
        return sys.stdin.read().strip()
    if value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise CliError(f"cannot read {value[1:]}: {exc}")
    return value


def xmlsec_binary():
    found = shutil.which("xmlsec1")
    if not found:
        raise CliError("xmlsec1 not found on PATH (apt-get install -y xmlsec1)")
    return found


def single_query_params(raw_query):
    """Parse a raw query string into {name: value}; repeated names are an error."""
    if "?" in raw_query:
        # A whole URL (or "?query") was passed: keep the query part. URL-encoded
        # SAML parameters never contain a literal "?".
        raw_query = raw_query.split("?", 1)[1]
    raw_query = raw_query.split("#", 1)[0]
    parsed = urllib.parse.parse_qs(raw_query, keep_blank_values=True, strict_parsing=False)
    out = {}
    for key, values in parsed.items():
        if len(values) != 1:
            raise CliError(f"query parameter {key} appears {len(values)} times")
        out[key] = values[0]
    return out


def status_codes(status):
    """(top-level URI, second-level URI or None, message or None) of a samlp.Status."""
    if status is None or status.status_code is None:
        return None, None, None
    top = status.status_code.value
    second = None
    if status.status_code.status_code is not None:
        second = status.status_code.status_code.value
    message = None
    if status.status_message is not None and status.status_message.text:
        message = status.status_message.text.strip()
    return top, second, message


def issuer_text(msg):
    if msg is None or msg.issuer is None or msg.issuer.text is None:
        return None
    return msg.issuer.text.strip()


def to_epoch(xs_datetime, what):
    try:
        return calendar.timegm(time_util.str_to_time(xs_datetime))
    except Exception as exc:  # noqa: BLE001
        raise CliError(f"{what} {xs_datetime!r} is not a valid xs:dateTime: {exc}")


def check_time_window(msg, what):
    """IssueInstant within +-1 day (+slack), NotOnOrAfter (if any) not passed.

    pysaml2 computes the IssueInstant check for requests but ignores its result,
    so the script enforces it (with pysaml2's own bounds) itself.
    """
    if not msg.issue_instant:
        raise CliError(f"{what} has no IssueInstant")
    now = time.time()
    issued = to_epoch(msg.issue_instant, f"{what} IssueInstant")
    if issued > now + TIME_SLACK:
        raise CliError(f"{what} IssueInstant {msg.issue_instant} is in the future")
    if issued < now - 24 * 3600 - TIME_SLACK:
        raise CliError(f"{what} IssueInstant {msg.issue_instant} is more than a day old")
    nooa = getattr(msg, "not_on_or_after", None)
    if nooa and now - TIME_SLACK >= to_epoch(nooa, f"{what} NotOnOrAfter"):
        raise CliError(f"{what} expired (NotOnOrAfter {nooa})")


def check_destination(msg, expected, what):
    if msg.destination and msg.destination != expected:
        raise CliError(f"{what} Destination {msg.destination!r} is not {expected!r}")


def redirect_url(http_info):
    for name, value in http_info.get("headers", []):
        if name.lower() == "location":
            return value
    raise CliError("pysaml2 produced no Location header")


def message_from_url(url, param):
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    return decode_base64_and_inflate(query[param][0])


def decode_post_payload(b64):
    """XML text of a POST-binding SAML message (accepts the deflated variant too)."""
    try:
        raw = base64.b64decode(b64, validate=False)
    except Exception as exc:  # noqa: BLE001
        raise CliError(f"SAMLResponse is not valid base64: {exc}")
    try:
        return decode_base64_and_inflate(b64).decode("utf-8")
    except Exception:  # noqa: BLE001 - not deflated, the normal POST case
        return raw.decode("utf-8")


def name_id_json(name_id):
    """The parts of a NameID that logout compares (value, Format, qualifiers)."""
    return {
        "value": name_id.text,
        "format": name_id.format,
        "name_qualifier": name_id.name_qualifier,
        "sp_name_qualifier": name_id.sp_name_qualifier,
    }


# ------------------------------------------------------- pysaml2 IdP setup


class VerbatimAttributeConverter(AttributeConverter):
    """Emit every attribute under exactly the name it was given.

    pysaml2's stock converters map *friendly* names (e.g. ``mail``) to URIs and
    emit anything they do not know without a NameFormat (or, for the "basic"
    NOOP converter, lower-cased). The tests name attributes by their real SAML
    Name, so this converter passes names through unchanged, always with the
    ``attrname-format:uri`` NameFormat and no FriendlyName.
    """

    def __init__(self):
        super().__init__(NAME_FORMAT_URI)
        self._to = {}
        self._fro = {}

    def to_(self, attrvals):
        return [
            factory(saml.Attribute, name=name, name_format=self.name_format, attribute_value=do_ava(values))
            for name, values in attrvals.items()
        ]


class IdP(Server):
    """pysaml2's IdP with a selectable block cipher for EncryptedAssertion.

    pysaml2 hard-codes tripledes-cbc (xmlsec1 session key des-192) with
    rsa-oaep-mgf1p key transport in Entity._encrypt_assertion. With the default
    block_alg that method runs unchanged; for another algorithm the same steps
    are done with a different EncryptionMethod and session key type.
    """

    block_alg = DEFAULT_BLOCK_ALG

    def _encrypt_assertion(self, encrypt_cert, sp_entity_id, response, node_xpath=None):
        if self.block_alg == DEFAULT_BLOCK_ALG:
            return super()._encrypt_assertion(encrypt_cert, sp_entity_id, response, node_xpath)
        msg_enc, session_key = BLOCK_ALGS[self.block_alg]
        certs = self.metadata.certs(sp_entity_id, "any", "encryption")
        if not certs:
            raise CliError(f"SP metadata has no encryption certificate for {sp_entity_id}")
        key_name, cert = certs[0]
        wrapped, unwrapped = get_pem_wrapped_unwrapped(cert)
        cert_file = make_temp(wrapped.encode("ascii"), decode=False, delete_tmpfiles=self.config.delete_tmpfiles)
        template = pre_encryption_part(msg_enc=msg_enc, key_enc=RSA_OAEP_MGF1P, key_name=key_name, encrypt_cert=unwrapped)
        return self.sec.encrypt_assertion(
            response, cert_file.name, template, key_type=session_key, node_xpath=node_xpath
        )


def load_idp_info(d):
    info = read_json(path(d, F_IDP))
    for key in ("entity_id", "base", "sign_alg"):
        if not info.get(key):
            raise CliError(f"{path(d, F_IDP)} lacks {key}; run init first")
    return info


def idp_config(d, lifetime=300):
    info = load_idp_info(d)
    base = info["base"]
    key_file = os.path.abspath(path(d, F_KEY))
    cert_file = os.path.abspath(path(d, F_CERT))
    sp_md = os.path.abspath(path(d, F_SP_METADATA))
    if not os.path.isfile(sp_md):
        raise CliError(f"SP metadata {sp_md} missing; run init first")
    sign_alg, digest_alg = SIGN_ALGS[info["sign_alg"]]
    conf = {
        "entityid": info["entity_id"],
        "name": "fedhub interop IdP (pysaml2)",
        "xmlsec_binary": xmlsec_binary(),
        "key_file": key_file,
        "cert_file": cert_file,
        "metadata_key_usage": "signing",
        "accepted_time_diff": TIME_SLACK,
        "only_use_keys_in_metadata": True,
        "signing_algorithm": sign_alg,
        "digest_algorithm": digest_alg,
        "delete_tmpfiles": True,
        "metadata": {"local": [sp_md]},
        "service": {
            "idp": {
                "endpoints": {
                    "single_sign_on_service": [
                        (f"{base}/sso", BINDING_HTTP_REDIRECT),
                        (f"{base}/sso", BINDING_HTTP_POST),
                    ],
                    "single_logout_service": [(f"{base}/slo", BINDING_HTTP_REDIRECT)],
                },
                "name_id_format": [NAMEID_PERSISTENT, NAMEID_TRANSIENT],
                # Makes pysaml2 require the Redirect query signature on every
                # request it parses (AuthnRequest and LogoutRequest alike).
                "want_authn_requests_signed": True,
                "sign_assertion": True,
                "sign_response": False,
            }
        },
    }
    config = IdPConfig()
    config.load(conf)
    # Release everything the test gives, under its own name: no attribute
    # filtering by the SP's RequestedAttributes or entity categories (Policy
    # without a metadata store), URI NameFormat, assertion lifetime in seconds.
    config.setattr(
        "idp",
        "policy",
        Policy({"default": {"lifetime": {"seconds": lifetime}, "name_form": NAME_FORMAT_URI}}, None),
    )
    config.attribute_converters = [VerbatimAttributeConverter()]
    return config, info


class Ctx:
    """The IdP (pysaml2 Server) for --dir D plus the SP it serves."""

    def __init__(self, d, lifetime=300):
        self.dir = d
        self.config, self.info = idp_config(d, lifetime)
        self.server = IdP(config=self.config)
        self.base = self.info["base"]
        self.sign_alg, self.digest_alg = SIGN_ALGS[self.info["sign_alg"]]
        sps = list(self.server.metadata.with_descriptor("spsso").keys())
        if len(sps) != 1:
            raise CliError(f"SP metadata must describe exactly one SP (SPSSODescriptor); found {len(sps)}")
        self.sp = sps[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.close()
        return False

    def sp_acs_locations(self):
        """Every AssertionConsumerService Location of the SP (any binding)."""
        out = []
        for descriptor in self.server.metadata[self.sp].get("spsso_descriptor", []):
            for acs in descriptor.get("assertion_consumer_service", []):
                out.append(acs["location"])
        return out

    def sp_slo_url(self):
        """The SP's HTTP-Redirect SingleLogoutService: ResponseLocation if set, else Location."""
        srvs = self.server.metadata.single_logout_service(self.sp, BINDING_HTTP_REDIRECT, "spsso")
        for srv in srvs or []:
            return srv.get("response_location") or srv["location"], srv["location"]
        raise CliError(f"SP {self.sp} has no HTTP-Redirect SingleLogoutService in its metadata")

    def verify_redirect_signature(self, params, kind):
        """Check the detached Redirect-binding signature against the SP's metadata keys."""
        if "Signature" not in params or "SigAlg" not in params:
            raise CliError(f"{kind} sent with the Redirect binding is not signed (no Signature/SigAlg)")
        msg = {k: params[k] for k in (kind, "RelayState", "SigAlg", "Signature") if k in params}
        certs = self.server.metadata.certs(self.sp, "spsso", "signing")
        if not certs:
            raise CliError(f"SP metadata has no signing certificate for {self.sp}")
        try:
            ok = any(verify_redirect_signature(msg, self.server.sec.sec_backend, cert) for _n, cert in certs)
        except Exception as exc:  # noqa: BLE001 - pysaml2 raises various types here
            raise CliError(f"{kind} Redirect signature could not be verified: {exc!r}")
        if not ok:
            raise CliError(f"{kind} Redirect signature does not verify with the SP's signing key(s)")

    def check_issuer(self, msg, what):
        issuer = issuer_text(msg)
        if issuer != self.sp:
            raise CliError(f"{what} Issuer {issuer!r} is not the SP {self.sp!r}")

    def redirect(self, message, destination, relay_state, response):
        """Redirect-binding URL for a message, query-signed with the IdP key (no XML signature)."""
        http_info = self.server.apply_binding(
            BINDING_HTTP_REDIRECT,
            str(message),
            destination,
            relay_state or "",
            response=response,
            sign=True,
            sigalg=self.sign_alg,
        )
        return redirect_url(http_info)


def new_key_and_cert(d):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedhub interop IdP (pysaml2)")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with open(path(d, F_KEY), "wb") as fh:
        fh.write(key_pem)
    os.chmod(path(d, F_KEY), 0o600)
    with open(path(d, F_CERT), "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))


def load_user(value):
    """--user: inline JSON (starts with '{'), @FILE, - (stdin), or a file name."""
    if value == "-" or value.startswith("@"):
        text = arg_value(value)
    elif value.lstrip().startswith("{"):
        text = value
    else:
        try:
            with open(value, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise CliError(f"--user is neither JSON nor a readable file: {exc}")
    try:
        user = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--user is not valid JSON: {exc}")
    if not isinstance(user, dict) or not isinstance(user.get("name_id"), str) or not user["name_id"]:
        raise CliError('--user must be {"name_id": "<non-empty string>", "attributes": {...}}')
    attributes = user.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise CliError("--user attributes must be an object of name -> [values]")
    identity = {}
    for name, values in attributes.items():
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise CliError(f"--user attribute {name!r} must be a string or a list of strings")
        identity[name] = values
    return user["name_id"], identity


# ------------------------------------------------------------- subcommands


def cmd_init(args):
    d = args.dir
    os.makedirs(d, exist_ok=True)
    if not os.path.isfile(args.sp_metadata):
        raise CliError(f"SP metadata file not found: {args.sp_metadata}")
    base = args.base.rstrip("/")
    write_json(path(d, F_IDP), {"entity_id": args.entity_id, "base": base, "sign_alg": args.sign_alg})
    sp_copy = path(d, F_SP_METADATA)
    if os.path.abspath(args.sp_metadata) != os.path.abspath(sp_copy):
        shutil.copyfile(args.sp_metadata, sp_copy)

    # Re-running init keeps the key (the hub may already trust this IdP's
    # metadata) and only replaces the SP metadata / regenerates ours.
    if not (os.path.isfile(path(d, F_KEY)) and os.path.isfile(path(d, F_CERT))):
        new_key_and_cert(d)

    with Ctx(d) as ctx:  # validates the SP metadata (exactly one SP)
        xml = entity_descriptor(ctx.config).to_string()
    if isinstance(xml, bytes):
        xml = xml.decode("utf-8")
    md_path = os.path.abspath(path(d, F_METADATA))
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(xml)
    emit({"metadata": md_path, "entity_id": args.entity_id})


def cmd_sso(args):
    d = args.dir
    query = arg_value(args.query)
    name_id_value, identity = load_user(args.user)
    with Ctx(d, lifetime=args.lifetime) as ctx:
        params = single_query_params(query)
        if "SAMLRequest" not in params:
            raise CliError("query has no SAMLRequest")
        try:
            xml = decode_base64_and_inflate(params["SAMLRequest"]).decode("utf-8")
            msg = samlp.authn_request_from_string(xml)
        except Exception as exc:  # noqa: BLE001
            raise CliError(f"SAMLRequest is not a deflated, base64-encoded samlp:AuthnRequest: {exc}")
        if msg is None:
            raise CliError("SAMLRequest is not a samlp:AuthnRequest")
        ctx.check_issuer(msg, "AuthnRequest")
        if "Signature" not in params or "SigAlg" not in params:
            raise CliError("AuthnRequest sent with the Redirect binding is not signed (no Signature/SigAlg)")

        sso_url = f"{ctx.base}/sso"
        check_destination(msg, sso_url, "AuthnRequest")
        relay_state = params.get("RelayState")
        try:
            # Verifies the query signature with the SP's metadata keys
            # (want_authn_requests_signed) and Destination against our endpoint.
            req = ctx.server.parse_authn_request(
                params["SAMLRequest"],
                BINDING_HTTP_REDIRECT,
                relay_state=relay_state,
                sigalg=params["SigAlg"],
                signature=params["Signature"],
            )
        except Exception as exc:  # noqa: BLE001
            raise CliError(f"pysaml2 rejected the AuthnRequest: {type(exc).__name__}: {exc}")
        if req is None:
            raise CliError("pysaml2 rejected the AuthnRequest")
        msg = req.message
        check_time_window(msg, "AuthnRequest")

        # Where the Response goes: only HTTP-POST is offered.
        if msg.protocol_binding and msg.protocol_binding != BINDING_HTTP_POST:
            raise CliError(f"AuthnRequest ProtocolBinding {msg.protocol_binding} is not HTTP-POST")
        if msg.assertion_consumer_service_url and msg.assertion_consumer_service_url not in ctx.sp_acs_locations():
            raise CliError(
                f"AssertionConsumerServiceURL {msg.assertion_consumer_service_url!r} is not an ACS of the SP "
                f"({ctx.sp_acs_locations()})"
            )
        try:
            resp_args = ctx.server.response_args(msg, [BINDING_HTTP_POST])
        except Exception as exc:  # noqa: BLE001
            raise CliError(f"no HTTP-POST AssertionConsumerService for the request: {exc}")
        acs = resp_args["destination"]
        policy = msg.name_id_policy

        if args.status_error:
            response = ctx.server.create_error_response(
                msg.id,
                acs,
                (args.second_status, args.status_message),
                sign=True,
                sign_alg=ctx.sign_alg,
                digest_alg=ctx.digest_alg,
            )
            session_index = None
            out_name_id = None
        else:
            if args.encrypt_assertion and not ctx.server.metadata.certs(ctx.sp, "any", "encryption"):
                # pysaml2 would silently send the assertion in clear.
                raise CliError("--encrypt-assertion: the SP metadata has no encryption (or unqualified) key")
            ctx.server.block_alg = args.encryption_alg
            name_id = saml.NameID(
                text=name_id_value,
                format=args.name_id_format,
                name_qualifier=args.name_qualifier,
                sp_name_qualifier=args.sp_name_qualifier,
            )
            response = ctx.server.create_authn_response(
                identity,
                msg.id,
                acs,
                ctx.sp,
                name_id=name_id,
                authn={"class_ref": args.authn_context},
                sign_assertion=not args.no_sign_assertion,
                sign_response=args.sign_response,
                encrypt_assertion=args.encrypt_assertion,
                encrypt_assertion_self_contained=True,
                sign_alg=ctx.sign_alg,
                digest_alg=ctx.digest_alg,
            )
            # pysaml2 keeps the (unencrypted) assertion it built; the
            # SessionIndex is generated inside it.
            stored = list(ctx.server.session_db.assertion.values())
            if len(stored) != 1:
                raise CliError(f"expected pysaml2 to build one assertion, found {len(stored)}")
            assertion = stored[0][0]
            session_index = assertion.authn_statement[0].session_index
            out_name_id = name_id_value
            sessions = read_json(path(d, F_SESSIONS), default=[])
            sessions.append(
                {
                    "sp": ctx.sp,
                    "name_id": code_name_id(name_id),
                    "name_id_parts": name_id_json(name_id),
                    "session_index": session_index,
                    "assertion_id": assertion.id,
                    "request_id": msg.id,
                    "issued": int(time.time()),
                }
            )
            write_json(path(d, F_SESSIONS), sessions)

        xml_out = response if isinstance(response, str) else str(response)
        saml_response = base64.b64encode(xml_out.encode("utf-8")).decode("ascii")
    emit(
        {
            "acs": acs,
            "saml_response": saml_response,
            "relay_state": relay_state,
            "request_id": msg.id,
            "session_index": session_index,
            "name_id": out_name_id,
            "force_authn": msg.force_authn == "true",
            "is_passive": msg.is_passive == "true",
            "name_id_policy_format": policy.format if policy is not None else None,
        }
    )


def same_name_id(a, b):
    return all(getattr(a, k) == getattr(b, k) for k in ("text", "format", "name_qualifier", "sp_name_qualifier"))


def cmd_slo(args):
    d = args.dir
    query = arg_value(args.query)
    with Ctx(d) as ctx:
        params = single_query_params(query)
        if "SAMLRequest" not in params:
            raise CliError("query has no SAMLRequest")
        try:
            xml = decode_base64_and_inflate(params["SAMLRequest"]).decode("utf-8")
            msg = samlp.logout_request_from_string(xml)
        except Exception as exc:  # noqa: BLE001
            raise CliError(f"SAMLRequest is not a deflated, base64-encoded samlp:LogoutRequest: {exc}")
        if msg is None:
            raise CliError("SAMLRequest is not a samlp:LogoutRequest")
        ctx.check_issuer(msg, "LogoutRequest")
        ctx.verify_redirect_signature(params, "SAMLRequest")
        check_destination(msg, f"{ctx.base}/slo", "LogoutRequest")
        relay_state = params.get("RelayState")
        try:
            # pysaml2 checks the query signature again and the Destination.
            req = ctx.server.parse_logout_request(
                params["SAMLRequest"],
                BINDING_HTTP_REDIRECT,
                relay_state=relay_state,
                sigalg=params["SigAlg"],
                signature=params["Signature"],
            )
        except Exception as exc:  # noqa: BLE001
            raise CliError(f"pysaml2 rejected the LogoutRequest: {type(exc).__name__}: {exc}")
        if req is None:
            raise CliError("pysaml2 rejected the LogoutRequest")
        msg = req.message
        check_time_window(msg, "LogoutRequest")
        if msg.name_id is None:
            raise CliError("LogoutRequest has no NameID (BaseID/EncryptedID are not supported)")

        # Like pysaml2's own IdP session store, the whole NameID (value, Format,
        # NameQualifier, SPNameQualifier) must equal the one issued.
        request_indexes = [si.text for si in msg.session_index]
        sessions = read_json(path(d, F_SESSIONS), default=[])
        match = None
        for i, s in enumerate(sessions):
            if s["sp"] != ctx.sp or not same_name_id(decode_name_id(s["name_id"]), msg.name_id):
                continue
            if request_indexes and s["session_index"] not in request_indexes:
                continue
            match = i
            break
        if match is None:
            status = samlp.Status(
                status_code=samlp.StatusCode(
                    value=samlp.STATUS_RESPONDER,
                    status_code=samlp.StatusCode(value=samlp.STATUS_UNKNOWN_PRINCIPAL),
                )
            )
        else:
            status = None  # Success
            del sessions[match]
            write_json(path(d, F_SESSIONS), sessions)

        response_url, _location = ctx.sp_slo_url()
        response = ctx.server.create_logout_response(
            msg, [BINDING_HTTP_REDIRECT], status=status, sign=False
        )
        # create_logout_response picks ResponseLocation first, like we do.
        response.destination = response_url
        url = ctx.redirect(response, response_url, relay_state, response=True)
        top, _second, _message = status_codes(response.status)
    emit(
        {
            "status": top,
            "name_id": msg.name_id.text,
            "session_index": request_indexes[0] if request_indexes else None,
            "request_id": msg.id,
            "url": url,
        }
    )


def cmd_logout(args):
    d = args.dir
    with Ctx(d) as ctx:
        sessions = [s for s in read_json(path(d, F_SESSIONS), default=[]) if s["sp"] == ctx.sp]
        if args.name_id is not None:
            sessions = [s for s in sessions if s["name_id_parts"]["value"] == args.name_id]
        if not sessions:
            raise CliError("no recorded session" + (f" for NameID {args.name_id!r}" if args.name_id else "")
                           + "; run sso first")
        # Several logins leave several sessions: the most recent one is logged
        # out (a real SP keeps only its latest session per user, too).
        session = sessions[-1]
        _response_location, location = ctx.sp_slo_url()
        # A request goes to the Location (ResponseLocation is for responses).
        req_id, request = ctx.server.create_logout_request(
            location,
            ctx.sp,
            name_id=decode_name_id(session["name_id"]),
            session_indexes=[session["session_index"]],
            sign=False,  # Redirect binding: the query is signed, not the XML
            sign_alg=ctx.sign_alg,
            digest_alg=ctx.digest_alg,
        )
        url = ctx.redirect(request, location, args.relay_state, response=False)
    pending = read_json(path(d, F_PENDING), default={})
    pending[req_id] = {
        "name_id": session["name_id"],
        "session_index": session["session_index"],
        "sp": session["sp"],
        "relay_state": args.relay_state,
    }
    write_json(path(d, F_PENDING), pending)
    emit({"url": url, "request_id": req_id})


def cmd_logout_response(args):
    d = args.dir
    if args.query is not None:
        args.query = arg_value(args.query)
    else:
        args.saml_response = arg_value(args.saml_response)
    with Ctx(d) as ctx:
        if args.query is not None:
            params = single_query_params(args.query)
            if "SAMLResponse" not in params:
                raise CliError("query has no SAMLResponse")
            payload = params["SAMLResponse"]
            binding = BINDING_HTTP_REDIRECT
            try:
                xml = decode_base64_and_inflate(payload).decode("utf-8")
            except Exception as exc:  # noqa: BLE001
                raise CliError(f"SAMLResponse is not deflated base64: {exc}")
        else:
            params = {}
            payload = args.saml_response
            binding = BINDING_HTTP_POST
            xml = decode_post_payload(payload)

        msg = samlp.logout_response_from_string(xml)
        if msg is None:
            raise CliError("SAMLResponse is not a samlp:LogoutResponse")
        ctx.check_issuer(msg, "LogoutResponse")
        if binding == BINDING_HTTP_REDIRECT:
            ctx.verify_redirect_signature(params, "SAMLResponse")
        elif msg.signature is None:
            raise CliError("LogoutResponse sent with the POST binding is not signed")

        resp = None
        try:
            # Verifies an enveloped signature (if present) with the SP's key.
            resp = ctx.server.parse_logout_request_response(payload, binding)
        except StatusError:
            pass  # non-success status: reported below
        except Exception as exc:  # noqa: BLE001
            raise CliError(f"pysaml2 rejected the LogoutResponse: {type(exc).__name__}: {exc}")
        if resp is not None:
            msg = resp.response

        pending = read_json(path(d, F_PENDING), default={})
        if not msg.in_response_to or msg.in_response_to not in pending:
            raise CliError(f"LogoutResponse InResponseTo {msg.in_response_to!r} matches no pending LogoutRequest")
        check_destination(msg, f"{ctx.base}/slo", "LogoutResponse")
        check_time_window(msg, "LogoutResponse")

        top, second, message = status_codes(msg.status)
        entry = pending.pop(msg.in_response_to)
        write_json(path(d, F_PENDING), pending)
        if top == STATUS_SUCCESS:
            # The SP confirmed: the IdP session ends.
            sessions = read_json(path(d, F_SESSIONS), default=[])
            sessions = [
                s
                for s in sessions
                if not (s["sp"] == entry["sp"] and s["name_id"] == entry["name_id"]
                        and s["session_index"] == entry["session_index"])
            ]
            write_json(path(d, F_SESSIONS), sessions)
    emit(
        {
            "status": top,
            "second_status": second,
            "message": message,
            "in_response_to": msg.in_response_to,
            "relay_state": params.get("RelayState"),
        }
    )


# --------------------------------------------------------------------- main


class Parser(argparse.ArgumentParser):
    """Usage errors exit with status 1 (not argparse's 2), like every other failure."""

    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write(f"error: {message}\n")
        sys.exit(1)


def build_parser():
    parser = Parser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help_text):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--dir", required=True, help="state directory of this IdP")
        p.set_defaults(func=func)
        return p

    p = add("init", cmd_init, "create key/cert (if missing) and the IdP metadata; (re)load the SP metadata")
    p.add_argument("--entity-id", required=True)
    p.add_argument("--base", required=True, help="base URL: SSO at {URL}/sso, SLO at {URL}/slo")
    p.add_argument("--sp-metadata", required=True, help="the SP's (hub's) metadata XML file")
    p.add_argument("--sign-alg", choices=sorted(SIGN_ALGS), default="rsa-sha256")
    p.add_argument("--key-type", choices=["rsa"], default="rsa", help="only RSA-2048 is supported")

    p = add("sso", cmd_sso, "answer a Redirect-binding AuthnRequest with a Response")
    p.add_argument("--query", required=True, help="raw query string (or URL) of the redirect (@FILE, - = stdin)")
    p.add_argument("--user", required=True, help='{"name_id": ..., "attributes": {...}} as JSON, a file, @FILE or -')
    p.add_argument("--name-id-format", default=NAMEID_PERSISTENT)
    p.add_argument("--name-qualifier")
    p.add_argument("--sp-name-qualifier")
    p.add_argument("--authn-context", default=DEFAULT_AUTHN_CONTEXT)
    p.add_argument("--no-sign-assertion", action="store_true")
    p.add_argument("--sign-response", action="store_true")
    p.add_argument("--encrypt-assertion", action="store_true")
    p.add_argument("--encryption-alg", choices=sorted(BLOCK_ALGS), default=DEFAULT_BLOCK_ALG,
                   help="EncryptedData block cipher (default: pysaml2's own, tripledes-cbc)")
    p.add_argument("--lifetime", type=int, default=300,
                   help="seconds until Conditions/SubjectConfirmationData NotOnOrAfter (negative: expired)")
    p.add_argument("--status-error", action="store_true", help="answer Responder/<second status>, no assertion")
    p.add_argument("--second-status", default=samlp.STATUS_AUTHN_FAILED)
    p.add_argument("--status-message")

    p = add("slo", cmd_slo, "answer the SP's Redirect-binding LogoutRequest")
    p.add_argument("--query", required=True, help="raw query string (or URL) of the redirect (@FILE, - = stdin)")

    p = add("logout", cmd_logout, "IdP-initiated logout: build a signed Redirect-binding LogoutRequest")
    p.add_argument("--name-id", help="NameID value of the session (needed when several are recorded)")
    p.add_argument("--relay-state")

    p = add("logout-response", cmd_logout_response, "validate the SP's LogoutResponse to `logout`")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--query", help="raw query string (or URL) of the Redirect-binding message (@FILE, - = stdin)")
    g.add_argument("--saml-response", help="base64 SAMLResponse, POST binding (@FILE, - = stdin)")
    return parser


def main(argv=None):
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if DEBUG else logging.CRITICAL,
        format="%(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CliError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except Exception as exc:  # noqa: BLE001 - every failure is a test finding
        if DEBUG:
            traceback.print_exc()
        sys.stderr.write(f"error: {type(exc).__name__}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
