import { sql } from 'kysely';
import { notFound } from '../core/errors.js';
import { type Page, pageByTime } from '../core/pagination.js';
import type { Db, DbOrTx } from '../store/db.js';
import type {
  ArtifactRow,
  PipelineRow,
  PipelineStatus,
  PipelineStepRow,
  PipelineTrigger,
  StepPublishSpec,
} from '../store/schema.js';

/** The pipeline module's SQL for reading and inserting its rows (status writes: transitions.ts). */

export interface ListFilter {
  limit: number;
  cursor?: string | undefined;
  status?: PipelineStatus | undefined;
  ref?: string | undefined;
  trigger?: PipelineTrigger | undefined;
}

const NUMBER = /^[0-9]{1,10}$/;

/** A pipeline of the project by id or by its number in the project (`42`). */
export async function pipelineByRef(db: DbOrTx, projectId: string, ref: string): Promise<PipelineRow> {
  let q = db.selectFrom('pipelines').selectAll().where('project_id', '=', projectId);
  q = NUMBER.test(ref) ? q.where('number', '=', Number(ref)) : q.where('id', '=', ref);
  const row = await q.executeTakeFirst();
  if (!row) throw notFound('pipeline');
  return row;
}

export function stepsOf(db: DbOrTx, pipelineId: string): Promise<PipelineStepRow[]> {
  return db
    .selectFrom('pipeline_steps')
    .selectAll()
    .where('pipeline_id', '=', pipelineId)
    .orderBy('position')
    .execute();
}

/** A step of a pipeline by id or by name. */
export async function stepByRef(db: DbOrTx, pipelineId: string, ref: string): Promise<PipelineStepRow> {
  const byId = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(ref);
  const step = await db
    .selectFrom('pipeline_steps')
    .selectAll()
    .where('pipeline_id', '=', pipelineId)
    .where(byId ? 'id' : 'name', '=', ref)
    .executeTakeFirst();
  if (!step) throw notFound('step');
  return step;
}

export function listPipelines<T>(
  db: Db,
  projectId: string,
  filter: ListFilter,
  map: (row: PipelineRow) => T,
): Promise<Page<T>> {
  let q = db.selectFrom('pipelines').selectAll().where('project_id', '=', projectId);
  if (filter.status) q = q.where('status', '=', filter.status);
  if (filter.trigger) q = q.where('trigger', '=', filter.trigger);
  if (filter.ref) {
    const ref = filter.ref;
    q = ref.startsWith('refs/')
      ? q.where('git_ref', '=', ref)
      : q.where('git_ref', 'in', [`refs/heads/${ref}`, `refs/tags/${ref}`]);
  }
  return pageByTime(q, { time: 'created_at', id: 'id' }, filter, map, 'desc');
}

/** The newest pipeline built for a commit (merge request checks). */
export async function latestForCommit(db: Db, projectId: string, sha: string): Promise<PipelineRow | null> {
  const row = await db
    .selectFrom('pipelines')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('commit_sha', '=', sha)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ?? null;
}

export interface NewPipeline {
  project_id: string;
  number: number;
  trigger: PipelineTrigger;
  git_ref: string;
  commit_sha: string;
  commit_message: string;
  triggered_by: string | null;
  mr_id: string | null;
  retry_of: string | null;
  concurrency_group: string | null;
  variables: Record<string, string>;
  definition: unknown;
}

export interface NewStep {
  name: string;
  image: string | null;
  commands: string[];
  environment: Record<string, string>;
  depends_on: string[];
  allow_failure: boolean;
  timeout_seconds: number | null;
  publish: StepPublishSpec | null;
}

/** Inserts a pending pipeline and its pending steps. */
export async function insertPipeline(
  trx: DbOrTx,
  p: NewPipeline,
  steps: NewStep[],
): Promise<{ row: PipelineRow; steps: PipelineStepRow[] }> {
  const row = await trx
    .insertInto('pipelines')
    .values({
      ...p,
      variables: JSON.stringify(p.variables),
      definition: p.definition ? JSON.stringify(p.definition) : null,
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
              ...s,
              pipeline_id: row.id,
              position,
              environment: JSON.stringify(s.environment),
              publish: s.publish ? JSON.stringify(s.publish) : null,
            })),
          )
          .returningAll()
          .execute();
  return { row, steps: stepRows };
}

// ------------------------------------------------------------------ artifacts

export function artifactsOf(db: Db, pipelineId: string): Promise<ArtifactRow[]> {
  return db
    .selectFrom('artifacts')
    .selectAll()
    .where('pipeline_id', '=', pipelineId)
    .orderBy('name')
    .execute();
}

export async function artifactOf(db: Db, projectId: string, artifactId: string): Promise<ArtifactRow | null> {
  const row = await db
    .selectFrom('artifacts')
    .selectAll()
    .where('id', '=', artifactId)
    .where('project_id', '=', projectId)
    .executeTakeFirst();
  return row ?? null;
}

/** Expired artifacts no deployment points at. */
export function expiredArtifacts(db: Db, limit: number): Promise<{ id: string; object_key: string }[]> {
  return db
    .selectFrom('artifacts as a')
    .select(['a.id', 'a.object_key'])
    .where('a.expires_at', '<=', sql<Date>`now()`)
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('deployments as d').select('d.id').whereRef('d.artifact_id', '=', 'a.id'))),
    )
    .limit(limit)
    .execute();
}

export async function deleteArtifact(db: Db, id: string): Promise<void> {
  await db.deleteFrom('artifacts').where('id', '=', id).execute();
}
