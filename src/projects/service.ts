import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeAudit } from '../core/audit.js';
import { badRequest, conflict, notFound, unprocessable } from '../core/errors.js';
import { runGit } from '../core/git.js';
import type { Actor, Principal } from '../core/http.js';
import { type Page, pageByTime } from '../core/pagination.js';
import type { RbacService } from '../rbac/index.js';
import type { Db, DbOrTx } from '../store/db.js';
import {
  archiveProject,
  findProjectById,
  findProjectByName,
  findRedirect,
  insertProject,
  isUniqueViolation,
  listProjectsQuery,
  type ProjectChanges,
  type ProjectListFilter,
  type ProjectRow,
  projectNameTaken,
  recordRename,
  updateProject,
} from './queries.js';
import { PROJECT_REASONS } from './reasons.js';
import {
  type CreateProjectInput,
  isReservedProjectName,
  type ProjectView,
  type UpdateProjectInput,
} from './schemas.js';

export type { ProjectRow } from './queries.js';

/** Git refuses some names for branches; the same rules keep default_branch sane. */
export function isValidBranchName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 255 &&
    // biome-ignore lint/suspicious/noControlCharactersInRegex: git refuses control characters in ref names
    !/[\x00-\x20\x7f~^:?*[\\]/.test(name) &&
    !name.startsWith('/') &&
    !name.endsWith('/') &&
    !name.endsWith('.lock') &&
    !name.endsWith('.') &&
    !name.includes('..') &&
    !name.includes('//') &&
    !name.includes('@{') &&
    !name.startsWith('-') &&
    name !== '@'
  );
}

const NAME_KEY = 'projects_owner_name_lower_key';

function nameTaken(name: string) {
  return conflict(`a project named ${name} already exists (names are unique ignoring case)`, [
    { path: 'body.name', message: 'name taken' },
  ]).because(PROJECT_REASONS.nameTaken);
}

function assertNotReserved(name: string): void {
  if (isReservedProjectName(name))
    throw badRequest(`"${name}" is reserved (a project sub-resource name)`, [
      { path: 'body.name', message: 'is reserved (a project sub-resource name)' },
    ]).because(PROJECT_REASONS.reservedName);
}

function assertBranchName(branch: string): void {
  if (!isValidBranchName(branch))
    throw unprocessable(`"${branch}" is not a valid branch name`, [
      { path: 'body.default_branch', message: 'not a valid branch name' },
    ]).because(PROJECT_REASONS.invalidBranchName);
}

function archived(message: string) {
  return conflict(message, [{ message: 'archived', archived: true }]).because(PROJECT_REASONS.archived);
}

/**
 * Projects: rows plus their bare repositories under `<data_dir>/<repo_path>`. The repository
 * directory is named after the project as created (`repos/<owner>/<Name>.git`, case kept) and moves
 * with a rename; lookups in any case resolve the row and use its stored `repo_path`, never a path
 * built from the requested name, and case-insensitive uniqueness keeps two projects from sharing a
 * directory on a case-insensitive filesystem.
 */
export class ProjectsService {
  constructor(
    private readonly db: Db,
    private readonly rbac: RbacService,
    private readonly options: { dataDir: string; publicUrl: string },
  ) {}

  repoDir(project: { repo_path: string }): string {
    return path.join(this.options.dataDir, project.repo_path);
  }

  view(p: ProjectRow): ProjectView {
    return {
      id: p.id,
      owner: p.owner_name,
      owner_id: p.owner_id,
      name: p.name,
      full_name: `${p.owner_name}/${p.name}`,
      display_name: p.display_name,
      description: p.description,
      visibility: p.visibility,
      default_branch: p.default_branch,
      archived: !p.is_active,
      clone_url: `${this.options.publicUrl}/${p.owner_name}/${p.name}.git`,
      created_at: p.created_at,
      updated_at: p.updated_at,
    };
  }

  async get(id: string, db: DbOrTx = this.db): Promise<ProjectRow> {
    const row = await findProjectById(db, id);
    if (!row) throw notFound('project');
    return row;
  }

  /** By owner/name in any case, following renames; undefined when unknown. */
  async findByName(
    owner: string,
    name: string,
  ): Promise<{ project: ProjectRow; redirected: boolean } | undefined> {
    const row = await findProjectByName(this.db, owner, name);
    if (row) return { project: row, redirected: false };
    const redirect = await findRedirect(this.db, owner, name);
    if (!redirect) return undefined;
    return { project: await this.get(redirect), redirected: true };
  }

  async create(actor: Actor, owner: Principal, input: CreateProjectInput): Promise<ProjectView> {
    assertNotReserved(input.name);
    const defaultBranch = input.default_branch ?? 'main';
    assertBranchName(defaultBranch);
    const repoPath = path.join('repos', owner.userName, `${input.name}.git`);
    const dir = path.join(this.options.dataDir, repoPath);
    let created = false;
    try {
      const project = await this.db.transaction().execute(async (trx) => {
        if (await projectNameTaken(trx, owner.userId, input.name)) throw nameTaken(input.name);
        const id = await insertProject(trx, {
          owner_id: owner.userId,
          name: input.name,
          display_name: input.display_name ?? null,
          description: input.description ?? '',
          visibility: input.visibility ?? 'private',
          default_branch: defaultBranch,
          repo_path: repoPath,
        });
        await writeAudit(trx, {
          actor,
          action: 'project.create',
          resourceType: 'project',
          resourceId: id,
          projectId: id,
          detail: { name: input.name, visibility: input.visibility ?? 'private' },
        });
        // The repository is created inside the transaction: if git fails, no project row remains.
        await mkdir(path.dirname(dir), { recursive: true });
        await runGit(['init', '--bare', '--quiet', `--initial-branch=${defaultBranch}`, dir]);
        created = true;
        await runGit(['config', 'receive.denyNonFastForwards', 'false'], { cwd: dir });
        await runGit(['config', 'http.receivepack', 'true'], { cwd: dir });
        return this.get(id, trx);
      });
      return this.view(project);
    } catch (err) {
      if (created) await rm(dir, { recursive: true, force: true });
      // Two creators racing for one name: the loser hits the unique index, not the check above.
      if (isUniqueViolation(err, NAME_KEY)) throw nameTaken(input.name);
      throw err;
    }
  }

  async list(
    principal: Principal | null,
    q: ProjectListFilter & { limit: number; cursor?: string },
  ): Promise<Page<ProjectView>> {
    // The visibility rule lives in rbac; this is its SQL form.
    const query = listProjectsQuery(this.db, q, await this.rbac.visibleProjectsFilter(principal));
    return pageByTime(query, { time: 'p.created_at', id: 'p.id' }, q, (r) => this.view(r));
  }

  async update(actor: Actor, id: string, input: UpdateProjectInput): Promise<ProjectView> {
    if (input.name !== undefined) assertNotReserved(input.name);
    if (input.default_branch !== undefined) assertBranchName(input.default_branch);
    const before = await this.get(id);
    if (!before.is_active) throw archived('the project is archived');
    const renaming = input.name !== undefined && input.name !== before.name;
    const newRepoPath = renaming
      ? path.join('repos', before.owner_name, `${input.name}.git`)
      : before.repo_path;
    const oldDir = this.repoDir(before);
    const newDir = path.join(this.options.dataDir, newRepoPath);
    // The directory moves inside the transaction (so a failed move leaves the row as it was); when
    // anything after the move fails — symbolic-ref, the commit itself — it is moved back.
    let moved = false;
    const updated = await this.db
      .transaction()
      .execute(async (trx) => {
        const changes: ProjectChanges = {};
        if (input.display_name !== undefined) changes.display_name = input.display_name;
        if (input.description !== undefined) changes.description = input.description;
        if (input.visibility !== undefined) changes.visibility = input.visibility;
        if (input.default_branch !== undefined) changes.default_branch = input.default_branch;
        if (renaming) {
          const to = input.name!;
          if (await projectNameTaken(trx, before.owner_id, to, id)) throw nameTaken(to);
          changes.name = to;
          changes.repo_path = newRepoPath;
          // A change of case only keeps every lookup working without a redirect.
          if (to.toLowerCase() !== before.name.toLowerCase())
            await recordRename(trx, before, before.name, to);
        }
        if (Object.keys(changes).length > 0) await updateProject(trx, id, changes);
        await writeAudit(trx, {
          actor,
          action: renaming ? 'project.rename' : 'project.update',
          resourceType: 'project',
          resourceId: id,
          projectId: id,
          detail: {
            fields: Object.keys(changes),
            ...(renaming ? { from: before.name, to: input.name } : {}),
          },
        });
        if (renaming) {
          await rename(oldDir, newDir);
          moved = true;
        }
        if (input.default_branch) {
          await runGit(['symbolic-ref', 'HEAD', `refs/heads/${input.default_branch}`], { cwd: newDir });
        }
        return this.get(id, trx);
      })
      .catch(async (err: unknown) => {
        if (moved) await rename(newDir, oldDir);
        if (isUniqueViolation(err, NAME_KEY)) throw nameTaken(input.name ?? before.name);
        throw err;
      });
    await this.rbac.invalidate({ projectId: id });
    return this.view(updated);
  }

  /** Archive (soft delete): hidden and read-only; the repository is kept. */
  async archive(actor: Actor, id: string): Promise<void> {
    const project = await this.get(id);
    if (!project.is_active) throw archived('the project is already archived');
    await this.db.transaction().execute(async (trx) => {
      if (!(await archiveProject(trx, id))) throw archived('the project is already archived');
      await writeAudit(trx, {
        actor,
        action: 'project.archive',
        resourceType: 'project',
        resourceId: id,
        projectId: id,
        detail: { name: project.name },
      });
    });
    await this.rbac.invalidate({ projectId: id });
  }
}
