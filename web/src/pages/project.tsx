import { api, type S } from '../api/client';
import { Diff, DiffStats } from '../diff';
import { CodeView } from '../highlight';
import { lazyPage } from '../lazy';
import { href, navigate, useLocation } from '../router';
import { Link, Page, Tabs, Time, useApi, View } from '../ui';
import { IssueDetail, IssueList, NewIssue } from './issues';
import { MrDetail, MrList, NewMr } from './mergerequests';
import type { ObserveProps } from './observe/index';
import { PipelineDetail, PipelineList } from './pipelines';
import { Settings } from './settings';

// Loaded on first visit (own chunks): the first-load JS budget holds as these pages grow.
const Deployments = lazyPage<ProjectProps>(() => import('./deployments'), 'Deployments');
const Sessions = lazyPage<ProjectProps>(() => import('./sessions'), 'Sessions');
const Observe = lazyPage<ObserveProps>(() => import('./observe/index'), 'Observe');

export interface ProjectProps {
  project: S['Project'];
  base: string;
  item?: string | undefined;
}

const SECTIONS: [string, string][] = [
  ['Files', 'files'],
  ['Commits', 'commits'],
  ['Issues', 'issues'],
  ['Merge requests', 'merge-requests'],
  ['Pipelines', 'pipelines'],
  ['Deployments', 'deployments'],
  ['Sessions', 'sessions'],
  ['Observe', 'observe'],
  ['Settings', 'settings'],
];

export function ProjectPage({ params }: { params: Record<string, string> }) {
  const { owner, name } = params as { owner: string; name: string };
  const section = params.section ?? 'files';
  const project = useApi(
    () => api('get', '/api/projects/{owner}/{name}', { path: { owner: owner!, name: name! } }),
    [owner, name],
  );
  return (
    <View state={project}>
      {(p) => {
        const base = `/projects/${p.full_name}`;
        const props: ProjectProps = { project: p, base, item: params.item };
        const current =
          SECTIONS.find(([, s]) => s === section)?.[0] ??
          (section === 'blob' ? 'Files' : section === 'commit' ? 'Commits' : '');
        return (
          <Page title={p.full_name} actions={<span class="badge off">{p.visibility}</span>}>
            {p.description ? <p class="muted">{p.description}</p> : null}
            <Tabs items={SECTIONS.map(([l, s]) => [l, `${base}/${s}`])} current={current} />
            {section === 'files' ? <Files {...props} /> : null}
            {section === 'blob' ? <Blob {...props} /> : null}
            {section === 'commits' ? <Commits {...props} /> : null}
            {section === 'commit' ? <Commit {...props} /> : null}
            {section === 'issues' ? (
              props.item === 'new' ? (
                <NewIssue {...props} />
              ) : props.item ? (
                <IssueDetail {...props} />
              ) : (
                <IssueList {...props} />
              )
            ) : null}
            {section === 'merge-requests' ? (
              props.item === 'new' ? (
                <NewMr {...props} />
              ) : props.item ? (
                <MrDetail {...props} />
              ) : (
                <MrList {...props} />
              )
            ) : null}
            {section === 'pipelines' ? (
              props.item ? (
                <PipelineDetail {...props} />
              ) : (
                <PipelineList {...props} />
              )
            ) : null}
            {section === 'deployments' ? <Deployments {...props} /> : null}
            {section === 'sessions' ? <Sessions {...props} /> : null}
            {section === 'observe' ? (
              <Observe project={p} base={`${base}/observe`} section={props.item} item={params.sub} />
            ) : null}
            {section === 'settings' ? <Settings {...props} /> : null}
            {!current ? <p class="empty">No such section.</p> : null}
          </Page>
        );
      }}
    </View>
  );
}

function RefSwitcher({
  project,
  value,
  onChange,
}: {
  project: S['Project'];
  value: string;
  onChange: (r: string) => void;
}) {
  const refs = useApi(
    () =>
      Promise.all([
        api('get', '/api/projects/{id}/branches', { path: { id: project.id } }),
        api('get', '/api/projects/{id}/tags', { path: { id: project.id } }),
      ]),
    [project.id],
  );
  const [branches, tags] = refs.data ?? [{ items: [] }, { items: [] }];
  return (
    <div class="field inline">
      <label for="ref-switcher">Branch or tag</label>
      <select id="ref-switcher" value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        {branches.items.every((b) => b.name !== value) && tags.items.every((t) => t.name !== value) ? (
          <option value={value}>{value}</option>
        ) : null}
        <optgroup label="Branches">
          {branches.items.map((b) => (
            <option key={b.name} value={b.name}>
              {b.name}
            </option>
          ))}
        </optgroup>
        {tags.items.length ? (
          <optgroup label="Tags">
            {tags.items.map((t) => (
              <option key={t.name} value={t.name}>
                {t.name}
              </option>
            ))}
          </optgroup>
        ) : null}
      </select>
    </div>
  );
}

function Breadcrumb({ base, refName, path }: { base: string; refName: string; path: string }) {
  const parts = path.split('/').filter(Boolean);
  return (
    <nav class="crumbs" aria-label="Path">
      <Link href={href(`${base}/files`, { ref: refName })}>root</Link>
      {parts.map((part, i) => (
        <span key={i}>
          {' / '}
          <Link href={href(`${base}/files`, { ref: refName, path: parts.slice(0, i + 1).join('/') })}>
            {part}
          </Link>
        </span>
      ))}
    </nav>
  );
}

function Files({ project, base }: ProjectProps) {
  const loc = useLocation();
  const refName = loc.query.get('ref') ?? project.default_branch;
  const path = loc.query.get('path') ?? '';
  const tree = useApi(
    () =>
      api('get', '/api/projects/{id}/tree', {
        path: { id: project.id },
        query: { ref: refName, path: path || undefined },
      }),
    [project.id, refName, path],
  );
  return (
    <>
      <div class="toolbar">
        <RefSwitcher
          project={project}
          value={refName}
          onChange={(r) => navigate(href(`${base}/files`, { ref: r, path }))}
        />
        <Link href={href(`${base}/commits`, { ref: refName })}>History</Link>
        <code class="clone" title="Clone URL">
          {project.clone_url}
        </code>
      </div>
      <Breadcrumb base={base} refName={refName} path={path} />
      {tree.error?.status === 404 && !path ? (
        <div class="empty">
          <p>This repository is empty. Push a branch to get started:</p>
          <pre>
            git remote add origin {project.clone_url}
            {'\n'}git push -u origin {project.default_branch}
          </pre>
        </div>
      ) : (
        <View state={tree} empty={(t) => t.entries.length === 0} emptyText="This directory is empty.">
          {(t) => (
            <table class="table">
              <caption class="sr-only">Files at {refName}</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Size</th>
                </tr>
              </thead>
              <tbody>
                {[...t.entries]
                  .sort((a, b) =>
                    a.type === b.type ? a.name.localeCompare(b.name) : a.type === 'tree' ? -1 : 1,
                  )
                  .map((e) => (
                    <tr key={e.path}>
                      <td>
                        <Link
                          href={href(`${base}/${e.type === 'tree' ? 'files' : 'blob'}`, {
                            ref: refName,
                            path: e.path,
                          })}
                        >
                          {e.type === 'tree' ? '📁 ' : ''}
                          {e.name}
                        </Link>
                      </td>
                      <td class="muted">{e.size ?? ''}</td>
                    </tr>
                  ))}
              </tbody>
            </table>
          )}
        </View>
      )}
    </>
  );
}

function Blob({ project, base }: ProjectProps) {
  const loc = useLocation();
  const refName = loc.query.get('ref') ?? project.default_branch;
  const path = loc.query.get('path') ?? '';
  const blob = useApi(
    () => api('get', '/api/projects/{id}/blob', { path: { id: project.id }, query: { ref: refName, path } }),
    [project.id, refName, path],
  );
  return (
    <>
      <div class="toolbar">
        <RefSwitcher
          project={project}
          value={refName}
          onChange={(r) => navigate(href(`${base}/blob`, { ref: r, path }))}
        />
        <Link href={href(`${base}/commits`, { ref: refName, path })}>History of this file</Link>
        <a href={href(`/api/projects/${project.id}/raw`, { ref: refName, path })}>Raw</a>
      </div>
      <Breadcrumb base={base} refName={refName} path={path} />
      <View state={blob}>
        {(b) =>
          b.encoding === 'base64' ? (
            <p class="empty">Binary file ({b.size} bytes): use Raw to download it.</p>
          ) : (
            <CodeView code={b.content} path={b.path} />
          )
        }
      </View>
    </>
  );
}

function Commits({ project, base }: ProjectProps) {
  const loc = useLocation();
  const refName = loc.query.get('ref') ?? project.default_branch;
  const path = loc.query.get('path') ?? undefined;
  const cursor = loc.query.get('cursor') ?? undefined;
  const commits = useApi(
    () =>
      api('get', '/api/projects/{id}/commits', {
        path: { id: project.id },
        query: { ref: refName, path, cursor, limit: 50 },
      }),
    [project.id, refName, path, cursor],
  );
  return (
    <>
      <div class="toolbar">
        <RefSwitcher
          project={project}
          value={refName}
          onChange={(r) => navigate(href(`${base}/commits`, { ref: r, path }))}
        />
        {path ? <span class="muted">History of {path}</span> : null}
      </div>
      <View
        state={commits}
        empty={(c) => c.items.length === 0}
        emptyText={commits.error?.status === 404 ? 'No commits yet.' : 'No commits.'}
      >
        {(c) => (
          <>
            <ol class="list commits">
              {c.items.map((cm) => (
                <li key={cm.sha}>
                  <Link href={`${base}/commit/${cm.sha}`}>{cm.title}</Link>{' '}
                  <span class="muted">
                    <code>{cm.sha.slice(0, 10)}</code> · {cm.author.name} · <Time at={cm.author.date} />
                  </span>
                </li>
              ))}
            </ol>
            {c.next_cursor ? (
              <Link href={href(`${base}/commits`, { ref: refName, path, cursor: c.next_cursor })}>
                Older commits
              </Link>
            ) : null}
          </>
        )}
      </View>
    </>
  );
}

function Commit({ project, item }: ProjectProps) {
  const commit = useApi(
    () => api('get', '/api/projects/{id}/commits/{sha}', { path: { id: project.id, sha: item! } }),
    [project.id, item],
  );
  return (
    <View state={commit}>
      {(c) => (
        <article>
          <h2>{c.title}</h2>
          <p class="muted">
            <code>{c.sha}</code> · {c.author.name} · <Time at={c.author.date} /> · parents{' '}
            {c.parents.map((p) => p.slice(0, 10)).join(', ') || 'none'}
          </p>
          {c.message.trim() !== c.title ? <pre class="message">{c.message}</pre> : null}
          <p>
            {c.stats.files_changed} files changed, <span class="add">+{c.stats.additions}</span>{' '}
            <span class="del">−{c.stats.deletions}</span>
          </p>
          <DiffStats files={c.files} />
          <Diff patch={c.patch} truncated={c.patch_truncated} />
        </article>
      )}
    </View>
  );
}
