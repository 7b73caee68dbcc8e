/**
 * A gzip-encoded fetch request is inflated up to a bound: a normal gzip negotiation gets its pack,
 * a small body that inflates past MAX_INFLATED_BODY_BYTES (a gzip bomb of have lines) stops git
 * before it answers.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_INFLATED_BODY_BYTES } from '../src/git/smart-http.js';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';

const pkt = (line: string) => `${(line.length + 4).toString(16).padStart(4, '0')}${line}`;

describe.skipIf(servicesMissing)('git smart HTTP: gzip request bodies', () => {
  let t: TestPlatform;
  let token: string;
  let commit: string;
  const tmp = tempDir();

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    token = (await t.createUser('gia', ['developer'])).token;
    await t.request('POST', '/api/projects', { token, body: { name: 'zipped' } });
    const work = path.join(tmp.dir, 'work');
    await gitOk(['clone', authUrl(t.baseUrl, 'gia', token, '/gia/zipped.git'), work]);
    writeFileSync(path.join(work, 'a.txt'), 'a\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'a'], { cwd: work });
    await gitOk(['push', 'origin', 'main'], { cwd: work });
    commit = (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  /** A v0 upload-pack request: one want, `haves` have lines, done — gzipped. */
  async function fetchWith(haves: number) {
    const have = pkt(`have ${commit}\n`);
    const body = Buffer.concat([
      Buffer.from(`${pkt(`want ${commit} ofs-delta\n`)}0000`),
      Buffer.from(have.repeat(haves)),
      Buffer.from(pkt('done\n')),
    ]);
    const zipped = gzipSync(body);
    const res = await fetch(`${t.baseUrl}/gia/zipped.git/git-upload-pack`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`gia:${token}`).toString('base64')}`,
        'content-type': 'application/x-git-upload-pack-request',
        'content-encoding': 'gzip',
      },
      body: zipped,
    });
    const answer = Buffer.from(await res.arrayBuffer().catch(() => new ArrayBuffer(0)));
    return { inflated: body.length, zipped: zipped.length, status: res.status, answer };
  }

  it('a gzip negotiation within the bound gets its pack', async () => {
    const r = await fetchWith(1000);
    expect(r.status).toBe(200);
    expect(r.answer.includes('PACK')).toBe(true);
  });

  it('a body of a few hundred KB that inflates past the bound stops git: no pack', async () => {
    const lines = Math.ceil(MAX_INFLATED_BODY_BYTES / pkt(`have ${commit}\n`).length) + 10;
    const r = await fetchWith(lines);
    expect(r.inflated).toBeGreaterThan(MAX_INFLATED_BODY_BYTES);
    expect(r.zipped).toBeLessThan(1024 * 1024);
    expect(r.answer.includes('PACK')).toBe(false);
  }, 60_000);
});
