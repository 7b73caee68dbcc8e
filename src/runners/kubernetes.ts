import { CoreV1Api, KubeConfig, Log, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import {
  base64Values,
  buildStepPod,
  CLONE_TOKEN_KEY,
  DEFAULT_INIT_IMAGE,
  DEFAULT_RUN_AS_USER,
  DEFAULT_STEP_IMAGE,
  LABEL_MANAGED_BY,
  LABEL_PIPELINE,
  LOCAL_DEADLINE_GRACE_MS,
  labelValue,
  MAX_TIMER_MS,
  podName,
  runSecretName,
  SECRET_DELETE_ATTEMPTS,
  SECRET_DELETE_BACKOFF_MS,
  type SecretKey,
  type StepResources,
  secretKeys,
  stepLabels,
} from './kubernetes-pod.js';
import { describeError, sleep, statusCode, superviseStep } from './kubernetes-watch.js';
import type { Runner, StepRunRequest, StepRunResult, Workspace } from './types.js';

export interface KubernetesRunnerOptions {
  /** A loaded KubeConfig, or a kubeconfig file path; absent → in-cluster configuration. */
  kubeConfig: KubeConfig | string | undefined;
  namespace: string;
  /** Image of the `clone` init container; it needs `git` and `/bin/sh`. */
  initImage?: string;
  /** Image for steps that do not name one. */
  image?: string;
  resources?: StepResources;
  /** How often pod status is read while a step runs. */
  pollIntervalMs?: number;
  /** The uid and gid the clone and step containers run as (never 0); default 65532. */
  runAsUser?: number;
  log?: Logger;
}

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
