import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { Markdown } from '../markdown';
import { href, navigate, useLocation } from '../router';
import { ActionButton, Field, Form, Link, Select, Status, Time, useApi, View } from '../ui';
import type { ProjectProps } from './project';

export function IssueList({ project, base }: ProjectProps) {
  const loc = useLocation();
  const status = loc.query.get('status') ?? 'open';
  const label = loc.query.get('label') ?? '';
  const q = loc.query.get('q') ?? '';
  const [search, setSearch] = useState(q);
  const list = useApi(
    () =>
      api('get', '/api/projects/{id}/issues', {
        path: { id: project.id },
        query: {
          status: (status || undefined) as never,
          label: label || undefined,
          q: q || undefined,
          limit: 100,
        },
      }),
    [project.id, status, label, q],
  );
  const go = (next: Record<string, string>) =>
    navigate(href(`${base}/issues`, { status, label, q, ...next }), { replace: true });
  return (
    <>
      <div class="toolbar">
        <form
          class="filters"
          aria-label="Filter issues"
          onSubmit={(e) => {
            e.preventDefault();
            go({ q: search });
          }}
        >
          <Select
            label="Status"
            value={status}
            onChange={(v) => go({ status: v })}
            options={[
              ['open', 'Open'],
              ['closed', 'Closed'],
              ['', 'All'],
            ]}
          />
          <Field label="Search" value={search} onInput={setSearch} />
          {label ? (
            <button type="button" onClick={() => go({ label: '' })}>
              Label: {label} ✕
            </button>
          ) : null}
          <button type="submit">Filter</button>
        </form>
        <Link class="button primary" href={`${base}/issues/new`}>
          New issue
        </Link>
      </div>
      <View state={list} empty={(d) => d.items.length === 0} emptyText="No issues match.">
        {(d) => (
          <ul class="list">
            {d.items.map((i) => (
              <li key={i.id}>
                <Status s={i.status} />{' '}
                <Link href={`${base}/issues/${i.number}`}>
                  #{i.number} {i.title}
                </Link>{' '}
                {i.labels.map((l) => (
                  <button type="button" class="label" key={l} onClick={() => go({ label: l })}>
                    {l}
                  </button>
                ))}{' '}
                <span class="muted">
                  by {i.author} · <Time at={i.created_at} />
                  {i.assignee ? ` · assigned to ${i.assignee}` : ''} · {i.comment_count} comments
                </span>
              </li>
            ))}
          </ul>
        )}
      </View>
    </>
  );
}

export function NewIssue({ project, base }: ProjectProps) {
  const [title, setTitle] = useState('');
  const [body, setBody] = useState('');
  const [labels, setLabels] = useState('');
  return (
    <section aria-labelledby="new-issue">
      <h2 id="new-issue">New issue</h2>
      <Form
        label="New issue"
        submit="Open issue"
        onSubmit={async () => {
          const issue = await api('post', '/api/projects/{id}/issues', {
            path: { id: project.id },
            body: {
              title,
              body,
              labels: labels
                .split(',')
                .map((l) => l.trim())
                .filter(Boolean),
            },
          });
          navigate(`${base}/issues/${issue.number}`);
        }}
      >
        <Field label="Title" value={title} onInput={setTitle} required />
        <Field label="Description (markdown)" value={body} onInput={setBody} multiline />
        <Field label="Labels (comma-separated)" value={labels} onInput={setLabels} />
      </Form>
    </section>
  );
}

export function Comments({
  load,
  post,
}: {
  load: () => Promise<{ items: { id: string; author: string; body: string; created_at: string }[] }>;
  post: (body: string) => Promise<unknown>;
}) {
  const comments = useApi(load, []);
  const [body, setBody] = useState('');
  return (
    <section aria-labelledby="comments">
      <h2 id="comments">Comments</h2>
      <View state={comments} empty={(d) => d.items.length === 0} emptyText="No comments yet.">
        {(d) => (
          <ol class="comments">
            {d.items.map((c) => (
              <li key={c.id} class="comment">
                <div class="muted">
                  <strong>{c.author}</strong> · <Time at={c.created_at} />
                </div>
                <Markdown source={c.body} />
              </li>
            ))}
          </ol>
        )}
      </View>
      <Form
        label="Add a comment"
        submit="Comment"
        onSubmit={async () => {
          await post(body);
          setBody('');
          comments.reload();
        }}
      >
        <Field label="Comment (markdown)" value={body} onInput={setBody} multiline required />
      </Form>
    </section>
  );
}

export function IssueDetail({ project, item }: ProjectProps) {
  const path = { id: project.id, number: Number(item) };
  const issue = useApi(() => api('get', '/api/projects/{id}/issues/{number}', { path }), [project.id, item]);
  const members = useApi(
    () => api('get', '/api/projects/{id}/members', { path: { id: project.id } }),
    [project.id],
  );
  const [labels, setLabels] = useState<string | null>(null);
  return (
    <View state={issue}>
      {(i) => (
        <article>
          <h2>
            #{i.number} {i.title} <Status s={i.status} />
          </h2>
          <p class="muted">
            opened by {i.author} · <Time at={i.created_at} />
          </p>
          <div class="side">
            <div>
              <Select
                label="Assignee"
                value={i.assignee_id ?? ''}
                onChange={async (v) => {
                  await api('patch', '/api/projects/{id}/issues/{number}', {
                    path,
                    body: { assignee_id: v || null },
                  });
                  issue.reload();
                }}
                options={[
                  ['', 'Nobody'],
                  ...(members.data?.items ?? []).map((m) => [m.user_id, m.user_name] as [string, string]),
                ]}
              />
            </div>
            <Form
              label="Labels"
              class="form inline"
              submit="Save labels"
              onSubmit={async () => {
                await api('patch', '/api/projects/{id}/issues/{number}', {
                  path,
                  body: {
                    labels: (labels ?? i.labels.join(', '))
                      .split(',')
                      .map((l) => l.trim())
                      .filter(Boolean),
                  },
                });
                setLabels(null);
                issue.reload();
              }}
            >
              <Field label="Labels" value={labels ?? i.labels.join(', ')} onInput={setLabels} />
            </Form>
            <ActionButton
              run={async () => {
                await api('patch', '/api/projects/{id}/issues/{number}', {
                  path,
                  body: { status: i.status === 'open' ? 'closed' : 'open' },
                });
                issue.reload();
              }}
            >
              {i.status === 'open' ? 'Close issue' : 'Reopen issue'}
            </ActionButton>
          </div>
          <Markdown source={i.body} />
          <Comments
            load={() =>
              api('get', '/api/projects/{id}/issues/{number}/comments', { path, query: { limit: 100 } })
            }
            post={(body) =>
              api('post', '/api/projects/{id}/issues/{number}/comments', { path, body: { body } })
            }
          />
        </article>
      )}
    </View>
  );
}
