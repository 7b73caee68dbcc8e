import { useState } from 'preact/hooks';
import { api, type S } from '../api/client';
import { href, navigate, useLocation } from '../router';
import { ActionButton, ErrorBox, Field, Form, Link, Page, Select, Tabs, Time, useApi, View } from '../ui';

const PERMISSIONS: S['Role']['permissions'] = [
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
  'admin:users',
  'admin:delegate',
];

const SECTIONS: [string, string][] = [
  ['Users', 'users'],
  ['Roles', 'roles'],
  ['Delegations', 'delegations'],
  ['Audit log', 'audit'],
];

export function Admin({ params }: { params: Record<string, string> }) {
  const section = params.section ?? 'users';
  const current = SECTIONS.find(([, s]) => s === section)?.[0] ?? '';
  return (
    <Page title={`Admin · ${current || 'unknown'}`}>
      <Tabs items={SECTIONS.map(([l, s]) => [l, `/admin/${s}`])} current={current} />
      {section === 'users' ? <Users /> : null}
      {section === 'roles' ? <Roles /> : null}
      {section === 'delegations' ? <Delegations /> : null}
      {section === 'audit' ? <Audit /> : null}
    </Page>
  );
}

function Users() {
  const loc = useLocation();
  const q = loc.query.get('q') ?? '';
  const users = useApi(() => api('get', '/api/users', { query: { q: q || undefined, limit: 100 } }), [q]);
  const roles = useApi(() => api('get', '/api/admin/roles'), []);
  const [search, setSearch] = useState(q);
  const [name, setName] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [userType, setUserType] = useState('human');
  const [open, setOpen] = useState<string | null>(null);
  return (
    <>
      <form
        class="filters"
        aria-label="Filter users"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(href('/admin/users', { q: search }), { replace: true });
        }}
      >
        <Field label="Search users" value={search} onInput={setSearch} />
        <button type="submit">Search</button>
      </form>
      <View state={users} empty={(u) => u.items.length === 0} emptyText="No users match.">
        {(u) => (
          <table class="table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">E-mail</th>
                <th scope="col">Type</th>
                <th scope="col">Active</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {u.items.map((x) => (
                <>
                  <tr key={x.id}>
                    <td>{x.name}</td>
                    <td>{x.email}</td>
                    <td>{x.user_type}</td>
                    <td>{x.is_active ? 'yes' : 'deactivated'}</td>
                    <td>
                      <button
                        type="button"
                        aria-expanded={open === x.id}
                        onClick={() => setOpen(open === x.id ? null : x.id)}
                      >
                        Roles of {x.name}
                      </button>{' '}
                      {x.is_active ? (
                        <ActionButton
                          confirm={`Deactivate ${x.name}? Their sessions and tokens end.`}
                          run={async () => {
                            await api('delete', '/api/users/{id}', { path: { id: x.id } });
                            users.reload();
                          }}
                        >
                          Deactivate {x.name}
                        </ActionButton>
                      ) : (
                        <ActionButton
                          run={async () => {
                            await api('patch', '/api/users/{id}', {
                              path: { id: x.id },
                              body: { is_active: true },
                            });
                            users.reload();
                          }}
                        >
                          Reactivate {x.name}
                        </ActionButton>
                      )}
                    </td>
                  </tr>
                  {open === x.id ? (
                    <tr key={`${x.id}-roles`}>
                      <td colSpan={5}>
                        <UserRoles user={x} roles={roles.data?.items ?? []} />
                      </td>
                    </tr>
                  ) : null}
                </>
              ))}
            </tbody>
          </table>
        )}
      </View>
      <section class="card" aria-labelledby="new-user">
        <h2 id="new-user">Create a user</h2>
        <Form
          label="Create a user"
          submit="Create user"
          onSubmit={async () => {
            await api('post', '/api/users', {
              body: { name, email, user_type: userType as never, ...(password ? { password } : {}) },
            });
            setName('');
            setEmail('');
            setPassword('');
            users.reload();
          }}
        >
          <Field label="Name" value={name} onInput={setName} required />
          <Field label="E-mail" type="email" value={email} onInput={setEmail} required />
          <Field
            label="Initial password"
            type="password"
            value={password}
            onInput={setPassword}
            autocomplete="new-password"
          />
          <Select
            label="Type"
            value={userType}
            onChange={setUserType}
            options={[
              ['human', 'Human'],
              ['agent', 'Agent'],
              ['service_account', 'Service account'],
            ]}
          />
        </Form>
      </section>
    </>
  );
}

function UserRoles({ user, roles }: { user: S['User']; roles: S['Role'][] }) {
  const bindings = useApi(
    () => api('get', '/api/admin/users/{id}/roles', { path: { id: user.id } }),
    [user.id],
  );
  const [role, setRole] = useState(roles[0]?.name ?? '');
  return (
    <div>
      <View state={bindings} empty={(b) => b.items.length === 0} emptyText={`${user.name} has no roles.`}>
        {(b) => (
          <ul class="list compact" aria-label={`Roles of ${user.name}`}>
            {b.items.map((r) => (
              <li key={r.id}>
                <strong>{r.role}</strong>{' '}
                {r.project_id ? <span class="muted">on project {r.project_id}</span> : 'global'}{' '}
                <ActionButton
                  label={`Remove role ${r.role} from ${user.name}`}
                  run={async () => {
                    await api('delete', '/api/admin/users/{id}/roles/{roleId}', {
                      path: { id: user.id, roleId: r.role_id },
                      query: (r.project_id ? { project_id: r.project_id } : {}) as never,
                    });
                    bindings.reload();
                  }}
                >
                  Remove
                </ActionButton>
              </li>
            ))}
          </ul>
        )}
      </View>
      <Form
        label={`Grant a role to ${user.name}`}
        class="form inline"
        submit="Grant role"
        onSubmit={async () => {
          await api('post', '/api/admin/users/{id}/roles', { path: { id: user.id }, body: { role } });
          bindings.reload();
        }}
      >
        <Select label="Role" value={role} onChange={setRole} options={roles.map((r) => [r.name, r.name])} />
      </Form>
    </div>
  );
}

function Roles() {
  const roles = useApi(() => api('get', '/api/admin/roles'), []);
  const [name, setName] = useState('');
  // What a click asked for, shown at once (not the old state until the server answers); a refused
  // change is dropped again and its error shown.
  const [wanted, setWanted] = useState<Record<string, boolean>>({});
  const [error, setError] = useState<Error | undefined>();
  return (
    <>
      {error ? <ErrorBox error={error} /> : null}
      <View state={roles} empty={(r) => r.items.length === 0}>
        {(r) => (
          <div class="scroll-x">
            <table class="table grid-table">
              <caption>Permissions per role (system roles are fixed)</caption>
              <thead>
                <tr>
                  <th scope="col">Role</th>
                  {PERMISSIONS.map((p) => (
                    <th scope="col" key={p}>
                      <span class="vertical">{p}</span>
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {r.items.map((role) => (
                  <tr key={role.id}>
                    <th scope="row">
                      {role.name}
                      {role.is_system ? <small class="muted"> system</small> : null}
                    </th>
                    {PERMISSIONS.map((p) => (
                      <td key={p}>
                        <input
                          type="checkbox"
                          aria-label={`${role.name}: ${p}`}
                          checked={wanted[`${role.id} ${p}`] ?? role.permissions.includes(p)}
                          disabled={role.is_system}
                          onChange={async (e) => {
                            const key = `${role.id} ${p}`;
                            const on = e.currentTarget.checked;
                            const current = PERMISSIONS.filter((x) =>
                              x === p ? on : (wanted[`${role.id} ${x}`] ?? role.permissions.includes(x)),
                            );
                            setWanted((w) => ({ ...w, [key]: on }));
                            setError(undefined);
                            try {
                              await api('put', '/api/admin/roles/{id}/permissions', {
                                path: { id: role.id },
                                body: { permissions: current },
                              });
                            } catch (err) {
                              setWanted(({ [key]: _dropped, ...rest }) => rest);
                              setError(err as Error);
                            } finally {
                              roles.reload();
                            }
                          }}
                        />
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </View>
      <Form
        label="Create a role"
        class="form inline"
        submit="Create role"
        onSubmit={async () => {
          await api('post', '/api/admin/roles', { body: { name, permissions: ['project:read'] } });
          setName('');
          roles.reload();
        }}
      >
        <Field label="New role name" value={name} onInput={setName} required />
      </Form>
    </>
  );
}

function Delegations() {
  const list = useApi(() => api('get', '/api/admin/delegations', { query: { limit: 100 } }), []);
  const [delegate, setDelegate] = useState('');
  const [permission, setPermission] = useState<string>('project:read');
  const [reason, setReason] = useState('');
  return (
    <>
      <View state={list} empty={(d) => d.items.length === 0} emptyText="No delegations.">
        {(d) => (
          <table class="table">
            <thead>
              <tr>
                <th scope="col">From</th>
                <th scope="col">To</th>
                <th scope="col">Permission</th>
                <th scope="col">Expires</th>
                <th scope="col">State</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {d.items.map((x) => (
                <tr key={x.id}>
                  <td>{x.delegator_name}</td>
                  <td>{x.delegate_name}</td>
                  <td>
                    <code>{x.permission}</code>
                  </td>
                  <td>
                    <Time at={x.expires_at} />
                  </td>
                  <td>{x.revoked_at ? 'revoked' : 'active'}</td>
                  <td>
                    {!x.revoked_at ? (
                      <ActionButton
                        label={`Revoke ${x.permission} of ${x.delegate_name}`}
                        run={async () => {
                          await api('delete', '/api/admin/delegations/{id}', { path: { id: x.id } });
                          list.reload();
                        }}
                      >
                        Revoke
                      </ActionButton>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </View>
      <section class="card" aria-labelledby="new-delegation">
        <h2 id="new-delegation">Delegate a permission</h2>
        <Form
          label="Delegate a permission"
          submit="Delegate"
          onSubmit={async () => {
            await api('post', '/api/admin/delegations', {
              body: { delegate_id: delegate, permission: permission as never, ...(reason ? { reason } : {}) },
            });
            list.reload();
          }}
        >
          <Field label="Delegate (user id or name)" value={delegate} onInput={setDelegate} required />
          <Select
            label="Permission"
            value={permission}
            onChange={setPermission}
            options={PERMISSIONS.map((p) => [p, p])}
          />
          <Field label="Reason" value={reason} onInput={setReason} />
        </Form>
      </section>
    </>
  );
}

function Audit() {
  const loc = useLocation();
  const filters = {
    actor: loc.query.get('actor') ?? '',
    action: loc.query.get('action') ?? '',
    resource_type: loc.query.get('resource_type') ?? '',
    cursor: loc.query.get('cursor') ?? '',
  };
  const [draft, setDraft] = useState(filters);
  const audit = useApi(
    () =>
      api('get', '/api/audit', {
        query: {
          limit: 50,
          actor: filters.actor || undefined,
          action: filters.action || undefined,
          resource_type: filters.resource_type || undefined,
          cursor: filters.cursor || undefined,
        },
      }),
    [filters.actor, filters.action, filters.resource_type, filters.cursor],
  );
  return (
    <>
      <form
        class="filters"
        aria-label="Filter the audit log"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(href('/admin/audit', { ...draft, cursor: undefined }), { replace: true });
        }}
      >
        <Field label="Actor" value={draft.actor} onInput={(v) => setDraft({ ...draft, actor: v })} />
        <Field
          label="Action"
          value={draft.action}
          onInput={(v) => setDraft({ ...draft, action: v })}
          placeholder="project.create"
        />
        <Field
          label="Resource type"
          value={draft.resource_type}
          onInput={(v) => setDraft({ ...draft, resource_type: v })}
        />
        <button type="submit">Filter</button>
      </form>
      <View state={audit} empty={(a) => a.items.length === 0} emptyText="No audit entries match.">
        {(a) => (
          <>
            <table class="table">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Action</th>
                  <th scope="col">Resource</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {a.items.map((x) => (
                  <tr key={x.id}>
                    <td>
                      <Time at={x.created_at} />
                    </td>
                    <td>{x.actor_name ?? 'system'}</td>
                    <td>
                      <code>{x.action}</code>
                    </td>
                    <td>
                      {x.resource_type} <small class="muted">{x.resource_id}</small>
                    </td>
                    <td>
                      <details>
                        <summary>detail</summary>
                        <pre class="detail-pre">{JSON.stringify(x.detail, null, 2)}</pre>
                      </details>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {a.next_cursor ? (
              <Link href={href('/admin/audit', { ...filters, cursor: a.next_cursor })}>Older entries</Link>
            ) : null}
          </>
        )}
      </View>
    </>
  );
}
