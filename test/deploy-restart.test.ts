/**
 * SIGKILL of a real `platform serve` in the middle of a local cut-over (the new version is started
 * and not healthy yet), then a restart: the processes died with the platform, the restarted
 * instance takes the deployment again from the database and ends with exactly one version serving
 * (the desired one), its state consistent and its history truthful.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, servicesMissing, storeMode } from './helpers/app.js';
import { authUrl, gitOk } from './helpers/git.js';
import {
  createExternalStores,
  type ExternalStores,
  freePort,
  killAllChildren,
  login,
  makeTempDir,
  processesWith,
  removeTempDirs,
  startCli,
  waitForHttp,
} from './helpers/process.js';

const ADMIN_PASSWORD = 'deploy-restart-admin-password';

/** The `node server.js <marker>` processes themselves (not the bubblewrap around them). */
function appProcesses(marker: string): number[] {
  return processesWith(marker).filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return path.basename(argv[0] ?? '') === 'node' && argv[1] === 'server.js';
    } catch {
      return false;
    }
  });
}

const SERVER_JS = `
const http = require('node:http');
const started = Date.now();
const delay = Number(process.env.READY_AFTER_MS);
http.createServer((req, res) => {
  if (req.url === '/health') { const ok = Date.now() - started >= delay; res.writeHead(ok ? 200 : 503); res.end(); return; }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ version: process.env.VERSION }));
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

describe.skipIf(servicesMissing)(`deployer: platform killed mid cut-over (${storeMode})`, () => {
  let external: ExternalStores | undefined;
  const marker = `dpl${process.pid}`;

  afterEach(async () => {
    await killAllChildren();
    for (const pid of processesWith(marker)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await external?.drop();
    external = undefined;
    removeTempDirs();
  });

  it('SIGKILL while the new version waits for health, restart: exactly one version serves, state consistent', async () => {
    const dataDir = makeTempDir('platform-deploy-restart-');
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env: Record<string, string> = {
      PLATFORM_DATA_DIR: dataDir,
      PLATFORM_PORT: String(port),
      PLATFORM_HOST: '127.0.0.1',
      PLATFORM_PUBLIC_URL: base,
      PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
      PLATFORM_LOG_LEVEL: 'info',
    };
    if (storeMode === 'postgres') {
      external = await createExternalStores();
      Object.assign(env, external.env);
    }
    let server = startCli(['serve'], env);
    await waitForHttp(`${base}/readyz`, server, { timeoutMs: 90_000 });
    let session = await login(base, 'admin', ADMIN_PASSWORD);
    const api = async (method: string, url: string, body?: unknown) => {
      const res = await fetch(`${base}${url}`, {
        method,
        headers: {
          cookie: session.cookie!,
          origin: base,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const tokenRes = await api('POST', '/api/tokens', { name: 'deploy' });
    const token = tokenRes.body.token as string;
    const project = await api('POST', '/api/projects', { name: 'crashy' });
    expect(project.status).toBe(201);
    const projectId = project.body.id as string;
    const deployment = async () => (await api('GET', `/api/projects/${projectId}/deployments/staging`)).body;
    const appUrl = `${base}/apps/admin/crashy/staging/`;
    const serving = async (): Promise<string | null> => {
      try {
        const res = await fetch(appUrl);
        return res.status === 200 ? ((await res.json()) as { version: string }).version : null;
      } catch {
        return null;
      }
    };

    const work = path.join(makeTempDir('platform-deploy-restart-work-'), 'work');
    await gitOk(['clone', authUrl(base, 'admin', token, '/admin/crashy.git'), work]);
    const release = async (version: string, readyAfterMs: number) => {
      const files: Record<string, string> = {
        '.platform.yaml':
          'pipeline:\n  steps:\n    - name: bundle\n      commands: ["tar czf app.tgz -C app ."]\n      publish: { artifact: app.tgz, environment: staging }\n',
        'app/server.js': SERVER_JS,
        'deploy/app.yaml': `kind: LocalProcess\ncommand: node\nargs: [server.js, "${marker}-{{ values.version }}"]\nenv:\n  VERSION: "{{ values.version }}"\n  READY_AFTER_MS: "{{ values.ready_after_ms }}"\nhealth_path: /health\nreadiness_timeout_seconds: 60\n`,
        'deploy/values.yaml': `version: ${version}\nready_after_ms: ${readyAfterMs}\n`,
      };
      for (const [name, content] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(work, name)), { recursive: true });
        writeFileSync(path.join(work, name), content);
      }
      await gitOk(['add', '-A'], { cwd: work });
      await gitOk(['commit', '-q', '-m', version], { cwd: work });
      await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work });
      return (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
    };

    await release('v1', 0);
    await eventually(async () => (await serving()) === 'v1', 120_000, 'v1 to serve');
    const sha2 = await release('v2', 8_000);
    // The cut-over has begun: v2 runs (not healthy yet), v1 still serves.
    await eventually(async () => processesWith(`${marker}-v2`).length > 0, 120_000, 'v2 started');
    expect((await deployment()).current_status).toBe('syncing');
    expect(await serving()).toBe('v1');

    await server.kill();
    // Every deployed process goes with the platform (launcher and bubblewrap's --die-with-parent).
    await eventually(async () => processesWith(marker).length === 0, 20_000, 'deployed processes gone');

    server = startCli(['serve'], env);
    await waitForHttp(`${base}/readyz`, server, { timeoutMs: 90_000 });
    session = await login(base, 'admin', ADMIN_PASSWORD);
    const settled = await eventually(
      async () => {
        const d = await deployment();
        return d.current_status === 'healthy' && d.observed_generation === d.generation ? d : undefined;
      },
      150_000,
      'the deployment reconciled after the restart',
    );
    expect(settled).toMatchObject({ commit_sha: sha2, desired_status: 'active', target: 'local' });
    for (let i = 0; i < 10; i++) expect(await serving()).toBe('v2');
    expect(processesWith(`${marker}-v1`)).toEqual([]);
    // Exactly one v2 app process (inside its one sandbox).
    expect(appProcesses(`${marker}-v2`)).toHaveLength(1);

    const history = (await api('GET', `/api/projects/${projectId}/deployments/staging/history`)).body
      .items as {
      action: string;
      result: string;
      commit_sha: string;
    }[];
    expect(history.map((h) => [h.action, h.result])).toEqual([
      ['deploy', 'success'],
      ['deploy', 'success'],
    ]);
    expect(history[0]!.commit_sha).toBe(sha2);

    // A restart of a healthy deployment: started again from the database state, as the system.
    await server.kill();
    await eventually(async () => processesWith(marker).length === 0, 20_000, 'deployed processes gone');
    server = startCli(['serve'], env);
    await waitForHttp(`${base}/readyz`, server, { timeoutMs: 90_000 });
    session = await login(base, 'admin', ADMIN_PASSWORD);
    await eventually(async () => (await serving()) === 'v2', 150_000, 'v2 served again');
    expect(appProcesses(`${marker}-v2`)).toHaveLength(1);
    const after = (await api('GET', `/api/projects/${projectId}/deployments/staging/history`)).body.items as {
      action: string;
      actor_id: string | null;
      message: string;
    }[];
    expect(after[0]).toMatchObject({
      action: 'deploy',
      actor_id: null,
      message: 'restarted from the database state after a platform restart',
    });
  }, 480_000);
});
