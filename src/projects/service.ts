import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeAudit } from '../core/audit.js';
import { conflict, notFound, unprocessable } from '../core/errors.js';
import { runGit } from '../core/git.js';
import type { Actor, Principal } from '../core/http.js';
import { afterTimeCursor, cursorTime, type Page, toPage } from '../core/pagination.js';
import { escapeLike } from '../core/validation.js';
import type { RbacService } from '../rbac/index.js';
import type { Db, DbOrTx } from '../store/db.js';

export type Visibility = 'private' | 'internal' | 'public';

export interface ProjectRow {
  id: string;
  owner_id: string;
  owner_name: string;
  name: string;
  display_name: string | null;
  description: string;
  visibility: string;
  default_branch: string;
  repo_path: string;
  is_active: boolean;
  created_at: Date;
  updated_at: Date;
}

export interface ProjectView {
  id: string;
  owner: string;
  owner_id: string;
  name: string;
  full_name: string;
  display_name: string | null;
  description: string;
  visibility: Visibility;
  default_branch: string;
  archived: boolean;
  clone_url: string;
  created_at: Date;
  updated_at: Date;
}

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

/** Projects: rows plus their bare repositories under `<data_dir>/repos/<owner>/<name>.git`. */
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
      visibility: p.visibility as Visibility,
      default_branch: p.default_branch,
      archived: !p.is_active,
      clone_url: `${this.options.publicUrl}/${p.owner_name}/${p.name}.git`,
      created_at: p.created_at,
      updated_at: p.updated_at,
    };
  }

  private selectProjects(db: DbOrTx) {
    return db
      .selectFrom('projects as p')
      .innerJoin('users as u', 'u.id', 'p.owner_id')
      .select([
        'p.id',
        'p.owner_id',
        'u.name as owner_name',
        'p.name',
        'p.display_name',
        'p.description',
        'p.visibility',
        'p.default_branch',
        'p.repo_path',
        'p.is_active',
        'p.created_at',
        'p.updated_at',
      ]);
  }

  async get(id: string, db: DbOrTx = this.db): Promise<ProjectRow> {
    const row = await this.selectProjects(db).where('p.id', '=', id).executeTakeFirst();
    if (!row) throw notFound('project');
    return row;
  }

  /** By owner/name, following renames; undefined when unknown. */
  async findByName(
    owner: string,
    name: string,
  ): Promise<{ project: ProjectRow; redirected: boolean } | undefined> {
    const row = await this.selectProjects(this.db)
      .where('u.name', '=', owner)
      .where('p.name', '=', name)
      .executeTakeFirst();
    if (row) return { project: row, redirected: false };
    const redirect = await this.db
      .selectFrom('project_redirects as r')
      .innerJoin('users as u', 'u.id', 'r.owner_id')
      .select('r.project_id')
      .where('u.name', '=', owner)
      .where('r.name', '=', name)
      .executeTakeFirst();
    if (!redirect) return undefined;
    return { project: await this.get(redirect.project_id), redirected: true };
  }

  async create(
    actor: Actor,
    owner: Principal,
    input: {
      name: string;
      visibility?: Visibility;
      display_name?: string | null;
      description?: string;
      default_branch?: string;
    },
  ): Promise<ProjectView> {
    const defaultBranch = input.default_branch ?? 'main';
    if (!isValidBranchName(defaultBranch))
      throw unprocessable(`"${defaultBranch}" is not a valid branch name`);
    const repoPath = path.join('repos', owner.userName, `${input.name}.git`);
    const dir = path.join(this.options.dataDir, repoPath);
    let created = false;
    try {
      const project = await this.db.transaction().execute(async (trx) => {
        const taken = await trx
          .selectFrom('projects')
          .select('id')
          .where('owner_id', '=', owner.userId)
          .where('name', '=', input.name)
          .executeTakeFirst();
        if (taken) throw conflict(`you already have a project named ${input.name}`);
        const row = await trx
          .insertInto('projects')
          .values({
            owner_id: owner.userId,
            name: input.name,
            display_name: input.display_name ?? null,
            description: input.description ?? '',
            visibility: input.visibility ?? 'private',
            default_branch: defaultBranch,
            repo_path: repoPath,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        await writeAudit(trx, {
          actor,
          action: 'project.create',
          resourceType: 'project',
          resourceId: row.id,
          projectId: row.id,
          detail: { name: input.name, visibility: input.visibility ?? 'private' },
        });
        // The repository is created inside the transaction: if git fails, no project row remains.
        await mkdir(path.dirname(dir), { recursive: true });
        await runGit(['init', '--bare', '--quiet', `--initial-branch=${defaultBranch}`, dir]);
        created = true;
        await runGit(['config', 'receive.denyNonFastForwards', 'false'], { cwd: dir });
        await runGit(['config', 'http.receivepack', 'true'], { cwd: dir });
        return this.get(row.id, trx);
      });
      return this.view(project);
    } catch (err) {
      if (created) await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  async list(
    principal: Principal | null,
    q: {
      limit: number;
      cursor?: string;
      owner?: string;
      visibility?: Visibility;
      q?: string;
      archived?: boolean;
    },
  ): Promise<Page<ProjectView>> {
    let query = this.selectProjects(this.db)
      .select(cursorTime('p.created_at').as('cursor_at'))
      .where('p.is_active', '=', !q.archived)
      .orderBy('p.created_at', 'desc')
      .orderBy('p.id', 'desc')
      .limit(q.limit + 1);
    // The visibility rule lives in rbac; this is its SQL form.
    query = query.where(await this.rbac.visibleProjectsFilter(principal));
    if (q.owner) query = query.where('u.name', '=', q.owner);
    if (q.visibility) query = query.where('p.visibility', '=', q.visibility);
    if (q.q) {
      const like = `%${escapeLike(q.q)}%`;
      query = query.where((eb) => eb.or([eb('p.name', 'ilike', like), eb('p.description', 'ilike', like)]));
    }
    if (q.cursor) query = query.where(afterTimeCursor(q.cursor, { time: 'p.created_at', id: 'p.id' }));
    const rows = await query.execute();
    return toPage(
      rows,
      q.limit,
      (r) => [r.cursor_at, r.id],
      (r) => this.view(r),
    );
  }

  async update(
    actor: Actor,
    id: string,
    input: {
      name?: string;
      display_name?: string | null;
      description?: string;
      visibility?: Visibility;
      default_branch?: string;
    },
  ): Promise<ProjectView> {
    if (input.default_branch !== undefined && !isValidBranchName(input.default_branch)) {
      throw unprocessable(`"${input.default_branch}" is not a valid branch name`);
    }
    const before = await this.get(id);
    if (!before.is_active)
      throw conflict('the project is archived', [{ message: 'archived', archived: true }]);
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
        const changes: Record<string, unknown> = {};
        for (const key of ['display_name', 'description', 'visibility', 'default_branch'] as const) {
          if (input[key] !== undefined) changes[key] = input[key];
        }
        if (renaming) {
          const taken = await trx
            .selectFrom('projects')
            .select('id')
            .where('owner_id', '=', before.owner_id)
            .where('name', '=', input.name!)
            .executeTakeFirst();
          if (taken) throw conflict(`a project named ${input.name} already exists`);
          changes.name = input.name;
          changes.repo_path = newRepoPath;
          await trx
            .deleteFrom('project_redirects')
            .where('owner_id', '=', before.owner_id)
            .where('name', '=', input.name!)
            .execute();
          await trx
            .insertInto('project_redirects')
            .values({ owner_id: before.owner_id, name: before.name, project_id: id })
            .onConflict((oc) => oc.columns(['owner_id', 'name']).doUpdateSet({ project_id: id }))
            .execute();
        }
        if (Object.keys(changes).length > 0)
          await trx.updateTable('projects').set(changes).where('id', '=', id).execute();
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
        throw err;
      });
    await this.rbac.invalidate({ projectId: id });
    return this.view(updated);
  }

  /** Archive (soft delete): hidden and read-only; the repository is kept. */
  async archive(actor: Actor, id: string): Promise<void> {
    const project = await this.get(id);
    if (!project.is_active)
      throw conflict('the project is already archived', [{ message: 'archived', archived: true }]);
    await this.db.transaction().execute(async (trx) => {
      await trx.updateTable('projects').set({ is_active: false }).where('id', '=', id).execute();
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
