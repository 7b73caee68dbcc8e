/**
 * Alert rules: the list with an enable toggle, the editor (checked here, then by the server whose
 * query errors are shown at their position), the event history and silences (mute until a time).
 */
import { useState } from 'preact/hooks';
import { api, type S } from '../../api/client';
import { navigate } from '../../router';
import { ActionButton, ErrorBox, Field, Link, Select, Time, useApi, View } from '../../ui';
import { type ObserveContext, QueryErrorView } from './shared';

type Rule = S['AlertRule'];

const STATE_CLASS: Record<string, string> = { ok: 'ok', pending: 'wait', firing: 'bad', resolved: 'ok' };
function StateBadge({ state }: { state: string }) {
  return <span class={`badge ${STATE_CLASS[state] ?? 'off'}`}>{state}</span>;
}

export function Alerts(props: ObserveContext) {
  if (props.item === 'new') return <RuleEditor {...props} />;
  if (props.item) return <RulePage {...props} id={props.item} />;
  return <RuleList {...props} />;
}

function RuleList(props: ObserveContext) {
  const rules = useApi(
    () =>
      api('get', '/api/observe/alerts', {
        query: { ...(props.project ? { project_id: props.project.id } : {}), limit: 100 } as never,
      }),
    [props.project?.id],
  );
  return (
    <section aria-labelledby="alerts-h">
      <div class="section-head">
        <h2 id="alerts-h">Alert rules{props.project ? '' : ' (platform-wide)'}</h2>
        <Link class="button primary" href={`${props.base}/alerts/new`}>
          New rule
        </Link>
      </div>
      <View state={rules} empty={(d) => d.items.length === 0} emptyText="No alert rules yet.">
        {(d) => (
          <table class="table" aria-label="Alert rules">
            <thead>
              <tr>
                <th scope="col">Rule</th>
                <th scope="col">State</th>
                <th scope="col">Query</th>
                <th scope="col">Last value</th>
                <th scope="col">Evaluated</th>
                <th scope="col">Silenced until</th>
                <th scope="col">Enabled</th>
              </tr>
            </thead>
            <tbody>
              {d.items.map((r) => (
                <tr key={r.id}>
                  <td>
                    <Link href={`${props.base}/alerts/${r.id}`}>{r.name}</Link>{' '}
                    <span class="muted small">{r.severity}</span>
                  </td>
                  <td>
                    <StateBadge state={r.state} />
                  </td>
                  <td class="mono small">{r.query}</td>
                  <td class="mono">{r.last_value ?? '—'}</td>
                  <td>
                    <Time at={r.last_evaluated_at} />
                  </td>
                  <td>
                    <Time at={r.silenced_until} />
                  </td>
                  <td>
                    <EnableToggle rule={r} onDone={rules.reload} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </View>
    </section>
  );
}

function EnableToggle({ rule, onDone }: { rule: Rule; onDone: () => void }) {
  const [busy, setBusy] = useState(false);
  const [on, setOn] = useState(rule.is_enabled);
  const [error, setError] = useState<Error | undefined>();
  return (
    <>
      <input
        type="checkbox"
        aria-label={`Enabled: ${rule.name}`}
        checked={on}
        disabled={busy}
        onChange={async (e) => {
          const want = e.currentTarget.checked;
          setOn(want);
          setBusy(true);
          setError(undefined);
          try {
            await api('patch', '/api/observe/alerts/{id}', {
              path: { id: rule.id },
              body: { is_enabled: want },
            });
            onDone();
          } catch (err) {
            setOn(!want);
            setError(err as Error);
          } finally {
            setBusy(false);
          }
        }}
      />
      {error ? <ErrorBox error={error} /> : null}
    </>
  );
}

function RulePage(props: ObserveContext & { id: string }) {
  const rule = useApi(() => api('get', '/api/observe/alerts/{id}', { path: { id: props.id } }), [props.id]);
  const events = useApi(
    () =>
      api('get', '/api/observe/alerts/{id}/events', {
        path: { id: props.id },
        query: { limit: 100 } as never,
      }),
    [props.id],
  );
  const reload = () => {
    rule.reload();
    events.reload();
  };
  return (
    <section aria-labelledby="rule-h">
      <p class="crumbs">
        <Link href={`${props.base}/alerts`}>Alert rules</Link> /
      </p>
      <View state={rule}>
        {(r) => (
          <>
            <div class="section-head">
              <h2 id="rule-h">Alert rule {r.name}</h2>
              <StateBadge state={r.state} />
              <button type="button" onClick={reload}>
                Refresh
              </button>
            </div>
            <p class="muted">
              Last evaluated <Time at={r.last_evaluated_at} />; value {r.last_value ?? '—'}
              {r.threshold !== null ? ` (threshold ${r.threshold})` : ''}
              {r.pending_since ? (
                <>
                  ; pending since <Time at={r.pending_since} />
                </>
              ) : null}
            </p>
            {r.last_error ? <ErrorBox error={`Last evaluation failed: ${r.last_error}`} /> : null}
            <SilenceBox rule={r} onDone={reload} />
            <h3>History</h3>
            <View state={events} empty={(d) => d.items.length === 0} emptyText="This rule has not fired yet.">
              {(d) => (
                <table class="table" aria-label="Alert events">
                  <thead>
                    <tr>
                      <th scope="col">Status</th>
                      <th scope="col">Value</th>
                      <th scope="col">Message</th>
                      <th scope="col">Episode started</th>
                      <th scope="col">At</th>
                    </tr>
                  </thead>
                  <tbody>
                    {d.items.map((e) => (
                      <tr key={e.id}>
                        <td>
                          <StateBadge state={e.status} />
                          {e.silenced ? <span class="muted small"> silenced</span> : null}
                        </td>
                        <td class="mono">{e.value ?? '—'}</td>
                        <td>{e.message}</td>
                        <td>
                          <Time at={e.started_at} />
                        </td>
                        <td>
                          <Time at={e.created_at} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </View>
            <h3>Edit</h3>
            <RuleEditor {...props} rule={r} onSaved={reload} />
            <div class="danger-zone">
              <ActionButton
                class="danger"
                confirm={`Delete the rule ${r.name} and its events?`}
                run={async () => {
                  await api('delete', '/api/observe/alerts/{id}', { path: { id: r.id } });
                  navigate(`${props.base}/alerts`);
                }}
              >
                Delete rule
              </ActionButton>
            </div>
          </>
        )}
      </View>
    </section>
  );
}

function localInput(d: Date): string {
  const off = d.getTimezoneOffset() * 60_000;
  return new Date(d.getTime() - off).toISOString().slice(0, 16);
}

function SilenceBox({ rule, onDone }: { rule: Rule; onDone: () => void }) {
  const [until, setUntil] = useState(() => localInput(new Date(Date.now() + 3600_000)));
  const [comment, setComment] = useState('');
  const silenced = rule.silenced_until && Date.parse(rule.silenced_until) > Date.now();
  return (
    <div class="card silence">
      <h3>Silence</h3>
      {silenced ? (
        <p>
          Muted until <Time at={rule.silenced_until} /> (
          {new Date(rule.silenced_until as string).toLocaleString()})
          {rule.silence_comment ? ` — ${rule.silence_comment}` : ''}.{' '}
          <ActionButton
            run={async () => {
              await api('delete', '/api/observe/alerts/{id}/silence', { path: { id: rule.id } });
              onDone();
            }}
          >
            End silence
          </ActionButton>
        </p>
      ) : (
        <p class="muted">Notifications are on. A silenced rule is still evaluated; nobody is told.</p>
      )}
      <div class="filters">
        <Field label="Mute until" type="datetime-local" value={until} onInput={setUntil} />
        <Field label="Comment" value={comment} onInput={setComment} />
        <div class="actions">
          <ActionButton
            run={async () => {
              const d = new Date(until);
              if (Number.isNaN(d.getTime())) throw new Error('choose a time to mute until');
              await api('put', '/api/observe/alerts/{id}/silence', {
                path: { id: rule.id },
                body: { until: d.toISOString(), ...(comment ? { comment } : {}) },
              });
              onDone();
            }}
          >
            Silence
          </ActionButton>
        </div>
      </div>
    </div>
  );
}

const SEVERITIES: [string, string][] = [
  ['info', 'info'],
  ['warning', 'warning'],
  ['critical', 'critical'],
];

/** Checks done before the server sees the rule (the query language itself is checked by the server). */
function validate(name: string, query: string, forSeconds: string, resolveSeconds: string): string[] {
  const problems: string[] = [];
  if (!name.trim()) problems.push('The name is required.');
  if (!query.trim()) problems.push('The query is required, e.g. count(logs{level="error"}[10m]) > 5.');
  for (const [label, v] of [
    ['For', forSeconds],
    ['Resolve after', resolveSeconds],
  ] as const)
    if (v !== '' && !(Number.isInteger(Number(v)) && Number(v) >= 0 && Number(v) <= 604800))
      problems.push(`${label} must be a whole number of seconds between 0 and 604800.`);
  return problems;
}

function RuleEditor(props: ObserveContext & { rule?: Rule; onSaved?: () => void }) {
  const r = props.rule;
  const [name, setName] = useState(r?.name ?? '');
  const [description, setDescription] = useState(r?.description ?? '');
  const [query, setQuery] = useState(r?.query ?? '');
  const [forSeconds, setFor] = useState(r ? String(r.for_seconds) : '0');
  const [resolveSeconds, setResolve] = useState(r ? String(r.resolve_seconds) : '60');
  const [severity, setSeverity] = useState<string>(r?.severity ?? 'warning');
  const [enabled, setEnabled] = useState(r?.is_enabled ?? true);
  const [problems, setProblems] = useState<string[]>([]);
  const [error, setError] = useState<Error | undefined>();
  const [submitted, setSubmitted] = useState('');
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState(false);
  const form = (
    <form
      class="form rule-form"
      aria-label={r ? 'Edit alert rule' : 'New alert rule'}
      noValidate
      onSubmit={async (e) => {
        e.preventDefault();
        setSaved(false);
        setError(undefined);
        const p = validate(name, query, forSeconds, resolveSeconds);
        setProblems(p);
        if (p.length) return;
        setBusy(true);
        setSubmitted(query);
        const body = {
          name: name.trim(),
          description,
          query,
          for_seconds: Number(forSeconds || 0),
          resolve_seconds: Number(resolveSeconds || 60),
          severity: severity as Rule['severity'],
          is_enabled: enabled,
        };
        try {
          if (r) {
            await api('patch', '/api/observe/alerts/{id}', { path: { id: r.id }, body });
            setSaved(true);
            props.onSaved?.();
          } else {
            const created = await api('post', '/api/observe/alerts', {
              body: { ...body, ...(props.project ? { project_id: props.project.id } : {}) },
            });
            navigate(`${props.base}/alerts/${created.id}`);
          }
        } catch (err) {
          setError(err as Error);
        } finally {
          setBusy(false);
        }
      }}
    >
      <Field label="Name" value={name} onInput={setName} required />
      <div class="field">
        <label for="rule-query">Query</label>
        <textarea
          id="rule-query"
          class="mono"
          rows={3}
          required
          value={query}
          aria-describedby="rule-query-hint"
          aria-invalid={queryInvalid(error) || undefined}
          onInput={(e) => setQuery(e.currentTarget.value)}
        />
        <small id="rule-query-hint" class="muted">
          e.g.{' '}
          <code>
            count(logs{'{'}level="error"{'}'}[10m]) &gt; 5
          </code>{' '}
          or{' '}
          <code>
            avg(http_server_duration_ms{'{'}service="api"{'}'}[5m]) &gt; 300
          </code>{' '}
          (docs/observe-query.md)
        </small>
      </div>
      <Field label="Description" value={description} onInput={setDescription} multiline />
      <div class="filters">
        <Field
          label="For (seconds)"
          type="number"
          value={forSeconds}
          onInput={setFor}
          hint="the condition must hold this long"
        />
        <Field
          label="Resolve after (seconds)"
          type="number"
          value={resolveSeconds}
          onInput={setResolve}
          hint="clear this long before resolving"
        />
        <Select label="Severity" value={severity} onChange={setSeverity} options={SEVERITIES} />
        <label class="check">
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} />{' '}
          Enabled
        </label>
      </div>
      {problems.length ? (
        <div class="notice error" role="alert">
          <ul>
            {problems.map((p) => (
              <li key={p}>{p}</li>
            ))}
          </ul>
        </div>
      ) : null}
      {error ? <QueryErrorView error={error} query={submitted} /> : null}
      {saved ? (
        <p role="status" class="ok-text">
          Saved.
        </p>
      ) : null}
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Working…' : 'Save rule'}
        </button>
      </div>
    </form>
  );
  if (r) return form;
  return (
    <section aria-labelledby="new-rule-h">
      <p class="crumbs">
        <Link href={`${props.base}/alerts`}>Alert rules</Link> /
      </p>
      <h2 id="new-rule-h">New alert rule{props.project ? '' : ' (platform-wide)'}</h2>
      {form}
    </section>
  );
}

function queryInvalid(error: Error | undefined): boolean {
  return !!error && (error as { reason?: string }).reason === 'observe.invalid_query';
}
