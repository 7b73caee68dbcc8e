import type { Principal } from '../core/http.js';
import type { Permission } from '../core/permissions.js';
import { decodeExport, type Encoding, encodeResponse, type Signal } from './decode.js';
import type { ObserveIngest } from './ingest.js';

/** Who sends an export: the authenticated principal and the access check of its credential. */
export interface ExportCaller {
  principal: Principal;
  can(permission: Permission, projectId: string | null): Promise<boolean>;
}

/**
 * One OTLP export, whatever the transport (OTLP/HTTP's routes, OTLP/gRPC's server): decodes the
 * request, keeps the records the caller may write (`observe:write` per record's project; a
 * project-restricted token's records default to its project), resolves once they are durable and
 * returns the export response with partial_success. Refusals are AppErrors (400 malformed, 403 no
 * record permitted, 429 buffer full, 503 store unavailable) that each transport maps to its status.
 */
export async function exportTelemetry(
  ingest: ObserveIngest,
  signal: Signal,
  encoding: Encoding,
  body: Buffer,
  caller: ExportCaller,
): Promise<Buffer> {
  const decoded = decodeExport(signal, encoding, body);
  const result = await ingest.ingest(
    signal,
    decoded,
    caller.principal.token?.projectId ?? null,
    (projectId) => caller.can('observe:write', projectId),
  );
  return encodeResponse(signal, encoding, result.rejected, result.errorMessage);
}
