import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createTestStore, type TestStore } from '../../../test/helpers/app.js';
import { testValkeyUrl, valkeyAvailable } from '../../../test/helpers/services.js';
import { eventually } from '../../../test/helpers/wait.js';
import type { DbHandle } from '../db.js';
import {
  type HandlerErrorReporter,
  MemoryPubSub,
  PostgresPubSub,
  type PubSub,
  ValkeyPubSub,
} from './index.js';

/** Creates instances sharing one namespace (a fresh one per test). */
type PubSubFactory = (options?: { onHandlerError?: HandlerErrorReporter }) => PubSub;

function pubsubContract(
  name: string,
  makeFactory: () => PubSubFactory,
  /** Whether separate instances (processes) reach each other; the in-process one does not by design. */
  { crossInstance }: { crossInstance: boolean },
): void {
  describe(`PubSub contract: ${name}`, () => {
    const open: PubSub[] = [];
    let factory: PubSubFactory | undefined;
    const create = (options?: { onHandlerError?: HandlerErrorReporter }): PubSub => {
      factory ??= makeFactory();
      const pubsub = factory(options);
      open.push(pubsub);
      return pubsub;
    };

    afterEach(async () => {
      await Promise.all(open.splice(0).map((pubsub) => pubsub.close()));
      factory = undefined;
    });

    it('answers ping', async () => {
      await expect(create().ping()).resolves.toBeUndefined();
    });

    it('delivers to every subscriber of the channel, each with its own copy', async () => {
      const pubsub = create();
      const a: unknown[] = [];
      const b: unknown[] = [];
      await pubsub.subscribe('events', (m) => a.push(m));
      await pubsub.subscribe('events', (m) => b.push(m));
      const message = { type: 'push', refs: ['main'], n: 1, nested: { ok: true, none: null } };
      await pubsub.publish('events', message);
      await eventually(() => a.length === 1 && b.length === 1);
      expect(a[0]).toEqual(message);
      expect(b[0]).toEqual(message);
      expect(a[0]).not.toBe(b[0]);
      expect(a[0]).not.toBe(message);
    });

    it('delivers asynchronously, in publish order', async () => {
      const pubsub = create();
      const received: unknown[] = [];
      await pubsub.subscribe('ordered', (m) => received.push(m));
      const publishes = Array.from({ length: 50 }, (_, i) => pubsub.publish('ordered', i));
      expect(received).toEqual([]); // nothing delivered synchronously inside publish()
      await Promise.all(publishes);
      await eventually(() => received.length === 50);
      expect(received).toEqual(Array.from({ length: 50 }, (_, i) => i));
    });

    it('does not deliver to other channels', async () => {
      const pubsub = create();
      const other: unknown[] = [];
      const target: unknown[] = [];
      await pubsub.subscribe('other', (m) => other.push(m));
      await pubsub.subscribe('target', (m) => target.push(m));
      await pubsub.publish('target', 'for target');
      await pubsub.publish('other', 'marker');
      await eventually(() => other.length === 1 && target.length === 1);
      expect(other).toEqual(['marker']);
      expect(target).toEqual(['for target']);
    });

    it('stops delivery after unsubscribe, leaving other subscribers', async () => {
      const pubsub = create();
      const stopped: unknown[] = [];
      const kept: unknown[] = [];
      const unsubscribe = await pubsub.subscribe('chan', (m) => stopped.push(m));
      await pubsub.subscribe('chan', (m) => kept.push(m));
      await pubsub.publish('chan', 'first');
      await eventually(() => stopped.length === 1 && kept.length === 1);
      await unsubscribe();
      await unsubscribe(); // idempotent
      await pubsub.publish('chan', 'second');
      await pubsub.publish('chan', 'marker');
      await eventually(() => kept.length === 3);
      expect(kept).toEqual(['first', 'second', 'marker']);
      expect(stopped).toEqual(['first']);
    });

    it('stops delivery when the last subscriber of a channel leaves, and can subscribe again', async () => {
      const pubsub = create();
      const first: unknown[] = [];
      const marker: unknown[] = [];
      await pubsub.subscribe('marker', (m) => marker.push(m));
      const unsubscribe = await pubsub.subscribe('solo', (m) => first.push(m));
      await unsubscribe();
      await pubsub.publish('solo', 'lost');
      await pubsub.publish('marker', 'done');
      await eventually(() => marker.length === 1);
      expect(first).toEqual([]);
      const again: unknown[] = [];
      await pubsub.subscribe('solo', (m) => again.push(m));
      await pubsub.publish('solo', 'found');
      await eventually(() => again.length === 1);
      expect(again).toEqual(['found']);
      expect(first).toEqual([]);
    });

    it('keeps delivering to others when a handler throws, and reports the error', async () => {
      const errors: Array<{ error: unknown; channel: string }> = [];
      const pubsub = create({ onHandlerError: (error, channel) => errors.push({ error, channel }) });
      const received: unknown[] = [];
      await pubsub.subscribe('faulty', () => {
        throw new Error('boom');
      });
      await pubsub.subscribe('faulty', async () => {
        throw new Error('async boom');
      });
      await pubsub.subscribe('faulty', (m) => received.push(m));
      await pubsub.publish('faulty', 1);
      await pubsub.publish('faulty', 2);
      await eventually(() => received.length === 2 && errors.length === 4);
      expect(received).toEqual([1, 2]);
      expect(errors.map((e) => [e.channel, (e.error as Error).message]).sort()).toEqual([
        ['faulty', 'async boom'],
        ['faulty', 'async boom'],
        ['faulty', 'boom'],
        ['faulty', 'boom'],
      ]);
    });

    it('rejects messages that have no JSON form', async () => {
      await expect(create().publish('chan', undefined)).rejects.toThrow(TypeError);
    });

    if (!crossInstance) return;

    it('delivers across instances', async () => {
      const publisher = create();
      const subscriber1 = create();
      const subscriber2 = create();
      const got1: unknown[] = [];
      const got2: unknown[] = [];
      await subscriber1.subscribe('cluster', (m) => got1.push(m));
      await subscriber2.subscribe('cluster', (m) => got2.push(m));
      await publisher.publish('cluster', { from: 'publisher' });
      await eventually(() => got1.length === 1 && got2.length === 1);
      expect(got1).toEqual([{ from: 'publisher' }]);
      expect(got2).toEqual([{ from: 'publisher' }]);
    });
  });
}

pubsubContract('MemoryPubSub', () => (options) => new MemoryPubSub(options), { crossInstance: false });

describe('PostgresPubSub', () => {
  let store: TestStore | undefined;
  const handles: DbHandle[] = [];
  afterAll(async () => {
    await Promise.allSettled(handles.map((h) => h.close()));
    await store?.drop();
  });
  // Each instance on its own pool, as separate processes (a CLI command and the server) have them.
  pubsubContract(
    'PostgresPubSub',
    () => {
      const ready = (async () => {
        store ??= await createTestStore('embedded');
        return store;
      })();
      return (options) => {
        const handle = ready.then(async (s) => {
          const h = await s.openDb();
          handles.push(h);
          return h;
        });
        return new PostgresPubSub({
          notify: async (channel, payload) => {
            const h = await handle;
            await sql`select pg_notify(${channel}, ${payload})`.execute(h.db);
          },
          connect: async () => (await handle).connect(),
          ...options,
        });
      };
    },
    { crossInstance: true },
  );
});

describe.skipIf(!valkeyAvailable)('ValkeyPubSub', () => {
  pubsubContract(
    'ValkeyPubSub',
    () => {
      const channelPrefix = `test:${randomUUID()}:`;
      return (options) => new ValkeyPubSub(testValkeyUrl, { channelPrefix, ...options });
    },
    { crossInstance: true },
  );

  it('isolates instances with different channel prefixes', async () => {
    const a = new ValkeyPubSub(testValkeyUrl, { channelPrefix: `test:${randomUUID()}:` });
    const b = new ValkeyPubSub(testValkeyUrl, { channelPrefix: `test:${randomUUID()}:` });
    try {
      const gotA: unknown[] = [];
      const gotB: unknown[] = [];
      await a.subscribe('chan', (m) => gotA.push(m));
      await b.subscribe('chan', (m) => gotB.push(m));
      await b.publish('chan', 'for b');
      await a.publish('chan', 'for a');
      await eventually(() => gotA.length === 1 && gotB.length === 1);
      expect(gotA).toEqual(['for a']);
      expect(gotB).toEqual(['for b']);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('fails fast, without crashing, when the server is unreachable', async () => {
    const pubsub = new ValkeyPubSub('redis://127.0.0.1:1');
    try {
      await expect(pubsub.ping()).rejects.toThrow(/unreachable/);
      await expect(pubsub.publish('chan', 1)).rejects.toThrow();
      await expect(pubsub.subscribe('chan', () => {})).rejects.toThrow();
    } finally {
      await pubsub.close();
    }
  });
});
