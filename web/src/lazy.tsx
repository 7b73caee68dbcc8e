/**
 * Pages loaded on first visit (their own chunk), so the first-load JS budget holds as pages are
 * added: `lazyPage(() => import('./pages/x'), 'X')` is a component that renders `X` once loaded.
 */
import type { ComponentType } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ErrorBox } from './ui';

export function lazyPage<P extends object>(
  load: () => Promise<Record<string, unknown>>,
  name: string,
): ComponentType<P> {
  let loaded: ComponentType<P> | undefined;
  return function Lazy(props: P) {
    const [C, setC] = useState<ComponentType<P> | undefined>(() => loaded);
    const [error, setError] = useState<Error | undefined>();
    useEffect(() => {
      if (loaded) return;
      load()
        .then((m) => {
          loaded = m[name] as ComponentType<P>;
          setC(() => loaded);
        })
        .catch((e: unknown) =>
          setError(new Error(`This page could not be loaded (${String(e)}); reload to try again.`)),
        );
    }, []);
    if (error) return <ErrorBox error={error} />;
    if (!C)
      return (
        <p class="muted" role="status">
          Loading…
        </p>
      );
    return <C {...props} />;
  };
}
