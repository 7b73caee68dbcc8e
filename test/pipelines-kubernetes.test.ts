/**
 * The engine with `executor = kubernetes`, against the Kubernetes API double: a real push creates a
 * pipeline whose steps become pods (the test plays the kubelet), their logs are followed and stored,
 * pod phases become step statuses, and the clone token handed to the init container is a working,
 * read-only token for the project. The step's environment (secrets included) and the clone token reach
 * the pods through a per-run Kubernetes Secret, never as values in a pod spec, and that Secret is
 * deleted when the run ends — success, failure or cancel. A real cluster is needed for full
 * verification (image pulls, the clone inside the pod, kubelet log behaviour).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, eventually, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';
import { type FakeSecret, KubeApiDouble } from './helpers/kube-api.js';

interface Pipeline {
  id: string;
  status: string;
  steps: { id: string; name: string; status: string; exit_code: number | null; error: string | null }[];
}

describe.skipIf(servicesMissing)('pipelines on the kubernetes runner (API double)', () => {
  let t: TestPlatform;
  let kube: KubeApiDouble;
  let dev: { id: string; token: string };
  let projectId: string;
  let work: string;
  const tmp = tempDir('platform-pipelines-k8s-');

  beforeAll(async () => {
    kube = await KubeApiDouble.start();
    const kubeconfig = path.join(tmp.dir, 'kubeconfig.yaml');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        // The double speaks plain HTTP, which the client only accepts with TLS verification off.
        `- name: double\n  cluster:\n    server: ${kube.url}\n    insecure-skip-tls-verify: true`,
        'users:',
        '- name: runner\n  user:\n    token: test',
        'contexts:',
        '- name: double\n  context:\n    cluster: double\n    user: runner',
        'current-context: double',
        '',
      ].join('\n'),
    );
    t = await createTestPlatform({
      listen: true,
      config: {
        PLATFORM_EXECUTOR: 'kubernetes',
        PLATFORM_KUBECONFIG: kubeconfig,
        PLATFORM_K8S_NAMESPACE: 'ci',
        PLATFORM_K8S_STEP_CPU: '500m',
        PLATFORM_K8S_STEP_MEMORY: '256Mi',
      },
    });
    t.platform.startBackground();
    dev = await t.createUser('kira', ['developer']);
    const res = await t.request('POST', '/api/projects', { token: dev.token, body: { name: 'podded' } });
    expect(res.status).toBe(201);
    projectId = res.body.id;
    work = path.join(tmp.dir, 'work');
    await gitOk(['clone', authUrl(t.baseUrl, 'kira', dev.token, '/kira/podded.git'), work]);
    await gitOk(['checkout', '-q', '-b', 'main'], { cwd: work });
  });
  afterAll(async () => {
    await t?.close();
    await kube?.close();
    tmp.cleanup();
  });

  async function push(definition: string, message: string): Promise<string> {
    writeFileSync(path.join(work, '.platform.yaml'), definition);
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-q', '--allow-empty', '-m', message], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'main'], { cwd: work });
    await t.platform.settle();
    const sha = (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
    const list = await t.request('GET', `/api/projects/${projectId}/pipelines`, { token: dev.token });
    const p = list.body.items.find((i: { commit_sha: string }) => i.commit_sha === sha);
    expect(p, 'a pipeline for the push').toBeDefined();
    return p.id as string;
  }

  const pipeline = async (id: string) =>
    (await t.request<Pipeline>('GET', `/api/projects/${projectId}/pipelines/${id}`, { token: dev.token }))
      .body;

  const runSecret = (pipelineId: string): FakeSecret | undefined =>
    kube.secrets.find((x) => x.labels['platform.io/pipeline'] === pipelineId);

  /** Every request body sent to create a pod of this pipeline, as sent. */
  const podBodies = (pipelineId: string) =>
    kube.requests
      .filter(
        (r) =>
          r.method === 'POST' && r.path === '/api/v1/namespaces/ci/pods' && r.rawBody.includes(pipelineId),
      )
      .map((r) => r.rawBody);

  it('runs each step as a labelled pod, follows its log, stores it and deletes the pod', async () => {
    const deployKey = 'dk-7f3a9c-super-secret-value';
    const put = await t.request('POST', `/api/projects/${projectId}/secrets`, {
      token: t.adminToken,
      body: { name: 'DEPLOY_KEY', value: deployKey, scope: 'pipeline' },
    });
    expect(put.status).toBe(201);
    const id = await push(
      [
        'pipeline:',
        '  steps:',
        '    - name: build',
        '      image: node:20',
        '      commands: [npm ci]',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the definition's secret placeholder.
        '      environment: { MODE: ci, AUTH: "Bearer ${{ secrets.DEPLOY_KEY }}" }',
        '    - name: test',
        '      image: node:20',
        '      depends_on: [build]',
        '      commands: [npm test]',
        '',
      ].join('\n'),
      'two steps',
    );
    const build = await kube.nextPod();
    expect(build.namespace).toBe('ci');
    expect(build.labels).toMatchObject({
      'platform.io/pipeline': id,
      'platform.io/step': 'build',
      'platform.io/project': projectId,
    });
    const step = build.spec.containers.find((c: { name: string }) => c.name === 'step');
    expect(step.image).toBe('node:20');
    expect(step.resources.limits).toEqual({ cpu: '500m', memory: '256Mi' });
    expect(build.spec.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      fsGroup: 65532,
    });
    for (const container of [...build.spec.initContainers, ...build.spec.containers]) {
      expect(container.securityContext).toMatchObject({
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
    }
    expect(build.spec.automountServiceAccountToken).toBe(false);

    // The run's Secret was created before the pod and holds the values; the pod only references it.
    const secret = runSecret(id)!;
    expect(secret, 'a Secret for the run').toBeDefined();
    const created = kube.requests.findIndex(
      (r) =>
        r.method === 'POST' && r.path === '/api/v1/namespaces/ci/secrets' && r.rawBody.includes(secret.name),
    );
    const podCreated = kube.requests.findIndex((r) => r.method === 'POST' && r.rawBody.includes(build.name));
    expect(created).toBeGreaterThan(-1);
    expect(created).toBeLessThan(podCreated);
    const stored = Object.values(secret.values());
    expect(stored).toContain(`Bearer ${deployKey}`);
    expect(secret.manifest.data[Object.keys(secret.values()).find((k) => k.endsWith('.AUTH'))!]).toBe(
      Buffer.from(`Bearer ${deployKey}`).toString('base64'),
    );
    const cloneToken = secret.values()['clone-token']!;
    expect(cloneToken).toMatch(/^plat_/);
    for (const body of podBodies(id)) {
      expect(body).not.toContain(deployKey);
      expect(body).not.toContain(cloneToken);
    }
    for (const container of [...build.spec.initContainers, ...build.spec.containers]) {
      for (const entry of container.env as { name: string; value?: string }[]) {
        // Plain values only for what is not the step's environment: clone URL, commit, HOME.
        if (entry.value !== undefined) {
          expect(['PLATFORM_CLONE_URL', 'PLATFORM_COMMIT_SHA', 'HOME']).toContain(entry.name);
        }
      }
    }

    // Playing the kubelet: the containers get the values from the Secret.
    build.startStep();
    expect(build.env('step')).toMatchObject({
      MODE: 'ci',
      AUTH: `Bearer ${deployKey}`,
      CI: 'true',
      PIPELINE_ID: id,
      STEP_NAME: 'build',
      PROJECT: 'kira/podded',
    });
    // The clone token is a real, project-restricted token of the pusher — and nowhere in the pod's args.
    const bearer = build.env('clone').PLATFORM_CLONE_TOKEN!;
    expect(bearer).toBe(cloneToken);
    expect(build.env('step').PLATFORM_CLONE_TOKEN).toBeUndefined();
    expect(JSON.stringify(build.spec.initContainers[0].command ?? [])).not.toContain(bearer);
    expect(JSON.stringify(build.spec.initContainers[0].args ?? [])).not.toContain(bearer);
    const asToken = await t.request('GET', `/api/projects/${projectId}`, { token: bearer });
    expect(asToken.status).toBe(200);
    const write = await t.request('PATCH', `/api/projects/${projectId}`, {
      token: bearer,
      body: { description: 'x' },
    });
    expect(write.status).toBe(403);

    build.log(`installed 42 packages with ${deployKey}\n`).exit(0);
    const test = await kube.nextPod();
    expect(test.labels['platform.io/step']).toBe('test');
    test.startStep();
    expect(test.env('step')).toMatchObject({ STEP_NAME: 'test' });
    expect(test.env('clone').PLATFORM_CLONE_TOKEN).toBe(cloneToken);
    test.log('all green\n').exit(0);

    await eventually(
      async () => (await pipeline(id)).status === 'success',
      20_000,
      'the pipeline to succeed',
    );
    const done = await pipeline(id);
    expect(done.steps.map((s) => [s.name, s.status, s.exit_code])).toEqual([
      ['build', 'success', 0],
      ['test', 'success', 0],
    ]);
    const log = await t.request(
      'GET',
      `/api/projects/${projectId}/pipelines/${id}/steps/${done.steps[0]!.id}/logs`,
      {
        token: dev.token,
      },
    );
    expect(log.text).toContain('installed 42 packages with ***');
    expect(log.text).not.toContain(deployKey);
    await eventually(async () => build.deleted && test.deleted, 10_000, 'both pods deleted');
    // One Secret for the whole run, deleted with it.
    expect(kube.secrets.filter((x) => x.labels['platform.io/pipeline'] === id)).toHaveLength(1);
    await eventually(async () => secret.deleted, 10_000, 'the run Secret deleted');
    // The clone token lives only as long as the run.
    await eventually(
      async () => (await t.request('GET', `/api/projects/${projectId}`, { token: bearer })).status === 401,
      10_000,
      'the clone token revoked',
    );
  });

  it('maps a failed pod to a failed step with its exit code and skips the dependents', async () => {
    const id = await push(
      [
        'pipeline:',
        '  steps:',
        '    - { name: unit, commands: [make test] }',
        '    - { name: package, depends_on: [unit], commands: [make dist] }',
        '',
      ].join('\n'),
      'failing',
    );
    const unit = await kube.nextPod();
    unit.startStep().log('1 test failed\n').exit(3);
    await eventually(async () => (await pipeline(id)).status === 'failure', 20_000, 'the pipeline to fail');
    const done = await pipeline(id);
    expect(done.steps.map((s) => [s.name, s.status, s.exit_code])).toEqual([
      ['unit', 'failure', 3],
      ['package', 'skipped', null],
    ]);
    expect(kube.pods.filter((p) => p.labels['platform.io/pipeline'] === id)).toHaveLength(1);
    await eventually(async () => runSecret(id)?.deleted === true, 10_000, 'the run Secret deleted');
  });

  it('deletes the pod and the run Secret when the pipeline is cancelled', async () => {
    const id = await push(
      [
        'pipeline:',
        '  steps:',
        '    - { name: slow, commands: [sleep 600], environment: { K: v } }',
        '',
      ].join('\n'),
      'to cancel',
    );
    const pod = await kube.nextPod();
    pod.startStep().log('working\n');
    const secret = runSecret(id)!;
    expect(secret.deleted).toBe(false);
    await eventually(async () => pod.followerCount() > 0, 10_000, 'the log followed');
    const cancel = await t.request('POST', `/api/projects/${projectId}/pipelines/${id}/cancel`, {
      token: dev.token,
      noAuditCheck: true,
    });
    expect(cancel.status).toBe(200);
    await eventually(
      async () => (await pipeline(id)).status === 'cancelled',
      20_000,
      'the pipeline cancelled',
    );
    expect(pod.deleted).toBe(true);
    expect(pod.deleteQuery).toEqual({ gracePeriodSeconds: '0' });
    await eventually(async () => secret.deleted, 10_000, 'the run Secret deleted');
  });
});
