/**
 * The every-route test: each route in the registry, called as the admin with garbage path parameters,
 * bodies and query strings, answers a 4xx with the stable error body — never a 5xx, never a success.
 * New routes are covered by registering them; nothing here names a route.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { AnyRouteDef } from '../src/core/http.js';
import { createTestPlatform, insertProject, servicesMissing, type TestPlatform } from './helpers/app.js';
import {
  expectClientError,
  expectDetailFor,
  fillUrl as fillRouteUrl,
  innerType,
  jsonSchema,
  paramNames,
  paramSchema,
  wrongValues,
} from './helpers/bad-input.js';

// The route list is needed while collecting tests, so the platform is built at module load.
const t: TestPlatform | undefined = servicesMissing ? undefined : await createTestPlatform();
const projectId = t ? await insertProject(t, { name: 'bad-input' }) : '';
const routes: AnyRouteDef[] = t?.platform.registry.routes ?? [];
afterAll(() => t?.close());

const ELEVEN_MB = 11 * 1024 * 1024;
const JSON_HEADERS = { 'content-type': 'application/json' };

const fillUrl = (r: AnyRouteDef, overrides: Record<string, string> = {}) =>
  fillRouteUrl(r, projectId, overrides);

const send = (method: string, url: string, body?: string) =>
  t!.request(method, url, {
    token: t!.adminToken,
    noAuditCheck: true,
    ...(body !== undefined ? { body, headers: JSON_HEADERS } : {}),
  });

describe.skipIf(servicesMissing)('every route rejects bad input with a 4xx and the stable error body', () => {
  it('the registry has routes, each declaring its access', () => {
    expect(routes.length).toBeGreaterThan(10);
    for (const r of routes) expect(r.access, `${r.method} ${r.url}`).toBeTruthy();
  });

  for (const r of routes) {
    const label = `${r.method} ${r.url}`;
    const params = paramNames(r);
    const bodyProps = r.body ? (jsonSchema(r.body).properties ?? {}) : {};
    const bodyShape = (r.body as z.ZodObject | undefined)?.shape ?? {};
    const queryProps = r.query ? (jsonSchema(r.query).properties ?? {}) : {};
    const queryShape = (r.query as z.ZodObject | undefined)?.shape ?? {};
    const validBody = r.body ? '{}' : undefined;

    describe(label, () => {
      it('a bad bearer token answers 401; no credentials answers 401 (404 for a hidden project) unless public', async () => {
        for (const token of ['plat_api_not-a-token', 'garbage', '']) {
          const res = await t!.request(r.method, fillUrl(r), {
            noAuditCheck: true,
            headers: { authorization: `Bearer ${token}` },
          });
          const error = expectClientError(res, `${label} with bearer "${token}"`);
          expect(res.status).toBe(401);
          expect(error.code).toBe('unauthorized');
        }
        const malformedBasic = await t!.request(r.method, fillUrl(r), {
          noAuditCheck: true,
          headers: { authorization: 'Basic not-base64-without-colon' },
        });
        expect(expectClientError(malformedBasic, `${label} malformed Basic`).code).toBe('unauthorized');
        const anonymous = await t!.request(r.method, fillUrl(r), { noAuditCheck: true, body: validBody });
        if (r.access === 'public') {
          expect(anonymous.status, `${label} anonymous: ${anonymous.text.slice(0, 200)}`).toBeLessThan(500);
        } else {
          const error = expectClientError(anonymous, `${label} anonymous`);
          expect([401, 404]).toContain(anonymous.status);
          if (anonymous.status === 401) expect(error.code).toBe('unauthorized');
        }
      });

      if (params.length > 0) {
        it('garbage path parameters answer 400 or 404', async () => {
          for (const name of params) {
            for (const bad of [
              'not-a-uuid',
              '..%2F..%2Fetc',
              '../../etc',
              '%00',
              'a%20b',
              "1'%20or%20'1'='1",
            ]) {
              const url = fillUrl(r, { [name]: bad });
              const res = await send(r.method, url, validBody);
              const what = `${label} with ${name}=${bad}`;
              // Raw dot segments are resolved before routing: a URL that leaves /api/ asks for a
              // page of the web UI (its HTML), which is not this route's answer to check.
              if (!new URL(url, 'http://x').pathname.startsWith('/api/')) {
                if (res.status === 200) expect(res.headers['content-type'], what).toMatch(/^text\/html/);
                else expectClientError(res, what);
                continue;
              }
              expect([400, 403, 404], `${what}: ${res.text.slice(0, 200)}`).toContain(res.status);
              const error = expectClientError(res, what);
              const schema = paramSchema(r, name);
              if (name !== '*' && bad === 'not-a-uuid' && schema && !schema.safeParse(bad).success) {
                expect(res.status, what).toBe(400);
                expectDetailFor(error, `params.${name}`, what);
              }
            }
          }
        });
      }

      if (r.body) {
        it('bodies of the wrong shape answer 4xx', async () => {
          const url = fillUrl(r);
          const weird = JSON.stringify({
            name: 123,
            email: false,
            permissions: 'x',
            role: {},
            user_id: 'nope',
            expires_at: 'yesterday',
            project_id: 'x',
            delegate_id: [],
            permission: 7,
            password: null,
            scopes: 'all',
          });
          for (const body of ['[]', '"str"', '{}', '123', 'null', 'true', weird, '{"a":', '']) {
            const res = await send(r.method, url, body);
            const what = `${label} with body ${body.slice(0, 40)}`;
            let accepted = false;
            try {
              accepted = r.body!.safeParse(JSON.parse(body)).success;
            } catch {
              // not JSON: the parser refuses it
            }
            if (accepted) {
              // e.g. `{}` for a PATCH whose fields are all optional: valid input, but never a 5xx.
              expect(res.status, `${what}: ${res.text.slice(0, 200)}`).toBeLessThan(500);
              if (res.status >= 400) expectClientError(res, what);
            } else {
              const error = expectClientError(res, what);
              expect(res.status, what).toBe(400);
              expect(error.code, what).toBe('bad_request');
            }
          }
        });

        it('a non-JSON body answers 4xx', async () => {
          const res = await t!.request(r.method, fillUrl(r), {
            token: t!.adminToken,
            noAuditCheck: true,
            body: 'name=x&role=admin',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
          });
          expect(res.status).toBe(415);
          expect(expectClientError(res, `${label} with a form body`).code).toBe('unsupported_media_type');
        });

        it('a wrong value in each body field answers 400 naming the field', async () => {
          let tried = 0;
          for (const [field, prop] of Object.entries(bodyProps)) {
            const zodType = bodyShape[field] ? innerType(bodyShape[field] as z.ZodType) : 'unknown';
            for (const value of wrongValues(prop, zodType, false)) {
              tried++;
              const res = await send(r.method, fillUrl(r), JSON.stringify({ [field]: value }));
              const what = `${label} with ${field}=${JSON.stringify(value).slice(0, 40)}`;
              const error = expectClientError(res, what);
              expect(res.status, what).toBe(400);
              expectDetailFor(error, `body.${field}`, what);
            }
          }
          expect(tried, 'at least one wrong value was generated').toBeGreaterThan(0);
        });

        const enumFields = Object.entries(bodyProps).filter(([, p]) => {
          const s = p.anyOf?.find((b) => b.type !== 'null') ?? p;
          return s.enum || s.items?.enum;
        });
        if (enumFields.length > 0) {
          it('an unknown enum value answers 400 naming the field', async () => {
            for (const [field, p] of enumFields) {
              const s = p.anyOf?.find((b) => b.type !== 'null') ?? p;
              const value = s.enum ? 'definitely_not_a_member' : ['definitely_not_a_member'];
              const res = await send(r.method, fillUrl(r), JSON.stringify({ [field]: value }));
              const error = expectClientError(res, `${label} ${field}`);
              expect(res.status).toBe(400);
              expectDetailFor(error, `body.${field}`, `${label} ${field}`);
            }
          });
        }

        const limit = r.bodyLimit ?? t!.config.body_limit_bytes;
        if (limit < ELEVEN_MB) {
          it('an 11 MB body answers 413 payload_too_large', async () => {
            const body = `{"name":"${'x'.repeat(ELEVEN_MB)}"}`;
            const res = await send(r.method, fillUrl(r), body);
            const error = expectClientError(res, `${label} with 11 MB`);
            expect(res.status).toBe(413);
            expect(error.code).toBe('payload_too_large');
          });
        }
      }

      // An open query (a record: passed on to a deployed app, or read by the web UI's router) has no
      // unknown parameters.
      if (!r.raw || (r.query && !(r.query instanceof z.ZodRecord))) {
        it('an unknown query parameter answers 400 naming it', async () => {
          const res = await send(r.method, `${fillUrl(r)}?page=2`, validBody);
          // Access is checked first: a caller who may not call the route learns nothing about its parameters.
          if (res.status === 401 || res.status === 403 || res.status === 404) return;
          const error = expectClientError(res, `${label} ?page=2`);
          expect(res.status, res.text).toBe(400);
          expectDetailFor(error, 'query.page', label);
          expect(res.body.error.message).toContain('page');
        });
      }

      if (r.query) {
        it('a garbage query string answers 4xx (never 5xx)', async () => {
          // Only parameters the route knows: an unknown one is refused before any value is read (below).
          const garbage = ['limit=abc', 'cursor=%%%', 'since=notadate'].filter(
            (p) => p.split('=')[0]! in queryProps,
          );
          const res = await send(r.method, `${fillUrl(r)}?${garbage.join('&')}`, validBody);
          const knows = ['limit', 'since'].some((k) => k in queryProps);
          if (knows) {
            const error = expectClientError(res, `${label} garbage query`);
            expect(res.status).toBe(400);
            if ('limit' in queryProps) expectDetailFor(error, 'query.limit', label);
            if ('since' in queryProps) expectDetailFor(error, 'query.since', label);
          } else {
            expect(res.status, res.text).toBeLessThan(500);
            if (res.status >= 400) expectClientError(res, `${label} garbage query`);
          }
        });

        it('a wrong value in each query parameter answers 400 naming it', async () => {
          for (const [field, prop] of Object.entries(queryProps)) {
            const zodType = queryShape[field] ? innerType(queryShape[field] as z.ZodType) : 'unknown';
            for (const value of wrongValues(prop, zodType, true)) {
              const qs = new URLSearchParams({ [field]: String(value) }).toString();
              const res = await send(r.method, `${fillUrl(r)}?${qs}`, validBody);
              const what = `${label} ?${qs.slice(0, 60)}`;
              const error = expectClientError(res, what);
              expect(res.status, what).toBe(400);
              expectDetailFor(error, `query.${field}`, what);
            }
          }
        });

        if ('cursor' in queryProps) {
          it('a cursor this API did not issue answers 400', async () => {
            // Cursors no route can have issued, whatever its sort key: not base64 JSON, not an array of
            // strings, empty, or a (time|name, id) pair whose values are not a time and an id.
            const forged = [
              'garbage',
              '%%%',
              Buffer.from('{"a":1}').toString('base64url'),
              Buffer.from('[1,2]').toString('base64url'),
              Buffer.from('[]').toString('base64url'),
              Buffer.from('["not-a-date","not-a-uuid"]').toString('base64url'),
            ];
            for (const cursor of forged) {
              const res = await send(
                r.method,
                `${fillUrl(r)}?cursor=${encodeURIComponent(cursor)}`,
                validBody,
              );
              expectClientError(res, `${label} cursor=${cursor}`);
            }
          });
        }
      }
    });
  }
});
