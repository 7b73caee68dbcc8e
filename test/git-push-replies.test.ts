import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PUSH_REPLY_WAIT_MS, pushReplies } from '../src/git/index.js';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, git, gitOk, tempDir } from './helpers/git.js';

describe.skipIf(servicesMissing)('a push answers with remote: lines about what it started', () => {
  let t: TestPlatform;
  let id: string;
  const tmp = tempDir();
  const work = path.join(tmp.dir, 'work');
  let lateFinished = false;

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    const dev = await t.createUser('pia', ['developer']);
    id = (await t.request('POST', '/api/projects', { token: dev.token, body: { name: 'shop' } })).body.id;
    // Two subscribers as another module would write them: one reports in time, one too late.
    t.platform.events.on('push.received', (e) =>
      pushReplies.during(e, async () => {
        await new Promise((r) => setTimeout(r, 200));
        return [
          `Pipeline #${e.ref.endsWith('/main') ? 1 : 2}: ${t.config.public_url}/api/projects/${id}/pipelines/x`,
        ];
      }),
    );
    t.platform.events.on('push.received', (e) =>
      pushReplies.during(e, async () => {
        await new Promise((r) => setTimeout(r, PUSH_REPLY_WAIT_MS + 6000));
        lateFinished = true;
        return ['too late to be printed'];
      }),
    );
    await gitOk(['clone', authUrl(t.baseUrl, 'pia', dev.token, '/pia/shop.git'), work]);
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  it('the default branch: the pipeline line, no merge request offer, and a late subscriber is not waited for', async () => {
    writeFileSync(path.join(work, 'a.txt'), 'a\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'first'], { cwd: work });
    const started = Date.now();
    const push = await git(['push', 'origin', 'main'], { cwd: work });
    const took = Date.now() - started;
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toContain(
      `remote: Pipeline #1: ${t.config.public_url}/api/projects/${id}/pipelines/x`,
    );
    expect(push.stderr).not.toContain('too late');
    expect(push.stderr).not.toContain('Create a merge request');
    expect(push.stderr).toContain('main -> main');
    expect(took).toBeLessThan(PUSH_REPLY_WAIT_MS + 5000);
    await t.platform.settle();
    expect(lateFinished).toBe(true);
  });

  it('a new branch: an offer to open a merge request', async () => {
    await gitOk(['checkout', '-b', 'feature/x'], { cwd: work });
    writeFileSync(path.join(work, 'b.txt'), 'b\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'feature'], { cwd: work });
    const push = await git(['push', 'origin', 'feature/x'], { cwd: work });
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toContain('remote: Pipeline #2:');
    expect(push.stderr).toContain(
      `remote: Create a merge request for 'feature/x': ${t.config.public_url}/pia/shop/-/merge_requests/new?source_branch=feature%2Fx`,
    );
    // Pushed again, the branch is not new: no offer.
    writeFileSync(path.join(work, 'c.txt'), 'c\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'more'], { cwd: work });
    const again = await git(['push', 'origin', 'feature/x'], { cwd: work });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toContain('Create a merge request');
  });

  it('a push without side-band (nothing to say on) still completes', async () => {
    writeFileSync(path.join(work, 'd.txt'), 'd\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'quiet'], { cwd: work });
    const push = await git(['-c', 'sendpack.sideband=false', 'push', 'origin', 'feature/x'], { cwd: work });
    expect(push.code, push.stderr).toBe(0);
    const remote = await gitOk(['ls-remote', 'origin', 'refs/heads/feature/x'], { cwd: work });
    expect(remote).toContain((await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim());
  });
});
