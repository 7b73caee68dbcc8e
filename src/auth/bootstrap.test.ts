import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestStore, type TestStore } from '../../test/helpers/app.js';
import { postgresAvailable, testDatabaseUrl } from '../../test/helpers/services.js';
import { type DbHandle, openPostgres } from '../store/index.js';
import { bootstrapAdmin } from './bootstrap.js';
import { verifyPassword } from './credentials.js';

const admin = { name: 'admin', email: 'admin@example.test' };

async function counts(handle: DbHandle) {
  const r = await sql<{ users: number; bindings: number; audits: number }>`
    select (select count(*)::int from users) as users,
           (select count(*)::int from user_roles) as bindings,
           (select count(*)::int from audit_log where action = 'user.bootstrap_admin') as audits`.execute(
    handle.db,
  );
  return r.rows[0]!;
}

describe('bootstrapAdmin', () => {
  let store: TestStore;
  let handle: DbHandle;
  beforeAll(async () => {
    store = await createTestStore('embedded');
    handle = await store.openDb();
  });
  afterAll(async () => {
    await handle?.close();
    await store?.drop();
  });

  it('creates the admin once with the admin role and one audit row; a second call changes nothing', async () => {
    const first = await bootstrapAdmin(handle.db, { ...admin, password: 'given-password-123' });
    expect(first).toEqual({ created: true, name: 'admin' });
    expect(await counts(handle)).toEqual({ users: 1, bindings: 1, audits: 1 });

    const user = await handle.db.selectFrom('users').selectAll().executeTakeFirstOrThrow();
    expect(user).toMatchObject({
      name: 'admin',
      email: 'admin@example.test',
      user_type: 'human',
      is_active: true,
    });
    expect(user.password_hash).toMatch(/^\$argon2id\$/);
    expect(await verifyPassword(user.password_hash!, 'given-password-123')).toBe(true);
    const role = await handle.db
      .selectFrom('user_roles')
      .innerJoin('roles', 'roles.id', 'user_roles.role_id')
      .select(['roles.name', 'user_roles.user_id', 'user_roles.project_id'])
      .executeTakeFirstOrThrow();
    expect(role).toEqual({ name: 'admin', user_id: user.id, project_id: null });

    const second = await bootstrapAdmin(handle.db, { ...admin, password: 'another-password-456' });
    expect(second).toEqual({ created: false, name: 'admin' });
    expect(await counts(handle)).toEqual({ users: 1, bindings: 1, audits: 1 });
    const after = await handle.db.selectFrom('users').selectAll().executeTakeFirstOrThrow();
    expect(after.password_hash).toBe(user.password_hash);
  });

  it('does nothing once any user exists, whatever name is asked for', async () => {
    const res = await bootstrapAdmin(handle.db, { name: 'root', email: 'root@example.test' });
    expect(res).toEqual({ created: false, name: 'root' });
    expect(res.generatedPassword).toBeUndefined();
    expect(await counts(handle)).toEqual({ users: 1, bindings: 1, audits: 1 });
  });

  it('without a password: returns a generated one once, and it verifies against the stored hash', async () => {
    // Back to an empty users table (the audit log keeps its history).
    await sql`delete from user_roles`.execute(handle.db);
    await sql`delete from users`.execute(handle.db);
    const res = await bootstrapAdmin(handle.db, admin);
    expect(res.created).toBe(true);
    expect(res.generatedPassword).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    const user = await handle.db.selectFrom('users').select('password_hash').executeTakeFirstOrThrow();
    expect(user.password_hash).not.toContain(res.generatedPassword);
    expect(await verifyPassword(user.password_hash!, res.generatedPassword!)).toBe(true);
    expect(await verifyPassword(user.password_hash!, `${res.generatedPassword}x`)).toBe(false);
    const details = await handle.db.selectFrom('audit_log').select('detail').execute();
    expect(JSON.stringify(details)).not.toContain(res.generatedPassword);

    const again = await bootstrapAdmin(handle.db, admin);
    expect(again).toEqual({ created: false, name: 'admin' });
    expect(again.generatedPassword).toBeUndefined();
  });
});

describe.skipIf(!postgresAvailable)('bootstrapAdmin on PostgreSQL', () => {
  let store: TestStore;
  const handles: DbHandle[] = [];
  beforeAll(async () => {
    store = await createTestStore('postgres');
    // Migrates the schema once.
    handles.push(await store.openDb());
  });
  afterAll(async () => {
    await Promise.allSettled(handles.map((h) => h.close()));
    await store?.drop();
  });

  it('5 instances starting together (separate pools, one schema) create exactly one admin', async () => {
    const pools = await Promise.all(
      Array.from({ length: 5 }, () =>
        openPostgres({ url: testDatabaseUrl, schema: store.schema!, poolSize: 1 }),
      ),
    );
    handles.push(...pools);
    const results = await Promise.all(
      pools.map((h, i) => bootstrapAdmin(h.db, { ...admin, password: `password-of-instance-${i}` })),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(results.filter((r) => !r.created)).toHaveLength(4);
    expect(await counts(pools[0]!)).toEqual({ users: 1, bindings: 1, audits: 1 });
    const winner = results.findIndex((r) => r.created);
    const user = await pools[0]!.db.selectFrom('users').select('password_hash').executeTakeFirstOrThrow();
    expect(await verifyPassword(user.password_hash!, `password-of-instance-${winner}`)).toBe(true);
  });
});
