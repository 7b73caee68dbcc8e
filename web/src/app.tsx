import type { ComponentType } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, type S, session } from './api/client';
import { Bell } from './bell';
import { lazyPage } from './lazy';
import { MeContext } from './me';
import { Admin } from './pages/admin';
import { Dashboard } from './pages/dashboard';
import { Login } from './pages/login';
import { Notifications } from './pages/notifications';
import type { ObserveProps } from './pages/observe/index';
import { Personal } from './pages/personal';
import { ProjectPage } from './pages/project';
import { Projects } from './pages/projects';
import { href, match, navigate, useLocation } from './router';
import { Link } from './ui';

type Params = Record<string, string>;
const ObservePage = lazyPage<ObserveProps>(() => import('./pages/observe/index'), 'Observe');
function InstanceObserve({ params }: { params: Params }) {
  return <ObservePage base="/observe" section={params.section} item={params.item} />;
}
const ROUTES: [string, ComponentType<{ params: Params }>][] = [
  ['/', Dashboard],
  ['/projects', Projects],
  ['/projects/:owner/:name', ProjectPage],
  ['/projects/:owner/:name/:section', ProjectPage],
  ['/projects/:owner/:name/:section/:item', ProjectPage],
  ['/projects/:owner/:name/:section/:item/:sub', ProjectPage],
  ['/admin', Admin],
  ['/admin/:section', Admin],
  ['/me', Personal],
  ['/me/:section', Personal],
  ['/notifications', Notifications],
  ['/observe', InstanceObserve],
  ['/observe/:section', InstanceObserve],
  ['/observe/:section/:item', InstanceObserve],
];

function toLogin() {
  const here = location.pathname + location.search;
  if (location.pathname !== '/login')
    navigate(href('/login', { next: here === '/' ? undefined : here }), { replace: true });
}

export function App() {
  const loc = useLocation();
  const [me, setMe] = useState<S['Me'] | null | undefined>(undefined);
  const refresh = useCallback(async () => {
    try {
      setMe(await api('get', '/api/auth/me'));
    } catch {
      setMe(null);
    }
  }, []);
  useEffect(() => {
    session.onUnauthorized = () => {
      setMe(null);
      toLogin();
    };
    refresh();
  }, [refresh]);

  useEffect(() => {
    if (me === null && loc.path !== '/login') toLogin();
  }, [me, loc.path]);

  if (loc.path === '/login')
    return (
      <MeContext.Provider value={{ me: me ?? null, refresh }}>
        <main id="main">
          <Login />
        </main>
      </MeContext.Provider>
    );
  if (me === undefined || me === null)
    return (
      <p class="muted center" role="status">
        Loading…
      </p>
    );

  let page = <NotFound />;
  for (const [pattern, C] of ROUTES) {
    const params = match(pattern, loc.path);
    if (params) {
      page = <C params={params} />;
      break;
    }
  }
  return (
    <MeContext.Provider value={{ me, refresh }}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <Shell me={me} path={loc.path} />
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </MeContext.Provider>
  );
}

function Shell({ me, path }: { me: S['Me']; path: string }) {
  const isAdmin = me.permissions.includes('admin:users' as never);
  const current = (p: string) => (p === '/' ? path === '/' : path.startsWith(p)) || undefined;
  return (
    <header class="topbar">
      <Link href="/" class="brand">
        Platform
      </Link>
      <nav aria-label="Main">
        <Link href="/" aria-current={current('/') && 'page'}>
          Dashboard
        </Link>
        <Link href="/projects" aria-current={current('/projects') && 'page'}>
          Projects
        </Link>
        <Link href="/observe/logs" aria-current={current('/observe') && 'page'}>
          Observe
        </Link>
        {isAdmin ? (
          <Link href="/admin/users" aria-current={current('/admin') && 'page'}>
            Admin
          </Link>
        ) : null}
      </nav>
      <div class="topbar-right">
        <Bell />
        <ThemeToggle />
        <Link href="/me/tokens" aria-current={current('/me') && 'page'}>
          {me.user.name}
        </Link>
        <button
          type="button"
          class="link"
          onClick={async () => {
            await api('post', '/api/auth/logout').catch(() => undefined);
            location.assign('/login');
          }}
        >
          Sign out
        </button>
      </div>
    </header>
  );
}

function ThemeToggle() {
  const [theme, setTheme] = useState(document.documentElement.dataset.theme ?? 'dark');
  return (
    <button
      type="button"
      class="link"
      aria-label={`Switch to the ${theme === 'dark' ? 'light' : 'dark'} theme`}
      onClick={() => {
        const next = theme === 'dark' ? 'light' : 'dark';
        document.documentElement.dataset.theme = next;
        localStorage.setItem('theme', next);
        setTheme(next);
      }}
    >
      {theme === 'dark' ? 'Light' : 'Dark'}
    </button>
  );
}

function NotFound() {
  return (
    <section class="page">
      <h1>Page not found</h1>
      <p>
        There is no page at this address. <Link href="/">Back to the dashboard</Link>.
      </p>
    </section>
  );
}
