import { pageByTime } from '../core/pagination.js';
import type { Db } from '../store/db.js';

export interface AuditFilter {
  limit: number;
  cursor?: string | undefined;
  actor_id?: string | undefined;
  actor?: string | undefined;
  action?: string | undefined;
  resource_type?: string | undefined;
  resource_id?: string | undefined;
  project_id?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
}

/** Newest first; the cursor is (created_at, id) of the last row. */
export function listAudit(db: Db, f: AuditFilter) {
  let q = db.selectFrom('audit_log').selectAll();
  if (f.actor_id) q = q.where('actor_id', '=', f.actor_id);
  if (f.actor) q = q.where('actor_name', '=', f.actor);
  if (f.action)
    q = f.action.endsWith('.*')
      ? q.where('action', 'like', `${f.action.slice(0, -1)}%`)
      : q.where('action', '=', f.action);
  if (f.resource_type) q = q.where('resource_type', '=', f.resource_type);
  if (f.resource_id) q = q.where('resource_id', '=', f.resource_id);
  if (f.project_id) q = q.where('project_id', '=', f.project_id);
  if (f.since) q = q.where('created_at', '>=', f.since);
  if (f.until) q = q.where('created_at', '<', f.until);
  // pageByTime adds the cursor column to each row; the answer does not show it.
  return pageByTime(q, { time: 'created_at', id: 'id' }, f, (row) => {
    const { cursor_at: _key, ...entry } = row as typeof row & { cursor_at?: string };
    return entry;
  });
}

/** Whether the user owns the project: a project owner may read their project's audit rows. */
export async function ownsProject(db: Db, userId: string, projectId: string): Promise<boolean> {
  const row = await db
    .selectFrom('projects')
    .select('id')
    .where('id', '=', projectId)
    .where('owner_id', '=', userId)
    .executeTakeFirst();
  return row !== undefined;
}
