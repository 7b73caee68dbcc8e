import { sql } from 'kysely';
import type { DbOrTx } from '../store/db.js';
import {
  type AgentSessionRow,
  type AgentStopReason,
  agentSessionStatusTransitions,
  transitionSources,
} from '../store/schema.js';

/**
 * The only writer of `agent_sessions.status`: guarded `UPDATE … WHERE status IN (<sources>)
 * RETURNING`, the sources checked against the schema's transition table when this file loads. A
 * lost race (the session ended meanwhile: stop vs exit, reaper vs runner) returns null.
 */
const T = {
  start: transitionSources(agentSessionStatusTransitions, 'session start', ['pending'], 'running'),
  finish: transitionSources(
    agentSessionStatusTransitions,
    'session finish',
    ['running'],
    ['completed', 'failed'],
  ),
  fail: transitionSources(agentSessionStatusTransitions, 'session fail', ['pending', 'running'], 'failed'),
  stop: transitionSources(agentSessionStatusTransitions, 'session stop', ['pending', 'running'], 'stopped'),
} as const;

export const LIVE_STATUSES = T.stop;

export async function startSession(
  db: DbOrTx,
  id: string,
  runner: { kind: 'local' | 'kubernetes'; ref: string; holder: string; leaseSeconds: number; deadline: Date },
): Promise<AgentSessionRow | null> {
  return (
    (await db
      .updateTable('agent_sessions')
      .set({
        status: 'running',
        runner: runner.kind,
        runner_ref: runner.ref,
        lease_holder: runner.holder,
        lease_expires_at: sql<Date>`now() + make_interval(secs => ${runner.leaseSeconds})`,
        deadline_at: runner.deadline,
        started_at: sql<Date>`now()`,
      })
      .where('id', '=', id)
      .where('status', 'in', T.start)
      .returningAll()
      .executeTakeFirst()) ?? null
  );
}

/** running → completed (exit 0) or failed. */
export async function finishSession(
  db: DbOrTx,
  id: string,
  end: { status: 'completed' | 'failed'; exitCode: number | null; error: string | null },
): Promise<AgentSessionRow | null> {
  return (
    (await db
      .updateTable('agent_sessions')
      .set({
        status: end.status,
        exit_code: end.exitCode,
        error: end.error,
        finished_at: sql<Date>`now()`,
        lease_holder: null,
        lease_expires_at: null,
      })
      .where('id', '=', id)
      .where('status', 'in', T.finish)
      .returningAll()
      .executeTakeFirst()) ?? null
  );
}

/** pending/running → failed: could not start, timed out, or the reaper found the runner gone. */
export async function failSession(db: DbOrTx, id: string, error: string): Promise<AgentSessionRow | null> {
  return (
    (await db
      .updateTable('agent_sessions')
      .set({
        status: 'failed',
        error,
        finished_at: sql<Date>`now()`,
        lease_holder: null,
        lease_expires_at: null,
      })
      .where('id', '=', id)
      .where('status', 'in', T.fail)
      .returningAll()
      .executeTakeFirst()) ?? null
  );
}

/** pending/running → stopped, with why (a user, or a limit the platform enforces). */
export async function stopSession(
  db: DbOrTx,
  id: string,
  reason: AgentStopReason,
  error: string | null,
): Promise<AgentSessionRow | null> {
  return (
    (await db
      .updateTable('agent_sessions')
      .set({
        status: 'stopped',
        stop_reason: reason,
        error,
        finished_at: sql<Date>`now()`,
        lease_holder: null,
        lease_expires_at: null,
      })
      .where('id', '=', id)
      .where('status', 'in', T.stop)
      .returningAll()
      .executeTakeFirst()) ?? null
  );
}
