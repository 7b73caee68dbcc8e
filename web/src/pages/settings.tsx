import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { href, navigate, useLocation } from '../router';
import { ActionButton, Field, Form, Link, Select, Status, Time, useApi, View } from '../ui';
import type { ProjectProps } from './project';

const PARTS: [string, string][] = [
  ['General', 'general'],
  ['Members', 'members'],
  ['Protected branches', 'branches'],
  ['Webhooks', 'webhooks'],
  ['Secrets', 'secrets'],
];

export function Settings(props: ProjectProps) {
  const loc = useLocation();
  const part = loc.query.get('part') ?? 'general';
  return (
    <div class="settings">
      <nav class="subnav" aria-label="Settings">
        {PARTS.map(([l, p]) => (
          <Link
            key={p}
            href={href(`${props.base}/settings`, { part: p })}
            aria-current={p === part ? 'page' : undefined}
          >
            {l}
          </Link>
        ))}
      </nav>
      <div>
        {part === 'general' ? <General {...props} /> : null}
        {part === 'members' ? <Members {...props} /> : null}
        {part === 'branches' ? <Branches {...props} /> : null}
        {part === 'webhooks' ? <Webhooks {...props} /> : null}
        {part === 'secrets' ? <Secrets {...props} /> : null}
      </div>
    </div>
  );
}

function General({ project }: ProjectProps) {
  const [name, setName] = useState(project.name);
  const [description, setDescription] = useState(project.description);
  const [visibility, setVisibility] = useState<string>(project.visibility);
  const [branch, setBranch] = useState(project.default_branch);
  const [saved, setSaved] = useState(false);
  return (
    <section aria-labelledby="s-general">
      <h2 id="s-general">General</h2>
      <Form
        label="General settings"
        submit="Save"
        onSubmit={async () => {
          const p = await api('patch', '/api/projects/{id}', {
            path: { id: project.id },
            body: { name, description, visibility: visibility as never, default_branch: branch },
          });
          setSaved(true);
          if (p.full_name !== project.full_name) navigate(`/projects/${p.full_name}/settings`);
        }}
      >
        <Field label="Name" value={name} onInput={setName} required />
        <Field label="Description" value={description} onInput={setDescription} />
        <Select
          label="Visibility"
          value={visibility}
          onChange={setVisibility}
          options={[
            ['private', 'Private'],
            ['internal', 'Internal'],
            ['public', 'Public'],
          ]}
        />
        <Field label="Default branch" value={branch} onInput={setBranch} required />
      </Form>
      {saved ? <p role="status">Saved.</p> : null}
    </section>
  );
}

function Members({ project }: ProjectProps) {
  const members = useApi(
    () => api('get', '/api/projects/{id}/members', { path: { id: project.id } }),
    [project.id],
  );
  const [user, setUser] = useState('');
  const [role, setRole] = useState('developer');
  return (
    <section aria-labelledby="s-members">
      <h2 id="s-members">Members and roles</h2>
      <View state={members} empty={(m) => m.items.length === 0}>
        {(m) => (
          <table class="table">
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Role</th>
                <th scope="col">Since</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {m.items.map((x) => (
                <tr key={`${x.user_id}-${x.role}`}>
                  <td>{x.user_name}</td>
                  <td>{x.role}</td>
                  <td>
                    <Time at={x.created_at} />
                  </td>
                  <td>
                    {x.role !== 'owner' ? (
                      <ActionButton
                        label={`Remove ${x.user_name} (${x.role})`}
                        confirm={`Remove ${x.user_name}'s ${x.role} role?`}
                        run={async () => {
                          await api('delete', '/api/projects/{id}/members/{userId}', {
                            path: { id: project.id, userId: x.user_id },
                            query: { role: x.role } as never,
                          });
                          members.reload();
                        }}
                      >
                        Remove
                      </ActionButton>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </View>
      <Form
        label="Add a member"
        class="form inline"
        submit="Add member"
        onSubmit={async () => {
          await api('post', '/api/projects/{id}/members', { path: { id: project.id }, body: { user, role } });
          setUser('');
          members.reload();
        }}
      >
        <Field label="User name" value={user} onInput={setUser} required />
        <Field
          label="Role"
          value={role}
          onInput={setRole}
          required
          hint="a role name, e.g. developer, maintainer, reporter"
        />
      </Form>
    </section>
  );
}

function Branches({ project }: ProjectProps) {
  const rules = useApi(
    () => api('get', '/api/projects/{id}/protected-branches', { path: { id: project.id } }),
    [project.id],
  );
  const [pattern, setPattern] = useState('');
  const [approvals, setApprovals] = useState('1');
  const [pipeline, setPipeline] = useState(false);
  return (
    <section aria-labelledby="s-branches">
      <h2 id="s-branches">Protected branches</h2>
      <View state={rules} empty={(r) => r.items.length === 0} emptyText="No branch is protected.">
        {(r) => (
          <table class="table">
            <thead>
              <tr>
                <th scope="col">Pattern</th>
                <th scope="col">Approvals</th>
                <th scope="col">Pipeline required</th>
                <th scope="col">Force push</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {r.items.map((b) => (
                <tr key={b.id}>
                  <td>
                    <code>{b.pattern}</code>
                  </td>
                  <td>{b.required_approvals}</td>
                  <td>{b.require_pipeline ? 'yes' : 'no'}</td>
                  <td>{b.allow_force_push ? 'allowed' : 'no'}</td>
                  <td>
                    <ActionButton
                      label={`Remove protection of ${b.pattern}`}
                      run={async () => {
                        await api('delete', '/api/projects/{id}/protected-branches/{ruleId}', {
                          path: { id: project.id, ruleId: b.id },
                        });
                        rules.reload();
                      }}
                    >
                      Remove
                    </ActionButton>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </View>
      <Form
        label="Protect a branch"
        submit="Protect"
        onSubmit={async () => {
          await api('post', '/api/projects/{id}/protected-branches', {
            path: { id: project.id },
            body: { pattern, required_approvals: Number(approvals), require_pipeline: pipeline },
          });
          setPattern('');
          rules.reload();
        }}
      >
        <Field
          label="Branch pattern"
          value={pattern}
          onInput={setPattern}
          required
          placeholder="main or release/*"
        />
        <Field label="Required approvals" type="number" value={approvals} onInput={setApprovals} />
        <div class="field">
          <label>
            <input
              type="checkbox"
              checked={pipeline}
              onChange={(e) => setPipeline(e.currentTarget.checked)}
            />{' '}
            Require a passing pipeline
          </label>
        </div>
      </Form>
    </section>
  );
}

const EVENTS = ['push', 'mr', 'issue', 'pipeline', 'deploy', 'session', 'alert'];

function Webhooks({ project }: ProjectProps) {
  const hooks = useApi(
    () => api('get', '/api/projects/{id}/webhooks', { path: { id: project.id } }),
    [project.id],
  );
  const [url, setUrl] = useState('');
  const [secret, setSecret] = useState('');
  const [events, setEvents] = useState<string[]>(['push']);
  const [open, setOpen] = useState<string | null>(null);
  return (
    <section aria-labelledby="s-hooks">
      <h2 id="s-hooks">Webhooks</h2>
      <View state={hooks} empty={(h) => h.items.length === 0} emptyText="No webhooks.">
        {(h) => (
          <ul class="list">
            {h.items.map((w) => (
              <li key={w.id}>
                <code>{w.url}</code> <span class="muted">{w.events.join(', ')}</span>{' '}
                {w.active ? '' : '(inactive)'}
                {w.has_secret ? ' · signed' : ''}{' '}
                <button
                  type="button"
                  aria-expanded={open === w.id}
                  onClick={() => setOpen(open === w.id ? null : w.id)}
                >
                  Deliveries
                </button>{' '}
                <ActionButton
                  run={async () => {
                    await api('post', '/api/projects/{id}/webhooks/{hookId}/test', {
                      path: { id: project.id, hookId: w.id },
                    });
                    setOpen(w.id);
                  }}
                >
                  Send test
                </ActionButton>{' '}
                <ActionButton
                  confirm="Remove this webhook and its delivery log?"
                  run={async () => {
                    await api('delete', '/api/projects/{id}/webhooks/{hookId}', {
                      path: { id: project.id, hookId: w.id },
                    });
                    hooks.reload();
                  }}
                >
                  Remove
                </ActionButton>
                {open === w.id ? <Deliveries projectId={project.id} hookId={w.id} /> : null}
              </li>
            ))}
          </ul>
        )}
      </View>
      <Form
        label="Add a webhook"
        submit="Add webhook"
        onSubmit={async () => {
          await api('post', '/api/projects/{id}/webhooks', {
            path: { id: project.id },
            body: { url, events: events as never, secret: secret || null },
          });
          setUrl('');
          setSecret('');
          hooks.reload();
        }}
      >
        <Field label="URL" type="url" value={url} onInput={setUrl} required />
        <Field
          label="Secret (optional, write-only)"
          type="password"
          value={secret}
          onInput={setSecret}
          autocomplete="new-password"
        />
        <fieldset>
          <legend>Events</legend>
          {EVENTS.map((e) => (
            <label key={e} class="check">
              <input
                type="checkbox"
                checked={events.includes(e)}
                onChange={(ev) =>
                  setEvents(ev.currentTarget.checked ? [...events, e] : events.filter((x) => x !== e))
                }
              />{' '}
              {e}
            </label>
          ))}
        </fieldset>
      </Form>
    </section>
  );
}

function Deliveries({ projectId, hookId }: { projectId: string; hookId: string }) {
  const list = useApi(
    () =>
      api('get', '/api/projects/{id}/webhooks/{hookId}/deliveries', {
        path: { id: projectId, hookId },
        query: { limit: 20 },
      }),
    [projectId, hookId],
  );
  return (
    <div class="card">
      <button type="button" onClick={list.reload}>
        Refresh
      </button>
      <View state={list} empty={(d) => d.items.length === 0} emptyText="No deliveries yet.">
        {(d) => (
          <table class="table">
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Status</th>
                <th scope="col">HTTP</th>
                <th scope="col">Attempt</th>
                <th scope="col">When</th>
              </tr>
            </thead>
            <tbody>
              {d.items.map((x) => (
                <tr key={x.id}>
                  <td>{x.event}</td>
                  <td>
                    <Status s={x.status} />
                  </td>
                  <td>{x.status_code ?? '—'}</td>
                  <td>{x.attempt}</td>
                  <td>
                    <Time at={x.created_at} /> {x.error ? <span class="del">{x.error}</span> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </View>
    </div>
  );
}

function Secrets({ project }: ProjectProps) {
  const secrets = useApi(
    () => api('get', '/api/projects/{id}/secrets', { path: { id: project.id } }),
    [project.id],
  );
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  return (
    <section aria-labelledby="s-secrets">
      <h2 id="s-secrets">Secrets</h2>
      <p class="muted">Values are write-only: the platform never shows them again.</p>
      <View state={secrets} empty={(s) => s.items.length === 0} emptyText="No secrets.">
        {(s) => (
          <table class="table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Version</th>
                <th scope="col">Updated</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {s.items.map((x) => (
                <tr key={x.name}>
                  <td>
                    <code>{x.name}</code>
                  </td>
                  <td>{x.version}</td>
                  <td>
                    <Time at={x.updated_at} />
                  </td>
                  <td>
                    <ActionButton
                      label={`Delete secret ${x.name}`}
                      confirm={`Delete the secret ${x.name}?`}
                      run={async () => {
                        await api('delete', '/api/projects/{id}/secrets/{name}', {
                          path: { id: project.id, name: x.name },
                        });
                        secrets.reload();
                      }}
                    >
                      Delete
                    </ActionButton>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </View>
      <Form
        label="Set a secret"
        submit="Save secret"
        onSubmit={async () => {
          await api('post', '/api/projects/{id}/secrets', {
            path: { id: project.id },
            body: { name, value },
          });
          setName('');
          setValue('');
          secrets.reload();
        }}
      >
        <Field label="Name" value={name} onInput={setName} required placeholder="DEPLOY_KEY" />
        <Field
          label="Value"
          type="password"
          value={value}
          onInput={setValue}
          required
          autocomplete="new-password"
        />
      </Form>
    </section>
  );
}
