import type { Logger } from 'pino';
import type { Actor, Principal } from '../core/http.js';
import type { RbacService } from '../rbac/index.js';
import type { Cache } from '../store/cache/types.js';
import type { Db } from '../store/db.js';
import { Authenticator, type RequestCredentials } from './authenticate.js';
import { FailureLimiter } from './passwords.js';
import { Sessions } from './sessions.js';
import { type CreateTokenInput, Tokens } from './tokens.js';
import { Users, type UserType } from './users.js';

export interface AuthSettings {
  sessionTtlSeconds: number;
  rateLimit: number;
  rateWindowSeconds: number;
}

/**
 * Identity: request authentication, sessions, users and API tokens, one use case per part. The
 * methods below are what other modules and the CLI call; the routes use the parts directly.
 */
export class AuthService {
  readonly authenticator: Authenticator;
  readonly sessions: Sessions;
  readonly users: Users;
  readonly tokens: Tokens;

  constructor(db: Db, cache: Cache, rbac: RbacService, settings: AuthSettings, log: Logger) {
    const limiter = new FailureLimiter(cache, settings);
    this.authenticator = new Authenticator(db, limiter, rbac, log);
    this.sessions = new Sessions(db, limiter, rbac, settings.sessionTtlSeconds);
    this.users = new Users(db, limiter, rbac);
    this.tokens = new Tokens(db, rbac);
  }

  /** Who a request is, from its Authorization and Cookie headers and its client address. */
  authenticate(credentials: RequestCredentials, ip: string): Promise<Principal | null> {
    return this.authenticator.authenticate(credentials, ip);
  }

  createUser(
    actor: Actor,
    input: {
      name: string;
      email: string;
      password?: string;
      display_name?: string | null;
      user_type?: UserType;
    },
  ) {
    return this.users.createUser(actor, input);
  }

  resetPassword(actor: Actor, name: string, password: string): Promise<void> {
    return this.users.resetPassword(actor, name, password);
  }

  createToken(actor: Actor, owner: Principal, input: CreateTokenInput) {
    return this.tokens.createToken(actor, owner, input);
  }

  createTokenForUser(actor: Actor, name: string, input: Omit<CreateTokenInput, 'project_id'>) {
    return this.tokens.createTokenForUser(actor, name, input);
  }

  revokeToken(actor: Actor, principal: Principal, id: string, asAdmin: boolean): Promise<void> {
    return this.tokens.revokeToken(actor, principal, id, asAdmin);
  }

  purgeExpiredSessions(): Promise<number> {
    return this.sessions.purgeExpired();
  }
}
