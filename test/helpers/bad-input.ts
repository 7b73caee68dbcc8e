/**
 * What the bad-input tests share: reading a route's zod schemas as JSON Schema, values that violate
 * them, filling a route's URL, the stable error body check, hostile strings, a seeded PRNG, and the
 * database/log invariants checked after a sweep (test/bad-input.test.ts, test/bad-input-scale.test.ts).
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { expect } from 'vitest';
import { z } from 'zod';
import type { AnyRouteDef } from '../../src/core/http.js';
import type { Db } from '../../src/store/db.js';
import type { ApiResponse } from './app.js';

export type JsonSchema = {
  type?: string;
  enum?: unknown[];
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
};

export function jsonSchema(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
}

/** The zod type under optional/nullable/default wrappers (to recognise what JSON Schema cannot say, e.g. dates). */
export function innerType(schema: z.ZodType): string {
  let def = (schema as unknown as { _zod: { def: { type: string; innerType?: z.ZodType } } })._zod.def;
  while (def.innerType && ['optional', 'nullable', 'default', 'prefault', 'readonly'].includes(def.type)) {
    def = (def.innerType as unknown as { _zod: { def: typeof def } })._zod.def;
  }
  return def.type;
}

/** The non-null branch of a nullable property. */
export const nonNull = (prop: JsonSchema): JsonSchema => prop.anyOf?.find((b) => b.type !== 'null') ?? prop;

/** Values that violate a property's schema. `asQuery`: only values that stay wrong as query strings. */
export function wrongValues(prop: JsonSchema, zodType: string, asQuery: boolean): unknown[] {
  const p = nonNull(prop);
  const out: unknown[] = [];
  if (p.enum) out.push('no_such_value', 'UPPER_CASE_NOPE');
  else if (p.type === 'array') {
    out.push('not-an-array');
    if (p.items?.enum) out.push(['no_such_value']);
    if (p.items?.type === 'string') out.push([{}]);
  } else if (p.type === 'string') {
    if (!asQuery) out.push(123, {}, true);
    if (p.format === 'uuid') out.push('nope', 'not-a-uuid', '../../etc', "1' or '1'='1");
    if (p.format === 'email') out.push('not-an-email');
    if (p.pattern) out.push('!! Not Matching !!');
    if (p.minLength && p.minLength > 0) out.push('');
    if (p.maxLength !== undefined && p.maxLength < 100_000) out.push('x'.repeat(p.maxLength + 1));
  } else if (p.type === 'integer' || p.type === 'number') {
    out.push('abc');
    if (p.type === 'integer') out.push(asQuery ? '1.5' : 1.5);
    if (p.minimum !== undefined) out.push(asQuery ? String(p.minimum - 1) : p.minimum - 1);
    if (p.maximum !== undefined) out.push(asQuery ? String(p.maximum + 1) : p.maximum + 1);
  } else if (p.type === 'boolean') {
    out.push('maybe', 1);
  } else if (zodType === 'date') {
    out.push('notadate', 'yesterday', '2024-13-45');
  }
  return out;
}

/** The zod schema of one path parameter of a route. */
export const paramSchema = (r: AnyRouteDef, name: string) =>
  (r.params as z.ZodObject | undefined)?.shape?.[name] as z.ZodType | undefined;

/** A value the route's params schema accepts for this parameter (a UUID for ids, a name, a commit sha…). */
export function validParamValue(r: AnyRouteDef, name: string): string {
  const schema = paramSchema(r, name);
  const candidates = [
    randomUUID(),
    'some_name',
    'some-name',
    'name',
    '0123456789abcdef0123456789abcdef01234567',
    '0123456789abcdef0123456789abcdef',
    'main',
    'a',
    '1',
  ];
  return candidates.find((c) => !schema || schema.safeParse(c).success) ?? candidates[0]!;
}

/** The path parameter that names the project the route's permission is checked on. */
export const projectParamOf = (r: AnyRouteDef): string | undefined =>
  typeof r.access === 'object' && 'permission' in r.access ? r.access.projectParam : undefined;

/**
 * A request URL with valid values in every path parameter except the overridden ones; the route's
 * project parameter gets `projectId` (an existing project, so access checks pass and parsing is reached).
 */
export function fillUrl(r: AnyRouteDef, projectId: string, overrides: Record<string, string> = {}): string {
  const projectParam = projectParamOf(r);
  return r.url
    .replace(/:([A-Za-z0-9_]+)/g, (_m, name: string) =>
      name in overrides ? overrides[name]! : name === projectParam ? projectId : validParamValue(r, name),
    )
    .replace(/\*$/, () => overrides['*'] ?? 'some/object.txt');
}

export function paramNames(r: AnyRouteDef): string[] {
  const names = [...r.url.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!);
  if (r.url.endsWith('*')) names.push('*');
  return names;
}

/** Routes whose successful GET stays open (server-sent events, WebSocket upgrades). */
export const isStreamRoute = (r: AnyRouteDef): boolean =>
  Boolean(r.websocket) || /event-stream/.test(r.produces?.contentType ?? '');

/** Status 4xx and exactly the stable error body. */
export function expectClientError(
  res: ApiResponse,
  what: string,
): { code: string; details: { path?: string }[] } {
  expect(res.status, `${what}: ${res.status} ${res.text.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(res.status, `${what}: ${res.status} ${res.text.slice(0, 300)}`).toBeLessThan(500);
  const body = res.body as { error?: { code?: unknown; message?: unknown; details?: unknown } };
  expect(body && typeof body === 'object' ? Object.keys(body) : body, `${what}: body`).toEqual(['error']);
  // `reason` is there when a declared refusal reason applies (errors.ts).
  expect(
    Object.keys(body.error!)
      .filter((k) => k !== 'reason')
      .sort(),
    `${what}: error keys`,
  ).toEqual(['code', 'details', 'message']);
  const reason = (body.error as { reason?: unknown }).reason;
  if (reason !== undefined) expect(reason, `${what}: reason`).toMatch(/^[a-z_]+\.[a-z0-9_]+$/);
  expect(typeof body.error!.code, `${what}: code`).toBe('string');
  expect(typeof body.error!.message, `${what}: message`).toBe('string');
  expect(Array.isArray(body.error!.details), `${what}: details`).toBe(true);
  return body.error as { code: string; details: { path?: string }[] };
}

export function expectDetailFor(error: { details: { path?: string }[] }, path: string, what: string): void {
  const paths = error.details.map((d) => d.path);
  expect(
    paths.some((p) => p === path || p?.startsWith(`${path}.`)),
    `${what}: details name ${path} (got ${JSON.stringify(paths)})`,
  ).toBe(true);
}

/**
 * Strings an attacker or a broken client sends: path traversal, SQL and shell metacharacters, NUL,
 * lone surrogates, RTL and zero-width marks, template and header injection, huge values.
 */
export const HOSTILE_STRINGS: readonly string[] = [
  '../../etc/passwd',
  '..\\..\\windows\\win.ini',
  '/etc/passwd',
  "1' or '1'='1",
  "'; drop table users; --",
  '" or ""="',
  'x) union select null,null--',
  '$(id)',
  '`id`',
  '; rm -rf / ;',
  '| cat /etc/passwd',
  '&& curl http://127.0.0.1/',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff\ud800',
  '\u202eevil\u202c',
  '\u200b\u200d\ufeff',
  'e\u0301\u0301\u0301\u0301\u0301',
  '👩‍👩‍👧‍👦',
  '\r\nX-Injected: 1',
  '<script>alert(1)</script>',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a template-injection probe, meant literally.
  '{{7*7}}${7*7}',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4shell-style probe, meant literally.
  '${jndi:ldap://127.0.0.1/a}',
  '%00%2e%2e%2f',
  '%',
  '*',
  '?#',
  '',
  ' ',
  '-1',
  'NaN',
  'null',
  'x'.repeat(10_000),
  '€'.repeat(5_000),
];

/** Percent-encoded path segments that are not valid UTF-8 (overlong encodings) or not valid encodings. */
export const HOSTILE_PATH_SEGMENTS: readonly string[] = [
  '%C0%AF',
  '%E0%80%AF',
  '%C0%AE%C0%AE%C0%AF',
  '%F0%80%80%AF',
  '%FF%FE',
  '%zz',
  '%',
  '..%2F..%2Fetc',
  '..%5C..%5C',
  '%2e%2e',
  '%00',
  'a%20b',
  "1'%20or%20'1'='1",
  '%E2%80%AE',
];

/** Ids that no row has, or that are not ids: nil, max, upper case, braced, numbers past every range. */
export const INVALID_IDS: readonly string[] = [
  '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
  'ABCDEF01-2345-6789-ABCD-EF0123456789',
  '{01234567-89ab-cdef-0123-456789abcdef}',
  '01234567-89ab-cdef-0123-456789abcdeg',
  '0',
  '-1',
  '1.5',
  '1e3',
  '0x10',
  '99999999999999999999999',
  '2147483648',
  '9223372036854775808',
  'not-an-id',
];

/** Mulberry32: a small seeded PRNG; the same seed gives the same sequence. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** The log lines at level error (50) or above. */
export function errorLogLines(lines: readonly string[]): string[] {
  return lines.filter((line) => {
    try {
      return (JSON.parse(line) as { level?: number }).level! >= 50;
    } catch {
      return false;
    }
  });
}

/**
 * A digest of every table of the current schema (row count and an md5 of the rows), to show that a
 * run of refused requests changed nothing. `countOnly`: tables whose rows change by design without a
 * mutation of the caller (last-used times, leases); only their row counts are compared.
 */
export async function tableDigests(db: Db, countOnly: readonly string[] = []): Promise<Map<string, string>> {
  const tables = await sql<{ name: string }>`
    select c.relname as name from pg_class c
    where c.relnamespace = current_schema()::regnamespace and c.relkind in ('r', 'p') and not c.relispartition
    order by 1`.execute(db);
  const out = new Map<string, string>();
  for (const { name } of tables.rows) {
    const ref = sql.table(name);
    const row = countOnly.includes(name)
      ? (await sql<{ d: string }>`select count(*)::text as d from ${ref}`.execute(db)).rows[0]!
      : (
          await sql<{ d: string }>`
            select count(*) || ':' || coalesce(md5(string_agg(md5(t::text), '' order by md5(t::text))), '') as d
            from ${ref} t`.execute(db)
        ).rows[0]!;
    out.set(name, row.d);
  }
  return out;
}

/** The tables whose digest differs between two snapshots. */
export function changedTables(before: Map<string, string>, after: Map<string, string>): string[] {
  const names = new Set([...before.keys(), ...after.keys()]);
  return [...names].filter((n) => before.get(n) !== after.get(n)).sort();
}

/**
 * encodeURIComponent that also takes lone surrogates: those become their (invalid) WTF-8 bytes, as a
 * broken client would send them, instead of throwing.
 */
export function percentEncode(s: string): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp >= 0xd800 && cp <= 0xdfff) {
      out += [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)]
        .map((b) => `%${b.toString(16).toUpperCase()}`)
        .join('');
    } else out += encodeURIComponent(ch);
  }
  return out;
}
