/**
 * Durable acknowledgement of OTLP ingest by the real server process: a burst of log exports,
 * SIGKILL mid-burst, restart — every record whose export got a 200 is queryable.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { servicesMissing, storeMode } from './helpers/app.js';
import {
  type CliProcess,
  createExternalStores,
  type ExternalStores,
  freePort,
  killAllChildren,
  login,
  makeTempDir,
  removeTempDirs,
  startCli,
  waitForHttp,
} from './helpers/process.js';

const ADMIN_PASSWORD = 'observe-crash-admin-password';

describe.skipIf(servicesMissing)(`observe ingest crash (${storeMode})`, () => {
  let external: ExternalStores | undefined;
  afterEach(async () => {
    await killAllChildren();
    await external?.drop();
    external = undefined;
    removeTempDirs();
  });

  it('SIGKILL right after acknowledgements: every acknowledged record is there after the restart', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env: Record<string, string> = {
      PLATFORM_DATA_DIR: makeTempDir('platform-observe-crash-'),
      PLATFORM_PORT: String(port),
      PLATFORM_HOST: '127.0.0.1',
      PLATFORM_PUBLIC_URL: base,
      PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
      PLATFORM_LOG_LEVEL: 'warn',
      // A long linger: acknowledgements wait for the flush, so a kill finds buffered records.
      PLATFORM_OBSERVE_FLUSH_MS: '300',
    };
    if (storeMode === 'postgres') {
      external = await createExternalStores();
      Object.assign(env, external.env);
    }
    const start = async (): Promise<CliProcess> => {
      const server = startCli(['serve'], env);
      await waitForHttp(`${base}/readyz`, server, { timeoutMs: 90_000 });
      return server;
    };
    let server = await start();
    const session = await login(base, 'admin', ADMIN_PASSWORD);
    const created = await fetch(`${base}/api/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: session.cookie!, origin: base },
      body: JSON.stringify({ name: 'otel' }),
    });
    expect(created.status).toBe(201);
    const token = ((await created.json()) as { token: string }).token;

    const acknowledged: string[] = [];
    const refused: string[] = [];
    let broken = 0;
    let stop = false;
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const messages = Array.from({ length: 20 }, (_, k) => `crash-${w}-${i}-${k}`);
        const body = {
          resourceLogs: [
            {
              resource: { attributes: [{ key: 'service.name', value: { stringValue: 'crashy' } }] },
              scopeLogs: [
                {
                  logRecords: messages.map((m) => ({
                    timeUnixNano: String(BigInt(Date.now()) * 1_000_000n),
                    severityNumber: 9,
                    body: { stringValue: m },
                  })),
                },
              ],
            },
          ],
        };
        try {
          const res = await fetch(`${base}/v1/logs`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify(body),
          });
          if (res.status === 200) acknowledged.push(...messages);
          else refused.push(`${res.status} ${await res.text()}`);
        } catch {
          broken++;
          if (server.hasExited) return;
        }
      }
    };
    const workers = Array.from({ length: 6 }, (_, w) => worker(w));
    try {
      const deadline = Date.now() + 60_000;
      while (acknowledged.length < 400 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(acknowledged.length, server.describe()).toBeGreaterThanOrEqual(400);
      server.signal('SIGKILL');
      await server.waitForExit(10_000);
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    console.log(
      `[observe crash ${storeMode}] ${acknowledged.length} records acknowledged, ${broken} exports cut off`,
    );
    expect(refused).toEqual([]);
    expect(broken, 'the kill landed while exports were in flight').toBeGreaterThan(0);

    server = await start();
    const stored = new Set<string>();
    let cursor: string | null = null;
    do {
      const res = await fetch(
        `${base}/api/observe/logs?service=crashy&limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        { headers: { authorization: `Bearer ${token}` } },
      );
      expect(res.status).toBe(200);
      const page = (await res.json()) as { items: { message: string }[]; next_cursor: string | null };
      for (const e of page.items) stored.add(e.message);
      cursor = page.next_cursor;
    } while (cursor);
    expect(
      acknowledged.filter((m) => !stored.has(m)),
      'acknowledged records missing',
    ).toEqual([]);
    server.signal('SIGTERM');
    await server.waitForExit(30_000);
  }, 300_000);
});
