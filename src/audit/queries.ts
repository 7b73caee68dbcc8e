import { afterTimeCursor, cursorTime, toPage } from '../core/pagination.js';
import type { Db } from '../store/db.js';

export interface AuditFilter {
  limit: number;
  cursor?: string;
  actor_id?: string;
  actor?: string;
  action?: string;
  resource_type?: string;
  resource_id?: string;
  project_id?: string;
  since?: Date;
  until?: Date;
}

/** Newest first; the cursor is (created_at, id) of the last row. */
export async function listAudit(db: Db, f: AuditFilter) {
  let q = db
    .selectFrom('audit_log')
    .selectAll()
    .select(cursorTime('created_at').as('cursor_at'))
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(f.limit + 1);
  if (f.cursor) q = q.where(afterTimeCursor(f.cursor, { time: 'created_at', id: 'id' }));
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
  const rows = await q.execute();
  return toPage(
    rows,
    f.limit,
    (r) => [r.cursor_at, r.id],
    ({ cursor_at: _key, ...row }) => row,
  );
}
