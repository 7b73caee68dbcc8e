/**
 * The MCP server: an SDK client over Streamable HTTP (`/mcp`) and over stdio (`platform mcp`, the
 * real CLI spawned), the loop an agent runs — issue create → comment → close, MR open → review →
 * merge — with the REST API's access rules, audit and error bodies; read-only as an upper bound;
 * list tools bounded with a cursor.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';
import { childEnv, repoRoot } from './helpers/process.js';

interface User {
  id: string;
  token: string;
}

describe.skipIf(servicesMissing)('MCP server', () => {
  let t: TestPlatform;
  let maria: User;
  let rob: User;
  let reader: User;
  const tmp = tempDir('platform-mcp-');
  const clients: Client[] = [];
  let counter = 0;

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    maria = await t.createUser('maria', ['developer']);
    rob = await t.createUser('rob', ['developer']);
    // No role: reads internal projects as any signed-in user, writes nothing.
    reader = await t.createUser('rita', []);
  });
  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await t?.close();
    tmp.cleanup();
  });

  /** An internal project of maria's with `main` and a `feature` branch that changes README. */
  async function project(): Promise<string> {
    const name = `mcp-${++counter}`;
    const res = await t.request('POST', '/api/projects', {
      token: maria.token,
      body: { name, visibility: 'internal' },
    });
    expect(res.status).toBe(201);
    const work = path.join(tmp.dir, name);
    await gitOk(['clone', authUrl(t.baseUrl, 'maria', maria.token, `/maria/${name}.git`), work]);
    writeFileSync(path.join(work, 'README'), 'hello\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-q', '-m', 'initial'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:main'], { cwd: work });
    await gitOk(['checkout', '-q', '-b', 'feature'], { cwd: work });
    writeFileSync(path.join(work, 'README'), 'hello\nworld\n');
    await gitOk(['commit', '-q', '-am', 'say world'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'feature:feature'], { cwd: work });
    await t.platform.settle();
    return `maria/${name}`;
  }

  async function overHttp(token: string, query = ''): Promise<Client> {
    const client = new Client({ name: 'test', version: '1' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${t.baseUrl}/mcp${query}`), {
        requestInit: { headers: { Authorization: `Bearer ${token}` } },
      }),
    );
    clients.push(client);
    return client;
  }

  async function overStdio(token: string, args: string[] = []): Promise<Client> {
    const client = new Client({ name: 'test', version: '1' });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: ['--import', 'tsx', 'src/main.ts', 'mcp', ...args],
        cwd: repoRoot,
        env: childEnv({ PLATFORM_URL: t.baseUrl, PLATFORM_TOKEN: token }) as Record<string, string>,
        stderr: 'pipe',
      }),
    );
    clients.push(client);
    return client;
  }

  const text = (r: unknown) =>
    ((r as CallToolResult).content as { type: string; text: string }[]).map((c) => c.text);
  async function call<T = Record<string, unknown>>(
    client: Client,
    name: string,
    args: Record<string, unknown>,
  ) {
    const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
    expect(result.isError, `${name}: ${text(result).join('\n')}`).toBeFalsy();
    return JSON.parse(text(result)[0]!) as T;
  }
  async function refused(client: Client, name: string, args: Record<string, unknown>) {
    const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
    expect(result.isError, `${name} should be refused`).toBe(true);
    return (JSON.parse(text(result)[0]!) as { error: { code: string; reason?: string; message: string } })
      .error;
  }
  const toolNames = async (client: Client) => (await client.listTools()).tools.map((x) => x.name).sort();

  /** The loop: issue create → comment → close, then MR open → review (by the other) → merge. */
  async function loop(author: Client, reviewer: Client, repo: string) {
    const issue = await call<{ number: number; status: string }>(author, 'issue_create', {
      project: repo,
      title: 'Flaky test',
      body: 'it fails on Tuesdays',
    });
    expect(issue.status).toBe('open');
    const comment = await call<{ body: string }>(author, 'issue_comment', {
      project: repo,
      number: issue.number,
      body: 'found it',
    });
    expect(comment.body).toBe('found it');
    const closed = await call<{ status: string }>(author, 'issue_close', {
      project: repo,
      number: issue.number,
    });
    expect(closed.status).toBe('closed');
    const rest = await t.request('GET', `/api/projects/${repo}/issues/${issue.number}`, {
      token: maria.token,
    });
    expect(rest.body.status).toBe('closed');
    const comments = await t.request('GET', `/api/projects/${repo}/issues/${issue.number}/comments`, {
      token: maria.token,
    });
    expect(comments.body.items.map((c: { body: string }) => c.body)).toEqual(['found it']);

    const mr = await call<{ number: number }>(author, 'mr_create', {
      project: repo,
      source_branch: 'feature',
      target_branch: 'main',
      title: 'Say world',
    });
    const diff = await author.callTool({ name: 'mr_diff', arguments: { project: repo, number: mr.number } });
    expect(JSON.parse(text(diff)[0]!).patch).toContain('+world');
    const review = await call<{ verdict: string }>(reviewer, 'mr_review', {
      project: repo,
      number: mr.number,
      verdict: 'approve',
    });
    expect(review.verdict).toBe('approve');
    const detail = await call<{ mergeable: boolean; blockers: unknown[] }>(author, 'mr_get', {
      project: repo,
      number: mr.number,
    });
    expect(detail.blockers).toEqual([]);
    expect(detail.mergeable).toBe(true);
    const merged = await call<{ status: string }>(author, 'mr_merge', { project: repo, number: mr.number });
    expect(merged.status).toBe('merged');
    // A second merge is the API's refusal, carried as a tool error with code and reason.
    const again = await refused(author, 'mr_merge', { project: repo, number: mr.number });
    expect(again).toMatchObject({ code: 'conflict', reason: 'mr.not_open' });
  }

  it('over Streamable HTTP: lists the default tools and runs the issue and merge-request loop, audited as the caller', async () => {
    const repo = await project();
    const author = await overHttp(maria.token);
    const names = await toolNames(author);
    expect(names).toEqual(
      expect.arrayContaining([
        'issue_create',
        'issue_comment',
        'issue_close',
        'mr_create',
        'mr_review',
        'mr_merge',
        'pipeline_log',
        'file_read',
      ]),
    );
    expect(names).not.toContain('secret_set');
    await loop(author, await overHttp(rob.token), repo);
    const audit = await sql<{ action: string; actor_name: string }>`
      select action, actor_name from audit_log where actor_id = ${maria.id} order by created_at`.execute(
      t.platform.drivers.db.db,
    );
    expect(audit.rows.map((r) => r.action)).toEqual(
      expect.arrayContaining(['issue.create', 'comment.create', 'issue.update', 'mr.create', 'mr.merge']),
    );
  });

  it('over stdio (the real `platform mcp`): the same loop, with the token from the environment', async () => {
    const repo = await project();
    const author = await overStdio(maria.token);
    expect(await toolNames(author)).toContain('issue_create');
    await loop(author, await overStdio(rob.token), repo);
  });

  it('a caller without project:write gets the permission error from write tools, and nothing is written', async () => {
    const repo = await project();
    const client = await overHttp(reader.token);
    expect((await call<{ name: string }>(client, 'project_get', { project: repo })).name).toBe(
      repo.split('/')[1],
    );
    const error = await refused(client, 'issue_create', { project: repo, title: 'nope' });
    expect(error.code).toBe('forbidden');
    expect(error.message).toContain('project:write');
    const list = await t.request('GET', `/api/projects/${repo}/issues?status=all`, { token: maria.token });
    expect(list.body.items).toEqual([]);
    // Bad input is the route's own validation answer.
    const bad = await refused(client, 'issue_get', { project: repo, number: 'x' });
    expect(bad.code).toBe('bad_request');
  });

  it('read-only is an upper bound: ?read_only, a read-only token and --read-only show no write tools and refuse them', async () => {
    const repo = await project();
    const scoped = await t.platform.auth.createTokenForUser(
      { id: t.adminId, name: 'admin', ip: null },
      'maria',
      {
        name: 'read-only',
        scopes: ['project:read'],
      },
    );
    const connections = [
      await overHttp(maria.token, '?read_only=true&toolsets=all'),
      await overHttp(scoped.token, '?toolsets=all'),
      await overStdio(maria.token, ['--read-only', '--toolsets', 'all']),
    ];
    for (const client of connections) {
      const tools = (await client.listTools()).tools;
      expect(tools.length).toBeGreaterThan(5);
      expect(tools.every((x) => x.annotations?.readOnlyHint === true)).toBe(true);
      expect(tools.map((x) => x.name)).not.toContain('issue_create');
      const error = await refused(client, 'issue_create', { project: repo, title: 'sneaky' });
      expect(error.message).toContain('read-only');
    }
    const list = await t.request('GET', `/api/projects/${repo}/issues?status=all`, { token: maria.token });
    expect(list.body.items).toEqual([]);
  });

  it('toolsets: the default set is small, ?toolsets= adds one, an unknown name is refused', async () => {
    const repo = await project();
    const plain = await overHttp(maria.token);
    expect(await toolNames(plain)).not.toContain('secret_list');
    const refusedHidden = await refused(plain, 'secret_set', { project: repo, name: 'TOKEN', value: 'x' });
    expect(refusedHidden.message).toContain('toolsets=secrets');
    expect(await toolNames(await overHttp(maria.token, '?toolsets=deployments'))).toEqual(
      expect.arrayContaining([
        'deploy_list',
        'deploy_status',
        'deploy_diff',
        'deploy_promote',
        'deploy_rollback',
      ]),
    );
    expect(await toolNames(await overHttp(maria.token, '?toolsets=sessions'))).toEqual(
      expect.arrayContaining([
        'session_start',
        'session_list',
        'session_get',
        'session_message',
        'session_stop',
      ]),
    );
    const observe = await toolNames(await overHttp(maria.token, '?toolsets=observe'));
    expect(observe).toEqual(
      expect.arrayContaining(['log_search', 'trace_get', 'metric_query', 'session_timeline', 'alert_list']),
    );
    const withSecrets = await overHttp(maria.token, '?toolsets=secrets');
    const set = await call<{ name: string }>(withSecrets, 'secret_set', {
      project: repo,
      name: 'API_KEY',
      value: 's3cr3t-value',
    });
    expect(set.name).toBe('API_KEY');
    const listed = await withSecrets.callTool({ name: 'secret_list', arguments: { project: repo } });
    expect(text(listed).join('')).toContain('API_KEY');
    expect(text(listed).join('')).not.toContain('s3cr3t-value');
    const res = await fetch(`${t.baseUrl}/mcp?toolsets=nope`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${maria.token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain('nope');
    const anonymous = await fetch(`${t.baseUrl}/mcp`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    expect(anonymous.status).toBe(401);
  });

  it('the configuration agent sessions get (type http, Bearer of a project-bound scoped token) works, within its project only', async () => {
    const own = await project();
    const other = await project();
    const ownId = (await t.request('GET', `/api/projects/${own}`, { token: maria.token })).body.id;
    const minted = await t.request('POST', '/api/tokens', {
      token: maria.token,
      body: { name: 'session-like', scopes: ['project:read', 'project:write'], project_id: ownId },
    });
    expect(minted.status, minted.text).toBe(201);
    const config = {
      mcpServers: {
        platform: {
          type: 'http',
          url: `${t.baseUrl}/mcp`,
          headers: { Authorization: `Bearer ${minted.body.token}` },
        },
      },
    };
    const server = config.mcpServers.platform;
    const client = new Client({ name: 'agent', version: '1' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(server.url), { requestInit: { headers: server.headers } }),
    );
    clients.push(client);
    expect(await toolNames(client)).toContain('issue_create');
    const issue = await call<{ number: number }>(client, 'issue_create', {
      project: own,
      title: 'from the agent',
    });
    expect(issue.number).toBe(1);
    const elsewhere = await refused(client, 'issue_create', { project: other, title: 'outside' });
    expect(['forbidden', 'not_found']).toContain(elsewhere.code);
  });

  it('a list tool answers a bounded page with a cursor that fetches the rest', async () => {
    const repo = await project();
    for (let i = 1; i <= 25; i++) {
      const res = await t.request('POST', `/api/projects/${repo}/issues`, {
        token: maria.token,
        body: { title: `issue ${i}` },
      });
      expect(res.status).toBe(201);
    }
    const client = await overHttp(maria.token);
    const first = await client.callTool({ name: 'issue_list', arguments: { project: repo } });
    const page = JSON.parse(text(first)[0]!) as { items: { number: number }[]; next_cursor: string };
    expect(page.items).toHaveLength(20);
    expect(text(first)[1]).toContain(`cursor="${page.next_cursor}"`);
    const second = await call<{ items: { number: number }[]; next_cursor: string | null }>(
      client,
      'issue_list',
      {
        project: repo,
        cursor: page.next_cursor,
      },
    );
    expect(second.items).toHaveLength(5);
    expect(second.next_cursor).toBeNull();
    const all = [...page.items, ...second.items].map((i) => i.number).sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
  });
});
