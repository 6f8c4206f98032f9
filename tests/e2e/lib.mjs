// Shared by fedhub's end-to-end browser tests (console.mjs, tour.mjs): failures with a
// reason, waiting for what a person would see, clicking to the next page, and starting
// Debian's Chromium through playwright-core (found through NODE_PATH; it never downloads a
// browser of its own).

import { createRequire } from 'node:module';

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
