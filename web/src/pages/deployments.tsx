/**
 * Deployments of a project: its environments (status, version, health), preview environments with
 * their merge requests and TTL, and one environment's page with its history (actors), rollback to
 * the previous or a chosen version, stop/start and the rendered diff of the next apply.
 */
import { useEffect } from 'preact/hooks';
import { api, type S } from '../api/client';
import { ActionButton, ErrorBox, Link, Time, useApi, View } from '../ui';
import { Badge, versionText } from './deploy-badges';
import type { ProjectProps } from './project';
import './deploy-sessions.css';

type Deployment = S['Deployment'];
type HistoryEntry = S['DeploymentHistoryEntry'];

/** The deployer's default TTL of a preview after its last publication (src/deployer/previews.ts). */
const PREVIEW_TTL_MS = 7 * 24 * 3600 * 1000;

/** Settled: what runs is what should run, as last observed. */
const settled = (d: Deployment) =>
  d.observed_generation >= d.generation &&
  d.desired_status !== 'rollback' &&
  d.current_status !== 'syncing' &&
  d.current_status !== 'pending';

export function Deployments(props: ProjectProps) {
  return props.item ? <Environment {...props} env={props.item} /> : <EnvironmentList {...props} />;
}

/** `preview-<slug>` of a branch, as the deployer names it (src/deployer/previews.ts). */
async function previewName(branch: string): Promise<string> {
  const name = branch.replace(/^refs\/heads\//, '');
  let slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (!slug) slug = 'branch';
  if (slug.length > 55) {
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(name));
    const hash = [...new Uint8Array(digest)]
      .slice(0, 3)
      .map((b) => b.toString(16).padStart(2, '0'))
      .join('');
    slug = `${slug.slice(0, 48).replace(/-+$/, '')}-${hash}`;
  }
  return `preview-${slug}`;
}

async function loadEnvironments(project: S['Project']) {
  const list = await api('get', '/api/projects/{id}/deployments', { path: { id: project.id } });
  const previews = list.items.filter((d) => d.environment.startsWith('preview-'));
  const mrByEnv = new Map<string, S['MergeRequest']>();
  if (previews.length > 0) {
    const mrs = await api('get', '/api/projects/{id}/merge-requests', {
      path: { id: project.id },
      query: { limit: 100 },
    }).catch(() => ({ items: [] as S['MergeRequest'][] }));
    for (const mr of mrs.items) {
      const env = await previewName(mr.source_branch);
      if (!mrByEnv.has(env)) mrByEnv.set(env, mr);
    }
  }
  return {
    environments: list.items.filter((d) => !d.environment.startsWith('preview-')),
    previews,
    mrByEnv,
  };
}

function EnvironmentList({ project, base }: ProjectProps) {
  const list = useApi(() => loadEnvironments(project), [project.id]);
  const busy = list.data && [...list.data.environments, ...list.data.previews].some((d) => !settled(d));
  useEffect(() => {
    if (!busy) return;
    const t = setInterval(list.reload, 3000);
    return () => clearInterval(t);
  }, [busy, list.reload]);
  return (
    <View
      state={list}
      empty={(d) => d.environments.length === 0 && d.previews.length === 0}
      emptyText={
        <>
          No deployments yet: a pipeline step with <code>publish: {'{ artifact, environment }'}</code> deploys
          one.
        </>
      }
    >
      {(d) => (
        <>
          <section aria-labelledby="envs">
            <h2 id="envs">Environments</h2>
            {d.environments.length === 0 ? (
              <p class="empty">No environments other than previews.</p>
            ) : (
              <EnvTable base={base} items={d.environments} />
            )}
          </section>
          <section aria-labelledby="previews">
            <h2 id="previews">Preview environments</h2>
            {d.previews.length === 0 ? (
              <p class="empty">
                No preview environments: a merge request's pipeline publishing to <code>preview</code> gets
                one.
              </p>
            ) : (
              <EnvTable base={base} items={d.previews} previews={d.mrByEnv} />
            )}
          </section>
        </>
      )}
    </View>
  );
}

function EnvTable(props: { base: string; items: Deployment[]; previews?: Map<string, S['MergeRequest']> }) {
  const { base, items, previews } = props;
  return (
    <div class="scroll-x">
      <table class="table">
        <thead>
          <tr>
            <th scope="col">Environment</th>
            <th scope="col">Health</th>
            <th scope="col">Desired</th>
            <th scope="col">Version</th>
            {previews ? <th scope="col">Merge request</th> : null}
            {previews ? <th scope="col">Expires</th> : null}
            <th scope="col">Deployed</th>
            <th scope="col">Address</th>
          </tr>
        </thead>
        <tbody>
          {items.map((d) => {
            const mr = previews?.get(d.environment);
            const deployed = d.deployed_at ?? d.updated_at;
            return (
              <tr key={d.id}>
                <td>
                  <Link href={`${base}/deployments/${d.environment}`}>{d.environment}</Link>
                </td>
                <td>
                  <Badge s={d.current_status} />
                  {d.status_message ? <div class="muted small">{d.status_message}</div> : null}
                </td>
                <td>{d.desired_status}</td>
                <td>
                  <code>{versionText(d)}</code>
                </td>
                {previews ? (
                  <td>
                    {mr ? (
                      <Link href={`${base}/merge-requests/${mr.number}`}>
                        !{mr.number} {mr.title}
                      </Link>
                    ) : (
                      <span class="muted">a branch</span>
                    )}
                  </td>
                ) : null}
                {previews ? (
                  <td>
                    {d.current_status === 'stopped' ? (
                      <span class="muted">torn down</span>
                    ) : (
                      <span title="7 days after its last publication, or when its merge request ends">
                        {new Date(new Date(deployed).getTime() + PREVIEW_TTL_MS).toLocaleString()}
                      </span>
                    )}
                  </td>
                ) : null}
                <td>
                  <Time at={d.deployed_at} />
                </td>
                <td>{d.url ? <a href={d.url}>{d.url}</a> : <span class="muted">—</span>}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function Environment({ project, base, env }: ProjectProps & { env: string }) {
  const path = { id: project.id, env };
  const detail = useApi(
    () => api('get', '/api/projects/{id}/deployments/{env}', { path }),
    [project.id, env],
  );
  const history = useApi(
    () => api('get', '/api/projects/{id}/deployments/{env}/history', { path, query: { limit: 50 } }),
    [project.id, env],
  );
  const diff = useApi(
    () => api('get', '/api/projects/{id}/deployments/{env}/diff', { path }),
    [project.id, env],
  );
  const d = detail.data;
  const moving = d ? !settled(d) : false;
  useEffect(() => {
    if (!moving) return;
    const t = setInterval(() => {
      detail.reload();
      history.reload();
    }, 2000);
    return () => clearInterval(t);
  }, [moving, detail.reload, history.reload]);
  // Settling changes what runs: the history and the diff follow.
  useEffect(() => {
    if (d && !moving) {
      history.reload();
      diff.reload();
    }
  }, [moving]);
  const refresh = () => {
    detail.reload();
    history.reload();
    diff.reload();
  };
  return (
    <>
      <p>
        <Link href={`${base}/deployments`}>← All environments</Link>
      </p>
      <View state={detail}>
        {(d) => (
          <article aria-labelledby="env-title">
            <h2 id="env-title">
              Environment {d.environment} <Badge s={d.current_status} />
            </h2>
            <dl class="facts">
              <div>
                <dt>Health</dt>
                <dd data-testid="deployment-health">
                  {d.current_status}
                  {d.status_message ? ` — ${d.status_message}` : ''}
                </dd>
              </div>
              <div>
                <dt>Desired</dt>
                <dd>{d.desired_status}</dd>
              </div>
              <div>
                <dt>Version</dt>
                <dd data-testid="deployment-version">
                  <code>{versionText(d)}</code>
                  {d.commit_sha ? (
                    <>
                      {' '}
                      <Link href={`${base}/commit/${d.commit_sha}`}>commit</Link>
                    </>
                  ) : null}
                  {d.pipeline_id ? (
                    <>
                      {' '}
                      · <Link href={`${base}/pipelines/${d.pipeline_id}`}>pipeline</Link>
                    </>
                  ) : null}
                </dd>
              </div>
              <div>
                <dt>Target</dt>
                <dd>
                  {d.target ?? 'not applied yet'}
                  {d.target === 'local'
                    ? d.live.serving_here
                      ? ` · serving here${d.live.port ? ` on port ${d.live.port}` : ''}`
                      : ' · not serving on this instance'
                    : ''}
                </dd>
              </div>
              <div>
                <dt>Address</dt>
                <dd>{d.url ? <a href={d.url}>{d.url}</a> : '—'}</dd>
              </div>
              <div>
                <dt>Deployed</dt>
                <dd>
                  <Time at={d.deployed_at} />
                </dd>
              </div>
              <div>
                <dt>Automatic rollback</dt>
                <dd>{d.auto_rollback ? 'on (a version that never gets healthy is rolled back)' : 'off'}</dd>
              </div>
              <div>
                <dt>Generation</dt>
                <dd>
                  {d.observed_generation} of {d.generation} applied
                </dd>
              </div>
            </dl>
            <div class="actions">
              <ActionButton
                run={async () => {
                  await api('post', '/api/projects/{id}/deployments/{env}/rollback', { path, body: {} });
                  refresh();
                }}
              >
                Roll back
              </ActionButton>
              {d.desired_status === 'stopped' ? (
                <ActionButton
                  run={async () => {
                    await api('patch', '/api/projects/{id}/deployments/{env}', {
                      path,
                      body: { desired_status: 'active' },
                    });
                    refresh();
                  }}
                >
                  Start
                </ActionButton>
              ) : (
                <ActionButton
                  class="danger"
                  run={async () => {
                    await api('patch', '/api/projects/{id}/deployments/{env}', {
                      path,
                      body: { desired_status: 'stopped' },
                    });
                    refresh();
                  }}
                >
                  Stop
                </ActionButton>
              )}
            </div>
            {moving ? (
              <p class="muted" role="status" aria-live="polite">
                The reconciler is applying generation {d.generation}…
              </p>
            ) : null}
          </article>
        )}
      </View>
      <section aria-labelledby="history-title">
        <h2 id="history-title">History</h2>
        <View state={history} empty={(h) => h.items.length === 0} emptyText="Nothing deployed here yet.">
          {(h) => (
            <HistoryTable
              items={h.items}
              base={base}
              current={d}
              rollback={async (entry) => {
                await api('post', '/api/projects/{id}/deployments/{env}/rollback', {
                  path,
                  body: { history_id: entry.id },
                });
                refresh();
              }}
            />
          )}
        </View>
      </section>
      <section aria-labelledby="diff-title">
        <h2 id="diff-title">Rendered diff</h2>
        <p class="muted">The manifests the next apply would apply, rendered now, against what runs.</p>
        <View state={diff}>{(x) => <RenderedDiff diff={x} />}</View>
      </section>
    </>
  );
}

/** Entries a rollback may go to: successful deploys and rollbacks that name a version. */
const restorable = (h: HistoryEntry) =>
  h.result === 'success' &&
  (h.action === 'deploy' || h.action === 'rollback') &&
  (h.image_ref !== null || h.artifact_id !== null || h.commit_sha !== null);

const sameVersion = (h: HistoryEntry, d: Deployment | undefined) =>
  !!d && h.image_ref === d.image_ref && h.artifact_id === d.artifact_id && h.commit_sha === d.commit_sha;

function HistoryTable(props: {
  items: HistoryEntry[];
  base: string;
  current: Deployment | undefined;
  rollback: (h: HistoryEntry) => Promise<void>;
}) {
  return (
    <div class="scroll-x">
      <table class="table" aria-label="Deployment history">
        <thead>
          <tr>
            <th scope="col">Action</th>
            <th scope="col">Version/Ref</th>
            <th scope="col">Actor</th>
            <th scope="col">When</th>
            <th scope="col">Result</th>
            <th scope="col">Message</th>
            <th scope="col">
              <span class="sr-only">Rollback</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {props.items.map((h) => (
            <tr key={h.id}>
              <td>{h.action}</td>
              <td>
                <code>{versionText(h)}</code>
                {h.pipeline_id ? (
                  <>
                    {' '}
                    <Link href={`${props.base}/pipelines/${h.pipeline_id}`}>pipeline</Link>
                  </>
                ) : null}
              </td>
              <td>{h.actor_name ?? (h.actor_id ? 'a removed user' : 'the reconciler (automatic)')}</td>
              <td>
                <Time at={h.created_at} />
              </td>
              <td>
                <Badge s={h.result} />
              </td>
              <td class="wrap">{h.message}</td>
              <td>
                {restorable(h) && !sameVersion(h, props.current) ? (
                  <ActionButton run={() => props.rollback(h)}>Roll back to this version</ActionButton>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function RenderedDiff({ diff }: { diff: S['DeploymentDiff'] }) {
  if (diff.error) return <ErrorBox error={`The desired manifests cannot be rendered: ${diff.error}`} />;
  if (!diff.changed)
    return (
      <p class="empty" data-testid="diff-unchanged">
        No change: the next apply would apply what runs now.
      </p>
    );
  const lines = diff.diff.split('\n');
  return (
    <section class="diff diff-file" aria-label="Rendered diff">
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be reachable by keyboard (axe scrollable-region-focusable) */}
      <pre tabIndex={0}>
        {lines.map((l, i) => (
          <div
            key={i}
            class={
              l.startsWith('+++') || l.startsWith('---')
                ? 'dh'
                : l.startsWith('@@')
                  ? 'dhunk'
                  : l.startsWith('+')
                    ? 'dadd'
                    : l.startsWith('-')
                      ? 'ddel'
                      : ''
            }
          >
            {l || ' '}
          </div>
        ))}
      </pre>
    </section>
  );
}
