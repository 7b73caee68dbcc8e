import type { Readable } from 'node:stream';

export interface ObjectInfo {
  key: string;
  size: number;
  contentType: string;
  etag: string;
  lastModified: Date;
}

export interface PutOptions {
  contentType?: string;
  /** Known length of a stream body (required by some backends for streaming uploads). */
  contentLength?: number;
  /**
   * The body's SHA-256 (hex). A body that does not match is refused with ObjectIntegrityError and
   * nothing is stored (content-addressed objects: LFS).
   */
  sha256?: string;
}

/** What a presigned upload must match: checked by the store before the object exists. */
export interface UploadIntegrity {
  /** SHA-256 of the body, hex. */
  sha256: string;
  size: number;
}

/** A presigned upload: the URL, and the headers the uploader must send with it (LFS `header`). */
export interface PresignedUpload {
  url: string;
  headers: Record<string, string>;
}

/** Blob storage addressed by keys like `lfs/ab/cd/<oid>` ("/"-separated, no leading slash, no `..`). */
export interface ObjectStore {
  readonly kind: 'fs' | 's3';
  put(key: string, body: Buffer | string | Readable, options?: PutOptions): Promise<ObjectInfo>;
  /** undefined when the object does not exist. */
  get(key: string): Promise<{ info: ObjectInfo; body: Readable } | undefined>;
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Deleting a missing object is not an error. */
  delete(key: string): Promise<void>;
  /** All objects whose key starts with prefix, sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /**
   * An absolute URL that allows GET of the object until expiry, without other credentials. The
   * response carries store/objects/download.ts's headers (attachment, octet-stream unless `contentType` — the
   * type the platform recorded — is on the safe list), whatever type the object was stored with.
   */
  presignGet(key: string, expiresInSeconds: number, options?: { contentType?: string }): Promise<string>;
  /**
   * An absolute URL that allows PUT of the object body until expiry, without other credentials. The
   * object is stored as application/octet-stream whatever the uploader sends. With `integrity`, a body
   * of another size or digest is refused by the store and nothing is stored.
   */
  presignPut(key: string, expiresInSeconds: number, integrity?: UploadIntegrity): Promise<PresignedUpload>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
