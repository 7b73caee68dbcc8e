/**
 * The kubernetes runner: one pod per step, created, watched (by polling) and deleted through the
 * Kubernetes API with `@kubernetes/client-node`. The step's environment and the clone token travel in
 * a Kubernetes Secret per pipeline run (created by prepareWorkspace, deleted by its dispose), which the
 * pods reference: no value is written into a pod spec, which anyone allowed to read pods can see.
 *
 * The tests run it against an API double that speaks the real REST wire format
 * (test/helpers/kube-api.ts) and check the exact pod specs sent and the phase mapping; scheduling,
 * image pulls, the clone in the init container, log rotation and kubelet behaviour need a real cluster
 * for full verification.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import {
  CoreV1Api,
  KubeConfig,
  Log,
  PatchStrategy,
  setHeaderOptions,
  type V1Container,
  type V1ContainerStatus,
  type V1EnvVar,
  type V1Pod,
  type V1PodSecurityContext,
  type V1ResourceRequirements,
  type V1SecurityContext,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { buildStepScript } from './script.js';
import type { Runner, StepRunRequest, StepRunResult, Workspace } from './types.js';

export interface KubernetesRunnerOptions {
  /** A loaded KubeConfig, or a kubeconfig file path; absent → in-cluster configuration. */
  kubeConfig: KubeConfig | string | undefined;
  namespace: string;
  /** Image of the `clone` init container; it needs `git` and `/bin/sh`. */
  initImage?: string;
  /** Image for steps that do not name one. */
  image?: string;
  /** Applied as both requests and limits to each container of a step pod. */
  resources?: { cpu?: string; memory?: string };
  /** How often pod status is read while a step runs. */
  pollIntervalMs?: number;
  /** The uid and gid the clone and step containers run as (never 0); default 65532. */
  runAsUser?: number;
  log?: Logger;
}

export const DEFAULT_INIT_IMAGE = 'alpine/git:2.45.2';
export const DEFAULT_STEP_IMAGE = 'alpine:3.20';

const LABEL_PIPELINE = 'platform.io/pipeline';
const LABEL_STEP = 'platform.io/step';
const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
const WORKSPACE = '/workspace';
/** A writable HOME: the step runs as a uid that has no home directory in the image. */
const HOME = '/home/platform';
/** `nonroot` of the distroless images: a uid that no image gives special rights to. */
export const DEFAULT_RUN_AS_USER = 65532;
/** Key of the clone token in the run's Secret. */
const CLONE_TOKEN_KEY = 'clone-token';
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;

/** Waiting reasons after which the kubelet will not start the container without a change to the pod. */
const IMAGE_PULL_REASONS = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'ErrImageNeverPull',
]);
const START_FAILURE_REASONS = new Set([
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);

/**
 * The clone runs from a constant script: the URL and sha come in as environment variables (no shell
 * string built from input), and the token reaches git through GIT_CONFIG_* variables, so it is in no
 * process's argument list — only in the init container's env, filled by the kubelet from the run's
 * Secret; the step container does not get it.
 */
const CLONE_SCRIPT_WITH_TOKEN =
  'export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader GIT_CONFIG_VALUE_0="Authorization: Bearer $PLATFORM_CLONE_TOKEN"\n' +
  'git clone --no-checkout "$PLATFORM_CLONE_URL" /workspace && git -C /workspace checkout --detach "$PLATFORM_COMMIT_SHA"\n';
const CLONE_SCRIPT =
  'git clone --no-checkout "$PLATFORM_CLONE_URL" /workspace && git -C /workspace checkout --detach "$PLATFORM_COMMIT_SHA"\n';

/** When the step's own deadline (activeDeadlineSeconds) should have ended the pod, plus this, the runner gives up on it. */
const LOCAL_DEADLINE_GRACE_MS = 60_000;
/** Once the container has ended, how long an open log stream gets to deliver the rest before it is replaced by a plain read. */
const LOG_DRAIN_MS = 5_000;
/** Deleting a Secret: attempts, and the pause before the next one (× the attempt number). */
const SECRET_DELETE_ATTEMPTS = 3;
const SECRET_DELETE_BACKOFF_MS = 500;
/** Consecutive failed status reads tolerated (API server restarts, network blips) before the step fails. */
const MAX_READ_FAILURES = 30;
/** setTimeout fires at once beyond 2^31-1 ms. */
const MAX_TIMER_MS = 2_147_483_647;

export function createKubernetesRunner(options: KubernetesRunnerOptions): Runner {
  const kc = loadKubeConfig(options.kubeConfig);
  const api = kc.makeApiClient(CoreV1Api);
  const logs = new Log(kc);
  const namespace = options.namespace;
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const log = options.log;

  const runAsUser = options.runAsUser ?? DEFAULT_RUN_AS_USER;
  if (!Number.isInteger(runAsUser) || runAsUser <= 0) {
    throw new Error(`runAsUser must be a positive integer (not root), got ${runAsUser}`);
  }
  /** The Secret of each prepared run, by the workspace handed out for it. */
  const runSecrets = new WeakMap<Workspace, string>();
  // JSON merge patch (RFC 7386): adding keys to `data` leaves the other steps' keys alone, so parallel
  // steps of one run can each add theirs without reading the Secret first.
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

  async function deletePod(name: string, immediately: boolean): Promise<void> {
    try {
      await api.deleteNamespacedPod({ name, namespace, ...(immediately ? { gracePeriodSeconds: 0 } : {}) });
    } catch (err) {
      if (statusCode(err) === 404) return;
      log?.warn({ pod: name, err: describeError(err) }, 'could not delete step pod');
    }
  }

  /** Deleted with a few retries: the Secret holds the run's secret values. Throws when it could not be. */
  async function deleteSecret(name: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await api.deleteNamespacedSecret({ name, namespace });
        return;
      } catch (err) {
        if (statusCode(err) === 404) return;
        if (attempt >= SECRET_DELETE_ATTEMPTS) {
          log?.error({ secret: name, err: describeError(err) }, 'could not delete the run secret');
          throw new Error(`could not delete secret ${namespace}/${name}: ${describeError(err)}`);
        }
        await sleep(SECRET_DELETE_BACKOFF_MS * attempt, new AbortController().signal);
      }
    }
  }

  async function createSecret(
    name: string,
    labels: Record<string, string>,
    data: Record<string, string>,
  ): Promise<void> {
    await api.createNamespacedSecret({
      namespace,
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name, namespace, labels: { ...labels, [LABEL_MANAGED_BY]: 'platform' } },
        type: 'Opaque',
        data: base64Values(data),
      },
    });
  }

  async function runStep(req: StepRunRequest): Promise<StepRunResult> {
    const started = Date.now();
    if (req.signal.aborted) return { outcome: 'cancelled', exitCode: null, durationMs: 0 };
    // Refused rather than ignored: a step that asked for no network must not silently get one.
    if (req.network === 'none') {
      return {
        outcome: 'failure',
        exitCode: null,
        error: 'network: none is not supported by the kubernetes runner (it creates no NetworkPolicy)',
        durationMs: 0,
      };
    }
    const emit = (chunk: Buffer) => {
      try {
        req.onOutput(chunk);
      } catch (err) {
        log?.error({ err, runId: req.runId }, 'step output consumer failed');
      }
    };
    const image = req.image ?? options.image ?? DEFAULT_STEP_IMAGE;
    const name = podName(req.pipelineId, req.stepName);
    // Every value of the step's environment goes to the Secret, not only those that came from
    // secrets: a value may embed a secret (`Bearer ${{ secrets.X }}`), and the runner is not told which.
    const keys = secretKeys(req);
    const values: Record<string, string> = {};
    for (const { key, value } of keys) values[key] = value;
    if (req.source.cloneToken) values[CLONE_TOKEN_KEY] = req.source.cloneToken;
    // A workspace this runner did not prepare (a caller running a lone step) gets a Secret of its own,
    // named like the pod and deleted with it.
    const prepared = runSecrets.get(req.workspace);
    const secret = prepared ?? name;
    try {
      if (prepared) {
        await api.patchNamespacedSecret(
          { name: secret, namespace, body: { data: base64Values(values) } },
          mergePatch,
        );
      } else {
        await createSecret(secret, stepLabels(req), values);
      }
    } catch (err) {
      return {
        outcome: 'failure',
        exitCode: null,
        error: `could not store the step's environment in secret ${secret}: ${describeError(err)}`,
        durationMs: Date.now() - started,
      };
    }
    try {
      if (req.signal.aborted)
        return { outcome: 'cancelled', exitCode: null, durationMs: Date.now() - started };
      return await runPod(req, { name, image, secret, keys, emit, started });
    } finally {
      if (!prepared) await deleteSecret(secret).catch(() => {});
    }
  }

  async function runPod(
    req: StepRunRequest,
    input: {
      name: string;
      image: string;
      secret: string;
      keys: SecretKey[];
      emit(chunk: Buffer): void;
      started: number;
    },
  ): Promise<StepRunResult> {
    const { name, image, emit, started } = input;
    const pod = buildStepPod({
      name,
      namespace,
      req,
      image,
      initImage: options.initImage ?? DEFAULT_INIT_IMAGE,
      resources: options.resources,
      secretName: input.secret,
      secretKeys: input.keys,
      runAsUser,
    });
    emit(Buffer.from(`[runner] kubernetes, pod ${namespace}/${name}, image ${image}\n`));

    try {
      await api.createNamespacedPod({ namespace, body: pod });
    } catch (err) {
      return {
        outcome: 'failure',
        exitCode: null,
        error: `could not create pod ${name}: ${describeError(err)}`,
        durationMs: Date.now() - started,
      };
    }

    // One internal signal for everything that should stop watching: cancel, or the runner's own deadline.
    const stop = new AbortController();
    let stopReason: 'cancelled' | 'timeout' | null = null;
    const onAbort = () => {
      stopReason ??= 'cancelled';
      stop.abort();
    };
    req.signal.addEventListener('abort', onAbort, { once: true });
    // An abort during the create request fired before the listener existed.
    if (req.signal.aborted) onAbort();
    const localDeadline =
      req.timeoutSeconds !== null && req.timeoutSeconds > 0
        ? setTimeout(
            () => {
              stopReason ??= 'timeout';
              stop.abort();
            },
            Math.min(req.timeoutSeconds * 1000 + LOCAL_DEADLINE_GRACE_MS, MAX_TIMER_MS),
          )
        : undefined;

    let result: Omit<StepRunResult, 'durationMs'> | null = null;
    try {
      result = await superviseStep({
        api,
        logs,
        namespace,
        name,
        req,
        pollIntervalMs,
        signal: stop.signal,
        emit,
        log,
      });
    } catch (err) {
      result = {
        outcome: 'failure',
        exitCode: null,
        error: `lost track of pod ${name}: ${describeError(err)}`,
      };
    } finally {
      clearTimeout(localDeadline);
      req.signal.removeEventListener('abort', onAbort);
      // Always deleted, once its log has been read: a finished pod holds its node's resources and its env.
      await deletePod(name, stopReason !== null);
    }
    const durationMs = Date.now() - started;
    if (stopReason === 'cancelled')
      return { outcome: 'cancelled', exitCode: null, error: 'cancelled', durationMs };
    // result is null only when the watch was stopped, i.e. by the runner's own deadline here.
    if (stopReason === 'timeout' || result === null) {
      return {
        outcome: 'timeout',
        exitCode: null,
        error: `timed out after ${req.timeoutSeconds}s`,
        durationMs,
      };
    }
    return { ...result, durationMs };
  }

  return {
    kind: 'kubernetes',

    // Each pod clones for itself (init container): nothing is prepared on this machine, only the run's
    // Secret in the cluster, before the first pod.
    async prepareWorkspace(pipelineId, source) {
      const name = runSecretName(pipelineId);
      try {
        await createSecret(
          name,
          { [LABEL_PIPELINE]: labelValue(pipelineId, 'pipeline') },
          source.cloneToken ? { [CLONE_TOKEN_KEY]: source.cloneToken } : {},
        );
      } catch (err) {
        throw new Error(`could not create secret ${namespace}/${name}: ${describeError(err)}`);
      }
      let disposed: Promise<void> | null = null;
      const workspace: Workspace = {
        dir: '',
        dispose: () => {
          disposed ??= deleteSecret(name).catch((err: unknown) => {
            // A later dispose may try again.
            disposed = null;
            throw err;
          });
          return disposed;
        },
      };
      runSecrets.set(workspace, name);
      return workspace;
    },

    runStep,

    async cleanupOrphans(pipelineIds) {
      const values = [...new Set(pipelineIds.map((id) => labelValue(id, 'pipeline')))];
      // Chunked: a label selector travels in the URL.
      for (let i = 0; i < values.length; i += 50) {
        const chunk = values.slice(i, i + 50);
        const labelSelector = `${LABEL_MANAGED_BY}=platform,${LABEL_PIPELINE} in (${chunk.join(',')})`;
        const list = await api.listNamespacedPod({ namespace, labelSelector });
        for (const pod of list.items) {
          const name = pod.metadata?.name;
          if (!name) continue;
          log?.info(
            { pod: name, pipeline: pod.metadata?.labels?.[LABEL_PIPELINE] },
            'deleting orphaned step pod',
          );
          await deletePod(name, true);
        }
        // After the pods that reference them: the run Secrets (and lone steps' Secrets) of the crashed runs.
        const secrets = await api.listNamespacedSecret({ namespace, labelSelector });
        for (const secret of secrets.items) {
          const name = secret.metadata?.name;
          if (!name) continue;
          log?.info(
            { secret: name, pipeline: secret.metadata?.labels?.[LABEL_PIPELINE] },
            'deleting orphaned run secret',
          );
          await deleteSecret(name).catch(() => {});
        }
      }
    },
  };
}

function loadKubeConfig(source: KubeConfig | string | undefined): KubeConfig {
  if (source instanceof KubeConfig) return source;
  const kc = new KubeConfig();
  if (typeof source === 'string' && source !== '') kc.loadFromFile(source);
  else kc.loadFromCluster();
  return kc;
}

// ---------------------------------------------------------------------------------------------------
// Pod spec

/** Where one variable of the step's environment is kept in the Secret. */
export interface SecretKey {
  env: string;
  key: string;
  value: string;
}

/**
 * `<step slug>-<8 hex of the run id>.<NAME>`: the steps of a run share its Secret, each under its own
 * prefix; a name that is not a valid Secret key (`[-._a-zA-Z0-9]`, ≤ 253) is stored by position
 * (`<prefix>-<n>`; the `-` cannot clash with the `.` of named keys).
 */
export function secretKeys(req: Pick<StepRunRequest, 'runId' | 'stepName' | 'env'>): SecretKey[] {
  const slug =
    req.stepName
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .slice(0, 40)
      .replace(/^-+|-+$/g, '') || 'step';
  const prefix = `${slug}-${createHash('sha256').update(req.runId).digest('hex').slice(0, 8)}`;
  return Object.entries(req.env).map(([env, value], index) => {
    const named = `${prefix}.${env}`;
    const key = SECRET_KEY.test(env) && named.length <= 253 ? named : `${prefix}-${index}`;
    return { env, key, value };
  });
}

function base64Values(values: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(values).map(([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')]),
  );
}

/** `pl-<8 characters of the pipeline id>-env-<5 random>`; random so that a second run of the same id never collides. */
export function runSecretName(pipelineId: string): string {
  const short =
    pipelineId
      .toLowerCase()
      .replace(/[^a-z0-9]/g, '')
      .slice(0, 8) || 'run';
  return `pl-${short}-env-${randomSuffix(5)}`;
}

function stepLabels(req: StepRunRequest): Record<string, string> {
  return {
    ...req.labels,
    [LABEL_PIPELINE]: labelValue(req.pipelineId, 'pipeline'),
    [LABEL_STEP]: labelValue(req.stepName, 'step'),
  };
}

export function buildStepPod(input: {
  name: string;
  namespace: string;
  req: StepRunRequest;
  image: string;
  initImage: string;
  resources: KubernetesRunnerOptions['resources'];
  /** The Secret holding the step's environment (under secretKeys) and the clone token. */
  secretName: string;
  secretKeys: SecretKey[];
  runAsUser: number;
}): V1Pod {
  const { req } = input;
  const workspace = [{ name: 'workspace', mountPath: WORKSPACE }];
  const resources = resourceRequirements(input.resources);
  const fromSecret = (name: string, key: string): V1EnvVar => ({
    name,
    valueFrom: { secretKeyRef: { name: input.secretName, key } },
  });
  // The same restricted context on both containers (Pod Security Standard `restricted`): not root, no
  // way to gain privileges (setuid binaries, file capabilities), no capabilities, the runtime's seccomp
  // profile.
  const securityContext: V1SecurityContext = {
    runAsNonRoot: true,
    runAsUser: input.runAsUser,
    runAsGroup: input.runAsUser,
    privileged: false,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
  const podSecurityContext: V1PodSecurityContext = {
    runAsNonRoot: true,
    runAsUser: input.runAsUser,
    runAsGroup: input.runAsUser,
    // The emptyDir volumes belong to this group, so the non-root containers can write them.
    fsGroup: input.runAsUser,
    seccompProfile: { type: 'RuntimeDefault' },
  };
  const cloneEnv: V1EnvVar[] = [
    { name: 'PLATFORM_CLONE_URL', value: req.source.cloneUrl },
    { name: 'PLATFORM_COMMIT_SHA', value: req.source.sha },
  ];
  if (req.source.cloneToken) cloneEnv.push(fromSecret('PLATFORM_CLONE_TOKEN', CLONE_TOKEN_KEY));

  const clone: V1Container = {
    name: 'clone',
    image: input.initImage,
    command: ['/bin/sh', '-c', req.source.cloneToken ? CLONE_SCRIPT_WITH_TOKEN : CLONE_SCRIPT],
    env: cloneEnv,
    volumeMounts: workspace,
    securityContext,
    ...(resources ? { resources } : {}),
  };
  const stepEnv = input.secretKeys.map(({ env, key }) => fromSecret(env, key));
  if (!('HOME' in req.env)) stepEnv.push({ name: 'HOME', value: HOME });
  const step: V1Container = {
    name: 'step',
    image: input.image,
    command: ['/bin/sh', '-c', buildStepScript(req.commands)],
    env: stepEnv,
    workingDir: WORKSPACE,
    volumeMounts: [...workspace, { name: 'home', mountPath: HOME }],
    securityContext,
    ...(resources ? { resources } : {}),
  };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: input.name,
      namespace: input.namespace,
      labels: { ...stepLabels(req), [LABEL_MANAGED_BY]: 'platform' },
      // Labels are sanitised; the exact names are kept here for people reading `kubectl describe`.
      annotations: { 'platform.io/run-id': req.runId, 'platform.io/step-name': req.stepName },
    },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      // Service links would add the namespace's services as variables: the step gets only its own env.
      enableServiceLinks: false,
      securityContext: podSecurityContext,
      ...(req.timeoutSeconds !== null && req.timeoutSeconds > 0
        ? { activeDeadlineSeconds: req.timeoutSeconds }
        : {}),
      volumes: [
        { name: 'workspace', emptyDir: {} },
        { name: 'home', emptyDir: {} },
      ],
      initContainers: [clone],
      containers: [step],
    },
  };
}

function resourceRequirements(
  resources: KubernetesRunnerOptions['resources'],
): V1ResourceRequirements | null {
  const amounts: Record<string, string> = {};
  if (resources?.cpu) amounts['cpu'] = resources.cpu;
  if (resources?.memory) amounts['memory'] = resources.memory;
  if (Object.keys(amounts).length === 0) return null;
  return { requests: { ...amounts }, limits: { ...amounts } };
}

/** `pl-<8 chars of the pipeline id>-<step slug>-<5 random>`: a DNS-1123 label of at most 63 characters. */
export function podName(pipelineId: string, stepName: string): string {
  const short =
    pipelineId
      .toLowerCase()
      .replace(/[^a-z0-9]/g, '')
      .slice(0, 8) || 'run';
  const random = randomSuffix(5);
  const room = 63 - `pl-${short}--${random}`.length;
  const slug =
    stepName
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .slice(0, room)
      .replace(/^-+|-+$/g, '') || 'step';
  return `pl-${short}-${slug}-${random}`;
}

function randomSuffix(length: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return [...randomBytes(length)].map((b) => alphabet[b % alphabet.length]).join('');
}

/** A valid label value (≤ 63 chars of [A-Za-z0-9._-], alphanumeric at both ends). */
function labelValue(value: string, fallback: string): string {
  const cleaned = value
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return cleaned || fallback;
}

// ---------------------------------------------------------------------------------------------------
// Following a pod

interface SuperviseInput {
  api: CoreV1Api;
  logs: Log;
  namespace: string;
  name: string;
  req: StepRunRequest;
  pollIntervalMs: number;
  signal: AbortSignal;
  emit(chunk: Buffer): void;
  log: Logger | undefined;
}

type Verdict = Omit<StepRunResult, 'durationMs'>;

/** Resolves the step's result, or null when `signal` stopped the watch (cancel or the runner's deadline). */
async function superviseStep(input: SuperviseInput): Promise<Verdict | null> {
  const { api, namespace, name, signal } = input;
  let readFailures = 0;
  const readPod = async (): Promise<V1Pod> => {
    for (;;) {
      try {
        const pod = await api.readNamespacedPod({ name, namespace });
        readFailures = 0;
        return pod;
      } catch (err) {
        if (statusCode(err) === 404) throw new Error(`pod ${name} was deleted`);
        if (++readFailures >= MAX_READ_FAILURES) throw err;
        input.log?.warn({ pod: name, err: describeError(err) }, 'reading step pod failed; retrying');
        await sleep(input.pollIntervalMs, signal);
        if (signal.aborted) throw new StoppedError();
      }
    }
  };

  try {
    // 1. Until the step container has started, or the pod cannot get that far.
    let noted = '';
    for (;;) {
      const pod = await readPod();
      const start = startVerdict(pod, input.req);
      if (start === 'started') break;
      if (start !== 'waiting') {
        if (start.cloneFailed) await emitCloneLog(input);
        return start.verdict;
      }
      const note = pendingNote(pod);
      if (note && note !== noted) {
        noted = note;
        input.emit(Buffer.from(`[runner] ${note}\n`));
      }
      await sleep(input.pollIntervalMs, signal);
      if (signal.aborted) return null;
    }

    // 2. Follow the step container's log until it has ended and the stream has delivered everything.
    await followStepLog(input, readPod);
    if (signal.aborted) return null;

    // 3. The final status.
    for (;;) {
      const verdict = finalVerdict(await readPod(), input.req);
      if (verdict) return verdict;
      await sleep(input.pollIntervalMs, signal);
      if (signal.aborted) return null;
    }
  } catch (err) {
    if (err instanceof StoppedError || signal.aborted) return null;
    throw err;
  }
}

class StoppedError extends Error {}

/**
 * A follow stream can end before the container does (API server or kubelet restarts, long-running
 * connections cut by proxies): it is then opened again from the start and the bytes already delivered
 * are skipped. A stream still open after the container has ended is replaced by a plain read.
 */
async function followStepLog(input: SuperviseInput, readPod: () => Promise<V1Pod>): Promise<void> {
  const { signal } = input;
  let delivered = 0;
  let generation = 0;
  const sinkFor = (mine: number) => {
    let seen = 0;
    return (chunk: Buffer) => {
      if (mine !== generation) return;
      const fresh = seen + chunk.length - delivered;
      seen += chunk.length;
      if (fresh <= 0) return;
      input.emit(fresh === chunk.length ? chunk : chunk.subarray(chunk.length - fresh));
      delivered += fresh;
    };
  };

  for (;;) {
    if (signal.aborted) return;
    generation++;
    const stream = openLog(input, 'step', true, sinkFor(generation));
    let finishedAt: number | null = null;
    let outcome: 'ended' | 'failed' | 'open' = 'open';
    while (outcome === 'open') {
      outcome = await Promise.race([
        stream.done,
        sleep(input.pollIntervalMs, signal).then(() => 'open' as const),
      ]);
      if (signal.aborted) {
        stream.abort();
        return;
      }
      if (outcome !== 'open') break;
      if (finishedAt === null && stepEnded(await readPod())) finishedAt = Date.now();
      if (finishedAt !== null && Date.now() - finishedAt > LOG_DRAIN_MS) {
        stream.abort();
        outcome = 'failed';
      }
    }
    const ended = finishedAt !== null || stepEnded(await readPod());
    if (outcome === 'ended' && ended) return;
    if (ended) {
      // The container is done but the stream did not finish cleanly: one plain read of the whole log.
      generation++;
      const rest = openLog(input, 'step', false, sinkFor(generation));
      const last = await Promise.race([rest.done, sleep(30_000, signal).then(() => 'failed' as const)]);
      if (last !== 'ended') rest.abort();
      return;
    }
    // Still running: the stream broke (or could not be opened yet). Open it again.
    await sleep(input.pollIntervalMs, signal);
  }
}

interface LogStream {
  /** 'ended': the server ended the response; 'failed': the request or connection failed or was aborted. */
  done: Promise<'ended' | 'failed'>;
  abort(): void;
}

function openLog(
  input: SuperviseInput,
  container: string,
  follow: boolean,
  onData: (chunk: Buffer) => void,
): LogStream {
  let controller: AbortController | null = null;
  let aborted = false;
  const done = new Promise<'ended' | 'failed'>((resolve) => {
    let ended = false;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        onData(chunk);
        callback();
      },
    });
    // Log.log pipes the response into the sink; a broken connection errors the response without ending
    // the sink, so the source is watched directly.
    sink.on('pipe', (source) => {
      source.on('end', () => {
        ended = true;
      });
      source.on('error', () => {});
      source.on('close', () => resolve(ended ? 'ended' : 'failed'));
    });
    sink.on('finish', () => resolve('ended'));
    input.logs
      .log(input.namespace, input.name, container, sink, { follow })
      .then((c) => {
        controller = c;
        if (aborted) c.abort();
      })
      .catch(() => resolve('failed'));
  });
  return {
    done,
    abort() {
      aborted = true;
      controller?.abort();
    },
  };
}

/** The clone container's own output, so the log says why the checkout failed. */
async function emitCloneLog(input: SuperviseInput): Promise<void> {
  const chunks: Buffer[] = [];
  const stream = openLog(input, 'clone', false, (chunk) => chunks.push(chunk));
  const result = await Promise.race([stream.done, sleep(10_000, input.signal).then(() => 'failed' as const)]);
  if (result !== 'ended') stream.abort();
  const text = Buffer.concat(chunks);
  if (text.length === 0) return;
  input.emit(Buffer.from('[runner] output of the checkout (clone container):\n'));
  input.emit(text);
  if (text[text.length - 1] !== 0x0a) input.emit(Buffer.from('\n'));
}

function containerStatus(pod: V1Pod, name: string, init = false): V1ContainerStatus | undefined {
  const list = init ? pod.status?.initContainerStatuses : pod.status?.containerStatuses;
  return list?.find((s) => s.name === name);
}

function stepEnded(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return (
    containerStatus(pod, 'step')?.state?.terminated !== undefined ||
    phase === 'Succeeded' ||
    phase === 'Failed'
  );
}

function startVerdict(
  pod: V1Pod,
  req: StepRunRequest,
): 'waiting' | 'started' | { verdict: Verdict; cloneFailed: boolean } {
  const clone = containerStatus(pod, 'clone', true);
  const step = containerStatus(pod, 'step');
  if (step?.state?.running || step?.state?.terminated) return 'started';

  const cloneEnd = clone?.state?.terminated;
  if (cloneEnd && cloneEnd.exitCode !== 0) {
    const why = [cloneEnd.reason, cloneEnd.message?.trim()].filter(Boolean).join(': ');
    return {
      verdict: {
        outcome: 'failure',
        exitCode: null,
        error: `checkout failed: clone container exited with ${cloneEnd.exitCode}${why ? ` (${why})` : ''}`,
      },
      cloneFailed: true,
    };
  }
  const cloneWaiting = clone?.state?.waiting;
  if (cloneWaiting?.reason && IMAGE_PULL_REASONS.has(cloneWaiting.reason)) {
    return {
      verdict: {
        outcome: 'failure',
        exitCode: null,
        error: `checkout failed: image ${clone?.image ?? ''} could not be pulled (${reasonText(cloneWaiting)})`,
      },
      cloneFailed: false,
    };
  }
  const stepWaiting = step?.state?.waiting;
  if (stepWaiting?.reason && IMAGE_PULL_REASONS.has(stepWaiting.reason)) {
    return {
      verdict: {
        outcome: 'failure',
        exitCode: null,
        error: `image ${step?.image ?? req.image ?? ''} could not be pulled (${reasonText(stepWaiting)})`,
      },
      cloneFailed: false,
    };
  }
  if (stepWaiting?.reason && START_FAILURE_REASONS.has(stepWaiting.reason)) {
    return {
      verdict: {
        outcome: 'failure',
        exitCode: null,
        error: `step container could not start (${reasonText(stepWaiting)})`,
      },
      cloneFailed: false,
    };
  }
  const phase = pod.status?.phase;
  if (phase === 'Failed' || phase === 'Succeeded') {
    const verdict = finalVerdict(pod, req);
    if (verdict) return { verdict, cloneFailed: false };
  }
  return 'waiting';
}

function finalVerdict(pod: V1Pod, req: StepRunRequest): Verdict | null {
  const status = pod.status;
  // activeDeadlineSeconds: the kubelet killed the containers; their exit codes only say "killed".
  if (status?.reason === 'DeadlineExceeded') {
    return { outcome: 'timeout', exitCode: null, error: `timed out after ${req.timeoutSeconds}s` };
  }
  const ended = containerStatus(pod, 'step')?.state?.terminated;
  if (ended) {
    if (ended.exitCode === 0) return { outcome: 'success', exitCode: 0 };
    const verdict: Verdict = { outcome: 'failure', exitCode: ended.exitCode };
    if (ended.reason === 'OOMKilled') verdict.error = 'out of memory (OOMKilled)';
    else if (ended.reason && ended.reason !== 'Error' && ended.reason !== 'Completed')
      verdict.error = reasonText(ended);
    return verdict;
  }
  if (status?.phase === 'Failed') {
    return {
      outcome: 'failure',
      exitCode: null,
      error: `pod failed${status.reason ? ` (${reasonText(status)})` : ''}`,
    };
  }
  if (status?.phase === 'Succeeded') return { outcome: 'success', exitCode: null };
  return null;
}

function pendingNote(pod: V1Pod): string | null {
  const unschedulable = pod.status?.conditions?.find(
    (c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable',
  );
  return unschedulable ? `waiting for a node: ${unschedulable.message ?? 'unschedulable'}` : null;
}

function reasonText(state: { reason?: string; message?: string }): string {
  return [state.reason, state.message?.trim()].filter(Boolean).join(': ');
}

// ---------------------------------------------------------------------------------------------------

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function statusCode(err: unknown): number | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : null;
}

/** The API server's own message (a Status object in the body) rather than the client's generic text. */
function describeError(err: unknown): string {
  const code = statusCode(err);
  const body = (err as { body?: unknown } | null)?.body;
  let message: string | undefined;
  if (typeof body === 'string') {
    try {
      message = (JSON.parse(body) as { message?: string }).message;
    } catch {
      message = body.slice(0, 300) || undefined;
    }
  } else if (body && typeof body === 'object') {
    message = (body as { message?: string }).message;
  }
  if (code !== null) return `HTTP ${code}${message ? `: ${message}` : ''}`;
  return err instanceof Error ? err.message : String(err);
}
