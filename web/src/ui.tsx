/** Shared building blocks: links, data loading with its four states, badges, forms, tabs. */
import type { AnchorHTMLAttributes, ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api/client';
import { isModifiedClick, navigate } from './router';

export function Link(props: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const { href, onClick, ...rest } = props;
  return (
    <a
      {...rest}
      href={href}
      onClick={(e) => {
        if (onClick) (onClick as (e: MouseEvent) => void)(e);
        if (e.defaultPrevented || isModifiedClick(e)) return;
        e.preventDefault();
        navigate(href);
      }}
    />
  );
}

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` when `deps` change; a reload keeps the old data on screen until the new one lands. */
export function useApi<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: ApiError; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  const seq = useRef(0);
  useEffect(() => {
    const mine = ++seq.current;
    setState((s) => ({ data: s.data, loading: true }));
    load().then(
      (data) => mine === seq.current && setState({ data, loading: false }),
      (err: unknown) =>
        mine === seq.current &&
        setState({
          loading: false,
          error: err instanceof ApiError ? err : new ApiError(0, 'client', (err as Error).message),
        }),
    );
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

export function ErrorBox({ error }: { error: ApiError | Error | string }) {
  const e = typeof error === 'string' ? new ApiError(0, 'error', error) : error;
  if (e instanceof ApiError && e.status === 403)
    return (
      <div class="notice forbidden" role="alert">
        <strong>Forbidden.</strong> You do not have permission to see or do this. {e.message}
      </div>
    );
  if (e instanceof ApiError && e.status === 404)
    return (
      <div class="notice" role="alert">
        <strong>Not found.</strong> {e.message}
      </div>
    );
  return (
    <div class="notice error" role="alert">
      <strong>Error.</strong> {e.message}
      {e instanceof ApiError && e.reason ? <code class="reason"> {e.reason}</code> : null}
      {e instanceof ApiError && e.details.length > 0 ? (
        <ul>
          {e.details.map((d) => (
            <li key={JSON.stringify(d)}>
              {d.path ? <code>{d.path}</code> : null} {d.message ?? JSON.stringify(d)}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

/** The four states of loaded data: loading, error/forbidden, empty, and the content. */
export function View<T>(props: {
  state: Loaded<T>;
  empty?: (d: T) => boolean;
  emptyText?: ComponentChildren;
  children: (d: T) => ComponentChildren;
}) {
  const { state } = props;
  if (state.error && !state.data) return <ErrorBox error={state.error} />;
  if (state.data === undefined)
    return (
      <p class="muted" role="status" aria-live="polite">
        Loading…
      </p>
    );
  if (props.empty?.(state.data)) return <p class="empty">{props.emptyText ?? 'Nothing here yet.'}</p>;
  return (
    <>
      {state.error ? <ErrorBox error={state.error} /> : null}
      {props.children(state.data)}
    </>
  );
}

const STATUS_CLASS: Record<string, string> = {
  success: 'ok',
  merged: 'ok',
  open: 'ok',
  opened: 'ok',
  running: 'run',
  pending: 'wait',
  queued: 'wait',
  waiting: 'wait',
  failed: 'bad',
  error: 'bad',
  cancelled: 'off',
  canceled: 'off',
  closed: 'off',
  skipped: 'off',
};

export function Status({ s }: { s: string }) {
  return <span class={`badge ${STATUS_CLASS[s] ?? 'off'}`}>{s}</span>;
}

export function Time({ at }: { at: string | null | undefined }) {
  if (!at) return <span class="muted">—</span>;
  const d = new Date(at);
  return (
    <time dateTime={at} title={d.toLocaleString()}>
      {ago(d)}
    </time>
  );
}

export function ago(d: Date): string {
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 45) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  if (s < 86400 * 30) return `${Math.round(s / 86400)} d ago`;
  return d.toLocaleDateString();
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** A form whose submit runs `action`, shows its error, and disables itself while busy. */
export function Form(props: {
  onSubmit: () => Promise<unknown>;
  children: ComponentChildren;
  submit: string;
  label?: string;
  class?: string;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | undefined>();
  return (
    <form
      class={props.class ?? 'form'}
      aria-label={props.label}
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(undefined);
        try {
          await props.onSubmit();
        } catch (err) {
          setError(err as Error);
        } finally {
          setBusy(false);
        }
      }}
    >
      {props.children}
      {error ? <ErrorBox error={error} /> : null}
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Working…' : props.submit}
        </button>
      </div>
    </form>
  );
}

let fieldSeq = 0;
/** A labelled input; `value`/`onInput` like a controlled input. */
export function Field(props: {
  label: string;
  value: string;
  onInput: (v: string) => void;
  type?: string;
  required?: boolean;
  placeholder?: string;
  multiline?: boolean;
  autocomplete?: string;
  hint?: string;
  name?: string;
}) {
  const id = useRef(`f${++fieldSeq}`).current;
  const common = {
    id,
    name: props.name ?? id,
    value: props.value,
    required: props.required,
    placeholder: props.placeholder,
    'aria-describedby': props.hint ? `${id}-hint` : undefined,
    onInput: (e: Event) => props.onInput((e.currentTarget as HTMLInputElement).value),
  };
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      {props.multiline ? (
        <textarea {...common} rows={5} />
      ) : (
        <input {...common} type={(props.type ?? 'text') as 'text'} autoComplete={props.autocomplete} />
      )}
      {props.hint ? (
        <small id={`${id}-hint`} class="muted">
          {props.hint}
        </small>
      ) : null}
    </div>
  );
}

export function Select(props: {
  label: string;
  value: string;
  onChange: (v: string) => void;
  options: [string, string][];
}) {
  const id = useRef(`s${++fieldSeq}`).current;
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <select id={id} value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)}>
        {props.options.map(([v, l]) => (
          <option key={v} value={v}>
            {l}
          </option>
        ))}
      </select>
    </div>
  );
}

export function Tabs({ items, current }: { items: [string, string][]; current: string }) {
  return (
    <nav class="tabs" aria-label="Sections">
      {items.map(([label, to]) => (
        <Link key={to} href={to} aria-current={current === label ? 'page' : undefined}>
          {label}
        </Link>
      ))}
    </nav>
  );
}

/** A button that runs an action, shows "…" while it runs and reports failure inline. */
export function ActionButton(props: {
  run: () => Promise<unknown>;
  children: ComponentChildren;
  class?: string;
  confirm?: string;
  label?: string;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | undefined>();
  return (
    <>
      <button
        type="button"
        class={props.class}
        aria-label={props.label}
        disabled={busy}
        onClick={async () => {
          if (props.confirm && !window.confirm(props.confirm)) return;
          setBusy(true);
          setError(undefined);
          try {
            await props.run();
          } catch (err) {
            setError(err as Error);
          } finally {
            setBusy(false);
          }
        }}
      >
        {props.children}
      </button>
      {error ? <ErrorBox error={error} /> : null}
    </>
  );
}

export function Page(props: { title: string; actions?: ComponentChildren; children: ComponentChildren }) {
  useEffect(() => {
    document.title = `${props.title} · Platform`;
  }, [props.title]);
  return (
    <section class="page">
      <header class="page-head">
        <h1>{props.title}</h1>
        {props.actions ? <div class="page-actions">{props.actions}</div> : null}
      </header>
      {props.children}
    </section>
  );
}
