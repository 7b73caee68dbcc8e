/** A session's timeline: its logs, spans and agent events merged by time (oldest first, paged). */
import { useEffect, useState } from 'preact/hooks';
import { api, type S } from '../../api/client';
import { navigate } from '../../router';
import { ErrorBox, Field, Link } from '../../ui';
import { Attributes, clock, fmtMs, levelClass, type ObserveContext } from './shared';

type Item = S['SessionTimeline']['items'][number];

const KIND: Record<Item['kind'], string> = { log: 'log', span: 'span', agent_event: 'agent' };

export function Timeline(props: ObserveContext) {
  if (!props.item) return <ChooseSession {...props} />;
  return <SessionTimeline {...props} sid={props.item} />;
}

function ChooseSession(props: ObserveContext) {
  const [sid, setSid] = useState('');
  return (
    <section aria-labelledby="tl-h">
      <h2 id="tl-h">Session timeline</h2>
      <form
        class="filters"
        aria-label="Open a session timeline"
        onSubmit={(e) => {
          e.preventDefault();
          if (sid.trim()) navigate(`${props.base}/timeline/${encodeURIComponent(sid.trim())}`);
        }}
      >
        <Field label="Session id" value={sid} onInput={setSid} required />
        <div class="actions">
          <button type="submit" class="primary">
            Open
          </button>
        </div>
      </form>
    </section>
  );
}

function SessionTimeline(props: ObserveContext & { sid: string }) {
  const [items, setItems] = useState<Item[] | undefined>();
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<Error | undefined>();
  const [busy, setBusy] = useState(false);
  const [kinds, setKinds] = useState<Record<string, boolean>>({ log: true, span: true, agent_event: true });

  async function load(more: boolean) {
    setBusy(true);
    setError(undefined);
    try {
      const page = await api('get', '/api/observe/sessions/{sid}/timeline', {
        path: { sid: props.sid },
        query: { limit: 200, ...(more && cursor ? { cursor } : {}) } as never,
      });
      setItems((old) => (more ? [...(old ?? []), ...page.items] : page.items));
      setCursor(page.next_cursor);
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  }
  useEffect(() => {
    setItems(undefined);
    load(false);
  }, [props.sid]);

  const shown = (items ?? []).filter((i) => kinds[i.kind]);
  const sessionLink = props.project ? `${props.base.replace(/\/observe$/, '')}/sessions/${props.sid}` : null;
  return (
    <section aria-labelledby="tl-h">
      <h2 id="tl-h">
        Session timeline <span class="mono small">{props.sid}</span>
      </h2>
      <p>
        {sessionLink ? <Link href={sessionLink}>Open the session</Link> : null}{' '}
        <Link href={`${props.base}/logs?session_id=${props.sid}`}>Search its logs</Link>
      </p>
      <fieldset class="filters kinds">
        <legend>Show</legend>
        {(['log', 'span', 'agent_event'] as const).map((k) => (
          <label class="check" key={k}>
            <input
              type="checkbox"
              checked={kinds[k]}
              onChange={(e) => {
                const on = e.currentTarget.checked;
                setKinds((o) => ({ ...o, [k]: on }));
              }}
            />{' '}
            {k === 'agent_event' ? 'agent events' : `${k}s`}
          </label>
        ))}
      </fieldset>
      {error ? <ErrorBox error={error} /> : null}
      {items === undefined && !error ? (
        <p class="muted" role="status" aria-live="polite">
          Loading…
        </p>
      ) : null}
      {items && shown.length === 0 ? <p class="empty">Nothing recorded for this session yet.</p> : null}
      {shown.length > 0 ? (
        <ol class="timeline" aria-label="Session timeline">
          {shown.map((i) => (
            <li key={`${i.kind}-${i.id}`} class={`tl-item tl-${i.kind}`}>
              <time class="mono small" dateTime={i.time}>
                {clock(i.time)}
              </time>{' '}
              <span class="badge off">{KIND[i.kind]}</span>{' '}
              {i.level ? <span class={levelClass(i.level)}>{i.level}</span> : null}{' '}
              <details>
                <summary>
                  {i.title}
                  {i.service ? <span class="muted small"> · {i.service}</span> : null}
                  {i.duration_ms !== null ? <span class="muted small"> · {fmtMs(i.duration_ms)}</span> : null}
                </summary>
                <Attributes attrs={i.detail} label={`Details of ${i.kind} ${i.id}`} />
                {typeof i.detail.trace_id === 'string' && i.detail.trace_id ? (
                  <Link href={`${props.base}/traces/${i.detail.trace_id}`}>Open the trace</Link>
                ) : null}
              </details>
            </li>
          ))}
        </ol>
      ) : null}
      {cursor ? (
        <button type="button" disabled={busy} onClick={() => load(true)}>
          Later entries
        </button>
      ) : null}
    </section>
  );
}
