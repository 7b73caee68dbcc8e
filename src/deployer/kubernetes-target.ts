import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Deployment,
} from '@kubernetes/client-node';
import type { JsonObject } from '../store/schema.js';

/** The field manager of every object the deployer applies. */
export const FIELD_MANAGER = 'platform-deployer';

export type KubernetesOutcome =
  | { ok: true; applied: { kind: string; name: string }[] }
  | { ok: false; message: string; healthFailure: boolean };

const SUPPORTED = new Set(['Deployment', 'Service', 'ConfigMap']);

/**
 * The kubernetes target: server-side apply (field manager `platform-deployer`, conflicts forced:
 * the ops repo is the source of truth) of every rendered object into the environment's namespace,
 * then a rollout wait on each Deployment's conditions; stop = every Deployment applied again with
 * 0 replicas. Supported kinds: Deployment, Service, ConfigMap; the namespace must exist.
 */
export class KubernetesTarget {
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly ssa = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

  constructor(
    kubeConfig: KubeConfig | string | undefined,
    private readonly rolloutTimeoutMs = 120_000,
    private readonly pollMs = 500,
  ) {
    let kc: KubeConfig;
    if (kubeConfig instanceof KubeConfig) kc = kubeConfig;
    else {
      kc = new KubeConfig();
      if (kubeConfig) kc.loadFromFile(kubeConfig);
      else kc.loadFromCluster();
    }
    this.apps = kc.makeApiClient(AppsV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async apply(namespace: string, objects: JsonObject[]): Promise<KubernetesOutcome> {
    const prepared: JsonObject[] = [];
    for (const o of objects) {
      const kind = String(o.kind ?? '');
      if (!SUPPORTED.has(kind))
        return {
          ok: false,
          message: `kind ${kind || '(none)'} is not supported by the kubernetes target (Deployment, Service, ConfigMap)`,
          healthFailure: false,
        };
      const meta = (o.metadata ?? {}) as JsonObject;
      if (typeof meta.name !== 'string' || !meta.name)
        return { ok: false, message: `a ${kind} without metadata.name`, healthFailure: false };
      if (meta.namespace !== undefined && meta.namespace !== namespace)
        return {
          ok: false,
          message: `${kind} ${meta.name}: objects go into the environment's namespace ${namespace}`,
          healthFailure: false,
        };
      prepared.push({ ...o, metadata: { ...meta, namespace } });
    }
    try {
      for (const o of prepared) await this.applyOne(namespace, o);
    } catch (err) {
      return { ok: false, message: `apply failed: ${apiMessage(err)}`, healthFailure: false };
    }
    for (const o of prepared) {
      if (o.kind !== 'Deployment') continue;
      const problem = await this.waitRollout(namespace, String((o.metadata as JsonObject).name));
      if (problem) return { ok: false, message: problem, healthFailure: true };
    }
    return {
      ok: true,
      applied: prepared.map((o) => ({ kind: String(o.kind), name: String((o.metadata as JsonObject).name) })),
    };
  }

  /** Stop: every Deployment of the last applied manifests applied again with `replicas: 0`. */
  async scaleToZero(runtime: JsonObject): Promise<void> {
    const namespace = runtime.namespace as string | undefined;
    const manifests = runtime.manifests as string | undefined;
    if (!namespace || !manifests) return;
    const { parseAllDocuments } = await import('yaml');
    for (const doc of parseAllDocuments(manifests)) {
      const o = doc.toJS() as JsonObject | null;
      if (o?.kind !== 'Deployment') continue;
      const spec = (o.spec ?? {}) as JsonObject;
      await this.applyOne(namespace, {
        ...o,
        metadata: { ...(o.metadata as JsonObject), namespace },
        spec: { ...spec, replicas: 0 },
      });
    }
  }

  private async applyOne(namespace: string, o: JsonObject): Promise<void> {
    const name = String((o.metadata as JsonObject).name);
    const args = { name, namespace, body: o, fieldManager: FIELD_MANAGER, force: true };
    if (o.kind === 'Deployment') await this.apps.patchNamespacedDeployment(args, this.ssa);
    else if (o.kind === 'Service') await this.core.patchNamespacedService(args, this.ssa);
    else await this.core.patchNamespacedConfigMap(args, this.ssa);
  }

  /** Rollout done: observed generation caught up, Available=True, every replica updated and ready. */
  private async waitRollout(namespace: string, name: string): Promise<string | null> {
    const deadline = Date.now() + this.rolloutTimeoutMs;
    let last = 'no status yet';
    for (;;) {
      let d: V1Deployment;
      try {
        d = await this.apps.readNamespacedDeployment({ name, namespace });
      } catch (err) {
        last = apiMessage(err);
        d = {};
      }
      const status = d.status;
      if (status) {
        const want = d.spec?.replicas ?? 1;
        const conditions = status.conditions ?? [];
        const available = conditions.find((c) => c.type === 'Available');
        const progressing = conditions.find((c) => c.type === 'Progressing');
        // Conditions describe the generation the controller observed: an older one's verdict does not count.
        const caughtUp = (status.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0);
        if (caughtUp && progressing?.status === 'False' && progressing.reason === 'ProgressDeadlineExceeded')
          return `rollout of Deployment ${name} failed: ${progressing.message ?? 'progress deadline exceeded'}`;
        if (
          caughtUp &&
          available?.status === 'True' &&
          (status.updatedReplicas ?? 0) >= want &&
          (status.readyReplicas ?? 0) >= want &&
          (status.unavailableReplicas ?? 0) === 0
        )
          return null;
        last = `${status.updatedReplicas ?? 0}/${want} updated, ${status.readyReplicas ?? 0} ready, Available=${available?.status ?? 'unknown'}`;
      }
      if (Date.now() >= deadline)
        return `health check failed after ${Math.round(this.rolloutTimeoutMs / 1000)} s (Deployment ${name}: ${last})`;
      await new Promise((r) => setTimeout(r, this.pollMs));
    }
  }
}

function apiMessage(err: unknown): string {
  const e = err as { code?: number; body?: unknown; message?: string };
  if (e.body) {
    try {
      const b = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
      if (b && typeof b === 'object' && 'message' in b)
        return `${e.code ?? ''} ${(b as { message: string }).message}`.trim();
    } catch {
      // not JSON
    }
  }
  return e.message ?? String(err);
}
