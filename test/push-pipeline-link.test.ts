import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, git, gitOk, tempDir } from './helpers/git.js';

/** The pipeline trigger itself reports the pipeline a push started, and the link it prints works. */
describe.skipIf(servicesMissing)('a push that starts a pipeline links it in a remote: line', () => {
  let t: TestPlatform;
  let token: string;
  const tmp = tempDir();
  const work = path.join(tmp.dir, 'work');

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    const dev = await t.createUser('rui', ['developer']);
    token = dev.token;
    await t.request('POST', '/api/projects', { token, body: { name: 'Shop' } });
    await gitOk(['clone', authUrl(t.baseUrl, 'rui', token, '/rui/shop.git'), work]);
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  it('prints Pipeline #1 with a link that answers that pipeline; a push without a definition prints none', async () => {
    writeFileSync(path.join(work, 'README'), 'no pipeline here\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'no definition'], { cwd: work });
    const quiet = await git(['push', 'origin', 'main'], { cwd: work });
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).not.toContain('Pipeline #');

    writeFileSync(path.join(work, '.platform.yaml'), 'steps:\n  - name: hello\n    commands: [echo hi]\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'pipeline'], { cwd: work });
    const push = await git(['push', 'origin', 'main'], { cwd: work });
    expect(push.code, push.stderr).toBe(0);
    const line = push.stderr.match(/remote: Pipeline #(\d+): (\S+)/);
    expect(line, push.stderr).not.toBeNull();
    const [, number, link] = line!;
    expect(number).toBe('1');
    expect(link).toBe(`${t.config.public_url}/api/projects/rui/Shop/pipelines/1`);
    const answered = await t.request('GET', link!.slice(t.config.public_url.length), { token });
    expect(answered.status, answered.text).toBe(200);
    expect(answered.body).toMatchObject({ number: 1, trigger: 'push' });
  });
});
