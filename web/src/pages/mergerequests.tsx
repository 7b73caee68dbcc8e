import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { Diff } from '../diff';
import { Markdown } from '../markdown';
import { useMe } from '../me';
import { href, navigate, useLocation } from '../router';
import { ActionButton, ErrorBox, Field, Form, Link, Select, Status, Time, useApi, View } from '../ui';
import { Comments } from './issues';
import type { ProjectProps } from './project';

export function MrList({ project, base }: ProjectProps) {
  const loc = useLocation();
  const status = loc.query.get('status') ?? 'open';
  const list = useApi(
    () =>
      api('get', '/api/projects/{id}/merge-requests', {
        path: { id: project.id },
        query: { status: (status || undefined) as never, limit: 100 },
      }),
    [project.id, status],
  );
  return (
    <>
      <div class="toolbar">
        <Select
          label="Status"
          value={status}
          onChange={(v) => navigate(href(`${base}/merge-requests`, { status: v }), { replace: true })}
          options={[
            ['open', 'Open'],
            ['merged', 'Merged'],
            ['closed', 'Closed'],
            ['', 'All'],
          ]}
        />
        <Link class="button primary" href={`${base}/merge-requests/new`}>
          New merge request
        </Link>
      </div>
      <View state={list} empty={(d) => d.items.length === 0} emptyText="No merge requests match.">
        {(d) => (
          <ul class="list">
            {d.items.map((m) => (
              <li key={m.id}>
                <Status s={m.status} />{' '}
                <Link href={`${base}/merge-requests/${m.number}`}>
                  !{m.number} {m.title}
                </Link>{' '}
                <span class="muted">
                  {m.source_branch} → {m.target_branch} · by {m.author.name} · <Time at={m.created_at} />
                </span>
              </li>
            ))}
          </ul>
        )}
      </View>
    </>
  );
}

export function NewMr({ project, base }: ProjectProps) {
  const branches = useApi(
    () => api('get', '/api/projects/{id}/branches', { path: { id: project.id } }),
    [project.id],
  );
  const [source, setSource] = useState('');
  const [target, setTarget] = useState(project.default_branch);
  const [title, setTitle] = useState('');
  const [body, setBody] = useState('');
  const options = (branches.data?.items ?? []).map((b) => [b.name, b.name] as [string, string]);
  return (
    <section aria-labelledby="new-mr">
      <h2 id="new-mr">New merge request</h2>
      <View
        state={branches}
        empty={(b) => b.items.length < 2}
        emptyText="Push a second branch to open a merge request."
      >
        {() => (
          <Form
            label="New merge request"
            submit="Open merge request"
            onSubmit={async () => {
              const mr = await api('post', '/api/projects/{id}/merge-requests', {
                path: { id: project.id },
                body: {
                  source_branch: source || options.find(([b]) => b !== target)?.[0] || '',
                  target_branch: target,
                  title,
                  body,
                },
              });
              navigate(`${base}/merge-requests/${mr.number}`);
            }}
          >
            <Select
              label="Source branch"
              value={source || options.find(([b]) => b !== target)?.[0] || ''}
              onChange={setSource}
              options={options}
            />
            <Select label="Target branch" value={target} onChange={setTarget} options={options} />
            <Field label="Title" value={title} onInput={setTitle} required />
            <Field label="Description (markdown)" value={body} onInput={setBody} multiline />
          </Form>
        )}
      </View>
    </section>
  );
}

export function MrDetail({ project, base, item }: ProjectProps) {
  const path = { id: project.id, number: Number(item) };
  const mr = useApi(
    () => api('get', '/api/projects/{id}/merge-requests/{number}', { path }),
    [project.id, item],
  );
  const [tab, setTab] = useState<'overview' | 'diff'>('overview');
  return (
    <View state={mr}>
      {(m) => (
        <article>
          <h2>
            !{m.number} {m.title} <Status s={m.status} />
          </h2>
          <p class="muted">
            {m.author.name} {m.status === 'open' ? 'wants to merge' : 'asked to merge'}{' '}
            <code>{m.source_branch}</code> into <code>{m.target_branch}</code> · opened{' '}
            <Time at={m.created_at} />
          </p>
          <div class="tabs" role="tablist" aria-label="Merge request">
            <button
              type="button"
              role="tab"
              aria-selected={tab === 'overview'}
              onClick={() => setTab('overview')}
            >
              Overview
            </button>
            <button type="button" role="tab" aria-selected={tab === 'diff'} onClick={() => setTab('diff')}>
              Changes ({m.diff_stats?.files_changed ?? 0} files)
            </button>
          </div>
          {tab === 'diff' ? (
            <MrDiff
              projectId={project.id}
              base={m.base_sha ?? m.target_branch}
              head={m.head_sha ?? m.source_branch}
            />
          ) : (
            <>
              <Markdown source={m.body} />
              <section class="card" aria-labelledby="mr-state">
                <h3 id="mr-state">Merge status</h3>
                <p>
                  Approvals: {m.approvals.given} of {m.approvals.required} required
                  {m.approvals.approved_by.length
                    ? ` (approved by ${m.approvals.approved_by.join(', ')})`
                    : ''}
                  {m.approvals.changes_requested_by.length
                    ? ` · changes requested by ${m.approvals.changes_requested_by.join(', ')}`
                    : ''}
                </p>
                <p>
                  Checks:{' '}
                  {m.checks.latest_pipeline ? (
                    <>
                      <Status s={m.checks.latest_pipeline.status} /> latest pipeline
                    </>
                  ) : (
                    <span class="muted">no pipeline for the head commit</span>
                  )}
                  {m.checks.required ? ' (a passing pipeline is required)' : ''}
                </p>
                {m.mergeability?.conflicts.length ? (
                  <div class="notice error" role="alert">
                    <strong>Conflicts</strong> in:{' '}
                    {m.mergeability.conflicts.map((c) => (
                      <code key={c}>{c} </code>
                    ))}
                  </div>
                ) : null}
                {m.status === 'open' && m.blockers.length ? (
                  <ul class="blockers" aria-label="What blocks the merge">
                    {m.blockers.map((b) => (
                      <li key={b.reason}>
                        <code>{b.reason}</code> {b.message}
                      </li>
                    ))}
                  </ul>
                ) : null}
                {m.status === 'open' ? <MergeBox mr={m} path={path} onDone={mr.reload} /> : null}
                {m.status === 'merged' ? (
                  <p>
                    Merged <Time at={m.merged_at} /> as{' '}
                    <Link href={`${base}/commit/${m.merge_sha}`}>
                      <code>{m.merge_sha?.slice(0, 10)}</code>
                    </Link>{' '}
                    ({m.merge_strategy})
                  </p>
                ) : null}
              </section>
              <Reviews mr={m} path={path} onDone={mr.reload} />
              <section aria-labelledby="mr-commits">
                <h3 id="mr-commits">Commits</h3>
                <ul class="list compact">
                  {m.commits.map((c) => (
                    <li key={c.sha}>
                      <Link href={`${base}/commit/${c.sha}`}>{c.title}</Link>{' '}
                      <span class="muted">
                        <code>{c.sha.slice(0, 10)}</code> {c.author_name}
                      </span>
                    </li>
                  ))}
                </ul>
              </section>
              <Comments
                load={() =>
                  api('get', '/api/projects/{id}/merge-requests/{number}/comments', {
                    path,
                    query: { limit: 100 },
                  })
                }
                post={(body) =>
                  api('post', '/api/projects/{id}/merge-requests/{number}/comments', { path, body: { body } })
                }
              />
            </>
          )}
        </article>
      )}
    </View>
  );
}

function MrDiff({ projectId, base, head }: { projectId: string; base: string; head: string }) {
  const cmp = useApi(
    () => api('get', '/api/projects/{id}/compare', { path: { id: projectId }, query: { base, head } }),
    [projectId, base, head],
  );
  return <View state={cmp}>{(c) => <Diff patch={c.patch} truncated={c.patch_truncated} />}</View>;
}

type Detail = NonNullable<Awaited<ReturnType<typeof loadMr>>>;
const loadMr = (path: { id: string; number: number }) =>
  api('get', '/api/projects/{id}/merge-requests/{number}', { path });

function MergeBox({
  mr,
  path,
  onDone,
}: {
  mr: Detail;
  path: { id: string; number: number };
  onDone: () => void;
}) {
  const [strategy, setStrategy] = useState('merge');
  return (
    <Form
      label="Merge"
      class="form inline"
      submit={`Merge (${strategy})`}
      onSubmit={async () => {
        await api('post', '/api/projects/{id}/merge-requests/{number}/merge', {
          path,
          body: { strategy: strategy as never, ...(mr.head_sha ? { expected_head_sha: mr.head_sha } : {}) },
        });
        onDone();
      }}
    >
      <Select
        label="Merge strategy"
        value={strategy}
        onChange={setStrategy}
        options={[
          ['merge', 'Merge commit'],
          ['squash', 'Squash'],
          ['fast_forward', 'Fast-forward'],
        ]}
      />
      {!mr.mergeable ? (
        <p class="muted">The server lists blockers above; merging now would be refused.</p>
      ) : null}
    </Form>
  );
}

function Reviews({
  mr,
  path,
  onDone,
}: {
  mr: Detail;
  path: { id: string; number: number };
  onDone: () => void;
}) {
  const { me } = useMe();
  const isAuthor = me?.user.id === mr.author.id;
  const [body, setBody] = useState('');
  const [error, setError] = useState<Error | undefined>();
  const review = async (verdict: 'approve' | 'request_changes' | 'comment') => {
    setError(undefined);
    try {
      await api('post', '/api/projects/{id}/merge-requests/{number}/reviews', {
        path,
        body: { verdict, body },
      });
      setBody('');
      onDone();
    } catch (e) {
      setError(e as Error);
    }
  };
  return (
    <section aria-labelledby="mr-reviews">
      <h3 id="mr-reviews">Reviews</h3>
      {mr.reviews.length === 0 ? <p class="empty">No reviews yet.</p> : null}
      <ul class="list">
        {mr.reviews.map((r) => (
          <li key={r.id}>
            <strong>{r.reviewer.name}</strong>{' '}
            <Status
              s={r.verdict === 'approve' ? 'success' : r.verdict === 'request_changes' ? 'failed' : 'pending'}
            />{' '}
            {r.verdict} <Time at={r.created_at} />
            {r.body ? <Markdown source={r.body} /> : null}
          </li>
        ))}
      </ul>
      {mr.status === 'open' ? (
        <div class="form">
          <Field label="Review comment" value={body} onInput={setBody} multiline />
          <div class="actions">
            {isAuthor ? (
              <span class="muted">Authors may comment; someone else approves.</span>
            ) : (
              <>
                <ActionButton class="primary" run={() => review('approve')}>
                  Approve
                </ActionButton>
                <ActionButton run={() => review('request_changes')}>Request changes</ActionButton>
              </>
            )}
            <ActionButton run={() => review('comment')}>Comment only</ActionButton>
          </div>
          {error ? <ErrorBox error={error} /> : null}
        </div>
      ) : null}
    </section>
  );
}
