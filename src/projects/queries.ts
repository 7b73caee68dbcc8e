import { type RawBuilder, type SqlBool, sql } from 'kysely';
import { escapeLike } from '../core/validation.js';
import type { DbOrTx } from '../store/db.js';
import type { Visibility } from './schemas.js';

/**
 * The SQL of `projects` and `project_redirects` (owned by this module). Names keep their case and
 * are compared ignoring it, on both sides: `lower(name)` is what the unique indexes cover
 * (`projects_owner_name_lower_key`, `project_redirects_owner_name_lower_key`), and owners are user
 * names, which ignore case the same way.
 */

const lowerEq = (column: string, value: string) => sql<boolean>`lower(${sql.ref(column)}) = lower(${value})`;

export function selectProjects(db: DbOrTx) {
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

export type ProjectRow = Awaited<ReturnType<ReturnType<typeof selectProjects>['executeTakeFirstOrThrow']>>;

export function findProjectById(db: DbOrTx, id: string): Promise<ProjectRow | undefined> {
  return selectProjects(db).where('p.id', '=', id).executeTakeFirst();
}

/** The project called `owner/name` now, ignoring case. */
export function findProjectByName(db: DbOrTx, owner: string, name: string): Promise<ProjectRow | undefined> {
  return selectProjects(db).where(lowerEq('u.name', owner)).where(lowerEq('p.name', name)).executeTakeFirst();
}

/** The project once called `owner/name` (renamed since), ignoring case. */
export async function findRedirect(db: DbOrTx, owner: string, name: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('project_redirects as r')
    .innerJoin('users as u', 'u.id', 'r.owner_id')
    .select('r.project_id')
    .where(lowerEq('u.name', owner))
    .where(lowerEq('r.name', name))
    .executeTakeFirst();
  return row?.project_id;
}

/** Whether the owner has another project of this name, ignoring case. */
export async function projectNameTaken(
  db: DbOrTx,
  ownerId: string,
  name: string,
  except?: string,
): Promise<boolean> {
  let q = db.selectFrom('projects').select('id').where('owner_id', '=', ownerId).where(lowerEq('name', name));
  if (except) q = q.where('id', '<>', except);
  return (await q.executeTakeFirst()) !== undefined;
}

export async function insertProject(
  trx: DbOrTx,
  values: {
    owner_id: string;
    name: string;
    display_name: string | null;
    description: string;
    visibility: Visibility;
    default_branch: string;
    repo_path: string;
  },
): Promise<string> {
  const row = await trx.insertInto('projects').values(values).returning('id').executeTakeFirstOrThrow();
  return row.id;
}

export type ProjectChanges = Partial<{
  name: string;
  repo_path: string;
  display_name: string | null;
  description: string;
  visibility: Visibility;
  default_branch: string;
}>;

export async function updateProject(trx: DbOrTx, id: string, changes: ProjectChanges): Promise<void> {
  await trx.updateTable('projects').set(changes).where('id', '=', id).execute();
}

/** Marks the project archived; false when it already was (or does not exist). */
export async function archiveProject(trx: DbOrTx, id: string): Promise<boolean> {
  const row = await trx
    .updateTable('projects')
    .set({ is_active: false })
    .where('id', '=', id)
    .where('is_active', '=', true)
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * A rename: the new name stops redirecting (it is a project now) and the old one starts leading to
 * the project, replacing whatever it led to before, whatever its case.
 */
export async function recordRename(
  trx: DbOrTx,
  project: { id: string; owner_id: string },
  from: string,
  to: string,
): Promise<void> {
  await trx
    .deleteFrom('project_redirects')
    .where('owner_id', '=', project.owner_id)
    .where((eb) => eb.or([lowerEq('name', to), lowerEq('name', from)]))
    .execute();
  await trx
    .insertInto('project_redirects')
    .values({ owner_id: project.owner_id, name: from, project_id: project.id })
    .execute();
}

export interface ProjectListFilter {
  owner?: string;
  visibility?: Visibility;
  q?: string;
  archived?: boolean;
}

/**
 * The projects of a list before its page ending (`pageByTime` on `p.created_at`, `p.id`);
 * `visible` is rbac's visibility rule in SQL.
 */
export function listProjectsQuery(db: DbOrTx, f: ProjectListFilter, visible: RawBuilder<SqlBool>) {
  let query = selectProjects(db).where('p.is_active', '=', !f.archived).where(visible);
  if (f.owner) query = query.where(lowerEq('u.name', f.owner));
  if (f.visibility) query = query.where('p.visibility', '=', f.visibility);
  if (f.q) {
    const like = `%${escapeLike(f.q)}%`;
    query = query.where((eb) => eb.or([eb('p.name', 'ilike', like), eb('p.description', 'ilike', like)]));
  }
  return query;
}

/** Whether `err` is PostgreSQL's unique violation of `constraint` (a unique index counts too). */
export function isUniqueViolation(err: unknown, constraint: string): boolean {
  const e = err as { code?: unknown; constraint?: unknown } | null;
  return typeof e === 'object' && e !== null && e.code === '23505' && e.constraint === constraint;
}
