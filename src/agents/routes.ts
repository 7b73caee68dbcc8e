import type { z } from 'zod';
import { writeAudit } from '../core/audit.js';
import { type AnyRouteDef, route, websocketRoute } from '../core/http.js';
import { pageByTime } from '../core/pagination.js';
import { openEventStream } from '../core/sse.js';
import type { IssuesService } from '../issues/index.js';
import type { Db } from '../store/db.js';
import type { PubSub } from '../store/pubsub/types.js';
import { messagesAfter } from './queries.js';
import { AGENT_REASONS } from './reasons.js';
import { streamedMessage } from './run.js';
import {
  createSessionBody,
  issueSessionBody,
  issueSessionParams,
  listSessionsQuery,
  messageAcceptedSchema,
  messageBody,
  messagesQuery,
  projectParams,
  projectSettingsBody,
  projectSettingsSchema,
  sessionDetailSchema,
  sessionPageSchema,
  sessionParams,
  sessionSchema,
  sessionView,
  settingsBody,
  settingsSchema,
  streamQuery,
} from './schemas.js';
import type { AgentsService } from './service.js';
import { followSession } from './stream.js';

const tags = ['agents'];
const read = { permission: 'project:read', projectParam: 'id' } as const;
const run = { permission: 'agent:run', projectParam: 'id' } as const;
const CREATE_REASONS = [
  AGENT_REASONS.concurrencyLimit,
  AGENT_REASONS.rateLimited,
  AGENT_REASONS.agentCannotStart,
  AGENT_REASONS.permissionNotHeld,
  AGENT_REASONS.unknownProvider,
  AGENT_REASONS.branchInvalid,
  AGENT_REASONS.dailyBudget,
];

export function agentRoutes(deps: {
  service: AgentsService;
  db: Db;
  pubsub: PubSub;
  issues: IssuesService;
  wsRecheckMs: number;
  streams: Set<() => void>;
}): AnyRouteDef[] {
  const { service, db, pubsub } = deps;
  return [
    route({
      method: 'POST',
      url: '/api/projects/:id/sessions',
      summary: 'Start an agent session (its own identity with the delegated permissions, on its own branch)',
      tags,
      access: run,
      params: projectParams,
      body: createSessionBody,
      status: 201,
      response: sessionSchema,
      reasons: CREATE_REASONS,
      handler: async ({ params, body, actor, requirePrincipal }) =>
        sessionView(await service.create(actor, requirePrincipal(), params.id, body)),
    }),
    route({
      method: 'POST',
      url: '/api/projects/:id/issues/:number/sessions',
      summary: 'Start an agent session on an issue (the prompt is built from the issue)',
      tags,
      access: run,
      params: issueSessionParams,
      body: issueSessionBody,
      status: 201,
      response: sessionSchema,
      reasons: CREATE_REASONS,
      handler: async ({ params, body, actor, requirePrincipal }) => {
        const issue = await deps.issues.get(params.id, params.number);
        const prompt = [
          `Work on issue #${issue.number} of this project: ${issue.title}`,
          '',
          issue.body ?? '',
          '',
          'Commit your changes on the session branch, push it and open a merge request that refers to the issue.',
          body.prompt ? `\n${body.prompt}` : '',
        ].join('\n');
        return sessionView(
          await service.create(actor, requirePrincipal(), params.id, {
            ...body,
            prompt,
            issue_number: issue.number,
          }),
        );
      },
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/sessions',
      summary: 'List agent sessions (newest first)',
      tags,
      access: read,
      params: projectParams,
      query: listSessionsQuery,
      response: sessionPageSchema,
      handler: async ({ params, query }) => {
        let qb = db.selectFrom('agent_sessions').selectAll().where('project_id', '=', params.id);
        if (query.status) qb = qb.where('status', '=', query.status);
        if (query.user) qb = qb.where('user_id', '=', query.user);
        return pageByTime(qb, { time: 'created_at', id: 'id' }, query, (r) => sessionView(r));
      },
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/sessions/:sid',
      summary: 'An agent session: metadata, totals, what it produced, its messages (paginated by sequence)',
      tags,
      access: read,
      params: sessionParams,
      query: messagesQuery,
      response: sessionDetailSchema,
      handler: async ({ params, query }) => {
        const row = await service.get(params.id, params.sid);
        const rows = await messagesAfter(db, row.id, query.after, query.limit + 1);
        const more = rows.length > query.limit;
        const page = rows.slice(0, query.limit).map(streamedMessage);
        return {
          ...sessionView(row),
          produced: await service.links(row),
          messages: page,
          next_after: more ? (page[page.length - 1]?.seq ?? null) : null,
        };
      },
    }),
    route({
      method: 'POST',
      url: '/api/projects/:id/sessions/:sid/stop',
      summary: 'Stop a session (its process group or pod is killed; its identity retired)',
      tags,
      access: run,
      params: sessionParams,
      response: sessionSchema,
      reasons: [AGENT_REASONS.notRunning],
      handler: async ({ params, actor }) => {
        const row = await service.get(params.id, params.sid);
        return sessionView(await service.stop(actor, row, 'user', null));
      },
    }),
    route({
      method: 'POST',
      url: '/api/projects/:id/sessions/:sid/message',
      summary: 'Send a message to the running agent (written to its stdin, stored as role user)',
      tags,
      access: run,
      params: sessionParams,
      body: messageBody,
      status: 202,
      response: messageAcceptedSchema,
      reasons: [AGENT_REASONS.notRunning, AGENT_REASONS.noStdin],
      handler: async ({ params, body, actor }) => {
        const row = await service.get(params.id, params.sid);
        return { seq: await service.message(actor, row, body.content) };
      },
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/sessions/:sid/events',
      summary: 'The session’s events as server-sent events (replay after Last-Event-ID or ?after, then live)',
      tags,
      access: read,
      params: sessionParams,
      query: streamQuery,
      raw: true,
      produces: {
        contentType: 'text/event-stream',
        description: 'one `message` event per session event; id = seq',
      },
      handler: async ({ req, reply, params, query }) => {
        const row = await service.get(params.id, params.sid);
        const header = Number(req.headers['last-event-id']);
        const after = query.after ?? (Number.isInteger(header) && header >= 0 ? header : 0);
        const pending: string[] = [];
        let stream: ReturnType<typeof openEventStream> | null = null;
        const unsubscribe = await followSession({ db, pubsub }, row.id, after, (m) => {
          const text = `id: ${m.seq}\nevent: message\ndata: ${JSON.stringify(m)}\n\n`;
          if (stream) stream.write(text);
          else pending.push(text);
        });
        stream = openEventStream(req, reply, {
          heartbeatMs: 15_000,
          streams: deps.streams,
          onEnd: () => void unsubscribe(),
        });
        for (const t of pending) stream.write(t);
        return reply;
      },
    }),
    websocketRoute({
      url: '/api/projects/:id/sessions/:sid/ws',
      summary:
        'The session over a WebSocket: replays stored events after ?after, then live; accepts {"type":"message","content"}',
      tags,
      access: read,
      params: sessionParams,
      query: streamQuery,
      websocket: {
        recheckMs: deps.wsRecheckMs,
        open: async ({ socket, params, query, onClose, can, actor }) => {
          const row = await service.get(params.id, params.sid);
          const unsubscribe = await followSession({ db, pubsub }, row.id, query.after ?? 0, (m) => {
            if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ type: 'event', ...m }));
          });
          onClose(() => void unsubscribe());
          socket.on('message', (data) => {
            void (async () => {
              let msg: { type?: unknown; content?: unknown };
              try {
                msg = JSON.parse(String(data));
              } catch {
                socket.send(JSON.stringify({ type: 'error', message: 'not JSON' }));
                return;
              }
              if (
                msg.type !== 'message' ||
                typeof msg.content !== 'string' ||
                !msg.content ||
                msg.content.length > 100_000
              ) {
                socket.send(
                  JSON.stringify({ type: 'error', message: 'expected {"type":"message","content":"…"}' }),
                );
                return;
              }
              if (!(await can('agent:run', params.id))) {
                socket.send(
                  JSON.stringify({ type: 'error', message: 'agent:run is needed to talk to the agent' }),
                );
                return;
              }
              try {
                const current = await service.get(params.id, params.sid);
                const seq = await service.message(actor, current, msg.content);
                socket.send(JSON.stringify({ type: 'accepted', seq }));
              } catch (err) {
                socket.send(JSON.stringify({ type: 'error', message: (err as Error).message }));
              }
            })();
          });
        },
      },
    }),
    route({
      method: 'GET',
      url: '/api/agent-settings',
      summary: 'The platform’s agent settings (caps, claude command, command providers)',
      tags,
      access: { permission: 'admin:users' },
      response: settingsSchema,
      handler: async () => settingsView(await service.settings()),
    }),
    route({
      method: 'PATCH',
      url: '/api/agent-settings',
      summary: 'Change the platform’s agent settings (admins)',
      tags,
      access: { permission: 'admin:users' },
      body: settingsBody,
      response: settingsSchema,
      handler: async ({ body, actor }) => {
        const row = await db.transaction().execute(async (trx) => {
          const { providers, ...rest } = body;
          const updated = await trx
            .updateTable('agent_settings')
            .set({
              ...rest,
              ...(providers ? { providers: JSON.stringify(providers) } : {}),
              updated_at: new Date(),
            })
            .where('id', '=', true)
            .returningAll()
            .executeTakeFirstOrThrow();
          await writeAudit(trx, {
            actor,
            action: 'agent_settings.update',
            resourceType: 'agent_settings',
            detail: { fields: Object.keys(body) },
          });
          return updated;
        });
        return settingsView(row);
      },
    }),
    route({
      method: 'PUT',
      url: '/api/projects/:id/agent-settings',
      summary: 'The project’s cap on running sessions and its daily agent cost budget',
      tags,
      access: { permission: 'project:write', projectParam: 'id' },
      params: projectParams,
      body: projectSettingsBody,
      response: projectSettingsSchema,
      handler: async ({ params, body, actor }) =>
        db.transaction().execute(async (trx) => {
          const row = await trx
            .insertInto('agent_project_settings')
            .values({
              project_id: params.id,
              max_running: body.max_running ?? null,
              daily_cost_usd: body.daily_cost_usd ?? null,
            })
            .onConflict((oc) => oc.column('project_id').doUpdateSet({ ...body, updated_at: new Date() }))
            .returning(['max_running', 'daily_cost_usd'])
            .executeTakeFirstOrThrow();
          await writeAudit(trx, {
            actor,
            action: 'agent_project_settings.update',
            resourceType: 'project',
            resourceId: params.id,
            projectId: params.id,
            detail: body,
          });
          return row;
        }),
    }),
  ];
}

function settingsView(r: Awaited<ReturnType<AgentsService['settings']>>): z.output<typeof settingsSchema> {
  return {
    max_running_total: r.max_running_total,
    max_running_per_project: r.max_running_per_project,
    sessions_per_user_per_hour: r.sessions_per_user_per_hour,
    timeout_seconds: r.timeout_seconds,
    claude_command: r.claude_command,
    image: r.image,
    providers: r.providers as z.output<typeof settingsSchema>['providers'],
  };
}
