/** Values cross the cache and pub/sub as JSON text; undefined, functions and symbols have none. */
export function encodeJson(value: unknown, what: string): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError(`${what} is not JSON-serialisable (got ${typeof value})`);
  return text;
}

/** TTLs must be positive; fractions of a second are kept (stored in milliseconds). */
export function ttlToMilliseconds(ttlSeconds: number): number {
  if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
    throw new RangeError(`ttlSeconds must be a positive number, got ${ttlSeconds}`);
  }
  return Math.max(1, Math.round(ttlSeconds * 1000));
}
