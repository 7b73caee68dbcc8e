import { sql } from 'kysely';
import { systemActor, writeAudit } from '../core/audit.js';
import { bindRoleByName } from '../rbac/index.js';
import type { Db } from '../store/db.js';
import { generatePassword, hashPassword } from './credentials.js';

const BOOTSTRAP_LOCK_KEY = 7_231_904_552;

export interface BootstrapResult {
  created: boolean;
  name: string;
  /** Only when the password was generated: print it once. */
  generatedPassword?: string;
}

/**
 * First start: when no user exists, create the admin with the admin role. Roles and permissions are
 * seeded by migration. Serialised by an advisory lock, so two instances starting together create one admin.
 */
export async function bootstrapAdmin(
  db: Db,
  admin: { name: string; email: string; password?: string },
): Promise<BootstrapResult> {
  const password = admin.password ?? generatePassword();
  const passwordHash = await hashPassword(password);
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK_KEY})`.execute(trx);
    const any = await trx.selectFrom('users').select('id').limit(1).executeTakeFirst();
    if (any) return { created: false, name: admin.name };
    const user = await trx
      .insertInto('users')
      .values({
        name: admin.name,
        email: admin.email,
        password_hash: passwordHash,
        user_type: 'human',
        display_name: 'Administrator',
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await bindRoleByName(trx, user.id, 'admin');
    await writeAudit(trx, {
      actor: systemActor,
      action: 'user.bootstrap_admin',
      resourceType: 'user',
      resourceId: user.id,
      detail: { name: admin.name },
    });
    return { created: true, name: admin.name, ...(admin.password ? {} : { generatedPassword: password }) };
  });
}
