import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestPlatform, createTestStore, servicesMissing } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';

describe.skipIf(servicesMissing)('push quarantines left by a killed receive-pack', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'platform-quarantine-'));
  const tmp = tempDir();
  afterAll(() => {
    rmSync(dataDir, { recursive: true, force: true });
    tmp.cleanup();
  });

  it('are removed at start-up once idle; a push in progress (recent writes) is left alone', async () => {
    const store = await createTestStore();
    const config = { PLATFORM_DATA_DIR: dataDir };
    const first = await createTestPlatform({ store, config, listen: true });
    let repo: string;
    try {
      const dev = await first.createUser('quinn', ['developer']);
      expect(
        (await first.request('POST', '/api/projects', { token: dev.token, body: { name: 'q' } })).status,
      ).toBe(201);
      const work = path.join(tmp.dir, 'work');
      await gitOk(['clone', authUrl(first.baseUrl, 'quinn', dev.token, '/quinn/q.git'), work]);
      writeFileSync(path.join(work, 'a.txt'), 'a\n');
      await gitOk(['add', '.'], { cwd: work });
      await gitOk(['commit', '-m', 'a'], { cwd: work });
      await gitOk(['push', 'origin', 'main'], { cwd: work });
      repo = path.join(dataDir, 'repos', 'quinn', 'q.git');
      expect(existsSync(path.join(repo, 'HEAD'))).toBe(true);
    } finally {
      await first.close();
    }
    // What receive-pack leaves when it is SIGKILLed mid-push: the quarantine with a partial pack.
    const objects = path.join(repo, 'objects');
    const killed = path.join(objects, 'tmp_objdir-incoming-AbC123');
    mkdirSync(path.join(killed, 'pack'), { recursive: true });
    writeFileSync(path.join(killed, 'pack', 'tmp_pack_xyz'), Buffer.alloc(4096, 1));
    const hourAgo = new Date(Date.now() - 60 * 60_000);
    for (const p of [path.join(killed, 'pack', 'tmp_pack_xyz'), path.join(killed, 'pack'), killed])
      utimesSync(p, hourAgo, hourAgo);
    // Another instance sharing the repositories is receiving this one right now.
    const live = path.join(objects, 'tmp_objdir-incoming-Live99');
    mkdirSync(path.join(live, 'pack'), { recursive: true });
    writeFileSync(path.join(live, 'pack', 'tmp_pack_live'), 'in progress');

    const second = await createTestPlatform({ store, config });
    try {
      expect(existsSync(killed)).toBe(false);
      expect(existsSync(live)).toBe(true);
      expect(existsSync(path.join(objects, 'pack'))).toBe(true);
      expect(second.logLines.join('\n')).toContain('stale push quarantines removed');
    } finally {
      await second.close();
      await store.drop();
    }
  });
});
