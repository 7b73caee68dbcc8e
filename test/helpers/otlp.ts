import type { TestPlatform } from './app.js';

/** OTLP/JSON bodies for the ingest routes: int64 times as decimal strings, attributes as KeyValue lists. */
const attrs = (o: Record<string, string>) =>
  Object.entries(o).map(([key, v]) => ({ key, value: { stringValue: v } }));
const nanos = (d: Date) => `${BigInt(d.getTime()) * 1_000_000n}`;

export interface GaugePoint {
  name: string;
  value: number;
  service: string;
  projectId?: string;
  labels?: Record<string, string>;
  time?: Date;
}

/** Posts gauge samples to `/v1/metrics` (OTLP/JSON) and expects the 200 of a durable write. */
export async function postGauges(t: TestPlatform, token: string, points: GaugePoint[]): Promise<void> {
  const body = {
    resourceMetrics: points.map((p) => ({
      resource: {
        attributes: attrs({
          'service.name': p.service,
          ...(p.projectId ? { 'platform.project_id': p.projectId } : {}),
        }),
      },
      scopeMetrics: [
        {
          metrics: [
            {
              name: p.name,
              gauge: {
                dataPoints: [
                  {
                    timeUnixNano: nanos(p.time ?? new Date()),
                    asDouble: p.value,
                    attributes: attrs(p.labels ?? {}),
                  },
                ],
              },
            },
          ],
        },
      ],
    })),
  };
  const res = await t.request('POST', '/v1/metrics', { token, body, noAuditCheck: true });
  if (res.status !== 200) throw new Error(`metrics ingest answered ${res.status}: ${res.text}`);
}

export interface LogLine {
  message: string;
  service: string;
  projectId?: string;
  /** OTLP severity number: 9 info, 13 warn, 17 error. */
  severity?: number;
  attributes?: Record<string, string>;
}

export function logsBody(lines: LogLine[]) {
  return {
    resourceLogs: lines.map((l) => ({
      resource: {
        attributes: attrs({
          'service.name': l.service,
          ...(l.projectId ? { 'platform.project_id': l.projectId } : {}),
        }),
      },
      scopeLogs: [
        {
          logRecords: [
            {
              timeUnixNano: nanos(new Date()),
              severityNumber: l.severity ?? 9,
              body: { stringValue: l.message },
              attributes: attrs(l.attributes ?? {}),
            },
          ],
        },
      ],
    })),
  };
}
