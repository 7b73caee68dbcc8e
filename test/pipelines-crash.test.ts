/**
 * SIGKILL of the real server (`platform serve`) while a pipeline step runs, then a restart: the
 * pipeline ends as `failure` ("interrupted"), never stays `running`, and the step's processes are
 * gone (the sandbox dies with the platform; unsandboxed leftovers are killed by the restarted
 * instance from the recorded process groups — see src/runners/local.test.ts).
 */
import { writeFileSync } from 'node:fs';
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

const ADMIN_PASSWORD = 'pipeline-crash-admin-password';

describe.skipIf(servicesMissing)(`pipeline interrupted by a crash (${storeMode})`, () => {
  let external: ExternalStores | undefined;
  const marker = `7373.${process.pid}`;

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

  it('SIGKILL mid-step, restart: the pipeline fails as interrupted and its step processes are gone', async () => {
    const dataDir = makeTempDir('platform-pipeline-crash-');
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env: Record<string, string> = {
      PLATFORM_DATA_DIR: dataDir,
      PLATFORM_PORT: String(port),
      PLATFORM_HOST: '127.0.0.1',
      PLATFORM_PUBLIC_URL: base,
      PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
      PLATFORM_LOG_LEVEL: 'info',
      PLATFORM_PIPELINE_LEASE_SECONDS: '5',
    };
    if (storeMode === 'postgres') {
      external = await createExternalStores();
      Object.assign(env, external.env);
    }
    let server = startCli(['serve'], env);
    await waitForHttp(`${base}/readyz`, server, { timeoutMs: 90_000 });
    const session = await login(base, 'admin', ADMIN_PASSWORD);
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
    const tokenRes = await api('POST', '/api/tokens', { name: 'crash' });
    expect(tokenRes.status).toBe(201);
    const token = tokenRes.body.token as string;
    const project = await api('POST', '/api/projects', { name: 'crashing' });
    expect(project.status).toBe(201);
    const projectId = project.body.id as string;

    const work = path.join(makeTempDir('platform-crash-work-'), 'work');
    await gitOk(['clone', authUrl(base, 'admin', token, '/admin/crashing.git'), work]);
    writeFileSync(
      path.join(work, '.platform.yaml'),
      `pipeline:\n  steps:\n    - name: long\n      commands: ["(sleep ${marker}) &", "sleep ${marker}"]\n    - name: after\n      depends_on: [long]\n      commands: ["true"]\n`,
    );
    await gitOk(['add', '-A'], { cwd: work });
    await gitOk(['commit', '-q', '-m', 'long build'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work });

    await eventually(async () => processesWith(marker).length >= 2, 30_000, 'the step processes');
    const list = await api('GET', `/api/projects/${projectId}/pipelines`);
    const pipeline = (list.body.items as { id: string; status: string }[])[0]!;
    expect(pipeline.status).toBe('running');

    await server.kill();
    // The sandbox dies with the platform (its launcher goes with it), and every step process in it.
    await eventually(async () => processesWith(marker).length === 0, 15_000, 'the sandbox gone');

    server = startCli(['serve'], env);
    await waitForHttp(`${base}/readyz`, server, { timeoutMs: 90_000 });
    const again = await login(base, 'admin', ADMIN_PASSWORD);
    const get = async () => {
      const res = await fetch(`${base}/api/projects/${projectId}/pipelines/${pipeline.id}`, {
        headers: { cookie: again.cookie! },
      });
      return (await res.json()) as {
        status: string;
        error: string;
        steps: { name: string; status: string; error: string }[];
      };
    };
    const recovered = await eventually<Awaited<ReturnType<typeof get>> | undefined>(
      async () => {
        const p = await get();
        return p.status !== 'running' ? p : undefined;
      },
      30_000,
      'the pipeline to leave running',
    );
    if (!recovered) throw new Error('unreachable');
    expect(recovered.status).toBe('failure');
    expect(recovered.error).toBe('interrupted: the platform stopped while it ran');
    expect(recovered.steps.map((s) => [s.name, s.status])).toEqual([
      ['long', 'failure'],
      ['after', 'skipped'],
    ]);
    expect(recovered.steps[0]!.error).toContain('interrupted');
    await eventually(
      async () => processesWith(marker).length === 0,
      15_000,
      'the step processes to be killed',
    );

    server.signal('SIGTERM');
    expect(await server.waitForExit(30_000)).toEqual({ code: 0, signal: null });
  }, 240_000);
});
