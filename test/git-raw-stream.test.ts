import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';

/** The `git cat-file blob <commit>:<path>` processes alive now for this blob. */
function catFiles(spec: string): number {
  const out = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes('cat-file blob') && l.includes(spec)).length;
}

async function until(check: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

describe.skipIf(servicesMissing)('/raw streams a large file from git', () => {
  let t: TestPlatform;
  let token: string;
  let id: string;
  let commit: string;
  const tmp = tempDir();
  const work = path.join(tmp.dir, 'work');
  // Larger than every socket and stream buffer between git and a paused reader together.
  const payload = randomBytes(24 * 1024 * 1024);

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    const dev = await t.createUser('sam', ['developer']);
    token = dev.token;
    id = (await t.request('POST', '/api/projects', { token, body: { name: 'media' } })).body.id;
    await gitOk(['clone', authUrl(t.baseUrl, 'sam', token, '/sam/media.git'), work]);
    writeFileSync(path.join(work, 'video.bin'), payload);
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'video'], { cwd: work });
    await gitOk(['push', 'origin', 'main'], { cwd: work });
    commit = (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
  }, 180_000);
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  const get = () =>
    new Promise<http.IncomingMessage>((resolve, reject) => {
      http
        .get(
          `${t.baseUrl}/api/projects/${id}/raw?path=video.bin`,
          { headers: { authorization: `Bearer ${token}` } },
          resolve,
        )
        .on('error', reject);
    });

  it('sends the first bytes while git is still writing (a paused reader holds git back), and all bytes match', async () => {
    const res = await get();
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(payload.length));
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(res.headers['content-disposition']).toContain('filename="video.bin"');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    const hash = createHash('sha256');
    let received = 0;
    const first = await new Promise<Buffer>((resolve) => res.once('data', resolve));
    res.pause();
    hash.update(first);
    received += first.length;
    // Paused after the first chunk: git is blocked on its pipe, not done and buffered in memory.
    await new Promise((r) => setTimeout(r, 500));
    expect(catFiles(`${commit}:video.bin`)).toBe(1);
    expect(received).toBeLessThan(payload.length);
    res.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      received += chunk.length;
    });
    const ended = new Promise((r) => res.on('end', r));
    res.resume();
    await ended;
    expect(received).toBe(payload.length);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
    expect(await until(() => catFiles(`${commit}:video.bin`) === 0)).toBe(true);
  });

  it('a client that goes away mid-download kills git', async () => {
    const res = await get();
    await new Promise((resolve) => res.once('data', resolve));
    res.pause();
    expect(catFiles(`${commit}:video.bin`)).toBe(1);
    res.destroy();
    expect(await until(() => catFiles(`${commit}:video.bin`) === 0)).toBe(true);
  });

  it('a missing path is still a 404 with the error body', async () => {
    const res = await t.request('GET', `/api/projects/${id}/raw?path=nope.bin`, { token });
    expect(res.status).toBe(404);
  });
});
