export { InvalidObjectKeyError, ObjectIntegrityError, ObjectKeyConflictError } from './errors.js';
export { FsObjectStore, type FsObjectStoreOptions, type PresignedMethod } from './fs.js';
export { encodeKeyPath, validateObjectKey } from './keys.js';
export { S3ObjectStore, type S3ObjectStoreOptions } from './s3.js';
export type {
  ObjectInfo,
  ObjectStore,
  PresignedUpload,
  PutOptions,
  UploadIntegrity,
} from './types.js';
