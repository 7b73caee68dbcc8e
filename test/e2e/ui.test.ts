import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
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
  startPlatform,
  type Tab,
} from './browser.js';

/**
 * The web UI in headless Chromium against a real `platform serve`: the flows a person supervising
 * the forge goes through, each ending in a screenshot, every page checked with axe-core (0 serious
 * or critical violations) and without a CSP violation or page error.
 */
describe('web UI in Chromium', () => {
  let base = '';
  let browser: Browser;
  let admin: Tab;
  let repo: { dir: string; cleanup: () => void };
  const checked: string[] = [];

  /** Checks the page (browser.ts checkPage) and records that it was checked. */
  async function check(tab: Tab, name: string): Promise<void> {
    await checkPage(tab, name);
    checked.push(name);
  }

  const git = (args: string[]) => gitOk(args, { cwd: repo.dir });
  async function push(branch: string, files: Record<string, string>, message: string): Promise<void> {
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(repo.dir, name)), { recursive: true });
      writeFileSync(path.join(repo.dir, name), content);
    }
    await git(['add', '-A']);
    await git(['commit', '-q', '-m', message]);
    await git(['push', '-q', 'origin', `HEAD:refs/heads/${branch}`]);
  }

  beforeAll(async () => {
    const started = await startPlatform();
    base = started.base;
    browser = await launchBrowser();
    admin = await openTab(browser, base);
    repo = tempDir('platform-e2e-repo-');
  });

  // A failing flow leaves a screenshot of where it stopped.
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail' && admin)
      await screenshot(admin.page, `failed-${ctx.task.name.slice(0, 40).replace(/\W+/g, '-')}`).catch(
        () => undefined,
      );
  });

  afterAll(async () => {
    await browser?.close();
    repo?.cleanup();
    await killAllChildren();
    removeTempDirs();
  });

  it('logs in: a deep link goes to the login page (with the first-start hint) and back', async () => {
    const { page } = admin;
    await page.goto('/projects');
    await page.waitForURL(/\/login\?next=%2Fprojects$/);
    await page.getByRole('heading', { name: 'First start?' }).waitFor();
    await check(admin, 'login');
    await page.getByLabel('User name').fill('admin');
    await page.getByLabel('Password').fill('wrong-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/projects$/);
    await heading(page, 'Projects');
    await page.getByText('No projects match.').waitFor();
    await check(admin, 'projects-empty');
    await page.goto('/');
    await heading(page, 'Recent pipelines');
    await check(admin, 'dashboard-empty');
  });

  it('creates a project, and shows a pushed file with highlighting', async () => {
    const { page } = admin;
    await page.goto('/projects');
    await page.getByRole('button', { name: 'New project' }).click();
    await page.getByRole('form', { name: 'New project' }).getByLabel('Name').fill('webapp');
    await page.getByLabel('Description').fill('The browser test project');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.waitForURL(/\/projects\/admin\/webapp$/);
    await page.getByText('This repository is empty').waitFor();
    await check(admin, 'project-empty');

    await git(['init', '-q', '-b', 'main']);
    await git(['remote', 'add', 'origin', authUrl(base, 'admin', ADMIN_PASSWORD, '/admin/webapp.git')]);
    await push(
      'main',
      {
        'README.md': '# webapp\n\nA project made in the browser test.\n',
        'src/app.ts':
          '// the app\nexport function greet(name: string): string {\n  return "hello " + name;\n}\n',
        '.platform.yaml':
          'pipeline:\n  steps:\n    - name: build\n      commands: ["echo building", "sleep 3", "for i in $(seq 1 500); do echo \\"line $i\\"; done", "printf \'\\\\033[32mall green\\\\033[0m\\\\n\'"]\n    - name: test\n      depends_on: [build]\n      commands: ["echo tested"]\n',
      },
      'first commit',
    );
    await page.reload();
    await page.getByRole('link', { name: 'README.md' }).waitFor();
    await check(admin, 'files');
    await page.getByRole('link', { name: /src/ }).click();
    await page.getByRole('link', { name: 'app.ts' }).click();
    await page.waitForURL(/\/blob\?ref=main&path=src%2Fapp\.ts$/);
    const code = page.getByRole('region', { name: 'Content of src/app.ts' });
    await code.waitFor();
    expect(await code.locator('.tk-k').first().textContent()).toBe('export');
    expect(await code.locator('.tk-c').first().textContent()).toBe('// the app');
    await check(admin, 'file-view');
  });

  it('browses the history and a commit diff', async () => {
    const { page } = admin;
    await push(
      'main',
      { 'README.md': '# webapp\n\nA project made in the browser test.\nA second line.\n' },
      'Add a second line',
    );
    await page.goto('/projects/admin/webapp/commits');
    await page.getByRole('link', { name: 'Add a second line' }).click();
    await page.waitForURL(/\/commit\/[0-9a-f]{40}$/);
    const added = page.locator('.dadd', { hasText: '+A second line.' });
    await added.waitFor();
    await page.getByText('1 files changed').waitFor();
    await check(admin, 'commit-diff');
    await page.goto('/projects/admin/webapp/commits');
    await page.getByRole('link', { name: 'first commit' }).waitFor();
    await check(admin, 'commits');
  });

  it('opens an issue with markdown and comments on it', async () => {
    const { page } = admin;
    await page.goto('/projects/admin/webapp/issues');
    await page.getByText('No issues match.').waitFor();
    await page.getByRole('link', { name: 'New issue' }).click();
    await page.getByLabel('Title').fill('The greeting is too short');
    await page
      .getByLabel('Description (markdown)')
      .fill('It should say **hello world**.\n\n<script>alert(1)</script>');
    await page.getByLabel('Labels (comma-separated)').fill('bug, ui');
    await page.getByRole('button', { name: 'Open issue' }).click();
    await page.waitForURL(/\/issues\/1$/);
    await page.locator('.markdown strong', { hasText: 'hello world' }).waitFor();
    expect(await page.locator('.markdown script').count()).toBe(0);
    await page.getByLabel('Comment (markdown)').fill('Agreed, _fixing it_.');
    await page.getByRole('button', { name: 'Comment', exact: true }).click();
    await page.locator('.comment em', { hasText: 'fixing it' }).waitFor();
    await page.getByLabel('Assignee').selectOption({ label: 'admin' });
    await page.getByText(/^opened by admin/).waitFor();
    await check(admin, 'issue-detail');
    await page.goto('/projects/admin/webapp/issues');
    await page.getByRole('link', { name: '#1 The greeting is too short' }).waitFor();
    await page.getByText(/assigned to admin · 1 comments/).waitFor();
    await check(admin, 'issues');
  });

  it('changes a role: creates a user and grants them the developer role; edits a role grid', async () => {
    const { page } = admin;
    await page.goto('/admin/users');
    const form = page.getByRole('form', { name: 'Create a user' });
    await form.getByLabel('Name').fill('rita');
    await form.getByLabel('E-mail').fill('rita@example.test');
    await form.getByLabel('Initial password').fill('rita-password-123');
    await form.getByRole('button', { name: 'Create user' }).click();
    await page.getByRole('cell', { name: 'rita@example.test' }).waitFor();
    await page.getByRole('button', { name: 'Roles of rita' }).click();
    await page.getByText('rita has no roles.').waitFor();
    await page
      .getByRole('form', { name: 'Grant a role to rita' })
      .getByLabel('Role')
      .selectOption('developer');
    await page.getByRole('button', { name: 'Grant role' }).click();
    await page.getByRole('list', { name: 'Roles of rita' }).getByText('developer').waitFor();
    await check(admin, 'admin-users');

    await page.goto('/admin/roles');
    await page.getByLabel('New role name').fill('auditor');
    await page.getByRole('button', { name: 'Create role' }).click();
    const box = page.getByRole('checkbox', { name: 'auditor: observe:read' });
    await box.waitFor();
    expect(await box.isChecked()).toBe(false);
    await Promise.all([
      page.waitForResponse(
        (r) => r.url().endsWith('/permissions') && r.request().method() === 'PUT' && r.ok(),
      ),
      box.check(),
    ]);
    await page.reload();
    await page.getByRole('checkbox', { name: 'auditor: observe:read' }).waitFor();
    expect(await page.getByRole('checkbox', { name: 'auditor: observe:read' }).isChecked()).toBe(true);
    await check(admin, 'admin-roles');
    await page.goto('/admin/audit?action=user.create');
    await page.getByRole('cell', { name: 'user.create' }).first().waitFor();
    await check(admin, 'admin-audit');
    await page.goto('/admin/delegations');
    await page.getByText('No delegations.').waitFor();
    await check(admin, 'admin-delegations');
  });

  it('opens a merge request, merges it after a review by another user', async () => {
    const { page } = admin;
    // rita becomes a developer of the project; main needs one approval.
    await page.goto('/projects/admin/webapp/settings?part=members');
    const add = page.getByRole('form', { name: 'Add a member' });
    await add.getByLabel('User name').fill('rita');
    await add.getByLabel('Role').fill('developer');
    await add.getByRole('button', { name: 'Add member' }).click();
    await page.getByRole('cell', { name: 'rita', exact: true }).waitFor();
    await page.goto('/projects/admin/webapp/settings?part=branches');
    const protect = page.getByRole('form', { name: 'Protect a branch' });
    await protect.getByLabel('Branch pattern').fill('main');
    await protect.getByLabel('Required approvals').fill('1');
    await protect.getByRole('button', { name: 'Protect' }).click();
    await page.getByRole('cell', { name: 'main', exact: true }).waitFor();
    await git(['checkout', '-q', '-b', 'longer-greeting']);
    await push(
      'longer-greeting',
      {
        'src/app.ts':
          '// the app\nexport function greet(name: string): string {\n  return "hello world, " + name;\n}\n',
      },
      'Greet the world',
    );
    await page.goto('/projects/admin/webapp/merge-requests');
    await page.getByRole('link', { name: 'New merge request' }).click();
    await page.getByLabel('Source branch').selectOption('longer-greeting');
    await page.getByLabel('Title').fill('Greet the whole world');
    await page.getByRole('button', { name: 'Open merge request' }).click();
    await page.waitForURL(/\/merge-requests\/1$/);
    await page.getByRole('tab', { name: /Changes/ }).click();
    await page.locator('.dadd', { hasText: '"hello world, " + name' }).waitFor();
    await check(admin, 'mr-diff');
    await page.getByRole('tab', { name: 'Overview' }).click();
    // The merge is blocked until someone else approves: the blockers come from the server.
    await page.getByRole('list', { name: 'What blocks the merge' }).waitFor();
    await page.getByText('Approvals: 0 of 1 required').waitFor();
    await check(admin, 'mr-blocked');

    // The reviewer signs in in their own browser context.
    const rita = await openTab(browser, base);
    try {
      await rita.page.goto('/login?next=%2Fprojects%2Fadmin%2Fwebapp%2Fmerge-requests%2F1');
      // Keyboard only: Tab to the fields, Enter submits.
      await rita.page.getByRole('heading', { name: 'Sign in to Platform' }).waitFor();
      await rita.page.keyboard.press('Tab');
      await rita.page.keyboard.type('rita');
      await rita.page.keyboard.press('Tab');
      await rita.page.keyboard.type('rita-password-123');
      await rita.page.keyboard.press('Enter');
      await rita.page.waitForURL(/\/merge-requests\/1$/);
      await rita.page.getByLabel('Review comment').fill('Looks good');
      await rita.page.getByRole('button', { name: 'Approve' }).click();
      await rita.page.getByText('Approvals: 1 of').waitFor();
      await check(rita, 'mr-reviewed');
      // A developer is not an admin: the admin pages show the forbidden state.
      await rita.page.goto('/admin/users');
      await rita.page.getByText('Forbidden.').waitFor();
      await check(rita, 'forbidden');
    } catch (err) {
      await screenshot(rita.page, 'failed-reviewer');
      throw err;
    } finally {
      await rita.context.close();
    }

    await page.reload();
    await page.getByText(/Approvals: 1 of \d+ required \(approved by rita\)/).waitFor();
    await page.getByLabel('Merge strategy').selectOption('squash');
    await check(admin, 'mr-detail');
    await page.getByRole('button', { name: 'Merge (squash)' }).click();
    await page.getByText(/^Merged/).waitFor();
    await page.locator('h2 .badge', { hasText: 'merged' }).waitFor();
    await check(admin, 'mr-merged');
  });

  it("watches a pipeline's live log to the end, with ANSI colours and the step graph", async () => {
    const { page } = admin;
    await page.goto('/projects/admin/webapp/pipelines');
    await page.getByRole('link', { name: '#1' }).waitFor();
    // The bell's count before the run: its success notifies the triggerer, live (no reload).
    const unread = async () =>
      Number(
        (await page
          .getByTestId('unread')
          .textContent({ timeout: 1000 })
          .catch(() => '0')) ?? 0,
      );
    const before = await unread();
    await page.getByLabel('Branch or tag to run').fill('main');
    await page.getByRole('button', { name: 'Run pipeline' }).click();
    await page.waitForURL(/\/pipelines\/\d+$/);
    const log = page.getByRole('log', { name: 'Log of build' });
    await log.waitFor();
    // The step sleeps before printing: the stream is seen live, then complete.
    await page.getByTestId('log-state').filter({ hasText: 'Streaming…' }).waitFor();
    await log.locator('.log-line', { hasText: /^\d+building$/ }).waitFor();
    await page.getByTestId('log-state').filter({ hasText: 'Log complete.' }).waitFor({ timeout: 90_000 });
    // Follow mode kept the end in view: the coloured last line is rendered (virtualised: only what is in view).
    const green = log.locator('.a-g', { hasText: 'all green' });
    await green.waitFor();
    await page.getByText('507 lines').waitFor(); // 502 printed, and the commands echoed
    expect(await log.locator('.log-line').count()).toBeLessThan(200);
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('link', { name: /test/ }).waitFor();
    await page.locator('h2 .badge', { hasText: 'success' }).waitFor({ timeout: 90_000 });
    await eventually(async () => (await unread()) > before, 30_000, 'the bell to count the new notification');
    await check(admin, 'pipeline-detail');
    await page.goto('/projects/admin/webapp/pipelines');
    await page.getByRole('cell', { name: 'success' }).first().waitFor();
    await check(admin, 'pipelines');
  });

  it('creates an API token that is shown once, and it works', async () => {
    const { page } = admin;
    await page.goto('/me/tokens');
    await page.getByText('No API tokens.').waitFor();
    await page.getByLabel('Token name').fill('laptop');
    await page.getByRole('button', { name: 'Create token' }).click();
    const value = await page.getByLabel('New token').inputValue();
    expect(value.length).toBeGreaterThan(20);
    const me = await fetch(`${base}/api/auth/me`, { headers: { authorization: `Bearer ${value}` } });
    expect(me.status).toBe(200);
    await check(admin, 'token-created');
    await page.reload();
    await page.getByRole('cell', { name: 'laptop', exact: true }).waitFor();
    expect(await page.getByLabel('New token').count()).toBe(0);
    expect(await page.content()).not.toContain(value);
    await page.goto('/me/notifications');
    await page.getByRole('checkbox', { name: '* by in_app' }).waitFor();
    await check(admin, 'notification-preferences');
    await page.goto('/me/password');
    await check(admin, 'password');
  });

  it('shows the remaining pages: settings, dashboard, notifications, light theme', async () => {
    const { page } = admin;
    for (const part of ['general', 'members', 'branches', 'webhooks', 'secrets']) {
      await page.goto(`/projects/admin/webapp/settings?part=${part}`);
      await page.locator('.settings h2').first().waitFor();
      await check(admin, `settings-${part}`);
    }
    const secrets = page.getByRole('form', { name: 'Set a secret' });
    await page.goto('/projects/admin/webapp/settings?part=secrets');
    await secrets.getByLabel('Name').fill('DEPLOY_KEY');
    await secrets.getByLabel('Value').fill('s3cr3t-value');
    await secrets.getByRole('button', { name: 'Save secret' }).click();
    await page.getByRole('cell', { name: 'DEPLOY_KEY', exact: true }).waitFor();
    expect(await page.content()).not.toContain('s3cr3t-value');
    await page.goto('/');
    await page
      .getByRole('link', { name: /admin\/webapp #\d+/ })
      .first()
      .waitFor();
    await check(admin, 'dashboard');
    await page.goto('/notifications');
    await heading(page, 'Notifications');
    await check(admin, 'notifications');
    await page.getByRole('button', { name: 'Switch to the light theme' }).click();
    await page.goto('/projects/admin/webapp/merge-requests/1');
    await page.getByRole('tab', { name: 'Overview' }).waitFor();
    await check(admin, 'mr-merged-light');
    await page.getByRole('button', { name: 'Switch to the dark theme' }).click();
    await page.goto('/no/such/page');
    await heading(page, 'Page not found');
    await check(admin, 'not-found');
    expect(checked.length).toBeGreaterThan(25);
  });
});
