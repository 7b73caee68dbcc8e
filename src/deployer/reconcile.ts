import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { EventBus } from '../core/events.js';
import type { Db } from '../store/db.js';
import { emitDeploymentChanged } from './events.js';
import {
  type Applied,
  type HistoryEntry,
  type HistoryInput,
  insertHistory,
  previousSuccess,
  refsOf,
} from './history.js';
import type { KubernetesTarget } from './kubernetes-target.js';
import { type LocalProcessSpec, localProcessOf } from './local-process.js';
import type { LocalTarget } from './local-target.js';
import { DeployFailure, type ManifestDeps, parseStream, type Refs, renderDeployment } from './manifests.js';
import { beginReconcile, type DeploymentRow, finishReconcile } from './transitions.js';

export interface ReconcilerDeps extends ManifestDeps {
  db: Db;
  log: Logger;
  events: EventBus;
  instanceId: string;
  /** The host other instances reach this instance's local releases at (PLATFORM_INSTANCE_ADDRESS). */
  instanceAddress: string;
  local: LocalTarget;
  kubernetes: KubernetesTarget | null;
  leaseSeconds: number;
}

/**
 * The reconciler: takes deployments whose desired state differs from what was last observed (a new
 * generation, a rollback or stop request, or a local process that no instance runs any more), one
 * at a time per deployment — a lease on the row, taken with FOR UPDATE SKIP LOCKED, so instances never
 * work on the same row — and brings the target in line: sync → render → apply → health → status,
 * history row, `deployment.changed`.
 */
export class Reconciler {
  private readonly inProgress = new Map<string, Promise<void>>();
  private stopping = false;

  constructor(private readonly d: ReconcilerDeps) {}

  /** One pass: renews this instance's leases, claims work, starts it (not awaited). */
  async pass(): Promise<void> {
    if (this.stopping) return;
    const { db, instanceId, leaseSeconds } = this.d;
    // Local processes are bound to the instance that runs them: it keeps their rows leased.
    await sql`update deployments set lease_expires_at = now() + make_interval(secs => ${leaseSeconds})
      where lease_holder = ${instanceId}`.execute(db);
    const busy = [...this.inProgress.keys()];
    const claimed = await sql<DeploymentRow>`
      with picked as (
        select id from deployments
        where (lease_holder is null or lease_expires_at < now() or lease_holder = ${instanceId})
          and (generation <> observed_generation
            or desired_status = 'rollback'
            or (desired_status = 'stopped' and current_status <> 'stopped')
            or (desired_status = 'active' and current_status in ('healthy', 'degraded', 'syncing')
                and runtime->>'target' = 'local'
                and lease_holder is distinct from ${instanceId})
            or (current_status = 'syncing' and lease_holder is distinct from ${instanceId}))
          ${busy.length > 0 ? sql`and id not in (${sql.join(busy)})` : sql``}
        order by updated_at
        limit 20
        for update skip locked
      )
      update deployments set lease_holder = ${instanceId},
        lease_expires_at = now() + make_interval(secs => ${leaseSeconds})
      from picked where deployments.id = picked.id
      returning deployments.*`.execute(db);
    for (const row of claimed.rows) {
      if (this.inProgress.has(row.id)) continue;
      const work = this.reconcile(row)
        .catch((err: unknown) => this.d.log.error({ err, deploymentId: row.id }, 'reconcile failed'))
        .finally(() => this.inProgress.delete(row.id));
      this.inProgress.set(row.id, work);
    }
  }

  /** Waits for reconciles in progress (tests, shutdown). */
  async settle(): Promise<void> {
    while (this.inProgress.size > 0) await Promise.all([...this.inProgress.values()]);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.settle();
  }

  private async reconcile(row: DeploymentRow): Promise<void> {
    await this.d.local.cleanLeftovers(row.id);
    if (row.desired_status === 'stopped') return this.stopDeployment(row);
    if (row.desired_status === 'rollback') return this.rollback(row);
    const restart = row.generation === row.observed_generation && row.current_status !== 'failed';
    if (restart && row.runtime.target === 'local' && this.d.local.isRunning(row.id)) {
      // Already serving here (this instance took the row back after a lease hiccup).
      return this.release(row, true);
    }
    return this.deploy(row, restart);
  }

  private actor(row: DeploymentRow): string | null {
    // Null: the system asked (preview teardown, TTL).
    return row.requested_by;
  }

  private async deploy(row: DeploymentRow, restart: boolean): Promise<void> {
    const started = Date.now();
    const begun = await this.begin(row, restart ? 'restarting from the database state' : 'deploying');
    if (!begun) return;
    const refs: Refs = row;
    let applied: Applied;
    try {
      applied =
        restart && typeof row.runtime.manifests === 'string'
          ? await this.applyManifests(
              begun,
              refs,
              row.runtime.manifests,
              (row.runtime.ops_sha as string) ?? null,
            )
          : await this.renderAndApply(begun, refs);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const health = err instanceof DeployFailure && err.healthFailure;
      await this.failed(begun, message, health, started);
      return;
    }
    await this.finish(
      begun,
      'healthy',
      {
        observed_generation: begun.generation,
        status_message: restart ? 'restarted from the database state' : null,
        current_ops_sha: applied.opsSha,
        runtime: JSON.stringify(applied.runtime),
      },
      {
        action: 'deploy',
        result: 'success',
        refs,
        applied,
        actor: restart ? null : this.actor(row),
        message: restart ? 'restarted from the database state after a platform restart' : 'deployed',
        started,
      },
    );
  }

  /** A new version failed: automatic rollback (when on and something succeeded before), else failed. */
  private async failed(row: DeploymentRow, message: string, health: boolean, started: number): Promise<void> {
    await this.history(row, {
      action: 'deploy',
      result: 'failure',
      refs: row,
      applied: null,
      actor: this.actor(row),
      message,
      started,
    });
    const previous = row.auto_rollback ? await previousSuccess(this.d.db, row, null) : null;
    if (!previous) {
      await this.finish(
        row,
        'failed',
        { observed_generation: row.generation, status_message: message },
        null,
      );
      return;
    }
    const restored = await this.restore(row, previous, started);
    const text = `rolled_back: ${health ? message.replace(/ \(last: .*\)$/, '') : message}`;
    if (restored) {
      await this.finish(
        row,
        'healthy',
        {
          ...refsOf(previous),
          generation: row.generation + 1,
          observed_generation: row.generation + 1,
          status_message: text,
          current_ops_sha: restored.opsSha,
          runtime: JSON.stringify(restored.runtime),
        },
        {
          action: 'rollback',
          result: 'success',
          refs: refsOf(previous),
          applied: restored,
          actor: null,
          message: text,
          started,
        },
      );
    } else {
      await this.finish(
        row,
        'failed',
        { observed_generation: row.generation, status_message: `${message}; automatic rollback failed` },
        null,
      );
    }
  }

  /** Brings back a previous history entry's version; null when that failed too. */
  private async restore(row: DeploymentRow, entry: HistoryEntry, _started: number): Promise<Applied | null> {
    // Local target: a version that never got healthy never received traffic; the old one still serves.
    if (
      row.runtime.target === 'local' &&
      this.d.local.isRunning(row.id) &&
      row.runtime.history_id === entry.id
    ) {
      return { manifests: entry.manifests ?? '', opsSha: entry.ops_sha, runtime: row.runtime };
    }
    try {
      return await this.applyManifests(row, refsOf(entry), entry.manifests ?? '', entry.ops_sha, entry.id);
    } catch (err) {
      this.d.log.warn({ err, deploymentId: row.id }, 'automatic rollback failed');
      return null;
    }
  }

  private async rollback(row: DeploymentRow): Promise<void> {
    const started = Date.now();
    const begun = await this.begin(row, 'rolling back');
    if (!begun) return;
    const target = await previousSuccess(this.d.db, begun, begun.rollback_to);
    if (!target) {
      await this.history(begun, {
        action: 'rollback',
        result: 'failure',
        refs: begun,
        applied: null,
        actor: this.actor(begun),
        message: 'no earlier successful version to roll back to',
        started,
      });
      await this.finish(
        begun,
        this.d.local.isRunning(begun.id) || begun.runtime.target === 'kubernetes' ? 'healthy' : 'failed',
        {
          desired_status: 'active',
          rollback_to: null,
          observed_generation: begun.generation,
          status_message: 'rollback failed: no earlier successful version',
        },
        null,
      );
      return;
    }
    let applied: Applied;
    try {
      applied = await this.applyManifests(
        begun,
        refsOf(target),
        target.manifests ?? '',
        target.ops_sha,
        target.id,
      );
    } catch (err) {
      const message = `rollback failed: ${(err as Error).message}`;
      await this.history(begun, {
        action: 'rollback',
        result: 'failure',
        refs: refsOf(target),
        applied: null,
        actor: this.actor(begun),
        message,
        started,
      });
      await this.finish(
        begun,
        this.d.local.isRunning(begun.id) ? 'healthy' : 'failed',
        {
          desired_status: 'active',
          rollback_to: null,
          observed_generation: begun.generation,
          status_message: message,
        },
        null,
      );
      return;
    }
    const message = `rolled back to ${target.commit_sha?.slice(0, 12) ?? target.image_ref ?? target.id}`;
    await this.finish(
      begun,
      'healthy',
      {
        ...refsOf(target),
        desired_status: 'active',
        rollback_to: null,
        generation: begun.generation + 1,
        observed_generation: begun.generation + 1,
        status_message: message,
        current_ops_sha: applied.opsSha,
        runtime: JSON.stringify(applied.runtime),
      },
      {
        action: 'rollback',
        result: 'success',
        refs: refsOf(target),
        applied,
        actor: this.actor(begun),
        message,
        started,
      },
    );
  }

  private async stopDeployment(row: DeploymentRow): Promise<void> {
    const started = Date.now();
    try {
      if (row.runtime.target === 'kubernetes' && this.d.kubernetes)
        await this.d.kubernetes.scaleToZero(row.runtime);
      await this.d.local.stop(row.id);
    } catch (err) {
      await this.history(row, {
        action: 'stop',
        result: 'failure',
        refs: row,
        applied: null,
        actor: this.actor(row),
        message: (err as Error).message,
        started,
      });
      await this.release(row, false);
      return;
    }
    await this.finish(
      row,
      'stopped',
      {
        observed_generation: row.generation,
        status_message: 'stopped',
        runtime: JSON.stringify({ ...row.runtime, stopped: true }),
      },
      {
        action: 'stop',
        result: 'success',
        refs: row,
        applied: null,
        actor: this.actor(row),
        message: 'stopped',
        started,
      },
    );
  }

  private async begin(row: DeploymentRow, message: string): Promise<DeploymentRow | null> {
    const begun = await beginReconcile(this.d.db, row.id, message);
    if (!begun && row.current_status !== 'syncing') {
      await this.release(row, false);
      return null;
    }
    const current = begun ?? row;
    this.emit(current);
    return current;
  }

  /** Renders the deployment's manifests (sync → read → values → render) and applies them. */
  private async renderAndApply(row: DeploymentRow, refs: Refs): Promise<Applied> {
    const rendered = await renderDeployment(this.d, row, refs);
    return this.applyManifests(row, refs, rendered.manifests, rendered.opsSha);
  }

  /** Applies rendered manifests (a YAML stream) to the target they are for and waits for health. */
  private async applyManifests(
    row: DeploymentRow,
    refs: Refs,
    manifests: string,
    opsSha: string | null,
    historyId?: string,
  ): Promise<Applied> {
    const objects = parseStream(manifests);
    const project = await this.d.project(row.project_id);
    const local = objects.filter((o) => o.kind === 'LocalProcess');
    if (local.length > 0) {
      if (local.length !== objects.length)
        throw new DeployFailure('LocalProcess manifests cannot be mixed with Kubernetes objects', false);
      let spec: LocalProcessSpec;
      try {
        spec = localProcessOf(objects);
      } catch (err) {
        throw new DeployFailure((err as Error).message, false);
      }
      const artifact = refs.artifact_id ? await this.artifact(refs.artifact_id) : null;
      if (refs.artifact_id && !artifact)
        throw new DeployFailure('the published artifact no longer exists', false);
      const outcome = await this.d.local.deploy({
        deploymentId: row.id,
        projectId: row.project_id,
        routeKey: `${project.owner_name}/${project.name}/${row.environment}`,
        service: `${project.name}-${row.environment}`,
        environment: row.environment,
        artifact,
        spec,
      });
      if (!outcome.ok) throw new DeployFailure(outcome.message, outcome.healthFailure);
      return {
        manifests,
        opsSha,
        runtime: {
          target: 'local',
          route_key: `${project.owner_name}/${project.name}/${row.environment}`,
          release: outcome.releaseId,
          // Where other instances' proxies reach this release (PLATFORM_INSTANCE_ADDRESS:port).
          host: this.d.instanceAddress,
          port: outcome.port,
          manifests,
          ops_sha: opsSha,
          history_id: historyId ?? null,
        },
      };
    }
    if (!this.d.kubernetes)
      throw new DeployFailure(
        'these manifests need the kubernetes target, which is not configured (PLATFORM_DEPLOY_KUBECONFIG)',
        false,
      );
    const namespace = row.namespace ?? `${project.name}-${row.environment}`.slice(0, 63).replace(/-+$/, '');
    const outcome = await this.d.kubernetes.apply(namespace, objects);
    if (!outcome.ok) throw new DeployFailure(outcome.message, outcome.healthFailure);
    return {
      manifests,
      opsSha,
      runtime: {
        target: 'kubernetes',
        namespace,
        objects: outcome.applied,
        manifests,
        ops_sha: opsSha,
        history_id: historyId ?? null,
      },
    };
  }

  private async artifact(id: string): Promise<{ objectKey: string; contentType: string } | null> {
    const a = await this.d.db
      .selectFrom('artifacts')
      .select(['object_key', 'content_type'])
      .where('id', '=', id)
      .executeTakeFirst();
    return a ? { objectKey: a.object_key, contentType: a.content_type } : null;
  }

  private async finish(
    row: DeploymentRow,
    to: 'healthy' | 'failed' | 'stopped',
    set: Parameters<typeof finishReconcile>[3],
    history: HistoryInput | null,
  ): Promise<void> {
    const keepLease =
      to === 'healthy' && (set.runtime ? JSON.parse(set.runtime as string).target === 'local' : false);
    const done = await this.d.db.transaction().execute(async (trx) => {
      const written = await finishReconcile(trx, row.id, to, {
        ...set,
        lease_holder: keepLease ? this.d.instanceId : null,
        lease_expires_at: keepLease ? new Date(Date.now() + this.d.leaseSeconds * 1000) : null,
      });
      if (written && history) {
        const id = await insertHistory(trx, written, history);
        if (history.applied && set.runtime) {
          const runtime = { ...JSON.parse(set.runtime as string), history_id: id };
          await trx
            .updateTable('deployments')
            .set({ runtime: JSON.stringify(runtime) })
            .where('id', '=', row.id)
            .execute();
          written.runtime = runtime;
        }
      }
      return written;
    });
    if (done) this.emit(done);
  }

  private async history(row: DeploymentRow, h: HistoryInput): Promise<void> {
    await insertHistory(this.d.db, row, h);
  }

  private async release(row: DeploymentRow, keep: boolean): Promise<void> {
    await this.d.db
      .updateTable('deployments')
      .set(keep ? {} : { lease_holder: null, lease_expires_at: null })
      .where('id', '=', row.id)
      .where('lease_holder', '=', this.d.instanceId)
      .execute();
  }

  private emit(row: DeploymentRow): void {
    void this.d
      .project(row.project_id)
      .then((p) =>
        emitDeploymentChanged(this.d.events, {
          projectId: row.project_id,
          deploymentId: row.id,
          environment: row.environment,
          status: row.current_status,
          deployedBy: row.requested_by ?? row.deployed_by,
          ownerId: p.owner_id,
        }),
      )
      .catch(() => {});
  }
}
