import { useState } from 'preact/hooks';
import { api, type S } from '../api/client';
import { useMe } from '../me';
import { ActionButton, Field, Form, Page, Select, Tabs, Time, useApi, View } from '../ui';

const SECTIONS: [string, string][] = [
  ['API tokens', 'tokens'],
  ['Notifications', 'notifications'],
  ['Password', 'password'],
];

export function Personal({ params }: { params: Record<string, string> }) {
  const section = params.section ?? 'tokens';
  const current = SECTIONS.find(([, s]) => s === section)?.[0] ?? '';
  return (
    <Page title={`My settings · ${current || 'unknown'}`}>
      <Tabs items={SECTIONS.map(([l, s]) => [l, `/me/${s}`])} current={current} />
      {section === 'tokens' ? <Tokens /> : null}
      {section === 'notifications' ? <Preferences /> : null}
      {section === 'password' ? <Password /> : null}
    </Page>
  );
}

function Tokens() {
  const tokens = useApi(() => api('get', '/api/tokens', { query: { limit: 100 } }), []);
  const [name, setName] = useState('');
  const [days, setDays] = useState('30');
  const [created, setCreated] = useState<S['TokenCreated'] | null>(null);
  return (
    <>
      {created ? (
        <div class="notice ok" role="status">
          <p>
            Token <strong>{created.name}</strong> created. Copy it now: it is shown only once.
          </p>
          <label for="new-token">New token</label>
          <input
            id="new-token"
            class="mono"
            readOnly
            value={created.token}
            onFocus={(e) => e.currentTarget.select()}
          />
          <button type="button" onClick={() => navigator.clipboard?.writeText(created.token)}>
            Copy
          </button>{' '}
          <button type="button" onClick={() => setCreated(null)}>
            Done
          </button>
        </div>
      ) : null}
      <View state={tokens} empty={(t) => t.items.length === 0} emptyText="No API tokens.">
        {(t) => (
          <table class="table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Prefix</th>
                <th scope="col">Scopes</th>
                <th scope="col">Last used</th>
                <th scope="col">Expires</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {t.items.map((x) => (
                <tr key={x.id}>
                  <td>{x.name}</td>
                  <td>
                    <code>{x.token_prefix}…</code>
                  </td>
                  <td>{x.scopes?.join(', ') ?? 'all'}</td>
                  <td>
                    <Time at={x.last_used_at} />
                  </td>
                  <td>
                    <Time at={x.expires_at} />
                  </td>
                  <td>
                    <ActionButton
                      label={`Revoke token ${x.name}`}
                      confirm={`Revoke the token ${x.name}?`}
                      run={async () => {
                        await api('delete', '/api/tokens/{id}', { path: { id: x.id } });
                        tokens.reload();
                      }}
                    >
                      Revoke
                    </ActionButton>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </View>
      <section class="card" aria-labelledby="new-token-title">
        <h2 id="new-token-title">Create a token</h2>
        <Form
          label="Create a token"
          submit="Create token"
          onSubmit={async () => {
            const expires = days ? new Date(Date.now() + Number(days) * 86400_000).toISOString() : undefined;
            const t = await api('post', '/api/tokens', {
              body: { name, ...(expires ? { expires_at: expires } : {}) } as never,
            });
            setCreated(t);
            setName('');
            tokens.reload();
          }}
        >
          <Field label="Token name" value={name} onInput={setName} required />
          <Select
            label="Expires in"
            value={days}
            onChange={setDays}
            options={[
              ['7', '7 days'],
              ['30', '30 days'],
              ['90', '90 days'],
              ['365', '1 year'],
              ['', 'Never'],
            ]}
          />
        </Form>
      </section>
    </>
  );
}

const CHANNELS = ['in_app', 'email', 'webhook'] as const;
/** The event types the platform notifies about (src/notify/subscriptions.ts), and `*` for all. */
const TYPES = [
  '*',
  'pipeline.failed',
  'pipeline.succeeded',
  'mr.opened',
  'mr.merged',
  'issue.assigned',
  'deployment.failed',
  'deployment.changed',
  'session.failed',
  'session.finished',
  'alert.fired',
  'alert.resolved',
];

function Preferences() {
  const prefs = useApi(() => api('get', '/api/notifications/preferences'), []);
  const [saved, setSaved] = useState(false);
  return (
    <View state={prefs}>
      {(p) => {
        const items = new Map(p.items.map((i) => [i.event_type, i.channels]));
        const toggle = async (type: string, channel: (typeof CHANNELS)[number], on: boolean) => {
          const current = items.get(type) ?? [];
          const next = on ? [...new Set([...current, channel])] : current.filter((c) => c !== channel);
          items.set(type, next);
          await api('put', '/api/notifications/preferences', {
            body: { items: [...items].map(([event_type, channels]) => ({ event_type, channels })) },
          });
          setSaved(true);
          prefs.reload();
        };
        return (
          <>
            <p class="muted">
              Types not listed use the defaults: in-app {p.defaults.in_app}, e-mail {p.defaults.email},
              webhook {p.defaults.webhook}.
            </p>
            <table class="table">
              <caption>Channels per event type</caption>
              <thead>
                <tr>
                  <th scope="col">Event type</th>
                  {CHANNELS.map((c) => (
                    <th scope="col" key={c}>
                      {c}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {[...new Set([...TYPES, ...items.keys()])].map((t) => (
                  <tr key={t}>
                    <th scope="row">
                      <code>{t}</code> {items.has(t) ? '' : <small class="muted">default</small>}
                    </th>
                    {CHANNELS.map((c) => (
                      <td key={c}>
                        <input
                          type="checkbox"
                          aria-label={`${t} by ${c}`}
                          checked={items.get(t)?.includes(c) ?? false}
                          onChange={(e) => toggle(t, c, e.currentTarget.checked)}
                        />
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
            {saved ? <p role="status">Saved.</p> : null}
          </>
        );
      }}
    </View>
  );
}

function Password() {
  const { me } = useMe();
  const [old, setOld] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [done, setDone] = useState(false);
  return (
    <section aria-labelledby="pw">
      <h2 id="pw">Change your password</h2>
      <Form
        label="Change password"
        submit="Change password"
        onSubmit={async () => {
          if (next !== again) throw new Error('the new passwords differ');
          await api('patch', '/api/users/{id}', {
            path: { id: me!.user.id },
            body: { old_password: old, password: next },
          });
          setOld('');
          setNext('');
          setAgain('');
          setDone(true);
        }}
      >
        <Field
          label="Current password"
          type="password"
          value={old}
          onInput={setOld}
          required
          autocomplete="current-password"
        />
        <Field
          label="New password"
          type="password"
          value={next}
          onInput={setNext}
          required
          autocomplete="new-password"
        />
        <Field
          label="New password again"
          type="password"
          value={again}
          onInput={setAgain}
          required
          autocomplete="new-password"
        />
      </Form>
      {done ? <p role="status">Password changed.</p> : null}
    </section>
  );
}
