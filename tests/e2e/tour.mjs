// End-to-end test of the demo's guided tour in headless Chromium.
//
// The hub, the example ministry portal (SAML SP) and the example provincial gateway (OIDC
// RP) run on loopback ports (started and seeded by tests/it/tour_browser.rs). A person:
//   1-3. opens the ministry portal, signs in at the hub with the demo account of Nguyễn Văn
//        An, and the portal shows his unit and role from the SAML assertion;
//   4.   opens the gateway and is signed in without signing in again (single sign-on);
//   5.   signs out everywhere at the hub: both portals are signed out too;
//   6.   Trần Thị Bình, not yet activated at the ministry portal, is refused with a page;
//   7.   a USB-token certificate the CA has revoked is refused with a page;
//   8-9. the province admin signs in to the console and activates Lê Minh Cường;
//   10.  the admin's action on a member in another province is refused (403);
//   11.  the gateway in English.
// Elements are found by role and accessible name, so the pages' labels are checked too. A
// full-page screenshot is taken after each step, and one more on a failure.
//
//   dir="$(tests/e2e/setup-node | tail -n 1)"
//   NODE_PATH="$dir/node_modules" node tests/e2e/tour.mjs '<json>'
//
// The JSON argument: hub, portal, gateway (base URLs), signer (POST a challenge, get the
// revoked token's answer), screenshots (folder), gateway_rp (its id at the hub), citizen,
// inactive, admin (names), to_activate and outside ({ name, membership }), unit, role;
// chromium optional (default $FEDHUB_CHROMIUM or /usr/bin/chromium).
//
// Output: one line per step, then "e2e: N passed, 0 failed"; on a failure
// "e2e: FAILED at step ...: <reason>" on stderr and exit code 1.

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import {
  exitWith,
  reportFailure,
  STEP_TIMEOUT_MS,
  checkAccessibility,
  checkPhone,
  clickTo,
  fail,
  hasText,
  launchChromium,
  literal,
  loadPlaywright,
  notThere,
  postWithPageToken,
  reportTo,
  see,
  tabToButtons,
} from './lib.mjs';

function parseArgs() {
  const raw = process.argv[2];
  if (!raw) fail("usage: node tour.mjs '<json: hub, portal, gateway, signer, ...>'");
  let cfg;
  try {
    cfg = JSON.parse(raw);
  } catch (e) {
    fail(`the argument is not JSON: ${e.message}`);
  }
  for (const key of ['hub', 'portal', 'gateway', 'signer', 'screenshots', 'gateway_rp', 'citizen', 'inactive', 'admin', 'to_activate', 'outside', 'unit', 'role']) {
    if (cfg[key] === undefined) fail(`the JSON argument lacks "${key}"`);
  }
  for (const key of ['hub', 'portal', 'gateway']) cfg[key] = cfg[key].replace(/\/+$/, '');
  cfg.chromium = cfg.chromium || process.env.FEDHUB_CHROMIUM || '/usr/bin/chromium';
  return cfg;
}

async function main() {
  const cfg = parseArgs();
  if (!existsSync(cfg.chromium)) {
    fail(`no Chromium at ${cfg.chromium}: install it with: sudo apt-get install -y chromium`);
  }
  mkdirSync(cfg.screenshots, { recursive: true });
  reportTo(join(cfg.screenshots, 'accessibility.txt'));
  const { chromium } = loadPlaywright();

  const hubLogin = new RegExp(`^${literal(cfg.hub).source}/login/[^/?]+(\\?.*)?$`);
  const portalHome = new RegExp(`^${literal(cfg.portal).source}/?(\\?.*)?$`);
  const gatewayHome = new RegExp(`^${literal(cfg.gateway).source}/?(\\?.*)?$`);
  const steps = [];
  let browser;
  let page;
  let shot = 0;
  let current = 'launch';
  // Every answer of 400 and above, to check that only the expected refusals happened.
  const errors = [];
  // Every page the browser loaded at the hub's sign-in, to check single sign-on.
  const hubLoginPages = [];

  const step = async (name, body) => {
    current = name;
    const t0 = Date.now();
    await body();
    shot += 1;
    const file = join(cfg.screenshots, `${String(shot).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    const ms = Date.now() - t0;
    steps.push({ name, ms, screenshot: file });
    console.log(`e2e: step ${shot} ${name} ok (${ms} ms) -> ${file}`);
  };

  // A fresh browser profile: its own cookies (a different person at the same computer).
  const freshPage = async () => {
    const context = await browser.newContext({ locale: 'vi-VN', viewport: { width: 1280, height: 900 } });
    const p = await context.newPage();
    p.setDefaultTimeout(STEP_TIMEOUT_MS);
    p.on('response', (r) => {
      if (r.status() >= 400) errors.push(`${r.status()} ${r.request().method()} ${r.url()}`);
    });
    p.on('pageerror', (e) => errors.push(`script error: ${e.message}`));
    p.on('framenavigated', (f) => {
      if (f === p.mainFrame() && hubLogin.test(f.url())) hubLoginPages.push(f.url());
    });
    return p;
  };

  // "Đăng nhập" / "Sign in": a button on the ministry portal, a link on the gateway.
  const signInControl = (name = 'Đăng nhập') =>
    page.getByRole('button', { name, exact: true }).or(page.getByRole('link', { name, exact: true }));

  // The hub's chooser → the demo account of `name`.
  const signInAs = async (name, to, what) => {
    await see(page.getByRole('heading', { name: 'Tài khoản trình diễn' }), 'the demo accounts');
    await clickTo(page, page.getByRole('button', { name: `Đăng nhập với tư cách ${name}` }), to, what);
  };

  try {
    browser = await launchChromium(chromium, cfg.chromium);
    page = await freshPage();

    // 1. The ministry portal, signed out.
    await step('portal-home', async () => {
      const resp = await page.goto(cfg.portal, { waitUntil: 'load' });
      if (!resp || resp.status() !== 200) fail(`the portal answered ${resp && resp.status()}`);
      await see(page.getByRole('heading', { level: 1 }), "the portal's heading");
      await see(page.getByRole('button', { name: 'Đăng nhập' }), 'the sign-in button');
      await checkAccessibility(page, 'the ministry portal, signed out');
    });

    // 2. "Đăng nhập": the hub's sign-in page, naming the portal.
    await step('hub-chooser', async () => {
      await clickTo(page, page.getByRole('button', { name: 'Đăng nhập' }), hubLogin, 'the portal sends the browser to the hub');
      await see(page.getByRole('heading', { level: 1, name: 'Đăng nhập' }), "the hub's sign-in heading");
      await hasText(page.getByRole('main'), ['Bộ Tài chính'], 'the portal named on the sign-in page');
      await checkAccessibility(page, "the hub's connector chooser");
      await checkPhone(
        page,
        "the hub's connector chooser",
        [
          ['the sign-in heading', page.getByRole('heading', { level: 1, name: 'Đăng nhập' })],
          ['the USB token', page.getByRole('button', { name: 'Chứng thư số (USB ký số)' })],
          [`the button of ${cfg.citizen}`, page.getByRole('button', { name: `Đăng nhập với tư cách ${cfg.citizen}` })],
        ],
        join(cfg.screenshots, 'mobile-chooser.png'),
      );
    });

    // 3. Signed in: the assertion's unit and role on the portal's page.
    await step('portal-signed-in', async () => {
      // With the keyboard only: Tab through every sign-in button in order, Enter on the citizen's.
      await see(page.getByRole('heading', { name: 'Tài khoản trình diễn' }), 'the demo accounts');
      const buttons = (await page.getByRole('main').getByRole('button').allTextContents()).map((t) => t.replace(/\s+/g, ' ').trim());
      const loaded = page.waitForURL(portalHome, { timeout: STEP_TIMEOUT_MS }).then(() => true, () => false);
      await tabToButtons(page, "the hub's connector chooser", buttons, `Đăng nhập với tư cách ${cfg.citizen}`);
      if (!(await loaded)) fail(`Enter on the citizen's button led to ${page.url()}, not back to the portal`);
      await page.waitForLoadState('load');
      await see(page.getByRole('heading', { level: 1, name: new RegExp(literal(cfg.citizen).source) }), 'the person greeted');
      await hasText(page.getByRole('main'), [cfg.unit, cfg.role, '000.00.18.G12'], 'unit and role from the assertion');
      await see(page.getByRole('button', { name: 'Đăng xuất' }), "the portal's sign-out");
      await checkAccessibility(page, 'the ministry portal, signed in');
    });

    // 4. The gateway: signed in at once, no second sign-in at the hub.
    await step('gateway-single-sign-on', async () => {
      const before = hubLoginPages.length;
      await page.goto(cfg.gateway, { waitUntil: 'load' });
      await clickTo(page, signInControl(), gatewayHome, 'the gateway sign-in');
      await hasText(page.getByRole('main'), [cfg.citizen, cfg.role], 'the ID token claims on the gateway');
      if (hubLoginPages.length !== before) fail(`the hub asked to sign in again: ${hubLoginPages.slice(before).join(', ')}`);
      if (!page.url().startsWith(cfg.gateway)) fail(`ended at ${page.url()}, not at the gateway`);
      await checkAccessibility(page, 'the provincial gateway, signed in');
    });

    // 5. "Đăng xuất khỏi tất cả" at the hub: the portal and the gateway are signed out too.
    await step('signed-out-everywhere', async () => {
      await page.goto(`${cfg.hub}/saml/logout`, { waitUntil: 'load' });
      await see(page.getByRole('heading', { level: 1, name: 'Đăng xuất' }), 'the sign-out page');
      const everywhere = page.getByRole('button', { name: 'Đăng xuất khỏi tất cả' });
      await see(everywhere, '"Đăng xuất khỏi tất cả"');
      await checkAccessibility(page, "the hub's sign-out page");
      await everywhere.click();
      // The hub signs the person out of each portal in turn, then says so.
      await see(page.getByRole('heading', { level: 1, name: 'Đã đăng xuất' }), 'the signed-out page');
      await hasText(page.getByRole('main'), ['Bạn đã đăng xuất khỏi nền tảng'], 'the signed-out page');
      await notThere(page.getByText('chưa xác nhận việc đăng xuất'), 'a portal that did not confirm');
      await checkAccessibility(page, "the hub's signed-out page");
      await page.goto(cfg.portal, { waitUntil: 'load' });
      await see(page.getByRole('button', { name: 'Đăng nhập' }), 'the portal signed out');
      await notThere(page.getByRole('button', { name: 'Đăng xuất' }), "the portal's sign-out button");
      await page.goto(cfg.gateway, { waitUntil: 'load' });
      await see(signInControl(), 'the gateway signed out (back-channel logout)');
    });

    // 6. A member not yet activated: the hub refuses with a page saying why.
    await step('refused-not-activated', async () => {
      await page.goto(cfg.portal, { waitUntil: 'load' });
      await clickTo(page, page.getByRole('button', { name: 'Đăng nhập' }), hubLogin, 'to the hub');
      const refused = page.waitForResponse((r) => r.request().method() === 'POST' && r.status() === 403);
      await page.getByRole('button', { name: `Đăng nhập với tư cách ${cfg.inactive}` }).click();
      await refused;
      await page.waitForLoadState('load');
      await hasText(page.getByRole('main'), ['chưa được kích hoạt'], 'the refusal page');
      await checkAccessibility(page, 'the 403 page (not activated)');
    });

    // 7. A revoked certificate on a USB token: refused with a page.
    await step('refused-revoked-certificate', async () => {
      page = await freshPage();
      await page.goto(cfg.gateway, { waitUntil: 'load' });
      await clickTo(page, signInControl(), hubLogin, 'to the hub');
      await clickTo(page, page.getByRole('button', { name: 'Chứng thư số (USB ký số)' }), /\/login\//, 'the USB token');
      await see(page.getByRole('heading', { level: 1, name: 'Đăng nhập bằng chứng thư số' }), 'the certificate page');
      await checkAccessibility(page, 'the certificate (USB token) page');
      const request = JSON.parse(await page.locator('textarea[data-sign-request]').inputValue());
      if (!request.challenge) fail(`no challenge in the sign request: ${JSON.stringify(request)}`);
      const answer = await fetch(cfg.signer, { method: 'POST', body: request.challenge });
      if (!answer.ok) fail(`the token signer answered ${answer.status}`);
      await page.getByRole('textbox', { name: 'Kết quả ký' }).fill(await answer.text());
      const refused = page.waitForResponse((r) => r.request().method() === 'POST' && r.status() >= 400);
      await page.getByRole('button', { name: 'Đăng nhập', exact: true }).click();
      const r = await refused;
      await page.waitForLoadState('load');
      if (r.status() !== 400) fail(`the revoked certificate answered ${r.status()}, not 400`);
      // The reason in Vietnamese (the audit log keeps the machine-readable one).
      await hasText(page.getByRole('main'), ['Chi tiết:', 'Chứng thư số đã bị thu hồi'], 'the reason on the refusal page');
      await notThere(page.getByText('revoked'), 'the English reason on the Vietnamese page');
      await checkAccessibility(page, 'the 400 page (revoked certificate)');
      await checkPhone(
        page,
        'the 400 page (revoked certificate)',
        [
          ['the reason', page.getByText('Chứng thư số đã bị thu hồi')],
          ['the reference', page.getByRole('main').getByText('Mã tham chiếu')],
          ['the way back', page.getByRole('main').getByRole('link', { name: 'Về trang chủ' })],
        ],
        join(cfg.screenshots, 'mobile-error-400.png'),
      );
    });

    // 8. The province admin signs in to the console, through the hub.
    const row = (name) => page.getByRole('row').filter({ has: page.getByRole('rowheader', { name, exact: true }) });
    const membersUrl = new RegExp(`^${literal(cfg.hub).source}/admin/rp/[^/]+/members(\\?.*)?$`);
    await step('console-members', async () => {
      page = await freshPage();
      await page.goto(`${cfg.hub}/admin`, { waitUntil: 'load' });
      await signInAs(cfg.admin, membersUrl, 'sign in to the console as the province admin');
      await see(page.getByRole('heading', { level: 1, name: 'Quản lý người dùng' }), 'the list heading');
      await hasText(row(cfg.to_activate.name), [cfg.to_activate.name, 'Chưa kích hoạt'], 'the member waiting');
      await notThere(page.getByRole('rowheader', { name: cfg.outside.name, exact: true }), `${cfg.outside.name} (another province)`);
      await checkAccessibility(page, 'the console list');
    });

    // 9. "Kích hoạt".
    await step('console-activated', async () => {
      await clickTo(page, row(cfg.to_activate.name).getByRole('button', { name: `Kích hoạt: ${cfg.to_activate.name}` }), membersUrl, '"Kích hoạt"');
      await hasText(page.getByRole('status').first(), ['Đã kích hoạt người dùng.'], 'the confirmation');
      const text = await hasText(row(cfg.to_activate.name), ['Đã kích hoạt'], 'the activated member');
      if (text.includes('Chưa kích hoạt')) fail(`still not activated: ${text}`);
    });

    // 10. Acting on a member in another province with this session's own form token: 403.
    await step('console-refused-out-of-scope', async () => {
      const rp = encodeURIComponent(cfg.gateway_rp);
      const action = `/admin/rp/${rp}/members/${encodeURIComponent(cfg.outside.membership)}/activate`;
      const r = await postWithPageToken(page, action);
      if (r.status() !== 403) fail(`the out-of-scope activation answered ${r.status()}, not 403`);
      await see(page.getByRole('heading', { level: 1, name: 'Không được phép thực hiện' }), 'the refusal heading');
    });

    // 11. The gateway in English.
    await step('gateway-english', async () => {
      await page.goto(`${cfg.gateway}/?lang=en`, { waitUntil: 'load' });
      await see(signInControl('Sign in'), 'the English sign-in');
      const lang = await page.locator('html').getAttribute('lang');
      if (lang !== 'en') fail(`<html lang="${lang}"> in English`);
      await checkAccessibility(page, 'the provincial gateway in English');
    });

    // Only the expected refusals: not activated (403), revoked (400), out of scope (403).
    const expected = [/^403 POST .*\/login\/[^/]+\/demo$/, /^400 POST .*\/login\/[^/]+\/usb/, /^403 POST .*\/members\/[^/]+\/activate$/];
    const unexpected = errors.filter((e) => !expected.some((re) => re.test(e)));
    if (unexpected.length) {
      current = 'answers';
      fail(`unexpected error answers: ${unexpected.join('; ')}`);
    }
    console.log(JSON.stringify({ steps }));
    console.log(`e2e: ${steps.length} passed, 0 failed`);
    await browser.close();
    return 0;
  } catch (e) {
    return reportFailure(e, { page, screenshots: cfg.screenshots, current, steps, errors, browser });
  }
}

exitWith(main);
