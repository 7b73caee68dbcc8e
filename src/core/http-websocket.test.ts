import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { z } from 'zod';
import { eventually } from '../../test/helpers/wait.js';
import type { Config } from '../config.js';
import {
  type AccessDecision,
  type Principal,
  RouteRegistry,
  route,
  WS_CLOSE,
  websocketRoute,
} from './http.js';
import { createHttpServer } from './http-server.js';
import { createMetrics } from './metrics.js';

/**
 * The registry's WebSocket routes: access at the upgrade (refusals are HTTP answers with the stable
 * body), the context handed to the handler, and the periodic re-check that closes a socket whose
 * credential or permission went away.
 */
const config = {
  body_limit_bytes: 1024 * 1024,
  trust_proxy: false,
  public_url: 'http://127.0.0.1',
  cors_origins: [],
  secure_cookies: false,
} as unknown as Config;

const tokens = new Map<string, Principal>();
const allowed = new Set<string>(); // `${userId}:${projectId}`

let base = '';
let close: () => Promise<void> = async () => {};

beforeAll(async () => {
  const fastify = await createHttpServer({
    config,
    log: pino({ level: 'silent' }),
    metrics: createMetrics(),
    authenticate: async (credentials) => {
      const token = credentials.authorization?.replace(/^Bearer /, '') ?? '';
      return tokens.get(token) ?? null;
    },
  });
  const registry = new RouteRegistry(
    fastify,
    {
      check: async (principal, _permission, projectId): Promise<AccessDecision> =>
        principal && allowed.has(`${principal.userId}:${projectId}`)
          ? 'allowed'
          : principal
            ? 'denied'
            : 'hidden',
    },
    config.body_limit_bytes,
  );
  registry.register([
    websocketRoute({
      url: '/api/projects/:id/echo',
      summary: 'echo',
      tags: ['test'],
      access: { permission: 'project:read', projectParam: 'id' },
      params: z.object({ id: z.string() }),
      query: z.object({ greeting: z.string().default('hello') }),
      websocket: {
        recheckMs: 100,
        open: ({ socket, params, query, principal, onClose }) => {
          socket.send(
            JSON.stringify({ greeting: query.greeting, project: params.id, user: principal?.userName }),
          );
          socket.on('message', (data) => socket.send(String(data)));
          onClose(() => {
            closedHandlers += 1;
          });
        },
      },
    }),
    route({
      method: 'GET',
      url: '/api/plain',
      summary: 'plain',
      tags: ['test'],
      access: 'public',
      response: z.object({ ok: z.boolean() }),
      handler: async () => ({ ok: true }),
    }),
  ]);
  await fastify.listen({ port: 0, host: '127.0.0.1' });
  base = `127.0.0.1:${(fastify.server.address() as AddressInfo).port}`;
  close = () => fastify.close();
});
afterAll(() => close());

let closedHandlers = 0;

function connect(path: string, token?: string) {
  const ws = new WebSocket(`ws://${base}${path}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const messages: unknown[] = [];
  const result = new Promise<{ code: number } | { status: number; body: unknown }>((resolve) => {
    ws.on('message', (data) => messages.push(JSON.parse(String(data))));
    ws.on('close', (code) => resolve({ code }));
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (c) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
  });
  return { ws, messages, result };
}

describe('websocket routes', () => {
  it('checks access at the upgrade, hands parsed params and query to the handler, and re-checks periodically', async () => {
    tokens.set('t1', { userId: 'u1', userName: 'alice', userType: 'human' });
    allowed.add('u1:p1');

    const anonymous = connect('/api/projects/p1/echo');
    expect(await anonymous.result).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    const stranger = connect('/api/projects/p2/echo', 't1');
    expect(await stranger.result).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
    const badQuery = connect('/api/projects/p1/echo?nope=1', 't1');
    expect(await badQuery.result).toMatchObject({ status: 400, body: { error: { code: 'bad_request' } } });

    const plainGet = await fetch(`http://${base}/api/projects/p1/echo`, {
      headers: { authorization: 'Bearer t1' },
    });
    expect(plainGet.status).toBe(426);
    expect(((await plainGet.json()) as { error: { code: string } }).error.code).toBe('bad_request');

    const member = connect('/api/projects/p1/echo?greeting=hi', 't1');
    await eventually(() => expect(member.messages).toHaveLength(1));
    expect(member.messages[0]).toEqual({ greeting: 'hi', project: 'p1', user: 'alice' });
    member.ws.send(JSON.stringify({ echo: 1 }));
    await eventually(() => expect(member.messages).toHaveLength(2));

    // Permission withdrawn: the next re-check closes with 4403.
    allowed.delete('u1:p1');
    expect(await member.result).toEqual({ code: WS_CLOSE.forbidden });
    await eventually(() => expect(closedHandlers).toBeGreaterThanOrEqual(1));

    // Credential revoked: 4401.
    allowed.add('u1:p1');
    const again = connect('/api/projects/p1/echo', 't1');
    await eventually(() => expect(again.messages).toHaveLength(1));
    tokens.delete('t1');
    expect(await again.result).toEqual({ code: WS_CLOSE.unauthorized });

    // Ordinary routes are untouched.
    const plain = await fetch(`http://${base}/api/plain`);
    expect(await plain.json()).toEqual({ ok: true });
  });
});
