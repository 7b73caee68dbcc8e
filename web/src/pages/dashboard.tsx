import { api, type S } from '../api/client';
import { useMe } from '../me';
import { ErrorBox, Link, Page, Status, Time, useApi, View } from '../ui';
import { Badge, versionText } from './deploy-badges';

type Pipe = S['PipelineSummary'] & { project: S['Project'] };
type Mr = S['MergeRequest'] & { project: S['Project'] };
type Iss = S['Issue'] & { project: S['Project'] };

/** No cross-project list endpoints exist: the dashboard reads the newest projects' lists and merges them. */
async function loadOverview(me: S['Me']) {
  const projects = (await api('get', '/api/projects', { query: { limit: 20 } })).items;
  const per = await Promise.all(
    projects.map(async (project) => {
      const path = { id: project.id };
      const [pipelines, mrs, issues] = await Promise.all([
        api('get', '/api/projects/{id}/pipelines', { path, query: { limit: 5 } }).catch(() => ({
          items: [],
        })),
        api('get', '/api/projects/{id}/merge-requests', {
          path,
          query: { status: 'open', author: me.user.name, limit: 10 },
        }).catch(() => ({ items: [] })),
        api('get', '/api/projects/{id}/issues', {
          path,
          query: { status: 'open', assignee: me.user.name, limit: 10 },
        }).catch(() => ({ items: [] })),
      ]);
      return {
        pipelines: pipelines.items.map((p) => ({ ...p, project }) as Pipe),
        mrs: mrs.items.map((m) => ({ ...m, project }) as Mr),
        issues: issues.items.map((i) => ({ ...i, project }) as Iss),
      };
    }),
  );
  const byTime = <T extends { created_at: string }>(a: T, b: T) => b.created_at.localeCompare(a.created_at);
  return {
    projects,
    pipelines: per
      .flatMap((p) => p.pipelines)
      .sort(byTime)
      .slice(0, 10),
    mrs: per.flatMap((p) => p.mrs).sort(byTime),
    issues: per.flatMap((p) => p.issues).sort(byTime),
  };
}

const projectUrl = (p: S['Project']) => `/projects/${p.full_name}`;

type Sess = S['AgentSession'] & { project: S['Project'] };
type Dep = S['Deployment'] & { project: S['Project'] };
type Alert = S['AlertRule'] & { project: S['Project'] | null };

/** Running sessions, deployment health and firing alerts of the newest projects (and platform-wide alerts). */
async function loadOperations(projects: S['Project'][]) {
  const none = { items: [] };
  const per = await Promise.all(
    projects.map(async (project) => {
      const path = { id: project.id };
      const [sessions, deployments, alerts] = await Promise.all([
        api('get', '/api/projects/{id}/sessions', { path, query: { status: 'running', limit: 20 } }).catch(
          () => none,
        ),
        api('get', '/api/projects/{id}/deployments', { path }).catch(() => none),
        api('get', '/api/observe/alerts', { query: { project_id: project.id, state: 'firing' } }).catch(
          () => none,
        ),
      ]);
      return {
        sessions: sessions.items.map((x) => ({ ...x, project }) as Sess),
        deployments: deployments.items.map((x) => ({ ...x, project }) as Dep),
        alerts: alerts.items.map((x) => ({ ...x, project }) as Alert),
      };
    }),
  );
  const platform = await api('get', '/api/observe/alerts', { query: { state: 'firing' } }).catch(() => none);
  return {
    sessions: per.flatMap((p) => p.sessions),
    deployments: per
      .flatMap((p) => p.deployments)
      .sort(
        (a, b) =>
          a.project.full_name.localeCompare(b.project.full_name) ||
          a.environment.localeCompare(b.environment),
      ),
    alerts: [
      ...platform.items.map((x) => ({ ...x, project: null }) as Alert),
      ...per.flatMap((p) => p.alerts),
    ],
  };
}

export function Dashboard() {
  const { me } = useMe();
  const overview = useApi(() => loadOverview(me!), [me?.user.id]);
  const audit = useApi(() => api('get', '/api/audit', { query: { limit: 15 } }), []);
  const projects = overview.data?.projects;
  const ops = useApi(
    () =>
      projects
        ? loadOperations(projects)
        : overview.error
          ? Promise.reject(overview.error)
          : new Promise<never>(() => {}),
    [projects, overview.error],
  );
  return (
    <Page title="Dashboard">
      <div class="grid">
        <section class="card" aria-labelledby="d-pipes">
          <h2 id="d-pipes">Recent pipelines</h2>
          <View
            state={overview}
            empty={(d) => d.pipelines.length === 0}
            emptyText="No pipelines yet: push a .platform.yaml."
          >
            {(d) => (
              <ul class="list">
                {d.pipelines.map((p) => (
                  <li key={p.id}>
                    <Status s={p.status} />{' '}
                    <Link href={`${projectUrl(p.project)}/pipelines/${p.number}`}>
                      {p.project.full_name} #{p.number}
                    </Link>{' '}
                    <span class="muted">
                      {p.ref_name} · <Time at={p.created_at} />
                    </span>
                  </li>
                ))}
              </ul>
            )}
          </View>
        </section>
        <section class="card" aria-labelledby="d-mrs">
          <h2 id="d-mrs">My open merge requests</h2>
          <View
            state={overview}
            empty={(d) => d.mrs.length === 0}
            emptyText="No open merge requests of yours."
          >
            {(d) => (
              <ul class="list">
                {d.mrs.map((m) => (
                  <li key={m.id}>
                    <Link href={`${projectUrl(m.project)}/merge-requests/${m.number}`}>
                      {m.project.full_name} !{m.number} {m.title}
                    </Link>{' '}
                    <Time at={m.updated_at} />
                  </li>
                ))}
              </ul>
            )}
          </View>
        </section>
        <section class="card" aria-labelledby="d-issues">
          <h2 id="d-issues">My open issues</h2>
          <View
            state={overview}
            empty={(d) => d.issues.length === 0}
            emptyText="No open issues assigned to you."
          >
            {(d) => (
              <ul class="list">
                {d.issues.map((i) => (
                  <li key={i.id}>
                    <Link href={`${projectUrl(i.project)}/issues/${i.number}`}>
                      {i.project.full_name} #{i.number} {i.title}
                    </Link>{' '}
                    <Time at={i.updated_at} />
                  </li>
                ))}
              </ul>
            )}
          </View>
        </section>
        <section class="card" aria-labelledby="d-activity">
          <h2 id="d-activity">Recent activity</h2>
          {audit.error?.status === 403 ? (
            <p class="muted">The audit feed is visible to administrators (admin:users).</p>
          ) : (
            <View state={audit} empty={(d) => d.items.length === 0} emptyText="No activity yet.">
              {(d) => (
                <ul class="list">
                  {d.items.map((a) => (
                    <li key={a.id}>
                      <strong>{a.actor_name ?? 'system'}</strong> <code>{a.action}</code>{' '}
                      <span class="muted">
                        {a.resource_type} · <Time at={a.created_at} />
                      </span>
                    </li>
                  ))}
                </ul>
              )}
            </View>
          )}
        </section>
        <section class="card" aria-labelledby="d-sessions">
          <h2 id="d-sessions">Running agent sessions</h2>
          <View state={ops} empty={(d) => d.sessions.length === 0} emptyText="No agent session is running.">
            {(d) => (
              <ul class="list">
                {d.sessions.map((x) => (
                  <li key={x.id}>
                    <Badge s={x.status} />{' '}
                    <Link href={`${projectUrl(x.project)}/sessions/${x.id}`}>
                      {x.project.full_name} session {x.id.slice(0, 8)}
                    </Link>{' '}
                    <span class="muted">
                      ${x.totals.cost_usd.toFixed(2)} · <Time at={x.started_at ?? x.created_at} />
                    </span>
                  </li>
                ))}
              </ul>
            )}
          </View>
        </section>
        <section class="card" aria-labelledby="d-deploys">
          <h2 id="d-deploys">Deployment health</h2>
          <View state={ops} empty={(d) => d.deployments.length === 0} emptyText="Nothing is deployed yet.">
            {(d) => (
              <ul class="list">
                {d.deployments.map((x) => (
                  <li key={x.id}>
                    <Badge s={x.current_status} />{' '}
                    <Link href={`${projectUrl(x.project)}/deployments/${x.environment}`}>
                      {x.project.full_name} · {x.environment}
                    </Link>{' '}
                    <span class="muted">
                      <code>{versionText(x)}</code> · <Time at={x.deployed_at} />
                    </span>
                  </li>
                ))}
              </ul>
            )}
          </View>
        </section>
        <section class="card" aria-labelledby="d-alerts">
          <h2 id="d-alerts">Firing alerts</h2>
          <View state={ops} empty={(d) => d.alerts.length === 0} emptyText="No alert is firing.">
            {(d) => (
              <ul class="list">
                {d.alerts.map((x) => (
                  <li key={x.id}>
                    <Badge s={x.severity} />{' '}
                    <Link href={x.project ? `${projectUrl(x.project)}/observe/alerts` : '/observe/alerts'}>
                      {x.project ? `${x.project.full_name}: ` : ''}
                      {x.name}
                    </Link>{' '}
                    <span class="muted">
                      {x.last_value !== null ? `value ${x.last_value} · ` : ''}
                      <Time at={x.pending_since} />
                      {x.silenced_until ? ' · silenced' : ''}
                    </span>
                  </li>
                ))}
              </ul>
            )}
          </View>
        </section>
      </div>
      {overview.error && overview.data ? <ErrorBox error={overview.error} /> : null}
    </Page>
  );
}
