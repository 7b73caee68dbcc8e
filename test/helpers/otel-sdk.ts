import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationType,
  MeterProvider,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
} from '@opentelemetry/sdk-metrics';

/**
 * Records, through the official metrics SDK and `exporter`, a counter `<prefix>_requests_total`
 * (`counts` per route) and a histogram `<prefix>_request_duration_ms` with bounds [10, 50, 100, 500]
 * holding 10 observations on /cart: 6 of 30 ms (in (10, 50]) and 4 of 200 ms (in (100, 500]) — so
 * p50 is 10 + 40 × 5/6 and p90 is 400. Resolves once the export is done.
 */
export async function exportRequestMetrics(
  exporter: PushMetricExporter,
  o: { service: string; projectId: string; prefix: string; counts: Record<string, number> },
): Promise<void> {
  const histogram = `${o.prefix}_request_duration_ms`;
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': o.service, 'platform.project_id': o.projectId }),
    readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })],
    views: [
      {
        instrumentName: histogram,
        aggregation: {
          type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM,
          options: { boundaries: [10, 50, 100, 500] },
        },
      },
    ],
  });
  const meter = provider.getMeter('test');
  const requests = meter.createCounter(`${o.prefix}_requests_total`);
  const duration = meter.createHistogram(histogram, { unit: 'ms' });
  for (const [route, n] of Object.entries(o.counts)) requests.add(n, { route });
  for (let i = 0; i < 6; i++) duration.record(30, { route: '/cart' });
  for (let i = 0; i < 4; i++) duration.record(200, { route: '/cart' });
  await provider.forceFlush();
  await provider.shutdown();
}
