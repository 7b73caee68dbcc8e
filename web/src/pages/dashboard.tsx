import { api, type S } from '../api/client';
import { useMe } from '../me';
import { ErrorBox, Link, Page, Status, Time, useApi, View } from '../ui';

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

export function Dashboard() {
  const { me } = useMe();
  const overview = useApi(() => loadOverview(me!), [me?.user.id]);
  const audit = useApi(() => api('get', '/api/audit', { query: { limit: 15 } }), []);
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
        {['Deployments', 'Agent sessions', 'Firing alerts'].map((t) => (
          <section class="card placeholder" key={t} aria-label={t}>
            <h2>{t}</h2>
            <p class="muted">Appears here once the {t.toLowerCase()} API lands on this server.</p>
          </section>
        ))}
      </div>
      {overview.error && overview.data ? <ErrorBox error={overview.error} /> : null}
    </Page>
  );
}
