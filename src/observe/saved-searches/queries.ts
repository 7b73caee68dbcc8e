import type { Selectable } from 'kysely';
import { type Page, pageByTime } from '../../core/pagination.js';
import type { Db, DbOrTx } from '../../store/db.js';
import type { SavedSearchesTable } from '../../store/schema.js';
import type { SavedSearchFilter, SavedSearchView } from './schemas.js';

export type SavedSearchRow = Selectable<SavedSearchesTable> & { owner: string };

export function savedSearchView(r: SavedSearchRow, publicUrl: string): SavedSearchView {
  return {
    id: r.id,
    user_id: r.user_id,
    owner: r.owner,
    project_id: r.project_id,
    name: r.name,
    description: r.description,
    signal: r.signal,
    query: r.query,
    filters: r.filters,
    visibility: r.visibility,
    link: `${publicUrl.replace(/\/$/, '')}/api/observe/saved-searches/${r.id}`,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}

const base = (db: DbOrTx) =>
  db
    .selectFrom('saved_searches as s')
    .innerJoin('users as u', 'u.id', 's.user_id')
    .selectAll('s')
    .select('u.name as owner');

export async function findSavedSearch(db: DbOrTx, id: string): Promise<SavedSearchRow | undefined> {
  return base(db).where('s.id', '=', id).executeTakeFirst();
}

/** The caller's own searches, or a project's searches the caller may see (own + shared). */
export async function listSavedSearches(
  db: Db,
  userId: string,
  f: SavedSearchFilter,
  publicUrl: string,
): Promise<Page<SavedSearchView>> {
  let q = base(db);
  if (f.project_id) {
    const projectId = f.project_id;
    q = q
      .where('s.project_id', '=', projectId)
      .where((eb) => eb.or([eb('s.user_id', '=', userId), eb('s.visibility', '=', 'project')]));
  } else {
    q = q.where('s.user_id', '=', userId);
  }
  if (f.signal) q = q.where('s.signal', '=', f.signal);
  return pageByTime(q, { time: 's.created_at', id: 's.id' }, f, (r) => savedSearchView(r, publicUrl));
}
