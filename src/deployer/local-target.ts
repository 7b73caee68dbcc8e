import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chown, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { ProcessLauncher } from '../core/launcher.js';
import type { LogSink } from '../core/log-sink.js';
import { killRecordedGroup, parsePidFile } from '../runners/index.js';
import type { ObjectStore } from '../store/objects/index.js';
import {
  type LocalProcessSpec,
  type ProcessSandbox,
  SupervisedProcess,
  sandboxedLaunch,
  waitHealthy,
} from './local-process.js';

/** One started version of a deployment on this instance. */
interface Release {
  id: string;
  deploymentId: string;
  dir: string;
  port: number;
  process: SupervisedProcess;
  agent: http.Agent;
  inflight: number;
  idle: (() => void)[];
}

export interface LocalDeployRequest {
  deploymentId: string;
  projectId: string;
  /** `<owner>/<name>/<environment>`: the proxy route `/apps/<owner>/<name>/<environment>/…`. */
  routeKey: string;
  /** `service.name` of the process logs. */
  service: string;
  environment: string;
  artifact: { objectKey: string; contentType: string } | null;
  spec: LocalProcessSpec;
}

export type LocalDeployOutcome =
  | { ok: true; releaseId: string; port: number }
  | { ok: false; message: string; healthFailure: boolean };

const MAX_DRAIN_MS = 120_000;

/**
 * The local target: releases under `<root>/<deployment>/<release>/`, each a supervised process in
 * the step sandbox on a fresh port, and the route table of the platform's reverse proxy. A cut-over
 * is health-gated: the new release must answer its health path before the route moves; then the old
 * one's in-flight requests drain (bounded by `drain_seconds`) and it is stopped.
 *
 * Processes live as long as this platform process (the launcher and bubblewrap's --die-with-parent
 * take them down with it); a restarted platform starts them again from the database state.
 */
export class LocalTarget {
  private readonly current = new Map<string, Release>();
  private readonly routes = new Map<string, string>();

  constructor(
    private readonly o: {
      root: string;
      objects: ObjectStore;
      launcher: ProcessLauncher;
      sandbox: () => Promise<ProcessSandbox>;
      logs: LogSink | undefined;
      log: Logger;
    },
  ) {}

  /** Whether a release of the deployment serves on this instance. */
  isRunning(deploymentId: string): boolean {
    return this.current.has(deploymentId);
  }

  runningPort(deploymentId: string): number | null {
    return this.current.get(deploymentId)?.port ?? null;
  }

  /**
   * Kills what a crashed platform left of a deployment's releases (recorded process groups) and
   * removes release directories nothing serves from.
   */
  async cleanLeftovers(deploymentId: string): Promise<void> {
    const dir = path.join(this.o.root, deploymentId);
    const live = this.current.get(deploymentId)?.id;
    let entries: string[] = [];
    try {
      entries = await readdir(dir);
    } catch {
      return;
    }
    for (const entry of entries) {
      if (!entry.endsWith('.pid') || entry === `${live}.pid`) continue;
      const record = parsePidFile(await readFile(path.join(dir, entry), 'utf8').catch(() => ''));
      if (record) killRecordedGroup(record);
      await rm(path.join(dir, entry), { force: true });
      await rm(path.join(dir, entry.slice(0, -4)), { recursive: true, force: true });
    }
  }

  async deploy(req: LocalDeployRequest): Promise<LocalDeployOutcome> {
    const sandbox = await this.o.sandbox();
    const releaseId = randomUUID();
    const base = path.join(this.o.root, req.deploymentId);
    const dir = path.join(base, releaseId);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    if (sandbox.user) {
      await chown(base, 0, 0).catch(() => {});
      await chown(dir, sandbox.user.uid, sandbox.user.gid);
    }
    try {
      if (req.artifact) await this.unpack(req.artifact, dir, sandbox);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      return {
        ok: false,
        message: `unpacking the artifact failed: ${(err as Error).message}`,
        healthFailure: false,
      };
    }
    const port = await freePort();
    const proc = new SupervisedProcess({
      launcher: this.o.launcher,
      sandbox,
      releaseDir: dir,
      pidFile: path.join(base, `${releaseId}.pid`),
      spec: req.spec,
      port,
      logs: this.o.logs,
      service: req.service,
      projectId: req.projectId,
      attributes: { 'deployment.env': req.environment, 'deployment.release': releaseId },
      log: this.o.log,
    });
    const release: Release = {
      id: releaseId,
      deploymentId: req.deploymentId,
      dir,
      port,
      process: proc,
      agent: new http.Agent({ keepAlive: true, maxSockets: 64 }),
      inflight: 0,
      idle: [],
    };
    try {
      await proc.start();
    } catch (err) {
      await this.discard(release, base);
      return {
        ok: false,
        message: `the process could not start: ${(err as Error).message}`,
        healthFailure: false,
      };
    }
    const problem = await waitHealthy(
      port,
      req.spec.health_path,
      req.spec.readiness_timeout_seconds * 1000,
      proc,
    );
    if (problem) {
      await this.discard(release, base);
      return { ok: false, message: problem, healthFailure: true };
    }
    const old = this.current.get(req.deploymentId);
    this.current.set(req.deploymentId, release);
    this.routes.set(req.routeKey, req.deploymentId);
    if (old) await this.retire(old, req.spec.drain_seconds * 1000);
    return { ok: true, releaseId, port };
  }

  /** Stops the deployment's release (after draining) and removes its route. */
  async stop(deploymentId: string, drainMs = 10_000): Promise<void> {
    const release = this.current.get(deploymentId);
    for (const [key, id] of this.routes) if (id === deploymentId) this.routes.delete(key);
    this.current.delete(deploymentId);
    if (release) await this.retire(release, drainMs);
    await this.cleanLeftovers(deploymentId);
  }

  /** Stops every process (platform shutdown); the database keeps what should run. */
  async close(): Promise<void> {
    const all = [...this.current.values()];
    this.current.clear();
    this.routes.clear();
    this.remoteAgent.destroy();
    await Promise.all(all.map((r) => this.retire(r, 2_000)));
  }

  private async retire(release: Release, drainMs: number): Promise<void> {
    if (release.inflight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(drainMs, MAX_DRAIN_MS));
        release.idle.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await this.discard(release, path.dirname(release.dir));
  }

  private async discard(release: Release, base: string): Promise<void> {
    await release.process.stop();
    release.agent.destroy();
    await rm(path.join(base, `${release.id}.pid`), { force: true });
    await rm(release.dir, { recursive: true, force: true });
  }

  /**
   * Writes the published artifact into the release directory (as `artifact`); a gzip'd tar is unpacked there by
   * `tar` inside the sandbox (as the sandbox user, only the release directory writable), so a hostile
   * archive (absolute paths, `..`, links out) cannot write anywhere else.
   */
  private async unpack(
    artifact: { objectKey: string; contentType: string },
    dir: string,
    sandbox: ProcessSandbox,
  ): Promise<void> {
    const object = await this.o.objects.get(artifact.objectKey);
    if (!object) throw new Error('the published artifact is no longer in the object store');
    const file = path.join(dir, '.artifact');
    await pipeline(object.body, createWriteStream(file, { mode: 0o644 }));
    // A directory published as tar.gz, or a file that is one (app.tgz): gzip magic bytes.
    const head = Buffer.alloc(2);
    const fd = await open(file, 'r');
    await fd.read(head, 0, 2, 0).finally(() => fd.close());
    if (head[0] !== 0x1f || head[1] !== 0x8b) {
      await rename(file, path.join(dir, 'artifact'));
      if (sandbox.user) await chown(path.join(dir, 'artifact'), sandbox.user.uid, sandbox.user.gid);
      return;
    }
    if (sandbox.user) await chown(file, sandbox.user.uid, sandbox.user.gid);
    const launched = await this.o.launcher.spawn(
      sandboxedLaunch(
        sandbox,
        dir,
        'tar',
        ['-xzf', file, '-C', dir, '--no-same-owner', '--no-same-permissions'],
        {
          PATH: '/usr/bin:/bin',
        },
      ),
    );
    let stderr = '';
    launched.onOutput((chunk, stream) => {
      if (stream === 'stderr' && stderr.length < 2000) stderr += chunk.toString('utf8');
    });
    const timer = setTimeout(() => process.kill(-launched.pid, 'SIGKILL'), 120_000);
    const exit = await launched.exited.finally(() => clearTimeout(timer));
    await launched.closed.catch(() => {});
    await rm(file, { force: true });
    if (exit.code !== 0) throw new Error(`tar: ${stderr.trim().split('\n')[0] ?? `exit ${exit.code}`}`);
  }

  /** Whether a version serves this route key on this instance now. */
  serves(routeKey: string): boolean {
    const id = this.routes.get(routeKey);
    return id !== undefined && this.current.has(id);
  }

  /**
   * The reverse proxy: `/apps/<owner>/<name>/<env>/<rest>` to the serving release, bodies streamed
   * both ways. A request counts as in flight until its answer is fully sent (draining waits for it).
   */
  async proxy(
    req: FastifyRequest,
    reply: FastifyReply,
    routeKey: string,
    rest: string,
  ): Promise<FastifyReply> {
    const deploymentId = this.routes.get(routeKey);
    const release = deploymentId ? this.current.get(deploymentId) : undefined;
    if (!release) return unavailable(reply);
    release.inflight++;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      release.inflight--;
      if (release.inflight === 0) for (const f of release.idle.splice(0)) f();
    };
    return this.forward(req, reply, routeKey, rest, {
      host: '127.0.0.1',
      port: release.port,
      agent: release.agent,
      finish,
    });
  }

  /**
   * The proxy to a release another instance runs, at the address that instance recorded in the
   * deployment's runtime state (never an address from the request). Same credential stripping and
   * CSP as a local release. `null` → 503 (nothing serves).
   */
  async proxyRemote(
    req: FastifyRequest,
    reply: FastifyReply,
    routeKey: string,
    rest: string,
    upstream: { host: string; port: number } | null,
  ): Promise<FastifyReply> {
    if (!upstream) return unavailable(reply);
    return this.forward(req, reply, routeKey, rest, {
      ...upstream,
      agent: this.remoteAgent,
      finish: () => {},
    });
  }

  private readonly remoteAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  private forward(
    req: FastifyRequest,
    reply: FastifyReply,
    routeKey: string,
    rest: string,
    to: { host: string; port: number; agent: http.Agent; finish: () => void },
  ): FastifyReply {
    const finish = to.finish;
    reply.hijack();
    const res = reply.raw;
    res.on('close', finish);
    const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (HOP_BY_HOP.has(k) || k === 'host' || v === undefined) continue;
      headers[k] = v;
    }
    const body = req.body as unknown;
    const streamed = !!body && typeof (body as NodeJS.ReadableStream).pipe === 'function';
    // A JSON body Fastify already parsed is sent re-serialised: its length is no longer the client's.
    if (!streamed) delete headers['content-length'];
    stripPlatformCredentials(headers);
    headers['x-forwarded-for'] = req.ip;
    headers['x-forwarded-prefix'] = `/apps/${routeKey}`;
    const upstream = http.request({
      host: to.host,
      port: to.port,
      method: req.method,
      path: `/${rest}${query}`,
      headers,
      agent: to.agent,
    });
    upstream.on('response', (up) => {
      const out: http.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(up.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
      // The app is served on the platform's origin: its pages run in an opaque origin (no access to
      // the platform's API with the visitor's session), and it cannot set the platform's cookies.
      out['content-security-policy'] = APP_CSP;
      const cookies = out['set-cookie'];
      if (Array.isArray(cookies)) out['set-cookie'] = cookies.filter((c) => !PLATFORM_COOKIE.test(c));
      res.writeHead(up.statusCode ?? 502, out);
      up.pipe(res);
      up.on('error', () => res.destroy());
    });
    upstream.on('error', (err) => {
      if (!res.headersSent) {
        // Refused: the release is gone (stopped, its instance ending) — nothing serves, as a 503.
        const refused = (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
        res.writeHead(refused ? 503 : 502, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: { code: 'unavailable', message: `upstream: ${err.message}`, details: [] },
          }),
        );
      } else res.destroy();
      finish();
    });
    if (streamed) (body as NodeJS.ReadableStream).pipe(upstream);
    else if (body !== undefined && body !== null)
      upstream.end(typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
    else upstream.end();
    return reply;
  }
}

/**
 * Where another instance serves a local deployment: the host and port it recorded in the runtime
 * state when its release got healthy, while its lease on the row is live. Only what the deployer
 * wrote is used (a host name or IP, a port), so the proxy cannot be pointed elsewhere by a request.
 */
export function servingElsewhere(
  row: { runtime: Record<string, unknown>; lease_holder: string | null; lease_expires_at: Date | null },
  routeKey: string,
  selfInstanceId: string,
): { host: string; port: number } | null {
  const r = row.runtime;
  // This instance holds the row but does not serve it (between versions, stopping): never itself.
  if (row.lease_holder === selfInstanceId) return null;
  if (r.target !== 'local' || r.stopped || r.route_key !== routeKey) return null;
  if (!row.lease_holder || !row.lease_expires_at || new Date(row.lease_expires_at).getTime() <= Date.now())
    return null;
  const { host, port } = r;
  if (typeof host !== 'string' || !/^[A-Za-z0-9.:-]{1,253}$/.test(host)) return null;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { host, port };
}

function unavailable(reply: FastifyReply): FastifyReply {
  return reply
    .code(503)
    .header('content-type', 'application/json')
    .send({
      error: {
        code: 'unavailable',
        message: 'no healthy version of this deployment serves now',
        details: [],
      },
    });
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const APP_CSP = 'sandbox allow-scripts allow-forms allow-popups allow-downloads allow-modals';
/** The platform's own cookies (`platform_session`, …): never handed to or set by a deployed app. */
const PLATFORM_COOKIE = /^\s*platform_/;

/** The visitor's platform session and platform tokens stay with the platform, not the app. */
function stripPlatformCredentials(headers: http.OutgoingHttpHeaders): void {
  const cookie = headers.cookie;
  if (typeof cookie === 'string') {
    const kept = cookie.split(';').filter((c) => !PLATFORM_COOKIE.test(c));
    if (kept.length > 0) headers.cookie = kept.join(';').trim();
    else delete headers.cookie;
  }
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const [scheme, value = ''] = auth.split(' ', 2);
    const basic = scheme?.toLowerCase() === 'basic' ? Buffer.from(value, 'base64').toString('utf8') : '';
    if (value.startsWith('plat_') || basic.includes(':plat_')) delete headers.authorization;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
