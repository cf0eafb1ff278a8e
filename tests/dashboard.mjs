// Drives the defai dashboard in headless Chromium (Debian's, through playwright-core; no browser
// download): opens URL/#token=TOKEN, waits for the agent's equity, clicks Kill, accepts the
// confirmation and waits until the page shows the agent halted. Prints one JSON object.
//
//   node tests/dashboard.mjs URL TOKEN AGENT
//
// Env: DEFAI_CHROMIUM (default /usr/bin/chromium), DEFAI_DASHBOARD_TIMEOUT_MS (default 20000),
// DEFAI_DASHBOARD_SCREENSHOT (a PNG path: a full-page screenshot once halted).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, token, agent] = process.argv.slice(2);
if (!url || !token || !agent) {
  console.error('usage: node tests/dashboard.mjs URL TOKEN AGENT');
  process.exit(2);
}
const timeout = Number(process.env.DEFAI_DASHBOARD_TIMEOUT_MS || 20000);
const profile = mkdtempSync(join(tmpdir(), 'defai-chromium-'));
const result = { ok: false, agent, dialogs: [], console_errors: [] };
let browser;
try {
  // A fresh profile (--user-data-dir) per run.
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.DEFAI_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    timeout,
  });
  const page = browser.pages()[0] || await browser.newPage();
  page.setDefaultTimeout(timeout);
  page.on('console', m => { if (m.type() === 'error') result.console_errors.push(m.text()); });
  page.on('pageerror', e => result.console_errors.push(String(e)));
  page.on('dialog', d => { result.dialogs.push({ type: d.type(), message: d.message() }); d.accept(); });

  await page.goto(`${url}/#token=${token}`);
  result.title = await page.title();
  // The token leaves the address bar once the page has it.
  result.url_after_load = page.url();

  const equity = page.locator(`[id="equity-${agent}"]`);
  await page.waitForFunction(
    id => {
      const e = document.getElementById(id);
      return e && e.dataset.equity !== '' && Number.isFinite(Number(e.dataset.equity));
    },
    `equity-${agent}`,
  );
  result.equity = Number(await equity.getAttribute('data-equity'));
  result.equity_text = (await equity.textContent()).trim();
  result.state_before = await page.locator(`[id="state-${agent}"]`).getAttribute('data-state');
  // The curve is drawn once there are marks.
  await page.waitForFunction(
    id => (document.querySelector(`[id="${id}"] polyline`)?.getAttribute('points') || '').length > 0,
    `curve-${agent}`,
  );
  result.curve_points = (await page.locator(`[id="curve-${agent}"] polyline`).getAttribute('points'))
    .trim().split(/\s+/).length;

  await page.locator(`[id="kill-${agent}"]`).click();
  await page.waitForFunction(
    id => document.getElementById(id)?.dataset.state === 'halted',
    `state-${agent}`,
  );
  result.state_after = await page.locator(`[id="state-${agent}"]`).getAttribute('data-state');
  result.reason_after = (await page.locator(`[id="reason-${agent}"]`).textContent()).trim();
  if (process.env.DEFAI_DASHBOARD_SCREENSHOT) {
    await page.screenshot({ path: process.env.DEFAI_DASHBOARD_SCREENSHOT, fullPage: true });
  }
  result.ok = true;
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  if (browser) await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
