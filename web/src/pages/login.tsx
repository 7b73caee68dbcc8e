import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { useMe } from '../me';
import { navigate, useLocation } from '../router';
import { Field, Form } from '../ui';

/** Only same-site paths are followed after login (an open redirect would be a phishing aid). */
function safeNext(next: string | null): string {
  return next?.startsWith('/') && !next.startsWith('//') && !next.startsWith('/login') ? next : '/';
}

export function Login() {
  const loc = useLocation();
  const { refresh } = useMe();
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  document.title = 'Sign in · Platform';
  return (
    <section class="login">
      <h1>Sign in to Platform</h1>
      <Form
        label="Sign in"
        submit="Sign in"
        onSubmit={async () => {
          await api('post', '/api/auth/login', { body: { name, password } });
          await refresh();
          navigate(safeNext(loc.query.get('next')), { replace: true });
        }}
      >
        <Field
          label="User name"
          value={name}
          onInput={setName}
          required
          autocomplete="username"
          name="username"
        />
        <Field
          label="Password"
          type="password"
          value={password}
          onInput={setPassword}
          required
          autocomplete="current-password"
          name="password"
        />
      </Form>
      <aside class="hint" aria-label="First start">
        <h2>First start?</h2>
        <p>
          The first <code>platform serve</code> creates the admin user <code>admin</code> and prints its
          generated password once in the terminal (or uses <code>PLATFORM_ADMIN_PASSWORD</code> when set).
          Lost it? Run <code>platform admin reset-password admin</code>.
        </p>
      </aside>
    </section>
  );
}
