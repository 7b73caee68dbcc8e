import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { downloadHeaders } from './download.js';
import { ObjectIntegrityError } from './errors.js';
import { compareKeys, validateObjectKey, validateObjectPrefix } from './keys.js';
import { mapWithConcurrency } from './map-with-concurrency.js';
import type { ObjectInfo, ObjectStore, PresignedUpload, PutOptions, UploadIntegrity } from './types.js';

export interface S3ObjectStoreOptions {
  /** e.g. `http://127.0.0.1:9000` for MinIO; omitted → AWS. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Omitted → the SDK's default credential chain (env, profile, instance role…). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** `http://host/bucket/key` instead of `http://bucket.host/key` (MinIO, s3rver…). */
  forcePathStyle?: boolean;
  /** ListObjectsV2 page size (MaxKeys); S3's default and maximum is 1000. */
  listPageSize?: number;
}

const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
/** list() heads each object (ListObjectsV2 has no content type); this bounds the parallel HEADs. */
const LIST_HEAD_CONCURRENCY = 16;

export class S3ObjectStore implements ObjectStore {
  readonly kind = 's3';
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly listPageSize: number | undefined;

  constructor(options: S3ObjectStoreOptions) {
    const config: S3ClientConfig = {
      region: options.region,
      forcePathStyle: options.forcePathStyle ?? false,
      // The SDK's default CRC checksums use aws-chunked trailers and add checksum parameters to
      // presigned URLs; many S3-compatible servers reject or mis-store those. Integrity of buffered
      // and spooled uploads is covered by Content-MD5 instead.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
    if (options.endpoint) config.endpoint = options.endpoint;
    if (options.accessKeyId && options.secretAccessKey) {
      config.credentials = { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey };
    }
    this.client = new S3Client(config);
    this.bucket = options.bucket;
    this.listPageSize = options.listPageSize;
  }

  async put(key: string, body: Buffer | string | Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    validateObjectKey(key);
    const contentType = options.contentType || DEFAULT_CONTENT_TYPE;
    const expected = options.sha256?.toLowerCase();
    // Buffered and spooled bodies are checked here, before anything is sent; a stream of known length
    // is checked by S3 itself against the x-amz-checksum-sha256 header.
    const checkDigest = (actual: string) => {
      if (expected !== undefined && actual !== expected)
        throw new ObjectIntegrityError(key, 'body does not match its SHA-256');
    };
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
      checkDigest(createHash('sha256').update(bytes).digest('hex'));
      await this.send(
        key,
        bytes,
        bytes.length,
        contentType,
        createHash('md5').update(bytes).digest('base64'),
      );
    } else if (options.contentLength !== undefined) {
      await this.send(key, body, options.contentLength, contentType, undefined, expected);
    } else {
      // PutObject needs the length up front; spooling to disk learns it without holding the
      // whole body in memory (multipart upload would be the alternative for very large bodies).
      const dir = await mkdtemp(join(tmpdir(), 'platform-s3-upload-'));
      try {
        const path = join(dir, 'body');
        const md5 = createHash('md5');
        const sha256 = createHash('sha256');
        const hashing = new Transform({
          transform(chunk: Buffer | string, _encoding, callback) {
            md5.update(chunk);
            sha256.update(chunk);
            callback(null, chunk);
          },
        });
        await pipeline(body, hashing, createWriteStream(path));
        checkDigest(sha256.digest('hex'));
        const { size } = await stat(path);
        await this.send(key, createReadStream(path), size, contentType, md5.digest('base64'));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    const info = await this.head(key);
    if (!info) throw new Error(`object ${key} not found right after it was written to bucket ${this.bucket}`);
    return info;
  }

  async get(key: string): Promise<{ info: ObjectInfo; body: Readable } | undefined> {
    validateObjectKey(key);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!(out.Body instanceof Readable)) throw new Error('S3 GetObject returned a non-stream body');
      return {
        info: {
          key,
          size: out.ContentLength ?? 0,
          contentType: out.ContentType || DEFAULT_CONTENT_TYPE,
          etag: normalizeEtag(out.ETag),
          lastModified: out.LastModified ?? new Date(0),
        },
        body: out.Body,
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    validateObjectKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return {
        key,
        size: out.ContentLength ?? 0,
        contentType: out.ContentType || DEFAULT_CONTENT_TYPE,
        etag: normalizeEtag(out.ETag),
        lastModified: out.LastModified ?? new Date(0),
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    validateObjectKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    validateObjectPrefix(prefix);
    const keys: string[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix === '' ? undefined : prefix,
          ContinuationToken: continuationToken,
          MaxKeys: this.listPageSize,
        }),
      );
      for (const item of page.Contents ?? []) if (item.Key !== undefined) keys.push(item.Key);
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken);
    keys.sort(compareKeys);
    // An object deleted between the listing and its HEAD is simply left out.
    const infos = await mapWithConcurrency(keys, LIST_HEAD_CONCURRENCY, (key) => this.head(key));
    return infos.filter((info): info is ObjectInfo => info !== undefined);
  }

  /**
   * The response type and disposition are signed into the URL (response-content-type/-disposition),
   * so S3 answers with store/objects/download.ts's choice whatever the object was stored with. S3 cannot add
   * nosniff or a CSP; the bucket's own origin is what keeps its responses away from the platform's.
   */
  async presignGet(
    key: string,
    expiresInSeconds: number,
    options: { contentType?: string } = {},
  ): Promise<string> {
    validateObjectKey(key);
    const headers = downloadHeaders({ contentType: options.contentType, filename: key });
    return getSignedUrl(
      this.client,
      new GetObjectCommand({
        Bucket: this.bucket,
        Key: key,
        ResponseContentType: headers['content-type'],
        ResponseContentDisposition: headers['content-disposition'],
      }),
      { expiresIn: checkExpiry(expiresInSeconds) },
    );
  }

  /**
   * The Content-Type (always application/octet-stream) and, with `integrity`, the length and the
   * x-amz-checksum-sha256 header are signed: the uploader must send exactly them, and S3 refuses a
   * body whose SHA-256 differs (BadDigest) before it becomes the object.
   */
  async presignPut(
    key: string,
    expiresInSeconds: number,
    integrity?: UploadIntegrity,
  ): Promise<PresignedUpload> {
    validateObjectKey(key);
    const checksum = integrity ? Buffer.from(integrity.sha256, 'hex').toString('base64') : undefined;
    const signed = ['content-type', ...(integrity ? ['content-length', 'x-amz-checksum-sha256'] : [])];
    const url = await getSignedUrl(
      this.client,
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        ContentType: DEFAULT_CONTENT_TYPE,
        ...(integrity ? { ContentLength: integrity.size, ChecksumSHA256: checksum } : {}),
      }),
      {
        expiresIn: checkExpiry(expiresInSeconds),
        // The presigner signs only `host` by default, which would let the uploader pick any type; the
        // checksum must stay a header (S3 only enforces it there), not move into the query string.
        signableHeaders: new Set(signed),
        unhoistableHeaders: new Set(integrity ? ['x-amz-checksum-sha256'] : []),
      },
    );
    return {
      url,
      headers: {
        'Content-Type': DEFAULT_CONTENT_TYPE,
        ...(checksum ? { 'x-amz-checksum-sha256': checksum } : {}),
      },
    };
  }

  async ping(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private async send(
    key: string,
    body: Buffer | Readable,
    contentLength: number,
    contentType: string,
    contentMd5: string | undefined,
    sha256?: string,
  ): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentLength: contentLength,
          ContentType: contentType,
          ContentMD5: contentMd5,
          ...(sha256 ? { ChecksumSHA256: Buffer.from(sha256, 'hex').toString('base64') } : {}),
        }),
      );
    } catch (err) {
      if ((err as { name?: unknown }).name === 'BadDigest')
        throw new ObjectIntegrityError(key, 'body does not match its SHA-256');
      throw err;
    }
  }
}

function checkExpiry(expiresInSeconds: number): number {
  if (!Number.isFinite(expiresInSeconds) || expiresInSeconds <= 0) {
    throw new RangeError(`expiresInSeconds must be a positive number, got ${expiresInSeconds}`);
  }
  return Math.ceil(expiresInSeconds);
}

/** S3 quotes ETags (`"abc…"`); the interface carries the bare value, like the filesystem store. */
function normalizeEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/^W\//, '').replace(/^"|"$/g, '');
}

function isNotFound(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { name, $metadata } = err as { name?: unknown; $metadata?: { httpStatusCode?: number } };
  if (name === 'NoSuchKey' || name === 'NotFound') return true;
  // A missing bucket is a configuration error, not a missing object.
  return name !== 'NoSuchBucket' && $metadata?.httpStatusCode === 404;
}
