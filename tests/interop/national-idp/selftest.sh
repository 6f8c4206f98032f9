#!/usr/bin/env bash
# Self-test of tests/interop/national-idp/op.mjs: walks the OpenID Connect
# code flow against it as a client would, with curl as the browser and the
# RP's HTTP client, and node for PKCE, JWT signature checks and JSON asserts
# (no browser, no jq).
#
# Two OPs are started on free ports (--port 0; the issuer is read from the
# ready line): one with RS256 ID tokens, one with ES256 and --slow-ms. Checked:
# discovery, authorization request -> interaction page -> POST account=... ->
# redirect_uri with code/state/iss, token request (client_secret_basic with a
# secret that needs form-urlencoding, and client_secret_post), the ID token
# (signature against jwks_uri, iss/aud/nonce/exp (at_hash if present), acr/amr, the claims
# per scope), userinfo, code reuse, SSO, automatic consent for added scopes,
# refusal (access_denied), missing PKCE, a wrong code_verifier, the accounts
# "stranger" and "no-id", RP-initiated logout with automatic confirmation,
# the token endpoint delay and a usage error. Scratch files live in a mktemp
# directory removed on exit; the OPs are killed on exit.
#
# Prints "ok - ..." per check and ends with "N passed, N failed".
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
install_dir="$("$script_dir/setup-node" | tail -n 1)"
export NODE_PATH="$install_dir/node_modules"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/national-idp-selftest.XXXXXX")"

op_pids=()
cleanup() {
    local pid
    for pid in "${op_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$scratch"
}
trap cleanup EXIT

CLIENT_ID="fedhub-upstream"
# Has characters that client_secret_basic must form-urlencode (RFC 6749 2.3.1).
CLIENT_SECRET='nidp-s3cret:+/%~'
REDIRECT_URI="http://127.0.0.1:9/national/callback"   # never fetched
POST_LOGOUT_URI="http://127.0.0.1:9/signed-out"        # never fetched
ACR="urn:vn:national-idp:level2"

passed=0
op_err=/dev/null

ok() {
    echo "ok - $*"
    passed=$((passed + 1))
}

fail() {
    echo "not ok - $*"
    if [[ -f "$scratch/h" ]]; then
        echo "--- last response headers:"
        cat "$scratch/h"
        echo "--- last response body:"
        head -c 2000 "$scratch/b" 2>/dev/null || true
        echo
    fi
    echo "--- OP log (tail):"
    tail -n 40 "$op_err" 2>/dev/null || true
    echo "$passed passed, 1 failed"
    exit 1
}

# node helpers -------------------------------------------------------------

cat >"$scratch/util.mjs" <<'JS'
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';

const [cmd, ...args] = process.argv.slice(2);
const readJson = (f) => JSON.parse(readFileSync(f, 'utf8'));
const b64json = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
const die = (msg) => { process.stderr.write(`util.mjs ${cmd}: ${msg}\n`); process.exit(1); };

switch (cmd) {
  case 'rand': // random URL-safe string (state, nonce, code_verifier)
    console.log(randomBytes(32).toString('base64url'));
    break;
  case 's256': // PKCE S256 challenge of a verifier
    console.log(createHash('sha256').update(args[0]).digest('base64url'));
    break;
  case 'basic': { // client_secret_basic header value (form-urlencoded id and secret)
    const enc = (s) => encodeURIComponent(s).replace(/[!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).replace(/%20/g, '+');
    console.log(`Basic ${Buffer.from(`${enc(args[0])}:${enc(args[1])}`).toString('base64')}`);
    break;
  }
  case 'urlencode':
    console.log(encodeURIComponent(args[0]));
    break;
  case 'query': { // print one query parameter of a URL, or nothing
    const v = new URL(args[0]).searchParams.getAll(args[1]);
    if (v.length > 1) die(`parameter ${args[1]} repeated`);
    if (v.length) console.log(v[0]);
    break;
  }
  case 'ready': { // issuer from the ready line
    const line = readFileSync(args[0], 'utf8').split('\n')[0];
    const j = JSON.parse(line);
    if (j.ready !== true) die(`not a ready line: ${line}`);
    console.log(j.issuer);
    break;
  }
  case 'expect': { // expect FILE EXPR: EXPR (with j = parsed JSON) must be truthy
    const j = readJson(args[0]);
    // eslint-disable-next-line no-new-func
    const result = new Function('j', `return (${args[1]});`)(j);
    if (!result) die(`expected ${args[1]}\n  in ${JSON.stringify(j)}`);
    break;
  }
  case 'id-token': {
    // id-token TOKENS_JSON JWKS_JSON ISSUER CLIENT_ID NONCE ALG -> header+payload JSON
    const [tokensFile, jwksFile, issuer, clientId, nonce, alg] = args;
    const tokens = readJson(tokensFile);
    const jwks = readJson(jwksFile);
    const parts = String(tokens.id_token).split('.');
    if (parts.length !== 3) die('id_token is not a compact JWS');
    const header = b64json(parts[0]);
    const payload = b64json(parts[1]);
    if (header.alg !== alg) die(`header alg ${header.alg}, expected ${alg}`);
    if (!header.kid) die('header has no kid');
    const jwk = jwks.keys.find((k) => k.kid === header.kid);
    if (!jwk) die(`kid ${header.kid} not in jwks`);
    if (jwk.alg && jwk.alg !== alg) die(`jwk alg ${jwk.alg} != ${alg}`);
    if (jwk.d || jwk.p) die('jwks_uri publishes private key material');
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    const good = verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key, Buffer.from(parts[2], 'base64url'));
    if (!good) die('bad signature');
    const now = Math.floor(Date.now() / 1000);
    if (payload.iss !== issuer) die(`iss ${payload.iss} != ${issuer}`);
    const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!aud.includes(clientId)) die(`aud ${payload.aud} lacks ${clientId}`);
    if (aud.length > 1 && payload.azp !== clientId) die('azp missing with several audiences');
    if (!(payload.exp > now - 5)) die('expired');
    if (!(payload.iat <= now + 5)) die('iat in the future');
    if (payload.nonce !== nonce) die(`nonce ${payload.nonce} != ${nonce}`);
    // oidc-provider puts no at_hash in ID tokens from the token endpoint
    // (optional there per OIDC Core 3.1.3.6); check it only if present.
    if (payload.at_hash !== undefined) {
      const half = createHash('sha256').update(tokens.access_token).digest().subarray(0, 16).toString('base64url');
      if (payload.at_hash !== half) die(`at_hash ${payload.at_hash} != ${half}`);
    }
    console.log(JSON.stringify({ header, payload }));
    break;
  }
  default:
    die('unknown command');
}
JS
util() { node "$scratch/util.mjs" "$@"; }
expect_json() { # FILE EXPR DESCRIPTION
    util expect "$1" "$2" 2>"$scratch/expect.err" || fail "$3: $(cat "$scratch/expect.err")"
}

# HTTP helpers --------------------------------------------------------------

jar="$scratch/jar"
# req METHOD URL [curl args...]: response headers in $scratch/h, body in
# $scratch/b; sets STATUS and LOCATION (absolute). Uses the cookie jar.
req() {
    local method="$1" url="$2"
    shift 2
    STATUS="$(curl -sS -X "$method" -o "$scratch/b" -D "$scratch/h" -b "$jar" -c "$jar" \
        -w '%{http_code}' "$@" "$url")" || fail "curl $method $url failed"
    LOCATION="$(tr -d '\r' <"$scratch/h" | awk 'tolower($1) == "location:" { print $2 }' | tail -n 1)"
    if [[ "$LOCATION" == /* ]]; then
        LOCATION="$ISSUER$LOCATION"
    fi
}

# follow URL: GET like a browser, following redirects that stay on the OP;
# stops at the first redirect elsewhere (FINAL = that Location) or at a
# non-redirect answer (FINAL = "", PAGE_URL = the URL that answered).
follow() {
    local url="$1" hops=0
    FINAL=""
    while :; do
        req GET "$url"
        case "$STATUS" in
            302 | 303)
                [[ -n "$LOCATION" ]] || fail "redirect without Location from $url"
                if [[ "$LOCATION" != "$ISSUER"/* ]]; then
                    FINAL="$LOCATION"
                    return
                fi
                url="$LOCATION"
                ;;
            *)
                PAGE_URL="$url"
                return
                ;;
        esac
        hops=$((hops + 1))
        ((hops <= 10)) || fail "more than 10 redirects"
    done
}

# start_op NAME ARGS...: start op.mjs on a free port; sets ISSUER, OP_PID, op_err.
start_op() {
    local name="$1"
    shift
    local out="$scratch/$name.out"
    op_err="$scratch/$name.err"
    node "$script_dir/op.mjs" --port 0 --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" \
        --redirect-uri "$REDIRECT_URI" --post-logout-redirect-uri "$POST_LOGOUT_URI" "$@" \
        >"$out" 2>"$op_err" &
    OP_PID=$!
    op_pids+=("$OP_PID")
    local i
    # Normally ready in well under a second; allow for a loaded machine.
    for ((i = 0; i < 600; i++)); do
        [[ -s "$out" ]] && break
        kill -0 "$OP_PID" 2>/dev/null || fail "op.mjs ($name) exited before it was ready"
        sleep 0.1
    done
    [[ -s "$out" ]] || fail "op.mjs ($name) printed no ready line within 60 s"
    ISSUER="$(util ready "$out")" || fail "bad ready line: $(cat "$out")"
    rm -f "$jar"
}

# authorize SCOPE [extra query]: builds a fresh PKCE/state/nonce authorization
# request and follows it; sets AUTH_URL, VERIFIER, STATE, NONCE; FINAL/PAGE_URL.
authorize() {
    local scope="$1" extra="${2:-}"
    VERIFIER="$(util rand)"
    STATE="$(util rand)"
    NONCE="$(util rand)"
    local challenge
    challenge="$(util s256 "$VERIFIER")"
    AUTH_URL="$ISSUER/auth?client_id=$(util urlencode "$CLIENT_ID")&response_type=code"
    AUTH_URL+="&scope=$(util urlencode "$scope")&redirect_uri=$(util urlencode "$REDIRECT_URI")"
    AUTH_URL+="&state=$STATE&nonce=$NONCE&code_challenge=$challenge&code_challenge_method=S256$extra"
    follow "$AUTH_URL"
}

# sign_in ACCOUNT: on the interaction page (PAGE_URL), POST the form of
# ACCOUNT and follow to the redirect_uri; sets FINAL.
sign_in() {
    local account="$1"
    [[ "$STATUS" == 200 && "$PAGE_URL" == "$ISSUER/interaction/"* ]] ||
        fail "expected the interaction page, got $STATUS at ${PAGE_URL:-?}"
    local action
    action="$(grep -o "<form method=\"post\" action=\"[^\"]*\"><input type=\"hidden\" name=\"account\" value=\"$account\">" "$scratch/b" |
        sed -E 's/.*action="([^"]*)".*/\1/' | head -n 1)"
    [[ -n "$action" ]] || fail "no form for account=$account on the interaction page"
    req POST "$ISSUER$action" --data-urlencode "account=$account"
    [[ "$STATUS" == 303 && "$LOCATION" == "$ISSUER/auth/"* ]] ||
        fail "POST account=$account: expected 303 to $ISSUER/auth/..., got $STATUS $LOCATION"
    follow "$LOCATION"
    [[ -n "$FINAL" ]] || fail "sign-in as $account did not end in a redirect (status $STATUS at $PAGE_URL)"
}

# callback: FINAL must be the redirect_uri with code, our state and iss; sets CODE.
callback() {
    [[ "$FINAL" == "$REDIRECT_URI?"* ]] || fail "expected a redirect to $REDIRECT_URI, got $FINAL"
    local err
    err="$(util query "$FINAL" error)"
    [[ -z "$err" ]] || fail "authorization error $err: $FINAL"
    CODE="$(util query "$FINAL" code)"
    [[ -n "$CODE" ]] || fail "no code in $FINAL"
    [[ "$(util query "$FINAL" state)" == "$STATE" ]] || fail "state not echoed: $FINAL"
    [[ "$(util query "$FINAL" iss)" == "$ISSUER" ]] || fail "iss parameter missing/wrong: $FINAL"
}

# token basic|post [code_verifier]: token request for CODE; response in $scratch/tokens.json.
token() {
    local auth="$1" verifier="${2:-$VERIFIER}"
    local args=(--data-urlencode grant_type=authorization_code --data-urlencode "code=$CODE"
        --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "code_verifier=$verifier")
    if [[ "$auth" == basic ]]; then
        args+=(-H "Authorization: $(util basic "$CLIENT_ID" "$CLIENT_SECRET")")
    else
        args+=(--data-urlencode "client_id=$CLIENT_ID" --data-urlencode "client_secret=$CLIENT_SECRET")
    fi
    req POST "$ISSUER/token" "${args[@]}"
    cp "$scratch/b" "$scratch/tokens.json"
}

# id_token ALG: verify the ID token in tokens.json; claims in $scratch/idt.json ({header, payload}).
id_token() {
    req GET "$ISSUER/jwks"
    [[ "$STATUS" == 200 ]] || fail "GET /jwks: $STATUS"
    cp "$scratch/b" "$scratch/jwks.json"
    util id-token "$scratch/tokens.json" "$scratch/jwks.json" "$ISSUER" "$CLIENT_ID" "$NONCE" "$1" \
        >"$scratch/idt.json" 2>"$scratch/expect.err" || fail "ID token: $(cat "$scratch/expect.err")"
}

userinfo() {
    local at
    at="$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).access_token' "$scratch/tokens.json")"
    req GET "$ISSUER/me" -H "Authorization: Bearer $at"
    [[ "$STATUS" == 200 ]] || fail "GET /me: $STATUS"
    cp "$scratch/b" "$scratch/userinfo.json"
}

# ============================================================================
# OP 1: RS256

start_op rs256
ok "op.mjs started, issuer $ISSUER"

req GET "$ISSUER/.well-known/openid-configuration"
[[ "$STATUS" == 200 ]] || fail "discovery: $STATUS"
grep -qi '^content-type: application/json' "$scratch/h" || fail "discovery is not application/json"
cp "$scratch/b" "$scratch/discovery.json"
I="$ISSUER"
expect_json "$scratch/discovery.json" "j.issuer === '$I' && j.authorization_endpoint === '$I/auth' && j.token_endpoint === '$I/token' && j.userinfo_endpoint === '$I/me' && j.jwks_uri === '$I/jwks' && j.end_session_endpoint === '$I/session/end'" "discovery endpoints"
expect_json "$scratch/discovery.json" "j.code_challenge_methods_supported.join() === 'S256' && j.authorization_response_iss_parameter_supported === true && j.response_types_supported.includes('code')" "discovery PKCE/iss"
expect_json "$scratch/discovery.json" "['openid','profile','email','phone','national_id'].every((s) => j.scopes_supported.includes(s))" "discovery scopes"
expect_json "$scratch/discovery.json" "['SoDinhDanh','HoVaTen','SoDienThoai','ThuDienTu','LoaiTaiKhoan','MaSoThue','acr','amr','phone_number','email','name'].every((c) => j.claims_supported.includes(c))" "discovery claims"
expect_json "$scratch/discovery.json" "j.id_token_signing_alg_values_supported.includes('RS256') && j.id_token_signing_alg_values_supported.includes('ES256') && j.acr_values_supported.join() === '$ACR'" "discovery algs/acr"
expect_json "$scratch/discovery.json" "['client_secret_basic','client_secret_post'].every((m) => j.token_endpoint_auth_methods_supported.includes(m))" "discovery auth methods"
ok "discovery: /auth /token /me /jwks /session/end, S256, iss parameter, scopes, claims, RS256+ES256, acr"

req GET "$ISSUER/jwks"
cp "$scratch/b" "$scratch/jwks.json"
expect_json "$scratch/jwks.json" "j.keys.length === 2 && j.keys.every((k) => k.kid && k.use === 'sig' && !k.d) && j.keys.some((k) => k.kty === 'RSA' && k.alg === 'RS256') && j.keys.some((k) => k.kty === 'EC' && k.crv === 'P-256' && k.alg === 'ES256')" "jwks"
ok "jwks: one RSA (RS256) and one EC P-256 (ES256) public key, each with kid"

# --- citizen, client_secret_basic, scope openid profile national_id
authorize "openid profile national_id"
[[ -z "$FINAL" && "$STATUS" == 200 && "$PAGE_URL" == "$ISSUER/interaction/"* ]] ||
    fail "authorization request did not lead to the interaction page (status $STATUS, final $FINAL)"
for account in citizen stranger no-id refuse; do
    grep -q "<input type=\"hidden\" name=\"account\" value=\"$account\">" "$scratch/b" ||
        fail "interaction page has no form for $account"
done
grep -q '<code id="prompt">login</code>' "$scratch/b" || fail "interaction page does not say prompt login"
ok "authorization request -> 303 /interaction/{uid} -> login page with forms citizen, stranger, no-id, refuse"

sign_in citizen
callback
ok "POST account=citizen -> 303 /auth/{uid} -> 303 redirect_uri with code, state and iss"

token basic
[[ "$STATUS" == 200 ]] || fail "token request (client_secret_basic): $STATUS"
grep -qi '^cache-control: no-store' "$scratch/h" || fail "token response without Cache-Control: no-store"
expect_json "$scratch/tokens.json" "typeof j.access_token === 'string' && j.token_type === 'Bearer' && typeof j.expires_in === 'number' && typeof j.id_token === 'string' && j.scope === 'openid profile national_id' && !('refresh_token' in j)" "token response"
ok "token endpoint, client_secret_basic with a form-urlencoded secret: access_token, id_token, Bearer, no refresh_token"

id_token RS256
expect_json "$scratch/idt.json" "j.payload.sub === 'nidp-citizen-1' && j.payload.acr === '$ACR' && JSON.stringify(j.payload.amr) === '[\"pwd\",\"otp\"]' && typeof j.payload.auth_time === 'number' && !('sid' in j.payload)" "ID token protocol claims"
expect_json "$scratch/idt.json" "j.payload.name === 'Nguyễn Văn An' && j.payload.SoDinhDanh === '001204012345' && j.payload.HoVaTen === 'Nguyễn Văn An' && j.payload.SoDienThoai === '0912345678' && j.payload.ThuDienTu === 'an.nguyen@example.com' && j.payload.LoaiTaiKhoan === '1' && j.payload.MaSoThue === '8012345678'" "ID token citizen claims"
expect_json "$scratch/idt.json" "!('email' in j.payload) && !('phone_number' in j.payload)" "ID token without email/phone scopes"
ok "ID token: RS256 signature (kid) over jwks, iss/aud/nonce/exp (at_hash if present), acr $ACR, amr [pwd,otp], auth_time, no sid, profile+national_id claims, no email/phone"

userinfo
expect_json "$scratch/userinfo.json" "j.sub === 'nidp-citizen-1' && j.name === 'Nguyễn Văn An' && j.SoDinhDanh === '001204012345' && j.LoaiTaiKhoan === '1' && j.MaSoThue === '8012345678' && !('email' in j) && !('acr' in j)" "userinfo citizen"
ok "userinfo /me: same sub and scope claims"

first_code="$CODE"
first_verifier="$VERIFIER"
first_tokens="$(cat "$scratch/tokens.json")"

# --- SSO: same cookie jar, no interaction
authorize "openid profile national_id"
[[ -n "$FINAL" ]] || fail "SSO authorization stopped at $PAGE_URL ($STATUS)"
callback
token post
[[ "$STATUS" == 200 ]] || fail "token request (client_secret_post): $STATUS"
id_token RS256
expect_json "$scratch/idt.json" "j.payload.sub === 'nidp-citizen-1'" "SSO sub"
[[ "$(grep -c '^op.mjs: GET /interaction/' "$op_err")" == 1 ]] || fail "the SSO authorization went through an interaction"
ok "second authorization with the session cookie: straight to the redirect_uri, no interaction (SSO); client_secret_post accepted"

CODE="$first_code"
token basic "$first_verifier"
[[ "$STATUS" == 400 ]] || fail "code reuse: expected 400, got $STATUS"
expect_json "$scratch/tokens.json" "j.error === 'invalid_grant'" "code reuse error"
printf '%s' "$first_tokens" >"$scratch/tokens.json"
at="$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).access_token' "$scratch/tokens.json")"
req GET "$ISSUER/me" -H "Authorization: Bearer $at"
[[ "$STATUS" == 401 ]] || fail "access token of a replayed code: expected 401 at /me, got $STATUS"
ok "the first code again: 400 invalid_grant, and the grant is revoked (its access token gets 401 at /me)"

# --- more scopes: consent prompt answered automatically by GET /interaction/{uid}
authorize "openid profile email phone national_id"
[[ -n "$FINAL" ]] || fail "authorization with added scopes stopped at $PAGE_URL ($STATUS)"
callback
grep -q "automatic consent for nidp-citizen-1" "$op_err" || fail "the added scopes did not go through the automatic consent"
token basic
[[ "$STATUS" == 200 ]] || fail "token request: $STATUS"
id_token RS256
expect_json "$scratch/idt.json" "j.payload.email === 'an.nguyen@example.com' && j.payload.email_verified === true && j.payload.phone_number === '0912345678' && j.payload.phone_number_verified === true && j.payload.SoDinhDanh === '001204012345'" "ID token with email/phone"
userinfo
expect_json "$scratch/userinfo.json" "j.email === 'an.nguyen@example.com' && j.phone_number === '0912345678'" "userinfo with email/phone"
ok "added scopes email+phone with a session: consent granted automatically, email/phone claims released"
sso_id_token="$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).id_token' "$scratch/tokens.json")"

# --- RP-initiated logout, confirmed automatically
grep -q $'\t_session\t' "$jar" || fail "no _session cookie before logout"
logout_state="$(util rand)"
req GET "$ISSUER/session/end?id_token_hint=$sso_id_token&post_logout_redirect_uri=$(util urlencode "$POST_LOGOUT_URI")&state=$logout_state"
[[ "$STATUS" == 303 && "$LOCATION" == "$ISSUER/session/end/auto?xsrf="* ]] ||
    fail "end_session: expected 303 to /session/end/auto, got $STATUS $LOCATION"
req GET "$LOCATION"
[[ "$STATUS" == 303 && "$LOCATION" == "$POST_LOGOUT_URI?state=$logout_state" ]] ||
    fail "end_session confirmation: expected 303 to $POST_LOGOUT_URI?state=..., got $STATUS $LOCATION"
tr -d '\r' <"$scratch/h" | grep -qi '^set-cookie: _session=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT' ||
    fail "the logout answer does not delete the _session cookie"
ok "GET /session/end?id_token_hint&post_logout_redirect_uri&state -> 303 /session/end/auto -> 303 post_logout_redirect_uri?state; Set-Cookie deletes _session"
# curl 7.88 does not drop a cookie set to an empty value, so the jar still
# sends the old _session value below: the session must be gone on the OP.

authorize "openid national_id"
[[ -z "$FINAL" && "$PAGE_URL" == "$ISSUER/interaction/"* ]] || fail "after logout the authorization request did not ask to sign in"
grep -q '<code id="reasons">no_session</code>' "$scratch/b" || fail "after logout the login page does not give reason no_session"
ok "after logout the next authorization request (still sending the old _session cookie) shows the login page (no_session)"

# --- refusal
sign_in refuse
[[ "$FINAL" == "$REDIRECT_URI?"* ]] || fail "refuse: expected a redirect to the redirect_uri, got $FINAL"
[[ "$(util query "$FINAL" error)" == access_denied && "$(util query "$FINAL" state)" == "$STATE" && "$(util query "$FINAL" iss)" == "$ISSUER" ]] ||
    fail "refuse: expected error=access_denied with state and iss, got $FINAL"
[[ -z "$(util query "$FINAL" code)" ]] || fail "refuse: a code was issued"
ok "POST account=refuse -> redirect_uri?error=access_denied&error_description=...&state&iss"

# --- logout without a session (only client_id): same automatic confirmation
rm -f "$jar"
req GET "$ISSUER/session/end?client_id=$(util urlencode "$CLIENT_ID")&post_logout_redirect_uri=$(util urlencode "$POST_LOGOUT_URI")&state=nosession"
[[ "$STATUS" == 303 && "$LOCATION" == "$ISSUER/session/end/auto?xsrf="* ]] ||
    fail "end_session without a session: expected 303 to /session/end/auto, got $STATUS $LOCATION"
req GET "$LOCATION"
[[ "$STATUS" == 303 && "$LOCATION" == "$POST_LOGOUT_URI?state=nosession" ]] ||
    fail "end_session without a session: expected 303 to $POST_LOGOUT_URI?state=nosession, got $STATUS $LOCATION"
ok "GET /session/end?client_id&post_logout_redirect_uri&state without any session: same two redirects"

# --- stranger (a person the hub does not know)
rm -f "$jar"
authorize "openid profile phone national_id"
sign_in stranger
callback
token post
[[ "$STATUS" == 200 ]] || fail "token request (stranger): $STATUS"
id_token RS256
expect_json "$scratch/idt.json" "j.payload.sub === 'nidp-stranger-1' && j.payload.SoDinhDanh === '022195000999' && j.payload.HoVaTen === 'Người Lạ' && j.payload.phone_number === '0987654321' && !('MaSoThue' in j.payload)" "stranger claims"
ok "account stranger: sub nidp-stranger-1, SoDinhDanh 022195000999, HoVaTen Người Lạ, no MaSoThue"

# --- no-id (no SoDinhDanh at all); a second login in a jar with a session
authorize "openid profile national_id" "&prompt=login"
[[ -z "$FINAL" && "$PAGE_URL" == "$ISSUER/interaction/"* ]] || fail "prompt=login did not show the login page"
sign_in no-id
callback
token basic
[[ "$STATUS" == 200 ]] || fail "token request (no-id): $STATUS"
id_token RS256
expect_json "$scratch/idt.json" "j.payload.sub === 'nidp-noid-1' && !('SoDinhDanh' in j.payload) && j.payload.HoVaTen === 'Trần Thị Bình' && j.payload.LoaiTaiKhoan === '1'" "no-id claims"
userinfo
expect_json "$scratch/userinfo.json" "j.sub === 'nidp-noid-1' && !('SoDinhDanh' in j)" "no-id userinfo"
grep -q '^op.mjs: resume: logout confirmation answered with a redirect to /session/end/auto' "$op_err" ||
    fail "the account switch did not go through the automatic logout confirmation"
ok "account no-id over stranger's session (prompt=login): the old session is ended automatically (resume -> /session/end/auto -> resume); no SoDinhDanh in ID token or userinfo"

# --- PKCE is required; a wrong verifier fails
rm -f "$jar"
url="$ISSUER/auth?client_id=$(util urlencode "$CLIENT_ID")&response_type=code&scope=openid&redirect_uri=$(util urlencode "$REDIRECT_URI")&state=nopkce"
follow "$url"
[[ "$FINAL" == "$REDIRECT_URI?"* && "$(util query "$FINAL" error)" == invalid_request && "$(util query "$FINAL" state)" == nopkce ]] ||
    fail "authorization without code_challenge: expected redirect with error=invalid_request, got ${FINAL:-$STATUS}"
ok "authorization request without code_challenge -> redirect_uri?error=invalid_request (PKCE required)"

authorize "openid"
sign_in citizen
callback
token basic "$(util rand)"
[[ "$STATUS" == 400 ]] || fail "wrong code_verifier: expected 400, got $STATUS"
expect_json "$scratch/tokens.json" "j.error === 'invalid_grant'" "wrong verifier error"
ok "token request with a wrong code_verifier: 400 invalid_grant"

token basic
[[ "$STATUS" == 200 ]] || fail "the right code_verifier after a failed PKCE check: expected 200, got $STATUS"
ok "a failed PKCE check does not consume the code: the right code_verifier afterwards gets 200"

# wrong client secret
authorize "openid"
callback
CLIENT_SECRET_SAVED="$CLIENT_SECRET"
CLIENT_SECRET="wrong"
token basic
CLIENT_SECRET="$CLIENT_SECRET_SAVED"
[[ "$STATUS" == 401 ]] || fail "wrong client secret: expected 401, got $STATUS"
expect_json "$scratch/tokens.json" "j.error === 'invalid_client'" "wrong secret error"
ok "token request with a wrong client secret: 401 invalid_client"

# ============================================================================
# OP 2: ES256 ID tokens, token endpoint delayed by 1500 ms

start_op es256 --id-token-alg ES256 --slow-ms 1500
ok "second op.mjs (--id-token-alg ES256 --slow-ms 1500) started, issuer $ISSUER"
authorize "openid profile national_id"
sign_in citizen
callback
started=$(date +%s%N)
token basic
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
[[ "$STATUS" == 200 ]] || fail "token request (ES256): $STATUS"
((elapsed_ms >= 1500)) || fail "token endpoint answered in $elapsed_ms ms despite --slow-ms 1500"
id_token ES256
expect_json "$scratch/idt.json" "j.header.alg === 'ES256' && j.payload.SoDinhDanh === '001204012345' && j.payload.acr === '$ACR'" "ES256 ID token"
ok "ES256 ID token verified against the EC key; token endpoint took $elapsed_ms ms (>= 1500)"

authorize "openid"
callback
set +e
curl -sS -o /dev/null --max-time 0.5 -H "Authorization: $(util basic "$CLIENT_ID" "$CLIENT_SECRET")" \
    --data-urlencode grant_type=authorization_code --data-urlencode "code=$CODE" \
    --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "code_verifier=$VERIFIER" \
    "$ISSUER/token" 2>/dev/null
rc=$?
set -e
[[ $rc == 28 ]] || fail "a 0.5 s client timeout on the slowed token endpoint: expected curl exit 28, got $rc"
ok "a client with a 0.5 s timeout times out on the slowed token endpoint (curl exit 28)"

# ============================================================================
# usage errors

set +e
node "$script_dir/op.mjs" --port 0 --client-id x --client-secret y >/dev/null 2>"$scratch/usage.err"
rc=$?
set -e
[[ $rc == 2 ]] && grep -q -- '--redirect-uri is required' "$scratch/usage.err" || fail "missing --redirect-uri: expected exit 2, got $rc"
set +e
node "$script_dir/op.mjs" --port 1234 --issuer http://localhost:1234 --client-id x --client-secret y \
    --redirect-uri http://127.0.0.1:9/cb >/dev/null 2>"$scratch/usage.err"
rc=$?
set -e
[[ $rc == 2 ]] || fail "--issuer with another host: expected exit 2, got $rc"
ok "usage errors exit 2"

# --exit-on-stdin-close: the OP exits when the parent's pipe closes
set +e
{ sleep 2; } | timeout 30 node "$script_dir/op.mjs" --port 0 --client-id x --client-secret y \
    --redirect-uri http://127.0.0.1:9/cb --exit-on-stdin-close >"$scratch/stdin.out" 2>"$scratch/stdin.err"
rc=$?
set -e
[[ $rc == 0 ]] && grep -q '"ready":true' "$scratch/stdin.out" && grep -q 'exiting (stdin closed)' "$scratch/stdin.err" ||
    fail "--exit-on-stdin-close: expected a ready line and exit 0 when stdin closed, got rc $rc"
ok "--exit-on-stdin-close: ready, then exit 0 when stdin reaches EOF"

echo "$passed passed, 0 failed"
