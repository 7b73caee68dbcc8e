import type { DbOrTx } from '../store/db.js';
import type { Actor } from './http.js';

export interface AuditEntry {
  actor: Actor;
  /** `<resource>.<verb>`, e.g. `user.create`, `role.assign`. */
  action: string;
  resourceType: string;
  resourceId?: string | null;
  projectId?: string | null;
  detail?: Record<string, unknown>;
}

/** Keys never written to the audit log, whatever a caller passes. */
const SENSITIVE_KEY = /pass(word)?|token|secret|key|prompt|authorization|cookie|hash/i;

function redact(value: unknown, depth = 0): unknown {
  if (depth > 4) return '[truncated]';
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => redact(v, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (!SENSITIVE_KEY.test(k)) out[k] = redact(v, depth + 1);
    }
    return out;
  }
  if (typeof value === 'string' && value.length > 500) return `${value.slice(0, 500)}…`;
  return value;
}

/**
 * The one audit writer. Call it with the transaction that makes the change, so the row exists if
 * and only if the change does.
 */
export async function writeAudit(db: DbOrTx, entry: AuditEntry): Promise<void> {
  await db
    .insertInto('audit_log')
    .values({
      actor_id: entry.actor.id,
      actor_name: entry.actor.name,
      action: entry.action,
      resource_type: entry.resourceType,
      resource_id: entry.resourceId ?? null,
      project_id: entry.projectId ?? null,
      detail: JSON.stringify(redact(entry.detail ?? {})),
      ip: entry.actor.ip,
    })
    .execute();
}

/** The actor of changes the platform makes by itself (bootstrap, background loops, CLI). */
export const systemActor: Actor = { id: null, name: 'system', ip: null };
