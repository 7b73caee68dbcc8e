import { sql } from 'kysely';
import { conflict, forbidden, notFound, unprocessable } from '../core/errors.js';
import { type Actor, credentialAllows, type Principal } from '../core/http.js';
import { type Page, pageByTime } from '../core/pagination.js';
import type { Permission } from '../core/permissions.js';
import type { RbacService } from '../rbac/index.js';
import type { Db } from '../store/db.js';
import { API_TOKEN_PREFIX, digestSecret, generateSecret } from './credentials.js';
import { findUserByName, tokenById } from './queries.js';
import { AUTH_REASONS } from './reasons.js';
import type { TokenView, UserType } from './schemas.js';
import { audited } from './users.js';

export interface CreateTokenInput {
  name: string;
  scopes?: Permission[] | null | undefined;
  project_id?: string | null | undefined;
  expires_at?: Date | null | undefined;
}

const expiryInPast = () =>
  unprocessable('expires_at must be in the future', [
    { path: 'body.expires_at', message: 'in the past' },
  ]).because(AUTH_REASONS.expiryInPast);

/** API tokens: created (shown once), listed as metadata, revoked. */
export class Tokens {
  constructor(
    private readonly db: Db,
    private readonly rbac: RbacService,
  ) {}

  async createToken(actor: Actor, owner: Principal, input: CreateTokenInput) {
    if (input.expires_at && input.expires_at.getTime() <= Date.now()) throw expiryInPast();
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
          ).because(AUTH_REASONS.tokenExceedsParent);
      }
      if (owner.token.scopes) {
        if (scopes === null) scopes = [...owner.token.scopes] as Permission[];
        const allowed = new Set(owner.token.scopes);
        const extra = scopes.filter((s) => !allowed.has(s));
        if (extra.length > 0)
          throw forbidden(`a token cannot create a token with scopes it lacks: ${extra.join(', ')}`).because(
            AUTH_REASONS.tokenExceedsParent,
          );
      }
      if (owner.token.projectId) {
        if (projectId && projectId !== owner.token.projectId)
          throw forbidden('a project-restricted token can only create tokens for its project').because(
            AUTH_REASONS.tokenExceedsParent,
          );
        projectId = owner.token.projectId;
      }
    }
    // A project the owner cannot read answers exactly like one that does not exist.
    if (projectId && !(await this.rbac.projectAccess(withoutToken(owner), projectId)).readable)
      throw notFound('project');
    const token = generateSecret(API_TOKEN_PREFIX);
    return audited(this.db, async (trx) => {
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
   * The caller's live tokens, newest first. A bounded token (scoped or project-restricted) sees
   * only itself: the others may be stronger than it, and managing them needs a full credential.
   */
  async listTokens(
    principal: Principal,
    page: { limit: number; cursor?: string | undefined },
  ): Promise<Page<TokenView>> {
    let q = this.db
      .selectFrom('api_tokens')
      .selectAll()
      .where('user_id', '=', principal.userId)
      .where('revoked_at', 'is', null);
    if (principal.token && !credentialAllows(principal, 'account'))
      q = q.where('id', '=', principal.token.id);
    return pageByTime(q, { time: 'created_at', id: 'id' }, page, tokenView);
  }

  /** Own tokens (a bounded token: only itself), or any with `admin:users`; others are "not found". */
  async revokeToken(actor: Actor, principal: Principal, id: string, asAdmin: boolean): Promise<void> {
    const row = await tokenById(this.db, id);
    const bounded = principal.token !== undefined && !credentialAllows(principal, 'account');
    const own = row?.user_id === principal.userId && (!bounded || row.id === principal.token?.id);
    if (!row || (!own && !asAdmin)) throw notFound('token');
    if (row.revoked_at)
      throw conflict('token is already revoked', [
        { message: 'revoked', revoked_at: new Date(row.revoked_at).toISOString() },
      ]).because(AUTH_REASONS.tokenAlreadyRevoked);
    await audited(this.db, async (trx) => {
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
    const user = await findUserByName(this.db, name);
    if (!user) throw notFound(`user ${name}`);
    if (!user.is_active) throw conflict(`user ${name} is deactivated`).because(AUTH_REASONS.userDeactivated);
    return this.createToken(
      actor,
      { userId: user.id, userName: user.name, userType: user.user_type as UserType },
      input,
    );
  }
}

function tokenView(row: TokenView & Record<string, unknown>): TokenView {
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
