#!/usr/bin/env node
// Test OpenID Provider playing the *national identity provider* for fedhub's
// upstream OIDC connector tests (fedhub is the Relying Party here).
//
// The OP is oidc-provider (panva, OpenID-certified) with one confidential
// client, three in-memory accounts carrying the national portal's claim names,
// and *automated* interactions: instead of oidc-provider's development login
// pages there are two tiny routes a test can drive without a browser
// (GET /interaction/:uid shows one form per account, POST
// /interaction/:uid/login with account=<name> signs in and grants consent).
// RP-initiated logout is confirmed automatically. See README.md next to this
// file for the full contract.
//
//   dir="$(tests/interop/national-idp/setup-node | tail -n 1)"
//   NODE_PATH="$dir/node_modules" node tests/interop/national-idp/op.mjs \
//       --port 0 --client-id fedhub --client-secret s3cret \
//       --redirect-uri http://127.0.0.1:8080/upstream/national/callback
//
// When it listens it prints ONE line on stdout:
//   {"ready":true,"issuer":"http://127.0.0.1:PORT","port":PORT,...}
// Everything else (request log, oidc-provider events and warnings) goes to
// stderr. Usage errors exit 2; start-up failures exit 1.
//
// Module resolution: oidc-provider is resolved with Node's CommonJS resolver
// from this file's directory upwards and then from every directory in
// NODE_PATH, and loaded with import() (ESM `import` statements ignore
// NODE_PATH).

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const USAGE = `usage: node op.mjs --port P --client-id ID --client-secret S --redirect-uri URI
         [--issuer http://127.0.0.1:P] [--post-logout-redirect-uri URI]
         [--id-token-alg RS256|ES256] [--slow-ms N] [--exit-on-stdin-close]

--port 0 picks a free port; the issuer is then http://127.0.0.1:<that port>
(read it from the ready line). --redirect-uri and --post-logout-redirect-uri
may be given several times. --slow-ms delays every token endpoint request by
N milliseconds. --exit-on-stdin-close makes the OP exit when its stdin reaches
EOF (i.e. when the parent process that holds the pipe dies).
Set OP_DEBUG=1 for stack traces in the log.`;

export const NATIONAL_ACR = 'urn:vn:national-idp:level2';
export const AMR = ['pwd', 'otp'];

// ---------------------------------------------------------------------------
// Accounts (in memory). The key is the value of the `account` form field.

export const ACCOUNTS = {
  citizen: {
    sub: 'nidp-citizen-1',
    name: 'Nguyễn Văn An',
    email: 'an.nguyen@example.com',
    email_verified: true,
    phone_number: '0912345678',
    phone_number_verified: true,
    SoDinhDanh: '001204012345',
    HoVaTen: 'Nguyễn Văn An',
    SoDienThoai: '0912345678',
    ThuDienTu: 'an.nguyen@example.com',
    LoaiTaiKhoan: '1',
    MaSoThue: '8012345678',
  },
  stranger: {
    sub: 'nidp-stranger-1',
    name: 'Người Lạ',
    email: 'nguoi.la@example.com',
    email_verified: true,
    phone_number: '0987654321',
    phone_number_verified: true,
    SoDinhDanh: '022195000999',
    HoVaTen: 'Người Lạ',
    SoDienThoai: '0987654321',
    ThuDienTu: 'nguoi.la@example.com',
    LoaiTaiKhoan: '1',
  },
  'no-id': {
    sub: 'nidp-noid-1',
    name: 'Trần Thị Bình',
    email: 'binh.tran@example.com',
    email_verified: true,
    phone_number: '0901234567',
    phone_number_verified: true,
    HoVaTen: 'Trần Thị Bình',
    SoDienThoai: '0901234567',
    ThuDienTu: 'binh.tran@example.com',
    LoaiTaiKhoan: '1',
  },
};

const ACCOUNTS_BY_SUB = new Map(Object.values(ACCOUNTS).map((a) => [a.sub, a]));

// Which scope releases which claim (ID token AND userinfo; see
// conformIdTokenClaims below). acr, amr and auth_time are listed under openid
// so that every ID token carries them (oidc-provider otherwise adds them only
// when requested via acr_values / max_age / the claims parameter); they exist
// only for the ID token (the accounts do not have them), so userinfo never
// shows them.
export const SCOPE_CLAIMS = {
  openid: ['sub', 'acr', 'amr', 'auth_time'],
  profile: ['name'],
  email: ['email', 'email_verified'],
  phone: ['phone_number', 'phone_number_verified'],
  national_id: ['SoDinhDanh', 'HoVaTen', 'SoDienThoai', 'ThuDienTu', 'LoaiTaiKhoan', 'MaSoThue'],
};

// ---------------------------------------------------------------------------
// Command line

class UsageError extends Error {}

const OPTIONS = {
  port: 'string',
  issuer: 'string',
  'client-id': 'string',
  'client-secret': 'string',
  'redirect-uri': 'multi',
  'post-logout-redirect-uri': 'multi',
  'id-token-alg': 'string',
  'slow-ms': 'string',
  'exit-on-stdin-close': 'flag',
};

export function parseArgs(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') return { help: true };
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    let name = arg.slice(2);
    let value;
    const eq = name.indexOf('=');
    if (eq !== -1) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const kind = OPTIONS[name];
    if (!kind) throw new UsageError(`unknown option --${name}`);
    if (kind === 'flag') {
      if (value !== undefined) throw new UsageError(`option --${name} takes no value`);
      opts[name] = true;
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`option --${name} needs a value`);
      value = argv[++i];
    }
    if (kind === 'multi') {
      (opts[name] ||= []).push(value);
    } else {
      if (name in opts) throw new UsageError(`option --${name} given twice`);
      opts[name] = value;
    }
  }

  const need = (name) => {
    const v = opts[name];
    if (v === undefined || v === '' || (Array.isArray(v) && !v.length)) {
      throw new UsageError(`--${name} is required`);
    }
    return v;
  };
  const httpUrl = (name, v) => {
    let u;
    try {
      u = new URL(v);
    } catch {
      throw new UsageError(`--${name} must be an absolute URL, got ${JSON.stringify(v)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new UsageError(`--${name} must be an http(s) URL, got ${JSON.stringify(v)}`);
    }
    if (u.hash || v.includes('#')) throw new UsageError(`--${name} must not have a fragment`);
    return v;
  };
  const nonNegativeInt = (name, v, max) => {
    if (!/^[0-9]+$/.test(v) || Number(v) > max) {
      throw new UsageError(`--${name} must be an integer between 0 and ${max}, got ${JSON.stringify(v)}`);
    }
    return Number(v);
  };

  const port = nonNegativeInt('port', need('port'), 65535);
  let issuer;
  if (opts.issuer !== undefined) {
    httpUrl('issuer', opts.issuer);
    const u = new URL(opts.issuer);
    // The OP serves plain http on 127.0.0.1 at the root path: the issuer must
    // name exactly that origin (no path, no trailing slash, no query).
    if (
      u.protocol !== 'http:' || u.hostname !== '127.0.0.1' || opts.issuer !== u.origin
      || (port !== 0 && Number(u.port) !== port)
    ) {
      throw new UsageError(
        `--issuer must be exactly http://127.0.0.1:${port || 'PORT'} (no path, no trailing slash), ` +
          `got ${JSON.stringify(opts.issuer)}`,
      );
    }
    if (port === 0) throw new UsageError('--issuer cannot be combined with --port 0 (the port is not known yet)');
    issuer = opts.issuer;
  }

  const clientSecret = need('client-secret');
  if (!/^[\x20-\x7e]+$/.test(clientSecret)) {
    throw new UsageError('--client-secret must be printable ASCII (RFC 6749 VSCHAR)');
  }
  const alg = opts['id-token-alg'] ?? 'RS256';
  if (alg !== 'RS256' && alg !== 'ES256') {
    throw new UsageError(`--id-token-alg must be RS256 or ES256, got ${JSON.stringify(alg)}`);
  }

  return {
    port,
    issuer,
    clientId: need('client-id'),
    clientSecret,
    redirectUris: need('redirect-uri').map((v) => httpUrl('redirect-uri', v)),
    postLogoutRedirectUris: (opts['post-logout-redirect-uri'] ?? []).map((v) =>
      httpUrl('post-logout-redirect-uri', v),
    ),
    idTokenAlg: alg,
    slowMs: opts['slow-ms'] === undefined ? 0 : nonNegativeInt('slow-ms', opts['slow-ms'], 600000),
    exitOnStdinClose: Boolean(opts['exit-on-stdin-close']),
  };
}

// ---------------------------------------------------------------------------
// Helpers

const debug = Boolean(process.env.OP_DEBUG);

function log(message) {
  process.stderr.write(`op.mjs: ${message}\n`);
}

function describeError(err) {
  if (!err) return String(err);
  const parts = [err.error ? `${err.error}${err.error_description ? `: ${err.error_description}` : ''}` : err.message];
  if (err.error_detail) parts.push(`(${err.error_detail})`);
  if (err.cause) parts.push(`cause: ${err.cause.message ?? err.cause}`);
  if (debug && err.stack) parts.push(`\n${err.stack}`);
  return parts.join(' ');
}

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
function html(s) {
  return String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<title>${html(title)}</title>
</head>
<body>
${body}
</body>
</html>
`;
}

async function readFormBody(req, limit = 16 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function signingKeys() {
  const started = Date.now();
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const stamp = Date.now().toString(36);
  log(`generated the RSA and EC signing keys (${Date.now() - started} ms)`);
  return [
    { ...rsa, kid: `nidp-rs256-${stamp}`, use: 'sig', alg: 'RS256' },
    { ...ec, kid: `nidp-es256-${stamp}`, use: 'sig', alg: 'ES256' },
  ];
}

async function loadOidcProvider() {
  const require = createRequire(import.meta.url);
  let resolved;
  try {
    resolved = require.resolve('oidc-provider');
  } catch {
    throw new Error(
      'cannot find the npm package oidc-provider: run tests/interop/national-idp/setup-node and ' +
        'set NODE_PATH to <the directory it prints>/node_modules',
    );
  }
  return import(pathToFileURL(resolved).href);
}

// ---------------------------------------------------------------------------
// The provider

function buildConfiguration(cfg) {
  const claims = { acr: null, amr: null, auth_time: null, sid: null, iss: null };
  for (const [scope, names] of Object.entries(SCOPE_CLAIMS)) claims[scope] = names;

  return {
    clients: [
      {
        client_id: cfg.clientId,
        client_secret: cfg.clientSecret,
        application_type: 'web',
        redirect_uris: cfg.redirectUris,
        post_logout_redirect_uris: cfg.postLogoutRedirectUris,
        response_types: ['code'],
        grant_types: ['authorization_code'],
        // client_secret_post is accepted too: oidc-provider treats the two
        // secret methods as interchangeable at the token endpoint.
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: cfg.idTokenAlg,
      },
    ],
    jwks: { keys: signingKeys() },
    cookies: {
      keys: [randomBytes(32).toString('base64url')],
      // Plain http on 127.0.0.1: never mark cookies Secure (oidc-provider
      // would only do so when the request itself is https).
      long: { httpOnly: true, sameSite: 'lax', secure: false },
      short: { httpOnly: true, sameSite: 'lax', secure: false },
    },
    scopes: ['openid'], // the other scopes come from the claims configuration
    claims,
    // Release scope-requested claims in the ID token as well, not only at
    // userinfo (the default, true, puts only sub + protocol claims in an ID
    // token that comes with an access token).
    conformIdTokenClaims: false,
    acrValues: [NATIONAL_ACR],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true },
      userinfo: { enabled: true },
      claimsParameter: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 8 * 3600,
      Grant: 8 * 3600,
    },
    async findAccount(_ctx, sub) {
      const account = ACCOUNTS_BY_SUB.get(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        async claims() {
          return { ...account };
        },
      };
    },
    async renderError(ctx, out, error) {
      log(`error page: ${describeError(error)}`);
      ctx.type = 'html';
      ctx.body = page(
        'National IdP error',
        `<h1>Error</h1>\n<p id="error">${html(out.error)}</p>\n<p id="error_description">${html(out.error_description ?? '')}</p>`,
      );
    },
  };
}

/** Scopes and claims of the authorization request, for the automatic consent. */
function requestedGrant(provider, params, scopes) {
  const scope = String(params.scope ?? '')
    .split(' ')
    .filter((s) => scopes.includes(s));
  const claimNames = new Set();
  if (typeof params.claims === 'string') {
    try {
      const parsed = JSON.parse(params.claims);
      for (const container of ['id_token', 'userinfo']) {
        if (parsed?.[container] && typeof parsed[container] === 'object') {
          Object.keys(parsed[container]).forEach((c) => claimNames.add(c));
        }
      }
    } catch {
      // oidc-provider already rejected an unparsable claims parameter.
    }
  }
  return { scope: scope.join(' '), claims: [...claimNames] };
}

async function grantEverything(provider, details, accountId, scopes) {
  const { params } = details;
  let grant;
  if (details.grantId) grant = await provider.Grant.find(details.grantId);
  if (!grant || grant.accountId !== accountId) {
    grant = new provider.Grant({ accountId, clientId: params.client_id });
  }
  const wanted = requestedGrant(provider, params, scopes);
  if (wanted.scope) grant.addOIDCScope(wanted.scope);
  if (wanted.claims.length) grant.addOIDCClaims(wanted.claims);
  const promptDetails = details.prompt?.details ?? {};
  if (promptDetails.missingOIDCScope) grant.addOIDCScope(promptDetails.missingOIDCScope.join(' '));
  if (promptDetails.missingOIDCClaims) grant.addOIDCClaims(promptDetails.missingOIDCClaims);
  if (promptDetails.missingResourceScopes) {
    for (const [indicator, s] of Object.entries(promptDetails.missingResourceScopes)) {
      grant.addResourceScope(indicator, s.join(' '));
    }
  }
  return grant.save();
}

function loginPage(uid, details) {
  const action = `/interaction/${encodeURIComponent(uid)}/login`;
  const forms = Object.entries(ACCOUNTS).map(
    ([key, a]) =>
      `<form method="post" action="${html(action)}"><input type="hidden" name="account" value="${html(key)}"><button type="submit">${html(a.HoVaTen)} (${html(key)})</button></form>`,
  );
  forms.push(
    `<form method="post" action="${html(action)}"><input type="hidden" name="account" value="refuse"><button type="submit">Refuse (access_denied)</button></form>`,
  );
  return page(
    'National IdP sign-in',
    [
      '<h1>National IdP sign-in</h1>',
      `<p>client_id: <code id="client_id">${html(details.params.client_id)}</code>, scope: <code id="scope">${html(details.params.scope ?? '')}</code>, prompt: <code id="prompt">${html(details.prompt.name)}</code>, reasons: <code id="reasons">${html(details.prompt.reasons.join(' '))}</code></p>`,
      ...forms,
    ].join('\n'),
  );
}

function plainError(ctx, status, message) {
  log(`${ctx.method} ${ctx.path}: ${message}`);
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = page('National IdP error', `<h1>Error</h1>\n<p id="error">${html(message)}</p>`);
}

/** Koa middleware: automated interactions, auto-confirmed logout, --slow-ms. */
function routes(provider, cfg, scopes, selfOrigin) {
  const interactionPath = /^\/interaction\/([^/]+)$/;
  const loginPath = /^\/interaction\/([^/]+)\/login$/;

  return async function nationalIdpRoutes(ctx, next) {
    let m;
    if ((m = interactionPath.exec(ctx.path))) {
      if (ctx.method !== 'GET') return plainError(ctx, 405, 'method not allowed');
      const uid = decodeURIComponent(m[1]);
      let details;
      try {
        details = await provider.interactionDetails(ctx.req, ctx.res);
      } catch (err) {
        return plainError(ctx, 400, `no interaction: ${describeError(err)}`);
      }
      if (details.uid !== uid) return plainError(ctx, 400, 'interaction cookie does not match the URL');
      if (details.prompt.name === 'consent' && details.session?.accountId) {
        // Already signed in (SSO), only consent is missing: grant it at once.
        const grantId = await grantEverything(provider, details, details.session.accountId, scopes);
        log(`interaction ${uid}: automatic consent for ${details.session.accountId} (${details.prompt.reasons.join(' ')})`);
        ctx.respond = false;
        return provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      }
      ctx.type = 'html';
      ctx.set('Cache-Control', 'no-store');
      ctx.body = loginPage(uid, details);
      return undefined;
    }

    if ((m = loginPath.exec(ctx.path))) {
      if (ctx.method !== 'POST') return plainError(ctx, 405, 'method not allowed');
      const uid = decodeURIComponent(m[1]);
      let details;
      try {
        details = await provider.interactionDetails(ctx.req, ctx.res);
      } catch (err) {
        return plainError(ctx, 400, `no interaction: ${describeError(err)}`);
      }
      if (details.uid !== uid) return plainError(ctx, 400, 'interaction cookie does not match the URL');
      let form;
      try {
        form = await readFormBody(ctx.req);
      } catch (err) {
        return plainError(ctx, 400, err.message);
      }
      const accountKey = form.get('account');
      if (accountKey === 'refuse') {
        log(`interaction ${uid}: refused (access_denied)`);
        ctx.respond = false;
        return provider.interactionFinished(
          ctx.req,
          ctx.res,
          { error: 'access_denied', error_description: 'End-User refused the sign-in at the national IdP' },
          { mergeWithLastSubmission: false },
        );
      }
      const account = Object.hasOwn(ACCOUNTS, accountKey ?? '') ? ACCOUNTS[accountKey] : undefined;
      if (!account) return plainError(ctx, 400, `unknown account ${JSON.stringify(accountKey)}`);
      const grantId = await grantEverything(provider, details, account.sub, scopes);
      log(`interaction ${uid}: login as ${accountKey} (${account.sub}), grant ${grantId}`);
      ctx.respond = false;
      return provider.interactionFinished(
        ctx.req,
        ctx.res,
        {
          login: { accountId: account.sub, acr: NATIONAL_ACR, amr: AMR, remember: true },
          consent: { grantId },
        },
        { mergeWithLastSubmission: false },
      );
    }

    if (ctx.path === '/session/end/auto') {
      // Second half of the automatic logout confirmation: POST the confirm
      // form on the browser's behalf (with its cookies) and hand back the
      // answer (303 to the post_logout_redirect_uri or the success page, plus
      // the cookie deletions).
      if (ctx.method !== 'GET') return plainError(ctx, 405, 'method not allowed');
      const xsrf = ctx.query.xsrf;
      if (typeof xsrf !== 'string' || !xsrf) return plainError(ctx, 400, 'xsrf missing');
      const res = await fetch(`${selfOrigin}/session/end/confirm`, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          ...(ctx.get('cookie') ? { cookie: ctx.get('cookie') } : {}),
        },
        body: new URLSearchParams({ xsrf, logout: 'yes' }).toString(),
      });
      ctx.status = res.status;
      const location = res.headers.get('location');
      if (location) ctx.set('Location', location);
      const setCookies = res.headers.getSetCookie();
      if (setCookies.length) ctx.set('Set-Cookie', setCookies);
      ctx.set('Cache-Control', 'no-store');
      const type = res.headers.get('content-type');
      if (type) ctx.type = type;
      ctx.body = Buffer.from(await res.arrayBuffer());
      return undefined;
    }

    if (ctx.path === '/token' && ctx.method === 'POST' && cfg.slowMs > 0) {
      log(`token endpoint: delaying ${cfg.slowMs} ms (--slow-ms)`);
      await new Promise((resolve) => setTimeout(resolve, cfg.slowMs));
    }

    await next();

    // First half of the automatic logout confirmation. oidc-provider asks the
    // browser to confirm a logout with an HTML form POSTing the session's
    // xsrf secret to /session/end/confirm in two places: the answer to an
    // end_session request (a confirmation page when signed in, an
    // auto-submitting form otherwise), and the resume step after an
    // interaction signed in a *different* account than the session's (the old
    // session is ended first; the confirm then redirects back to the resume
    // URL). Neither works without a person or JavaScript, so answer with a
    // redirect to /session/end/auto instead; the session state holding the
    // secret has already been saved at this point.
    if (
      (ctx.oidc?.route === 'end_session' || ctx.oidc?.route === 'resume')
      && ctx.status === 200
      && typeof ctx.body === 'string'
      && ctx.body.includes(`action="${provider.urlFor('end_session_confirm')}"`)
    ) {
      const secret = ctx.oidc.session?.state?.secret;
      if (secret && ctx.body.includes(`value="${secret}"`)) {
        log(`${ctx.oidc.route}: logout confirmation answered with a redirect to /session/end/auto`);
        ctx.status = 303;
        ctx.redirect(`/session/end/auto?xsrf=${encodeURIComponent(secret)}`);
        ctx.body = '';
      }
    }
    return undefined;
  };
}

function requestLogger() {
  return async function logRequest(ctx, next) {
    const started = Date.now();
    try {
      await next();
    } finally {
      const status = ctx.respond === false ? ctx.res.statusCode : ctx.status;
      const location = ctx.respond === false ? ctx.res.getHeader('location') : ctx.response.get('location');
      log(
        `${ctx.method} ${ctx.originalUrl} -> ${status}` +
          `${location ? ` Location: ${location}` : ''} (${Date.now() - started} ms)`,
      );
    }
  };
}

async function main() {
  let cfg;
  try {
    cfg = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`op.mjs: ${err.message}\n${USAGE}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (cfg.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }

  const started = Date.now();
  const { Provider } = await loadOidcProvider();
  log(`loaded oidc-provider (${Date.now() - started} ms)`);

  // Bind first, so that --port 0 yields the issuer's port.
  let handler = (_req, res) => {
    res.statusCode = 503;
    res.end('starting');
  };
  const server = http.createServer((req, res) => handler(req, res));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address();
  const issuer = cfg.issuer ?? `http://127.0.0.1:${port}`;
  const selfOrigin = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, buildConfiguration(cfg));
  // Nothing sits in front of the OP: never trust X-Forwarded-* headers.
  provider.proxy = false;

  const scopes = Object.keys(SCOPE_CLAIMS);
  provider.use(requestLogger());
  provider.use(routes(provider, cfg, scopes, selfOrigin));

  for (const event of [
    'server_error',
    'authorization.error',
    'grant.error',
    'userinfo.error',
    'end_session.error',
    'discovery.error',
    'jwks.error',
  ]) {
    provider.on(event, (_ctx, err) => log(`${event}: ${describeError(err)}`));
  }
  provider.on('grant.success', (ctx) => {
    const delay = cfg.slowMs ? ` (after --slow-ms ${cfg.slowMs})` : '';
    log(`grant.success: tokens issued to ${ctx.oidc.client?.clientId}${delay}`);
  });
  provider.on('end_session.success', () => log('end_session.success'));

  handler = provider.callback();

  const shutdown = (why) => {
    log(`exiting (${why})`);
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  if (cfg.exitOnStdinClose) {
    process.stdin.on('end', () => shutdown('stdin closed'));
    process.stdin.on('error', () => shutdown('stdin error'));
    process.stdin.resume();
  }

  log(
    `oidc-provider listening on ${selfOrigin}, issuer ${issuer}, client ${cfg.clientId}, ` +
      `id_token alg ${cfg.idTokenAlg}${cfg.slowMs ? `, token endpoint delayed ${cfg.slowMs} ms` : ''} ` +
      `(ready ${Date.now() - started} ms after start-up began)`,
  );
  process.stdout.write(
    `${JSON.stringify({
      ready: true,
      issuer,
      port,
      pid: process.pid,
      client_id: cfg.clientId,
      id_token_alg: cfg.idTokenAlg,
      discovery: `${issuer}/.well-known/openid-configuration`,
    })}\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`op.mjs: start-up failed: ${describeError(err)}\n`);
  if (err?.stack) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
