/**
 * Preview environments: an MR's pipeline that publishes to `preview` gets `preview-<slug>` of its
 * source branch (DNS-safe, ≤ 63), deployed from the artifact it published; closing the MR tears it
 * down (stopped by the system), and so does the TTL.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEPLOY_LOOPS } from '../src/deployer/index.js';
import { previewEnvironment } from '../src/deployer/previews.js';
import { createTestPlatform, eventually, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';

describe('preview environment names', () => {
  it('are DNS labels of at most 63 characters, distinct for long branches', () => {
    expect(previewEnvironment('feature/Login_Page')).toBe('preview-feature-login-page');
    expect(previewEnvironment('refs/heads/fix--x')).toBe('preview-fix-x');
    expect(previewEnvironment('___')).toBe('preview-branch');
    const long1 = previewEnvironment(`feature/${'a'.repeat(80)}-one`);
    const long2 = previewEnvironment(`feature/${'a'.repeat(80)}-two`);
    for (const n of [long1, long2]) {
      expect(n.length).toBeLessThanOrEqual(63);
      expect(n).toMatch(/^preview-[a-z0-9]([a-z0-9-]{0,53}[a-z0-9])?$/);
    }
    expect(long1).not.toBe(long2);
  });
});

describe.skipIf(servicesMissing)('deployer: preview environments', () => {
  let t: TestPlatform;
  let dev: { id: string; token: string };
  let projectId: string;
  let work: string;
  const tmp = tempDir('platform-deploy-preview-');

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    t.platform.startBackground();
    dev = await t.createUser('pat', ['developer']);
    const res = await t.request('POST', '/api/projects', { token: dev.token, body: { name: 'site' } });
    projectId = res.body.id;
    work = path.join(tmp.dir, 'work');
    await gitOk(['clone', authUrl(t.baseUrl, 'pat', dev.token, '/pat/site.git'), work]);
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
    await gitOk(['commit', '-q', '-m', 'preview me'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/feature/New_Thing'], { cwd: work });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  it("an MR's pipeline publishes its preview; closing the MR tears it down; so does the TTL", async () => {
    const mr = await t.request('POST', `/api/projects/${projectId}/merge-requests`, {
      token: dev.token,
      body: { source_branch: 'feature/New_Thing', target_branch: 'main', title: 'new thing' },
      noAuditCheck: true,
    });
    expect(mr.status).toBe(201);
    const env = 'preview-feature-new-thing';
    const url = `${t.baseUrl}/apps/pat/site/${env}/`;
    await eventually(
      async () => (await fetch(url).then((r) => r.text())) === `preview of ${env}`,
      120_000,
      'the preview',
    );
    const db = t.platform.drivers.db.db;
    const preview = await db
      .selectFrom('preview_environments')
      .selectAll()
      .where('environment', '=', env)
      .executeTakeFirstOrThrow();
    expect(preview).toMatchObject({ status: 'active', branch: 'feature/New_Thing', mr_id: mr.body.id });
    expect(preview.expires_at).not.toBeNull();

    const closed = await t.request('PATCH', `/api/projects/${projectId}/merge-requests/${mr.body.number}`, {
      token: dev.token,
      body: { status: 'closed' },
      noAuditCheck: true,
    });
    expect(closed.status).toBe(200);
    await eventually(async () => (await fetch(url)).status === 503, 60_000, 'the preview stopped');
    const d = await eventually(async () => {
      const r = (
        await t.request('GET', `/api/projects/${projectId}/deployments/${env}`, { token: dev.token })
      ).body;
      return r.current_status === 'stopped' ? r : undefined;
    }, 30_000);
    expect(d).toMatchObject({ desired_status: 'stopped', current_status: 'stopped' });
    expect(d.history[0]).toMatchObject({ action: 'stop', result: 'success', actor_id: null });
    expect(
      (
        await db
          .selectFrom('preview_environments')
          .select('status')
          .where('environment', '=', env)
          .executeTakeFirstOrThrow()
      ).status,
    ).toBe('torn_down');

    // TTL: a preview past its expiry is torn down by the loop.
    await db
      .updateTable('preview_environments')
      .set({ status: 'active', torn_down_at: null, expires_at: sql<Date>`now() - interval '1 minute'` })
      .where('environment', '=', env)
      .execute();
    await t.request('PATCH', `/api/projects/${projectId}/deployments/${env}`, {
      token: dev.token,
      body: { desired_status: 'active' },
    });
    await eventually(async () => (await fetch(url)).status === 200, 60_000, 'the preview back');
    await t.platform.scheduler.runNow(DEPLOY_LOOPS.previewTtl);
    await eventually(async () => (await fetch(url)).status === 503, 60_000, 'the expired preview stopped');
    expect(
      (
        await db
          .selectFrom('preview_environments')
          .select('status')
          .where('environment', '=', env)
          .executeTakeFirstOrThrow()
      ).status,
    ).toBe('torn_down');
  }, 300_000);
});
