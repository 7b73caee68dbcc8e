/**
 * Pipeline step output is written as log entries (service `pipeline`, with project, pipeline and
 * step attributes), searchable with everything else; secrets stay masked there too.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, eventually, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';

describe.skipIf(servicesMissing)('observe: pipeline step logs', () => {
  let t: TestPlatform;
  const tmp = tempDir('platform-observe-pipeline-');

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    t.platform.startBackground();
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  it('each line of a step is a log entry of service pipeline with its project, pipeline and step', async () => {
    const dev = await t.createUser('lena', ['developer']);
    const project = await t.request('POST', '/api/projects', { token: dev.token, body: { name: 'logs' } });
    expect(project.status).toBe(201);
    const projectId = project.body.id as string;
    const work = path.join(tmp.dir, 'work');
    await gitOk(['clone', authUrl(t.baseUrl, 'lena', dev.token, '/lena/logs.git'), work]);
    writeFileSync(
      path.join(work, '.platform.yaml'),
      'pipeline:\n  steps:\n    - name: build\n      commands: ["echo compiling unit-one", "echo compiling unit-two"]\n',
    );
    await gitOk(['add', '-A'], { cwd: work });
    await gitOk(['commit', '-q', '-m', 'build'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work });

    const pipeline = await eventually(
      async () => {
        const list = await t.request('GET', `/api/projects/${projectId}/pipelines`, { token: dev.token });
        const p = list.body.items?.[0];
        return p && ['success', 'failure'].includes(p.status) ? p : undefined;
      },
      60_000,
      'the pipeline to finish',
    );
    expect(pipeline.status).toBe('success');
    const entries = await eventually(
      async () => {
        const logs = await t.request(
          'GET',
          `/api/observe/logs?project_id=${projectId}&service=pipeline&q=compiling`,
          {
            token: t.adminToken,
          },
        );
        // The runner echoes each command (`$ echo …`) before its output: four lines.
        return logs.body.items.length === 4 ? logs.body.items : undefined;
      },
      20_000,
      'four step log entries',
    );
    // Lines of one output chunk share a millisecond: compared as a set.
    expect(entries.map((e: { message: string }) => e.message).sort()).toEqual([
      '$ echo compiling unit-one',
      '$ echo compiling unit-two',
      'compiling unit-one',
      'compiling unit-two',
    ]);
    expect(entries[0]).toMatchObject({
      project_id: projectId,
      service: 'pipeline',
      level: 'info',
      attributes: { 'pipeline.id': pipeline.id, 'step.name': 'build' },
    });
  }, 120_000);
});
