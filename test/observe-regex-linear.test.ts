/**
 * The query language's regular expressions run in JavaScript on the live tail and on cold-tier
 * rows, and any reader may send one. A pattern that backtracks exponentially (`(a|a)*b` on a line of
 * a's: 2^60 steps for 60 a's) must not stall the process: it runs on V8's linear-time engine.
 * Checked in a child process, killed after 60 s, so a regression fails this test instead of hanging
 * the suite. Patterns the linear engine cannot run are refused with the query's 400.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { repoRoot } from './helpers/process.js';

describe('observe query language: regular expressions in linear time', () => {
  it('an exponentially backtracking pattern on a long line answers at once (live-tail and cold-row matcher)', async () => {
    const src = (p: string) => JSON.stringify(path.join(repoRoot, p));
    const script = `
      const { compileLogMatcher, parseLogFilter } = await import(${src('src/observe/query-lang/index.ts')});
      const match = compileLogMatcher(parseLogFilter('{message=~"(a|a)*b"}'), () => new Set());
      const entry = { level: 'info', service: 's', trace_id: null, span_id: null, project_id: null,
        session_id: null, user_id: null, attributes: {} };
      console.log(JSON.stringify([match({ ...entry, message: 'a'.repeat(60) }), match({ ...entry, message: 'aaab' })]));`;
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [path.join(repoRoot, 'node_modules/tsx/dist/cli.mjs'), '--input-type=module', '-e', script],
        { cwd: repoRoot, timeout: 60_000, killSignal: 'SIGKILL' },
        (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
      );
    });
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout.trim())).toEqual([false, true]);
  }, 90_000);
});

describe.skipIf(servicesMissing)('observe: a pattern that needs backtracking is refused', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await createTestPlatform();
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  it('search, summary and live tail answer 400 for a backreference, saying why', async () => {
    const query = encodeURIComponent('{message=~"(a)\\\\1"}');
    for (const url of [`/api/observe/logs?query=${query}`, `/api/observe/logs/summary?query=${query}`]) {
      const res = await t.request('GET', url, { token: t.adminToken });
      expect(res.status, `${url}: ${res.text}`).toBe(400);
      expect(res.body.error.reason, res.text).toBe('observe.invalid_query');
      expect(res.body.error.message).toContain('cannot run in linear time');
    }
    // The tail checks its query with the request's parameters (before a WebSocket upgrade).
    const tail = await t.request('GET', `/api/observe/logs/tail?query=${query}`, { token: t.adminToken });
    expect(tail.status, tail.text).toBe(400);
    expect(tail.body.error.details[0]).toMatchObject({ path: 'query.query' });
    expect(tail.body.error.details[0].message).toContain('cannot run in linear time');
  });
});
