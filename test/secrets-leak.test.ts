// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${{ secrets.NAME }}` placeholders are the subject of these tests.
/**
 * THE leak test: distinctive values go in through every secrets route (and the error paths), get
 * resolved, and then every HTTP response, every log line and every audit row is searched for them.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ApiResponse,
  createTestPlatform,
  insertProject,
  servicesMissing,
  type TestPlatform,
} from './helpers/app.js';

describe.skipIf(servicesMissing)('secret values never leak', () => {
  let t: TestPlatform;
  const marker = () => `LEAKCANARY${randomBytes(8).toString('hex')}`;
  const values: string[] = [];
  const responses: ApiResponse[] = [];

  beforeAll(async () => {
    // Trace level: whatever the app would log about a request is in t.logLines.
    t = await createTestPlatform({ config: { PLATFORM_LOG_LEVEL: 'trace' } });
  });
  afterAll(() => t?.close());

  it('exercises every route, the error paths and resolution, then finds no value anywhere', async () => {
    const project = await insertProject(t, { name: 'leaky' });
    const other = await insertProject(t, { name: 'other' });
    const dev = await t.createUser('leak-dev');
    await t.request('POST', `/api/admin/users/${dev.id}/roles`, {
      token: t.adminToken,
      body: { role: 'developer', project_id: project },
    });
    const v = (s: string) => {
      values.push(s);
      return s;
    };
    const call = async (method: string, url: string, body?: unknown, token = t.adminToken) => {
      const res = await t.request(method, url, { token, ...(body !== undefined ? { body } : {}) });
      responses.push(res);
      return res;
    };
    const projectUrl = `/api/projects/${project}/secrets`;

    expect((await call('POST', projectUrl, { name: 'DB_PASSWORD', value: v(marker()) })).status).toBe(201);
    expect(
      (await call('POST', projectUrl, { name: 'DB_PASSWORD', value: v(marker()), scope: 'pipeline' })).status,
    ).toBe(200);
    expect(
      (await call('POST', projectUrl, { name: 'API_KEY', value: v(marker()), scope: 'agent' })).status,
    ).toBe(201);
    expect((await call('POST', projectUrl, { name: 'TO_DELETE', value: v(marker()) })).status).toBe(201);
    expect(
      (await call('POST', '/api/admin/secrets', { name: 'GLOBAL_TOKEN', value: v(marker()) })).status,
    ).toBe(201);
    expect(
      (await call('POST', '/api/admin/secrets', { name: 'GLOBAL_TOKEN', value: v(marker()) })).status,
    ).toBe(200);
    expect(
      (await call('POST', '/api/admin/secrets', { name: 'GLOBAL_DOOMED', value: v(marker()) })).status,
    ).toBe(201);
    // Error paths carrying a value: bad name, bad scope, too big, no permission, unknown project, wrong type.
    expect((await call('POST', projectUrl, { name: '9bad', value: v(marker()) })).status).toBe(400);
    expect((await call('POST', projectUrl, { name: 'OK', value: v(marker()), scope: 'nope' })).status).toBe(
      400,
    );
    const big = v(marker());
    expect(
      (await call('POST', projectUrl, { name: 'BIG', value: big.repeat(Math.ceil(65537 / big.length)) }))
        .status,
    ).toBe(413);
    expect((await call('POST', projectUrl, { name: 'DEV', value: v(marker()) }, dev.token)).status).toBe(403);
    expect(
      (await call('POST', '/api/admin/secrets', { name: 'DEV', value: v(marker()) }, dev.token)).status,
    ).toBe(403);
    expect(
      (
        await call('POST', '/api/projects/00000000-0000-4000-8000-000000000000/secrets', {
          name: 'X',
          value: v(marker()),
        })
      ).status,
    ).toBe(404);
    expect((await call('POST', projectUrl, { name: 'ARR', value: [v(marker())] })).status).toBe(400);
    const raw = await t.request('POST', projectUrl, {
      token: t.adminToken,
      headers: { 'content-type': 'application/json' },
      body: `{"name":"RAW","value":"${v(marker())}"`,
    });
    responses.push(raw);
    expect(raw.status).toBe(400);

    expect((await call('GET', projectUrl)).status).toBe(200);
    expect((await call('GET', projectUrl, undefined, dev.token)).status).toBe(200);
    expect((await call('GET', `/api/projects/${other}/secrets`)).status).toBe(200);
    expect((await call('GET', '/api/admin/secrets')).status).toBe(200);
    expect((await call('DELETE', `${projectUrl}/TO_DELETE`)).status).toBe(204);
    expect((await call('DELETE', '/api/admin/secrets/GLOBAL_DOOMED')).status).toBe(204);
    expect((await call('GET', '/api/audit?limit=200')).status).toBe(200);

    const secrets = t.platform.services.secrets;
    const consumer = { kind: 'pipeline', id: 'leak-run' };
    const resolved = await secrets.resolveTemplate(
      project,
      'pipeline',
      'a=${{ secrets.DB_PASSWORD }} b=${{ secrets.GLOBAL_TOKEN }}',
      consumer,
    );
    expect(resolved).toBe(`a=${values[1]} b=${values[5]}`);
    expect(await secrets.resolve(project, 'API_KEY', 'agent', { kind: 'agent_session', id: 's' })).toBe(
      values[2],
    );
    await expect(secrets.resolve(project, 'API_KEY', 'pipeline', consumer)).rejects.toThrow(/API_KEY/);
    await expect(secrets.resolve(other, 'DB_PASSWORD', 'pipeline', consumer)).rejects.toThrow(/DB_PASSWORD/);

    const audit = await t.platform.drivers.db.db.selectFrom('audit_log').selectAll().execute();
    expect(audit.filter((r) => r.action.startsWith('secret.')).length).toBeGreaterThanOrEqual(11);
    const secretRows = await t.platform.drivers.db.db
      .selectFrom('secrets')
      .select(['name', 'ciphertext'])
      .execute();

    expect(values.length).toBe(15);
    expect(responses.length).toBeGreaterThanOrEqual(20);
    expect(t.logLines.length).toBeGreaterThan(20);
    const haystacks: [string, string][] = [
      ...responses.map((r, i): [string, string] => [
        `response ${i}`,
        `${r.text}\n${JSON.stringify(r.headers)}`,
      ]),
      ...t.logLines.map((l, i): [string, string] => [`log line ${i}`, l]),
      ...audit.map((r): [string, string] => [`audit row ${r.action}`, JSON.stringify(r)]),
    ];
    for (const value of values) {
      const found = haystacks.filter(([, text]) => text.includes(value)).map(([where]) => where);
      expect(found, `value found in: ${found.join(', ')}`).toEqual([]);
      for (const row of secretRows) {
        expect(Buffer.from(row.ciphertext).includes(Buffer.from(value))).toBe(false);
      }
    }
    // The canary prefix itself shows nowhere either (catches truncated or partial echoes).
    expect(haystacks.filter(([, text]) => text.includes('LEAKCANARY')).map(([w]) => w)).toEqual([]);
  });
});
