/**
 * The deploy/diff merge-request check: an MR on an ops repo (a project on this platform) that changes
 * apps/<project>/ gets the rendered diff of each deployment using it against what runs now; a
 * template referencing a missing variable is a failing check naming file and variable, which blocks
 * the merge until a push fixes it; an MR that touches nothing deployable gets no check. Real git
 * pushes, a real deployed process.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, eventually, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';

const APP_YAML = `kind: LocalProcess
command: node
args:
  - "-e"
  - "require('node:http').createServer((q, s) => { s.writeHead(200); s.end(process.env.GREETING); }).listen(Number(process.env.PORT), '127.0.0.1')"
env:
  GREETING: "{{ values.greeting }} from {{ environment }}"
`;

interface CheckRun {
  name: string;
  conclusion: string;
  summary: string;
  head_sha: string;
  text: string;
}

interface MrDetail {
  head_sha: string;
  checks: { runs: CheckRun[] };
  blockers: { reason: string; message: string }[];
  mergeable: boolean;
}

describe.skipIf(servicesMissing)('deployer: the deploy/diff merge-request check', () => {
  let t: TestPlatform;
  const tmp = tempDir('platform-deploy-mr-check-');
  let opsWork: string;
  let opsProjectId: string;

  async function commitTo(branch: string, files: Record<string, string>, message: string, from = 'main') {
    await gitOk(['checkout', '-q', '-B', branch, `origin/${from}`], { cwd: opsWork });
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(opsWork, name)), { recursive: true });
      writeFileSync(path.join(opsWork, name), content);
    }
    await gitOk(['add', '-A'], { cwd: opsWork });
    await gitOk(['commit', '-q', '-m', message], { cwd: opsWork });
    await gitOk(['push', '-q', 'origin', `HEAD:refs/heads/${branch}`], { cwd: opsWork });
    await gitOk(['fetch', '-q', 'origin'], { cwd: opsWork });
    return (await gitOk(['rev-parse', 'HEAD'], { cwd: opsWork })).trim();
  }

  async function openMr(branch: string) {
    const res = await t.request('POST', `/api/projects/${opsProjectId}/merge-requests`, {
      token: t.adminToken,
      body: { source_branch: branch, target_branch: 'main', title: branch },
    });
    expect(res.status).toBe(201);
    return res.body.number as number;
  }

  async function detail(number: number) {
    const res = await t.request('GET', `/api/projects/${opsProjectId}/merge-requests/${number}`, {
      token: t.adminToken,
    });
    expect(res.status).toBe(200);
    return res.body as MrDetail;
  }

  async function runsAt(number: number, head: string): Promise<{ runs: CheckRun[]; body: MrDetail }> {
    return eventually(
      async () => {
        const body = await detail(number);
        return body.head_sha === head && body.checks.runs.length > 0
          ? { runs: body.checks.runs, body }
          : undefined;
      },
      60_000,
      `the check of !${number} at ${head.slice(0, 8)}`,
    );
  }

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    t.platform.startBackground();
    const ops = await t.request('POST', '/api/projects', { token: t.adminToken, body: { name: 'ops' } });
    expect(ops.status).toBe(201);
    opsProjectId = ops.body.id;
    opsWork = path.join(tmp.dir, 'ops');
    await gitOk(['clone', authUrl(t.baseUrl, 'admin', t.adminToken, '/admin/ops.git'), opsWork]);
    for (const [name, content] of Object.entries({
      'apps/shop/app.yaml': APP_YAML,
      'apps/shop/values.yaml': 'greeting: hello\n',
      'apps/unused/app.yaml': APP_YAML,
      'README.md': 'ops\n',
    })) {
      mkdirSync(path.dirname(path.join(opsWork, name)), { recursive: true });
      writeFileSync(path.join(opsWork, name), content);
    }
    await gitOk(['add', '-A'], { cwd: opsWork });
    await gitOk(['commit', '-q', '-m', 'ops layout'], { cwd: opsWork });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: opsWork });
    await gitOk(['fetch', '-q', 'origin'], { cwd: opsWork });

    const repo = await t.request('POST', '/api/admin/ops-repos', {
      token: t.adminToken,
      body: { name: 'ops', repo_url: 'admin/ops', sync_interval_seconds: 3600 },
    });
    expect(repo.status).toBe(201);
    const shop = await t.request('POST', '/api/projects', { token: t.adminToken, body: { name: 'shop' } });
    expect(shop.status).toBe(201);
    const patched = await t.request('PATCH', `/api/projects/${shop.body.id}/deployments/staging`, {
      token: t.adminToken,
      body: { image_ref: 'v1', ops_repo_id: repo.body.id },
    });
    expect(patched.status).toBe(200);
    await eventually(
      async () =>
        (await fetch(`${t.baseUrl}/apps/admin/shop/staging/`).then((r) => r.text())) === 'hello from staging',
      120_000,
      'shop/staging served from the ops repo',
    );
  }, 180_000);
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  it('an MR that changes values gets a neutral deploy/diff check with the rendered diff against what runs', async () => {
    const head = await commitTo('howdy', { 'apps/shop/values.yaml': 'greeting: howdy\n' }, 'howdy');
    const number = await openMr('howdy');
    const { runs, body } = await runsAt(number, head);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      name: 'deploy/diff',
      conclusion: 'neutral',
      head_sha: head,
      summary: '1 environment would change: shop/staging',
    });
    expect(runs[0]!.text).toContain('# shop/staging');
    expect(runs[0]!.text).toContain('-  GREETING: hello from staging');
    expect(runs[0]!.text).toContain('+  GREETING: howdy from staging');
    // Informational: it does not block the merge.
    expect(body.blockers.map((b) => b.reason)).not.toContain('mr.check_failed');
    expect(body.mergeable).toBe(true);
    // Nothing was applied: the running version still answers the old greeting.
    expect(await fetch(`${t.baseUrl}/apps/admin/shop/staging/`).then((r) => r.text())).toBe(
      'hello from staging',
    );
  }, 120_000);

  it('a template referencing a missing variable is a failing check naming file and variable; it blocks the merge until a push fixes it', async () => {
    const broken = APP_YAML.replace('{{ environment }}', '{{ values.region }}');
    const head = await commitTo('region', { 'apps/shop/app.yaml': broken }, 'region');
    const number = await openMr('region');
    const { runs, body } = await runsAt(number, head);
    expect(runs[0]).toMatchObject({ name: 'deploy/diff', conclusion: 'failure' });
    expect(runs[0]!.summary).toContain('shop/staging: template error: apps/shop/app.yaml:');
    expect(runs[0]!.summary).toContain('variable values.region is not defined');
    expect(runs[0]!.text).toContain('apps/shop/app.yaml');
    const blocker = body.blockers.find((b) => b.reason === 'mr.check_failed');
    expect(blocker?.message).toContain(
      'check deploy/diff failed: shop/staging: template error: apps/shop/app.yaml:',
    );
    expect(body.mergeable).toBe(false);
    const merge = await t.request('POST', `/api/projects/${opsProjectId}/merge-requests/${number}/merge`, {
      token: t.adminToken,
      body: {},
    });
    expect(merge.status).toBe(409);
    expect(merge.body.error.reason).toBe('mr.check_failed');
    expect(merge.body.error.message).toContain('values.region');

    // A push adding the value: the check of the new head renders and the blocker is gone.
    const fixed = await commitTo(
      'region',
      { 'apps/shop/values.yaml': 'greeting: hello\nregion: eu\n' },
      'region value',
      'region',
    );
    const after = await runsAt(number, fixed);
    expect(after.runs[0]).toMatchObject({ conclusion: 'neutral', head_sha: fixed });
    expect(after.runs[0]!.text).toContain('+  GREETING: hello from eu');
    expect(after.body.blockers.map((b) => b.reason)).not.toContain('mr.check_failed');
  }, 120_000);

  it("an environment's rendered diff is shown only to readers of that project's deployments", async () => {
    // Otto reads the ops repo (a viewer there) and nothing of shop.
    const otto = await t.createUser('otto', []);
    const member = (projectId: string) =>
      t.request('POST', `/api/projects/${projectId}/members`, {
        token: t.adminToken,
        body: { user_id: otto.id, role: 'viewer' },
      });
    expect((await member(opsProjectId)).status).toBeLessThan(300);
    const head = await commitTo('psst', { 'apps/shop/values.yaml': 'greeting: psst\n' }, 'psst');
    const number = await openMr('psst');
    const { runs } = await runsAt(number, head);
    expect(runs[0]!.text).toContain('+  GREETING: psst from staging');
    const asOtto = async () => {
      const res = await t.request('GET', `/api/projects/${opsProjectId}/merge-requests/${number}`, {
        token: otto.token,
      });
      expect(res.status).toBe(200);
      return (res.body as MrDetail).checks.runs;
    };
    const hidden = await asOtto();
    expect(hidden).toHaveLength(1);
    expect(hidden[0]).toMatchObject({
      conclusion: runs[0]!.conclusion,
      summary: runs[0]!.summary,
      head_sha: head,
    });
    expect(hidden[0]!.text).not.toContain('GREETING');
    expect(hidden[0]!.text).toContain('# shop/staging: would change');
    const shop = (await t.request('GET', '/api/projects/admin/shop', { token: t.adminToken })).body.id;
    expect((await member(shop)).status).toBeLessThan(300);
    expect((await asOtto())[0]!.text).toContain('+  GREETING: psst from staging');
  }, 120_000);

  it('an MR that touches nothing deployable (a README, an app no deployment uses) gets no check', async () => {
    for (const [branch, file] of [
      ['readme', 'README.md'],
      ['unused', 'apps/unused/values.yaml'],
    ] as const) {
      const head = await commitTo(branch, { [file]: 'changed: true\n' }, branch);
      const number = await openMr(branch);
      await t.platform.settle();
      const body = await detail(number);
      expect(body.head_sha).toBe(head);
      expect(body.checks.runs, branch).toEqual([]);
      expect(body.mergeable, branch).toBe(true);
    }
  }, 120_000);
  it("a project's own deploy/ changed by an MR: the check renders it for the project's environments", async () => {
    const web = await t.request('POST', '/api/projects', { token: t.adminToken, body: { name: 'web' } });
    expect(web.status).toBe(201);
    const work = path.join(tmp.dir, 'web');
    await gitOk(['clone', authUrl(t.baseUrl, 'admin', t.adminToken, '/admin/web.git'), work]);
    const write = async (branch: string, files: Record<string, string>) => {
      await gitOk(['checkout', '-q', '-B', branch], { cwd: work });
      for (const [name, content] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(work, name)), { recursive: true });
        writeFileSync(path.join(work, name), content);
      }
      await gitOk(['add', '-A'], { cwd: work });
      await gitOk(['commit', '-q', '-m', branch], { cwd: work });
      await gitOk(['push', '-q', 'origin', `HEAD:refs/heads/${branch}`], { cwd: work });
      return (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
    };
    const main = await write('main', {
      'deploy/app.yaml': APP_YAML,
      'deploy/values.yaml': 'greeting: hey\n',
    });
    const patched = await t.request('PATCH', `/api/projects/${web.body.id}/deployments/prod`, {
      token: t.adminToken,
      body: { commit_sha: main },
    });
    expect(patched.status).toBe(200);
    await eventually(
      async () =>
        (await fetch(`${t.baseUrl}/apps/admin/web/prod/`).then((r) => r.text())) === 'hey from prod',
      120_000,
      'web/prod served from deploy/',
    );
    const head = await write('ciao', { 'deploy/prod.values.yaml': 'greeting: ciao\n' });
    const mr = await t.request('POST', `/api/projects/${web.body.id}/merge-requests`, {
      token: t.adminToken,
      body: { source_branch: 'ciao', target_branch: 'main', title: 'ciao' },
    });
    expect(mr.status).toBe(201);
    const run = await eventually(
      async () => {
        const d = (
          await t.request('GET', `/api/projects/${web.body.id}/merge-requests/${mr.body.number}`, {
            token: t.adminToken,
          })
        ).body as MrDetail;
        return d.head_sha === head ? d.checks.runs[0] : undefined;
      },
      60_000,
      'the deploy/ check',
    );
    expect(run).toMatchObject({
      name: 'deploy/diff',
      conclusion: 'neutral',
      summary: '1 environment would change: web/prod',
    });
    expect(run.text).toContain('+  GREETING: ciao from prod');
  }, 180_000);
});
