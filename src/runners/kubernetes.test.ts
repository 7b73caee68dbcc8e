/**
 * The kubernetes runner against the API double (test/helpers/kube-api.ts), which speaks the real REST
 * wire format; the test plays the scheduler and kubelet. This checks the pod specs sent and the mapping
 * of pod states to step outcomes — a real cluster is needed for full verification (scheduling, pulls,
 * the clone itself, kubelet log streaming).
 */
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakePod, KubeApiDouble } from '../../test/helpers/kube-api.js';
import { createKubernetesRunner } from './kubernetes.js';
import { podName } from './kubernetes-pod.js';
import { buildStepScript } from './script.js';
import type { Runner, StepRunRequest, StepRunResult } from './types.js';

const NAMESPACE = 'ci';
const TOKEN = 'clone-token-0123456789abcdef';

let kube: KubeApiDouble;
let runner: Runner;

beforeAll(async () => {
  kube = await KubeApiDouble.start();
  runner = createKubernetesRunner({
    kubeConfig: kube.kubeConfig(),
    namespace: NAMESPACE,
    resources: { cpu: '500m', memory: '512Mi' },
    pollIntervalMs: 20,
  });
});

afterAll(async () => {
  await kube.close();
});

interface Started {
  pipelineId: string;
  done: Promise<StepRunResult>;
  output: Buffer[];
  text(): string;
  controller: AbortController;
}

function start(overrides: Partial<StepRunRequest> = {}): Started {
  const pipelineId = randomUUID();
  const output: Buffer[] = [];
  const controller = new AbortController();
  const done = runner.runStep({
    runId: `${pipelineId}:test`,
    pipelineId,
    stepName: 'test',
    image: null,
    commands: ['npm ci', 'npm test'],
    env: { CI: 'true' },
    timeoutSeconds: null,
    workspace: { dir: '', dispose: async () => {} },
    source: {
      repoDir: '/unused',
      cloneUrl: 'http://platform.test/acme/app.git',
      cloneToken: TOKEN,
      sha: 'a'.repeat(40),
    },
    signal: controller.signal,
    onOutput: (chunk) => output.push(chunk),
    ...overrides,
  });
  return { pipelineId, done, output, text: () => Buffer.concat(output).toString('utf8'), controller };
}

async function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function requestsFor(pod: FakePod) {
  return kube.requests.filter((r) => r.path.includes(`/pods/${pod.name}`));
}

describe('kubernetes runner: pod spec', () => {
  it('sends the exact pod spec: labels, restricted security context, clone init container, env from the run Secret', async () => {
    const pipelineId = randomUUID();
    const source = {
      repoDir: '/unused',
      cloneUrl: 'http://platform.test/acme/app.git',
      cloneToken: TOKEN,
      sha: 'a'.repeat(40),
    };
    const workspace = await runner.prepareWorkspace(pipelineId, source);

    // The run's Secret exists before any pod: the clone token, base64 as on the real API.
    const createSecret = kube.requests.find(
      (r) =>
        r.method === 'POST' &&
        r.path === `/api/v1/namespaces/${NAMESPACE}/secrets` &&
        JSON.stringify(r.body).includes(pipelineId),
    )!;
    const secretName = (createSecret.body as { metadata: { name: string } }).metadata.name;
    expect(secretName).toMatch(
      new RegExp(`^pl-${pipelineId.replaceAll('-', '').slice(0, 8)}-env-[a-z0-9]{5}$`),
    );
    expect(createSecret.body).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: secretName,
        namespace: NAMESPACE,
        labels: { 'platform.io/pipeline': pipelineId, 'app.kubernetes.io/managed-by': 'platform' },
      },
      type: 'Opaque',
      data: { 'clone-token': Buffer.from(TOKEN).toString('base64') },
    });
    expect(createSecret.rawBody).not.toContain(TOKEN);
    expect(kube.pods.filter((p) => p.labels['platform.io/pipeline'] === pipelineId)).toHaveLength(0);

    const env = { CI: 'true', NODE_ENV: 'test', NPM_TOKEN: 'npm-secret-value-42' };
    const output: Buffer[] = [];
    const done = runner.runStep({
      runId: `${pipelineId}-Unit tests`,
      pipelineId,
      stepName: 'Unit tests',
      image: 'node:20',
      commands: ['npm ci', 'npm test'],
      env,
      timeoutSeconds: 600,
      workspace,
      source,
      labels: { 'platform.io/project': 'acme-app' },
      signal: new AbortController().signal,
      onOutput: (chunk) => output.push(chunk),
    });
    const pod = await kube.nextPod();
    const create = kube.requests.find(
      (r) =>
        r.method === 'POST' &&
        r.path.endsWith('/pods') &&
        r.body &&
        JSON.stringify(r.body).includes(pod.name),
    )!;
    expect(create.path).toBe(`/api/v1/namespaces/${NAMESPACE}/pods`);
    expect(create.authorization).toBe('Bearer test');
    expect(pod.name).toMatch(
      new RegExp(`^pl-${pipelineId.replaceAll('-', '').slice(0, 8)}-unit-tests-[a-z0-9]{5}$`),
    );

    // Before the pod: the step's variables were added to the run Secret with a JSON merge patch.
    const patch = kube.requests.find((r) => r.method === 'PATCH')!;
    expect(kube.requests.indexOf(patch)).toBeLessThan(kube.requests.indexOf(create));
    expect(patch.path).toBe(`/api/v1/namespaces/${NAMESPACE}/secrets/${secretName}`);
    expect(patch.contentType).toBe('application/merge-patch+json');
    const prefix = `unit-tests-${createHash('sha256').update(`${pipelineId}-Unit tests`).digest('hex').slice(0, 8)}`;
    const b64 = (v: string) => Buffer.from(v).toString('base64');
    expect(patch.body).toEqual({
      data: {
        [`${prefix}.CI`]: b64('true'),
        [`${prefix}.NODE_ENV`]: b64('test'),
        [`${prefix}.NPM_TOKEN`]: b64('npm-secret-value-42'),
        'clone-token': b64(TOKEN),
      },
    });
    expect(kube.liveSecret(NAMESPACE, secretName)!.values()).toEqual({
      'clone-token': TOKEN,
      [`${prefix}.CI`]: 'true',
      [`${prefix}.NODE_ENV`]: 'test',
      [`${prefix}.NPM_TOKEN`]: 'npm-secret-value-42',
    });

    const mounts = [{ name: 'workspace', mountPath: '/workspace' }];
    const resources = {
      requests: { cpu: '500m', memory: '512Mi' },
      limits: { cpu: '500m', memory: '512Mi' },
    };
    const securityContext = {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      privileged: false,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    };
    const fromSecret = (name: string, key: string) => ({
      name,
      valueFrom: { secretKeyRef: { name: secretName, key } },
    });
    expect(create.body).toEqual({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: pod.name,
        namespace: NAMESPACE,
        labels: {
          'platform.io/project': 'acme-app',
          'platform.io/pipeline': pipelineId,
          'platform.io/step': 'Unit-tests',
          'app.kubernetes.io/managed-by': 'platform',
        },
        annotations: {
          'platform.io/run-id': `${pipelineId}-Unit tests`,
          'platform.io/step-name': 'Unit tests',
        },
      },
      spec: {
        restartPolicy: 'Never',
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        securityContext: {
          runAsNonRoot: true,
          runAsUser: 65532,
          runAsGroup: 65532,
          fsGroup: 65532,
          seccompProfile: { type: 'RuntimeDefault' },
        },
        activeDeadlineSeconds: 600,
        volumes: [
          { name: 'workspace', emptyDir: {} },
          { name: 'home', emptyDir: {} },
        ],
        initContainers: [
          {
            name: 'clone',
            image: 'alpine/git:2.45.2',
            command: [
              '/bin/sh',
              '-c',
              'export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader GIT_CONFIG_VALUE_0="Authorization: Bearer $PLATFORM_CLONE_TOKEN"\n' +
                'git clone --no-checkout "$PLATFORM_CLONE_URL" /workspace && git -C /workspace checkout --detach "$PLATFORM_COMMIT_SHA"\n',
            ],
            env: [
              { name: 'PLATFORM_CLONE_URL', value: 'http://platform.test/acme/app.git' },
              { name: 'PLATFORM_COMMIT_SHA', value: 'a'.repeat(40) },
              fromSecret('PLATFORM_CLONE_TOKEN', 'clone-token'),
            ],
            volumeMounts: mounts,
            securityContext,
            resources,
          },
        ],
        containers: [
          {
            name: 'step',
            image: 'node:20',
            command: ['/bin/sh', '-c', buildStepScript(['npm ci', 'npm test'])],
            env: [
              fromSecret('CI', `${prefix}.CI`),
              fromSecret('NODE_ENV', `${prefix}.NODE_ENV`),
              fromSecret('NPM_TOKEN', `${prefix}.NPM_TOKEN`),
              { name: 'HOME', value: '/home/platform' },
            ],
            workingDir: '/workspace',
            volumeMounts: [...mounts, { name: 'home', mountPath: '/home/platform' }],
            securityContext,
            resources,
          },
        ],
      },
    });
    // No value of the step's environment and no token anywhere in what was sent for the pod.
    for (const value of [TOKEN, 'npm-secret-value-42']) {
      expect(create.rawBody).not.toContain(value);
    }
    expect(create.rawBody).not.toContain(b64(TOKEN));

    // Playing the kubelet: each container gets its variables from the Secret.
    pod.startStep();
    expect(pod.env('clone')).toEqual({
      PLATFORM_CLONE_URL: 'http://platform.test/acme/app.git',
      PLATFORM_COMMIT_SHA: 'a'.repeat(40),
      PLATFORM_CLONE_TOKEN: TOKEN,
    });
    expect(pod.env('step')).toEqual({ ...env, HOME: '/home/platform' });
    pod.exit(0);
    expect((await done).outcome).toBe('success');
    expect(pod.deleted).toBe(true);
    // The Secret outlives the step (later steps of the run use it) and goes with the run.
    expect(kube.liveSecret(NAMESPACE, secretName)).toBeDefined();
    await workspace.dispose();
    expect(kube.liveSecret(NAMESPACE, secretName)).toBeUndefined();
    const deletion = kube.requests.filter(
      (r) => r.method === 'DELETE' && r.path === `/api/v1/namespaces/${NAMESPACE}/secrets/${secretName}`,
    );
    expect(deletion).toHaveLength(1);
    // Idempotent: a second dispose sends nothing more.
    await workspace.dispose();
    expect(
      kube.requests.filter((r) => r.method === 'DELETE' && r.path.endsWith(`/secrets/${secretName}`)),
    ).toHaveLength(1);
  });

  it('the step script runs the commands in one shell with set -e, echoing each', () => {
    expect(buildStepScript(['npm ci', "echo 'done'"])).toBe(
      "exec 2>&1\nset -e\nprintf '%s\\n' '$ npm ci'\nnpm ci\nprintf '%s\\n' '$ echo '\\''done'\\'''\necho 'done'\n",
    );
  });

  it('clones without credentials, omits the deadline and resources when none are set, uses the default image', async () => {
    const bare = createKubernetesRunner({
      kubeConfig: kube.kubeConfig(),
      namespace: NAMESPACE,
      pollIntervalMs: 20,
    });
    const output: Buffer[] = [];
    const done = bare.runStep({
      runId: 'r',
      pipelineId: randomUUID(),
      stepName: 'lint',
      image: null,
      commands: ['true'],
      env: {},
      timeoutSeconds: null,
      workspace: await bare.prepareWorkspace('x', {
        repoDir: '',
        cloneUrl: 'http://h/r.git',
        sha: 'b'.repeat(40),
      }),
      source: { repoDir: '', cloneUrl: 'http://h/r.git', sha: 'b'.repeat(40) },
      signal: new AbortController().signal,
      onOutput: (c) => output.push(c),
    });
    const pod = await kube.nextPod();
    const spec = pod.spec;
    expect(spec.activeDeadlineSeconds).toBeUndefined();
    expect(spec.containers[0].resources).toBeUndefined();
    expect(spec.initContainers[0].resources).toBeUndefined();
    expect(spec.containers[0].image).toBe('alpine:3.20');
    expect(spec.initContainers[0].command[2]).toBe(
      'git clone --no-checkout "$PLATFORM_CLONE_URL" /workspace && git -C /workspace checkout --detach "$PLATFORM_COMMIT_SHA"\n',
    );
    expect(spec.initContainers[0].env.map((e: { name: string }) => e.name)).toEqual([
      'PLATFORM_CLONE_URL',
      'PLATFORM_COMMIT_SHA',
    ]);
    expect(spec.containers[0].env).toEqual([{ name: 'HOME', value: '/home/platform' }]);
    pod.startStep().exit(0);
    expect((await done).outcome).toBe('success');
  });

  it('runs the containers as another uid when configured, and refuses root', () => {
    expect(() =>
      createKubernetesRunner({ kubeConfig: kube.kubeConfig(), namespace: NAMESPACE, runAsUser: 0 }),
    ).toThrow('runAsUser must be a positive integer (not root), got 0');
  });

  it('keeps a step-defined HOME, and stores variables whose names are no Secret key by position', async () => {
    const pipelineId = randomUUID();
    const workspace = await runner.prepareWorkspace(pipelineId, {
      repoDir: '',
      cloneUrl: 'http://h/r.git',
      sha: 'c'.repeat(40),
    });
    const done = runner.runStep({
      runId: `${pipelineId}-odd`,
      pipelineId,
      stepName: 'odd',
      image: null,
      commands: ['true'],
      env: { HOME: '/tmp/h', 'WEIRD NAME': 'v1', ['x'.repeat(300)]: 'v2' },
      timeoutSeconds: null,
      workspace,
      source: { repoDir: '', cloneUrl: 'http://h/r.git', sha: 'c'.repeat(40) },
      signal: new AbortController().signal,
      onOutput: () => {},
    });
    const pod = await kube.nextPod();
    const refs = pod.spec.containers[0].env.map(
      (e: { name: string; valueFrom?: { secretKeyRef: { key: string } } }) => [
        e.name,
        e.valueFrom?.secretKeyRef.key.replace(/^odd-[0-9a-f]{8}/, '<prefix>'),
      ],
    );
    expect(refs).toEqual([
      ['HOME', '<prefix>.HOME'],
      ['WEIRD NAME', '<prefix>-1'],
      ['x'.repeat(300), '<prefix>-2'],
    ]);
    pod.startStep();
    expect(pod.env('step')).toEqual({ HOME: '/tmp/h', 'WEIRD NAME': 'v1', ['x'.repeat(300)]: 'v2' });
    pod.exit(0);
    expect((await done).outcome).toBe('success');
    await workspace.dispose();
  });

  it('parallel steps of one run share its Secret, each under its own keys', async () => {
    const pipelineId = randomUUID();
    const source = { repoDir: '', cloneUrl: 'http://h/r.git', cloneToken: TOKEN, sha: 'd'.repeat(40) };
    const workspace = await runner.prepareWorkspace(pipelineId, source);
    const run = (stepName: string, env: Record<string, string>) =>
      runner.runStep({
        runId: `${pipelineId}-${stepName}`,
        pipelineId,
        stepName,
        image: null,
        commands: ['true'],
        env,
        timeoutSeconds: null,
        workspace,
        source,
        signal: new AbortController().signal,
        onOutput: () => {},
      });
    const a = run('lint', { STEP_NAME: 'lint', KEY: 'value-a' });
    const b = run('test', { STEP_NAME: 'test', KEY: 'value-b' });
    const pods = [await kube.nextPod(), await kube.nextPod()];
    const secret = kube.secrets.find((x) => x.labels['platform.io/pipeline'] === pipelineId)!;
    expect(Object.keys(secret.values()).sort()).toHaveLength(5);
    for (const pod of pods) pod.startStep();
    const byStep = Object.fromEntries(pods.map((p) => [p.labels['platform.io/step'], p.env('step')]));
    expect(byStep).toEqual({
      lint: { STEP_NAME: 'lint', KEY: 'value-a', HOME: '/home/platform' },
      test: { STEP_NAME: 'test', KEY: 'value-b', HOME: '/home/platform' },
    });
    for (const pod of pods) pod.exit(0);
    expect([(await a).outcome, (await b).outcome]).toEqual(['success', 'success']);
    await workspace.dispose();
    expect(secret.deleted).toBe(true);
  });

  it('gives a step on a workspace it did not prepare a Secret of its own, deleted with the pod', async () => {
    const step = start({ env: { API_KEY: 'lone-secret-value' } });
    const pod = await kube.nextPod();
    const secret = kube.liveSecret(NAMESPACE, pod.name)!;
    expect(secret.labels).toEqual({
      'platform.io/pipeline': step.pipelineId,
      'platform.io/step': 'test',
      'app.kubernetes.io/managed-by': 'platform',
    });
    const prefix = `test-${createHash('sha256').update(`${step.pipelineId}:test`).digest('hex').slice(0, 8)}`;
    expect(secret.values()).toEqual({ [`${prefix}.API_KEY`]: 'lone-secret-value', 'clone-token': TOKEN });
    expect(JSON.stringify(pod.manifest)).not.toContain('lone-secret-value');
    pod.startStep();
    expect(pod.env('step').API_KEY).toBe('lone-secret-value');
    pod.exit(0);
    expect((await step.done).outcome).toBe('success');
    expect(pod.deleted).toBe(true);
    expect(secret.deleted).toBe(true);
  });

  it.each([
    ['a failing step', (pod: FakePod) => pod.startStep().exit(1), 'failure'],
    ['a pod that never starts', (pod: FakePod) => pod.waiting('step', 'ErrImagePull', 'nope'), 'failure'],
  ])('deletes the lone step Secret after %s', async (_what, play, outcome) => {
    const step = start({ env: { API_KEY: 'lone-secret-value' } });
    const pod = await kube.nextPod();
    const secret = kube.liveSecret(NAMESPACE, pod.name)!;
    play(pod);
    expect((await step.done).outcome).toBe(outcome);
    expect(secret.deleted).toBe(true);
  });

  it('deletes the lone step Secret when the step is cancelled', async () => {
    const step = start({ env: { API_KEY: 'lone-secret-value' } });
    const pod = await kube.nextPod();
    const secret = kube.liveSecret(NAMESPACE, pod.name)!;
    pod.startStep();
    await until('log followed', () => pod.followerCount() > 0);
    step.controller.abort();
    expect((await step.done).outcome).toBe('cancelled');
    expect(pod.deleted).toBe(true);
    expect(secret.deleted).toBe(true);
  });

  it('fails the step without a pod when the environment cannot be stored, with the API server message', async () => {
    const pipelineId = randomUUID();
    const source = { repoDir: '', cloneUrl: 'http://h/r.git', sha: 'e'.repeat(40) };
    const workspace = await runner.prepareWorkspace(pipelineId, source);
    kube.rejectNext(
      'PATCH',
      /\/secrets\//,
      403,
      'secrets "x" is forbidden: User "runner" cannot patch resource "secrets"',
    );
    const podsBefore = kube.pods.length;
    const result = await runner.runStep({
      runId: `${pipelineId}-build`,
      pipelineId,
      stepName: 'build',
      image: null,
      commands: ['true'],
      env: { A: 'b' },
      timeoutSeconds: null,
      workspace,
      source,
      signal: new AbortController().signal,
      onOutput: () => {},
    });
    expect(result.outcome).toBe('failure');
    expect(result.error).toMatch(
      /^could not store the step's environment in secret pl-[a-z0-9]{8}-env-[a-z0-9]{5}: HTTP 403: secrets "x" is forbidden: User "runner" cannot patch resource "secrets"$/,
    );
    expect(kube.pods.length).toBe(podsBefore);
    await workspace.dispose();
  });

  it('refuses to prepare a run when its Secret cannot be created', async () => {
    kube.rejectNext(
      'POST',
      /\/secrets$/,
      403,
      'secrets is forbidden: User "runner" cannot create resource "secrets"',
    );
    await expect(
      runner.prepareWorkspace(randomUUID(), { repoDir: '', cloneUrl: 'http://h/r.git', sha: 'f'.repeat(40) }),
    ).rejects.toThrow(
      /^could not create secret ci\/pl-[a-z0-9]{8}-env-[a-z0-9]{5}: HTTP 403: secrets is forbidden: User "runner" cannot create resource "secrets"$/,
    );
  });

  it('retries deleting the run Secret when the API server fails, and says so when it cannot', async () => {
    const pipelineId = randomUUID();
    const workspace = await runner.prepareWorkspace(pipelineId, {
      repoDir: '',
      cloneUrl: 'http://h/r.git',
      cloneToken: TOKEN,
      sha: 'f'.repeat(40),
    });
    const secret = kube.secrets.find((x) => x.labels['platform.io/pipeline'] === pipelineId)!;
    kube.rejectNext('DELETE', /\/secrets\//, 503, 'etcdserver: leader changed');
    await workspace.dispose();
    expect(secret.deleted).toBe(true);

    const other = await runner.prepareWorkspace(randomUUID(), {
      repoDir: '',
      cloneUrl: 'http://h/r.git',
      sha: 'f'.repeat(40),
    });
    for (let i = 0; i < 3; i++) kube.rejectNext('DELETE', /\/secrets\//, 503, 'etcdserver: leader changed');
    await expect(other.dispose()).rejects.toThrow(
      /^could not delete secret ci\/pl-[a-z0-9-]+: HTTP 503: etcdserver: leader changed$/,
    );
    // A later dispose tries again.
    await other.dispose();
    expect(kube.secrets.at(-1)!.deleted).toBe(true);
  });

  it('makes pod names DNS-1123 labels of at most 63 characters', () => {
    const long = podName(randomUUID(), `Build & Test / ${'very long step name '.repeat(10)}!`);
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^pl-[a-z0-9]{8}-build-test-very-long-step-name[a-z0-9-]*[a-z0-9]-[a-z0-9]{5}$/);
    expect(podName('ABC', '***')).toMatch(/^pl-abc-step-[a-z0-9]{5}$/);
    expect(podName(randomUUID(), 'x')).not.toBe(podName(randomUUID(), 'x'));
  });
});

describe('kubernetes runner: execution', () => {
  it('refuses a step that asks for network: none instead of giving it the pod network', async () => {
    const before = kube.pods.length;
    const step = start({ network: 'none' });
    expect(await step.done).toMatchObject({
      outcome: 'failure',
      exitCode: null,
      error: 'network: none is not supported by the kubernetes runner (it creates no NetworkPolicy)',
    });
    expect(kube.pods.length).toBe(before);
  });

  it('follows the step container log live into onOutput, then deletes the pod', async () => {
    const step = start();
    const pod = await kube.nextPod();
    pod.initRunning();
    pod.startStep().log('$ npm ci\nadded 12 packages\n');
    await until('first lines streamed', () => step.text().includes('added 12 packages'));
    expect(pod.deleted).toBe(false);
    pod.log('$ npm test\nall ');
    pod.log('tests passed\n');
    pod.exit(0);

    const result = await step.done;
    expect(result).toMatchObject({ outcome: 'success', exitCode: 0 });
    expect(result.error).toBeUndefined();
    expect(step.text()).toBe(
      `[runner] kubernetes, pod ${NAMESPACE}/${pod.name}, image alpine:3.20\n` +
        '$ npm ci\nadded 12 packages\n$ npm test\nall tests passed\n',
    );
    const logRequest = requestsFor(pod).find((r) => r.path.endsWith('/log'))!;
    expect(logRequest.query).toMatchObject({ container: 'step', follow: 'true' });
    // Deleted after the logs were read, with the default grace period.
    expect(pod.deleted).toBe(true);
    const reqs = requestsFor(pod);
    const deleteIndex = reqs.findIndex((r) => r.method === 'DELETE');
    expect(deleteIndex).toBe(reqs.length - 1);
    expect(pod.deleteQuery).toEqual({});
  });

  it('maps a non-zero exit of the step container to failure with its exit code', async () => {
    const step = start();
    const pod = await kube.nextPod();
    pod.startStep().log('1 test failed\n').exit(3);
    const result = await step.done;
    expect(result).toMatchObject({ outcome: 'failure', exitCode: 3 });
    expect(result.error).toBeUndefined();
    expect(step.text()).toContain('1 test failed\n');
    expect(pod.deleted).toBe(true);
  });

  it('says so when the container was killed for using too much memory', async () => {
    const step = start();
    const pod = await kube.nextPod();
    pod.startStep().exit(137, 'OOMKilled');
    expect(await step.done).toMatchObject({
      outcome: 'failure',
      exitCode: 137,
      error: 'out of memory (OOMKilled)',
    });
  });

  it('maps DeadlineExceeded (activeDeadlineSeconds) to timeout', async () => {
    const step = start({ timeoutSeconds: 30 });
    const pod = await kube.nextPod();
    pod.startStep().log('working...\n');
    await until('log followed', () => pod.followerCount() > 0);
    pod.deadlineExceeded();
    const result = await step.done;
    expect(result).toMatchObject({ outcome: 'timeout', exitCode: null, error: 'timed out after 30s' });
    expect(step.text()).toContain('working...\n');
    expect(pod.deleted).toBe(true);
  });

  it('maps a failed clone init container to "checkout failed" with its output, never reading step logs', async () => {
    const step = start();
    const pod = await kube.nextPod();
    pod.initRunning();
    pod.failInit(128, "fatal: repository 'http://platform.test/acme/app.git/' not found\n");
    const result = await step.done;
    expect(result.outcome).toBe('failure');
    expect(result.exitCode).toBeNull();
    expect(result.error).toBe('checkout failed: clone container exited with 128 (Error)');
    expect(step.text()).toContain(
      "[runner] output of the checkout (clone container):\nfatal: repository 'http://platform.test/acme/app.git/' not found\n",
    );
    const logs = requestsFor(pod).filter((r) => r.path.endsWith('/log'));
    expect(logs.map((r) => r.query.container)).toEqual(['clone']);
    expect(pod.deleted).toBe(true);
  });

  it.each([
    [
      'ErrImagePull',
      'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/node:99"',
    ],
    ['ImagePullBackOff', 'Back-off pulling image "node:99"'],
  ])('fails with a clear error when the step image cannot be pulled (%s)', async (reason, message) => {
    const step = start({ image: 'node:99' });
    const pod = await kube.nextPod();
    pod.waiting('step', reason, message);
    const result = await step.done;
    expect(result).toMatchObject({
      outcome: 'failure',
      exitCode: null,
      error: `image node:99 could not be pulled (${reason}: ${message})`,
    });
    expect(pod.deleted).toBe(true);
  });

  it('fails the checkout when the init image cannot be pulled', async () => {
    const step = start();
    const pod = await kube.nextPod();
    pod.waiting('clone', 'ImagePullBackOff', 'Back-off pulling image "alpine/git:2.45.2"');
    expect(await step.done).toMatchObject({
      outcome: 'failure',
      error:
        'checkout failed: image alpine/git:2.45.2 could not be pulled (ImagePullBackOff: Back-off pulling image "alpine/git:2.45.2")',
    });
  });

  it('notes in the log why a pod is still pending', async () => {
    const step = start();
    const pod = await kube.nextPod();
    pod.unschedulable('0/3 nodes are available: 3 Insufficient memory.');
    await until('note', () => step.text().includes('waiting for a node'));
    pod.startStep().exit(0);
    await step.done;
    expect(step.text().match(/waiting for a node/g)).toHaveLength(1);
    expect(step.text()).toContain(
      '[runner] waiting for a node: 0/3 nodes are available: 3 Insufficient memory.\n',
    );
  });

  it('reopens a log stream that broke while the container runs, without repeating or losing output', async () => {
    const step = start();
    const pod = await kube.nextPod();
    pod.startStep().log('part 1\n');
    await until('streamed', () => step.text().includes('part 1'));
    pod.dropLogStreams();
    pod.log('part 2\n');
    await until(
      'second log request',
      () => requestsFor(pod).filter((r) => r.path.endsWith('/log')).length >= 2,
    );
    await until('part 2 streamed', () => step.text().includes('part 2'));
    pod.log('part 3\n').exit(0);
    expect((await step.done).outcome).toBe('success');
    expect(step.text()).toBe(
      `[runner] kubernetes, pod ${NAMESPACE}/${pod.name}, image alpine:3.20\npart 1\npart 2\npart 3\n`,
    );
  });

  it('cancels a running step by deleting its pod immediately', async () => {
    const step = start();
    const pod = await kube.nextPod();
    pod.startStep().log('long job\n');
    await until('log followed', () => pod.followerCount() > 0);
    step.controller.abort();
    const result = await step.done;
    expect(result).toMatchObject({ outcome: 'cancelled', exitCode: null });
    expect(pod.deleted).toBe(true);
    expect(pod.deleteQuery).toEqual({ gracePeriodSeconds: '0' });
  });

  it('cancels a step whose pod is still pending', async () => {
    const step = start();
    const pod = await kube.nextPod();
    await until('polled', () => requestsFor(pod).some((r) => r.method === 'GET'));
    step.controller.abort();
    expect((await step.done).outcome).toBe('cancelled');
    expect(pod.deleteQuery).toEqual({ gracePeriodSeconds: '0' });
  });

  it('reports a pod the API refuses to create, with the API server message', async () => {
    kube.rejectNext(
      'POST',
      /\/pods$/,
      403,
      'pods is forbidden: User "runner" cannot create resource "pods" in namespace "ci"',
    );
    const step = start();
    const result = await step.done;
    expect(result.outcome).toBe('failure');
    expect(result.error).toMatch(
      /^could not create pod pl-[a-z0-9-]+: HTTP 403: pods is forbidden: User "runner" cannot create resource "pods" in namespace "ci"$/,
    );
  });

  it('fails the step when the pod disappears under it', async () => {
    const step = start();
    const pod = await kube.nextPod();
    pod.startStep();
    await until('log followed', () => pod.followerCount() > 0);
    pod.deleted = true;
    pod.endFollowers();
    const result = await step.done;
    expect(result.outcome).toBe('failure');
    expect(result.error).toBe(`lost track of pod ${pod.name}: pod ${pod.name} was deleted`);
  });
});

describe('kubernetes runner: cleanupOrphans', () => {
  it('deletes the pods and Secrets labelled with the given pipeline ids, and only those', async () => {
    const [a, b, other] = [randomUUID(), randomUUID(), randomUUID()];
    const managed = { 'app.kubernetes.io/managed-by': 'platform' };
    const podA = kube.addPod(NAMESPACE, 'pl-a-build-00001', { ...managed, 'platform.io/pipeline': a });
    const podB = kube.addPod(NAMESPACE, 'pl-b-test-00002', { ...managed, 'platform.io/pipeline': b });
    const podOther = kube.addPod(NAMESPACE, 'pl-o-test-00003', { ...managed, 'platform.io/pipeline': other });
    const elsewhere = kube.addPod('other-ns', 'pl-a-build-00004', { ...managed, 'platform.io/pipeline': a });
    const secretA = kube.addSecret(
      NAMESPACE,
      'pl-a-env-00001',
      { ...managed, 'platform.io/pipeline': a },
      { 'clone-token': TOKEN },
    );
    const secretB = kube.addSecret(NAMESPACE, 'pl-b-test-00002', {
      ...managed,
      'platform.io/pipeline': b,
      'platform.io/step': 'test',
    });
    const secretOther = kube.addSecret(NAMESPACE, 'pl-o-env-00003', {
      ...managed,
      'platform.io/pipeline': other,
    });
    const unmanaged = kube.addSecret(NAMESPACE, 'someone-elses', { 'platform.io/pipeline': a });

    await runner.cleanupOrphans([a, b]);

    expect(secretA.deleted).toBe(true);
    expect(secretB.deleted).toBe(true);
    expect(secretOther.deleted).toBe(false);
    expect(unmanaged.deleted).toBe(false);
    const secretList = kube.requests.filter(
      (r) => r.method === 'GET' && r.path === `/api/v1/namespaces/${NAMESPACE}/secrets`,
    );
    expect(secretList.at(-1)!.query.labelSelector).toBe(
      `app.kubernetes.io/managed-by=platform,platform.io/pipeline in (${a},${b})`,
    );

    expect(podA.deleted).toBe(true);
    expect(podB.deleted).toBe(true);
    expect(podOther.deleted).toBe(false);
    expect(elsewhere.deleted).toBe(false);
    expect(podA.deleteQuery).toEqual({ gracePeriodSeconds: '0' });
    const list = kube.requests.filter(
      (r) => r.method === 'GET' && r.path === `/api/v1/namespaces/${NAMESPACE}/pods`,
    );
    expect(list.at(-1)!.query.labelSelector).toBe(
      `app.kubernetes.io/managed-by=platform,platform.io/pipeline in (${a},${b})`,
    );
  });
});
