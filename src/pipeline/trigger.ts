import { writeAudit } from '../core/audit.js';
import { runGit } from '../git/run.js';
import type { Db } from '../store/db.js';

export const DEFINITION_FILE = '.platform.yaml';

/**
 * The push trigger point (owned by the pipeline module; the engine that runs pipelines arrives
 * later): when the pushed commit of a branch or tag has a `.platform.yaml`, a `pending` pipeline
 * row is created. Returns its id, or null when there is nothing to build.
 */
export async function createPushPipeline(
  db: Db,
  input: {
    projectId: string;
    ref: string;
    sha: string;
    pusherId: string;
    pusherName: string;
    repoDir: string;
  },
): Promise<string | null> {
  if (/^0+$/.test(input.sha) || !/^refs\/(heads|tags)\//.test(input.ref)) return null;
  const probe = await runGit(['cat-file', '-e', `${input.sha}:${DEFINITION_FILE}`], {
    cwd: input.repoDir,
    okExitCodes: [0, 1, 128],
  });
  if (probe.exitCode !== 0) return null;
  const message = await runGit(['log', '-1', '--format=%B', input.sha], { cwd: input.repoDir });
  const commitMessage = message.stdout.toString('utf8').trim().slice(0, 10_000);
  if (/\[(skip ci|ci skip)\]/i.test(commitMessage)) return null;
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto('pipelines')
      .values({
        project_id: input.projectId,
        trigger: 'push',
        git_ref: input.ref,
        commit_sha: input.sha,
        commit_message: commitMessage,
        triggered_by: input.pusherId,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await writeAudit(trx, {
      actor: { id: input.pusherId, name: input.pusherName, ip: null },
      action: 'pipeline.create',
      resourceType: 'pipeline',
      resourceId: row.id,
      projectId: input.projectId,
      detail: { trigger: 'push', ref: input.ref, sha: input.sha },
    });
    return row.id;
  });
}
