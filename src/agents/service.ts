import type { Logger } from 'pino';
import type { AuthService } from '../auth/index.js';
import { systemActor, writeAudit } from '../core/audit.js';
import { AppError, conflict, forbidden, notFound, unprocessable } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import type { Actor, Principal } from '../core/http.js';
import type { LogSink } from '../core/log-sink.js';
import type { Permission } from '../core/permissions.js';
import { runGit } from '../git/index.js';
import { isValidBranchName, type ProjectsService } from '../projects/index.js';
import type { RbacService } from '../rbac/index.js';
import type { SecretsService } from '../secrets/index.js';
import type { Db } from '../store/db.js';
import type { PubSub } from '../store/pubsub/types.js';
import type { AgentSessionRow, AgentStopReason } from '../store/schema.js';
import { createAgentIdentity, retireAgentIdentity } from './identity.js';
import {
  type AgentProvider,
  type CommandProviderConfig,
  claudeCodeProvider,
  commandProvider,
} from './providers.js';
import * as q from './queries.js';
import { AGENT_REASONS } from './reasons.js';
import { EventWriter, LiveSession, type SessionLimits } from './run.js';
import type { AgentRunner } from './runner.js';
import { failSession, finishSession, startSession, stopSession } from './transitions.js';

export interface CreateSessionInput {
  prompt: string;
  provider?: string | undefined;
  provider_config?: Record<string, unknown> | undefined;
  branch?: string | undefined;
  permissions?: Permission[] | undefined;
  limits?: SessionLimits | undefined;
  issue_number?: number | undefined;
  merge_request_number?: number | undefined;
}

export interface AgentsDeps {
  db: Db;
  pubsub: PubSub;
  events: EventBus;
  log: Logger;
  auth: AuthService;
  rbac: RbacService;
  projects: ProjectsService;
  secrets: SecretsService;
  logs: LogSink | null;
  runner: AgentRunner;
  instanceId: string;
  publicUrl: string;
  leaseSeconds: number;
}

const DEFAULT_PERMISSIONS: Permission[] = ['project:read', 'project:write'];
/** Permissions an agent never gets, whatever is asked: it cannot start sessions nor delegate. */
const NEVER_DELEGATED = new Set<Permission>(['agent:run', 'admin:delegate', 'admin:users']);
/** Time to stop gracefully (SIGTERM) before the group is killed: the runner's own grace. */
const SECRET_NAME = /^[A-Z_][A-Z0-9_]*$/;

/** Agent sessions: creation (caps, identity, runner), the live sessions of this instance, the ending. */
export class AgentsService {
  readonly live = new Map<string, LiveSession>();
  private readonly background = new Set<Promise<unknown>>();

  constructor(private readonly d: AgentsDeps) {}

  async provider(name: string): Promise<AgentProvider> {
    const settings = await q.globalSettings(this.d.db);
    if (name === 'claude-code')
      return claudeCodeProvider({ command: settings.claude_command, image: settings.image });
    const configured = (settings.providers as unknown as Record<string, CommandProviderConfig | undefined>)[
      name
    ];
    if (!configured || !Array.isArray(configured.command) || configured.command.length === 0)
      throw unprocessable(`unknown provider ${name}`).because(AGENT_REASONS.unknownProvider);
    return commandProvider(name, configured, settings.image);
  }

  async create(
    actor: Actor,
    principal: Principal,
    projectId: string,
    input: CreateSessionInput,
  ): Promise<AgentSessionRow> {
    if (principal.userType === 'agent')
      throw forbidden('an agent cannot start sessions').because(AGENT_REASONS.agentCannotStart);
    const project = await this.d.projects.get(projectId);
    const providerName = input.provider ?? 'claude-code';
    await this.provider(providerName);
    const permissions = [...new Set([...DEFAULT_PERMISSIONS, ...(input.permissions ?? [])])];
    for (const p of permissions) {
      if (NEVER_DELEGATED.has(p))
        throw forbidden(`${p} is never delegated to an agent`).because(AGENT_REASONS.permissionNotHeld);
      const held = (await this.d.rbac.check(principal, p, projectId)) === 'allowed';
      if (!held)
        throw forbidden(`you do not hold ${p} on this project, so it cannot be delegated`).because(
          AGENT_REASONS.permissionNotHeld,
        );
    }
    const branch = input.branch ?? null;
    if (branch !== null && !isValidBranchName(branch))
      throw unprocessable(`invalid branch name ${JSON.stringify(branch)}`).because(
        AGENT_REASONS.branchInvalid,
      );
    const settings = await q.globalSettings(this.d.db);
    const own = await q.projectSettings(this.d.db, projectId);
    if (own?.daily_cost_usd != null && (await q.costToday(this.d.db, projectId)) >= own.daily_cost_usd)
      throw new AppError(429, 'rate_limited', 'the project’s daily agent budget is spent').because(
        AGENT_REASONS.dailyBudget,
      );

    const row = await this.d.db.transaction().execute(async (trx) => {
      await q.lockCreation(trx);
      if ((await q.startedByUserSince(trx, principal.userId, 3600)) >= settings.sessions_per_user_per_hour)
        throw new AppError(429, 'rate_limited', 'too many sessions started in the last hour', [], {
          'retry-after': '60',
        }).because(AGENT_REASONS.rateLimited);
      const counts = await q.liveCounts(trx, projectId);
      const projectCap = Math.min(
        own?.max_running ?? settings.max_running_per_project,
        settings.max_running_per_project,
      );
      if (counts.total >= settings.max_running_total || counts.project >= projectCap)
        throw new AppError(
          429,
          'rate_limited',
          counts.total >= settings.max_running_total
            ? `the platform runs ${counts.total} sessions, its cap`
            : `this project runs ${counts.project} sessions, its cap`,
          [],
          { 'retry-after': '30' },
        ).because(AGENT_REASONS.concurrencyLimit);
      const inserted = await trx
        .insertInto('agent_sessions')
        .values({
          project_id: projectId,
          user_id: principal.userId,
          prompt: input.prompt,
          provider: providerName,
          provider_config: JSON.stringify(input.provider_config ?? {}),
          branch,
          permissions,
          limits: JSON.stringify(input.limits ?? {}),
          issue_number: input.issue_number ?? null,
          merge_request_number: input.merge_request_number ?? null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      const withBranch = branch
        ? inserted
        : await trx
            .updateTable('agent_sessions')
            .set({ branch: `agent/${inserted.id.slice(0, 8)}` })
            .where('id', '=', inserted.id)
            .returningAll()
            .executeTakeFirstOrThrow();
      await writeAudit(trx, {
        actor,
        action: 'agent_session.create',
        resourceType: 'agent_session',
        resourceId: inserted.id,
        projectId,
        detail: { provider: providerName, permissions, branch: withBranch.branch },
      });
      return withBranch;
    });

    // The identity before the answer: the caller learns at once that delegation was refused.
    const expiresAt = new Date(Date.now() + (settings.timeout_seconds + 300) * 1000);
    let identity: Awaited<ReturnType<typeof createAgentIdentity>>;
    try {
      identity = await createAgentIdentity(this.d, actor, principal, {
        id: row.id,
        projectId,
        permissions,
        expiresAt,
      });
    } catch (err) {
      await failSession(this.d.db, row.id, `could not create the agent identity: ${(err as Error).message}`);
      throw err;
    }
    const updated = await this.d.db
      .updateTable('agent_sessions')
      .set({ agent_user_id: identity.userId, api_token_id: identity.tokenId })
      .where('id', '=', row.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    this.track(this.launch(updated, project, identity.token, identity.userName, settings.timeout_seconds));
    return updated;
  }

  writerFor(row: AgentSessionRow): EventWriter {
    return new EventWriter(this.d, { id: row.id, projectId: row.project_id, userId: row.user_id });
  }

  private track(p: Promise<unknown>): void {
    const t = p.catch((err: unknown) => this.d.log.error({ err }, 'agent session background work failed'));
    this.background.add(t);
    void t.finally(() => this.background.delete(t));
  }

  async settle(): Promise<void> {
    while (this.background.size > 0) await Promise.all([...this.background]);
  }

  /** Starts the runner for a pending session; its ending is handled by `end`. */
  private async launch(
    row: AgentSessionRow,
    project: Awaited<ReturnType<ProjectsService['get']>>,
    token: string,
    agentName: string,
    timeoutSeconds: number,
  ): Promise<void> {
    const provider = await this.provider(row.provider);
    const writer = this.writerFor(row);
    const limits = row.limits as SessionLimits;
    const own = await q.projectSettings(this.d.db, row.project_id);
    const budgetLeft =
      own?.daily_cost_usd != null
        ? Math.max(0, own.daily_cost_usd - (await q.costToday(this.d.db, row.project_id)))
        : null;
    const live = new LiveSession(
      row.id,
      provider,
      writer,
      this.d.db,
      limits,
      budgetLeft,
      (reason, detail) => {
        void this.stop(systemActor, row, reason, detail).catch(() => {});
      },
      idleSeconds(row.provider_config),
    );
    this.live.set(row.id, live);
    try {
      const repoDir = this.d.projects.repoDir(project);
      const cloneUrl = `${this.d.publicUrl}/${project.owner_name}/${project.name}.git`;
      const branch = row.branch ?? `agent/${row.id.slice(0, 8)}`;
      const sha = (await headOf(repoDir, branch)) ?? (await headOf(repoDir, project.default_branch));
      if (!sha)
        throw new Error(`the project has no commit on ${branch} or ${project.default_branch} to start from`);
      await this.d.db.updateTable('agent_sessions').set({ base_sha: sha }).where('id', '=', row.id).execute();
      const secrets = await this.agentSecrets(row.project_id, row.id);
      const apiUrl = `${this.d.publicUrl}/api`;
      const spec = provider.buildSpec({
        id: row.id,
        prompt: row.prompt,
        config: row.provider_config as Record<string, unknown>,
        mcpConfigPath: '$MCP_CONFIG',
      });
      const wall = limits.max_wall_seconds ?? timeoutSeconds;
      const deadline = new Date(Date.now() + Math.min(wall, timeoutSeconds) * 1000);
      const run = await this.d.runner.start({
        sessionId: row.id,
        projectId: row.project_id,
        source: { repoDir, cloneUrl, cloneToken: token, sha },
        branch,
        spec,
        env: {
          ...secrets,
          ...spec.env,
          PLATFORM_API_URL: apiUrl,
          PLATFORM_API_TOKEN: token,
          PROJECT_CLONE_URL: cloneUrl,
          PROMPT: row.prompt,
          PROJECT_ID: row.project_id,
          AGENT_SESSION_ID: row.id,
        },
        git: { name: agentName, email: `${agentName}@agents.invalid` },
        mcpConfig: mcpConfiguration(this.d.publicUrl, token),
        timeoutSeconds: Math.min(wall, timeoutSeconds),
        signal: live.abort.signal,
        onOutput: (chunk) => live.output(chunk),
      });
      live.run = run;
      const started = await startSession(this.d.db, row.id, {
        kind: this.d.runner.kind,
        ref: row.id,
        holder: this.d.instanceId,
        leaseSeconds: this.d.leaseSeconds,
        deadline,
      });
      if (!started) live.abort.abort(); // stopped while starting: the run is killed
      await writer.write([
        {
          role: 'system',
          kind: 'milestone',
          content: 'started',
          metadata: { runner: this.d.runner.kind, branch },
        },
      ]);
      const result = await run.result;
      live.endOfOutput();
      await writer.drain();
      const wallLimited =
        result.outcome === 'timeout' &&
        limits.max_wall_seconds !== undefined &&
        limits.max_wall_seconds <= timeoutSeconds;
      if (result.outcome === 'timeout' && wallLimited) {
        await this.end(row, () => stopSession(this.d.db, row.id, 'wall_clock', 'wall-clock limit reached'));
      } else if (result.outcome === 'timeout') {
        await this.end(row, () => failSession(this.d.db, row.id, `timed out after ${timeoutSeconds}s`));
      } else {
        const ok = result.outcome === 'success';
        const error = ok
          ? null
          : (result.error ??
            (result.stderrTail.trim().split('\n').slice(-5).join('\n') || `exit code ${result.exitCode}`));
        if (!ok && result.stderrTail.trim())
          await writer.write([
            {
              role: 'system',
              kind: 'error',
              content: result.stderrTail.trim().slice(-2000),
              metadata: { stderr: true },
            },
          ]);
        await this.end(row, () =>
          finishSession(this.d.db, row.id, {
            status: ok ? 'completed' : 'failed',
            exitCode: result.exitCode,
            error,
          }),
        );
      }
    } catch (err) {
      this.d.log.warn({ err, sessionId: row.id }, 'agent session could not run');
      await this.end(row, () => failSession(this.d.db, row.id, `could not start: ${(err as Error).message}`));
    } finally {
      this.live.delete(row.id);
    }
  }

  /**
   * The one ending: the status transition (whoever wins), then — always, idempotently — the
   * identity retired, the totals kept, and `session.finished` for the transition's winner.
   */
  private async end(row: AgentSessionRow, transition: () => Promise<AgentSessionRow | null>): Promise<void> {
    const ended = await transition();
    const current =
      ended ??
      (await this.d.db.selectFrom('agent_sessions').selectAll().where('id', '=', row.id).executeTakeFirst());
    if (current?.agent_user_id)
      await retireAgentIdentity(this.d, current.api_token_id, current.agent_user_id);
    if (ended) {
      const writer = this.live.get(row.id)?.writer ?? this.writerFor(ended);
      await writer.write([
        {
          role: 'system',
          kind: 'milestone',
          content: ended.status,
          metadata: { stop_reason: ended.stop_reason, error: ended.error },
        },
      ]);
      this.d.events.emit('session.finished', {
        projectId: ended.project_id,
        sessionId: ended.id,
        status: ended.stop_reason ? `stopped: ${ended.stop_reason}` : ended.status,
        requestedBy: ended.user_id,
      });
    }
  }

  /** Stops a pending or running session: the transition, then the process group / pod is killed. */
  async stop(
    actor: Actor,
    row: AgentSessionRow,
    reason: AgentStopReason,
    detail: string | null,
  ): Promise<AgentSessionRow> {
    const stopped = await this.d.db.transaction().execute(async (trx) => {
      const s = await stopSession(trx, row.id, reason, detail);
      if (s)
        await writeAudit(trx, {
          actor,
          action: 'agent_session.stop',
          resourceType: 'agent_session',
          resourceId: row.id,
          projectId: row.project_id,
          detail: { reason },
        });
      return s;
    });
    if (!stopped) {
      const current = await q.sessionById(this.d.db, row.project_id, row.id);
      throw conflict(`the session is ${current?.status ?? 'gone'}`, [
        { message: 'status', status: current?.status },
      ]).because(AGENT_REASONS.notRunning);
    }
    const live = this.live.get(row.id);
    if (live) {
      live.abort.abort();
      await live.run?.result.catch(() => {});
      await live.writer.drain();
    } else if (row.lease_holder === this.d.instanceId || row.lease_holder === null) {
      await this.d.runner.cleanup([row.id]).catch(() => {});
    } else {
      // Another instance runs it: its lease renewal sees the status and kills the run.
      await this.d.pubsub.publish(`agent-stop:${row.lease_holder}`, { id: row.id }).catch(() => {});
    }
    await this.end(stopped, async () => stopped);
    return stopped;
  }

  /** A user message: to the agent's stdin (in the provider's format), stored as role user. */
  async message(actor: Actor, row: AgentSessionRow, content: string): Promise<number> {
    const live = this.live.get(row.id);
    if (row.status !== 'running' && row.status !== 'pending')
      throw conflict(`the session is ${row.status}`, [{ message: 'status', status: row.status }]).because(
        AGENT_REASONS.notRunning,
      );
    if (!live)
      throw conflict('the session runs on another instance or has not started').because(
        AGENT_REASONS.notRunning,
      );
    if (this.d.runner.kind === 'kubernetes')
      throw conflict('sessions in pods cannot take messages').because(AGENT_REASONS.noStdin);
    const delivered = await live.message(content);
    if (!delivered) throw conflict('the agent’s input is closed').because(AGENT_REASONS.notRunning);
    await live.writer.write([{ role: 'user', kind: 'text', content, metadata: { from: actor.name } }]);
    await writeAudit(this.d.db, {
      actor,
      action: 'agent_session.message',
      resourceType: 'agent_session',
      resourceId: row.id,
      projectId: row.project_id,
      detail: { length: content.length },
    });
    const s = await q.sessionById(this.d.db, row.project_id, row.id);
    return (s?.next_message_seq ?? 1) - 1;
  }

  async canRun(principal: Principal, projectId: string): Promise<boolean> {
    return (await this.d.rbac.check(principal, 'agent:run', projectId)) === 'allowed';
  }

  settings() {
    return q.globalSettings(this.d.db);
  }

  async get(projectId: string, id: string): Promise<AgentSessionRow> {
    const row = await q.sessionById(this.d.db, projectId, id);
    if (!row) throw notFound('session');
    return row;
  }

  /** Commits on the session branch since its base, and the MRs and pipelines of that branch. */
  async links(row: AgentSessionRow) {
    let commits: string[] = [];
    if (row.base_sha && row.branch) {
      const project = await this.d.projects.get(row.project_id);
      const r = await runGit(
        ['rev-list', '--max-count=100', `${row.base_sha}..refs/heads/${row.branch}`, '--'],
        {
          cwd: this.d.projects.repoDir(project),
          okExitCodes: [0, 128],
          timeoutMs: 30_000,
        },
      ).catch(() => null);
      commits = r && r.exitCode === 0 ? r.stdout.toString().split('\n').filter(Boolean) : [];
    }
    return { commits, ...(await q.producedLinks(this.d.db, row, commits)) };
  }

  /** The project's secrets of scope agent/all (global ones unless shadowed), by name, as env vars. */
  private async agentSecrets(projectId: string, sessionId: string): Promise<Record<string, string>> {
    const names = new Set<string>();
    for (const scopeOf of [projectId, null]) {
      let cursor: string | undefined;
      do {
        const page = await this.d.secrets.list(scopeOf, { limit: 200, cursor }).catch(() => null);
        if (!page) break;
        for (const s of page.items)
          if ((s.scope === 'agent' || s.scope === 'all') && SECRET_NAME.test(s.name)) names.add(s.name);
        cursor = page.next_cursor ?? undefined;
      } while (cursor);
    }
    const env: Record<string, string> = {};
    for (const name of names) {
      try {
        env[name] = await this.d.secrets.resolve(projectId, name, 'agent', { kind: 'agent', id: sessionId });
      } catch {
        // A project secret of another scope shadows the global one: not for agents.
      }
    }
    return env;
  }

  /** Lease renewal of this instance's sessions; a session stopped elsewhere is killed here. */
  async renew(): Promise<void> {
    const ids = [...this.live.keys()];
    if (ids.length === 0) return;
    await q.renewLeases(this.d.db, ids, this.d.instanceId, this.d.leaseSeconds);
    const rows = await this.d.db
      .selectFrom('agent_sessions')
      .select(['id', 'status'])
      .where('id', 'in', ids)
      .execute();
    for (const r of rows)
      if (r.status !== 'running' && r.status !== 'pending') this.live.get(r.id)?.abort.abort();
  }

  /** Sessions whose runner vanished (lease expired: instance gone, restarted): failed and cleaned up. */
  async reap(): Promise<number> {
    const rows = await q.vanishedSessions(this.d.db, 120);
    let n = 0;
    for (const row of rows) {
      if (this.live.has(row.id)) continue;
      await this.d.runner
        .cleanup([row.id])
        .catch((err: unknown) =>
          this.d.log.warn({ err, sessionId: row.id }, 'cleaning up a vanished session failed'),
        );
      await this.end(row, () =>
        failSession(this.d.db, row.id, 'the runner vanished (platform restarted or process gone)'),
      );
      n++;
    }
    return n;
  }

  /** On shutdown this instance's sessions end as failed (the platform stopped): none stays running. */
  async stopAll(): Promise<void> {
    for (const live of this.live.values()) live.abort.abort();
    await this.settle();
  }
}

/** The MCP configuration every session gets: the platform's /mcp with the session's own token. */
export function mcpConfiguration(publicUrl: string, token: string) {
  return {
    mcpServers: {
      platform: { type: 'http', url: `${publicUrl}/mcp`, headers: { Authorization: `Bearer ${token}` } },
    },
  };
}

/** provider_config.idle_seconds: how long input stays open after a turn (0–3600, default 0). */
function idleSeconds(config: unknown): number {
  const v = (config as Record<string, unknown>)?.idle_seconds;
  return typeof v === 'number' && Number.isFinite(v) ? Math.min(Math.max(v, 0), 3600) : 0;
}

async function headOf(repoDir: string, branch: string): Promise<string | null> {
  const r = await runGit(['rev-parse', '--verify', '--quiet', `refs/heads/${branch}^{commit}`], {
    cwd: repoDir,
    okExitCodes: [0, 1, 128],
    timeoutMs: 30_000,
  });
  const sha = r.stdout.toString().trim();
  return r.exitCode === 0 && /^[0-9a-f]{40,64}$/.test(sha) ? sha : null;
}
