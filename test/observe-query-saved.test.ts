import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPlatform,
  insertProject,
  servicesMissing,
  storeMode,
  type TestPlatform,
} from './helpers/app.js';

describe.skipIf(servicesMissing)(`saved searches (${storeMode})`, () => {
  let t: TestPlatform;
  let projectId: string;
  let owner: { id: string; token: string };
  let reader: { id: string; token: string };
  let stranger: { id: string; token: string };

  beforeAll(async () => {
    t = await createTestPlatform();
    owner = await t.createUser('search-owner');
    reader = await t.createUser('search-reader', ['viewer']);
    stranger = await t.createUser('search-stranger');
    projectId = await insertProject(t, { name: 'searchable', ownerId: owner.id, visibility: 'internal' });
  });
  afterAll(async () => {
    await t?.close();
  });

  const save = (token: string, body: Record<string, unknown>) =>
    t.request('POST', '/api/observe/saved-searches', { token, body });

  it('private and shared searches: listed for whom they are, the link opens for whom they are', async () => {
    const mine = await save(owner.token, {
      name: 'my errors',
      project_id: projectId,
      signal: 'logs',
      query: '{level>="error"}',
      filters: { range: '1h' },
    });
    expect(mine.status, mine.text).toBe(201);
    expect(mine.body).toMatchObject({
      visibility: 'private',
      owner: 'search-owner',
      filters: { range: '1h' },
    });
    expect(mine.body.link).toMatch(new RegExp(`/api/observe/saved-searches/${mine.body.id}$`));
    const shared = await save(owner.token, {
      name: 'api latency',
      project_id: projectId,
      signal: 'metrics',
      query: 'avg(http_server_duration_ms{service="api"}[5m]) > 300',
      visibility: 'project',
    });
    expect(shared.status, shared.text).toBe(201);

    // The reader of the project sees the shared one, not the private one, in the list and by link.
    const listed = await t.request('GET', `/api/observe/saved-searches?project_id=${projectId}`, {
      token: reader.token,
    });
    expect(listed.status, listed.text).toBe(200);
    expect(listed.body.items.map((s: { name: string }) => s.name)).toEqual(['api latency']);
    expect(
      (await t.request('GET', `/api/observe/saved-searches/${shared.body.id}`, { token: reader.token }))
        .status,
    ).toBe(200);
    expect(
      (await t.request('GET', `/api/observe/saved-searches/${mine.body.id}`, { token: reader.token })).status,
    ).toBe(404);
    // The owner lists both; their own list without a project has both too.
    const own = await t.request('GET', '/api/observe/saved-searches', { token: owner.token });
    expect(own.body.items.map((s: { name: string }) => s.name)).toEqual(['api latency', 'my errors']);
    // Only the owner changes or deletes it.
    const foreign = await t.request('PATCH', `/api/observe/saved-searches/${shared.body.id}`, {
      token: reader.token,
      body: { name: 'hijacked' },
    });
    expect(foreign.status).toBe(403);
    expect(foreign.body.error.reason).toBe('observe.saved_search_not_owner');
    const unshare = await t.request('PATCH', `/api/observe/saved-searches/${shared.body.id}`, {
      token: owner.token,
      body: { visibility: 'private' },
    });
    expect(unshare.status).toBe(200);
    expect(
      (await t.request('GET', `/api/observe/saved-searches/${shared.body.id}`, { token: reader.token }))
        .status,
    ).toBe(404);
    expect(
      (await t.request('DELETE', `/api/observe/saved-searches/${mine.body.id}`, { token: owner.token }))
        .status,
    ).toBe(204);
    expect(
      (await t.request('GET', `/api/observe/saved-searches/${mine.body.id}`, { token: owner.token })).status,
    ).toBe(404);
  });

  it('refuses bad queries with the position, duplicate names, sharing without a project, and projects one cannot read', async () => {
    const bad = await save(owner.token, { name: 'bad', signal: 'logs', query: '{level=}' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ reason: 'observe.invalid_query' });
    expect(bad.body.error.details[0]).toMatchObject({ path: 'body.query', line: 1, column: 8 });
    expect((await save(owner.token, { name: 'dup', signal: 'logs', query: '' })).status).toBe(201);
    const dup = await save(owner.token, { name: 'dup', signal: 'traces', query: '{service="api"}' });
    expect(dup.status).toBe(409);
    expect(dup.body.error.reason).toBe('observe.saved_search_name_taken');
    const noProject = await save(owner.token, {
      name: 'share me',
      signal: 'logs',
      query: '',
      visibility: 'project',
    });
    expect(noProject.status).toBe(422);
    expect(noProject.body.error.reason).toBe('observe.saved_search_share_needs_project');
    const privateProject = await insertProject(t, {
      name: 'closed',
      ownerId: owner.id,
      visibility: 'private',
    });
    const denied = await save(stranger.token, {
      name: 'peek',
      project_id: privateProject,
      signal: 'logs',
      query: '',
    });
    expect([403, 404]).toContain(denied.status);
  });
});
