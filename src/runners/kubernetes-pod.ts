/** The pod and Secret specs of a kubernetes step: what the runner sends to the API. */
import { createHash, randomBytes } from 'node:crypto';
import type {
  V1Container,
  V1EnvVar,
  V1Pod,
  V1PodSecurityContext,
  V1ResourceRequirements,
  V1SecurityContext,
} from '@kubernetes/client-node';
import { buildStepScript } from './script.js';
import type { StepRunRequest } from './types.js';

export const DEFAULT_INIT_IMAGE = 'alpine/git:2.45.2';
export const DEFAULT_STEP_IMAGE = 'alpine:3.20';

export const LABEL_PIPELINE = 'platform.io/pipeline';
const LABEL_STEP = 'platform.io/step';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
const WORKSPACE = '/workspace';
/** A writable HOME: the step runs as a uid that has no home directory in the image. */
export const HOME = '/home/platform';
/** `nonroot` of the distroless images: a uid that no image gives special rights to. */
export const DEFAULT_RUN_AS_USER = 65532;
/** Key of the clone token in the run's Secret. */
export const CLONE_TOKEN_KEY = 'clone-token';
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;

/** Waiting reasons after which the kubelet will not start the container without a change to the pod. */
export const IMAGE_PULL_REASONS = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'ErrImageNeverPull',
]);
export const START_FAILURE_REASONS = new Set([
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
export const LOCAL_DEADLINE_GRACE_MS = 60_000;
/** Once the container has ended, how long an open log stream gets to deliver the rest before it is replaced by a plain read. */
export const LOG_DRAIN_MS = 5_000;
/** Deleting a Secret: attempts, and the pause before the next one (× the attempt number). */
export const SECRET_DELETE_ATTEMPTS = 3;
export const SECRET_DELETE_BACKOFF_MS = 500;
/** Consecutive failed status reads tolerated (API server restarts, network blips) before the step fails. */
export const MAX_READ_FAILURES = 30;
/** setTimeout fires at once beyond 2^31-1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/** Applied as both requests and limits to each container of a step pod. */
export interface StepResources {
  cpu?: string;
  memory?: string;
}

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

export function base64Values(values: Record<string, string>): Record<string, string> {
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

export function stepLabels(req: StepRunRequest): Record<string, string> {
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
  resources: StepResources | undefined;
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

function resourceRequirements(resources: StepResources | undefined): V1ResourceRequirements | null {
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
export function labelValue(value: string, fallback: string): string {
  const cleaned = value
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return cleaned || fallback;
}
