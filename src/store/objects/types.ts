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
  /** An absolute URL that allows GET of the object until expiry, without other credentials. */
  presignGet(key: string, expiresInSeconds: number): Promise<string>;
  /** An absolute URL that allows PUT of the object body until expiry, without other credentials. */
  presignPut(key: string, expiresInSeconds: number, options?: { contentType?: string }): Promise<string>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
