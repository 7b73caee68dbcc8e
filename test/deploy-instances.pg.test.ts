/**
 * `/apps/<owner>/<name>/<env>/…` answered by any instance: two platforms on one PostgreSQL; the one
 * running the deployed process records its address (PLATFORM_INSTANCE_ADDRESS:port) in the
 * deployment's runtime state, and the other proxies there with the same credential stripping and
 * CSP; a stopped deployment is a 503 on both.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPlatform,
  createTestStore,
  eventually,
  servicesMissing,
  type TestPlatform,
  type TestStore,
} from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';

// Answers the path, the body, and the credentials it was handed.
const APP_YAML = `kind: LocalProcess
command: node
args:
  - "-e"
  - "require('node:http').createServer((q, s) => { let b = ''; q.on('data', (c) => b += c); q.on('end', () => { s.writeHead(200, { 'set-cookie': ['platform_session=stolen', 'app=1'] }); s.end(JSON.stringify({ greeting: process.env.GREETING, url: q.url, body: b, cookie: q.headers.cookie ?? null, authorization: q.headers.authorization ?? null })); }); }).listen(Number(process.env.PORT), '127.0.0.1')"
env:
  GREETING: "{{ values.greeting }}"
`;

describe.skipIf(servicesMissing)('deployer: the /apps proxy on two instances', () => {
  let store: TestStore;
  let a: TestPlatform;
  let b: TestPlatform;
  let projectId: string;
  const tmp = tempDir('platform-deploy-instances-');

  beforeAll(async () => {
    store = await createTestStore('postgres');
    a = await createTestPlatform({ store, listen: true, config: { PLATFORM_INSTANCE_ADDRESS: '127.0.0.1' } });
    // b runs no background loops: it never runs the process, it only answers requests.
    b = await createTestPlatform({ store, listen: true, bare: true });
    a.platform.startBackground();
    const web = await a.request('POST', '/api/projects', { token: a.adminToken, body: { name: 'web' } });
    expect(web.status).toBe(201);
    projectId = web.body.id;
    const work = path.join(tmp.dir, 'web');
    await gitOk(['clone', authUrl(a.baseUrl, 'admin', a.adminToken, '/admin/web.git'), work]);
    mkdirSync(path.join(work, 'deploy'), { recursive: true });
    writeFileSync(path.join(work, 'deploy/app.yaml'), APP_YAML);
    writeFileSync(path.join(work, 'deploy/values.yaml'), 'greeting: hello\n');
    await gitOk(['add', '-A'], { cwd: work });
    await gitOk(['commit', '-q', '-m', 'deploy'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work });
    const sha = (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
    const patched = await a.request('PATCH', `/api/projects/${projectId}/deployments/prod`, {
      token: a.adminToken,
      body: { commit_sha: sha },
    });
    expect(patched.status).toBe(200);
    await eventually(
      async () =>
        (await a.request('GET', `/api/projects/${projectId}/deployments/prod`, { token: a.adminToken })).body
          .current_status === 'healthy',
      120_000,
      'healthy on instance a',
    );
  }, 180_000);
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await store?.drop();
    tmp.cleanup();
  });

  it('the instance not running the process answers with the app, through the recorded address', async () => {
    const row = await b.platform.drivers.db.db
      .selectFrom('deployments')
      .select(['id', 'runtime', 'lease_holder'])
      .where('project_id', '=', projectId)
      .executeTakeFirstOrThrow();
    expect(row.runtime).toMatchObject({ target: 'local', host: '127.0.0.1', route_key: 'admin/web/prod' });
    expect(row.lease_holder).toBe(a.platform.scheduler.instanceId);
    expect(b.platform.services.deployer.live(row.id)).toMatchObject({ serving_here: false });
    expect(a.platform.services.deployer.live(row.id)).toMatchObject({ serving_here: true });

    const res = await fetch(`${b.baseUrl}/apps/admin/web/prod/hello?x=1`, {
      headers: { cookie: 'platform_session=secret; theme=dark', authorization: `Bearer ${a.adminToken}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toMatch(/^sandbox allow-scripts/);
    expect(res.headers.getSetCookie()).toEqual(['app=1']);
    const body = await res.json();
    expect(body).toEqual({
      greeting: 'hello',
      url: '/hello?x=1',
      body: '',
      cookie: 'theme=dark',
      authorization: null,
    });

    const posted = await fetch(`${b.baseUrl}/apps/admin/web/prod/form`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'a=1&b=2',
    });
    expect(posted.status).toBe(200);
    expect(await posted.json()).toMatchObject({ url: '/form', body: 'a=1&b=2' });

    // Both instances give the same answer; an unknown deployment is a 404 on b too.
    const viaA = await fetch(`${a.baseUrl}/apps/admin/web/prod/hello?x=1`).then((r) => r.json());
    expect(viaA).toMatchObject({ greeting: 'hello', url: '/hello?x=1' });
    expect((await fetch(`${b.baseUrl}/apps/admin/web/nope/`)).status).toBe(404);
  });

  it('a stopped deployment is a 503 on both instances', async () => {
    const stopped = await a.request('PATCH', `/api/projects/${projectId}/deployments/prod`, {
      token: a.adminToken,
      body: { desired_status: 'stopped' },
    });
    expect(stopped.status).toBe(200);
    await eventually(
      async () => (await fetch(`${a.baseUrl}/apps/admin/web/prod/`)).status === 503,
      60_000,
      'a stops serving',
    );
    const res = await fetch(`${b.baseUrl}/apps/admin/web/prod/`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unavailable');
  }, 90_000);
});
