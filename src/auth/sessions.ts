import { writeAudit } from '../core/audit.js';
import { unauthorized } from '../core/errors.js';
import type { Actor, Principal } from '../core/http.js';
import type { RbacService } from '../rbac/index.js';
import type { Db } from '../store/db.js';
import { invalidCredentials, PRINCIPAL_CACHE_MS } from './authenticate.js';
import { digestSecret, generateSecret } from './credentials.js';
import { checkPassword, type FailureLimiter } from './passwords.js';
import {
  deleteExpiredSessions,
  deleteSession,
  findUserById,
  findUserByName,
  insertSession,
  userRoleNames,
} from './queries.js';
import { type UserView, userView } from './users.js';

interface Profile {
  user: UserView;
  roles: { name: string; project_id: string | null }[];
}

/** Sign-in with name and password (rate limited), sign-out, and the signed-in user's profile. */
export class Sessions {
  private readonly profiles = new Map<string, { value: Profile; expires: number }>();
  private profileGeneration = 0;

  constructor(
    private readonly db: Db,
    private readonly limiter: FailureLimiter,
    private readonly rbac: RbacService,
    private readonly ttlSeconds: number,
  ) {
    rbac.onInvalidate((message) => {
      this.profileGeneration++;
      if ('all' in message) this.profiles.clear();
      else if ('userId' in message) this.profiles.delete(message.userId);
    });
  }

  async login(input: { name: string; password: string }, meta: { ip: string; userAgent: string | null }) {
    const checked = await checkPassword(this.db, this.limiter, input.name, input.password, meta.ip);
    if (!checked?.is_active || checked.user_type !== 'human') {
      if (checked) await this.limiter.countFailure(this.limiter.keys('login', meta.ip, input.name));
      // Which reason, for the audit row only (the caller gets one answer for all of them).
      const user = checked ?? (await findUserByName(this.db, input.name));
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
    await this.limiter.forgiveName('login', input.name);
    const token = generateSecret('plat_sess_');
    const expiresAt = new Date(Date.now() + this.ttlSeconds * 1000);
    await this.db.transaction().execute(async (trx) => {
      const session = await insertSession(trx, {
        userId: user.id,
        digest: digestSecret(token),
        ip: meta.ip,
        userAgent: meta.userAgent?.slice(0, 500) ?? null,
        expiresAt,
      });
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
      await deleteSession(trx, sessionId);
      await writeAudit(trx, { actor, action: 'auth.logout', resourceType: 'session', resourceId: sessionId });
    });
    await this.rbac.invalidate({ userId: principal.userId });
    return true;
  }

  purgeExpired(): Promise<number> {
    return deleteExpiredSessions(this.db);
  }

  /** The user and all their role bindings, cached per user like permissions (same invalidations). */
  private async profile(userId: string): Promise<Profile> {
    const hit = this.profiles.get(userId);
    if (hit && hit.expires > Date.now()) return hit.value;
    const generation = this.profileGeneration;
    const user = await findUserById(this.db, userId);
    if (!user) throw unauthorized();
    const value = { user: userView(user), roles: await userRoleNames(this.db, userId) };
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
            method: 'token' as const,
            token_id: principal.token.id,
            scopes: principal.token.scopes,
            project_id: principal.token.projectId,
          }
        : { method: principal.sessionId ? ('session' as const) : ('basic' as const) },
    };
  }
}
