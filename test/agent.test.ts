/**
 * Agent sessions end to end on the local runner (the pipeline sandbox) with the fake Claude Code
 * (test/fixtures/fake-claude.mjs): the delegated identity, the agent's own clone/commit/push/MR
 * with its token, a refused write elsewhere, the transcript over WebSocket and SSE with replay,
 * a user message to stdin, stop killing the process group, the ending retiring the identity,
 * the concurrency cap and a cost limit.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createTestPlatform, eventually, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';
import { processesWith } from './helpers/process.js';

const fixtures = path.dirname(fileURLToPath(new URL('./fixtures/fake-claude.mjs', import.meta.url)));
const fakeClaude = path.join(fixtures, 'fake-claude.mjs');

interface Msg {
  seq: number;
  role: string;
  kind: string;
  content: string;
  metadata: Record<string, unknown>;
}

describe.skipIf(servicesMissing)('agent sessions (local runner, fake claude-code)', () => {
  let t: TestPlatform;
  const tmp = tempDir('platform-agent-');
  let alice: { id: string; token: string };
  let projectId = '';
  let otherProjectId = '';
  // What the agent reports to the "outside world" (its token), as an exfiltrating agent would.
  const reported: string[] = [];
  let reportServer: Server;
  const noAudit = { noAuditCheck: true };

  async function session(sid: string) {
    const r = await t.request('GET', `/api/projects/${projectId}/sessions/${sid}?limit=1000`, {
      token: alice.token,
    });
    expect(r.status).toBe(200);
    return r.body as {
      status: string;
      stop_reason: string | null;
      messages: Msg[];
      agent_user_id: string;
    } & Record<
      string,
      // biome-ignore lint/suspicious/noExplicitAny: test reads the detail loosely
      any
    >;
  }
  async function start(prompt: string, extra: Record<string, unknown> = {}) {
    const r = await t.request('POST', `/api/projects/${projectId}/sessions`, {
      token: alice.token,
      body: { prompt, ...extra },
      ...noAudit,
    });
    return r;
  }
  const ended = (s: { status: string }) => ['completed', 'failed', 'stopped'].includes(s.status);
  async function untilEnded(sid: string) {
    return eventually(
      async () => {
        const s = await session(sid);
        expect(ended(s), `session is ${s.status}`).toBe(true);
        return s;
      },
      90_000,
      'session end',
    );
  }
  async function expectRetired(agentUserId: string) {
    // The ending (identity retired) completes right after the status changes.
    await t.platform.settle();
    const user = await t.platform.drivers.db.db
      .selectFrom('users')
      .select(['is_active', 'user_type'])
      .where('id', '=', agentUserId)
      .executeTakeFirstOrThrow();
    expect(user).toEqual({ is_active: false, user_type: 'agent' });
    const live = await t.platform.drivers.db.db
      .selectFrom('delegations')
      .select('id')
      .where('delegate_id', '=', agentUserId)
      .where('revoked_at', 'is', null)
      .execute();
    expect(live).toEqual([]);
  }

  beforeAll(async () => {
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
    t = await createTestPlatform({ listen: true, config: { PLATFORM_RUNNER_READONLY_PATHS: fixtures } });
    const settings = await t.request('PATCH', '/api/agent-settings', {
      token: t.adminToken,
      body: { claude_command: fakeClaude, max_running_per_project: 2 },
    });
    expect(settings.status, JSON.stringify(settings.body)).toBe(200);
    alice = await t.createUser('alice', ['developer']);
    const bob = await t.createUser('bob', ['developer']);
    const p = await t.request('POST', '/api/projects', { token: alice.token, body: { name: 'app' } });
    expect(p.status).toBe(201);
    projectId = p.body.id;
    const o = await t.request('POST', '/api/projects', {
      token: bob.token,
      body: { name: 'elsewhere', visibility: 'private' },
    });
    otherProjectId = o.body.id;
    const work = path.join(tmp.dir, 'seed');
    await gitOk(['clone', authUrl(t.baseUrl, 'alice', alice.token, '/alice/app.git'), work]);
    await gitOk(['checkout', '-q', '-B', 'main'], { cwd: work });
    writeFileSync(path.join(work, 'README.md'), '# app\n');
    await gitOk(['add', '-A'], { cwd: work });
    await gitOk(['-c', 'user.name=a', '-c', 'user.email=a@x', 'commit', '-q', '-m', 'init'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work });
    const port = (reportServer.address() as AddressInfo).port;
    for (const [name, value] of [
      ['FAKE_OTHER_PROJECT', otherProjectId],
      ['FAKE_REPORT_URL', `http://127.0.0.1:${port}/report`],
      ['ANTHROPIC_API_KEY', 'sk-ant-test-not-a-real-key'],
    ] as const) {
      const s = await t.request('POST', `/api/projects/${projectId}/secrets`, {
        token: t.adminToken,
        body: { name, value, scope: 'agent' },
      });
      expect(s.status, JSON.stringify(s.body)).toBe(201);
    }
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    reportServer?.close();
    tmp.cleanup();
  });

  it('runs the agent with exactly the delegated identity: it clones, commits, pushes, opens an MR, cannot write elsewhere; the ending retires the identity', async () => {
    const created = await start('[scenario:work] add agent notes', {});
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const sid = created.body.id as string;
    expect(created.body.permissions).toEqual(['project:read', 'project:write']);
    const s0 = await session(sid);
    const agentId = s0.agent_user_id;
    const agent = await t.platform.drivers.db.db
      .selectFrom('users')
      .selectAll()
      .where('id', '=', agentId)
      .executeTakeFirstOrThrow();
    expect(agent.user_type).toBe('agent');
    expect(agent.name).toBe(`agent-${sid.replaceAll('-', '').slice(0, 8)}`);
    expect(agent.password_hash).toBeNull();
    const delegations = await t.platform.drivers.db.db
      .selectFrom('delegations')
      .select(['permission', 'project_id', 'delegator_id', 'expires_at'])
      .where('delegate_id', '=', agentId)
      .orderBy('permission')
      .execute();
    expect(delegations.map((d) => [d.permission, d.project_id, d.delegator_id])).toEqual([
      ['project:read', projectId, alice.id],
      ['project:write', projectId, alice.id],
    ]);
    expect(delegations.every((d) => d.expires_at !== null)).toBe(true);
    const tokens = await t.platform.drivers.db.db
      .selectFrom('api_tokens')
      .select(['scopes', 'project_id', 'expires_at'])
      .where('user_id', '=', agentId)
      .execute();
    expect(tokens).toHaveLength(1);
    expect([...(tokens[0]!.scopes ?? [])].sort()).toEqual(['project:read', 'project:write']);
    expect(tokens[0]!.project_id).toBe(projectId);

    const done = await untilEnded(sid);
    expect(done.status, JSON.stringify(done.messages.filter((m) => m.kind === 'error'))).toBe('completed');
    const kinds = done.messages.map((m) => m.kind);
    for (const k of [
      'init',
      'thinking',
      'text',
      'tool_call',
      'tool_result',
      'milestone',
      'usage',
      'completed',
      'error',
    ])
      expect(kinds, k).toContain(k);
    expect(done.messages.map((m) => m.seq)).toEqual(done.messages.map((_, i) => i + 1));
    const texts = done.messages.map((m) => m.content);
    expect(texts).toContain('committed');
    expect(
      texts,
      JSON.stringify(done.messages.filter((m) => m.kind === 'tool_result' || m.kind === 'error')),
    ).toContain('pushed');
    // The malformed line became an error event and parsing went on (the split thinking line is whole).
    expect(done.messages.find((m) => m.kind === 'thinking')?.content).toContain('look around, edit, commit');
    expect(texts.some((c) => /^outside write: HTTP (403|404)$/.test(c))).toBe(true);
    expect(texts.some((c) => c === 'merge request: HTTP 201')).toBe(true);
    const identity = done.messages.find((m) => m.content.startsWith('identity: '))!.content;
    expect(identity).toContain(agent.name);
    // The second clone over HTTP with the token worked.
    const clone = done.messages.filter((m) => m.kind === 'tool_result');
    expect(clone.every((m) => m.metadata.is_error === false || String(m.content).includes('HTTP 40'))).toBe(
      true,
    );
    // Totals recorded from the result.
    expect(done.totals.cost_usd).toBeCloseTo(0.0421);
    expect(done.totals.output_tokens).toBe(830);
    expect(done.totals.num_turns).toBe(6);

    // What it produced: the commit on its branch, the MR, linked on the session.
    expect(done.produced.commits).toHaveLength(1);
    expect(done.produced.merge_requests).toHaveLength(1);
    const mr = await t.request(
      'GET',
      `/api/projects/${projectId}/merge-requests/${done.produced.merge_requests[0]}`,
      {
        token: alice.token,
      },
    );
    expect(mr.body.source_branch).toBe(done.branch);
    // Nothing was written in the other project.
    const issues = await t.platform.drivers.db.db
      .selectFrom('issues')
      .select('id')
      .where('project_id', '=', otherProjectId)
      .execute();
    expect(issues).toEqual([]);

    await expectRetired(agentId);
    const [token] = reported.splice(0);
    expect(token).toMatch(/^\S+$/);
    const me = await t.request('GET', '/api/auth/me', { token });
    expect(me.status).toBe(401);
    // Never in the transcript, the session, or the audit log.
    const audit = await t.platform.drivers.db.db.selectFrom('audit_log').select('detail').execute();
    expect(JSON.stringify(audit)).not.toContain(token);
    expect(JSON.stringify(done)).not.toContain(token);
  }, 180_000);

  it('streams events in order over WebSocket and SSE, replays after a sequence number, takes a user message to stdin', async () => {
    const created = await start('[scenario:chat] talk to me');
    expect(created.status).toBe(201);
    const sid = created.body.id as string;
    const wsUrl = `${t.baseUrl.replace('http', 'ws')}/api/projects/${projectId}/sessions/${sid}/ws`;
    const got: Msg[] = [];
    const ws = new WebSocket(`${wsUrl}?after=0`, { headers: { authorization: `Bearer ${alice.token}` } });
    ws.on('message', (d) => {
      const m = JSON.parse(String(d));
      if (m.type === 'event') got.push(m);
    });
    await new Promise((r, j) => {
      ws.once('open', r);
      ws.once('error', j);
    });
    await eventually(
      () => expect(got.some((m) => m.kind === 'text' && m.content.startsWith('Working on'))).toBe(true),
      60_000,
    );
    ws.send(JSON.stringify({ type: 'message', content: 'hello agent' }));
    await eventually(() => expect(got.some((m) => m.content === 'received: hello agent')).toBe(true), 60_000);
    const done = await untilEnded(sid);
    expect(done.status).toBe('completed');
    // The ending's own milestone is written right after the status changes.
    await t.platform.settle();
    const all = await eventually(async () => {
      const s = await session(sid);
      expect(got.map((m) => `${m.seq}:${m.kind}:${m.content}`)).toEqual(
        s.messages.map((m) => `${m.seq}:${m.kind}:${m.content}`),
      );
      return s;
    }, 30_000);
    expect(got.map((m) => m.seq)).toEqual(all.messages.map((m) => m.seq));
    expect(got.map((m) => m.seq)).toEqual(got.map((_, i) => i + 1));
    const stored = done.messages.find((m) => m.role === 'user' && m.content === 'hello agent');
    expect(stored).toBeDefined();
    ws.close();

    // Reconnect after seq 3: exactly the rest, in order.
    const replay: Msg[] = [];
    const ws2 = new WebSocket(`${wsUrl}?after=3`, { headers: { authorization: `Bearer ${alice.token}` } });
    ws2.on('message', (d) => {
      const m = JSON.parse(String(d));
      if (m.type === 'event') replay.push(m);
    });
    await eventually(() => expect(replay.length).toBe(all.messages.length - 3), 30_000);
    expect(replay.map((m) => m.seq)).toEqual(all.messages.slice(3).map((m) => m.seq));
    ws2.close();

    // SSE with Last-Event-ID: the same events after it.
    const controller = new AbortController();
    const res = await fetch(`${t.baseUrl}/api/projects/${projectId}/sessions/${sid}/events`, {
      headers: { authorization: `Bearer ${alice.token}`, 'last-event-id': '5' },
      signal: controller.signal,
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    let text = '';
    const ids = () => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    while (ids().length < all.messages.length - 5) {
      const { value, done: eof } = await reader.read();
      if (eof) break;
      text += Buffer.from(value).toString('utf8');
    }
    controller.abort();
    expect(ids()).toEqual(all.messages.slice(5).map((m) => m.seq));

    // A stranger's upgrade is refused before the handshake.
    const eve = await t.createUser('eve', []);
    const refused = await new Promise<number>((resolve) => {
      const w = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${eve.token}` } });
      w.on('unexpected-response', (_q, r) => resolve(r.statusCode ?? 0));
      w.on('open', () => resolve(101));
    });
    expect(refused).toBe(404);
  }, 180_000);

  it('stop kills the whole process group; the concurrency cap answers 429 meanwhile', async () => {
    const marker = `agent-marker-${randomBytes(6).toString('hex')}`;
    await t.request('POST', `/api/projects/${projectId}/secrets`, {
      token: t.adminToken,
      body: { name: 'FAKE_MARKER', value: marker, scope: 'agent' },
    });
    const cap = await t.request('PUT', `/api/projects/${projectId}/agent-settings`, {
      token: alice.token,
      body: { max_running: 1 },
    });
    expect(cap.status).toBe(200);
    const created = await start('[scenario:group] keep busy');
    expect(created.status).toBe(201);
    const sid = created.body.id as string;
    await eventually(() => expect(processesWith(marker).length).toBeGreaterThan(0), 60_000, 'helper process');
    const second = await start('[scenario:work] one more');
    expect(second.status).toBe(429);
    expect(second.body.error.reason).toBe('agent.concurrency_limit');

    const stopped = await t.request('POST', `/api/projects/${projectId}/sessions/${sid}/stop`, {
      token: alice.token,
      ...noAudit,
    });
    expect(stopped.status, JSON.stringify(stopped.body)).toBe(200);
    expect(stopped.body).toMatchObject({ status: 'stopped', stop_reason: 'user' });
    await eventually(() => expect(processesWith(marker)).toEqual([]), 30_000, 'process group gone');
    const s = await session(sid);
    await expectRetired(s.agent_user_id);
    const again = await t.request('POST', `/api/projects/${projectId}/sessions/${sid}/stop`, {
      token: alice.token,
    });
    expect(again.status).toBe(409);
    expect(again.body.error.reason).toBe('agent.not_running');
    await t.request('PUT', `/api/projects/${projectId}/agent-settings`, {
      token: alice.token,
      body: { max_running: null },
    });
  }, 180_000);

  it('a cost limit stops the session with cost_limit; a crash fails it; either way the identity is retired', async () => {
    const created = await start('[scenario:cost] spend', { limits: { max_cost_usd: 1 } });
    expect(created.status).toBe(201);
    const done = await untilEnded(created.body.id);
    expect(done).toMatchObject({ status: 'stopped', stop_reason: 'cost_limit' });
    expect(done.totals.cost_usd).toBe(5);
    await expectRetired(done.agent_user_id);

    const crash = await start('[scenario:crash] fall over');
    const failed = await untilEnded(crash.body.id);
    expect(failed).toMatchObject({ status: 'failed', exit_code: 3 });
    expect(failed.messages.some((m) => m.kind === 'error' && m.content.includes('told to crash'))).toBe(true);
    await expectRetired(failed.agent_user_id);
  }, 180_000);

  it('review loop: a session from an issue, and an @agent MR comment working on the MR branch (its push updates the MR)', async () => {
    const issue = await t.request('POST', `/api/projects/${projectId}/issues`, {
      token: alice.token,
      body: { title: 'Crashy thing', body: 'It falls over. [scenario:crash]' },
    });
    expect(issue.status).toBe(201);
    const fromIssue = await t.request(
      'POST',
      `/api/projects/${projectId}/issues/${issue.body.number}/sessions`,
      {
        token: alice.token,
        body: {},
        ...noAudit,
      },
    );
    expect(fromIssue.status, JSON.stringify(fromIssue.body)).toBe(201);
    expect(fromIssue.body.issue_number).toBe(issue.body.number);
    const row = await t.platform.drivers.db.db
      .selectFrom('agent_sessions')
      .select('prompt')
      .where('id', '=', fromIssue.body.id)
      .executeTakeFirstOrThrow();
    expect(row.prompt).toContain('Crashy thing');
    expect(row.prompt).toContain('It falls over.');
    await untilEnded(fromIssue.body.id);

    const mrs = await t.request('GET', `/api/projects/${projectId}/merge-requests`, { token: alice.token });
    const mr = mrs.body.items[0];
    const before = mr.head_sha;
    const comment = await t.request(
      'POST',
      `/api/projects/${projectId}/merge-requests/${mr.number}/comments`,
      {
        token: alice.token,
        body: { body: '@agent [scenario:work] please also document it' },
        ...noAudit,
      },
    );
    expect(comment.status).toBe(201);
    const started = await eventually(
      async () =>
        t.platform.drivers.db.db
          .selectFrom('agent_sessions')
          .select(['id', 'branch'])
          .where('project_id', '=', projectId)
          .where('merge_request_number', '=', mr.number)
          .executeTakeFirst(),
      30_000,
      'a session from the comment',
    );
    if (!started) throw new Error('unreachable: eventually returns a truthy value');
    expect(started.branch).toBe(mr.source_branch);
    const done = await untilEnded(started.id);
    expect(done.status).toBe('completed');
    expect(done.produced.merge_requests).toContain(mr.number);
    expect(done.produced.commits).toHaveLength(1);
    const after = await t.request('GET', `/api/projects/${projectId}/merge-requests/${mr.number}`, {
      token: alice.token,
    });
    expect(after.body.head_sha).not.toBe(before);
    expect(after.body.head_sha).toBe(done.produced.commits[0]);
  }, 180_000);

  it('refuses what the requester does not hold, and agents starting sessions', async () => {
    const never = await start('x', { permissions: ['admin:delegate'] });
    expect(never.status).toBe(403);
    expect(never.body.error.reason).toBe('agent.permission_not_held');
    const bad = await start('x', { provider: 'nope' });
    expect(bad.status).toBe(422);
    expect(bad.body.error.reason).toBe('agent.unknown_provider');
    const empty = await start('');
    expect(empty.status).toBe(400);
  });
});
