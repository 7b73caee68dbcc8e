import { sql } from 'kysely';
import type { Logger } from 'pino';
import { systemActor, writeAudit } from '../core/audit.js';
import { conflict, notFound, unprocessable } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import type { Actor } from '../core/http.js';
import { afterTimeCursor, cursorTime, type Page, toPage } from '../core/pagination.js';
import { GitError, runGit } from '../git/index.js';
import type { ProjectRow, ProjectsService } from '../projects/index.js';
import type { Db } from '../store/db.js';
import type { ObjectStore } from '../store/objects/types.js';
import type { PubSub } from '../store/pubsub/types.js';
import type { ArtifactRow, PipelineRow, PipelineStatus, PipelineTrigger } from '../store/schema.js';
import {
  DefinitionError,
  matchesMrAction,
  matchesPush,
  nextCronRun,
  parseDefinition,
  stepApplies,
} from './definition.js';
import type { MrAction, PipelineDefinition } from './definition-types.js';
import { expandVariables, toFinishedEvent } from './events.js';
import {
  branchOf,
  channels,
  DEFINITION_FILE,
  FINISHED_PIPELINE,
  INJECTED_VARIABLES,
  type PipelineView,
  pipelineView,
} from './types.js';

export type DefinitionAt =
  | { kind: 'missing' }
  | { kind: 'invalid'; error: string }
  | { kind: 'ok'; definition: PipelineDefinition };

export interface CreatePipelineInput {
  projectId: string;
  trigger: PipelineTrigger;
  /** Full ref: refs/heads/main, refs/tags/v1. */
  ref: string;
  sha: string;
  actor: Actor;
  triggeredBy: string | null;
  variables?: Record<string, string>;
  mrId?: string | null;
  mrAction?: MrAction;
  /** Retry: the finished pipeline whose definition, ref, commit and variables are reused. */
  retryOf?: PipelineRow;
  /** The definition at `sha` when the caller has read it already (the push trigger does, for schedules). */
  definition?: DefinitionAt;
}

/** Why no pipeline was created (push/mr/schedule triggers skip silently; the API answers 422). */
export type CreateOutcome =
  | { created: PipelineView; cancelled: string[] }
  | { skipped: 'no_definition' | 'skip_ci' | 'not_matching' | 'api_disabled' };

export interface ListFilter {
  limit: number;
  cursor?: string | undefined;
  status?: PipelineStatus | undefined;
  ref?: string | undefined;
  trigger?: PipelineTrigger | undefined;
}

export interface ArtifactView {
  id: string;
  pipeline_id: string;
  project_id: string;
  step_id: string | null;
  name: string;
  content_type: string;
  size_bytes: number;
  sha256: string | null;
  expires_at: Date | null;
  created_at: Date;
}

export function artifactView(row: ArtifactRow): ArtifactView {
  return {
    id: row.id,
    pipeline_id: row.pipeline_id,
    project_id: row.project_id,
    step_id: row.step_id,
    name: row.name,
    content_type: row.content_type,
    size_bytes: Number(row.size_bytes),
    sha256: row.sha256,
    expires_at: row.expires_at,
    created_at: row.created_at,
  };
}

export interface PipelineServiceDeps {
  db: Db;
  projects: ProjectsService;
  events: EventBus;
  pubsub: PubSub;
  objects: ObjectStore;
  log: Logger;
  /** Called after a pipeline was queued: wakes the executor on this instance (and others). */
  onQueued(): void;
}

/** Creating, listing, cancelling and retrying pipelines; schedules; artifact metadata. */
export class PipelineService {
  constructor(private readonly deps: PipelineServiceDeps) {}

  private get db(): Db {
    return this.deps.db;
  }

  // ------------------------------------------------------------------ definitions from git

  async definitionAt(repoDir: string, sha: string): Promise<DefinitionAt> {
    let text: string;
    try {
      const r = await runGit(['show', `${sha}:${DEFINITION_FILE}`], {
        cwd: repoDir,
        maxOutputBytes: 1024 * 1024,
        timeoutMs: 30_000,
      });
      text = r.stdout.toString('utf8');
    } catch (err) {
      if (err instanceof GitError) return { kind: 'missing' };
      throw err;
    }
    try {
      return { kind: 'ok', definition: parseDefinition(text) };
    } catch (err) {
      if (err instanceof DefinitionError) return { kind: 'invalid', error: err.message };
      throw err;
    }
  }

  /**
   * The commit `sha` names and its message, in one git call: a pushed annotated tag names the tag
   * object, and pipelines build (and report) the commit it points to (`git log` peels it).
   */
  private async commitAt(repoDir: string, sha: string): Promise<{ sha: string; message: string }> {
    const r = await runGit(['log', '-1', '--format=%H%x00%B', sha], { cwd: repoDir, timeoutMs: 30_000 });
    const [commit, message = ''] = r.stdout.toString('utf8').split('\0');
    return { sha: commit!.trim(), message: message.trim().slice(0, 10_000) };
  }

  /** The commit a ref (branch name, tag name or full ref) points at, with the full ref; null when unknown. */
  async resolveRef(repoDir: string, ref: string): Promise<{ ref: string; sha: string } | null> {
    const candidates = ref.startsWith('refs/') ? [ref] : [`refs/heads/${ref}`, `refs/tags/${ref}`];
    for (const candidate of candidates) {
      if (!/^refs\/(heads|tags)\/[^\0\s~^:?*[\\]+$/.test(candidate) || candidate.includes('..')) continue;
      const r = await runGit(['rev-parse', '--verify', '--quiet', `${candidate}^{commit}`], {
        cwd: repoDir,
        okExitCodes: [0, 1, 128],
      });
      if (r.exitCode === 0) return { ref: candidate, sha: r.stdout.toString('utf8').trim() };
    }
    return null;
  }

  // ------------------------------------------------------------------ creation

  /**
   * Reads `.platform.yaml` at the commit (or reuses a retried pipeline's definition) and queues a
   * pipeline with its applicable steps, in one transaction with its audit row. A broken definition
   * gives a pipeline in `failure` carrying the parser's message.
   */
  async create(input: CreatePipelineInput): Promise<CreateOutcome> {
    const project = await this.deps.projects.get(input.projectId);
    const repoDir = this.deps.projects.repoDir(project);
    let def: DefinitionAt;
    let commit: { sha: string; message: string };
    if (input.retryOf) {
      commit = { sha: input.sha, message: input.retryOf.commit_message };
      def = input.retryOf.definition
        ? { kind: 'ok', definition: input.retryOf.definition as unknown as PipelineDefinition }
        : await this.definitionAt(repoDir, input.sha);
    } else {
      def = input.definition ?? (await this.definitionAt(repoDir, input.sha));
      if (def.kind === 'missing') return { skipped: 'no_definition' };
      commit = await this.commitAt(repoDir, input.sha);
      // A manual run (api) is asked for explicitly: the commit message does not veto it.
      if (input.trigger !== 'api' && /\[(skip ci|ci skip)\]/i.test(commit.message)) {
        return { skipped: 'skip_ci' };
      }
    }
    if (def.kind === 'missing') return { skipped: 'no_definition' };
    const { sha, message } = commit;
    if (def.kind === 'ok' && !input.retryOf) {
      const d = def.definition;
      if (input.trigger === 'push' && !matchesPush(d, input.ref)) return { skipped: 'not_matching' };
      if (input.trigger === 'mr' && !(input.mrAction && matchesMrAction(d, input.mrAction)))
        return { skipped: 'not_matching' };
      if (input.trigger === 'api' && !d.on.api) return { skipped: 'api_disabled' };
    }

    const variables = input.retryOf?.variables ?? input.variables ?? {};
    const branch = branchOf(input.ref);
    const definition = def.kind === 'ok' ? def.definition : null;
    const steps = definition ? definition.steps.filter((s) => stepApplies(s, branch)) : [];
    const group = definition?.concurrency
      ? expandVariables(definition.concurrency.group, groupVariables(project, input.ref, sha))
      : null;

    const { row, stepRows, cancelled } = await this.db.transaction().execute(async (trx) => {
      const row = await trx
        .insertInto('pipelines')
        .values({
          project_id: project.id,
          trigger: input.trigger,
          git_ref: input.ref,
          commit_sha: sha,
          commit_message: message,
          status: def.kind === 'invalid' ? 'failure' : 'pending',
          triggered_by: input.triggeredBy,
          mr_id: input.mrId ?? input.retryOf?.mr_id ?? null,
          retry_of: input.retryOf?.id ?? null,
          concurrency_group: group,
          error: def.kind === 'invalid' ? def.error : null,
          variables: JSON.stringify(variables),
          definition: definition ? JSON.stringify(definition) : null,
          finished_at: def.kind === 'invalid' ? sql<Date>`now()` : null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      const stepRows =
        steps.length === 0
          ? []
          : await trx
              .insertInto('pipeline_steps')
              .values(
                steps.map((s, position) => ({
                  pipeline_id: row.id,
                  name: s.name,
                  position,
                  image: s.image,
                  commands: s.commands,
                  environment: JSON.stringify(s.environment),
                  // A dependency excluded by its `when` filter is not part of this run.
                  depends_on: s.depends_on.filter((d) => steps.some((x) => x.name === d)),
                  allow_failure: s.allow_failure,
                  timeout_seconds: s.timeout_seconds,
                  publish: s.publish ? JSON.stringify(s.publish) : null,
                })),
              )
              .returningAll()
              .execute();
      let cancelled: { id: string; status: PipelineStatus }[] = [];
      if (group && definition?.concurrency?.cancel_in_progress) {
        cancelled = await trx
          .updateTable('pipelines')
          .set({
            status: 'cancelled',
            error: `cancelled: superseded by pipeline ${row.id} (concurrency group ${group})`,
            finished_at: sql<Date>`now()`,
          })
          .where('project_id', '=', project.id)
          .where('concurrency_group', '=', group)
          .where('status', 'in', ['pending', 'running'])
          .where('id', '<>', row.id)
          .returning(['id', 'status'])
          .execute();
        const pendingIds = cancelled.map((c) => c.id);
        if (pendingIds.length > 0) {
          await trx
            .updateTable('pipeline_steps')
            .set({ status: 'cancelled' })
            .where('pipeline_id', 'in', pendingIds)
            .where('status', '=', 'pending')
            .execute();
        }
      }
      await writeAudit(trx, {
        actor: input.actor,
        action: input.retryOf ? 'pipeline.retry' : 'pipeline.create',
        resourceType: 'pipeline',
        resourceId: row.id,
        projectId: project.id,
        detail: {
          trigger: input.trigger,
          ref: input.ref,
          sha,
          status: row.status,
          ...(input.retryOf ? { retry_of: input.retryOf.id } : {}),
          ...(cancelled.length > 0 ? { cancelled: cancelled.map((c) => c.id) } : {}),
          ...(Object.keys(variables).length > 0 ? { variables: Object.keys(variables) } : {}),
        },
      });
      return { row, stepRows, cancelled };
    });

    for (const c of cancelled) await this.afterCancel(project, c.id, c.status);
    if (row.status === 'failure') this.deps.events.emit('pipeline.finished', toFinishedEvent(row, project));
    else this.deps.onQueued();
    return { created: pipelineView(row, stepRows), cancelled: cancelled.map((c) => c.id) };
  }

  private async afterCancel(project: ProjectRow, id: string, previous: PipelineStatus): Promise<void> {
    // A running one is stopped by the instance executing it (told now, and it checks at heartbeat).
    if (previous === 'running') {
      await this.deps.pubsub
        .publish(channels.cancel, { pipelineId: id })
        .catch((err: unknown) => this.deps.log.warn({ err, pipelineId: id }, 'publishing a cancel failed'));
    }
    const row = await this.db.selectFrom('pipelines').selectAll().where('id', '=', id).executeTakeFirst();
    if (row) this.deps.events.emit('pipeline.finished', toFinishedEvent(row, project));
  }

  // ------------------------------------------------------------------ reading

  async get(projectId: string, id: string): Promise<PipelineView> {
    const row = await this.row(projectId, id);
    const steps = await this.db
      .selectFrom('pipeline_steps')
      .selectAll()
      .where('pipeline_id', '=', id)
      .orderBy('position')
      .execute();
    return pipelineView(row, steps);
  }

  async row(projectId: string, id: string): Promise<PipelineRow> {
    const row = await this.db
      .selectFrom('pipelines')
      .selectAll()
      .where('id', '=', id)
      .where('project_id', '=', projectId)
      .executeTakeFirst();
    if (!row) throw notFound('pipeline');
    return row;
  }

  async list(projectId: string, filter: ListFilter): Promise<Page<PipelineView>> {
    let q = this.db
      .selectFrom('pipelines')
      .selectAll()
      .select(cursorTime('created_at').as('cursor_at'))
      .where('project_id', '=', projectId);
    if (filter.status) q = q.where('status', '=', filter.status);
    if (filter.trigger) q = q.where('trigger', '=', filter.trigger);
    if (filter.ref) {
      const ref = filter.ref;
      q = ref.startsWith('refs/')
        ? q.where('git_ref', '=', ref)
        : q.where('git_ref', 'in', [`refs/heads/${ref}`, `refs/tags/${ref}`]);
    }
    if (filter.cursor) q = q.where(afterTimeCursor(filter.cursor, { time: 'created_at', id: 'id' }));
    const rows = await q
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(filter.limit + 1)
      .execute();
    return toPage(
      rows,
      filter.limit,
      (r) => [r.cursor_at, r.id],
      (r) => pipelineView(r),
    );
  }

  /** The newest pipeline built for a commit (merge request checks). */
  async latestForCommit(projectId: string, sha: string): Promise<PipelineView | null> {
    const row = await this.db
      .selectFrom('pipelines')
      .selectAll()
      .where('project_id', '=', projectId)
      .where('commit_sha', '=', sha)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? pipelineView(row) : null;
  }

  // ------------------------------------------------------------------ actions

  /** Pending → cancelled at once; running → cancelled, and the executing instance stops its steps. */
  async cancel(actor: Actor, projectId: string, id: string): Promise<PipelineView> {
    const project = await this.deps.projects.get(projectId);
    const previous = await this.db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('pipelines')
        .select(['id', 'status'])
        .where('id', '=', id)
        .where('project_id', '=', projectId)
        .forUpdate()
        .executeTakeFirst();
      if (!row) throw notFound('pipeline');
      if (FINISHED_PIPELINE.includes(row.status))
        throw conflict(`pipeline is already ${row.status}`, [
          { message: 'current state', status: row.status },
        ]);
      await trx
        .updateTable('pipelines')
        .set({ status: 'cancelled', finished_at: sql<Date>`now()` })
        .where('id', '=', id)
        .execute();
      await trx
        .updateTable('pipeline_steps')
        .set({ status: 'cancelled' })
        .where('pipeline_id', '=', id)
        .where('status', '=', 'pending')
        .execute();
      await writeAudit(trx, {
        actor,
        action: 'pipeline.cancel',
        resourceType: 'pipeline',
        resourceId: id,
        projectId,
        detail: { previous_status: row.status },
      });
      return row.status;
    });
    await this.afterCancel(project, id, previous);
    return this.get(projectId, id);
  }

  async retry(
    actor: Actor,
    projectId: string,
    id: string,
    triggeredBy: string | null,
  ): Promise<PipelineView> {
    const row = await this.row(projectId, id);
    if (!FINISHED_PIPELINE.includes(row.status))
      throw conflict(`pipeline is ${row.status}; only a finished pipeline can be retried`, [
        { message: 'current state', status: row.status },
      ]);
    const outcome = await this.create({
      projectId,
      trigger: row.trigger,
      ref: row.git_ref,
      sha: row.commit_sha,
      actor,
      triggeredBy,
      retryOf: row,
    });
    if ('skipped' in outcome) throw unprocessable(`nothing to retry: ${outcome.skipped}`);
    return outcome.created;
  }

  /** API trigger: `gitRef` is a branch or tag name or a full ref. */
  async createFromApi(
    actor: Actor,
    projectId: string,
    gitRef: string,
    variables: Record<string, string>,
  ): Promise<PipelineView> {
    const injected = Object.keys(variables).filter((k) =>
      (INJECTED_VARIABLES as readonly string[]).includes(k),
    );
    if (injected.length > 0)
      throw unprocessable(`variables may not override injected variables: ${injected.join(', ')}`, [
        ...injected.map((name) => ({ path: `body.variables.${name}`, message: 'injected by the platform' })),
      ]);
    const project = await this.deps.projects.get(projectId);
    const resolved = await this.resolveRef(this.deps.projects.repoDir(project), gitRef);
    if (!resolved)
      throw unprocessable(`git_ref "${gitRef}" is not a branch or tag of this project`, [
        { path: 'body.git_ref', message: 'unknown ref' },
      ]);
    const outcome = await this.create({
      projectId,
      trigger: 'api',
      ref: resolved.ref,
      sha: resolved.sha,
      actor,
      triggeredBy: actor.id,
      variables,
    });
    if ('skipped' in outcome) {
      const why =
        outcome.skipped === 'api_disabled'
          ? 'the definition does not allow api triggers (on.api: false)'
          : `the commit ${resolved.sha.slice(0, 12)} of ${resolved.ref} has no ${DEFINITION_FILE}`;
      throw unprocessable(why);
    }
    return outcome.created;
  }

  // ------------------------------------------------------------------ artifacts

  async artifacts(projectId: string, pipelineId: string): Promise<ArtifactView[]> {
    await this.row(projectId, pipelineId);
    const rows = await this.db
      .selectFrom('artifacts')
      .selectAll()
      .where('pipeline_id', '=', pipelineId)
      .orderBy('name')
      .execute();
    return rows.map(artifactView);
  }

  async artifactDownloadUrl(projectId: string, artifactId: string): Promise<string> {
    const row = await this.db
      .selectFrom('artifacts')
      .selectAll()
      .where('id', '=', artifactId)
      .where('project_id', '=', projectId)
      .executeTakeFirst();
    if (!row || (row.expires_at && new Date(row.expires_at).getTime() <= Date.now()))
      throw notFound('artifact');
    return this.deps.objects.presignGet(row.object_key, 300, { contentType: row.content_type });
  }

  /** Deletes expired artifacts (objects, then rows), except those a deployment still points at. */
  async expireArtifacts(limit = 200): Promise<number> {
    const rows = await this.db
      .selectFrom('artifacts as a')
      .select(['a.id', 'a.object_key'])
      .where('a.expires_at', '<=', sql<Date>`now()`)
      .where(({ not, exists, selectFrom }) =>
        not(exists(selectFrom('deployments as d').select('d.id').whereRef('d.artifact_id', '=', 'a.id'))),
      )
      .limit(limit)
      .execute();
    for (const r of rows) {
      await this.deps.objects.delete(r.object_key);
      await this.db.deleteFrom('artifacts').where('id', '=', r.id).execute();
    }
    return rows.length;
  }

  // ------------------------------------------------------------------ schedules

  /** Mirrors `on.schedule` of the default branch's definition into pipeline_schedules. */
  async refreshSchedules(project: ProjectRow, ref: string, def: DefinitionAt): Promise<void> {
    if (def.kind === 'invalid') return; // keep the last good schedules until the file is fixed
    const crons = def.kind === 'ok' ? def.definition.on.schedule : [];
    await this.db.transaction().execute(async (trx) => {
      let del = trx.deleteFrom('pipeline_schedules').where('project_id', '=', project.id);
      if (crons.length > 0)
        del = del.where((eb) => eb.or([eb('git_ref', '<>', ref), eb('cron', 'not in', crons)]));
      await del.execute();
      const now = new Date();
      for (const cron of crons) {
        await trx
          .insertInto('pipeline_schedules')
          .values({ project_id: project.id, git_ref: ref, cron, next_run_at: nextCronRun(cron, now) })
          .onConflict((oc) =>
            oc.columns(['project_id', 'git_ref', 'cron']).doUpdateSet((eb) => ({
              is_active: true,
              // A schedule switched back on starts from now: it does not fire for the time it was off.
              next_run_at: sql<Date>`case when ${eb.ref('pipeline_schedules.is_active')} then ${eb.ref('pipeline_schedules.next_run_at')} else ${eb.ref('excluded.next_run_at')} end`,
            })),
          )
          .execute();
      }
    });
  }

  /**
   * Fires due schedules: each row is advanced (compare-and-set on next_run_at) before its pipeline is
   * created, so a row fires once even if two instances got here.
   */
  async fireDueSchedules(limit = 50): Promise<number> {
    const due = await this.db
      .selectFrom('pipeline_schedules')
      .selectAll()
      .where('is_active', '=', true)
      .where('next_run_at', '<=', sql<Date>`now()`)
      .orderBy('next_run_at')
      .limit(limit)
      .execute();
    let fired = 0;
    for (const s of due) {
      const next = nextCronRun(s.cron, new Date());
      const claimed = await this.db
        .updateTable('pipeline_schedules')
        .set({ next_run_at: next, last_run_at: sql<Date>`now()` })
        .where('id', '=', s.id)
        .where('next_run_at', '=', s.next_run_at)
        .returning('id')
        .executeTakeFirst();
      if (!claimed) continue;
      try {
        const project = await this.deps.projects.get(s.project_id);
        const resolved = await this.resolveRef(this.deps.projects.repoDir(project), s.git_ref);
        if (!resolved) {
          await this.db
            .updateTable('pipeline_schedules')
            .set({ is_active: false })
            .where('id', '=', s.id)
            .execute();
          continue;
        }
        const outcome = await this.create({
          projectId: s.project_id,
          trigger: 'schedule',
          ref: resolved.ref,
          sha: resolved.sha,
          actor: { ...systemActor, name: 'schedule' },
          triggeredBy: null,
        });
        if ('created' in outcome) {
          fired++;
          await this.db
            .updateTable('pipeline_schedules')
            .set({ last_pipeline_id: outcome.created.id })
            .where('id', '=', s.id)
            .execute();
        }
      } catch (err) {
        this.deps.log.error({ err, scheduleId: s.id }, 'firing a pipeline schedule failed');
      }
    }
    return fired;
  }
}

function groupVariables(project: ProjectRow, ref: string, sha: string): Record<string, string> {
  return {
    PROJECT: `${project.owner_name}/${project.name}`,
    PLATFORM_PROJECT_ID: project.id,
    PLATFORM_PROJECT_NAME: project.name,
    COMMIT_REF: ref,
    COMMIT_BRANCH: branchOf(ref) ?? '',
    COMMIT_SHA: sha,
  };
}
