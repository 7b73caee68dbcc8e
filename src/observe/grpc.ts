import {
  type handleUnaryCall,
  Metadata,
  Server,
  ServerCredentials,
  type ServerErrorResponse,
  type ServerUnaryCall,
  type ServiceDefinition,
  status,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { AppError, fromUnavailableDependency, unauthorized } from '../core/errors.js';
import type { AccessControl, Principal } from '../core/http.js';
import type { Signal } from './decode.js';
import { exportTelemetry } from './export.js';
import type { ObserveIngest } from './ingest.js';
import { statusWithRetryInfo } from './proto/rpc-status.js';

/** Who a caller is, from its `authorization` metadata and address: the same authentication as HTTP's. */
export interface OtlpIdentity {
  authenticate(credentials: { authorization?: string | undefined }, ip: string): Promise<Principal | null>;
  access: AccessControl;
}

export interface OtlpGrpcOptions {
  /** `host:port` to listen on (port 0: any free port). */
  address: string;
  /** The largest export request, after decompression (PLATFORM_BODY_LIMIT_BYTES). */
  maxMessageBytes: number;
  /** The setting that names the address, quoted when it cannot be bound. */
  setting: string;
}

/** The OTLP collector services: the full gRPC method path of each signal's Export. */
const SERVICES: Record<Signal, string> = {
  traces: 'opentelemetry.proto.collector.trace.v1.TraceService',
  logs: 'opentelemetry.proto.collector.logs.v1.LogsService',
  metrics: 'opentelemetry.proto.collector.metrics.v1.MetricsService',
};

/** How long a stop lets in-flight exports finish (they wait for their records to be durable). */
const SHUTDOWN_GRACE_MS = 5_000;

/** The trailer carrying the platform's stable refusal reason (`observe.buffer_full`…), like HTTP's `error.reason`. */
export const REASON_METADATA = 'platform-error-reason';

/**
 * The gRPC status of a refusal of the shared export path (export.ts), by its HTTP status: the same
 * decisions as OTLP/HTTP, in OTLP/gRPC's codes. Retryable ones (buffer full, store unavailable, the
 * failed-attempts limiter) carry a RetryInfo with the Retry-After delay, as the OTLP spec asks.
 */
export function grpcStatusOf(err: AppError): ServerErrorResponse {
  const code =
    err.status === 400 || err.status === 415 || err.status === 422
      ? status.INVALID_ARGUMENT
      : err.status === 401
        ? status.UNAUTHENTICATED
        : err.status === 403
          ? status.PERMISSION_DENIED
          : err.status === 404
            ? status.NOT_FOUND
            : err.status === 413 || err.status === 429
              ? status.RESOURCE_EXHAUSTED
              : err.status === 503
                ? status.UNAVAILABLE
                : status.INTERNAL;
  const metadata = new Metadata();
  if (err.reason) metadata.set(REASON_METADATA, err.reason);
  const retryAfter = Number(err.headers['retry-after']);
  if ((code === status.RESOURCE_EXHAUSTED || code === status.UNAVAILABLE) && retryAfter > 0) {
    metadata.set('grpc-status-details-bin', statusWithRetryInfo(code, err.message, retryAfter));
  }
  return Object.assign(new Error(err.message), { code, details: err.message, metadata });
}

/** The client address of a call (`1.2.3.4:5678`, `::1:5678`): the failed-attempts limiter keys on it. */
function peerAddress(peer: string): string {
  const colon = peer.lastIndexOf(':');
  return (colon > 0 ? peer.slice(0, colon) : peer).replace(/^\[|\]$/g, '');
}

/**
 * OTLP/gRPC ingest: the three collector services' unary Export, served by @grpc/grpc-js. The bytes
 * of a request reach the handler as they are (grpc-js has already gunzipped them and enforced the
 * message limit) and go through the same export path as OTLP/HTTP: protobufjs decoding, the
 * per-project `observe:write` check, the durable buffered write, the partial_success response.
 * (A deserializer that throws would make grpc-js answer INTERNAL; decoding in the handler lets a
 * malformed request get INVALID_ARGUMENT like HTTP's 400.)
 */
export class OtlpGrpcServer {
  private server: Server | null = null;

  constructor(
    private readonly options: OtlpGrpcOptions,
    private readonly ingest: ObserveIngest,
    private readonly identity: OtlpIdentity,
    private readonly log: Logger,
  ) {}

  /** Binds the address and starts serving; the port bound (the chosen one for port 0). */
  async start(): Promise<number> {
    const server = new Server({
      'grpc.max_receive_message_length': this.options.maxMessageBytes,
    });
    for (const signal of Object.keys(SERVICES) as Signal[]) {
      server.addService(serviceDefinition(signal), { Export: this.handler(signal) });
    }
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(this.options.address, ServerCredentials.createInsecure(), (err, bound) => {
        if (err) {
          reject(
            new Error(
              `OTLP/gRPC ingest cannot listen on ${this.options.address} (${this.options.setting}): ${err.message}. ` +
                `Set ${this.options.setting} to a free host:port, or leave it unset to turn OTLP/gRPC off.`,
            ),
          );
        } else resolve(bound);
      });
    });
    this.server = server;
    this.log.info({ address: this.options.address, port }, `OTLP/gRPC ingest listening on port ${port}`);
    return port;
  }

  /** Lets in-flight exports finish for a while, then closes every connection. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, SHUTDOWN_GRACE_MS);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  private handler(signal: Signal): handleUnaryCall<Buffer, Buffer> {
    return (call, callback) => {
      this.export(signal, call).then(
        (response) => callback(null, response),
        (err: unknown) => callback(this.refusal(signal, err)),
      );
    };
  }

  private async export(signal: Signal, call: ServerUnaryCall<Buffer, Buffer>): Promise<Buffer> {
    const values = call.metadata.get('authorization');
    if (values.length > 1) throw unauthorized('send one authorization metadata value');
    const authorization = typeof values[0] === 'string' ? values[0] : undefined;
    const principal = await this.identity.authenticate({ authorization }, peerAddress(call.getPeer()));
    if (!principal) throw unauthorized('authentication required: authorization: Bearer <API token>');
    const access = this.identity.access;
    return exportTelemetry(this.ingest, signal, 'protobuf', call.request, {
      principal,
      can: async (permission, projectId) =>
        (await access.check(principal, permission, projectId)) === 'allowed',
    });
  }

  private refusal(signal: Signal, err: unknown): ServerErrorResponse {
    const appError =
      err instanceof AppError
        ? err
        : (fromUnavailableDependency(err) ??
          new AppError(500, 'internal', 'internal error; the server log has the details'));
    if (appError.status >= 500) this.log.error({ err, signal }, 'OTLP/gRPC export failed');
    else this.log.info({ code: appError.code, reason: appError.reason, signal }, 'OTLP/gRPC export rejected');
    return grpcStatusOf(appError);
  }
}

/** One collector service: its unary Export, bytes in and out (export.ts decodes and encodes with protobufjs). */
function serviceDefinition(signal: Signal): ServiceDefinition {
  const bytes = (b: Buffer) => b;
  return {
    Export: {
      path: `/${SERVICES[signal]}/Export`,
      requestStream: false,
      responseStream: false,
      requestSerialize: bytes,
      requestDeserialize: bytes,
      responseSerialize: bytes,
      responseDeserialize: bytes,
      originalName: 'export',
    },
  };
}
