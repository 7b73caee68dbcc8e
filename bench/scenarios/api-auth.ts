/**
 * api-auth: an authenticated API read through the whole platform stack (request id, security
 * headers, bearer-token authentication, RBAC resolution, database reads, zod-checked JSON) against
 * the physical limit of the same HTTP framework — a bare Fastify route answering a constant.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BenchContext, Scenario, ScenarioResult } from '../run.js';
import { childEnv, json, loginToken, platformServeCommand, repoRoot } from '../run.js';

const GOAL = 0.5;
const ADMIN_PASSWORD = 'bench-admin-password';

/** The reference: Fastify with nothing but one constant route, no logging (the platform logs at warn). */
function bareServerSource(fastifyUrl: string): string {
  return `import Fastify from ${JSON.stringify(fastifyUrl)};
const app = Fastify({ logger: false });
app.get('/', async () => ({ ok: true }));
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) });
process.once('SIGTERM', () => app.close().then(() => process.exit(0)));
`;
}

export const apiAuth: Scenario = {
  name: 'api-auth',
  description:
    'GET /api/auth/me with a bearer API token (embedded PostgreSQL) vs. a bare Fastify GET / → {"ok":true}',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const dir = ctx.tempDir('platform-bench-');

    // (i) Reference.
    const barePort = await ctx.freePort();
    const bareScript = path.join(dir, 'bare-fastify.mjs');
    writeFileSync(bareScript, bareServerSource(import.meta.resolve('fastify')));
    const bare = ctx.spawnServer(process.execPath, [bareScript], {
      env: childEnv({ PORT: String(barePort) }),
    });
    const bareUrl = `http://127.0.0.1:${barePort}/`;
    await bare.waitReady(bareUrl, 30_000);
    const reference = await ctx.measure('bare Fastify GET /', bareUrl);
    bare.child.kill('SIGTERM');

    // (ii) The platform, embedded (bundled PostgreSQL in a temp data dir, in-process cache), built as `npm start` runs it.
    const port = await ctx.freePort();
    const base = `http://127.0.0.1:${port}`;
    ctx.progress('platform: starting (first start of a fresh data dir runs initdb + migrations)');
    const platform = ctx.spawnServer(...(await platformServeCommand((m) => ctx.progress(m))), {
      cwd: repoRoot,
      env: childEnv({
        PLATFORM_DATA_DIR: path.join(dir, 'data'),
        PLATFORM_HOST: '127.0.0.1',
        PLATFORM_PORT: String(port),
        // The origin the bench's cookie-authenticated token request names (same-origin check).
        PLATFORM_PUBLIC_URL: base,
        PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
        PLATFORM_LOG_LEVEL: 'warn',
      }),
    });
    await platform.waitReady(`${base}/readyz`, 180_000);

    const token = await loginToken(base, 'admin', ADMIN_PASSWORD, 'bench');
    const headers = { authorization: `Bearer ${token}` };
    await json(await fetch(`${base}/api/auth/me`, { headers }), 'GET /api/auth/me');

    const measured = await ctx.measure(
      'platform GET /api/auth/me (bearer token)',
      `${base}/api/auth/me`,
      headers,
    );
    const ratio = measured.requestsPerSecond / reference.requestsPerSecond;
    return {
      description: this.description,
      reference,
      platform: measured,
      ratio,
      goal: GOAL,
      met: ratio >= GOAL,
      notes: [
        'platform run as `npm start` runs it: `node dist/src/main.js serve`, built by `npm run build` at the start of the bench run',
        'PLATFORM_LOG_LEVEL=warn on the platform and logger:false on the reference: no per-request log lines on either side',
        `load generator in the bench process, servers in child processes; same autocannon settings for both (${ctx.settings.connections} connections, ${ctx.settings.warmupSeconds} s warm-up, ${ctx.settings.durationSeconds} s measured)`,
      ],
    };
  },
};
