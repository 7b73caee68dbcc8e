/**
 * The three end-to-end stories of the overview (spec 00-overview.md), in order, against one real
 * `platform serve` (embedded stores), with stock git, a real SMTP server started here, the fake
 * Claude Code of test/fixtures/stories and headless Chromium wherever a person uses the UI:
 * 1. log in as the bootstrap admin, create a project, clone, push a `.platform.yaml`; the pipeline's
 *    log streams live, the deployer rolls the app out on the local target, the app sends OTLP/HTTP
 *    JSON telemetry itself, an alert rule fires on it, the owner gets an in-app notification and an
 *    e-mail;
 * 2. a user starts an agent session from the UI: the agent holds only its delegated token, clones,
 *    commits, pushes, opens an MR through MCP; the progress streams to the session page, the MR's
 *    pipeline runs, the session ends, its token answers 401 and the user is notified;
 * 3. an operator rolls the deployment back from the UI; the previous healthy version serves again and
 *    the history names both actions and who did them.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { authUrl, gitOk, tempDir } from '../helpers/git.js';
import { killAllChildren, removeTempDirs } from '../helpers/process.js';
import { startTestSmtp, type TestSmtp } from '../helpers/smtp.js';
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
import { type Api, apiClient, appFiles, commitFiles, STORY_PIPELINE } from './story-helpers.js';

const fixtures = path.dirname(fileURLToPath(new URL('../fixtures/stories/story-agent.mjs', import.meta.url)));
const storyAgent = path.join(fixtures, 'story-agent.mjs');
const ADMIN_EMAIL = 'admin@example.test';

describe('end-to-end stories', () => {
  let base = '';
  let browser: Browser;
  let admin: Tab;
  let smtp: TestSmtp;
  let adminApi: Api;
  const tmp = tempDir('platform-e2e-stories-');
  // What story 2's agent sends out (its token), as an exfiltrating agent would.
  const reported: string[] = [];
  let reportServer: Server;
  // Story 1's deployment, rolled back in story 3.
  const webapp = { id: '', work: '', shas: [] as string[] };

  const check = (tab: Tab, name: string) => checkPage(tab, `story-${name}`);
  const unread = async (page: Page) =>
    Number(
      (await page
        .getByTestId('unread')
        .textContent({ timeout: 1000 })
        .catch(() => '0')) ?? 0,
    );

  beforeAll(async () => {
    smtp = await startTestSmtp();
    reportServer = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        reported.push(body);
        res.end('ok');
      });
    });
    await new Promise<void>((r) => reportServer.listen(0, '127.0.0.1', r));
    const started = await startPlatform({
      ...smtp.config,
      PLATFORM_ADMIN_EMAIL: ADMIN_EMAIL,
      PLATFORM_ALERT_EVALUATION_INTERVAL_SECONDS: '1',
      PLATFORM_RUNNER_READONLY_PATHS: fixtures,
    });
    base = started.base;
    adminApi = apiClient(base, `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`);
    browser = await launchBrowser();
    admin = await openTab(browser, base);
  });

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail' && admin)
      await screenshot(admin.page, `failed-story-${ctx.task.name.slice(0, 40).replace(/\W+/g, '-')}`).catch(
        () => undefined,
      );
  });

  afterAll(async () => {
    await browser?.close();
    await smtp?.close();
    reportServer?.close();
    tmp.cleanup();
    await killAllChildren();
    removeTempDirs();
  });

  it('story 1: log in, create a project, push; live pipeline log, deployed app, its OTLP telemetry fires an alert; the owner is notified in the UI and by e-mail', async () => {
    const { page } = admin;
    // First start: the UI sends a new visitor to the login page; the bootstrap admin signs in.
    await page.goto('/');
    await page.waitForURL(/\/login/);
    await page.getByRole('heading', { name: 'First start?' }).waitFor();
    await check(admin, '1-login');
    await signIn(page, 'admin', ADMIN_PASSWORD);

    // A project created in the UI.
    await page.goto('/projects');
    await page.getByRole('button', { name: 'New project' }).click();
    await page.getByRole('form', { name: 'New project' }).getByLabel('Name').fill('webapp');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.waitForURL(/\/projects\/admin\/webapp$/);
    await page.getByText('This repository is empty').waitFor();
    await check(admin, '1-project-created');
    const project = await adminApi('GET', '/api/projects/admin/webapp');
    expect(project.status).toBe(200);
    webapp.id = project.body.id;

    // The app's telemetry credential: a token that may only write telemetry of this project, kept
    // as a pipeline secret; the pipeline bakes it into the artifact the app reads at start.
    const minted = await adminApi('POST', '/api/tokens', {
      name: 'webapp telemetry',
      scopes: ['observe:write'],
      project_id: webapp.id,
    });
    expect(minted.status, JSON.stringify(minted.body)).toBe(201);
    const secret = await adminApi('POST', `/api/projects/${webapp.id}/secrets`, {
      name: 'OTLP_TOKEN',
      value: minted.body.token,
      scope: 'pipeline',
    });
    expect(secret.status, JSON.stringify(secret.body)).toBe(201);

    // Stock git: clone (empty), commit the app, its deploy manifests and the pipeline, push.
    webapp.work = path.join(tmp.dir, 'webapp');
    await gitOk(['clone', '-q', authUrl(base, 'admin', ADMIN_PASSWORD, '/admin/webapp.git'), webapp.work]);
    const unreadBefore = await unread(page);
    webapp.shas.push(
      await commitFiles(
        webapp.work,
        {
          '.platform.yaml': STORY_PIPELINE,
          ...appFiles({ version: 'v1', otlp: base, projectId: webapp.id }),
        },
        'v1: the app',
      ),
    );

    // The pipeline's log, live in the browser: streaming while the step runs, then complete.
    await page.goto('/projects/admin/webapp/pipelines');
    await page.getByRole('link', { name: '#1' }).click();
    await page.waitForURL(/\/pipelines\/1$/);
    const log = page.getByRole('log', { name: 'Log of bundle' });
    await log.waitFor();
    await page.getByTestId('log-state').filter({ hasText: 'Streaming…' }).waitFor();
    await log.locator('.log-line', { hasText: /^\d+packing the app$/ }).waitFor();
    await page.getByTestId('log-state').filter({ hasText: 'Log complete.' }).waitFor({ timeout: 90_000 });
    await page.locator('h2 .badge', { hasText: 'success' }).waitFor({ timeout: 90_000 });
    await log.locator('.log-line', { hasText: /^\d+bundled$/ }).waitFor();
    // The secret is masked in the log.
    expect(await log.textContent()).not.toContain(minted.body.token);
    await check(admin, '1-pipeline-log');

    // The artifact is stored, and the deployer rolls the app out on the local target.
    const pipeline = await adminApi('GET', `/api/projects/${webapp.id}/pipelines/1/artifacts`);
    expect(pipeline.status, JSON.stringify(pipeline.body)).toBe(200);
    expect(pipeline.body.items).toMatchObject([{ name: 'publish-bundle', sha256: expect.any(String) }]);
    const appUrl = `${base}/apps/admin/webapp/staging/`;
    await eventually(
      async () => (await fetch(appUrl).then((r) => (r.status === 200 ? r.text() : null))) === 'v1',
      150_000,
      'the app to answer v1',
    );
    await eventually(
      async () =>
        (await adminApi('GET', `/api/projects/${webapp.id}/deployments/staging`)).body?.current_status ===
        'healthy',
      60_000,
      'a healthy deployment',
    );

    // The app sends its own OTLP/HTTP JSON metrics: they are in the store, under its project.
    await eventually(
      async () => {
        const names = await adminApi('GET', `/api/observe/metrics/names?project_id=${webapp.id}`);
        return names.status === 200 && JSON.stringify(names.body).includes('checkout_failures');
      },
      60_000,
      'the app metrics in the store',
    );

    // An alert rule on the app's telemetry fires.
    const rule = await adminApi('POST', '/api/observe/alerts', {
      project_id: webapp.id,
      name: 'checkout failing',
      query: 'last(checkout_failures{service="webapp"}[5m]) > 3',
      for_seconds: 0,
      channels: ['in_app', 'email'],
    });
    expect(rule.status, JSON.stringify(rule.body)).toBe(201);
    await eventually(
      async () => (await adminApi('GET', `/api/observe/alerts/${rule.body.id}`)).body?.state === 'firing',
      60_000,
      'the rule to fire',
    );

    // The owner: an e-mail over SMTP, an in-app notification the bell counts and the page lists.
    const mail = await eventually(
      () => smtp.to(ADMIN_EMAIL).find((m) => /Alert firing: checkout failing/.test(m.mail.subject ?? '')),
      60_000,
      'the alert e-mail',
    );
    expect(mail.mail.subject).toContain('checkout failing');
    await eventually(async () => (await unread(page)) > unreadBefore, 60_000, 'the bell to count it');
    await page.goto('/notifications');
    await heading(page, 'Notifications');
    await page.getByText('Alert firing: checkout failing').first().waitFor();
    await check(admin, '1-notifications');
  });

  it('story 2: an agent session with only its delegated token clones, commits, pushes and opens an MR through MCP; the MR pipeline runs; the session ends, its token dies, the user is notified', async () => {
    const settings = await adminApi('PATCH', '/api/agent-settings', { claude_command: storyAgent });
    expect(settings.status, JSON.stringify(settings.body)).toBe(200);
    // A user (developer) with their own project whose pipeline runs on merge requests.
    const dana = await adminApi('POST', '/api/users', {
      name: 'dana',
      email: 'dana@example.test',
      password: 'dana-password-123',
    });
    expect(dana.status, JSON.stringify(dana.body)).toBe(201);
    expect(
      (await adminApi('POST', `/api/admin/users/${dana.body.id}/roles`, { role: 'developer' })).status,
    ).toBe(201);
    const danaApi = apiClient(base, `Basic ${Buffer.from('dana:dana-password-123').toString('base64')}`);
    const created = await danaApi('POST', '/api/projects', { name: 'notes' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const projectId = created.body.id as string;
    const port = (reportServer.address() as AddressInfo).port;
    const secret = await danaApi('POST', `/api/projects/${projectId}/secrets`, {
      name: 'STORY_REPORT_URL',
      value: `http://127.0.0.1:${port}/report`,
      scope: 'agent',
    });
    expect(secret.status, JSON.stringify(secret.body)).toBe(201);
    const work = path.join(tmp.dir, 'notes');
    await gitOk(['clone', '-q', authUrl(base, 'dana', 'dana-password-123', '/dana/notes.git'), work]);
    await commitFiles(
      work,
      {
        'README.md': '# notes\n',
        '.platform.yaml':
          'pipeline:\n  steps:\n    - name: check\n      commands: ["test -f README.md", "echo checked the merge request"]\n  on:\n    mr: { actions: [opened] }\n',
      },
      'init',
    );

    // Dana, in the browser, starts the session on the project's sessions page.
    const tab = await openTab(browser, base);
    const { page } = tab;
    try {
      await page.goto('/login');
      await signIn(page, 'dana', 'dana-password-123');
      await page.goto('/projects/dana/notes/sessions');
      await page.getByLabel('Prompt').fill('Add a changelog and open a merge request');
      await check(tab, '2-session-start');
      await page.getByRole('button', { name: 'Start session' }).click();
      await page.waitForURL(/\/sessions\/[0-9a-f-]{36}$/);
      const sid = page.url().split('/').pop()!;

      // The progress streams to the page (WebSocket) as the agent works.
      const timeline = page.getByRole('log', { name: 'Session timeline' });
      await timeline.getByText(/outside: create a project → HTTP 403/).waitFor({ timeout: 120_000 });
      await timeline.getByText(/^pushed agent\//).waitFor({ timeout: 60_000 });
      await timeline.getByText(/merge request via MCP: !1/).waitFor({ timeout: 60_000 });
      await page.getByTestId('session-status').getByText('completed').waitFor({ timeout: 60_000 });
      await check(tab, '2-session-done');

      const session = (await danaApi('GET', `/api/projects/${projectId}/sessions/${sid}?limit=1000`)).body;
      expect(session.status).toBe('completed');
      expect(session.permissions).toEqual(['project:read', 'project:write']);
      const texts: string[] = session.messages.map((m: { content: string }) => m.content);
      // Only the delegation: a project elsewhere and the user list were refused.
      expect(texts).toContain('outside: create a project → HTTP 403');
      expect(texts.some((t) => /^outside: list users → HTTP 40[34]$/.test(t))).toBe(true);
      expect(texts.some((t) => t.startsWith('git failed') || t.startsWith('MCP failed'))).toBe(false);
      expect(texts).toContain('cloned');
      expect(texts.some((t) => /^committed [0-9a-f]{40}$/.test(t))).toBe(true);
      expect(session.produced.merge_requests).toHaveLength(1);

      // The MR (opened by the agent identity) and its pipeline, run on the branch head.
      const mr = (await danaApi('GET', `/api/projects/${projectId}/merge-requests/1`)).body;
      expect(mr.source_branch).toBe(session.branch);
      const mrPipeline = await eventually(
        async () => {
          const list = (await danaApi('GET', `/api/projects/${projectId}/pipelines`)).body.items as {
            number: number;
            trigger: string;
            status: string;
            commit_sha: string;
          }[];
          const p = list.find((x) => x.trigger === 'mr');
          return p?.status === 'success' ? p : undefined;
        },
        120_000,
        'the MR pipeline to succeed',
      );
      expect(JSON.stringify(session.produced.commits)).toContain(mrPipeline.commit_sha);

      // The session's identity is revoked: the token it was given answers 401.
      const [token] = reported;
      expect(token).toMatch(/^\S+$/);
      await eventually(
        async () =>
          (await fetch(`${base}/api/auth/me`, { headers: { authorization: `Bearer ${token}` } })).status ===
          401,
        30_000,
        'the agent token to be revoked',
      );
      // The user is notified.
      await page.goto('/notifications');
      await page.getByText('Agent session completed').first().waitFor({ timeout: 60_000 });
      await check(tab, '2-notified');
    } finally {
      await tab.context.close();
    }
  });

  it('story 3: an operator rolls the deployment back from the UI; the previous healthy version serves again; the history shows both actions and who did them', async () => {
    // A second version goes out by a push (admin).
    webapp.shas.push(
      await commitFiles(
        webapp.work,
        appFiles({ version: 'v2', otlp: base, projectId: webapp.id }),
        'v2: the next version',
      ),
    );
    const appUrl = `${base}/apps/admin/webapp/staging/`;
    const serving = () =>
      fetch(appUrl).then(
        (r) => (r.status === 200 ? r.text() : null),
        () => null,
      );
    await eventually(async () => (await serving()) === 'v2', 150_000, 'v2 to serve');
    await eventually(
      async () => {
        const d = (await adminApi('GET', `/api/projects/${webapp.id}/deployments/staging`)).body;
        return d?.commit_sha === webapp.shas[1] && d.current_status === 'healthy';
      },
      60_000,
      'v2 healthy',
    );

    // The operator: a user with the ops role, signed in in their own browser tab.
    const olga = await adminApi('POST', '/api/users', {
      name: 'olga',
      email: 'olga@example.test',
      password: 'olga-password-123',
    });
    expect(olga.status, JSON.stringify(olga.body)).toBe(201);
    // The project's operator: a member with the ops role on this project only.
    const member = await adminApi('POST', `/api/projects/${webapp.id}/members`, {
      user_id: olga.body.id,
      role: 'ops',
    });
    expect(member.status, JSON.stringify(member.body)).toBe(201);
    const tab = await openTab(browser, base);
    const { page } = tab;
    try {
      await page.goto('/login');
      await signIn(page, 'olga', 'olga-password-123');
      await page.goto('/projects/admin/webapp/deployments');
      await page.getByRole('link', { name: 'staging', exact: true }).click();
      await heading(page, /Environment staging/);
      const history = page.getByRole('table', { name: 'Deployment history' });
      await history.getByRole('row').nth(2).waitFor();
      await check(tab, '3-before-rollback');

      await page.getByRole('button', { name: 'Roll back', exact: true }).click();
      await eventually(async () => (await serving()) === 'v1', 150_000, 'v1 to serve again');
      await eventually(
        async () => {
          const d = (await adminApi('GET', `/api/projects/${webapp.id}/deployments/staging`)).body;
          return d?.commit_sha === webapp.shas[0] && d.current_status === 'healthy';
        },
        60_000,
        'v1 healthy again',
      );
      const row = history.getByRole('row', { name: /rollback/ }).first();
      await row.waitFor({ timeout: 60_000 });
      await expect.poll(() => row.textContent(), { timeout: 60_000 }).toContain('olga');
      await expect.poll(() => row.textContent(), { timeout: 60_000 }).toContain(webapp.shas[0]!.slice(0, 10));
      const deployRow = history
        .getByRole('row')
        .filter({ has: page.getByRole('cell', { name: 'deploy', exact: true }) })
        .filter({ hasText: webapp.shas[1]!.slice(0, 10) });
      await expect.poll(() => deployRow.first().textContent(), { timeout: 30_000 }).toContain('admin');
      await check(tab, '3-rolled-back');
    } finally {
      await tab.context.close();
    }

    // The API's history: the deploy by admin, the rollback by olga, both successful.
    const items = (await adminApi('GET', `/api/projects/${webapp.id}/deployments/staging/history`)).body
      .items as { action: string; result: string; actor_id: string | null; commit_sha: string | null }[];
    const me = (await adminApi('GET', '/api/auth/me')).body;
    expect(items[0]).toMatchObject({ action: 'rollback', result: 'success', actor_id: olga.body.id });
    expect(items[0]!.commit_sha).toBe(webapp.shas[0]);
    expect(items.find((h) => h.action === 'deploy' && h.commit_sha === webapp.shas[1])).toMatchObject({
      result: 'success',
      actor_id: me.user.id,
    });
    // The rollback request is audited under the operator.
    const audit = await adminApi('GET', `/api/audit?action=deployment.rollback&project_id=${webapp.id}`);
    expect(audit.status).toBe(200);
    expect(audit.body.items.map((a: { actor_name: string }) => a.actor_name)).toEqual(['olga']);
  });
});
