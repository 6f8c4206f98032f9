// End-to-end test of fedhub's admin console (/admin) in headless Chromium.
//
// A person signs in through the hub (the connector chooser, then a demo person)
// and walks the seed's workflow on the "Quản lý người dùng" screens: search the
// directory by CCCD ("Thêm mới"), "Lưu vào hệ thống", "Kích hoạt", "Thay đổi
// đơn vị" (a unit picked in the tree), "Gán quyền" ("Lưu lại"); then an action
// on a member outside the admin's agency subtree is refused with the 403 page
// and shows up as denied in the audit log; last, the list in English.
//
// Elements are found by role and accessible name (getByRole) so that the test
// also checks the pages' labels. A full-page screenshot is taken after each
// step; on a failure, one more of the page as it was, and the exit code is 1.
//
//   dir="$(tests/e2e/setup-node | tail -n 1)"
//   NODE_PATH="$dir/node_modules" node tests/e2e/console.mjs '<json>'
//
// The JSON argument (written by tests/it/console_browser.rs, which also starts
// the hub and checks the database afterwards):
//   base_url      the hub, e.g. http://127.0.0.1:41234
//   screenshots   the folder for the PNG files (created if missing)
//   chromium      optional, default $FEDHUB_CHROMIUM or /usr/bin/chromium
//   rp_id, rp_name  the relying party whose users the admin manages
//   admin         { name }                       the demo person who signs in
//   person        { name, national_id, phone }   found in the directory and added
//   first_unit    { code, name }                 the unit picked when adding
//   new_unit      { code, name, parent_name }    picked in the tree (a child of parent_name)
//   role          a built-in role to assign
//   outside       { id, name }                   a member in another province
//
// Output: one line per step on stdout, then "e2e: N passed, 0 failed".
// Failures: "e2e: FAILED at step ...: <reason>" on stderr, exit 1.
//
// playwright-core is loaded from NODE_PATH with createRequire (ESM `import`
// statements ignore NODE_PATH). It never downloads a browser: Debian's
// Chromium is used (apt-get install -y chromium; scripts/ensure-deps does it).

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
  if (!raw) {
    fail("usage: node console.mjs '<json: base_url, screenshots, admin, person, ...>'");
  }
  let cfg;
  try {
    cfg = JSON.parse(raw);
  } catch (e) {
    fail(`the argument is not JSON: ${e.message}`);
  }
  for (const key of ['base_url', 'screenshots', 'rp_id', 'rp_name', 'admin', 'person', 'first_unit', 'new_unit', 'role', 'outside']) {
    if (cfg[key] === undefined) fail(`the JSON argument lacks "${key}"`);
  }
  cfg.base_url = cfg.base_url.replace(/\/+$/, '');
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

  const base = cfg.base_url;
  const rp = encodeURIComponent(cfg.rp_id);
  const membersUrl = new RegExp(`^${literal(base).source}/admin/rp/[^/]+/members(\\?.*)?$`);
  const steps = [];
  let page;
  let browser;
  let shot = 0;
  let current = 'launch';
  // Every answer of 400 and above, to check none but the refusals happened.
  const errors = [];

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

  try {
    browser = await launchChromium(chromium, cfg.chromium);
    const context = await browser.newContext({
      locale: 'vi-VN',
      viewport: { width: 1280, height: 900 },
    });
    page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on('response', (r) => {
      if (r.status() >= 400) errors.push(`${r.status()} ${r.request().method()} ${r.url()}`);
    });
    page.on('pageerror', (e) => errors.push(`script error: ${e.message}`));

    const admin = cfg.admin;
    const person = cfg.person;
    const nav = () => page.getByRole('navigation', { name: 'Chức năng quản trị' });
    const row = (name) =>
      page.getByRole('row').filter({ has: page.getByRole('rowheader', { name, exact: true }) });

    // 1. /admin without a session: the hub's own sign-in (the connector chooser).
    await step('sign-in-chooser', async () => {
      const resp = await page.goto(`${base}/admin`, { waitUntil: 'load' });
      if (!resp || resp.status() !== 200) fail(`GET /admin ended with ${resp && resp.status()}`);
      if (!/\/login\/[^/]+$/.test(new URL(page.url()).pathname)) {
        fail(`/admin did not lead to the sign-in page but to ${page.url()}`);
      }
      await see(page.getByRole('heading', { level: 1, name: 'Đăng nhập' }), 'the sign-in heading');
      await hasText(page.getByRole('main'), ['Đăng nhập để sử dụng', 'Quản trị fedhub'], 'the sign-in page');
      await see(page.getByRole('heading', { name: 'Tài khoản trình diễn' }), 'the demo connector');
      await checkAccessibility(page, 'the connector chooser');
      await checkPhone(
        page,
        'the connector chooser',
        [
          ['the sign-in heading', page.getByRole('heading', { level: 1, name: 'Đăng nhập' })],
          [`the button of ${cfg.admin.name}`, page.getByRole('button', { name: `Đăng nhập với tư cách ${cfg.admin.name}` })],
          ['the language switch', page.getByRole('link', { name: 'English' })],
        ],
        join(cfg.screenshots, 'mobile-chooser.png'),
      );
    });

    // 2. One click on the demo person: back at /admin, which shows the relying party's users.
    await step('members-list', async () => {
      // With the keyboard only: Tab through the sign-in buttons in order, Enter on the admin's.
      const buttons = (await page.getByRole('main').getByRole('button').allTextContents()).map((t) => t.replace(/\s+/g, ' ').trim());
      const loaded = page.waitForEvent('load', { timeout: STEP_TIMEOUT_MS }).then(() => true, () => false);
      await tabToButtons(page, 'the connector chooser', buttons, `Đăng nhập với tư cách ${admin.name}`);
      if (!(await loaded) || !membersUrl.test(page.url())) fail(`Enter on the admin's button led to ${page.url()}`);
      await see(page.getByRole('heading', { level: 1, name: 'Quản lý người dùng' }), 'the list heading');
      const title = await page.title();
      if (!title.startsWith('Quản lý người dùng')) fail(`the list's title is ${JSON.stringify(title)}`);
      await hasText(page.getByRole('main'), ['Quản trị hệ thống', `Đang đăng nhập: ${admin.name}`], 'who is signed in');
      await hasText(page.getByRole('main'), [`Hệ thống: ${cfg.rp_name}`], 'the relying party administered');
      await see(page.getByRole('button', { name: 'Đăng xuất' }), 'the sign-out button');
      const here = nav().getByRole('link', { name: 'Quản lý người dùng' });
      await see(here, 'the navigation to the list');
      if ((await here.getAttribute('aria-current')) !== 'page') fail('the navigation does not mark the list as current');
      await see(page.getByRole('search', { name: 'Bộ lọc' }), 'the filters');
      await see(page.getByRole('combobox', { name: 'Trạng thái' }), 'the status filter');
      await see(page.getByRole('combobox', { name: 'Đơn vị' }), 'the unit filter');
      await notThere(page.getByRole('rowheader', { name: person.name }), `${person.name} before being added`);
      await notThere(page.getByText(cfg.outside.name), `${cfg.outside.name} (another province) in the list`);
      await checkAccessibility(page, 'the console list');
    });

    // 3. "Thêm mới", then the directory searched by CCCD.
    await step('add-search', async () => {
      // The list offers "Thêm mới" twice: in the navigation and as the list's button.
      const add = page.getByRole('main').getByRole('link', { name: 'Thêm mới', exact: true });
      if ((await add.count()) !== 2) fail(`expected "Thêm mới" in the navigation and above the list, found ${await add.count()}`);
      await clickTo(page, add.nth(1), /\/members\/new$/, '"Thêm mới"');
      await see(page.getByRole('heading', { level: 1, name: 'Thêm mới người dùng' }), 'the add heading');
      const search = page.getByRole('search', { name: 'Tìm trong danh bạ' });
      await search.getByRole('searchbox', { name: 'Tìm trong danh bạ' }).fill(person.national_id);
      await clickTo(page, search.getByRole('button', { name: 'Tìm kiếm' }), /\/members\/new\?q=/, 'search the directory');
      await hasText(page.getByRole('status'), ['Tìm thấy 1 kết quả'], 'the result count');
      const results = page.getByRole('table', { name: 'Kết quả tìm kiếm trong danh bạ' });
      await see(results, 'the results table');
      await hasText(row(person.name), [person.name, 'Công dân', person.national_id, person.phone], 'the person found');      await checkAccessibility(page, 'the directory search (a console form)');
    });

    // 4. "Lưu vào hệ thống" in a unit: back in the list, "Chưa kích hoạt".
    await step('added', async () => {
      const found = row(person.name);
      const unit = found.getByRole('combobox', { name: 'Đơn vị' });
      await see(unit, 'the unit of the new member');
      await unit.selectOption(cfg.first_unit.code);
      await clickTo(page, found.getByRole('button', { name: `Lưu vào hệ thống: ${person.name}` }), membersUrl, '"Lưu vào hệ thống"');
      await hasText(page.getByRole('status').first(), ['Đã lưu vào hệ thống'], 'the confirmation');
      await hasText(row(person.name), [person.name, person.national_id, cfg.first_unit.name, 'Chưa kích hoạt'], 'the new member in the list');
    });

    // 5. "Kích hoạt".
    await step('activated', async () => {
      await clickTo(page, row(person.name).getByRole('button', { name: `Kích hoạt: ${person.name}` }), membersUrl, '"Kích hoạt"');
      await hasText(page.getByRole('status').first(), ['Đã kích hoạt người dùng.'], 'the confirmation');
      const text = await hasText(row(person.name), ['Đã kích hoạt'], 'the activated member');
      if (text.includes('Chưa kích hoạt')) fail(`still not activated: ${text}`);
      await see(row(person.name).getByRole('button', { name: `Khóa: ${person.name}` }), '"Khóa" instead of "Kích hoạt"');
    });

    // 6. "Thay đổi đơn vị": a unit picked in the tree, under a collapsed parent.
    await step('unit-picker', async () => {
      await clickTo(page, row(person.name).getByRole('link', { name: `Thay đổi đơn vị: ${person.name}` }), /\/unit$/, '"Thay đổi đơn vị"');
      await see(page.getByRole('heading', { level: 1, name: 'Thay đổi đơn vị' }), 'the unit heading');
      const tree = page.getByRole('group', { name: 'Chọn đơn vị mới' });
      await see(tree, 'the unit tree');
      const now = tree.getByRole('radio', { name: cfg.first_unit.name });
      if (!(await now.isChecked())) fail(`the current unit ${cfg.first_unit.name} is not the checked one`);
      const target = tree.getByRole('radio', { name: cfg.new_unit.name });
      if (await target.isVisible()) fail(`${cfg.new_unit.name} is shown before its parent is opened`);
      // The disclosure of the parent's units: "Đơn vị trực thuộc (n)", named after the parent.
      const expander = tree.getByText(
        new RegExp(`^Đơn vị trực thuộc \\(\\d+\\): ${literal(cfg.new_unit.parent_name).source}$`),
      );
      await see(expander, `the subordinate units of ${cfg.new_unit.parent_name}`);
      await expander.click();
      await see(target, `${cfg.new_unit.name} in the tree`);
      await target.check();
      await checkAccessibility(page, 'the unit picker (a console form)');
    });

    await step('unit-changed', async () => {
      await clickTo(page, page.getByRole('button', { name: 'Lưu lại' }), membersUrl, '"Lưu lại" (unit)');
      await hasText(page.getByRole('status').first(), ['Đã thay đổi đơn vị.'], 'the confirmation');
      await hasText(row(person.name), [cfg.new_unit.name, cfg.new_unit.code], 'the member in the new unit');
    });

    // 7. "Gán quyền": one built-in role, "Lưu lại".
    await step('roles-form', async () => {
      await clickTo(page, row(person.name).getByRole('link', { name: `Gán quyền: ${person.name}` }), /\/roles$/, '"Gán quyền"');
      await see(page.getByRole('heading', { level: 1, name: 'Gán quyền' }), 'the roles heading');
      const roles = page.getByRole('group', { name: 'Quyền' });
      const box = roles.getByRole('checkbox', { name: cfg.role, exact: true });
      await see(box, `the role ${cfg.role}`);
      if (await box.isChecked()) fail(`${cfg.role} is checked before being assigned`);
      await box.check();
      await see(page.getByRole('combobox', { name: 'Nhóm người dùng' }), 'the user group field');
      await checkAccessibility(page, 'the roles form (a console form)');
    });

    await step('roles-assigned', async () => {
      await clickTo(page, page.getByRole('button', { name: 'Lưu lại' }), membersUrl, '"Lưu lại" (roles)');
      await hasText(page.getByRole('status').first(), ['Đã lưu quyền và nhóm người dùng.'], 'the confirmation');
      // The list in full: activated, in the new unit, with the role.
      await page.goto(`${base}/admin/rp/${rp}/members`, { waitUntil: 'load' });
      await hasText(row(person.name), ['Đã kích hoạt', cfg.new_unit.name, cfg.role], 'the member after the workflow');
      // On a phone: the page does not scroll sideways, the table does, in its labelled region.
      await checkPhone(
        page,
        'the console list',
        [
          ['"Thêm mới"', page.getByRole('main').getByRole('link', { name: 'Thêm mới', exact: true }).nth(1)],
          ['the search button', page.getByRole('search', { name: 'Bộ lọc' }).getByRole('button', { name: 'Tìm kiếm' })],
          ['the sign-out button', page.getByRole('button', { name: 'Đăng xuất' })],
          ['the table', page.getByRole('region', { name: `Quản lý người dùng · ${cfg.rp_name}` })],
        ],
        join(cfg.screenshots, 'mobile-members.png'),
      );
    });

    // 8. Out of scope: the other province's member is not listed, and acting on them by a
    //    form of the console (this session's CSRF token) is refused with the 403 page.
    await step('refused-out-of-scope', async () => {
      await notThere(page.getByText(cfg.outside.name), `${cfg.outside.name} in the list`);
      const action = `/admin/rp/${rp}/members/${encodeURIComponent(cfg.outside.id)}/activate`;
      const r = await postWithPageToken(page, action);
      if (r.status() !== 403) fail(`the out-of-scope activation answered ${r.status()}, not 403`);
      await see(page.getByRole('heading', { level: 1, name: 'Không được phép thực hiện' }), 'the refusal heading');
      await hasText(
        page.getByRole('main'),
        ['Mã lỗi 403', 'Đơn vị nằm ngoài phạm vi cơ quan bạn quản trị', 'đã được ghi vào nhật ký'],
        'the refusal page',
      );
      // Its unit page is refused as well.
      const unit = await page.goto(`${base}${action.replace(/\/activate$/, '/unit')}`, { waitUntil: 'load' });
      if (unit.status() !== 403) fail(`the other province's unit page answered ${unit.status()}, not 403`);
      await see(page.getByRole('heading', { level: 1, name: 'Không được phép thực hiện' }), 'the refusal of the unit page');
      await checkAccessibility(page, 'the 403 page');
      await checkPhone(
        page,
        'the 403 page',
        [
          ['the refusal heading', page.getByRole('heading', { level: 1, name: 'Không được phép thực hiện' })],
          ['the way back', page.getByRole('main').getByRole('link', { name: 'Về trang chủ' })],
        ],
        join(cfg.screenshots, 'mobile-error-403.png'),
      );
    });

    // 9. The audit log shows the refusal.
    await step('audit-denied', async () => {
      await page.goto(`${base}/admin/rp/${rp}/members`, { waitUntil: 'load' });
      await clickTo(page, nav().getByRole('link', { name: 'Nhật ký hoạt động' }), /\/admin\/audit/, '"Nhật ký hoạt động"');
      await see(page.getByRole('heading', { level: 1, name: 'Nhật ký hoạt động' }), 'the audit heading');
      const filters = page.getByRole('search', { name: 'Bộ lọc' });
      await filters.getByRole('combobox', { name: 'Kết quả' }).selectOption({ label: 'Bị từ chối' });
      await clickTo(page, filters.getByRole('button', { name: 'Tìm kiếm' }), /\/admin\/audit\?/, 'filter the audit log');
      const denied = page
        .getByRole('row')
        .filter({ hasText: 'membership.activate' })
        .filter({ hasText: `membership:${cfg.outside.id}` });
      await hasText(denied, ['Bị từ chối', admin.name], 'the denied activation in the audit log');
      await checkAccessibility(page, 'the audit log');
    });

    // 10. English, once: the language switch of the site header.
    await step('english', async () => {
      await page.goto(`${base}/admin/rp/${rp}/members`, { waitUntil: 'load' });
      await clickTo(page, page.getByRole('link', { name: 'English' }), /[?&]lang=en/, 'the language switch');
      const title = await page.title();
      if (!title.startsWith('User management')) fail(`the English title is ${JSON.stringify(title)}`);
      const lang = await page.locator('html').getAttribute('lang');
      if (lang !== 'en') fail(`<html lang="${lang}"> in English`);
      await see(page.getByRole('heading', { level: 1, name: 'User management' }), 'the English heading');
      await see(page.getByRole('navigation', { name: 'Administration' }), 'the English navigation');
      await hasText(row(person.name), ['Activated', cfg.role], 'the member in English');
      await see(row(person.name).getByRole('link', { name: `Change unit: ${person.name}` }), '"Change unit"');
      await see(row(person.name).getByRole('link', { name: `Assign role: ${person.name}` }), '"Assign role"');
      await see(page.getByRole('link', { name: 'Tiếng Việt' }), 'the switch back to Vietnamese');
      await checkAccessibility(page, 'the console list in English');
    });

    // Nothing failed but the two refusals.
    const unexpected = errors.filter((e) => !/^403 (POST|GET) .*\/members\/[^/]+\/(activate|unit)$/.test(e));
    if (unexpected.length) {
      current = 'answers';
      fail(`unexpected error answers: ${unexpected.join('; ')}`);
    }
    const refusals = errors.length - unexpected.length;
    if (refusals !== 2) {
      current = 'answers';
      fail(`expected the two 403 refusals, saw ${refusals}: ${errors.join('; ')}`);
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
