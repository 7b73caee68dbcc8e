import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type S } from '../api/client';
import { LogView } from '../LogView';
import { href, navigate, useLocation } from '../router';
import { ActionButton, duration, Field, Form, Link, Status, Time, useApi, View } from '../ui';
import type { ProjectProps } from './project';

const FINISHED = ['success', 'failed', 'cancelled', 'skipped', 'error'];

export function PipelineList({ project, base }: ProjectProps) {
  const list = useApi(
    () => api('get', '/api/projects/{id}/pipelines', { path: { id: project.id }, query: { limit: 50 } }),
    [project.id],
  );
  const running = list.data?.items.some((p) => !FINISHED.includes(p.status));
  useEffect(() => {
    if (!running) return;
    const t = setInterval(list.reload, 3000);
    return () => clearInterval(t);
  }, [running, list.reload]);
  return (
    <>
      <RunPipeline project={project} base={base} />
      <View
        state={list}
        empty={(d) => d.items.length === 0}
        emptyText="No pipelines yet: push a .platform.yaml to run one."
      >
        {(d) => (
          <table class="table">
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Status</th>
                <th scope="col">Ref</th>
                <th scope="col">Commit</th>
                <th scope="col">Trigger</th>
                <th scope="col">Duration</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {d.items.map((p) => (
                <tr key={p.id}>
                  <td>
                    <Link href={`${base}/pipelines/${p.number}`}>#{p.number}</Link>
                  </td>
                  <td>
                    <Status s={p.status} />
                  </td>
                  <td>{p.ref_name}</td>
                  <td>
                    <code>{p.commit_sha.slice(0, 10)}</code> {p.commit_message?.split('\n')[0]}
                  </td>
                  <td>{p.trigger}</td>
                  <td>{duration(p.duration_ms)}</td>
                  <td>
                    <Time at={p.created_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </View>
    </>
  );
}

function RunPipeline({ project, base }: ProjectProps) {
  const [ref, setRef] = useState(project.default_branch);
  return (
    <Form
      label="Run a pipeline"
      class="form inline"
      submit="Run pipeline"
      onSubmit={async () => {
        const p = await api('post', '/api/projects/{id}/pipelines', {
          path: { id: project.id },
          body: { git_ref: ref },
        });
        navigate(`${base}/pipelines/${p.number}`);
      }}
    >
      <Field label="Branch or tag to run" value={ref} onInput={setRef} required />
    </Form>
  );
}

/** Steps in columns by depth of their `depends_on` chain: the DAG drawn left to right. */
function levels(steps: S['PipelineStep'][]): S['PipelineStep'][][] {
  const depth = new Map<string, number>();
  const byName = new Map(steps.map((s) => [s.name, s]));
  const visit = (s: S['PipelineStep'], seen: Set<string>): number => {
    if (depth.has(s.name)) return depth.get(s.name)!;
    if (seen.has(s.name)) return 0;
    seen.add(s.name);
    const d =
      Math.max(-1, ...s.depends_on.map((n) => (byName.get(n) ? visit(byName.get(n)!, seen) : -1))) + 1;
    depth.set(s.name, d);
    return d;
  };
  for (const s of steps) visit(s, new Set());
  const cols: S['PipelineStep'][][] = [];
  for (const s of steps) {
    const d = depth.get(s.name)!;
    cols[d] = [...(cols[d] ?? []), s];
  }
  return cols;
}

export function PipelineDetail({ project, base, item }: ProjectProps) {
  const loc = useLocation();
  const path = { id: project.id, pid: item! };
  const pipeline = useApi(
    () => api('get', '/api/projects/{id}/pipelines/{pid}', { path }),
    [project.id, item],
  );
  const artifacts = useApi(
    () => api('get', '/api/projects/{id}/pipelines/{pid}/artifacts', { path }),
    [project.id, item],
  );
  const p = pipeline.data;
  const live = p && !FINISHED.includes(p.status);
  useEffect(() => {
    if (!live) return;
    const t = setInterval(pipeline.reload, 2000);
    return () => clearInterval(t);
  }, [live, pipeline.reload]);
  useEffect(() => {
    if (p && !live) artifacts.reload();
  }, [p?.status]);
  const selected = loc.query.get('step') ?? p?.steps[0]?.name;
  const step = p?.steps.find((s) => s.name === selected);
  return (
    <View state={pipeline}>
      {(p) => (
        <article>
          <h2>
            Pipeline #{p.number} <Status s={p.status} />
          </h2>
          <p class="muted">
            {p.ref_name} · <code>{p.commit_sha.slice(0, 10)}</code> {p.commit_message?.split('\n')[0]} ·{' '}
            {p.trigger} · <Time at={p.created_at} /> · {duration(p.duration_ms)}
          </p>
          {p.error ? <div class="notice error">{p.error}</div> : null}
          <div class="actions">
            {!FINISHED.includes(p.status) ? (
              <ActionButton
                confirm="Cancel this pipeline?"
                run={async () => {
                  await api('post', '/api/projects/{id}/pipelines/{pid}/cancel', { path });
                  pipeline.reload();
                }}
              >
                Cancel
              </ActionButton>
            ) : (
              <ActionButton
                run={async () => {
                  const again = await api('post', '/api/projects/{id}/pipelines/{pid}/retry', { path });
                  navigate(`${base}/pipelines/${again.number}`);
                }}
              >
                Retry
              </ActionButton>
            )}
          </div>
          <nav class="dag" aria-label="Steps">
            {levels(p.steps).map((col, i) => (
              <ul class="dag-col" key={i}>
                {col.map((s) => (
                  <li key={s.id}>
                    <Link
                      class={`dag-step ${s.name === selected ? 'selected' : ''}`}
                      href={href(`${base}/pipelines/${p.number}`, { step: s.name })}
                      aria-current={s.name === selected ? 'true' : undefined}
                    >
                      <Status s={s.status} /> {s.name}
                      <small class="muted">
                        {' '}
                        {duration(s.duration_ms)}
                        {s.exit_code !== null ? ` · exit ${s.exit_code}` : ''}
                      </small>
                    </Link>
                  </li>
                ))}
              </ul>
            ))}
          </nav>
          {step ? (
            <section aria-labelledby="log-title">
              <h3 id="log-title">
                Log of {step.name} <Status s={step.status} />
              </h3>
              {step.error ? <div class="notice error">{step.error}</div> : null}
              {step.started_at ? (
                <StepLog
                  key={step.id}
                  url={`/api/projects/${project.id}/pipelines/${p.id}/steps/${step.id}/logs`}
                  name={step.name}
                />
              ) : (
                <p class="empty">This step has not started.</p>
              )}
            </section>
          ) : null}
          <section aria-labelledby="artifacts">
            <h3 id="artifacts">Artifacts</h3>
            <View state={artifacts} empty={(a) => a.items.length === 0} emptyText="No artifacts.">
              {(a) => (
                <ul class="list compact">
                  {a.items.map((x) => (
                    <li key={x.id}>
                      <a href={`/api/projects/${project.id}/artifacts/${x.id}/download`}>{x.name}</a>{' '}
                      <span class="muted">{x.size_bytes} bytes</span>
                    </li>
                  ))}
                </ul>
              )}
            </View>
          </section>
        </article>
      )}
    </View>
  );
}

/** The step's log over SSE: the backlog, then live output, until `end`. */
function StepLog({ url, name }: { url: string; name: string }) {
  const lines = useRef<string[]>([]);
  const partial = useRef('');
  const [, setCount] = useState(0);
  const [state, setState] = useState<'live' | 'ended' | 'error'>('live');
  useEffect(() => {
    lines.current = [];
    partial.current = '';
    let frame = 0;
    const flush = () => {
      frame = 0;
      setCount(lines.current.length + (partial.current ? 1 : 0));
    };
    const es = new EventSource(url);
    es.onmessage = (e) => {
      const { data } = JSON.parse(e.data) as { data: string };
      const parts = (partial.current + data).split('\n');
      partial.current = parts.pop() ?? '';
      for (const l of parts) lines.current.push(l);
      if (!frame) frame = requestAnimationFrame(flush);
    };
    es.addEventListener('end', () => {
      es.close();
      if (partial.current) lines.current.push(partial.current);
      partial.current = '';
      setState('ended');
      flush();
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) setState('error');
    };
    return () => {
      es.close();
      if (frame) cancelAnimationFrame(frame);
    };
  }, [url]);
  const shown = partial.current ? [...lines.current, partial.current] : lines.current;
  return (
    <>
      <p class="muted" role="status" data-testid="log-state">
        {state === 'live' ? 'Streaming…' : state === 'ended' ? 'Log complete.' : 'The log stream failed.'}
      </p>
      <LogView lines={shown} label={`Log of ${name}`} />
    </>
  );
}
