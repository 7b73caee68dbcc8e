import { writeAudit } from '../../core/audit.js';
import { conflict, forbidden, notFound, unprocessable } from '../../core/errors.js';
import type { Actor } from '../../core/http.js';
import type { Page } from '../../core/pagination.js';
import { type Db, transaction } from '../../store/db.js';
import type { SavedSearchSignal } from '../../store/schema.js';
import {
  type AlertExpr,
  compileAlert,
  compileLogFilter,
  parseAggregation,
  parseAlert,
  parseLogFilter,
  parseOrRefuse,
  QueryError,
} from '../query-lang/index.js';
import { findSavedSearch, listSavedSearches, type SavedSearchRow, savedSearchView } from './queries.js';
import { SAVED_SEARCH_REASONS } from './reasons.js';
import type {
  CreateSavedSearchInput,
  SavedSearchFilter,
  SavedSearchView,
  UpdateSavedSearchInput,
} from './schemas.js';

/** A saved query must mean something for its signal (an empty one: every row). */
function checkQuery(signal: SavedSearchSignal, query: string, projectId: string | null): void {
  if (query.trim() === '') return;
  parseOrRefuse(() => {
    if (signal === 'metrics') {
      // An aggregation, or a whole alert expression (with its threshold, or absent()).
      let expr: AlertExpr;
      try {
        const aggregation = parseAggregation(query);
        expr = { kind: 'comparison', left: aggregation, op: '>', threshold: 0, opAt: aggregation.fnAt };
      } catch (err) {
        if (!(err instanceof QueryError)) throw err;
        expr = parseAlert(query);
      }
      compileAlert(expr, { projectId }, new Date());
      return;
    }
    compileLogFilter(parseLogFilter(query), { projectId });
  }, 'body.query');
}

const isUniqueViolation = (err: unknown) => (err as { code?: unknown } | null)?.code === '23505';

/** Saved searches: per user, optionally of a project and shared with whoever can read it. */
export class SavedSearchesService {
  constructor(
    private readonly db: Db,
    private readonly publicUrl: string,
  ) {}

  async get(id: string): Promise<SavedSearchRow> {
    const row = await findSavedSearch(this.db, id);
    if (!row) throw notFound('saved search');
    return row;
  }

  view(row: SavedSearchRow): SavedSearchView {
    return savedSearchView(row, this.publicUrl);
  }

  list(userId: string, f: SavedSearchFilter): Promise<Page<SavedSearchView>> {
    return listSavedSearches(this.db, userId, f, this.publicUrl);
  }

  private refuseTaken(err: unknown): never {
    if (isUniqueViolation(err))
      throw conflict('you already have a saved search of this name').because(SAVED_SEARCH_REASONS.nameTaken);
    throw err;
  }

  async create(actor: Actor & { id: string }, input: CreateSavedSearchInput): Promise<SavedSearchView> {
    const projectId = input.project_id ?? null;
    if (input.visibility === 'project' && !projectId)
      throw unprocessable('only a search of a project can be shared', [
        { path: 'body.visibility', message: 'needs project_id' },
      ]).because(SAVED_SEARCH_REASONS.shareNeedsProject);
    checkQuery(input.signal, input.query, projectId);
    const id = await transaction(this.db, async (trx) => {
      const row = await trx
        .insertInto('saved_searches')
        .values({
          user_id: actor.id,
          project_id: projectId,
          name: input.name,
          description: input.description ?? '',
          signal: input.signal,
          query: input.query,
          filters: JSON.stringify(input.filters ?? {}),
          visibility: input.visibility ?? 'private',
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      await writeAudit(trx, {
        actor,
        action: 'saved_search.create',
        resourceType: 'saved_search',
        resourceId: row.id,
        projectId,
        detail: { name: input.name.slice(0, 80), visibility: input.visibility ?? 'private' },
      });
      return row.id;
    }).catch((err: unknown) => this.refuseTaken(err));
    return this.view(await this.get(id));
  }

  private requireOwner(row: SavedSearchRow, userId: string): void {
    if (row.user_id !== userId)
      throw forbidden('only the owner changes a saved search').because(SAVED_SEARCH_REASONS.notOwner);
  }

  async update(
    actor: Actor & { id: string },
    row: SavedSearchRow,
    input: UpdateSavedSearchInput,
  ): Promise<SavedSearchView> {
    this.requireOwner(row, actor.id);
    if (input.visibility === 'project' && !row.project_id)
      throw unprocessable('only a search of a project can be shared', [
        { path: 'body.visibility', message: 'the search has no project' },
      ]).because(SAVED_SEARCH_REASONS.shareNeedsProject);
    if (input.query !== undefined) checkQuery(row.signal, input.query, row.project_id);
    const fields = Object.keys(input).filter((k) => input[k as keyof UpdateSavedSearchInput] !== undefined);
    if (fields.length > 0)
      await transaction(this.db, async (trx) => {
        await trx
          .updateTable('saved_searches')
          .set({
            ...(input.name !== undefined && { name: input.name }),
            ...(input.description !== undefined && { description: input.description }),
            ...(input.query !== undefined && { query: input.query }),
            ...(input.filters !== undefined && { filters: JSON.stringify(input.filters) }),
            ...(input.visibility !== undefined && { visibility: input.visibility }),
          })
          .where('id', '=', row.id)
          .execute();
        await writeAudit(trx, {
          actor,
          action: 'saved_search.update',
          resourceType: 'saved_search',
          resourceId: row.id,
          projectId: row.project_id,
          detail: { name: (input.name ?? row.name).slice(0, 80), fields },
        });
      }).catch((err: unknown) => this.refuseTaken(err));
    return this.view(await this.get(row.id));
  }

  async remove(actor: Actor & { id: string }, row: SavedSearchRow): Promise<void> {
    this.requireOwner(row, actor.id);
    await transaction(this.db, async (trx) => {
      await trx.deleteFrom('saved_searches').where('id', '=', row.id).execute();
      await writeAudit(trx, {
        actor,
        action: 'saved_search.delete',
        resourceType: 'saved_search',
        resourceId: row.id,
        projectId: row.project_id,
        detail: { name: row.name.slice(0, 80) },
      });
    });
  }
}
