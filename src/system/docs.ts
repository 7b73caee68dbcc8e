import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { z } from 'zod';
import { notFound } from '../core/errors.js';
import { type AnyRouteDef, route } from '../core/http.js';

/**
 * `/api/docs`: the OpenAPI document rendered by Swagger UI (the maintained `swagger-ui-dist`
 * package, served from node_modules — no CDN). The page has no inline script: the bundle and the
 * initializer are same-origin files, so the platform's CSP (`default-src 'self'`, inline styles and
 * data: images allowed) covers it and the route needs no CSP of its own.
 */
const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

const INIT_JS = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '/api/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    docExpansion: 'list',
    defaultModelsExpandDepth: 0,
    displayOperationId: true,
    showExtensions: true,
    withCredentials: true,
  });
});
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Platform API reference</title>
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/api/docs/assets/favicon-32x32.png">
</head>
<body>
<noscript>The reference needs JavaScript; the machine-readable document is <a href="/api/openapi.json">/api/openapi.json</a>.</noscript>
<div id="swagger-ui"></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script src="/api/docs/assets/init.js"></script>
</body>
</html>
`;

function assetDir(): string {
  return path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
}

export function docsRoutes(): AnyRouteDef[] {
  const cache = new Map<string, Buffer>();
  return [
    route({
      method: 'GET',
      url: '/api/docs',
      summary: 'API reference (Swagger UI over /api/openapi.json)',
      tags: ['system'],
      access: 'public',
      raw: true,
      produces: { status: 200, contentType: 'text/html', description: 'the reference page' },
      handler: async ({ reply }) => reply.type('text/html; charset=utf-8').send(PAGE),
    }),
    route({
      method: 'GET',
      url: '/api/docs/assets/:file',
      summary: 'A static file of the API reference page (Swagger UI)',
      tags: ['system'],
      access: 'public',
      params: z.object({ file: z.string().max(100) }),
      raw: true,
      produces: { status: 200, contentType: 'application/octet-stream', description: 'the file' },
      handler: async ({ params, reply }) => {
        reply.header('cache-control', 'public, max-age=3600');
        if (params.file === 'init.js') return reply.type('text/javascript; charset=utf-8').send(INIT_JS);
        const type = ASSETS[params.file];
        if (!type) throw notFound('file');
        let body = cache.get(params.file);
        if (!body) {
          body = await readFile(path.join(assetDir(), params.file));
          cache.set(params.file, body);
        }
        return reply.type(type).send(body);
      },
    }),
  ];
}
