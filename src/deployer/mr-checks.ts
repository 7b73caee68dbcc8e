import type { Logger } from 'pino';
import { runGit } from '../core/git.js';
import type { Permission } from '../core/permissions.js';
import type { Db } from '../store/db.js';
import type { DeployMrCheckConclusion, DeployMrCheckEnvironment } from '../store/schema.js';
import { unifiedDiff } from './diff.js';
import { type ManifestDeps, renderSource } from './manifests.js';
import { toYamlStream } from './render.js';
import { opsAppDir, readManifestDir } from './sources.js';
import type { DeploymentRow } from './transitions.js';

/** The name the check is posted under. */
export const DEPLOY_DIFF_CHECK = 'deploy/diff';
/** A diff longer than this is cut (the full one is `GET …/deployments/:env/diff` after the merge). */
const MAX_DIFF_CHARS = 64 * 1024;

/** What a merge request event tells the check. */
export interface MrHead {
  projectId: string;
  mergeRequestId: string;
  targetBranch: string;
  headSha: string;
}

/** Whether the reader of a merge request holds a permission on a project (absent: nobody). */
export type DeployCheckViewer = (permission: Permission, projectId: string) => Promise<boolean>;

/** A check as the merge request module shows it (`checks.runs`). */
export interface DeployMrCheckView {
  name: string;
  conclusion: DeployMrCheckConclusion;
  summary: string;
  head_sha: string;
  text: string;
  updated_at: string;
}

/**
 * The `deploy/diff` merge-request check: when an MR changes files of an ops repo (a project on
 * this platform registered as one, MR into the branch the repo tracks) below `apps/<project>/`, or
 * a project's own `deploy/`, every deployment those files render is rendered at the MR's head with
 * its current refs and values and compared with what runs now. A render failure is a `failure`
 * (which blocks the merge: merging it would fail those deployments); changes are `neutral`
 * (something to review); renders equal to what runs are `success`. An MR that touches nothing
 * deployable has no check (an earlier one is removed).
 */
export class DeployMrChecks {
  /** Computations per merge request, chained so an older head never overwrites a newer one. */
  private readonly chains = new Map<string, Promise<void>>();

  constructor(
    private readonly db: Db,
    private readonly render: Pick<ManifestDeps, 'project'>,
    private readonly log: Logger,
  ) {}

  /** Queues the check of a merge request's head (events: mr.opened, mr.updated on push). */
  schedule(mr: MrHead): Promise<void> {
    const prev = this.chains.get(mr.mergeRequestId) ?? Promise.resolve();
    const next = prev
      .then(() => this.compute(mr))
      .catch((err: unknown) => this.log.error({ err, mr: mr.mergeRequestId }, 'deploy/diff check failed'));
    this.chains.set(mr.mergeRequestId, next);
    void next.finally(() => {
      if (this.chains.get(mr.mergeRequestId) === next) this.chains.delete(mr.mergeRequestId);
    });
    return next;
  }

  async settle(): Promise<void> {
    while (this.chains.size > 0) await Promise.all([...this.chains.values()]);
  }

  /**
   * The check of a merge request at this head, if one was posted for it. An environment's diff
   * holds its rendered manifests (values overrides included, which live in the deployment, not in
   * the ops repo): the text shows it only to a reader with `deploy:read` on that environment's
   * project; others see that it would change.
   */
  async forMergeRequest(
    mergeRequestId: string,
    headSha: string,
    viewer?: DeployCheckViewer,
  ): Promise<DeployMrCheckView[]> {
    const row = await this.db
      .selectFrom('deploy_mr_checks')
      .selectAll()
      .where('merge_request_id', '=', mergeRequestId)
      .where('head_sha', '=', headSha)
      .executeTakeFirst();
    if (!row) return [];
    const readable = new Map<string, boolean>();
    for (const e of row.environments) {
      if (!readable.has(e.project_id))
        readable.set(e.project_id, viewer ? await viewer('deploy:read', e.project_id) : false);
    }
    const text = row.environments
      .map((e) =>
        e.error
          ? `# ${e.project}/${e.environment}: ${e.error}\n`
          : !e.diff
            ? `# ${e.project}/${e.environment}: no change\n`
            : readable.get(e.project_id)
              ? `# ${e.project}/${e.environment}\n${e.diff}`
              : `# ${e.project}/${e.environment}: would change (the diff is shown to readers of ${e.project}'s deployments)\n`,
      )
      .join('\n');
    return [
      {
        name: row.name,
        conclusion: row.conclusion,
        summary: row.summary,
        head_sha: row.head_sha,
        text,
        updated_at: new Date(row.updated_at).toISOString(),
      },
    ];
  }

  private async compute(mr: MrHead): Promise<void> {
    const project = await this.render.project(mr.projectId);
    const changed = await changedFiles(project.repoDir, mr.targetBranch, mr.headSha);
    const affected = await this.affected(mr, changed);
    if (affected.length === 0) {
      await this.db
        .deleteFrom('deploy_mr_checks')
        .where('merge_request_id', '=', mr.mergeRequestId)
        .execute();
      return;
    }
    const environments: DeployMrCheckEnvironment[] = [];
    for (const a of affected) {
      let diff = '';
      let error: string | null = null;
      try {
        const source = await readManifestDir(project.repoDir, mr.headSha, a.dir, a.row.environment, a.source);
        const desired = renderSource(source, a.row, a.row, a.projectName);
        const current =
          typeof a.row.runtime.manifests === 'string' && !a.row.runtime.stopped
            ? a.row.runtime.manifests
            : '';
        diff = await unifiedDiff(current, toYamlStream(desired), a.row.environment);
        if (diff.length > MAX_DIFF_CHARS) diff = `${diff.slice(0, MAX_DIFF_CHARS)}\n… (diff truncated)\n`;
      } catch (err) {
        error = err instanceof Error ? err.message : String(err);
      }
      environments.push({
        project_id: a.row.project_id,
        project: a.projectName,
        environment: a.row.environment,
        source: a.source,
        diff,
        error,
      });
    }
    const failed = environments.filter((e) => e.error !== null);
    const changedEnvs = environments.filter((e) => e.error === null && e.diff !== '');
    const label = (e: DeployMrCheckEnvironment) => `${e.project}/${e.environment}`;
    const conclusion: DeployMrCheckConclusion =
      failed.length > 0 ? 'failure' : changedEnvs.length > 0 ? 'neutral' : 'success';
    const summary =
      failed.length > 0
        ? failed.map((e) => `${label(e)}: ${e.error}`).join('; ')
        : changedEnvs.length > 0
          ? `${changedEnvs.length} environment${changedEnvs.length === 1 ? '' : 's'} would change: ${changedEnvs.map(label).join(', ')}`
          : `no running environment would change (${environments.map(label).join(', ')})`;
    const values = {
      merge_request_id: mr.mergeRequestId,
      project_id: mr.projectId,
      head_sha: mr.headSha,
      name: DEPLOY_DIFF_CHECK,
      conclusion,
      summary: summary.slice(0, 4000),
      environments: JSON.stringify(environments),
    };
    await this.db
      .insertInto('deploy_mr_checks')
      .values(values)
      .onConflict((oc) =>
        oc.column('merge_request_id').doUpdateSet({
          head_sha: values.head_sha,
          conclusion: values.conclusion,
          summary: values.summary,
          environments: values.environments,
          updated_at: new Date(),
        }),
      )
      .execute();
  }

  /** The deployments whose manifests the changed files feed, with the directory they render from. */
  private async affected(mr: MrHead, changed: string[]) {
    const out: { row: DeploymentRow; projectName: string; dir: string; source: 'ops_repo' | 'project' }[] =
      [];
    if (changed.length === 0) return out;
    const under = (dir: string) => changed.some((f) => f.startsWith(`${dir}/`));
    // This project is an ops repo tracking the MR's target branch: apps/<project>/ of each deployment using it.
    const repos = await this.db
      .selectFrom('ops_repos')
      .select(['id', 'path'])
      .where('project_id', '=', mr.projectId)
      .where('branch', '=', mr.targetBranch)
      .execute();
    for (const repo of repos) {
      const rows = await this.db
        .selectFrom('deployments')
        .selectAll()
        .where('ops_repo_id', '=', repo.id)
        .orderBy('environment')
        .execute();
      for (const row of rows) {
        const p = await this.render.project(row.project_id);
        const dir = opsAppDir(repo, p.name);
        if (under(dir)) out.push({ row, projectName: p.name, dir, source: 'ops_repo' });
      }
    }
    // The project's own deploy/ feeds its environments without an ops repo (previews render their own branch).
    if (under('deploy')) {
      const rows = await this.db
        .selectFrom('deployments')
        .selectAll()
        .where('project_id', '=', mr.projectId)
        .where('ops_repo_id', 'is', null)
        .where('environment', 'not like', 'preview-%')
        .orderBy('environment')
        .execute();
      const p = await this.render.project(mr.projectId);
      for (const row of rows) out.push({ row, projectName: p.name, dir: 'deploy', source: 'project' });
    }
    return out;
  }
}

/** Files the head changes relative to its merge base with the target branch. */
async function changedFiles(repoDir: string, targetBranch: string, head: string): Promise<string[]> {
  const base = await runGit(['merge-base', `refs/heads/${targetBranch}`, head], {
    cwd: repoDir,
    okExitCodes: [0, 1, 128],
  });
  const from = base.exitCode === 0 ? base.stdout.toString('utf8').trim() : null;
  const res = from
    ? await runGit(['diff', '--name-only', '-z', '--no-renames', from, head], { cwd: repoDir })
    : await runGit(['ls-tree', '-r', '--name-only', '-z', head], { cwd: repoDir });
  return res.stdout
    .toString('utf8')
    .split('\0')
    .filter((n) => n.length > 0);
}
