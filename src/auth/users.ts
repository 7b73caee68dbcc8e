import { sql } from 'kysely';
import { type AuditEntry, writeAudit } from '../core/audit.js';
import { AppError, badRequest, conflict, forbidden, notFound, unprocessable } from '../core/errors.js';
import type { Actor } from '../core/http.js';
import { decodeCursor, type Page, toPage } from '../core/pagination.js';
import { isUuid } from '../core/validation.js';
import type { RbacService } from '../rbac/index.js';
import type { Db, Tx } from '../store/db.js';
import type { UserRow } from '../store/schema.js';
import { hashPassword } from './credentials.js';
import { checkPassword, type FailureLimiter } from './passwords.js';
import {
  deleteSessionsOf,
  endCredentials,
  findUserById,
  findUserByName,
  userHoldingNameOrEmail,
  usersByName,
} from './queries.js';
import { AUTH_REASONS } from './reasons.js';
import type { UserType, UserView } from './schemas.js';

export type { UserType, UserView } from './schemas.js';

export const userView = (u: UserRow): UserView => ({
  id: u.id,
  name: u.name,
  email: u.email,
  display_name: u.display_name,
  user_type: u.user_type as UserType,
  is_active: u.is_active,
  created_at: u.created_at,
  updated_at: u.updated_at,
});

/** A change and its audit row in one transaction. */
export function audited<T>(db: Db, fn: (trx: Tx) => Promise<{ result: T; audit: AuditEntry }>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    const { result, audit } = await fn(trx);
    await writeAudit(trx, audit);
    return result;
  });
}

const selfDeactivation = () =>
  conflict('you cannot deactivate yourself').because(AUTH_REASONS.selfDeactivation);

/** User accounts: creation, profile and password changes, deactivation. */
export class Users {
  constructor(
    private readonly db: Db,
    private readonly limiter: FailureLimiter,
    private readonly rbac: RbacService,
  ) {}

  async createUser(
    actor: Actor,
    input: {
      name: string;
      email: string;
      password?: string | undefined;
      display_name?: string | null | undefined;
      user_type?: UserType | undefined;
    },
  ): Promise<UserView> {
    const userType = input.user_type ?? 'human';
    if (userType === 'human' && !input.password)
      throw unprocessable('password is required for human users').because(AUTH_REASONS.passwordRequired);
    const passwordHash = input.password ? await hashPassword(input.password) : null;
    return audited(this.db, async (trx) => {
      const taken = await userHoldingNameOrEmail(trx, input.name, input.email);
      if (taken) {
        const byName = taken.name.toLowerCase() === input.name.toLowerCase();
        throw conflict(
          byName ? `user name already taken (by ${taken.name})` : 'email already in use',
        ).because(AUTH_REASONS.userTaken);
      }
      const user = await trx
        .insertInto('users')
        .values({
          name: input.name,
          email: input.email,
          display_name: input.display_name ?? null,
          password_hash: passwordHash,
          user_type: userType,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return {
        result: userView(user),
        audit: {
          actor,
          action: 'user.create',
          resourceType: 'user',
          resourceId: user.id,
          detail: { name: user.name, user_type: userType },
        },
      };
    });
  }

  /** Ordered by name, so the cursor is (name, id) rather than a time. */
  async listUsers(query: {
    limit: number;
    cursor?: string | undefined;
    q?: string | undefined;
    active?: boolean | undefined;
  }): Promise<Page<UserView>> {
    let q = usersByName(this.db, query)
      .orderBy('name')
      .orderBy('id')
      .limit(query.limit + 1);
    if (query.cursor) {
      const [name, id] = decodeCursor(query.cursor, 2) as [string, string];
      q = q.where((eb) => eb.or([eb('name', '>', name), eb.and([eb('name', '=', name), eb('id', '>', id)])]));
    }
    return toPage(await q.execute(), query.limit, (r) => [r.name, r.id], userView);
  }

  /** A user by id, or by name ignoring case: how every route addresses a user. */
  async findUser(idOrName: string): Promise<UserRow | undefined> {
    return isUuid(idOrName) ? findUserById(this.db, idOrName) : findUserByName(this.db, idOrName);
  }

  async getUser(idOrName: string): Promise<UserView> {
    const user = await this.findUser(idOrName);
    if (!user) throw notFound('user');
    return userView(user);
  }

  async updateUser(
    actor: Actor,
    id: string,
    input: {
      display_name?: string | null | undefined;
      email?: string | undefined;
      password?: string | undefined;
      old_password?: string | undefined;
      is_active?: boolean | undefined;
    },
    asAdmin: boolean,
  ): Promise<UserView> {
    const user = await findUserById(this.db, id);
    if (!user) throw notFound('user');
    if (!asAdmin && input.is_active !== undefined)
      throw forbidden('only admins may activate or deactivate users');
    const self = actor.id === id;
    if (input.password !== undefined && (self || !asAdmin)) {
      if (!input.old_password)
        throw badRequest('old_password is required to change your own password', [
          { path: 'body.old_password', message: 'required' },
        ]).because(AUTH_REASONS.oldPasswordRequired);
      // The same limiter as login: old_password is a password guess like any other.
      const ok = await checkPassword(
        this.db,
        this.limiter,
        user.name,
        input.old_password,
        actor.ip ?? 'unknown',
      );
      if (!ok)
        throw new AppError(403, 'forbidden', 'old_password is wrong').because(AUTH_REASONS.wrongOldPassword);
    }
    if (input.is_active === false && self) throw selfDeactivation();
    const changes: Record<string, unknown> = {};
    if (input.display_name !== undefined) changes.display_name = input.display_name;
    if (input.email !== undefined) changes.email = input.email;
    if (input.is_active !== undefined) changes.is_active = input.is_active;
    if (input.password !== undefined) changes.password_hash = await hashPassword(input.password);
    if (Object.keys(changes).length === 0) return userView(user);
    const updated = await audited(this.db, async (trx) => {
      const row = await trx
        .updateTable('users')
        .set(changes)
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      // A new password ends every session of the user, the caller's included: sign in again.
      if (input.password !== undefined) await deleteSessionsOf(trx, id);
      if (input.is_active === false) await endCredentials(trx, id);
      const fields = Object.keys(changes).map((k) => (k === 'password_hash' ? 'password' : k));
      return {
        result: userView(row),
        audit: { actor, action: 'user.update', resourceType: 'user', resourceId: id, detail: { fields } },
      };
    });
    await this.rbac.invalidate({ userId: id });
    return updated;
  }

  /** Deactivation keeps the user (history refers to it) but ends its sessions and tokens. */
  async deactivateUser(actor: Actor, id: string): Promise<void> {
    if (actor.id === id) throw selfDeactivation();
    await audited(this.db, async (trx) => {
      const row = await trx
        .updateTable('users')
        .set({ is_active: false })
        .where('id', '=', id)
        .returning(['id', 'name'])
        .executeTakeFirst();
      if (!row) throw notFound('user');
      await endCredentials(trx, id);
      return {
        result: undefined,
        audit: {
          actor,
          action: 'user.deactivate',
          resourceType: 'user',
          resourceId: id,
          detail: { name: row.name },
        },
      };
    });
    await this.rbac.invalidate({ userId: id });
  }

  async resetPassword(actor: Actor, name: string, password: string): Promise<void> {
    const passwordHash = await hashPassword(password);
    const id = await audited(this.db, async (trx) => {
      const row = await trx
        .updateTable('users')
        .set({ password_hash: passwordHash })
        .where(sql<string>`lower(name)`, '=', name.toLowerCase())
        .returning(['id', 'name'])
        .executeTakeFirst();
      if (!row) throw notFound(`user ${name}`);
      await deleteSessionsOf(trx, row.id);
      return {
        result: row.id,
        audit: {
          actor,
          action: 'user.reset_password',
          resourceType: 'user',
          resourceId: row.id,
          detail: { name: row.name },
        },
      };
    });
    await this.rbac.invalidate({ userId: id });
  }
}
