import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Dirent, Stats } from 'node:fs';
import { constants as fsConstants } from 'node:fs';
import {
  access,
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
} from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { InvalidObjectKeyError, ObjectIntegrityError, ObjectKeyConflictError } from './errors.js';
import { compareKeys, encodeKeyPath, validateObjectKey, validateObjectPrefix } from './keys.js';
import { mapWithConcurrency } from './map-with-concurrency.js';
import type { ObjectInfo, ObjectStore, PresignedUpload, PutOptions, UploadIntegrity } from './types.js';

export interface FsObjectStoreOptions {
  /** Directory holding the store; created on first use. */
  root: string;
  /** The platform's external base URL; presigned URLs point at `${publicUrl}/api/objects/<key>`. */
  publicUrl: string;
  /** HMAC-SHA256 key for presigned URLs (at least 16 bytes). */
  signingKey: Buffer;
}

export type PresignedMethod = 'GET' | 'PUT';

const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
const MAX_SEGMENT_BYTES = 255;
/** Temp files this old are leftovers of a crash, not uploads in progress. */
const STALE_TEMP_MS = 24 * 60 * 60 * 1000;

/** Sidecar metadata. `ino` ties it to one version of the data file (rename keeps the inode). */
interface StoredMeta {
  contentType: string;
  etag: string;
  size: number;
  ino: number;
}

/**
 * Objects as files under `<root>/data/<key>`, their metadata as JSON under `<root>/meta/<key>` (a
 * parallel tree, so no key can collide with a sidecar and list() only walks data), and uploads in
 * progress under `<root>/tmp/` — inside the root, hence on the same filesystem, so the final
 * rename is atomic. Every write goes temp file → fsync → rename → fsync directory.
 *
 * The data file is renamed before its metadata; the metadata records the data file's inode, so a
 * crash (or a concurrent put of the same key) between the two renames is detected on read and the
 * object is served with a recomputed etag instead of another version's metadata.
 */
export class FsObjectStore implements ObjectStore {
  readonly kind = 'fs';
  private readonly root: string;
  private readonly dataDir: string;
  private readonly metaDir: string;
  private readonly tmpDir: string;
  private readonly publicUrl: string;
  private readonly signingKey: Buffer;
  private ready: Promise<void> | undefined;

  constructor(options: FsObjectStoreOptions) {
    if (!Buffer.isBuffer(options.signingKey) || options.signingKey.length < 16) {
      throw new TypeError('FsObjectStore: signingKey must be a Buffer of at least 16 bytes');
    }
    this.root = resolve(options.root);
    this.dataDir = join(this.root, 'data');
    this.metaDir = join(this.root, 'meta');
    this.tmpDir = join(this.root, 'tmp');
    this.publicUrl = new URL(options.publicUrl).toString().replace(/\/+$/, '');
    this.signingKey = Buffer.from(options.signingKey);
  }

  async put(key: string, body: Buffer | string | Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    checkKey(key);
    await this.ensureDirs();
    const contentType = options.contentType || DEFAULT_CONTENT_TYPE;
    const tmpData = join(this.tmpDir, `${randomUUID()}.data`);
    const tmpMeta = join(this.tmpDir, `${randomUUID()}.meta`);
    try {
      const written = await writeDurably(tmpData, body);
      // Checked before anything is moved into place: a refused body never becomes the object.
      if (options.contentLength !== undefined && options.contentLength !== written.stats.size) {
        throw new ObjectIntegrityError(
          key,
          `body has ${written.stats.size} bytes, ${options.contentLength} were announced`,
        );
      }
      if (options.sha256 !== undefined && options.sha256.toLowerCase() !== written.sha256) {
        throw new ObjectIntegrityError(key, 'body does not match its SHA-256');
      }
      const meta: StoredMeta = {
        contentType,
        etag: written.md5,
        size: written.stats.size,
        ino: written.stats.ino,
      };
      await writeDurably(tmpMeta, JSON.stringify(meta));
      const dataPath = this.dataPath(key);
      const metaPath = this.metaPath(key);
      await this.moveIntoPlace(key, tmpData, dataPath);
      await this.moveIntoPlace(key, tmpMeta, metaPath);
      await syncDirectory(dirname(dataPath));
      await syncDirectory(dirname(metaPath));
      return { key, size: meta.size, contentType, etag: meta.etag, lastModified: written.stats.mtime };
    } finally {
      await rm(tmpData, { force: true });
      await rm(tmpMeta, { force: true });
    }
  }

  async get(key: string): Promise<{ info: ObjectInfo; body: Readable } | undefined> {
    checkKey(key);
    let handle: FileHandle;
    try {
      // Holding the descriptor pins this version even if a concurrent put replaces the file.
      handle = await open(this.dataPath(key), 'r');
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) {
        await handle.close();
        return undefined;
      }
      const info = await this.describe(key, stats, () => md5OfHandle(handle, stats.size));
      return { info, body: handle.createReadStream({ autoClose: true }) };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    checkKey(key);
    return this.headValid(key);
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    const dataPath = this.dataPath(key);
    const metaPath = this.metaPath(key);
    // Data first: an orphaned sidecar is harmless (reads start from the data file).
    await removeFile(dataPath);
    await removeFile(metaPath);
    await pruneEmptyDirectories(dirname(dataPath), this.dataDir);
    await pruneEmptyDirectories(dirname(metaPath), this.metaDir);
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    validateObjectPrefix(prefix);
    const keys: string[] = [];
    const startDir = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    await this.walk(startDir, prefix, keys);
    keys.sort(compareKeys);
    const infos = await mapWithConcurrency(keys, 16, (key) => this.headValid(key));
    return infos.filter((info): info is ObjectInfo => info !== undefined);
  }

  /** The platform route serving the URL applies downloadHeaders() with the type recorded at put. */
  async presignGet(
    key: string,
    expiresInSeconds: number,
    _options?: { contentType?: string },
  ): Promise<string> {
    return this.presign('GET', key, expiresInSeconds);
  }

  /**
   * The signature covers method, key, expiry and, with `integrity`, the digest and size: the route
   * passes them to put(), which refuses a body that does not match before it becomes the object.
   * The uploader's Content-Type is not stored (see putFromPresigned).
   */
  async presignPut(
    key: string,
    expiresInSeconds: number,
    integrity?: UploadIntegrity,
  ): Promise<PresignedUpload> {
    return { url: this.presign('PUT', key, expiresInSeconds, integrity), headers: {} };
  }

  /**
   * Checks a presigned URL's parameters as produced by presignGet/presignPut. False when the
   * signature does not match, the URL has expired, or any part is malformed.
   */
  verifyPresigned(
    method: PresignedMethod,
    key: string,
    expires: string | number,
    signature: string,
    integrity?: { sha256?: string; size?: string | number },
  ): boolean {
    if (method !== 'GET' && method !== 'PUT') return false;
    try {
      checkKey(key);
    } catch {
      return false;
    }
    let expiresAt: number;
    if (typeof expires === 'number') {
      if (!Number.isSafeInteger(expires)) return false;
      expiresAt = expires;
    } else if (typeof expires === 'string' && /^\d{1,15}$/.test(expires)) {
      expiresAt = Number(expires);
    } else {
      return false;
    }
    if (expiresAt < Math.floor(Date.now() / 1000)) return false;
    if (typeof signature !== 'string' || !/^[0-9a-fA-F]{64}$/.test(signature)) return false;
    let bound: UploadIntegrity | undefined;
    if (integrity?.sha256 !== undefined || integrity?.size !== undefined) {
      const size = Number(integrity.size);
      if (!/^[0-9a-f]{64}$/.test(integrity.sha256 ?? '') || !Number.isSafeInteger(size) || size < 0)
        return false;
      bound = { sha256: integrity.sha256!, size };
    }
    const expected = this.sign(method, key, expiresAt, bound);
    return timingSafeEqual(expected, Buffer.from(signature, 'hex'));
  }

  async ping(): Promise<void> {
    await this.ensureDirs();
    await access(this.dataDir, fsConstants.R_OK | fsConstants.W_OK);
    await access(this.tmpDir, fsConstants.R_OK | fsConstants.W_OK);
  }

  async close(): Promise<void> {
    // Nothing held open between calls.
  }

  private presign(
    method: PresignedMethod,
    key: string,
    expiresInSeconds: number,
    integrity?: UploadIntegrity,
  ): string {
    checkKey(key);
    if (!Number.isFinite(expiresInSeconds) || expiresInSeconds <= 0) {
      throw new RangeError(`expiresInSeconds must be a positive number, got ${expiresInSeconds}`);
    }
    const expires = Math.floor(Date.now() / 1000) + Math.ceil(expiresInSeconds);
    if (integrity && (!/^[0-9a-f]{64}$/.test(integrity.sha256) || !Number.isSafeInteger(integrity.size))) {
      throw new RangeError('integrity needs a lower-case hex SHA-256 and an integer size');
    }
    const signature = this.sign(method, key, expires, integrity).toString('hex');
    const bound = integrity ? `&sha256=${integrity.sha256}&size=${integrity.size}` : '';
    return `${this.publicUrl}/api/objects/${encodeKeyPath(key)}?method=${method}&expires=${expires}${bound}&signature=${signature}`;
  }

  private sign(method: PresignedMethod, key: string, expires: number, integrity?: UploadIntegrity): Buffer {
    const bound = integrity ? `\n${integrity.sha256}\n${integrity.size}` : '';
    return createHmac('sha256', this.signingKey).update(`${method}\n${key}\n${expires}${bound}`).digest();
  }

  private dataPath(key: string): string {
    return join(this.dataDir, ...key.split('/'));
  }

  private metaPath(key: string): string {
    return join(this.metaDir, ...key.split('/'));
  }

  private ensureDirs(): Promise<void> {
    this.ready ??= (async () => {
      await Promise.all(
        [this.dataDir, this.metaDir, this.tmpDir].map((dir) => mkdir(dir, { recursive: true })),
      );
      await removeStaleTempFiles(this.tmpDir);
    })().catch((err: unknown) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  private async moveIntoPlace(key: string, from: string, to: string): Promise<void> {
    // A concurrent delete may prune the (then empty) parent directory between mkdir and rename.
    for (let attempt = 1; ; attempt++) {
      try {
        await mkdir(dirname(to), { recursive: true });
        await rename(from, to);
        return;
      } catch (err) {
        const code = errorCode(err);
        if (code === 'ENOTDIR' || code === 'EISDIR' || code === 'EEXIST' || code === 'ENOTEMPTY') {
          throw new ObjectKeyConflictError(key);
        }
        if (code !== 'ENOENT' || attempt >= 3) throw err;
      }
    }
  }

  private async headValid(key: string): Promise<ObjectInfo | undefined> {
    const path = this.dataPath(key);
    let stats: Stats;
    try {
      stats = await stat(path);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    if (!stats.isFile()) return undefined;
    return this.describe(key, stats, () => md5OfFile(path));
  }

  private async describe(key: string, stats: Stats, computeEtag: () => Promise<string>): Promise<ObjectInfo> {
    const meta = await this.readMeta(key);
    const current = meta !== undefined && meta.ino === stats.ino && meta.size === stats.size;
    return {
      key,
      size: stats.size,
      contentType: current ? meta.contentType : DEFAULT_CONTENT_TYPE,
      etag: current ? meta.etag : await computeEtag(),
      lastModified: stats.mtime,
    };
  }

  private async readMeta(key: string): Promise<StoredMeta | undefined> {
    try {
      const parsed: unknown = JSON.parse(await readFile(this.metaPath(key), 'utf8'));
      return isStoredMeta(parsed) ? parsed : undefined;
    } catch (err) {
      if (isMissing(err) || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  private async walk(relativeDir: string, prefix: string, into: string[]): Promise<void> {
    let entries: Dirent[];
    try {
      entries = await readdir(
        relativeDir === '' ? this.dataDir : join(this.dataDir, ...relativeDir.split('/')),
        {
          withFileTypes: true,
        },
      );
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    const subdirs: string[] = [];
    for (const entry of entries) {
      const key = relativeDir === '' ? entry.name : `${relativeDir}/${entry.name}`;
      if (entry.isDirectory()) {
        const asPrefix = `${key}/`;
        if (asPrefix.startsWith(prefix) || prefix.startsWith(asPrefix)) subdirs.push(key);
      } else if (entry.isFile() && key.startsWith(prefix)) {
        into.push(key);
      }
    }
    for (const dir of subdirs) await this.walk(dir, prefix, into);
  }
}

/** Common key rules, plus the filesystem's limit on one path segment (NAME_MAX). */
function checkKey(key: string): void {
  validateObjectKey(key);
  for (const segment of key.split('/')) {
    if (Buffer.byteLength(segment, 'utf8') > MAX_SEGMENT_BYTES) {
      throw new InvalidObjectKeyError(
        key,
        `path segment longer than ${MAX_SEGMENT_BYTES} bytes (filesystem limit)`,
      );
    }
  }
}

interface WrittenFile {
  md5: string;
  sha256: string;
  stats: Stats;
}

async function writeDurably(path: string, body: Buffer | string | Readable): Promise<WrittenFile> {
  const handle = await open(path, 'wx');
  try {
    const md5 = createHash('md5');
    const sha256 = createHash('sha256');
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
      md5.update(bytes);
      sha256.update(bytes);
      await handle.writeFile(bytes);
    } else {
      for await (const chunk of body as AsyncIterable<Buffer | string>) {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
        md5.update(bytes);
        sha256.update(bytes);
        await writeAll(handle, bytes);
      }
    }
    await handle.sync();
    const stats = await handle.stat();
    return { md5: md5.digest('hex'), sha256: sha256.digest('hex'), stats };
  } finally {
    await handle.close();
  }
}

async function writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function md5OfHandle(handle: FileHandle, size: number): Promise<string> {
  const md5 = createHash('md5');
  const buffer = Buffer.allocUnsafe(Math.min(Math.max(size, 1), 1 << 20));
  let position = 0;
  while (position < size) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    md5.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return md5.digest('hex');
}

async function md5OfFile(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    return await md5OfHandle(handle, (await handle.stat()).size);
  } finally {
    await handle.close();
  }
}

async function removeFile(path: string): Promise<void> {
  try {
    await rm(path);
  } catch (err) {
    // EISDIR/ERR_FS_EISDIR: the key names a "directory" of other keys, not an object.
    const code = errorCode(err);
    if (isMissing(err) || code === 'EISDIR' || code === 'ERR_FS_EISDIR') return;
    throw err;
  }
}

async function pruneEmptyDirectories(dir: string, stopAt: string): Promise<void> {
  let current = dir;
  while (current.length > stopAt.length && current.startsWith(stopAt + sep)) {
    try {
      await rmdir(current);
    } catch {
      return; // not empty, already gone or busy: leave it
    }
    current = dirname(current);
  }
}

async function removeStaleTempFiles(tmpDir: string): Promise<void> {
  const cutoff = Date.now() - STALE_TEMP_MS;
  for (const name of await readdir(tmpDir)) {
    const path = join(tmpDir, name);
    try {
      if ((await stat(path)).mtimeMs < cutoff) await rm(path, { force: true });
    } catch {
      // best effort: another instance may be cleaning up too
    }
  }
}

function isStoredMeta(value: unknown): value is StoredMeta {
  if (typeof value !== 'object' || value === null) return false;
  const meta = value as Record<string, unknown>;
  return (
    typeof meta.contentType === 'string' &&
    typeof meta.etag === 'string' &&
    typeof meta.size === 'number' &&
    typeof meta.ino === 'number'
  );
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : undefined;
}

function isMissing(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}
