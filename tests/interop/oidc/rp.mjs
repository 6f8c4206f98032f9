#!/usr/bin/env node
// Third-party OpenID Connect Relying Party for fedhub's OIDC interop test.
//
// The RP side is openid-client (panva, OpenID-certified RP library); the
// browser is plain fetch() with redirect:'manual' and a small cookie jar. The
// script walks one scenario against a running hub and prints one JSON object
// per line on stdout, {"step": "...", "ok": true, ...}, ending with
// {"step":"done","ok":true}. At the first failure it prints
// {"step": "...", "ok": false, "error": "..."} on stdout, a readable message on
// stderr, and exits 1. Usage errors exit 2. See README.md next to this file.
//
// Module resolution: openid-client and jose are resolved with Node's CommonJS
// resolver from this file's directory upwards and then from every directory
// in NODE_PATH, and loaded with import(). (ESM `import` statements ignore
// NODE_PATH, so static imports would only work from inside the install dir.)
// tests/interop/oidc/setup-node prints the directory to use:
//
//   dir="$(tests/interop/oidc/setup-node | tail -n 1)"
//   NODE_PATH="$dir/node_modules" node tests/interop/oidc/rp.mjs full ...

import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const USAGE = `usage: node rp.mjs <scenario> --issuer URL --client-id ID
         [--client-secret S] [--auth basic|post|private_key_jwt]
         [--private-jwk FILE] [--alg RS256|PS256|ES256|EdDSA]
         --redirect-uri URI [--post-logout-redirect-uri URI]
         [--national-id ID] [--backchannel-port N]
         [--scope "openid ..."] [--sso-cookie NAME] [--timeout SECONDS]

scenarios:
  discovery   step a only (discovery + configuration checks)
  full        discovery, login, token, userinfo, SSO, refresh rotation and
              reuse detection, RP-initiated logout with back-channel logout
              (needs --post-logout-redirect-uri, --national-id,
              --backchannel-port)

--auth defaults to private_key_jwt with --private-jwk, else basic.
--alg is the expected ID token (and logout token) "alg", default RS256.
Set RP_DEBUG=1 for stack traces.`;

const DEFAULT_SCOPE = 'openid profile email phone national_id agency roles offline_access';
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'];
const MAX_HOPS = 10;

class UsageError extends Error {}

/** A failed expectation inside a step; `details` go into the JSON failure line. */
class Failure extends Error {
  constructor(message, details) {
    super(message);
    this.name = 'Failure';
    this.details = details;
  }
}

function fail(message, details) {
  throw new Failure(message, details);
}

function expect(cond, message, details) {
  if (!cond) fail(message, details);
}

// ---------------------------------------------------------------------------
// Command line

const OPTIONS = {
  issuer: 'string',
  'client-id': 'string',
  'client-secret': 'string',
  auth: 'string',
  'private-jwk': 'string',
  alg: 'string',
  'redirect-uri': 'string',
  'post-logout-redirect-uri': 'string',
  'national-id': 'string',
  'backchannel-port': 'string',
  scope: 'string',
  'sso-cookie': 'string',
  timeout: 'string',
};

export function parseArgs(argv) {
  const opts = {};
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') return { help: true };
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    let name = arg.slice(2);
    let value;
    const eq = name.indexOf('=');
    if (eq !== -1) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (!(name in OPTIONS)) throw new UsageError(`unknown option --${name}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`option --${name} needs a value`);
      value = argv[++i];
    }
    if (name in opts) throw new UsageError(`option --${name} given twice`);
    opts[name] = value;
  }
  if (positional.length !== 1) throw new UsageError('expected exactly one scenario');
  const scenario = positional[0];
  if (scenario !== 'full' && scenario !== 'discovery') {
    throw new UsageError(`unknown scenario ${JSON.stringify(scenario)}`);
  }
  const need = (name) => {
    if (opts[name] === undefined || opts[name] === '') throw new UsageError(`--${name} is required`);
    return opts[name];
  };
  const absoluteUrl = (name) => {
    const v = need(name);
    let u;
    try {
      u = new URL(v);
    } catch {
      throw new UsageError(`--${name} must be an absolute URL, got ${JSON.stringify(v)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new UsageError(`--${name} must be an http(s) URL`);
    }
    return v;
  };

  const cfg = {
    scenario,
    issuer: absoluteUrl('issuer'),
    clientId: need('client-id'),
    clientSecret: opts['client-secret'],
    privateJwk: opts['private-jwk'],
    alg: opts.alg ?? 'RS256',
    redirectUri: absoluteUrl('redirect-uri'),
    scope: opts.scope ?? DEFAULT_SCOPE,
    ssoCookie: opts['sso-cookie'] ?? 'fedhub_sso',
    timeout: 15,
  };
  if (!ALGS.includes(cfg.alg)) throw new UsageError(`--alg must be one of ${ALGS.join(', ')}`);
  cfg.auth = opts.auth ?? (cfg.privateJwk ? 'private_key_jwt' : 'basic');
  switch (cfg.auth) {
    case 'basic':
    case 'post':
      if (!cfg.clientSecret) throw new UsageError(`--auth ${cfg.auth} needs --client-secret`);
      break;
    case 'private_key_jwt':
      if (!cfg.privateJwk) throw new UsageError('--auth private_key_jwt needs --private-jwk');
      break;
    default:
      throw new UsageError('--auth must be basic, post or private_key_jwt');
  }
  if (opts.timeout !== undefined) {
    const t = Number(opts.timeout);
    if (!Number.isInteger(t) || t <= 0) throw new UsageError('--timeout must be a positive integer');
    cfg.timeout = t;
  }
  if (scenario === 'full') {
    cfg.postLogoutRedirectUri = absoluteUrl('post-logout-redirect-uri');
    cfg.nationalId = need('national-id');
    const port = Number(need('backchannel-port'));
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new UsageError('--backchannel-port must be an integer in 1..65535');
    }
    cfg.backchannelPort = port;
  }
  return cfg;
}

// ---------------------------------------------------------------------------
// Libraries (resolved from this directory, then NODE_PATH; see the header)

async function loadLibraries() {
  const require = createRequire(import.meta.url);
  const load = async (name) => {
    let resolved;
    try {
      resolved = require.resolve(name);
    } catch {
      throw new Error(
        `cannot find the npm package ${name}: run tests/interop/oidc/setup-node and ` +
          'set NODE_PATH to <the directory it prints>/node_modules',
      );
    }
    return import(pathToFileURL(resolved).href);
  };
  return { client: await load('openid-client'), jose: await load('jose') };
}

// ---------------------------------------------------------------------------
// The browser: fetch without following redirects, plus a cookie jar

/** Decodes the HTML character references a template engine produces in attribute values. */
export function decodeEntities(s) {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, ref) => {
    if (ref[0] === '#') {
      const cp = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return Number.isFinite(cp) && cp <= 0x10ffff ? String.fromCodePoint(cp) : whole;
    }
    return named[ref.toLowerCase()] ?? whole;
  });
}

function parseAttributes(s) {
  const attrs = {};
  const re = /([^\s"'=<>`/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  let m;
  while ((m = re.exec(s))) {
    attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

/** Every <form> of a page: its attributes and its named <input>s. */
export function parseForms(html) {
  const forms = [];
  const formRe = /<form\b([^>]*)>([\s\S]*?)<\/form\s*>/gi;
  let m;
  while ((m = formRe.exec(html))) {
    const attrs = parseAttributes(m[1]);
    const inputs = [];
    const inputRe = /<input\b([^>]*)>/gi;
    let i;
    while ((i = inputRe.exec(m[2]))) {
      const a = parseAttributes(i[1]);
      if (a.name !== undefined) inputs.push({ name: a.name, value: a.value ?? '', type: (a.type ?? 'text').toLowerCase() });
    }
    forms.push({ attrs, inputs });
  }
  return forms;
}

function defaultCookiePath(url) {
  const p = url.pathname;
  if (!p.startsWith('/') || p.lastIndexOf('/') === 0) return '/';
  return p.slice(0, p.lastIndexOf('/'));
}

function pathMatches(requestPath, cookiePath) {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

/**
 * A minimal RFC 6265 jar for one browser: keyed by host, name and path;
 * honours Path, Max-Age and Expires (deletion included). Domain, Secure and
 * SameSite are recorded but not enforced (everything runs on one loopback host).
 */
export class CookieJar {
  constructor() {
    this.cookies = [];
  }

  /** Stores one Set-Cookie header value received from `url`; returns the cookie name. */
  store(setCookie, url, now = Date.now()) {
    const [pair, ...attrParts] = setCookie.split(';');
    const eq = pair.indexOf('=');
    if (eq === -1) return undefined;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    if (!name) return undefined;
    let path = defaultCookiePath(url);
    let expires;
    const flags = {};
    for (const part of attrParts) {
      const i = part.indexOf('=');
      const key = (i === -1 ? part : part.slice(0, i)).trim().toLowerCase();
      const val = i === -1 ? '' : part.slice(i + 1).trim();
      if (key === 'path' && val.startsWith('/')) path = val;
      else if (key === 'max-age' && /^-?\d+$/.test(val)) expires = now + Number(val) * 1000;
      else if (key === 'expires' && expires === undefined) {
        const t = Date.parse(val);
        if (!Number.isNaN(t)) expires = t;
      } else if (key) flags[key] = val || true;
    }
    const host = url.hostname;
    this.cookies = this.cookies.filter((c) => !(c.host === host && c.name === name && c.path === path));
    if (expires === undefined || expires > now) {
      this.cookies.push({ host, name, value, path, expires, flags });
    }
    return name;
  }

  /** The Cookie header for a request to `url` (undefined when none applies). */
  header(url, now = Date.now()) {
    this.cookies = this.cookies.filter((c) => c.expires === undefined || c.expires > now);
    const matching = this.cookies
      .filter((c) => c.host === url.hostname && pathMatches(url.pathname, c.path))
      .sort((a, b) => b.path.length - a.path.length);
    if (!matching.length) return undefined;
    return matching.map((c) => `${c.name}=${c.value}`).join('; ');
  }

  get(name) {
    return this.cookies.find((c) => c.name === name)?.value;
  }

  names() {
    return this.cookies.map((c) => c.name);
  }
}

export class Browser {
  constructor(timeoutSeconds = 15) {
    this.jar = new CookieJar();
    this.timeout = timeoutSeconds;
  }

  /** One HTTP exchange; never follows redirects. */
  async request(url, { method = 'GET', form, headers = {} } = {}) {
    url = new URL(url);
    const h = new Headers({ accept: 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8', ...headers });
    const cookie = this.jar.header(url);
    if (cookie) h.set('cookie', cookie);
    let body;
    if (form !== undefined) {
      body = new URLSearchParams(form).toString();
      h.set('content-type', 'application/x-www-form-urlencoded');
    }
    let res;
    try {
      res = await fetch(url, { method, headers: h, body, redirect: 'manual', signal: AbortSignal.timeout(this.timeout * 1000) });
    } catch (err) {
      fail(`browser: ${method} ${url.href} failed: ${err.cause?.message ?? err.message}`);
    }
    const setCookies = res.headers.getSetCookie();
    const set = setCookies.map((c) => this.jar.store(c, url)).filter(Boolean);
    const loc = res.headers.get('location');
    const text = await res.text();
    return {
      url,
      method,
      status: res.status,
      location: loc === null ? undefined : new URL(loc, url),
      headers: res.headers,
      setCookies: set,
      body: text,
    };
  }

  /**
   * Requests `url`, then follows redirects that stay on `hubOrigin` (as a
   * browser would) until `stop(location)` is true, a redirect leaves the hub,
   * or a non-redirect answer arrives. Returns the last response and the hops.
   */
  async navigate(url, { hubOrigin, stop = () => false, ...init } = {}) {
    const hops = [];
    let res = await this.request(url, init);
    const setCookies = [...res.setCookies];
    for (let n = 0; ; n++) {
      hops.push(`${res.status} ${res.method} ${res.url.href}`);
      const redirect = [301, 302, 303, 307, 308].includes(res.status) && res.location;
      if (!redirect || stop(res.location) || res.location.origin !== hubOrigin) break;
      if (n >= MAX_HOPS) fail(`browser: more than ${MAX_HOPS} redirects`, { hops });
      const keepMethod = res.status === 307 || res.status === 308;
      res = await this.request(res.location, keepMethod ? init : {});
      setCookies.push(...res.setCookies);
    }
    return { res, hops, setCookies };
  }
}

function snippet(body, n = 400) {
  const s = body.replace(/\s+/g, ' ').trim();
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

function describeResponse(res) {
  return {
    status: res.status,
    url: res.url.href,
    location: res.location?.href,
    body: res.location ? undefined : snippet(res.body),
  };
}

// ---------------------------------------------------------------------------
// Output

function emit(step, details = {}) {
  process.stdout.write(`${JSON.stringify({ step, ok: true, ...details })}\n`);
}

function jsonSafe(value, depth = 0) {
  if (value === null || value === undefined) return value;
  if (depth > 4) return '…';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'symbol') return value.toString();
  if (typeof value === 'function') return undefined;
  if (value instanceof URL) return value.href;
  if (value instanceof URLSearchParams) return Object.fromEntries(value);
  if (typeof Response !== 'undefined' && value instanceof Response) {
    return { status: value.status, content_type: value.headers.get('content-type') };
  }
  if (typeof CryptoKey !== 'undefined' && value instanceof CryptoKey) return `CryptoKey(${value.algorithm?.name})`;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return `<${value.byteLength} bytes>`;
  if (value instanceof Error) return describeError(value, depth + 1);
  if (Array.isArray(value)) return value.map((v) => jsonSafe(v, depth + 1));
  if (typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = jsonSafe(v, depth + 1);
    return out;
  }
  return value;
}

/** The useful parts of an openid-client / oauth4webapi / jose error, causes included. */
function describeError(err, depth = 0) {
  if (!(err instanceof Error)) return { message: String(err) };
  const d = { name: err.name, message: err.message };
  for (const k of ['code', 'error', 'error_description', 'status', 'claim', 'reason']) {
    if (err[k] !== undefined) d[k] = err[k];
  }
  if (err.details !== undefined) d.details = jsonSafe(err.details, depth + 1);
  if (err.cause !== undefined && depth < 4) d.cause = jsonSafe(err.cause, depth + 1);
  return d;
}

// ---------------------------------------------------------------------------
// JWT helpers

function decodeJwtPart(jwt, index) {
  const part = String(jwt).split('.')[index];
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function tokenHash(alg, value) {
  const hash = { RS256: 'sha256', PS256: 'sha256', ES256: 'sha256', RS384: 'sha384', PS384: 'sha384', ES384: 'sha384' }[alg] ?? 'sha512';
  const digest = createHash(hash).update(value, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

/** Picks the client-assertion alg for a private JWK: its "alg", else the usual one for its type. */
function assertionAlgFor(jwk) {
  if (jwk.alg) return jwk.alg;
  if (jwk.kty === 'RSA') return 'RS256';
  if (jwk.kty === 'EC') return { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' }[jwk.crv];
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  return undefined;
}

// ---------------------------------------------------------------------------
// Scenario

class Run {
  constructor(cfg, libs) {
    this.cfg = cfg;
    this.client = libs.client;
    this.jose = libs.jose;
    this.browser = new Browser(cfg.timeout);
    this.current = 'start';
  }

  async step(name, fn) {
    this.current = name;
    return fn();
  }

  // a. discovery
  async discovery() {
    const { client, cfg } = this;
    let auth;
    const assertion = {};
    switch (cfg.auth) {
      case 'basic':
        auth = client.ClientSecretBasic(cfg.clientSecret);
        break;
      case 'post':
        auth = client.ClientSecretPost(cfg.clientSecret);
        break;
      case 'private_key_jwt': {
        let jwk;
        try {
          jwk = JSON.parse(await readFile(cfg.privateJwk, 'utf8'));
        } catch (err) {
          fail(`cannot read the private JWK ${cfg.privateJwk}: ${err.message}`);
        }
        expect(jwk && typeof jwk === 'object' && jwk.d, '--private-jwk must hold one private JWK (with "d")');
        const alg = assertionAlgFor(jwk);
        expect(alg, `cannot tell the signing alg of the private JWK (kty ${jwk.kty}); give it an "alg"`);
        const key = await this.jose.importJWK(jwk, alg);
        const options = {};
        // openid-client labels Ed25519 assertions "Ed25519" (RFC 9864). Unless the JWK asks for
        // that ("alg": "Ed25519"), send the classic "EdDSA" that OPs commonly expect.
        if (alg === 'EdDSA') options[client.modifyAssertion] = (header) => { header.alg = 'EdDSA'; };
        auth = client.PrivateKeyJwt(jwk.kid ? { key, kid: jwk.kid } : key, options);
        Object.assign(assertion, { assertion_alg: alg, assertion_kid: jwk.kid ?? null });
        break;
      }
    }
    const metadata = { id_token_signed_response_alg: cfg.alg };
    if (cfg.clientSecret) metadata.client_secret = cfg.clientSecret;
    const config = await client.discovery(new URL(cfg.issuer), cfg.clientId, metadata, auth, {
      execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
      timeout: cfg.timeout,
    });
    const as = config.serverMetadata();
    const endpoints = {
      authorization_endpoint: as.authorization_endpoint,
      token_endpoint: as.token_endpoint,
      userinfo_endpoint: as.userinfo_endpoint,
      jwks_uri: as.jwks_uri,
      end_session_endpoint: as.end_session_endpoint,
    };
    for (const [k, v] of Object.entries(endpoints)) expect(v, `discovery document has no ${k}`);
    const method = { basic: 'client_secret_basic', post: 'client_secret_post', private_key_jwt: 'private_key_jwt' }[cfg.auth];
    const methods = as.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
    expect(methods.includes(method), `token_endpoint_auth_methods_supported lacks ${method}`, { token_endpoint_auth_methods_supported: methods });
    if (cfg.auth === 'private_key_jwt' && as.token_endpoint_auth_signing_alg_values_supported) {
      const algs = as.token_endpoint_auth_signing_alg_values_supported;
      expect(algs.includes(assertion.assertion_alg), `token_endpoint_auth_signing_alg_values_supported lacks ${assertion.assertion_alg}`, { token_endpoint_auth_signing_alg_values_supported: algs });
    }
    const idAlgs = as.id_token_signing_alg_values_supported;
    expect(Array.isArray(idAlgs) && idAlgs.includes(cfg.alg), `id_token_signing_alg_values_supported lacks ${cfg.alg}`, { id_token_signing_alg_values_supported: idAlgs });
    expect(as.supportsPKCE('S256'), 'code_challenge_methods_supported lacks S256', { code_challenge_methods_supported: as.code_challenge_methods_supported });
    const rt = as.response_types_supported;
    expect(Array.isArray(rt) && rt.includes('code'), 'response_types_supported lacks "code"', { response_types_supported: rt });
    this.config = config;
    this.as = as;
    this.hubOrigin = new URL(as.authorization_endpoint).origin;
    emit('discovery', {
      issuer: as.issuer,
      ...endpoints,
      auth: method,
      ...assertion,
      id_token_signed_response_alg: cfg.alg,
      authorization_response_iss_parameter_supported: as.authorization_response_iss_parameter_supported ?? false,
      backchannel_logout_supported: as.backchannel_logout_supported ?? false,
      backchannel_logout_session_supported: as.backchannel_logout_session_supported ?? false,
      scopes_supported: as.scopes_supported ?? null,
      claims_supported: as.claims_supported ?? null,
      grant_types_supported: as.grant_types_supported ?? null,
      id_token_signing_alg_values_supported: idAlgs,
      token_endpoint_auth_methods_supported: methods,
    });
  }

  // b. a fresh authorization request
  async authorizationRequest(step) {
    const { client, cfg, config } = this;
    const verifier = client.randomPKCECodeVerifier();
    const challenge = await client.calculatePKCECodeChallenge(verifier);
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: cfg.redirectUri,
      scope: cfg.scope,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    emit(step, { url: url.href, state, nonce, code_challenge: challenge, scope: cfg.scope });
    return { verifier, state, nonce, url };
  }

  isRedirectUri(loc) {
    const r = new URL(this.cfg.redirectUri);
    return loc.origin === r.origin && loc.pathname === r.pathname;
  }

  isLoginPage(loc) {
    return loc.origin === this.hubOrigin && /^\/login\/[^/]+\/?$/.test(loc.pathname);
  }

  /** Checks an authorization response redirect and returns the callback URL. */
  callback(res, request, hops) {
    expect([302, 303].includes(res.status) && res.location && this.isRedirectUri(res.location),
      'expected a 302/303 redirect to the redirect_uri', { ...describeResponse(res), hops });
    const p = res.location.searchParams;
    if (p.has('error')) {
      fail(`the hub answered the authorization request with error=${p.get('error')}`, { callback: res.location.href });
    }
    for (const k of ['code', 'state', 'iss']) {
      expect(p.get(k), `authorization response has no "${k}" parameter`, { callback: res.location.href });
    }
    expect(p.get('state') === request.state, 'authorization response "state" differs from the one sent', { sent: request.state, got: p.get('state') });
    expect(p.get('iss') === this.as.issuer, 'authorization response "iss" is not the issuer', { issuer: this.as.issuer, got: p.get('iss') });
    return res.location;
  }

  // c. browser login
  async login(request) {
    const { browser, cfg } = this;
    const hubOrigin = this.hubOrigin;
    const start = await browser.navigate(request.url, {
      hubOrigin,
      stop: (loc) => this.isLoginPage(loc) || this.isRedirectUri(loc),
    });
    const r1 = start.res;
    expect([302, 303].includes(r1.status) && r1.location && this.isLoginPage(r1.location),
      'expected the authorization request to redirect (302/303) to /login/{handle}', { ...describeResponse(r1), hops: start.hops });
    expect(start.setCookies.length > 0, 'the redirect to the login page set no cookie', { hops: start.hops });
    const loginUrl = r1.location;
    const handle = decodeURIComponent(loginUrl.pathname.split('/')[2]);

    const page = await browser.request(loginUrl);
    expect(page.status === 200, `GET ${loginUrl.pathname} did not answer 200`, describeResponse(page));
    const forms = parseForms(page.body)
      .map((f) => ({ ...f, action: f.attrs.action === undefined ? undefined : new URL(f.attrs.action, loginUrl) }))
      .filter((f) => (f.attrs.method ?? 'get').toLowerCase() === 'post' && f.action && f.action.origin === hubOrigin)
      .filter((f) => {
        const parts = f.action.pathname.split('/');
        return parts.length === 4 && parts[1] === 'login' && decodeURIComponent(parts[2]) === handle && parts[3] !== '';
      })
      .filter((f) => f.inputs.some((i) => i.name === 'national_id'));
    expect(forms.length > 0, `the login page has no <form method="post" action="/login/${handle}/{connector}"> with a national_id input`, { body: snippet(page.body, 1500) });
    const form = forms.find((f) => f.inputs.some((i) => i.name === 'national_id' && i.value === cfg.nationalId)) ?? forms[0];
    const connector = decodeURIComponent(form.action.pathname.split('/')[3]);
    const fields = new URLSearchParams();
    for (const input of form.inputs) {
      if (['submit', 'button', 'image', 'reset', 'file'].includes(input.type)) continue;
      if (input.name === 'national_id') continue;
      fields.append(input.name, input.value);
    }
    fields.set('national_id', cfg.nationalId);
    const done = await browser.navigate(form.action, {
      hubOrigin,
      method: 'POST',
      form: fields,
      headers: { origin: hubOrigin, referer: loginUrl.href },
      stop: (loc) => this.isRedirectUri(loc),
    });
    const callbackUrl = this.callback(done.res, request, done.hops);
    expect(browser.jar.get(cfg.ssoCookie) !== undefined, `no SSO cookie ${cfg.ssoCookie} after signing in`, { cookies: browser.jar.names() });
    emit('login', {
      authorize_hops: start.hops,
      login_page: loginUrl.href,
      handle,
      connector,
      form_action: form.action.pathname,
      login_hops: done.hops,
      cookies: browser.jar.names(),
      callback: callbackUrl.href,
    });
    return callbackUrl;
  }

  // d. / f. code exchange
  async exchange(step, callbackUrl, request) {
    const { client, cfg, config } = this;
    const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
      pkceCodeVerifier: request.verifier,
      expectedState: request.state,
      expectedNonce: request.nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    expect(claims, 'the token response has no id_token');
    for (const c of ['sub', 'auth_time', 'at_hash']) {
      expect(claims[c] !== undefined, `the ID token has no "${c}" claim`, { claims });
    }
    const header = decodeJwtPart(tokens.id_token, 0);
    expect(header.alg === cfg.alg, `the ID token alg is ${header.alg}, expected ${cfg.alg}`);
    const atHash = tokenHash(header.alg, tokens.access_token);
    expect(claims.at_hash === atHash, 'the ID token at_hash does not match the access token', { at_hash: claims.at_hash, expected: atHash });
    emit(step, {
      token_type: tokens.token_type,
      expires_in: tokens.expires_in ?? null,
      scope: tokens.scope ?? null,
      refresh_token: typeof tokens.refresh_token === 'string',
      id_token_header: header,
      claims,
    });
    return { tokens, claims };
  }

  // e. userinfo
  async userinfo(tokens, claims) {
    const info = await this.client.fetchUserInfo(this.config, tokens.access_token, claims.sub);
    emit('userinfo', { userinfo: info });
    return info;
  }

  // f. SSO
  async sso(first) {
    const request = await this.authorizationRequest('sso_authorization');
    const nav = await this.browser.navigate(request.url, {
      hubOrigin: this.hubOrigin,
      stop: (loc) => this.isLoginPage(loc) || this.isRedirectUri(loc),
    });
    if (nav.res.location && this.isLoginPage(nav.res.location)) {
      fail('SSO was not used: the second authorization request went to the login page', { hops: nav.hops, cookies: this.browser.jar.names() });
    }
    const callbackUrl = this.callback(nav.res, request, nav.hops);
    const second = await this.exchange('sso_token', callbackUrl, request);
    expect(second.claims.sub === first.claims.sub, 'the SSO ID token has another "sub"', { first: first.claims.sub, second: second.claims.sub });
    expect(second.claims.auth_time === first.claims.auth_time, 'the SSO ID token has another "auth_time" (the user did not sign in again)', { first: first.claims.auth_time, second: second.claims.auth_time });
    if (first.claims.sid !== undefined && second.claims.sid !== undefined) {
      expect(second.claims.sid === first.claims.sid, 'the SSO ID token has another "sid"', { first: first.claims.sid, second: second.claims.sid });
    }
    emit('sso', { hops: nav.hops, callback: callbackUrl.href, same_sub: true, same_auth_time: true });
    return second;
  }

  // g. refresh rotation and reuse detection
  async refresh(first) {
    const { client, config } = this;
    const old = first.tokens.refresh_token;
    expect(typeof old === 'string', 'no refresh_token was issued (scope included offline_access)');
    const fresh = await client.refreshTokenGrant(config, old);
    expect(typeof fresh.refresh_token === 'string', 'the refresh response has no new refresh_token (no rotation)');
    expect(fresh.refresh_token !== old, 'the refresh response returned the same refresh_token (no rotation)');
    expect(fresh.access_token !== first.tokens.access_token, 'the refresh response returned the same access_token');
    const refreshedClaims = fresh.claims();
    if (refreshedClaims) {
      expect(refreshedClaims.sub === first.claims.sub, 'the refreshed ID token has another "sub"', { first: first.claims.sub, refreshed: refreshedClaims.sub });
    }
    emit('refresh', {
      token_type: fresh.token_type,
      expires_in: fresh.expires_in ?? null,
      scope: fresh.scope ?? null,
      rotated: true,
      id_token: refreshedClaims ?? null,
    });

    this.current = 'refresh_reuse';
    let reused;
    try {
      reused = await client.refreshTokenGrant(config, old);
    } catch (err) {
      if (err instanceof client.ResponseBodyError) {
        expect(err.error === 'invalid_grant', `reusing the old refresh token failed with ${err.error}, expected invalid_grant`, describeError(err));
        emit('refresh_reuse', { rejected: true, status: err.status, error: err.error, error_description: err.error_description ?? null });
        return fresh;
      }
      throw err;
    }
    fail('the old (rotated) refresh token was accepted again (no reuse detection)', { refresh_token_reissued: typeof reused.refresh_token === 'string' });
  }

  // h. RP-initiated logout + back-channel logout
  async logout(sso, refreshed) {
    const { cfg, config, jose, browser } = this;
    this.current = 'backchannel_listen';
    expect(this.as.backchannel_logout_supported === true, 'discovery does not say backchannel_logout_supported: true');
    const received = [];
    let wake;
    const arrived = new Promise((resolve) => { wake = resolve; });
    const jwks = jose.createRemoteJWKSet(new URL(this.as.jwks_uri));
    const verify = async (token) => {
      const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
        issuer: this.as.issuer,
        audience: cfg.clientId,
        typ: 'logout+jwt',
        algorithms: [cfg.alg],
        requiredClaims: ['iat', 'exp', 'jti', 'events'],
        clockTolerance: 30,
      });
      const events = payload.events;
      expect(events && typeof events === 'object' && !Array.isArray(events) && BACKCHANNEL_EVENT in events,
        `the logout token "events" claim lacks ${BACKCHANNEL_EVENT}`, { events });
      expect(typeof events[BACKCHANNEL_EVENT] === 'object' && events[BACKCHANNEL_EVENT] !== null && !Array.isArray(events[BACKCHANNEL_EVENT]),
        'the back-channel logout event value must be a JSON object', { events });
      expect(payload.sid !== undefined || payload.sub !== undefined, 'the logout token has neither "sid" nor "sub"', { payload });
      expect(payload.nonce === undefined, 'the logout token has a "nonce" claim', { payload });
      return { header: protectedHeader, claims: payload };
    };
    const server = http.createServer((req, res) => {
      const url = new URL(req.url, 'http://127.0.0.1');
      if (url.pathname !== '/backchannel') {
        res.writeHead(404).end();
        return;
      }
      if (req.method !== 'POST') {
        res.writeHead(405, { allow: 'POST' }).end();
        return;
      }
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', async () => {
        const entry = { content_type: req.headers['content-type'] ?? null };
        try {
          expect((req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase() === 'application/x-www-form-urlencoded',
            'the back-channel logout request is not application/x-www-form-urlencoded', { content_type: req.headers['content-type'] });
          const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
          const token = form.get('logout_token');
          expect(token, 'the back-channel logout request has no logout_token');
          entry.logout_token = token;
          Object.assign(entry, await verify(token));
          entry.ok = true;
          res.writeHead(200, { 'cache-control': 'no-store' }).end();
        } catch (err) {
          entry.ok = false;
          entry.error = describeError(err);
          res.writeHead(400, { 'content-type': 'application/json', 'cache-control': 'no-store' })
            .end(JSON.stringify({ error: 'invalid_request', error_description: err.message }));
        }
        received.push(entry);
        wake();
      });
    });
    await new Promise((resolve, reject) => {
      server.once('error', (err) => reject(new Failure(`cannot listen on 127.0.0.1:${cfg.backchannelPort}: ${err.message}`)));
      server.listen(cfg.backchannelPort, '127.0.0.1', resolve);
    });
    try {
      emit('backchannel_listen', { url: `http://127.0.0.1:${cfg.backchannelPort}/backchannel` });

      this.current = 'end_session';
      const ssoCookieBefore = browser.jar.get(cfg.ssoCookie);
      const idTokenHint = refreshed.id_token ?? sso.tokens.id_token;
      const state = this.client.randomState();
      const url = this.client.buildEndSessionUrl(config, {
        id_token_hint: idTokenHint,
        post_logout_redirect_uri: cfg.postLogoutRedirectUri,
        state,
      });
      const target = new URL(cfg.postLogoutRedirectUri);
      const isTarget = (loc) => loc.origin === target.origin && loc.pathname === target.pathname;
      const nav = await browser.navigate(url, { hubOrigin: this.hubOrigin, stop: isTarget });
      const r = nav.res;
      expect([302, 303].includes(r.status) && r.location && isTarget(r.location),
        'expected the end_session_endpoint to redirect (302/303) to the post_logout_redirect_uri', { ...describeResponse(r), hops: nav.hops });
      expect(r.location.searchParams.get('state') === state, 'the post-logout redirect does not carry the same "state"', { sent: state, location: r.location.href });
      emit('end_session', {
        url: url.href,
        hops: nav.hops,
        location: r.location.href,
        sso_cookie_cleared: browser.jar.get(cfg.ssoCookie) === undefined || browser.jar.get(cfg.ssoCookie) === '',
      });

      this.current = 'backchannel';
      const timer = new Promise((resolve) => setTimeout(resolve, 5000));
      await Promise.race([arrived, timer]);
      // Give a second (per-session) token a moment to arrive as well.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(received.length > 0, 'no back-channel logout token arrived within 5 s');
      const bad = received.find((e) => !e.ok);
      if (bad) fail(`a back-channel logout token failed validation: ${bad.error?.message}`, { received: jsonSafe(received) });
      const idClaims = sso.claims;
      for (const e of received) {
        if (e.claims.sub !== undefined) expect(e.claims.sub === idClaims.sub, 'the logout token "sub" is not the ID token "sub"', { logout: e.claims.sub, id_token: idClaims.sub });
        if (e.claims.sid !== undefined && idClaims.sid !== undefined) expect(e.claims.sid === idClaims.sid, 'the logout token "sid" is not the ID token "sid"', { logout: e.claims.sid, id_token: idClaims.sid });
        if (this.as.backchannel_logout_session_supported === true) expect(e.claims.sid !== undefined, 'backchannel_logout_session_supported is true but the logout token has no "sid"', { claims: e.claims });
      }
      emit('backchannel', { count: received.length, tokens: received.map(({ header, claims, logout_token }) => ({ header, claims, logout_token })) });

      this.current = 'sso_ended';
      const request = await this.authorizationRequest('after_logout_authorization');
      const again = await browser.navigate(request.url, {
        hubOrigin: this.hubOrigin,
        stop: (loc) => this.isLoginPage(loc) || this.isRedirectUri(loc),
      });
      expect(again.res.location && this.isLoginPage(again.res.location),
        'after logout the authorization request did not go to the login page (SSO session still alive)', { ...describeResponse(again.res), hops: again.hops });
      // The same check with the pre-logout SSO cookie put back, so that clearing the
      // cookie alone cannot pass: the session must be gone on the hub's side.
      let replay = null;
      if (ssoCookieBefore) {
        const stale = new Browser(cfg.timeout);
        stale.jar.store(`${cfg.ssoCookie}=${ssoCookieBefore}; Path=/`, new URL(this.hubOrigin));
        const req2 = await this.authorizationRequest('stale_cookie_authorization');
        const nav2 = await stale.navigate(req2.url, {
          hubOrigin: this.hubOrigin,
          stop: (loc) => this.isLoginPage(loc) || this.isRedirectUri(loc),
        });
        expect(nav2.res.location && this.isLoginPage(nav2.res.location),
          'after logout the old SSO cookie still signs the user in (session not ended on the hub)', { ...describeResponse(nav2.res), hops: nav2.hops });
        replay = nav2.res.location.href;
      }
      emit('sso_ended', { login_page: again.res.location.href, stale_cookie_login_page: replay });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  }

  async full() {
    await this.step('discovery', () => this.discovery());
    const request = await this.step('authorization', () => this.authorizationRequest('authorization'));
    const callbackUrl = await this.step('login', () => this.login(request));
    const first = await this.step('token', () => this.exchange('token', callbackUrl, request));
    await this.step('userinfo', () => this.userinfo(first.tokens, first.claims));
    const sso = await this.step('sso', () => this.sso(first));
    const refreshed = await this.step('refresh', () => this.refresh(first));
    await this.step('logout', () => this.logout(sso, refreshed));
  }
}

async function main(argv) {
  let cfg;
  try {
    cfg = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`rp.mjs: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
  if (cfg.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let run;
  try {
    const libs = await loadLibraries();
    run = new Run(cfg, libs);
    if (cfg.scenario === 'discovery') await run.step('discovery', () => run.discovery());
    else await run.full();
  } catch (err) {
    const step = run?.current ?? 'start';
    const d = err instanceof Failure ? err.details ?? {} : describeError(err);
    process.stdout.write(`${JSON.stringify({ step, ok: false, error: err.message, details: jsonSafe(d) })}\n`);
    process.stderr.write(`rp.mjs: step ${step} failed: ${err.message}\n`);
    if (err.error) process.stderr.write(`  error=${err.error}${err.error_description ? ` (${err.error_description})` : ''}\n`);
    if (err.code) process.stderr.write(`  code=${err.code}\n`);
    if (err.cause?.message) process.stderr.write(`  cause: ${err.cause.message}\n`);
    if (process.env.RP_DEBUG) process.stderr.write(`${err.stack}\n${JSON.stringify(jsonSafe(d), null, 2)}\n`);
    return 1;
  }
  emit('done');
  return 0;
}

function invokedDirectly() {
  try {
    return import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  process.exitCode = await main(process.argv.slice(2));
}
