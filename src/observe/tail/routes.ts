import type { WebSocket } from 'ws';
import { z } from 'zod';
import { AppError } from '../../core/errors.js';
import { type AnyRouteDef, websocketRoute } from '../../core/http.js';
import { type EventStream, openEventStream } from '../../core/sse.js';
import type { Db } from '../../store/db.js';
import {
  compileLogFilter,
  type LiveLogEntry,
  parseLogFilter,
  QUERY_REASONS,
  QueryError,
} from '../query-lang/index.js';
import { logFilterOf } from '../routes.js';
import { logFilterQuery } from '../schemas.js';
import { liveFilter } from './filter.js';
import type { LiveTailHub, TailClient } from './hub.js';
import { TAIL_REASONS } from './reasons.js';

/** The log search's filters and `query`, without the time range (a tail starts now). */
export const tailQuery = logFilterQuery
  .omit({ from: true, to: true })
  .extend({
    limit: z.coerce
      .number()
      .int()
      .min(1)
      .max(100_000)
      .optional()
      .describe('end the tail after this many entries (a bounded answer); default: until the client leaves'),
  })
  .superRefine((q, ctx) => {
    // Checked with the request (before a WebSocket upgrade), so a bad query is a 400, not a closed socket.
    if (!q.query) return;
    try {
      compileLogFilter(parseLogFilter(q.query), { projectId: null });
    } catch (err) {
      if (!(err instanceof QueryError)) throw err;
      ctx.addIssue({ code: 'custom', path: ['query'], message: err.message });
    }
  });

/** WebSocket close code of a dropped slow consumer (4000–4999: the application's range). */
export const WS_SLOW_CONSUMER = 4008;

function full(): AppError {
  return new AppError(
    503,
    'unavailable',
    'this instance serves its maximum of live tails; retry later',
  ).because(TAIL_REASONS.tooManyTails);
}

/**
 * `GET /api/observe/logs/tail`: the entries ingested from now on that match the search's filters
 * (and `query`), on any instance. A WebSocket upgrade gets one JSON message per entry; a plain GET
 * the same as server-sent events (`event: log`). A client that does not read is dropped: SSE
 * `event: dropped` then the end of the stream, WebSocket close code 4008 with the reason.
 */
export function tailRoutes(db: Db, hub: LiveTailHub, streams: Set<() => void>): AnyRouteDef[] {
  return [
    websocketRoute({
      url: '/api/observe/logs/tail',
      summary:
        'Live tail of log entries (WebSocket; a plain GET answers server-sent events); same filters as the search, plus `query`',
      tags: ['observe'],
      access: 'authenticated',
      query: tailQuery,
      reasons: [QUERY_REASONS.invalidQuery, TAIL_REASONS.tooManyTails],
      produces: {
        status: 101,
        contentType: 'text/event-stream',
        description:
          'WebSocket: `{"type":"ready"}`, then `{"type":"log","entry":{…LogEntry}}` per entry; close 4008 when the client does not keep up. Plain GET: SSE `ready`, `log` (data: LogEntry), `dropped` (data: {kind, reason}), `end` when `limit` entries were sent',
      },
      websocket: {
        recheck: (ctx) => ctx.can('observe:read', ctx.query.project_id ?? null),
        open: async (ctx) => {
          await ctx.authorize('observe:read', ctx.query.project_id ?? null);
          const matches = await liveFilter(db, logFilterOf(ctx.query), ctx.query.query);
          const client = webSocketClient(ctx.socket, matches, entryBudget(ctx.query.limit));
          if (!hub.add(client)) {
            ctx.socket.close(1013, 'too many live tails on this instance');
            return;
          }
          ctx.onClose(() => hub.remove(client));
          ctx.socket.send(JSON.stringify({ type: 'ready' }));
        },
        plain: async ({ req, reply, query, authorize }) => {
          await authorize('observe:read', query.project_id ?? null);
          const matches = await liveFilter(db, logFilterOf(query), query.query);
          if (hub.size >= hub.options.maxClients) throw full();
          let stream: EventStream | undefined;
          const budget = entryBudget(query.limit);
          const client: TailClient = {
            matches,
            backlog: () => reply.raw.writableLength,
            send: (entries) => {
              const take = budget.take(entries);
              let chunk = '';
              for (const e of take) chunk += `event: log\ndata: ${JSON.stringify(e)}\n\n`;
              stream?.write(chunk);
              if (budget.spent()) {
                stream?.write('event: end\ndata: {"reason":"limit reached"}\n\n');
                stream?.end();
              }
            },
            drop: (kind, reason) => {
              stream?.write(`event: dropped\ndata: ${JSON.stringify({ kind, reason })}\n\n`);
              stream?.end();
              // A peer that reads nothing would keep the socket (and its buffer) forever.
              setTimeout(() => reply.raw.destroy(), 10_000).unref();
            },
          };
          // Registered before the headers go out: nothing published after the client has the response is missed.
          hub.add(client);
          stream = openEventStream(req, reply, {
            heartbeatMs: hub.options.heartbeatMs,
            streams,
            onEnd: () => hub.remove(client),
          });
          stream.write('event: ready\ndata: {}\n\n');
          return reply;
        },
      },
    }),
  ];
}

/** How many more entries a tail with `?limit=` may send. */
function entryBudget(limit: number | undefined) {
  let left = limit ?? Number.POSITIVE_INFINITY;
  return {
    take<T>(entries: T[]): T[] {
      const taken = entries.length <= left ? entries : entries.slice(0, left);
      left -= taken.length;
      return taken;
    },
    spent: () => left <= 0,
  };
}

function webSocketClient(
  socket: WebSocket,
  matches: (e: LiveLogEntry) => boolean,
  budget: ReturnType<typeof entryBudget>,
): TailClient {
  return {
    matches,
    backlog: () => socket.bufferedAmount,
    send: (entries) => {
      if (socket.readyState !== socket.OPEN) return;
      for (const entry of budget.take(entries)) socket.send(JSON.stringify({ type: 'log', entry }));
      if (budget.spent()) socket.close(1000, 'limit reached');
    },
    drop: (kind, reason) => {
      const code = kind === 'slow_consumer' ? WS_SLOW_CONSUMER : kind === 'shutdown' ? 1001 : 1011;
      if (socket.readyState === socket.OPEN) socket.close(code, reason.slice(0, 120));
      setTimeout(() => socket.terminate(), 10_000).unref();
    },
  };
}
