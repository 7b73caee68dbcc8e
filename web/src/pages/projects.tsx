import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { href, navigate, useLocation } from '../router';
import { Field, Form, Link, Page, Select, Time, useApi, View } from '../ui';

export function Projects() {
  const loc = useLocation();
  const q = loc.query.get('q') ?? '';
  const visibility = loc.query.get('visibility') ?? '';
  const [search, setSearch] = useState(q);
  const [creating, setCreating] = useState(loc.query.has('new'));
  const list = useApi(
    () =>
      api('get', '/api/projects', {
        query: { q: q || undefined, visibility: (visibility || undefined) as never, limit: 100 },
      }),
    [q, visibility],
  );
  const set = (k: string, v: string) =>
    navigate(href('/projects', { q: k === 'q' ? v : q, visibility: k === 'visibility' ? v : visibility }), {
      replace: true,
    });
  return (
    <Page
      title="Projects"
      actions={
        <button type="button" class="primary" onClick={() => setCreating(!creating)} aria-expanded={creating}>
          New project
        </button>
      }
    >
      {creating ? <CreateProject /> : null}
      <form
        class="filters"
        aria-label="Filter projects"
        onSubmit={(e) => {
          e.preventDefault();
          set('q', search);
        }}
      >
        <Field label="Search" value={search} onInput={setSearch} placeholder="name or description" />
        <Select
          label="Visibility"
          value={visibility}
          onChange={(v) => set('visibility', v)}
          options={[
            ['', 'All'],
            ['public', 'Public'],
            ['internal', 'Internal'],
            ['private', 'Private'],
          ]}
        />
        <button type="submit">Search</button>
      </form>
      <View state={list} empty={(d) => d.items.length === 0} emptyText="No projects match.">
        {(d) => (
          <table class="table">
            <thead>
              <tr>
                <th scope="col">Project</th>
                <th scope="col">Visibility</th>
                <th scope="col">Description</th>
                <th scope="col">Updated</th>
              </tr>
            </thead>
            <tbody>
              {d.items.map((p) => (
                <tr key={p.id}>
                  <td>
                    <Link href={`/projects/${p.full_name}`}>{p.full_name}</Link>
                  </td>
                  <td>{p.visibility}</td>
                  <td>{p.description}</td>
                  <td>
                    <Time at={p.updated_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </View>
    </Page>
  );
}

function CreateProject() {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [visibility, setVisibility] = useState('private');
  return (
    <section class="card" aria-labelledby="new-project">
      <h2 id="new-project">New project</h2>
      <Form
        label="New project"
        submit="Create project"
        onSubmit={async () => {
          const p = await api('post', '/api/projects', {
            body: { name, description, visibility: visibility as never },
          });
          navigate(`/projects/${p.full_name}`);
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
      </Form>
    </section>
  );
}
