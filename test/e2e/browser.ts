/**
 * What the browser tests share: a real `platform serve` (embedded stores) in a child process, headless
 * Debian Chromium through playwright-core, screenshots under test-artifacts/screenshots, axe-core
 * injected into every page checked, and a record of CSP violations (there must be none).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { freePort, makeTempDir, repoRoot, startCli, waitForHttp } from '../helpers/process.js';

export const ADMIN_PASSWORD = 'e2e-admin-password-1';
export const SCREENSHOTS = path.join(repoRoot, 'test-artifacts', 'screenshots');
const CHROMIUM = process.env.PLATFORM_CHROMIUM ?? '/usr/bin/chromium';

export async function startPlatform(extraEnv: Record<string, string> = {}) {
  const dataDir = makeTempDir('platform-e2e-');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = startCli(['serve'], {
    PLATFORM_DATA_DIR: dataDir,
    PLATFORM_PORT: String(port),
    PLATFORM_HOST: '127.0.0.1',
    PLATFORM_PUBLIC_URL: base,
    PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
    PLATFORM_LOG_LEVEL: 'warn',
    PLATFORM_LOGIN_RATE_LIMIT: '1000',
    ...extraEnv,
  });
  await waitForHttp(`${base}/readyz`, server, { timeoutMs: 120_000 });
  return { server, base, dataDir };
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in CI containers: Chromium's own sandbox needs user namespaces it may not get.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
}

export interface Tab {
  page: Page;
  context: BrowserContext;
  /** Content-Security-Policy violations and page errors seen so far. */
  problems: string[];
}

export async function openTab(browser: Browser, base: string): Promise<Tab> {
  const context = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return { page, context, problems };
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/** Runs axe-core on the page as it is now; answers the serious and critical violations. */
export async function axe(page: Page): Promise<AxeViolation[]> {
  // Evaluated through the DevTools protocol, not a <script>: the page's CSP (no inline script) stays on.
  await page.evaluate(axeSource);
  // A string: it runs in the page (this file's types know no DOM).
  const violations = (await page.evaluate(`(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => ({ target: n.target })),
    }));
  })()`)) as AxeViolation[];
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * Waits for the page to settle (no loading state), then checks it with axe-core (0 serious or
 * critical violations) and for CSP violations or page errors since the last check, and keeps a
 * screenshot named `name`.
 */
export async function checkPage(tab: Tab, name: string): Promise<void> {
  const { page } = tab;
  // A function, not a string: a string would be eval'd in the page, which its CSP forbids.
  await page.waitForFunction(() => {
    const d = (
      globalThis as unknown as {
        document: { querySelector(s: string): { textContent: string | null } | null };
      }
    ).document;
    return !d.querySelector('[role="status"]')?.textContent?.includes('Loading…');
  });
  const serious = await axe(page);
  expect(serious, `${name}: axe serious/critical violations\n${JSON.stringify(serious, null, 2)}`).toEqual(
    [],
  );
  expect(tab.problems.splice(0), `${name}: CSP violations or page errors`).toEqual([]);
  await screenshot(page, name);
}

/** Waits for a heading with this name. */
export const heading = (page: Page, text: string | RegExp) =>
  page.getByRole('heading', { name: text }).first().waitFor();

/** Signs in through the login page and waits for the dashboard. */
export async function signIn(page: Page, name: string, password: string): Promise<void> {
  await page.getByLabel('User name').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await heading(page, 'Dashboard');
}
