/**
 * Agent sessions of a project: the list and the start form (prompt, permissions to delegate,
 * limits), and a session's page: its live timeline over the WebSocket (replayed after the last
 * sequence number seen when the socket comes back), counters against the limits, the chat box,
 * the stop button and what it produced.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type S } from '../api/client';
import { useMe } from '../me';
import { navigate } from '../router';
import { ActionButton, Field, Form, Link, Time, useApi, View } from '../ui';
import { Badge, SESSION_ENDED } from './deploy-badges';
import type { ProjectProps } from './project';
import './deploy-sessions.css';

type Session = S['AgentSession'];
type Msg = S['AgentMessage'];
type Permission = NonNullable<Session['permissions']>[number];

/** The permissions a session may be delegated on one project (the global admin ones are not). */
const DELEGABLE = [
  'project:read',
  'project:write',
  'project:delete',
  'agent:run',
  'deploy:read',
  'deploy:promote',
  'observe:read',
  'observe:write',
  'alert:manage',
  'secret:read',
  'secret:write',
] as const;

export function Sessions(props: ProjectProps) {
  return props.item ? <SessionDetail {...props} sid={props.item} /> : <SessionList {...props} />;
}

const shortId = (id: string) => id.slice(0, 8);
const usd = (n: number) => `$${n.toFixed(4)}`;

function SessionList(props: ProjectProps) {
  const { project, base } = props;
  const { me } = useMe();
  const list = useApi(
    () => api('get', '/api/projects/{id}/sessions', { path: { id: project.id }, query: { limit: 50 } }),
    [project.id],
  );
  const live = list.data?.items.some((s) => !SESSION_ENDED.includes(s.status));
  useEffect(() => {
    if (!live) return;
    const t = setInterval(list.reload, 3000);
    return () => clearInterval(t);
  }, [live, list.reload]);
  return (
    <>
      <StartSession {...props} />
      <section aria-labelledby="sessions-title">
        <h2 id="sessions-title">Sessions</h2>
        <View
          state={list}
          empty={(d) => d.items.length === 0}
          emptyText="No agent sessions yet: start one with a prompt above."
        >
          {(d) => (
            <div class="scroll-x">
              <table class="table" aria-label="Agent sessions">
                <thead>
                  <tr>
                    <th scope="col">Session</th>
                    <th scope="col">Status</th>
                    <th scope="col">Started by</th>
                    <th scope="col">Branch</th>
                    <th scope="col">Cost</th>
                    <th scope="col">Tokens</th>
                    <th scope="col">Created</th>
                  </tr>
                </thead>
                <tbody>
                  {d.items.map((s) => (
                    <tr key={s.id}>
                      <td>
                        <Link href={`${base}/sessions/${s.id}`}>Session {shortId(s.id)}</Link>
                        {s.issue_number ? <span class="muted"> · issue #{s.issue_number}</span> : null}
                      </td>
                      <td>
                        <Badge s={s.status} />
                        {s.stop_reason ? <span class="muted small"> {s.stop_reason}</span> : null}
                      </td>
                      <td>{s.user_id === me?.user.id ? 'you' : <code>{shortId(s.user_id)}</code>}</td>
                      <td>{s.branch ? <code>{s.branch}</code> : '—'}</td>
                      <td>{usd(s.totals.cost_usd)}</td>
                      <td>{s.totals.input_tokens + s.totals.output_tokens}</td>
                      <td>
                        <Time at={s.created_at} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </View>
      </section>
    </>
  );
}

function positive(label: string, v: string, integer: boolean): number | undefined {
  if (!v.trim()) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
    throw new Error(`${label}: a positive ${integer ? 'whole number' : 'number'}, or empty for no limit`);
  return n;
}

function StartSession({ project, base }: ProjectProps) {
  const [prompt, setPrompt] = useState('');
  const [branch, setBranch] = useState('');
  const [provider, setProvider] = useState('');
  const [perms, setPerms] = useState<Set<Permission>>(new Set(['project:read', 'project:write']));
  const [cost, setCost] = useState('');
  const [tokens, setTokens] = useState('');
  const [turns, setTurns] = useState('');
  const [wall, setWall] = useState('');
  return (
    <section class="card" aria-labelledby="start-title">
      <h2 id="start-title">Start an agent session</h2>
      <Form
        label="Start an agent session"
        submit="Start session"
        onSubmit={async () => {
          const limits = {
            max_cost_usd: positive('Max cost', cost, false),
            max_tokens: positive('Max tokens', tokens, true),
            max_turns: positive('Max turns', turns, true),
            max_wall_seconds: positive('Max wall-clock seconds', wall, true),
          };
          const s = await api('post', '/api/projects/{id}/sessions', {
            path: { id: project.id },
            body: {
              prompt,
              permissions: DELEGABLE.filter((p) => perms.has(p)),
              ...(branch.trim() ? { branch: branch.trim() } : {}),
              ...(provider.trim() ? { provider: provider.trim() } : {}),
              ...(Object.values(limits).some((v) => v !== undefined)
                ? {
                    limits: Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined)),
                  }
                : {}),
            },
          });
          navigate(`${base}/sessions/${s.id}`);
        }}
      >
        <Field label="Prompt" value={prompt} onInput={setPrompt} multiline required />
        <fieldset class="perms">
          <legend>Permissions to delegate (on this project, for this session only)</legend>
          {DELEGABLE.map((p) => (
            <label key={p}>
              <input
                type="checkbox"
                checked={perms.has(p)}
                onChange={(e) => {
                  const next = new Set(perms);
                  if (e.currentTarget.checked) next.add(p);
                  else next.delete(p);
                  setPerms(next);
                }}
              />
              {p}
            </label>
          ))}
        </fieldset>
        <details>
          <summary>Limits, branch and provider</summary>
          <div class="counters">
            <Field label="Max cost (USD)" value={cost} onInput={setCost} placeholder="no limit" />
            <Field label="Max tokens" value={tokens} onInput={setTokens} placeholder="no limit" />
            <Field label="Max turns" value={turns} onInput={setTurns} placeholder="no limit" />
            <Field
              label="Max wall-clock seconds"
              value={wall}
              onInput={setWall}
              placeholder="platform timeout"
            />
            <Field label="Branch" value={branch} onInput={setBranch} placeholder="agent/<session>" />
            <Field label="Provider" value={provider} onInput={setProvider} placeholder="claude-code" />
          </div>
        </details>
      </Form>
    </section>
  );
}

/** Events already received per session: coming back to a session replays only what is newer. */
const seen = new Map<string, Msg[]>();

type Conn = 'connecting' | 'live' | 'reconnecting';

function useSessionEvents(projectId: string, sid: string, enabled: boolean, onEvent: (m: Msg) => void) {
  const events = useRef<Msg[]>(seen.get(sid) ?? []);
  const [, setCount] = useState(events.current.length);
  const [conn, setConn] = useState<Conn>('connecting');
  const [error, setError] = useState<string | undefined>();
  const handler = useRef(onEvent);
  handler.current = onEvent;
  useEffect(() => {
    if (!enabled) return;
    events.current = seen.get(sid) ?? [];
    seen.set(sid, events.current);
    let ws: WebSocket | null = null;
    let stopped = false;
    let retry = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let frame = 0;
    const flush = () => {
      frame = 0;
      setCount(events.current.length);
    };
    const connect = () => {
      const last = events.current.at(-1)?.seq ?? 0;
      const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
      ws = new WebSocket(
        `${proto}//${location.host}/api/projects/${projectId}/sessions/${sid}/ws?after=${last}`,
      );
      ws.onopen = () => {
        retry = 0;
        setConn('live');
      };
      ws.onmessage = (e) => {
        let m: { type?: string; message?: string } & Partial<Msg>;
        try {
          m = JSON.parse(String(e.data));
        } catch {
          return;
        }
        if (m.type === 'event' && typeof m.seq === 'number') {
          const { type: _t, ...msg } = m;
          const ev = msg as Msg;
          if (ev.seq <= (events.current.at(-1)?.seq ?? 0)) return;
          events.current.push(ev);
          handler.current(ev);
          if (!frame) frame = requestAnimationFrame(flush);
        } else if (m.type === 'error' && m.message) setError(m.message);
      };
      ws.onclose = () => {
        if (stopped) return;
        setConn('reconnecting');
        timer = setTimeout(connect, Math.min(10_000, 500 * 2 ** retry++));
      };
    };
    connect();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (frame) cancelAnimationFrame(frame);
      ws?.close();
    };
  }, [projectId, sid, enabled]);
  return { events: events.current, conn, error };
}

function SessionDetail({ project, base, sid }: ProjectProps & { sid: string }) {
  const path = { id: project.id, sid };
  const meta = useApi(
    () => api('get', '/api/projects/{id}/sessions/{sid}', { path, query: { limit: 1 } }),
    [project.id, sid],
  );
  const [usage, setUsage] = useState<Record<string, number> | undefined>();
  const reloadSoon = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const { events, conn, error } = useSessionEvents(project.id, sid, meta.data !== undefined, (m) => {
    if (m.kind === 'usage') setUsage(m.metadata as Record<string, number>);
    // A milestone is a change of state (started, an ending, a push): the metadata follows.
    if (m.kind === 'milestone' || m.kind === 'completed') {
      if (reloadSoon.current) clearTimeout(reloadSoon.current);
      reloadSoon.current = setTimeout(meta.reload, 300);
    }
  });
  useEffect(() => () => reloadSoon.current && clearTimeout(reloadSoon.current), []);
  const s = meta.data;
  const running = s ? !SESSION_ENDED.includes(s.status) : false;
  // While it runs, the status is re-read now and then (an ending by the reaper, the cap).
  useEffect(() => {
    if (!running) return;
    const t = setInterval(meta.reload, 5000);
    return () => clearInterval(t);
  }, [running, meta.reload]);
  return (
    <>
      <p>
        <Link href={`${base}/sessions`}>← All sessions</Link>
      </p>
      <View state={meta}>
        {(s) => (
          <article aria-labelledby="session-title">
            <h2 id="session-title">
              Session {shortId(s.id)} <Badge s={s.status} />
              {s.stop_reason ? <span class="muted small"> stopped: {s.stop_reason}</span> : null}
            </h2>
            <dl class="facts">
              <div>
                <dt>Status</dt>
                <dd data-testid="session-status">
                  {s.status}
                  {s.stop_reason ? ` (${s.stop_reason})` : ''}
                </dd>
              </div>
              <div>
                <dt>Provider</dt>
                <dd>{s.provider}</dd>
              </div>
              <div>
                <dt>Branch</dt>
                <dd>{s.branch ? <code>{s.branch}</code> : '—'}</dd>
              </div>
              <div>
                <dt>Delegated permissions</dt>
                <dd>{s.permissions.join(', ') || '—'}</dd>
              </div>
              <div>
                <dt>Created</dt>
                <dd>
                  <Time at={s.created_at} />
                </dd>
              </div>
              <div>
                <dt>Finished</dt>
                <dd>
                  <Time at={s.finished_at} />
                </dd>
              </div>
              {s.issue_number ? (
                <div>
                  <dt>Issue</dt>
                  <dd>
                    <Link href={`${base}/issues/${s.issue_number}`}>#{s.issue_number}</Link>
                  </dd>
                </div>
              ) : null}
            </dl>
            {s.error ? (
              <div class="notice error" role="alert">
                {s.error}
              </div>
            ) : null}
            <Counters s={s} usage={usage} />
            <div class="actions">
              {running ? (
                <ActionButton
                  class="danger"
                  run={async () => {
                    await api('post', '/api/projects/{id}/sessions/{sid}/stop', { path });
                    meta.reload();
                  }}
                >
                  Stop session
                </ActionButton>
              ) : null}
              <Link class="button" href={`${base}/observe/timeline/${s.id}`}>
                Session timeline in Observe
              </Link>
            </div>
            <Produced s={s} base={base} />
          </article>
        )}
      </View>
      {s ? (
        <section aria-labelledby="timeline-title">
          <h2 id="timeline-title">Timeline</h2>
          <p class="muted" role="status" data-testid="stream-state">
            {conn === 'live'
              ? running
                ? 'Live: new events appear as the agent works.'
                : `The session has ended (${events.length} events).`
              : conn === 'reconnecting'
                ? 'The stream was interrupted; reconnecting from the last event seen…'
                : 'Connecting…'}
          </p>
          {error ? (
            <div class="notice error" role="alert">
              {error}
            </div>
          ) : null}
          <Timeline events={events} />
          {running ? <Chat projectId={project.id} sid={sid} /> : null}
        </section>
      ) : null}
    </>
  );
}

function Counter(props: { label: string; value: number; max: number | undefined; text: string }) {
  return (
    <div class="counter">
      <div class="small muted">{props.label}</div>
      <div>
        {props.text}
        {props.max !== undefined ? <span class="muted"> of {props.max}</span> : null}
      </div>
      {props.max !== undefined ? (
        <progress
          value={Math.min(props.value, props.max)}
          max={props.max}
          aria-label={`${props.label}: ${props.text} of ${props.max}`}
        />
      ) : null}
    </div>
  );
}

function Counters({ s, usage }: { s: Session; usage: Record<string, number> | undefined }) {
  const t = s.totals;
  const pick = (k: keyof Session['totals'], u: string) => Math.max(t[k], Number(usage?.[u] ?? 0));
  const cost = pick('cost_usd', 'cost_usd');
  const tokens = pick('input_tokens', 'input_tokens') + pick('output_tokens', 'output_tokens');
  const turns = pick('num_turns', 'num_turns');
  const start = s.started_at ? new Date(s.started_at).getTime() : undefined;
  const end = s.finished_at ? new Date(s.finished_at).getTime() : Date.now();
  const wall = start ? Math.max(0, Math.round((end - start) / 1000)) : 0;
  const l = s.limits;
  return (
    <section class="counters" aria-label="Usage against the limits" data-testid="counters">
      <Counter label="Cost" value={cost} max={l.max_cost_usd} text={usd(cost)} />
      <Counter label="Tokens (in + out)" value={tokens} max={l.max_tokens} text={String(tokens)} />
      <Counter label="Turns" value={turns} max={l.max_turns} text={String(turns)} />
      <Counter label="Wall-clock seconds" value={wall} max={l.max_wall_seconds} text={String(wall)} />
    </section>
  );
}

function Produced({ s, base }: { s: S['AgentSessionDetail']; base: string }) {
  const p = s.produced;
  if (p.commits.length === 0 && p.merge_requests.length === 0 && p.pipelines.length === 0)
    return <p class="muted">No commits, merge requests or pipelines from this session yet.</p>;
  return (
    <section aria-labelledby="produced-title">
      <h3 id="produced-title">What it produced</h3>
      <ul class="list compact">
        {p.commits.map((c) => (
          <li key={c}>
            Commit <Link href={`${base}/commit/${c}`}>{c.slice(0, 10)}</Link>
          </li>
        ))}
        {p.merge_requests.map((n) => (
          <li key={`mr${n}`}>
            Merge request <Link href={`${base}/merge-requests/${n}`}>!{n}</Link>
          </li>
        ))}
        {p.pipelines.map((x) => (
          <li key={x.id}>
            Pipeline{' '}
            <Link href={`${base}/pipelines/${x.number ?? x.id}`}>
              {x.number !== null ? `#${x.number}` : shortId(x.id)}
            </Link>{' '}
            <Badge s={x.status} />
          </li>
        ))}
      </ul>
    </section>
  );
}

const str = (v: unknown) => (typeof v === 'string' ? v : v === undefined ? '' : JSON.stringify(v, null, 2));

function Timeline({ events }: { events: Msg[] }) {
  const results = new Map<string, Msg>();
  for (const e of events)
    if (e.kind === 'tool_result' && typeof e.metadata.tool_use_id === 'string' && e.metadata.tool_use_id)
      results.set(e.metadata.tool_use_id, e);
  const calls = new Set(events.filter((e) => e.kind === 'tool_call').map((e) => str(e.metadata.tool_use_id)));
  const box = useRef<HTMLOListElement>(null);
  // Follow the newest event unless the reader scrolled up.
  useEffect(() => {
    const el = box.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 120) el.scrollTop = el.scrollHeight;
  }, [events.length]);
  if (events.length === 0) return <p class="empty">No events yet.</p>;
  return (
    <div role="log" aria-label="Session timeline" aria-live="polite">
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be reachable by keyboard (axe scrollable-region-focusable) */}
      <ol class="timeline" ref={box} tabIndex={0}>
        {events.map((e) => {
          if (e.kind === 'tool_result' && calls.has(str(e.metadata.tool_use_id))) return null;
          if (e.kind === 'text' && e.role === 'user' && e.metadata.echo) return null;
          return <Event key={e.seq} e={e} result={results.get(str(e.metadata.tool_use_id))} />;
        })}
      </ol>
    </div>
  );
}

function Head({ e, what }: { e: Msg; what: string }) {
  return (
    <div class="ev-head">
      #{e.seq} · {what} · <Time at={e.created_at} />
    </div>
  );
}

function Event({ e, result }: { e: Msg; result: Msg | undefined }) {
  switch (e.kind) {
    case 'thinking':
      return (
        <li class="ev-thinking">
          <details>
            <summary>Thinking</summary>
            <p class="ev-body muted">{e.content}</p>
          </details>
        </li>
      );
    case 'tool_call': {
      const failed = result?.metadata.is_error === true;
      return (
        <li class={`ev-tool ${failed ? 'ev-tool-error' : ''}`}>
          <details>
            <summary>
              Tool call: {e.content}
              {result ? (failed ? ' — failed' : '') : ' — running…'}
            </summary>
            <div class="small muted">Input</div>
            <pre>{str(e.metadata.input)}</pre>
            {result ? (
              <>
                <div class="small muted">Result{failed ? ' (error)' : ''}</div>
                <pre>{result.content}</pre>
              </>
            ) : null}
          </details>
        </li>
      );
    }
    case 'tool_result':
      return (
        <li class={e.metadata.is_error ? 'ev-tool-error' : ''}>
          <Head e={e} what={`tool result${e.metadata.tool ? ` of ${str(e.metadata.tool)}` : ''}`} />
          <pre>{e.content}</pre>
        </li>
      );
    case 'milestone':
      return (
        <li class="ev-milestone">
          <Head e={e} what="milestone" />
          <p class="ev-body">◆ {e.content}</p>
        </li>
      );
    case 'usage':
      return (
        <li class="muted">
          <Head e={e} what="usage" />
          <p class="ev-body">{e.content}</p>
        </li>
      );
    case 'completed':
      return (
        <li class="ev-milestone">
          <Head e={e} what="turn completed" />
          <p class="ev-body">{e.content}</p>
        </li>
      );
    case 'error':
      return (
        <li class="ev-error">
          <Head e={e} what="error" />
          <p class="ev-body">{e.content}</p>
        </li>
      );
    case 'init':
      return (
        <li>
          <Head e={e} what="init" />
          <p class="ev-body">{e.content}</p>
        </li>
      );
    default: {
      const who =
        e.role === 'user'
          ? `message from ${str(e.metadata.from) || 'you'}`
          : e.role === 'assistant'
            ? 'agent'
            : e.role;
      return (
        <li class={e.role === 'user' ? 'ev-user' : e.role === 'system' ? 'muted' : ''}>
          <Head e={e} what={who} />
          <p class="ev-body">{e.content}</p>
        </li>
      );
    }
  }
}

function Chat({ projectId, sid }: { projectId: string; sid: string }) {
  const [text, setText] = useState('');
  return (
    <Form
      label="Message the agent"
      class="form chat"
      submit="Send"
      onSubmit={async () => {
        await api('post', '/api/projects/{id}/sessions/{sid}/message', {
          path: { id: projectId, sid },
          body: { content: text },
        });
        setText('');
      }}
    >
      <Field label="Message to the agent" value={text} onInput={setText} multiline required />
    </Form>
  );
}
