#!/usr/bin/env python3
"""A real third-party SAML 2.0 Service Provider (pysaml2) driven from the CLI.

fedhub's Rust interop tests run this script as a subprocess, one process per
protocol step. Everything the SP must remember between steps (keys, config,
outstanding request ids, the login session, pending logout requests) lives in
files under ``--dir``. Every successful call prints exactly one JSON object on
stdout; failures print ``error: <reason>`` on stderr and exit with status 1.

See tests/interop/README.md for the full contract. Set PYSAML2_SP_DEBUG=1 to
get pysaml2's debug log (and tracebacks) on stderr.
"""

import argparse
import base64
import calendar
import datetime
import json
import logging
import os
import shelve
import shutil
import sys
import time
import traceback
import urllib.parse
import warnings

if os.environ.get("PYSAML2_SP_DEBUG", "") in ("", "0"):
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
    from saml2 import samlp
    from saml2 import time_util
    from saml2.client import Saml2Client
    from saml2.config import PREFERRED_BINDING
    from saml2.config import SPConfig
    from saml2.ident import code as code_name_id
    from saml2.ident import decode as decode_name_id
    from saml2.metadata import entity_descriptor
    from saml2.response import StatusError
    from saml2.s_utils import decode_base64_and_inflate
    from saml2.sigver import verify_redirect_signature
    from saml2.xmldsig import DIGEST_SHA256
    from saml2.xmldsig import SIG_RSA_SHA256
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write(
        f"error: cannot import pysaml2/cryptography ({exc}); run this script with the "
        "python printed by tests/interop/setup-venv\n"
    )
    sys.exit(1)


STATUS_SUCCESS = samlp.STATUS_SUCCESS
TIME_SLACK = 60  # seconds; pysaml2's accepted_time_diff

# Files kept in --dir.
F_SP = "sp.json"  # entity id and endpoint URLs given to `init`
F_KEY = "sp-key.pem"
F_CERT = "sp-cert.pem"
F_METADATA = "sp-metadata.xml"
F_OUTSTANDING = "outstanding.json"  # AuthnRequest ids awaiting a Response
F_SESSION = "session.json"  # the current login session (for logout)
F_IDENTITY_CACHE = "identity-cache"  # pysaml2's own session store (shelve)
F_STATE = "slo-state"  # pysaml2's pending-logout state (shelve)


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
        raise CliError(f"missing state file {file}")


def write_json(file, obj):
    tmp = file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
    os.replace(tmp, file)


def remove(file):
    try:
        os.remove(file)
    except FileNotFoundError:
        pass


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


def check_time_window(msg, what):
    """IssueInstant within +-1 day (+slack), NotOnOrAfter (if any) not passed."""
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


def to_epoch(xs_datetime, what):
    try:
        return calendar.timegm(time_util.str_to_time(xs_datetime))
    except Exception as exc:  # noqa: BLE001
        raise CliError(f"{what} {xs_datetime!r} is not a valid xs:dateTime: {exc}")


# ------------------------------------------------------------ pysaml2 setup


def load_sp(d):
    info = read_json(path(d, F_SP))
    for key in ("entity_id", "acs", "slo"):
        if not info.get(key):
            raise CliError(f"{path(d, F_SP)} lacks {key}; run init first")
    return info


def sp_config(d, idp_metadata=None):
    info = load_sp(d)
    key_file = os.path.abspath(path(d, F_KEY))
    cert_file = os.path.abspath(path(d, F_CERT))
    preferred = dict(PREFERRED_BINDING)
    preferred["single_logout_service"] = [BINDING_HTTP_REDIRECT]
    preferred["single_sign_on_service"] = [BINDING_HTTP_REDIRECT]
    conf = {
        "entityid": info["entity_id"],
        "name": "fedhub interop SP (pysaml2)",
        "xmlsec_binary": xmlsec_binary(),
        "key_file": key_file,
        "cert_file": cert_file,
        "encryption_keypairs": [{"key_file": key_file, "cert_file": cert_file}],
        "metadata_key_usage": "both",
        "accepted_time_diff": TIME_SLACK,
        "only_use_keys_in_metadata": True,
        "signing_algorithm": SIG_RSA_SHA256,
        "digest_algorithm": DIGEST_SHA256,
        "allow_unknown_attributes": True,
        "preferred_binding": preferred,
        "delete_tmpfiles": True,
        "service": {
            "sp": {
                "endpoints": {
                    "assertion_consumer_service": [(info["acs"], BINDING_HTTP_POST)],
                    "single_logout_service": [(info["slo"], BINDING_HTTP_REDIRECT)],
                },
                "allow_unsolicited": False,
                "authn_requests_signed": True,
                "logout_requests_signed": True,
                "logout_responses_signed": True,
                "want_assertions_signed": True,
                "want_response_signed": False,
                "want_assertions_or_response_signed": True,
            }
        },
    }
    if idp_metadata is not None:
        if not os.path.isfile(idp_metadata):
            raise CliError(f"IdP metadata file not found: {idp_metadata}")
        conf["metadata"] = {"local": [os.path.abspath(idp_metadata)]}
    config = SPConfig()
    config.load(conf)
    return config, info


class SP:
    """A Saml2Client whose caches are files in --dir; use as a context manager."""

    def __init__(self, d, idp_metadata):
        self.dir = d
        self.config, self.info = sp_config(d, idp_metadata)
        self.state = shelve.open(path(d, F_STATE), writeback=True)
        self.client = Saml2Client(
            self.config,
            identity_cache=path(d, F_IDENTITY_CACHE),
            state_cache=self.state,
        )
        idps = list(self.client.metadata.with_descriptor("idpsso").keys())
        if len(idps) != 1:
            raise CliError(f"IdP metadata must describe exactly one IdP (IDPSSODescriptor); found {len(idps)}")
        self.idp = idps[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.state.close()
        cache_db = getattr(getattr(self.client.users, "cache", None), "_db", None)
        if cache_db is not None and hasattr(cache_db, "close"):
            cache_db.close()
        return False

    def verify_redirect_signature(self, params, kind):
        """Check the detached Redirect-binding signature against the IdP's metadata keys."""
        if "Signature" not in params or "SigAlg" not in params:
            raise CliError(f"{kind} sent with the Redirect binding is not signed (no Signature/SigAlg)")
        msg = {k: params[k] for k in (kind, "RelayState", "SigAlg", "Signature") if k in params}
        certs = self.client.metadata.certs(self.idp, "idpsso", "signing")
        if not certs:
            raise CliError(f"IdP metadata has no signing certificate for {self.idp}")
        try:
            ok = any(
                verify_redirect_signature(msg, self.client.sec.sec_backend, cert) for _name, cert in certs
            )
        except Exception as exc:  # noqa: BLE001 - pysaml2 raises various types here
            raise CliError(f"{kind} Redirect signature could not be verified: {exc!r}")
        if not ok:
            raise CliError(f"{kind} Redirect signature does not verify with the IdP's signing key(s)")

    def check_issuer(self, msg, what):
        issuer = issuer_text(msg)
        if issuer != self.idp:
            raise CliError(f"{what} Issuer {issuer!r} is not the IdP {self.idp!r}")


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


# ------------------------------------------------------------- subcommands


def cmd_init(args):
    d = args.dir
    os.makedirs(d, exist_ok=True)
    write_json(path(d, F_SP), {"entity_id": args.entity_id, "acs": args.acs, "slo": args.slo})

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedhub interop SP (pysaml2)")])
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

    # A fresh identity: forget anything a previous init left behind.
    for stale in (F_OUTSTANDING, F_SESSION):
        remove(path(d, stale))
    for entry in os.listdir(d):
        if entry.startswith(F_IDENTITY_CACHE) or entry.startswith(F_STATE):
            remove(path(d, entry))

    config, _info = sp_config(d)
    descriptor = entity_descriptor(config)
    xml = descriptor.to_string()
    if isinstance(xml, bytes):
        xml = xml.decode("utf-8")
    md_path = os.path.abspath(path(d, F_METADATA))
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(xml)
    emit({"metadata": md_path})


def cmd_authn(args):
    d = args.dir
    with SP(d, args.idp_metadata) as sp:
        kwargs = {}
        if args.force_authn:
            kwargs["force_authn"] = "true"
        if args.passive:
            kwargs["is_passive"] = "true"
        req_id, http_info = sp.client.prepare_for_authenticate(
            entityid=sp.idp,
            relay_state=args.relay_state or "",
            binding=BINDING_HTTP_REDIRECT,
            sign=True,
            sigalg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
            nameid_format=args.name_id_format,
            response_binding=BINDING_HTTP_POST,
            **kwargs,
        )
        url = redirect_url(http_info)
    outstanding = read_json(path(d, F_OUTSTANDING), default={})
    # value = the RelayState sent with the request ("" if none); pysaml2 calls it came_from
    outstanding[req_id] = args.relay_state or ""
    write_json(path(d, F_OUTSTANDING), outstanding)
    emit({"url": url, "request_id": req_id})


def cmd_acs(args):
    d = args.dir
    args.saml_response = arg_value(args.saml_response)
    outstanding = read_json(path(d, F_OUTSTANDING), default={})
    with SP(d, args.idp_metadata) as sp:
        xml = decode_post_payload(args.saml_response)
        try:
            outer = samlp.response_from_string(xml)
        except Exception as exc:  # noqa: BLE001
            raise CliError(f"SAMLResponse is not a samlp:Response: {exc}")
        if outer is None:
            raise CliError("SAMLResponse is not a samlp:Response")

        try:
            resp = sp.client.parse_authn_request_response(
                args.saml_response, BINDING_HTTP_POST, outstanding=outstanding
            )
        except StatusError:
            # pysaml2 has already checked the signature (if any) and that
            # InResponseTo is one of our outstanding requests; a refusal is a
            # legitimate outcome, so report it.
            top, second, message = status_codes(outer.status)
            sp.check_issuer(outer, "Response")
            check_destination(outer, sp.info["acs"], "Response")
            consume_outstanding(d, outstanding, outer.in_response_to)
            emit(
                {
                    "status": top,
                    "second_status": second,
                    "message": message,
                    "in_response_to": outer.in_response_to,
                    "issuer": issuer_text(outer),
                }
            )
            return

        if resp is None:
            raise CliError("pysaml2 rejected the SAMLResponse (could not unravel it)")
        if resp.assertion is None or resp.name_id is None:
            # pysaml2's verify() returns None (without raising) on some failures.
            msg = resp.response
            if msg is not None and msg.destination and msg.destination != sp.info["acs"]:
                raise CliError(f"Response Destination {msg.destination!r} is not the ACS {sp.info['acs']!r}")
            if msg is not None and not resp.issue_instant_ok():
                raise CliError(f"Response IssueInstant {msg.issue_instant} is out of range")
            raise CliError("pysaml2 found no valid assertion/subject in the Response")

        top, second, message = status_codes(resp.response.status)
        if top != STATUS_SUCCESS:  # defensive: pysaml2 raises StatusError for these
            raise CliError(f"unexpected non-success status {top} after validation")
        sent_relay_state = outstanding.get(resp.in_response_to, "")
        if args.relay_state is not None and sent_relay_state != args.relay_state:
            raise CliError(
                f"RelayState {args.relay_state!r} does not match the one sent ({sent_relay_state!r})"
            )

        assertion_issuer = issuer_text(resp.assertion)
        if assertion_issuer != sp.idp:
            raise CliError(f"Assertion Issuer {assertion_issuer!r} is not the IdP {sp.idp!r}")

        session_info = resp.session_info()
        attributes = {}
        for assertion in resp.assertions:
            for statement in assertion.attribute_statement:
                for attribute in statement.attribute:
                    values = attributes.setdefault(attribute.name, [])
                    for value in attribute.attribute_value:
                        values.append(value.text if value.text is not None else "")
        authn = resp.authn_info()
        authn_context = authn[0][0] if authn and authn[0][0] else None

        name_id = resp.name_id
        session = {
            "name_id": code_name_id(name_id),
            "name_id_value": name_id.text,
            "name_id_format": name_id.format,
            "session_index": session_info.get("session_index"),
            "issuer": assertion_issuer,
        }
        write_json(path(d, F_SESSION), session)
        consume_outstanding(d, outstanding, resp.in_response_to)

        emit(
            {
                "status": "success",
                "name_id": name_id.text,
                "name_id_format": name_id.format,
                "session_index": session_info.get("session_index"),
                "issuer": issuer_text(resp.response) or assertion_issuer,
                "attributes": attributes,
                "attributes_friendly": {k: list(v) for k, v in (resp.ava or {}).items()},
                "authn_context": authn_context,
                "in_response_to": resp.in_response_to,
                "relay_state": sent_relay_state or None,
            }
        )


def check_destination(msg, expected, what):
    if msg.destination and msg.destination != expected:
        raise CliError(f"{what} Destination {msg.destination!r} is not {expected!r}")


def consume_outstanding(d, outstanding, req_id):
    """A request id answers exactly one Response (replay protection)."""
    if req_id in outstanding:
        del outstanding[req_id]
        write_json(path(d, F_OUTSTANDING), outstanding)


def cmd_logout(args):
    d = args.dir
    session = read_json(path(d, F_SESSION), default={})
    if not session:
        raise CliError("no stored session in --dir; run acs successfully first")
    with SP(d, args.idp_metadata) as sp:
        name_id = decode_name_id(session["name_id"])
        if not sp.client.users.issuers_of_info(name_id):
            raise CliError("pysaml2's identity cache has no session for the stored NameID")
        results = sp.client.global_logout(
            name_id, reason="", sign=True, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256
        )
        if not isinstance(results, dict) or sp.idp not in results:
            raise CliError(f"pysaml2 produced no LogoutRequest for {sp.idp}: {results!r}")
        binding, http_info = results[sp.idp]
        if binding != BINDING_HTTP_REDIRECT:
            raise CliError(f"IdP has no HTTP-Redirect SingleLogoutService (pysaml2 chose {binding})")
        url = redirect_url(http_info)
        request = samlp.logout_request_from_string(message_from_url(url, "SAMLRequest"))
    emit({"url": url, "request_id": request.id})


def cmd_logout_response(args):
    d = args.dir
    if args.query is not None:
        args.query = arg_value(args.query)
    else:
        args.saml_response = arg_value(args.saml_response)
    with SP(d, args.idp_metadata) as sp:
        if args.query is not None:
            params = single_query_params(args.query)
            if "SAMLResponse" not in params:
                raise CliError("query has no SAMLResponse")
            payload = params["SAMLResponse"]
            binding = BINDING_HTTP_REDIRECT
            xml = decode_base64_and_inflate(payload).decode("utf-8")
        else:
            params = {}
            payload = args.saml_response
            binding = BINDING_HTTP_POST
            xml = decode_post_payload(payload)

        msg = samlp.logout_response_from_string(xml)
        if msg is None:
            raise CliError("SAMLResponse is not a samlp:LogoutResponse")
        sp.check_issuer(msg, "LogoutResponse")
        if binding == BINDING_HTTP_REDIRECT:
            sp.verify_redirect_signature(params, "SAMLResponse")
        elif msg.signature is None:
            raise CliError("LogoutResponse sent with the POST binding is not signed")

        resp = None
        try:
            # Verifies an enveloped signature (if present) with the IdP's key.
            resp = sp.client.parse_logout_request_response(payload, binding)
        except StatusError:
            pass  # non-success status: reported below
        if resp is not None:
            msg = resp.response

        if not msg.in_response_to or msg.in_response_to not in sp.state:
            raise CliError(f"LogoutResponse InResponseTo {msg.in_response_to!r} matches no pending LogoutRequest")
        check_destination(msg, sp.info["slo"], "LogoutResponse")
        check_time_window(msg, "LogoutResponse")

        top, second, message = status_codes(msg.status)
        if top == STATUS_SUCCESS and resp is not None:
            # pysaml2 drops the pending state and the local session.
            sp.client.handle_logout_response(resp, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
            remove(path(d, F_SESSION))
        else:
            del sp.state[msg.in_response_to]
    emit(
        {
            "status": top,
            "second_status": second,
            "message": message,
            "in_response_to": msg.in_response_to,
            "relay_state": params.get("RelayState"),
        }
    )


def cmd_idp_logout_request(args):
    d = args.dir
    args.query = arg_value(args.query)
    session = read_json(path(d, F_SESSION), default={})
    with SP(d, args.idp_metadata) as sp:
        params = single_query_params(args.query)
        if "SAMLRequest" not in params:
            raise CliError("query has no SAMLRequest")
        xml = decode_base64_and_inflate(params["SAMLRequest"]).decode("utf-8")
        msg = samlp.logout_request_from_string(xml)
        if msg is None:
            raise CliError("SAMLRequest is not a samlp:LogoutRequest")
        sp.check_issuer(msg, "LogoutRequest")
        sp.verify_redirect_signature(params, "SAMLRequest")
        check_time_window(msg, "LogoutRequest")

        name_id = decode_name_id(session["name_id"]) if session else None
        relay_state = params.get("RelayState")
        try:
            http_info = sp.client.handle_logout_request(
                params["SAMLRequest"],
                name_id,
                BINDING_HTTP_REDIRECT,
                sign=True,
                sign_alg=SIG_RSA_SHA256,
                digest_alg=DIGEST_SHA256,
                relay_state=relay_state,
            )
        except CliError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise CliError(f"pysaml2 rejected the LogoutRequest: {exc!r}")
        url = redirect_url(http_info)
        response = samlp.logout_response_from_string(message_from_url(url, "SAMLResponse"))
        top, second, _message = status_codes(response.status)
        if top == STATUS_SUCCESS:
            remove(path(d, F_SESSION))
    request_name_id = msg.name_id
    emit(
        {
            "name_id": request_name_id.text if request_name_id is not None else None,
            "name_id_format": request_name_id.format if request_name_id is not None else None,
            "session_indexes": [si.text for si in msg.session_index],
            "request_id": msg.id,
            "status": top,
            "second_status": second,
            "response_url": url,
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

    def add(name, func, help_text, idp=True):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--dir", required=True, help="state directory of this SP")
        if idp:
            p.add_argument("--idp-metadata", required=True, help="IdP metadata XML file")
        p.set_defaults(func=func)
        return p

    p = add("init", cmd_init, "create keys, config and SP metadata", idp=False)
    p.add_argument("--entity-id", required=True)
    p.add_argument("--acs", required=True, help="AssertionConsumerService URL (HTTP-POST)")
    p.add_argument("--slo", required=True, help="SingleLogoutService URL (HTTP-Redirect)")

    p = add("authn", cmd_authn, "build a signed Redirect-binding AuthnRequest")
    p.add_argument("--relay-state")
    p.add_argument("--force-authn", action="store_true")
    p.add_argument("--passive", action="store_true")
    p.add_argument("--name-id-format", help="NameIDPolicy Format (default: no NameIDPolicy)")

    p = add("acs", cmd_acs, "validate a POSTed SAMLResponse")
    p.add_argument("--saml-response", required=True, help="base64 SAMLResponse form value (@FILE, - = stdin)")
    p.add_argument("--relay-state", help="RelayState form value; must match the one sent")

    add("logout", cmd_logout, "build a signed Redirect-binding LogoutRequest")

    p = add("logout-response", cmd_logout_response, "validate the IdP's LogoutResponse")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--query", help="raw query string (or URL) of the Redirect-binding message (@FILE, - = stdin)")
    g.add_argument("--saml-response", help="base64 SAMLResponse, POST binding (@FILE, - = stdin)")

    p = add("idp-logout-request", cmd_idp_logout_request, "answer an IdP-initiated LogoutRequest")
    p.add_argument("--query", required=True, help="raw query string (or URL) of the Redirect-binding message (@FILE, - = stdin)")
    return parser


def main(argv=None):
    debug = os.environ.get("PYSAML2_SP_DEBUG", "") not in ("", "0")
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if debug else logging.CRITICAL,
        format="%(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CliError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except Exception as exc:  # noqa: BLE001 - every failure is a test finding
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"error: {type(exc).__name__}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
