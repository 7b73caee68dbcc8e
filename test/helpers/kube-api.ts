/**
 * A Kubernetes API server double for the kubernetes runner: node:http on 127.0.0.1 speaking the real
 * REST wire format (JSON objects, `Status` errors, chunked `text/plain` logs, JSON merge patches) for
 * the pod and secret endpoints the runner uses. It records every request and lets a test drive each
 * pod's life — the test plays the scheduler and the kubelet (phases, container states, waiting reasons,
 * log lines, exit codes; the kubelet's resolution of `secretKeyRef` variables when a container starts).
 *
 * Only what the runner needs is implemented; a real cluster is needed for full verification.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig, type V1ContainerState, type V1ContainerStatus } from '@kubernetes/client-node';

export interface KubeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  /** Parsed JSON body, when there was one. */
  body: unknown;
  /** The raw body text, as sent. */
  rawBody: string;
  contentType: string | undefined;
  authorization: string | undefined;
}

/** JSON as it travels on the wire: dates are strings, so pods are kept in this form. */
// biome-ignore lint/suspicious/noExplicitAny: pods are free-form JSON documents here; tests read them as V1Pod.
type Json = any;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
/** Go's base64.StdEncoding, which the API server decodes `data` with: padded, standard alphabet. */
const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const MAX_SECRET_BYTES = 1024 * 1024;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** One pod as the double keeps it, with the controls a test uses to play the kubelet. */
export class FakePod {
  readonly manifest: Json;
  deleted = false;
  /** Query of the DELETE request that removed it. */
  deleteQuery: Record<string, string> | null = null;
  private readonly logs = new Map<string, Buffer[]>();
  readonly followers = new Map<string, Set<http.ServerResponse>>();
  /** The environment each started container got, as the kubelet resolved it. */
  private readonly startedEnv = new Map<string, Record<string, string>>();

  constructor(
    manifest: Json,
    private readonly findSecret: (namespace: string, name: string) => FakeSecret | undefined = () =>
      undefined,
  ) {
    this.manifest = manifest;
  }

  /**
   * The environment a started container was given (plain values and `secretKeyRef`s resolved when it
   * started). Throws when the container has not been started.
   */
  env(container = 'step'): Record<string, string> {
    const env = this.startedEnv.get(container);
    if (!env) throw new Error(`container ${container} of pod ${this.name} has not started`);
    return env;
  }

  get name(): string {
    return this.manifest.metadata.name;
  }

  get namespace(): string {
    return this.manifest.metadata.namespace;
  }

  get spec(): Json {
    return this.manifest.spec;
  }

  get labels(): Record<string, string> {
    return this.manifest.metadata.labels ?? {};
  }

  /** Scheduled, the init container running. */
  initRunning(): this {
    this.scheduled();
    if (!this.startContainer('clone', true)) return this;
    this.setState('clone', { running: { startedAt: now() } }, true);
    this.setState('step', { waiting: { reason: 'PodInitializing' } });
    return this;
  }

  /**
   * Init container done, step container running: phase Running. As the kubelet, it first resolves each
   * container's `secretKeyRef` variables; a missing Secret or key leaves the container waiting with
   * `CreateContainerConfigError` and the kubelet's message instead.
   */
  startStep(): this {
    this.scheduled();
    if (!this.startedEnv.has('clone') && !this.startContainer('clone', true)) return this;
    this.setState(
      'clone',
      { terminated: { exitCode: 0, reason: 'Completed', startedAt: now(), finishedAt: now() } },
      true,
    );
    if (!this.startContainer('step', false)) return this;
    this.setState('step', { running: { startedAt: now() } });
    this.manifest.status.phase = 'Running';
    return this;
  }

  private startContainer(container: string, init: boolean): boolean {
    const list = (init ? this.manifest.spec.initContainers : this.manifest.spec.containers) as
      | Json[]
      | undefined;
    const spec = list?.find((c: Json) => c.name === container);
    if (!spec) return true;
    const env: Record<string, string> = {};
    for (const entry of (spec.env ?? []) as Json[]) {
      const ref = entry.valueFrom?.secretKeyRef;
      if (!ref) {
        env[entry.name] = entry.value ?? '';
        continue;
      }
      const secret = this.findSecret(this.namespace, ref.name);
      const message = !secret
        ? `secret "${ref.name}" not found`
        : !(ref.key in (secret.manifest.data ?? {}))
          ? `couldn't find key ${ref.key} in Secret ${this.namespace}/${ref.name}`
          : null;
      if (message !== null) {
        if (ref.optional === true) continue;
        this.setState(container, { waiting: { reason: 'CreateContainerConfigError', message } }, init);
        return false;
      }
      env[entry.name] = secret!.values()[ref.key]!;
    }
    this.startedEnv.set(container, env);
    return true;
  }

  /** Appends to a container's log, delivered at once to open `follow` streams. */
  log(text: string, container = 'step'): this {
    const chunk = Buffer.from(text);
    const list = this.logs.get(container) ?? [];
    list.push(chunk);
    this.logs.set(container, list);
    for (const res of this.followers.get(container) ?? []) res.write(chunk);
    return this;
  }

  logText(container = 'step'): Buffer {
    return Buffer.concat(this.logs.get(container) ?? []);
  }

  /** The step container exits: phase Succeeded (0) or Failed. Open log streams end. */
  exit(exitCode: number, reason = exitCode === 0 ? 'Completed' : 'Error'): this {
    this.setState('step', { terminated: { exitCode, reason, startedAt: now(), finishedAt: now() } });
    this.manifest.status.phase = exitCode === 0 ? 'Succeeded' : 'Failed';
    this.endFollowers('step');
    return this;
  }

  /** The clone init container fails: the step container never starts, phase Failed. */
  failInit(exitCode: number, output = ''): this {
    this.scheduled();
    if (output) this.log(output, 'clone');
    this.setState(
      'clone',
      { terminated: { exitCode, reason: 'Error', startedAt: now(), finishedAt: now() } },
      true,
    );
    this.setState('step', { waiting: { reason: 'PodInitializing' } });
    this.manifest.status.phase = 'Failed';
    this.endFollowers('clone');
    return this;
  }

  /** A container stuck waiting, e.g. ErrImagePull / ImagePullBackOff with the kubelet's message. */
  waiting(container: string, reason: string, message: string): this {
    this.scheduled();
    const init = container === 'clone';
    if (!init) this.setState('clone', { terminated: { exitCode: 0, reason: 'Completed' } }, true);
    this.setState(container, { waiting: { reason, message } }, init);
    return this;
  }

  /** activeDeadlineSeconds passed: the kubelet kills the pod; phase Failed, reason DeadlineExceeded. */
  deadlineExceeded(): this {
    this.setState('step', {
      terminated: { exitCode: 137, reason: 'Error', startedAt: now(), finishedAt: now() },
    });
    this.manifest.status.phase = 'Failed';
    this.manifest.status.reason = 'DeadlineExceeded';
    this.manifest.status.message = 'Pod was active on the node longer than the specified deadline';
    this.endFollowers('step');
    return this;
  }

  unschedulable(message: string): this {
    this.manifest.status.conditions = [
      { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message, lastTransitionTime: now() },
    ];
    return this;
  }

  /** Cuts open log connections mid-stream, as a restarting API server or proxy would. */
  dropLogStreams(container = 'step'): this {
    for (const res of this.followers.get(container) ?? []) res.socket?.destroy();
    this.followers.get(container)?.clear();
    return this;
  }

  followerCount(container = 'step'): number {
    return this.followers.get(container)?.size ?? 0;
  }

  containerState(container: string): V1ContainerState | undefined {
    return this.statusOf(container, container === 'clone')?.state as V1ContainerState | undefined;
  }

  endFollowers(container?: string): void {
    for (const [name, set] of this.followers) {
      if (container && name !== container) continue;
      for (const res of set) res.end();
      set.clear();
    }
  }

  private scheduled(): void {
    this.manifest.status.conditions = [{ type: 'PodScheduled', status: 'True', lastTransitionTime: now() }];
    this.manifest.spec.nodeName ??= 'node-1';
    this.manifest.status.startTime ??= now();
  }

  private statusOf(container: string, init: boolean): Json {
    const key = init ? 'initContainerStatuses' : 'containerStatuses';
    return (this.manifest.status[key] as Json[] | undefined)?.find((s: Json) => s.name === container);
  }

  private setState(container: string, state: Json, init = false): void {
    const key = init ? 'initContainerStatuses' : 'containerStatuses';
    const specList = (init ? this.manifest.spec.initContainers : this.manifest.spec.containers) as
      | Json[]
      | undefined;
    const spec = specList?.find((c: Json) => c.name === container);
    if (!spec) return;
    this.manifest.status[key] ??= [];
    const statuses: Json[] = this.manifest.status[key];
    let status = statuses.find((s: Json) => s.name === container);
    if (!status) {
      status = {
        name: container,
        image: spec.image,
        imageID: '',
        ready: false,
        restartCount: 0,
      } as V1ContainerStatus;
      statuses.push(status);
    }
    status.state = state;
    status.ready = 'running' in state;
  }
}

/** One Secret as the double keeps it: `data` base64-encoded, as the API server returns it. */
export class FakeSecret {
  deleted = false;
  /** Query of the DELETE request that removed it. */
  deleteQuery: Record<string, string> | null = null;

  constructor(readonly manifest: Json) {}

  get name(): string {
    return this.manifest.metadata.name;
  }

  get namespace(): string {
    return this.manifest.metadata.namespace;
  }

  get labels(): Record<string, string> {
    return this.manifest.metadata.labels ?? {};
  }

  /** `data`, decoded. */
  values(): Record<string, string> {
    return Object.fromEntries(
      Object.entries((this.manifest.data ?? {}) as Record<string, string>).map(([k, v]) => [
        k,
        Buffer.from(v, 'base64').toString('utf8'),
      ]),
    );
  }
}

export class KubeApiDouble {
  readonly requests: KubeRequest[] = [];
  /** Every pod ever created or added, deleted ones included (see FakePod.deleted). */
  readonly pods: FakePod[] = [];
  /** Every Secret ever created or added, deleted ones included (see FakeSecret.deleted). */
  readonly secrets: FakeSecret[] = [];
  private readonly newPods: FakePod[] = [];
  private readonly podWaiters: Array<(pod: FakePod) => void> = [];
  private readonly requestListeners = new Set<() => void>();
  private readonly rejections: Array<{ method: string; path: RegExp; code: number; message: string }> = [];
  /**
   * Objects written by server-side apply (the deployer), by `<plural>/<namespace>/<name>`: the
   * last applied body with metadata.generation bumped on each apply. Deployments get no status until
   * a test sets one (`setDeploymentStatus`), as when no controller has acted yet.
   */
  readonly applied = new Map<string, Json>();

  private constructor(
    private readonly server: http.Server,
    readonly url: string,
  ) {}

  static async start(): Promise<KubeApiDouble> {
    let double: KubeApiDouble | undefined;
    const server = http.createServer((req, res) => {
      double!.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) sendStatus(res, 500, 'InternalError', String(err));
        else res.destroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    double = new KubeApiDouble(server, `http://127.0.0.1:${port}`);
    return double;
  }

  /** A KubeConfig pointing at this double, with the bearer token `test`. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'double', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'runner', token: 'test' }],
      contexts: [{ name: 'double', cluster: 'double', user: 'runner', namespace: 'default' }],
      currentContext: 'double',
    });
    return kc;
  }

  /** The next created pod not handed out yet (in creation order). */
  nextPod(timeoutMs = 10_000): Promise<FakePod> {
    const ready = this.newPods.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no pod was created')), timeoutMs);
      this.podWaiters.push((pod) => {
        clearTimeout(timer);
        resolve(pod);
      });
    });
  }

  /** Resolves with the first recorded request (past or future) matching the predicate. */
  waitForRequest(
    match: (r: KubeRequest) => boolean,
    timeoutMs = 10_000,
    what = 'request',
  ): Promise<KubeRequest> {
    const found = this.requests.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const listener = () => {
        const hit = this.requests.find(match);
        if (!hit) return;
        cleanup();
        resolve(hit);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.requestListeners.delete(listener);
      };
      this.requestListeners.add(listener);
    });
  }

  /** Answers the next request matching method and path with an error Status (e.g. 403 Forbidden). */
  rejectNext(method: string, path: RegExp, code: number, message: string): void {
    this.rejections.push({ method, path, code, message });
  }

  /** A pod that exists before the runner starts (left over from a crash). */
  addPod(namespace: string, name: string, labels: Record<string, string>): FakePod {
    const pod = new FakePod({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace,
        labels,
        uid: randomUUID(),
        creationTimestamp: now(),
        resourceVersion: '1',
      },
      spec: { containers: [{ name: 'step', image: 'alpine:3.20' }], restartPolicy: 'Never' },
      status: { phase: 'Running' },
    });
    this.pods.push(pod);
    return pod;
  }

  livePod(namespace: string, name: string): FakePod | undefined {
    return this.pods.find((p) => !p.deleted && p.namespace === namespace && p.name === name);
  }

  /** A Secret that exists before the runner starts (left over from a crash). */
  addSecret(
    namespace: string,
    name: string,
    labels: Record<string, string>,
    values: Record<string, string> = {},
  ): FakeSecret {
    const secret = new FakeSecret({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name,
        namespace,
        labels,
        uid: randomUUID(),
        creationTimestamp: now(),
        resourceVersion: '1',
      },
      type: 'Opaque',
      data: Object.fromEntries(
        Object.entries(values).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
      ),
    });
    this.secrets.push(secret);
    return secret;
  }

  liveSecret(namespace: string, name: string): FakeSecret | undefined {
    return this.secrets.find((s) => !s.deleted && s.namespace === namespace && s.name === name);
  }

  /** Plays the Deployment controller: the status the next GETs of that Deployment return. */
  setDeploymentStatus(namespace: string, name: string, status: Json): void {
    const obj = this.applied.get(`deployments/${namespace}/${name}`);
    if (!obj) throw new Error(`deployment ${namespace}/${name} was never applied`);
    obj.status = status;
  }

  /** Server-side apply (PATCH application/apply-patch+yaml) and GET of deployments, services, configmaps. */
  private handleApplied(record: KubeRequest, res: http.ServerResponse): boolean {
    const m =
      /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/(deployments)\/([^/]+)$/.exec(record.path) ??
      /^\/api\/v1\/namespaces\/([^/]+)\/(services|configmaps)\/([^/]+)$/.exec(record.path);
    if (!m) return false;
    const [, namespace, plural, name] = m as unknown as [string, string, string, string];
    const key = `${plural}/${namespace}/${name}`;
    if (record.method === 'GET') {
      const obj = this.applied.get(key);
      if (!obj) sendStatus(res, 404, 'NotFound', `${plural} "${name}" not found`);
      else sendJson(res, 200, obj);
      return true;
    }
    if (record.method !== 'PATCH') return false;
    if (record.contentType !== 'application/apply-patch+yaml') {
      sendStatus(res, 415, 'UnsupportedMediaType', `unsupported patch type ${record.contentType}`);
      return true;
    }
    if (!record.query.fieldManager) {
      sendStatus(res, 422, 'Invalid', 'fieldManager is required for apply patch');
      return true;
    }
    const body = record.body as Json;
    if (
      !body ||
      body.metadata?.name !== name ||
      (body.metadata.namespace && body.metadata.namespace !== namespace)
    ) {
      sendStatus(res, 400, 'BadRequest', 'the name or namespace of the object does not match the URL');
      return true;
    }
    const prev = this.applied.get(key);
    const obj = {
      ...structuredClone(body),
      metadata: {
        ...body.metadata,
        namespace,
        uid: prev?.metadata.uid ?? randomUUID(),
        generation: (prev?.metadata.generation ?? 0) + 1,
        resourceVersion: String(Number(prev?.metadata.resourceVersion ?? 0) + 1),
        creationTimestamp: prev?.metadata.creationTimestamp ?? now(),
      },
      ...(prev?.status ? { status: prev.status } : {}),
    };
    this.applied.set(key, obj);
    sendJson(res, prev ? 200 : 201, obj);
    return true;
  }

  async close(): Promise<void> {
    for (const pod of this.pods) pod.endFollowers();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const raw = await readBody(req);
    let body: unknown;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        body = raw.toString('utf8');
      }
    }
    const record: KubeRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body,
      rawBody: raw.toString('utf8'),
      contentType: req.headers['content-type'],
      authorization: req.headers.authorization,
    };
    this.requests.push(record);
    for (const listener of this.requestListeners) listener();

    if (req.headers.authorization !== 'Bearer test') {
      sendStatus(res, 401, 'Unauthorized', 'Unauthorized');
      return;
    }
    const rejection = this.rejections.findIndex(
      (r) => r.method === record.method && r.path.test(record.path),
    );
    if (rejection !== -1) {
      const [r] = this.rejections.splice(rejection, 1);
      sendStatus(res, r!.code, reasonFor(r!.code), r!.message);
      return;
    }
    if (this.handleApplied(record, res)) return;

    const collection = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(url.pathname);
    const item = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(url.pathname);
    const logPath = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/log$/.exec(url.pathname);

    if (collection && record.method === 'POST') {
      this.createPod(collection[1]!, body, res);
      return;
    }
    if (collection && record.method === 'GET') {
      this.listPods(collection[1]!, record.query, res);
      return;
    }
    if (item) {
      const pod = this.livePod(item[1]!, item[2]!);
      if (!pod) {
        sendStatus(res, 404, 'NotFound', `pods "${item[2]}" not found`);
        return;
      }
      if (record.method === 'GET') {
        sendJson(res, 200, pod.manifest);
        return;
      }
      if (record.method === 'DELETE') {
        pod.deleted = true;
        pod.deleteQuery = record.query;
        pod.manifest.metadata.deletionTimestamp = now();
        pod.endFollowers();
        sendJson(res, 200, pod.manifest);
        return;
      }
    }
    if (logPath && record.method === 'GET') {
      this.podLog(logPath[1]!, logPath[2]!, record.query, res);
      return;
    }
    const secrets = /^\/api\/v1\/namespaces\/([^/]+)\/secrets$/.exec(url.pathname);
    const secretItem = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\/([^/]+)$/.exec(url.pathname);
    if (secrets && record.method === 'POST') {
      this.createSecret(secrets[1]!, body, res);
      return;
    }
    if (secrets && record.method === 'GET') {
      const selector = parseLabelSelector(record.query.labelSelector ?? '');
      const items = this.secrets
        .filter((x) => !x.deleted && x.namespace === secrets[1] && selector(x.labels))
        .map((x) => x.manifest);
      sendJson(res, 200, { apiVersion: 'v1', kind: 'SecretList', metadata: { resourceVersion: '1' }, items });
      return;
    }
    if (secretItem) {
      const secret = this.liveSecret(secretItem[1]!, secretItem[2]!);
      if (!secret) {
        sendStatus(res, 404, 'NotFound', `secrets "${secretItem[2]}" not found`);
        return;
      }
      if (record.method === 'GET') {
        sendJson(res, 200, secret.manifest);
        return;
      }
      if (record.method === 'PATCH') {
        this.patchSecret(secret, record, res);
        return;
      }
      if (record.method === 'DELETE') {
        secret.deleted = true;
        secret.deleteQuery = record.query;
        // Secrets have no graceful deletion: the API server answers with a Status, not the object.
        sendJson(res, 200, {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Success',
          details: { name: secret.name, kind: 'secrets', uid: secret.manifest.metadata.uid },
        });
        return;
      }
    }
    sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource');
  }

  private createPod(namespace: string, body: unknown, res: http.ServerResponse): void {
    const manifest = structuredClone(body) as Json;
    const name: unknown = manifest?.metadata?.name;
    if (manifest?.kind !== 'Pod' || manifest?.apiVersion !== 'v1') {
      sendStatus(res, 400, 'BadRequest', 'the object is not a v1 Pod');
      return;
    }
    if (typeof name !== 'string' || name.length > 63 || !DNS_LABEL.test(name)) {
      sendStatus(res, 422, 'Invalid', `Pod "${String(name)}" is invalid: metadata.name: Invalid value`);
      return;
    }
    if (manifest.metadata.namespace && manifest.metadata.namespace !== namespace) {
      sendStatus(
        res,
        400,
        'BadRequest',
        'the namespace of the provided object does not match the namespace sent on the request',
      );
      return;
    }
    for (const [key, value] of Object.entries((manifest.metadata.labels ?? {}) as Record<string, unknown>)) {
      if (typeof value !== 'string' || value.length > 63 || !LABEL_VALUE.test(value)) {
        sendStatus(
          res,
          422,
          'Invalid',
          `Pod "${name}" is invalid: metadata.labels: Invalid value: "${String(value)}" (${key})`,
        );
        return;
      }
    }
    if (this.livePod(namespace, name)) {
      sendStatus(res, 409, 'AlreadyExists', `pods "${name}" already exists`);
      return;
    }
    manifest.metadata.namespace = namespace;
    manifest.metadata.uid = randomUUID();
    manifest.metadata.creationTimestamp = now();
    manifest.metadata.resourceVersion = '1';
    manifest.status = { phase: 'Pending', qosClass: 'Burstable' };
    const pod = new FakePod(manifest, (ns, secretName) => this.liveSecret(ns, secretName));
    this.pods.push(pod);
    const waiter = this.podWaiters.shift();
    if (waiter) waiter(pod);
    else this.newPods.push(pod);
    sendJson(res, 201, manifest);
  }

  private createSecret(namespace: string, body: unknown, res: http.ServerResponse): void {
    const manifest = structuredClone(body) as Json;
    const name: unknown = manifest?.metadata?.name;
    if (manifest?.kind !== 'Secret' || manifest?.apiVersion !== 'v1') {
      sendStatus(res, 400, 'BadRequest', 'the object is not a v1 Secret');
      return;
    }
    if (typeof name !== 'string' || name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
      sendStatus(res, 422, 'Invalid', `Secret "${String(name)}" is invalid: metadata.name: Invalid value`);
      return;
    }
    if (manifest.metadata.namespace && manifest.metadata.namespace !== namespace) {
      sendStatus(
        res,
        400,
        'BadRequest',
        'the namespace of the provided object does not match the namespace sent on the request',
      );
      return;
    }
    const invalid = validateSecret(manifest);
    if (invalid) {
      sendStatus(res, 422, 'Invalid', `Secret "${name}" is invalid: ${invalid}`);
      return;
    }
    if (this.liveSecret(namespace, name)) {
      sendStatus(res, 409, 'AlreadyExists', `secrets "${name}" already exists`);
      return;
    }
    normaliseSecret(manifest);
    manifest.metadata.namespace = namespace;
    manifest.metadata.uid = randomUUID();
    manifest.metadata.creationTimestamp = now();
    manifest.metadata.resourceVersion = '1';
    manifest.type ??= 'Opaque';
    this.secrets.push(new FakeSecret(manifest));
    sendJson(res, 201, manifest);
  }

  /** JSON merge patch (RFC 7386), as `kubectl patch --type merge`; strategic merge is the same for a Secret's maps. */
  private patchSecret(secret: FakeSecret, record: KubeRequest, res: http.ServerResponse): void {
    const type = (record.contentType ?? '').split(';')[0]!.trim();
    if (type !== 'application/merge-patch+json' && type !== 'application/strategic-merge-patch+json') {
      sendStatus(
        res,
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (double: ${type || 'none'} not implemented)`,
      );
      return;
    }
    if (typeof record.body !== 'object' || record.body === null || Array.isArray(record.body)) {
      sendStatus(res, 400, 'BadRequest', 'invalid JSON merge patch');
      return;
    }
    const patched = mergePatch(structuredClone(secret.manifest), record.body) as Json;
    const invalid =
      patched?.metadata?.name !== secret.name || patched?.metadata?.namespace !== secret.namespace
        ? 'metadata.name: Invalid value: the name and namespace cannot be changed'
        : validateSecret(patched);
    if (invalid) {
      sendStatus(res, 422, 'Invalid', `Secret "${secret.name}" is invalid: ${invalid}`);
      return;
    }
    normaliseSecret(patched);
    patched.metadata.resourceVersion = String(Number(secret.manifest.metadata.resourceVersion) + 1);
    for (const key of Object.keys(secret.manifest)) delete secret.manifest[key];
    Object.assign(secret.manifest, patched);
    sendJson(res, 200, secret.manifest);
  }

  private listPods(namespace: string, query: Record<string, string>, res: http.ServerResponse): void {
    const selector = parseLabelSelector(query.labelSelector ?? '');
    const items = this.pods
      .filter((p) => !p.deleted && p.namespace === namespace && selector(p.labels))
      .map((p) => p.manifest);
    sendJson(res, 200, { apiVersion: 'v1', kind: 'PodList', metadata: { resourceVersion: '1' }, items });
  }

  private podLog(
    namespace: string,
    name: string,
    query: Record<string, string>,
    res: http.ServerResponse,
  ): void {
    const pod = this.livePod(namespace, name);
    if (!pod) {
      sendStatus(res, 404, 'NotFound', `pods "${name}" not found`);
      return;
    }
    const names = [...(pod.spec.initContainers ?? []), ...(pod.spec.containers ?? [])].map(
      (c: Json) => c.name,
    );
    const container = query.container ?? (names.length === 1 ? names[0] : undefined);
    if (!container) {
      sendStatus(
        res,
        400,
        'BadRequest',
        `a container name must be specified for pod ${name}, choose one of: [${names.join(' ')}]`,
      );
      return;
    }
    if (!names.includes(container)) {
      sendStatus(res, 400, 'BadRequest', `container ${container} is not valid for pod ${name}`);
      return;
    }
    const state = pod.containerState(container);
    if (!state || state.waiting) {
      const reason = state?.waiting?.reason ?? 'ContainerCreating';
      sendStatus(
        res,
        400,
        'BadRequest',
        `container "${container}" in pod "${name}" is waiting to start: ${reason}`,
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
    const existing = pod.logText(container);
    if (existing.length > 0) res.write(existing);
    if (query.follow === 'true' && state.running) {
      let set = pod.followers.get(container);
      if (!set) {
        set = new Set();
        pod.followers.set(container, set);
      }
      set.add(res);
      res.on('close', () => set.delete(res));
      return;
    }
    res.end();
  }
}

/** `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k` — comma-separated, all must hold. */
export function parseLabelSelector(selector: string): (labels: Record<string, string>) => boolean {
  const terms: Array<(labels: Record<string, string>) => boolean> = [];
  let depth = 0;
  let current = '';
  const parts: string[] = [];
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  if (current.trim()) parts.push(current);
  for (const part of parts.map((p) => p.trim()).filter(Boolean)) {
    const set = /^(\S+)\s+(in|notin)\s+\((.*)\)$/.exec(part);
    if (set) {
      const [, key, op, list] = set;
      const values = list!.split(',').map((v) => v.trim());
      terms.push((l) =>
        op === 'in' ? key! in l && values.includes(l[key!]!) : !(key! in l) || !values.includes(l[key!]!),
      );
      continue;
    }
    const cmp = /^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part);
    if (cmp) {
      const [, key, op, value] = cmp;
      terms.push((l) => (op === '!=' ? l[key!] !== value : l[key!] === value));
      continue;
    }
    if (part.startsWith('!')) terms.push((l) => !(part.slice(1) in l));
    else terms.push((l) => part in l);
  }
  return (labels) => terms.every((t) => t(labels));
}

/** What the API server's validation of a Secret would refuse (null when valid). */
function validateSecret(manifest: Json): string | null {
  for (const [key, value] of Object.entries((manifest.metadata?.labels ?? {}) as Record<string, unknown>)) {
    if (typeof value !== 'string' || value.length > 63 || !LABEL_VALUE.test(value)) {
      return `metadata.labels: Invalid value: "${String(value)}" (${key})`;
    }
  }
  let size = 0;
  for (const field of ['data', 'stringData'] as const) {
    const map = manifest[field];
    if (map === undefined || map === null) continue;
    if (typeof map !== 'object' || Array.isArray(map)) return `${field}: Invalid value: not a map`;
    for (const [key, value] of Object.entries(map as Record<string, unknown>)) {
      if (key.length > 253 || !SECRET_KEY.test(key)) {
        return `${field}[${key}]: Invalid value: "${key}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'`;
      }
      if (typeof value !== 'string') return `${field}[${key}]: Invalid value: not a string`;
      if (field === 'data' && !STD_BASE64.test(value)) {
        return `data[${key}]: Invalid value: illegal base64 data`;
      }
      size += field === 'data' ? Buffer.from(value, 'base64').length : Buffer.byteLength(value);
    }
  }
  if (size > MAX_SECRET_BYTES) return `data: Too long: must have at most ${MAX_SECRET_BYTES} bytes`;
  return null;
}

/** As the API server stores a Secret: `stringData` folded into `data`, no empty map kept. */
function normaliseSecret(manifest: Json): void {
  const data: Record<string, string> = { ...(manifest.data ?? {}) };
  for (const [key, value] of Object.entries((manifest.stringData ?? {}) as Record<string, string>)) {
    data[key] = Buffer.from(value, 'utf8').toString('base64');
  }
  delete manifest.stringData;
  if (Object.keys(data).length > 0) manifest.data = data;
  else delete manifest.data;
}

/** RFC 7386: objects merge recursively, `null` removes a member, anything else replaces. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> =
    typeof target === 'object' && target !== null && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res: http.ServerResponse, code: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendStatus(res: http.ServerResponse, code: number, reason: string, message: string): void {
  sendJson(res, code, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  });
}

function reasonFor(code: number): string {
  const reasons: Record<number, string> = {
    400: 'BadRequest',
    401: 'Unauthorized',
    415: 'UnsupportedMediaType',
    403: 'Forbidden',
    404: 'NotFound',
    409: 'AlreadyExists',
    422: 'Invalid',
    500: 'InternalError',
    503: 'ServiceUnavailable',
  };
  return reasons[code] ?? 'Unknown';
}
