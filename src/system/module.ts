import { z } from 'zod';
import { AppError } from '../core/errors.js';
import { type AnyRouteDef, type RouteRegistry, route } from '../core/http.js';
import type { ModuleContext, PlatformModule } from '../core/module.js';
import { openApiDocument } from '../core/openapi.js';
import type { Drivers } from '../store/index.js';
import { FsObjectStore } from '../store/index.js';
import { VERSION } from '../version.js';
import { docsRoutes } from './docs.js';
import { objectUrlRoutes } from './object-urls.js';

const healthSchema = z
  .object({ status: z.literal('ok'), version: z.string() })
  .meta({ id: 'Health', description: 'the process is up' });
const readinessSchema = z
  .object({
    status: z.literal('ready'),
    checks: z.array(z.object({ name: z.string(), ok: z.boolean(), ms: z.number() })),
  })
  .meta({ id: 'Readiness', description: 'every dependency answered' });

/**
 * Health, readiness, Prometheus metrics, the OpenAPI document and its reference page, and the
 * signed object URLs of the filesystem object store.
 */
export function createSystemModule(
  ctx: ModuleContext,
  deps: { registry: RouteRegistry },
): PlatformModule<null> {
  const { config, drivers, metrics } = ctx;
  const { registry } = deps;
  // Built once, on first use: every route is registered by then and the document does not change.
  let built: Record<string, unknown> | undefined;
  const document = () => {
    built ??= openApiDocument(registry.routes, {
      title: 'Platform API',
      version: VERSION,
      serverUrl: config.public_url,
      aliasOf: (def) => registry.aliasOf(def),
    });
    return built;
  };
  const routes: AnyRouteDef[] = [
    route({
      method: 'GET',
      url: '/healthz',
      summary: 'Liveness: the process is up',
      tags: ['system'],
      access: 'public',
      response: healthSchema,
      handler: async () => ({ status: 'ok' as const, version: VERSION }),
    }),
    route({
      method: 'GET',
      url: '/readyz',
      summary: 'Readiness: database, cache, pub/sub and object store reachable (503 names the failing one)',
      tags: ['system'],
      access: 'public',
      response: readinessSchema,
      handler: async ({ reply }) => {
        const checks = await checkDependencies(drivers);
        const failed = checks.filter((c) => !c.ok);
        if (failed.length > 0) {
          throw new AppError(
            503,
            'unavailable',
            `not ready: ${failed.map((c) => c.name).join(', ')} unreachable`,
            failed.map((c) => ({ dependency: c.name, message: c.error ?? 'unreachable' })),
          );
        }
        reply.header('cache-control', 'no-store');
        return { status: 'ready' as const, checks: checks.map(({ name, ms }) => ({ name, ok: true, ms })) };
      },
    }),
    route({
      method: 'GET',
      url: '/metrics',
      summary: 'Prometheus metrics',
      tags: ['system'],
      access: 'public',
      raw: true,
      produces: { status: 200, contentType: 'text/plain', description: 'Prometheus text exposition format' },
      handler: async ({ reply }) => {
        const stats = drivers.db.stats();
        metrics.dbPool.set({ state: 'total' }, stats.total);
        metrics.dbPool.set({ state: 'idle' }, stats.idle);
        metrics.dbPool.set({ state: 'waiting' }, stats.waiting);
        const body = await metrics.registry.metrics();
        return reply.type(metrics.registry.contentType).send(body);
      },
    }),
    route({
      method: 'GET',
      url: '/api/openapi.json',
      summary: 'This OpenAPI document',
      tags: ['system'],
      access: 'public',
      response: z.looseObject({ openapi: z.string() }).meta({ description: 'an OpenAPI 3.1 document' }),
      handler: async () => document(),
    }),
    ...docsRoutes(),
  ];

  if (drivers.objects instanceof FsObjectStore)
    routes.push(...objectUrlRoutes(drivers.objects, config.git_body_limit_bytes));
  return { name: 'system', service: null, routes };
}

interface DependencyCheck {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

async function checkDependencies(drivers: Drivers): Promise<DependencyCheck[]> {
  const probe = async (name: string, fn: () => Promise<void>): Promise<DependencyCheck> => {
    const start = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('timed out after 3 s')), 3000);
        }),
      ]);
      return { name, ok: true, ms: Math.round(performance.now() - start) };
    } catch (err) {
      return { name, ok: false, ms: Math.round(performance.now() - start), error: (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
  };
  return Promise.all([
    probe('database', () => drivers.db.ping()),
    probe('cache', () => drivers.cache.ping()),
    probe('pubsub', () => drivers.pubsub.ping()),
    probe('object_store', () => drivers.objects.ping()),
  ]);
}
