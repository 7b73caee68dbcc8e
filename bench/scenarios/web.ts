/**
 * web: the web UI in headless Chromium (playwright-core, /usr/bin/chromium) against the platform as
 * `npm start` runs it. (a) the JavaScript the dashboard's first load fetches, gzip-compressed (-9; the
 * platform sends it as is, a reverse proxy compresses it); (b) time from navigation to the
 * dashboard's first meaningful render (the recent-pipelines card filled from the API) and first
 * contentful paint; (c) frame time p95 (requestAnimationFrame deltas, Chromium's performance clock)
 * while scrolling a 100,000-line pipeline log in the virtualised log view, against the same loop on an
 * empty scroller in the same browser (the frame cadence the machine gives at that moment). Absolute goals.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import type { BenchContext, ComparisonResult, Figure, Scenario } from '../run.js';
import { childEnv, json, loginToken, platformServeCommand, repoRoot } from '../run.js';

const ADMIN_PASSWORD = 'bench-admin-password';
const LINES = 100_000;

function git(cwd: string, args: string[]): void {
  const r = spawnSync(
    'git',
    [
      '-c',
      'user.name=Bench',
      '-c',
      'user.email=bench@example.test',
      '-c',
      'init.defaultBranch=main',
      ...args,
    ],
    { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd, GIT_TERMINAL_PROMPT: '0' } },
  );
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
}

/** Pixels scrolled per animation frame: a fast wheel or a fling (about 13 lines a frame). */
const STEP_PX = 240;
const FRAMES = 600;

interface Scrolled {
  deltas: number[];
  rendered: number;
  top: number;
}

/**
 * In-page code (a string: evaluated over the DevTools protocol, which the page's CSP allows, and
 * this file's types know no DOM): scrolls the element STEP_PX per frame for FRAMES frames and
 * answers the requestAnimationFrame deltas (Chromium's performance clock).
 */
function scrollLoop(selector: string): string {
  return `(async () => {
    const el = document.querySelector(${JSON.stringify(selector)});
    el.scrollTop = 0;
    const deltas = [];
    await new Promise((resolve) => requestAnimationFrame(resolve));
    let last = performance.now();
    await new Promise((resolve) => {
      let n = 0;
      const tick = (now) => {
        deltas.push(now - last);
        last = now;
        el.scrollTop += ${STEP_PX};
        if (++n < ${FRAMES}) requestAnimationFrame(tick);
        else resolve();
      };
      requestAnimationFrame(tick);
    });
    return { deltas: deltas.slice(5), rendered: el.querySelectorAll('.log-line').length, top: el.scrollTop };
  })()`;
}

function p95(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] ?? 0;
}

export const web: Scenario = {
  name: 'web',
  description:
    'web UI in Chromium: dashboard JS (gzip), first meaningful render, frame p95 scrolling a 100k-line log',
  async run(ctx: BenchContext): Promise<ComparisonResult> {
    const [command, args] = await platformServeCommand((m) => ctx.progress(m));
    ctx.progress('building the web UI (npm run build:web)');
    const build = spawnSync('npm', ['run', '--silent', 'build:web'], { cwd: repoRoot, stdio: 'inherit' });
    if (build.status !== 0) throw new Error('npm run build:web failed');

    const dir = ctx.tempDir('platform-bench-web-');
    const port = await ctx.freePort();
    const base = `http://127.0.0.1:${port}`;
    const server = ctx.spawnServer(command, args, {
      cwd: repoRoot,
      env: childEnv({
        PLATFORM_DATA_DIR: path.join(dir, 'data'),
        PLATFORM_HOST: '127.0.0.1',
        PLATFORM_PORT: String(port),
        PLATFORM_PUBLIC_URL: base,
        PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
        PLATFORM_LOG_LEVEL: 'warn',
      }),
    });
    await server.waitReady(`${base}/readyz`, 120_000);

    // A project whose pipeline prints 100,000 lines, finished before the browser opens it.
    const token = await loginToken(base, 'admin', ADMIN_PASSWORD, 'bench-web');
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    await json(
      await fetch(`${base}/api/projects`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ name: 'weblog' }),
      }),
      'create project',
    );
    const work = path.join(dir, 'repo');
    mkdirSync(work);
    writeFileSync(
      path.join(work, '.platform.yaml'),
      `pipeline:\n  steps:\n    - name: long\n      commands: ["seq -f 'log line %g of the long step' 1 ${LINES}"]\n`,
    );
    git(work, ['init', '-q']);
    git(work, ['add', '.']);
    git(work, ['commit', '-q', '-m', 'long log']);
    const remote = new URL('/admin/weblog.git', base);
    remote.username = 'admin';
    remote.password = ADMIN_PASSWORD;
    git(work, ['push', '-q', remote.toString(), 'HEAD:refs/heads/main']);
    ctx.progress(`waiting for the ${LINES.toLocaleString()}-line pipeline`);
    const deadline = Date.now() + 180_000;
    let number = 0;
    for (;;) {
      const list = await json<{ items: { number: number; status: string }[] }>(
        await fetch(`${base}/api/projects/admin/weblog/pipelines`, { headers: auth }),
        'pipelines',
      );
      const p = list.items[0];
      if (p && ['success', 'failed', 'error', 'cancelled'].includes(p.status)) {
        if (p.status !== 'success') throw new Error(`the log pipeline ended ${p.status}`);
        number = p.number;
        break;
      }
      if (Date.now() > deadline) throw new Error('the log pipeline did not finish in 180 s');
      await new Promise((r) => setTimeout(r, 250));
    }

    const browser = await chromium.launch({
      executablePath: process.env.PLATFORM_CHROMIUM ?? '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
    });
    const notes: string[] = [];
    try {
      // (a) and (b): a cold context (no cache), signed in, loading the dashboard.
      const context = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 900 } });
      const login = await context.request.post('/api/auth/login', {
        data: { name: 'admin', password: ADMIN_PASSWORD },
      });
      if (!login.ok()) throw new Error(`browser login: HTTP ${login.status()}`);
      const page = await context.newPage();
      const scripts: Promise<{ url: string; raw: number; gzip: number }>[] = [];
      page.on('response', (res) => {
        if (res.request().resourceType() === 'script')
          scripts.push(
            res
              .body()
              .then((b) => ({ url: res.url(), raw: b.length, gzip: gzipSync(b, { level: 9 }).length })),
          );
      });
      await page.goto('/');
      // Strings: they run in the page (this file's types know no DOM).
      // A function, not a string: a string would be eval'd in the page, which its CSP forbids.
      await page.waitForFunction(
        () =>
          !!(
            globalThis as unknown as { document: { querySelector(s: string): unknown } }
          ).document.querySelector('[aria-labelledby="d-pipes"] .list, [aria-labelledby="d-pipes"] .empty'),
        undefined,
        { timeout: 60_000, polling: 'raf' },
      );
      const rendered = (await page.evaluate('performance.now()')) as number;
      const fcp = (await page.evaluate(
        `performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN`,
      )) as number;
      const js = await Promise.all(scripts);
      const gzipKb = js.reduce((s, j) => s + j.gzip, 0) / 1024;
      const rawKb = js.reduce((s, j) => s + j.raw, 0) / 1024;
      notes.push(
        `dashboard scripts: ${js.map((j) => `${new URL(j.url).pathname} ${(j.raw / 1024).toFixed(1)} KB raw`).join(', ')}`,
      );
      notes.push(`first contentful paint ${fcp.toFixed(0)} ms`);

      // (c): the finished log loaded into the virtualised view, then scrolled frame by frame.
      await page.goto(`/projects/admin/weblog/pipelines/${number}`);
      await page.getByTestId('log-state').filter({ hasText: 'Log complete.' }).waitFor({ timeout: 120_000 });
      const shown = Number(
        ((await page.locator('.log-tools .muted').textContent()) ?? '').replace(/\D/g, ''),
      );
      if (shown < LINES) throw new Error(`the log view shows ${shown} lines, expected at least ${LINES}`);
      notes.push(`log view: ${shown.toLocaleString()} lines (the step's output and its echoed command)`);
      const frames = (await page.evaluate(scrollLoop('[data-testid="log"]'))) as Scrolled;
      // The reference: the same loop in the same browser, scrolling an element with nothing in it —
      // the frame cadence this machine gives right now (a loaded machine stretches both alike).
      const blank = await context.newPage();
      await blank.setContent(
        '<div id="blank" style="height:540px;overflow:auto"><div style="height:1800000px"></div></div>',
      );
      const floor = (await blank.evaluate(scrollLoop('#blank'))) as Scrolled;
      await blank.close();
      notes.push(
        `scrolled ${FRAMES} frames to ${Math.round(frames.top).toLocaleString()} px; ${frames.rendered} line elements in the DOM at the end; load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} CPUs`,
      );
      const value = (name: string, unit: string, v: number, goal: number, detail?: string): Figure => ({
        name,
        unit,
        reference: null,
        platform: { label: 'platform web UI', value: v, ...(detail ? { detail } : {}) },
        ratio: null,
        goal: { on: 'value', op: '<=', value: goal },
        met: v <= goal,
      });
      const figures: Figure[] = [
        value(
          'JS on the dashboard first load (gzip -9)',
          'KB',
          gzipKb,
          150,
          `${rawKb.toFixed(1)} KB uncompressed`,
        ),
        value('dashboard first meaningful render (navigation → pipelines card filled)', 'ms', rendered, 2000),
        {
          name: `frame time p95 scrolling a ${LINES.toLocaleString()}-line log (${STEP_PX} px per frame)`,
          unit: 'ms',
          reference: { label: 'same loop, empty scroller', value: p95(floor.deltas) },
          platform: { label: 'platform log view', value: p95(frames.deltas) },
          ratio: p95(frames.deltas) / p95(floor.deltas),
          goal: { on: 'value', op: '<=', value: 32 },
          met: p95(frames.deltas) <= 32,
        },
      ];
      return { description: this.description, figures, met: figures.every((f) => f.met), notes };
    } finally {
      await browser.close();
    }
  },
};
