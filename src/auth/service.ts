import type { FastifyRequest } from 'fastify';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { type AuditEntry, writeAudit } from '../core/audit.js';
import {
  AppError,
  badRequest,
  conflict,
  forbidden,
  notFound,
  rateLimited,
  unauthorized,
  unprocessable,
} from '../core/errors.js';
import { type Actor, credentialAllows, type Principal } from '../core/http.js';
import { decodeCursor, type Page, toPage } from '../core/pagination.js';
import type { Permission } from '../core/permissions.js';
import { escapeLike } from '../core/validation.js';
import type { RbacService } from '../rbac/index.js';
import type { Cache } from '../store/cache/types.js';
import type { Db, Tx } from '../store/db.js';
import type { UserRow } from '../store/schema.js';
import {
  API_TOKEN_PREFIX,
  digestSecret,
  dummyPasswordHash,
  generateSecret,
  hashPassword,
  SESSION_COOKIE,
  verifyPassword,
} from './credentials.js';

export type UserType = 'human' | 'agent' | 'service_account';

export interface UserView {
  id: string;
  name: string;
  email: string;
  display_name: string | null;
  user_type: UserType;
  is_active: boolean;
  created_at: Date;
  updated_at: Date;
}

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

interface Profile {
  user: UserView;
  roles: { name: string; project_id: string | null }[];
}

export interface AuthSettings {
  sessionTtlSeconds: number;
  rateLimit: number;
  rateWindowSeconds: number;
}

const invalidCredentials = () => new AppError(401, 'unauthorized', 'invalid name or password');
const PRINCIPAL_CACHE_MS = 30_000;
const LAST_USED_THROTTLE_MS = 60_000;

interface CachedPrincipal {
  principal: Principal;
  /** Epoch ms of the credential's own expiry. */
  credentialExpires: number | null;
  cachedUntil: number;
}

/** Authentication (sessions, tokens, passwords), users and API tokens. */
export class AuthService {
  private readonly principals = new Map<string, CachedPrincipal>();
  private readonly lastUsedWrites = new Map<string, number>();
  private readonly profiles = new Map<string, { value: Profile; expires: number }>();
  private profileGeneration = 0;

  constructor(
    private readonly db: Db,
    private readonly cache: Cache,
    private readonly rbac: RbacService,
    private readonly settings: AuthSettings,
    private readonly log: Logger,
  ) {
    rbac.onInvalidate((message) => {
      this.profileGeneration++;
      if ('all' in message) this.profiles.clear();
      else if ('userId' in message) this.profiles.delete(message.userId);
      if ('all' in message) this.principals.clear();
      else if ('userId' in message) {
        for (const [key, entry] of this.principals)
          if (entry.principal.userId === message.userId) this.principals.delete(key);
      }
    });
  }

  // ---------------------------------------------------------------- rate limits

  private rateKeys(kind: string, ip: string, name?: string) {
    return [`ratelimit:${kind}:ip:${ip}`, ...(name ? [`ratelimit:${kind}:name:${name.toLowerCase()}`] : [])];
  }

  private async assertNotRateLimited(keys: string[]): Promise<void> {
    for (const key of keys) {
      const count = await this.cache.get<number>(key);
      if (typeof count === 'number' && count >= this.settings.rateLimit) {
        const ttl = (await this.cache.ttl(key)) ?? this.settings.rateWindowSeconds;
        throw rateLimited(Math.max(1, Math.ceil(ttl)));
      }
    }
  }

  private async countFailure(keys: string[]): Promise<void> {
    for (const key of keys) await this.cache.increment(key, this.settings.rateWindowSeconds);
  }

  /**
   * The one password check (login, HTTP Basic, `old_password`): refused with 429 while the IP or
   * the name is over the failure limit, exactly one argon2 verification (against a dummy hash when
   * the user is unknown, so timing tells nothing), and every failure counted against both.
   */
  private async checkPassword(name: string, password: string, ip: string): Promise<UserRow | undefined> {
    const keys = this.rateKeys('login', ip, name);
    await this.assertNotRateLimited(keys);
    const user = await this.db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
    const ok = await verifyPassword(user?.password_hash ?? (await dummyPasswordHash()), password);
    if (!user || !ok || !user.password_hash) {
      await this.countFailure(keys);
      return undefined;
    }
    return user;
  }

  // ---------------------------------------------------------------- request authentication

  async authenticate(req: FastifyRequest): Promise<Principal | null> {
    const header = req.headers.authorization;
    if (header) {
      const [scheme, value = ''] = header.split(/\s+/, 2);
      if (scheme?.toLowerCase() === 'bearer') return this.authenticateSecret(value.trim(), req.ip, null);
      if (scheme?.toLowerCase() === 'basic') {
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon < 0) throw unauthorized('malformed Basic credentials');
        return this.authenticateBasic(decoded.slice(0, colon), decoded.slice(colon + 1), req.ip);
      }
      throw unauthorized('unsupported Authorization scheme (use Bearer or Basic)');
    }
    const cookie = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (cookie) return this.authenticateSecret(cookie, req.ip, null, true);
    return null;
  }

  private async authenticateBasic(name: string, secret: string, ip: string): Promise<Principal> {
    if (secret.startsWith(API_TOKEN_PREFIX)) return this.authenticateSecret(secret, ip, name);
    const key = `basic:${digestSecret(`${name}\u0000${secret}`)}`;
    const cached = this.fromCache(key);
    if (cached) return cached;
    const user = await this.checkPassword(name, secret, ip);
    if (!user?.is_active || user.user_type !== 'human') {
      if (user) await this.countFailure(this.rateKeys('login', ip, name));
      throw invalidCredentials();
    }
    const principal: Principal = { userId: user.id, userName: user.name, userType: 'human' };
    this.principals.set(key, {
      principal,
      credentialExpires: null,
      cachedUntil: Date.now() + PRINCIPAL_CACHE_MS,
    });
    return principal;
  }

  private fromCache(key: string): Principal | undefined {
    const entry = this.principals.get(key);
    if (!entry) return undefined;
    const now = Date.now();
    if (entry.cachedUntil <= now || (entry.credentialExpires !== null && entry.credentialExpires <= now)) {
      this.principals.delete(key);
      return undefined;
    }
    return entry.principal;
  }

  /** A bearer token, a session cookie or a token given as a Basic password (then `expectedName` must match). */
  private async authenticateSecret(
    secret: string,
    ip: string,
    expectedName: string | null,
    isSession = false,
  ): Promise<Principal> {
    const digest = digestSecret(secret);
    const cached = this.fromCache(digest);
    if (cached && (expectedName === null || cached.userName === expectedName)) {
      this.touch(cached);
      return cached;
    }
    const keys = this.rateKeys('token', ip);
    await this.assertNotRateLimited(keys);
    let found: CachedPrincipal | undefined;
    if (isSession) {
      const row = await this.db
        .selectFrom('auth_sessions as s')
        .innerJoin('users as u', 'u.id', 's.user_id')
        .select(['s.id', 's.expires_at', 'u.id as user_id', 'u.name', 'u.user_type', 'u.is_active'])
        .where('s.token_hash', '=', digest)
        .executeTakeFirst();
      if (row?.is_active && new Date(row.expires_at).getTime() > Date.now()) {
        found = {
          principal: {
            userId: row.user_id,
            userName: row.name,
            userType: row.user_type as UserType,
            sessionId: row.id,
          },
          credentialExpires: new Date(row.expires_at).getTime(),
          cachedUntil: Date.now() + PRINCIPAL_CACHE_MS,
        };
      }
    } else if (secret.startsWith(API_TOKEN_PREFIX)) {
      const row = await this.db
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
      const expires = row?.expires_at ? new Date(row.expires_at).getTime() : null;
      if (row?.is_active && !row.revoked_at && (expires === null || expires > Date.now())) {
        found = {
          principal: {
            userId: row.user_id,
            userName: row.name,
            userType: row.user_type as UserType,
            token: {
              id: row.id,
              scopes: row.scopes,
              projectId: row.project_id,
              expiresAt: row.expires_at ? new Date(row.expires_at) : null,
            },
          },
          credentialExpires: expires,
          cachedUntil: Date.now() + PRINCIPAL_CACHE_MS,
        };
      }
    }
    if (!found || (expectedName !== null && found.principal.userName !== expectedName)) {
      await this.countFailure(keys);
      throw unauthorized(
        isSession ? 'session expired or invalid; sign in again' : 'invalid, expired or revoked token',
      );
    }
    this.principals.set(digest, found);
    this.touch(found.principal);
    return found.principal;
  }

  /** Records last use of a token or session, at most once a minute per credential per instance. */
  private touch(principal: Principal): void {
    const id = principal.token?.id ?? principal.sessionId;
    if (!id) return;
    const now = Date.now();
    if ((this.lastUsedWrites.get(id) ?? 0) > now - LAST_USED_THROTTLE_MS) return;
    this.lastUsedWrites.set(id, now);
    const write = principal.token
      ? this.db
          .updateTable('api_tokens')
          .set({ last_used_at: sql<Date>`now()` })
          .where('id', '=', id)
          .execute()
      : this.db
          .updateTable('auth_sessions')
          .set({ last_seen_at: sql<Date>`now()` })
          .where('id', '=', id)
          .execute();
    write.catch((err: unknown) => this.log.warn({ err }, 'could not record credential use'));
  }

  // ---------------------------------------------------------------- login / logout

  async login(input: { name: string; password: string }, meta: { ip: string; userAgent: string | null }) {
    const checked = await this.checkPassword(input.name, input.password, meta.ip);
    if (!checked?.is_active || checked.user_type !== 'human') {
      if (checked) await this.countFailure(this.rateKeys('login', meta.ip, input.name));
      // Which reason, for the audit row only (the caller gets one answer for all of them).
      const user =
        checked ??
        (await this.db.selectFrom('users').selectAll().where('name', '=', input.name).executeTakeFirst());
      const ok = checked !== undefined;
      await writeAudit(this.db, {
        actor: { id: null, name: input.name.slice(0, 64), ip: meta.ip },
        action: 'auth.login_failed',
        resourceType: 'user',
        resourceId: user?.id ?? null,
        detail: {
          reason: !user
            ? 'unknown_user'
            : !ok
              ? 'wrong_password'
              : !user.is_active
                ? 'inactive'
                : 'no_password_login',
        },
      });
      throw invalidCredentials();
    }
    const user = checked;
    await this.cache.delete(`ratelimit:login:name:${input.name.toLowerCase()}`);
    const token = generateSecret('plat_sess_');
    const expiresAt = new Date(Date.now() + this.settings.sessionTtlSeconds * 1000);
    await this.db.transaction().execute(async (trx) => {
      const session = await trx
        .insertInto('auth_sessions')
        .values({
          user_id: user.id,
          token_hash: digestSecret(token),
          ip: meta.ip,
          user_agent: meta.userAgent?.slice(0, 500) ?? null,
          expires_at: expiresAt,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      await writeAudit(trx, {
        actor: { id: user.id, name: user.name, ip: meta.ip },
        action: 'auth.login',
        resourceType: 'session',
        resourceId: session.id,
      });
    });
    return { token, expiresAt, user: userView(user) };
  }

  async logout(principal: Principal, actor: Actor): Promise<boolean> {
    if (!principal.sessionId) return false;
    const sessionId = principal.sessionId;
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('auth_sessions').where('id', '=', sessionId).execute();
      await writeAudit(trx, { actor, action: 'auth.logout', resourceType: 'session', resourceId: sessionId });
    });
    await this.rbac.invalidate({ userId: principal.userId });
    return true;
  }

  async purgeExpiredSessions(): Promise<number> {
    const result = await this.db
      .deleteFrom('auth_sessions')
      .where('expires_at', '<', sql<Date>`now()`)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** The user and all their role bindings, cached per user like permissions (same invalidations). */
  private async profile(userId: string): Promise<Profile> {
    const hit = this.profiles.get(userId);
    if (hit && hit.expires > Date.now()) return hit.value;
    const generation = this.profileGeneration;
    const user = await this.db.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirst();
    if (!user) throw unauthorized();
    const roles = await this.db
      .selectFrom('user_roles as ur')
      .innerJoin('roles as r', 'r.id', 'ur.role_id')
      .select(['r.name', 'ur.project_id'])
      .where('ur.user_id', '=', userId)
      .orderBy('r.name')
      .execute();
    const value = { user: userView(user), roles };
    if (generation === this.profileGeneration)
      this.profiles.set(userId, { value, expires: Date.now() + PRINCIPAL_CACHE_MS });
    return value;
  }

  async me(principal: Principal) {
    const { user, roles } = await this.profile(principal.userId);
    const permissions = await this.rbac.principalPermissions(principal, null);
    return {
      user,
      roles,
      permissions,
      auth: principal.token
        ? {
            method: 'token',
            token_id: principal.token.id,
            scopes: principal.token.scopes,
            project_id: principal.token.projectId,
          }
        : { method: principal.sessionId ? 'session' : 'basic' },
    };
  }

  // ---------------------------------------------------------------- users

  private async mutate<T>(fn: (trx: Tx) => Promise<{ result: T; audit: AuditEntry }>): Promise<T> {
    return this.db.transaction().execute(async (trx) => {
      const { result, audit } = await fn(trx);
      await writeAudit(trx, audit);
      return result;
    });
  }

  async createUser(
    actor: Actor,
    input: {
      name: string;
      email: string;
      password?: string;
      display_name?: string | null;
      user_type?: UserType;
    },
  ): Promise<UserView> {
    const userType = input.user_type ?? 'human';
    if (userType === 'human' && !input.password) throw unprocessable('password is required for human users');
    const passwordHash = input.password ? await hashPassword(input.password) : null;
    return this.mutate(async (trx) => {
      const taken = await trx
        .selectFrom('users')
        .select(['name', 'email'])
        .where((eb) => eb.or([eb('name', '=', input.name), eb('email', '=', input.email)]))
        .executeTakeFirst();
      if (taken)
        throw conflict(taken.name === input.name ? 'user name already taken' : 'email already in use');
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

  async listUsers(query: {
    limit: number;
    cursor?: string;
    q?: string;
    active?: boolean;
  }): Promise<Page<UserView>> {
    let q = this.db
      .selectFrom('users')
      .selectAll()
      .orderBy('name')
      .orderBy('id')
      .limit(query.limit + 1);
    if (query.cursor) {
      const [name, id] = decodeCursor(query.cursor, 2) as [string, string];
      q = q.where((eb) => eb.or([eb('name', '>', name), eb.and([eb('name', '=', name), eb('id', '>', id)])]));
    }
    if (query.q)
      q = q.where((eb) =>
        eb.or([
          eb('name', 'ilike', `%${escapeLike(query.q!)}%`),
          eb('email', 'ilike', `%${escapeLike(query.q!)}%`),
        ]),
      );
    if (query.active !== undefined) q = q.where('is_active', '=', query.active);
    const rows = await q.execute();
    return toPage(rows, query.limit, (r) => [r.name, r.id], userView);
  }

  async getUser(id: string): Promise<UserView> {
    const user = await this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    if (!user) throw notFound('user');
    return userView(user);
  }

  async updateUser(
    actor: Actor,
    id: string,
    input: {
      display_name?: string | null;
      email?: string;
      password?: string;
      old_password?: string;
      is_active?: boolean;
    },
    asAdmin: boolean,
  ): Promise<UserView> {
    const user = await this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    if (!user) throw notFound('user');
    if (!asAdmin && input.is_active !== undefined)
      throw forbidden('only admins may activate or deactivate users');
    const self = actor.id === id;
    if (input.password !== undefined && (self || !asAdmin)) {
      if (!input.old_password)
        throw badRequest('old_password is required to change your own password', [
          { path: 'body.old_password', message: 'required' },
        ]);
      // The same limiter as login: old_password is a password guess like any other.
      const ok = await this.checkPassword(user.name, input.old_password, actor.ip ?? 'unknown');
      if (!ok) throw new AppError(403, 'forbidden', 'old_password is wrong');
    }
    if (input.is_active === false && self) throw conflict('you cannot deactivate yourself');
    const changes: Record<string, unknown> = {};
    if (input.display_name !== undefined) changes.display_name = input.display_name;
    if (input.email !== undefined) changes.email = input.email;
    if (input.is_active !== undefined) changes.is_active = input.is_active;
    if (input.password !== undefined) changes.password_hash = await hashPassword(input.password);
    if (Object.keys(changes).length === 0) return userView(user);
    const updated = await this.mutate(async (trx) => {
      const row = await trx
        .updateTable('users')
        .set(changes)
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      if (input.password !== undefined) {
        // A new password ends every session of the user, the caller's included: sign in again.
        await trx.deleteFrom('auth_sessions').where('user_id', '=', id).execute();
      }
      if (input.is_active === false) await this.endCredentials(trx, id);
      const fields = Object.keys(changes).map((k) => (k === 'password_hash' ? 'password' : k));
      return {
        result: userView(row),
        audit: { actor, action: 'user.update', resourceType: 'user', resourceId: id, detail: { fields } },
      };
    });
    await this.rbac.invalidate({ userId: id });
    return updated;
  }

  private async endCredentials(trx: Tx, userId: string): Promise<void> {
    await trx.deleteFrom('auth_sessions').where('user_id', '=', userId).execute();
    await trx
      .updateTable('api_tokens')
      .set({ revoked_at: sql<Date>`now()` })
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .execute();
  }

  /** Deactivation keeps the user (history refers to it) but ends its sessions and tokens. */
  async deactivateUser(actor: Actor, id: string): Promise<void> {
    if (actor.id === id) throw conflict('you cannot deactivate yourself');
    await this.mutate(async (trx) => {
      const row = await trx
        .updateTable('users')
        .set({ is_active: false })
        .where('id', '=', id)
        .returning(['id', 'name'])
        .executeTakeFirst();
      if (!row) throw notFound('user');
      await this.endCredentials(trx, id);
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
    const id = await this.mutate(async (trx) => {
      const row = await trx
        .updateTable('users')
        .set({ password_hash: passwordHash })
        .where('name', '=', name)
        .returning('id')
        .executeTakeFirst();
      if (!row) throw notFound(`user ${name}`);
      await trx.deleteFrom('auth_sessions').where('user_id', '=', row.id).execute();
      return {
        result: row.id,
        audit: {
          actor,
          action: 'user.reset_password',
          resourceType: 'user',
          resourceId: row.id,
          detail: { name },
        },
      };
    });
    await this.rbac.invalidate({ userId: id });
  }

  // ---------------------------------------------------------------- API tokens

  async createToken(
    actor: Actor,
    owner: Principal,
    input: {
      name: string;
      scopes?: Permission[] | null;
      project_id?: string | null;
      expires_at?: Date | null;
    },
  ) {
    if (input.expires_at && input.expires_at.getTime() <= Date.now())
      throw unprocessable('expires_at must be in the future');
    let scopes = input.scopes ? [...new Set(input.scopes)] : null;
    let projectId = input.project_id ?? null;
    let expiresAt = input.expires_at ?? null;
    // A token can only mint tokens that are no stronger than itself: no later expiry, no scope it
    // lacks, no other project.
    if (owner.token) {
      const parentExpiry = owner.token.expiresAt;
      if (parentExpiry) {
        if (expiresAt === null) expiresAt = parentExpiry;
        else if (expiresAt.getTime() > parentExpiry.getTime())
          throw unprocessable(
            `a token cannot create a token that outlives it (expires_at at most ${parentExpiry.toISOString()})`,
            [{ path: 'body.expires_at', message: `after the parent token's expiry` }],
          );
      }
      if (owner.token.scopes) {
        if (scopes === null) scopes = [...owner.token.scopes] as Permission[];
        const allowed = new Set(owner.token.scopes);
        const extra = scopes.filter((s) => !allowed.has(s));
        if (extra.length > 0)
          throw forbidden(`a token cannot create a token with scopes it lacks: ${extra.join(', ')}`);
      }
      if (owner.token.projectId) {
        if (projectId && projectId !== owner.token.projectId)
          throw forbidden('a project-restricted token can only create tokens for its project');
        projectId = owner.token.projectId;
      }
    }
    // A project the owner cannot read answers exactly like one that does not exist.
    if (projectId && !(await this.rbac.projectAccess(withoutToken(owner), projectId)).readable)
      throw notFound('project');
    const token = generateSecret(API_TOKEN_PREFIX);
    return this.mutate(async (trx) => {
      const row = await trx
        .insertInto('api_tokens')
        .values({
          user_id: owner.userId,
          name: input.name,
          token_hash: digestSecret(token),
          token_prefix: token.slice(0, API_TOKEN_PREFIX.length + 6),
          scopes,
          project_id: projectId,
          expires_at: expiresAt,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return {
        result: { ...tokenView(row), token },
        audit: {
          actor,
          action: 'token.create',
          resourceType: 'api_token',
          resourceId: row.id,
          projectId,
          detail: { name: row.name, scopes, expires_at: row.expires_at },
        },
      };
    });
  }

  /**
   * The caller's tokens. A bounded token (scoped or project-restricted) sees only itself: the
   * others may be stronger than it, and managing them needs a full credential.
   */
  async listTokens(principal: Principal) {
    let q = this.db
      .selectFrom('api_tokens')
      .selectAll()
      .where('user_id', '=', principal.userId)
      .where('revoked_at', 'is', null);
    if (principal.token && !credentialAllows(principal, 'account'))
      q = q.where('id', '=', principal.token.id);
    const rows = await q.orderBy('created_at', 'desc').execute();
    return { items: rows.map(tokenView), next_cursor: null };
  }

  /** Own tokens (a bounded token: only itself), or any with `admin:users`; others are "not found". */
  async revokeToken(actor: Actor, principal: Principal, id: string, asAdmin: boolean): Promise<void> {
    const row = await this.db
      .selectFrom('api_tokens')
      .select(['id', 'user_id', 'revoked_at', 'name'])
      .where('id', '=', id)
      .executeTakeFirst();
    const bounded = principal.token !== undefined && !credentialAllows(principal, 'account');
    const own = row?.user_id === principal.userId && (!bounded || row.id === principal.token?.id);
    if (!row || (!own && !asAdmin)) throw notFound('token');
    if (row.revoked_at) throw conflict('token is already revoked');
    await this.mutate(async (trx) => {
      await trx
        .updateTable('api_tokens')
        .set({ revoked_at: sql<Date>`now()` })
        .where('id', '=', id)
        .execute();
      return {
        result: undefined,
        audit: {
          actor,
          action: 'token.revoke',
          resourceType: 'api_token',
          resourceId: id,
          detail: { name: row.name },
        },
      };
    });
    await this.rbac.invalidate({ userId: row.user_id });
  }

  /** CLI: a token for a named user, printed once. */
  async createTokenForUser(
    actor: Actor,
    name: string,
    input: { name: string; scopes?: Permission[] | null; expires_at?: Date | null },
  ) {
    const user = await this.db
      .selectFrom('users')
      .select(['id', 'name', 'user_type', 'is_active'])
      .where('name', '=', name)
      .executeTakeFirst();
    if (!user) throw notFound(`user ${name}`);
    if (!user.is_active) throw conflict(`user ${name} is deactivated`);
    return this.createToken(
      actor,
      { userId: user.id, userName: user.name, userType: user.user_type as UserType },
      input,
    );
  }
}

function tokenView(row: {
  id: string;
  name: string;
  token_prefix: string;
  scopes: string[] | null;
  project_id: string | null;
  last_used_at: Date | null;
  expires_at: Date | null;
  created_at: Date;
}) {
  return {
    id: row.id,
    name: row.name,
    token_prefix: row.token_prefix,
    scopes: row.scopes,
    project_id: row.project_id,
    last_used_at: row.last_used_at,
    expires_at: row.expires_at,
    created_at: row.created_at,
  };
}

/** The user behind a credential, for questions about the user rather than the token. */
function withoutToken(principal: Principal): Principal {
  const { token: _token, ...user } = principal;
  return user;
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}
