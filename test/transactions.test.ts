/**
 * Both modes run on a `pg` pool (the embedded server or an external PostgreSQL): 200 concurrent
 * transactions complete, truly concurrently (several pool connections busy at once), none
 * interleaves with another, none deadlocks, no update is lost, and a failed one leaves nothing behind.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transaction } from '../src/store/index.js';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';

const N = 200;
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe.skipIf(servicesMissing)('concurrent transactions', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await createTestPlatform();
    const db = t.platform.drivers.db.db;
    await sql`create table tx_counter (id int primary key, value int not null)`.execute(db);
    await sql`create table tx_rows (n int primary key, note text not null)`.execute(db);
  });
  afterAll(() => t?.close());

  const count = async (q: ReturnType<typeof sql<{ n: number }>>) =>
    (await q.execute(t.platform.drivers.db.db)).rows[0]!.n;

  it(`${N} concurrent POST /api/tokens all answer 201 and each writes one token and one audit row`, async () => {
    const tokensBefore = await count(sql`select count(*)::int as n from api_tokens`);
    const auditBefore = await count(
      sql`select count(*)::int as n from audit_log where action = 'token.create'`,
    );
    // The pool while the burst runs: connections in use at once, and requests waiting for one.
    let busiest = 0;
    let waited = 0;
    const sampler = setInterval(() => {
      const s = t.platform.drivers.db.stats();
      busiest = Math.max(busiest, s.total - s.idle);
      waited = Math.max(waited, s.waiting);
    }, 1);
    const responses = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        t.request('POST', '/api/tokens', {
          token: t.adminToken,
          body: { name: `burst-${i}` },
          noAuditCheck: true,
        }),
      ),
    ).finally(() => clearInterval(sampler));
    expect(responses.map((r) => r.status)).toEqual(Array(N).fill(201));
    console.log(`[transactions] pool during the burst: up to ${busiest} connections busy, ${waited} waiting`);
    expect(busiest, 'transactions ran on several connections at once').toBeGreaterThan(1);
    expect(new Set(responses.map((r) => r.body.token)).size).toBe(N);
    expect(new Set(responses.map((r) => r.body.id)).size).toBe(N);

    expect(await count(sql`select count(*)::int as n from api_tokens`)).toBe(tokensBefore + N);
    expect(await count(sql`select count(*)::int as n from audit_log where action = 'token.create'`)).toBe(
      auditBefore + N,
    );
    // Each audit row names its own token: no row was written by (or for) another request's transaction.
    const ids = responses.map((r) => r.body.id as string);
    const audited = await t.platform.drivers.db.db
      .selectFrom('audit_log')
      .select('resource_id')
      .where('action', '=', 'token.create')
      .where('resource_id', 'in', ids)
      .execute();
    expect(new Set(audited.map((a) => a.resource_id))).toEqual(new Set(ids));
    const names = await t.platform.drivers.db.db
      .selectFrom('api_tokens')
      .select('name')
      .where('id', 'in', ids)
      .execute();
    expect(new Set(names.map((n) => n.name))).toEqual(new Set(responses.map((_, i) => `burst-${i}`)));
  });

  it(`${N} concurrent read-modify-write transactions lose no update`, async () => {
    const db = t.platform.drivers.db.db;
    await sql`insert into tx_counter (id, value) values (1, 0)`.execute(db);
    await Promise.all(
      Array.from({ length: N }, () =>
        transaction(db, async (trx) => {
          // FOR UPDATE makes PostgreSQL serialise the writers.
          const row = await sql<{
            value: number;
          }>`select value from tx_counter where id = 1 for update`.execute(trx);
          await tick();
          await sql`update tx_counter set value = ${row.rows[0]!.value + 1} where id = 1`.execute(trx);
        }),
      ),
    );
    expect(await count(sql`select value as n from tx_counter where id = 1`)).toBe(N);
  });

  it(`${N} concurrent transactions of which half fail: exactly the committed rows remain`, async () => {
    const db = t.platform.drivers.db.db;
    const results = await Promise.allSettled(
      Array.from({ length: N }, (_, i) =>
        transaction(db, async (trx) => {
          await sql`insert into tx_rows (n, note) values (${i}, 'first')`.execute(trx);
          await tick();
          await sql`update tx_rows set note = 'second' where n = ${i}`.execute(trx);
          await tick();
          if (i % 2 === 1) throw new Error(`rollback ${i}`);
          return i;
        }),
      ),
    );
    const fulfilled = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const rejected = results.filter((r) => r.status === 'rejected').map((r) => (r.reason as Error).message);
    expect(fulfilled).toEqual(Array.from({ length: N / 2 }, (_, k) => 2 * k));
    expect(rejected).toEqual(Array.from({ length: N / 2 }, (_, k) => `rollback ${2 * k + 1}`));

    const rows = (await sql<{ n: number; note: string }>`select n, note from tx_rows order by n`.execute(db))
      .rows;
    expect(rows).toEqual(Array.from({ length: N / 2 }, (_, k) => ({ n: 2 * k, note: 'second' })));
  });

  it('a failing statement inside a transaction rolls back its earlier writes and frees the connection', async () => {
    const db = t.platform.drivers.db.db;
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        transaction(db, async (trx) => {
          await sql`insert into tx_rows (n, note) values (${1000 + i}, 'tmp')`.execute(trx);
          await tick();
          // Duplicate key for the odd ones: a database error, not a thrown JS error.
          await sql`insert into tx_rows (n, note) values (${i % 2 === 1 ? 0 : 2000 + i}, 'dup?')`.execute(
            trx,
          );
        }),
      ),
    );
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(10);
    for (const r of results.filter((x) => x.status === 'rejected')) {
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: '23505' });
    }
    expect(await count(sql`select count(*)::int as n from tx_rows where n >= 1000 and n < 2000`)).toBe(10);
    expect(await count(sql`select count(*)::int as n from tx_rows where n >= 2000`)).toBe(10);
    // Nothing was left open: a new transaction commits and is visible outside it.
    await transaction(db, (trx) => sql`update tx_counter set value = -1 where id = 1`.execute(trx));
    expect(await count(sql`select value as n from tx_counter where id = 1`)).toBe(-1);
  });

  it('reads inside a transaction see its own uncommitted writes; others see them only after commit', async () => {
    const db = t.platform.drivers.db.db;
    await sql`insert into tx_counter (id, value) values (2, 0)`.execute(db);
    const seen: number[] = [];
    await Promise.all(
      Array.from({ length: 50 }, () =>
        transaction(db, async (trx) => {
          await sql`update tx_counter set value = value + 1 where id = 2`.execute(trx);
          await tick();
          const r = await sql<{ value: number }>`select value from tx_counter where id = 2`.execute(trx);
          seen.push(r.rows[0]!.value);
        }),
      ),
    );
    // Row-locked: each transaction saw exactly its own increment.
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, k) => k + 1));
    expect(await count(sql`select value as n from tx_counter where id = 2`)).toBe(50);
  });
});
