import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { authUrl, gitOk, tempDir } from '../helpers/git.js';
import { killAllChildren, removeTempDirs } from '../helpers/process.js';
import { eventually } from '../helpers/wait.js';
import {
  ADMIN_PASSWORD,
  checkPage,
  heading,
  launchBrowser,
  openTab,
  screenshot,
  signIn,
  startPlatform,
  type Tab,
} from './browser.js';
import { apiClient } from './story-helpers.js';

/**
 * The deployments and agent session pages in headless Chromium against a real `platform serve`: a
 * tiny app published twice by a real pipeline and rolled back from the UI (the history names who
 * did what), a session of the fake Claude Code streamed to its end, a chat session sent a message,
 * another stopped; every page checked with axe-core and for CSP violations, each with a screenshot.
 */
const fixtures = path.dirname(fileURLToPath(new URL('../fixtures/fake-claude.mjs', import.meta.url)));
const fakeClaude = path.join(fixtures, 'fake-claude.mjs');

const SERVER_JS = `require('node:http').createServer((req, res) => {
  if (req.url === '/health') { res.writeHead(200); res.end('ok'); return; }
  res.writeHead(200, { 'content-type': 'text/plain' }); res.end(process.env.VERSION);
}).listen(Number(process.env.PORT), '127.0.0.1');
`;
const PIPELINE = `pipeline:
  steps:
    - name: bundle
      commands: ["tar czf app.tgz -C app ."]
      publish: { artifact: app.tgz, environment: staging }
  on: { push: { branches: [main] } }
`;
const MANIFEST = `kind: LocalProcess
name: web
command: node
args: [server.js]
env:
  VERSION: "{{ values.version }}"
health_path: /health
readiness_timeout_seconds: 30
drain_seconds: 1
`;

describe('web UI in Chromium: deployments and agent sessions', () => {
  let base = '';
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let admin: Tab;
  const tmp = tempDir('platform-e2e-deploy-');
  let projectId = '';
  const auth = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;

  const call = (method: string, url: string, body?: unknown) => apiClient(base, auth)(method, url, body);

  const check = checkPage;

  beforeAll(async () => {
    const started = await startPlatform({ PLATFORM_RUNNER_READONLY_PATHS: fixtures });
    base = started.base;
    const settings = await call('PATCH', '/api/agent-settings', {
      claude_command: fakeClaude,
      max_running_per_project: 5,
    });
    expect(settings.status, JSON.stringify(settings.body)).toBe(200);
    const project = await call('POST', '/api/projects', { name: 'shop' });
    expect(project.status, JSON.stringify(project.body)).toBe(201);
    projectId = project.body.id;
    browser = await launchBrowser();
    admin = await openTab(browser, base);
    const { page } = admin;
    await page.goto('/login');
    await signIn(page, 'admin', ADMIN_PASSWORD);
  });

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail' && admin)
      await screenshot(admin.page, `failed-${ctx.task.name.slice(0, 40).replace(/\W+/g, '-')}`).catch(
        () => undefined,
      );
  });

  afterAll(async () => {
    await browser?.close();
    tmp.cleanup();
    await killAllChildren();
    removeTempDirs();
  });

  it('shows the empty states of the deployments and sessions pages', async () => {
    const { page } = admin;
    await page.goto('/projects/admin/shop/deployments');
    await page.getByText('No deployments yet').waitFor();
    await check(admin, 'deployments-empty');
    await page.goto('/projects/admin/shop/sessions');
    await page.getByText('No agent sessions yet').waitFor();
    await check(admin, 'sessions-empty');
    await page.goto('/projects/admin/shop/deployments/nowhere');
    await page.getByRole('alert').first().waitFor();
    await check(admin, 'deployment-not-found');
  });

  it('rolls a deployment back from the UI: the previous version serves again, the history names both actions and who did them', async () => {
    const work = path.join(tmp.dir, 'shop');
    await gitOk(['clone', '-q', authUrl(base, 'admin', ADMIN_PASSWORD, '/admin/shop.git'), work]);
    const release = async (version: string) => {
      const files: Record<string, string> = {
        '.platform.yaml': PIPELINE,
        'app/server.js': SERVER_JS,
        'deploy/app.yaml': MANIFEST,
        'deploy/values.yaml': `version: ${version}\n`,
      };
      for (const [name, content] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(work, name)), { recursive: true });
        writeFileSync(path.join(work, name), content);
      }
      await gitOk(['add', '-A'], { cwd: work });
      await gitOk(['-c', 'user.name=a', '-c', 'user.email=a@x', 'commit', '-q', '-m', version], {
        cwd: work,
      });
      await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work });
      return (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
    };
    const appUrl = `${base}/apps/admin/shop/staging/`;
    const serving = async () => {
      const res = await fetch(appUrl).catch(() => null);
      return res?.status === 200 ? await res.text() : null;
    };
    const deployed = (sha: string) =>
      eventually(
        async () => {
          const d = (await call('GET', `/api/projects/${projectId}/deployments/staging`)).body;
          return (
            d?.commit_sha === sha && d.current_status === 'healthy' && d.observed_generation >= d.generation
          );
        },
        150_000,
        `${sha} healthy`,
      );
    const sha1 = await release('v1');
    await deployed(sha1);
    expect(await serving()).toBe('v1');
    const sha2 = await release('v2');
    await deployed(sha2);
    expect(await serving()).toBe('v2');

    const { page } = admin;
    await page.goto('/projects/admin/shop/deployments');
    await page.getByRole('link', { name: 'staging', exact: true }).waitFor();
    await check(admin, 'deployments-list');
    await page.getByRole('link', { name: 'staging', exact: true }).click();
    await heading(page, /Environment staging/);
    const history = page.getByRole('table', { name: 'Deployment history' });
    await history.getByRole('row').nth(2).waitFor();
    await check(admin, 'deployment-detail');

    await page.getByRole('button', { name: 'Roll back', exact: true }).click();
    await eventually(async () => (await serving()) === 'v1', 150_000, 'v1 to serve again');
    await history
      .getByRole('row', { name: /rollback/ })
      .first()
      .waitFor();
    const row = history.getByRole('row', { name: /rollback/ }).first();
    await expect.poll(() => row.textContent(), { timeout: 60_000 }).toContain('admin');
    await expect.poll(() => row.textContent(), { timeout: 60_000 }).toContain(sha1.slice(0, 10));
    const deployRows = history.getByRole('row', { name: /^deploy/ });
    expect(await deployRows.count()).toBeGreaterThanOrEqual(2);
    await page.getByTestId('deployment-version').getByText(sha1.slice(0, 10)).waitFor();
    await check(admin, 'deployment-rolled-back');

    // Back to v2 by choosing its history entry.
    await history
      .getByRole('row')
      .filter({ has: page.getByRole('cell', { name: 'deploy', exact: true }) })
      .filter({ hasText: sha2.slice(0, 10) })
      .getByRole('button', { name: 'Roll back to this version' })
      .click();
    await eventually(async () => (await serving()) === 'v2', 150_000, 'v2 to serve again');
    await page.getByTestId('deployment-version').getByText(sha2.slice(0, 10)).waitFor();

    await page.goto('/');
    await page.getByRole('link', { name: 'admin/shop · staging' }).waitFor();
    await check(admin, 'dashboard-operations');
  });

  it('starts a session with the fake agent and watches it stream to the end', async () => {
    const { page } = admin;
    await page.goto('/projects/admin/shop/sessions');
    await page.getByLabel('Prompt').fill('[scenario:work] add agent notes');
    await page.getByRole('button', { name: 'Start session' }).click();
    await page.waitForURL(/\/sessions\/[0-9a-f-]{36}$/);
    const timeline = page.getByRole('log', { name: 'Session timeline' });
    await timeline.getByText('Done: the change is committed').waitFor({ timeout: 120_000 });
    await page.getByTestId('session-status').getByText('completed').waitFor({ timeout: 60_000 });
    await timeline.getByText('Thinking', { exact: true }).first().click();
    await timeline.getByText('I will look around').waitFor();
    await timeline.getByText(/^Tool call: Bash: git status/).click();
    await timeline.getByText('Show the branch').waitFor();
    await page.getByText('What it produced').waitFor();
    await page.getByRole('link', { name: 'Session timeline in Observe' }).waitFor();
    expect(await page.getByRole('button', { name: 'Stop session' }).count()).toBe(0);
    await check(admin, 'session-completed');

    // A reload replays the stored events.
    await page.reload();
    await timeline.getByText('Done: the change is committed').waitFor();
    await page.goto('/projects/admin/shop/sessions');
    await page.getByRole('table', { name: 'Agent sessions' }).getByText('completed').first().waitFor();
    await check(admin, 'sessions-list');
  });

  it('sends a message to a running session, and stops another', async () => {
    const { page } = admin;
    await page.goto('/projects/admin/shop/sessions');
    await page.getByLabel('Prompt').fill('[scenario:chat] talk to me');
    await page.getByRole('button', { name: 'Start session' }).click();
    await page.waitForURL(/\/sessions\/[0-9a-f-]{36}$/);
    const timeline = page.getByRole('log', { name: 'Session timeline' });
    await timeline.getByText('Working on: [scenario:chat]').waitFor({ timeout: 120_000 });
    await page.getByLabel('Message to the agent').fill('hello from the browser');
    await page.getByRole('button', { name: 'Send' }).click();
    await timeline.getByText('received: hello from the browser').waitFor({ timeout: 60_000 });
    await check(admin, 'session-chat');

    await page.goto('/projects/admin/shop/sessions');
    await page.getByLabel('Prompt').fill('[scenario:group] wait forever');
    await page.getByRole('button', { name: 'Start session' }).click();
    await page.waitForURL(/\/sessions\/[0-9a-f-]{36}$/);
    await timeline.getByText('started a helper process').waitFor({ timeout: 120_000 });
    await page.getByRole('button', { name: 'Stop session' }).click();
    await page.getByTestId('session-status').getByText('stopped').waitFor({ timeout: 60_000 });
    await expect.poll(() => page.getByTestId('session-status').textContent()).toContain('user');
    await check(admin, 'session-stopped');
  });
  it("shows a merge request's preview environment with its link and expiry", async () => {
    const site = await call('POST', '/api/projects', { name: 'site' });
    expect(site.status, JSON.stringify(site.body)).toBe(201);
    const work = path.join(tmp.dir, 'site');
    await gitOk(['clone', '-q', authUrl(base, 'admin', ADMIN_PASSWORD, '/admin/site.git'), work]);
    const files: Record<string, string> = {
      '.platform.yaml':
        'pipeline:\n  steps:\n    - name: bundle\n      commands: ["tar czf app.tgz -C app ."]\n      publish: { artifact: app.tgz, environment: preview }\n  on:\n    mr: { actions: [opened] }\n',
      'app/server.js':
        "require('node:http').createServer((q, s) => { s.writeHead(200); s.end('preview of ' + process.env.ENV); }).listen(Number(process.env.PORT), '127.0.0.1');",
      'deploy/app.yaml':
        'kind: LocalProcess\ncommand: node\nargs: [server.js]\nenv: { ENV: "{{ environment }}" }\n',
    };
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(work, name)), { recursive: true });
      writeFileSync(path.join(work, name), content);
    }
    await gitOk(['checkout', '-q', '-b', 'feature/New_Thing'], { cwd: work });
    await gitOk(['add', '-A'], { cwd: work });
    await gitOk(['-c', 'user.name=a', '-c', 'user.email=a@x', 'commit', '-q', '-m', 'preview me'], {
      cwd: work,
    });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/feature/New_Thing'], { cwd: work });
    const mr = await call('POST', `/api/projects/${site.body.id}/merge-requests`, {
      source_branch: 'feature/New_Thing',
      target_branch: 'main',
      title: 'New thing',
    });
    expect(mr.status, JSON.stringify(mr.body)).toBe(201);
    await eventually(
      async () => {
        const d = (await call('GET', `/api/projects/${site.body.id}/deployments/preview-feature-new-thing`))
          .body;
        return d?.current_status === 'healthy';
      },
      150_000,
      'the preview healthy',
    );
    const { page } = admin;
    await page.goto('/projects/admin/site/deployments');
    const previews = page.getByRole('region', { name: 'Preview environments' });
    await previews.getByRole('link', { name: 'preview-feature-new-thing', exact: true }).waitFor();
    const link = previews.getByRole('link', { name: `!${mr.body.number} New thing` });
    await link.waitFor();
    expect(await link.getAttribute('href')).toBe(`/projects/admin/site/merge-requests/${mr.body.number}`);
    await previews.getByRole('cell', { name: /\d{4}/ }).first().waitFor();
    await page.getByText('No environments other than previews.').waitFor();
    await check(admin, 'deployments-preview');
  });

  it('shows the forbidden state to a user who may read but not promote or run agents', async () => {
    const user = await call('POST', '/api/users', {
      name: 'vera',
      email: 'vera@example.test',
      password: 'vera-password-123',
    });
    expect(user.status, JSON.stringify(user.body)).toBe(201);
    const member = await call('POST', `/api/projects/${projectId}/members`, { user: 'vera', role: 'viewer' });
    expect(member.status, JSON.stringify(member.body)).toBe(201);
    const vera = await openTab(browser, base);
    try {
      const { page } = vera;
      await page.goto('/login');
      await signIn(page, 'vera', 'vera-password-123');
      await page.goto('/projects/admin/shop/deployments/staging');
      await heading(page, /Environment staging/);
      await page.getByRole('button', { name: 'Roll back', exact: true }).click();
      await page.getByRole('alert').filter({ hasText: 'Forbidden.' }).waitFor();
      await check(vera, 'deployment-forbidden');
      await page.goto('/projects/admin/shop/sessions');
      await page.getByLabel('Prompt').fill('not allowed');
      await page.getByRole('button', { name: 'Start session' }).click();
      await page.getByRole('alert').filter({ hasText: 'Forbidden.' }).waitFor();
      await check(vera, 'session-start-forbidden');
    } finally {
      await vera.context.close();
    }
  });
});
