import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../src/core/openapi.js';
import { VERSION } from '../src/version.js';
import type { paths } from './generated/openapi.js';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { missingSuccessSchema, strictResponses } from './helpers/responses.js';

/**
 * API contract v2 (issue 14): the OpenAPI document made from the route registry, the
 * `/api/projects/:owner/:name/…` aliases and the refusal of unknown query parameters.
 *
 * `docs/openapi.json` is the checked-in document `test/generated/openapi.d.ts` (openapi-typescript)
 * is generated from: `npm run openapi:types` rewrites both (this file writes the document when
 * PLATFORM_WRITE_OPENAPI=1).
 */
const DOCUMENT_FILE = path.join(import.meta.dirname, '..', 'docs', 'openapi.json');
/** The server URL the checked-in document names (the default public URL), whatever the test platform's. */
const DOCUMENT_SERVER = 'http://localhost:8080';

type Json<P extends keyof paths, M extends keyof paths[P], S extends number> = paths[P][M] extends {
  responses: { [K in S]: { content: { 'application/json': infer B } } };
}
  ? B
  : never;

let t: TestPlatform | undefined;

describe.skipIf(servicesMissing)('API contract', () => {
  beforeAll(async () => {
    t = await createTestPlatform();
  });
  afterAll(async () => {
    await t?.close();
  });

  const document = () =>
    openApiDocument(t!.platform.registry.routes, {
      title: 'Platform API',
      version: VERSION,
      serverUrl: DOCUMENT_SERVER,
      aliasOf: (def) => t!.platform.registry.aliasOf(def),
    }) as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { content?: unknown }>; 'x-reasons'?: string[] }>
      >;
      components: { schemas: Record<string, unknown> };
    };

  it('docs/openapi.json is the document the registry makes (npm run openapi:types rewrites it)', () => {
    const current = `${JSON.stringify(document(), null, 2)}\n`;
    if (process.env.PLATFORM_WRITE_OPENAPI === '1') {
      writeFileSync(DOCUMENT_FILE, current);
      return;
    }
    // Compared as JSON: the checked-in file is formatted by biome (npm run lint checks it).
    const stale =
      !existsSync(DOCUMENT_FILE) ||
      !isDeepStrictEqual(JSON.parse(readFileSync(DOCUMENT_FILE, 'utf8')), JSON.parse(current));
    if (stale && !strictResponses) console.warn('docs/openapi.json is stale: run npm run openapi:types');
    else expect(stale, 'docs/openapi.json is stale: run npm run openapi:types').toBe(false);
  });

  it('every route has a 2xx schema (PLATFORM_TEST_STRICT_RESPONSES=0 only lists the missing ones)', () => {
    const missing = t!.platform.registry.routes
      .filter(missingSuccessSchema)
      .map((r) => `${r.method} ${r.url}`);
    if (missing.length)
      console.warn(`routes without a 2xx schema (${missing.length}):\n  ${missing.join('\n  ')}`);
    if (strictResponses) expect(missing).toEqual([]);
  });

  it('documents the success statuses: 201 for creates, 204 without a body, a raw route’s own', () => {
    const doc = document();
    for (const def of t!.platform.registry.routes) {
      const op =
        doc.paths[def.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\*$/, '{key}')]?.[
          def.method.toLowerCase()
        ];
      expect(op, `${def.method} ${def.url}`).toBeDefined();
      const success = Object.keys(op!.responses).filter((s) => /^[123]\d\d$/.test(s));
      expect(success, `${def.method} ${def.url}`).toHaveLength(1);
      const expected = def.raw
        ? (def.produces?.status ?? 200)
        : def.response
          ? (def.status ?? 200)
          : def.status && def.status !== 200
            ? def.status
            : 204;
      expect(success[0], `${def.method} ${def.url}`).toBe(String(expected));
      if (def.response && !def.raw) expect(op!.responses[success[0]!]!.content).toBeDefined();
      if (def.reasons?.length) expect(op!['x-reasons']).toEqual(def.reasons);
    }
    expect(doc.paths['/api/projects']!.post!.responses['201']).toBeDefined();
    expect(doc.paths['/api/projects/{id}/artifacts/{aid}/download']!.get!.responses['302']).toBeDefined();
  });

  it('puts named schemas in components.schemas and refers to them with $ref', () => {
    const doc = document();
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(['Error', 'Health', 'Readiness']),
    );
    const health = doc.paths['/healthz']!.get!.responses['200']!.content as {
      'application/json': { schema: { $ref: string } };
    };
    expect(health['application/json'].schema.$ref).toBe('#/components/schemas/Health');
    const text = JSON.stringify(doc);
    for (const [, ref] of text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g))
      expect(doc.components.schemas[ref!], ref).toBeDefined();
    expect(text).not.toContain('#/$defs/');
  });

  it('answers with what the generated types say (typed client)', async () => {
    const health = await t!.request<Json<'/healthz', 'get', 200>>('GET', '/healthz');
    expect(health.status).toBe(200);
    const version: string = health.body.version;
    expect(version).toBe(VERSION);
    const ready = await t!.request<Json<'/readyz', 'get', 200>>('GET', '/readyz');
    expect(ready.body.checks.map((c) => c.name)).toContain('database');
  });

  describe('unknown query parameters', () => {
    it('?page=2 is refused with a 400 naming page (a route with a query schema)', async () => {
      const res = await t!.request('GET', '/api/projects?page=2', { token: t!.adminToken });
      expect(res.status, res.text).toBe(400);
      expect(res.body.error.code).toBe('bad_request');
      expect(res.body.error.message).toContain('page');
      expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'query.page' })]);
    });

    it('a route without a query schema refuses any parameter, naming all of them', async () => {
      const res = await t!.request('GET', '/healthz?verbose=1&x=2');
      expect(res.status, res.text).toBe(400);
      expect(res.body.error.message).toMatch(/verbose, x/);
      expect(res.body.error.details.map((d: { path: string }) => d.path)).toEqual([
        'query.verbose',
        'query.x',
      ]);
    });

    it('known parameters still work', async () => {
      const res = await t!.request('GET', '/api/projects?limit=1', { token: t!.adminToken });
      expect(res.status, res.text).toBe(200);
    });
  });

  describe('/api/projects/:owner/:name/… aliases', () => {
    let projectId = '';
    beforeAll(async () => {
      const res = await t!.request('POST', '/api/projects', {
        token: t!.adminToken,
        body: { name: 'alias-demo', visibility: 'private' },
      });
      expect(res.status, res.text).toBe(201);
      projectId = res.body.id;
    });

    it('a sub-resource answers under owner/name as under the id', async () => {
      const byId = await t!.request('GET', `/api/projects/${projectId}/members`, { token: t!.adminToken });
      const byName = await t!.request('GET', '/api/projects/admin/alias-demo/members', {
        token: t!.adminToken,
      });
      expect(byId.status, byId.text).toBe(200);
      expect(byName.status, byName.text).toBe(200);
      expect(byName.body).toEqual(byId.body);
    });

    it('mutations run the same handler (one audit row) and the id form sees the result', async () => {
      const created = await t!.request('POST', '/api/projects/admin/alias-demo/issues', {
        token: t!.adminToken,
        body: { title: 'made through the alias' },
      });
      expect(created.status, created.text).toBe(201);
      const read = await t!.request('GET', `/api/projects/${projectId}/issues/${created.body.number}`, {
        token: t!.adminToken,
      });
      expect(read.status, read.text).toBe(200);
      expect(read.body.title).toBe('made through the alias');
      const patched = await t!.request('PATCH', '/api/projects/admin/alias-demo', {
        token: t!.adminToken,
        body: { description: 'patched by name' },
      });
      expect(patched.status, patched.text).toBe(200);
      expect(patched.body.id).toBe(projectId);
    });

    it('an unknown project is 404, a hidden one is 404 too, and the access check is the id form’s', async () => {
      const missing = await t!.request('GET', '/api/projects/admin/no-such-project/members', {
        token: t!.adminToken,
      });
      expect(missing.status, missing.text).toBe(404);
      const other = await t!.createUser('alias-outsider');
      const hidden = await t!.request('GET', '/api/projects/admin/alias-demo/members', {
        token: other.token,
      });
      const hiddenById = await t!.request('GET', `/api/projects/${projectId}/members`, {
        token: other.token,
      });
      expect(hidden.status).toBe(hiddenById.status);
      expect(hidden.status).toBe(404);
      const anonymous = await t!.request('GET', '/api/projects/admin/alias-demo/issues');
      expect(anonymous.status).toBe(404);
    });

    it('GET /api/projects/:owner/:name stays the project itself; the document lists each alias once, on the id form', async () => {
      const res = await t!.request('GET', '/api/projects/admin/alias-demo', { token: t!.adminToken });
      expect(res.status).toBe(200);
      expect(res.body.id).toBe(projectId);
      const doc = document();
      expect(Object.keys(doc.paths).some((p) => p.startsWith('/api/projects/{owner}/{name}/'))).toBe(false);
      const members = doc.paths['/api/projects/{id}/members']!.get! as unknown as { description: string };
      expect(members.description).toContain('/api/projects/{owner}/{name}/members');
    });
  });
});
