import { z } from 'zod';
import { notFound } from '../core/errors.js';
import { type AnyRouteDef, route } from '../core/http.js';
import type { ModuleContext, PlatformModule } from '../core/module.js';
import { AssetCache, contentTypeOf, defaultAssetDir } from './assets.js';
import { isReservedPath } from './paths.js';

/** Shown instead of the UI when `dist/web` has not been built (the API works without it). */
const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Platform: web UI not built</title></head>
<body><h1>The web UI is not built</h1>
<p>Run <code>npm run build:web</code> (or <code>npm start</code>, which builds it) and reload.
The API answers under <a href="/api/docs">/api/docs</a>.</p></body></html>
`;

const HASHED = /^[A-Za-z0-9._-]+-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/;

/**
 * The web UI: the built single-page app (`npm run build:web` → dist/web). Hashed assets are cached
 * for a year, `index.html` never; any GET that is not an API, git, OTLP, app or system path answers
 * `index.html` (the app's router takes it from there); those keep their JSON 404.
 */
export function createWebModule(ctx: ModuleContext, opts: { assetDir?: string } = {}): PlatformModule<null> {
  const assets = new AssetCache(opts.assetDir ?? defaultAssetDir());
  ctx.log.debug({ dir: assets.dir }, 'web UI assets');

  const index = async (reply: import('fastify').FastifyReply) => {
    const body = await assets.read('index.html');
    reply.header('cache-control', 'no-cache');
    // Not built is an installation step still to do, not an outage: the hint page answers 200
    // (readiness is /readyz; the API works without the UI).
    if (!body) return reply.type('text/html; charset=utf-8').send(NOT_BUILT);
    return reply.type('text/html; charset=utf-8').send(body);
  };

  const routes: AnyRouteDef[] = [
    route({
      method: 'GET',
      url: '/',
      summary:
        'The web UI (index.html of the single-page app; a page saying how to build it while it is not built)',
      tags: ['web'],
      access: 'public',
      query: z.record(z.string(), z.string()),
      raw: true,
      produces: { status: 200, contentType: 'text/html', description: 'the app shell' },
      handler: async ({ reply }) => index(reply),
    }),
    route({
      method: 'GET',
      url: '/assets/:file',
      summary: 'A built file of the web UI (content-hashed name, cached for a year)',
      tags: ['web'],
      access: 'public',
      params: z.object({ file: z.string().max(200) }),
      raw: true,
      produces: { status: 200, contentType: 'application/octet-stream', description: 'the file' },
      handler: async ({ params, reply }) => {
        if (!HASHED.test(params.file)) throw notFound('file');
        const body = await assets.read(`assets/${params.file}`);
        if (!body) throw notFound('file');
        reply.header('cache-control', 'public, max-age=31536000, immutable');
        return reply.type(contentTypeOf(params.file)).send(body);
      },
    }),
    route({
      method: 'GET',
      url: '/*',
      summary:
        'A page of the web UI: answers index.html for any other GET outside the API, git, OTLP, app and system paths (those answer a JSON 404)',
      tags: ['web'],
      access: 'public',
      params: z.object({ '*': z.string() }),
      query: z.record(z.string(), z.string()),
      raw: true,
      produces: { status: 200, contentType: 'text/html', description: 'the app shell' },
      handler: async ({ req, reply }) => {
        const pathname = req.url.split('?')[0]!;
        if (isReservedPath(pathname)) throw notFound(`route GET ${pathname}`);
        return index(reply);
      },
    }),
  ];
  return { name: 'web', service: null, routes };
}
