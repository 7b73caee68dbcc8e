import { sql } from 'kysely';
import type { Db, DbOrTx } from '../store/db.js';
import type { AgentMessageRow, AgentSessionRow } from '../store/schema.js';
import type { ProgressEvent, UsageTotals } from './progress.js';
import { LIVE_STATUSES } from './transitions.js';

export type { AgentMessageRow, AgentSessionRow };

export async function sessionById(
  db: DbOrTx,
  projectId: string,
  id: string,
): Promise<AgentSessionRow | undefined> {
  return db
    .selectFrom('agent_sessions')
    .selectAll()
    .where('id', '=', id)
    .where('project_id', '=', projectId)
    .executeTakeFirst();
}

export async function globalSettings(db: DbOrTx) {
  return db.selectFrom('agent_settings').selectAll().where('id', '=', true).executeTakeFirstOrThrow();
}

export async function projectSettings(db: DbOrTx, projectId: string) {
  return db
    .selectFrom('agent_project_settings')
    .selectAll()
    .where('project_id', '=', projectId)
    .executeTakeFirst();
}

/** Serialises session creation (caps are counted then a row inserted): one transaction-level lock. */
export async function lockCreation(trx: DbOrTx): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext('agent_sessions.create'))`.execute(trx);
}

export async function liveCounts(
  trx: DbOrTx,
  projectId: string,
): Promise<{ total: number; project: number }> {
  const r = await trx
    .selectFrom('agent_sessions')
    .select([
      sql<number>`count(*)::int`.as('total'),
      sql<number>`(count(*) filter (where project_id = ${projectId}))::int`.as('project'),
    ])
    .where('status', 'in', LIVE_STATUSES)
    .executeTakeFirstOrThrow();
  return r;
}

export async function startedByUserSince(trx: DbOrTx, userId: string, seconds: number): Promise<number> {
  const r = await trx
    .selectFrom('agent_sessions')
    .select(sql<number>`count(*)::int`.as('n'))
    .where('user_id', '=', userId)
    .where('created_at', '>', sql<Date>`now() - make_interval(secs => ${seconds})`)
    .executeTakeFirstOrThrow();
  return r.n;
}

/** The cost of the project's sessions created since the start of the day (UTC). */
export async function costToday(db: DbOrTx, projectId: string): Promise<number> {
  const r = await db
    .selectFrom('agent_sessions')
    .select(sql<number>`coalesce(sum(cost_usd), 0)::float8`.as('cost'))
    .where('project_id', '=', projectId)
    .where('created_at', '>=', sql<Date>`date_trunc('day', now() at time zone 'utc') at time zone 'utc'`)
    .executeTakeFirstOrThrow();
  return r.cost;
}

/**
 * Stores events with the session's next sequence numbers (allocated by one UPDATE … RETURNING, so
 * concurrent writers of one session never share a number) and returns them as stored.
 */
export async function appendMessages(
  db: Db,
  sessionId: string,
  events: ProgressEvent[],
): Promise<AgentMessageRow[]> {
  if (events.length === 0) return [];
  return db.transaction().execute(async (trx) => {
    const { next } = await trx
      .updateTable('agent_sessions')
      .set({ next_message_seq: sql<number>`next_message_seq + ${events.length}` })
      .where('id', '=', sessionId)
      .returning(sql<number>`next_message_seq - ${events.length}`.as('next'))
      .executeTakeFirstOrThrow();
    return trx
      .insertInto('agent_messages')
      .values(
        events.map((e, i) => ({
          session_id: sessionId,
          seq: next + i,
          role: e.role,
          kind: e.kind,
          content: e.content,
          metadata: JSON.stringify(e.metadata),
        })),
      )
      .returningAll()
      .execute();
  });
}

export async function messagesAfter(
  db: DbOrTx,
  sessionId: string,
  afterSeq: number,
  limit: number,
): Promise<AgentMessageRow[]> {
  return db
    .selectFrom('agent_messages')
    .selectAll()
    .where('session_id', '=', sessionId)
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(limit)
    .execute();
}

export async function recordUsage(db: DbOrTx, id: string, u: UsageTotals): Promise<void> {
  await db
    .updateTable('agent_sessions')
    .set({
      input_tokens: u.inputTokens,
      output_tokens: u.outputTokens,
      cache_read_tokens: u.cacheReadTokens,
      cache_write_tokens: u.cacheWriteTokens,
      cost_usd: u.costUsd,
      num_turns: u.numTurns,
    })
    .where('id', '=', id)
    .execute();
}

export async function renewLeases(
  db: DbOrTx,
  ids: string[],
  holder: string,
  leaseSeconds: number,
): Promise<void> {
  if (ids.length === 0) return;
  await db
    .updateTable('agent_sessions')
    .set({ lease_expires_at: sql<Date>`now() + make_interval(secs => ${leaseSeconds})` })
    .where('id', 'in', ids)
    .where('lease_holder', '=', holder)
    .where('status', 'in', LIVE_STATUSES)
    .execute();
}

/** Live sessions nobody holds any more: the lease ran out (instance gone) or a pending one never started. */
export async function vanishedSessions(db: DbOrTx, pendingGraceSeconds: number): Promise<AgentSessionRow[]> {
  return db
    .selectFrom('agent_sessions')
    .selectAll()
    .where('status', 'in', LIVE_STATUSES)
    .where((eb) =>
      eb.or([
        eb('lease_expires_at', '<', sql<Date>`now()`),
        eb.and([
          eb('lease_expires_at', 'is', null),
          eb('created_at', '<', sql<Date>`now() - make_interval(secs => ${pendingGraceSeconds})`),
        ]),
      ]),
    )
    .limit(100)
    .execute();
}

/** What a session produced: commits on its branch since base, MRs from its branch, their pipelines. */
export async function producedLinks(db: DbOrTx, s: AgentSessionRow, commits: string[]) {
  const mrs = s.branch
    ? await db
        .selectFrom('merge_requests')
        .select(['number'])
        .where('project_id', '=', s.project_id)
        .where('source_branch', '=', s.branch)
        .orderBy('number')
        .execute()
    : [];
  const pipelines =
    commits.length > 0
      ? await db
          .selectFrom('pipelines')
          .select(['id', 'number', 'status', 'commit_sha'])
          .where('project_id', '=', s.project_id)
          .where('commit_sha', 'in', commits)
          .orderBy('created_at')
          .limit(100)
          .execute()
      : [];
  return { merge_requests: mrs.map((m) => m.number), pipelines };
}
