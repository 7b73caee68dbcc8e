import type { Logger } from 'pino';
import type { Actor } from '../core/http.js';
import type { Cache } from '../store/cache/types.js';
import type { Db } from '../store/db.js';
import type { PubSub } from '../store/pubsub/types.js';
import { AccessResolver } from './access.js';
import { RoleBindings } from './bindings.js';
import { Delegations } from './delegations.js';
import { Roles } from './roles.js';

/**
 * Role-based access control: the one `authorize` (permission resolution, its caches and their
 * invalidation, from `AccessResolver`), plus the administration of roles, bindings and members,
 * and delegations, one use case per part.
 */
export class RbacService extends AccessResolver {
  readonly roles: Roles;
  readonly bindings: RoleBindings;
  readonly delegations: Delegations;

  constructor(db: Db, cache: Cache, pubsub: PubSub, ttlSeconds: number, log: Logger) {
    super(db, cache, pubsub, ttlSeconds, log);
    this.roles = new Roles(this);
    this.bindings = new RoleBindings(this, this.roles);
    this.delegations = new Delegations(this);
  }

  /** Binds a role to a user (id or name), globally or on a project: the CLI's `admin create-user --role`. */
  assignRole(actor: Actor, userRef: string, input: { role: string; project_id?: string | null }) {
    return this.bindings.assignRole(actor, userRef, input);
  }
}
