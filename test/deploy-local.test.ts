/**
 * The deployer's local target end to end: a real tiny HTTP app built and published by a real
 * pipeline, rendered from the project's own deploy/ directory, started in the step sandbox behind
 * the /apps/<owner>/<name>/<env>/ reverse proxy. A client polls every 20 ms through every cut-over.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, eventually, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';

const SERVER_JS = `
const http = require('node:http');
const version = process.env.VERSION;
const healthy = process.env.HEALTHY === 'yes';
http.createServer((req, res) => {
  if (req.url === '/health') { res.writeHead(healthy ? 200 : 500); res.end(healthy ? 'ok' : 'sick'); return; }
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ version, path: req.url, method: req.method, body, uid: process.getuid(), cookie: req.headers.cookie, auth: req.headers.authorization ?? null }));
  });
}).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening ' + version));
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
  HEALTHY: "{{ values.healthy }}"
  PROJECT: "{{ project }}-{{ environment }}"
health_path: /health
readiness_timeout_seconds: {{ values.timeout }}
drain_seconds: 5
`;

interface History {
  action: string;
  result: string;
  actor_id: string | null;
  message: string;
  commit_sha: string | null;
}

describe.skipIf(servicesMissing)('deployer: local target end to end', () => {
  let t: TestPlatform;
  let dev: { id: string; token: string };
  let projectId: string;
  let work: string;
  const tmp = tempDir('platform-deploy-local-');
  let appUrl: string;

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    t.platform.startBackground();
    dev = await t.createUser('ada', ['developer']);
    const res = await t.request('POST', '/api/projects', { token: dev.token, body: { name: 'webapp' } });
    expect(res.status).toBe(201);
    projectId = res.body.id;
    work = path.join(tmp.dir, 'work');
    await gitOk(['clone', authUrl(t.baseUrl, 'ada', dev.token, '/ada/webapp.git'), work]);
    appUrl = `${t.baseUrl}/apps/ada/webapp/staging/`;
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  async function release(values: string, message: string): Promise<string> {
    const files: Record<string, string> = {
      '.platform.yaml': PIPELINE,
      'app/server.js': SERVER_JS,
      'deploy/app.yaml': MANIFEST,
      'deploy/values.yaml': values,
      'deploy/production.values.yaml': 'version: never-used\n',
    };
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(work, name)), { recursive: true });
      writeFileSync(path.join(work, name), content);
    }
    await gitOk(['add', '-A'], { cwd: work });
    await gitOk(['commit', '-q', '--allow-empty', '-m', message], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work });
    return (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
  }

  const deployment = async () =>
    (await t.request('GET', `/api/projects/${projectId}/deployments/staging`, { token: dev.token })).body;
  const history = async (): Promise<History[]> =>
    (await t.request('GET', `/api/projects/${projectId}/deployments/staging/history`, { token: dev.token }))
      .body.items;

  async function serving(): Promise<string | null> {
    try {
      const res = await fetch(appUrl);
      if (res.status !== 200) return null;
      return ((await res.json()) as { version: string }).version;
    } catch {
      return null;
    }
  }

  /** Polls the app every 20 ms and counts every answer that is not a 200 from the app. */
  function poller() {
    let failures = 0;
    let requests = 0;
    const versions = new Set<string>();
    let running = true;
    const loop = (async () => {
      while (running) {
        try {
          const res = await fetch(appUrl);
          const body = (await res.json()) as { version?: string };
          if (res.status !== 200 || !body.version) failures++;
          else versions.add(body.version);
        } catch {
          failures++;
        }
        requests++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    return {
      stop: async () => {
        running = false;
        await loop;
        return { failures, requests, versions };
      },
    };
  }

  it('publish → answers on its route → replaced with 0 failed requests → a sick version rolled back automatically → manual rollback → stop', async () => {
    const sha1 = await release('version: v1\nhealthy: "yes"\ntimeout: 30\n', 'v1');
    await eventually(async () => (await serving()) === 'v1', 120_000, 'v1 to serve').catch(async (err) => {
      console.log(
        JSON.stringify(await deployment(), null, 1),
        await history(),
        t.logLines.slice(-30).join('\n'),
      );
      throw err;
    });
    const d1 = await eventually(async () => {
      const d = await deployment();
      return d.current_status === 'healthy' ? d : undefined;
    }, 30_000);
    expect(d1).toMatchObject({
      current_status: 'healthy',
      desired_status: 'active',
      commit_sha: sha1,
      target: 'local',
    });
    expect(d1.url).toBe(appUrl);
    expect(d1.live.serving_here).toBe(true);

    // The app gets path, query and a streamed body; it runs as the unprivileged sandbox user.
    const echo = await fetch(`${appUrl}some/path?x=1`, {
      method: 'POST',
      body: 'hello body',
      headers: {
        'content-type': 'application/octet-stream',
        cookie: 'platform_session=secret-session; app=1',
        authorization: `Bearer ${dev.token}`,
      },
    });
    expect(echo.headers.get('content-security-policy')).toMatch(/^sandbox /);
    const echoed = (await echo.json()) as {
      path: string;
      method: string;
      body: string;
      uid: number;
      cookie: string;
      auth: string | null;
    };
    // The visitor's platform session and token never reach the app.
    expect(echoed).toMatchObject({
      path: '/some/path?x=1',
      method: 'POST',
      body: 'hello body',
      cookie: 'app=1',
      auth: null,
    });
    if (process.getuid?.() === 0) expect(echoed.uid).not.toBe(0);

    // The process's output is stored as log entries of service <project>-<env>.
    await eventually(
      async () => {
        const rows = await sql<{
          body: string;
        }>`select message as body from log_entries where service = 'webapp-staging'`.execute(
          t.platform.drivers.db.db,
        );
        return rows.rows.some((r) => r.body === 'listening v1');
      },
      60_000,
      'the app log line in the log store',
    );

    const poll = poller();
    const sha2 = await release('version: v2\nhealthy: "yes"\ntimeout: 30\n', 'v2');
    await eventually(async () => (await serving()) === 'v2', 120_000, 'v2 to serve');
    await eventually(async () => (await deployment()).current_status === 'healthy', 30_000);

    // v3 never gets healthy: v2 keeps serving and the deployment is rolled back to it.
    await release('version: v3\nhealthy: "no"\ntimeout: 3\n', 'v3');
    const rolled = await eventually(
      async () => {
        const d = await deployment();
        return d.status_message?.startsWith('rolled_back') ? d : undefined;
      },
      120_000,
      'automatic rollback',
    );
    expect(rolled).toMatchObject({
      current_status: 'healthy',
      commit_sha: sha2,
      status_message: 'rolled_back: health check failed after 3 s',
    });
    expect(rolled.observed_generation).toBe(rolled.generation);
    const { failures, requests, versions } = await poll.stop();
    expect(failures).toBe(0);
    expect(requests).toBeGreaterThan(20);
    expect([...versions].sort()).toEqual(['v1', 'v2']);
    expect(await serving()).toBe('v2');

    // The failed ref is not deployed again by later passes.
    await t.platform.scheduler.runNow('deploy.reconcile');
    expect((await deployment()).generation).toBe(rolled.generation);

    // Manual rollback: the version before v2.
    const rb = await t.request('POST', `/api/projects/${projectId}/deployments/staging/rollback`, {
      token: dev.token,
      body: {},
    });
    expect(rb.status).toBe(202);
    await eventually(async () => (await serving()) === 'v1', 120_000, 'manual rollback to v1');
    await eventually(async () => {
      const d = await deployment();
      return d.desired_status === 'active' && d.current_status === 'healthy' && d.commit_sha === sha1;
    }, 30_000);

    // Stop.
    const stop = await t.request('PATCH', `/api/projects/${projectId}/deployments/staging`, {
      token: dev.token,
      body: { desired_status: 'stopped' },
    });
    expect(stop.status).toBe(200);
    await eventually(async () => (await deployment()).current_status === 'stopped', 60_000, 'stopped');
    const gone = await fetch(appUrl);
    expect(gone.status).toBe(503);
    expect((await deployment()).live.serving_here).toBe(false);

    const h = (await history()).reverse();
    expect(h.map((e) => [e.action, e.result, e.actor_id])).toEqual([
      ['deploy', 'success', dev.id],
      ['deploy', 'success', dev.id],
      ['deploy', 'failure', dev.id],
      ['rollback', 'success', null],
      ['rollback', 'success', dev.id],
      ['stop', 'success', dev.id],
    ]);
    expect(h[2]!.message).toMatch(/^health check failed after 3 s/);
    expect(h[3]!.message).toBe('rolled_back: health check failed after 3 s');
    expect(h[4]!.commit_sha).toBe(sha1);

    // Audited requests.
    const audit = await t.platform.drivers.db.db
      .selectFrom('audit_log')
      .select('action')
      .where('project_id', '=', projectId)
      .where('action', 'like', 'deployment.%')
      .execute();
    expect(audit.map((a) => a.action).sort()).toEqual(['deployment.rollback', 'deployment.update']);
  }, 600_000);

  it('template errors fail the deploy with file and variable named; the diff shows them', async () => {
    const patch = await t.request('PATCH', `/api/projects/${projectId}/deployments/staging`, {
      token: dev.token,
      body: { values_override: { version: 'x\n---\nkind: Evil' }, desired_status: 'active' },
    });
    expect(patch.status).toBe(200);
    const diff = await t.request('GET', `/api/projects/${projectId}/deployments/staging/diff`, {
      token: dev.token,
    });
    expect(diff.status).toBe(200);
    // The injected text stays one scalar of one document.
    expect(diff.body.error).toBeNull();
    expect(diff.body.desired.split(/^---$/m)).toHaveLength(1);
    expect(diff.body.desired).toContain('VERSION: "x\\n---\\nkind: Evil"');

    const reset = await t.request('PATCH', `/api/projects/${projectId}/deployments/staging`, {
      token: dev.token,
      body: { values_override: {} },
    });
    expect(reset.status).toBe(200);
    await release('healthy: "yes"\ntimeout: 30\n', 'no version value');
    const failed = await eventually(
      async () => {
        const d = await deployment();
        return d.current_status === 'failed' || d.status_message?.includes('template error') ? d : undefined;
      },
      120_000,
      'template failure',
    );
    expect(failed.status_message).toContain('deploy/app.yaml:6: variable values.version is not defined');
  }, 300_000);
});
