import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../core/errors.js';
import { RouteRegistry } from '../core/http.js';
import type { ModuleContext } from '../core/module.js';
import { createWebModule } from './module.js';
import { isReservedPath } from './paths.js';

const ctx = { log: pino({ level: 'silent' }) } as unknown as ModuleContext;

async function serve(assetDir: string): Promise<FastifyInstance> {
  const fastify = Fastify();
  fastify.decorateRequest('principal', null);
  const registry = new RouteRegistry(fastify, { check: async () => 'allowed' }, 1024 * 1024);
  registry.register(createWebModule(ctx, { assetDir }).routes);
  // The platform's own JSON 404 (core/http-server.ts); the fallback must leave these paths to it.
  fastify.setErrorHandler(async (err, _req, reply) => {
    const status = err instanceof AppError ? err.status : 500;
    return reply.code(status).send(err instanceof AppError ? err.toBody() : { error: { code: 'internal' } });
  });
  fastify.setNotFoundHandler(async (_req, reply) => reply.code(404).send({ error: { code: 'not_found' } }));
  await fastify.ready();
  return fastify;
}

describe('web module', () => {
  let dir: string;
  let built: FastifyInstance;
  let missing: FastifyInstance;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'platform-web-'));
    mkdirSync(path.join(dir, 'assets'));
    writeFileSync(path.join(dir, 'index.html'), '<!doctype html><div id="app"></div>');
    writeFileSync(path.join(dir, 'assets', 'index-AbCd1234.js'), 'console.log(1)');
    built = await serve(dir);
    missing = await serve(path.join(dir, 'nothing-here'));
  });
  afterAll(async () => {
    await built.close();
    await missing.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers index.html at / and at any page path, never cached', async () => {
    for (const url of ['/', '/projects', '/projects/alice/app/issues/3?status=open', '/login?next=%2Fme']) {
      const res = await built.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.headers['cache-control']).toBe('no-cache');
      expect(res.body).toContain('<div id="app">');
    }
  });

  it('serves hashed assets for a year, and 404s unknown or unhashed names', async () => {
    const res = await built.inject({ method: 'GET', url: '/assets/index-AbCd1234.js' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/javascript/);
    expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect((await built.inject({ method: 'GET', url: '/assets/index-Zz999999.js' })).statusCode).toBe(404);
    expect((await built.inject({ method: 'GET', url: '/assets/..%2Findex.html' })).statusCode).toBe(404);
    expect((await built.inject({ method: 'GET', url: '/assets/index.html' })).statusCode).toBe(404);
  });

  it('keeps the JSON 404 of API, git, OTLP, app, MCP and system paths', async () => {
    for (const url of [
      '/api/no-such-thing',
      '/api',
      '/alice/app.git/info/refs',
      '/alice/app/info/refs',
      '/alice/app/git-upload-pack',
      '/v1/traces',
      '/apps/demo/index.html',
      '/mcp',
      '/healthz/extra',
      '/metrics/',
    ]) {
      const res = await built.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(404);
      expect(res.headers['content-type'], url).toMatch(/^application\/json/);
    }
  });

  it('without a build, pages answer a page saying how to build it (the API is unaffected)', async () => {
    const res = await missing.inject({ method: 'GET', url: '/projects' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.body).toContain('npm run build:web');
    expect((await missing.inject({ method: 'GET', url: '/api/x' })).statusCode).toBe(404);
  });

  it('isReservedPath: page paths are not reserved', () => {
    expect(isReservedPath('/projects/alice/app/files')).toBe(false);
    expect(isReservedPath('/admin/users')).toBe(false);
    // A project named like a git path segment is still a page.
    expect(isReservedPath('/projects/alice/info')).toBe(false);
    expect(isReservedPath('/alice/app.git')).toBe(true);
  });
});
