/** The notifications bell: the unread count, live over the server-sent event stream. */
import { useEffect, useState } from 'preact/hooks';
import { api } from './api/client';
import { Link } from './ui';

export function Bell() {
  const [unread, setUnread] = useState<number | null>(null);
  useEffect(() => {
    let closed = false;
    const refresh = () =>
      api('get', '/api/notifications/unread-count').then(
        (r) => !closed && setUnread(r.count),
        () => undefined,
      );
    refresh();
    const es = new EventSource('/api/notifications/stream');
    es.addEventListener('ready', (e) => {
      const d = JSON.parse((e as MessageEvent).data) as { unread: number };
      if (!closed) setUnread(d.unread);
    });
    es.addEventListener('notification', () => refresh());
    window.addEventListener('notifications:changed', refresh);
    return () => {
      closed = true;
      es.close();
      window.removeEventListener('notifications:changed', refresh);
    };
  }, []);
  const label = unread === null ? 'Notifications' : `Notifications, ${unread} unread`;
  return (
    <Link href="/notifications" class="bell" aria-label={label} title={label}>
      <svg
        aria-hidden="true"
        width="18"
        height="18"
        viewBox="0 0 24 24"
        fill="none"
        stroke="currentColor"
        stroke-width="2"
      >
        <path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9" />
        <path d="M10.3 21a1.94 1.94 0 0 0 3.4 0" />
      </svg>
      {unread ? (
        <span class="count" data-testid="unread">
          {unread}
        </span>
      ) : null}
    </Link>
  );
}
