/** An object key that is not acceptable to every backend (see `validateObjectKey`). */
export class InvalidObjectKeyError extends Error {
  readonly code = 'invalid_object_key';

  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`invalid object key ${JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}…` : key)}: ${reason}`);
    this.name = 'InvalidObjectKeyError';
  }
}

/**
 * The filesystem store cannot hold both `a` and `a/b` (a path is a file or a directory); S3 can.
 * Raised by the filesystem store only.
 */
export class ObjectKeyConflictError extends Error {
  readonly code = 'object_key_conflict';

  constructor(readonly key: string) {
    super(
      `object key ${JSON.stringify(key)} conflicts with an existing object (a key cannot also be a prefix directory)`,
    );
    this.name = 'ObjectKeyConflictError';
  }
}

/** A body did not match the SHA-256 (or size) it was announced with; nothing was stored. */
export class ObjectIntegrityError extends Error {
  readonly code = 'object_integrity';

  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`object ${JSON.stringify(key)} refused: ${reason}`);
    this.name = 'ObjectIntegrityError';
  }
}
