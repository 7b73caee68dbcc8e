/**
 * Ops repositories: admin CRUD and sync (a project on this platform read from disk; external URLs
 * through the outbound guard), a deployment rendered from apps/<project>/ with values.yaml ←
 * <env>.values.yaml ← values_override, and the diff of a changed ops repo before it is applied.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, eventually, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';

const SERVER_JS = `require('node:http').createServer((q, s) => { s.writeHead(200); s.end(process.env.GREETING); })
  .listen(Number(process.env.PORT), '127.0.0.1');`;

describe.skipIf(servicesMissing)('deployer: ops repos', () => {
  let t: TestPlatform;
  let dev: { id: string; token: string };
  const tmp = tempDir('platform-deploy-ops-');
  let opsWork: string;
  let opsRepoId: string;

  async function commit(dir: string, files: Record<string, string>, message: string) {
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      writeFileSync(path.join(dir, name), content);
    }
    await gitOk(['add', '-A'], { cwd: dir });
    await gitOk(['commit', '-q', '-m', message], { cwd: dir });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: dir });
  }

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    t.platform.startBackground();
    dev = await t.createUser('dev', ['developer']);
    const ops = await t.request('POST', '/api/projects', { token: t.adminToken, body: { name: 'ops' } });
    expect(ops.status).toBe(201);
    opsWork = path.join(tmp.dir, 'ops');
    await gitOk(['clone', authUrl(t.baseUrl, 'admin', t.adminToken, '/admin/ops.git'), opsWork]);
    await commit(
      opsWork,
      {
        'apps/shop/app.yaml':
          'kind: LocalProcess\ncommand: node\nargs: [server.js]\nenv:\n  GREETING: "{{ values.greeting }} from {{ environment }}"\n',
        'apps/shop/values.yaml': 'greeting: hello\n',
        'apps/shop/staging.values.yaml': 'greeting: hi\n',
        'apps/other/app.yaml': 'kind: LocalProcess\ncommand: "false"\n',
      },
      'ops layout',
    );
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  it('admin CRUD: a local project is recognised, external internal URLs and credentials in URLs are refused, non-admins too', async () => {
    const created = await t.request('POST', '/api/admin/ops-repos', {
      token: t.adminToken,
      body: { name: 'main-ops', repo_url: `${t.baseUrl}/admin/ops.git`, sync_interval_seconds: 3600 },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'main-ops',
      branch: 'main',
      path: '',
      last_sync_status: null,
    });
    expect(created.body.project_id).toBeTruthy();
    opsRepoId = created.body.id;

    const synced = await t.request('POST', `/api/admin/ops-repos/${opsRepoId}/sync`, { token: t.adminToken });
    expect(synced.status).toBe(200);
    const head = (await gitOk(['rev-parse', 'HEAD'], { cwd: opsWork })).trim();
    expect(synced.body).toMatchObject({
      last_sync_status: 'success',
      last_sync_sha: head,
      last_sync_error: null,
    });

    for (const repo_url of [
      'http://127.0.0.1:9/ops.git',
      'https://user:secret@example.com/ops.git',
      'file:///etc',
    ]) {
      const refused = await t.request('POST', '/api/admin/ops-repos', {
        token: t.adminToken,
        body: { name: 'bad', repo_url },
      });
      expect(refused.status, repo_url).toBe(422);
      expect(refused.body.error.reason).toBe('deploy.ops_repo_url_refused');
      expect(JSON.stringify(refused.body)).not.toContain('secret@');
    }
    const dup = await t.request('POST', '/api/admin/ops-repos', {
      token: t.adminToken,
      body: { name: 'main-ops', repo_url: 'admin/ops' },
    });
    expect(dup.status).toBe(409);
    expect(
      (
        await t.request('POST', '/api/admin/ops-repos', {
          token: dev.token,
          body: { name: 'x', repo_url: 'admin/ops' },
        })
      ).status,
    ).toBe(403);

    const second = await t.request('POST', '/api/admin/ops-repos', {
      token: t.adminToken,
      body: { name: 'spare', repo_url: 'admin/ops', branch: 'nope' },
    });
    expect(second.status).toBe(201);
    const failedSync = await t.request('POST', `/api/admin/ops-repos/${second.body.id}/sync`, {
      token: t.adminToken,
    });
    expect(failedSync.body).toMatchObject({ last_sync_status: 'failure' });
    expect(failedSync.body.last_sync_error).toContain('sync of ops repo spare failed');
    const renamed = await t.request('PATCH', `/api/admin/ops-repos/${second.body.id}`, {
      token: t.adminToken,
      body: { name: 'spare-2' },
    });
    expect(renamed.body.name).toBe('spare-2');
    const list = await t.request('GET', '/api/admin/ops-repos', { token: t.adminToken });
    expect(list.body.items.map((r: { name: string }) => r.name).sort()).toEqual(['main-ops', 'spare-2']);
    expect(
      (await t.request('DELETE', `/api/admin/ops-repos/${second.body.id}`, { token: t.adminToken })).status,
    ).toBe(204);
    expect(
      (await t.request('GET', `/api/admin/ops-repos/${second.body.id}`, { token: t.adminToken })).status,
    ).toBe(404);
  });

  it('a deployment rendered from the ops repo with environment values and an override; the diff shows an ops change before it is applied', async () => {
    const shop = await t.request('POST', '/api/projects', { token: dev.token, body: { name: 'shop' } });
    const projectId = shop.body.id;
    const work = path.join(tmp.dir, 'shop');
    await gitOk(['clone', authUrl(t.baseUrl, 'dev', dev.token, '/dev/shop.git'), work]);
    await commit(
      work,
      {
        '.platform.yaml':
          'pipeline:\n  steps:\n    - name: bundle\n      commands: ["tar czf app.tgz -C app ."]\n      publish: { artifact: app.tgz, environment: staging }\n',
        'app/server.js': SERVER_JS,
      },
      'app without deploy/',
    );
    const base = `/api/projects/${projectId}/deployments/staging`;
    // No ops repo and no deploy/ directory: failed with that reason.
    const failed = await eventually(
      async () => {
        const d = (await t.request('GET', base, { token: dev.token })).body;
        return d.current_status === 'failed' ? d : undefined;
      },
      120_000,
      'the first deploy to fail',
    );
    expect(failed.status_message).toMatch(/^deploy\/ does not exist at [0-9a-f]{12}$/);
    // deployment.changed reaches the notifications of whoever published.
    await eventually(
      async () => {
        const n = await t.request('GET', '/api/notifications?type=deployment.failed', { token: dev.token });
        return n.body.items.some((i: { subject: string }) => i.subject === 'Deployment to staging: failed');
      },
      30_000,
      'the deployment.failed notification',
    );

    const patched = await t.request('PATCH', base, { token: dev.token, body: { ops_repo_id: opsRepoId } });
    expect(patched.status).toBe(200);
    const url = `${t.baseUrl}/apps/dev/shop/staging/`;
    await eventually(
      async () => (await fetch(url).then((r) => r.text())) === 'hi from staging',
      120_000,
      'served from the ops repo',
    );
    const d = await eventually(async () => {
      const r = (await t.request('GET', base, { token: dev.token })).body;
      return r.current_status === 'healthy' ? r : undefined;
    }, 30_000);
    expect(d.current_ops_sha).toBe((await gitOk(['rev-parse', 'HEAD'], { cwd: opsWork })).trim());

    await commit(opsWork, { 'apps/shop/staging.values.yaml': 'greeting: howdy\n' }, 'greeting');
    const diff = await t.request('GET', `${base}/diff`, { token: dev.token });
    expect(diff.status).toBe(200);
    expect(diff.body.changed).toBe(true);
    expect(diff.body.diff).toContain('-  GREETING: hi from staging');
    expect(diff.body.diff).toContain('+  GREETING: howdy from staging');
    expect(diff.body.current).toContain('GREETING: hi from staging');

    // The admin's sync rolls the new commit out.
    expect(
      (await t.request('POST', `/api/admin/ops-repos/${opsRepoId}/sync`, { token: t.adminToken })).status,
    ).toBe(200);
    await eventually(
      async () => (await fetch(url).then((r) => r.text())) === 'howdy from staging',
      120_000,
      'ops change applied',
    );

    await t.request('PATCH', base, { token: dev.token, body: { values_override: { greeting: 'override' } } });
    await eventually(
      async () => (await fetch(url).then((r) => r.text())) === 'override from staging',
      120_000,
      'override applied',
    );

    // A stranger to the private project sees 404; a reader cannot promote.
    const stranger = await t.createUser('stranger');
    expect((await t.request('GET', base, { token: stranger.token })).status).toBe(404);
  }, 300_000);
});
