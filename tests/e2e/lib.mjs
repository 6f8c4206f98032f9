// Shared by fedhub's end-to-end browser tests (console.mjs, tour.mjs): failures with a
// reason, waiting for what a person would see, clicking to the next page, and starting
// Debian's Chromium through playwright-core (found through NODE_PATH; it never downloads a
// browser of its own).

import { appendFileSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export const STEP_TIMEOUT_MS = 15_000;

export class Failure extends Error {}

export function fail(message) {
  throw new Failure(message);
}

/** playwright-core (a CommonJS package), found through NODE_PATH. */
export function loadPlaywright() {
  const require = createRequire(import.meta.url);
  try {
    require.resolve('playwright-core');
  } catch {
    fail(
      'cannot find the npm package playwright-core: run tests/e2e/setup-node and set ' +
        'NODE_PATH to <the directory it prints>/node_modules',
    );
  }
  return require('playwright-core');
}

/** Regular expression matching `s` literally. */
export function literal(s) {
  return new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}

/** Waits until `locator` is visible; fails naming `what`. */
export async function see(locator, what) {
  try {
    await locator.first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  } catch {
    fail(`not shown: ${what}`);
  }
  return locator;
}

/** Fails if `locator` matches anything. */
export async function notThere(locator, what) {
  const n = await locator.count();
  if (n > 0) fail(`shown but should not be: ${what} (${n} match${n > 1 ? 'es' : ''})`);
}

/** Waits until the text of (the first match of) `locator` contains every one of `parts`. */
export async function hasText(locator, parts, what) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let text = '';
  for (;;) {
    // textContent, not innerText: CSS may show a text in capitals.
    text = ((await locator.first().textContent().catch(() => '')) || '').replace(/\s+/g, ' ');
    if (parts.every((p) => text.includes(p))) return text;
    if (Date.now() > deadline) {
      const missing = parts.filter((p) => !text.includes(p));
      fail(`${what}: missing ${JSON.stringify(missing)} in ${JSON.stringify(text.slice(0, 600))}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Clicks and waits for the page the click leads to (a link, or a form and its redirect). */
export async function clickTo(page, locator, urlPattern, what) {
  await see(locator, what);
  const loaded = page.waitForEvent('load', { timeout: STEP_TIMEOUT_MS }).then(
    () => true,
    () => false,
  );
  await locator.first().click();
  const arrived = await loaded;
  if (!arrived || !urlPattern.test(page.url())) {
    const heading = await page
      .getByRole('heading', { level: 1 })
      .first()
      .textContent({ timeout: 1000 })
      .catch(() => null);
    fail(
      `${what}: ${arrived ? 'arrived at' : 'no new page loaded; still at'} ${page.url()}` +
        `${heading ? ` showing "${heading.trim()}"` : ''}, not at ${urlPattern}`,
    );
  }
}


/** Chromium, headless, as this machine's closed network needs it. */
export async function launchChromium(chromium, executablePath) {
  return chromium.launch({
    executablePath,
    headless: true,
    // Playwright gives the browser a fresh, empty --user-data-dir of its own and
    // removes it on close. Without the background-networking flags Chromium keeps
    // trying to reach Google's hosts, which a closed network refuses.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 60_000,
  });
}

// ---------------------------------------------------------------------------------------------
// Accessibility (axe-core), small screens and the keyboard.

let axeSource = null;
let reportFile = null;

/**
 * Also writes what the accessibility, phone and keyboard checks found (every axe finding,
 * minor ones included) to `file`, kept with the screenshots.
 */
export function reportTo(file) {
  reportFile = file;
}

/** A line on stdout and in the report file. */
function report(line) {
  console.log(`e2e: ${line}`);
  if (reportFile) appendFileSync(reportFile, `${line}\n`);
}

/** axe-core's browser script (axe.min.js), read once from node_modules (found like playwright-core). */
function axeScript() {
  if (axeSource === null) {
    const require = createRequire(import.meta.url);
    let file;
    try {
      file = require.resolve('axe-core/axe.min.js');
    } catch {
      fail(
        'cannot find the npm package axe-core: run tests/e2e/setup-node and set NODE_PATH to ' +
          '<the directory it prints>/node_modules',
      );
    }
    axeSource = readFileSync(file, 'utf8');
  }
  return axeSource;
}

/** The rules checked: WCAG 2.0, 2.1 and 2.2, levels A and AA. */
export const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];

/** Impacts that fail a step; "minor" and "moderate" findings are printed only. */
const FAILING_IMPACTS = new Set(['serious', 'critical']);

/**
 * Runs axe-core on the page as it is and fails on any violation of impact "serious" or
 * "critical" of the WCAG 2 A/AA rules, naming the rule, its help and the offending elements.
 *
 * The hub's CSP (`default-src 'none'`) forbids inline scripts, so a <script> tag
 * (page.addScriptTag) would be blocked: axe's source is evaluated through the DevTools
 * protocol (page.evaluate of the source string), which CSP does not govern, and the page keeps
 * its real CSP while it is checked. FEDHUB_E2E_AXE=report prints every finding without failing
 * (to see them all at once while fixing pages).
 */
export async function checkAccessibility(page, what) {
  const loaded = await page.evaluate(() => typeof window.axe === 'object').catch(() => false);
  if (!loaded) {
    await page.evaluate(`${axeScript()}\n;void 0`);
  }
  const results = await page.evaluate(
    async (tags) =>
      window.axe.run(document, {
        runOnly: { type: 'tag', values: tags },
      }),
    AXE_TAGS,
  );
  const lines = [];
  let failing = 0;
  for (const v of results.violations) {
    const bad = FAILING_IMPACTS.has(v.impact);
    if (bad) failing += 1;
    const targets = v.nodes
      .slice(0, 5)
      .map((n) => `${n.target.join(' ')}${n.failureSummary ? ` (${n.failureSummary.replace(/\s+/g, ' ').slice(0, 200)})` : ''}`)
      .join('; ');
    lines.push(`[${v.impact}] ${v.id}: ${v.help} (${v.nodes.length} element${v.nodes.length > 1 ? 's' : ''}): ${targets}`);
  }
  for (const l of lines) report(`axe ${what}: ${l}`);
  if (failing && process.env.FEDHUB_E2E_AXE !== 'report') {
    fail(`accessibility (axe-core ${results.testEngine.version}, ${AXE_TAGS.join(' ')}) of ${what}:\n  ${lines.join('\n  ')}`);
  }
  // What axe could not decide (e.g. contrast over an image) is printed for a person to look at.
  for (const r of results.incomplete) {
    report(`axe ${what}: [needs review] ${r.id}: ${r.help}: ${r.nodes.slice(0, 5).map((n) => n.target.join(' ')).join('; ')}`);
  }
  report(
    `axe ${what}: ${failing ? `${failing} serious/critical (report only)` : 'no serious or critical violation'}; ` +
      `${results.passes.length} rules passed (${results.passes.some((r) => r.id === 'color-contrast') ? 'colour contrast included' : 'no text to check contrast of'}) at ${page.url().split('?')[0]}`,
  );
  return results;
}

/** A phone-sized screen (CSS pixels). */
export const PHONE = { width: 390, height: 844 };

/**
 * The page as it is, at phone size: nothing wider than the screen (no sideways scrolling of
 * the page; a table may scroll inside its own labelled container), each of `actions` visible
 * and inside the screen's width. Takes `file` (a full-page screenshot), then restores the
 * viewport.
 */
export async function checkPhone(page, what, actions, file) {
  const before = page.viewportSize();
  await page.setViewportSize(PHONE);
  try {
    const { scrollWidth, innerWidth, widest } = await page.evaluate(() => {
      const root = document.documentElement;
      // The element sticking out furthest on the right, to name it when the page is too wide.
      let widest = null;
      let right = window.innerWidth;
      for (const el of document.body.querySelectorAll('*')) {
        const r = el.getBoundingClientRect();
        if (r.right > right + 0.5 && getComputedStyle(el).position !== 'fixed') {
          let clipped = false;
          for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
            const o = getComputedStyle(p).overflowX;
            if (o === 'auto' || o === 'scroll' || o === 'hidden' || o === 'clip') {
              clipped = true;
              break;
            }
          }
          if (!clipped) {
            right = r.right;
            widest = `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className && typeof el.className === 'string' ? `.${el.className.trim().split(/\s+/).join('.')}` : ''} (right edge ${Math.round(r.right)})`;
          }
        }
      }
      return { scrollWidth: root.scrollWidth, innerWidth: window.innerWidth, widest };
    });
    if (scrollWidth > innerWidth) {
      fail(`${what} at ${PHONE.width}px: the page scrolls sideways (${scrollWidth}px wide)${widest ? `; widest: ${widest}` : ''}`);
    }
    for (const [name, locator] of actions) {
      await see(locator, `${name} on a phone (${what})`);
      const box = await locator.first().boundingBox();
      if (!box || box.width < 1 || box.x < 0 || box.x + box.width > PHONE.width + 0.5) {
        fail(`${what} at ${PHONE.width}px: ${name} is not inside the screen (${JSON.stringify(box)})`);
      }
    }
    // axe again at this size (e.g. a table scrolling in a region the keyboard cannot reach).
    await checkAccessibility(page, `${what} (phone)`);
    await page.screenshot({ path: file, fullPage: true });
    report(`phone ${what}: ok at ${PHONE.width}×${PHONE.height} -> ${file}`);
  } finally {
    if (before) await page.setViewportSize(before);
  }
}

/** WCAG contrast ratio of two CSS colours given as [r, g, b] (0-255). */
function contrast(a, b) {
  const lum = ([r, g, bl]) => {
    const c = [r, g, bl].map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/**
 * Keyboard only: Tab from the top of the page reaches the buttons named `names` in that order
 * (nothing else focusable between them), each showing a focus ring (`:focus-visible`, an
 * outline of at least 2px with 3:1 contrast against what surrounds the button); then Enter on
 * the button named `press` (one of `names`). The caller waits for where Enter leads.
 */
export async function tabToButtons(page, what, names, press) {
  await page.evaluate(() => {
    if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
    window.scrollTo(0, 0);
  });
  // Focus where a keyboard user starts: the top of the document.
  await page.keyboard.press('Tab');
  const focused = () =>
    page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return null;
      const name = (el.getAttribute('aria-label') || el.textContent || '').replace(/\s+/g, ' ').trim();
      const cs = getComputedStyle(el);
      // The colour around the button: the first ancestor with an opaque background.
      let bg = [255, 255, 255];
      for (let p = el.parentElement; p; p = p.parentElement) {
        const m = getComputedStyle(p).backgroundColor.match(/rgba?\(([^)]+)\)/);
        if (m) {
          const v = m[1].split(',').map((x) => parseFloat(x));
          if (v.length < 4 || v[3] > 0.99) {
            bg = v.slice(0, 3);
            break;
          }
        }
      }
      const oc = cs.outlineColor.match(/rgba?\(([^)]+)\)/);
      return {
        tag: el.tagName.toLowerCase(),
        name,
        focusVisible: el.matches(':focus-visible'),
        outlineStyle: cs.outlineStyle,
        outlineWidth: parseFloat(cs.outlineWidth) || 0,
        outline: oc ? oc[1].split(',').slice(0, 3).map((x) => parseFloat(x)) : null,
        around: bg,
      };
    });
  const order = [];
  let first = -1;
  for (let i = 0; i < 40; i += 1) {
    const f = await focused();
    if (f) order.push(`${f.tag} "${f.name.slice(0, 60)}"`);
    if (f && f.tag === 'button' && f.name === names[0]) {
      first = i;
      break;
    }
    await page.keyboard.press('Tab');
  }
  if (first < 0) fail(`${what}: Tab never reached "${names[0]}"; focus went through ${order.join(' → ')}`);
  for (let i = 0; i < names.length; i += 1) {
    if (i > 0) await page.keyboard.press('Tab');
    const f = await focused();
    if (!f || f.tag !== 'button' || f.name !== names[i]) {
      fail(`${what}: after "${names[i - 1]}", Tab went to ${f ? `${f.tag} "${f.name}"` : 'nothing'}, not "${names[i]}"`);
    }
    if (!f.focusVisible || f.outlineStyle === 'none' || f.outlineWidth < 2 || !f.outline) {
      fail(`${what}: "${names[i]}" has no visible focus ring (${JSON.stringify(f)})`);
    }
    const ratio = contrast(f.outline, f.around);
    if (ratio < 3) fail(`${what}: the focus ring of "${names[i]}" has contrast ${ratio.toFixed(2)}:1 (< 3:1)`);
  }
  report(`keyboard ${what}: ${names.length} buttons in order after ${first} Tab(s), focus ring visible`);
  // Back to the button to press: Shift+Tab from the last one.
  const at = names.indexOf(press);
  if (at < 0) fail(`${what}: "${press}" is not among the buttons`);
  for (let i = names.length - 1; i > at; i -= 1) await page.keyboard.press('Shift+Tab');
  const f = await focused();
  if (!f || f.name !== press) fail(`${what}: Shift+Tab did not come back to "${press}" (${f && f.name})`);
  await page.keyboard.press('Enter');
}

/** Says why a run failed: the step, the reason, the page it was on with its text and a
 *  screenshot, and the error answers seen; returns the exit code (1). */
export async function reportFailure(e, { page, screenshots, current, steps, errors, browser }) {
  const why = e instanceof Failure ? e.message : e.stack || String(e);
  console.error(`e2e: FAILED at step "${current}": ${why}`);
  if (page) {
    console.error(`e2e: the page was ${page.url()}`);
    const text = await page.locator('body').innerText({ timeout: 2000 }).catch(() => '');
    if (text) console.error(`e2e: its text: ${text.replace(/\s+/g, ' ').slice(0, 1500)}`);
    const file = join(screenshots, `failure-${current}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    console.error(`e2e: screenshot of the failure: ${file}`);
  }
  if (errors.length) console.error(`e2e: error answers seen: ${errors.join('; ')}`);
  console.log(`e2e: ${steps.length} passed, 1 failed`);
  if (browser) await browser.close().catch(() => {});
  return 1;
}

/** Runs a script's `main` and exits with the code it returns. */
export function exitWith(main) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      console.error(`e2e: ${e instanceof Failure ? e.message : e.stack || e}`);
      process.exit(1);
    },
  );
}

/** Posts `action` as a form of the page would, with the CSRF token of the page's own forms
 *  (an action the page does not offer, e.g. on a member outside the admin's reach); returns
 *  the answer once the next page has loaded. */
export async function postWithPageToken(page, action) {
  const answer = page.waitForResponse(
    (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === action,
  );
  await page.evaluate((to) => {
    const token = document.querySelector('input[name="csrf"]');
    if (!token) throw new Error('no form with a CSRF token on the page');
    const f = document.createElement('form');
    f.method = 'post';
    f.action = to;
    const t = document.createElement('input');
    t.type = 'hidden';
    t.name = 'csrf';
    t.value = token.value;
    f.append(t);
    document.body.append(f);
    f.submit();
  }, action);
  const r = await answer;
  await page.waitForLoadState('load');
  return r;
}
