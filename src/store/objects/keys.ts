import { InvalidObjectKeyError } from './errors.js';

/** S3's limit, in UTF-8 bytes. */
export const MAX_OBJECT_KEY_BYTES = 1024;

// Control characters (C0 and DEL): never part of a sane key, and NUL ends a path in syscalls.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/**
 * Keys are "/"-separated paths relative to the store root. Rejected: empty keys, a leading "/",
 * empty, "." and ".." segments (they alias or escape on a filesystem), backslashes (a separator on
 * some systems), control characters and keys over 1024 UTF-8 bytes.
 */
export function validateObjectKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidObjectKeyError(String(key), 'empty');
  checkCommon(key);
  for (const segment of key.split('/')) {
    if (segment === '')
      throw new InvalidObjectKeyError(key, 'empty path segment (leading, trailing or double "/")');
    if (segment === '.' || segment === '..') throw new InvalidObjectKeyError(key, `"${segment}" segment`);
  }
}

/**
 * A list prefix need not end on a segment boundary ("lfs/a" matches "lfs/ab/…"); it may be empty
 * or end with "/", but must not be able to address anything outside the store.
 */
export function validateObjectPrefix(prefix: string): void {
  if (typeof prefix !== 'string') throw new InvalidObjectKeyError(String(prefix), 'prefix must be a string');
  if (prefix === '') return;
  checkCommon(prefix);
  const segments = prefix.split('/');
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === '' && !last) throw new InvalidObjectKeyError(prefix, 'empty path segment');
    // The last segment is a partial name, so "." would only match hidden-looking names; ".." is
    // refused anywhere because a partial ".." still resolves to the parent when used as a directory.
    if (segment === '..' || (segment === '.' && !last)) {
      throw new InvalidObjectKeyError(prefix, `"${segment}" segment`);
    }
  });
}

function checkCommon(value: string): void {
  if (value.startsWith('/')) throw new InvalidObjectKeyError(value, 'leading "/"');
  if (value.includes('\\')) throw new InvalidObjectKeyError(value, 'backslash');
  if (CONTROL_CHARS.test(value)) throw new InvalidObjectKeyError(value, 'control character');
  if (Buffer.byteLength(value, 'utf8') > MAX_OBJECT_KEY_BYTES) {
    throw new InvalidObjectKeyError(value, `longer than ${MAX_OBJECT_KEY_BYTES} bytes`);
  }
}

/** Percent-encodes each segment, keeping the "/" separators readable in URLs. */
export function encodeKeyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

/** S3 orders keys by their UTF-8 bytes; every store lists in that order. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
