/**
 * Bad input at scale: a seeded generator driven by the platform's own OpenAPI document
 * (`/api/openapi.json`, every operation) sends PLATFORM_BAD_INPUT_REQUESTS (default 100,000) requests
 * — wrong types, missing and extra fields, boundary and huge values, hostile strings, invalid ids,
 * bad JSON, bad content types and encodings, gzip bombs where a route decodes gzip — and asserts:
 * no 5xx, every reply of the stable shape (the harness's contract check), a refusal (4xx) wherever the
 * input is invalid by the route's own schemas or its credentials, no error-level log line, and no
 * write: the audit log and every table of the schema are as before the sweep.
 *
 * Reproduce a failure with the printed seed: PLATFORM_BAD_INPUT_SEED=<seed> (request n is derived
 * from the seed and n alone, so the failure message's request is the same on every run).
 * test/bad-input.test.ts is the small, exact sweep (each route, each fault, the precise answer).
 */

import { parse as parseQuery } from 'node:querystring';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import type { AnyRouteDef } from '../src/core/http.js';
import { createTestPlatform, servicesMissing, storeMode, type TestPlatform } from './helpers/app.js';
import {
  changedTables,
  errorLogLines,
  fillUrl,
  HOSTILE_PATH_SEGMENTS,
  HOSTILE_STRINGS,
  INVALID_IDS,
  innerType,
  isStreamRoute,
  type JsonSchema,
  jsonSchema,
  nonNull,
  paramNames,
  paramSchema,
  percentEncode,
  prng,
  projectParamOf,
  tableDigests,
  wrongValues,
} from './helpers/bad-input.js';
import { replyProblem } from './helpers/responses.js';

const REQUESTS = Number(process.env.PLATFORM_BAD_INPUT_REQUESTS ?? 100_000);
const SEED = Number(process.env.PLATFORM_BAD_INPUT_SEED ?? Math.floor(Math.random() * 2 ** 31));
// Below the harness pool (5 connections): on a loaded machine (load 20 on 2 cores) a queue for the
// pool waits past its 5 s checkout timeout, and the 503 that follows is overload, not bad input.
const CONCURRENCY = 4;
const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/**
 * Tables written without a caller's mutation: the platform's own log lines and accepted OTLP records
 * (observe), lease rows of the background loops, token last-used times. Their row counts only
 * (leases, tokens) or nothing (telemetry) are compared.
 */
const TELEMETRY_TABLES = [
  'log_entries',
  'spans',
  'traces',
  'metric_series',
  'metric_samples',
  'observe_cold_files',
];
const COUNT_ONLY_TABLES = ['scheduler_leases', 'api_tokens'];

interface Operation {
  method: string;
  path: string;
  def: AnyRouteDef;
  mutating: boolean;
  stream: boolean;
  bodyProps: Record<string, JsonSchema>;
  required: string[];
  bodyShape: Record<string, z.ZodType>;
  queryProps: Record<string, JsonSchema>;
  queryShape: Record<string, z.ZodType>;
}

interface Generated {
  kind: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string | Buffer;
  /** The input is invalid by the route's schemas or credentials: anything but a 4xx is a failure. */
  mustFail: boolean;
  remoteAddress: string;
}

const operationKey = (method: string, path: string) =>
  `${method} ${path
    .replace(/\{[^}]+\}/g, '{}')
    .replace(/:[^/]+/g, '{}')
    .replace(/\*$/, '{}')}`;

function operationsOf(
  doc: { paths: Record<string, Record<string, unknown>> },
  routes: AnyRouteDef[],
): Operation[] {
  const byKey = new Map(routes.map((r) => [operationKey(r.method, r.url), r]));
  const ops: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item)) {
      const def = byKey.get(operationKey(method.toUpperCase(), path));
      if (!def) throw new Error(`${method.toUpperCase()} ${path} of the OpenAPI document has no route`);
      const body = def.body ? jsonSchema(def.body) : undefined;
      const query = def.query ? jsonSchema(def.query) : undefined;
      ops.push({
        method: def.method,
        path,
        def,
        mutating: MUTATING.has(def.method),
        stream: isStreamRoute(def),
        bodyProps: body?.properties ?? {},
        required: body?.required ?? [],
        bodyShape: ((def.body as z.ZodObject | undefined)?.shape ?? {}) as Record<string, z.ZodType>,
        queryProps: query?.properties ?? {},
        queryShape: ((def.query as z.ZodObject | undefined)?.shape ?? {}) as Record<string, z.ZodType>,
      });
    }
  }
  return ops;
}

const decodeOrRaw = (segment: string) => {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
};

/** A random source for request n of the run: the same seed and n give the same request. */
function rngFor(seed: number, n: number) {
  const next = prng((seed ^ Math.imul(n + 1, 0x9e3779b1)) >>> 0);
  const int = (max: number) => Math.floor(next() * max);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const hex = (len: number) => Array.from({ length: len }, () => int(16).toString(16)).join('');
  const uuid = () => `${hex(8)}-${hex(4)}-4${hex(3)}-8${hex(3)}-${hex(12)}`;
  return { next, int, pick, uuid, chance: (p: number) => next() < p };
}
type Rng = ReturnType<typeof rngFor>;

/** A value the property's schema probably accepts (the starting point that one fault then breaks). */
function plausibleValue(prop: JsonSchema, rng: Rng): unknown {
  const p = nonNull(prop);
  if (p.enum) return p.enum[0];
  switch (p.type) {
    case 'string':
      if (p.format === 'uuid') return rng.uuid();
      if (p.format === 'email') return 'someone@example.test';
      if (p.format === 'date-time') return new Date(1_700_000_000_000).toISOString();
      return 'x'.repeat(Math.max(1, p.minLength ?? 1));
    case 'integer':
    case 'number':
      return p.minimum ?? 1;
    case 'boolean':
      return true;
    case 'array':
      return [];
    case 'object':
      return {};
    default:
      return 'x';
  }
}

/** A value at or past a property's edge, or simply hostile. */
function edgeValue(prop: JsonSchema, rng: Rng): unknown {
  const p = nonNull(prop);
  const numbers = [
    0,
    -1,
    -0,
    1e308,
    -1e308,
    2 ** 31,
    2 ** 53,
    2 ** 63,
    Number.MAX_SAFE_INTEGER + 2,
    0.1,
    p.minimum ?? 0,
    (p.minimum ?? 0) - 1,
    p.maximum ?? 1e9,
    (p.maximum ?? 1e9) + 1,
  ];
  const strings = [
    ...HOSTILE_STRINGS,
    'x'.repeat((p.maxLength ?? 1000) + 1),
    'x'.repeat(p.maxLength ?? 1),
    'y'.repeat(200_000),
  ];
  return rng.pick([
    () => rng.pick(numbers),
    () => rng.pick(strings),
    () => rng.pick(INVALID_IDS),
    () => null,
    () => [rng.pick(strings)],
    () => ({ [rng.pick(strings)]: rng.pick(strings) }),
    () => Array.from({ length: 10_000 }, () => 'a'),
    () => rng.pick([true, false]),
  ])();
}

const GZIP_BOMB = gzipSync(Buffer.alloc(64 * 1024 * 1024));
const JSON_BOMB = gzipSync(Buffer.from(`{"resourceLogs":[${'{},'.repeat(4_000_000)}{}]}`));
const DEEP_JSON = `${'['.repeat(50_000)}${']'.repeat(50_000)}`;
const DEEP_OBJECT = `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`;
const ELEVEN_MB_JSON = `{"name":"${'x'.repeat(11 * 1024 * 1024)}"}`;
const BAD_JSON = [
  '{"a":',
  '{',
  '}',
  "{'a':1}",
  '{"a":1,}',
  '{"a":NaN}',
  '{"a":Infinity}',
  '{"a":undefined}',
  '[1,2',
  '"unterminated',
  '{"a":"\\x00"}',
  '{"a":"\\ud800"}',
  '{"__proto__":{"admin":true}}',
  '{"constructor":{"prototype":{"admin":true}}}',
  '{"a":1}{"b":2}',
  '\ufeff{}',
  '0x10',
  '1e99999',
  '',
  '   ',
  'null',
  'true',
  '[]',
  '"str"',
  '-0',
  DEEP_JSON,
  DEEP_OBJECT,
];
const NOT_JSON_TYPES = [
  'application/x-www-form-urlencoded',
  'text/plain',
  'text/html',
  'multipart/form-data; boundary=xyz',
  'application/xml',
  'application/octet-stream',
  'image/png',
  'application/jsonx',
  'json',
  '',
];
const BAD_AUTH = [
  'Bearer plat_api_0000000000000000000000000000000000000000',
  'Bearer plat_api_',
  'Bearer ',
  'Bearer garbage',
  `Bearer ${'a'.repeat(8_000)}`,
  'Bearer plat_api_\u0000',
  'Basic not-base64-without-colon',
  'Basic ',
  'Digest username="admin"',
  'bearer',
  '',
];

/** Builds request n: an operation (round robin over the document) and one fault of a kind it can have. */
function generate(
  ops: Operation[],
  n: number,
  ctx: { projectId: string; repo: string; token: string },
): Generated {
  const op = ops[n % ops.length]!;
  const rng = rngFor(SEED, n);
  const r = op.def;
  const params = paramNames(r);
  const hasBody = Boolean(r.body);
  const queryNames = Object.keys(op.queryProps);
  const kinds: string[] = ['auth', 'unknown-query'];
  if (params.length) kinds.push('param', 'param', 'param');
  if (queryNames.length) kinds.push('query', 'query', 'query');
  if (hasBody) kinds.push('body', 'body', 'body', 'body', 'bad-json', 'bad-json', 'content-type', 'encoding');
  // Routes that read the request stream themselves: OTLP ingest (gzip allowed) and git's packs.
  const streamed = r.streamBody || /\/git-(upload|receive)-pack$/.test(r.url);
  if (streamed) kinds.push('stream-body', 'stream-body');
  // A bomb costs seconds of decompression: a few dozen per 100,000 requests.
  if (streamed && rng.chance(0.03)) kinds.push(...Array<string>(10).fill('bomb'));
  if (hasBody && rng.chance(0.01)) kinds.push('huge');
  const kind = rng.pick(kinds);

  const headers: Record<string, string> = { authorization: `Bearer ${ctx.token}` };
  // Git and LFS routes name the sweep's real repository, so their parsing (not a 404) is reached.
  const repoParams: Record<string, string> = r.url.startsWith('/:owner/:repo/')
    ? { owner: 'admin', repo: `${ctx.repo}.git` }
    : {};
  let url = fillUrl(r, ctx.projectId, repoParams);
  let payload: string | Buffer | undefined;
  let mustFail = false;
  const query: string[] = [];

  const plausibleBody = () => {
    const body: Record<string, unknown> = {};
    for (const [k, p] of Object.entries(op.bodyProps))
      if (op.required.includes(k) || rng.chance(0.5)) body[k] = plausibleValue(p, rng);
    return body;
  };
  const bodyFails = (body: unknown) => !r.body!.safeParse(body).success;

  switch (kind) {
    case 'auth': {
      headers.authorization = rng.pick(BAD_AUTH);
      if (!headers.authorization) delete headers.authorization;
      if (hasBody) {
        payload = JSON.stringify(plausibleBody());
        headers['content-type'] = 'application/json';
      }
      mustFail = r.access !== 'public';
      break;
    }
    case 'param': {
      const name = rng.pick(params);
      const value = rng.pick([
        () => rng.pick(HOSTILE_PATH_SEGMENTS),
        () => percentEncode(rng.pick(HOSTILE_STRINGS)).slice(0, 2_000),
        () => rng.pick(INVALID_IDS),
        () => rng.uuid(),
      ])();
      url = fillUrl(r, name === projectParamOf(r) ? rng.uuid() : ctx.projectId, {
        ...repoParams,
        [name]: value || 'x',
      });
      if (hasBody) {
        payload = JSON.stringify(plausibleBody());
        headers['content-type'] = 'application/json';
      }
      // An id the params schema refuses is refused; a well-formed one may name what a PUT/PATCH
      // creates (a deployment environment), so that request goes with refused credentials below.
      const schema = paramSchema(r, name);
      mustFail = Boolean(schema && !schema.safeParse(decodeOrRaw(value)).success);
      break;
    }
    case 'query': {
      const name = rng.pick(queryNames);
      const prop = op.queryProps[name]!;
      const zodType = op.queryShape[name] ? innerType(op.queryShape[name]!) : 'unknown';
      const wrong = wrongValues(prop, zodType, true);
      const value = rng.pick([
        () => (wrong.length ? String(rng.pick(wrong)) : rng.pick(HOSTILE_STRINGS)),
        () => rng.pick(HOSTILE_STRINGS),
        () => String(edgeValue(prop, rng)),
        () => rng.pick(['0', '1', '200', '201', '-1', '1e20', '', ' 1', '0x10', '1.0', '١']),
      ])();
      query.push(`${name}=${percentEncode(value).slice(0, 20_000)}`);
      if (rng.chance(0.2)) query.push(`${name}=${percentEncode(rng.pick(HOSTILE_STRINGS).slice(0, 100))}`);
      if (rng.chance(0.1)) query.push(`${name}=${rng.pick(HOSTILE_PATH_SEGMENTS)}`);
      if (hasBody) {
        payload = JSON.stringify(plausibleBody());
        headers['content-type'] = 'application/json';
      }
      const parsed = parseQuery(query.join('&'));
      mustFail = !r.query!.safeParse(parsed).success;
      break;
    }
    case 'unknown-query': {
      query.push(
        `${rng.pick(['page', 'admin', 'debug', '__proto__', 'constructor', 'q[]', 'a.b'])}=${percentEncode(rng.pick(HOSTILE_STRINGS).slice(0, 100))}`,
      );
      if (hasBody) {
        payload = JSON.stringify(plausibleBody());
        headers['content-type'] = 'application/json';
      }
      // Open (record) queries pass any parameter on (a deployed app's, the web UI's router).
      mustFail = !(r.raw && (!r.query || !('shape' in r.query)));
      break;
    }
    case 'body': {
      const body = plausibleBody();
      const fields = Object.keys(op.bodyProps);
      const fault = rng.pick(['wrong-type', 'wrong-type', 'missing', 'extra', 'edge', 'edge', 'shape']);
      let sent: unknown = body;
      if (fault === 'shape' || fields.length === 0) sent = rng.pick([[], [body], 'str', 42, null, true]);
      else if (fault === 'missing') {
        if (op.required.length) delete body[rng.pick(op.required)];
        else for (const k of fields) body[k] = null;
      } else if (fault === 'extra') {
        body[rng.pick(['admin', 'id', 'owner_id', 'created_at', '__proto__', 'x'.repeat(300), '\u0000'])] =
          rng.pick(HOSTILE_STRINGS);
      } else if (fault === 'wrong-type') {
        const field = rng.pick(fields);
        const wrong = wrongValues(
          op.bodyProps[field]!,
          op.bodyShape[field] ? innerType(op.bodyShape[field]!) : 'unknown',
          false,
        );
        body[field] = wrong.length ? rng.pick(wrong) : edgeValue(op.bodyProps[field]!, rng);
      } else {
        body[rng.pick(fields)] = edgeValue(op.bodyProps[rng.pick(fields)]!, rng);
      }
      mustFail = bodyFails(sent);
      if (!mustFail && op.mutating) {
        // Valid after all (an edge inside the range, an optional field dropped): wrapped in an array
        // it is refused for sure, so the sweep writes nothing.
        sent = [sent];
        mustFail = bodyFails(sent);
      }
      payload = JSON.stringify(sent);
      headers['content-type'] = rng.pick([
        'application/json',
        'application/json; charset=utf-8',
        'APPLICATION/JSON',
      ]);
      break;
    }
    case 'bad-json': {
      payload = rng.chance(0.2)
        ? Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0xff, 0x22, 0x7d])
        : rng.pick(BAD_JSON);
      headers['content-type'] = 'application/json';
      let parsed: unknown;
      let parses = false;
      try {
        // As the server reads it: UTF-8 with replacement characters, a leading BOM ignored;
        // __proto__ and constructor.prototype keys refused (secure-json-parse).
        const text = (typeof payload === 'string' ? payload : payload.toString('utf8')).replace(
          /^\ufeff/,
          '',
        );
        parsed = JSON.parse(text);
        parses = !text.includes('__proto__') && !text.includes('constructor');
      } catch {
        // not JSON: refused by the parser
      }
      mustFail = !parses || bodyFails(parsed);
      if (!mustFail && op.mutating) {
        payload = '{"a":';
        mustFail = true;
      }
      break;
    }
    case 'content-type': {
      payload = rng.chance(0.5) ? JSON.stringify(plausibleBody()) : 'name=x&role=admin&a[b]=c';
      const type = rng.pick(NOT_JSON_TYPES);
      if (type) headers['content-type'] = type;
      mustFail = !streamed;
      break;
    }
    case 'encoding': {
      headers['content-type'] = 'application/json';
      headers['content-encoding'] = rng.pick(['gzip', 'deflate', 'br', 'zstd', 'x-garbage', 'gzip, gzip']);
      payload = rng.chance(0.5) ? gzipSync(Buffer.from(JSON.stringify(plausibleBody()))) : GZIP_BOMB;
      mustFail = !streamed;
      break;
    }
    case 'stream-body': {
      headers['content-type'] = rng.pick([
        'application/json',
        'application/x-protobuf',
        'application/protobuf',
        'application/x-git-upload-pack-request',
        'application/x-git-receive-pack-request',
        'text/plain',
        'application/octet-stream',
      ]);
      payload = rng.pick([
        () => Buffer.from(Array.from({ length: rng.int(4096) }, () => rng.int(256))),
        () =>
          JSON.stringify({
            resourceLogs: [
              {
                scopeLogs: [
                  {
                    logRecords: [
                      {
                        body: { stringValue: rng.pick(HOSTILE_STRINGS) },
                        timeUnixNano: rng.pick(['x', '-1', '1e30', '99999999999999999999999']),
                      },
                    ],
                  },
                ],
              },
            ],
          }),
        () =>
          JSON.stringify({
            resourceSpans: [
              {
                scopeSpans: [
                  {
                    spans: [
                      { traceId: rng.pick(INVALID_IDS), spanId: 'zz', name: rng.pick(HOSTILE_STRINGS) },
                    ],
                  },
                ],
              },
            ],
          }),
        () => rng.pick(BAD_JSON),
        () => '0000',
        () => `0032want ${'0'.repeat(40)}\n00000009done\n`,
      ])();
      break;
    }
    case 'bomb': {
      headers['content-encoding'] = 'gzip';
      headers['content-type'] = rng.pick([
        'application/json',
        'application/x-protobuf',
        'application/x-git-upload-pack-request',
      ]);
      payload = rng.pick([GZIP_BOMB, JSON_BOMB, GZIP_BOMB.subarray(0, 100), Buffer.from('not gzip at all')]);
      break;
    }
    case 'huge': {
      payload = ELEVEN_MB_JSON;
      headers['content-type'] = 'application/json';
      mustFail = (r.bodyLimit ?? 1024 * 1024) < ELEVEN_MB_JSON.length;
      break;
    }
  }
  // A GET that would succeed on a stream route stays open: refuse it for sure (an unknown parameter).
  if (op.stream && !mustFail) {
    query.push('definitely_unknown=1');
    mustFail = true;
  }
  // Dot segments (`..`, `%2e%2e`) are resolved before routing: the request names another route
  // (DELETE …/secrets/.. is a DELETE of the project), so a mutation goes with refused credentials.
  const resolvesElsewhere = new URL(url, 'http://x').pathname !== url.split('?')[0];
  if (resolvesElsewhere && !op.mutating) mustFail = false;
  if (op.mutating && resolvesElsewhere) {
    headers.authorization = rng.pick(BAD_AUTH.filter(Boolean));
    mustFail = true;
  }
  if (op.mutating && !mustFail && !streamed) {
    // Valid input on a mutation: the sweep must write nothing, so its credentials are refused.
    headers.authorization = 'Bearer plat_api_0000000000000000000000000000000000000000';
    mustFail = r.access !== 'public';
  }
  // Failed credentials are counted per client address (429 past the limit, for every request of
  // that address): they come from addresses of their own, one in ten from a single "attacker".
  const refusedCredentials = headers.authorization !== `Bearer ${ctx.token}`;
  const remoteAddress = refusedCredentials
    ? rng.chance(0.1)
      ? '10.66.66.66'
      : `10.${rng.int(256)}.${rng.int(256)}.${1 + rng.int(254)}`
    : '127.0.0.1';
  if (query.length) url += `${url.includes('?') ? '&' : '?'}${query.join('&')}`;
  return { kind, method: r.method, url, headers, payload, mustFail, remoteAddress };
}

const describeRequest = (n: number, g: Generated) => {
  const body =
    g.payload === undefined
      ? ''
      : typeof g.payload === 'string'
        ? ` body ${JSON.stringify(g.payload.slice(0, 160))}${g.payload.length > 160 ? `… (${g.payload.length} chars)` : ''}`
        : ` body <${g.payload.length} bytes>`;
  return `#${n} [${g.kind}] ${g.method} ${g.url.slice(0, 300)} headers ${JSON.stringify(g.headers).slice(0, 300)}${body}`;
};

describe.skipIf(servicesMissing)(`bad input at scale (${storeMode})`, () => {
  let t: TestPlatform;
  let projectId: string;

  beforeAll(async () => {
    // Warn level: the sweep's request lines would fill the memory, error lines are what is checked.
    t = await createTestPlatform({ config: { PLATFORM_LOG_LEVEL: 'warn' } });
    const created = await t.request('POST', '/api/projects', {
      token: t.adminToken,
      body: { name: 'scale' },
    });
    expect(created.status, created.text).toBe(201);
    projectId = created.body.id;
    const issue = await t.request('POST', `/api/projects/${projectId}/issues`, {
      token: t.adminToken,
      body: { title: 'an issue the reads find' },
    });
    expect(issue.status, issue.text).toBe(201);
  }, 120_000);
  afterAll(() => t?.close());

  it('an OTLP/JSON body nested 20,000 levels deep answers 400 (it overflowed the stack: a 500)', async () => {
    for (const signal of ['logs', 'traces', 'metrics']) {
      const res = await t.request('POST', `/v1/${signal}`, {
        token: t.adminToken,
        body: DEEP_OBJECT,
        headers: { 'content-type': 'application/json' },
      });
      expect(res.status, res.text.slice(0, 200)).toBe(400);
      expect(res.body.error.reason).toBe('observe.malformed_json');
    }
  });

  it(
    `${REQUESTS} generated requests across every operation: no 5xx, refusals where invalid, no error log, no write`,
    async () => {
      const docRes = await t.platform.fastify.inject({ method: 'GET', url: '/api/openapi.json' });
      expect(docRes.statusCode).toBe(200);
      const ops = operationsOf(JSON.parse(docRes.body), t.platform.registry.routes);
      expect(ops.length).toBeGreaterThan(100);

      const inFlight = new Map<string, number>();
      const contractProblems: string[] = [];
      t.platform.registry.observe((reply) => {
        const problem = replyProblem(reply);
        if (problem)
          contractProblems.push(
            `${problem} (request #${inFlight.get(`${reply.method} ${reply.url}`) ?? '?'})`,
          );
      });

      await t.platform.settle();
      const auditBefore = await t.auditCount();
      const excluded = new Set(TELEMETRY_TABLES);
      const digestsBefore = await tableDigests(t.platform.drivers.db.db, COUNT_ONLY_TABLES);
      const logStart = t.logLines.length;

      const started = Date.now();
      let sent = 0;
      let serverErrors = 0;
      const failures: string[] = [];
      const statuses = new Map<number, number>();
      const perKind = new Map<string, number>();
      const kindMs = new Map<string, number>();
      const limited = new Map<string, number>();
      let next = 0;
      let lastReport = started;
      const worker = async () => {
        for (let n = next++; n < REQUESTS; n = next++) {
          const g = generate(ops, n, { projectId, repo: 'scale', token: t.adminToken });
          inFlight.set(`${g.method} ${g.url}`, n);
          const t0 = performance.now();
          const res = await t.platform.fastify.inject({
            method: g.method as 'GET',
            url: g.url,
            headers: g.headers,
            remoteAddress: g.remoteAddress,
            ...(g.payload !== undefined ? { payload: g.payload } : {}),
          });
          sent++;
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          perKind.set(g.kind, (perKind.get(g.kind) ?? 0) + 1);
          kindMs.set(g.kind, (kindMs.get(g.kind) ?? 0) + performance.now() - t0);
          const op = `${g.method} ${ops[n % ops.length]!.path}`;
          if (res.statusCode === 429) limited.set(op, (limited.get(op) ?? 0) + 1);
          if (res.statusCode >= 500) {
            serverErrors++;
            failures.push(`${op}: ${res.statusCode} ${res.body.slice(0, 200)} — ${describeRequest(n, g)}`);
          } else if (
            g.mustFail &&
            res.statusCode < 400 &&
            // A path the router cannot give to this route (a parameter past its 500-character
            // limit) is a page of the web UI: not this route's answer.
            !(g.method === 'GET' && String(res.headers['content-type']).startsWith('text/html'))
          ) {
            failures.push(`${op}: invalid input accepted with ${res.statusCode} — ${describeRequest(n, g)}`);
          }
          if (Date.now() - lastReport > 10_000) {
            lastReport = Date.now();
            console.log(`bad input (${storeMode}): ${sent}/${REQUESTS} sent, ${serverErrors} × 5xx`);
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      const seconds = (Date.now() - started) / 1000;
      t.platform.registry.observe(undefined);

      await t.platform.settle();
      const auditAfter = await t.auditCount();
      const digestsAfter = await tableDigests(t.platform.drivers.db.db, COUNT_ONLY_TABLES);
      const changed = changedTables(digestsBefore, digestsAfter).filter((n) => !excluded.has(n));
      const errors = errorLogLines(t.logLines.slice(logStart));

      console.log(
        `bad input (${storeMode}): seed ${SEED}; ${sent} requests over ${ops.length} operations in ${seconds.toFixed(1)} s ` +
          `(${Math.round(sent / seconds)}/s); ${serverErrors} × 5xx; ${failures.length} failures; ` +
          `${errors.length} error log lines; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}; ` +
          `429 by operation ${JSON.stringify(Object.fromEntries([...limited].sort((a, b) => b[1] - a[1]).slice(0, 5)))}; ` +
          `kinds ${JSON.stringify(Object.fromEntries(perKind))}; ms per kind ${JSON.stringify(Object.fromEntries([...kindMs].map(([k, v]) => [k, Math.round(v)])))}`,
      );
      for (const line of errors.slice(0, 5)) console.log(`error log line: ${line.slice(0, 2000)}`);
      const reproduce = `(reproduce: PLATFORM_BAD_INPUT_SEED=${SEED} PLATFORM_BAD_INPUT_REQUESTS=${REQUESTS})`;
      expect(sent).toBe(REQUESTS);
      expect(failures.slice(0, 20), `seed ${SEED}: ${failures.length} failures ${reproduce}`).toEqual([]);
      expect(contractProblems.slice(0, 20), `seed ${SEED}: reply contract ${reproduce}`).toEqual([]);
      expect(errors.slice(0, 10), `seed ${SEED}: error-level log lines ${reproduce}`).toEqual([]);
      expect(
        auditAfter - auditBefore,
        `seed ${SEED}: audit rows written by refused requests ${reproduce}`,
      ).toBe(0);
      expect(changed, `seed ${SEED}: tables changed by refused requests ${reproduce}`).toEqual([]);
    },
    30 * 60_000,
  );
});
