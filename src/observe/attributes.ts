import type { Decoded } from './decode.js';

export type AttrValue = string | number | boolean | null | AttrValue[] | { [key: string]: AttrValue };
export type Attributes = Record<string, AttrValue>;

/** An OTLP AnyValue as JSON: int64 as a number when it is exact, else its decimal string; bytes as base64. */
export function anyValue(v: Decoded | undefined | null): AttrValue {
  if (!v) return null;
  if (v.stringValue !== undefined) return String(v.stringValue);
  if (v.boolValue !== undefined) return Boolean(v.boolValue);
  if (v.intValue !== undefined) {
    const n = Number(v.intValue);
    return Number.isSafeInteger(n) ? n : String(v.intValue);
  }
  if (v.doubleValue !== undefined) {
    const n = Number(v.doubleValue);
    // JSON has no NaN/Infinity: keep them readable rather than null.
    return Number.isFinite(n) ? n : String(n);
  }
  if (v.arrayValue !== undefined) return ((v.arrayValue.values ?? []) as Decoded[]).map(anyValue);
  if (v.kvlistValue !== undefined) return keyValues(v.kvlistValue.values);
  if (v.bytesValue !== undefined) return Buffer.from(v.bytesValue as Uint8Array).toString('base64');
  return null;
}

/** A KeyValue list as an object (a later duplicate key wins). */
export function keyValues(list: Decoded[] | undefined): Attributes {
  const out: Attributes = {};
  for (const kv of list ?? []) {
    if (typeof kv.key === 'string' && kv.key !== '') out[kv.key] = anyValue(kv.value);
  }
  return out;
}

/** Lower-case hex of an id, or null when absent/empty; undefined when it has the wrong length. */
export function hexId(bytes: Uint8Array | undefined, length: 8 | 16): string | null | undefined {
  if (!bytes || bytes.length === 0) return null;
  if (bytes.length !== length) return undefined;
  const hex = Buffer.from(bytes).toString('hex');
  // An all-zero id is OTLP's "no id".
  return /^0+$/.test(hex) ? null : hex;
}

/**
 * An OTLP nanosecond timestamp (decimal string) as the exact UTC text PostgreSQL stores
 * (microseconds), or null when 0/absent.
 */
export function nanosToTime(nanos: string | number | undefined): { iso: string; nanos: bigint } | null {
  if (nanos === undefined || nanos === null) return null;
  let n: bigint;
  try {
    n = BigInt(nanos);
  } catch {
    return null;
  }
  if (n <= 0n) return null;
  return { iso: microsIso(n / 1000n), nanos: n };
}

/** Microseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (the form of core/pagination cursorTime). */
export function microsIso(micros: bigint): string {
  const ms = Number(micros / 1000n);
  const rest = Number(micros % 1000n);
  const base = new Date(ms).toISOString();
  return `${base.slice(0, 23)}${String(rest).padStart(3, '0')}Z`;
}

export function dateToIso(d: Date): string {
  return microsIso(BigInt(d.getTime()) * 1000n);
}

export function stringAttr(attrs: Attributes, key: string): string | null {
  const v = attrs[key];
  return typeof v === 'string' && v !== '' ? v : null;
}
