import { api } from '../api/client';
import { ActionButton, Page, Time, useApi, View } from '../ui';

const changed = () => window.dispatchEvent(new Event('notifications:changed'));

export function Notifications() {
  const list = useApi(() => api('get', '/api/notifications', { query: { limit: 100 } }), []);
  return (
    <Page
      title="Notifications"
      actions={
        <ActionButton
          run={async () => {
            await api('post', '/api/notifications/read-all');
            changed();
            list.reload();
          }}
        >
          Mark all read
        </ActionButton>
      }
    >
      <View state={list} empty={(n) => n.items.length === 0} emptyText="No notifications.">
        {(n) => (
          <ul class="list">
            {n.items.map((x) => (
              <li key={x.id} class={x.read_at ? 'read' : 'unread'}>
                {x.read_at ? null : <span class="dot" />}
                {x.read_at ? null : <span class="sr-only">unread</span>} <strong>{x.subject}</strong>{' '}
                <span class="muted">
                  {x.type} · <Time at={x.created_at} />
                </span>
                {x.body ? <p>{x.body}</p> : null}
                {!x.read_at ? (
                  <ActionButton
                    label={`Mark read: ${x.subject}`}
                    run={async () => {
                      await api('patch', '/api/notifications/{id}/read', { path: { id: x.id } });
                      changed();
                      list.reload();
                    }}
                  >
                    Mark read
                  </ActionButton>
                ) : null}
              </li>
            ))}
          </ul>
        )}
      </View>
    </Page>
  );
}
