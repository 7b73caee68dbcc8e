import { sql } from 'kysely';
import { systemActor } from '../core/audit.js';
import type { ProjectRow } from '../projects/index.js';
import type { CreateOutcome, CreatePipelineInput } from './create.js';
import { nextCronRun } from './definition.js';
import { type DefinitionAt, resolveRef } from './definitions.js';
import type { PipelineServiceDeps } from './service-deps.js';

/** Mirrors `on.schedule` of the default branch's definition into pipeline_schedules. */
export async function refreshSchedules(
  deps: Pick<PipelineServiceDeps, 'db'>,
  project: ProjectRow,
  ref: string,
  def: DefinitionAt,
): Promise<void> {
  if (def.kind === 'invalid') return; // keep the last good schedules until the file is fixed
  const crons = def.kind === 'ok' ? def.definition.on.schedule : [];
  await deps.db.transaction().execute(async (trx) => {
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
export async function fireDueSchedules(
  deps: PipelineServiceDeps,
  create: (input: CreatePipelineInput) => Promise<CreateOutcome>,
  limit = 50,
): Promise<number> {
  const { db } = deps;
  const due = await db
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
    const claimed = await db
      .updateTable('pipeline_schedules')
      .set({ next_run_at: next, last_run_at: sql<Date>`now()` })
      .where('id', '=', s.id)
      .where('next_run_at', '=', s.next_run_at)
      .returning('id')
      .executeTakeFirst();
    if (!claimed) continue;
    try {
      const project = await deps.projects.get(s.project_id);
      const resolved = await resolveRef(deps.projects.repoDir(project), s.git_ref);
      if (!resolved) {
        await db.updateTable('pipeline_schedules').set({ is_active: false }).where('id', '=', s.id).execute();
        continue;
      }
      const outcome = await create({
        projectId: s.project_id,
        trigger: 'schedule',
        ref: resolved.ref,
        sha: resolved.sha,
        actor: { ...systemActor, name: 'schedule' },
        triggeredBy: null,
      });
      if ('created' in outcome) {
        fired++;
        await db
          .updateTable('pipeline_schedules')
          .set({ last_pipeline_id: outcome.created.id })
          .where('id', '=', s.id)
          .execute();
      }
    } catch (err) {
      deps.log.error({ err, scheduleId: s.id }, 'firing a pipeline schedule failed');
    }
  }
  return fired;
}
