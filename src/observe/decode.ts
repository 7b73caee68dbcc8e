import type { Readable } from 'node:stream';
import { gunzip } from 'node:zlib';
import type protobuf from 'protobufjs';
import { AppError, badRequest } from '../core/errors.js';
import { OTLP_TYPES } from './proto/otlp.js';
import { OBSERVE_REASONS } from './reasons.js';

export type Signal = keyof typeof OTLP_TYPES;
export type Encoding = 'protobuf' | 'json';

export interface BodyLimits {
  /** Bytes on the wire (compressed when gzip). */
  maxBodyBytes: number;
  /** Bytes after decompression. */
  maxDecodedBytes: number;
}

/** What protobufjs' toObject gives: camelCase fields, int64 as decimal strings, bytes as Uint8Array. */
// biome-ignore lint/suspicious/noExplicitAny: decoded OTLP trees are walked field by field by records.ts.
export type Decoded = Record<string, any>;

const TO_OBJECT: protobuf.IConversionOptions = {
  longs: String,
  enums: Number,
  defaults: false,
  arrays: true,
};

/** The encoding a Content-Type names, or a 415. */
export function encodingOf(contentType: string): Encoding {
  const type = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'application/x-protobuf' || type === 'application/protobuf') return 'protobuf';
  if (type === 'application/json') return 'json';
  throw new AppError(
    415,
    'unsupported_media_type',
    `Content-Type ${type || '(none)'} is not OTLP: send application/x-protobuf or application/json`,
  ).because(OBSERVE_REASONS.unsupportedContentType);
}

function tooLarge(limit: number, what: string): AppError {
  return new AppError(413, 'payload_too_large', `the ${what} exceeds ${limit} bytes`).because(
    OBSERVE_REASONS.bodyTooLarge,
  );
}

/** Reads the request stream up to the limit (413 past it), gunzips when asked (limit applies again). */
export async function readBody(
  stream: Readable,
  contentEncoding: string | undefined,
  limits: BodyLimits,
): Promise<Buffer> {
  const encoding = (contentEncoding ?? 'identity').trim().toLowerCase();
  if (encoding !== 'gzip' && encoding !== 'identity' && encoding !== '') {
    throw new AppError(
      415,
      'unsupported_media_type',
      `Content-Encoding ${encoding} is not supported (gzip or identity)`,
    ).because(OBSERVE_REASONS.unsupportedEncoding);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limits.maxBodyBytes) {
      stream.destroy();
      throw tooLarge(limits.maxBodyBytes, 'request body');
    }
    chunks.push(buf);
  }
  const raw = Buffer.concat(chunks, size);
  if (encoding !== 'gzip') {
    if (raw.length > limits.maxDecodedBytes) throw tooLarge(limits.maxDecodedBytes, 'request body');
    return raw;
  }
  return new Promise((resolve, reject) => {
    gunzip(raw, { maxOutputLength: limits.maxDecodedBytes }, (err, out) => {
      if (!err) return resolve(out);
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        return reject(tooLarge(limits.maxDecodedBytes, 'decompressed body'));
      }
      reject(
        badRequest(`the gzip body cannot be decompressed: ${err.message}`).because(OBSERVE_REASONS.badGzip),
      );
    });
  });
}

/** Fields OTLP/JSON carries as hex strings where protobuf has bytes (everything else follows ProtoJSON). */
const HEX_ID_FIELDS = new Set(['traceId', 'spanId', 'parentSpanId']);

const MAX_JSON_DEPTH = 128;

/** OTLP/JSON's hex ids become bytes, so protobufjs' fromObject (which reads base64 for bytes) gets them as such. */
function hexIdsToBytes(value: unknown, path: string, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  // OTLP nests a few levels (AnyValue kvlists a few more); a body nested thousands deep would
  // overflow the stack here (a 500) instead of being refused.
  if (depth > MAX_JSON_DEPTH) {
    throw badRequest(`the OTLP/JSON body is nested deeper than ${MAX_JSON_DEPTH} levels`).because(
      OBSERVE_REASONS.malformedJson,
    );
  }
  if (Array.isArray(value)) return value.map((v, i) => hexIdsToBytes(v, `${path}[${i}]`, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (HEX_ID_FIELDS.has(key) && typeof v === 'string') {
      if (v !== '' && !/^(?:[0-9a-fA-F]{2})+$/.test(v)) {
        throw badRequest(`${path}.${key} is not a hex id`, [
          { path: `${path}.${key}`, message: 'hex string expected' },
        ]).because(OBSERVE_REASONS.malformedJson);
      }
      out[key] = Buffer.from(v, 'hex');
    } else {
      out[key] = hexIdsToBytes(v, `${path}.${key}`, depth + 1);
    }
  }
  return out;
}

/** Decodes an export request of the signal in the given encoding; 400 with the reason when malformed. */
export function decodeExport(signal: Signal, encoding: Encoding, body: Buffer): Decoded {
  const type = OTLP_TYPES[signal].request;
  if (encoding === 'protobuf') {
    try {
      return type.toObject(type.decode(body), TO_OBJECT);
    } catch (err) {
      throw badRequest(`malformed OTLP protobuf: ${(err as Error).message}`).because(
        OBSERVE_REASONS.malformedProtobuf,
      );
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw badRequest(`malformed JSON: ${(err as Error).message}`).because(OBSERVE_REASONS.malformedJson);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw badRequest('an OTLP/JSON export request is a JSON object').because(OBSERVE_REASONS.malformedJson);
  }
  const withBytes = hexIdsToBytes(parsed, '$') as Record<string, unknown>;
  try {
    // fromObject throws on a wrong shape (a string where a list or a message goes).
    return type.toObject(type.fromObject(withBytes), TO_OBJECT);
  } catch (err) {
    throw badRequest(`malformed OTLP/JSON: ${(err as Error).message}`).because(OBSERVE_REASONS.malformedJson);
  }
}

/** The export response in the request's encoding, with partial_success when records were rejected. */
export function encodeResponse(
  signal: Signal,
  encoding: Encoding,
  rejected: number,
  errorMessage: string,
): Buffer {
  const field =
    signal === 'traces' ? 'rejectedSpans' : signal === 'logs' ? 'rejectedLogRecords' : 'rejectedDataPoints';
  const body = rejected > 0 ? { partialSuccess: { [field]: String(rejected), errorMessage } } : {};
  if (encoding === 'json') {
    // ProtoJSON: int64 as a string, lowerCamelCase names.
    return Buffer.from(JSON.stringify(body));
  }
  const type = OTLP_TYPES[signal].response;
  return Buffer.from(type.encode(type.fromObject(body)).finish());
}
