/**
 * SIGKILL of the real server (`platform serve`) while an agent session runs, then a restart: the
 * reaper finds the session whose runner vanished (its lease ran out), marks it failed and retires
 * its identity (the agent's token answers 401, the agent user is inactive); the agent's processes
 * are gone.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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

const ADMIN_PASSWORD = 'agent-restart-admin-password';
const fixtures = path.dirname(fileURLToPath(new URL('./fixtures/fake-claude.mjs', import.meta.url)));

describe.skipIf(servicesMissing)(`agent session interrupted by a crash (${storeMode})`, () => {
  let external: ExternalStores | undefined;
  const marker = `agent-restart-${randomBytes(5).toString('hex')}`;

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

  it('SIGKILL mid-session, restart: the reaper fails the session and retires its identity', async () => {
    const reported: string[] = [];
    const reports = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        reported.push(body);
        res.end();
      });
    });
    await new Promise<void>((r) => reports.listen(0, '127.0.0.1', r));
    const dataDir = makeTempDir('platform-agent-crash-');
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env: Record<string, string> = {
      PLATFORM_DATA_DIR: dataDir,
      PLATFORM_PORT: String(port),
      PLATFORM_HOST: '127.0.0.1',
      PLATFORM_PUBLIC_URL: base,
      PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
      PLATFORM_LOG_LEVEL: 'info',
      PLATFORM_RUNNER_READONLY_PATHS: fixtures,
    };
    if (storeMode === 'postgres') {
      external = await createExternalStores();
      Object.assign(env, external.env);
    }
    let server = startCli(['serve'], env);
    await waitForHttp(`${base}/readyz`, server, { timeoutMs: 90_000 });
    const session = await login(base, 'admin', ADMIN_PASSWORD);
    const api = async (method: string, url: string, body?: unknown, token?: string) => {
      const res = await fetch(`${base}${url}`, {
        method,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : { cookie: session.cookie!, origin: base }),
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
    };
    const tokenRes = await api('POST', '/api/tokens', { name: 'crash' });
    const token = tokenRes.body.token as string;
    expect(
      (await api('PATCH', '/api/agent-settings', { claude_command: path.join(fixtures, 'fake-claude.mjs') }))
        .status,
    ).toBe(200);
    const project = await api('POST', '/api/projects', { name: 'agentic' });
    const projectId = project.body.id as string;
    for (const [name, value] of [
      ['FAKE_MARKER', marker],
      ['FAKE_REPORT_URL', `http://127.0.0.1:${(reports.address() as AddressInfo).port}/`],
    ]) {
      expect(
        (await api('POST', `/api/projects/${projectId}/secrets`, { name, value, scope: 'agent' })).status,
      ).toBe(201);
    }
    const work = path.join(makeTempDir('platform-agent-crash-work-'), 'work');
    await gitOk(['clone', authUrl(base, 'admin', token, '/admin/agentic.git'), work]);
    await gitOk(['checkout', '-q', '-B', 'main'], { cwd: work });
    writeFileSync(path.join(work, 'README.md'), 'hello\n');
    await gitOk(['add', '-A'], { cwd: work });
    await gitOk(['-c', 'user.name=a', '-c', 'user.email=a@x', 'commit', '-q', '-m', 'init'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work });

    const created = await api('POST', `/api/projects/${projectId}/sessions`, {
      prompt: '[scenario:group] stay',
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const sid = created.body.id as string;
    await eventually(() => processesWith(marker).length > 0, 60_000, 'the agent running');
    const running = await api('GET', `/api/projects/${projectId}/sessions/${sid}`);
    expect(running.body.status).toBe('running');
    const agentUserId = running.body.agent_user_id as string;
    const agentToken = await eventually(() => reported[0], 30_000, 'the agent token');
    expect((await api('GET', '/api/auth/me', undefined, agentToken)).status).toBe(200);

    await server.kill();
    await eventually(() => processesWith(marker).length === 0, 30_000, 'the sandbox gone with the platform');

    server = startCli(['serve'], env);
    await waitForHttp(`${base}/readyz`, server, { timeoutMs: 90_000 });
    const recovered = await eventually(
      async () => {
        const s = await api('GET', `/api/projects/${projectId}/sessions/${sid}`, undefined, token);
        return s.body.status !== 'running' ? s.body : undefined;
      },
      60_000,
      'the session to leave running',
    );
    if (!recovered) throw new Error('unreachable: eventually returns a truthy value');
    expect(recovered).toMatchObject({ status: 'failed' });
    expect(String(recovered.error)).toContain('runner vanished');
    await eventually(
      async () => (await api('GET', '/api/auth/me', undefined, agentToken)).status === 401,
      30_000,
      'the agent token revoked',
    );
    const agent = await api('GET', `/api/users/${agentUserId}`, undefined, token);
    expect(agent.body).toMatchObject({ user_type: 'agent', is_active: false });
    expect(processesWith(marker)).toEqual([]);
    reports.close();

    server.signal('SIGTERM');
    expect(await server.waitForExit(30_000)).toEqual({ code: 0, signal: null });
  }, 240_000);
});
