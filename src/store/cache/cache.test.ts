import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testValkeyUrl, valkeyAvailable } from '../../../test/helpers/services.js';
import { eventually } from '../../../test/helpers/wait.js';
import { type Cache, MemoryCache, ValkeyCache } from './index.js';

function cacheContract(name: string, create: () => Cache): void {
  describe(`Cache contract: ${name}`, () => {
    let cache: Cache;

    beforeEach(() => {
      cache = create();
    });

    afterEach(async () => {
      await cache.deleteByPrefix('');
      await cache.close();
    });

    it('answers ping', async () => {
      await expect(cache.ping()).resolves.toBeUndefined();
    });

    it('gets what was set, as JSON, and undefined for missing keys', async () => {
      expect(await cache.get('missing')).toBeUndefined();
      const value = { name: 'ada', tags: ['x', 'y'], nested: { n: 1.5, ok: true, none: null } };
      await cache.set('obj', value);
      await cache.set('str', 'text');
      await cache.set('num', 42);
      await cache.set('bool', false);
      await cache.set('nil', null);
      await cache.set('date', new Date('2024-01-02T03:04:05.000Z'));
      expect(await cache.get('obj')).toEqual(value);
      expect(await cache.get('str')).toBe('text');
      expect(await cache.get('num')).toBe(42);
      expect(await cache.get('bool')).toBe(false);
      expect(await cache.get('nil')).toBeNull();
      expect(await cache.get('date')).toBe('2024-01-02T03:04:05.000Z');
    });

    it('returns copies: mutating a result does not change the cached value', async () => {
      await cache.set('obj', { list: [1] });
      const first = await cache.get<{ list: number[] }>('obj');
      first?.list.push(2);
      expect(await cache.get('obj')).toEqual({ list: [1] });
    });

    it('overwrites and deletes; deleting a missing key is fine', async () => {
      await cache.set('k', 1);
      await cache.set('k', 2);
      expect(await cache.get('k')).toBe(2);
      await cache.delete('k');
      expect(await cache.get('k')).toBeUndefined();
      await expect(cache.delete('k')).resolves.toBeUndefined();
    });

    it('rejects values that have no JSON form and non-positive TTLs', async () => {
      await expect(cache.set('u', undefined)).rejects.toThrow(TypeError);
      await expect(cache.set('t', 1, 0)).rejects.toThrow(RangeError);
      await expect(cache.set('t', 1, -5)).rejects.toThrow(RangeError);
      await expect(cache.increment('t', Number.NaN)).rejects.toThrow(RangeError);
      expect(await cache.get('u')).toBeUndefined();
      expect(await cache.get('t')).toBeUndefined();
    });

    it('expires keys after their TTL and reports the remaining TTL', async () => {
      await cache.set('short', 'v', 1);
      await cache.set('long', 'v', 100);
      await cache.set('forever', 'v');
      expect(await cache.get('short')).toBe('v');
      expect(await cache.ttl('short')).toBe(1);
      const longTtl = await cache.ttl('long');
      expect(longTtl).toBeGreaterThanOrEqual(99);
      expect(longTtl).toBeLessThanOrEqual(100);
      expect(await cache.ttl('forever')).toBeUndefined();
      expect(await cache.ttl('missing')).toBeUndefined();
      await eventually(async () => (await cache.get('short')) === undefined);
      expect(await cache.ttl('short')).toBeUndefined();
      expect(await cache.get('long')).toBe('v');
      expect(await cache.get('forever')).toBe('v');
    });

    it('set without a TTL replaces an earlier expiry', async () => {
      await cache.set('k', 'a', 100);
      await cache.set('k', 'b');
      expect(await cache.ttl('k')).toBeUndefined();
      expect(await cache.get('k')).toBe('b');
    });

    it('deleteByPrefix removes exactly the keys starting with the prefix', async () => {
      for (const key of ['user:1', 'user:2', 'user:10:x', 'users', 'other', 'xuser:1'])
        await cache.set(key, key);
      await cache.deleteByPrefix('user:');
      expect(await cache.get('user:1')).toBeUndefined();
      expect(await cache.get('user:2')).toBeUndefined();
      expect(await cache.get('user:10:x')).toBeUndefined();
      expect(await cache.get('users')).toBe('users');
      expect(await cache.get('other')).toBe('other');
      expect(await cache.get('xuser:1')).toBe('xuser:1');
    });

    it('deleteByPrefix treats glob characters in the prefix literally', async () => {
      for (const key of ['a*b:1', 'a*bc', 'axb:1', 'a?c', 'abc', '[ab]1', 'a1', 'b\\x', 'bx'])
        await cache.set(key, 1);
      await cache.deleteByPrefix('a*b');
      await cache.deleteByPrefix('a?');
      await cache.deleteByPrefix('[ab]');
      await cache.deleteByPrefix('b\\');
      for (const gone of ['a*b:1', 'a*bc', 'a?c', '[ab]1', 'b\\x'])
        expect(await cache.get(gone)).toBeUndefined();
      for (const kept of ['axb:1', 'abc', 'a1', 'bx']) expect(await cache.get(kept)).toBe(1);
    });

    it('deleteByPrefix handles many keys', async () => {
      await Promise.all(Array.from({ length: 1_500 }, (_, i) => cache.set(`bulk:${i}`, i)));
      await cache.set('keep', true);
      await cache.deleteByPrefix('bulk:');
      expect(await cache.get('bulk:0')).toBeUndefined();
      expect(await cache.get('bulk:1499')).toBeUndefined();
      expect(await cache.get('keep')).toBe(true);
    });

    it('increments atomically under 200 concurrent calls', async () => {
      const results = await Promise.all(Array.from({ length: 200 }, () => cache.increment('counter', 60)));
      expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
      expect(await cache.get('counter')).toBe(200);
      expect(await cache.increment('counter', 60)).toBe(201);
    });

    it('keeps the TTL set by the first increment (fixed window), then starts a new window', async () => {
      expect(await cache.increment('window', 1)).toBe(1);
      expect(await cache.increment('window', 100)).toBe(2);
      expect(await cache.increment('window', 100)).toBe(3);
      expect(await cache.ttl('window')).toBe(1);
      await eventually(async () => (await cache.get('window')) === undefined);
      expect(await cache.increment('window', 100)).toBe(1);
      expect(await cache.ttl('window')).toBeGreaterThan(1);
    });

    it('refuses to increment a value that is not an integer', async () => {
      await cache.set('text', 'abc');
      await expect(cache.increment('text', 10)).rejects.toThrow();
      expect(await cache.get('text')).toBe('abc');
    });
  });
}

cacheContract('MemoryCache', () => new MemoryCache());

describe.skipIf(!valkeyAvailable)('ValkeyCache', () => {
  cacheContract('ValkeyCache', () => new ValkeyCache(testValkeyUrl, { keyPrefix: `test:${randomUUID()}:` }));

  it('namespaces keys by keyPrefix', async () => {
    const a = new ValkeyCache(testValkeyUrl, { keyPrefix: `test:${randomUUID()}:` });
    const b = new ValkeyCache(testValkeyUrl, { keyPrefix: `test:${randomUUID()}:` });
    try {
      await a.set('shared-name', 'a');
      expect(await b.get('shared-name')).toBeUndefined();
      await b.deleteByPrefix('');
      expect(await a.get('shared-name')).toBe('a');
    } finally {
      await a.deleteByPrefix('');
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('fails fast, without crashing, when the server is unreachable', async () => {
    const cache = new ValkeyCache('redis://127.0.0.1:1', { keyPrefix: `test:${randomUUID()}:` });
    try {
      const started = Date.now();
      await expect(cache.ping()).rejects.toThrow(/unreachable/);
      await expect(cache.get('k')).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await cache.close();
    }
  });
});
