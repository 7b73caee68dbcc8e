/**
 * The step sandbox tried as an attacker would: a user with write access to their own project only
 * pushes a pipeline whose step tries every escape found against the first sandbox (unmounts,
 * remounts, a nested user namespace, the host's and the platform's /proc, the master key, another
 * user's private repository, files outside the workspace). Observed black-box: the stored step log
 * through the API, the host's files, the host uid of the step's files.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, eventually, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';
import { processesWith } from './helpers/process.js';

const asRoot = process.getuid?.() === 0;

describe.skipIf(servicesMissing)('the step sandbox against a hostile pipeline', () => {
  let t: TestPlatform;
  const tmp = tempDir('platform-sandbox-');
  const secretFile = 'victim-secret-content-3e8b1f';
  let pushes = 0;

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    t.platform.startBackground();
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  async function pushDefinition(user: { name: string; token: string }, project: string, yaml: string) {
    const work = path.join(tmp.dir, `${user.name}-${project}-${++pushes}`);
    await gitOk(['clone', authUrl(t.baseUrl, user.name, user.token, `/${user.name}/${project}.git`), work]);
    await gitOk(['checkout', '-q', '-B', 'main'], { cwd: work });
    writeFileSync(path.join(work, '.platform.yaml'), yaml);
    mkdirSync(path.join(work, 'src'), { recursive: true });
    writeFileSync(path.join(work, 'src', 'secret.txt'), `${secretFile}\n`);
    await gitOk(['add', '-A'], { cwd: work });
    await gitOk(['commit', '-q', '-m', 'definition'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work });
  }

  it.runIf(asRoot)(
    'every escape fails; no key, repository or platform secret reaches the log',
    async () => {
      const victim = await t.createUser('vera', ['developer']);
      const attacker = await t.createUser('mallory', ['developer']);
      const victimProject = await t.request('POST', '/api/projects', {
        token: victim.token,
        body: { name: 'vault', visibility: 'private' },
      });
      expect(victimProject.status).toBe(201);
      // The victim's repository holds a secret file (pushed without a pipeline of interest).
      await pushDefinition({ name: 'vera', token: victim.token }, 'vault', 'pipeline:\n  steps: []\n');
      const own = await t.request('POST', '/api/projects', {
        token: attacker.token,
        body: { name: 'tools' },
      });
      expect(own.status).toBe(201);

      const dataDir = t.config.data_dir;
      const masterKey = path.join(dataDir, 'master.key');
      const keyDigest = existsSync(masterKey)
        ? createHash('sha256').update(readFileSync(masterKey)).digest('hex')
        : 'no-key-file';
      const victimRepo = path.join(dataDir, 'repos', 'vera', 'vault.git');
      expect(existsSync(victimRepo)).toBe(true);
      const markers = [
        `/platform-escape-${process.pid}`,
        path.join(dataDir, 'pwned'),
        path.join(victimRepo, 'pwned'),
      ];
      const attempts: Array<[string, string]> = [
        ['umount-tmp', 'umount -l /tmp'],
        ['umount-proc', 'umount -l /proc'],
        ['remount-root', 'mount -o remount,rw /'],
        ['remount-bind', 'mount -o remount,bind,rw /'],
        ['unshare', 'unshare -r true'],
        ['platform-environ', `cat /proc/${process.pid}/environ`],
        ['init-environ-admin', 'grep -q PLATFORM_ADMIN /proc/1/environ'],
        ['master-key', `cat ${masterKey}`],
        ['victim-repo', `git --git-dir=${victimRepo} log --all`],
        ['data-dir', `ls ${dataDir}/repos`],
        ...markers.map((m, i): [string, string] => [`marker-${i}`, `touch ${m}`]),
      ];
      const check = attempts.map(
        ([name, command]) =>
          `if ( ${command} ) >/dev/null 2>&1; then echo "ESCAPED ${name}"; else echo "BLOCKED ${name}"; fi`,
      );
      const yaml = [
        'pipeline:',
        '  steps:',
        '    - name: attack',
        '      commands:',
        ...[
          ...check,
          'cat /proc/1/environ | tr "\\0" "\\n"',
          'sha256sum ' + masterKey + ' || true',
          'grep -E "^(CapEff|NoNewPrivs)" /proc/self/status',
          'echo made > made-by-step.txt',
        ].map((c) => `        - ${JSON.stringify(c)}`),
      ].join('\n');
      await pushDefinition({ name: 'mallory', token: attacker.token }, 'tools', `${yaml}\n`);

      const pipeline = await eventually(
        async () => {
          const list = await t.request('GET', `/api/projects/${own.body.id}/pipelines`, {
            token: attacker.token,
          });
          const p = list.body.items?.[0];
          return p && ['success', 'failure'].includes(p.status) ? p : undefined;
        },
        60_000,
        'the attacker pipeline to finish',
      );
      const detail = await t.request('GET', `/api/projects/${own.body.id}/pipelines/${pipeline.id}`, {
        token: attacker.token,
      });
      const step = detail.body.steps[0];
      expect(step.status).toBe('success');
      const logRes = await t.request(
        'GET',
        `/api/projects/${own.body.id}/pipelines/${pipeline.id}/steps/${step.id}/logs`,
        { token: attacker.token },
      );
      expect(logRes.status).toBe(200);
      const text = logRes.text;
      for (const [name] of attempts) expect(text).toContain(`BLOCKED ${name}`);
      expect(text.split('\n').filter((l) => l.startsWith('ESCAPED'))).toEqual([]);
      expect(text).toMatch(/CapEff:\s+0000000000000000/);
      expect(text).toMatch(/NoNewPrivs:\s+1/);
      expect(text).not.toContain(secretFile);
      expect(text).not.toContain(keyDigest);
      expect(text).not.toContain('PLATFORM_ADMIN_PASSWORD');
      for (const m of markers) expect(existsSync(m)).toBe(false);
      // On the host, the step runs as the unprivileged sandbox user, never as uid 0: seen from /proc of
      // the host while a second pipeline's step sleeps.
      const sleeper = `3.0${process.pid}`;
      await pushDefinition(
        { name: 'mallory', token: attacker.token },
        'tools',
        `pipeline:\n  steps:\n    - name: own\n      commands: ["sleep ${sleeper}"]\n`,
      );
      const pid = await eventually(
        async () => processesWith(`sleep\0${sleeper}`)[0],
        60_000,
        'the sleeping step',
      );
      const uids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      expect(uids?.slice(1).map(Number)).toEqual([1, 2, 3, 4].map(() => t.config.runner_uid));
    },
    120_000,
  );
});
