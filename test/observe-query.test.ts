import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPlatform,
  insertProject,
  servicesMissing,
  storeMode,
  type TestPlatform,
} from './helpers/app.js';
import { logsBody } from './helpers/otlp.js';

describe.skipIf(servicesMissing)(`observe query language over the log search (${storeMode})`, () => {
  let t: TestPlatform;
  let projectId: string;
  let otherId: string;
  const search = (query: string, extra = '') =>
    t.request('GET', `/api/observe/logs?query=${encodeURIComponent(query)}${extra}`, { token: t.adminToken });

  beforeAll(async () => {
    t = await createTestPlatform();
    projectId = await insertProject(t, { name: 'searched' });
    otherId = await insertProject(t, { name: 'elsewhere' });
    const res = await t.request('POST', '/v1/logs', {
      token: t.adminToken,
      noAuditCheck: true,
      body: logsBody([
        {
          message: 'GET /health 200',
          service: 'api',
          projectId,
          severity: 9,
          attributes: { 'http.status': '200' },
        },
        {
          message: 'upstream timeout after 30s',
          service: 'api',
          projectId,
          severity: 17,
          attributes: { 'http.status': '504' },
        },
        { message: 'disk almost full', service: 'worker', projectId, severity: 13 },
        { message: "it's O'Reilly; drop table users; --", service: 'web', projectId, severity: 13 },
        { message: 'upstream timeout elsewhere', service: 'api', projectId: otherId, severity: 17 },
      ]),
    });
    expect(res.status, res.text).toBe(200);
  });
  afterAll(async () => {
    await t?.close();
  });

  const messages = (body: { items: { message: string }[] }) => body.items.map((i) => i.message).sort();

  it('filters by level order, regular expressions, attributes and project names', async () => {
    const warn = await search('{level>="warn", project="searched"}');
    expect(warn.status, warn.text).toBe(200);
    expect(messages(warn.body)).toEqual([
      'disk almost full',
      "it's O'Reilly; drop table users; --",
      'upstream timeout after 30s',
    ]);

    expect(
      messages(
        (await search('{service=~"api|worker", message!~".*health.*"}', `&project_id=${projectId}`)).body,
      ),
    ).toEqual(['disk almost full', 'upstream timeout after 30s']);
    expect(messages((await search('logs{attributes.http.status=~"5.."}')).body)).toEqual([
      'upstream timeout after 30s',
    ]);
    expect(messages((await search('{project=~"else.*"}')).body)).toEqual(['upstream timeout elsewhere']);
    // The search's own filters and the query combine.
    expect(messages((await search('{level="error"}', `&project_id=${otherId}`)).body)).toEqual([
      'upstream timeout elsewhere',
    ]);
    const summary = await t.request(
      'GET',
      `/api/observe/logs/summary?query=${encodeURIComponent('{level>="error"}')}`,
      {
        token: t.adminToken,
      },
    );
    expect(summary.status, summary.text).toBe(200);
    expect(summary.body.total).toBe(2);
  });

  it('hostile values are data: they match literally and change nothing', async () => {
    const exact = await search(`{message="it's O'Reilly; drop table users; --"}`);
    expect(exact.status).toBe(200);
    expect(messages(exact.body)).toEqual(["it's O'Reilly; drop table users; --"]);
    for (const value of [
      "' or '1'='1",
      '"); delete from log_entries; --',
      '\\\\x00',
      '$1 $$ $tag$',
      "') union select * from users --",
    ]) {
      const res = await search(`{service=${JSON.stringify(value)}}`);
      expect(res.status, res.text).toBe(200);
      expect(res.body.items).toEqual([]);
    }
    const all = await search('{project=~"searched|elsewhere"}');
    expect(all.body.items).toHaveLength(5);
  });

  it('a query that does not parse or does not make sense is a 400 with its position', async () => {
    const bad = await search('{level>="warn", service="api"');
    expect(bad.status).toBe(400);
    expect(bad.body.error.reason).toBe('observe.invalid_query');
    expect(bad.body.error.message).toContain("expected ',' or '}' at 1:30");
    const level = await search('{level="loud"}');
    expect(level.status).toBe(400);
    expect(level.body.error.details[0]).toMatchObject({ path: 'query.query', line: 1, column: 8 });
    const metric = await search('cpu{host="a"}');
    expect(metric.status).toBe(400);
    expect(metric.body.error.message).toContain("a log filter selects 'logs'");
  });
});
