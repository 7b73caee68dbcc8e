/** A unified diff (git's patch text) with per-line colouring, split per file. */
import type { S } from './api/client';

export function DiffStats({ files }: { files: S['DiffFile'][] }) {
  return (
    <ul class="list compact" aria-label="Changed files">
      {files.map((f) => (
        <li key={f.path}>
          <code>{f.path}</code> <span class="add">+{f.additions}</span>{' '}
          <span class="del">−{f.deletions}</span>
          {f.binary ? <span class="muted"> binary</span> : null}
        </li>
      ))}
    </ul>
  );
}

export function Diff({ patch, truncated }: { patch: string; truncated?: boolean }) {
  if (!patch) return <p class="empty">No textual changes.</p>;
  const files = patch.split(/^(?=diff --git )/m).filter((f) => f.trim());
  return (
    <div class="diff">
      {files.map((f, i) => {
        const header = /^diff --git a\/(.*?) b\/(.*)$/m.exec(f);
        const lines = f.split('\n');
        return (
          <section key={i} class="diff-file" aria-label={`Diff of ${header?.[2] ?? 'file'}`}>
            <h3 class="diff-name">{header?.[2] ?? 'file'}</h3>
            {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be reachable by keyboard (axe scrollable-region-focusable) */}
            <pre tabIndex={0}>
              {lines.map((l, j) => {
                const cls =
                  l.startsWith('+++') ||
                  l.startsWith('---') ||
                  l.startsWith('diff ') ||
                  l.startsWith('index ')
                    ? 'dh'
                    : l.startsWith('@@')
                      ? 'dhunk'
                      : l.startsWith('+')
                        ? 'dadd'
                        : l.startsWith('-')
                          ? 'ddel'
                          : '';
                return (
                  <div key={j} class={cls}>
                    {l || ' '}
                  </div>
                );
              })}
            </pre>
          </section>
        );
      })}
      {truncated ? <p class="notice">The diff is truncated (over 1 MiB).</p> : null}
    </div>
  );
}
