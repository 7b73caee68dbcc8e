import { rm } from 'node:fs/promises';
import { sql } from 'kysely';
import { writeAudit } from '../core/audit.js';
import { AppError, conflict, notFound } from '../core/errors.js';
import type { Actor } from '../core/http.js';
import { type Page, pageByTime } from '../core/pagination.js';
import type { Db } from '../store/db.js';
import { DEPLOY_REASONS } from './reasons.js';
import type { OpsRepoView } from './schemas.js';
import { mirrorDir, type OpsRepoRow, SourceError, type SyncAccess, syncOpsRepo } from './sources.js';

export interface OpsRepoInput {
  name?: string | undefined;
  repo_url?: string | undefined;
  branch?: string | undefined;
  path?: string | undefined;
  credentials_secret?: string | null | undefined;
  sync_interval_seconds?: number | undefined;
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

function toView(r: OpsRepoRow): OpsRepoView {
  return {
    id: r.id,
    name: r.name,
    repo_url: r.repo_url,
    project_id: r.project_id,
    branch: r.branch,
    path: r.path,
    credentials_secret: r.credentials_secret,
    sync_interval_seconds: r.sync_interval_seconds,
    last_sync_status: r.last_sync_status,
    last_synced_at: iso(r.last_synced_at),
    last_sync_sha: r.last_sync_sha,
    last_sync_error: r.last_sync_error,
    created_at: iso(r.created_at)!,
    updated_at: iso(r.updated_at)!,
  };
}

/**
 * Ops repositories (admin): registration, on-demand and interval sync into `<data>/ops-repos/`.
 * A `repo_url` naming a project on this platform (`<public url>/<owner>/<name>.git`, or
 * `<owner>/<name>`) is read from its bare repository; anything else must pass the outbound guard.
 */
export class OpsReposService {
  /** Syncs in progress per repo, so a sync and the reconciler do not fetch the same mirror at once. */
  private readonly syncing = new Map<string, Promise<OpsRepoRow>>();

  constructor(
    private readonly db: Db,
    private readonly dataDir: string,
    private readonly publicUrl: string,
    private readonly access: SyncAccess,
    private readonly findProject: (owner: string, name: string) => Promise<string | null>,
  ) {}

  private async localProject(url: string): Promise<string | null> {
    const base = this.publicUrl.replace(/\/$/, '');
    let rest: string | null = null;
    if (url.startsWith(`${base}/`)) rest = url.slice(base.length + 1);
    else if (/^[A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*(\.git)?$/.test(url)) rest = url;
    if (rest === null) return null;
    const m = /^([^/]+)\/([^/]+?)(\.git)?$/.exec(rest);
    if (!m) return null;
    return this.findProject(m[1]!, m[2]!);
  }

  private async resolveUrl(url: string): Promise<string | null> {
    const local = await this.localProject(url);
    if (local) return local;
    try {
      const target = await this.access.outbound.check(url);
      if (target.url.username || target.url.password) throw new Error('credentials in the URL');
    } catch (err) {
      throw new AppError(422, 'unprocessable', `repo_url refused: ${(err as Error).message}`, [
        { path: 'body.repo_url', message: (err as Error).message },
      ]).because(DEPLOY_REASONS.opsRepoUrlRefused);
    }
    return null;
  }

  async list(page: { limit: number; cursor?: string | undefined }): Promise<Page<OpsRepoView>> {
    return pageByTime(
      this.db.selectFrom('ops_repos').selectAll(),
      { time: 'created_at', id: 'id' },
      page,
      toView,
    );
  }

  async get(id: string): Promise<OpsRepoRow> {
    const row = await this.db.selectFrom('ops_repos').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound('ops repo').because(DEPLOY_REASONS.opsRepoNotFound);
    return row;
  }

  async view(id: string): Promise<OpsRepoView> {
    return toView(await this.get(id));
  }

  async create(
    actor: Actor,
    input: Required<Pick<OpsRepoInput, 'name' | 'repo_url'>> & OpsRepoInput,
  ): Promise<OpsRepoView> {
    const projectId = await this.resolveUrl(input.repo_url);
    const row = await this.db.transaction().execute(async (trx) => {
      const created = await trx
        .insertInto('ops_repos')
        .values({
          name: input.name,
          repo_url: input.repo_url,
          project_id: projectId,
          ...(input.branch ? { branch: input.branch } : {}),
          ...(input.path !== undefined ? { path: input.path } : {}),
          credentials_secret: input.credentials_secret ?? null,
          ...(input.sync_interval_seconds ? { sync_interval_seconds: input.sync_interval_seconds } : {}),
        })
        .onConflict((oc) => oc.column('name').doNothing())
        .returningAll()
        .executeTakeFirst();
      if (!created)
        throw conflict(`an ops repo named ${input.name} exists`).because(DEPLOY_REASONS.opsRepoExists);
      await writeAudit(trx, {
        actor,
        action: 'ops_repo.create',
        resourceType: 'ops_repo',
        resourceId: created.id,
        detail: { name: input.name, repo_url: input.repo_url, local_project: projectId },
      });
      return created;
    });
    return toView(row);
  }

  async update(actor: Actor, id: string, input: OpsRepoInput): Promise<OpsRepoView> {
    await this.get(id);
    const projectId = input.repo_url !== undefined ? await this.resolveUrl(input.repo_url) : undefined;
    const row = await this.db.transaction().execute(async (trx) => {
      const updated = await trx
        .updateTable('ops_repos')
        .set({
          ...(input.name !== undefined ? { name: input.name } : {}),
          ...(input.repo_url !== undefined
            ? { repo_url: input.repo_url, project_id: projectId ?? null }
            : {}),
          ...(input.branch !== undefined ? { branch: input.branch } : {}),
          ...(input.path !== undefined ? { path: input.path } : {}),
          ...(input.credentials_secret !== undefined ? { credentials_secret: input.credentials_secret } : {}),
          ...(input.sync_interval_seconds !== undefined
            ? { sync_interval_seconds: input.sync_interval_seconds }
            : {}),
        })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst()
        .catch((err: unknown) => {
          if (String((err as Error).message).includes('ops_repos_name_key'))
            throw conflict(`an ops repo named ${input.name} exists`).because(DEPLOY_REASONS.opsRepoExists);
          throw err;
        });
      if (!updated) throw notFound('ops repo').because(DEPLOY_REASONS.opsRepoNotFound);
      await writeAudit(trx, {
        actor,
        action: 'ops_repo.update',
        resourceType: 'ops_repo',
        resourceId: id,
        detail: { ...input },
      });
      return updated;
    });
    return toView(row);
  }

  async delete(actor: Actor, id: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const gone = await trx
        .deleteFrom('ops_repos')
        .where('id', '=', id)
        .returning('name')
        .executeTakeFirst();
      if (!gone) throw notFound('ops repo').because(DEPLOY_REASONS.opsRepoNotFound);
      await writeAudit(trx, {
        actor,
        action: 'ops_repo.delete',
        resourceType: 'ops_repo',
        resourceId: id,
        detail: { name: gone.name },
      });
    });
    await rm(mirrorDir(this.dataDir, id), { recursive: true, force: true });
  }

  /** Called after a sync moved a repo to a new commit that deployments were asked to roll out. */
  onRollout: () => void = () => {};

  /**
   * Fetches now and records the outcome (a failure is recorded in the row). With `rollout` (the
   * interval and the admin's sync), a new commit bumps the generation of the active deployments
   * using the repo, so the reconciler applies it; a sync for a render or diff does not.
   */
  async syncNow(actor: Actor | null, id: string, rollout = false): Promise<OpsRepoRow> {
    const inFlight = this.syncing.get(id);
    if (inFlight) return inFlight;
    const run = (async () => {
      const repo = await this.get(id);
      let sha: string | null = null;
      let error: string | null = null;
      try {
        sha = await syncOpsRepo(this.dataDir, repo, this.access);
      } catch (err) {
        error = err instanceof SourceError ? err.message : `sync failed: ${(err as Error).message}`;
      }
      const row = await this.db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable('ops_repos')
          .set({
            last_sync_status: sha ? 'success' : 'failure',
            last_synced_at: sql<Date>`now()`,
            ...(sha ? { last_sync_sha: sha } : {}),
            last_sync_error: error,
          })
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirstOrThrow();
        if (rollout && sha) {
          const bumped = await trx
            .updateTable('deployments')
            .set({ generation: sql<number>`generation + 1` })
            .where('ops_repo_id', '=', id)
            .where('desired_status', '=', 'active')
            .where('current_status', 'in', ['healthy', 'degraded'])
            .where('current_ops_sha', 'is not', null)
            .where('current_ops_sha', '<>', sha)
            // Already asked for (a reconcile of a newer generation pending): no second bump.
            .whereRef('generation', '=', 'observed_generation')
            .executeTakeFirst();
          if (Number(bumped.numUpdatedRows) > 0) setTimeout(() => this.onRollout(), 10).unref();
        }
        if (actor)
          await writeAudit(trx, {
            actor,
            action: 'ops_repo.sync',
            resourceType: 'ops_repo',
            resourceId: id,
            detail: { result: sha ? 'success' : 'failure', sha },
          });
        return updated;
      });
      return row;
    })().finally(() => this.syncing.delete(id));
    this.syncing.set(id, run);
    return run;
  }

  /** For the reconciler: synced now (sync failures fail the deploy), its mirror and commit. */
  async forDeploy(id: string): Promise<{ gitDir: string; sha: string; path: string }> {
    const row = await this.syncNow(null, id);
    if (row.last_sync_status !== 'success' || !row.last_sync_sha)
      throw new SourceError(row.last_sync_error ?? `ops repo ${row.name} has not been synced`);
    return { gitDir: mirrorDir(this.dataDir, id), sha: row.last_sync_sha, path: row.path };
  }

  /** The interval sync: repos whose interval has passed. */
  async syncDue(): Promise<void> {
    const due = await this.db
      .selectFrom('ops_repos')
      .select('id')
      .where((eb) =>
        eb.or([
          eb('last_synced_at', 'is', null),
          eb('last_synced_at', '<', sql<Date>`now() - make_interval(secs => sync_interval_seconds)`),
        ]),
      )
      .execute();
    for (const r of due) await this.syncNow(null, r.id, true).catch(() => {});
  }
}
