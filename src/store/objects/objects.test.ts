import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Bucket as bucket, s3Store, startS3 } from '../../../test/helpers/s3.js';
import { downloadHeaders } from './download.js';
import {
  FsObjectStore,
  InvalidObjectKeyError,
  type ObjectInfo,
  ObjectIntegrityError,
  ObjectKeyConflictError,
  type ObjectStore,
} from './index.js';

interface Harness {
  store: ObjectStore;
  teardown(): Promise<void>;
}

const md5 = (data: Buffer | string) => createHash('md5').update(data).digest('hex');
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** ~5 MB of random bytes as a stream of 64 KiB chunks, plus the digest of what it produces. */
function randomStream(size = 5 * 1024 * 1024 + 123): {
  stream: Readable;
  size: number;
  sha256: Promise<string>;
} {
  const hash = createHash('sha256');
  let resolveDigest: (digest: string) => void = () => {};
  const digest = new Promise<string>((resolve) => {
    resolveDigest = resolve;
  });
  async function* chunks() {
    let left = size;
    while (left > 0) {
      const chunk = randomBytes(Math.min(left, 64 * 1024));
      hash.update(chunk);
      left -= chunk.length;
      yield chunk;
    }
    resolveDigest(hash.digest('hex'));
  }
  return { stream: Readable.from(chunks()), size, sha256: digest };
}

function objectStoreContract(name: string, setup: () => Promise<Harness>): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let harness: Harness;
    let store: ObjectStore;
    /** Every test works under its own prefix, so tests never see each other's objects. */
    const base = () => `t-${randomUUID()}/`;

    beforeAll(async () => {
      harness = await setup();
      store = harness.store;
    });

    afterAll(async () => {
      await harness?.teardown();
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    it('round-trips a string with its metadata', async () => {
      const key = `${base()}hello.txt`;
      const before = Date.now();
      const info = await store.put(key, 'héllo wörld', { contentType: 'text/plain; charset=utf-8' });
      const bytes = Buffer.from('héllo wörld', 'utf8');
      expect(info).toMatchObject({
        key,
        size: bytes.length,
        contentType: 'text/plain; charset=utf-8',
        etag: md5(bytes),
      });
      expect(info.lastModified.getTime()).toBeGreaterThan(before - 5_000);
      const got = await store.get(key);
      expect(got?.info).toMatchObject({ key, size: bytes.length, contentType: 'text/plain; charset=utf-8' });
      expect(got?.info.etag).toBe(md5(bytes));
      expect((await readAll(got!.body)).toString('utf8')).toBe('héllo wörld');
    });

    it('round-trips a binary Buffer, defaulting the content type', async () => {
      const key = `${base()}blob.bin`;
      const data = Buffer.concat([Buffer.from([0, 1, 2, 255, 254, 0, 10, 13]), randomBytes(4096)]);
      const info = await store.put(key, data);
      expect(info).toMatchObject({
        size: data.length,
        contentType: 'application/octet-stream',
        etag: md5(data),
      });
      const got = await store.get(key);
      expect(Buffer.compare(await readAll(got!.body), data)).toBe(0);
    });

    it('round-trips a ~5 MB stream of unknown length', async () => {
      const key = `${base()}big/stream.bin`;
      const source = randomStream();
      const info = await store.put(key, source.stream, { contentType: 'application/x-test' });
      expect(info.size).toBe(source.size);
      const got = await store.get(key);
      expect(got?.info.size).toBe(source.size);
      const body = await readAll(got!.body);
      expect(body.length).toBe(source.size);
      expect(sha256(body)).toBe(await source.sha256);
      expect(info.etag).toBe(md5(body));
    });

    it('round-trips a ~5 MB stream with a known length', async () => {
      const key = `${base()}big/known.bin`;
      const source = randomStream();
      const info = await store.put(key, source.stream, { contentLength: source.size });
      expect(info.size).toBe(source.size);
      const body = await readAll((await store.get(key))!.body);
      expect(sha256(body)).toBe(await source.sha256);
    });

    it('heads objects, and answers undefined for missing ones', async () => {
      const prefix = base();
      const put = await store.put(`${prefix}a.json`, '{"a":1}', { contentType: 'application/json' });
      const head = await store.head(`${prefix}a.json`);
      expect(head).toEqual<ObjectInfo>({
        key: `${prefix}a.json`,
        size: 7,
        contentType: 'application/json',
        etag: md5('{"a":1}'),
        lastModified: expect.any(Date),
      });
      expect(Math.abs(head!.lastModified.getTime() - put.lastModified.getTime())).toBeLessThan(2_000);
      expect(await store.head(`${prefix}missing`)).toBeUndefined();
      expect(await store.get(`${prefix}missing`)).toBeUndefined();
      expect(await store.head(`${prefix}a.json/below`)).toBeUndefined();
    });

    it('overwrites an object', async () => {
      const key = `${base()}doc`;
      await store.put(key, 'version 1', { contentType: 'text/plain' });
      const second = await store.put(key, 'version two', { contentType: 'text/markdown' });
      expect(second.etag).toBe(md5('version two'));
      const got = await store.get(key);
      expect(got?.info).toMatchObject({ size: 11, contentType: 'text/markdown', etag: md5('version two') });
      expect((await readAll(got!.body)).toString()).toBe('version two');
    });

    it('lists by prefix, sorted by key, excluding other prefixes', async () => {
      const prefix = base();
      const keys = ['p/b', 'p/a', 'p/c/d', 'p/c/e/f', 'pz', 'q/p/a', 'p-other'];
      for (const key of keys) await store.put(`${prefix}${key}`, key);
      const under = await store.list(`${prefix}p/`);
      expect(under.map((o) => o.key)).toEqual(['p/a', 'p/b', 'p/c/d', 'p/c/e/f'].map((k) => `${prefix}${k}`));
      expect(under[0]).toMatchObject({ size: 3, etag: md5('p/a'), contentType: 'application/octet-stream' });
      expect((await store.list(`${prefix}p`)).map((o) => o.key)).toEqual(
        ['p-other', 'p/a', 'p/b', 'p/c/d', 'p/c/e/f', 'pz'].map((k) => `${prefix}${k}`),
      );
      expect((await store.list(`${prefix}p/c/e`)).map((o) => o.key)).toEqual([`${prefix}p/c/e/f`]);
      expect((await store.list(prefix)).length).toBe(keys.length);
      expect(await store.list(`${prefix}nothing/`)).toEqual([]);
      expect(await store.list(`${base()}`)).toEqual([]);
    });

    it('deletes objects; deleting a missing object is fine', async () => {
      const prefix = base();
      await store.put(`${prefix}dir/gone`, 'x');
      await store.put(`${prefix}dir/stays`, 'y');
      await store.delete(`${prefix}dir/gone`);
      expect(await store.head(`${prefix}dir/gone`)).toBeUndefined();
      expect(await store.get(`${prefix}dir/gone`)).toBeUndefined();
      expect((await store.list(prefix)).map((o) => o.key)).toEqual([`${prefix}dir/stays`]);
      await expect(store.delete(`${prefix}dir/gone`)).resolves.toBeUndefined();
      await expect(store.delete(`${prefix}never/existed`)).resolves.toBeUndefined();
      await store.delete(`${prefix}dir/stays`);
      expect(await store.list(prefix)).toEqual([]);
      // A key can be written again after its "directory" emptied.
      await store.put(`${prefix}dir`, 'now a file');
      expect((await store.head(`${prefix}dir`))?.size).toBe(10);
    });

    it('rejects invalid keys on every operation', async () => {
      const invalid = [
        '',
        '/leading',
        'a/../b',
        '..',
        '../escape',
        'a/..',
        'a\\b',
        'nul\0byte',
        'new\nline',
        'del\u007f',
        'a//b',
        'trailing/',
        './a',
        'x'.repeat(1025),
        'é'.repeat(513), // 1026 UTF-8 bytes
      ];
      for (const key of invalid) {
        await expect(store.put(key, 'x'), JSON.stringify(key)).rejects.toBeInstanceOf(InvalidObjectKeyError);
        await expect(store.get(key)).rejects.toBeInstanceOf(InvalidObjectKeyError);
        await expect(store.head(key)).rejects.toBeInstanceOf(InvalidObjectKeyError);
        await expect(store.delete(key)).rejects.toBeInstanceOf(InvalidObjectKeyError);
        await expect(store.presignGet(key, 60)).rejects.toBeInstanceOf(InvalidObjectKeyError);
        await expect(store.presignPut(key, 60)).rejects.toBeInstanceOf(InvalidObjectKeyError);
      }
      await expect(store.put('../x', 'x')).rejects.toMatchObject({ code: 'invalid_object_key' });
      await expect(store.list('../')).rejects.toBeInstanceOf(InvalidObjectKeyError);
      await expect(store.list('/abs')).rejects.toBeInstanceOf(InvalidObjectKeyError);
      // The longest valid key is fine (in segments a filesystem accepts).
      let longest = base();
      while (longest.length < 1024) longest += longest.length + 201 <= 1024 ? `${'k'.repeat(200)}/` : 'k';
      expect(longest.length).toBe(1024);
      await store.put(longest, 'longest');
      expect((await store.head(longest))?.size).toBe(7);
    });

    it('serves a presigned GET URL to plain fetch, including awkward key characters', async () => {
      const key = `${base()}dir with space/ünïcode+plus%percent#hash?q&amp=1.txt`;
      await store.put(key, 'presigned body', { contentType: 'text/plain' });
      const url = await store.presignGet(key, 60);
      expect(url).toMatch(/^https?:\/\//);
      const response = await fetch(url);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe('presigned body');
    });

    it('accepts an upload through a presigned PUT URL, stored as octet-stream', async () => {
      const key = `${base()}uploads/file.txt`;
      const upload = await store.presignPut(key, 60);
      const body = Buffer.from('uploaded with fetch\n'.repeat(1000));
      const response = await fetch(upload.url, { method: 'PUT', body, headers: upload.headers });
      expect(response.status).toBe(200);
      const got = await store.get(key);
      expect(got?.info).toMatchObject({
        size: body.length,
        contentType: 'application/octet-stream',
        etag: md5(body),
      });
      expect(Buffer.compare(await readAll(got!.body), body)).toBe(0);
    });

    it('serves a presigned GET as an octet-stream attachment, whatever the stored type', async () => {
      const key = `${base()}page.html`;
      await store.put(key, '<script>alert(1)</script>', { contentType: 'text/html' });
      const response = await fetch(await store.presignGet(key, 60));
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/octet-stream');
      expect(response.headers.get('content-disposition')).toMatch(/^attachment; filename="page.html"/);
      expect(await response.text()).toBe('<script>alert(1)</script>');
    });

    it('put with a SHA-256 refuses other bytes and stores nothing', async () => {
      const key = `${base()}lfs/object`;
      const good = Buffer.from('the real bytes');
      await expect(
        store.put(key, Buffer.from('forged bytes'), { sha256: sha256(good) }),
      ).rejects.toBeInstanceOf(ObjectIntegrityError);
      expect(await store.head(key)).toBeUndefined();
      await store.put(key, good, { sha256: sha256(good) });
      expect((await readAll((await store.get(key))!.body)).equals(good)).toBe(true);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Filesystem store: presigned URLs are served by a minimal HTTP server doing what the platform's
// route will do (verifyPresigned, then get/put), so the URL format really round-trips.

function servePresigned(getStore: () => FsObjectStore): Server {
  return createServer((req, res) => {
    const respond = (status: number, text: string) => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(text);
    };
    (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const prefix = '/api/objects/';
      if (!url.pathname.startsWith(prefix)) return respond(404, 'not found');
      const key = url.pathname.slice(prefix.length).split('/').map(decodeURIComponent).join('/');
      const method = url.searchParams.get('method');
      const store = getStore();
      const sha = url.searchParams.get('sha256') ?? undefined;
      const size = url.searchParams.get('size') ?? undefined;
      const integrity = sha !== undefined || size !== undefined ? { sha256: sha, size } : undefined;
      if (
        (method !== 'GET' && method !== 'PUT') ||
        req.method !== method ||
        !store.verifyPresigned(
          method,
          key,
          url.searchParams.get('expires') ?? '',
          url.searchParams.get('signature') ?? '',
          integrity,
        )
      ) {
        return respond(403, 'forbidden');
      }
      if (method === 'GET') {
        const object = await store.get(key);
        if (!object) return respond(404, 'not found');
        res.writeHead(200, {
          ...downloadHeaders({ contentType: object.info.contentType, filename: key }),
          'content-length': object.info.size,
          etag: `"${object.info.etag}"`,
        });
        await pipeline(object.body, res);
        return;
      }
      const length = size ?? req.headers['content-length'];
      try {
        await store.put(key, req, {
          contentType: 'application/octet-stream',
          contentLength: length === undefined ? undefined : Number(length),
          ...(sha ? { sha256: sha } : {}),
        });
      } catch (err) {
        if (err instanceof ObjectIntegrityError) return respond(422, err.message);
        throw err;
      }
      respond(200, 'stored');
    })().catch((err: unknown) => {
      if (!res.headersSent) respond(500, String(err));
      else res.destroy();
    });
  });
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function startFsStore(): Promise<{
  store: FsObjectStore;
  root: string;
  signingKey: Buffer;
  stop(): Promise<void>;
}> {
  const root = await mkdtemp(join(tmpdir(), 'platform-fs-objects-'));
  const signingKey = randomBytes(32);
  let store: FsObjectStore | undefined;
  const server = servePresigned(() => store!);
  const port = await listen(server);
  store = new FsObjectStore({ root, publicUrl: `http://127.0.0.1:${port}/`, signingKey });
  const created = store;
  return {
    store: created,
    root,
    signingKey,
    async stop() {
      await created.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(root, { recursive: true, force: true });
    },
  };
}

objectStoreContract('FsObjectStore', async () => {
  const fs = await startFsStore();
  return { store: fs.store, teardown: fs.stop };
});

describe('FsObjectStore specifics', () => {
  let fs: Awaited<ReturnType<typeof startFsStore>>;

  beforeAll(async () => {
    fs = await startFsStore();
  });

  afterAll(async () => {
    await fs?.stop();
  });

  const sign = (method: string, key: string, expires: number) =>
    createHmac('sha256', fs.signingKey).update(`${method}\n${key}\n${expires}`).digest('hex');

  it('builds presigned URLs in the platform format', async () => {
    const url = new URL(await fs.store.presignGet('a b/c.txt', 120));
    expect(url.pathname).toBe('/api/objects/a%20b/c.txt');
    expect(url.searchParams.get('method')).toBe('GET');
    const expires = Number(url.searchParams.get('expires'));
    const now = Math.floor(Date.now() / 1000);
    expect(expires).toBeGreaterThanOrEqual(now + 119);
    expect(expires).toBeLessThanOrEqual(now + 121);
    expect(url.searchParams.get('signature')).toBe(sign('GET', 'a b/c.txt', expires));
    const put = new URL((await fs.store.presignPut('a b/c.txt', 120)).url);
    expect(put.searchParams.get('method')).toBe('PUT');
  });

  it('verifyPresigned accepts a valid signature and refuses tampered, expired or malformed ones', () => {
    const key = 'lfs/ab/cd/object';
    const future = Math.floor(Date.now() / 1000) + 60;
    const past = Math.floor(Date.now() / 1000) - 1;
    const good = sign('GET', key, future);
    expect(fs.store.verifyPresigned('GET', key, future, good)).toBe(true);
    expect(fs.store.verifyPresigned('GET', key, String(future), good)).toBe(true);
    expect(fs.store.verifyPresigned('GET', key, String(future), good.toUpperCase())).toBe(true);
    // tampered
    const flipped = (good[0] === 'a' ? 'b' : 'a') + good.slice(1);
    expect(fs.store.verifyPresigned('GET', key, future, flipped)).toBe(false);
    expect(fs.store.verifyPresigned('PUT', key, future, good)).toBe(false);
    expect(fs.store.verifyPresigned('GET', `${key}x`, future, good)).toBe(false);
    expect(fs.store.verifyPresigned('GET', key, future + 1, good)).toBe(false);
    // expired, although correctly signed
    expect(fs.store.verifyPresigned('GET', key, past, sign('GET', key, past))).toBe(false);
    // malformed
    expect(fs.store.verifyPresigned('GET', key, 'soon', good)).toBe(false);
    expect(fs.store.verifyPresigned('GET', key, '', good)).toBe(false);
    expect(fs.store.verifyPresigned('GET', key, future + 0.5, good)).toBe(false);
    expect(fs.store.verifyPresigned('GET', key, future, good.slice(0, 62))).toBe(false);
    expect(fs.store.verifyPresigned('GET', key, future, `${good.slice(0, 63)}z`)).toBe(false);
    expect(fs.store.verifyPresigned('GET', key, future, '')).toBe(false);
    expect(fs.store.verifyPresigned('DELETE' as 'GET', key, future, sign('DELETE', key, future))).toBe(false);
    expect(
      fs.store.verifyPresigned('GET', '../etc/passwd', future, sign('GET', '../etc/passwd', future)),
    ).toBe(false);
    // Another store's key does not verify.
    const other = new FsObjectStore({ root: fs.root, publicUrl: 'http://x', signingKey: randomBytes(32) });
    expect(other.verifyPresigned('GET', key, future, good)).toBe(false);
  });

  it('refuses over HTTP a presigned URL that was tampered with or used for another method', async () => {
    await fs.store.put('guarded.txt', 'secret');
    const url = new URL(await fs.store.presignGet('guarded.txt', 60));
    const signature = url.searchParams.get('signature')!;
    url.searchParams.set('signature', (signature[0] === '0' ? '1' : '0') + signature.slice(1));
    const tampered = await fetch(url);
    expect(tampered.status).toBe(403);
    expect(await tampered.text()).not.toContain('secret');
    const otherKey = new URL(await fs.store.presignGet('guarded.txt', 60));
    otherKey.pathname = '/api/objects/other.txt';
    expect((await fetch(otherKey)).status).toBe(403);
    const putWithGetUrl = await fetch(await fs.store.presignGet('guarded.txt', 60), {
      method: 'PUT',
      body: 'overwrite',
    });
    expect(putWithGetUrl.status).toBe(403);
    expect((await readAll((await fs.store.get('guarded.txt'))!.body)).toString()).toBe('secret');
  });

  it('refuses an expired presigned URL over HTTP', async () => {
    await fs.store.put('expiring.txt', 'x');
    const url = new URL(await fs.store.presignGet('expiring.txt', 60));
    const past = Math.floor(Date.now() / 1000) - 10;
    url.searchParams.set('expires', String(past));
    url.searchParams.set('signature', sign('GET', 'expiring.txt', past));
    expect((await fetch(url)).status).toBe(403);
  });

  it('keeps data, metadata and temp files out of list() and prunes emptied directories', async () => {
    await fs.store.put('tree/a/b/c.txt', 'c', { contentType: 'text/plain' });
    await fs.store.put('tree/top.txt', 'top');
    await writeFile(join(fs.root, 'tmp', 'left-over.data'), 'crashed upload');
    expect((await fs.store.list('tree/')).map((o) => o.key)).toEqual(['tree/a/b/c.txt', 'tree/top.txt']);
    expect((await stat(join(fs.root, 'data', 'tree', 'a', 'b', 'c.txt'))).size).toBe(1);
    await fs.store.delete('tree/a/b/c.txt');
    expect(await readdir(join(fs.root, 'data', 'tree'))).toEqual(['top.txt']);
    expect(await readdir(join(fs.root, 'meta', 'tree'))).toEqual(['top.txt']);
    expect((await fs.store.list('')).map((o) => o.key)).toContain('tree/top.txt');
    expect((await fs.store.list('')).map((o) => o.key)).not.toContain('left-over.data');
    await rm(join(fs.root, 'tmp', 'left-over.data'));
  });

  it('does not describe data with the metadata of another version (crash between renames)', async () => {
    await fs.store.put('crash/obj', 'old content', { contentType: 'text/plain' });
    // Simulate a crash after the data file was renamed into place but before its metadata was.
    const staged = join(fs.root, 'tmp', 'staged');
    await writeFile(staged, 'new content!');
    await rename(staged, join(fs.root, 'data', 'crash', 'obj'));
    const head = await fs.store.head('crash/obj');
    expect(head).toMatchObject({
      size: 12,
      etag: md5('new content!'),
      contentType: 'application/octet-stream',
    });
    const got = await fs.store.get('crash/obj');
    expect(got?.info.etag).toBe(md5('new content!'));
    expect((await readAll(got!.body)).toString()).toBe('new content!');
  });

  it('refuses a key that is also a "directory" of other keys, with a clear error', async () => {
    await fs.store.put('both/child', 'x');
    await expect(fs.store.put('both', 'y')).rejects.toBeInstanceOf(ObjectKeyConflictError);
    await expect(fs.store.put('both/child/grandchild', 'z')).rejects.toBeInstanceOf(ObjectKeyConflictError);
    expect((await fs.store.list('both')).map((o) => o.key)).toEqual(['both/child']);
    expect(await fs.store.head('both')).toBeUndefined();
    await expect(fs.store.delete('both')).resolves.toBeUndefined();
    expect(await fs.store.head('both/child')).toBeDefined();
  });

  it('rejects a stream whose length differs from contentLength and stores nothing', async () => {
    await expect(
      fs.store.put('short', Readable.from([Buffer.from('abc')]), { contentLength: 10 }),
    ).rejects.toThrow(/body has 3 bytes, 10 were announced/);
    expect(await fs.store.head('short')).toBeUndefined();
    expect(await readdir(join(fs.root, 'tmp'))).toEqual([]);
  });

  it('rejects keys with a path segment longer than the filesystem allows', async () => {
    const key = `long/${'s'.repeat(256)}`;
    await expect(fs.store.put(key, 'x')).rejects.toBeInstanceOf(InvalidObjectKeyError);
    await expect(fs.store.head(key)).rejects.toBeInstanceOf(InvalidObjectKeyError);
    await fs.store.put(`long/${'s'.repeat(255)}`, 'x');
  });

  it('ping fails when the root cannot be used', async () => {
    const blocker = join(fs.root, 'not-a-dir');
    await writeFile(blocker, '');
    const broken = new FsObjectStore({
      root: join(blocker, 'store'),
      publicUrl: 'http://x',
      signingKey: randomBytes(32),
    });
    await expect(broken.ping()).rejects.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// S3 store against s3rver started here.

objectStoreContract('S3ObjectStore (s3rver)', async () => {
  const s3 = await startS3();
  // Default page size: s3rver's paginated listing skips keys that sort before a "directory"
  // already walked (e.g. "p-other" vs "p/…"); pagination is covered separately below.
  const store = s3Store(s3.endpoint);
  return {
    store,
    async teardown() {
      await store.close();
      await s3.stop();
    },
  };
});

describe('S3ObjectStore specifics', () => {
  let s3: Awaited<ReturnType<typeof startS3>>;

  beforeAll(async () => {
    s3 = await startS3();
  });

  afterAll(async () => {
    await s3?.stop();
  });

  it('reports a missing bucket as an error, not as a missing object', async () => {
    const store = s3Store(s3.endpoint, { bucket: 'no-such-bucket' });
    try {
      await expect(store.ping()).rejects.toThrow();
      await expect(store.get('some/key')).rejects.toThrow();
      await expect(store.list('')).rejects.toThrow();
    } finally {
      await store.close();
    }
  });

  it('signs a fixed content type, and with integrity the length and SHA-256, into a presigned PUT', async () => {
    const store = s3Store(s3.endpoint);
    try {
      const plain = await store.presignPut('typed/file.json', 60);
      const url = new URL(plain.url);
      expect(url.searchParams.get('X-Amz-SignedHeaders')?.split(';')).toContain('content-type');
      expect(url.searchParams.get('X-Amz-Expires')).toBe('60');
      expect(url.pathname).toBe(`/${bucket}/typed/file.json`);
      expect(plain.headers).toEqual({ 'Content-Type': 'application/octet-stream' });
      const digest = sha256(Buffer.from('x'));
      const bound = await store.presignPut('lfs/x', 60, { sha256: digest, size: 1 });
      const signed = new URL(bound.url).searchParams.get('X-Amz-SignedHeaders')?.split(';');
      expect(signed).toEqual(
        expect.arrayContaining(['content-type', 'content-length', 'x-amz-checksum-sha256']),
      );
      // The checksum stays a header (S3 enforces it there), sent by the client as the batch API says.
      expect([...new URL(bound.url).searchParams.keys()].filter((k) => /checksum/i.test(k))).toEqual([]);
      expect(bound.headers['x-amz-checksum-sha256']).toBe(Buffer.from(digest, 'hex').toString('base64'));
    } finally {
      await store.close();
    }
  });

  it('signs the download headers into a presigned GET', async () => {
    const store = s3Store(s3.endpoint);
    try {
      const url = new URL(await store.presignGet('a/report.html', 60));
      expect(url.searchParams.get('response-content-type')).toBe('application/octet-stream');
      expect(url.searchParams.get('response-content-disposition')).toMatch(
        /^attachment; filename="report.html"/,
      );
    } finally {
      await store.close();
    }
  });

  it('lists across many pages', async () => {
    const store = s3Store(s3.endpoint, { listPageSize: 3 });
    try {
      const keys = Array.from({ length: 10 }, (_, i) => `paged/${String(i).padStart(2, '0')}`);
      await Promise.all(keys.map((key) => store.put(key, key)));
      expect((await store.list('paged/')).map((o) => o.key)).toEqual(keys);
    } finally {
      await store.close();
    }
  });
});
