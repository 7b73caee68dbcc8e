import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';

export interface EventStream {
  /** Writes raw SSE text; nothing once the stream has ended. */
  write(chunk: string): void;
  /** Ends the stream (idempotent): timers stop, `onEnd` runs, the response is closed. */
  end(): void;
  readonly ended: boolean;
}

export interface EventStreamOptions {
  /** Comment lines keep proxies from closing an idle stream. */
  heartbeatMs: number;
  /** Runs once when the stream ends, whoever ends it (client gone, server stopping, `end()`). */
  onEnd?: () => void;
  /** The module's open streams, so its shutdown can end them all. */
  streams?: Set<() => void>;
  /** Called every `tickMs` (default 2 s) while the stream is open (status polls). */
  onTick?: () => void;
  tickMs?: number;
}

/**
 * Turns a route's reply into a server-sent event stream: the reply's headers so far (request id,
 * security headers) plus the SSE ones, a `retry` hint and heartbeats. The HTTP server's close() waits
 * for open connections, so a stream that notices the server stopped listening ends itself: shutdown
 * is never held by a browser tab. Subscribe to the event source before calling this, so nothing
 * published after the client has the response is missed.
 */
export function openEventStream(
  req: FastifyRequest,
  reply: FastifyReply,
  options: EventStreamOptions,
): EventStream {
  const res: ServerResponse = reply.raw;
  const headers: Record<string, string | number | string[]> = {};
  for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) headers[k] = v;
  reply.hijack();
  res.writeHead(200, {
    ...headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  let ended = false;
  const server = req.server.server;
  const wasListening = server.listening;
  const write = (chunk: string) => {
    if (!ended) res.write(chunk);
  };
  const heartbeat = setInterval(() => write(': ping\n\n'), options.heartbeatMs);
  const watch = setInterval(() => {
    if (wasListening && !server.listening) end();
  }, 500);
  const tick = options.onTick ? setInterval(options.onTick, options.tickMs ?? 2000) : undefined;
  heartbeat.unref();
  watch.unref();
  tick?.unref();
  const end = () => {
    if (ended) return;
    ended = true;
    clearInterval(heartbeat);
    clearInterval(watch);
    clearInterval(tick);
    options.streams?.delete(end);
    options.onEnd?.();
    res.end();
  };
  options.streams?.add(end);
  req.raw.on('close', end);
  res.on('close', end);
  write('retry: 3000\n\n');
  if (req.raw.destroyed || res.destroyed) end();
  return {
    write,
    end,
    get ended() {
      return ended;
    },
  };
}
