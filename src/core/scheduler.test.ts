import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestStore, eventually, type StoreMode, type TestStore } from '../../test/helpers/app.js';
import { postgresAvailable } from '../../test/helpers/services.js';
import type { DbHandle } from '../store/index.js';
import { createMetrics, type Metrics } from './metrics.js';
import { type Loop, Scheduler } from './scheduler.js';

interface Instance {
  scheduler: Scheduler;
  metrics: Metrics;
  logLines: string[];
}

async function runs(
  metrics: Metrics,
  loop: string,
  outcome: 'success' | 'skipped' | 'error',
): Promise<number> {
  const values = (await metrics.loopRuns.get()).values;
  return values.find((v) => v.labels.loop === loop && v.labels.outcome === outcome)?.value ?? 0;
}

let loopCounter = 0;
/** A loop that counts its runs; every test uses fresh names so leases never carry over. */
function countingLoop(overrides: Partial<Loop> = {}): Loop & { ran: number } {
  const loop = {
    name: `test-loop-${++loopCounter}`,
    intervalMs: 60_000,
    ran: 0,
    run: async () => {
      loop.ran++;
    },
    ...overrides,
  };
  return loop;
}

const modes: StoreMode[] = postgresAvailable ? ['embedded', 'postgres'] : ['embedded'];

describe.each(modes)('Scheduler on %s', (mode) => {
  let store: TestStore;
  /** Each instance has its own pool, as two platform processes would. */
  let handles: DbHandle[];
  const instances: Instance[] = [];

  beforeAll(async () => {
    store = await createTestStore(mode);
    handles = [await store.openDb(), await store.openDb()];
  });
  afterAll(async () => {
    await Promise.allSettled(instances.map((i) => i.scheduler.stop()));
    await Promise.allSettled([...new Set(handles ?? [])].map((h) => h.close()));
    await store?.drop();
  });

  /** Two scheduler instances on the same database, as two platform processes would have. */
  function pair(): [Instance, Instance] {
    const make = (db: DbHandle): Instance => {
      const logLines: string[] = [];
      const log = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
      const metrics = createMetrics();
      const instance = { scheduler: new Scheduler(db.db, log, metrics), metrics, logLines };
      instances.push(instance);
      return instance;
    };
    return [make(handles[0]!), make(handles[1]!)];
  }

  const leaseHolder = async (name: string) =>
    (
      await sql<{ holder: string }>`select holder from scheduler_leases where name = ${name}`.execute(
        handles[0]!.db,
      )
    ).rows[0]?.holder;

  it('a single-instance loop runs on only the lease holder', async () => {
    const [a, b] = pair();
    const loopA = countingLoop();
    const loopB = countingLoop({ name: loopA.name });
    a.scheduler.add(loopA);
    b.scheduler.add(loopB);

    expect(await a.scheduler.runNow(loopA.name)).toBe(true);
    expect(await b.scheduler.runNow(loopA.name)).toBe(false);
    expect(await a.scheduler.runNow(loopA.name)).toBe(true);
    expect(await b.scheduler.runNow(loopA.name)).toBe(false);
    expect(loopA.ran).toBe(2);
    expect(loopB.ran).toBe(0);
    expect(await leaseHolder(loopA.name)).toBe(a.scheduler.instanceId);
    expect(await runs(a.metrics, loopA.name, 'success')).toBe(2);
    expect(await runs(b.metrics, loopA.name, 'skipped')).toBe(2);
    expect(await runs(b.metrics, loopA.name, 'success')).toBe(0);
  });

  it('runNow on both instances at once: exactly one runs', async () => {
    for (let round = 0; round < 5; round++) {
      const [a, b] = pair();
      const loop = countingLoop();
      a.scheduler.add(loop);
      b.scheduler.add({ ...loop });
      const results = await Promise.all([a.scheduler.runNow(loop.name), b.scheduler.runNow(loop.name)]);
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(loop.ran).toBe(1);
      const winner = results[0] ? a : b;
      expect(await leaseHolder(loop.name)).toBe(winner.scheduler.instanceId);
    }
  });

  it('after the holder stops, the other instance takes the loop over', async () => {
    const [a, b] = pair();
    const loop = countingLoop();
    a.scheduler.add(loop);
    b.scheduler.add({ ...loop });
    expect(await a.scheduler.runNow(loop.name)).toBe(true);
    expect(await b.scheduler.runNow(loop.name)).toBe(false);
    await a.scheduler.stop();
    expect(await leaseHolder(loop.name)).toBeUndefined();
    expect(await b.scheduler.runNow(loop.name)).toBe(true);
    expect(await leaseHolder(loop.name)).toBe(b.scheduler.instanceId);
    // A stopped scheduler runs nothing.
    expect(await a.scheduler.runNow(loop.name)).toBe(false);
  });

  it('an expired lease is taken over by another instance', async () => {
    const [a, b] = pair();
    const loop = countingLoop();
    a.scheduler.add(loop);
    b.scheduler.add({ ...loop });
    expect(await a.scheduler.runNow(loop.name)).toBe(true);
    await sql`update scheduler_leases set expires_at = now() - interval '1 second' where name = ${loop.name}`.execute(
      handles[0]!.db,
    );
    expect(await b.scheduler.runNow(loop.name)).toBe(true);
    expect(await a.scheduler.runNow(loop.name)).toBe(false);
    expect(await leaseHolder(loop.name)).toBe(b.scheduler.instanceId);
  });

  it('the lease lasts at least 30 s and three intervals', async () => {
    const [a] = pair();
    const short = countingLoop({ intervalMs: 1000 });
    const long = countingLoop({ intervalMs: 60_000 });
    a.scheduler.add(short);
    a.scheduler.add(long);
    await a.scheduler.runNow(short.name);
    await a.scheduler.runNow(long.name);
    const r = await sql<{ name: string; secs: number }>`
      select name, extract(epoch from expires_at - now())::float8 as secs
      from scheduler_leases where name in (${short.name}, ${long.name})`.execute(handles[0]!.db);
    const secs = Object.fromEntries(r.rows.map((row) => [row.name, row.secs]));
    expect(secs[short.name]).toBeGreaterThan(25);
    expect(secs[short.name]).toBeLessThanOrEqual(30);
    expect(secs[long.name]).toBeGreaterThan(175);
    expect(secs[long.name]).toBeLessThanOrEqual(180);
  });

  it('a loop that is not single-instance runs on every instance', async () => {
    const [a, b] = pair();
    const loopA = countingLoop({ singleInstance: false });
    const loopB = countingLoop({ name: loopA.name, singleInstance: false });
    a.scheduler.add(loopA);
    b.scheduler.add(loopB);
    const results = await Promise.all([a.scheduler.runNow(loopA.name), b.scheduler.runNow(loopA.name)]);
    expect(results).toEqual([true, true]);
    expect(loopA.ran + loopB.ran).toBe(2);
    expect(await leaseHolder(loopA.name)).toBeUndefined();
  });

  it('a throwing loop is counted and logged as an error, and runNow resolves false', async () => {
    const [a] = pair();
    const loop = countingLoop({
      run: async () => {
        throw new Error('boom in the loop');
      },
    });
    a.scheduler.add(loop);
    await expect(a.scheduler.runNow(loop.name)).resolves.toBe(false);
    await expect(a.scheduler.runNow(loop.name)).resolves.toBe(false);
    expect(await runs(a.metrics, loop.name, 'error')).toBe(2);
    expect(await runs(a.metrics, loop.name, 'success')).toBe(0);
    const logged = a.logLines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'background loop failed');
    expect(logged).toHaveLength(2);
    expect(logged[0]).toMatchObject({ level: 50, loop: loop.name, err: { message: 'boom in the loop' } });
    const text = (await a.metrics.registry.metrics()).split('\n');
    expect(text).toContain(`platform_scheduler_runs_total{loop="${loop.name}",outcome="error"} 2`);
  });

  it('a started scheduler keeps running a throwing loop on its interval, without unhandled rejections', async () => {
    const [a] = pair();
    const loop = countingLoop({
      intervalMs: 10,
      run: async () => {
        throw new Error('always fails');
      },
    });
    a.scheduler.add(loop);
    a.scheduler.start();
    await eventually(async () => (await runs(a.metrics, loop.name, 'error')) >= 3, 5000, 'three failed runs');
    await a.scheduler.stop();
  });

  it('stop() aborts a running loop, waits for it and releases its lease', async () => {
    const [a] = pair();
    let started!: () => void;
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    let finished = false;
    const loop = countingLoop({
      intervalMs: 10,
      run: (signal) =>
        new Promise<void>((resolve) => {
          started();
          signal.addEventListener('abort', () => {
            setImmediate(() => {
              finished = true;
              resolve();
            });
          });
        }),
    });
    a.scheduler.add(loop);
    a.scheduler.start();
    await running;
    expect(await leaseHolder(loop.name)).toBe(a.scheduler.instanceId);
    await a.scheduler.stop();
    expect(finished).toBe(true);
    expect(await leaseHolder(loop.name)).toBeUndefined();
    expect(await a.scheduler.runNow(loop.name)).toBe(false);
  });

  it('a loop added after start is scheduled at once', async () => {
    const [a] = pair();
    a.scheduler.start();
    const loop = countingLoop();
    a.scheduler.add(loop);
    await eventually(async () => loop.ran === 1, 5000, 'the added loop to run');
    await a.scheduler.stop();
  });

  it('refuses a duplicate loop name and runNow of an unknown loop', async () => {
    const [a] = pair();
    const loop = countingLoop();
    a.scheduler.add(loop);
    expect(() => a.scheduler.add({ ...loop })).toThrow(/already added/);
    await expect(a.scheduler.runNow('no-such-loop')).rejects.toThrow(/no loop named/);
  });
});
