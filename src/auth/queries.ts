import { sql } from 'kysely';
import { escapeLike } from '../core/validation.js';
import type { Db, DbOrTx, Tx } from '../store/db.js';
import type { UserRow } from '../store/schema.js';

/** User names are unique ignoring case and found ignoring case (`users_name_lower_key`). */
export function findUserByName(db: DbOrTx, name: string): Promise<UserRow | undefined> {
  return db
    .selectFrom('users')
    .selectAll()
    .where(sql<string>`lower(name)`, '=', name.toLowerCase())
    .executeTakeFirst();
}

export function findUserById(db: DbOrTx, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The session behind a cookie digest, with its user. */
export function sessionByDigest(db: Db, digest: string) {
  return db
    .selectFrom('auth_sessions as s')
    .innerJoin('users as u', 'u.id', 's.user_id')
    .select(['s.id', 's.expires_at', 'u.id as user_id', 'u.name', 'u.user_type', 'u.is_active'])
    .where('s.token_hash', '=', digest)
    .executeTakeFirst();
}

/** The API token behind a digest, with its user. */
export function tokenByDigest(db: Db, digest: string) {
  return db
    .selectFrom('api_tokens as t')
    .innerJoin('users as u', 'u.id', 't.user_id')
    .select([
      't.id',
      't.expires_at',
      't.revoked_at',
      't.scopes',
      't.project_id',
      'u.id as user_id',
      'u.name',
      'u.user_type',
      'u.is_active',
    ])
    .where('t.token_hash', '=', digest)
    .executeTakeFirst();
}

export function touchToken(db: Db, id: string) {
  return db.updateTable('api_tokens').set({ last_used_at: sql<Date>`now()` }).where('id', '=', id).execute();
}

export function touchSession(db: Db, id: string) {
  return db
    .updateTable('auth_sessions')
    .set({ last_seen_at: sql<Date>`now()` })
    .where('id', '=', id)
    .execute();
}

export function insertSession(
  trx: Tx,
  values: { userId: string; digest: string; ip: string; userAgent: string | null; expiresAt: Date },
) {
  return trx
    .insertInto('auth_sessions')
    .values({
      user_id: values.userId,
      token_hash: values.digest,
      ip: values.ip,
      user_agent: values.userAgent,
      expires_at: values.expiresAt,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
}

export function deleteSession(trx: Tx, id: string) {
  return trx.deleteFrom('auth_sessions').where('id', '=', id).execute();
}

export function deleteSessionsOf(trx: Tx, userId: string) {
  return trx.deleteFrom('auth_sessions').where('user_id', '=', userId).execute();
}

export async function deleteExpiredSessions(db: Db): Promise<number> {
  const result = await db
    .deleteFrom('auth_sessions')
    .where('expires_at', '<', sql<Date>`now()`)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Deactivation: every session ends and every token is revoked. */
export async function endCredentials(trx: Tx, userId: string): Promise<void> {
  await deleteSessionsOf(trx, userId);
  await trx
    .updateTable('api_tokens')
    .set({ revoked_at: sql<Date>`now()` })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .execute();
}

/** Role names and scopes of a user's bindings, for `/api/auth/me`. */
export function userRoleNames(db: Db, userId: string) {
  return db
    .selectFrom('user_roles as ur')
    .innerJoin('roles as r', 'r.id', 'ur.role_id')
    .select(['r.name', 'ur.project_id'])
    .where('ur.user_id', '=', userId)
    .orderBy('r.name')
    .execute();
}

/** A user holding this name (ignoring case) or this e-mail (ignoring case), if any. */
export function userHoldingNameOrEmail(trx: Tx, name: string, email: string) {
  return trx
    .selectFrom('users')
    .select(['name', 'email'])
    .where((eb) =>
      eb.or([
        eb(sql<string>`lower(name)`, '=', name.toLowerCase()),
        eb(sql<string>`lower(email)`, '=', email.toLowerCase()),
      ]),
    )
    .executeTakeFirst();
}

/** Users by name (then id); `q` matches name or e-mail anywhere, ignoring case. */
export function usersByName(db: Db, filter: { q?: string | undefined; active?: boolean | undefined }) {
  let q = db.selectFrom('users').selectAll();
  if (filter.q) {
    const pattern = `%${escapeLike(filter.q)}%`;
    q = q.where((eb) => eb.or([eb('name', 'ilike', pattern), eb('email', 'ilike', pattern)]));
  }
  if (filter.active !== undefined) q = q.where('is_active', '=', filter.active);
  return q;
}

export function ownTokens(db: Db, userId: string, onlyId: string | null) {
  let q = db
    .selectFrom('api_tokens')
    .selectAll()
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null);
  if (onlyId) q = q.where('id', '=', onlyId);
  return q.orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
}

export function tokenById(db: Db, id: string) {
  return db
    .selectFrom('api_tokens')
    .select(['id', 'user_id', 'revoked_at', 'name'])
    .where('id', '=', id)
    .executeTakeFirst();
}
